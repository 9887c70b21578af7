//! Byte-level BPE over one pre-tokenized word, as llama.cpp's `llm_tokenizer_bpe_session`.
//!
//! Symbols start as single bytes (each byte is one code point of GPT-2's byte mapping, which is
//! what the merges are written in). A min-heap keyed by (merge rank, left position) picks the
//! next merge, so a word of n bytes costs O(n log n). Every symbol carries the id of its text
//! (or `NONE`), and merges are keyed by the two ids, so the hot loop never hashes strings.

use super::unicode::ByteMap;
use super::vocab::Vocab;
use alloc::collections::BinaryHeap;
use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Reverse;
use hashbrown::HashMap;

/// "Not a token".
pub(crate) const NONE: u32 = u32::MAX;

/// The merge table.
pub(crate) struct Merges {
    /// (left id, right id) -> rank and merged id, open addressing with linear probing at most
    /// 3/4 full. A slot is `EMPTY` or `(left << id_bits | right) << val_bits | val`, where `val`
    /// is the rank, with the merged id above it when everything fits in 64 bits (vocabularies
    /// up to 64k tokens and merges): 8 bytes a merge-slot instead of a hash map's 17.
    slots: Vec<u64>,
    /// log2 of `slots.len()`.
    slot_bits: u32,
    id_bits: u32,
    rank_bits: u32,
    val_bits: u32,
    /// Merged id by rank (`NONE` if the joined text is no token) when it is not in the slot.
    results: Vec<u32>,
    /// Merges with a side that is not itself a token (none in well-formed files): (left, right) -> rank.
    by_text: HashMap<(String, String), u32>,
    /// Token id of each byte's mapped code point.
    byte_ids: [u32; 256],
}

const EMPTY: u64 = u64::MAX;

/// Most merges a vocabulary of `MAX_TOKENS` tokens may have: ids and rank fill 64 bits.
pub(crate) const MAX_MERGES: usize = (1 << 22) - 1;

/// Bits for the numbers `0..=n` (the top value is free for sentinels when `n` is a count).
fn bits_for(n: usize) -> u32 {
    usize::BITS - n.leading_zeros()
}

/// Splits a merge line "a b" at the first space after the first byte, as llama.cpp does; a line
/// without one becomes ("", "").
fn split_merge(m: &str) -> (&str, &str) {
    match m.as_bytes().iter().skip(1).position(|&b| b == b' ') {
        Some(i) => (&m[..i + 1], &m[i + 2..]),
        None => ("", ""),
    }
}

