//! Workspaces, bots and chats.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::consent::{Basis, LawfulBasis};
use domain::{
    Bot, BotCommand, Chat, ChatCommand, DomainError, Id, InDoubtPolicy, Workspace,
    WorkspaceCommand, parse_bot_token,
};
use platform::Secret;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Context;
use crate::extract::{ApiJson, ApiPath, parse_id};
use crate::{ApiError, AppState};

#[derive(Deserialize)]
pub struct NewWorkspace {
    name: String,
}

/// The creator becomes the new workspace's admin.
pub async fn create_workspace(
    State(state): State<AppState>,
    Context(ctx): Context,
    axum::extract::Extension(me): axum::extract::Extension<identity::Principal>,
    ApiJson(body): ApiJson<NewWorkspace>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = Id::now_v7();
    // The new workspace is the one this request may write (row-level security).
    store::scope::within(
        Some(id),
        state.store.execute::<Workspace>(
            id,
            id,
            WorkspaceCommand::Create { name: body.name },
            &ctx,
        ),
    )
    .await?;
    if me.user_id == identity::bootstrap_admin_id() {
        state.identity().ensure_bootstrap_admin().await?;
    }
    store::scope::within(
        Some(id),
        super::people::grant(&state, id, me.user_id, identity::Role::Admin, &ctx),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

pub async fn get_workspace(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let ws = parse_id(&ws, "workspace id")?;
    let workspace: Workspace = state.store.load(ws).await?;
    let name = workspace
        .name
        .ok_or_else(|| ApiError::not_found("workspace"))?;
    Ok(Json(json!({
        "id": ws,
        "name": name,
        "audience_rules": super::audience::rules_json(workspace.audience_rules.as_ref()),
        "retention": { "audit_days": workspace.audit_days.unwrap_or(domain::MAX_AUDIT_DAYS) },
        "privacy": { "seal_post_texts": workspace.seal_post_texts },
        "rules": workspace.rules,
        "in_doubt": workspace.in_doubt_policy,
    })))
}

/// Resolves the workspace in the path, which must exist.
pub async fn workspace(state: &AppState, ws: &str) -> Result<Id, ApiError> {
    let id = parse_id(ws, "workspace id")?;
    let workspace: Workspace = state.store.load(id).await?;
    if !workspace.exists() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "workspace_not_found",
            format!("workspace {id} does not exist"),
        ));
    }
    Ok(id)
}

#[derive(Deserialize)]
pub struct NewBot {
    name: String,
    token: Secret<String>,
}

pub async fn register_bot(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<NewBot>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let ws = workspace(&state, &ws).await?;
    let telegram_bot_id = parse_bot_token(body.token.expose().trim())?;
    // One Telegram bot, one registration in any workspace: refused early here, and race-free by
    // the event store's identity constraint when two registrations run at once.
    let refusal = |error: store::CommandError| match error {
        store::CommandError::BotAlreadyRegistered {
            telegram_bot_id,
            existing_bot_id,
            workspace_id,
        } => crate::error::bot_already_registered(
            telegram_bot_id,
            (workspace_id == ws).then_some(existing_bot_id),
        ),
        other => other.into(),
    };
    state
        .store
        .ensure_bot_unclaimed(telegram_bot_id)
        .await
        .map_err(refusal)?;
    let encrypted_token = state
        .cipher
        .encrypt(&Secret::new(body.token.expose().trim().to_owned()));
    let id = Id::now_v7();
    let command = BotCommand::Register {
        workspace_id: ws,
        name: body.name,
        telegram_bot_id,
        encrypted_token,
    };
    state
        .store
        .execute::<Bot>(ws, id, command, &ctx)
        .await
        .map_err(refusal)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "telegram_bot_id": telegram_bot_id })),
    ))
}

#[derive(Deserialize)]
pub struct NewChat {
    bot_id: String,
    telegram_chat_id: i64,
    title: String,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(flatten)]
    basis: BasisFields,
}

