//! `parse_mode` validation and message length, as Telegram computes them.
//!
//! Telegram parses the markup of a message before anything else and rejects
//! the whole request when it cannot ("Bad Request: can't parse entities:
//! ..."); the 4096 limit then applies to the *visible* text, counted in UTF-16
//! code units. Herald must render markup that real Telegram accepts, so the
//! parsers below follow the Bot API server's own (TDLib's) rules and error
//! wording closely, but only validate: entities themselves are not built.
//!
//! What is checked:
//! * **HTML**: tags must be among `b strong i em u ins s strike del a code pre
//!   tg-spoiler span blockquote tg-emoji` (case-insensitive), properly nested
//!   and closed (`</>` closes the innermost tag); `span` needs
//!   `class="tg-spoiler"`, `tg-emoji` needs `emoji-id`; attributes are
//!   `name=value`, `name="value"` or `name='value'` (bare `expandable` on
//!   `blockquote`); a `<` that does not start a supported tag is an error.
//!   `&lt; &gt; &amp; &quot;` and numeric `&#NN;` / `&#xHH;` are decoded;
//!   any other `&` is literal text, as in Telegram.
//! * **MarkdownV2**: `\` escapes any ASCII character; the reserved characters
//!   ``_*[]()~`>#+-=|{}.!`` are errors unless escaped or used as markers:
//!   `*bold*`, `_italic_`, `__underline__`, `~strike~`, `||spoiler||`,
//!   `` `code` ``, ```` ```pre``` ```` (optional language), `[text](url)`,
//!   `![emoji](tg://emoji?id=…)`, `>` / `**>` at the start of a line
//!   (blockquote) and `||` ending an expandable blockquote line. Markers
//!   must be closed, innermost first; inside code and pre only `` ` `` and
//!   `\` are special; inside a link URL `)` must be escaped.
//! * **Markdown** (legacy): `*bold*`, `_italic_`, `` `code` ``,
//!   ```` ```pre``` ````, `[text](url)` must be closed; `\` escapes `_*`[`.
//! * Any other non-empty `parse_mode` is "unsupported parse_mode".

/// A `parse_mode` the Bot API understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParseMode {
    Html,
    MarkdownV2,
    Markdown,
}

impl ParseMode {
    /// Telegram matches parse modes case-insensitively; an empty value means
    /// plain text. `Err(())` means unsupported.
    pub(crate) fn from_param(value: &str) -> Result<Option<Self>, ()> {
        match value.to_ascii_lowercase().as_str() {
            "" => Ok(None),
            "html" => Ok(Some(Self::Html)),
            "markdownv2" => Ok(Some(Self::MarkdownV2)),
            "markdown" => Ok(Some(Self::Markdown)),
            _ => Err(()),
        }
    }
}

/// The visible text of `text` under `mode`, or the detail of Telegram's
/// "can't parse entities" error.
pub(crate) fn visible_text(text: &str, mode: Option<ParseMode>) -> Result<String, String> {
    match mode {
        None => Ok(text.to_owned()),
        Some(ParseMode::Html) => Html::new(text).parse(),
        Some(ParseMode::MarkdownV2) => MarkdownV2::new(text).parse(),
        Some(ParseMode::Markdown) => parse_markdown_legacy(text),
    }
}

/// Length as Telegram counts it: UTF-16 code units (an emoji outside the
/// BMP counts 2).
pub(crate) fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// Byte cursor over the source. Markup characters are all ASCII, so byte
/// positions where parsing stops are always char boundaries; slicing still
/// goes through `get` so malformed input can never panic.
struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    out: Vec<u8>,
}

