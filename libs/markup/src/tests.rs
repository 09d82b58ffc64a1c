//! Parsing as Telegram parses: the cases that go wrong in practice.

use crate::entity::{Entity, EntityKind, MentionedUser};
use crate::{ParseError, ParseMode, Parsed, parse, render_html, render_markdown_v2, utf16_len};

use EntityKind::{
    Blockquote, Bold, Code, ExpandableBlockquote, Italic, Spoiler, Strikethrough, Underline,
};

fn e(kind: EntityKind, offset: usize, length: usize) -> Entity {
    Entity::new(kind, offset, length)
}

fn pre(language: Option<&str>) -> EntityKind {
    EntityKind::Pre {
        language: language.map(str::to_owned),
    }
}

fn link(url: &str) -> EntityKind {
    EntityKind::TextLink { url: url.into() }
}

fn parsed(text: &str, entities: Vec<Entity>) -> Parsed {
    Parsed {
        text: text.into(),
        entities,
    }
}

fn html(text: &str) -> Result<Parsed, ParseError> {
    parse(text, Some(ParseMode::Html))
}

fn md2(text: &str) -> Result<Parsed, ParseError> {
    parse(text, Some(ParseMode::MarkdownV2))
}

fn md(text: &str) -> Result<Parsed, ParseError> {
    parse(text, Some(ParseMode::Markdown))
}

fn detail(result: Result<Parsed, ParseError>) -> String {
    match result {
        Err(ParseError::Entities(detail)) => detail,
        other => panic!("expected a parse error, got {other:?}"),
    }
}

fn text(result: Result<Parsed, ParseError>) -> String {
    result.expect("parses").text
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
    assert!(ParseMode::from_param("bbcode").is_err());
}

#[test]
fn lengths_are_utf16_code_units() {
    assert_eq!(utf16_len("abc"), 3);
    assert_eq!(utf16_len("é"), 1);
    assert_eq!(utf16_len("😀"), 2);
    assert_eq!(utf16_len("a😀b"), 4);
    // A family emoji: four people and three joiners, eleven units.
    assert_eq!(utf16_len("👨‍👩‍👧‍👦"), 11);
    assert_eq!(html("<b>😀</b>&#x1F600;").unwrap().utf16_len(), 4);
}

#[test]
fn offsets_count_surrogate_pairs() {
    assert_eq!(
        html("😀 <b>a😀b</b> <i>é</i>"),
        Ok(parsed("😀 a😀b é", vec![e(Bold, 3, 4), e(Italic, 8, 1)]))
    );
    assert_eq!(
        md2("🏟 🏟_🏟 \\.🏟_"),
        Ok(parsed("🏟 🏟🏟 .🏟", vec![e(Italic, 5, 6)]))
    );
    assert_eq!(md("👍*b*"), Ok(parsed("👍b", vec![e(Bold, 2, 1)])));
}

#[test]
fn one_less_than_two_is_an_unsupported_tag() {
    assert_eq!(
        detail(html("1 < 2")),
        "Unsupported start tag \"\" at byte offset 2"
    );
    assert_eq!(text(html("1 &lt; 2")), "1 < 2");
    // In MarkdownV2 the `<` is text; plain text takes anything.
    assert_eq!(text(md2("1 < 2")), "1 < 2");
    assert_eq!(text(parse("1 < 2", None)), "1 < 2");
}

