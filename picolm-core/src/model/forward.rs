//! The Llama forward pass, top to bottom: embedding lookup, then per block RMSNorm → Q/K/V projections → RoPE →
//! causal grouped-query attention over the KV cache → output projection → residual add → RMSNorm → SwiGLU
//! feed-forward → residual add; finally RMSNorm and the output projection to logits.
//!
//! A call processes a batch of consecutive tokens as matrices (prefill), or a single token (decode), with the same
//! code path.

use crate::alloc::{bytes_of, try_resize, try_zeroed, OutOfMemory};
use crate::compute::pool::{chunks, chunks_mut, Parallel};
use crate::compute::{matmul, ops, MatmulScratch, MatrixRef};
use crate::model::config::{MAX_GROUP, MAX_GROUP_VALUES, MAX_HEAD_DIM};
use crate::model::kv_cache::{KvCache, KvPart, KvType};
use crate::model::stream::WeightSource;
use crate::model::{Model, ModelError};

/// Which logits a forward call produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Only for the last token of the batch (generation).
    Last,
    /// For every token of the batch (perplexity, scoring).
    All,
}

/// Activation buffers for batches of up to `capacity` tokens; allocated once per session.
#[derive(Debug)]
pub struct ForwardBuffers {
    capacity: usize,
    x: Vec<f32>,
    xb: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    attn: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    proj: Vec<f32>,
    logits: Vec<f32>,
    n_logits: usize,
    mm: MatmulScratch,
}

impl ForwardBuffers {
    /// Buffers for batches of up to `capacity` tokens of `model`, allocated fallibly
    /// ([`ModelError::OutOfMemory`] with the size), with room for the logits of one token.
    pub fn new(model: &Model, capacity: usize) -> Result<ForwardBuffers, ModelError> {
        let c = model.config();
        let capacity = capacity.max(1);
        let z = |n: usize| try_zeroed::<f32>(capacity.saturating_mul(n), "activation buffers");
        let mut logits = Vec::new();
        logits
            .try_reserve_exact(c.n_vocab)
            .map_err(|_| OutOfMemory { what: "logits", bytes: bytes_of::<f32>(c.n_vocab) })?;
        Ok(ForwardBuffers {
            capacity,
            x: z(c.n_embd)?,
            xb: z(c.n_embd)?,
            q: z(c.q_dim())?,
            k: z(c.kv_dim())?,
            v: z(c.kv_dim())?,
            attn: z(c.q_dim())?,
            gate: z(c.n_ff)?,
            up: z(c.n_ff)?,
            proj: z(c.n_embd)?,
            logits,
            n_logits: 0,
            mm: MatmulScratch::default(),
        })
    }

    /// An upper bound of the bytes the buffers of a session with batches of up to `capacity` tokens reach during
    /// generation (logits of the last token only): the activations, the logits and the matmul scratch.
    pub fn planned_bytes(c: &crate::model::LlamaConfig, capacity: usize) -> usize {
        let capacity = capacity.max(1);
        let per_token = 3 * c.n_embd + 2 * c.q_dim() + 2 * c.kv_dim() + 2 * c.n_ff;
        let activations = capacity * per_token * 4;
        let logits = c.n_vocab * 4;
        let max_cols = c.n_embd.max(c.q_dim()).max(c.n_ff);
        let max_rows = c.n_embd.max(c.q_dim()).max(c.n_ff);
        // Converted activations (at most 4 bytes a value, plus block scales and sums), and the by-row results of
        // batched calls.
        let scratch = capacity * max_cols * 5 + if capacity > 1 { capacity * max_rows * 4 } else { 0 };
        activations + logits + scratch
    }

    /// Largest batch one forward call accepts.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Logits of the last call: `n_rows * n_vocab` values (one row for [`Logits::Last`]).
    pub fn logits(&self) -> &[f32] {
        &self.logits[..self.n_logits]
    }

    /// Mutable logits of the last call (samplers and grammars edit them in place).
    pub fn logits_mut(&mut self) -> &mut [f32] {
        &mut self.logits[..self.n_logits]
    }

