//! The token table: every token text in one buffer, looked up by a swiss table of ids.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::hash::BuildHasher;
use hashbrown::{DefaultHashBuilder, HashTable};

/// Token texts by id, and id by text.
pub(crate) struct Vocab {
    text: String,
    /// `ends[i]` is where token `i` ends in `text`; it starts where token `i - 1` ends.
    ends: Vec<u32>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
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
        };
        for (id, t) in tokens.enumerate() {
            if t.is_empty() {
                // llama.cpp renames empty tokens so that every text maps back to one id.
                let _ = write!(v.text, "[EMPTY_{id}]");
            } else {
                v.text.push_str(t);
            }
            v.ends.push(v.text.len() as u32);
            v.insert(id as u32);
        }
        v
    }

    fn insert(&mut self, id: u32) {
        let Vocab {
            text,
            ends,
            index,
            hasher,
        } = self;
        let s = slice(text, ends, id);
        let h = hasher.hash_one(s.as_bytes());
        match index.find_mut(h, |&other| slice(text, ends, other) == s) {
            Some(slot) => *slot = id,
            None => {
                index.insert_unique(h, id, |&x| hasher.hash_one(slice(text, ends, x).as_bytes()));
            }
        }
    }

    /// Number of tokens.
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The text of token `id` (empty when out of range).
    pub(crate) fn text(&self, id: u32) -> &str {
        if (id as usize) < self.ends.len() {
            slice(&self.text, &self.ends, id)
        } else {
            ""
        }
    }

    /// The id of a token text.
    pub(crate) fn id(&self, s: &str) -> Option<u32> {
        self.id_bytes(s.as_bytes())
    }

    /// The id of a token text given as bytes (never matches invalid UTF-8).
    pub(crate) fn id_bytes(&self, s: &[u8]) -> Option<u32> {
        let h = self.hasher.hash_one(s);
        self.index
            .find(h, |&id| slice(&self.text, &self.ends, id).as_bytes() == s)
            .copied()
    }
}

fn slice<'t>(text: &'t str, ends: &[u32], id: u32) -> &'t str {
    let i = id as usize;
    let start = if i == 0 { 0 } else { ends[i - 1] as usize };
    let end = ends[i] as usize;
    text.get(start..end).unwrap_or("")
}