impl<'a> Cursor<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            bytes: text.as_bytes(),
            out: Vec::with_capacity(text.len()),
        }
    }

    /// The byte at `i`, or 0 past the end (like TDLib's NUL-terminated
    /// scanning, which keeps the grammar code short).
    fn at(&self, i: usize) -> u8 {
        self.bytes.get(i).copied().unwrap_or(0)
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    fn slice(&self, from: usize, to: usize) -> &'a str {
        self.text.get(from..to).unwrap_or("")
    }

    fn push_char(&mut self, ch: char) {
        let mut buf = [0; 4];
        self.out
            .extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }

    fn finish(self) -> String {
        // Only whole UTF-8 sequences are copied, so this is always valid.
        String::from_utf8(self.out)
            .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned())
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0b' | b'\x0c')
}

const HTML_TAGS: &[&str] = &[
    "a",
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "code",
    "pre",
    "tg-spoiler",
    "span",
    "blockquote",
    "tg-emoji",
];

struct Html<'a> {
    cur: Cursor<'a>,
    /// Open tags, innermost last.
    open: Vec<String>,
}

impl<'a> Html<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            cur: Cursor::new(text),
            open: Vec::new(),
        }
    }

    fn parse(mut self) -> Result<String, String> {
        let mut i = 0;
        while i < self.cur.len() {
            let c = self.cur.at(i);
            if c == b'&'
                && let Some((ch, next)) = self.decode_entity(i)
            {
                self.cur.push_char(ch);
                i = next;
                continue;
            }
            if c != b'<' {
                self.cur.out.push(c);
                i += 1;
                continue;
            }
            i = if self.cur.at(i + 1) == b'/' {
                self.end_tag(i)?
            } else {
                self.start_tag(i)?
            };
        }
        if let Some(tag) = self.open.last() {
            return Err(format!(
                "Can't find end tag corresponding to start tag \"{tag}\""
            ));
        }
        Ok(self.cur.finish())
    }

    /// `&lt;`, `&gt;`, `&amp;`, `&quot;`, `&#NN;`, `&#xHH;` (the `;` is
    /// optional, as in TDLib). Returns the character and the next position.
    fn decode_entity(&self, pos: usize) -> Option<(char, usize)> {
        let cur = &self.cur;
        let mut end = pos + 1;
        let code = if cur.at(end) == b'#' {
            end += 1;
            let hex = cur.at(end) == b'x';
            if hex {
                end += 1;
            }
            let radix = if hex { 16 } else { 10 };
            let mut code: u32 = 0;
            while let Some(digit) = char::from(cur.at(end)).to_digit(radix) {
                code = code * radix + digit;
                if code >= 0x10_FFFF {
                    return None;
                }
                end += 1;
            }
            char::from_u32(code).filter(|&ch| ch != '\0')?
        } else {
            while cur.at(end).is_ascii_alphabetic() {
                end += 1;
            }
            match cur.slice(pos + 1, end) {
                "lt" => '<',
                "gt" => '>',
                "amp" => '&',
                "quot" => '"',
                _ => return None,
            }
        };
        if cur.at(end) == b';' {
            end += 1;
        }
        Some((code, end))
    }

    fn unclosed(begin: usize) -> String {
        format!("Unclosed start tag at byte offset {begin}")
    }

    /// Parses `<name attr=value ...>` starting at `begin`; returns the
    /// position after `>`.
    fn start_tag(&mut self, begin: usize) -> Result<usize, String> {
        let cur = &self.cur;
        let mut i = begin + 1;
        while i < cur.len() && !is_space(cur.at(i)) && cur.at(i) != b'>' {
            i += 1;
        }
        if i >= cur.len() {
            return Err(Self::unclosed(begin));
        }
        let name = cur.slice(begin + 1, i).to_ascii_lowercase();
        if !HTML_TAGS.contains(&name.as_str()) {
            return Err(format!(
                "Unsupported start tag \"{name}\" at byte offset {begin}"
            ));
        }
        let mut spoiler_class = false;
        let mut emoji_id = false;
        loop {
            while is_space(cur.at(i)) {
                i += 1;
            }
            if i >= cur.len() {
                return Err(Self::unclosed(begin));
            }
            if cur.at(i) == b'>' {
                break;
            }
            let attr_begin = i;
            while i < cur.len() && !is_space(cur.at(i)) && !matches!(cur.at(i), b'=' | b'>') {
                i += 1;
            }
            let attr = cur.slice(attr_begin, i).to_ascii_lowercase();
            if attr.is_empty() {
                return Err(format!(
                    "Empty attribute name in the tag \"{name}\" at byte offset {begin}"
                ));
            }
            while is_space(cur.at(i)) {
                i += 1;
            }
            if cur.at(i) != b'=' {
                if name == "blockquote" && attr == "expandable" {
                    continue;
                }
                return Err(format!(
                    "Expected equal sign in declaration of an attribute of the tag \"{name}\" at byte offset {begin}"
                ));
            }
            i += 1;
            while is_space(cur.at(i)) {
                i += 1;
            }
            if i >= cur.len() {
                return Err(Self::unclosed(begin));
            }
            let quote = cur.at(i);
            let value = if quote == b'"' || quote == b'\'' {
                i += 1;
                let value_begin = i;
                while i < cur.len() && cur.at(i) != quote {
                    i += 1;
                }
                let value = cur.slice(value_begin, i);
                if i < cur.len() {
                    i += 1;
                }
                value.to_owned()
            } else {
                let token_begin = i;
                while cur.at(i).is_ascii_alphanumeric() || matches!(cur.at(i), b'.' | b'-') {
                    i += 1;
                }
                if !is_space(cur.at(i)) && cur.at(i) != b'>' {
                    return Err(format!(
                        "Unexpected end of name token at byte offset {token_begin}"
                    ));
                }
                cur.slice(token_begin, i).to_ascii_lowercase()
            };
            if i >= cur.len() {
                return Err(Self::unclosed(begin));
            }
            match (name.as_str(), attr.as_str()) {
                ("span", "class") => spoiler_class = value == "tg-spoiler",
                ("tg-emoji", "emoji-id") => emoji_id = !value.is_empty(),
                _ => {}
            }
        }
        if name == "span" && !spoiler_class {
            return Err(format!(
                "Tag \"span\" must have class \"tg-spoiler\" at byte offset {begin}"
            ));
        }
        if name == "tg-emoji" && !emoji_id {
            return Err(format!(
                "Tag \"tg-emoji\" must have attribute \"emoji-id\" at byte offset {begin}"
            ));
        }
        self.open.push(name);
        Ok(i + 1)
    }

    /// Parses `</name>` (or `</>`) starting at `begin`; returns the position
    /// after `>`.
    fn end_tag(&mut self, begin: usize) -> Result<usize, String> {
        let cur = &self.cur;
        let Some(expected) = self.open.pop() else {
            return Err(format!("Unexpected end tag at byte offset {begin}"));
        };
        let mut i = begin + 2;
        while i < cur.len() && !is_space(cur.at(i)) && cur.at(i) != b'>' {
            i += 1;
        }
        let name = cur.slice(begin + 2, i).to_ascii_lowercase();
        while is_space(cur.at(i)) {
            i += 1;
        }
        if cur.at(i) != b'>' {
            return Err(format!("Unclosed end tag at byte offset {begin}"));
        }
        if !name.is_empty() && name != expected {
            return Err(format!(
                "Unmatched end tag at byte offset {begin}, expected \"</{expected}>\", found \"</{name}>\""
            ));
        }
        Ok(i + 1)
    }
}

