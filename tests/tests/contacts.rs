//! Contacts (private chats) carry a lawful basis with its source and time; a contact without
//! one cannot be targeted; imports from CSV and JSON name each rejected row; only the person
//! re-subscribes after an opt-out.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::{TestApp, spawn_app};

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

async fn chat(app: &TestApp, ws: &str, id: &str) -> Value {
    let (status, body) = app.get(&format!("/v1/workspaces/{ws}/chats/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_is_connected_only_on_a_lawful_basis_with_its_source_and_time() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chats = format!("/v1/workspaces/{ws}/chats");

    let (status, body) = app
        .post(
            &chats,
            json!({"bot_id": bot, "telegram_chat_id": 3001, "title": "Alice"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("lawful_basis_required")
        ),
        "{body}"
    );
    for (basis, expected) in [
        (json!({"lawful_basis": "contract"}), "invalid_lawful_basis"),
        (
            json!({"lawful_basis": "consent", "source": "bot_start"}),
            "invalid_lawful_basis",
        ),
        (
            json!({"lawful_basis": "consent", "given_at": "2099-01-01T00:00:00Z"}),
            "invalid_lawful_basis",
        ),
        (json!({"source": "web form"}), "invalid_lawful_basis"),
    ] {
        let mut body = json!({"bot_id": bot, "telegram_chat_id": 3001, "title": "Alice"});
        body.as_object_mut()
            .unwrap()
            .extend(basis.as_object().unwrap().clone());
        let (status, answer) = app.post(&chats, body.clone()).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(expected)),
            "{body} -> {answer}"
        );
    }
    let (status, body) = app
        .post(
            &chats,
            json!({"bot_id": bot, "telegram_chat_id": -1003001, "title": "News", "lawful_basis": "consent"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("lawful_basis_not_applicable")
        ),
        "{body}"
    );

    let alice = app
        .post_ok(
            &chats,
            json!({"bot_id": bot, "telegram_chat_id": 3001, "title": "Alice",
                   "lawful_basis": "consent", "source": "newsletter form", "given_at": "2026-11-01T10:00:00Z"}),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let shown = chat(&app, &ws, &alice).await;
    assert_eq!(shown["contact"], true);
    assert_eq!(shown["targetable"], true);
    assert_eq!(
        shown["lawful_basis"],
        json!({"basis": "consent", "source": "newsletter form", "given_at": "2026-11-01T10:00:00Z"})
    );
    let post = app.plan(&ws, &[&alice], "hello", Duration::ZERO).await;
    app.approve(&ws, &post).await;
    let settled = app.settled(&ws, &post, Duration::from_secs(15)).await;
    assert_eq!(settled["state"], "delivered", "{settled}");

    // The basis, with its source, is in the audit.
    let (_, audit) = app
        .get(&format!("/v1/workspaces/{ws}/audit?limit=100"))
        .await;
    let connected = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["aggregate_id"] == alice.as_str() && e["event_type"] == "ChatConnected")
        .unwrap_or_else(|| panic!("no ChatConnected of the contact in {audit}"));
    assert_eq!(
        connected["details"]["lawful_basis"]["source"],
        "newsletter form"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_without_a_basis_is_not_targeted_until_one_is_recorded() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    // A contact connected before bases existed: its event has none.
    let legacy = app.plant_legacy_contact(&ws, &bot, 3101, "Bob").await;
    assert_eq!(chat(&app, &ws, &legacy).await["targetable"], false);

    let publish_at = (chrono::Utc::now() + chrono::TimeDelta::hours(1)).to_rfc3339();
    let posts = format!("/v1/workspaces/{ws}/posts");
    let plan = json!({"chat_ids": [legacy], "text": "hi", "publish_at": publish_at});
    let (status, body) = app.post(&posts, plan.clone()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, Some("no_lawful_basis")),
        "{body}"
    );

    let basis = format!("/v1/workspaces/{ws}/chats/{legacy}/lawful-basis");
    let (status, body) = app.request(Method::PUT, &basis, Some(json!({}))).await;
    assert_eq!(
        (status, code(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("lawful_basis_required")
        ),
        "{body}"
    );
    let (status, body) = app
        .request(
            Method::PUT,
            &basis,
            Some(json!({"lawful_basis": "legitimate_interest", "source": "customer contract"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["lawful_basis"]["basis"], "legitimate_interest");
    assert_eq!(body["targetable"], true);
    let (status, body) = app.post(&posts, plan).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // After an opt-out no caller may subscribe the person again.
    app.post_ok(
        &format!("/v1/workspaces/{ws}/chats/{legacy}/opt-out"),
        json!({"reason": "asked by phone"}),
        StatusCode::OK,
    )
    .await;
    let (status, body) = app
        .request(
            Method::PUT,
            &basis,
            Some(json!({"lawful_basis": "consent"})),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, Some("opted_out_by_recipient")),
        "{body}"
    );
    let shown = chat(&app, &ws, &legacy).await;
    assert_eq!(
        (shown["opted_out"].clone(), shown["targetable"].clone()),
        (json!(true), json!(false))
    );
    // A group needs no basis, and may not be given one.
    let group = app.connect_chat(&ws, &bot, -1003101).await;
    let (status, body) = app
        .request(
            Method::PUT,
            &format!("/v1/workspaces/{ws}/chats/{group}/lawful-basis"),
            Some(json!({"lawful_basis": "consent"})),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("lawful_basis_not_applicable")
        ),
        "{body}"
    );
    app.cleanup().await;
}

const CSV: &str = "telegram_chat_id,title,lawful_basis,source,given_at
3201,Carol,consent,spring fair,2026-10-01T09:00:00Z
3202,Dan,,,
3203,\"Eve, the second\",legitimate_interest,,
not-a-number,Frank,consent,,
3204,Grace,consent,,yesterday
3201,Carol again,consent,,
-1003205,Team chat,,,
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_import_names_each_rejected_line_and_a_dry_run_writes_nothing() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let import = format!("/v1/workspaces/{ws}/chats/import?bot_id={bot}");
    let events_before = app.stored_events().await;

    let (status, dry) = app
        .post_raw(&format!("{import}&dry_run=true"), "text/csv", CSV)
        .await;
    assert_eq!(status, StatusCode::OK, "{dry}");
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        (dry["would_connect"].clone(), dry["failed"].clone()),
        (json!(3), json!(4)),
        "{dry}"
    );
    let rows = dry["rows"].as_array().unwrap();
    let failed: Vec<(u64, &str)> = rows
        .iter()
        .filter(|r| r["status"] == "failed")
        .map(|r| {
            (
                r["line"].as_u64().unwrap_or_else(|| panic!("{r}")),
                r["error"]["code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        failed,
        [
            (3, "lawful_basis_required"),
            (5, "invalid_row"),
            (6, "invalid_row"),
            (7, "duplicate_row"),
        ],
        "{dry}"
    );
    assert!(
        rows[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("lawful_basis"),
        "the reason says what is missing: {}",
        rows[1]
    );
    assert_eq!(
        app.stored_events().await,
        events_before,
        "a dry run writes nothing"
    );

    // Atomic: one bad row and nothing is imported.
    let (status, refused) = app
        .post_raw(&format!("{import}&atomic=true"), "text/csv", CSV)
        .await;
    assert_eq!(
        (status, code(&refused)),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("import_has_errors")),
        "{refused}"
    );
    assert_eq!(refused["failed"], 4);
    assert_eq!(app.stored_events().await, events_before);

    // The import itself: the good rows, each with its basis and source.
    let (status, done) = app.post_raw(&import, "text/csv", CSV).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(
        (done["connected"].clone(), done["failed"].clone()),
        (json!(3), json!(4)),
        "{done}"
    );
    let rows = done["rows"].as_array().unwrap();
    let carol = chat(&app, &ws, rows[0]["chat_id"].as_str().unwrap()).await;
    assert_eq!(carol["lawful_basis"]["source"], "spring fair");
    assert_eq!(carol["lawful_basis"]["given_at"], "2026-10-01T09:00:00Z");
    let eve = chat(&app, &ws, rows[2]["chat_id"].as_str().unwrap()).await;
    assert_eq!(eve["title"], "Eve, the second");
    assert_eq!(
        (
            eve["lawful_basis"]["basis"].clone(),
            eve["lawful_basis"]["source"].clone()
        ),
        (json!("legitimate_interest"), json!("import"))
    );
    assert_eq!(
        rows[6]["status"], "connected",
        "a group needs no basis: {}",
        rows[6]
    );

    // The list finds them, each with its basis; pages follow connection order.
    let (status, found) = app
        .get(&format!("/v1/workspaces/{ws}/chats?telegram_chat_id=3201"))
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["chats"].as_array().unwrap().len(), 1);
    assert_eq!(found["chats"][0]["lawful_basis"]["source"], "spring fair");
    let (_, first) = app.get(&format!("/v1/workspaces/{ws}/chats?limit=2")).await;
    let after = first["next_after"].as_str().unwrap().to_owned();
    let (_, rest) = app
        .get(&format!("/v1/workspaces/{ws}/chats?limit=2&after={after}"))
        .await;
    let ids: Vec<&str> = first["chats"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["chats"].as_array().unwrap())
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids.len(),
        3,
        "two contacts and a group, two pages: {first} {rest}"
    );
    assert_eq!(rest["next_after"], Value::Null);

    // The same file again: nothing new, every good row already there.
    let (_, again) = app.post_raw(&import, "text/csv", CSV).await;
    assert_eq!(
        (
            again["connected"].clone(),
            again["already_connected"].clone()
        ),
        (json!(0), json!(3)),
        "{again}"
    );

    // A file Herald cannot read as a whole is refused as a whole.
    for (body, why) in [
        ("telegram_chat_id,title,nickname\n1,a,x\n", "unknown column"),
        ("title\na\n", "no telegram_chat_id column"),
    ] {
        let (status, answer) = app.post_raw(&import, "text/csv", body).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_import")),
            "{why}: {answer}"
        );
    }
    let (status, answer) = app
        .post_raw(
            &format!("/v1/workspaces/{ws}/chats/import"),
            "text/csv",
            CSV,
        )
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_import")),
        "no bot_id: {answer}"
    );
    let (status, answer) = app.post_raw(&import, "text/plain", CSV).await;
    assert_eq!(
        (status, code(&answer)),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Some("unsupported_media_type")
        )
    );

    // JSON rows get the same per-row answers.
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{ws}/chats/import?dry_run=true"),
            json!({"bot_id": bot, "chats": [
                {"telegram_chat_id": 3301, "title": "Heidi", "lawful_basis": "consent"},
                {"telegram_chat_id": 3302, "title": "Ivan"},
                {"telegram_chat_id": 3303},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let statuses: Vec<(&str, Option<&str>)> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["status"].as_str().unwrap(), r["error"]["code"].as_str()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("would_connect", None),
            ("failed", Some("lawful_basis_required")),
            ("failed", Some("invalid_row")),
        ]
    );
    app.cleanup().await;
}
