//! Code point classes for the pre-tokenizers and GPT-2's byte <-> code point mapping.
//!
//! The classes are the ones llama.cpp's `unicode_cpt_flags` gives the hand-written regex
//! splitters: `\p{L}`, `\p{N}`, `\p{P}` from the Unicode general category and `\s` from the fixed
//! White_Space list below (not Rust's `char::is_whitespace`, which agrees today but is not pinned).

use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// Set for every code point inside the text; out-of-range lookups return 0 (llama.cpp's `as_uint() == 0`).
pub(crate) const IN: u8 = 1;
/// `\p{N}`
pub(crate) const NUMBER: u8 = 2;
/// `\p{L}`
pub(crate) const LETTER: u8 = 4;
/// `\s`
pub(crate) const SPACE: u8 = 8;
/// `\p{P}`
pub(crate) const PUNCT: u8 = 16;

/// Unicode White_Space, the set llama.cpp's `unicode_set_whitespace` holds.
const WHITESPACE: [u32; 25] = [
    0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x2001, 0x2002, 0x2003, 0x2004,
    0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000,
];

/// The class bits of one code point (always includes `IN`).
pub(crate) fn flags(c: char) -> u8 {
    let cp = c as u32;
    if cp < 0x80 {
        // ASCII is most text; skip the table search.
        let b = cp as u8;
        return IN
            | match b {
                b'0'..=b'9' => NUMBER,
                b'a'..=b'z' | b'A'..=b'Z' => LETTER,
                b'\t'..=b'\r' | b' ' => SPACE,
                b'!'..=b'#'
                | b'%'..=b'*'
                | b','..=b'/'
                | b':'
                | b';'
                | b'?'
                | b'@'
                | b'['..=b']'
                | b'_'
                | b'{'
                | b'}' => PUNCT,
                _ => 0,
            };
    }
    let space = if WHITESPACE.binary_search(&cp).is_ok() {
        SPACE
    } else {
        0
    };
    let class = match c.general_category_group() {
        GeneralCategoryGroup::Letter => LETTER,
        GeneralCategoryGroup::Number => NUMBER,
        GeneralCategoryGroup::Punctuation => PUNCT,
        _ => 0,
    };
    IN | space | class
}

/// GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for themselves, the other 68 bytes
/// map in order to U+0100.. so every byte becomes a visible code point.
pub(crate) fn byte_to_char(b: u8) -> char {
    if is_printable_byte(b) {
        return char::from(b);
    }
    // Count the non-printable bytes below `b` to find its slot after U+00FF.
    let n = (0..b).filter(|&x| !is_printable_byte(x)).count() as u32;
    char::from_u32(0x100 + n).unwrap_or('\u{FFFD}')
}

fn is_printable_byte(b: u8) -> bool {
    matches!(b, 0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF)
}

/// Lookup tables for the byte-level mapping in both directions.
pub(crate) struct ByteMap {
    /// The UTF-8 encoding of each byte's code point (1 or 2 bytes).
    pub(crate) enc: [([u8; 2], u8); 256],
    /// Inverse for code points below U+0144 (the mapping's range).
    pub(crate) dec: [i16; 0x144],
}

impl ByteMap {
    pub(crate) fn new() -> ByteMap {
        let mut enc = [([0u8; 2], 0u8); 256];
        let mut dec = [-1i16; 0x144];
        for b in 0..=255u8 {
            let c = byte_to_char(b);
            let mut buf = [0u8; 4];
            let s = c.encode_utf8(&mut buf);
            let n = s.len().min(2);
            enc[b as usize] = ([buf[0], buf[1]], n as u8);
            if let Some(slot) = dec.get_mut(c as usize) {
                *slot = i16::from(b);
            }
        }
        ByteMap { enc, dec }
    }

    /// The byte a code point of the mapping stands for.
    pub(crate) fn decode(&self, c: char) -> Option<u8> {
        match self.dec.get(c as usize) {
            Some(&v) if v >= 0 => Some(v as u8),
            _ => None,
        }
    }

    /// Appends the mapped form of `bytes` (the text BPE merges operate on).
    pub(crate) fn encode_into(&self, bytes: &[u8], out: &mut alloc::string::String) {
        for &b in bytes {
            let (buf, n) = &self.enc[b as usize];
            // Each entry is the UTF-8 of one char, so decoding it cannot fail.
            if let Ok(s) = core::str::from_utf8(&buf[..*n as usize]) {
                out.push_str(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_map_is_gpt2s() {
        // Known anchors of GPT-2's table: space is U+0120 'Ġ', newline U+010A 'Ċ', 0xAD U+0143.
        assert_eq!(byte_to_char(b' '), '\u{120}');
        assert_eq!(byte_to_char(b'\n'), '\u{10A}');
        assert_eq!(byte_to_char(0xAD), '\u{143}');
        assert_eq!(byte_to_char(b'a'), 'a');
        assert_eq!(byte_to_char(0), '\u{100}');
        let m = ByteMap::new();
        for b in 0..=255u8 {
            assert_eq!(m.decode(byte_to_char(b)), Some(b));
        }
        assert_eq!(m.decode('\u{144}'), None);
        assert_eq!(m.decode('\u{20}'), None);
    }

    #[test]
    fn classes() {
        assert_eq!(flags('a'), IN | LETTER);
        assert_eq!(flags('7'), IN | NUMBER);
        assert_eq!(flags(' '), IN | SPACE);
        assert_eq!(flags('$'), IN);
        assert_eq!(flags('!'), IN | PUNCT);
        assert_eq!(flags('é'), IN | LETTER);
        assert_eq!(flags('½'), IN | NUMBER);
        assert_eq!(flags('\u{3000}'), IN | SPACE);
        assert_eq!(flags('\u{85}'), IN | SPACE);
        assert_eq!(flags('、'), IN | PUNCT);
        assert_eq!(flags('🦙'), IN);
        // Every ASCII answer of the fast path agrees with the table.
        for b in 0u8..0x80 {
            let c = char::from(b);
            let class = match c.general_category_group() {
                GeneralCategoryGroup::Letter => LETTER,
                GeneralCategoryGroup::Number => NUMBER,
                GeneralCategoryGroup::Punctuation => PUNCT,
                _ => 0,
            };
            let space = if WHITESPACE.contains(&u32::from(b)) {
                SPACE
            } else {
                0
            };
            assert_eq!(flags(c), IN | class | space, "{b:#x}");
        }
    }
}