/// MarkdownV2 entity kinds, named as TDLib names them in its errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Md {
    Bold,
    Italic,
    Underline,
    Strikethrough,
    Spoiler,
    TextUrl,
    CustomEmoji,
    Code,
    Pre,
}

const MD_RESERVED: &[u8] = b"_*[]()~`>#+-=|{}.!";

fn reserved(c: u8) -> String {
    format!(
        "Character '{}' is reserved and must be escaped with the preceding '\\'",
        char::from(c)
    )
}

/// An escapable character in MarkdownV2: any ASCII character but NUL.
fn escapable(b: u8) -> bool {
    (1..=126).contains(&b)
}

struct MarkdownV2<'a> {
    cur: Cursor<'a>,
    /// Open entities with the byte offset of their marker, innermost last.
    open: Vec<(Md, usize)>,
}

impl<'a> MarkdownV2<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            cur: Cursor::new(text),
            open: Vec::new(),
        }
    }

    fn line_start(&self, i: usize) -> bool {
        i == 0 || self.cur.at(i - 1) == b'\n'
    }

    fn parse(mut self) -> Result<String, String> {
        let mut i = 0;
        // Whether the current line is a blockquote line, where a trailing
        // `||` ends an expandable blockquote instead of opening a spoiler.
        let mut quote_line = false;
        while i < self.cur.len() {
            let c = self.cur.at(i);
            if c == b'\n' {
                quote_line = false;
            }
            if c == b'\\' && escapable(self.cur.at(i + 1)) {
                self.cur.out.push(self.cur.at(i + 1));
                i += 2;
                continue;
            }
            let top = self.open.last().map(|&(kind, _)| kind);
            let in_code = matches!(top, Some(Md::Code | Md::Pre));
            if (in_code && c != b'`') || !MD_RESERVED.contains(&c) {
                self.cur.out.push(c);
                i += 1;
                continue;
            }
            if !in_code && self.line_start(i) {
                if c == b'>' {
                    quote_line = true;
                    i += 1;
                    continue;
                }
                if self.cur.slice(i, i + 3) == "**>" {
                    quote_line = true;
                    i += 3;
                    continue;
                }
            }
            let next = self.cur.at(i + 1);
            let closes = match top {
                None => false,
                Some(Md::Bold) => c == b'*',
                Some(Md::Italic) => c == b'_' && next != b'_',
                Some(Md::Underline) => c == b'_' && next == b'_',
                Some(Md::Strikethrough) => c == b'~',
                Some(Md::Spoiler) => c == b'|' && next == b'|',
                Some(Md::TextUrl | Md::CustomEmoji) => c == b']',
                Some(Md::Code) => c == b'`',
                Some(Md::Pre) => c == b'`' && next == b'`' && self.cur.at(i + 2) == b'`',
            };
            i = if closes {
                self.close(i)?
            } else if quote_line
                && c == b'|'
                && next == b'|'
                && matches!(self.cur.at(i + 2), b'\n' | 0)
            {
                i + 2
            } else {
                self.open_entity(i)?
            };
        }
        if let Some((kind, offset)) = self.open.last() {
            return Err(format!(
                "Can't find end of {kind:?} entity at byte offset {offset}"
            ));
        }
        Ok(self.cur.finish())
    }

    /// Opens the entity whose marker starts at `i`; returns the position
    /// after the marker.
    fn open_entity(&mut self, i: usize) -> Result<usize, String> {
        let cur = &self.cur;
        let c = cur.at(i);
        let next = cur.at(i + 1);
        let (kind, mut after) = match c {
            b'_' if next == b'_' => (Md::Underline, i + 2),
            b'_' => (Md::Italic, i + 1),
            b'*' => (Md::Bold, i + 1),
            b'~' => (Md::Strikethrough, i + 1),
            b'|' if next == b'|' => (Md::Spoiler, i + 2),
            b'!' if next == b'[' => (Md::CustomEmoji, i + 2),
            b'[' => (Md::TextUrl, i + 1),
            b'`' if next == b'`' && cur.at(i + 2) == b'`' => (Md::Pre, i + 3),
            b'`' => (Md::Code, i + 1),
            _ => return Err(reserved(c)),
        };
        if kind == Md::Pre {
            // An optional language name up to the first space or newline.
            let mut end = after;
            while end < cur.len() && !is_space(cur.at(end)) && cur.at(end) != b'`' {
                end += 1;
            }
            if end != after && end < cur.len() && cur.at(end) != b'`' {
                after = end;
            }
            // One line break right after the opening marker is not content.
            let (a, b) = (cur.at(after), cur.at(after + 1));
            if matches!(a, b'\n' | b'\r') {
                after += if matches!(b, b'\n' | b'\r') && a != b {
                    2
                } else {
                    1
                };
            }
        }
        self.open.push((kind, i));
        Ok(after)
    }

    /// Closes the innermost entity whose end marker starts at `i`; returns
    /// the position after the marker (and after the URL of a link).
    fn close(&mut self, i: usize) -> Result<usize, String> {
        let Some((kind, _)) = self.open.pop() else {
            return Ok(i + 1);
        };
        let cur = &self.cur;
        Ok(match kind {
            Md::Underline | Md::Spoiler => i + 2,
            Md::Pre => i + 3,
            Md::TextUrl | Md::CustomEmoji if cur.at(i + 1) == b'(' => {
                let url_begin = i + 2;
                let mut j = url_begin;
                while j < cur.len() && cur.at(j) != b')' {
                    j += if cur.at(j) == b'\\' && escapable(cur.at(j + 1)) {
                        2
                    } else {
                        1
                    };
                }
                if cur.at(j) != b')' {
                    return Err(format!(
                        "Can't find end of a URL at byte offset {url_begin}"
                    ));
                }
                j + 1
            }
            _ => i + 1,
        })
    }
}