    /// Resizes the logits to one row of `n_vocab` values and returns it (restoring saved state).
    pub fn set_logits_len(&mut self, n_vocab: usize) -> Result<&mut [f32], OutOfMemory> {
        if self.logits.len() < n_vocab {
            try_resize(&mut self.logits, n_vocab, 0.0, "logits")?;
        }
        self.n_logits = n_vocab;
        Ok(&mut self.logits[..n_vocab])
    }

    /// Bytes held by the buffers.
    pub fn n_bytes(&self) -> usize {
        let f = self.x.capacity()
            + self.xb.capacity()
            + self.q.capacity()
            + self.k.capacity()
            + self.v.capacity()
            + self.attn.capacity()
            + self.gate.capacity()
            + self.up.capacity()
            + self.proj.capacity()
            + self.logits.capacity();
        f * 4 + self.mm.capacity_bytes()
    }
}

/// Runs `tokens` (at positions `pos0..pos0 + tokens.len()`) through the model, appending their keys and values to
/// `kv`, and leaves the requested logits in `buf`.
pub fn forward(
    model: &Model,
    kv: &mut KvCache,
    buf: &mut ForwardBuffers,
    tokens: &[u32],
    pos0: usize,
    logits: Logits,
) -> Result<(), ModelError> {
    let cfg = model.config();
    let n = tokens.len();
    if n == 0 {
        return Err(ModelError::EmptyBatch);
    }
    if n > buf.capacity {
        return Err(ModelError::BatchTooLarge { n_tokens: n, capacity: buf.capacity });
    }
    let end = pos0.saturating_add(n);
    if end > kv.n_ctx() || end > model.rope().n_positions() {
        return Err(ModelError::ContextOverflow { needed: end, n_ctx: kv.n_ctx().min(model.rope().n_positions()) });
    }
    if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= cfg.n_vocab) {
        return Err(ModelError::InvalidToken { id: bad, n_vocab: cfg.n_vocab });
    }
    match model.streamer() {
        // Compute only: the other workers poll between the pass's parallel steps instead of parking.
        None => model.pool().run_busy(|par| {
            forward_on_pool(par, model, &mut WeightSource::Mapped(model.file()), kv, buf, tokens, pos0, logits)
        }),
        // Reads weight slabs from the file between the steps: workers park while the reads wait.
        Some(streamer) => {
            // Locked here, outside the pool: see `WeightStreamer::lock`.
            let mut state = streamer.lock();
            let state = &mut *state;
            model.pool().run(|par| {
                forward_on_pool(par, model, &mut WeightSource::Streamed(state), kv, buf, tokens, pos0, logits)
            })
        }
    }
}

