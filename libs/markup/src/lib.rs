//! Telegram's markup, parsed as the Bot API parses it and rendered so that it parses back.
//!
//! Telegram parses a message's markup before anything else and refuses the whole request when it
//! cannot ("Bad Request: can't parse entities: ..."); its length limits then apply to the text
//! left *after* parsing, in UTF-16 code units. Planning and the sandbox both ask this crate, so
//! that what passes here passes in Telegram, with the same entities.
//!
//! [`parse`] follows TDLib (which the Bot API server runs): its parsers for HTML, MarkdownV2
//! and legacy Markdown with their error wording, then what Telegram does to every text before
//! sending it: control characters cleaned, entities nested its way, leading and trailing
//! spaces and newlines trimmed, an empty result refused. [`render_html`] and
//! [`render_markdown_v2`] write markup for a [`Parsed`] text.
//!
//! **API Boundary:** entities are the Bot API's `MessageEntity` (type names, fields, offsets and
//! lengths in UTF-16 code units of the parsed text); error details are Telegram's own words.

mod entity;
mod fix;
mod html;
mod links;
mod markdown;
mod markdown_v2;
mod render;
mod scan;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use entity::{Entity, EntityKind, MentionedUser};
pub use render::{render_html, render_markdown_v2};

/// Telegram's limit on a message's text after parsing, in UTF-16 code units.
pub const MAX_TEXT_UTF16: usize = 4096;
/// Telegram's limit on a media caption after parsing, in UTF-16 code units.
pub const MAX_CAPTION_UTF16: usize = 1024;

/// Above this many characters Telegram does not even try to parse markup.
const MAX_MARKUP_CHARS: usize = 65_536;

/// A `parse_mode` the Bot API understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParseMode {
    Html,
    MarkdownV2,
    /// Legacy Markdown, kept by Telegram for old bots.
    Markdown,
}

/// A `parse_mode` value the Bot API does not know ("unsupported parse_mode").
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unsupported parse_mode")]
pub struct UnsupportedParseMode;

impl ParseMode {
    /// The mode of a `parse_mode` parameter: matched case-insensitively, as Telegram does; empty
    /// means plain text.
    pub fn from_param(value: &str) -> Result<Option<Self>, UnsupportedParseMode> {
        match value.to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "html" => Ok(Some(Self::Html)),
            "markdownv2" => Ok(Some(Self::MarkdownV2)),
            "markdown" => Ok(Some(Self::Markdown)),
            _ => Err(UnsupportedParseMode),
        }
    }
}

/// A text as Telegram sends it: the visible text and its entities.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parsed {
    pub text: String,
    /// In Telegram's order: by offset, longer first.
    pub entities: Vec<Entity>,
}

impl Parsed {
    /// The text's length as Telegram limits it.
    pub fn utf16_len(&self) -> usize {
        utf16_len(&self.text)
    }
}

/// Why Telegram refuses a text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The markup does not parse; the detail is Telegram's, e.g. `Unsupported start tag "" at
    /// byte offset 2` (the Bot API answers "Bad Request: can't parse entities: <detail>").
    #[error("can't parse entities: {0}")]
    Entities(String),
    /// Nothing visible is left once parsed and trimmed ("Bad Request: message text is empty").
    #[error("message text is empty")]
    Empty,
}

/// `text` as Telegram reads it under `mode` (`None`: plain text).
pub fn parse(text: &str, mode: Option<ParseMode>) -> Result<Parsed, ParseError> {
    let (text, entities) = match mode {
        // Telegram does not parse an empty text, so its answer is that it is empty.
        Some(mode) if !text.is_empty() => {
            if text.chars().count() > MAX_MARKUP_CHARS {
                return Err(ParseError::Entities("Text is too long".to_owned()));
            }
            match mode {
                ParseMode::Html => html::parse(text),
                ParseMode::MarkdownV2 => markdown_v2::parse(text),
                ParseMode::Markdown => markdown::parse(text),
            }
            .map_err(ParseError::Entities)?
        }
        _ => (text.to_owned(), Vec::new()),
    };
    fix::fix_formatted_text(&text, entities)
}

/// Length as Telegram counts it: UTF-16 code units (a character outside the BMP, such as most
/// emoji, counts two).
pub fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}
