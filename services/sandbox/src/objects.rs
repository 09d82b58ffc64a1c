//! The Bot API objects the sandbox answers with (User, Chat, Message, …),
//! shaped so that teloxide deserializes them like real Telegram answers.

use chrono::{DateTime, Utc};
use markup::{Entity, Parsed};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Telegram's chat types. The sandbox has no chat registry, so the type is
/// inferred from the id the way Telegram allocates ids, unless overridden
/// with [`crate::Sandbox::set_chat_type`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatType {
    Private,
    Group,
    Supergroup,
    Channel,
}

/// Supergroups and channels have ids of the form `-100xxxxxxxxxx`.
const CHANNEL_ID_BOUND: i64 = -1_000_000_000_000;

impl ChatType {
    /// Positive ids are users (private chats), ids at or below
    /// `-1000000000000` supergroups (a channel cannot be told apart from its
    /// id; override it), other negative ids basic groups.
    pub fn infer(chat_id: i64) -> Self {
        if chat_id > 0 {
            Self::Private
        } else if chat_id <= CHANNEL_ID_BOUND {
            Self::Supergroup
        } else {
            Self::Group
        }
    }
}

/// Where the bot stands in a chat, as `getChatMember` reports it for the bot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BotStatus {
    Administrator,
    Member,
    Left,
    Kicked,
}

/// What the sandbox knows of a chat beyond its id: set with `POST /sandbox/chats`, otherwise
/// inferred (a chat exists; the bot is an administrator allowed to post in a channel and a
/// member elsewhere).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatSetup {
    pub chat_type: Option<ChatType>,
    pub title: Option<String>,
    /// A public group's or channel's @username (without the @).
    pub username: Option<String>,
    pub bot_status: Option<BotStatus>,
    pub can_post_messages: Option<bool>,
    /// `Some(false)`: Telegram knows no such chat (or the bot never saw it).
    pub exists: Option<bool>,
}

impl ChatSetup {
    pub(crate) fn exists(&self) -> bool {
        self.exists.unwrap_or(true)
    }

    pub(crate) fn bot_status(&self, chat_type: ChatType) -> BotStatus {
        self.bot_status.unwrap_or(match chat_type {
            ChatType::Channel => BotStatus::Administrator,
            _ => BotStatus::Member,
        })
    }

    pub(crate) fn can_post_messages(&self, chat_type: ChatType) -> bool {
        self.bot_status(chat_type) == BotStatus::Administrator
            && self.can_post_messages.unwrap_or(true)
    }
}

/// `getChatMember`'s answer for the bot.
pub(crate) fn bot_member(bot_id: i64, status: BotStatus, can_post_messages: bool) -> Value {
    let user = bot_user(bot_id);
    match status {
        BotStatus::Administrator => json!({
            "status": "administrator",
            "user": user,
            "can_be_edited": false,
            "is_anonymous": false,
            "can_manage_chat": true,
            "can_change_info": false,
            "can_post_messages": can_post_messages,
            "can_edit_messages": false,
            "can_delete_messages": false,
            "can_manage_video_chats": false,
            "can_invite_users": false,
            "can_restrict_members": false,
            "can_promote_members": false,
        }),
        BotStatus::Member => json!({ "status": "member", "user": user }),
        BotStatus::Left => json!({ "status": "left", "user": user }),
        BotStatus::Kicked => json!({ "status": "kicked", "user": user, "until_date": 0 }),
    }
}

/// The bot itself as a `User`.
pub(crate) fn bot_user(bot_id: i64) -> Value {
    json!({
        "id": bot_id,
        "is_bot": true,
        "first_name": "Sandbox bot",
        "username": format!("sandbox_{bot_id}_bot"),
    })
}

/// The answer of `getMe`: the bot user plus the bot-only flags teloxide's
/// `Me` requires.
pub(crate) fn me(bot_id: i64) -> Value {
    let mut me = bot_user(bot_id);
    if let Value::Object(fields) = &mut me {
        for (flag, value) in [
            ("can_join_groups", true),
            ("can_read_all_group_messages", false),
            ("supports_inline_queries", false),
            ("can_connect_to_business", false),
            ("has_main_web_app", false),
        ] {
            fields.insert(flag.to_owned(), Value::Bool(value));
        }
    }
    me
}