/// A contact's lawful basis as callers give it: `lawful_basis` (`consent` or
/// `legitimate_interest`), where it comes from (`source`) and when it was given (`given_at`,
/// by default the moment Herald records it).
#[derive(Debug, Default, Deserialize)]
pub struct BasisFields {
    pub lawful_basis: Option<String>,
    pub source: Option<String>,
    pub given_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl BasisFields {
    /// The basis, if one was given; `default_source` names the caller's channel (`api`,
    /// `import`) when `source` is left out.
    pub fn basis(self, default_source: &str) -> Result<Option<Basis>, ApiError> {
        let Some(lawful_basis) = self.lawful_basis else {
            if self.source.is_some() || self.given_at.is_some() {
                return Err(DomainError::InvalidLawfulBasis(
                    "source and given_at describe a lawful_basis; give lawful_basis too".into(),
                )
                .into());
            }
            return Ok(None);
        };
        let now = chrono::Utc::now();
        let basis = Basis::from_caller(
            LawfulBasis::parse(&lawful_basis)?,
            self.source.as_deref().unwrap_or(default_source),
            self.given_at.unwrap_or(now),
            now,
        )?;
        Ok(Some(basis))
    }
}

pub async fn connect_chat(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<NewChat>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let ws = workspace(&state, &ws).await?;
    let connection = Connection {
        bot_id: parse_id(&body.bot_id, "bot_id")?,
        telegram_chat_id: body.telegram_chat_id,
        title: body.title,
        basis: body.basis.basis("api")?,
        tags: body.tags,
    };
    let connected = connect_one(&state, ws, &ctx, connection, Checks::All, Mode::Write).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": connected.id, "type": connected.kind })),
    ))
}

/// Which chats are checked with Telegram before they are connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checks {
    All,
    /// Groups and channels only: an import of many subscribers' private chats would take
    /// a `getChat` each; their first send tells.
    GroupsAndChannels,
}

/// Asks Telegram whether `bot` may post in the chat: its type and title when it may, the
/// refusal (what to do about it) when it may not.
async fn check_with_telegram(
    state: &AppState,
    bot: &Bot,
    telegram_chat_id: i64,
) -> Result<delivery::telegram::ChatCheck, ApiError> {
    let Some(api) = &state.telegram_api else {
        return Ok(delivery::telegram::ChatCheck {
            kind: "unchecked",
            title: None,
            cannot_post: None,
            username: None,
        });
    };
    let token = state.cipher.decrypt(&bot.encrypted_token).map_err(|_| {
        ApiError::internal("the bot's token cannot be decrypted with the configured keys")
    })?;
    let client = delivery::telegram::bot(token.expose(), api).map_err(ApiError::internal)?;
    use delivery::telegram::CheckError;
    let check = delivery::telegram::check_chat(&client, telegram_chat_id, bot.telegram_bot_id)
        .await
        .map_err(|error| match error {
            CheckError::Refused(why) => ApiError::invalid(
                "chat_unreachable",
                format!(
                    "Telegram does not let the bot reach chat {telegram_chat_id} ({why}): add the bot to the group or channel (a person must start the bot first), then connect again"
                ),
            ),
            CheckError::Unavailable(why) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "telegram_unavailable",
                format!("Telegram could not be asked about the chat ({why}); try again shortly"),
            ),
        })?;
    if let Some(why) = &check.cannot_post {
        return Err(ApiError::invalid(
            "bot_cannot_post",
            format!("the bot may not post in chat {telegram_chat_id}: {why}, then connect again"),
        ));
    }
    Ok(check)
}

/// One chat to connect.
#[derive(Clone)]
pub struct Connection {
    pub bot_id: Id,
    pub telegram_chat_id: i64,
    pub title: String,
    pub basis: Option<Basis>,
    pub tags: Vec<String>,
}

/// Whether a connection is made or only checked (an import's dry run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Write,
    DryRun,
}

