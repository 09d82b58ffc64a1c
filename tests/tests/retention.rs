//! Retention with the clock moved forward: a workspace's shorter audit policy, the product's 12
//! months for the others, technical logs after 90 days (keeping each bot's newest update, from
//! which the listener's offset follows), and a rebuild that does not bring old entries back.

use chrono::{TimeDelta, Utc};
use reqwest::{Method, StatusCode};
use serde_json::json;
use system_tests::{TestApp, spawn_app};

async fn audit_entries(app: &TestApp, ws: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE workspace_id = $1")
        .bind(ws)
        .fetch_one(&app.herald.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_entries_go_by_the_workspace_policy_and_the_products_limits() {
    let app = spawn_app().await;
    let (kept, _) = app.workspace_with_bot().await;
    let short = app
        .post_ok(
            "/v1/workspaces",
            json!({"name": "Brief"}),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let policy = format!("/v1/workspaces/{short}/retention");
    for bad in [json!({"audit_days": 0}), json!({"audit_days": 400})] {
        let (status, body) = app.request(Method::PUT, &policy, Some(bad)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_retention")),
            "{body}"
        );
    }
    let (status, body) = app
        .request(Method::PUT, &policy, Some(json!({"audit_days": 30})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, shown) = app.get(&format!("/v1/workspaces/{short}")).await;
    assert_eq!(shown["retention"]["audit_days"], 30);
    app.eventually(
        "both audits projected",
        std::time::Duration::from_secs(15),
        || async {
            (audit_entries(&app, &kept).await >= 2 && audit_entries(&app, &short).await >= 2)
                .then_some(())
        },
    )
    .await;

    // Handled updates of a bot: two old, one newest (old too).
    let bot: uuid::Uuid = sqlx::query_scalar("SELECT bot_id FROM telegram_bot_identities")
        .fetch_one(&app.herald.pool)
        .await
        .unwrap();
    for (update_id, age_days) in [(1_i64, 200), (2, 150), (3, 100)] {
        sqlx::query(
            "INSERT INTO bot_updates (bot_id, update_id, workspace_id, received_at)
             VALUES ($1, $2, $3, now() - make_interval(days => $4))",
        )
        .bind(bot)
        .bind(update_id)
        .bind(kept.parse::<uuid::Uuid>().unwrap())
        .bind(age_days)
        .execute(&app.herald.pool)
        .await
        .unwrap();
    }

    let now = Utc::now();
    let removed = store::retention::enforce(&app.herald.pool, now)
        .await
        .unwrap();
    assert_eq!(removed.audit_entries, 0, "nothing is old yet");
    assert_eq!(removed.bot_updates, 2, "the newest update stays");
    let left: Vec<i64> = sqlx::query_scalar("SELECT update_id FROM bot_updates ORDER BY 1")
        .fetch_all(&app.herald.pool)
        .await
        .unwrap();
    assert_eq!(left, [3]);

    let (kept_before, short_before) = (
        audit_entries(&app, &kept).await,
        audit_entries(&app, &short).await,
    );
    let in_31_days = store::retention::enforce(&app.herald.pool, now + TimeDelta::days(31))
        .await
        .unwrap();
    assert_eq!(in_31_days.audit_entries, short_before as u64);
    assert_eq!(
        audit_entries(&app, &short).await,
        0,
        "30 days for this workspace"
    );
    assert_eq!(
        audit_entries(&app, &kept).await,
        kept_before,
        "12 months for the others"
    );
    store::retention::enforce(&app.herald.pool, now + TimeDelta::days(366))
        .await
        .unwrap();
    assert_eq!(audit_entries(&app, &kept).await, 0);
    app.cleanup().await;
}

#[test]
fn the_audit_projection_drops_what_is_past_12_months() {
    let now = Utc::now();
    assert!(store::retention::audit_expired(
        now - TimeDelta::days(366),
        now
    ));
    assert!(!store::retention::audit_expired(
        now - TimeDelta::days(364),
        now
    ));
}
