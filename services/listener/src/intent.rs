//! What an update means for Herald, decided from the update alone (no IO).

use chrono::{DateTime, Utc};
use teloxide::types::{ChatMemberKind, Update, UpdateKind};

/// What a person or a chat's administrators did, as Herald records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intent {
    /// A person started the bot in their private chat (`/start`): their consent.
    Start {
        telegram_chat_id: i64,
        /// How the chat is titled when it is new to Herald: the person's first name.
        first_name: String,
        at: DateTime<Utc>,
    },
    /// A person asked the bot to stop (`/stop`) or blocked it: their opt-out.
    OptOut {
        telegram_chat_id: i64,
        reason: &'static str,
    },
    /// The bot's standing in a group or channel changed (added, removed, rights changed).
    Standing {
        telegram_chat_id: i64,
        kind: &'static str,
        title: Option<String>,
        /// Why the bot may no longer post there (`None`: it may).
        cannot_post: Option<String>,
    },
}

pub const STOP_REASON: &str = "the person sent /stop to the bot";
pub const BLOCK_REASON: &str = "the person blocked the bot";

/// The intent of `update`, if it has one Herald acts on (other messages, edits, callbacks
/// and the like have none).
pub fn of(update: &Update) -> Option<Intent> {
    match &update.kind {
        UpdateKind::Message(message) if message.chat.is_private() => {
            let telegram_chat_id = message.chat.id.0;
            match command(message.text()?)?.as_str() {
                "start" => Some(Intent::Start {
                    telegram_chat_id,
                    first_name: message
                        .from
                        .as_ref()
                        .map(|u| u.first_name.clone())
                        .or_else(|| message.chat.first_name().map(str::to_owned))
                        .filter(|n| !n.trim().is_empty())
                        .unwrap_or_else(|| format!("Telegram user {telegram_chat_id}")),
                    at: message.date,
                }),
                "stop" => Some(Intent::OptOut {
                    telegram_chat_id,
                    reason: STOP_REASON,
                }),
                _ => None,
            }
        }
        UpdateKind::MyChatMember(change) => {
            let telegram_chat_id = change.chat.id.0;
            let kind = delivery::telegram::chat_kind(&change.chat);
            let new = &change.new_chat_member.kind;
            if kind == "private" {
                // Unblocking is no consent: the person's next /start is.
                return matches!(new, ChatMemberKind::Banned(_)).then_some(Intent::OptOut {
                    telegram_chat_id,
                    reason: BLOCK_REASON,
                });
            }
            Some(Intent::Standing {
                telegram_chat_id,
                kind,
                title: change.chat.title().map(str::to_owned),
                cannot_post: delivery::telegram::posting_refusal(new, kind),
            })
        }
        _ => None,
    }
}

/// The command a message starts with, lowercased and without a `@botname` suffix:
/// `/Start@herald_bot promo` is `start`.
fn command(text: &str) -> Option<String> {
    let first = text.split_whitespace().next()?;
    let name = first.strip_prefix('/')?;
    let name = name.split('@').next().unwrap_or(name);
    (!name.is_empty()).then(|| name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn update(value: serde_json::Value) -> Update {
        // From text, as updates arrive: teloxide reads an update's kind from borrowed keys.
        let update: Update =
            serde_json::from_str(&value.to_string()).expect("an update teloxide reads");
        assert!(
            !matches!(update.kind, UpdateKind::Error(_)),
            "teloxide could not read it: {update:?}"
        );
        update
    }

    fn message(chat_id: i64, text: &str) -> Update {
        update(json!({
            "update_id": 1,
            "message": {
                "message_id": 5, "date": 1_764_000_000,
                "chat": {"id": chat_id, "type": "private", "first_name": "Alice"},
                "from": {"id": chat_id, "is_bot": false, "first_name": "Alice"},
                "text": text,
            }
        }))
    }

    fn member_change(chat: serde_json::Value, status: &str, extra: serde_json::Value) -> Update {
        let bot = json!({"id": 99, "is_bot": true, "first_name": "bot"});
        let mut new = json!({"status": status, "user": bot});
        if let (Some(new), Some(extra)) = (new.as_object_mut(), extra.as_object()) {
            new.extend(extra.clone());
        }
        if status == "kicked" {
            new["until_date"] = 0.into();
        }
        update(json!({
            "update_id": 2,
            "my_chat_member": {
                "chat": chat, "date": 1_764_000_000,
                "from": {"id": 7, "is_bot": false, "first_name": "Admin"},
                "old_chat_member": {"status": "member", "user": bot},
                "new_chat_member": new,
            }
        }))
    }

    #[test]
    fn start_and_stop_in_a_private_chat_are_consent_and_opt_out() {
        let Some(Intent::Start {
            telegram_chat_id,
            first_name,
            at,
        }) = of(&message(1001, "/start spring-fair"))
        else {
            panic!("a start");
        };
        assert_eq!((telegram_chat_id, first_name.as_str()), (1001, "Alice"));
        assert_eq!(at.timestamp(), 1_764_000_000);
        assert!(matches!(
            of(&message(1001, "/Start@herald_bot")),
            Some(Intent::Start { .. })
        ));
        assert_eq!(
            of(&message(1001, "/stop")),
            Some(Intent::OptOut {
                telegram_chat_id: 1001,
                reason: STOP_REASON
            })
        );
        for text in ["hello", "stop", "/stopp", "/", "please /stop"] {
            assert_eq!(of(&message(1001, text)), None, "{text:?}");
        }
    }

    #[test]
    fn a_person_blocking_the_bot_opts_out_and_unblocking_is_no_consent() {
        let private = json!({"id": 1001, "type": "private", "first_name": "Alice"});
        assert_eq!(
            of(&member_change(private.clone(), "kicked", json!({}))),
            Some(Intent::OptOut {
                telegram_chat_id: 1001,
                reason: BLOCK_REASON
            })
        );
        assert_eq!(of(&member_change(private, "member", json!({}))), None);
    }

    #[test]
    fn the_bots_standing_in_groups_and_channels_says_whether_it_may_post() {
        let channel = json!({"id": -1001234, "type": "channel", "title": "News"});
        let group = json!({"id": -42, "type": "group", "title": "Team"});
        let standing = |update: Update| match of(&update) {
            Some(Intent::Standing {
                kind,
                title,
                cannot_post,
                ..
            }) => (kind, title, cannot_post.is_some()),
            other => panic!("a standing, not {other:?}"),
        };
        assert_eq!(
            standing(member_change(channel.clone(), "left", json!({}))),
            ("channel", Some("News".into()), true)
        );
        assert_eq!(
            standing(member_change(channel.clone(), "member", json!({}))),
            ("channel", Some("News".into()), true),
            "a channel member that is no administrator cannot post"
        );
        let admin = json!({
            "can_be_edited": false, "is_anonymous": false, "can_manage_chat": true,
            "can_change_info": false, "can_post_messages": true, "can_edit_messages": false,
            "can_delete_messages": false, "can_manage_video_chats": false,
            "can_invite_users": false, "can_restrict_members": false, "can_promote_members": false,
        });
        assert_eq!(
            standing(member_change(channel, "administrator", admin)),
            ("channel", Some("News".into()), false)
        );
        assert_eq!(
            standing(member_change(group.clone(), "member", json!({}))),
            ("group", Some("Team".into()), false)
        );
        assert_eq!(
            standing(member_change(group, "kicked", json!({}))),
            ("group", Some("Team".into()), true)
        );
    }
}
