//! Byte scanning as TDLib's parsers do it: over a NUL-terminated string, so reading past the
//! end yields 0. Markup characters are ASCII, so the positions parsing stops at are char
//! boundaries; slicing still goes through `get`, so no input can make it panic.

pub(crate) struct Bytes<'a> {
    text: &'a str,
    bytes: &'a [u8],
}

impl<'a> Bytes<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            text,
            bytes: text.as_bytes(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The byte at `i`, or 0 past the end.
    pub(crate) fn at(&self, i: usize) -> u8 {
        self.bytes.get(i).copied().unwrap_or(0)
    }

    pub(crate) fn slice(&self, from: usize, to: usize) -> &'a str {
        self.text.get(from..to).unwrap_or("")
    }

    pub(crate) fn lower(&self, from: usize, to: usize) -> String {
        self.slice(from, to).to_ascii_lowercase()
    }
}

/// The UTF-16 code units a byte starts: one per character, two for those of four UTF-8 bytes
/// (outside the BMP), none for continuation bytes.
pub(crate) fn utf16_units(b: u8) -> usize {
    match b {
        0x80..=0xBF => 0,
        0xF0..=0xFF => 2,
        _ => 1,
    }
}