/// A connection made (or, in a dry run, that would be made).
pub struct Connected {
    pub id: Option<Id>,
    pub kind: Option<String>,
}

/// A connection checked and ready to write: its new id and its command, the title still plain
/// (a contact's is sealed in the transaction that writes it).
pub struct Prepared {
    pub id: Id,
    pub kind: Option<String>,
    command: ChatCommand,
    private: bool,
}

/// Connects one Telegram chat of a bot to workspace `ws`, once Telegram confirmed the bot may
/// post there (as `checks` says); a dry run checks everything and writes nothing.
pub async fn connect_one(
    state: &AppState,
    ws: Id,
    ctx: &store::RequestContext,
    connection: Connection,
    checks: Checks,
    mode: Mode,
) -> Result<Connected, ApiError> {
    let prepared = prepare(state, ws, connection, checks).await?;
    let kind = prepared.kind.clone();
    if mode == Mode::DryRun {
        return Ok(Connected { id: None, kind });
    }
    let id = write(state, ws, ctx, vec![prepared])
        .await
        .pop()
        .expect("one result per connection")?;
    Ok(Connected { id: Some(id), kind })
}

/// Everything a connection must pass before it is written: the chat's rules, the identity
/// constraint (409 naming the chat already connected), the bot, and Telegram's answer.
pub async fn prepare(
    state: &AppState,
    ws: Id,
    connection: Connection,
    checks: Checks,
) -> Result<Prepared, ApiError> {
    let Connection {
        bot_id,
        telegram_chat_id,
        title,
        basis,
        tags,
    } = connection;
    Chat::check_connection(telegram_chat_id, &title)?;
    Chat::check_basis(telegram_chat_id, basis.as_ref())?;
    Chat::check_tags(&tags)?;
    // One Telegram chat, one connected chat per bot (409 naming it): refused early here, and
    // race-free by the event store's identity constraint.
    state
        .store
        .ensure_chat_unclaimed(ws, bot_id, telegram_chat_id)
        .await?;
    let bot: Bot = state.store.load(bot_id).await?;
    if bot.workspace_id != Some(ws) {
        return Err(DomainError::UnknownBot(bot_id).into());
    }
    let checked = telegram_chat_id < 0 || checks == Checks::All;
    let (kind, title, username) = if checked {
        let check = check_with_telegram(state, &bot, telegram_chat_id).await?;
        let kind = (check.kind != "unchecked").then(|| check.kind.to_owned());
        (kind, check.title.unwrap_or(title), check.username)
    } else {
        (None, title, None)
    };
    let command = ChatCommand::Connect {
        workspace_id: ws,
        bot_id,
        telegram_chat_id,
        title,
        kind: kind.clone(),
        basis,
        tags,
        username,
    };
    Ok(Prepared {
        id: Id::now_v7(),
        kind,
        command,
        private: domain::consent::is_private(telegram_chat_id),
    })
}

/// Writes prepared connections: one on its own (the command's own transaction), many in one
/// transaction (one commit for a whole batch of an import); a result per connection, in order.
/// When one of a batch spoils it (another request connected the same chat a moment ago), each
/// is written on its own, so the others still go in and that one gets its own answer.
pub async fn write(
    state: &AppState,
    ws: Id,
    ctx: &store::RequestContext,
    prepared: Vec<Prepared>,
) -> Vec<Result<Id, ApiError>> {
    if prepared.len() > 1
        && let Ok(results) = write_together(state, ws, ctx, &prepared).await
    {
        return results;
    }
    let mut results = Vec::with_capacity(prepared.len());
    for one in prepared {
        results.push(write_alone(state, ws, ctx, one).await);
    }
    results
}

