//! sendMessage validation: the 400s Telegram answers before sending.

use serde_json::json;
use teloxide::prelude::*;
use teloxide::types::{ChatId, MessageEntity, MessageEntityKind, ParseMode, Recipient};
use teloxide::{ApiError, RequestError};

use crate::common::{Harness, TOKEN, unlimited};

fn cant_parse(err: &RequestError) -> Option<&str> {
    match err {
        RequestError::Api(ApiError::CantParseEntities(description)) => Some(description),
        _ => None,
    }
}

#[tokio::test]
async fn empty_text() {
    let h = Harness::start(unlimited()).await;
    let err = h.bot.send_message(ChatId(1), "").await.expect_err("empty");
    assert!(
        matches!(err, RequestError::Api(ApiError::MessageTextIsEmpty)),
        "{err:?}"
    );
    let err = h
        .bot
        .send_message(ChatId(1), "<b> </b>")
        .parse_mode(ParseMode::Html)
        .await
        .expect_err("nothing visible");
    assert!(
        matches!(err, RequestError::Api(ApiError::MessageTextIsEmpty)),
        "{err:?}"
    );
    let (status, body) = h
        .post_json(&format!("/bot{TOKEN}/sendMessage"), &json!({"chat_id": 1}))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"ok": false, "error_code": 400, "description": "Bad Request: message text is empty"})
    );
    assert!(h.sandbox.messages(None).is_empty());
}

#[tokio::test]
async fn length_is_counted_in_utf16_units() {
    let h = Harness::start(unlimited()).await;
    // Each 😀 is two UTF-16 code units.
    let max = "😀".repeat(2048);
    h.bot
        .send_message(ChatId(1), max.clone())
        .await
        .expect("4096 units");
    let err = h
        .bot
        .send_message(ChatId(1), format!("{max}a"))
        .await
        .expect_err("4097 units");
    assert!(
        matches!(err, RequestError::Api(ApiError::MessageIsTooLong)),
        "{err:?}"
    );
    // Markup does not count.
    h.bot
        .send_message(ChatId(1), format!("<b>{max}</b>"))
        .parse_mode(ParseMode::Html)
        .await
        .expect("4096 visible units");
    assert_eq!(h.sandbox.messages(None).len(), 2);
}

#[tokio::test]
async fn bad_html() {
    let h = Harness::start(unlimited()).await;
    for (text, detail) in [
        (
            "<b>unclosed",
            "Can't find end tag corresponding to start tag \"b\"",
        ),
        ("1 < 2", "Unsupported start tag \"\" at byte offset 2"),
        (
            "<marquee>hi</marquee>",
            "Unsupported start tag \"marquee\" at byte offset 0",
        ),
        (
            "<b><i>x</b></i>",
            "Unmatched end tag at byte offset 7, expected \"</i>\", found \"</b>\"",
        ),
    ] {
        let err = h
            .bot
            .send_message(ChatId(1), text)
            .parse_mode(ParseMode::Html)
            .await
            .expect_err(text);
        assert_eq!(
            cant_parse(&err),
            Some(format!("Bad Request: can't parse entities: {detail}").as_str()),
            "{text}"
        );
    }
    let ok = h
        .bot
        .send_message(
            ChatId(1),
            "1 &lt; 2 <a href=\"https://e.x/?a=1&amp;b=2\">link</a>",
        )
        .parse_mode(ParseMode::Html)
        .await
        .expect("valid html");
    assert_eq!(ok.text(), Some("1 < 2 link"));
}

#[tokio::test]
async fn formatted_text_comes_back_with_its_entities() {
    let h = Harness::start(unlimited()).await;
    let sent = h
        .bot
        .send_message(
            ChatId(1),
            "<b>Herald</b> 😀 <a href=\"https://Example.org\">site</a> <i>x</i>",
        )
        .parse_mode(ParseMode::Html)
        .await
        .expect("valid html");
    // Offsets and lengths in UTF-16 units: the emoji counts two.
    assert_eq!(sent.text(), Some("Herald 😀 site x"));
    let entities = sent.entities().expect("entities");
    assert_eq!(entities[0], MessageEntity::bold(0, 6));
    assert!(
        matches!(&entities[1].kind, MessageEntityKind::TextLink { url } if url.as_str() == "https://example.org/"),
        "{entities:?}"
    );
    assert_eq!((entities[1].offset, entities[1].length), (10, 4));
    assert_eq!(entities[2], MessageEntity::italic(15, 1));
    // The inspection API shows them too, with the raw text as sent.
    let (_, body) = h.get("/sandbox/messages").await;
    let message = &body["messages"][0];
    assert!(
        message["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("<b>Herald</b>"))
    );
    assert_eq!(
        message["parsed"],
        json!({
            "text": "Herald 😀 site x",
            "entities": [
                {"type": "bold", "offset": 0, "length": 6},
                {"type": "text_link", "url": "https://example.org/", "offset": 10, "length": 4},
                {"type": "italic", "offset": 15, "length": 1},
            ],
        })
    );
}

#[tokio::test]
async fn markdown_v2_reserved_characters() {
    let h = Harness::start(unlimited()).await;
    let err = h
        .bot
        .send_message(ChatId(1), "Version 1.0!")
        .parse_mode(ParseMode::MarkdownV2)
        .await
        .expect_err("unescaped '.'");
    assert_eq!(
        cant_parse(&err),
        Some(
            "Bad Request: can't parse entities: Character '.' is reserved and must be escaped with the preceding '\\'"
        )
    );
    let ok = h
        .bot
        .send_message(ChatId(1), "*Version* 1\\.0\\!")
        .parse_mode(ParseMode::MarkdownV2)
        .await
        .expect("escaped");
    assert_eq!(ok.text(), Some("Version 1.0!"));
}

#[tokio::test]
async fn unsupported_parse_mode_and_unknown_chat() {
    let h = Harness::start(unlimited()).await;
    let (status, body) = h
        .post_json(
            &format!("/bot{TOKEN}/sendMessage"),
            &json!({"chat_id": 1, "text": "x", "parse_mode": "BBCode"}),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(body["description"], "Bad Request: unsupported parse_mode");
    let err = h
        .bot
        .send_message(Recipient::ChannelUsername("@herald_news".into()), "x")
        .await
        .expect_err("usernames are unknown");
    assert!(
        matches!(err, RequestError::Api(ApiError::ChatNotFound)),
        "{err:?}"
    );
}
