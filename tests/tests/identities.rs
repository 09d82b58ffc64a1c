//! One Telegram identity, one registration: a Telegram chat is connected once per bot and a
//! Telegram bot is registered once (in any workspace), enforced by PostgreSQL so that
//! concurrent requests cannot both succeed, and kept through group -> supergroup migrations.

use std::time::Duration;

use reqwest::StatusCode;
use sandbox::{Fault, FaultRule};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use system_tests::{AppOptions, BOT_TOKEN, TestApp, spawn_app, spawn_app_with};

/// Another token of the bot of [`BOT_TOKEN`] (same bot id 123456, another secret).
const SAME_BOT_OTHER_TOKEN: &str = "123456:BBHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";
const OTHER_BOT_TOKEN: &str = "654321:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw";

fn without_delivery() -> AppOptions {
    AppOptions {
        delivery: false,
        ..Default::default()
    }
}

async fn workspace(app: &TestApp, name: &str) -> String {
    app.post_ok("/v1/workspaces", json!({"name": name}), StatusCode::CREATED)
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn register(app: &TestApp, ws: &str, token: &str) -> (StatusCode, Value) {
    app.post(
        &format!("/v1/workspaces/{ws}/bots"),
        json!({"name": "bot", "token": token}),
    )
    .await
}

async fn connect(app: &TestApp, ws: &str, bot: &str, telegram_chat_id: i64) -> (StatusCode, Value) {
    app.post(
        &format!("/v1/workspaces/{ws}/chats"),
        system_tests::chat_body(bot, telegram_chat_id, "a chat"),
    )
    .await
}

async fn count_events(app: &TestApp, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(&app.herald.pool)
        .await
        .unwrap()
}

/// Asserts a 409 `chat_already_connected` that names `existing`, in the message and the field.
fn assert_chat_taken(status: StatusCode, body: &Value, existing: &str) {
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("chat_already_connected")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(existing), "{message}");
    assert_eq!(body["error"]["existing_chat_id"], existing, "{body}");
}

/// A connection of its own to the app's database (outside the app's pool).
async fn own_connection(app: &TestApp) -> PgConnection {
    PgConnection::connect(app.herald.config.database_url.expose())
        .await
        .unwrap()
}