#[test]
fn html_tags_and_their_entities() {
    // One space apart: touching entities of a type would merge.
    assert_eq!(
        html(
            "<b>b</b> <strong>s</strong> <i>i</i> <em>e</em> <u>u</u> <ins>n</ins> <s>s</s> <strike>k</strike> <del>d</del>"
        ),
        Ok(parsed(
            "b s i e u n s k d",
            vec![
                e(Bold, 0, 1),
                e(Bold, 2, 1),
                e(Italic, 4, 1),
                e(Italic, 6, 1),
                e(Underline, 8, 1),
                e(Underline, 10, 1),
                e(Strikethrough, 12, 1),
                e(Strikethrough, 14, 1),
                e(Strikethrough, 16, 1),
            ]
        ))
    );
    assert_eq!(
        html("<B>x</B> <span class=\"tg-spoiler\">s</span> <tg-spoiler>t</tg-spoiler>"),
        Ok(parsed(
            "x s t",
            vec![e(Bold, 0, 1), e(Spoiler, 2, 1), e(Spoiler, 4, 1)]
        ))
    );
    assert_eq!(
        html("<a href=\"https://x.y/?a=1&amp;b=2\">link</a> <a href='tg://user?id=42'>me</a>"),
        Ok(parsed(
            "link me",
            vec![
                e(link("https://x.y/?a=1&b=2"), 0, 4),
                e(
                    EntityKind::TextMention {
                        user: MentionedUser { id: 42 }
                    },
                    5,
                    2
                ),
            ]
        ))
    );
    assert_eq!(
        html("<tg-emoji emoji-id=\"5368324170671202286\">👍</tg-emoji>"),
        Ok(parsed(
            "👍",
            vec![e(
                EntityKind::CustomEmoji {
                    custom_emoji_id: "5368324170671202286".into()
                },
                0,
                2
            )]
        ))
    );
    assert_eq!(
        html("<blockquote>q</blockquote>\n<blockquote expandable>r</blockquote>"),
        Ok(parsed(
            "q\nr",
            vec![e(Blockquote, 0, 1), e(ExpandableBlockquote, 2, 1)]
        ))
    );
}

#[test]
fn links_are_canonical_and_unusable_ones_dropped() {
    // Telegram completes the scheme and the path.
    assert_eq!(
        html("<a href=telegram.org>x</a>"),
        Ok(parsed("x", vec![e(link("http://telegram.org/"), 0, 1)]))
    );
    // Without href the text is the URL.
    assert_eq!(
        html("<a>telegram.org</a>"),
        Ok(parsed(
            "telegram.org",
            vec![e(link("http://telegram.org/"), 0, 12)]
        ))
    );
    // A link Telegram does not accept leaves plain text, not an error.
    assert_eq!(
        html("<a href=\"javascript:alert(1)\">x</a>"),
        Ok(parsed("x", vec![]))
    );
    assert_eq!(html("<a href>x</a>"), Ok(parsed("x", vec![])));
    assert_eq!(md2("[x](asdasd)"), Ok(parsed("x", vec![])));
    // Unquoted values are name tokens: letters, digits, `.`, `-`.
    assert_eq!(
        detail(html("<a href=https://x.y>x</a>")),
        "Unexpected end of name token at byte offset 8"
    );
}

#[test]
fn html_closing_tags() {
    // `</>` closes the innermost tag; names are case-insensitive; spaces may end a tag.
    assert_eq!(
        html("<b>x</> <I>y</i   >"),
        Ok(parsed("x y", vec![e(Bold, 0, 1), e(Italic, 2, 1)]))
    );
    assert_eq!(
        detail(html("<u>z</ u>")),
        "Unclosed end tag at byte offset 4"
    );
}

#[test]
fn html_entities_and_numeric_references() {
    assert_eq!(
        text(html(
            "&lt;b&gt; &amp; &quot;q&quot; &#65;&#x42; &copy; a&b &ltx &#X41;"
        )),
        "<b> & \"q\" AB &copy; a&b &ltx &#X41;"
    );
    // The `;` is optional; nine bytes at most; no NUL; nothing from U+10FFFF on.
    assert_eq!(text(html("&lt&gt")), "<>");
    assert_eq!(text(html("&#12345678;")), "&#12345678;");
    assert_eq!(text(html("&#0; &#x10FFFF;")), "&#0; &#x10FFFF;");
    assert_eq!(text(html("&#x1F600;")), "😀");
    assert_eq!(
        detail(html("&#xD83D;")),
        "Text contains invalid Unicode characters after decoding HTML entities, check for unmatched surrogate code units"
    );
}

