//! Errors of the tokenizer.

use thiserror::Error;

use crate::gguf::GgufError;

/// Why a tokenizer could not be built, or ids could not be decoded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// A metadata lookup failed.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// Unsupported `tokenizer.ggml.model`.
    #[error("unsupported tokenizer model {0:?}")]
    UnsupportedModel(String),
    /// Empty token list.
    #[error("the vocabulary is empty")]
    EmptyVocabulary,
    /// A per-token array has the wrong length.
    #[error("{key} has {got} entries, but the vocabulary has {n_vocab}")]
    LengthMismatch {
        /// Key.
        key: String,
        /// Its length.
        got: usize,
        /// Token count.
        n_vocab: usize,
    },
    /// A special token id is out of range.
    #[error("special token {key} = {id} is outside the vocabulary of {n_vocab} tokens")]
    SpecialTokenOutOfRange {
        /// Key.
        key: String,
        /// Id.
        id: u64,
        /// Token count.
        n_vocab: usize,
    },
    /// A bad merge line.
    #[error("BPE merge #{index} {line:?} is not two known tokens")]
    BadMerge {
        /// Index.
        index: usize,
        /// Line.
        line: String,
    },
    /// Invalid UTF-8 output.
    #[error("decoded text is not valid UTF-8 at byte {offset}")]
    InvalidUtf8 {
        /// Offset.
        offset: usize,
    },
}