/// Number of sessions waiting for a lock on `table`.
async fn lock_waiters(app: &TestApp, table: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE relation = $1::regclass AND NOT granted",
    )
    .bind(table)
    .fetch_one(&app.herald.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_the_same_chat_twice_is_a_409_naming_the_first() {
    let app = spawn_app_with(without_delivery()).await;
    let (ws, bot) = app.workspace_with_bot().await;
    let first = app.connect_chat(&ws, &bot, 1001).await;
    let group = app.connect_chat(&ws, &bot, -4242).await;

    let (status, body) = connect(&app, &ws, &bot, 1001).await;
    assert_chat_taken(status, &body, &first);
    let (status, body) = connect(&app, &ws, &bot, -4242).await;
    assert_chat_taken(status, &body, &group);
    assert_eq!(
        count_events(&app, "ChatConnected").await,
        2,
        "a refused connect stores nothing"
    );

    // The same Telegram chat under another bot is another identity (each bot has its own
    // conversation with it).
    let other_bot = register(&app, &ws, OTHER_BOT_TOKEN).await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = connect(&app, &ws, &other_bot, 1001).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_ne!(body["id"], first.as_str());

    // Mistakes of the caller keep their own answers.
    let (status, body) = connect(&app, &ws, &bot, 0).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("invalid_telegram_chat_id")
        ),
        "{body}"
    );
    // A bot of another workspace is unknown there, whatever chats it has (nothing leaks).
    let other_ws = workspace(&app, "Other").await;
    let (status, body) = connect(&app, &other_ws, &bot, 1001).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "unknown_bot", "{body}");
    assert!(!body.to_string().contains(&first), "{body}");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telegram_bot_is_registered_once_in_any_workspace() {
    let app = spawn_app_with(without_delivery()).await;
    let (ws, bot) = app.workspace_with_bot().await;

    for token in [BOT_TOKEN, SAME_BOT_OTHER_TOKEN] {
        let (status, body) = register(&app, &ws, token).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("bot_already_registered")),
            "{body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&bot),
            "names the bot of this workspace: {message}"
        );
        assert!(message.contains("123456"), "{message}");
        assert_eq!(body["error"]["existing_bot_id"], bot.as_str(), "{body}");
    }

    // In another workspace: refused too, without naming the other tenant's bot.
    let other_ws = workspace(&app, "Other").await;
    for token in [BOT_TOKEN, SAME_BOT_OTHER_TOKEN] {
        let (status, body) = register(&app, &other_ws, token).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("bot_already_registered")),
            "{body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("elsewhere"), "{message}");
        assert!(!body.to_string().contains(&bot), "leaks the bot id: {body}");
        assert!(
            !body.to_string().contains(&ws),
            "leaks the workspace: {body}"
        );
        assert!(body["error"].get("existing_bot_id").is_none(), "{body}");
    }
    assert_eq!(count_events(&app, "BotRegistered").await, 1);

    // Another Telegram bot registers fine; a bot's token cannot be swapped for another bot's,
    // while a new token of the same bot is accepted.
    let (status, body) = register(&app, &other_ws, OTHER_BOT_TOKEN).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/workspaces/{ws}/bots/{bot}/token"),
            Some(json!({"token": OTHER_BOT_TOKEN})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("token_for_another_bot")
        ),
        "{body}"
    );
    let (status, body) = app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/workspaces/{ws}/bots/{bot}/token"),
            Some(json!({"token": SAME_BOT_OTHER_TOKEN})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_connects_of_one_chat_make_one_chat() {
    let app = spawn_app_with(without_delivery()).await;
    let (ws, bot) = app.workspace_with_bot().await;
    let answers =
        futures::future::join_all((0..20).map(|_| connect(&app, &ws, &bot, -1_001_234_567_890)))
            .await;
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    let winner = created[0]["id"].as_str().unwrap();
    for (status, body) in answers
        .iter()
        .filter(|(status, _)| *status != StatusCode::CREATED)
    {
        assert_chat_taken(*status, body, winner);
    }
    assert_eq!(count_events(&app, "ChatConnected").await, 1);
    app.cleanup().await;
}

/// The pre-check in the API cannot stop requests that all check before any commits: the
/// database does. Writers to the identity tables are held back until every request has passed
/// the pre-check and is inserting its event; exactly one commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_duplicates_that_passed_the_pre_check_together() {
    const N: usize = 8;
    let app = spawn_app_with(without_delivery()).await;
    let ws = workspace(&app, "Acme").await;
    let other_ws = workspace(&app, "Other").await;
    let bot = register(&app, &ws, OTHER_BOT_TOKEN).await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Chats.
    let mut gate = own_connection(&app).await;
    sqlx::query("BEGIN").execute(&mut gate).await.unwrap();
    sqlx::query("LOCK TABLE telegram_chat_identities IN SHARE MODE")
        .execute(&mut gate)
        .await
        .unwrap();
    let requests = futures::future::join_all((0..N).map(|_| connect(&app, &ws, &bot, 777)));
    let release = async {
        app.eventually(
            "every connect waiting on the identity table",
            Duration::from_secs(10),
            || async {
                (lock_waiters(&app, "telegram_chat_identities").await == N as i64).then_some(())
            },
        )
        .await;
        sqlx::query("COMMIT").execute(&mut gate).await.unwrap();
    };
    let (answers, ()) = tokio::join!(requests, release);
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    let winner = created[0]["id"].as_str().unwrap();
    for (status, body) in answers
        .iter()
        .filter(|(status, _)| *status != StatusCode::CREATED)
    {
        assert_chat_taken(*status, body, winner);
    }
    assert_eq!(count_events(&app, "ChatConnected").await, 1);

    // Bots, registered at once from two workspaces.
    sqlx::query("BEGIN").execute(&mut gate).await.unwrap();
    sqlx::query("LOCK TABLE telegram_bot_identities IN SHARE MODE")
        .execute(&mut gate)
        .await
        .unwrap();
    let app_ref = &app;
    let requests = futures::future::join_all((0..N).map(|i| {
        let app = app_ref;
        let ws = if i % 2 == 0 { &ws } else { &other_ws };
        let token = if i % 3 == 0 {
            BOT_TOKEN
        } else {
            SAME_BOT_OTHER_TOKEN
        };
        async move { (ws.clone(), register(app, ws, token).await) }
    }));
    let release = async {
        app.eventually(
            "every registration waiting on the identity table",
            Duration::from_secs(10),
            || async {
                (lock_waiters(&app, "telegram_bot_identities").await == N as i64).then_some(())
            },
        )
        .await;
        sqlx::query("COMMIT").execute(&mut gate).await.unwrap();
    };
    let (answers, ()) = tokio::join!(requests, release);
    let created: Vec<&(String, (StatusCode, Value))> = answers
        .iter()
        .filter(|(_, (status, _))| *status == StatusCode::CREATED)
        .collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    let (winner_ws, (_, winner)) = created[0];
    let winner = winner["id"].as_str().unwrap();
    for (caller_ws, (status, body)) in answers
        .iter()
        .filter(|(_, (status, _))| *status != StatusCode::CREATED)
    {
        assert_eq!(
            (*status, body["error"]["code"].as_str()),
            (StatusCode::CONFLICT, Some("bot_already_registered")),
            "{body}"
        );
        if caller_ws == winner_ws {
            assert_eq!(body["error"]["existing_bot_id"], winner, "{body}");
        } else {
            assert!(
                !body.to_string().contains(winner),
                "leaks the bot id: {body}"
            );
        }
    }
    assert_eq!(count_events(&app, "BotRegistered").await, 2);
    app.cleanup().await;
}

