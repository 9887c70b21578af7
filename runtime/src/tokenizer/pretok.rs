//! Pre-tokenizers: split text into words before BPE, exactly as llama.cpp's `unicode_regex_split`.
//!
//! Each regex of a pre-tokenizer's list refines the pieces the previous one produced (matches and
//! the gaps between them both become pieces). The long GPT-2 / Llama 3 / Qwen2 regexes are
//! hand-written scanners mirroring llama.cpp's `unicode_regex_split_custom_*`, including their
//! treatment of a piece boundary as end of text (so `\s+(?!\S)` sees nothing past it). The short
//! helper regexes (`\p{N}`, `\p{N}+`, a punctuation class, `[0-9]{3}`) are plain class scanners.

use super::unicode::{flags, IN, LETTER, NUMBER, PUNCT, SPACE};
use alloc::vec::Vec;

/// A pre-tokenizer family (llama.cpp's `llama_vocab_pre_type`, the ones supported here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PreTokenizer {
    /// llama.cpp's fallback list (`default` or no `tokenizer.ggml.pre`).
    Default,
    /// GPT-2's regex.
    Gpt2,
    /// `\p{N}` then GPT-2's regex (SmolLM, StarCoder, Refact, Command-R, ...).
    Smollm,
    /// Llama 3's regex (digits in groups of up to 3).
    Llama3,
    /// Qwen2's regex (single digits).
    Qwen2,
}

const OUT: u32 = u32::MAX;

/// Splits `cps` (code points with their class `fl`) into pieces; returns the piece lengths in code points.
pub(crate) fn split(pre: PreTokenizer, cps: &[char], fl: &[u8]) -> Vec<usize> {
    let mut offs = Vec::with_capacity(1);
    if !cps.is_empty() {
        offs.push(cps.len());
    }
    match pre {
        PreTokenizer::Gpt2 => offs = gpt2(cps, fl, &offs),
        PreTokenizer::Smollm => {
            offs = runs(cps, fl, &offs, |_, f| f & NUMBER != 0, Some(1));
            offs = gpt2(cps, fl, &offs);
        }
        PreTokenizer::Llama3 => offs = llama3(cps, fl, &offs, 3),
        PreTokenizer::Qwen2 => offs = llama3(cps, fl, &offs, 1),
        PreTokenizer::Default => {
            // [\p{P}\$\+<=>\^~\|]+ ; GPT-2 ; \p{N}+ ; [0-9][0-9][0-9]
            offs = runs(
                cps,
                fl,
                &offs,
                |c, f| f & PUNCT != 0 || matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '~' | '|'),
                None,
            );
            offs = gpt2(cps, fl, &offs);
            offs = runs(cps, fl, &offs, |_, f| f & NUMBER != 0, None);
            offs = ascii_digit_triples(cps, &offs);
        }
    }
    offs
}

/// Code point and class at `pos` within the piece `[ini, end)`; outside it, `OUT` and 0.
#[derive(Clone, Copy)]
struct Piece<'a> {
    cps: &'a [char],
    fl: &'a [u8],
    ini: usize,
    end: usize,
}

impl Piece<'_> {
    fn cpt(&self, pos: usize) -> u32 {
        if pos >= self.ini && pos < self.end {
            self.cps[pos] as u32
        } else {
            OUT
        }
    }

    fn flags(&self, pos: usize) -> u8 {
        if pos >= self.ini && pos < self.end {
            self.fl[pos]
        } else {
            0
        }
    }
}

/// Emits pieces as the scanner advances; `add(end)` closes the piece ending at `end`.
struct Out<'v> {
    v: &'v mut Vec<usize>,
    prev_end: usize,
}

impl Out<'_> {
    fn add(&mut self, end: usize) -> usize {
        let len = end - self.prev_end;
        if len > 0 {
            self.v.push(len);
        }
        self.prev_end = end;
        len
    }
}

fn each_piece(
    cps: &[char],
    fl: &[u8],
    offs: &[usize],
    mut f: impl FnMut(Piece<'_>, &mut Out<'_>),
) -> Vec<usize> {
    let mut v = Vec::with_capacity(offs.len() * 2);
    let mut start = 0;
    for &n in offs {
        let p = Piece {
            cps,
            fl,
            ini: start,
            end: start + n,
        };
        let mut out = Out {
            v: &mut v,
            prev_end: start,
        };
        f(p, &mut out);
        start += n;
    }
    v
}

fn is_contraction1(c: u32) -> bool {
    matches!(char::from_u32(c), Some('s' | 't' | 'm' | 'd'))
}

fn is_contraction2(c1: u32, c2: u32) -> bool {
    matches!(
        (char::from_u32(c1), char::from_u32(c2)),
        (Some('r'), Some('e')) | (Some('v'), Some('e')) | (Some('l'), Some('l'))
    )
}

fn ascii_lower(c: u32) -> u32 {
    // llama.cpp lowercases with the full Unicode map, but only ASCII capitals map onto the ASCII
    // letters tested here, so ASCII lowering decides the same.
    if (u32::from(b'A')..=u32::from(b'Z')).contains(&c) {
        c + 32
    } else {
        c
    }
}

/// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
fn gpt2(cps: &[char], fl: &[u8], offs: &[usize]) -> Vec<usize> {
    each_piece(cps, fl, offs, |p, out| {
        let mut pos = p.ini;
        while pos < p.end {
            let cpt = p.cpt(pos);
            let f = p.flags(pos);

            if cpt == u32::from(b'\'') && pos + 1 < p.end {
                let next = p.cpt(pos + 1);
                if is_contraction1(next) {
                    pos += out.add(pos + 2);
                    continue;
                }
                if pos + 2 < p.end && is_contraction2(next, p.cpt(pos + 2)) {
                    pos += out.add(pos + 3);
                    continue;
                }
            }

            // <space>?\p{L}+ , <space>?\p{N}+ , <space>?[^\s\p{L}\p{N}]+
            let is_space = cpt == u32::from(b' ');
            let mut f2 = if is_space { p.flags(pos + 1) } else { f };
            if let Some(class) = [LETTER, NUMBER].into_iter().find(|&c| f2 & c != 0) {
                pos += usize::from(is_space);
                while f2 & class != 0 {
                    pos += 1;
                    f2 = p.flags(pos);
                }
                out.add(pos);
                continue;
            }
            if f2 & (SPACE | LETTER | NUMBER) == 0 && f2 != 0 {
                pos += usize::from(is_space);
                while f2 & (SPACE | LETTER | NUMBER) == 0 && f2 != 0 {
                    pos += 1;
                    f2 = p.flags(pos);
                }
                out.add(pos);
                continue;
            }
            pos = whitespace(p, out, pos, false);
        }
    })
}

/// `\s*[\r\n]+|\s+(?!\S)|\s+` (with `crlf` set) or `\s+(?!\S)|\s+`, and "no match": one code point.
fn whitespace(p: Piece<'_>, out: &mut Out<'_>, mut pos: usize, crlf: bool) -> usize {
    let mut n = 0;
    let mut last_crlf_end = 0;
    while p.flags(pos + n) & SPACE != 0 {
        let c = p.cpt(pos + n);
        if c == u32::from(b'\r') || c == u32::from(b'\n') {
            last_crlf_end = pos + n + 1;
        }
        n += 1;
    }
    if crlf && last_crlf_end > 0 {
        pos = last_crlf_end;
        out.add(pos);
        return pos;
    }
    if n > 1 && p.cpt(pos + n) != OUT {
        pos += n - 1;
        out.add(pos);
        return pos;
    }
    if n > 0 {
        pos += n;
        out.add(pos);
        return pos;
    }
    pos += 1;
    out.add(pos);
    pos
}

/// Llama 3 (`group = 3`) and Qwen2 (`group = 1`):
/// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
fn llama3(cps: &[char], fl: &[u8], offs: &[usize], group: usize) -> Vec<usize> {
    each_piece(cps, fl, offs, |p, out| {
        let mut pos = p.ini;
        while pos < p.end {
            let cpt = p.cpt(pos);
            let f = p.flags(pos);

            if cpt == u32::from(b'\'') && pos + 1 < p.end {
                let next = ascii_lower(p.cpt(pos + 1));
                if is_contraction1(next) {
                    pos += out.add(pos + 2);
                    continue;
                }
                if pos + 2 < p.end && is_contraction2(next, ascii_lower(p.cpt(pos + 2))) {
                    pos += out.add(pos + 3);
                    continue;
                }
            }

            // [^\r\n\p{L}\p{N}]?\p{L}+
            if !(cpt == u32::from(b'\r') || cpt == u32::from(b'\n') || f & NUMBER != 0)
                && (f & LETTER != 0 || p.flags(pos + 1) & LETTER != 0)
            {
                pos += 1;
                while p.flags(pos) & LETTER != 0 {
                    pos += 1;
                }
                out.add(pos);
                continue;
            }

            // \p{N}{1,D}
            if f & NUMBER != 0 {
                let mut ini = pos;
                while p.flags(pos) & NUMBER != 0 {
                    pos += 1;
                    if pos - ini >= group {
                        out.add(pos);
                        ini = pos;
                    }
                }
                out.add(pos);
                continue;
            }

            // <space>?[^\s\p{L}\p{N}]+[\r\n]*
            let is_space = cpt == u32::from(b' ');
            let mut f2 = if is_space { p.flags(pos + 1) } else { f };
            if f2 & (SPACE | LETTER | NUMBER) == 0 && f != 0 {
                pos += usize::from(is_space);
                while f2 & (SPACE | LETTER | NUMBER) == 0 && f2 != 0 {
                    pos += 1;
                    f2 = p.flags(pos);
                }
                let mut c2 = p.cpt(pos);
                while c2 == u32::from(b'\r') || c2 == u32::from(b'\n') {
                    pos += 1;
                    c2 = p.cpt(pos);
                }
                out.add(pos);
                continue;
            }

            pos = whitespace(p, out, pos, true);
        }
    })
}

