//! Incremental UTF-8 decoding of token bytes.

use alloc::string::String;
use alloc::vec::Vec;

/// Turns a stream of token bytes into text, holding back a character split across tokens until
/// its last byte arrives.
///
/// The concatenation of everything `push` and `finish` return equals `String::from_utf8_lossy`
/// of all the bytes pushed: invalid bytes become U+FFFD as soon as they are known to be invalid,
/// and an incomplete character still pending at `finish` becomes one U+FFFD.
#[derive(Clone, Debug, Default)]
pub struct StreamDecoder {
    /// Bytes of an incomplete character (at most 3).
    pending: Vec<u8>,
    out: String,
}

impl StreamDecoder {
    /// An empty decoder.
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// Adds bytes; returns the text they complete (possibly empty).
    pub fn push(&mut self, bytes: &[u8]) -> &str {
        self.out.clear();
        if self.pending.is_empty() {
            let rest = decode_into(bytes, &mut self.out);
            self.pending.extend_from_slice(rest);
        } else {
            let mut buf = core::mem::take(&mut self.pending);
            buf.extend_from_slice(bytes);
            let rest = decode_into(&buf, &mut self.out);
            self.pending.extend_from_slice(rest);
        }
        &self.out
    }

    /// Ends the stream: returns a U+FFFD for an incomplete character left over (else ""), and
    /// makes the decoder ready for a new stream.
    pub fn finish(&mut self) -> &str {
        self.out.clear();
        if !self.pending.is_empty() {
            self.pending.clear();
            self.out.push(char::REPLACEMENT_CHARACTER);
        }
        &self.out
    }

    /// True when bytes of an incomplete character are held back.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

/// Appends the valid text of `bytes` to `out` (invalid sequences as U+FFFD) and returns the
/// incomplete character at the end, if any.
fn decode_into<'b>(mut bytes: &'b [u8], out: &mut String) -> &'b [u8] {
    loop {
        match core::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                return &[];
            }
            Err(e) => {
                let (good, bad) = bytes.split_at(e.valid_up_to());
                // `good` is valid UTF-8 by `valid_up_to`'s contract.
                out.push_str(core::str::from_utf8(good).unwrap_or_default());
                match e.error_len() {
                    Some(n) => {
                        out.push(char::REPLACEMENT_CHARACTER);
                        bytes = &bad[n..];
                    }
                    None => return bad,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> String {
        let mut d = StreamDecoder::new();
        let mut s = String::new();
        for c in chunks {
            s.push_str(d.push(c));
        }
        s.push_str(d.finish());
        s
    }

    #[test]
    fn split_characters_come_out_whole() {
        let e = "é🦙".as_bytes();
        let mut d = StreamDecoder::new();
        assert_eq!(d.push(&e[..1]), "");
        assert!(d.has_pending());
        assert_eq!(d.push(&e[1..3]), "é");
        assert_eq!(d.push(&e[3..4]), "");
        assert_eq!(d.push(&e[4..5]), "");
        assert_eq!(d.push(&e[5..]), "🦙");
        assert_eq!(d.finish(), "");
    }

    #[test]
    fn matches_lossy_decoding_for_every_split() {
        let cases: [&[u8]; 6] = [
            "a€b😀c".as_bytes(),
            b"\xff\xfeab",
            b"a\xe2\x82",
            b"\xe2\x82a\xf0\x9f\x98",
            b"\xc0\x80\xed\xa0\x80x",
            b"\xf4\x90\x80\x80\xe2",
        ];
        for bytes in cases {
            let want = String::from_utf8_lossy(bytes);
            for cut1 in 0..=bytes.len() {
                for cut2 in cut1..=bytes.len() {
                    let got = run(&[&bytes[..cut1], &bytes[cut1..cut2], &bytes[cut2..]]);
                    assert_eq!(got, want, "{bytes:?} cut at {cut1},{cut2}");
                }
            }
        }
    }
}
