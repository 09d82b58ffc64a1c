//! `herald load` against a real Herald (system-test harness: real PostgreSQL, NATS JetStream
//! and the sandbox Telegram): every post is accepted and delivered exactly once.

use std::collections::HashSet;

use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: load::Args,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_post_is_accepted_and_delivered_exactly_once() {
    let app = system_tests::spawn_app().await;
    let cli = Cli::try_parse_from([
        "load",
        "--url",
        &app.base,
        "--token",
        system_tests::ADMIN_TOKEN,
        "--posts",
        "40",
        "--chats",
        "8",
        "--bots",
        "2",
        "--channel-share",
        "0.25",
        "--lead-time",
        "2s",
        "--concurrency",
        "8",
        "--timeout",
        "60s",
    ])
    .expect("valid flags");

    let summary = load::run(cli.args).await.expect("the load runs");
    println!("{summary}");

    assert_eq!(summary.accepted, 40, "{summary}");
    assert!(summary.rejected.is_empty(), "{summary}");
    assert_eq!(summary.delivered, 40, "{summary}");
    assert_eq!(
        (summary.failed, summary.unknown, summary.pending),
        (0, 0, 0)
    );
    assert_eq!(summary.channels, 2);
    assert!(summary.all_delivered());

    let messages = app.sandbox.messages(None);
    assert_eq!(messages.len(), 40, "the sandbox received every post once");
    let mut seen = HashSet::new();
    for message in &messages {
        assert!(
            seen.insert((message.chat_id, message.text.clone())),
            "chat {} got {:?} twice",
            message.chat_id,
            message.text
        );
    }
    let chats: HashSet<i64> = messages.iter().map(|m| m.chat_id).collect();
    assert_eq!(chats.len(), 8);
    assert_eq!(
        chats.iter().filter(|id| **id < 0).count(),
        2,
        "two channels"
    );
    assert_eq!(
        app.sandbox.stats().rate_limited,
        0,
        "five posts per chat stay within Telegram's limits"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_says_what_to_do() {
    let app = system_tests::spawn_app().await;
    let cli = Cli::try_parse_from(["load", "--url", &app.base, "--token", "wrong"]).unwrap();
    let error = load::run(cli.args).await.unwrap_err().to_string();
    assert!(
        error.contains("pass --token or HERALD_ADMIN_TOKEN as printed by herald up"),
        "{error}"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_herald_says_where_it_looked() {
    let cli = Cli::try_parse_from(["load", "--url", "http://127.0.0.1:9", "--token", "t"]).unwrap();
    let error = load::run(cli.args).await.unwrap_err().to_string();
    assert!(
        error.contains("cannot reach Herald at http://127.0.0.1:9"),
        "{error}"
    );
}
