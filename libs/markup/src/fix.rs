//! What Telegram does to a parsed text before it sends it (TDLib's `fix_formatted_text`): it
//! cleans control characters, nests entities its way (splitting bold, italic, underline,
//! strikethrough and spoiler where other entities start or end, merging touching ones of a
//! type, dropping what code and pre contain and entities that cross others), trims the text
//! and refuses it when nothing visible is left.
//!
//! Not done: Telegram then finds URLs, mentions, hashtags and commands in the text by itself
//! and splits formatting around them; those are not markup.

use crate::entity::{self, Class, Entity, EntityKind, MentionedUser};
use crate::links;
use crate::{ParseError, Parsed};

const SPLITTABLE_TYPES: usize = 5;

/// Telegram's text and entities for `text` and `entities` as parsed from markup.
pub(crate) fn fix_formatted_text(
    text: &str,
    mut entities: Vec<Entity>,
) -> Result<Parsed, ParseError> {
    remove_empty(&mut entities);
    fix_entities(&mut entities);
    let mut text = clean(text, &mut entities);

    remove_empty(&mut entities);
    let Some((last_byte_end, last_utf16)) = last_visible(&text) else {
        return Err(ParseError::Empty);
    };
    fix_entities(&mut entities);

    // Trailing spaces and newlines go, and the parts of entities over them.
    text.truncate(last_byte_end);
    let end = last_utf16 + 1;
    entities.retain(|e| e.offset < end);
    let mut clipped = false;
    for e in &mut entities {
        if e.end() > end {
            e.length = end - e.offset;
            clipped = true;
        }
    }
    if clipped {
        entity::sort(&mut entities);
    }
    // Leading ones too, but only up to the first entity.
    let first_entity = entities.first().map_or(text.len(), |e| e.offset);
    let leading = text
        .bytes()
        .take(first_entity)
        .take_while(|&b| b == b' ' || b == b'\n')
        .count();
    if leading > 0 {
        text.drain(..leading);
        for e in &mut entities {
            e.offset -= leading;
        }
    }
    if is_empty_string(&text) {
        return Err(ParseError::Empty);
    }
    Ok(Parsed { text, entities })
}

/// A text and entities as they might be sent with the `entities` parameter: links checked as
/// markup checks them, then [`fix_formatted_text`].
#[cfg(test)]
pub(crate) fn normalize(parsed: &Parsed) -> Result<Parsed, ParseError> {
    fix_formatted_text(&parsed.text, check_links(&parsed.entities))
}

/// The entities Telegram keeps of `entities` over a text of `len` UTF-16 units, nested its way
/// (the text itself is not cleaned or trimmed).
pub(crate) fn telegram_entities(len: usize, entities: &[Entity]) -> Vec<Entity> {
    let mut entities = check_links(entities);
    entities.retain(|e| e.end() <= len);
    remove_empty(&mut entities);
    fix_entities(&mut entities);
    entities
}

/// Links as markup makes them: `tg://user?id=` a mention, others canonical or dropped.
fn check_links(entities: &[Entity]) -> Vec<Entity> {
    entities
        .iter()
        .filter_map(|e| {
            let kind = match &e.kind {
                EntityKind::TextLink { url } => match links::link_user_id(url) {
                    Some(id) => EntityKind::TextMention {
                        user: MentionedUser { id },
                    },
                    None => EntityKind::TextLink {
                        url: links::checked_link(url)?,
                    },
                },
                other => other.clone(),
            };
            Some(Entity::new(kind, e.offset, e.length))
        })
        .collect()
}

/// Drops empty entities and those Telegram would not send (no URL, no valid user or emoji).
fn remove_empty(entities: &mut Vec<Entity>) {
    entities.retain(|e| {
        e.length > 0
            && match &e.kind {
                EntityKind::TextLink { url } => !url.is_empty(),
                EntityKind::TextMention {
                    user: MentionedUser { id },
                } => *id > 0,
                EntityKind::CustomEmoji { custom_emoji_id } => {
                    links::to_integer_safe(custom_emoji_id).is_some_and(|id| id != 0)
                }
                _ => true,
            }
    });
}

/// The byte end and the UTF-16 offset of the last code unit of the last character that is
/// not a space or a newline.
fn last_visible(text: &str) -> Option<(usize, usize)> {
    let mut utf16 = 0;
    let mut last = None;
    for (at, ch) in text.char_indices() {
        let units = ch.len_utf16();
        if ch != ' ' && ch != '\n' {
            last = Some((at + ch.len_utf8(), utf16 + units - 1));
        }
        utf16 += units;
    }
    last
}

