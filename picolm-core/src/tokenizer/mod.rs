//! Tokenizers built from GGUF metadata, matching llama.cpp token for token: GPT-2 byte-level BPE (`gpt2`, with
//! the smollm / llama-bpe / qwen2 / gpt2 pre-tokenizers) and SentencePiece-style vocabularies (`llama`, with or
//! without the leading-space prefix). A tokenizer can be loaded from a GGUF file that has no weights.

mod bpe;
mod error;
mod pretokenize;
mod special;
mod spm;
mod stream;
mod vocab;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use error::TokenizerError;
pub use stream::StreamDecoder;
pub use vocab::{TokenType, TokenizerKind, Vocab};

use crate::gguf::GgufFile;
use special::Fragment;

#[derive(Debug)]
enum Algorithm {
    /// Boxed, as is the other: both carry byte tables of a few KiB.
    Bpe(Box<bpe::Bpe>),
    /// SentencePiece-style merges by score.
    Spm(Box<spm::Spm>),
}

#[derive(Debug)]
struct Inner {
    vocab: Vocab,
    algorithm: Algorithm,
    specials: Vec<u32>,
}

/// A tokenizer; cheap to clone (shared internals), `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: Arc<Inner>,
}

impl Tokenizer {
    /// Builds the tokenizer described by the file's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(g: &GgufFile) -> Result<Tokenizer, TokenizerError> {
        Tokenizer::from_vocab(Vocab::from_gguf(g)?)
    }

    /// Builds a tokenizer over a vocabulary.
    pub fn from_vocab(mut vocab: Vocab) -> Result<Tokenizer, TokenizerError> {
        let algorithm = match vocab.kind {
            TokenizerKind::Bpe => Algorithm::Bpe(Box::new(bpe::Bpe::new(&vocab)?)),
            TokenizerKind::SentencePiece => Algorithm::Spm(Box::new(spm::Spm::new(&vocab))),
        };
        // The merge list lives on as the BPE ranks: its copy would only hold memory (2.7 MiB for 49k merges).
        vocab.merges = Vec::new();
        let specials = special::special_tokens_by_length(&vocab);
        Ok(Tokenizer { inner: Arc::new(Inner { vocab, algorithm, specials }) })
    }

    fn v(&self) -> &Vocab {
        &self.inner.vocab
    }

    /// Number of tokens.
    pub fn n_vocab(&self) -> usize {
        self.v().len()
    }

    /// The algorithm.
    pub fn model_kind(&self) -> TokenizerKind {
        self.v().kind
    }

    /// The pre-tokenizer name (`tokenizer.ggml.pre`, `"default"` when absent).
    pub fn pre_tokenizer(&self) -> &str {
        &self.v().pre
    }

    /// Token ids of `text`. `add_special` adds BOS/EOS as the vocabulary asks; `parse_special` turns control-token
    /// text (e.g. `<|im_start|>`) into those tokens instead of tokenizing it as plain text.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let v = self.v();
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && v.add_bos {
            if let Some(b) = v.bos {
                out.push(b);
            }
        }
        // Like llama.cpp, empty text has no fragments (so no space prefix either).
        let frags =
            if text.is_empty() { Vec::new() } else { special::partition(v, &self.inner.specials, text, parse_special) };
        match &self.inner.algorithm {
            Algorithm::Bpe(bpe) => {
                for f in frags {
                    match f {
                        Fragment::Text(t) => bpe.encode(v, t, &mut out),
                        Fragment::Token(id) => out.push(id),
                    }
                }
            }
            Algorithm::Spm(spm) => {
                let mut prev_special = true;
                let mut buf = String::new();
                for f in frags {
                    match f {
                        Fragment::Text(t) => {
                            buf.clear();
                            if v.add_space_prefix && prev_special {
                                buf.push('\u{2581}');
                            }
                            for c in t.chars() {
                                buf.push(if c == ' ' { '\u{2581}' } else { c });
                            }
                            spm.encode(v, &buf, &mut out);
                            prev_special = false;
                        }
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                    }
                }
            }
        }
        if add_special && v.add_eos {
            if let Some(e) = v.eos {
                out.push(e);
            }
        }
        out
    }

    /// Appends the bytes of one token (llama.cpp's `token_to_piece`): control and unknown tokens render only
    /// with `unparse_special`; out-of-range ids render nothing.
    pub fn append_piece(&self, id: u32, unparse_special: bool, out: &mut Vec<u8>) {
        let v = self.v();
        let Some(text) = v.tokens.get(id as usize) else { return };
        match v.token_type(id) {
            TokenType::Control | TokenType::Unknown => {
                if unparse_special {
                    out.extend_from_slice(text.as_bytes());
                }
            }
            TokenType::UserDefined => out.extend_from_slice(text.as_bytes()),
            TokenType::Unused => {}
            TokenType::Byte => match &self.inner.algorithm {
                Algorithm::Spm(_) => out.extend(spm::Spm::byte_of(text)),
                Algorithm::Bpe(bpe) => bpe.token_bytes(text, out),
            },
            TokenType::Normal => match &self.inner.algorithm {
                Algorithm::Bpe(bpe) => bpe.token_bytes(text, out),
                Algorithm::Spm(_) => {
                    for c in text.chars() {
                        if c == '\u{2581}' {
                            out.push(b' ');
                        } else {
                            let mut b = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                        }
                    }
                }
            },
        }
    }

    /// The bytes of one token (see [`Tokenizer::append_piece`]).
    pub fn token_to_piece(&self, id: u32, unparse_special: bool) -> Vec<u8> {
        let mut out = Vec::new();
        self.append_piece(id, unparse_special, &mut out);
        out
    }

    /// The exact bytes of a token sequence. For SentencePiece vocabularies with the space prefix, the space the
    /// encoder adds at the start of the text and after every special token is removed again, so that
    /// `decode(encode(s)) == s`.
    pub fn decode(&self, ids: &[u32], unparse_special: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let prefixing = self.v().kind == TokenizerKind::SentencePiece && self.v().add_space_prefix;
        let mut strip_space = prefixing;
        for &id in ids {
            let start = out.len();
            self.append_piece(id, unparse_special, &mut out);
            if matches!(self.token_type(id), TokenType::Control | TokenType::UserDefined | TokenType::Unknown) {
                strip_space = prefixing;
                continue;
            }
            if strip_space && out.len() > start {
                if out[start] == b' ' {
                    out.remove(start);
                }
                strip_space = false;
            }
        }
        out
    }

    /// [`Tokenizer::decode`] as a string; bytes that are not valid UTF-8 are an error naming the offset.
    pub fn decode_string(&self, ids: &[u32], unparse_special: bool) -> Result<String, TokenizerError> {
        String::from_utf8(self.decode(ids, unparse_special))
            .map_err(|e| TokenizerError::InvalidUtf8 { offset: e.utf8_error().valid_up_to() })
    }

    /// The vocabulary string of a token.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.v().tokens.get(id as usize).map(|s| s.as_str())
    }

    /// The id of an exact vocabulary string.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.v().id_of(text)
    }

    /// Beginning-of-sequence token.
    pub fn bos_id(&self) -> Option<u32> {
        self.v().bos
    }

    /// End-of-sequence token.
    pub fn eos_id(&self) -> Option<u32> {
        self.v().eos
    }

    /// Whether `encode(.., add_special = true, ..)` prepends BOS.
    pub fn add_bos(&self) -> bool {
        self.v().add_bos && self.v().bos.is_some()
    }

    /// Whether `encode(.., add_special = true, ..)` appends EOS.
    pub fn add_eos(&self) -> bool {
        self.v().add_eos && self.v().eos.is_some()
    }

    /// Whether a token ends a generation (EOS, EOT, EOM and the well-known end markers).
    pub fn is_eog(&self, id: u32) -> bool {
        self.v().eog.binary_search(&id).is_ok()
    }

    /// The end-of-generation tokens, sorted.
    pub fn eog_ids(&self) -> &[u32] {
        &self.v().eog
    }

    /// Whether a token is a control token.
    pub fn is_control(&self, id: u32) -> bool {
        self.v().token_type(id) == TokenType::Control
    }

    /// The type of a token.
    pub fn token_type(&self, id: u32) -> TokenType {
        self.v().token_type(id)
    }

    /// A streaming decoder that renders control tokens only when `unparse_special`.
    pub fn stream_decoder_with(&self, unparse_special: bool) -> StreamDecoder {
        StreamDecoder::new(self.clone(), unparse_special)
    }

    /// A streaming decoder for generated text (control tokens not rendered).
    pub fn stream_decoder(&self) -> StreamDecoder {
        self.stream_decoder_with(false)
    }
}