impl Merges {
    /// Reads merges in rank order; the first occurrence of a pair keeps its rank. At most
    /// `MAX_MERGES` merges over at most `vocab::MAX_TOKENS` tokens (the caller checks).
    pub(crate) fn new<'s>(
        vocab: &Vocab,
        bytes: &ByteMap,
        merges: impl ExactSizeIterator<Item = &'s str>,
    ) -> Merges {
        let n_merges = merges.len();
        let id_bits = bits_for(vocab.len());
        let rank_bits = bits_for(n_merges);
        let packed = 3 * id_bits + rank_bits <= 64;
        let val_bits = if packed {
            id_bits + rank_bits
        } else {
            rank_bits
        };
        let cap = (n_merges + n_merges / 3).max(2).next_power_of_two();
        let mut t = Merges {
            slots: alloc::vec![EMPTY; cap],
            slot_bits: cap.trailing_zeros(),
            id_bits,
            rank_bits,
            val_bits,
            results: if packed {
                Vec::new()
            } else {
                alloc::vec![NONE; n_merges]
            },
            by_text: HashMap::new(),
            byte_ids: [NONE; 256],
        };
        let mut joined = String::new();
        // Converted vocabularies list merge results in rank order: merge r creates the token
        // after (GPT-2, Qwen2, SmolLM) or the same as (Llama 3, where several merges build one
        // token) the one merge r - 1 created. Trying those two ids first replaces a random hash
        // probe by a sequential read; a wrong guess costs a text comparison, and guessing stops
        // after 64 misses in a row.
        let mut prev: Option<u32> = None;
        let mut misses = 0u32;
        let is = |id: u32, a: &str, b: &str| {
            let t = vocab.text(id);
            t.len() == a.len() + b.len() && t.starts_with(a) && t.ends_with(b)
        };
        for (rank, m) in merges.enumerate() {
            let (a, b) = split_merge(m);
            match (vocab.id(a), vocab.id(b)) {
                (Some(l), Some(r)) => {
                    let Err(slot) = t.find(l, r) else {
                        continue;
                    };
                    let guess = prev
                        .filter(|_| misses < 64 && !vocab.has_duplicates())
                        .and_then(|p| [p.wrapping_add(1), p].into_iter().find(|&g| is(g, a, b)));
                    let id = guess.or_else(|| {
                        misses += 1;
                        joined.clear();
                        joined.push_str(a);
                        joined.push_str(b);
                        vocab.id(&joined)
                    });
                    if guess.is_some() {
                        misses = 0;
                    }
                    if id.is_some() {
                        prev = id;
                    }
                    t.put(slot, l, r, rank as u32, id.unwrap_or(NONE));
                }
                _ => {
                    t.by_text
                        .entry((String::from(a), String::from(b)))
                        .or_insert(rank as u32);
                }
            }
        }
        let mut s = String::new();
        for (b, slot) in t.byte_ids.iter_mut().enumerate() {
            s.clear();
            bytes.encode_into(&[b as u8], &mut s);
            *slot = vocab.id(&s).unwrap_or(NONE);
        }
        t
    }

    #[inline]
    fn key(&self, l: u32, r: u32) -> u64 {
        (u64::from(l) << self.id_bits) | u64::from(r)
    }

    /// The slot holding the pair (`Ok`), or the empty slot where it would go (`Err`).
    #[inline]
    fn find(&self, l: u32, r: u32) -> Result<usize, usize> {
        let key = self.key(l, r);
        // Fibonacci hashing: the top bits of key * 2^64 / phi.
        let mut i = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - self.slot_bits)) as usize;
        let mask = self.slots.len() - 1;
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                return Err(i);
            }
            if s >> self.val_bits == key {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    fn put(&mut self, slot: usize, l: u32, r: u32, rank: u32, id: u32) {
        let mut val = u64::from(rank);
        if self.results.is_empty() {
            let id = if id == NONE {
                (1 << self.id_bits) - 1
            } else {
                id
            };
            val |= u64::from(id) << self.rank_bits;
        } else {
            self.results[rank as usize] = id;
        }
        self.slots[slot] = (self.key(l, r) << self.val_bits) | val;
    }

    /// Rank of the merge of tokens `l` and `r`.
    #[inline]
    fn rank(&self, l: u32, r: u32) -> Option<u32> {
        let s = self.slots[self.find(l, r).ok()?];
        Some((s & ((1 << self.rank_bits) - 1)) as u32)
    }

    /// Token id the merge of `l` and `r` makes (`NONE` if its text is no token).
    fn result(&self, l: u32, r: u32) -> Option<u32> {
        let s = self.slots[self.find(l, r).ok()?];
        let rank = (s & ((1 << self.rank_bits) - 1)) as usize;
        if self.results.is_empty() {
            let id = ((s >> self.rank_bits) & ((1 << self.id_bits) - 1)) as u32;
            Some(if id == (1 << self.id_bits) - 1 {
                NONE
            } else {
                id
            })
        } else {
            self.results.get(rank).copied()
        }
    }
}

#[derive(Clone, Copy)]
struct Sym {
    start: u32,
    len: u32,
    id: u32,
    prev: i32,
    next: i32,
}

/// Reusable buffers for `encode_word`.
#[derive(Default)]
pub(crate) struct Scratch {
    syms: Vec<Sym>,
    heap: BinaryHeap<Reverse<(u32, u32, u32, u32)>>,
    s1: String,
    s2: String,
}