/// Decision: a migrated group keeps its former Telegram id as well as its new one. Telegram
/// answers every send to the former id with "migrated to <new id>", so a chat connected there
/// again would be moved by delivery onto the same supergroup: a second copy of one identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_group_holds_its_new_id_and_keeps_its_former_one() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, -12001).await;
    let new_id = -1_001_200_120_001;
    app.sandbox
        .inject(FaultRule::new(Fault::Migrate { to_chat_id: new_id }).for_chat(-12001));
    let post = app.plan(&ws, &[&chat], "moved", Duration::ZERO).await;
    app.approve(&ws, &post).await;
    let settled = app.settled(&ws, &post, Duration::from_secs(15)).await;
    assert_eq!(settled["state"], "delivered", "{settled}");
    assert_eq!(app.sandbox.messages(Some(new_id)).len(), 1);
    assert_eq!(count_events(&app, "ChatMigrated").await, 1);

    for telegram_id in [new_id, -12001] {
        let (status, body) = connect(&app, &ws, &bot, telegram_id).await;
        assert_chat_taken(status, &body, &chat);
    }
    // Another bot's conversation with the supergroup is its own identity.
    let other_bot = register(&app, &ws, OTHER_BOT_TOKEN).await.1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = connect(&app, &ws, &other_bot, new_id).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let conflicts: i64 = sqlx::query_scalar("SELECT count(*) FROM telegram_identity_conflicts")
        .fetch_one(&app.herald.pool)
        .await
        .unwrap();
    assert_eq!(conflicts, 0);
    app.cleanup().await;
}

/// A group migrates onto a supergroup that is already connected as another chat: the migration
/// is recorded and delivery goes on (a migration is Telegram's fact, refusing it would only
/// break delivery); the supergroup's identity stays with the chat that had it, the migrated
/// chat keeps its former id, and the pair is flagged for an operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_onto_a_connected_chat_is_recorded_and_flagged() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let group = app.connect_chat(&ws, &bot, -13001).await;
    let supergroup_id = -1_001_300_130_001;
    let supergroup = app.connect_chat(&ws, &bot, supergroup_id).await;
    app.sandbox.inject(
        FaultRule::new(Fault::Migrate {
            to_chat_id: supergroup_id,
        })
        .for_chat(-13001),
    );
    let post = app.plan(&ws, &[&group], "moved", Duration::ZERO).await;
    app.approve(&ws, &post).await;
    let settled = app.settled(&ws, &post, Duration::from_secs(15)).await;
    assert_eq!(settled["state"], "delivered", "{settled}");
    assert_eq!(app.sandbox.messages(Some(supergroup_id)).len(), 1);
    assert_eq!(count_events(&app, "ChatMigrated").await, 1);

    let holders: Vec<(i64, String, Option<i64>)> = sqlx::query_as(
        "SELECT telegram_chat_id, chat_id::text, migrated_to FROM telegram_chat_identities
          ORDER BY telegram_chat_id",
    )
    .fetch_all(&app.herald.pool)
    .await
    .unwrap();
    assert_eq!(
        holders,
        vec![
            (supergroup_id, supergroup.clone(), None),
            (-13001, group.clone(), Some(supergroup_id)),
        ]
    );
    let conflicts: Vec<(String, i64, String, String, String)> = sqlx::query_as(
        "SELECT kind, telegram_id, aggregate_id::text, existing_id::text, event_type
           FROM telegram_identity_conflicts",
    )
    .fetch_all(&app.herald.pool)
    .await
    .unwrap();
    assert_eq!(
        conflicts,
        vec![(
            "chat".into(),
            supergroup_id,
            group.clone(),
            supergroup.clone(),
            "ChatMigrated".into()
        )]
    );
    let (status, body) = connect(&app, &ws, &bot, supergroup_id).await;
    assert_chat_taken(status, &body, &supergroup);
    let (status, body) = connect(&app, &ws, &bot, -13001).await;
    assert_chat_taken(status, &body, &group);
    app.cleanup().await;
}

