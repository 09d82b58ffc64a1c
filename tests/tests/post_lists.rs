//! Posts as a team works with them: filtered lists with cursor pages, and "waiting for my
//! approval" following each post's stages.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use system_tests::spawn_app;

#[tokio::test]
async fn posts_are_listed_filtered_paged_and_waiting_for_whoever_may_approve_them() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let w = format!("/v1/workspaces/{ws}");
    let other_bot = app
        .post_ok(
            &format!("{w}/bots"),
            json!({ "name": "alerts", "token": "654321:ZZHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw" }),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let chat_a = app.connect_chat(&ws, &bot, 9001).await;
    let chat_b = app.connect_chat(&ws, &other_bot, 9002).await;
    let chat_c = app.connect_chat(&ws, &bot, 9003).await;
    let mut ids = std::collections::HashMap::new();
    let mut sessions = std::collections::HashMap::new();
    for (login, role) in [("ann", "author"), ("ed", "approver"), ("lea", "approver")] {
        let id = app.person(login).await;
        app.grant(&ws, &id, role).await;
        ids.insert(login, id);
        sessions.insert(login, app.sign_in(login).await);
    }
    // Chat C needs Lea after the standard review.
    let policy = json!({ "stages": [
        { "name": "review", "roles": ["approver", "admin"] },
        { "name": "legal", "users": [ids["lea"]] },
    ]});
    let (status, body) = app
        .request(
            Method::PUT,
            &format!("{w}/chats/{chat_c}/approval-policy"),
            Some(policy),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let as_user = |login: &'static str| sessions[login].clone();
    let plan = |token: String, chat: String, hours: i64| {
        let app = &app;
        let w = w.clone();
        async move {
            let at = (chrono::Utc::now() + chrono::Duration::hours(hours)).to_rfc3339();
            let (status, body) = app
                .request_as(
                    Some(&token),
                    Method::POST,
                    &format!("{w}/posts"),
                    Some(json!({ "chat_ids": [chat], "text": format!("in {hours} h"), "publish_at": at })),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body["id"].as_str().unwrap().to_owned()
        }
    };
    let p1 = plan(as_user("ann"), chat_a.clone(), 1).await;
    let p2 = plan(as_user("ann"), chat_b.clone(), 2).await;
    let p3 = plan(system_tests::ADMIN_TOKEN.to_owned(), chat_a.clone(), 3).await;
    let p4 = plan(as_user("ann"), chat_c.clone(), 4).await;
    let act = |login: &'static str, post: &str, action: &str, body: Value| {
        let app = &app;
        let path = format!("{w}/posts/{post}/{action}");
        let token = sessions[login].clone();
        async move {
            let (status, answer) = app
                .request_as(Some(&token), Method::POST, &path, Some(body))
                .await;
            assert_eq!(status, StatusCode::OK, "{path}: {answer}");
        }
    };
    act("ed", &p1, "approve", json!({})).await;
    act("ed", &p3, "reject", json!({ "reason": "off-brand" })).await;
    act("ed", &p4, "approve", json!({})).await;

    let list = |token: String, query: String| {
        let app = &app;
        let path = format!("{w}/posts?{query}");
        async move {
            let (status, body) = app.request_as(Some(&token), Method::GET, &path, None).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            body
        }
    };
    let ids_of = |body: &Value| -> Vec<String> {
        body["posts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let admin = system_tests::ADMIN_TOKEN.to_owned();
    // The projection catches up with the last command.
    app.eventually("the post list", Duration::from_secs(10), || async {
        let body = list(admin.clone(), "state=planned".into()).await;
        let waiting = body["posts"]
            .as_array()?
            .iter()
            .any(|p| p["waiting_for"] == "legal");
        waiting.then_some(())
    })
    .await;

    let cases: Vec<(String, String, Vec<&String>)> = vec![
        (admin.clone(), "".to_owned(), vec![&p1, &p2, &p3, &p4]),
        (admin.clone(), "state=approved".to_owned(), vec![&p1]),
        (
            admin.clone(),
            "state=draft,planned".to_owned(),
            vec![&p2, &p3, &p4],
        ),
        (admin.clone(), format!("bot={other_bot}"), vec![&p2]),
        (admin.clone(), format!("chat={chat_a}"), vec![&p1, &p3]),
        (as_user("ann"), "author=me".to_owned(), vec![&p1, &p2, &p4]),
        (
            admin.clone(),
            format!("approver={}", ids["ed"]),
            vec![&p1, &p4],
        ),
        // Ed may approve p2 (standard review); p4 waits for Lea alone.
        (as_user("ed"), "waiting_for=me".to_owned(), vec![&p2]),
        (as_user("lea"), "waiting_for=me".to_owned(), vec![&p2, &p4]),
        // Authors never wait for themselves.
        (as_user("ann"), "waiting_for=me".to_owned(), vec![]),
    ];
    for (token, query, expected) in cases {
        let body = list(token, query.clone()).await;
        let expected: Vec<String> = expected.into_iter().cloned().collect();
        assert_eq!(ids_of(&body), expected, "GET posts?{query}");
    }
    let from = (chrono::Utc::now() + chrono::Duration::minutes(90)).to_rfc3339();
    let to = (chrono::Utc::now() + chrono::Duration::minutes(210)).to_rfc3339();
    let body = list(
        admin.clone(),
        format!("from={}&to={}", urlencode(&from), urlencode(&to)),
    )
    .await;
    assert_eq!(ids_of(&body), [p2.clone(), p3.clone()]);
    let draft = &list(admin.clone(), "state=draft".into()).await["posts"][0];
    assert_eq!(
        draft["approved_by"],
        json!([]),
        "a rejection voids approvals"
    );

    // Pages of two, following next_after to the end.
    let mut seen = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let body = list(admin.clone(), query.clone()).await;
        seen.extend(ids_of(&body));
        match body["next_after"].as_str() {
            Some(next) => query = format!("limit=2&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, [p1, p2, p3, p4]);

    for (query, code) in [
        ("state=sent", "invalid_query"),
        ("after=nonsense", "invalid_query"),
        ("limit=0", "invalid_query"),
        ("author=ann", "invalid_query"),
        ("waiting_for=ed", "invalid_query"),
        ("colour=red", "invalid_query"),
    ] {
        let (status, body) = app.get(&format!("{w}/posts?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["code"], code, "{query}: {body}");
    }
    app.cleanup().await;
}

fn urlencode(value: &str) -> String {
    value.replace('+', "%2B").replace(':', "%3A")
}
