//! Connecting chats in bulk: one request, many chats of one bot, a result per row. Each row is
//! the same command as `POST .../chats` (same rules, same identity constraint); a row that fails
//! does not stop the others, nothing is half-applied within a row, and every failed row is
//! named (its row number, its line in a CSV file) with the reason.
//!
//! The body is JSON (`{"bot_id", "chats": [...]}`) or CSV (`Content-Type: text/csv`, the bot
//! in `?bot_id=`, a header line naming the columns). `?dry_run=true` checks every row and
//! writes nothing; `?atomic=true` writes nothing unless every row would succeed.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Context;
use super::directory::{BasisFields, Checks, Connection, Prepared, prepare, workspace, write};
use crate::extract::{ApiBytes, ApiPath, ApiQuery, parse_id};
use crate::{ApiError, AppState};

/// Rows per request.
pub const MAX_ROWS: usize = 10_000;
/// Rows checked at once.
const CONCURRENCY: usize = 8;
/// Rows written in one transaction (one commit).
const WRITE_BATCH: usize = 250;
/// The columns a CSV import may have; the first two are required.
const CSV_COLUMNS: [&str; 6] = [
    "telegram_chat_id",
    "title",
    "lawful_basis",
    "source",
    "given_at",
    // Separated by semicolons: `vip;berlin`.
    "tags",
];
/// The source recorded for a row that names none.
const IMPORT_SOURCE: &str = "import";

#[derive(Debug, Default, Deserialize)]
pub struct ImportOptions {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    atomic: bool,
    /// The bot of a CSV import (a JSON import names it in its body).
    bot_id: Option<String>,
}

#[derive(Deserialize)]
struct JsonImport {
    bot_id: String,
    chats: Vec<Value>,
}

#[derive(Deserialize)]
struct JsonRow {
    telegram_chat_id: i64,
    title: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(flatten)]
    basis: BasisFields,
}

/// Where a row came from: its number among the rows, and its line in a CSV file.
#[derive(Debug, Clone, Copy)]
struct Position {
    row: usize,
    line: Option<u64>,
}

/// A row as read: the connection it asks for, or why it cannot be read (the error's JSON).
struct Row {
    position: Position,
    telegram_chat_id: Option<i64>,
    connection: Result<Connection, Value>,
}

pub async fn import_chats(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    ApiQuery(options): ApiQuery<ImportOptions>,
    Context(ctx): Context,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let ws = workspace(&state, &ws).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let rows = if content_type.starts_with("text/csv") {
        let bot_id = options.bot_id.as_deref().ok_or_else(|| {
            ApiError::invalid(
                "invalid_import",
                "a CSV import names its bot in the query: ?bot_id=<id>",
            )
        })?;
        csv_rows(parse_id(bot_id, "bot_id")?, &body)?
    } else if content_type.starts_with("application/json") {
        json_rows(&body)?
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the import as application/json or text/csv",
        ));
    };
    if rows.is_empty() || rows.len() > MAX_ROWS {
        return Err(ApiError::invalid(
            "invalid_import",
            format!(
                "an import holds 1 to {MAX_ROWS} chats; this one has {}: split it into several requests",
                rows.len()
            ),
        ));
    }
    let rows = mark_duplicates(rows);
    let dry_run = options.dry_run || options.atomic;
    let mut outcomes = run(&state, ws, &ctx, &rows, dry_run).await;
    if options.atomic && !options.dry_run {
        let failed = outcomes.iter().filter(|o| o.status == "failed").count();
        if failed > 0 {
            let error = ApiError::invalid(
                "import_has_errors",
                format!(
                    "{failed} of {} rows cannot be imported, so none was (atomic import): fix the rows listed under \"rows\" and send the import again",
                    rows.len()
                ),
            );
            let mut body = summary(&rows, &outcomes, true);
            body["error"] = error.to_json();
            return Ok((error.status, Json(body)));
        }
        outcomes = run(&state, ws, &ctx, &rows, false).await;
    }
    Ok((
        StatusCode::OK,
        Json(summary(&rows, &outcomes, options.dry_run)),
    ))
}

/// What happened to one row.
struct Outcome {
    status: &'static str,
    chat_id: Option<domain::Id>,
    error: Option<Value>,
}