/// One connection through the command's own transaction: a request holds one pool connection
/// at a time, however many connect at once.
async fn write_alone(
    state: &AppState,
    ws: Id,
    ctx: &store::RequestContext,
    one: Prepared,
) -> Result<Id, ApiError> {
    let mut command = one.command;
    // A person's name is sealed under a key of their own, so erasing them needs no rewrite.
    if let (true, ChatCommand::Connect { title, .. }) = (one.private, &mut command) {
        let mut conn = state.pool.acquire().await.map_err(ApiError::internal)?;
        *title = store::subjects::seal(&mut conn, &state.cipher, ws, one.id, title)
            .await
            .map_err(ApiError::internal)?;
    }
    state
        .store
        .execute::<Chat>(ws, one.id, command, ctx)
        .await?;
    Ok(one.id)
}

async fn write_together(
    state: &AppState,
    ws: Id,
    ctx: &store::RequestContext,
    prepared: &[Prepared],
) -> Result<Vec<Result<Id, ApiError>>, ApiError> {
    let mut tx = state.pool.begin().await.map_err(ApiError::internal)?;
    let mut commands = Vec::with_capacity(prepared.len());
    for one in prepared {
        let mut command = one.command.clone();
        // Sealed on the batch's transaction: the keys commit with the events, or neither does.
        if let (true, ChatCommand::Connect { title, .. }) = (one.private, &mut command) {
            *title = store::subjects::seal(&mut tx, &state.cipher, ws, one.id, title)
                .await
                .map_err(ApiError::internal)?;
        }
        commands.push((ws, one.id, command));
    }
    let results = state
        .store
        .execute_on::<Chat>(&mut tx, commands, ctx)
        .await?;
    tx.commit().await.map_err(ApiError::internal)?;
    Ok(results
        .into_iter()
        .zip(prepared)
        .map(|(result, one)| result.map(|_| one.id).map_err(ApiError::from))
        .collect())
}

#[derive(Deserialize)]
pub struct OptOut {
    #[serde(default)]
    reason: String,
}

pub async fn opt_out(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<OptOut>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let id = parse_id(&id, "chat id")?;
    let chat: Chat = state.store.load(id).await?;
    if chat.workspace_id != Some(ws) {
        return Err(ApiError::not_found("chat"));
    }
    state
        .store
        .execute::<Chat>(
            ws,
            id,
            ChatCommand::OptOut {
                reason: body.reason,
                update_id: None,
            },
            &ctx,
        )
        .await?;
    Ok(Json(json!({ "id": id, "opted_out": true })))
}

/// Records (or replaces) a contact's lawful basis: how an operator fixes a contact connected
/// without one. Refused for a person who opted out: only their own `/start` subscribes them again.
pub async fn set_lawful_basis(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<BasisFields>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let (id, _) = chat_of(&state, ws, &id).await?;
    let Some(basis) = body.basis("api")? else {
        return Err(DomainError::LawfulBasisRequired.into());
    };
    state
        .store
        .execute::<Chat>(ws, id, ChatCommand::RecordBasis { basis }, &ctx)
        .await?;
    let (_, chat) = chat_of(&state, ws, &id.to_string()).await?;
    Ok(Json(chat_json(id, &chat, &opener(&state, [&chat]).await?)))
}

/// Filters and cursor of a chat list.
#[derive(Debug, Deserialize)]
pub struct ChatQuery {
    bot_id: Option<String>,
    telegram_chat_id: Option<i64>,
    /// The last chat id of the previous page.
    after: Option<String>,
    limit: Option<i64>,
}

const MAX_CHATS_PAGE: i64 = 500;

