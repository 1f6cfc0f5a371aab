//! `cargo bench --bench kernels`: single-thread throughput of the matmul kernels on this CPU, per weight format,
//! in billions of multiply-accumulates per second (GMAC/s), for decode (one token) and a 64-token prefill batch.
//! Compares the one-row dot product (SIMD where this CPU has one for the format, else the scalar reference: on
//! x86-64 the formats with tile kernels have no SIMD one-row kernel) with the tile kernels used by the engine. A
//! 256 x 2048 weight matrix (in L2) and random activations; best of several runs. No model file needed.

use std::time::Instant;

use picolm_core::ggml_type::GgmlType;
use picolm_core::quant;
use picolm_core::simd::{self, ActivationRows, TileShape};

const ROWS: usize = 256;
const COLS: usize = 2048;
const TOKENS: usize = 64;

fn values(seed: u64, n: usize) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

/// Best wall time of `f` over `reps` runs, in seconds.
fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    println!("cpu path: {}", simd::cpu_path());
    println!("| format | dot decode | tile decode | dot pp{TOKENS} | tile pp{TOKENS} | (GMAC/s, 1 thread) |");
    println!("|---|---|---|---|---|---|");
    for ty in [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::F16,
    ] {
        let w_row = ty.row_bytes(COLS as u64).unwrap() as usize;
        let mut w = vec![0u8; ROWS * w_row];
        for (r, row) in w.chunks_exact_mut(w_row).enumerate() {
            quant::quantize_row(ty, &values(r as u64 + 1, COLS), row).unwrap();
        }
        let xt = quant::vec_dot_type(ty);
        let x_row = xt.row_bytes(COLS as u64).unwrap() as usize;
        let (blocks, per_block) = (COLS / xt.block_size(), simd::scales_per_block(xt));
        let mut xq = vec![0u8; TOKENS * x_row];
        let mut scales = vec![0f32; TOKENS * blocks * per_block];
        let mut sums = vec![0i32; if per_block > 0 { TOKENS * blocks } else { 0 }];
        for t in 0..TOKENS {
            let row = &mut xq[t * x_row..(t + 1) * x_row];
            simd::quantize_activations(xt, &values(1000 + t as u64, COLS), row);
            if per_block > 0 {
                let sc = &mut scales[t * blocks * per_block..(t + 1) * blocks * per_block];
                simd::prepare_activations(xt, row, sc, &mut sums[t * blocks..(t + 1) * blocks]);
            }
        }
        let x = ActivationRows {
            bytes: &xq,
            row_bytes: x_row,
            blocks_per_row: blocks,
            scales_per_block: per_block,
            scales: &scales,
            sums: &sums,
        };
        let dot = simd::vec_dot_kernel(ty).unwrap_or(quant::kernels(ty).vec_dot);
        let mut out = vec![0f32; ROWS * TOKENS];
        let run_dot = |tokens: usize, out: &mut [f32]| {
            for r in 0..ROWS {
                for t in 0..tokens {
                    out[r * tokens + t] = dot(COLS, &w[r * w_row..(r + 1) * w_row], &xq[t * x_row..(t + 1) * x_row]);
                }
            }
        };
        let gmacs = |tokens: usize, secs: f64| (ROWS * COLS * tokens) as f64 / secs / 1e9;
        let dot_1 = gmacs(1, best(1000, || run_dot(1, &mut out)));
        let dot_b = gmacs(TOKENS, best(60, || run_dot(TOKENS, &mut out)));
        let (tile_1, tile_b) = match simd::tile_kernel(ty) {
            Some(k) => {
                let run_tile = |tokens: usize, out: &mut [f32]| {
                    for r0 in (0..ROWS).step_by(k.max_rows) {
                        for t0 in (0..tokens).step_by(k.max_tokens) {
                            let shape =
                                TileShape { rows: k.max_rows, tokens: k.max_tokens.min(tokens - t0), ld: tokens };
                            (k.run)(COLS, &w[r0 * w_row..], w_row, &x, t0, shape, &mut out[r0 * tokens + t0..]);
                        }
                    }
                };
                let one = gmacs(1, best(1000, || run_tile(1, &mut out)));
                let batch = gmacs(TOKENS, best(60, || run_tile(TOKENS, &mut out)));
                (format!("{one:.1}"), format!("{batch:.1}"))
            }
            None => ("-".into(), "-".into()),
        };
        println!("| {ty} | {dot_1:.1} | {tile_1} | {dot_b:.1} | {tile_b} | |");
    }
}