/// The word's BPE tokens appended to `out`. `word` is raw UTF-8 bytes (not yet byte-mapped).
pub(crate) fn encode_word(
    vocab: &Vocab,
    merges: &Merges,
    bytes: &ByteMap,
    ignore_merges: bool,
    word: &[u8],
    out: &mut Vec<u32>,
    sc: &mut Scratch,
) {
    if word.is_empty() {
        return;
    }
    if ignore_merges {
        sc.s1.clear();
        bytes.encode_into(word, &mut sc.s1);
        if let Some(id) = vocab.id(&sc.s1) {
            out.push(id);
            return;
        }
    }

    sc.syms.clear();
    sc.heap.clear();
    let n = word.len();
    for (i, &b) in word.iter().enumerate() {
        sc.syms.push(Sym {
            start: i as u32,
            len: 1,
            id: merges.byte_ids[b as usize],
            prev: i as i32 - 1,
            next: if i + 1 == n { -1 } else { i as i32 + 1 },
        });
    }
    for i in 1..n {
        add_bigram(merges, bytes, word, sc, i as i32 - 1, i as i32);
    }

    while let Some(Reverse((_rank, left, right, size))) = sc.heap.pop() {
        let (l, r) = (sc.syms[left as usize], sc.syms[right as usize]);
        // Stale entry: one side was merged away or grew since it was queued.
        if l.len == 0 || r.len == 0 || l.len + r.len != size {
            continue;
        }
        let result = merged_id(vocab, merges, bytes, word, sc, l, r);
        let ls = &mut sc.syms[left as usize];
        ls.len += r.len;
        ls.id = result;
        ls.next = r.next;
        let prev = ls.prev;
        sc.syms[right as usize].len = 0;
        if r.next >= 0 {
            sc.syms[r.next as usize].prev = left as i32;
        }
        add_bigram(merges, bytes, word, sc, prev, left as i32);
        add_bigram(merges, bytes, word, sc, left as i32, r.next);
    }

    let mut i = 0i32;
    while i >= 0 {
        let s = sc.syms[i as usize];
        if s.id != NONE {
            out.push(s.id);
        } else {
            // No token for this text: llama.cpp looks up each byte of its mapped form alone, which
            // only ever finds single ASCII characters (a lone byte of a multi-byte code point is
            // not valid UTF-8, so no token has it as text).
            sc.s1.clear();
            bytes.encode_into(
                &word[s.start as usize..(s.start + s.len) as usize],
                &mut sc.s1,
            );
            for &b in sc.s1.as_bytes() {
                if let Some(id) = vocab.id_bytes(&[b]) {
                    out.push(id);
                }
            }
        }
        i = s.next;
    }
}

fn rank_of(
    merges: &Merges,
    bytes: &ByteMap,
    word: &[u8],
    sc: &mut Scratch,
    l: Sym,
    r: Sym,
) -> Option<u32> {
    if l.id != NONE && r.id != NONE {
        return merges.rank(l.id, r.id);
    }
    if merges.by_text.is_empty() {
        return None;
    }
    texts(bytes, word, sc, l, r);
    merges.by_text.get(&(sc.s1.clone(), sc.s2.clone())).copied()
}

fn merged_id(
    vocab: &Vocab,
    merges: &Merges,
    bytes: &ByteMap,
    word: &[u8],
    sc: &mut Scratch,
    l: Sym,
    r: Sym,
) -> u32 {
    if l.id != NONE && r.id != NONE {
        if let Some(id) = merges.result(l.id, r.id) {
            return id;
        }
    }
    texts(bytes, word, sc, l, r);
    sc.s1.push_str(&sc.s2);
    vocab.id(&sc.s1).unwrap_or(NONE)
}

/// The mapped texts of two symbols into `sc.s1` and `sc.s2`.
fn texts(bytes: &ByteMap, word: &[u8], sc: &mut Scratch, l: Sym, r: Sym) {
    sc.s1.clear();
    sc.s2.clear();
    bytes.encode_into(
        &word[l.start as usize..(l.start + l.len) as usize],
        &mut sc.s1,
    );
    bytes.encode_into(
        &word[r.start as usize..(r.start + r.len) as usize],
        &mut sc.s2,
    );
}

fn add_bigram(
    merges: &Merges,
    bytes: &ByteMap,
    word: &[u8],
    sc: &mut Scratch,
    left: i32,
    right: i32,
) {
    if left < 0 || right < 0 {
        return;
    }
    let (l, r) = (sc.syms[left as usize], sc.syms[right as usize]);
    if let Some(rank) = rank_of(merges, bytes, word, sc, l, r) {
        sc.heap
            .push(Reverse((rank, left as u32, right as u32, l.len + r.len)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_lines_split_like_llama_cpp() {
        assert_eq!(split_merge("a b"), ("a", "b"));
        assert_eq!(split_merge("Ġ t"), ("Ġ", "t"));
        assert_eq!(split_merge("ab"), ("", ""));
        assert_eq!(split_merge(""), ("", ""));
        // The first byte is never the separator, so a leading space stays in the left part.
        assert_eq!(split_merge("  x"), (" ", "x"));
        assert_eq!(split_merge("a b c"), ("a", "b c"));
    }
}
