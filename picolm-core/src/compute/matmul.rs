//! Matrix multiplication of a batch of activations by a weight matrix stored in any supported format.
//!
//! Following ggml, the activations are converted once per call to the weight type's dot-product format
//! ([`quant::vec_dot_type`]: Q8_0 / Q8_1 / Q8_K / F16 / BF16 / F32), and every output is a fused
//! dequantize-and-dot over the weight row, read in place from the memory map (or from a streamed slab). Rows are
//! split across the pool's threads.

use crate::alloc::{bytes_of, OutOfMemory};
use crate::compute::matrix::{MatrixRef, WeightRows};
use crate::compute::ops;
use crate::compute::planner::KernelPlan;
use crate::compute::pool::{chunks, chunks_mut, Parallel};
use crate::quant;
use crate::quant::VecDotFn;
use crate::simd::{self, ActivationRows, DecodeFn, GemvFn, TileKernel, TileShape, MAX_TILE_TOKENS};

/// Reusable buffers of [`matmul`]: they grow to the largest batch seen and are never shrunk, so the token loop
/// does not allocate.
#[derive(Debug, Default)]
pub struct MatmulScratch {
    /// Activations converted to the weights' dot-product format, one row per token.
    x_converted: Vec<u8>,
    /// The f32 block scales of `x_converted` read by the tile kernels.
    x_scales: Vec<f32>,
    /// The block sums of `x_converted` read by the tile kernels.
    x_sums: Vec<i32>,
    /// Row-major (weight row, token) results of a batched call before transposition.
    out_by_row: Vec<f32>,
}

impl MatmulScratch {
    /// Reserves, fallibly, what [`matmul`] of `n_tokens` activation rows by `w` needs, so that the call itself
    /// does not allocate (a batch of all-token logits by a large vocabulary needs hundreds of megabytes).
    pub fn try_reserve(&mut self, w: &MatrixRef, n_tokens: usize) -> Result<(), OutOfMemory> {
        fn to<T>(v: &mut Vec<T>, n: usize) -> Result<(), OutOfMemory> {
            if n > v.capacity() {
                let bytes = bytes_of::<T>(n);
                v.try_reserve_exact(n - v.len())
                    .map_err(|_| OutOfMemory { what: "matrix multiplication scratch", bytes })?;
            }
            Ok(())
        }
        let dot_ty = quant::vec_dot_type(w.ty);
        let x_row_bytes = dot_ty.row_bytes(w.cols as u64).unwrap_or(u64::MAX) as usize;
        let blocks_per_row = w.cols / dot_ty.block_size();
        let per_block = simd::scales_per_block(dot_ty);
        to(&mut self.x_converted, n_tokens.saturating_mul(x_row_bytes))?;
        if per_block > 0 && simd::tile_kernel(w.ty).is_some() {
            to(&mut self.x_scales, n_tokens.saturating_mul(blocks_per_row * per_block))?;
            to(&mut self.x_sums, n_tokens.saturating_mul(blocks_per_row))?;
        }
        if n_tokens > 1 {
            to(&mut self.out_by_row, n_tokens.saturating_mul(w.rows))?;
        }
        Ok(())
    }

    /// Bytes currently held.
    pub fn capacity_bytes(&self) -> usize {
        self.x_converted.capacity()
            + (self.x_scales.capacity() + self.x_sums.capacity() + self.out_by_row.capacity()) * 4
    }
}

/// Rows handed to one task: enough work per task to amortise scheduling, enough tasks to balance threads, and a
/// whole number of the kernel's row tiles (`granule`).
fn rows_per_task(par: &Parallel<'_>, rows: usize, n_tokens: usize, granule: usize) -> usize {
    let threads = par.n_threads();
    let by_balance = rows.div_ceil(threads * 8);
    // For big batches each row already carries n_tokens dot products.
    let min_rows = if n_tokens >= 8 { 1 } else { 4 };
    by_balance.max(min_rows).next_multiple_of(granule)
}

/// The first `n` values of the scratch buffer `v`, grown (zero-filled) only when it is shorter: the matrices of a
/// layer need different lengths, and resizing down and up again re-zeroed the buffers several times per layer and
/// token (0.4 M instructions per SmolLM2-135M decode token on Cortex-A76 under qemu) for values that are
/// overwritten before they are read.
fn at_least<T: Copy + Default>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    if v.len() < n {
        v.resize(n, T::default());
    }
    &mut v[..n]
}

