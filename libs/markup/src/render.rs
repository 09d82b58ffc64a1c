//! Markup for a parsed text: HTML and MarkdownV2 that Telegram parses back into the same text
//! and entities.
//!
//! What is written is what Telegram keeps of the entities, nested its way (see `fix`): links
//! checked, formatting split around code and links and merged where it touches, nothing inside
//! code or pre, no link inside a link. The result is properly nested, which both markups need;
//! MarkdownV2 could not even write bold inside code, which Telegram would drop anyway.

use crate::entity::{Class, Entity, EntityKind};
use crate::links::is_space;
use crate::{Parsed, fix, utf16_len};

enum Event<'a> {
    Open(&'a Entity),
    Close(&'a Entity),
    /// A character and its UTF-16 offset.
    Char(usize, char),
}

/// The text as opening and closing entities and characters.
fn events<'a>(text: &'a str, entities: &'a [Entity]) -> Vec<Event<'a>> {
    let mut events = Vec::with_capacity(text.len() + 2 * entities.len());
    let mut open: Vec<&Entity> = Vec::new();
    let mut next = 0;
    let mut chars = text.chars();
    let mut pos = 0;
    loop {
        // Telegram's nesting has entities end innermost first; should two cross, the inner is
        // closed and reopened around the end of the outer.
        if open.iter().any(|e| e.end() <= pos) {
            let mut reopen = Vec::new();
            while open.iter().any(|e| e.end() <= pos) {
                let Some(top) = open.pop() else { break };
                events.push(Event::Close(top));
                if top.end() > pos {
                    reopen.push(top);
                }
            }
            for e in reopen.into_iter().rev() {
                events.push(Event::Open(e));
                open.push(e);
            }
        }
        while let Some(e) = entities.get(next)
            && e.offset <= pos
        {
            next += 1;
            events.push(Event::Open(e));
            open.push(e);
        }
        let Some(ch) = chars.next() else { break };
        events.push(Event::Char(pos, ch));
        pos += ch.len_utf16();
    }
    while let Some(e) = open.pop() {
        events.push(Event::Close(e));
    }
    events
}

/// What Telegram keeps of the entities of `parsed`, in its order.
fn kept(parsed: &Parsed) -> Vec<Entity> {
    fix::telegram_entities(utf16_len(&parsed.text), &parsed.entities)
}

fn escape_html(out: &mut String, text: &str, quote: bool) {
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if quote => out.push_str("&quot;"),
            ch => out.push(ch),
        }
    }
}

/// HTML (`parse_mode=HTML`) for `parsed`: `&`, `<` and `>` escaped, one tag per entity.
pub fn render_html(parsed: &Parsed) -> String {
    let mut out = String::with_capacity(parsed.text.len() + 16);
    let entities = kept(parsed);
    for event in events(&parsed.text, &entities) {
        match event {
            Event::Char(_, ch) => {
                let mut buf = [0; 4];
                escape_html(&mut out, ch.encode_utf8(&mut buf), false);
            }
            Event::Open(e) => match &e.kind {
                EntityKind::Bold => out.push_str("<b>"),
                EntityKind::Italic => out.push_str("<i>"),
                EntityKind::Underline => out.push_str("<u>"),
                EntityKind::Strikethrough => out.push_str("<s>"),
                EntityKind::Spoiler => out.push_str("<tg-spoiler>"),
                EntityKind::Code => out.push_str("<code>"),
                EntityKind::Pre { language } => match language.as_deref() {
                    Some(language) if !language.is_empty() => {
                        out.push_str("<pre><code class=\"language-");
                        escape_html(&mut out, language, true);
                        out.push_str("\">");
                    }
                    _ => out.push_str("<pre>"),
                },
                EntityKind::TextLink { url } => {
                    out.push_str("<a href=\"");
                    escape_html(&mut out, url, true);
                    out.push_str("\">");
                }
                EntityKind::TextMention { user } => {
                    out.push_str(&format!("<a href=\"tg://user?id={}\">", user.id));
                }
                EntityKind::CustomEmoji { custom_emoji_id } => {
                    out.push_str("<tg-emoji emoji-id=\"");
                    escape_html(&mut out, custom_emoji_id, true);
                    out.push_str("\">");
                }
                EntityKind::Blockquote => out.push_str("<blockquote>"),
                EntityKind::ExpandableBlockquote => out.push_str("<blockquote expandable>"),
            },
            Event::Close(e) => out.push_str(match &e.kind {
                EntityKind::Bold => "</b>",
                EntityKind::Italic => "</i>",
                EntityKind::Underline => "</u>",
                EntityKind::Strikethrough => "</s>",
                EntityKind::Spoiler => "</tg-spoiler>",
                EntityKind::Code => "</code>",
                EntityKind::Pre { language } => match language.as_deref() {
                    Some(language) if !language.is_empty() => "</code></pre>",
                    _ => "</pre>",
                },
                EntityKind::TextLink { .. } | EntityKind::TextMention { .. } => "</a>",
                EntityKind::CustomEmoji { .. } => "</tg-emoji>",
                EntityKind::Blockquote | EntityKind::ExpandableBlockquote => "</blockquote>",
            }),
        }
    }
    out
}

/// Characters MarkdownV2 reserves outside code, and `\` itself.
const MARKDOWN_V2_SPECIAL: &str = "_*[]()~`>#+-=|{}.!\\";

