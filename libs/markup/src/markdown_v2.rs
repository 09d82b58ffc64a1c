//! `parse_mode=MarkdownV2`, as TDLib's `parse_markdown_v2` reads it.
//!
//! `\` escapes any ASCII character. ``_*[]()~`>#+-=|{}.!`` are errors unless escaped or used
//! as markers: `*bold*`, `_italic_`, `__underline__` (`__` is always underline, read greedily
//! from the left; a `\r` between markers, which Telegram deletes, separates them), `~strike~`,
//! `||spoiler||`, `` `code` ``, ```` ```lang\npre``` ````, `[text](url)`,
//! `![emoji](tg://emoji?id=…)`; markers close innermost first. `>` at the start of a line
//! quotes it (consecutive quoted lines are one blockquote, ending with the newline of its last
//! line); `||` at the end of the last line makes it expandable, and an empty `**` separates two
//! blockquotes. Inside code and pre only `` ` `` and `\` are special; in a link's URL, `)` and
//! `\`.

use crate::entity::{Entity, EntityKind, MentionedUser};
use crate::links::{self, is_space};
use crate::scan::{Bytes, utf16_units};

const RESERVED: &[u8] = b"_*[]()~`>#+-=|{}.!\n";

/// Entity types under TDLib's names, which its errors use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bold,
    Italic,
    Underline,
    Strikethrough,
    Spoiler,
    TextUrl,
    CustomEmoji,
    Code,
    Pre,
    PreCode,
    BlockQuote,
    ExpandableBlockQuote,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Bold => "Bold",
            Self::Italic => "Italic",
            Self::Underline => "Underline",
            Self::Strikethrough => "Strikethrough",
            Self::Spoiler => "Spoiler",
            Self::TextUrl => "TextUrl",
            Self::CustomEmoji => "CustomEmoji",
            Self::Code => "Code",
            Self::Pre => "Pre",
            Self::PreCode => "PreCode",
            Self::BlockQuote => "BlockQuote",
            Self::ExpandableBlockQuote => "ExpandableBlockQuote",
        }
    }
}

struct Open {
    kind: Kind,
    /// The language of a pre.
    argument: String,
    /// UTF-16 offset of the content.
    offset: usize,
    /// Byte offset of the marker in the source, for errors.
    marker: usize,
    /// Byte position of the content in the output.
    begin: usize,
}

fn reserved(c: u8) -> String {
    format!(
        "Character '{}' is reserved and must be escaped with the preceding '\\'",
        char::from(c)
    )
}

fn unclosed(open: &Open) -> String {
    format!(
        "Can't find end of {} entity at byte offset {}",
        open.kind.name(),
        open.marker
    )
}

/// An escapable character: any ASCII character but NUL.
fn escapable(b: u8) -> bool {
    (1..=126).contains(&b)
}