/// TDLib's `clean_input_string_with_entities`: control characters become spaces, `\r`, the
/// line and paragraph separators and bidirectional embeddings (U+2028 to U+202E) and three
/// combining vertical lines go, and entities shrink over what went.
fn clean(text: &str, entities: &mut [Entity]) -> String {
    let mut out = String::with_capacity(text.len());
    // Removed UTF-16 units before each UTF-16 offset of the input.
    let mut removed_before = Vec::with_capacity(text.len() + 1);
    let mut removed = 0;
    for ch in text.chars() {
        for _ in 0..ch.len_utf16() {
            removed_before.push(removed);
        }
        match ch {
            '\r' | '\u{2028}'..='\u{202E}' | '\u{0333}' | '\u{033F}' | '\u{030A}' => removed += 1,
            '\n' => out.push('\n'),
            '\0'..=' ' => out.push(' '),
            _ => out.push(ch),
        }
    }
    removed_before.push(removed);
    for e in entities.iter_mut() {
        let end = e.end();
        let start = removed_before.get(e.offset).copied().unwrap_or(removed);
        let finish = removed_before.get(end).copied().unwrap_or(removed);
        e.offset -= start;
        e.length -= finish - start;
    }
    replace_offending_characters(out)
}

/// In a run of left-to-right and right-to-left marks all but the last become zero-width
/// non-joiners (same length, so entities keep their place).
fn replace_offending_characters(text: String) -> String {
    if !text.contains(['\u{200E}', '\u{200F}']) {
        return text;
    }
    let chars: Vec<char> = text.chars().collect();
    let mark = |c: Option<&char>| matches!(c, Some('\u{200E}' | '\u{200F}'));
    chars
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if mark(Some(&c)) && mark(chars.get(i + 1)) {
                '\u{200C}'
            } else {
                c
            }
        })
        .collect()
}

/// TDLib's `is_empty_string`: nothing but spaces (of many kinds), newlines and invisible
/// characters.
fn is_empty_string(text: &str) -> bool {
    let spaced: String = text
        .chars()
        .map(|c| match c {
            '\u{1680}'
            | '\u{180E}'
            | '\u{2000}'..='\u{200A}'
            | '\u{202F}'
            | '\u{205F}'
            | '\u{2800}'
            | '\u{3000}'
            | '\u{FFFC}'
            | '\u{E0000}'..='\u{E007F}' => ' ',
            other => other,
        })
        .collect();
    spaced
        .trim_matches(|c: char| matches!(c, ' ' | '\t' | '\r' | '\n' | '\0' | '\u{0B}'))
        .chars()
        .all(|c| {
            matches!(
                c,
                ' ' | '\n' | '\u{200B}'..='\u{200F}' | '\u{202E}' | '\u{FEFF}' | '\u{A0}'
            )
        })
}

/// TDLib's `fix_entities`: sorts, and when the nesting is not Telegram's, rebuilds it.
fn fix_entities(entities: &mut Vec<Entity>) {
    entity::sort(entities);
    if are_valid(entities) {
        return;
    }
    let mut continuous = Vec::new();
    let mut blockquotes = Vec::new();
    let mut splittable = Vec::new();
    for e in entities.drain(..) {
        match e.kind.class() {
            Class::Splittable(_) => splittable.push(e),
            Class::Blockquote => blockquotes.push(e),
            Class::Pre | Class::Continuous => continuous.push(e),
        }
    }
    remove_intersecting(&mut continuous);
    if !blockquotes.is_empty() {
        remove_intersecting(&mut blockquotes);
        remove_intersecting_blockquote(&mut continuous, &blockquotes);
        continuous.extend(blockquotes);
        entity::sort(&mut continuous);
    }
    if !splittable.is_empty() {
        let split = split(&splittable, &continuous);
        continuous.extend(split);
        entity::sort(&mut continuous);
    }
    *entities = continuous;
}