#[test]
fn unbalanced_and_mis_nested_html() {
    let err = |text| detail(html(text));
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
        err("<a href=  "),
        "Unclosed start tag \"a\" at byte offset 0"
    );
    assert_eq!(
        err("<a href=\"x>y</a>"),
        "Unclosed start tag at byte offset 0"
    );
    assert_eq!(
        err("a <br> b"),
        "Unsupported start tag \"br\" at byte offset 2"
    );
    assert_eq!(
        err("<marquee>hi</marquee>"),
        "Unsupported start tag \"marquee\" at byte offset 0"
    );
    assert_eq!(
        err("<span>x</span>"),
        "Tag \"span\" must have class \"tg-spoiler\" at byte offset 0"
    );
    assert_eq!(
        err("<i =x>y</i>"),
        "Empty attribute name in the tag \"i\" at byte offset 0"
    );
    assert_eq!(
        err("<tg-emoji>x</tg-emoji>"),
        "Invalid custom emoji identifier specified"
    );
    // Byte offsets count bytes, not characters.
    assert_eq!(
        err("é😀<x>"),
        "Unsupported start tag \"x\" at byte offset 6"
    );
}

#[test]
fn html_pre_and_code() {
    assert_eq!(
        html("<pre><code class=\"language-rust\">fn main() {}</code></pre>"),
        Ok(parsed("fn main() {}", vec![e(pre(Some("rust")), 0, 12)]))
    );
    assert_eq!(
        html("<code class=\"language-py\"><pre>x</pre></code>"),
        Ok(parsed("x", vec![e(pre(Some("py")), 0, 1)]))
    );
    // Without a language the code inside a pre is dropped; a code's class alone means nothing.
    assert_eq!(
        html("<pre><code>x</code></pre> <code class=\"language-c\">y</code>"),
        Ok(parsed("x y", vec![e(pre(None), 0, 1), e(Code, 2, 1)]))
    );
    // Markup inside code is markup: tags still nest, and entities inside code are dropped.
    assert_eq!(
        html("<code>a &lt; <b>b</b></code>"),
        Ok(parsed("a < b", vec![e(Code, 0, 5)]))
    );
}

#[test]
fn nested_entities_take_telegrams_shape() {
    // Bold around italic is cut where the italic begins, as Telegram reports it.
    assert_eq!(
        html("<b>bold <i>both</i></b>"),
        Ok(parsed(
            "bold both",
            vec![e(Bold, 0, 5), e(Bold, 5, 4), e(Italic, 5, 4)]
        ))
    );
    assert_eq!(md2("*bold _both_*"), html("<b>bold <i>both</i></b>"));
    // Code cannot be inside bold: the bold around it is split and the part over it dropped.
    assert_eq!(
        html("<b>a<code>b</code>c</b>"),
        Ok(parsed(
            "abc",
            vec![e(Bold, 0, 1), e(Code, 1, 1), e(Bold, 2, 1)]
        ))
    );
    // A link may hold formatting; formatting holding a link is split at its edges.
    assert_eq!(
        html("<a href=\"https://x.y/\"><b>a</b></a>"),
        Ok(parsed(
            "a",
            vec![e(link("https://x.y/"), 0, 1), e(Bold, 0, 1)]
        ))
    );
    assert_eq!(
        html("<b>a<a href=\"https://x.y/\">b</a>c</b>"),
        Ok(parsed(
            "abc",
            vec![
                e(Bold, 0, 1),
                e(link("https://x.y/"), 1, 1),
                e(Bold, 1, 1),
                e(Bold, 2, 1)
            ]
        ))
    );
    // Touching entities of a type merge.
    assert_eq!(
        html("<b>a</b><b>b</b>"),
        Ok(parsed("ab", vec![e(Bold, 0, 2)]))
    );
    // A blockquote holds anything, but not another blockquote.
    assert_eq!(
        html("<blockquote>a<blockquote>b</blockquote><pre>c</pre></blockquote>"),
        Ok(parsed("abc", vec![e(Blockquote, 0, 3), e(pre(None), 2, 1)]))
    );
}

