//! The desk's side of the API, over HTTP: cookie sign-in and its CSRF rule, the desk's files at
//! the API's origin, live changes, the bots and operations views, the sandbox inbox, and the
//! audit explorer's filters.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use sandbox::{Fault, FaultRule};
use serde_json::{Value, json};
use system_tests::{AppOptions, BOT_TOKEN, TEST_PASSWORD, TestApp, spawn_app, spawn_app_with};

/// A browser's view of one signed-in desk: the cookie it holds and the CSRF value its page read.
struct Browser {
    cookie: String,
    csrf: String,
}

fn set_cookies(response: &reqwest::Response) -> Vec<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn cookie_value<'a>(set_cookies: &'a [String], name: &str) -> &'a str {
    set_cookies
        .iter()
        .find_map(|c| c.strip_prefix(&format!("{name}=")))
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie in {set_cookies:?}"))
}

async fn sign_in(app: &TestApp, body: Value) -> (StatusCode, Vec<String>, Value) {
    let response = app
        .client
        .post(format!("{}/v1/desk/session", app.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let cookies = set_cookies(&response);
    (status, cookies, response.json().await.unwrap())
}

async fn browser(app: &TestApp, login: &str) -> Browser {
    let (status, cookies, body) =
        sign_in(app, json!({ "login": login, "password": TEST_PASSWORD })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let csrf = cookie_value(&cookies, "herald_csrf").to_owned();
    assert_eq!(
        body["csrf"],
        csrf.as_str(),
        "the page learns the same CSRF value"
    );
    Browser {
        cookie: format!(
            "herald_session={}; herald_csrf={csrf}",
            cookie_value(&cookies, "herald_session")
        ),
        csrf,
    }
}

impl Browser {
    /// A request as the desk's page sends it: the cookie, and (when `csrf`) the CSRF header.
    async fn send(
        &self,
        app: &TestApp,
        method: Method,
        path: &str,
        body: Option<Value>,
        csrf: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = app
            .client
            .request(method, format!("{}{path}", app.base))
            .header("cookie", &self.cookie);
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_session_works_like_a_token_and_its_commands_need_the_csrf_header() {
    let app = spawn_app().await;
    let (ws, _) = app.workspace_with_bot().await;
    let ann = app.person("ann").await;
    app.grant(&ws, &ann, "admin").await;

    // The cookies: the session unreadable by scripts, both same-site only.
    let (status, cookies, _) =
        sign_in(&app, json!({ "login": "ann", "password": TEST_PASSWORD })).await;
    assert_eq!(status, StatusCode::CREATED);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("herald_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    assert!(
        !session.contains("Secure"),
        "plain HTTP on loopback: {session}"
    );
    let csrf = cookies
        .iter()
        .find(|c| c.starts_with("herald_csrf="))
        .unwrap();
    assert!(
        !csrf.contains("HttpOnly") && csrf.contains("SameSite=Strict"),
        "{csrf}"
    );
    // Behind a TLS proxy the cookies are Secure.
    let response = app
        .client
        .post(format!("{}/v1/desk/session", app.base))
        .header("x-forwarded-proto", "https")
        .json(&json!({ "login": "ann", "password": TEST_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert!(
        set_cookies(&response)
            .iter()
            .all(|c| c.contains("; Secure"))
    );

    // Wrong password, and a body that is neither form: clear 4xx answers.
    let (status, _, body) = sign_in(&app, json!({ "login": "ann", "password": "nope" })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _, body) = sign_in(&app, json!({ "login": "ann" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_sign_in");

    let ann_desk = browser(&app, "ann").await;
    // Reads need only the cookie; /me lists the workspaces with the role in each.
    let (status, me) = ann_desk.send(&app, Method::GET, "/v1/me", None, None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        me["workspaces"],
        json!([{ "id": ws, "name": "Acme", "role": "admin" }])
    );

    // A command with the cookie alone (what a forged cross-site form would send) is refused,
    // and so is one with another session's CSRF value; nothing is written.
    let before = app.stored_events().await;
    let path = format!("/v1/workspaces/{ws}/segments");
    let segment = json!({ "name": "vip", "tags_any": ["vip"] });
    let (status, body) = ann_desk
        .send(&app, Method::POST, &path, Some(segment.clone()), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "csrf_required");
    let other = browser(&app, "ann").await;
    let (status, _) = ann_desk
        .send(
            &app,
            Method::POST,
            &path,
            Some(segment.clone()),
            Some(&other.csrf),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(app.stored_events().await, before);
    let (status, body) = ann_desk
        .send(
            &app,
            Method::POST,
            &path,
            Some(segment),
            Some(&ann_desk.csrf),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The actor recorded is the person behind the cookie.
    let types: Vec<String> = app
        .eventually(
            "ann's command in the audit",
            Duration::from_secs(10),
            || async {
                let (_, audit) = app
                    .get(&format!("/v1/workspaces/{ws}/audit?actor={ann}"))
                    .await;
                let types: Vec<String> = audit["events"]
                    .as_array()?
                    .iter()
                    .map(|e| e["event_type"].as_str().unwrap().to_owned())
                    .collect();
                (!types.is_empty()).then_some(types)
            },
        )
        .await;
    assert_eq!(types, ["SegmentDefined"]);

    // Signing out revokes the session: the same cookie, replayed, is refused.
    let (status, _) = ann_desk
        .send(
            &app,
            Method::DELETE,
            "/v1/desk/session",
            None,
            Some(&ann_desk.csrf),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = ann_desk.send(&app, Method::GET, "/v1/me", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    // A new installation's first sign-in: the administrator token; /me then lists every
    // workspace as admin.
    let (status, cookies, body) =
        sign_in(&app, json!({ "token": system_tests::ADMIN_TOKEN })).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let session = cookie_value(&cookies, "herald_session");
    assert_ne!(
        session,
        system_tests::ADMIN_TOKEN,
        "the cookie holds a session, not the token"
    );
    let admin = Browser {
        cookie: format!("herald_session={session}"),
        csrf: body["csrf"].as_str().unwrap().to_owned(),
    };
    let (_, me) = admin.send(&app, Method::GET, "/v1/me", None, None).await;
    assert_eq!(me["user"]["instance_admin"], true);
    assert_eq!(me["workspaces"][0]["id"], ws.as_str(), "{me}");
    // Signing out ends that session; the administrator token itself stays valid.
    let (status, _) = admin
        .send(
            &app,
            Method::DELETE,
            "/v1/desk/session",
            None,
            Some(&admin.csrf),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = admin.send(&app, Method::GET, "/v1/me", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/v1/me").await.0, StatusCode::OK);
    let (status, _, _) = sign_in(&app, json!({ "token": "not a token" })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_is_served_at_the_api_origin_and_its_pages_route_in_the_browser() {
    let dir = std::env::temp_dir().join(format!("herald-desk-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><title>Herald desk</title>",
    )
    .unwrap();
    std::fs::write(dir.join("assets/app.js"), "console.log('desk')").unwrap();
    let app = spawn_app_with(AppOptions {
        delivery: false,
        desk_dir: dir.clone(),
        ..Default::default()
    })
    .await;
    let get = |path: &str| {
        let url = format!("{}{path}", app.base);
        let client = app.client.clone();
        async move {
            let response = client.get(url).send().await.unwrap();
            let status = response.status();
            let kind = response
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            (status, kind, response.text().await.unwrap())
        }
    };
    for page in ["/", "/w/some-workspace/calendar", "/sign-in"] {
        let (status, kind, text) = get(page).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(kind.starts_with("text/html"), "{page}: {kind}");
        assert!(text.contains("Herald desk"), "{page}: {text}");
    }
    let (status, kind, text) = get("/assets/app.js").await;
    assert_eq!(
        (status, text.as_str()),
        (StatusCode::OK, "console.log('desk')")
    );
    assert!(kind.contains("javascript"), "{kind}");
    // Nothing outside the desk's folder is reachable.
    let (_, _, text) = get("/assets/../../../../etc/passwd").await;
    assert!(!text.contains("root:"), "{text}");
    // The API keeps its JSON answers, and only reads reach the desk.
    let (status, kind, text) = get("/v1/no-such-thing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        kind.starts_with("application/json") && text.contains("no_such_route"),
        "{text}"
    );
    let response = app
        .client
        .post(format!("{}/somewhere", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    app.cleanup().await;

    // Without a built desk, the page says how to build it.
    let app = spawn_app_with(AppOptions {
        delivery: false,
        desk_dir: dir.join("missing"),
        ..Default::default()
    })
    .await;
    let text = app
        .client
        .get(format!("{}/", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("scripts/herald up"), "{text}");
    app.cleanup().await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// Reads server-sent events from `response` until `found` accepts one (or the time is up).
async fn next_change(
    response: &mut reqwest::Response,
    buffer: &mut String,
    found: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let data = frame.lines().find_map(|l| l.strip_prefix("data: "));
            if let (true, Some(data)) = (frame.contains("event: change"), data) {
                let change: Value = serde_json::from_str(data).unwrap();
                if found(&change) {
                    return change;
                }
            }
        }
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("a change within 15 s")
            .unwrap()
            .expect("the stream stays open");
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_changes_reach_the_desk_of_their_workspace_only() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, -100_700).await;
    let other = app
        .post_ok(
            "/v1/workspaces",
            json!({"name": "Other"}),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut live = app
        .client
        .get(format!("{}/v1/workspaces/{ws}/live", app.base))
        .bearer_auth(system_tests::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);
    assert!(
        live.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut buffer = String::new();
    // Another workspace's change first: it must not arrive.
    app.post_ok(
        &format!("/v1/workspaces/{other}/segments"),
        json!({ "name": "elsewhere", "tags_any": ["x"] }),
        StatusCode::CREATED,
    )
    .await;
    let post = app.plan(&ws, &[&chat], "live", Duration::ZERO).await;
    let planned = next_change(&mut live, &mut buffer, |c| c["type"] != "ChatConnected").await;
    assert_eq!(
        planned,
        json!({ "type": "PostPlanned", "stream": "post", "id": post, "post_id": post, "sequence": 1 })
    );
    app.approve(&ws, &post).await;
    // A delivery's outcome names its post.
    let delivered = next_change(&mut live, &mut buffer, |c| c["stream"] == "delivery").await;
    assert_eq!(delivered["type"], "PostDelivered");
    assert_eq!(delivered["post_id"], post.as_str());
    drop(live);

    // A stranger to the workspace gets the answer of a workspace that does not exist.
    let stranger = app.person("stranger").await;
    let _ = stranger;
    let token = app.sign_in("stranger").await;
    let (status, _) = app
        .request_as(
            Some(&token),
            Method::GET,
            &format!("/v1/workspaces/{ws}/live"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_name_what_needs_attention_and_the_inbox_shows_what_the_sandbox_received() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let fine = app.connect_chat(&ws, &bot, -100_801).await;
    let dropped = app.connect_chat(&ws, &bot, 8_802).await;
    let gone = app.connect_chat(&ws, &bot, -100_803).await;
    let blocked = app.connect_chat(&ws, &bot, 8_804).await;
    app.sandbox
        .inject(FaultRule::new(Fault::AcceptThenDrop).for_chat(8_802));
    app.sandbox
        .inject(FaultRule::new(Fault::ChatNotFound).for_chat(-100_803));
    app.sandbox.inject(
        FaultRule::new(Fault::Forbidden {
            description: "Forbidden: bot was blocked by the user".into(),
        })
        .for_chat(8_804),
    );
    let post = app
        .plan(
            &ws,
            &[&fine, &dropped, &gone, &blocked],
            "hi there",
            Duration::ZERO,
        )
        .await;
    let waiting = app
        .plan(&ws, &[&fine], "still waiting", Duration::from_secs(3600))
        .await;
    app.approve(&ws, &post).await;
    app.settled(&ws, &post, Duration::from_secs(20)).await;

    let ops: Value = app
        .eventually(
            "the operations view to show the outcomes",
            Duration::from_secs(10),
            || async {
                let (_, ops) = app.get(&format!("/v1/workspaces/{ws}/operations")).await;
                // Each outcome reaches the view through its own projection: wait for all of
                // them (the blocked chat's failure and the chat's block can land apart).
                let blocked_shown = ops["blocked_chats"].as_array()?.len() == 1;
                let failures_shown = ops["failed"].as_array()?.len() == 2;
                (ops["in_doubt"].as_array()?.len() == 1 && blocked_shown && failures_shown)
                    .then_some(ops)
            },
        )
        .await;
    assert_eq!(ops["in_doubt"][0]["post_id"], post.as_str());
    assert_eq!(ops["in_doubt"][0]["chat_id"], dropped.as_str());
    let failed: Vec<&str> = ops["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["chat_id"].as_str().unwrap())
        .collect();
    assert_eq!(failed.len(), 2, "{ops}");
    assert!(failed.contains(&gone.as_str()) && failed.contains(&blocked.as_str()));
    assert!(
        ops["failed"][0]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    assert_eq!(ops["blocked_chats"][0]["id"], blocked.as_str());
    assert_eq!(ops["waiting_approval"], 1, "{waiting} waits: {ops}");
    assert_eq!(ops["paused_bots"], json!([]));
    for advice in ["in_doubt_advice", "failed_advice", "blocked_advice"] {
        assert!(
            ops[advice].as_str().is_some_and(|a| a.len() > 20),
            "{advice}"
        );
    }

    // The bots view: never the token.
    let (_, bots) = app.get(&format!("/v1/workspaces/{ws}/bots")).await;
    assert_eq!(bots["bots"][0]["id"], bot.as_str());
    assert_eq!(bots["bots"][0]["telegram_bot_id"], 123456);
    assert!(
        !bots
            .to_string()
            .contains(BOT_TOKEN.split(':').nth(1).unwrap())
    );

    // The sandbox inbox: what the emulator took from this workspace's bots, entities parsed.
    let (status, inbox) = app
        .get(&format!("/v1/workspaces/{ws}/sandbox/messages"))
        .await;
    assert_eq!(status, StatusCode::OK, "{inbox}");
    let mut chats: Vec<i64> = inbox["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["chat_id"].as_i64().unwrap())
        .collect();
    chats.sort();
    assert_eq!(
        chats,
        [-100_801, 8_802],
        "the delivered and the accepted-then-dropped"
    );
    assert_eq!(inbox["messages"][0]["text"], "hi there");
    assert_eq!(
        inbox["messages"][0]["received_at"]
            .as_str()
            .map(|t| t.len() > 10),
        Some(true)
    );

    // The desk tells the sandbox about a channel through the API's own origin (an admin's
    // action), then connects it like any chat.
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{ws}/sandbox/chats"),
            json!({"chat_id": -100_805, "type": "channel", "title": "Desk news"}),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let connected = app
        .post_ok(
            &format!("/v1/workspaces/{ws}/chats"),
            json!({"bot_id": bot, "telegram_chat_id": -100_805, "title": "x"}),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(
        connected["type"], "channel",
        "the sandbox's type: {connected}"
    );
    let (_, shown) = app
        .get(&format!(
            "/v1/workspaces/{ws}/chats/{}",
            connected["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        shown["title"], "Desk news",
        "Telegram's title is kept: {shown}"
    );
    let (status, body) = app
        .post(
            &format!("/v1/workspaces/{ws}/sandbox/chats"),
            json!({"chat_id": "not a number"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "invalid_sandbox_chat");

    // Another workspace with its own bot sees none of it.
    let other = app
        .post_ok(
            "/v1/workspaces",
            json!({"name": "Other"}),
            StatusCode::CREATED,
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, inbox) = app
        .get(&format!("/v1/workspaces/{other}/sandbox/messages"))
        .await;
    assert_eq!(inbox["messages"], json!([]));
    let (_, ops) = app.get(&format!("/v1/workspaces/{other}/operations")).await;
    assert_eq!(ops["in_doubt"], json!([]));
    assert_eq!(ops["failed"], json!([]));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_explorer_filters_by_actor_post_chat_and_time() {
    let app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let a = app.connect_chat(&ws, &bot, -100_901).await;
    let b = app.connect_chat(&ws, &bot, -100_902).await;
    let to_a = app.plan(&ws, &[&a], "to a", Duration::ZERO).await;
    let to_b = app.plan(&ws, &[&b], "to b", Duration::ZERO).await;
    app.approve(&ws, &to_a).await;
    app.settled(&ws, &to_a, Duration::from_secs(15)).await;
    let audit = |query: String| {
        let path = format!("/v1/workspaces/{ws}/audit?{query}");
        let app = &app;
        async move {
            let (status, body) = app.get(&path).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            body["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["event_type"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let of_a: Vec<String> = app
        .eventually(
            "the delivery in the audit",
            Duration::from_secs(10),
            || async {
                let types = audit(format!("post_id={to_a}")).await;
                types.contains(&"PostDelivered".to_owned()).then_some(types)
            },
        )
        .await;
    assert_eq!(
        of_a,
        [
            "PostPlanned",
            "PostApprovalGiven",
            "PostApproved",
            "PostDelivered"
        ]
    );
    // A chat's: its connection, the post that targets it and its delivery; not the other's.
    let of_chat_b = audit(format!("chat_id={b}")).await;
    assert_eq!(of_chat_b, ["ChatConnected", "PostPlanned"]);
    // Who: the reviewer approved; the administrator did the rest.
    let (_, me) = app
        .request_as(Some(&app.reviewer_token), Method::GET, "/v1/me", None)
        .await;
    let reviewer = me["user"]["id"].as_str().unwrap();
    let by_reviewer = audit(format!("actor={reviewer}")).await;
    assert_eq!(by_reviewer, ["PostApprovalGiven", "PostApproved"]);
    // When: nothing is later than now; everything is later than an hour ago.
    let now = chrono::Utc::now();
    let all = audit(String::new()).await;
    assert!(
        audit(format!(
            "from={}",
            urlish(now + chrono::TimeDelta::seconds(5))
        ))
        .await
        .is_empty()
    );
    assert_eq!(
        audit(format!(
            "from={}",
            urlish(now - chrono::TimeDelta::hours(1))
        ))
        .await,
        all
    );
    assert!(
        audit(format!("to={}", urlish(now - chrono::TimeDelta::hours(1))))
            .await
            .is_empty()
    );
    // Filters combine.
    let both = audit(format!("post_id={to_b}&actor={reviewer}")).await;
    assert!(both.is_empty(), "{both:?}");
    // A filter that is not an id or a time is a clear 400.
    let (status, body) = app
        .get(&format!("/v1/workspaces/{ws}/audit?post_id=nope"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_query");
    app.cleanup().await;
}

/// An RFC 3339 time as a query value (`+` would read as a space).
fn urlish(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_models_say_what_is_in_force_not_only_what_was_set() {
    let app = spawn_app_with(AppOptions {
        delivery: false,
        ..Default::default()
    })
    .await;
    let (ws, bot) = app.workspace_with_bot().await;
    let (_, workspace) = app.get(&format!("/v1/workspaces/{ws}")).await;
    assert_eq!(workspace["in_doubt"], "flag", "{workspace}");
    app.set_in_doubt_policy(&ws, "resend").await;
    let (_, workspace) = app.get(&format!("/v1/workspaces/{ws}")).await;
    assert_eq!(workspace["in_doubt"], "resend");

    let chat = app.connect_chat(&ws, &bot, -100_990_001).await;
    let (_, shown) = app.get(&format!("/v1/workspaces/{ws}/chats/{chat}")).await;
    assert_eq!(shown["hourly_cap"], Value::Null, "none of its own");
    assert_eq!(
        shown["hourly_cap_in_force"],
        domain::limits::DEFAULT_CHAT_HOURLY_CAP,
        "{shown}"
    );
    let (status, _) = app
        .request(
            Method::PUT,
            &format!("/v1/workspaces/{ws}/chats/{chat}/limits"),
            Some(json!({"hourly_cap": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, shown) = app.get(&format!("/v1/workspaces/{ws}/chats/{chat}")).await;
    assert_eq!(
        (
            shown["hourly_cap"].clone(),
            shown["hourly_cap_in_force"].clone()
        ),
        (json!(5), json!(5))
    );
    app.cleanup().await;
}
