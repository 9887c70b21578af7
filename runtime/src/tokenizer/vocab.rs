//! The token table: every token text in one buffer, looked up by a compact hash index.

use super::offsets::Offsets;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;
use core::hash::BuildHasher;
use hashbrown::DefaultHashBuilder;

/// Bits of an id in an index slot; the rest of the slot is a tag of the text's hash.
const ID_BITS: u32 = 21;
const ID_MASK: u32 = (1 << ID_BITS) - 1;
/// Most tokens a vocabulary may have: ids stay below `ID_MASK`, so no occupied slot is `EMPTY`.
pub(crate) const MAX_TOKENS: usize = ID_MASK as usize;
const EMPTY: u32 = u32::MAX;

/// Token texts by id, and id by text.
pub(crate) struct Vocab {
    text: String,
    /// `ends[i]` is where token `i` ends in `text`; it starts where token `i - 1` ends.
    ends: Offsets,
    /// Open addressing with linear probing, at most 3/4 full: each slot is `EMPTY` or
    /// `tag << ID_BITS | id`, the tag being the top bits of the text's hash. 4 bytes a slot
    /// instead of a swiss table's 13 (id, text range, control byte); the tag skips almost every
    /// text comparison with another token, so a probe still costs about one cache miss more
    /// than the text itself.
    index: Vec<u32>,
    hasher: DefaultHashBuilder,
    duplicates: bool,
}

impl Vocab {
    /// Builds the table; when a text appears twice the later id wins (llama.cpp's `token_to_id[word] = i`).
    /// At most `MAX_TOKENS` tokens (the caller checks).
    /// `total` is the texts' length (reserved up front).
    pub(crate) fn new<'s>(tokens: impl ExactSizeIterator<Item = &'s str>, total: usize) -> Vocab {
        let n = tokens.len();
        let cap = (n + n / 3).max(1).next_power_of_two();
        let mut v = Vocab {
            text: String::with_capacity(total),
            ends: Offsets::Wide(Vec::with_capacity(n)),
            index: vec![EMPTY; cap],
            hasher: DefaultHashBuilder::default(),
            duplicates: false,
        };
        for (id, t) in tokens.enumerate() {
            if t.is_empty() {
                // llama.cpp renames empty tokens so that every text maps back to one id.
                let _ = write!(v.text, "[EMPTY_{id}]");
            } else {
                v.text.push_str(t);
            }
            if let Offsets::Wide(e) = &mut v.ends {
                e.push(v.text.len() as u32);
            }
            v.insert(id as u32);
        }
        v.text.shrink_to_fit();
        if let Offsets::Wide(e) = core::mem::replace(&mut v.ends, Offsets::Wide(Vec::new())) {
            v.ends = Offsets::new(e);
        }
        v
    }

    fn insert(&mut self, id: u32) {
        let key = self.text(id).as_bytes();
        let (mut i, tag) = self.start(key);
        let mask = self.index.len() - 1;
        let (slot, dup) = loop {
            let s = self.index[i];
            if s == EMPTY {
                break (i, false);
            }
            if s & !ID_MASK == tag && self.text(s & ID_MASK).as_bytes() == key {
                break (i, true);
            }
            i = (i + 1) & mask;
        };
        self.index[slot] = tag | id;
        self.duplicates |= dup;
    }

    /// First slot to probe and the tag (already shifted) of `key`.
    #[inline]
    fn start(&self, key: &[u8]) -> (usize, u32) {
        let h = self.hasher.hash_one(key);
        let tag = ((h >> (64 - (32 - ID_BITS))) as u32) << ID_BITS;
        (h as usize & (self.index.len() - 1), tag)
    }

    /// Whether some text appears under two ids (then only the last one is found by text).
    pub(crate) fn has_duplicates(&self) -> bool {
        self.duplicates
    }

    /// Number of tokens.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Total bytes of all texts.
    pub(crate) fn text_len(&self) -> usize {
        self.text.len()
    }

    /// The text of token `id` (empty when out of range).
    #[inline]
    pub(crate) fn text(&self, id: u32) -> &str {
        let i = id as usize;
        let Some(end) = self.ends.get(i) else {
            return "";
        };
        let start = match i {
            0 => 0,
            _ => self.ends.get(i - 1).unwrap_or(end),
        };
        self.text.get(start as usize..end as usize).unwrap_or("")
    }

    /// The id of a token text.
    pub(crate) fn id(&self, s: &str) -> Option<u32> {
        self.id_bytes(s.as_bytes())
    }

    /// The id of a token text given as bytes (never matches invalid UTF-8).
    pub(crate) fn id_bytes(&self, key: &[u8]) -> Option<u32> {
        let (mut i, tag) = self.start(key);
        let mask = self.index.len() - 1;
        loop {
            let s = self.index[i];
            if s == EMPTY {
                return None;
            }
            if s & !ID_MASK == tag && self.text(s & ID_MASK).as_bytes() == key {
                return Some(s & ID_MASK);
            }
            i = (i + 1) & mask;
        }
    }
}
