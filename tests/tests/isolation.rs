//! Tenancy is enforced by PostgreSQL: the API's role sees one workspace's rows, whatever its
//! queries name, and the HTTP API answers another workspace's ids as if they did not exist.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use system_tests::{TestApp, spawn_app};

/// Tables that hold no workspace data and so are not scoped (migration 0015 says why).
const UNSCOPED: &[&str] = &[
    "_sqlx_migrations",
    "outbox",
    "event_log",
    "projection_checkpoints",
    "delivery_workers",
    "delivery_partitions",
    "identity_users",
    "identity_passwords",
    "identity_tokens",
    "identity_sign_in_failures",
    "identity_members",
];

struct Tenant {
    ws: String,
    bot: String,
    chat: String,
    post: String,
}

/// A workspace with a bot, a chat and a delivered post, so that every table has its rows.
async fn tenant(app: &TestApp, bot_token: &str, telegram_chat_id: i64) -> Tenant {
    let (ws, bot) = app.workspace_with_bot_token(bot_token).await;
    let chat = app.connect_chat(&ws, &bot, telegram_chat_id).await;
    let post = app
        .plan(&ws, &[&chat], "tenant news", Duration::from_millis(200))
        .await;
    app.approve(&ws, &post).await;
    let settled = app.settled(&ws, &post, Duration::from_secs(30)).await;
    assert_eq!(settled["deliveries"][0]["status"], "delivered", "{settled}");
    Tenant {
        ws,
        bot,
        chat,
        post,
    }
}

/// A connection as the API's role, scoped to `workspace` the way its pool scopes one.
async fn as_api(app: &TestApp, workspace: Option<&str>) -> PgConnection {
    let options = platform::postgres::role_options(
        &app.herald.config.database_url,
        store::scope::API_ROLE,
        None,
    )
    .unwrap();
    let mut conn = PgConnection::connect_with(&options).await.unwrap();
    sqlx::query("SELECT set_config('herald.workspace', $1, false)")
        .bind(workspace.unwrap_or_default())
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

async fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test]
async fn the_api_role_sees_only_its_workspace_rows_even_with_forged_queries() {
    let app = spawn_app().await;
    let a = tenant(&app, "111111:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", 7001).await;
    let b = tenant(&app, "222222:BBHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", 7002).await;
    // The projections have caught up with both tenants.
    app.eventually("both audits", Duration::from_secs(20), || async {
        let owner = &app.herald.pool;
        let n: i64 = sqlx::query_scalar("SELECT count(DISTINCT workspace_id) FROM audit_log")
            .fetch_one(owner)
            .await
            .unwrap();
        (n == 2).then_some(())
    })
    .await;

    // The API and the workers log in as their own roles, never as the owner.
    let logins: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT usename::text FROM pg_stat_activity
          WHERE datname = current_database() AND usename IN ('herald_api', 'herald_worker')
          ORDER BY 1",
    )
    .fetch_all(&app.herald.pool)
    .await
    .unwrap();
    assert_eq!(logins, ["herald_api", "herald_worker"]);

    // Every table either is scoped, forced included, or is one of the few without workspace data.
    let tables: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT relname::text, relrowsecurity, relforcerowsecurity FROM pg_class
          WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY relname",
    )
    .fetch_all(&app.herald.pool)
    .await
    .unwrap();
    let mut scoped = Vec::new();
    for (table, enabled, forced) in &tables {
        if UNSCOPED.contains(&table.as_str()) {
            assert!(!enabled, "{table} is listed as unscoped but has RLS");
            continue;
        }
        assert!(
            *enabled && *forced,
            "{table} holds workspace data but lacks forced row-level security (add it in a migration, or list it in UNSCOPED with the reason in migration 0015)"
        );
        scoped.push(table.clone());
    }
    assert!(scoped.len() >= 10, "{scoped:?}");

    // Scoped to A, B's rows are invisible in every scoped table; A's and B's views add up to
    // the whole; unscoped, the role sees nothing at all.
    let mut in_a = as_api(&app, Some(&a.ws)).await;
    let mut in_b = as_api(&app, Some(&b.ws)).await;
    let mut unscoped = as_api(&app, None).await;
    for table in &scoped {
        let sql = format!("SELECT count(*) FROM {table}");
        let all = count(&mut app.herald.pool.acquire().await.unwrap(), &sql).await;
        let seen_a = count(&mut in_a, &sql).await;
        let seen_b = count(&mut in_b, &sql).await;
        assert_eq!(seen_a + seen_b, all, "{table}: A sees {seen_a}, B {seen_b}");
        assert_eq!(count(&mut unscoped, &sql).await, 0, "{table} unscoped");
    }
    for table in [
        "events",
        "calendar",
        "audit_log",
        "delivery_chats",
        "delivery_attempts",
    ] {
        let sql = format!("SELECT count(*) FROM {table}");
        assert!(count(&mut in_a, &sql).await > 0, "{table} is empty for A");
    }

    // Forged queries naming B's ids find nothing.
    let forged = [
        format!(
            "SELECT count(*) FROM events WHERE aggregate_id = '{}'",
            b.post
        ),
        format!(
            "SELECT count(*) FROM events WHERE metadata::jsonb ->> 'workspace_id' = '{}'",
            b.ws
        ),
        format!("SELECT count(*) FROM calendar WHERE post_id = '{}'", b.post),
        format!(
            "SELECT count(*) FROM audit_log WHERE workspace_id = '{}'",
            b.ws
        ),
        format!(
            "SELECT count(*) FROM delivery_chats WHERE chat_id = '{}'",
            b.chat
        ),
        format!(
            "SELECT count(*) FROM delivery_bots WHERE bot_id = '{}'",
            b.bot
        ),
        format!(
            "SELECT count(*) FROM delivery_attempts WHERE chat_id = '{}'",
            b.chat
        ),
        format!(
            "SELECT count(*) FROM events e JOIN calendar c ON c.post_id::text = e.aggregate_id WHERE c.workspace_id = '{}'",
            b.ws
        ),
    ];
    for sql in &forged {
        assert_eq!(count(&mut in_a, sql).await, 0, "{sql}");
    }

    // The role cannot lift the barrier, rewrite history or write into another workspace.
    let refused = [
        "ALTER TABLE events DISABLE ROW LEVEL SECURITY".to_owned(),
        "ALTER TABLE calendar NO FORCE ROW LEVEL SECURITY".to_owned(),
        "DROP POLICY workspace_scope ON events".to_owned(),
        "SET ROLE postgres".to_owned(),
        "SET ROLE herald_worker".to_owned(),
        format!("UPDATE events SET payload = '{{}}' WHERE aggregate_id = '{}'", a.post),
        format!("DELETE FROM events WHERE aggregate_id = '{}'", a.post),
        "SELECT count(*) FROM outbox".to_owned(),
        format!(
            "INSERT INTO calendar (workspace_id, post_id, chat_id, publish_at, state, delivery, text_preview, updated_at)
             VALUES ('{}', gen_random_uuid(), gen_random_uuid(), now(), 'planned', 'pending', 'x', now())",
            b.ws
        ),
        format!(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ('Post', gen_random_uuid()::text, 1, 'PostPlanned', '1', '{{}}', '{{\"workspace_id\":\"{}\"}}')",
            b.ws
        ),
    ];
    for sql in &refused {
        let result = sqlx::query(sql).execute(&mut in_a).await;
        assert!(result.is_err(), "the API's role may run: {sql}");
    }
    // The refused writes left A's history whole.
    let kept = count(
        &mut app.herald.pool.acquire().await.unwrap(),
        &format!(
            "SELECT count(*) FROM events WHERE aggregate_id = '{}'",
            a.post
        ),
    )
    .await;
    assert!(kept >= 3, "A's post has {kept} events");
    for conn in [in_a, in_b, unscoped] {
        conn.close().await.unwrap();
    }
    app.cleanup().await;
}