/// Identities already in the history when migration 0009 runs are claimed in commit order; the
/// duplicates the history holds are flagged, not fatal, and the migration still applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_backfills_identities_and_flags_existing_duplicates() {
    let app = spawn_app_with(without_delivery()).await;
    let (ws, bot) = app.workspace_with_bot().await;
    let other_ws = workspace(&app, "Other").await;
    let chat = app.connect_chat(&ws, &bot, 1001).await;

    // Back to the schema before 0009, and a history with the duplicates it allowed.
    let pool = &app.herald.pool;
    for statement in [
        "DROP TRIGGER events_claim_identity ON events",
        "DROP FUNCTION herald_events_claim_identity()",
        "DROP FUNCTION herald_claim_identity(text, text, bigint, text, json, boolean)",
        "DROP TABLE telegram_bot_identities, telegram_chat_identities, telegram_identity_conflicts",
        "DELETE FROM _sqlx_migrations WHERE version = 9",
    ] {
        sqlx::query(statement).execute(pool).await.unwrap();
    }
    let duplicate_bot = uuid::Uuid::now_v7().to_string();
    let duplicate_chat = uuid::Uuid::now_v7().to_string();
    let group = uuid::Uuid::now_v7().to_string();
    let late = uuid::Uuid::now_v7().to_string();
    let legacy = [
        (
            "Bot",
            &duplicate_bot,
            1,
            "BotRegistered",
            json!({"BotRegistered": {"workspace_id": other_ws, "name": "copy", "telegram_bot_id": 123456, "encrypted_token": "v1:x"}}),
        ),
        (
            "Chat",
            &duplicate_chat,
            1,
            "ChatConnected",
            json!({"ChatConnected": {"workspace_id": ws, "bot_id": bot, "telegram_chat_id": 1001, "title": "copy"}}),
        ),
        (
            "Chat",
            &group,
            1,
            "ChatConnected",
            json!({"ChatConnected": {"workspace_id": ws, "bot_id": bot, "telegram_chat_id": -50, "title": "group"}}),
        ),
        (
            "Chat",
            &group,
            2,
            "ChatMigrated",
            json!({"ChatMigrated": {"from_telegram_chat_id": -50, "to_telegram_chat_id": -1_000_000_000_050_i64}}),
        ),
        (
            "Chat",
            &late,
            1,
            "ChatConnected",
            json!({"ChatConnected": {"workspace_id": ws, "bot_id": bot, "telegram_chat_id": -1_000_000_000_050_i64, "title": "supergroup"}}),
        ),
    ];
    for (n, (aggregate_type, id, sequence, event_type, payload)) in legacy.iter().enumerate() {
        let metadata = json!({
            "actor": "admin",
            "correlation_id": id,
            "causation_id": id,
            "workspace_id": ws,
            // Later than the events written through the API, in this order.
            "occurred_at": (chrono::Utc::now() + chrono::TimeDelta::seconds(n as i64 + 1)).to_rfc3339(),
        });
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ($1, $2, $3, $4, '1', $5, $6)",
        )
        .bind(aggregate_type)
        .bind(id.as_str())
        .bind(*sequence as i64)
        .bind(event_type)
        .bind(payload)
        .bind(metadata)
        .execute(pool)
        .await
        .unwrap();
    }

    // Starting Herald applies 0009 again, over that history.
    let again = herald::Herald::connect(app.herald.config.clone(), app.herald.cipher.clone())
        .await
        .expect("the migration applies over a history with duplicates");
    let bots: Vec<(i64, String)> =
        sqlx::query_as("SELECT telegram_bot_id, bot_id::text FROM telegram_bot_identities")
            .fetch_all(&again.pool)
            .await
            .unwrap();
    assert_eq!(bots, vec![(123456, bot.clone())]);
    let chats: Vec<(i64, String, Option<i64>)> = sqlx::query_as(
        "SELECT telegram_chat_id, chat_id::text, migrated_to FROM telegram_chat_identities
          ORDER BY telegram_chat_id",
    )
    .fetch_all(&again.pool)
    .await
    .unwrap();
    assert_eq!(
        chats,
        vec![
            (-1_000_000_000_050, group.clone(), None),
            (-50, group.clone(), Some(-1_000_000_000_050)),
            (1001, chat.clone(), None),
        ]
    );
    let conflicts: Vec<(String, i64, String, String, String)> = sqlx::query_as(
        "SELECT kind, telegram_id, aggregate_id::text, existing_id::text, event_type
           FROM telegram_identity_conflicts ORDER BY id",
    )
    .fetch_all(&again.pool)
    .await
    .unwrap();
    assert_eq!(
        conflicts,
        vec![
            (
                "bot".into(),
                123456,
                duplicate_bot,
                bot.clone(),
                "BotRegistered".into()
            ),
            (
                "chat".into(),
                1001,
                duplicate_chat,
                chat.clone(),
                "ChatConnected".into()
            ),
            (
                "chat".into(),
                -1_000_000_000_050,
                late,
                group.clone(),
                "ChatConnected".into()
            ),
        ]
    );

    // And the trigger is back: duplicates are refused again.
    let (status, body) = connect(&app, &ws, &bot, 1001).await;
    assert_chat_taken(status, &body, &chat);
    let (status, body) = register(&app, &ws, BOT_TOKEN).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    again.pool.close().await;
    app.cleanup().await;
}
