//! Rotating the secret key: every bot token is re-encrypted under the new key, the old key can
//! then go, and delivery goes on under the new key alone.

use std::time::Duration;

use domain::Bot;
use platform::{Secret, TokenCipher};
use reqwest::StatusCode;
use system_tests::spawn_app;

fn cipher(key: &Secret<String>, previous: &[Secret<String>]) -> TokenCipher {
    TokenCipher::from_base64_key(key)
        .unwrap()
        .with_previous_keys(previous)
        .unwrap()
}

#[tokio::test]
async fn a_rotation_moves_every_token_to_the_new_key_and_delivery_needs_only_that_key() {
    let mut app = spawn_app().await;
    let (ws, bot) = app.workspace_with_bot().await;
    let chat = app.connect_chat(&ws, &bot, 9501).await;
    let before = app.plan(&ws, &[&chat], "before", Duration::ZERO).await;
    app.approve(&ws, &before).await;
    app.settled(&ws, &before, Duration::from_secs(20)).await;

    let old_key = Secret::new(app.secret_key.clone());
    let new_key = TokenCipher::generate_key();
    let old_id = cipher(&old_key, &[]).current_key_id().to_owned();
    let mut rotating = app.herald.clone();
    rotating.cipher = cipher(&new_key, std::slice::from_ref(&old_key));
    let new_id = rotating.cipher.current_key_id().to_owned();
    let counts = herald::keys::status(&rotating).await.unwrap();
    // One bot token, and one contact's key (its name is sealed under it).
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        [(old_id.clone(), (1, 1))]
    );

    // A key that reads nothing finds the token unreadable and changes nothing.
    let mut stranger = app.herald.clone();
    stranger.cipher = cipher(&TokenCipher::generate_key(), &[]);
    let refused = herald::keys::rotate(&stranger, &|_, _| {}).await.unwrap();
    assert_eq!(refused.reencrypted, 0);
    assert_eq!(refused.unreadable, [bot.parse::<uuid::Uuid>().unwrap()]);

    let rotation = herald::keys::rotate(&rotating, &|_, _| {}).await.unwrap();
    assert_eq!((rotation.bots, rotation.reencrypted), (1, 1));
    assert_eq!(rotation.subject_keys, 1);
    assert!(rotation.unreadable.is_empty() && rotation.unreadable_subjects.is_empty());
    let counts = herald::keys::status(&rotating).await.unwrap();
    assert_eq!(counts.into_iter().collect::<Vec<_>>(), [(new_id, (1, 1))]);
    // The contact's sealed name opens under the new key alone.
    let contact: domain::Chat = app.herald.store.load(chat.parse().unwrap()).await.unwrap();
    let opener = store::subjects::Opener::for_values(
        &app.herald.pool,
        &cipher(&new_key, &[]),
        [contact.title.as_str()],
    )
    .await
    .unwrap();
    assert_eq!(opener.open(&contact.title), "chat 9501");
    // Resumable: nothing left to do.
    let again = herald::keys::rotate(&rotating, &|_, _| {}).await.unwrap();
    assert_eq!(again.reencrypted, 0);

    // The old key alone can no longer read the bot's token; the new one alone can.
    let stored: Bot = app.herald.store.load(bot.parse().unwrap()).await.unwrap();
    assert!(
        cipher(&old_key, &[])
            .decrypt(&stored.encrypted_token)
            .is_err()
    );
    assert!(
        cipher(&new_key, &[])
            .decrypt(&stored.encrypted_token)
            .is_ok()
    );
    assert!(stored.paused.is_none());

    // Delivery restarted with the new key only.
    app.delivery.take().unwrap().stop().await;
    app.herald.cipher = cipher(&new_key, &[]);
    app.start_delivery();
    let after = app.plan(&ws, &[&chat], "after", Duration::ZERO).await;
    app.approve(&ws, &after).await;
    let settled = app.settled(&ws, &after, Duration::from_secs(20)).await;
    assert_eq!(settled["state"], "delivered", "{settled}");

    // The re-encryption is in the audit, by its own actor, and no token is anywhere in it.
    let audit = app
        .eventually(
            "the re-encryption in the audit",
            Duration::from_secs(10),
            || async {
                let (status, body) = app
                    .get(&format!("/v1/workspaces/{ws}/audit?limit=1000"))
                    .await;
                assert_eq!(status, StatusCode::OK);
                let found = body["events"].as_array()?.iter().any(|e| {
                    e["event_type"] == "BotTokenReencrypted" && e["actor"] == herald::keys::ACTOR
                });
                found.then_some(body)
            },
        )
        .await;
    assert!(
        !audit
            .to_string()
            .contains("AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw")
    );
    app.cleanup().await;
}