/// Connects (or, in a dry run, checks) every row; outcomes in the rows' order. Rows are
/// checked several at a time, then written [`WRITE_BATCH`] to a transaction.
async fn run(
    state: &AppState,
    ws: domain::Id,
    ctx: &store::RequestContext,
    rows: &[Row],
    dry_run: bool,
) -> Vec<Outcome> {
    // Owned items, so the stream's futures borrow nothing from an iteration.
    let connections: Vec<_> = rows.iter().map(|row| row.connection.clone()).collect();
    let checked: Vec<Result<Prepared, (&'static str, Value)>> = futures::stream::iter(connections)
        .map(|connection| async move {
            match connection {
                Ok(connection) => prepare(state, ws, connection, Checks::GroupsAndChannels)
                    .await
                    .map_err(|error| (error.code, error.to_json())),
                Err(error) => Err(("invalid_row", error)),
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(checked.len());
    let mut ready = Vec::new();
    for (index, result) in checked.into_iter().enumerate() {
        match result {
            Ok(_) if dry_run => outcomes.push(Some(Outcome::connected("would_connect", None))),
            Ok(prepared) => {
                outcomes.push(None);
                ready.push((index, prepared));
            }
            Err((code, error)) => outcomes.push(Some(Outcome::failed(code, error))),
        }
    }
    while !ready.is_empty() {
        let batch: Vec<(usize, Prepared)> = ready.drain(..ready.len().min(WRITE_BATCH)).collect();
        let (indices, prepared): (Vec<usize>, Vec<Prepared>) = batch.into_iter().unzip();
        for (index, written) in indices
            .into_iter()
            .zip(write(state, ws, ctx, prepared).await)
        {
            outcomes[index] = Some(match written {
                Ok(id) => Outcome::connected("connected", Some(id)),
                Err(error) => Outcome::failed(error.code, error.to_json()),
            });
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.expect("every row has an outcome"))
        .collect()
}

impl Outcome {
    fn connected(status: &'static str, chat_id: Option<domain::Id>) -> Self {
        Self {
            status,
            chat_id,
            error: None,
        }
    }

    fn failed(code: &str, error: Value) -> Self {
        Self {
            status: if code == "chat_already_connected" {
                "already_connected"
            } else {
                "failed"
            },
            chat_id: None,
            error: Some(error),
        }
    }
}

fn summary(rows: &[Row], outcomes: &[Outcome], dry_run: bool) -> Value {
    let count = |status: &str| outcomes.iter().filter(|o| o.status == status).count();
    let results: Vec<Value> = rows
        .iter()
        .zip(outcomes)
        .map(|(row, outcome)| {
            let mut result = json!({
                "row": row.position.row,
                "telegram_chat_id": row.telegram_chat_id,
                "status": outcome.status,
            });
            if let Some(line) = row.position.line {
                result["line"] = line.into();
            }
            if let Some(id) = outcome.chat_id {
                result["chat_id"] = json!(id);
            }
            if let Some(error) = &outcome.error {
                result["error"] = error.clone();
            }
            result
        })
        .collect();
    let mut body = json!({
        "dry_run": dry_run,
        "already_connected": count("already_connected"),
        "failed": count("failed"),
        "rows": results,
    });
    let done = if dry_run {
        "would_connect"
    } else {
        "connected"
    };
    body[done] = count(done).into();
    body
}

fn json_rows(body: &[u8]) -> Result<Vec<Row>, ApiError> {
    let import: JsonImport = serde_json::from_slice(body).map_err(|error| {
        ApiError::invalid(
            "invalid_body",
            format!("the import is not {{\"bot_id\": ..., \"chats\": [...]}}: {error}"),
        )
    })?;
    let bot_id = parse_id(&import.bot_id, "bot_id")?;
    Ok(import
        .chats
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            let telegram_chat_id = value.get("telegram_chat_id").and_then(Value::as_i64);
            let position = Position {
                row: index + 1,
                line: None,
            };
            let connection = serde_json::from_value::<JsonRow>(value)
                .map_err(|error| ApiError::invalid("invalid_row", error.to_string()))
                .and_then(|row| {
                    Ok(Connection {
                        bot_id,
                        telegram_chat_id: row.telegram_chat_id,
                        title: row.title,
                        basis: row.basis.basis(IMPORT_SOURCE)?,
                        tags: row.tags,
                    })
                })
                .map_err(|error| error.to_json());
            Row {
                position,
                telegram_chat_id,
                connection,
            }
        })
        .collect())
}

fn csv_rows(bot_id: domain::Id, body: &[u8]) -> Result<Vec<Row>, ApiError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(body);
    let headers = reader.headers().map_err(|error| {
        ApiError::invalid(
            "invalid_import",
            format!("the CSV file's header line cannot be read: {error}"),
        )
    })?;
    let mut columns = HashMap::new();
    for (index, name) in headers.iter().enumerate() {
        let name = name.to_ascii_lowercase();
        if !CSV_COLUMNS.contains(&name.as_str()) {
            return Err(ApiError::invalid(
                "invalid_import",
                format!(
                    "the CSV file has a column {name:?} Herald does not know; the columns are {}",
                    CSV_COLUMNS.join(", ")
                ),
            ));
        }
        if columns.insert(name.clone(), index).is_some() {
            return Err(ApiError::invalid(
                "invalid_import",
                format!("the CSV file names the column {name:?} twice"),
            ));
        }
    }
    for required in &CSV_COLUMNS[..2] {
        if !columns.contains_key(*required) {
            return Err(ApiError::invalid(
                "invalid_import",
                format!("the CSV file has no {required:?} column; its header line must name it"),
            ));
        }
    }
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let row = index + 1;
        let (line, record) = match record {
            Ok(record) => (record.position().map(|p| p.line()), record),
            Err(error) => {
                let line = error.position().map(|p| p.line());
                rows.push(Row {
                    position: Position { row, line },
                    telegram_chat_id: None,
                    connection: Err(ApiError::invalid(
                        "invalid_row",
                        format!("this line cannot be read as CSV: {error}"),
                    )
                    .to_json()),
                });
                continue;
            }
        };
        let field = |name: &str| {
            columns
                .get(name)
                .and_then(|i| record.get(*i))
                .filter(|v| !v.is_empty())
        };
        let telegram_chat_id = field("telegram_chat_id").and_then(|v| v.parse::<i64>().ok());
        let connection =
            csv_connection(bot_id, telegram_chat_id, &field).map_err(|error| error.to_json());
        rows.push(Row {
            position: Position { row, line },
            telegram_chat_id,
            connection,
        });
    }
    Ok(rows)
}

fn csv_connection<'a>(
    bot_id: domain::Id,
    telegram_chat_id: Option<i64>,
    field: &impl Fn(&str) -> Option<&'a str>,
) -> Result<Connection, ApiError> {
    let telegram_chat_id = telegram_chat_id.ok_or_else(|| {
        ApiError::invalid(
            "invalid_row",
            "telegram_chat_id must be a whole number (a Telegram chat id)",
        )
    })?;
    let given_at = field("given_at")
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.to_utc())
                .map_err(|_| {
                    ApiError::invalid(
                        "invalid_row",
                        format!("given_at {v:?} is not a time like 2026-11-01T10:00:00Z"),
                    )
                })
        })
        .transpose()?;
    let basis = BasisFields {
        lawful_basis: field("lawful_basis").map(str::to_owned),
        source: field("source").map(str::to_owned),
        given_at,
    };
    Ok(Connection {
        bot_id,
        telegram_chat_id,
        title: field("title").unwrap_or_default().to_owned(),
        basis: basis.basis(IMPORT_SOURCE)?,
        tags: field("tags")
            .map(|t| t.split(';').map(str::to_owned).collect())
            .unwrap_or_default(),
    })
}

/// A chat listed twice in one import fails on its second row, naming the first: otherwise a
/// dry run would promise both and the import would connect one.
fn mark_duplicates(mut rows: Vec<Row>) -> Vec<Row> {
    let mut first = HashMap::new();
    for row in &mut rows {
        let Ok(connection) = &row.connection else {
            continue;
        };
        if let Some(earlier) = first.insert(connection.telegram_chat_id, row.position.row) {
            first.insert(connection.telegram_chat_id, earlier);
            row.connection = Err(ApiError::invalid(
                "duplicate_row",
                format!(
                    "chat {} is listed already in row {earlier}; each chat once per import",
                    connection.telegram_chat_id
                ),
            )
            .to_json());
        }
    }
    rows
}
