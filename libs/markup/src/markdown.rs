//! `parse_mode=Markdown` (legacy), as TDLib's `parse_markdown` reads it: `*bold*`, `_italic_`,
//! `` `code` ``, ```` ```lang pre``` ````, `[text](url)`; entities do not nest and `\` escapes
//! only ``_*`[``. Nothing else is reserved.

use crate::entity::{Entity, EntityKind, MentionedUser};
use crate::links::{self, is_space};
use crate::scan::utf16_units;

/// The text and entities of `text`, or the detail of Telegram's "can't parse entities".
pub(crate) fn parse(text: &str) -> Result<(String, Vec<Entity>), String> {
    // TDLib rewrites the text in place and reads the link text of `[text]` (no URL) from the
    // rewritten bytes; working on one buffer keeps that behaviour.
    let mut buf: Vec<u8> = text.as_bytes().to_vec();
    let size = buf.len();
    let at = |buf: &[u8], i: usize| buf.get(i).copied().unwrap_or(0);
    let mut written = 0;
    let mut utf16 = 0;
    let mut entities = Vec::new();

    let mut i = 0;
    while i < size {
        let c = buf[i];
        if c == b'\\' && matches!(at(&buf, i + 1), b'_' | b'*' | b'`' | b'[') {
            buf[written] = buf[i + 1];
            written += 1;
            utf16 += 1;
            i += 2;
            continue;
        }
        if !matches!(c, b'_' | b'*' | b'`' | b'[') {
            utf16 += utf16_units(c);
            buf[written] = c;
            written += 1;
            i += 1;
            continue;
        }

        let begin = i;
        let end_char = if c == b'[' { b']' } else { c };
        i += 1;
        let mut pre = false;
        let mut language = String::new();
        if c == b'`' && at(&buf, i) == b'`' && at(&buf, i + 1) == b'`' {
            i += 2;
            pre = true;
            let mut end = i;
            while !is_space(at(&buf, end)) && at(&buf, end) != b'`' {
                end += 1;
            }
            if i != end && end < size && at(&buf, end) != b'`' {
                language = String::from_utf8_lossy(&buf[i..end]).into_owned();
                i = end;
            }
            let (a, b) = (at(&buf, i), at(&buf, i + 1));
            if matches!(a, b'\n' | b'\r') {
                i += if matches!(b, b'\n' | b'\r') && a != b {
                    2
                } else {
                    1
                };
            }
        }

        let offset = utf16;
        while i < size
            && (buf[i] != end_char
                || (pre && !(at(&buf, i + 1) == b'`' && at(&buf, i + 2) == b'`')))
        {
            utf16 += utf16_units(buf[i]);
            buf[written] = buf[i];
            written += 1;
            i += 1;
        }
        if i == size {
            return Err(format!(
                "Can't find end of the entity starting at byte offset {begin}"
            ));
        }

        if utf16 != offset {
            let length = utf16 - offset;
            let kind = match c {
                b'_' => Some(EntityKind::Italic),
                b'*' => Some(EntityKind::Bold),
                b'[' => {
                    let url = if at(&buf, i + 1) != b'(' {
                        String::from_utf8_lossy(&buf[begin + 1..i]).into_owned()
                    } else {
                        i += 2;
                        let url_begin = i;
                        while i < size && buf[i] != b')' {
                            i += 1;
                        }
                        String::from_utf8_lossy(&buf[url_begin..i]).into_owned()
                    };
                    if let Some(id) = links::link_user_id(&url) {
                        Some(EntityKind::TextMention {
                            user: MentionedUser { id },
                        })
                    } else {
                        links::checked_link(&url).map(|url| EntityKind::TextLink { url })
                    }
                }
                _ if pre => Some(EntityKind::Pre {
                    language: (!language.is_empty()).then_some(language),
                }),
                _ => Some(EntityKind::Code),
            };
            if let Some(kind) = kind {
                entities.push(Entity::new(kind, offset, length));
            }
        }
        if pre {
            i += 2;
        }
        i += 1;
    }
    buf.truncate(written);
    let text = String::from_utf8(buf)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned());
    Ok((text, entities))
}