/// TDLib's `are_entities_valid`: sorted entities nested as Telegram keeps them.
fn are_valid(entities: &[Entity]) -> bool {
    const SPLITTABLE: u32 = 0b1_1111;
    // Text link, text mention, custom emoji.
    const CONTINUOUS: u32 = 0b111_0000_0000;
    const BLOCKQUOTE: u32 = 0b1_1000_0000_0000;
    let mut end_pos = [None; SPLITTABLE_TYPES];
    let mut stack: Vec<&Entity> = Vec::new();
    let mut mask = 0u32;
    for e in entities {
        while let Some(top) = stack.last()
            && e.offset >= top.end()
        {
            mask &= !top.kind.type_bit();
            stack.pop();
        }
        if let Some(parent) = stack.last() {
            let bit = e.kind.type_bit();
            let class = e.kind.class();
            if e.end() > parent.end()
                || mask & bit != 0
                || parent.kind.class() == Class::Pre
                || (class == Class::Pre && mask & !BLOCKQUOTE != 0)
                || (matches!(class, Class::Continuous | Class::Blockquote) && mask & CONTINUOUS != 0)
                || (class == Class::Blockquote && mask & BLOCKQUOTE != 0)
                // A splittable parent may need splitting around what it contains.
                || mask & SPLITTABLE != 0
            {
                return false;
            }
        }
        if let Class::Splittable(index) = e.kind.class() {
            if end_pos[index].is_some_and(|end| end >= e.offset) {
                // Touching or overlapping entities of a type are merged.
                return false;
            }
            end_pos[index] = Some(e.end());
        }
        stack.push(e);
        mask |= e.kind.type_bit();
    }
    true
}

/// Keeps, in order, only entities that begin after every kept one ends (drops nested and
/// crossing ones).
fn remove_intersecting(entities: &mut Vec<Entity>) {
    let mut last_end = 0;
    entities.retain(|e| {
        if e.offset >= last_end {
            last_end = e.end();
            true
        } else {
            false
        }
    });
}

/// Drops continuous entities that cross a blockquote's edge (those inside one stay).
fn remove_intersecting_blockquote(entities: &mut Vec<Entity>, blockquotes: &[Entity]) {
    let mut quote = 0;
    entities.retain(|e| {
        while quote < blockquotes.len() && blockquotes[quote].end() <= e.offset {
            quote += 1;
        }
        match blockquotes.get(quote) {
            Some(q) => !(q.end() < e.end() || (e.offset < q.offset && q.offset < e.end())),
            None => true,
        }
    });
}