/// `GET .../chats`: the workspace's connected chats (contacts, groups, channels) in the order
/// they were connected, each as it stands now (read from its events).
pub async fn list_chats(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    crate::extract::ApiQuery(query): crate::extract::ApiQuery<ChatQuery>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let bot_id = query
        .bot_id
        .as_deref()
        .map(|b| parse_id(b, "bot_id"))
        .transpose()?;
    let after = query
        .after
        .as_deref()
        .map(|a| parse_id(a, "after"))
        .transpose()?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_CHATS_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be 1 to {MAX_CHATS_PAGE}"),
        ));
    }
    // The identities are written with the chats' events, in the same transaction: this list
    // is as fresh as the chats themselves. Chat ids are UUIDv7: their order is connection order.
    let ids: Vec<Id> = sqlx::query_scalar(
        "SELECT chat_id FROM telegram_chat_identities
          WHERE workspace_id = $1
            AND ($2::uuid IS NULL OR bot_id = $2)
            AND ($3::bigint IS NULL OR telegram_chat_id = $3)
            AND ($4::uuid IS NULL OR chat_id > $4)
          GROUP BY chat_id ORDER BY chat_id LIMIT $5",
    )
    .bind(ws)
    .bind(bot_id)
    .bind(query.telegram_chat_id)
    .bind(after)
    .bind(limit + 1)
    .fetch_all(&state.pool)
    .await
    .map_err(ApiError::internal)?;
    let more = ids.len() as i64 > limit;
    let page = &ids[..ids.len().min(limit as usize)];
    let chats = store::load_many::<Chat>(&state.pool, page).await?;
    let opener = opener(&state, chats.values()).await?;
    let items: Vec<Value> = page
        .iter()
        .filter_map(|id| chats.get(id).map(|chat| chat_json(*id, chat, &opener)))
        .collect();
    Ok(Json(json!({
        "chats": items,
        "next_after": if more { page.last().map(|id| json!(id)) } else { None },
    })))
}

#[derive(Deserialize)]
pub struct Tags {
    tags: Vec<String>,
}

/// `PUT .../chats/{id}/tags`: replaces the chat's tags (what segments select by).
pub async fn set_tags(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<Tags>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let (id, _) = chat_of(&state, ws, &id).await?;
    let tags = Chat::check_tags(&body.tags)?;
    state
        .store
        .execute::<Chat>(ws, id, ChatCommand::SetTags { tags: tags.clone() }, &ctx)
        .await?;
    Ok(Json(json!({ "id": id, "tags": tags })))
}

/// A connected chat as it stands now (read from its events, not a projection).
pub async fn get_chat(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let (id, chat) = chat_of(&state, ws, &id).await?;
    let mut body = chat_json(id, &chat, &opener(&state, [&chat]).await?);
    let hold = delivery::queue::stats::hold_of(&state.pool, id)
        .await
        .map_err(ApiError::internal)?;
    // Deliveries to it wait: quiet hours, a cap, or Telegram's flood control.
    body["waiting"] = hold.map_or(
        Value::Null,
        |(until, reason)| json!({ "until": until, "reason": reason }),
    );
    Ok(Json(body))
}

/// Opens the chats' sealed titles (a contact's name is sealed under its own key).
pub(super) async fn opener<'a>(
    state: &AppState,
    chats: impl IntoIterator<Item = &'a Chat>,
) -> Result<store::subjects::Opener, ApiError> {
    store::subjects::Opener::for_values(
        &state.pool,
        &state.cipher,
        chats.into_iter().map(|c| c.title.as_str()),
    )
    .await
    .map_err(ApiError::internal)
}

pub(super) fn chat_json(id: Id, chat: &Chat, opener: &store::subjects::Opener) -> Value {
    json!({
        "id": id,
        "bot_id": chat.bot_id,
        "telegram_chat_id": chat.telegram_chat_id,
        "title": opener.open(&chat.title),
        "username": chat.username,
        "erased": chat.erased,
        "type": chat.kind,
        "contact": domain::consent::is_private(chat.telegram_chat_id),
        "lawful_basis": chat.basis.as_ref().map(|b| json!({
            "basis": b.basis.as_str(),
            "source": b.source,
            "given_at": b.given_at,
        })),
        "targetable": chat.has_lawful_basis() && !chat.opted_out && chat.blocked.is_none(),
        "opted_out": chat.opted_out,
        "blocked": chat.blocked,
        "hourly_cap": chat.hourly_cap,
        "hourly_cap_in_force": chat.effective_hourly_cap(),
        "tags": chat.tags,
        "audience_rules": super::audience::rules_json(chat.audience_rules.as_ref()),
    })
}

