//! The token table: every token text in one buffer, looked up by a swiss table.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::hash::BuildHasher;
use hashbrown::hash_table::Entry;
use hashbrown::{DefaultHashBuilder, HashTable};

/// A table entry: the id and where its text lies, so a probe compares text without first
/// loading `ends` (lookups are cache-miss bound; this saves one miss per probe).
#[derive(Clone, Copy)]
struct Slot {
    id: u32,
    start: u32,
    end: u32,
}

/// Token texts by id, and id by text.
pub(crate) struct Vocab {
    text: String,
    /// `ends[i]` is where token `i` ends in `text`; it starts where token `i - 1` ends.
    ends: Vec<u32>,
    index: HashTable<Slot>,
    hasher: DefaultHashBuilder,
    duplicates: bool,
}

impl Vocab {
    /// Builds the table; when a text appears twice the later id wins (llama.cpp's `token_to_id[word] = i`).
    pub(crate) fn new<'s>(tokens: impl ExactSizeIterator<Item = &'s str> + Clone) -> Vocab {
        let n = tokens.len();
        let total: usize = tokens.clone().map(str::len).sum();
        let mut v = Vocab {
            text: String::with_capacity(total),
            ends: Vec::with_capacity(n),
            index: HashTable::with_capacity(n),
            hasher: DefaultHashBuilder::default(),
            duplicates: false,
        };
        for (id, t) in tokens.enumerate() {
            let start = v.text.len() as u32;
            if t.is_empty() {
                // llama.cpp renames empty tokens so that every text maps back to one id.
                let _ = write!(v.text, "[EMPTY_{id}]");
            } else {
                v.text.push_str(t);
            }
            let end = v.text.len() as u32;
            v.ends.push(end);
            v.insert(Slot {
                id: id as u32,
                start,
                end,
            });
        }
        v
    }

    fn insert(&mut self, slot: Slot) {
        let Vocab {
            text,
            index,
            hasher,
            duplicates,
            ..
        } = self;
        let bytes = |s: &Slot| {
            text.as_bytes()
                .get(s.start as usize..s.end as usize)
                .unwrap_or(&[])
        };
        let key = bytes(&slot);
        let h = hasher.hash_one(key);
        match index.entry(h, |s| bytes(s) == key, |s| hasher.hash_one(bytes(s))) {
            Entry::Occupied(mut e) => {
                *e.get_mut() = slot;
                *duplicates = true;
            }
            Entry::Vacant(e) => {
                e.insert(slot);
            }
        }
    }

    /// Whether some text appears under two ids (then only the last one is found by text).
    pub(crate) fn has_duplicates(&self) -> bool {
        self.duplicates
    }

    /// Number of tokens.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The text of token `id` (empty when out of range).
    pub(crate) fn text(&self, id: u32) -> &str {
        let i = id as usize;
        let Some(&end) = self.ends.get(i) else {
            return "";
        };
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start as usize..end as usize).unwrap_or("")
    }

    /// The id of a token text.
    pub(crate) fn id(&self, s: &str) -> Option<u32> {
        self.id_bytes(s.as_bytes())
    }

    /// The id of a token text given as bytes (never matches invalid UTF-8).
    pub(crate) fn id_bytes(&self, key: &[u8]) -> Option<u32> {
        let h = self.hasher.hash_one(key);
        let text = self.text.as_bytes();
        self.index
            .find(h, |s| {
                text.get(s.start as usize..s.end as usize) == Some(key)
            })
            .map(|s| s.id)
    }
}