/// A regex that is one character class: with `max = None`, `[C]+` (maximal runs); with
/// `Some(1)`, `[C]` (each member alone). Matches and the gaps between them become pieces.
fn runs(
    cps: &[char],
    fl: &[u8],
    offs: &[usize],
    member: impl Fn(char, u8) -> bool,
    max: Option<usize>,
) -> Vec<usize> {
    let max = max.unwrap_or(usize::MAX);
    each_piece(cps, fl, offs, |p, out| {
        let mut pos = p.ini;
        while pos < p.end {
            if member(cps[pos], fl[pos]) {
                out.add(pos);
                let start = pos;
                while pos < p.end && pos - start < max && member(cps[pos], fl[pos]) {
                    pos += 1;
                }
                out.add(pos);
            } else {
                pos += 1;
            }
        }
        out.add(p.end);
    })
}

/// `[0-9][0-9][0-9]`: leftmost non-overlapping ASCII digit triples.
fn ascii_digit_triples(cps: &[char], offs: &[usize]) -> Vec<usize> {
    let mut v = Vec::with_capacity(offs.len());
    let mut start = 0;
    for &n in offs {
        let end = start + n;
        let mut prev = start;
        let mut pos = start;
        while pos + 3 <= end {
            if cps[pos..pos + 3].iter().all(char::is_ascii_digit) {
                if pos > prev {
                    v.push(pos - prev);
                }
                v.push(3);
                pos += 3;
                prev = pos;
            } else {
                pos += 1;
            }
        }
        if end > prev {
            v.push(end - prev);
        }
        start = end;
    }
    v
}

/// Classes of each code point of `s`, for `split`.
pub(crate) fn classify(s: &str, cps: &mut Vec<char>, fl: &mut Vec<u8>) {
    cps.clear();
    fl.clear();
    for c in s.chars() {
        cps.push(c);
        fl.push(flags(c));
    }
    debug_assert!(fl.iter().all(|&f| f & IN != 0));
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    /// The pieces of `s`, as strings.
    fn pieces(pre: PreTokenizer, s: &str) -> Vec<String> {
        let (mut cps, mut fl) = (Vec::new(), Vec::new());
        classify(s, &mut cps, &mut fl);
        let mut at = 0;
        split(pre, &cps, &fl)
            .into_iter()
            .map(|n| {
                let p: String = cps[at..at + n].iter().collect();
                at += n;
                p
            })
            .collect()
    }

    // Expected splits worked out by hand from the regexes in llama.cpp's llm_tokenizer_bpe.

    #[test]
    fn gpt2_regex() {
        use PreTokenizer::Gpt2;
        assert_eq!(pieces(Gpt2, "Hello world"), ["Hello", " world"]);
        assert_eq!(pieces(Gpt2, "don't I'LL"), ["don", "'t", " I", "'", "LL"]);
        // \s+(?!\S) leaves the last space to the next word.
        assert_eq!(pieces(Gpt2, "x   y"), ["x", "  ", " y"]);
        assert_eq!(pieces(Gpt2, "x  "), ["x", "  "]);
        assert_eq!(pieces(Gpt2, " 123 ?!"), [" 123", " ?!"]);
        assert_eq!(pieces(Gpt2, ""), Vec::<String>::new());
    }

    #[test]
    fn smollm_isolates_digits_first() {
        use PreTokenizer::Smollm;
        // The digit split ends the piece " " before "1", so the space cannot join the number.
        assert_eq!(pieces(Smollm, "a 12"), ["a", " ", "1", "2"]);
        assert_eq!(pieces(Smollm, "x2y"), ["x", "2", "y"]);
    }

    #[test]
    fn llama3_and_qwen2_regexes() {
        use PreTokenizer::{Llama3, Qwen2};
        assert_eq!(pieces(Llama3, "1234567"), ["123", "456", "7"]);
        assert_eq!(pieces(Qwen2, "123"), ["1", "2", "3"]);
        // Case-insensitive contractions, and one non-letter may lead a word.
        assert_eq!(pieces(Llama3, "I'LL go"), ["I", "'LL", " go"]);
        assert_eq!(pieces(Llama3, "$hello"), ["$hello"]);
        assert_eq!(pieces(Llama3, "hi!!\n\nyo"), ["hi", "!!\n\n", "yo"]);
        assert_eq!(pieces(Llama3, "a \n\n b"), ["a", " \n\n", " b"]);
        assert_eq!(pieces(Qwen2, "x   y"), ["x", "  ", " y"]);
    }

    #[test]
    fn default_list() {
        use PreTokenizer::Default;
        // [\p{P}\$\+<=>\^~\|]+ , then GPT-2, then \p{N}+, then [0-9]{3}.
        assert_eq!(
            pieces(Default, "a+=b 12345"),
            ["a", "+=", "b", " ", "123", "45"]
        );
        assert_eq!(pieces(Default, "x, y"), ["x", ",", " y"]);
    }
}
