//! `parse_mode=HTML`, as TDLib's `parse_html` reads it.
//!
//! Tags (case-insensitive): `b strong i em u ins s strike del a code pre tg-spoiler span
//! blockquote tg-emoji`; `</>` closes the innermost tag. A `<` that does not start one of them
//! is an error, as is an unclosed or mis-nested tag. `&lt; &gt; &amp; &quot;` and numeric
//! references are decoded (the `;` is optional); any other `&` is text. Attribute names are
//! case-sensitive; values are quoted (entities decoded) or name tokens (lowercased).

use crate::entity::{Entity, EntityKind, MentionedUser};
use crate::links::{self, is_space};
use crate::scan::{Bytes, utf16_units};

const TAGS: &[&str] = &[
    "a",
    "b",
    "strong",
    "i",
    "em",
    "s",
    "strike",
    "del",
    "u",
    "ins",
    "tg-spoiler",
    "tg-emoji",
    "span",
    "pre",
    "code",
    "blockquote",
];

struct Open {
    tag: String,
    argument: String,
    /// UTF-16 offset of the content.
    offset: usize,
    /// Byte position of the content in the output.
    begin: usize,
}

/// The text and entities of `text`, or the detail of Telegram's "can't parse entities".
pub(crate) fn parse(text: &str) -> Result<(String, Vec<Entity>), String> {
    let src = Bytes::new(text);
    let mut out: Vec<u8> = Vec::with_capacity(text.len());
    let mut utf16 = 0;
    let mut entities: Vec<Entity> = Vec::new();
    // The language of the last entity when it is a `<code class="language-…">`.
    let mut last_code_language = String::new();
    let mut nested: Vec<Open> = Vec::new();
    let mut surrogate = false;

    let mut i = 0;
    while i < src.len() {
        let c = src.at(i);
        if c == b'&'
            && let Some((code, next)) = decode_entity(&src, i)
        {
            utf16 += if code > 0xFFFF { 2 } else { 1 };
            push_code_point(&mut out, code, &mut surrogate);
            i = next;
            continue;
        }
        if c != b'<' {
            utf16 += utf16_units(c);
            out.push(c);
            i += 1;
            continue;
        }

        let begin = i;
        i += 1;
        if src.at(i) != b'/' {
            // A start tag.
            while !is_space(src.at(i)) && src.at(i) != b'>' {
                i += 1;
            }
            if src.at(i) == 0 {
                return Err(format!("Unclosed start tag at byte offset {begin}"));
            }
            let tag = src.lower(begin + 1, i);
            if !TAGS.contains(&tag.as_str()) {
                return Err(format!(
                    "Unsupported start tag \"{tag}\" at byte offset {begin}"
                ));
            }
            let unclosed_named = || format!("Unclosed start tag \"{tag}\" at byte offset {begin}");
            let mut argument = String::new();
            while src.at(i) != b'>' {
                while src.at(i) != 0 && is_space(src.at(i)) {
                    i += 1;
                }
                if src.at(i) == b'>' {
                    break;
                }
                let name_begin = i;
                while !is_space(src.at(i))
                    && !matches!(src.at(i), b'=' | b'>' | b'/' | b'"' | b'\'')
                {
                    i += 1;
                }
                let name = src.slice(name_begin, i);
                if name.is_empty() {
                    return Err(format!(
                        "Empty attribute name in the tag \"{tag}\" at byte offset {begin}"
                    ));
                }
                while src.at(i) != 0 && is_space(src.at(i)) {
                    i += 1;
                }
                if src.at(i) != b'=' {
                    if src.at(i) == 0 {
                        return Err(unclosed_named());
                    }
                    // A bare attribute: only `<blockquote expandable>` means something.
                    if tag == "blockquote" && name == "expandable" {
                        argument = "1".to_owned();
                    }
                    continue;
                }
                i += 1;
                while src.at(i) != 0 && is_space(src.at(i)) {
                    i += 1;
                }
                if src.at(i) == 0 {
                    return Err(unclosed_named());
                }
                let value = if !matches!(src.at(i), b'\'' | b'"') {
                    // A name token: letters, digits, periods and hyphens.
                    let token_begin = i;
                    while src.at(i).is_ascii_alphanumeric() || matches!(src.at(i), b'.' | b'-') {
                        i += 1;
                    }
                    if !is_space(src.at(i)) && src.at(i) != b'>' {
                        return Err(format!(
                            "Unexpected end of name token at byte offset {token_begin}"
                        ));
                    }
                    src.lower(token_begin, i)
                } else {
                    let quote = src.at(i);
                    i += 1;
                    let mut value = Vec::new();
                    let mut ignored = false;
                    while src.at(i) != quote && src.at(i) != 0 {
                        if src.at(i) == b'&'
                            && let Some((code, next)) = decode_entity(&src, i)
                        {
                            push_code_point(&mut value, code, &mut ignored);
                            i = next;
                            continue;
                        }
                        value.push(src.at(i));
                        i += 1;
                    }
                    if src.at(i) == quote {
                        i += 1;
                    }
                    String::from_utf8_lossy(&value).into_owned()
                };
                if src.at(i) == 0 {
                    return Err(format!("Unclosed start tag at byte offset {begin}"));
                }
                match (tag.as_str(), name) {
                    ("a", "href") | ("tg-emoji", "emoji-id") => argument = value,
                    ("code", "class") => {
                        if let Some(language) = value.strip_prefix("language-") {
                            argument = language.to_owned();
                        }
                    }
                    ("span", "class") => {
                        if let Some(class) = value.strip_prefix("tg-") {
                            argument = class.to_owned();
                        }
                    }
                    ("blockquote", "expandable") => argument = "1".to_owned(),
                    _ => {}
                }
            }
            if tag == "span" && argument != "spoiler" {
                return Err(format!(
                    "Tag \"span\" must have class \"tg-spoiler\" at byte offset {begin}"
                ));
            }
            nested.push(Open {
                tag,
                argument,
                offset: utf16,
                begin: out.len(),
            });
            i += 1;
            continue;
        }

        // An end tag.
        if nested.is_empty() {
            return Err(format!("Unexpected end tag at byte offset {begin}"));
        }
        while !is_space(src.at(i)) && src.at(i) != b'>' {
            i += 1;
        }
        let end_tag = src.lower(begin + 2, i);
        while is_space(src.at(i)) && src.at(i) != 0 {
            i += 1;
        }
        if src.at(i) != b'>' {
            return Err(format!("Unclosed end tag at byte offset {begin}"));
        }
        let Some(open) = nested.pop() else {
            return Err(format!("Unexpected end tag at byte offset {begin}"));
        };
        if !end_tag.is_empty() && end_tag != open.tag {
            return Err(format!(
                "Unmatched end tag at byte offset {begin}, expected \"</{}>\", found \"</{end_tag}>\"",
                open.tag
            ));
        }
        i += 1;
        // Empty entities are dropped.
        if utf16 <= open.offset {
            continue;
        }
        let (offset, length) = (open.offset, utf16 - open.offset);
        let same_range = |e: &Entity| e.offset == offset && e.length == length;
        let kind = match open.tag.as_str() {
            "i" | "em" => EntityKind::Italic,
            "b" | "strong" => EntityKind::Bold,
            "s" | "strike" | "del" => EntityKind::Strikethrough,
            "u" | "ins" => EntityKind::Underline,
            "tg-spoiler" | "span" => EntityKind::Spoiler,
            "tg-emoji" => {
                let id = links::to_integer_safe(&open.argument)
                    .filter(|&id| id != 0)
                    .ok_or_else(|| "Invalid custom emoji identifier specified".to_owned())?;
                EntityKind::CustomEmoji {
                    custom_emoji_id: id.to_string(),
                }
            }
            "a" => {
                let url = if open.argument.is_empty() {
                    String::from_utf8_lossy(&out[open.begin..]).into_owned()
                } else {
                    open.argument
                };
                if let Some(id) = links::link_user_id(&url) {
                    EntityKind::TextMention {
                        user: MentionedUser { id },
                    }
                } else if let Some(url) = links::checked_link(&url) {
                    EntityKind::TextLink { url }
                } else {
                    // Telegram keeps the text and drops a link it does not accept.
                    continue;
                }
            }
            "pre" => {
                // `<pre><code class="language-x">` is one pre with a language.
                if let Some(last) = entities.last_mut()
                    && last.kind == EntityKind::Code
                    && same_range(last)
                    && !last_code_language.is_empty()
                {
                    last.kind = EntityKind::Pre {
                        language: Some(std::mem::take(&mut last_code_language)),
                    };
                    continue;
                }
                EntityKind::Pre { language: None }
            }
            "code" => {
                if let Some(last) = entities.last_mut()
                    && last.kind == (EntityKind::Pre { language: None })
                    && same_range(last)
                    && !open.argument.is_empty()
                {
                    last.kind = EntityKind::Pre {
                        language: Some(open.argument),
                    };
                    last_code_language.clear();
                    continue;
                }
                entities.push(Entity::new(EntityKind::Code, offset, length));
                last_code_language = open.argument;
                continue;
            }
            _ if open.argument.is_empty() => EntityKind::Blockquote,
            _ => EntityKind::ExpandableBlockquote,
        };
        entities.push(Entity::new(kind, offset, length));
        last_code_language.clear();
    }
    if let Some(open) = nested.last() {
        return Err(format!(
            "Can't find end tag corresponding to start tag \"{}\"",
            open.tag
        ));
    }
    if surrogate {
        return Err("Text contains invalid Unicode characters after decoding HTML entities, check for unmatched surrogate code units".to_owned());
    }
    crate::entity::sort(&mut entities);
    // Only whole UTF-8 sequences were copied or encoded.
    let text = String::from_utf8(out)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned());
    Ok((text, entities))
}

