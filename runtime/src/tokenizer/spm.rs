//! SentencePiece-style BPE by token score, as llama.cpp's `llm_tokenizer_spm_session`.
//!
//! Symbols start as UTF-8 characters; the adjacent pair whose concatenation is the best-scoring
//! token is merged first (ties: leftmost). Characters that end up in no token fall back to their
//! bytes as `<0xXX>` tokens.

use super::vocab::Vocab;
use alloc::collections::BinaryHeap;
use alloc::vec::Vec;
use core::cmp::Ordering;

#[derive(Clone, Copy)]
struct Sym {
    start: u32,
    len: u32,
    prev: i32,
    next: i32,
}

struct Bigram {
    score: f32,
    left: u32,
    right: u32,
    size: u32,
}

impl Ord for Bigram {
    // Greater pops first: higher score, then the smaller left index. Scores compare like C++'s
    // `<` (NaN equal to everything) so the order matches llama.cpp's comparator.
    fn cmp(&self, o: &Self) -> Ordering {
        if self.score < o.score {
            Ordering::Less
        } else if self.score > o.score {
            Ordering::Greater
        } else {
            o.left.cmp(&self.left)
        }
    }
}

impl PartialOrd for Bigram {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

impl PartialEq for Bigram {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}

impl Eq for Bigram {}

/// Reusable buffers for `encode`.
#[derive(Default)]
pub(crate) struct Scratch {
    syms: Vec<Sym>,
    heap: BinaryHeap<Bigram>,
}

/// Tokens of `text` (already space-escaped) appended to `out`.
pub(crate) fn encode(
    vocab: &Vocab,
    scores: &[f32],
    text: &str,
    out: &mut Vec<u32>,
    sc: &mut Scratch,
) {
    sc.syms.clear();
    sc.heap.clear();
    let mut iter = text.char_indices().peekable();
    let mut index = 0i32;
    while let Some((off, c)) = iter.next() {
        let last = iter.peek().is_none();
        sc.syms.push(Sym {
            start: off as u32,
            len: c.len_utf8() as u32,
            prev: index - 1,
            next: if last { -1 } else { index + 1 },
        });
        index += 1;
    }
    if sc.syms.is_empty() {
        return;
    }
    for i in 1..sc.syms.len() {
        add_bigram(vocab, scores, text, sc, i as i32 - 1, i as i32);
    }

    while let Some(b) = sc.heap.pop() {
        let (l, r) = (sc.syms[b.left as usize], sc.syms[b.right as usize]);
        if l.len == 0 || r.len == 0 || l.len + r.len != b.size {
            continue;
        }
        let ls = &mut sc.syms[b.left as usize];
        ls.len += r.len;
        ls.next = r.next;
        let prev = ls.prev;
        sc.syms[b.right as usize].len = 0;
        if r.next >= 0 {
            sc.syms[r.next as usize].prev = b.left as i32;
        }
        add_bigram(vocab, scores, text, sc, prev, b.left as i32);
        add_bigram(vocab, scores, text, sc, b.left as i32, r.next);
    }

    let mut i = 0i32;
    while i >= 0 {
        let s = sc.syms[i as usize];
        let piece = &text.as_bytes()[s.start as usize..(s.start + s.len) as usize];
        match vocab.id_bytes(piece) {
            Some(id) => out.push(id),
            // Merged symbols are always tokens (a pair is only queued when its text is one), so
            // this is a single character outside the vocabulary: llama.cpp's `resegment` finds
            // no merge for it either and emits its bytes.
            None => {
                for &byte in piece {
                    if let Some(id) = byte_token(vocab, byte) {
                        out.push(id);
                    }
                }
            }
        }
        i = s.next;
    }
}

/// The token for a raw byte: `<0xXX>`, else the byte itself as a one-character token.
/// (llama.cpp throws when neither exists; the byte is dropped here.)
pub(crate) fn byte_token(vocab: &Vocab, b: u8) -> Option<u32> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let name = [
        b'<',
        b'0',
        b'x',
        HEX[usize::from(b >> 4)],
        HEX[usize::from(b & 15)],
        b'>',
    ];
    vocab.id_bytes(&name).or_else(|| vocab.id_bytes(&[b]))
}

fn add_bigram(vocab: &Vocab, scores: &[f32], text: &str, sc: &mut Scratch, left: i32, right: i32) {
    if left < 0 || right < 0 {
        return;
    }
    let (l, r) = (sc.syms[left as usize], sc.syms[right as usize]);
    let size = l.len + r.len;
    let s = &text.as_bytes()[l.start as usize..(l.start + size) as usize];
    if let Some(id) = vocab.id_bytes(s) {
        sc.heap.push(Bigram {
            score: scores.get(id as usize).copied().unwrap_or(0.0),
            left: left as u32,
            right: right as u32,
            size,
        });
    }
}
