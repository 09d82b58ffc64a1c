//! The chat directory (what planning checks about each chat) is kept with the chats' events:
//! whatever changed a chat, through the API or the bot, its row says what replaying its events
//! says, as of its last event; chats without a row are answered from their events, and
//! `migrate` adds their rows.

use std::collections::HashMap;

use domain::{Chat, Id};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use store::DirectoryEntry;
use system_tests::{TestApp, spawn_app};

/// Fails unless `chat_directory` holds exactly a row per chat of `ids`, each equal to what the
/// chat's events replay to and at the chat's last sequence.
async fn assert_directory_agrees_with_events(app: &TestApp, ids: &[Id]) {
    let pool = &app.herald.pool;
    let rows: Vec<(Id, i64, String)> =
        sqlx::query_as("SELECT chat_id, sequence, info::text FROM chat_directory")
            .fetch_all(pool)
            .await
            .unwrap();
    let last: HashMap<String, i64> = sqlx::query_as(
        "SELECT aggregate_id, max(sequence) FROM events WHERE aggregate_type = 'Chat'
          GROUP BY aggregate_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let replayed = store::load_many::<Chat>(pool, ids).await.unwrap();
    let mut seen: Vec<Id> = rows.iter().map(|(id, _, _)| *id).collect();
    seen.sort();
    let mut expected: Vec<Id> = ids.to_vec();
    expected.sort();
    assert_eq!(seen, expected, "one row per chat");
    for (id, sequence, info) in rows {
        let info: Value = serde_json::from_str(&info).unwrap();
        let replay = serde_json::to_value(replayed[&id].directory_entry().unwrap()).unwrap();
        assert_eq!(info, replay, "chat {id}: the row and the replay differ");
        assert_eq!(
            sequence,
            last[&id.to_string()],
            "chat {id}: not at its last event"
        );
    }
}

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_directory_follows_every_change_of_a_chat_and_is_rebuilt_by_migrate() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let w = format!("/v1/workspaces/{ws}");
    let chats = app.import_chats(&ws, &bot, 8_300, 6).await;
    let listener = app.listener();

    // An opt-out through the API, another through the bot's /stop (the listener's pool).
    app.post_ok(
        &format!("{w}/chats/{}/opt-out", chats[0]),
        json!({"reason": "asked by phone"}),
        StatusCode::OK,
    )
    .await;
    let stop = app.person_writes(8_301, "Alice", "/stop").await;
    app.update_handled(stop).await;
    // An approval policy, and tags (a change that leaves the answer as it was).
    let (status, body) = app
        .request(
            Method::PUT,
            &format!("{w}/chats/{}/approval-policy", chats[2]),
            Some(json!({"stages": [{"name": "editor", "roles": ["admin"]}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .request(
            Method::PUT,
            &format!("{w}/chats/{}/tags", chats[3]),
            Some(json!({"tags": ["berlin"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A contact connected before the directory (and before lawful bases): no row, no basis.
    let legacy: Id = app
        .plant_legacy_contact(&ws, &bot, 8_399, "Bob")
        .await
        .parse()
        .unwrap();

    // Planning answers from the rows, and from the events for the chat without one.
    let publish_at = (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
    let plan = |chat: String| json!({"chat_ids": [chat], "text": "hi", "publish_at": publish_at});
    for (chat, refusal) in [
        (&chats[0], "chat_opted_out"),
        (&chats[1], "chat_opted_out"),
        (&legacy.to_string(), "no_lawful_basis"),
    ] {
        let (status, body) = app.post(&format!("{w}/posts"), plan(chat.clone())).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::CONFLICT, Some(refusal)),
            "{body}"
        );
    }
    let (status, body) = app
        .post(&format!("{w}/posts"), plan(chats[4].clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Recording the legacy contact's basis gives it its row.
    let (status, body) = app
        .request(
            Method::PUT,
            &format!("{w}/chats/{legacy}/lawful-basis"),
            Some(json!({"lawful_basis": "consent", "source": "paper form"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .post(&format!("{w}/posts"), plan(legacy.to_string()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let mut all: Vec<Id> = chats.iter().map(|c| c.parse().unwrap()).collect();
    all.push(legacy);
    assert_directory_agrees_with_events(&app, &all).await;

    // Lost rows (a database restored from before the table, say) are added back by migrate.
    sqlx::query("DELETE FROM chat_directory WHERE chat_id = ANY($1)")
        .bind(&all[..4])
        .execute(&app.herald.pool)
        .await
        .unwrap();
    store::migrate(&app.herald.pool).await.unwrap();
    assert_directory_agrees_with_events(&app, &all).await;

    listener.stop().await;
    app.cleanup().await;
}
