//! Errors of model loading and evaluation.

use crate::ggml_type::GgmlType;
use crate::gguf::GgufError;

use thiserror::Error;

/// Errors of model loading and evaluation.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The file could not be read or parsed.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// A tensor could not be converted.
    #[error(transparent)]
    Quant(#[from] crate::quant::QuantError),
    /// `general.architecture` names a model family this engine does not implement.
    #[error("unsupported model architecture {0:?} (supported: llama)")]
    UnsupportedArchitecture(String),
    /// A hyper-parameter is missing its invariants.
    #[error("invalid hyper-parameter {name}: {value}")]
    InvalidHyperParameter {
        /// Which one.
        name: String,
        /// Its value.
        value: String,
    },
    /// A load or run parameter is out of range.
    #[error("invalid parameter {name}: {value}")]
    InvalidParameter {
        /// Which one.
        name: String,
        /// Its value.
        value: String,
    },
    /// A tensor has the wrong shape.
    #[error("tensor {name} has shape {found:?}, expected {expected:?}")]
    TensorShape {
        /// Tensor name.
        name: String,
        /// Expected ggml dims.
        expected: Vec<u64>,
        /// Dims in the file.
        found: Vec<u64>,
    },
    /// A tensor is stored in a type that cannot be used as a weight.
    #[error("tensor {name} has type {ty}, which cannot be used as a weight")]
    UnsupportedWeightType {
        /// Tensor name.
        name: String,
        /// Its type.
        ty: GgmlType,
    },
    /// The positions needed exceed the context.
    #[error("context overflow: {needed} positions needed, the context holds {n_ctx}")]
    ContextOverflow {
        /// Positions the request needs.
        needed: usize,
        /// Positions available.
        n_ctx: usize,
    },
    /// A token id is not in the vocabulary.
    #[error("token id {id} is outside the vocabulary (size {n_vocab})")]
    InvalidToken {
        /// The id.
        id: u32,
        /// Vocabulary size.
        n_vocab: usize,
    },
    /// A forward call was given no tokens.
    #[error("empty batch: nothing to evaluate")]
    EmptyBatch,
    /// A forward call was given more tokens than its buffers hold.
    #[error("batch of {n_tokens} tokens exceeds the buffer capacity {capacity}")]
    BatchTooLarge {
        /// Tokens given.
        n_tokens: usize,
        /// Capacity.
        capacity: usize,
    },
    /// The worker threads could not be started.
    #[error(transparent)]
    ThreadPool(#[from] crate::compute::pool::PoolError),
    /// The streaming read-ahead thread could not be started.
    #[error("could not start the weight read-ahead thread: {0}")]
    ReadAheadThread(String),
    /// A weight matrix is neither in memory nor in the streaming plan (an internal inconsistency, reported rather
    /// than panicking).
    #[error("the bytes of weight {name} are not available (not mapped and not streamed)")]
    WeightsUnavailable {
        /// Tensor name.
        name: String,
    },
    /// A resident-memory budget (`max_rss_bytes`) is too small for the model, its KV cache and its buffers.
    #[error(
        "a memory budget of {budget_mib:.1} MiB cannot hold this model: {needed_mib:.1} MiB needed at least ({detail})",
        budget_mib = *budget as f64 / 1048576.0,
        needed_mib = *needed as f64 / 1048576.0
    )]
    MemoryBudget {
        /// The budget in bytes.
        budget: u64,
        /// The least budget that works, in bytes.
        needed: u64,
        /// Where it goes.
        detail: String,
    },
    /// The tokenizer could not be built.
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    /// A buffer sized by a load or run parameter (RoPE tables, KV cache, activation buffers) could not be
    /// allocated.
    #[error(transparent)]
    OutOfMemory(#[from] crate::alloc::OutOfMemory),
    /// The decode kernel asked for (`ModelParams::kernel` or `PICOLM_KERNEL`) has no such name.
    #[error(transparent)]
    UnknownKernel(#[from] crate::compute::planner::UnknownKernel),
}