/// `POST .../chats/{id}/erase`: the person's data goes (their sealed name's key is destroyed;
/// events stay as they were and show it erased), and they are opted out. Safe to repeat.
pub async fn erase(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    Context(ctx): Context,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let (id, _) = chat_of(&state, ws, &id).await?;
    state
        .store
        .execute::<Chat>(ws, id, ChatCommand::Erase, &ctx)
        .await?;
    store::subjects::erase(&state.pool, id)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(json!({ "id": id, "erased": true, "opted_out": true })))
}

/// Loads a bot of the workspace in the path (404 otherwise).
async fn bot_of(state: &AppState, ws: Id, id: &str) -> Result<(Id, Bot), ApiError> {
    let id = parse_id(id, "bot id")?;
    let bot: Bot = state.store.load(id).await?;
    if bot.workspace_id != Some(ws) {
        return Err(ApiError::not_found("bot"));
    }
    Ok((id, bot))
}

/// Loads a chat of the workspace in the path (404 otherwise).
pub async fn chat_of(state: &AppState, ws: Id, id: &str) -> Result<(Id, Chat), ApiError> {
    let id = parse_id(id, "chat id")?;
    let chat: Chat = state.store.load(id).await?;
    if chat.workspace_id != Some(ws) {
        return Err(ApiError::not_found("chat"));
    }
    Ok((id, chat))
}

#[derive(Deserialize)]
pub struct NewToken {
    token: Secret<String>,
}

/// Registers a new token for a bot (after BotFather revoked the old one); resumes a paused bot.
pub async fn replace_token(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<NewToken>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let (id, _) = bot_of(&state, ws, &id).await?;
    let token = body.token.expose().trim().to_owned();
    let telegram_bot_id = parse_bot_token(&token)?;
    let encrypted_token = state.cipher.encrypt(&Secret::new(token));
    let command = BotCommand::ReplaceToken {
        telegram_bot_id,
        encrypted_token,
    };
    state.store.execute::<Bot>(ws, id, command, &ctx).await?;
    Ok(Json(json!({ "id": id, "paused": false })))
}

#[derive(Deserialize)]
pub struct BotLimits {
    /// `null` restores the default; absent leaves it unchanged.
    #[serde(default, with = "double_option")]
    hourly_cap: Option<Option<u32>>,
    allow_paid_broadcast: Option<bool>,
}

/// Sets a bot's hourly cap and paid-broadcast opt-in.
pub async fn set_bot_limits(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<BotLimits>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let (id, _) = bot_of(&state, ws, &id).await?;
    if let Some(cap) = body.hourly_cap {
        state
            .store
            .execute::<Bot>(ws, id, BotCommand::SetHourlyCap { cap }, &ctx)
            .await?;
    }
    if let Some(allowed) = body.allow_paid_broadcast {
        state
            .store
            .execute::<Bot>(ws, id, BotCommand::SetPaidBroadcast { allowed }, &ctx)
            .await?;
    }
    let bot: Bot = state.store.load(id).await?;
    Ok(Json(json!({
        "id": id,
        "hourly_cap": bot.effective_hourly_cap(),
        "allow_paid_broadcast": bot.allow_paid_broadcast,
    })))
}

#[derive(Deserialize)]
pub struct ChatLimits {
    #[serde(default, with = "double_option")]
    hourly_cap: Option<Option<u32>>,
}

/// Sets a chat's hourly cap (never above Telegram's limit for the chat).
pub async fn set_chat_limits(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<ChatLimits>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let (id, _) = chat_of(&state, ws, &id).await?;
    if let Some(cap) = body.hourly_cap {
        state
            .store
            .execute::<Chat>(ws, id, ChatCommand::SetHourlyCap { cap }, &ctx)
            .await?;
    }
    let chat: Chat = state.store.load(id).await?;
    Ok(Json(
        json!({ "id": id, "hourly_cap": chat.effective_hourly_cap() }),
    ))
}