/// A `Chat` as embedded in messages, with `title` instead of the sandbox's own for groups
/// and channels when set.
pub(crate) fn chat(chat_id: i64, chat_type: ChatType, title: Option<&str>) -> Value {
    let mut chat = match chat_type {
        ChatType::Private => json!({
            "id": chat_id,
            "type": "private",
            "first_name": "Sandbox user",
        }),
        ChatType::Group => json!({
            "id": chat_id,
            "type": "group",
            "title": format!("Sandbox group {chat_id}"),
        }),
        ChatType::Supergroup => json!({
            "id": chat_id,
            "type": "supergroup",
            "title": format!("Sandbox supergroup {chat_id}"),
        }),
        ChatType::Channel => json!({
            "id": chat_id,
            "type": "channel",
            "title": format!("Sandbox channel {chat_id}"),
        }),
    };
    if let (Some(title), Some(fields)) = (title, chat.as_object_mut())
        && chat_type != ChatType::Private
    {
        fields.insert("title".to_owned(), json!(title));
    }
    chat
}

/// A `ChatFullInfo`, the answer of `getChat`: the chat plus the fields the
/// Bot API always includes there.
pub(crate) fn chat_full_info(chat_id: i64, chat_type: ChatType, title: Option<&str>) -> Value {
    let mut info = chat(chat_id, chat_type, title);
    if let Value::Object(fields) = &mut info {
        fields.insert("accent_color_id".to_owned(), json!(0));
        fields.insert("max_reaction_count".to_owned(), json!(11));
        fields.insert(
            "accepted_gift_types".to_owned(),
            json!({
                "unlimited_gifts": false,
                "limited_gifts": false,
                "unique_gifts": false,
                "premium_subscription": false,
            }),
        );
    }
    info
}

/// The `Message` answered by `sendMessage`: the text and entities as parsed
/// (`entities` only when there are some), as Telegram returns them. In
/// channels the sender is the channel itself (`sender_chat`, no `from`);
/// elsewhere it is the bot.
pub(crate) fn text_message(
    bot_id: i64,
    chat_id: i64,
    chat_type: ChatType,
    message_id: i32,
    date: DateTime<Utc>,
    parsed: &Parsed,
) -> Value {
    let chat = chat(chat_id, chat_type, None);
    let mut message = json!({
        "message_id": message_id,
        "date": date.timestamp(),
        "chat": chat.clone(),
        "text": parsed.text,
    });
    if let Value::Object(fields) = &mut message {
        if !parsed.entities.is_empty() {
            fields.insert("entities".to_owned(), message_entities(&parsed.entities));
        }
        if chat_type == ChatType::Channel {
            fields.insert("sender_chat".to_owned(), chat);
        } else {
            fields.insert("from".to_owned(), bot_user(bot_id));
        }
    }
    message
}

/// `MessageEntity`s: a text mention carries a whole `User`, of which only the
/// id is known, so the rest is the sandbox's stand-in person.
fn message_entities(entities: &[Entity]) -> Value {
    let mut value = json!(entities);
    for entity in value.as_array_mut().into_iter().flatten() {
        if let Some(user) = entity.get_mut("user") {
            let id = user["id"].clone();
            *user = json!({ "id": id, "is_bot": false, "first_name": "Sandbox user" });
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_type_is_inferred_from_the_id() {
        assert_eq!(ChatType::infer(42), ChatType::Private);
        assert_eq!(ChatType::infer(-42), ChatType::Group);
        assert_eq!(ChatType::infer(-999_999_999_999), ChatType::Group);
        assert_eq!(ChatType::infer(-1_000_000_000_000), ChatType::Supergroup);
        assert_eq!(ChatType::infer(-1_001_234_567_890), ChatType::Supergroup);
    }

    #[test]
    fn channel_messages_are_sent_by_the_channel() {
        let date = DateTime::<Utc>::UNIX_EPOCH;
        let x = Parsed {
            text: "x".into(),
            entities: vec![],
        };
        let message = text_message(1, -1_001, ChatType::Channel, 1, date, &x);
        assert!(message.get("from").is_none());
        assert!(message.get("entities").is_none());
        assert_eq!(message["sender_chat"]["type"], "channel");
        let message = text_message(1, 5, ChatType::Private, 1, date, &x);
        assert_eq!(message["from"]["id"], 1);
    }

    #[test]
    fn messages_carry_their_entities() {
        let parsed = markup::parse(
            "<b>hi</b> <a href=\"tg://user?id=7\">you</a>",
            Some(markup::ParseMode::Html),
        )
        .unwrap();
        let message = text_message(
            1,
            5,
            ChatType::Private,
            1,
            DateTime::<Utc>::UNIX_EPOCH,
            &parsed,
        );
        assert_eq!(message["text"], "hi you");
        assert_eq!(
            message["entities"],
            json!([
                {"type": "bold", "offset": 0, "length": 2},
                {
                    "type": "text_mention",
                    "user": {"id": 7, "is_bot": false, "first_name": "Sandbox user"},
                    "offset": 3,
                    "length": 3,
                },
            ])
        );
    }
}