#[tokio::test]
async fn another_workspaces_ids_are_answered_as_if_they_did_not_exist() {
    let app = spawn_app().await;
    let a = tenant(&app, "333333:CCHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", 7101).await;
    let b = tenant(&app, "444444:DDHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", 7102).await;
    // An admin of A only, and the instance administrator (whom no membership check stops).
    let admin_of_a = app.person("admin-of-a").await;
    app.grant(&a.ws, &admin_of_a, "admin").await;
    let admin_of_a = app.sign_in("admin-of-a").await;
    let w = format!("/v1/workspaces/{}", a.ws);
    let later = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    // Each request names B's post, chat and bot; the same request with ids that exist nowhere
    // must get the very same answer.
    let requests = |post: &str,
                    chat: &str,
                    bot: &str|
     -> Vec<(Method, String, serde_json::Value)> {
        vec![
            (Method::GET, format!("{w}/posts/{post}"), json!(null)),
            (
                Method::GET,
                format!("{w}/posts/{post}/deliveries"),
                json!(null),
            ),
            (Method::POST, format!("{w}/posts/{post}/approve"), json!({})),
            (
                Method::POST,
                format!("{w}/posts/{post}/reject"),
                json!({ "reason": "no" }),
            ),
            (Method::POST, format!("{w}/posts/{post}/cancel"), json!({})),
            (
                Method::POST,
                format!("{w}/posts/{post}/reschedule"),
                json!({ "publish_at": later }),
            ),
            (
                Method::POST,
                format!("{w}/posts/{post}/deliveries/{chat}/resolve"),
                json!({ "resolution": "mark_delivered" }),
            ),
            (Method::POST, format!("{w}/chats/{chat}/opt-out"), json!({})),
            (Method::GET, format!("{w}/chats/{chat}"), json!(null)),
            (
                Method::PUT,
                format!("{w}/chats/{chat}/lawful-basis"),
                json!({ "lawful_basis": "consent" }),
            ),
            (
                Method::PUT,
                format!("{w}/chats/{chat}/tags"),
                json!({ "tags": ["x"] }),
            ),
            (
                Method::PUT,
                format!("{w}/chats/{chat}/audience-rules"),
                json!({ "time_zone": "UTC", "max_per_day": 1 }),
            ),
            (
                Method::POST,
                format!("{w}/segments"),
                json!({ "name": "s", "chat_ids": [chat] }),
            ),
            (
                Method::PUT,
                format!("{w}/chats/{chat}/limits"),
                json!({ "hourly_cap": 5 }),
            ),
            (
                Method::GET,
                format!("{w}/chats/{chat}/safety-stats"),
                json!(null),
            ),
            (
                Method::PUT,
                format!("{w}/bots/{bot}/token"),
                json!({ "token": "555555:EEHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" }),
            ),
            (
                Method::PUT,
                format!("{w}/bots/{bot}/limits"),
                json!({ "hourly_cap": 5 }),
            ),
            (
                Method::GET,
                format!("{w}/bots/{bot}/safety-stats"),
                json!(null),
            ),
            (
                Method::POST,
                format!("{w}/posts"),
                json!({ "chat_ids": [chat], "text": "x", "publish_at": later }),
            ),
            (
                Method::POST,
                format!("{w}/chats"),
                json!({ "bot_id": bot, "telegram_chat_id": 7199, "title": "t", "lawful_basis": "consent" }),
            ),
            (
                Method::POST,
                format!("{w}/chats/import"),
                json!({ "bot_id": bot, "chats": [{ "telegram_chat_id": 7198, "title": "t", "lawful_basis": "consent" }] }),
            ),
            (Method::POST, format!("{w}/posts/{post}/erase"), json!({})),
            (
                Method::PUT,
                format!("{w}/segments/{post}/audience-rules"),
                json!({ "time_zone": "UTC", "max_per_day": 1 }),
            ),
        ]
    };
    let foreign = requests(&b.post, &b.chat, &b.bot);
    let (p, c, t) = (
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
    );
    let nowhere = requests(&p.to_string(), &c.to_string(), &t.to_string());
    // What an answer says, without the ids it names.
    let gist = |status: StatusCode, answer: &serde_json::Value| {
        let code = answer["error"]["code"]
            .as_str()
            .or(answer["rows"][0]["error"]["code"].as_str())
            .unwrap_or_default()
            .to_owned();
        (status, code, answer["connected"].clone())
    };
    let before = app.stored_events().await;
    let mut wrong = Vec::new();
    for token in [admin_of_a.as_str(), system_tests::ADMIN_TOKEN] {
        for ((method, path, body), (_, unknown_path, unknown_body)) in foreign.iter().zip(&nowhere)
        {
            let body = (!body.is_null()).then(|| body.clone());
            let unknown_body = (!unknown_body.is_null()).then(|| unknown_body.clone());
            let (status, answer) = app
                .request_as(Some(token), method.clone(), path, body)
                .await;
            let (unknown_status, unknown_answer) = app
                .request_as(Some(token), method.clone(), unknown_path, unknown_body)
                .await;
            let seen = gist(status, &answer);
            let expected = gist(unknown_status, &unknown_answer);
            if seen != expected
                || !(seen.1.ends_with("not_found") || seen.1.starts_with("unknown_"))
            {
                wrong.push(format!(
                    "{method} {path}: {seen:?} where ids that exist nowhere get {expected:?}: {answer}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "answers that reveal another workspace:\n{}",
        wrong.join("\n")
    );
    assert_eq!(
        app.stored_events().await,
        before,
        "a refused request wrote events"
    );

    // A's read models hold nothing of B's.
    let (status, calendar) = app.get(&format!("{w}/calendar")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, audit) = app.get(&format!("{w}/audit")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, bots) = app.get(&format!("{w}/bots")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, operations) = app.get(&format!("{w}/operations")).await;
    assert_eq!(status, StatusCode::OK);
    // Filtering A's audit by B's post or chat finds nothing of B's.
    let (status, by_foreign) = app
        .get(&format!("{w}/audit?post_id={}&chat_id={}", b.post, b.chat))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_foreign["events"], json!([]), "{by_foreign}");
    for (name, text) in [
        ("bots", bots.to_string()),
        ("operations", operations.to_string()),
    ] {
        for foreign in [&b.ws, &b.post, &b.chat, &b.bot] {
            assert!(
                !text.contains(foreign.as_str()),
                "A's {name} shows {foreign}"
            );
        }
    }
    for (name, text) in [
        ("calendar", calendar.to_string()),
        ("audit", audit.to_string()),
    ] {
        assert!(text.contains(&a.post), "A's {name} lacks A's post: {text}");
        for foreign in [&b.ws, &b.post, &b.chat, &b.bot] {
            assert!(
                !text.contains(foreign.as_str()),
                "A's {name} shows {foreign}"
            );
        }
    }
    app.cleanup().await;
}
