//! A post's text as Telegram will see it. The `markup` crate decides, the parser the sandbox
//! uses too: markup Telegram cannot parse is refused when a post is planned or edited, since it
//! would fail permanently in every chat, and the length limit counts the text left after
//! parsing (UTF-16 code units: markup does not count, an astral-plane emoji counts twice).

use crate::{DomainError, ParseMode};

/// Telegram's limit for a text message, after parsing.
pub const MAX_TEXT_UTF16: usize = markup::MAX_TEXT_UTF16;

impl From<ParseMode> for markup::ParseMode {
    fn from(mode: ParseMode) -> Self {
        match mode {
            ParseMode::Html => Self::Html,
            ParseMode::MarkdownV2 => Self::MarkdownV2,
        }
    }
}

/// Refuses a text Telegram would refuse: markup it cannot parse, nothing visible once parsed
/// and trimmed, or more than [`MAX_TEXT_UTF16`] units.
pub(crate) fn check(text: &str, parse_mode: Option<ParseMode>) -> Result<(), DomainError> {
    let parsed = markup::parse(text, parse_mode.map(Into::into)).map_err(|err| match err {
        markup::ParseError::Entities(detail) => DomainError::TextUnparseable { detail },
        markup::ParseError::Empty => DomainError::TextEmpty,
    })?;
    let length = parsed.utf16_len();
    if length > MAX_TEXT_UTF16 {
        return Err(DomainError::TextTooLong {
            length,
            max: MAX_TEXT_UTF16,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn too_long(length: usize) -> Result<(), DomainError> {
        Err(DomainError::TextTooLong {
            length,
            max: MAX_TEXT_UTF16,
        })
    }

    #[test]
    fn plain_text_counts_utf16_units() {
        assert_eq!(check(&"😀".repeat(2048), None), Ok(()));
        // U+1F600 is outside the BMP: two UTF-16 units each.
        assert_eq!(check(&"😀".repeat(2049), None), too_long(4098));
        assert_eq!(check(&"é".repeat(4096), None), Ok(()));
        // Leading and trailing whitespace is trimmed before counting.
        assert_eq!(check(&format!("  {}\n", "a".repeat(4096)), None), Ok(()));
    }

    #[test]
    fn markup_does_not_count() {
        let html = Some(ParseMode::Html);
        assert_eq!(check(&format!("<b>{}</b>", "a".repeat(4096)), html), Ok(()));
        assert_eq!(check(&"&amp;".repeat(4097), html), too_long(4097));
        let markdown = Some(ParseMode::MarkdownV2);
        assert_eq!(
            check(&format!("*{}*", "\\.".repeat(4096)), markdown),
            Ok(())
        );
        assert_eq!(check("[link](https://example.org) \\.", markdown), Ok(()));
    }

    #[test]
    fn markup_telegram_cannot_parse_is_refused_with_its_reason() {
        let refused = |text, mode| match check(text, Some(mode)) {
            Err(DomainError::TextUnparseable { detail }) => detail,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(
            refused("1 < 2", ParseMode::Html),
            "Unsupported start tag \"\" at byte offset 2"
        );
        assert_eq!(check("1 &lt; 2", Some(ParseMode::Html)), Ok(()));
        assert_eq!(
            refused("<b>bold", ParseMode::Html),
            "Can't find end tag corresponding to start tag \"b\""
        );
        assert_eq!(
            refused("Version 1.0", ParseMode::MarkdownV2),
            "Character '.' is reserved and must be escaped with the preceding '\\'"
        );
        // The same text is fine without a parse mode.
        assert_eq!(check("1 < 2", None), Ok(()));
    }

    #[test]
    fn nothing_visible_is_empty() {
        assert_eq!(check(" \n", None), Err(DomainError::TextEmpty));
        assert_eq!(
            check("", Some(ParseMode::Html)),
            Err(DomainError::TextEmpty)
        );
        assert_eq!(
            check("<b> </b>", Some(ParseMode::Html)),
            Err(DomainError::TextEmpty)
        );
    }
}