#[derive(Deserialize)]
pub struct ApprovalPolicyBody {
    /// `null`: back to the standard review.
    stages: Option<Vec<domain::approval::Stage>>,
}

fn policy_json(policy: Option<&domain::approval::ApprovalPolicy>) -> Value {
    let standard = policy.is_none();
    let policy = policy
        .cloned()
        .unwrap_or_else(domain::approval::ApprovalPolicy::standard);
    json!({ "stages": policy.stages, "standard": standard })
}

/// Who must approve posts to the chat from now on (posts already planned keep their stages).
pub async fn set_approval_policy(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<ApprovalPolicyBody>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let (id, _) = chat_of(&state, ws, &id).await?;
    let policy = body
        .stages
        .map(|stages| domain::approval::ApprovalPolicy { stages });
    state
        .store
        .execute::<Chat>(ws, id, ChatCommand::SetApprovalPolicy { policy }, &ctx)
        .await?;
    let chat: Chat = state.store.load(id).await?;
    Ok(Json(policy_json(chat.approval_policy.as_ref())))
}

pub async fn approval_policy(
    State(state): State<AppState>,
    ApiPath((ws, id)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let (_, chat) = chat_of(&state, ws, &id).await?;
    Ok(Json(policy_json(chat.approval_policy.as_ref())))
}

#[derive(Deserialize)]
pub struct Policy {
    in_doubt: String,
}

/// Chooses what delivery does with in-doubt sends: "flag" (default) or "resend".
pub async fn set_policy(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<Policy>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let policy = match body.in_doubt.as_str() {
        "flag" => InDoubtPolicy::Flag,
        "resend" => InDoubtPolicy::Resend,
        other => {
            return Err(ApiError::invalid(
                "invalid_policy",
                format!(
                    "in_doubt {other:?} is not a policy; use \"flag\" (an operator decides) or \"resend\" (may post twice)"
                ),
            ));
        }
    };
    state
        .store
        .execute::<Workspace>(ws, ws, WorkspaceCommand::SetInDoubtPolicy { policy }, &ctx)
        .await?;
    Ok(Json(json!({ "id": ws, "in_doubt": body.in_doubt })))
}

#[derive(Deserialize)]
pub struct Retention {
    audit_days: Option<u32>,
}

/// `PUT .../retention`: keep the workspace's audit journal for fewer days than the product's
/// 12 months (`null`: 12 months). Entries older than that are removed within the hour.
pub async fn set_retention(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<Retention>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let command = WorkspaceCommand::SetRetention {
        audit_days: body.audit_days,
    };
    state
        .store
        .execute::<Workspace>(ws, ws, command, &ctx)
        .await?;
    Ok(Json(json!({
        "id": ws,
        "audit_days": body.audit_days.unwrap_or(domain::MAX_AUDIT_DAYS),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Privacy {
    seal_post_texts: bool,
}

/// `PUT .../privacy`: whether posts planned from now on keep their texts and comments sealed
/// under a key of each post's own, so that `POST .../posts/{id}/erase` can erase them from the
/// whole history (decision 0013). Posts planned before keep their texts as they are.
pub async fn set_privacy(
    State(state): State<AppState>,
    ApiPath(ws): ApiPath<String>,
    Context(ctx): Context,
    ApiJson(body): ApiJson<Privacy>,
) -> Result<Json<Value>, ApiError> {
    let ws = workspace(&state, &ws).await?;
    let command = WorkspaceCommand::SetPostTextSealing {
        sealed: body.seal_post_texts,
    };
    state
        .store
        .execute::<Workspace>(ws, ws, command, &ctx)
        .await?;
    Ok(Json(
        json!({ "id": ws, "seal_post_texts": body.seal_post_texts }),
    ))
}

/// Distinguishes an absent field from an explicit `null`.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        d: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }
}
