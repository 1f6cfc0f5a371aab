//! The resident-memory budget (`max_rss_bytes`): from what the process already holds after reading the model's
//! metadata, the KV cache and activation buffers of one session, and the weights (all of them when mapped, two
//! slabs and the matrices kept resident when streamed), decides whether the model is mapped or streamed, picks the
//! slab size and the room for resident weights, or refuses with the number of bytes that would be needed.
//!
//! Streamed, the room left after the fixed items goes to the two slabs and to weights kept resident (read once at
//! load, never streamed; see [`crate::model::stream`]): every resident byte is a byte less to read per token, and
//! larger slabs make fewer, larger reads (a whole layer at a time). The slabs get at most a quarter of the room
//! (at least what a tight budget allows, up to the default 4 MiB), up to the caller's cap and the largest
//! slab worth having; the resident weights get the rest.

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
    /// Streamed: the buffers of the weight matrices kept resident (the room planned for them until the model has
    /// chosen them, then what the chosen ones take). `0` when mapped.
    pub resident_weights: u64,
    /// [`SLACK_BYTES`].
    pub slack: u64,
    /// Slab size when streaming (`0` = mapped).
    pub slab_bytes: u64,
}

impl MemoryPlan {
    /// The total.
    pub fn total(&self) -> u64 {
        self.resident + self.kv + self.buffers + self.weights + self.resident_weights + self.slack
    }