/// MarkdownV2 output with what the next marker must know about the last one.
struct MarkdownV2 {
    out: String,
    /// The output ends with an italic or underline marker: a `_` marker next to it needs a
    /// `\r` between (`___` reads as underline, then italic).
    after_underscore: bool,
    /// The output ends with the newline that ended a blockquote: another blockquote right
    /// after it needs an empty `**` first, or it would continue the first one.
    after_blockquote: bool,
}

impl MarkdownV2 {
    fn push(&mut self, text: &str) {
        self.out.push_str(text);
        self.after_underscore = false;
        self.after_blockquote = false;
    }

    fn marker(&mut self, marker: &str) {
        if self.after_underscore && marker.starts_with('_') {
            self.out.push('\r');
        }
        self.push(marker);
        self.after_underscore = marker.ends_with('_');
    }

    fn escaped(&mut self, ch: char, special: &str) {
        if special.contains(ch) {
            self.out.push('\\');
        }
        self.out.push(ch);
        self.after_underscore = false;
        self.after_blockquote = false;
    }
}

fn escape_url(url: &str) -> String {
    url.chars()
        .flat_map(|ch| match ch {
            ')' | '\\' => vec!['\\', ch],
            ch => vec![ch],
        })
        .collect()
}

/// MarkdownV2 (`parse_mode=MarkdownV2`) for `parsed`: every reserved character escaped.
///
/// MarkdownV2 cannot say everything HTML can: a blockquote must start a line (one that does not
/// is left out) and end one, its last line's newline outside the entities it contains; a
/// language of a pre cannot hold spaces or `` ` `` (such a language is left out).
pub fn render_markdown_v2(parsed: &Parsed) -> String {
    let mut md = MarkdownV2 {
        out: String::with_capacity(parsed.text.len() + 16),
        after_underscore: false,
        after_blockquote: false,
    };
    // Open entities, and whether each was written (a blockquote not at a line start is not).
    let mut open: Vec<(&Entity, bool)> = Vec::new();
    // Whether the innermost open blockquote's last newline has been written.
    let mut quote_ended = false;
    let entities = kept(parsed);
    for event in events(&parsed.text, &entities) {
        match event {
            Event::Char(pos, ch) => {
                let in_code = open
                    .iter()
                    .rev()
                    .find(|(_, written)| *written)
                    .is_some_and(|(e, _)| e.kind.class() == Class::Pre);
                let quote = open
                    .iter()
                    .rev()
                    .find(|(e, written)| *written && e.kind.class() == Class::Blockquote)
                    .map(|(e, _)| *e);
                if in_code {
                    md.escaped(ch, "`\\");
                } else if ch == '\n'
                    && let Some(quote) = quote
                {
                    if pos + 1 == quote.end() {
                        if quote.kind == EntityKind::ExpandableBlockquote {
                            md.push("||");
                        }
                        md.push("\n");
                        quote_ended = true;
                    } else {
                        md.push("\n>");
                    }
                } else {
                    md.escaped(ch, MARKDOWN_V2_SPECIAL);
                }
            }
            Event::Open(e) => {
                let written = match &e.kind {
                    EntityKind::Blockquote | EntityKind::ExpandableBlockquote => {
                        let line_start = md.out.is_empty() || md.out.ends_with('\n');
                        if line_start {
                            if md.after_blockquote {
                                md.push("**");
                            }
                            md.push(">");
                            quote_ended = false;
                        }
                        line_start
                    }
                    EntityKind::Bold => {
                        md.marker("*");
                        true
                    }
                    EntityKind::Italic => {
                        md.marker("_");
                        true
                    }
                    EntityKind::Underline => {
                        md.marker("__");
                        true
                    }
                    EntityKind::Strikethrough => {
                        md.marker("~");
                        true
                    }
                    EntityKind::Spoiler => {
                        md.marker("||");
                        true
                    }
                    EntityKind::Code => {
                        md.marker("`");
                        true
                    }
                    EntityKind::Pre { language } => {
                        md.marker("```");
                        let language = language.as_deref().unwrap_or_default();
                        if !language.bytes().any(|b| is_space(b) || b == b'`') {
                            md.push(language);
                        }
                        md.push("\n");
                        true
                    }
                    EntityKind::TextLink { .. } | EntityKind::TextMention { .. } => {
                        md.marker("[");
                        true
                    }
                    EntityKind::CustomEmoji { .. } => {
                        md.marker("![");
                        true
                    }
                };
                open.push((e, written));
            }
            Event::Close(e) => {
                let written = match open.iter().rposition(|(o, _)| std::ptr::eq(*o, e)) {
                    Some(at) => open.remove(at).1,
                    None => false,
                };
                if !written {
                    continue;
                }
                match &e.kind {
                    EntityKind::Blockquote => md.after_blockquote = quote_ended,
                    EntityKind::ExpandableBlockquote => {
                        if !quote_ended {
                            md.push("||");
                        }
                        md.after_blockquote = quote_ended;
                    }
                    EntityKind::Bold => md.marker("*"),
                    EntityKind::Italic => md.marker("_"),
                    EntityKind::Underline => md.marker("__"),
                    EntityKind::Strikethrough => md.marker("~"),
                    EntityKind::Spoiler => md.marker("||"),
                    EntityKind::Code => md.marker("`"),
                    EntityKind::Pre { .. } => md.marker("```"),
                    EntityKind::TextLink { url } => md.marker(&format!("]({})", escape_url(url))),
                    EntityKind::TextMention { user } => {
                        md.marker(&format!("](tg://user?id={})", user.id));
                    }
                    EntityKind::CustomEmoji { custom_emoji_id } => {
                        md.marker(&format!("](tg://emoji?id={})", escape_url(custom_emoji_id)));
                    }
                }
            }
        }
    }
    md.out
}
