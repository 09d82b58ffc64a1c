//! Connecting chats in bulk: a result per row, the same rules as one connect, nothing stops on
//! a bad row.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use system_tests::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_import_connects_every_good_row_and_says_why_the_others_failed() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let existing = app.connect_chat(&ws, &bot, 26_000).await;
    let mut rows: Vec<Value> = (26_001..=26_500)
        .map(|id| json!({"telegram_chat_id": id, "title": format!("subscriber {id}"), "lawful_basis": "consent"}))
        .collect();
    rows.push(
        json!({"telegram_chat_id": 26_000, "title": "already there", "lawful_basis": "consent"}),
    );
    rows.push(json!({"telegram_chat_id": 26_001, "title": "twice in this import", "lawful_basis": "consent"}));
    rows.push(json!({"telegram_chat_id": 0, "title": "not a chat"}));
    let started = std::time::Instant::now();
    let body = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/chats/import"),
            json!({"bot_id": bot, "chats": rows}),
            StatusCode::OK,
        )
        .await;
    eprintln!("imported 503 rows in {:?}", started.elapsed());
    assert_eq!(body["connected"], 500, "{}", body["failed"]);
    assert_eq!(body["already_connected"], 1);
    assert_eq!(body["failed"], 2);
    let results = body["rows"].as_array().unwrap();
    assert_eq!(results.len(), 503, "one result per row");
    assert_eq!(results[500]["row"], 501);
    assert_eq!(results[500]["status"], "already_connected");
    assert_eq!(results[500]["error"]["existing_chat_id"], existing.as_str());
    assert_eq!(results[501]["status"], "failed");
    assert_eq!(
        results[501]["error"]["code"], "duplicate_row",
        "{}",
        results[501]
    );
    assert_eq!(results[502]["status"], "failed");
    assert!(
        results[502]["error"]["code"].is_string(),
        "{}",
        results[502]
    );

    // Imported chats are chats like any other.
    let imported = results[42]["chat_id"].as_str().unwrap();
    let post = app.plan(&ws, &[imported], "welcome", Duration::ZERO).await;
    app.approve(&ws, &post).await;
    let settled = app.settled(&ws, &post, Duration::from_secs(15)).await;
    assert_eq!(settled["state"], "delivered", "{settled}");

    // Too many rows, or another workspace's bot: refused as a whole, nothing connected.
    let too_many: Vec<Value> = (0..10_001)
        .map(|i| json!({"telegram_chat_id": 30_000 + i, "title": "x"}))
        .collect();
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{ws}/chats/import"),
            json!({"bot_id": bot, "chats": too_many}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_import"))
    );
    let other_ws = app
        .post_ok(
            "/v1/workspaces",
            json!({"name": "Other"}),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{other_ws}/chats/import"),
            json!({"bot_id": bot, "chats": [{"telegram_chat_id": 27_001, "title": "x", "lawful_basis": "consent"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["failed"], 1, "a bot of another workspace: {body}");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_to_many_chats_shows_counts_and_pages_its_deliveries() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chats = app.import_chats(&ws, &bot, 28_001, 250).await;
    let targets: Vec<&str> = chats.iter().map(String::as_str).collect();
    let post = app
        .plan(&ws, &targets, "to everyone", Duration::from_secs(3600))
        .await;
    let (status, body) = app.get(&format!("/v1/workspaces/{ws}/posts/{post}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["counts"]["pending"], 250);

    let mut seen = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let query = match after {
            Some(a) => format!("?limit=100&after={a}"),
            None => "?limit=100".to_owned(),
        };
        let (status, page) = app
            .get(&format!(
                "/v1/workspaces/{ws}/posts/{post}/deliveries{query}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["deliveries"].as_array().unwrap();
        assert!(items.len() <= 100);
        seen.extend(
            items
                .iter()
                .map(|d| d["chat_id"].as_str().unwrap().to_owned()),
        );
        match page["next_after"].as_u64() {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, chats, "every delivery once, in planning order");
    let (status, page) = app
        .get(&format!(
            "/v1/workspaces/{ws}/posts/{post}/deliveries?status=failed"
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["deliveries"].as_array().unwrap().len(), 0);
    let (status, page) = app
        .get(&format!(
            "/v1/workspaces/{ws}/posts/{post}/deliveries?status=lost"
        ))
        .await;
    assert_eq!(
        (status, page["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_imports_at_once_connect_each_chat_once_and_name_the_rows_that_lost() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let rows = |from: i64, to: i64| -> Vec<Value> {
        (from..to)
            .map(|id| json!({"telegram_chat_id": id, "title": "subscriber", "lawful_basis": "consent"}))
            .collect()
    };
    let path = format!("/v1/workspaces/{ws}/chats/import");
    // 600 rows each (three write batches), 400 of them in both.
    let (a, b) = tokio::join!(
        app.post(&path, json!({"bot_id": bot, "chats": rows(20_000, 20_600)})),
        app.post(&path, json!({"bot_id": bot, "chats": rows(20_200, 20_800)})),
    );
    assert_eq!(
        (a.0, b.0),
        (StatusCode::OK, StatusCode::OK),
        "{} {}",
        a.1,
        b.1
    );
    let connected = a.1["connected"].as_u64().unwrap() + b.1["connected"].as_u64().unwrap();
    let lost =
        a.1["already_connected"].as_u64().unwrap() + b.1["already_connected"].as_u64().unwrap();
    assert_eq!(
        (connected, lost),
        (800, 400),
        "{} {}",
        a.1["failed"],
        b.1["failed"]
    );
    assert_eq!(a.1["failed"], 0);
    assert_eq!(b.1["failed"], 0);
    for answer in [&a.1, &b.1] {
        for row in answer["rows"].as_array().unwrap() {
            if row["status"] == "already_connected" {
                assert_eq!(row["error"]["code"], "chat_already_connected", "{row}");
                assert!(row["error"]["existing_chat_id"].is_string(), "{row}");
            }
        }
    }
    let chats: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'ChatConnected'")
            .fetch_one(&app.herald.pool)
            .await
            .unwrap();
    assert_eq!(chats, 800, "each chat connected once");
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM subject_keys")
        .fetch_one(&app.herald.pool)
        .await
        .unwrap();
    assert!(
        (800..=1_200).contains(&keys),
        "{keys} contact keys for 800 contacts"
    );
    app.cleanup().await;
}