#[test]
fn whitespace_is_trimmed_and_nothing_visible_refused() {
    assert_eq!(parse("  hi \n", None), Ok(parsed("hi", vec![])));
    assert_eq!(parse(" \n", None), Err(ParseError::Empty));
    assert_eq!(parse("", None), Err(ParseError::Empty));
    assert_eq!(parse("", Some(ParseMode::Html)), Err(ParseError::Empty));
    assert_eq!(html("<b> </b>"), Err(ParseError::Empty));
    assert_eq!(html("<b></b>"), Err(ParseError::Empty));
    assert_eq!(md2("*\\ *"), Err(ParseError::Empty));
    // Only invisible characters: still empty.
    assert_eq!(parse("\u{200B}\u{A0}", None), Err(ParseError::Empty));
    // Trailing whitespace leaves entities; leading whitespace inside the first entity stays.
    assert_eq!(html("<b>x </b> "), Ok(parsed("x", vec![e(Bold, 0, 1)])));
    assert_eq!(html(" <b> x</b>"), Ok(parsed(" x", vec![e(Bold, 0, 2)])));
    // Control characters: tabs become spaces, `\r` goes.
    assert_eq!(text(parse("a\tb\r\nc", None)), "a b\nc");
}

#[test]
fn markdown_v2_reserved_characters_must_be_escaped() {
    for c in "]()>#+-=|{}.!".chars() {
        assert_eq!(
            detail(md2(&format!("a{c}"))),
            format!("Character '{c}' is reserved and must be escaped with the preceding '\\'")
        );
        assert_eq!(text(md2(&format!("a\\{c}"))), format!("a{c}"));
    }
    assert_eq!(text(md2("Hello, world\\!")), "Hello, world!");
    // Any ASCII character may be escaped; a `\` before anything else is text.
    assert_eq!(text(md2("\\a\\\\ é\\é")), "a\\ é\\é");
}

#[test]
fn markdown_v2_markers() {
    assert_eq!(
        md2("*b* _i_ __u__ ~s~ ||sp|| `c\\`` [t](https://x.y/(a\\)) a\\.b"),
        Ok(parsed(
            "b i u s sp c` t a.b",
            vec![
                e(Bold, 0, 1),
                e(Italic, 2, 1),
                e(Underline, 4, 1),
                e(Strikethrough, 6, 1),
                e(Spoiler, 8, 2),
                e(Code, 11, 2),
                e(link("https://x.y/(a)"), 14, 1),
            ]
        ))
    );
    assert_eq!(
        md2("![👍](tg://emoji?id=5368324170671202286)"),
        Ok(parsed(
            "👍",
            vec![e(
                EntityKind::CustomEmoji {
                    custom_emoji_id: "5368324170671202286".into()
                },
                0,
                2
            )]
        ))
    );
    assert_eq!(
        md2("[me](tg://user?id=7)"),
        Ok(parsed(
            "me",
            vec![e(
                EntityKind::TextMention {
                    user: MentionedUser { id: 7 }
                },
                0,
                2
            )]
        ))
    );
}

#[test]
fn markdown_v2_underline_against_italic() {
    // `__` is always underline, read from the left.
    assert_eq!(
        md2("_a __b___"),
        Ok(parsed(
            "a b",
            vec![e(Italic, 0, 2), e(Italic, 2, 1), e(Underline, 2, 1)]
        ))
    );
    assert_eq!(
        md2("__a _b_ c__"),
        Ok(parsed(
            "a b c",
            vec![e(Underline, 0, 2), e(Underline, 2, 3), e(Italic, 2, 1)]
        ))
    );
    // Italic closing right before underline closes: `___` would be read the wrong way, so a
    // `\r` (which Telegram deletes) separates them.
    assert_eq!(
        detail(md2("__a _b___")),
        "Can't find end of Italic entity at byte offset 8"
    );
    assert_eq!(
        md2("__a _b_\r__"),
        Ok(parsed(
            "a b",
            vec![e(Underline, 0, 2), e(Italic, 2, 1), e(Underline, 2, 1)]
        ))
    );
}