/// The text and entities of `text`, or the detail of Telegram's "can't parse entities".
pub(crate) fn parse(text: &str) -> Result<(String, Vec<Entity>), String> {
    let src = Bytes::new(text);
    let n = src.len();
    let mut out: Vec<u8> = Vec::with_capacity(text.len());
    let mut utf16 = 0;
    let mut entities = Vec::new();
    let mut nested: Vec<Open> = Vec::new();
    let mut have_blockquote = false;
    // Whether a `>` here would start (or continue) a quoted line.
    let mut can_start_blockquote = true;

    let mut i = 0;
    while i < n {
        let c = src.at(i);
        if c == b'\\' && escapable(src.at(i + 1)) {
            let escaped = src.at(i + 1);
            utf16 += 1;
            out.push(escaped);
            if escaped != b'\r' {
                can_start_blockquote = escaped == b'\n';
            }
            i += 2;
            continue;
        }
        let top = nested.last().map(|open| open.kind);
        let in_code = matches!(top, Some(Kind::Code | Kind::Pre | Kind::PreCode));
        let is_reserved = if in_code {
            c == b'`'
        } else {
            RESERVED.contains(&c)
        };
        if !is_reserved {
            let units = utf16_units(c);
            if units > 0 && c != b'\r' {
                can_start_blockquote = false;
            }
            utf16 += units;
            out.push(c);
            i += 1;
            continue;
        }

        let next = src.at(i + 1);
        let is_end = match top {
            None => false,
            Some(_) if have_blockquote && c == b'\n' && (i + 1 == n || next != b'>') => true,
            Some(Kind::Bold) => c == b'*',
            Some(Kind::Italic) => c == b'_' && next != b'_',
            Some(Kind::Code) => c == b'`',
            Some(Kind::Pre | Kind::PreCode) => c == b'`' && next == b'`' && src.at(i + 2) == b'`',
            Some(Kind::TextUrl | Kind::CustomEmoji) => c == b']',
            Some(Kind::Underline) => c == b'_' && next == b'_',
            Some(Kind::Strikethrough) => c == b'~',
            Some(Kind::Spoiler) => c == b'|' && next == b'|',
            Some(Kind::BlockQuote | Kind::ExpandableBlockQuote) => false,
        };

        if !is_end {
            let marker = i;
            let mut argument = String::new();
            let kind = match c {
                b'_' if next == b'_' => {
                    i += 2;
                    Kind::Underline
                }
                b'_' => {
                    i += 1;
                    Kind::Italic
                }
                b'*' => {
                    i += 1;
                    Kind::Bold
                }
                b'~' => {
                    i += 1;
                    Kind::Strikethrough
                }
                b'|' if next == b'|' => {
                    i += 2;
                    Kind::Spoiler
                }
                b'[' => {
                    i += 1;
                    Kind::TextUrl
                }
                b'`' if next == b'`' && src.at(i + 2) == b'`' => {
                    i += 3;
                    let mut kind = Kind::Pre;
                    // A language up to the first space, when something follows it.
                    let mut end = i;
                    while !is_space(src.at(end)) && src.at(end) != b'`' {
                        end += 1;
                    }
                    if i != end && end < n && src.at(end) != b'`' {
                        kind = Kind::PreCode;
                        argument = src.slice(i, end).to_owned();
                        i = end;
                    }
                    // One line break right after the opening marker is not content.
                    let (a, b) = (src.at(i), src.at(i + 1));
                    if matches!(a, b'\n' | b'\r') {
                        i += if matches!(b, b'\n' | b'\r') && a != b {
                            2
                        } else {
                            1
                        };
                    }
                    kind
                }
                b'`' => {
                    i += 1;
                    Kind::Code
                }
                b'!' if next == b'[' => {
                    i += 2;
                    Kind::CustomEmoji
                }
                b'\n' => {
                    utf16 += 1;
                    out.push(b'\n');
                    can_start_blockquote = true;
                    i += 1;
                    continue;
                }
                b'>' if can_start_blockquote => {
                    i += 1;
                    if have_blockquote {
                        // The next line of the same blockquote.
                        continue;
                    }
                    have_blockquote = true;
                    Kind::BlockQuote
                }
                _ => return Err(reserved(c)),
            };
            nested.push(Open {
                kind,
                argument,
                offset: utf16,
                marker,
                begin: out.len(),
            });
            continue;
        }

        // The end of the innermost entity.
        let mut kind = top.unwrap_or(Kind::BlockQuote);
        if c == b'\n' && kind != Kind::BlockQuote {
            // Only `||` right before the newline (the expandable mark) may still be open.
            let Some(open) = nested.last() else {
                return Err(reserved(c));
            };
            let mark = kind == Kind::Spoiler
                && (open.marker + 2 == i || (open.marker + 3 == i && out.last() == Some(&b'\r')));
            if !mark {
                return Err(unclosed(open));
            }
            nested.pop();
            match nested.last() {
                Some(open) if open.kind == Kind::BlockQuote => {}
                Some(open) => return Err(unclosed(open)),
                None => return Err(reserved(c)),
            }
            kind = Kind::ExpandableBlockQuote;
        }
        let Some(open) = nested.pop() else {
            return Err(reserved(c));
        };
        let mut skip = utf16 == open.offset;
        let mut entity = None;
        match kind {
            Kind::Bold | Kind::Italic | Kind::Code | Kind::Strikethrough => i += 1,
            Kind::Underline | Kind::Spoiler => i += 2,
            Kind::Pre | Kind::PreCode => i += 3,
            Kind::TextUrl => {
                let url = if src.at(i + 1) != b'(' {
                    // `[text]` links to its own text.
                    i += 1;
                    String::from_utf8_lossy(&out[open.begin..]).into_owned()
                } else {
                    i += 2;
                    let url_begin = i;
                    let url = read_url(&src, &mut i).ok_or_else(|| {
                        format!("Can't find end of a URL at byte offset {url_begin}")
                    })?;
                    i += 1;
                    url
                };
                if let Some(id) = links::link_user_id(&url) {
                    entity = Some(EntityKind::TextMention {
                        user: MentionedUser { id },
                    });
                } else if let Some(url) = links::checked_link(&url) {
                    entity = Some(EntityKind::TextLink { url });
                } else {
                    skip = true;
                }
            }
            Kind::CustomEmoji => {
                if src.at(i + 1) != b'(' {
                    return Err("Custom emoji entity must contain a tg://emoji URL".to_owned());
                }
                i += 2;
                let url_begin = i;
                let url = read_url(&src, &mut i).ok_or_else(|| {
                    format!("Can't find end of a custom emoji URL at byte offset {url_begin}")
                })?;
                i += 1;
                match links::link_custom_emoji_id(&url)? {
                    0 => skip = true,
                    id => {
                        entity = Some(EntityKind::CustomEmoji {
                            custom_emoji_id: id.to_string(),
                        });
                    }
                }
            }
            Kind::BlockQuote | Kind::ExpandableBlockQuote => {
                // The newline ending its last line belongs to the blockquote.
                have_blockquote = false;
                out.push(b'\n');
                utf16 += 1;
                can_start_blockquote = true;
                skip = false;
                i += 1;
            }
        }
        if !skip {
            let kind = match (entity, kind) {
                (Some(entity), _) => entity,
                (None, Kind::Bold) => EntityKind::Bold,
                (None, Kind::Italic) => EntityKind::Italic,
                (None, Kind::Underline) => EntityKind::Underline,
                (None, Kind::Strikethrough) => EntityKind::Strikethrough,
                (None, Kind::Spoiler) => EntityKind::Spoiler,
                (None, Kind::Code) => EntityKind::Code,
                (None, Kind::Pre) => EntityKind::Pre { language: None },
                (None, Kind::PreCode) => EntityKind::Pre {
                    language: Some(open.argument),
                },
                (None, Kind::BlockQuote) => EntityKind::Blockquote,
                (None, Kind::ExpandableBlockQuote) => EntityKind::ExpandableBlockquote,
                // Links and custom emoji either set `entity` or are skipped.
                (None, Kind::TextUrl | Kind::CustomEmoji) => continue,
            };
            entities.push(Entity::new(kind, open.offset, utf16 - open.offset));
        }
    }
    if have_blockquote {
        // A blockquote may run to the end of the text, its last line perhaps ending with `||`.
        let mut kind = EntityKind::Blockquote;
        if let Some(open) = nested.last()
            && open.kind == Kind::Spoiler
            && open.marker + 2 == n
        {
            nested.pop();
            kind = EntityKind::ExpandableBlockquote;
        }
        if let Some(open) = nested.last()
            && open.kind == Kind::BlockQuote
        {
            if utf16 != open.offset {
                entities.push(Entity::new(kind, open.offset, utf16 - open.offset));
            }
            nested.pop();
        }
    }
    if let Some(open) = nested.last() {
        return Err(unclosed(open));
    }
    crate::entity::sort(&mut entities);
    let text = String::from_utf8(out)
        .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned());
    Ok((text, entities))
}

/// Reads a URL up to an unescaped `)`, `i` at its first byte; `i` ends at the `)`. `None`
/// when there is none.
fn read_url(src: &Bytes<'_>, i: &mut usize) -> Option<String> {
    let mut url = Vec::new();
    while *i < src.len() && src.at(*i) != b')' {
        if src.at(*i) == b'\\' && escapable(src.at(*i + 1)) {
            url.push(src.at(*i + 1));
            *i += 2;
            continue;
        }
        url.push(src.at(*i));
        *i += 1;
    }
    (src.at(*i) == b')').then(|| String::from_utf8_lossy(&url).into_owned())
}
