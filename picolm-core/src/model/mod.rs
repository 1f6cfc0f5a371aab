//! A loaded Llama-architecture model: hyper-parameters, weights (zero-copy over the mapped file), tokenizer, RoPE
//! tables and the compute pool. Per-conversation state (KV cache, buffers) lives in [`crate::session::Session`].

pub mod budget;
pub mod config;
mod error;
#[cfg(feature = "state")]
pub mod fingerprint;
pub mod forward;
pub mod kv_cache;
pub mod rope;
pub mod stream;
pub mod warning;
pub mod weights;

use std::path::Path;

use crate::compute::planner::{KernelChoice, KernelPlan};
use crate::compute::pool::ThreadCount;
use crate::compute::ComputePool;
use crate::gguf::GgufFile;
use crate::tokenizer::Tokenizer;

pub use budget::{MemoryPlan, RssBudget};
pub use config::LlamaConfig;
pub use error::ModelError;
#[cfg(feature = "state")]
pub use fingerprint::ModelFingerprint;
pub use forward::{forward, ForwardBuffers, Logits};
pub use kv_cache::{KvCache, KvType};
pub use rope::RopeTable;
pub use stream::{StreamConfig, WeightStreamer};
pub use warning::LoadWarning;
pub use weights::{LayerWeights, LlamaWeights, MatrixRef};

/// How to load a model.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ModelParams {
    /// Largest context (positions) any session of this model may use; `0` means the model's training context,
    /// capped at 4096. RoPE tables are built for this many positions.
    pub n_ctx: usize,
    /// Worker threads (`0` = one per CPU); more than the CPUs available to the process is clamped to them
    /// (see [`Model::thread_count`]).
    pub n_threads: usize,
    /// Streaming mode: the file is not mapped; the engine reads the weights with `pread` into two reused slabs
    /// (one read ahead by a thread while the other computes) and drops them from the page cache, so weight memory
    /// is two slabs whatever the model size (for boards with less RAM than the model).
    pub stream_weights: bool,
    /// Slab size in bytes for streaming mode (`0` = 4 MiB; at least one weight row is used). With `rss_budget`,
    /// a cap on the slab the budget picks (`0` = [`BUDGET_MAX_SLAB_BYTES`]).
    pub stream_slab_bytes: usize,
    /// Decode kernel choice: `None` reads `PICOLM_KERNEL` (unset: `auto`); `auto` times at load the decode kernels
    /// bit-identical to the prefill kernel of each weight format and keeps the fastest (so batched prefill equals
    /// token-by-token decode and a cached prefix never changes a result), `tile` decodes with the prefill kernel
    /// itself, a kernel name forces that kernel where the CPU has it, even one with other rounding (see
    /// [`Model::kernel_plan`]).
    pub kernel: Option<String>,
    /// A bound on the process's resident set: the model is mapped when it fits with one session, streamed
    /// otherwise, with the slab size chosen to fit and as many weight matrices kept resident (read once at load,
    /// never streamed) as the rest of the budget holds; loading fails with [`ModelError::MemoryBudget`] (saying how
    /// much is needed) when even streaming cannot fit.
    pub rss_budget: Option<RssBudget>,
}

/// Default streaming slab.
pub const DEFAULT_STREAM_SLAB_BYTES: usize = 4 << 20;

/// Largest slab a memory budget picks by default (reads of a few tens of MiB approach the disk's throughput).
pub const BUDGET_MAX_SLAB_BYTES: usize = 32 << 20;

/// Largest context used when the caller asks for "the model's own" context.
pub const DEFAULT_MAX_CTX: usize = 4096;

/// A model ready to evaluate. Immutable after load, `Send + Sync`: share it between sessions with `Arc`.
#[derive(Debug)]
pub struct Model {
    file: GgufFile,
    config: LlamaConfig,
    weights: LlamaWeights,
    tokenizer: Tokenizer,
    rope: RopeTable,
    pool: ComputePool,
    n_ctx: usize,
    streamer: Option<WeightStreamer>,
    memory_plan: Option<MemoryPlan>,
    #[cfg(feature = "state")]
    fingerprint: ModelFingerprint,
    grammar_vocab: std::sync::OnceLock<std::sync::Arc<crate::grammar::VocabIndex>>,
    warnings: Vec<LoadWarning>,
    plan: KernelPlan,
}

impl Model {
    /// Opens and checks a GGUF model file. In streaming mode (or with a budget) only the header is read here: no
    /// weight byte is mapped or read at load.
    pub fn load(path: impl AsRef<Path>, params: &ModelParams) -> Result<Model, ModelError> {
        let file = if params.stream_weights || params.rss_budget.is_some() {
            GgufFile::open_streamed(path)?
        } else {
            GgufFile::open(path)?
        };
        Model::from_gguf(file, params)
    }