/// Legacy Markdown: entities cannot nest and nothing else is reserved.
fn parse_markdown_legacy(text: &str) -> Result<String, String> {
    let mut cur = Cursor::new(text);
    let mut i = 0;
    while i < cur.len() {
        let c = cur.at(i);
        if c == b'\\' && matches!(cur.at(i + 1), b'_' | b'*' | b'`' | b'[') {
            cur.out.push(cur.at(i + 1));
            i += 2;
            continue;
        }
        if !matches!(c, b'_' | b'*' | b'`' | b'[') {
            cur.out.push(c);
            i += 1;
            continue;
        }
        let begin = i;
        let end_char = if c == b'[' { b']' } else { c };
        i += 1;
        let pre = c == b'`' && cur.at(i) == b'`' && cur.at(i + 1) == b'`';
        if pre {
            i += 2;
            let mut end = i;
            while end < cur.len() && !is_space(cur.at(end)) && cur.at(end) != b'`' {
                end += 1;
            }
            if end != i && end < cur.len() && cur.at(end) != b'`' {
                i = end;
            }
            let (a, b) = (cur.at(i), cur.at(i + 1));
            if matches!(a, b'\n' | b'\r') {
                i += if matches!(b, b'\n' | b'\r') && a != b {
                    2
                } else {
                    1
                };
            }
        }
        while i < cur.len()
            && (cur.at(i) != end_char || (pre && !(cur.at(i + 1) == b'`' && cur.at(i + 2) == b'`')))
        {
            cur.out.push(cur.at(i));
            i += 1;
        }
        if i >= cur.len() {
            return Err(format!(
                "Can't find end of the entity starting at byte offset {begin}"
            ));
        }
        if pre {
            i += 2;
        } else if c == b'[' && cur.at(i + 1) == b'(' {
            i += 2;
            while i < cur.len() && cur.at(i) != b')' {
                i += 1;
            }
        }
        i += 1;
    }
    Ok(cur.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(text: &str) -> Result<String, String> {
        visible_text(text, Some(ParseMode::Html))
    }

    fn md2(text: &str) -> Result<String, String> {
        visible_text(text, Some(ParseMode::MarkdownV2))
    }

    fn md(text: &str) -> Result<String, String> {
        visible_text(text, Some(ParseMode::Markdown))
    }

    #[test]
    fn parse_modes_are_case_insensitive() {
        assert_eq!(ParseMode::from_param("HTML"), Ok(Some(ParseMode::Html)));
        assert_eq!(ParseMode::from_param("html"), Ok(Some(ParseMode::Html)));
        assert_eq!(
            ParseMode::from_param("MarkdownV2"),
            Ok(Some(ParseMode::MarkdownV2))
        );
        assert_eq!(
            ParseMode::from_param("Markdown"),
            Ok(Some(ParseMode::Markdown))
        );
        assert_eq!(ParseMode::from_param(""), Ok(None));
        assert_eq!(ParseMode::from_param("bbcode"), Err(()));
    }

    #[test]
    fn utf16_counts_surrogate_pairs() {
        assert_eq!(utf16_len("abc"), 3);
        assert_eq!(utf16_len("é"), 1);
        assert_eq!(utf16_len("😀"), 2);
        assert_eq!(utf16_len("a😀b"), 4);
    }

    #[test]
    fn html_strips_supported_tags() {
        assert_eq!(
            html("<b>bold</b> <i>it</i> <a href=\"https://x.y/?a=1&b=2\">link</a>").as_deref(),
            Ok("bold it link")
        );
        assert_eq!(
            html("<B>x</B><span class=\"tg-spoiler\">s</span><tg-spoiler>t</tg-spoiler>")
                .as_deref(),
            Ok("xst")
        );
        assert_eq!(
            html("<pre><code class=\"language-rust\">fn</code></pre>").as_deref(),
            Ok("fn")
        );
        assert_eq!(
            html("<blockquote expandable>q</blockquote>").as_deref(),
            Ok("q")
        );
        assert_eq!(
            html("<tg-emoji emoji-id=\"5368324170671202286\">👍</tg-emoji>").as_deref(),
            Ok("👍")
        );
        assert_eq!(html("<b>x</>").as_deref(), Ok("x"));
        // Unquoted values are SGML name tokens: letters, digits, `.`, `-`.
        assert_eq!(html("<a href=x.y>x</a>").as_deref(), Ok("x"));
        assert_eq!(
            html("<a href=https://x.y>x</a>"),
            Err("Unexpected end of name token at byte offset 8".to_owned())
        );
    }

    #[test]
    fn html_decodes_entities() {
        assert_eq!(
            html("&lt;b&gt; &amp; &quot;q&quot; &#65;&#x42; &copy; a&b").as_deref(),
            Ok("<b> & \"q\" AB &copy; a&b")
        );
        assert_eq!(utf16_len(&html("&#x1F600;").unwrap_or_default()), 2);
    }

    #[test]
    fn html_rejects_bad_markup() {
        let err = |text| html(text).expect_err(text);
        assert_eq!(err("1 < 2"), "Unsupported start tag \"\" at byte offset 2");
        assert_eq!(
            err("a <br> b"),
            "Unsupported start tag \"br\" at byte offset 2"
        );
        assert_eq!(
            err("<b>x"),
            "Can't find end tag corresponding to start tag \"b\""
        );
        assert_eq!(err("x</b>"), "Unexpected end tag at byte offset 1");
        assert_eq!(
            err("<b><i>x</b></i>"),
            "Unmatched end tag at byte offset 7, expected \"</i>\", found \"</b>\""
        );
        assert_eq!(err("<b"), "Unclosed start tag at byte offset 0");
        assert_eq!(err("<b>x</b"), "Unclosed end tag at byte offset 4");
        assert_eq!(
            err("<span>x</span>"),
            "Tag \"span\" must have class \"tg-spoiler\" at byte offset 0"
        );
        assert_eq!(
            err("<a href>x</a>"),
            "Expected equal sign in declaration of an attribute of the tag \"a\" at byte offset 0"
        );
        assert!(err("<tg-emoji>x</tg-emoji>").starts_with("Tag \"tg-emoji\""));
    }

    #[test]
    fn markdown_v2_accepts_escapes_and_markers() {
        assert_eq!(md2("Hello, world\\!").as_deref(), Ok("Hello, world!"));
        assert_eq!(
            md2("*b* _i_ __u__ ~s~ ||sp|| `c\\`` [t](https://x.y/(a\\)) a\\.b").as_deref(),
            Ok("b i u s sp c` t a.b")
        );
        assert_eq!(md2("*bold _italic* x_").ok(), None);
        assert_eq!(md2("*bold _both_*").as_deref(), Ok("bold both"));
        assert_eq!(
            md2("```rust\nfn main() {}\n```").as_deref(),
            Ok("fn main() {}\n")
        );
        assert_eq!(md2("`a.b-c`").as_deref(), Ok("a.b-c"));
        assert_eq!(md2("> quote\n>more").as_deref(), Ok(" quote\nmore"));
        assert_eq!(md2("**>hidden\n>quote||").as_deref(), Ok("hidden\nquote"));
        assert_eq!(
            md2("![👍](tg://emoji?id=5368324170671202286)").as_deref(),
            Ok("👍")
        );
        assert_eq!(md2("back\\slash é\\é").as_deref(), Ok("backslash é\\é"));
    }

    #[test]
    fn markdown_v2_rejects_unescaped_reserved_characters() {
        let err = |text| md2(text).expect_err(text);
        assert_eq!(
            err("Hello."),
            "Character '.' is reserved and must be escaped with the preceding '\\'"
        );
        assert_eq!(
            err("1 + 1"),
            "Character '+' is reserved and must be escaped with the preceding '\\'"
        );
        assert_eq!(
            err("a ) b"),
            "Character ')' is reserved and must be escaped with the preceding '\\'"
        );
        assert_eq!(
            err("a > b"),
            "Character '>' is reserved and must be escaped with the preceding '\\'"
        );
        assert_eq!(
            err("a | b"),
            "Character '|' is reserved and must be escaped with the preceding '\\'"
        );
        assert_eq!(
            err("*bold"),
            "Can't find end of Bold entity at byte offset 0"
        );
        assert_eq!(
            err("x __u"),
            "Can't find end of Underline entity at byte offset 2"
        );
        assert_eq!(
            err("[t](http://x"),
            "Can't find end of a URL at byte offset 4"
        );
        assert_eq!(
            err("```\ncode"),
            "Can't find end of Pre entity at byte offset 0"
        );
    }

    #[test]
    fn legacy_markdown_needs_closed_entities_only() {
        assert_eq!(
            md("*b* _i_ `c` [t](u) 1+1=2.").as_deref(),
            Ok("b i c t 1+1=2.")
        );
        assert_eq!(md("```py\nx```").as_deref(), Ok("x"));
        assert_eq!(md("a\\_b").as_deref(), Ok("a_b"));
        assert_eq!(
            md("snake_case").expect_err("unclosed"),
            "Can't find end of the entity starting at byte offset 5"
        );
    }

    /// Deterministic pseudo-random markup soup: the parsers must answer
    /// (Ok or Err) without panicking or looping on any input.
    #[test]
    fn parsers_never_panic() {
        const PIECES: &[&str] = &[
            "<",
            ">",
            "/",
            "b",
            "a",
            " ",
            "=",
            "\"",
            "'",
            "&",
            "#",
            "x",
            ";",
            "lt",
            "\\",
            "_",
            "*",
            "`",
            "[",
            "]",
            "(",
            ")",
            "|",
            "~",
            "!",
            "\n",
            "é",
            "😀",
            "span",
            "class",
            "tg-spoiler",
            "pre",
            "```",
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = next() % 24;
            let text: String = (0..len)
                .map(|_| PIECES[usize::try_from(next() % PIECES.len() as u64).unwrap_or(0)])
                .collect();
            for mode in [ParseMode::Html, ParseMode::MarkdownV2, ParseMode::Markdown] {
                let _ = visible_text(&text, Some(mode));
            }
        }
    }

    #[test]
    fn plain_text_is_untouched() {
        assert_eq!(
            visible_text("<b> *x* &amp;", None).as_deref(),
            Ok("<b> *x* &amp;")
        );
    }
}
