//! The resident-memory budget (`max_rss_bytes`): from what the process already holds after reading the model's
//! metadata, the KV cache and activation buffers of one session, and the weights (all of them when mapped, two
//! slabs when streamed), decides whether the model is mapped or streamed, picks the slab size, or refuses with the
//! number of bytes that would be needed.

use crate::gguf::AlignedBuf;
use crate::memory::MemoryUsage;
use crate::model::config::LlamaConfig;
use crate::model::forward::ForwardBuffers;
use crate::model::kv_cache::KvType;
use crate::model::ModelError;

/// A bound on the resident set of the whole process (VmRSS: program, metadata, tokenizer, KV cache, buffers and
/// weights), for the model and one session of the model's full context with these settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RssBudget {
    /// The bound in bytes.
    pub max_rss_bytes: u64,
    /// KV cache format of the session the budget must hold.
    pub kv_type: KvType,
    /// Prompt batch size of that session (its activation buffers grow with it).
    pub n_batch: usize,
}

/// Room kept for what the arithmetic does not itemise: allocator rounding, thread stacks, stdio buffers.
pub const SLACK_BYTES: u64 = 2 << 20;

/// Where a budget's bytes go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryPlan {
    /// Already resident when the plan was made (program, libraries, metadata, tokenizer, norms).
    pub resident: u64,
    /// The KV cache of one session at the model's context.
    pub kv: u64,
    /// Activation buffers, logits and matmul scratch of that session.
    pub buffers: u64,
    /// Weights: the whole tensor data when mapped, two slabs (with their alignment slack, see
    /// [`AlignedBuf::alloc_bytes`]) and an embedding row when streamed.
    pub weights: u64,
    /// [`SLACK_BYTES`].
    pub slack: u64,
    /// Slab size when streaming (`0` = mapped).
    pub slab_bytes: u64,
}

impl MemoryPlan {
    /// The total.
    pub fn total(&self) -> u64 {
        self.resident + self.kv + self.buffers + self.weights + self.slack
    }

    /// One line: where the bytes go.
    pub fn describe(&self) -> String {
        let mib = |b: u64| b as f64 / 1048576.0;
        let weights = if self.slab_bytes > 0 {
            format!("2 weight slabs of {:.1} KiB and an embedding row", self.slab_bytes as f64 / 1024.0)
        } else {
            "mapped weights".to_string()
        };
        format!(
            "already resident {:.1} MiB, KV cache {:.1} MiB, buffers {:.1} MiB, {weights}: {:.1} MiB, slack {:.1} MiB",
            mib(self.resident),
            mib(self.kv),
            mib(self.buffers),
            mib(self.weights),
            mib(self.slack)
        )
    }
}

/// The model facts a budget is planned from.
#[derive(Clone, Copy, Debug)]
pub struct BudgetInputs<'a> {
    /// Hyper-parameters.
    pub config: &'a LlamaConfig,
    /// The model's context (the session's KV cache holds this many positions).
    pub n_ctx: usize,
    /// Bytes of tensor data in the file (what mapping resides at most).
    pub weight_bytes: u64,
    /// The longest weight row: the smallest possible slab.
    pub min_slab_bytes: u64,
    /// One token-embedding row.
    pub row_bytes: u64,
    /// Bytes of the header held in memory (the estimate of what is resident where `/proc` is unavailable).
    pub header_bytes: u64,
}

/// What the budget decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// The whole model fits: map it.
    Mapped,
    /// Stream it with slabs of this many bytes.
    Streamed {
        /// Slab size.
        slab_bytes: usize,
    },
}