    /// Builds a model over an already opened GGUF file.
    pub fn from_gguf(file: GgufFile, params: &ModelParams) -> Result<Model, ModelError> {
        let config = LlamaConfig::from_gguf(&file)?;
        let tokenizer = Tokenizer::from_gguf(&file)?;
        if tokenizer.n_vocab() != config.n_vocab {
            return Err(ModelError::InvalidHyperParameter {
                name: "vocabulary size".into(),
                value: format!("tokenizer has {} tokens, model {}", tokenizer.n_vocab(), config.n_vocab),
            });
        }
        let weights = LlamaWeights::from_gguf(&file, &config)?;
        // The header bytes of a streamed file are only needed for the fingerprint (the metadata is parsed): freed
        // before a memory budget measures what is resident.
        #[cfg(feature = "state")]
        let fingerprint = ModelFingerprint::of(&file);
        let mut file = file;
        file.release_header();
        let choice = KernelChoice::resolve(params.kernel.as_deref())?;
        let n_ctx = if params.n_ctx == 0 { config.n_ctx_train.min(DEFAULT_MAX_CTX) } else { params.n_ctx };
        if n_ctx > 1 << 20 {
            return Err(ModelError::InvalidParameter { name: "n_ctx".into(), value: n_ctx.to_string() });
        }
        let rope = RopeTable::new(config.rope_dim, config.rope_freq_base, n_ctx)?;
        let pool = ComputePool::new(params.n_threads)?;
        let max_slab = match (params.stream_slab_bytes, &params.rss_budget) {
            (0, Some(_)) => BUDGET_MAX_SLAB_BYTES,
            (0, None) => DEFAULT_STREAM_SLAB_BYTES,
            (slab, _) => slab,
        };
        let (stream, mut memory_plan) = match &params.rss_budget {
            Some(budget) => {
                let inputs = budget::BudgetInputs {
                    config: &config,
                    n_ctx,
                    weight_bytes: file.len().saturating_sub(file.data_offset()),
                    min_slab_bytes: stream::StreamPlan::min_slab_bytes(&weights) as u64,
                    max_useful_slab_bytes: stream::StreamPlan::max_useful_slab_bytes(&weights) as u64,
                    row_bytes: weights.token_embd.row_bytes as u64,
                    header_bytes: file.data_offset(),
                };
                let (placement, plan) = budget::plan(budget, &inputs, params.stream_weights, max_slab)?;
                let stream = match placement {
                    budget::Placement::Mapped => None,
                    budget::Placement::Streamed { slab_bytes, resident_bytes } => {
                        Some(StreamConfig { slab_bytes, resident_bytes })
                    }
                };
                (stream, Some(plan))
            }
            None => (params.stream_weights.then_some(StreamConfig { slab_bytes: max_slab, resident_bytes: 0 }), None),
        };
        let (file, streamer) = match stream {
            Some(config) => {
                let mut file = file.into_streamed();
                file.release_header();
                crate::memory::release_free_heap();
                let streamer = WeightStreamer::new(&file, &weights, config)?;
                // The plan lists what the resident matrices chosen take (at most the room it gave them).
                if let Some(plan) = memory_plan.as_mut() {
                    plan.resident_weights = streamer.config().resident_bytes as u64;
                }
                (file, Some(streamer))
            }
            None => (file.into_mapped()?, None),
        };
        // The matrices the matmuls read (the embedding table is read by row, not multiplied).
        let matrices: Vec<&crate::compute::MatrixRef> =
            weights.layers.iter().flat_map(|l| l.matrices()).chain([&weights.output]).collect();
        let plan = KernelPlan::build(&file, &matrices, &pool, &choice);
        let grammar_vocab = Default::default();
        let warnings = warning::thread_warning(&pool.threads())
            .into_iter()
            .chain(warning::context_warning(n_ctx, config.n_ctx_train))
            .collect();
        Ok(Model {
            file,
            config,
            weights,
            tokenizer,
            rope,
            pool,
            n_ctx,
            streamer,
            memory_plan,
            #[cfg(feature = "state")]
            fingerprint,
            grammar_vocab,
            warnings,
            plan,
        })
    }

    /// Hyper-parameters.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// Tensor locations.
    pub fn weights(&self) -> &LlamaWeights {
        &self.weights
    }

    /// The tokenizer built from the file's metadata.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The underlying GGUF file (metadata lookup, tensor bytes).
    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    /// RoPE tables.
    pub fn rope(&self) -> &RopeTable {
        &self.rope
    }

    /// The decode kernel of each weight format, chosen at load (see [`crate::compute::planner`]).
    pub fn kernel_plan(&self) -> &KernelPlan {
        &self.plan
    }

    /// The compute pool.
    pub fn pool(&self) -> &ComputePool {
        &self.pool
    }

    /// Number of compute threads.
    pub fn n_threads(&self) -> usize {
        self.pool.n_threads()
    }

    /// The thread request, the CPUs available and the threads started; `warning()` tells when the request was
    /// clamped to the CPUs.
    pub fn thread_count(&self) -> ThreadCount {
        self.pool.threads()
    }

    /// The identity of the model file (header hash and size), stored in saved session states.
    #[cfg(feature = "state")]
    pub fn fingerprint(&self) -> &ModelFingerprint {
        &self.fingerprint
    }

    /// The streaming configuration, when the model was loaded in streaming mode.
    pub fn stream_config(&self) -> Option<&StreamConfig> {
        self.streamer.as_ref().map(|s| s.config())
    }

    /// The weight reader of streaming mode.
    pub fn streamer(&self) -> Option<&WeightStreamer> {
        self.streamer.as_ref()
    }

    /// How the memory budget was planned, when the model was loaded with one.
    pub fn memory_plan(&self) -> Option<&MemoryPlan> {
        self.memory_plan.as_ref()
    }

    /// Largest context a session may use.
    pub fn n_ctx(&self) -> usize {
        self.n_ctx
    }

    /// Accepted but questionable load settings (e.g. `n_ctx` beyond the training context), for the bindings to
    /// report on their warning channels.
    pub fn warnings(&self) -> &[LoadWarning] {
        &self.warnings
    }

    /// The vocabulary index used by grammar-constrained decoding, built on first use and shared afterwards.
    pub fn grammar_vocab(&self) -> std::sync::Arc<crate::grammar::VocabIndex> {
        self.grammar_vocab.get_or_init(|| std::sync::Arc::new(crate::grammar::VocabIndex::new(&self.tokenizer))).clone()
    }
}