/// TDLib's `split_entities`: merges touching and overlapping splittable entities of a type,
/// splits every open one where another begins and where a non-splittable one begins or ends,
/// and drops the parts inside code and pre.
fn split(entities: &[Entity], others: &[Entity]) -> Vec<Entity> {
    struct Splitter<'a> {
        entities: &'a [Entity],
        next: usize,
        begin: [usize; SPLITTABLE_TYPES],
        /// Where the open entity of each type ends; 0 when none is open.
        end: [usize; SPLITTABLE_TYPES],
        result: Vec<Entity>,
    }

    impl Splitter<'_> {
        /// Emits what is open up to `offset`; what goes on past it continues from there.
        fn flush(&mut self, offset: usize) {
            for index in 0..SPLITTABLE_TYPES {
                if self.end[index] != 0 && self.begin[index] < offset {
                    let kind = EntityKind::splittable(index);
                    if self.end[index] <= offset {
                        let length = self.end[index] - self.begin[index];
                        self.result
                            .push(Entity::new(kind, self.begin[index], length));
                        self.begin[index] = 0;
                        self.end[index] = 0;
                    } else {
                        let length = offset - self.begin[index];
                        self.result
                            .push(Entity::new(kind, self.begin[index], length));
                        self.begin[index] = offset;
                    }
                }
            }
        }

        /// Takes in the entities that begin before `end_offset`, then flushes there.
        fn add(&mut self, end_offset: usize) {
            while let Some(e) = self.entities.get(self.next)
                && e.offset < end_offset
            {
                let Class::Splittable(index) = e.kind.class() else {
                    self.next += 1;
                    continue;
                };
                if self.end[index] != 0 && e.offset <= self.end[index] {
                    self.end[index] = self.end[index].max(e.end());
                } else {
                    self.flush(e.offset);
                    self.begin[index] = e.offset;
                    self.end[index] = e.end();
                }
                self.next += 1;
            }
            self.flush(end_offset);
        }
    }

    let mut splitter = Splitter {
        entities,
        next: 0,
        begin: [0; SPLITTABLE_TYPES],
        end: [0; SPLITTABLE_TYPES],
        result: Vec::new(),
    };
    // Closes the non-splittable entities that end by `offset`, then takes in what begins
    // before it.
    fn add_offset(splitter: &mut Splitter<'_>, stack: &mut Vec<&Entity>, offset: usize) {
        while let Some(top) = stack.last()
            && offset >= top.end()
        {
            let kept = splitter.result.len();
            splitter.add(top.end());
            if top.kind.class() == Class::Pre {
                splitter.result.truncate(kept);
            }
            stack.pop();
        }
        splitter.add(offset);
    }
    let mut stack: Vec<&Entity> = Vec::new();
    for other in others {
        add_offset(&mut splitter, &mut stack, other.offset);
        stack.push(other);
    }
    add_offset(&mut splitter, &mut stack, usize::MAX);
    let mut result = splitter.result;
    entity::sort(&mut result);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(kind: EntityKind, offset: usize, length: usize) -> Entity {
        Entity::new(kind, offset, length)
    }

    fn fix(text: &str, entities: Vec<Entity>) -> Result<Parsed, ParseError> {
        fix_formatted_text(text, entities)
    }

    fn ok(text: &str, entities: Vec<Entity>) -> Parsed {
        Parsed {
            text: text.to_owned(),
            entities,
        }
    }

    use EntityKind::{Bold, Italic, Strikethrough, Underline};

    #[test]
    fn nested_formatting_is_split_where_inner_entities_begin() {
        // `__a~b~__`: the underline is cut where the strikethrough begins.
        assert_eq!(
            fix("ab", vec![e(Underline, 0, 2), e(Strikethrough, 1, 1)]),
            Ok(ok(
                "ab",
                vec![
                    e(Underline, 0, 1),
                    e(Underline, 1, 1),
                    e(Strikethrough, 1, 1)
                ]
            ))
        );
        // Touching and overlapping entities of a type merge; separate ones stay apart.
        assert_eq!(
            fix("abc", vec![e(Italic, 0, 2), e(Italic, 2, 1)]),
            Ok(ok("abc", vec![e(Italic, 0, 3)]))
        );
        assert_eq!(
            fix("abc", vec![e(Italic, 0, 1), e(Italic, 2, 1)]),
            Ok(ok("abc", vec![e(Italic, 0, 1), e(Italic, 2, 1)]))
        );
        assert_eq!(
            fix("abc", vec![e(Italic, 0, 2), e(Bold, 1, 2)]),
            Ok(ok(
                "abc",
                vec![e(Italic, 0, 1), e(Bold, 1, 2), e(Italic, 1, 1)]
            ))
        );
    }

    #[test]
    fn code_and_pre_contain_nothing() {
        let pre = || EntityKind::Pre { language: None };
        assert_eq!(
            fix("abc", vec![e(pre(), 0, 3), e(Strikethrough, 1, 1)]),
            Ok(ok("abc", vec![e(pre(), 0, 3)]))
        );
        assert_eq!(
            fix("abc", vec![e(pre(), 1, 1), e(Strikethrough, 0, 3)]),
            Ok(ok(
                "abc",
                vec![
                    e(Strikethrough, 0, 1),
                    e(pre(), 1, 1),
                    e(Strikethrough, 2, 1)
                ]
            ))
        );
        assert_eq!(
            fix("abc", vec![e(pre(), 0, 3), e(EntityKind::Blockquote, 1, 1)]),
            Ok(ok("abc", vec![e(EntityKind::Blockquote, 1, 1)]))
        );
    }

    #[test]
    fn carriage_returns_go_and_what_they_separated_merges() {
        assert_eq!(
            fix(
                "a\rb",
                vec![
                    e(Bold, 0, 1),
                    e(Italic, 0, 1),
                    e(Bold, 2, 1),
                    e(Italic, 2, 1)
                ]
            ),
            Ok(ok("ab", vec![e(Bold, 0, 2), e(Italic, 0, 2)]))
        );
        assert_eq!(
            fix("a \r b", vec![e(Bold, 0, 5), e(Underline, 2, 1)]),
            Ok(ok("a  b", vec![e(Bold, 0, 4)]))
        );
        assert_eq!(fix("a\tb\u{1}", vec![]), Ok(ok("a b", vec![])));
    }

    #[test]
    fn trimming_spares_leading_whitespace_inside_the_first_entity() {
        assert_eq!(fix(" \n x  \n", vec![]), Ok(ok("x", vec![])));
        assert_eq!(
            fix("  <b>", vec![e(Bold, 1, 3)]),
            Ok(ok(" <b>", vec![e(Bold, 0, 3)]))
        );
        assert_eq!(
            fix("a ", vec![e(Italic, 0, 2), e(Bold, 0, 1)]),
            Ok(ok("a", vec![e(Bold, 0, 1), e(Italic, 0, 1)]))
        );
        assert_eq!(fix(" \n\t", vec![e(Bold, 0, 3)]), Err(ParseError::Empty));
        assert_eq!(
            fix("\u{200B}\u{A0}\u{3000}", vec![]),
            Err(ParseError::Empty)
        );
        assert_eq!(fix("", vec![]), Err(ParseError::Empty));
    }

    #[test]
    fn marks_in_a_run_become_non_joiners() {
        assert_eq!(
            fix("\u{200F}\u{200F}a\u{200E}", vec![]),
            Ok(ok("\u{200C}\u{200F}a\u{200E}", vec![]))
        );
    }
}