/// Plans `budget`: mapped when it holds the whole model and streaming was not asked for, otherwise streamed with
/// the largest slab up to `max_slab` that fits. Fails with [`ModelError::MemoryBudget`] (saying what is needed)
/// when even the smallest slab does not fit.
pub fn plan(
    budget: &RssBudget,
    inputs: &BudgetInputs<'_>,
    force_stream: bool,
    max_slab: usize,
) -> Result<(Placement, MemoryPlan), ModelError> {
    crate::memory::release_free_heap();
    let resident = match MemoryUsage::current() {
        Some(m) if m.rss > 0 => m.rss,
        _ => inputs.header_bytes.saturating_mul(4) + (8 << 20),
    };
    plan_from(budget, inputs, resident, force_stream, max_slab)
}

/// [`plan`] with the resident bytes given (the arithmetic alone, for a resident set measured by the caller).
pub fn plan_from(
    budget: &RssBudget,
    inputs: &BudgetInputs<'_>,
    resident: u64,
    force_stream: bool,
    max_slab: usize,
) -> Result<(Placement, MemoryPlan), ModelError> {
    if budget.n_batch == 0 {
        return Err(ModelError::InvalidParameter { name: "n_batch".into(), value: "0".into() });
    }
    let cfg = inputs.config;
    let kv_row = budget.kv_type.ggml_type().row_bytes(cfg.kv_dim() as u64).unwrap_or(u64::MAX);
    let kv = kv_row.saturating_mul(2).saturating_mul((cfg.n_layer * inputs.n_ctx) as u64);
    let buffers = ForwardBuffers::planned_bytes(cfg, budget.n_batch.min(inputs.n_ctx)) as u64;
    let base = MemoryPlan { resident, kv, buffers, weights: 0, slack: SLACK_BYTES, slab_bytes: 0 };
    let mapped = MemoryPlan { weights: inputs.weight_bytes, ..base };
    if !force_stream && mapped.total() <= budget.max_rss_bytes {
        return Ok((Placement::Mapped, mapped));
    }
    let min_slab = inputs.min_slab_bytes.max(1);
    let slab_alloc = |slab: u64| AlignedBuf::alloc_bytes(slab as usize) as u64;
    let fixed = base.total() + inputs.row_bytes;
    // The largest slab whose buffer fits half the room: a whole number of alignment blocks after the slack.
    let room = budget.max_rss_bytes.saturating_sub(fixed) / 2;
    let align = crate::gguf::DIRECT_ALIGN as u64;
    let fitting = room.saturating_sub(slab_alloc(0)) / align * align;
    let slab = fitting.min(max_slab.max(min_slab as usize) as u64);
    if slab < min_slab {
        let least = MemoryPlan { weights: 2 * slab_alloc(min_slab) + inputs.row_bytes, slab_bytes: min_slab, ..base };
        return Err(ModelError::MemoryBudget {
            budget: budget.max_rss_bytes,
            needed: least.total(),
            detail: least.describe(),
        });
    }
    let streamed = MemoryPlan { weights: 2 * slab_alloc(slab) + inputs.row_bytes, slab_bytes: slab, ..base };
    Ok((Placement::Streamed { slab_bytes: slab as usize }, streamed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(cfg: &LlamaConfig) -> BudgetInputs<'_> {
        BudgetInputs {
            config: cfg,
            n_ctx: 512,
            weight_bytes: 600 << 20,
            min_slab_bytes: 10_000,
            row_bytes: 1_000,
            header_bytes: 1 << 20,
        }
    }

    fn budget(mib: u64) -> RssBudget {
        RssBudget { max_rss_bytes: mib << 20, kv_type: KvType::F16, n_batch: 64 }
    }

    fn tinyllama() -> LlamaConfig {
        LlamaConfig {
            architecture: "llama".into(),
            n_vocab: 32000,
            n_embd: 2048,
            n_layer: 22,
            n_head: 32,
            n_head_kv: 4,
            head_dim: 64,
            n_ff: 5632,
            n_ctx_train: 2048,
            rope_freq_base: 10000.0,
            rope_dim: 64,
            rms_eps: 1e-5,
        }
    }

    #[test]
    fn the_plan_is_the_sum_of_its_items_and_the_needed_figure_is_exact() {
        let cfg = tinyllama();
        let inp = inputs(&cfg);
        let resident = 15 << 20;
        let err = plan_from(&budget(1), &inp, resident, false, 4 << 20).unwrap_err();
        let ModelError::MemoryBudget { needed, detail, .. } = err else { panic!("{err:?}") };
        assert!(detail.contains("KV cache") && detail.contains("weight slabs"), "{detail}");
        // The KV cache of ctx 512 in f16 (K and V of 256 values a layer and position) and the buffers of a batch
        // of 64, as the session allocates them.
        let kv = 2 * 22 * 512 * 256 * 2;
        let buffers = ForwardBuffers::planned_bytes(&cfg, 64) as u64;
        let slab_buf = AlignedBuf::alloc_bytes(10_000) as u64;
        assert_eq!(needed, resident + kv + buffers + 2 * slab_buf + 1_000 + SLACK_BYTES);
        // Exactly `needed` is admitted (with the smallest slab), one byte less is refused.
        let (placement, p) =
            plan_from(&RssBudget { max_rss_bytes: needed, ..budget(0) }, &inp, resident, false, 4 << 20).unwrap();
        assert!(matches!(placement, Placement::Streamed { slab_bytes } if slab_bytes >= 10_000), "{placement:?}");
        assert_eq!(p.total(), needed);
        assert!(
            plan_from(&RssBudget { max_rss_bytes: needed - 1, ..budget(0) }, &inp, resident, false, 4 << 20).is_err()
        );
        // Every admitted plan: the sum of its items, within the budget, slabs as large as the room allows.
        for extra in [0u64, 1, 4095, 4096, 100_000, 3 << 20, 64 << 20] {
            let b = RssBudget { max_rss_bytes: needed + extra, ..budget(0) };
            let (placement, p) = plan_from(&b, &inp, resident, true, 4 << 20).unwrap();
            let Placement::Streamed { slab_bytes } = placement else { panic!("{placement:?}") };
            assert_eq!(p.total(), p.resident + p.kv + p.buffers + p.weights + p.slack);
            assert_eq!((p.resident, p.kv, p.buffers, p.slack), (resident, kv, buffers, SLACK_BYTES));
            assert_eq!(p.weights, 2 * AlignedBuf::alloc_bytes(slab_bytes) as u64 + 1_000);
            assert!(p.total() <= b.max_rss_bytes, "extra {extra}: {}", p.describe());
            let bigger = 2 * AlignedBuf::alloc_bytes(slab_bytes + 4096) as u64 + 1_000;
            assert!(slab_bytes == 4 << 20 || p.total() - p.weights + bigger > b.max_rss_bytes, "extra {extra}");
        }
    }

    #[test]
    fn too_small_fails_with_what_is_needed_and_enough_streams_within_it() {
        let cfg = tinyllama();
        let err = plan(&budget(1), &inputs(&cfg), false, 4 << 20).unwrap_err();
        let ModelError::MemoryBudget { budget: b, needed, .. } = err else { panic!("{err:?}") };
        assert_eq!(b, 1 << 20);
        assert!(needed > b);
        // The budget that was said to be needed works, with the smallest slab; the plan stays within it.
        let (placement, p) =
            plan(&RssBudget { max_rss_bytes: needed + (1 << 20), ..budget(0) }, &inputs(&cfg), false, 4 << 20).unwrap();
        assert!(matches!(placement, Placement::Streamed { slab_bytes } if slab_bytes >= 10_000));
        assert!(p.total() <= needed + (1 << 20));
        // A budget above the whole model maps it unless streaming is forced.
        let huge = budget(1 << 20);
        assert_eq!(plan(&huge, &inputs(&cfg), false, 4 << 20).unwrap().0, Placement::Mapped);
        assert_eq!(plan(&huge, &inputs(&cfg), true, 4 << 20).unwrap().0, Placement::Streamed { slab_bytes: 4 << 20 });
    }
}