#[test]
fn markdown_v2_code_and_pre() {
    assert_eq!(
        md2("```rust\nfn main() {}\n```"),
        Ok(parsed("fn main() {}", vec![e(pre(Some("rust")), 0, 12)]))
    );
    // Inside code and pre only `` ` `` and `\` are special.
    assert_eq!(
        md2("`a.b-c_*[` ```\n1 < 2! \\` \\\\```"),
        Ok(parsed(
            "a.b-c_*[ 1 < 2! ` \\",
            vec![e(Code, 0, 8), e(pre(None), 9, 10)]
        ))
    );
    assert_eq!(
        detail(md2("```\ncode")),
        "Can't find end of Pre entity at byte offset 0"
    );
    // A lone `` ` `` inside a pre opens a code.
    assert_eq!(
        detail(md2("``` `b")),
        "Can't find end of Code entity at byte offset 4"
    );
    assert_eq!(
        detail(md2("```a `b```")),
        "Can't find end of PreCode entity at byte offset 0"
    );
}

#[test]
fn markdown_v2_links() {
    // In a URL only `)` and `\` need escaping.
    assert_eq!(
        md2("[wiki](https://en.wikipedia.org/wiki/Rust_\\(language\\))"),
        Ok(parsed(
            "wiki",
            vec![e(
                link("https://en.wikipedia.org/wiki/Rust_(language)"),
                0,
                4
            )]
        ))
    );
    // An unescaped `)` ends the URL; what follows is text with a reserved `)`.
    assert_eq!(
        detail(md2("[wiki](https://x.y/a_(b))")),
        "Character ')' is reserved and must be escaped with the preceding '\\'"
    );
    assert_eq!(
        detail(md2("[t](http://x")),
        "Can't find end of a URL at byte offset 4"
    );
    assert_eq!(
        detail(md2("![👍]")),
        "Custom emoji entity must contain a tg://emoji URL"
    );
}

#[test]
fn markdown_v2_unclosed_and_crossing_markers() {
    let err = |text| detail(md2(text));
    assert_eq!(
        err("*bold"),
        "Can't find end of Bold entity at byte offset 0"
    );
    assert_eq!(
        err("x __u"),
        "Can't find end of Underline entity at byte offset 2"
    );
    assert_eq!(
        err("🏟 🏟||x"),
        "Can't find end of Spoiler entity at byte offset 9"
    );
    assert_eq!(
        err("*bold _italic* x_"),
        "Can't find end of Italic entity at byte offset 16"
    );
}

#[test]
fn markdown_v2_blockquotes() {
    assert_eq!(
        md2(">quote\n>more\nafter"),
        Ok(parsed("quote\nmore\nafter", vec![e(Blockquote, 0, 11)]))
    );
    // `||` at the end of the last line: expandable; `**` separates two blockquotes.
    assert_eq!(
        md2(">a\n**>b\n>c||"),
        Ok(parsed(
            "a\nb\nc",
            vec![e(Blockquote, 0, 2), e(ExpandableBlockquote, 2, 3)]
        ))
    );
    // A `>` elsewhere is reserved; inside a quote a line may not end inside an entity.
    assert_eq!(
        detail(md2("a > b")),
        "Character '>' is reserved and must be escaped with the preceding '\\'"
    );
    assert_eq!(
        detail(md2(">*b\nc*")),
        "Can't find end of Bold entity at byte offset 1"
    );
}