/// The forward pass proper, run on the model's pool once [`forward`] has checked the batch, positions and token ids;
/// the weights come from `src` (the memory map or the streaming reader).
#[allow(clippy::too_many_arguments)] // the threads, the model and `forward`'s arguments
fn forward_on_pool(
    par: &Parallel<'_>,
    model: &Model,
    src: &mut WeightSource<'_>,
    kv: &mut KvCache,
    buf: &mut ForwardBuffers,
    tokens: &[u32],
    pos0: usize,
    mode: Logits,
) -> Result<(), ModelError> {
    let cfg = model.config();
    let w = model.weights();
    let n = tokens.len();
    let (d, qd, kvd, ff) = (cfg.n_embd, cfg.q_dim(), cfg.kv_dim(), cfg.n_ff);
    let hd = cfg.head_dim;

    // Embedding lookup: dequantize one row of the token table per token (in streaming mode only these rows are
    // read from the file).
    let emb = &w.token_embd;
    for (t, &tok) in tokens.iter().enumerate() {
        crate::simd::dequantize_row(emb.ty, src.row(emb, tok as usize)?, &mut buf.x[t * d..(t + 1) * d]);
    }

    // Scratch for every matrix of this batch, reserved fallibly up front (a few multiplications per matrix; the
    // calls below then never allocate).
    for m in w.layers.iter().flat_map(|l| l.matrices()) {
        buf.mm.try_reserve(m, n)?;
    }
    let plan = model.kernel_plan();
    // `rows` tokens of the batch: all of them, or the last layer's output rows.
    let mut mm = |m: &MatrixRef, x: &[f32], rows: usize, y: &mut [f32], s: &mut MatmulScratch| {
        matmul(par, m, src, x, rows, y, s, plan)
    };

    // The first token whose output is asked for. Before the last layer every token's hidden state feeds the next
    // layer's keys and values; in the last layer only the output rows are needed beyond their keys and values
    // (stored for all tokens), so its queries, attention, output projection and feed-forward run for those rows
    // alone (llama.cpp does the same from the attention output on). Tokens never mix outside attention and the
    // kernels' results do not depend on how many tokens a call has, so the logits are those of the full pass.
    let first = match mode {
        Logits::Last => n - 1,
        Logits::All => 0,
    };
    let n_layer = w.layers.len();
    for (l, lw) in w.layers.iter().enumerate() {
        // Rows `o..n` of this layer go beyond the keys and values.
        let o = if l + 1 == n_layer { first } else { 0 };
        let m = n - o;
        // Attention block.
        rms_norm_rows(par, &buf.x[..n * d], &lw.attn_norm, cfg.rms_eps, &mut buf.xb[..n * d]);
        let xb = &buf.xb[..n * d];
        mm(&lw.wq, &xb[o * d..], m, &mut buf.q[..m * qd], &mut buf.mm)?;
        mm(&lw.wk, xb, n, &mut buf.k[..n * kvd], &mut buf.mm)?;
        mm(&lw.wv, xb, n, &mut buf.v[..n * kvd], &mut buf.mm)?;
        for t in 0..n {
            let pos = pos0 + t;
            model.rope().apply(&mut buf.k[t * kvd..(t + 1) * kvd], hd, pos);
            kv.store(l, pos, &buf.k[t * kvd..(t + 1) * kvd], &buf.v[t * kvd..(t + 1) * kvd]);
        }
        for t in 0..m {
            model.rope().apply(&mut buf.q[t * qd..(t + 1) * qd], hd, pos0 + o + t);
        }
        attention(par, model, kv, l, &buf.q[..m * qd], &mut buf.attn[..m * qd], pos0 + o);
        mm(&lw.wo, &buf.attn[..m * qd], m, &mut buf.proj[..m * d], &mut buf.mm)?;
        let x = &mut buf.x[o * d..n * d];
        add_rows(par, x, &buf.proj[..m * d], d);

        // Feed-forward block.
        rms_norm_rows(par, x, &lw.ffn_norm, cfg.rms_eps, &mut buf.xb[..m * d]);
        let xb = &buf.xb[..m * d];
        mm(&lw.w_gate, xb, m, &mut buf.gate[..m * ff], &mut buf.mm)?;
        mm(&lw.w_up, xb, m, &mut buf.up[..m * ff], &mut buf.mm)?;
        par.for_each((chunks_mut(&mut buf.gate[..m * ff], ff), chunks(&buf.up[..m * ff], ff)), |_, (g, u)| {
            ops::swiglu(g, u)
        });
        mm(&lw.w_down, &buf.gate[..m * ff], m, &mut buf.proj[..m * d], &mut buf.mm)?;
        add_rows(par, &mut buf.x[o * d..n * d], &buf.proj[..m * d], d);
    }

    // Output: final norm and projection for the rows asked for.
    let rows = n - first;
    for t in first..n {
        ops::rms_norm(&buf.x[t * d..(t + 1) * d], &w.output_norm, cfg.rms_eps, &mut buf.xb[t * d..(t + 1) * d]);
    }
    let nv = cfg.n_vocab;
    if buf.logits.len() < rows * nv {
        try_resize(&mut buf.logits, rows * nv, 0.0, "logits")?;
    }
    buf.n_logits = rows * nv;
    buf.mm.try_reserve(&w.output, rows)?;
    matmul(par, &w.output, src, &buf.xb[first * d..n * d], rows, &mut buf.logits[..rows * nv], &mut buf.mm, plan)
}

/// RMSNorm of each `weight.len()`-wide row of `x` into `out`, rows in parallel (each row's arithmetic is the same
/// as alone).
fn rms_norm_rows(par: &Parallel<'_>, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let d = weight.len();
    par.for_each((chunks(x, d), chunks_mut(out, d)), |_, (x, o)| ops::rms_norm(x, weight, eps, o));
}

