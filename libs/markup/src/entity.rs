//! Entities as the Bot API reports them (`MessageEntity`), and the order and classes Telegram
//! sorts and nests them by.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

/// A formatted span of a [`crate::Parsed`] text, shaped like the Bot API's `MessageEntity`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entity {
    #[serde(flatten)]
    pub kind: EntityKind,
    /// Start, in UTF-16 code units of the parsed text.
    pub offset: usize,
    /// Length, in UTF-16 code units.
    pub length: usize,
}

impl Entity {
    pub fn new(kind: EntityKind, offset: usize, length: usize) -> Self {
        Self {
            kind,
            offset,
            length,
        }
    }

    /// Where the entity ends, in UTF-16 code units.
    pub fn end(&self) -> usize {
        self.offset + self.length
    }
}

/// The entity types markup can produce, under the Bot API's names (`"type"`) and fields.
/// Entities Telegram finds in plain text by itself (URLs, mentions, hashtags, commands) are not
/// markup and are not produced.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EntityKind {
    Bold,
    Italic,
    Underline,
    Strikethrough,
    Spoiler,
    Code,
    Pre {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        language: Option<String>,
    },
    TextLink {
        url: String,
    },
    /// A link to `tg://user?id=…`. The Bot API reports the whole `User`; markup only names its id.
    TextMention {
        user: MentionedUser,
    },
    CustomEmoji {
        custom_emoji_id: String,
    },
    Blockquote,
    ExpandableBlockquote,
}

/// The user a [`EntityKind::TextMention`] points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MentionedUser {
    pub id: i64,
}

/// How Telegram (TDLib's `MessageEntity.cpp`) treats a type when it nests, splits and merges
/// entities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Bold, italic, underline, strikethrough, spoiler: split and merged freely; the index is
    /// TDLib's splittable type index.
    Splittable(usize),
    Blockquote,
    /// Code and pre: contain nothing.
    Pre,
    /// Links, mentions and custom emoji: never intersect one another.
    Continuous,
}

impl EntityKind {
    pub(crate) fn class(&self) -> Class {
        match self {
            Self::Bold => Class::Splittable(0),
            Self::Italic => Class::Splittable(1),
            Self::Underline => Class::Splittable(2),
            Self::Strikethrough => Class::Splittable(3),
            Self::Spoiler => Class::Splittable(4),
            Self::Blockquote | Self::ExpandableBlockquote => Class::Blockquote,
            Self::Code | Self::Pre { .. } => Class::Pre,
            Self::TextLink { .. } | Self::TextMention { .. } | Self::CustomEmoji { .. } => {
                Class::Continuous
            }
        }
    }

    /// Telegram's type priority: of two entities over the same range the lower sorts first
    /// (and is the outer one).
    pub(crate) fn priority(&self) -> u8 {
        match self {
            Self::Blockquote | Self::ExpandableBlockquote => 0,
            Self::Pre { language: Some(_) } => 10,
            Self::Pre { language: None } => 11,
            Self::Code => 20,
            Self::TextLink { .. } | Self::TextMention { .. } => 49,
            Self::Bold => 90,
            Self::Italic => 91,
            Self::Underline => 92,
            Self::Strikethrough => 93,
            Self::Spoiler => 94,
            Self::CustomEmoji { .. } => 99,
        }
    }

    /// One bit per TDLib type (a pre with a language is a type of its own there).
    pub(crate) fn type_bit(&self) -> u32 {
        let index = match self {
            Self::Bold => 0,
            Self::Italic => 1,
            Self::Underline => 2,
            Self::Strikethrough => 3,
            Self::Spoiler => 4,
            Self::Code => 5,
            Self::Pre { language: None } => 6,
            Self::Pre { language: Some(_) } => 7,
            Self::TextLink { .. } => 8,
            Self::TextMention { .. } => 9,
            Self::CustomEmoji { .. } => 10,
            Self::Blockquote => 11,
            Self::ExpandableBlockquote => 12,
        };
        1 << index
    }

    /// The splittable type of a TDLib splittable index.
    pub(crate) fn splittable(index: usize) -> Self {
        match index {
            0 => Self::Bold,
            1 => Self::Italic,
            2 => Self::Underline,
            3 => Self::Strikethrough,
            _ => Self::Spoiler,
        }
    }
}

/// Telegram's order: by offset, longer first, then by type priority.
pub(crate) fn telegram_order(a: &Entity, b: &Entity) -> Ordering {
    a.offset
        .cmp(&b.offset)
        .then(b.length.cmp(&a.length))
        .then(a.kind.priority().cmp(&b.kind.priority()))
}

pub(crate) fn sort(entities: &mut [Entity]) {
    entities.sort_by(telegram_order);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn serialises_like_the_bot_api() {
        let entities = [
            Entity::new(EntityKind::Bold, 0, 4),
            Entity::new(EntityKind::Pre { language: None }, 1, 2),
            Entity::new(
                EntityKind::Pre {
                    language: Some("rust".into()),
                },
                1,
                2,
            ),
            Entity::new(
                EntityKind::TextLink {
                    url: "https://example.org/".into(),
                },
                0,
                1,
            ),
            Entity::new(
                EntityKind::TextMention {
                    user: MentionedUser { id: 42 },
                },
                0,
                1,
            ),
            Entity::new(
                EntityKind::CustomEmoji {
                    custom_emoji_id: "5368324170671202286".into(),
                },
                0,
                2,
            ),
            Entity::new(EntityKind::ExpandableBlockquote, 0, 9),
        ];
        let value = serde_json::to_value(&entities).unwrap();
        assert_eq!(
            value,
            json!([
                {"type": "bold", "offset": 0, "length": 4},
                {"type": "pre", "offset": 1, "length": 2},
                {"type": "pre", "language": "rust", "offset": 1, "length": 2},
                {"type": "text_link", "url": "https://example.org/", "offset": 0, "length": 1},
                {"type": "text_mention", "user": {"id": 42}, "offset": 0, "length": 1},
                {"type": "custom_emoji", "custom_emoji_id": "5368324170671202286", "offset": 0, "length": 2},
                {"type": "expandable_blockquote", "offset": 0, "length": 9},
            ])
        );
        let back: Vec<Entity> = serde_json::from_value(value).unwrap();
        assert_eq!(back, entities);
    }
}
