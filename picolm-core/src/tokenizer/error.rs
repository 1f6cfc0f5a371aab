//! Errors of tokenizer construction and decoding.

use thiserror::Error;

/// Why a tokenizer could not be built from a vocabulary, or a decode failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// The metadata could not be read.
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    /// `tokenizer.ggml.model` names a tokenizer this engine does not implement.
    #[error("unsupported tokenizer model {0:?} (supported: gpt2, llama)")]
    UnsupportedModel(String),
    /// A special token id lies outside the vocabulary.
    #[error("{key} = {id} is outside the vocabulary of {n_vocab} tokens")]
    SpecialTokenOutOfRange {
        /// Metadata key.
        key: String,
        /// The id.
        id: u64,
        /// Vocabulary size.
        n_vocab: usize,
    },
    /// Two parallel vocabulary arrays differ in length.
    #[error("{key} has {got} entries, but the vocabulary has {n_vocab} tokens")]
    LengthMismatch {
        /// Metadata key.
        key: String,
        /// Its length.
        got: usize,
        /// Vocabulary size.
        n_vocab: usize,
    },
    /// The vocabulary is empty.
    #[error("the vocabulary is empty")]
    EmptyVocabulary,
    /// A BPE merge line is malformed.
    #[error("merge #{index} {line:?} is not two space-separated parts")]
    BadMerge {
        /// Position in the merges array.
        index: usize,
        /// The line.
        line: String,
    },
    /// A pre-tokenizer pattern failed to compile (a bug, reported rather than panicking).
    #[error("pre-tokenizer pattern failed: {0}")]
    Regex(String),
    /// Decoded bytes are not valid UTF-8.
    #[error("decoded tokens are not valid UTF-8 (first bad byte at offset {offset})")]
    InvalidUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
}