/// `y[t * w.rows + r] = sum_c W[r, c] * x[t * w.cols + c]` for `t < n_tokens`.
///
/// Batches (prefill) use the format's tile kernel; one token (decode) uses the kernel `plan` chose for the format.
/// `x` holds `n_tokens * w.cols` activations and `y` `n_tokens * w.rows` outputs; the work is split across `par`'s
/// threads (see [`crate::compute::ComputePool::run`]). The weight rows come from `weights`: the whole
/// matrix at once from the memory map, or slab by slab in streaming mode (whose read errors are returned). Panics
/// only on a caller bug (slice lengths that disagree with the shape checked at load).
#[allow(clippy::too_many_arguments)] // the threads, the operands, the reused scratch and the kernel plan
pub fn matmul<W: WeightRows + ?Sized>(
    par: &Parallel<'_>,
    w: &MatrixRef,
    weights: &mut W,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
    scratch: &mut MatmulScratch,
    plan: &KernelPlan,
) -> Result<(), W::Error> {
    assert_eq!(x.len(), n_tokens * w.cols, "matmul: activations of {}", w.name);
    assert_eq!(y.len(), n_tokens * w.rows, "matmul: outputs of {}", w.name);
    let dot_ty = quant::vec_dot_type(w.ty);
    let x_row_bytes = dot_ty.row_bytes(w.cols as u64).expect("shape checked at load") as usize;

    let blocks_per_row = w.cols / dot_ty.block_size();
    let per_block = simd::scales_per_block(dot_ty);
    let kernel = match plan.decode(w.ty).filter(|_| n_tokens == 1) {
        Some(k) => Kernel::from(k.run),
        None => match simd::tile_kernel(w.ty) {
            Some(tile) => Kernel::Tile(tile),
            None => Kernel::Dot(simd::vec_dot_kernel(w.ty).unwrap_or(quant::kernels(w.ty).vec_dot)),
        },
    };
    // 1. Convert the activations once, and for the kernels that read them, their f32 block scales and sums (one
    // parallel step: each token's row is prepared right after its conversion, while it is in cache).
    let (x_len, scales_len) = (n_tokens * x_row_bytes, n_tokens * blocks_per_row * per_block);
    let xc = at_least(&mut scratch.x_converted, x_len);
    let rows_in = (chunks_mut(xc, x_row_bytes), chunks(x, w.cols));
    if kernel.reads_prepared() && per_block > 0 {
        let xs = at_least(&mut scratch.x_scales, scales_len);
        let sums = at_least(&mut scratch.x_sums, n_tokens * blocks_per_row);
        let prepared = (chunks_mut(xs, blocks_per_row * per_block), chunks_mut(sums, blocks_per_row));
        par.for_each((rows_in, prepared), |_, ((dst, src), (sc, su))| {
            simd::quantize_activations(dot_ty, src, dst);
            simd::prepare_activations(dot_ty, dst, sc, su);
        });
    } else {
        par.for_each(rows_in, |_, (dst, src)| simd::quantize_activations(dot_ty, src, dst));
    }
    let x = Activations {
        rows: ActivationRows {
            bytes: &scratch.x_converted[..x_len],
            row_bytes: x_row_bytes,
            blocks_per_row,
            scales_per_block: per_block,
            scales: &scratch.x_scales,
            sums: &scratch.x_sums,
        },
        kernel,
    };
    let out = if n_tokens > 1 { at_least(&mut scratch.out_by_row, n_tokens * w.rows) } else { &mut [] };
    weights.for_each_slab(w, &mut |rows, slab| {
        if n_tokens == 1 {
            rows_times_one(par, &x, w, slab, &mut y[rows]);
        } else {
            rows_times_batch(par, &x, w, slab, n_tokens, &mut out[rows.start * n_tokens..rows.end * n_tokens]);
        }
    })?;
    if n_tokens > 1 {
        transpose_to_tokens(par, out, w.rows, n_tokens, y);
    }
    Ok(())
}

/// Tokens whose results one task of [`transpose_to_tokens`] moves: sixteen f32 are one 64-byte cache line of a
/// weight row's results.
const TRANSPOSE_TOKENS: usize = 16;