/// `&lt;`, `&gt;`, `&amp;`, `&quot;`, `&#NN;`, `&#xHH;` at `pos` (TDLib's
/// `decode_html_entity`): the code point and the position after it.
fn decode_entity(src: &Bytes<'_>, pos: usize) -> Option<(u32, usize)> {
    let mut end = pos + 1;
    let code = if src.at(pos + 1) == b'#' {
        end += 1;
        let radix = if src.at(pos + 2) == b'x' {
            end += 1;
            16
        } else {
            10
        };
        let mut code: u64 = 0;
        while let Some(digit) = char::from(src.at(end)).to_digit(radix) {
            code = code
                .wrapping_mul(u64::from(radix))
                .wrapping_add(u64::from(digit));
            end += 1;
        }
        // Telegram takes at most 9 bytes of `&#…` and no NUL or code point from U+10FFFF on.
        if code == 0 || code >= 0x10_FFFF || end - pos >= 10 {
            return None;
        }
        u32::try_from(code).ok()?
    } else {
        while src.at(end).is_ascii_alphabetic() {
            end += 1;
        }
        match src.slice(pos + 1, end) {
            "lt" => u32::from('<'),
            "gt" => u32::from('>'),
            "amp" => u32::from('&'),
            "quot" => u32::from('"'),
            _ => return None,
        }
    };
    if src.at(end) == b';' {
        end += 1;
    }
    Some((code, end))
}

/// Appends a decoded code point; a lone surrogate cannot be text, which Telegram reports once
/// the markup is parsed.
fn push_code_point(out: &mut Vec<u8>, code: u32, surrogate: &mut bool) {
    match char::from_u32(code) {
        Some(ch) => {
            let mut buf = [0; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
        None => {
            *surrogate = true;
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
}
