//! Telegram counts message length in UTF-16 code units of the text *after* entity parsing,
//! so markup does not count but every astral-plane emoji counts twice.

use crate::ParseMode;

/// Telegram's limit for a text message.
pub const MAX_TEXT_UTF16: usize = 4096;

/// Length of `text` as Telegram counts it for the given parse mode.
pub fn telegram_length(text: &str, parse_mode: Option<ParseMode>) -> usize {
    match parse_mode {
        None => text.encode_utf16().count(),
        Some(ParseMode::Html) => html_visible(text).encode_utf16().count(),
        Some(ParseMode::MarkdownV2) => markdown_visible(text).encode_utf16().count(),
    }
}

/// Visible text of an HTML-formatted message: tags removed, the four entities decoded.
fn html_visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match (in_tag, c) {
            (false, '<') => in_tag = true,
            (true, '>') => in_tag = false,
            (false, c) => out.push(c),
            (true, _) => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// Visible text of a MarkdownV2 message: escapes resolved, formatting markers dropped.
/// Link targets `](...)` are not visible either.
fn markdown_visible(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_link_target = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(escaped) = chars.next()
                    && !in_link_target
                {
                    out.push(escaped);
                }
            }
            ']' if chars.peek() == Some(&'(') => {
                chars.next();
                in_link_target = true;
            }
            ')' if in_link_target => in_link_target = false,
            _ if in_link_target => {}
            '*' | '_' | '~' | '|' | '`' | '[' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_counts_utf16_units() {
        assert_eq!(telegram_length("hello", None), 5);
        // U+1F600 is outside the BMP: two UTF-16 units.
        assert_eq!(telegram_length("😀", None), 2);
        assert_eq!(telegram_length("é", None), 1);
    }

    #[test]
    fn html_markup_does_not_count() {
        assert_eq!(
            telegram_length("<b>bold</b> &amp; x", Some(ParseMode::Html)),
            8
        );
    }

    #[test]
    fn markdown_markup_does_not_count() {
        assert_eq!(
            telegram_length(
                "*bold* \\. [link](https://example.org)",
                Some(ParseMode::MarkdownV2)
            ),
            11
        );
    }
}