/// `y[t * rows + r] = by_row[r * n_tokens + t]`: the (row, token) results of a batched call as token-major
/// activations, tasks of [`TRANSPOSE_TOKENS`] tokens. Each task reads its tokens' results of a row as one run
/// (a cache line) and writes one value to each of its tokens' rows, instead of reading every value of a token
/// from a different line (`n_tokens * 4` bytes apart), each line fetched once per token.
fn transpose_to_tokens(par: &Parallel<'_>, by_row: &[f32], rows: usize, n_tokens: usize, y: &mut [f32]) {
    assert!(by_row.len() >= rows * n_tokens && y.len() == rows * n_tokens, "transpose of {rows} x {n_tokens}");
    par.for_each(chunks_mut(y, rows * TRANSPOSE_TOKENS), |ci, yc| {
        ops::rows_to_tokens(by_row, rows, n_tokens, ci * TRANSPOSE_TOKENS, yc)
    });
}

/// The kernel a matmul uses: a tile kernel, a decode matrix-vector kernel, or a plain one-row, one-token dot
/// product.
#[derive(Clone, Copy)]
enum Kernel {
    Tile(TileKernel),
    Gemv(GemvFn),
    Dot(VecDotFn),
}

impl From<DecodeFn> for Kernel {
    fn from(k: DecodeFn) -> Kernel {
        match k {
            DecodeFn::Tile(t) => Kernel::Tile(t),
            DecodeFn::Gemv(g) => Kernel::Gemv(g),
            DecodeFn::Dot(d) => Kernel::Dot(d),
        }
    }
}

impl Kernel {
    /// Weight rows handled together; tasks take whole multiples of it.
    fn rows_per_call(self) -> usize {
        match self {
            Kernel::Tile(k) => k.max_rows,
            Kernel::Gemv(_) | Kernel::Dot(_) => 1,
        }
    }

    /// Tokens handled together.
    fn tokens_per_call(self) -> usize {
        match self {
            Kernel::Tile(k) => k.max_tokens,
            Kernel::Gemv(_) | Kernel::Dot(_) => MAX_TILE_TOKENS,
        }
    }

    /// Whether the kernel reads the activations' prepared scales and sums.
    fn reads_prepared(self) -> bool {
        !matches!(self, Kernel::Dot(_))
    }
}

/// Converted activations and the kernel that consumes them.
struct Activations<'a> {
    rows: ActivationRows<'a>,
    kernel: Kernel,
}

impl Activations<'_> {
    /// Results of the weight rows in `rows` (whole rows of `row_bytes`) times the activation rows `tokens` (at most
    /// the kernel's `max_tokens`): result `(r, t)` goes to `out[r * ld + t - tokens.start]`.
    fn tile(
        &self,
        cols: usize,
        rows: &[u8],
        row_bytes: usize,
        tokens: std::ops::Range<usize>,
        ld: usize,
        out: &mut [f32],
    ) {
        let n_rows = rows.len() / row_bytes;
        let step = self.kernel.rows_per_call();
        let mut r = 0;
        while r < n_rows {
            let take = step.min(n_rows - r);
            let w = &rows[r * row_bytes..(r + take) * row_bytes];
            let o = &mut out[r * ld..];
            match self.kernel {
                Kernel::Tile(k) => {
                    let shape = TileShape { rows: take, tokens: tokens.len(), ld };
                    (k.run)(cols, w, row_bytes, &self.rows, tokens.start, shape, o)
                }
                Kernel::Gemv(gemv) if tokens.len() == 1 && ld == 1 => {
                    // Decode: the whole run of rows in one call.
                    gemv(cols, rows, row_bytes, &self.rows.token(tokens.start), &mut out[..n_rows]);
                    return;
                }
                Kernel::Gemv(gemv) => {
                    for t in tokens.clone() {
                        gemv(cols, w, row_bytes, &self.rows.token(t), &mut o[t - tokens.start..][..1]);
                    }
                }
                Kernel::Dot(dot) => {
                    let rb = self.rows.row_bytes;
                    for (o, t) in o.iter_mut().zip(tokens.clone()) {
                        *o = dot(cols, w, &self.rows.bytes[t * rb..(t + 1) * rb]);
                    }
                }
            }
            r += take;
        }
    }
}

/// Decode: one output per weight row of `slab`.
fn rows_times_one(par: &Parallel<'_>, x: &Activations<'_>, w: &MatrixRef, slab: &[u8], y: &mut [f32]) {
    decode_rows(par, x, w.cols, w.row_bytes, slab, y)
}

