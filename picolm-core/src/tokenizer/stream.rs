//! Streaming detokenization that never splits a UTF-8 character: bytes of a token that end in the middle of a
//! character are held back until the next token completes it.

use super::Tokenizer;

/// Turns a stream of token ids into text pieces made of whole characters.
///
/// Owns a cheap clone of the tokenizer, so it can live as long as needed (e.g. inside a generation state).
/// Byte sequences that can never become valid UTF-8 are replaced by U+FFFD (and counted in
/// [`StreamDecoder::n_replaced`]), so decoding never fails mid-stream.
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    tokenizer: Tokenizer,
    unparse_special: bool,
    pending: Vec<u8>,
    replaced: usize,
}

impl StreamDecoder {
    pub(crate) fn new(tokenizer: Tokenizer, unparse_special: bool) -> StreamDecoder {
        StreamDecoder { tokenizer, unparse_special, pending: Vec::new(), replaced: 0 }
    }

    /// Adds a token; returns the text that is now complete (possibly empty).
    pub fn push(&mut self, id: u32) -> String {
        let mut bytes = std::mem::take(&mut self.pending);
        self.tokenizer.append_piece(id, self.unparse_special, &mut bytes);
        self.take_complete(bytes)
    }

    /// Adds raw bytes; returns the text that is now complete.
    pub fn push_bytes(&mut self, b: &[u8]) -> String {
        let mut bytes = std::mem::take(&mut self.pending);
        bytes.extend_from_slice(b);
        self.take_complete(bytes)
    }

    /// Flushes what is held back (an incomplete character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        if self.pending.is_empty() {
            return String::new();
        }
        self.pending.clear();
        self.replaced += 1;
        "\u{FFFD}".to_string()
    }

    /// How many invalid byte sequences were replaced by U+FFFD so far.
    pub fn n_replaced(&self) -> usize {
        self.replaced
    }

    fn take_complete(&mut self, mut bytes: Vec<u8>) -> String {
        let mut out = String::new();
        let mut rest: &[u8] = &bytes;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(good).expect("valid prefix"));
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            self.replaced += 1;
                            rest = &bad[n..];
                        }
                        None => {
                            rest = bad; // incomplete character at the end: hold it back
                            break;
                        }
                    }
                }
            }
        }
        let keep = rest.len();
        let start = bytes.len() - keep;
        bytes.drain(..start);
        self.pending = bytes;
        out
    }
}