    /// One line: where the bytes go.
    pub fn describe(&self) -> String {
        let mib = |b: u64| b as f64 / 1048576.0;
        let weights = if self.slab_bytes > 0 {
            format!(
                "2 weight slabs of {:.1} KiB and an embedding row: {:.1} MiB, resident weights {:.1} MiB",
                self.slab_bytes as f64 / 1024.0,
                mib(self.weights),
                mib(self.resident_weights)
            )
        } else {
            format!("mapped weights: {:.1} MiB", mib(self.weights))
        };
        format!(
            "already resident {:.1} MiB, KV cache {:.1} MiB, buffers {:.1} MiB, {weights}, slack {:.1} MiB",
            mib(self.resident),
            mib(self.kv),
            mib(self.buffers),
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
    /// The largest slab worth having (the longest run of weights a slab can read at once, see
    /// [`crate::model::stream::StreamPlan::max_useful_slab_bytes`]).
    pub max_useful_slab_bytes: u64,
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
    /// Stream it with slabs of this many bytes, keeping weights resident within `resident_bytes`.
    Streamed {
        /// Slab size.
        slab_bytes: usize,
        /// Room for the buffers of resident weight matrices.
        resident_bytes: usize,
    },
}

/// Plans `budget`: mapped when it holds the whole model and streaming was not asked for, otherwise streamed with a
/// slab up to `max_slab` and resident weights in the rest of the room (see the module documentation). Fails with
/// [`ModelError::MemoryBudget`] (saying what is needed) when even the smallest slab does not fit.
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
    let base = MemoryPlan { resident, kv, buffers, weights: 0, resident_weights: 0, slack: SLACK_BYTES, slab_bytes: 0 };
    let mapped = MemoryPlan { weights: inputs.weight_bytes, ..base };
    if !force_stream && mapped.total() <= budget.max_rss_bytes {
        return Ok((Placement::Mapped, mapped));
    }
    let min_slab = inputs.min_slab_bytes.max(1);
    let slab_alloc = |slab: u64| AlignedBuf::alloc_bytes(slab as usize) as u64;
    let fixed = base.total() + inputs.row_bytes;
    let room = budget.max_rss_bytes.saturating_sub(fixed);
    let align = crate::gguf::DIRECT_ALIGN as u64;
    // The largest slab whose buffer fits in `bytes`: a whole number of alignment blocks after the slack.
    let fit = |bytes: u64| bytes.saturating_sub(slab_alloc(0)) / align * align;
    let cap = (max_slab as u64).min(inputs.max_useful_slab_bytes).max(min_slab);
    let tight = fit(room / 2).min((crate::model::DEFAULT_STREAM_SLAB_BYTES as u64).max(min_slab));
    let slab = tight.max(fit(room / 8)).min(cap);
    if slab < min_slab {
        let least = MemoryPlan { weights: 2 * slab_alloc(min_slab) + inputs.row_bytes, slab_bytes: min_slab, ..base };
        return Err(ModelError::MemoryBudget {
            budget: budget.max_rss_bytes,
            needed: least.total(),
            detail: least.describe(),
        });
    }
    let weights = 2 * slab_alloc(slab) + inputs.row_bytes;
    let resident_weights = room.saturating_sub(2 * slab_alloc(slab));
    let streamed = MemoryPlan { weights, resident_weights, slab_bytes: slab, ..base };
    let resident_bytes = usize::try_from(resident_weights).unwrap_or(usize::MAX);
    Ok((Placement::Streamed { slab_bytes: slab as usize, resident_bytes }, streamed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const USEFUL: u64 = 28 << 20;

    fn inputs(cfg: &LlamaConfig) -> BudgetInputs<'_> {
        BudgetInputs {
            config: cfg,
            n_ctx: 512,
            weight_bytes: 600 << 20,
            min_slab_bytes: 10_000,
            max_useful_slab_bytes: USEFUL,
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
        assert!(detail.contains("resident weights 0.0 MiB"), "{detail}");
        // The KV cache of ctx 512 in f16 (K and V of 256 values a layer and position) and the buffers of a batch
        // of 64, as the session allocates them.
        let kv = 2 * 22 * 512 * 256 * 2;
        let buffers = ForwardBuffers::planned_bytes(&cfg, 64) as u64;
        let slab_buf = AlignedBuf::alloc_bytes(10_000) as u64;
        assert_eq!(needed, resident + kv + buffers + 2 * slab_buf + 1_000 + SLACK_BYTES);
        // Exactly `needed` is admitted (with the smallest slab), one byte less is refused.
        let (placement, p) =
            plan_from(&RssBudget { max_rss_bytes: needed, ..budget(0) }, &inp, resident, false, 4 << 20).unwrap();
        assert!(matches!(placement, Placement::Streamed { slab_bytes, .. } if slab_bytes >= 10_000), "{placement:?}");
        assert_eq!(p.total(), needed);
        assert!(
            plan_from(&RssBudget { max_rss_bytes: needed - 1, ..budget(0) }, &inp, resident, false, 4 << 20).is_err()
        );
        // Every admitted plan: the sum of its items, the whole budget used (slabs and resident weights share the
        // room), slabs within the cap and at most a quarter of the room unless the budget is tight.
        let fixed = resident + kv + buffers + 1_000 + SLACK_BYTES;
        for max_slab in [4usize << 20, 64 << 20] {
            for extra in [0u64, 1, 4095, 4096, 100_000, 3 << 20, 64 << 20, 200 << 20, 1 << 30] {
                let b = RssBudget { max_rss_bytes: needed + extra, ..budget(0) };
                let (placement, p) = plan_from(&b, &inp, resident, true, max_slab).unwrap();
                let Placement::Streamed { slab_bytes, resident_bytes } = placement else { panic!("{placement:?}") };
                assert_eq!(p.total(), p.resident + p.kv + p.buffers + p.weights + p.resident_weights + p.slack);
                assert_eq!((p.resident, p.kv, p.buffers, p.slack), (resident, kv, buffers, SLACK_BYTES));
                let slabs = 2 * AlignedBuf::alloc_bytes(slab_bytes) as u64;
                assert_eq!(p.weights, slabs + 1_000);
                assert_eq!(
                    (p.resident_weights, resident_bytes as u64),
                    (b.max_rss_bytes - fixed - slabs, p.resident_weights)
                );
                assert_eq!(p.total(), b.max_rss_bytes, "extra {extra}: {}", p.describe());
                assert!(slab_bytes as u64 <= (max_slab as u64).min(USEFUL), "extra {extra}: slab {slab_bytes}");
                let room = b.max_rss_bytes - fixed;
                let at_cap = slab_bytes as u64 == (max_slab as u64).min(USEFUL);
                let tight = 2 * AlignedBuf::alloc_bytes(slab_bytes + 4096) as u64 > room;
                let quarter = 4 * slabs <= room && 4 * 2 * AlignedBuf::alloc_bytes(slab_bytes + 4096) as u64 > room;
                assert!(
                    at_cap || tight || quarter || slab_bytes == 4 << 20,
                    "extra {extra}: slab {slab_bytes}, room {room}"
                );
            }
        }
    }

    #[test]
    fn a_roomy_budget_gets_layer_slabs_and_the_rest_for_resident_weights() {
        let cfg = tinyllama();
        let (placement, p) = plan_from(&budget(232), &inputs(&cfg), 16 << 20, false, 32 << 20).unwrap();
        let Placement::Streamed { slab_bytes, resident_bytes } = placement else { panic!("{placement:?}") };
        // An eighth of the room per slab (the room is about 194 MiB).
        assert!((20 << 20..=USEFUL as usize).contains(&slab_bytes), "{}", p.describe());
        assert!(resident_bytes > 100 << 20, "{}", p.describe());
        assert!(p.describe().contains("resident weights"), "{}", p.describe());
        assert_eq!(p.total(), 232 << 20);
    }

    #[test]
    fn too_small_fails_with_what_is_needed_and_enough_streams_within_it() {
        let cfg = tinyllama();
        // `plan` measures this process's resident set, which the tests running beside this one in the same
        // process change between two calls (a flaky failure seen in the full suite): the figure is measured once
        // and both plans are made from it, so "the budget said to be needed works" is checked exactly.
        let err = plan(&budget(1), &inputs(&cfg), false, 4 << 20).unwrap_err();
        let ModelError::MemoryBudget { budget: b, .. } = err else { panic!("{err:?}") };
        assert_eq!(b, 1 << 20);
        let resident = 40 << 20;
        let err = plan_from(&budget(1), &inputs(&cfg), resident, false, 4 << 20).unwrap_err();
        let ModelError::MemoryBudget { needed, .. } = err else { panic!("{err:?}") };
        assert!(needed > b);
        // The budget that was said to be needed works, with the smallest slab; the plan stays within it.
        let roomy_enough = RssBudget { max_rss_bytes: needed, ..budget(0) };
        let (placement, p) = plan_from(&roomy_enough, &inputs(&cfg), resident, false, 4 << 20).unwrap();
        assert!(matches!(placement, Placement::Streamed { slab_bytes, .. } if slab_bytes >= 10_000));
        assert!(p.total() <= needed);
        // A budget above the whole model maps it unless streaming is forced.
        let huge = budget(1 << 20);
        assert_eq!(plan(&huge, &inputs(&cfg), false, 4 << 20).unwrap().0, Placement::Mapped);
        let forced = plan(&huge, &inputs(&cfg), true, 4 << 20).unwrap().0;
        assert!(matches!(forced, Placement::Streamed { slab_bytes, .. } if slab_bytes == 4 << 20), "{forced:?}");
    }
}