/// Decode over whole rows of `row_bytes` (`cols` values each) in `slab`, split across `par`'s threads.
fn decode_rows(par: &Parallel<'_>, x: &Activations<'_>, cols: usize, row_bytes: usize, slab: &[u8], y: &mut [f32]) {
    let chunk = rows_per_task(par, y.len(), 1, x.kernel.rows_per_call());
    par.for_each(chunks_mut(y, chunk), |ci, out| {
        let r0 = ci * chunk;
        x.tile(cols, &slab[r0 * row_bytes..(r0 + out.len()) * row_bytes], row_bytes, 0..1, 1, out);
    });
}

/// Batch: each task takes a group of weight rows and walks the tokens in tiles of the kernel's `max_tokens`, so a tile's
/// activations stay in L1 while the group's rows pass over them; results are stored by row.
fn rows_times_batch(
    par: &Parallel<'_>,
    x: &Activations<'_>,
    w: &MatrixRef,
    slab: &[u8],
    n_tokens: usize,
    out: &mut [f32],
) {
    let (cols, row_bytes) = (w.cols, w.row_bytes);
    let rows = out.len() / n_tokens;
    let chunk = rows_per_task(par, rows, n_tokens, x.kernel.rows_per_call());
    par.for_each(chunks_mut(out, chunk * n_tokens), |ci, block| {
        let r0 = ci * chunk;
        let block_rows = &slab[r0 * row_bytes..(r0 + block.len() / n_tokens) * row_bytes];
        let mut t0 = 0;
        while t0 < n_tokens {
            let t1 = (t0 + x.kernel.tokens_per_call()).min(n_tokens);
            x.tile(cols, block_rows, row_bytes, t0..t1, n_tokens, &mut block[t0..]);
            t0 = t1;
        }
    });
}

/// One token's activations prepared for `kernel` (converted row, and for the kernels that read them, its f32
/// block scales and sums): what [`matmul`] builds before a decode call. Used by the kernel planner.
#[derive(Debug, Default)]
pub(crate) struct PreparedToken {
    bytes: Vec<u8>,
    scales: Vec<f32>,
    sums: Vec<i32>,
    blocks: usize,
    per_block: usize,
}

impl PreparedToken {
    /// `x` (one row of f32 activations) converted for weights of type `ty`.
    pub(crate) fn new(ty: crate::ggml_type::GgmlType, x: &[f32]) -> PreparedToken {
        let dot_ty = quant::vec_dot_type(ty);
        let mut bytes = vec![0u8; dot_ty.row_bytes(x.len() as u64).expect("whole blocks") as usize];
        simd::quantize_activations(dot_ty, x, &mut bytes);
        let (blocks, per_block) = (x.len() / dot_ty.block_size(), simd::scales_per_block(dot_ty));
        let mut scales = vec![0f32; blocks * per_block];
        let mut sums = vec![0i32; if per_block > 0 { blocks } else { 0 }];
        simd::prepare_activations(dot_ty, &bytes, &mut scales, &mut sums);
        PreparedToken { bytes, scales, sums, blocks, per_block }
    }

    /// Decode of `rows` (whole rows of `row_bytes`, `cols` values each) with `kernel` into `y`, split across
    /// `par`'s threads exactly as [`matmul`] splits a decode call.
    pub(crate) fn decode(
        &self,
        par: &Parallel<'_>,
        kernel: DecodeFn,
        cols: usize,
        row_bytes: usize,
        rows: &[u8],
        y: &mut [f32],
    ) {
        let x = Activations {
            rows: ActivationRows {
                bytes: &self.bytes,
                row_bytes: self.bytes.len(),
                blocks_per_row: self.blocks,
                scales_per_block: self.per_block,
                scales: &self.scales,
                sums: &self.sums,
            },
            kernel: Kernel::from(kernel),
        };
        decode_rows(par, &x, cols, row_bytes, rows, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::ComputePool;

    #[test]
    fn transposing_by_row_results_places_every_value_once() {
        // Token counts below, at and across the task size, and row counts that are not multiples of anything.
        for (rows, n_tokens) in [(1, 2), (5, 16), (7, 17), (3, 31), (64, 64), (33, 40), (2, 100)] {
            let by_row: Vec<f32> = (0..rows * n_tokens).map(|i| i as f32).collect();
            let mut y = vec![f32::NAN; rows * n_tokens];
            ComputePool::new(2).unwrap().run(|par| transpose_to_tokens(par, &by_row, rows, n_tokens, &mut y));
            for t in 0..n_tokens {
                for r in 0..rows {
                    assert_eq!(y[t * rows + r], by_row[r * n_tokens + t], "{rows} x {n_tokens}: row {r}, token {t}");
                }
            }
        }
    }
}
