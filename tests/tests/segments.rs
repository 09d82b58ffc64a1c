//! Segments: tagged contacts, a rule over tags and a static list; a post planned to segments
//! reaches their members who can be sent to, each once, and says how many it left out.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::{TestApp, spawn_app};

const CONTACTS: &str = "telegram_chat_id,title,lawful_basis,tags
7001,Ann,consent,vip;berlin
7002,Ben,consent,berlin;press
7003,Cid,consent,berlin
7004,Dee,consent,vip
7005,Eve,consent,VIP;Berlin
";

async fn chat_id(app: &TestApp, ws: &str, telegram_chat_id: i64) -> String {
    let (_, found) = app
        .get(&format!(
            "/v1/workspaces/{ws}/chats?telegram_chat_id={telegram_chat_id}"
        ))
        .await;
    found["chats"][0]["id"].as_str().unwrap().to_owned()
}

/// Waits until the segment counts `members` chats (the chat list trails commits a little).
async fn members(app: &TestApp, ws: &str, segment: &str, expected: i64) -> Value {
    app.eventually("the segment's members", Duration::from_secs(15), || async {
        let (_, body) = app
            .get(&format!("/v1/workspaces/{ws}/segments/{segment}"))
            .await;
        (body["members"] == expected).then_some(body)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_to_a_segment_reaches_its_members_who_can_be_sent_to() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let (status, imported) = app
        .post_raw(
            &format!("/v1/workspaces/{ws}/chats/import?bot_id={bot}"),
            "text/csv",
            CONTACTS,
        )
        .await;
    assert_eq!(
        (status, imported["connected"].clone()),
        (StatusCode::OK, json!(5)),
        "{imported}"
    );
    let eve = chat_id(&app, &ws, 7005).await;
    let (_, shown) = app.get(&format!("/v1/workspaces/{ws}/chats/{eve}")).await;
    assert_eq!(
        shown["tags"],
        json!(["berlin", "vip"]),
        "tags are lower-cased"
    );

    let segments = format!("/v1/workspaces/{ws}/segments");
    // Berlin and (vip or press): Ann, Ben, Eve.
    let berlin = app
        .post_ok(
            &segments,
            json!({"name": "Berlin insiders", "tags_all": ["berlin"], "tags_any": ["vip", "press"]}),
            StatusCode::CREATED,
        )
        .await;
    let berlin_id = berlin["id"].as_str().unwrap().to_owned();
    members(&app, &ws, &berlin_id, 3).await;
    // A static list: Cid, and Ann again.
    let cid = chat_id(&app, &ws, 7003).await;
    let ann = chat_id(&app, &ws, 7001).await;
    let listed = app
        .post_ok(
            &segments,
            json!({"name": "Hand-picked", "chat_ids": [cid, ann]}),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Ben opts out: he stays a member, but cannot be sent to.
    let ben = chat_id(&app, &ws, 7002).await;
    app.post_ok(
        &format!("/v1/workspaces/{ws}/chats/{ben}/opt-out"),
        json!({"reason": "asked"}),
        StatusCode::OK,
    )
    .await;
    app.eventually("Ben unreachable", Duration::from_secs(15), || async {
        let (_, body) = app.get(&format!("{segments}/{berlin_id}")).await;
        (body["reachable"] == 2).then_some(())
    })
    .await;

    // Both segments and Eve by name: Ann, Eve, Cid once each; Ben left out.
    let publish_at = chrono::Utc::now().to_rfc3339();
    let planned = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/posts"),
            json!({"segment_ids": [berlin_id, listed], "chat_ids": [eve], "text": "insider news", "publish_at": publish_at}),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(
        (planned["targets"].clone(), planned["excluded"].clone()),
        (json!(3), json!(1)),
        "{planned}"
    );
    let post = planned["id"].as_str().unwrap().to_owned();
    app.approve(&ws, &post).await;
    let settled = app.settled(&ws, &post, Duration::from_secs(20)).await;
    assert_eq!(settled["state"], "delivered", "{settled}");
    assert_eq!(settled["segment_ids"], json!([berlin_id, listed]));
    let mut received: Vec<i64> = app
        .sandbox
        .messages(None)
        .iter()
        .map(|m| m.chat_id)
        .collect();
    received.sort();
    assert_eq!(received, [7001, 7003, 7005]);

    // Retagging changes who belongs: Dee joins Berlin.
    let dee = chat_id(&app, &ws, 7004).await;
    let (status, body) = app
        .request(
            Method::PUT,
            &format!("/v1/workspaces/{ws}/chats/{dee}/tags"),
            Some(json!({"tags": ["vip", "berlin"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    members(&app, &ws, &berlin_id, 4).await;

    // A segment that selects nobody reachable cannot be planned to.
    let gone = app
        .post_ok(
            &segments,
            json!({"name": "Ben only", "chat_ids": [ben]}),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    members(&app, &ws, &gone, 1).await;
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{ws}/posts"),
            json!({"segment_ids": [gone], "text": "x", "publish_at": publish_at}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("no_reachable_targets")
        ),
        "{body}"
    );

    // Changes, deletion, the list and bad input.
    let (status, _) = app
        .request(
            Method::PUT,
            &format!("{segments}/{gone}"),
            Some(json!({"name": "Ben and Cid", "chat_ids": [ben, cid]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, list) = app.get(&segments).await;
    assert_eq!(list["segments"].as_array().unwrap().len(), 3, "{list}");
    let (status, _) = app
        .request(Method::DELETE, &format!("{segments}/{gone}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app.get(&format!("{segments}/{gone}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{ws}/posts"),
            json!({"segment_ids": [gone], "text": "x", "publish_at": publish_at}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_segment")),
        "{body}"
    );
    for (bad, code) in [
        (json!({"name": "nobody"}), "invalid_segment"),
        (json!({"name": "", "tags_all": ["x"]}), "invalid_segment"),
        (
            json!({"name": "bad tag", "tags_all": ["a;b"]}),
            "invalid_tags",
        ),
    ] {
        let (status, body) = app.post(&segments, bad.clone()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(code)),
            "{bad} -> {body}"
        );
    }
    app.cleanup().await;
}
