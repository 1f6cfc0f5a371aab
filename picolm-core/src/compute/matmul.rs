//! Matrix multiplication of a batch of activations by a weight matrix stored in any supported format.
//!
//! Following ggml, the activations are converted once per call to the weight type's dot-product format
//! ([`quant::vec_dot_type`]: Q8_0 / Q8_1 / Q8_K / F16 / BF16 / F32), and every output is a fused
//! dequantize-and-dot over the weight row, read in place from the memory map or (streaming mode) from the slab the
//! rows were read into. Rows are split across the pool's threads.

use rayon::prelude::*;

use crate::model::stream::WeightSource;
use crate::model::weights::MatrixRef;
use crate::model::ModelError;
use crate::quant;
use crate::simd::{self, ActivationRows, TileKernel, TileShape, VecDotFn, MAX_TILE_TOKENS};

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
    /// Bytes currently held.
    pub fn capacity_bytes(&self) -> usize {
        self.x_converted.capacity() + (self.x_scales.capacity() + self.x_sums.capacity() + self.out_by_row.capacity()) * 4
    }
}

/// Rows handed to one task: enough work per task to amortise scheduling, enough tasks to balance threads, and a
/// whole number of the kernel's row tiles (`granule`).
fn rows_per_task(rows: usize, n_tokens: usize, granule: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let by_balance = rows.div_ceil(threads * 8);
    // For big batches each row already carries n_tokens dot products.
    let min_rows = if n_tokens >= 8 { 1 } else { 4 };
    by_balance.max(min_rows).next_multiple_of(granule)
}

/// `y[t * w.rows + r] = sum_c W[r, c] * x[t * w.cols + c]` for `t < n_tokens`.
///
/// `x` holds `n_tokens * w.cols` activations and `y` `n_tokens * w.rows` outputs. Must be called inside
/// [`crate::compute::ComputePool::run`] to use the model's threads. The weight rows come from `weights`: the whole
/// matrix at once from the map, or slab by slab in streaming mode (whose read errors are returned). Panics only on
/// a caller bug (slice lengths that disagree with the shape checked at load).
pub fn matmul(
    w: &MatrixRef,
    weights: &mut WeightSource<'_>,
    x: &[f32],
    n_tokens: usize,
    y: &mut [f32],
    scratch: &mut MatmulScratch,
) -> Result<(), ModelError> {
    assert_eq!(x.len(), n_tokens * w.cols, "matmul: activations of {}", w.name);
    assert_eq!(y.len(), n_tokens * w.rows, "matmul: outputs of {}", w.name);
    let dot_ty = quant::vec_dot_type(w.ty);
    let x_row_bytes = dot_ty.row_bytes(w.cols as u64).expect("shape checked at load") as usize;

    // 1. Convert the activations once.
    let xc = &mut scratch.x_converted;
    xc.resize(n_tokens * x_row_bytes, 0);
    xc.par_chunks_mut(x_row_bytes).zip(x.par_chunks(w.cols)).for_each(|(dst, src)| {
        simd::quantize_activations(dot_ty, src, dst);
    });
    let blocks_per_row = w.cols / dot_ty.block_size();
    let per_block = simd::scales_per_block(dot_ty);
    let kernel = match simd::tile_kernel(w.ty) {
        Some(tile) => {
            let (xs, sums) = (&mut scratch.x_scales, &mut scratch.x_sums);
            if per_block > 0 {
                xs.resize(n_tokens * blocks_per_row * per_block, 0.0);
                sums.resize(n_tokens * blocks_per_row, 0);
                xs.par_chunks_mut(blocks_per_row * per_block)
                    .zip(sums.par_chunks_mut(blocks_per_row))
                    .zip(xc.par_chunks(x_row_bytes))
                    .for_each(|((sc, su), src)| simd::prepare_activations(dot_ty, src, sc, su));
            }
            Kernel::Tile(tile)
        }
        None => Kernel::Dot(simd::vec_dot_kernel(w.ty).unwrap_or(quant::kernels(w.ty).vec_dot)),
    };
    let x = Activations {
        rows: ActivationRows {
            bytes: &scratch.x_converted,
            row_bytes: x_row_bytes,
            blocks_per_row,
            scales_per_block: per_block,
            scales: &scratch.x_scales,
            sums: &scratch.x_sums,
        },
        kernel,
    };
    let out = &mut scratch.out_by_row;
    if n_tokens > 1 {
        out.resize(n_tokens * w.rows, 0.0);
    }
    weights.for_each_slab(w, &mut |rows, slab| {
        if n_tokens == 1 {
            rows_times_one(&x, w, slab, &mut y[rows]);
        } else {
            rows_times_batch(&x, w, slab, n_tokens, &mut out[rows.start * n_tokens..rows.end * n_tokens]);
        }
    })?;
    if n_tokens > 1 {
        // Transpose (row, token) results into token-major activations.
        let out: &[f32] = out;
        let rows = w.rows;
        y.par_chunks_mut(rows).enumerate().for_each(|(t, yt)| {
            for (r, v) in yt.iter_mut().enumerate() {
                *v = out[r * n_tokens + t];
            }
        });
    }
    Ok(())
}

/// The kernel a matmul uses: a tile kernel or a plain one-row, one-token dot product.
#[derive(Clone, Copy)]
enum Kernel {
    Tile(TileKernel),
    Dot(VecDotFn),
}

impl Kernel {
    /// Weight rows handled together; tasks take whole multiples of it.
    fn rows_per_call(self) -> usize {
        match self {
            Kernel::Tile(k) => k.max_rows,
            Kernel::Dot(_) => 1,
        }
    }

    /// Tokens handled together.
    fn tokens_per_call(self) -> usize {
        match self {
            Kernel::Tile(k) => k.max_tokens,
            Kernel::Dot(_) => MAX_TILE_TOKENS,
        }
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
    fn tile(&self, cols: usize, rows: &[u8], row_bytes: usize, tokens: std::ops::Range<usize>, ld: usize, out: &mut [f32]) {
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
fn rows_times_one(x: &Activations<'_>, w: &MatrixRef, slab: &[u8], y: &mut [f32]) {
    let (cols, row_bytes) = (w.cols, w.row_bytes);
    let chunk = rows_per_task(y.len(), 1, x.kernel.rows_per_call());
    y.par_chunks_mut(chunk).enumerate().for_each(|(ci, out)| {
        let r0 = ci * chunk;
        x.tile(cols, &slab[r0 * row_bytes..(r0 + out.len()) * row_bytes], row_bytes, 0..1, 1, out);
    });
}

/// Batch: each task takes a group of weight rows and walks the tokens in tiles of the kernel's `max_tokens`, so a tile's
/// activations stay in L1 while the group's rows pass over them; results are stored by row.
fn rows_times_batch(x: &Activations<'_>, w: &MatrixRef, slab: &[u8], n_tokens: usize, out: &mut [f32]) {
    let (cols, row_bytes) = (w.cols, w.row_bytes);
    let rows = out.len() / n_tokens;
    let chunk = rows_per_task(rows, n_tokens, x.kernel.rows_per_call());
    out.par_chunks_mut(chunk * n_tokens).enumerate().for_each(|(ci, block)| {
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