#[test]
fn legacy_markdown() {
    assert_eq!(
        md("*b* _i_ `c` [t](https://x.y) 1+1=2."),
        Ok(parsed(
            "b i c t 1+1=2.",
            vec![
                e(Bold, 0, 1),
                e(Italic, 2, 1),
                e(Code, 4, 1),
                e(link("https://x.y/"), 6, 1),
            ]
        ))
    );
    assert_eq!(
        md("```py\nx```"),
        Ok(parsed("x", vec![e(pre(Some("py")), 0, 1)]))
    );
    assert_eq!(text(md("a\\_b")), "a_b");
    assert_eq!(
        detail(md("snake_case")),
        "Can't find end of the entity starting at byte offset 5"
    );
}

#[test]
fn plain_text_is_untouched_markup() {
    assert_eq!(
        parse("<b> *x* &amp;", None),
        Ok(parsed("<b> *x* &amp;", vec![]))
    );
}

#[test]
fn renderers_escape_what_telegram_reserves() {
    let plain = parsed(
        "1 < 2 & 3 > 2; a_b*c [d](e) `f` ~g~ #h +i -j =k |l| {m}. n! \\o",
        vec![],
    );
    assert_eq!(
        render_html(&plain),
        "1 &lt; 2 &amp; 3 &gt; 2; a_b*c [d](e) `f` ~g~ #h +i -j =k |l| {m}. n! \\o"
    );
    assert_eq!(
        render_markdown_v2(&plain),
        "1 < 2 & 3 \\> 2; a\\_b\\*c \\[d\\]\\(e\\) \\`f\\` \\~g\\~ \\#h \\+i \\-j \\=k \\|l\\| \\{m\\}\\. n\\! \\\\o"
    );
    for markup in [render_html(&plain), render_markdown_v2(&plain)] {
        let mode = if markup.contains("&lt;") {
            ParseMode::Html
        } else {
            ParseMode::MarkdownV2
        };
        assert_eq!(parse(&markup, Some(mode)), Ok(plain.clone()), "{markup}");
    }
}

#[test]
fn renderers_write_entities() {
    let text = parsed(
        "bold both code x.y quote\nend",
        vec![
            e(Bold, 0, 5),
            e(Bold, 5, 4),
            e(Italic, 5, 4),
            e(Code, 10, 4),
            e(link("https://x.y/a_(b)"), 15, 3),
            e(ExpandableBlockquote, 19, 6),
        ],
    );
    let as_html = render_html(&text);
    assert_eq!(
        as_html,
        "<b>bold </b><b><i>both</i></b> <code>code</code> <a href=\"https://x.y/a_(b)\">x.y</a> <blockquote expandable>quote\n</blockquote>end"
    );
    // MarkdownV2 cannot start a blockquote mid-line: it is left out there.
    let as_md = render_markdown_v2(&text);
    assert_eq!(
        as_md,
        "*bold **_both_* `code` [x\\.y](https://x.y/a_(b\\)) quote\nend"
    );
    assert_eq!(html(&as_html), Ok(text.clone()));

    let quoted = parsed(
        "q1\nq2\nr\nplain_x_",
        vec![
            e(Blockquote, 0, 6),
            e(Spoiler, 3, 2),
            e(ExpandableBlockquote, 6, 2),
            e(Italic, 8, 5),
            e(Underline, 13, 3),
        ],
    );
    let as_md = render_markdown_v2(&quoted);
    assert_eq!(as_md, ">q1\n>||q2||\n**>r||\n_plain_\r__\\_x\\___");
    assert_eq!(md2(&as_md), Ok(quoted.clone()));
    assert_eq!(html(&render_html(&quoted)), Ok(quoted));
}

#[test]
fn parsers_never_panic() {
    // Deterministic pseudo-random markup soup: every parser answers, Ok or Err.
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
        "\r",
        "é",
        "😀",
        "span",
        "class",
        "tg-spoiler",
        "pre",
        "```",
        "href",
        "tg://user?id=1",
        "tg://emoji?id=2",
        "&#xD800;",
        "\0",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
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
            if let Ok(parsed) = parse(&text, Some(mode)) {
                let len = parsed.utf16_len();
                assert!(
                    parsed
                        .entities
                        .iter()
                        .all(|e| e.length > 0 && e.end() <= len)
                );
            }
        }
    }
}