/// `acc += x` for rows of `d` values, rows in parallel.
fn add_rows(par: &Parallel<'_>, acc: &mut [f32], x: &[f32], d: usize) {
    par.for_each((chunks_mut(acc, d), chunks(x, d)), |_, (a, b)| ops::add_assign(a, b));
}

/// Causal grouped-query attention for the batch: token `t` (at position `pos0 + t`) attends to positions
/// `0..=pos0 + t` of layer `l`. Single pass with an online softmax (no score buffer); query heads run in parallel.
fn attention(par: &Parallel<'_>, model: &Model, kv: &KvCache, l: usize, q: &[f32], out: &mut [f32], pos0: usize) {
    let cfg = model.config();
    let (hd, n_head) = (cfg.head_dim, cfg.n_head);
    let (group, n_head_kv) = (cfg.n_head / cfg.n_head_kv, cfg.n_head_kv);
    let scale = 1.0 / (hd as f32).sqrt();
    let round_query = kv.kv_type() == KvType::F16;

    // One task per (token, KV head): each cached key and value row is converted once and used by the `group`
    // query heads that share it. Every query head still runs its own online softmax over the positions in order,
    // so the results do not depend on how tokens are batched.
    par.for_each(chunks_mut(out, group * hd), |i, o| {
        let (t, g) = (i / n_head_kv, i % n_head_kv);
        let task = AttentionTask { kv, l, g, hd, n_pos: pos0 + t + 1, scale, round_query };
        let first_head = t * n_head + g * group;
        let q = &q[first_head * hd..(first_head + group) * hd];
        // Stack buffers as small as the model allows: zeroing the largest ones (40 KB) for every task cost 3.6 MB
        // of memset per SmolLM2-135M token.
        if group * hd <= SMALL_GROUP_VALUES && hd <= SMALL_HEAD_DIM {
            task.run::<SMALL_GROUP_VALUES, SMALL_HEAD_DIM>(q, o)
        } else {
            task.run::<MAX_GROUP_VALUES, MAX_HEAD_DIM>(q, o)
        }
    });
}

/// Query values of a KV head's group (`group * head_dim`) and head size up to which [`attention`] uses small stack
/// buffers (3 KiB: Llama 2/3, TinyLlama, SmolLM2 and most Llama-architecture models fit).
const SMALL_GROUP_VALUES: usize = 512;
/// See [`SMALL_GROUP_VALUES`].
const SMALL_HEAD_DIM: usize = 128;

/// One task of [`attention`]: the query heads of KV head `g` for one token, over cached positions `0..n_pos` of
/// layer `l`.
struct AttentionTask<'a> {
    kv: &'a KvCache,
    l: usize,
    g: usize,
    hd: usize,
    n_pos: usize,
    scale: f32,
    round_query: bool,
}

impl AttentionTask<'_> {
    /// Runs the task for the group's queries `q` into `o` (same length), with stack buffers of `QN` query values
    /// and `HN` head values (at least `q.len()` and the head size).
    fn run<const QN: usize, const HN: usize>(&self, q: &[f32], o: &mut [f32]) {
        let hd = self.hd;
        let group = q.len() / hd;
        // Like ggml, the queries are rounded to the cache's 16-bit format before the dot products.
        let mut qg = [0.0f32; QN];
        let qg = &mut qg[..q.len()];
        qg.copy_from_slice(q);
        if self.round_query {
            crate::simd::round_through_f16(qg);
        }
        let (mut krow, mut vrow) = ([0.0f32; HN], [0.0f32; HN]);
        let (krow, vrow) = (&mut krow[..hd], &mut vrow[..hd]);
        o.fill(0.0);
        let mut m = [f32::NEG_INFINITY; MAX_GROUP];
        let mut sum = [0.0f32; MAX_GROUP];
        for p in 0..self.n_pos {
            self.kv.head(KvPart::Key, self.l, p, self.g, krow);
            self.kv.head(KvPart::Value, self.l, p, self.g, vrow);
            ops::attend_position(qg, krow, vrow, self.scale, &mut m[..group], &mut sum[..group], o);
        }
        for (oh, s) in o.chunks_exact_mut(hd).zip(sum) {
            let inv = 1.0 / s;
            oh.iter_mut().for_each(|v| *v *= inv);
        }
    }
}
