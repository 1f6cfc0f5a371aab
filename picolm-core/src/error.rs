//! The crate-wide error type: every fallible public function returns [`Error`] or one of the module errors it wraps.

use thiserror::Error as ThisError;

use crate::alloc::OutOfMemory;

/// Any error PicoLM can report. Module errors convert into it with `?`.
#[derive(Debug, ThisError)]
#[non_exhaustive]
pub enum Error {
    /// The GGUF file is unreadable or malformed.
    #[error(transparent)]
    Gguf(#[from] crate::gguf::GgufError),
    /// The tokenizer could not be built or could not process the input.
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    /// Conversion between tensor formats failed.
    #[error(transparent)]
    Quant(#[from] crate::quant::QuantError),
    /// The model could not be loaded or evaluated.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// A sampler setting is out of range.
    #[error(transparent)]
    Sampler(#[from] crate::sampler::SamplerParamError),
    /// The prompt does not fit in the context.
    #[error("prompt of {n_prompt} tokens does not fit in the context of {n_ctx} tokens")]
    PromptTooLong {
        /// Prompt length in tokens.
        n_prompt: usize,
        /// Context length.
        n_ctx: usize,
    },
    /// The context cannot hold the tokens to evaluate.
    #[error("context overflow: {needed} positions needed, the context holds {n_ctx}")]
    ContextOverflow {
        /// Positions needed.
        needed: usize,
        /// Context length.
        n_ctx: usize,
    },
    /// Generation was asked for with an empty prompt.
    #[error("empty prompt: at least one token is needed")]
    EmptyPrompt,
    /// Sampling was asked for before any token was evaluated.
    #[error("no logits: evaluate at least one token before sampling")]
    NoLogits,
    /// A saved session state does not fit this model or is damaged.
    #[cfg(feature = "state")]
    #[error("invalid session state: {0}")]
    InvalidState(#[from] crate::state_file::StateError),
    /// A grammar or schema is invalid, or the constrained output cannot continue.
    #[error(transparent)]
    Grammar(#[from] crate::grammar::GrammarError),
    /// A chat prompt could not be rendered.
    #[error(transparent)]
    Chat(#[from] crate::chat::ChatError),
    /// A user-named file cannot be read or written safely (missing, a FIFO or device, a file that is not ours).
    #[error(transparent)]
    File(#[from] crate::fs_safety::FileError),
    /// An input/output error (state files, output streams).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A caller-sized buffer (KV cache, activation buffers, logits...) could not be allocated.
    #[error("out of memory: cannot allocate {bytes} bytes for the {what}")]
    OutOfMemory {
        /// What the buffer is for.
        what: &'static str,
        /// Bytes asked for.
        bytes: u64,
    },
    /// A caller-supplied argument is invalid.
    #[error("invalid argument {name}: {why}")]
    InvalidArgument {
        /// Which argument.
        name: String,
        /// What is wrong.
        why: String,
    },
}

impl From<OutOfMemory> for Error {
    fn from(e: OutOfMemory) -> Error {
        Error::OutOfMemory { what: e.what, bytes: e.bytes }
    }
}

impl Error {
    /// The allocation failure this error reports, if it is one (directly or from model loading).
    pub fn out_of_memory(&self) -> Option<OutOfMemory> {
        match self {
            Error::OutOfMemory { what, bytes } => Some(OutOfMemory { what, bytes: *bytes }),
            Error::Model(crate::model::ModelError::OutOfMemory(e)) => Some(e.clone()),
            _ => None,
        }
    }
}
