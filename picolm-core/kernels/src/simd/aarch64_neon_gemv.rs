//! aarch64 one-token (GEMV) entries of the tile kernels in `aarch64_neon_tiles.rs`: decode runs a whole run of
//! weight rows against one activation row in one call, with the slices checked once per call instead of once per
//! four rows, and with the integer block sums formed the way that is cheapest for one token.
//!
//! Bit-identity with the tiles (so that decode equals batched prefill without choosing): every row gets the same
//! integer block sums as in the tile (integer arithmetic is exact, so how they are formed is free) and the same f32
//! operations in the same order (`acc = fma(acc, f32(isum), d_w * d_x)` per block, Q4_1's min term in its own
//! accumulator added at the end, Q4_K as in its tile). Rows are taken in groups of eight (two f32 vectors of four
//! lanes), then a group of four; a partial group repeats its last row in the unused lanes (dropped), as the tiles do.
//! Lanes never mix in the float arithmetic, so a row's result does not depend on its group.
//!
//! What differs from a one-token tile, for the 32-value formats:
//! - Q4_0's nibbles are used unsigned (0..=15, one `and` or `ushr` per 16 weights) and the offset of 8 comes off the
//!   four rows' sums at once as `8 * sum(x)` (the activations' prepared block sums), instead of a subtraction per 16
//!   weights. Products stay within the narrow i16 lanes of the plain NEON path: 15 * 127 * 16 = 30480.
//! - With `sdot`, Q4_0, Q5_0 and Q8_0 run the one-token form of their `neon-sdot-4x8` tile
//!   (`aarch64_neon_tiles_sdot8.rs`): eight rows per pass as one `asm!` loop (rows interleaved in registers by `ld4`,
//!   `sdot` by element; Q5_0's fifth bits spread by `tbl` and `cmtst` and merged with the nibbles by `bit` and
//!   `sri`, no decoding per row), a last group of four by its intrinsic form; Q4_0 with the offset taken off as above.
//! - With `sdot`, Q4_1's last group of four rows: each row's accumulator runs across the blocks (never zeroed) and a
//!   block's sums are the difference of two consecutive pairwise reductions; i32 addition wraps, so the difference
//!   is exact whatever the running values.
//!
//! For Q4_K and Q6_K with `sdot`: four rows per pass by the `asm!` loops of `aarch64_neon_gemv_k.rs` (rows
//! interleaved in registers, `sdot` by element, the group sums times the rows' scales per lane); without `sdot`, the
//! one-token tile.

use std::arch::aarch64::*;

use super::aarch64_neon::dot_i8;
use super::aarch64_neon_gemv_k::KRows;
use super::aarch64_neon_tiles::{
    block_sums, check as tile_check, nibbles, row_scales, Format, Tile, Tok, Q4K, Q4_0, Q4_1, Q5_0, Q8_0,
};
use super::aarch64_neon_tiles_q6k::Q6K;
use super::aarch64_neon_tiles_sdot8::{gemv8_q4_1, gemv_rows, Interleave};
use super::{ActivationRows, GemvFn, TileShape};
use crate::ggml_type::GgmlType;

/// Weight rows per f32 vector.
const LANES: usize = 4;

/// The one-token entry of the tile kernel for `ty` (`sdot`: the FEAT_DotProd variant; call it so only when the CPU
/// has FEAT_DotProd).
pub fn kernel(ty: GgmlType, sdot: bool) -> Option<GemvFn> {
    Some(match (ty, sdot) {
        (GgmlType::Q4_0, true) => gemv_interleaved::<Q4_0>,
        (GgmlType::Q4_0, false) => gemv_legacy::<Q4_0, false>,
        (GgmlType::Q4_1, true) => gemv_q4_1,
        (GgmlType::Q4_1, false) => gemv_legacy::<Q4_1, false>,
        (GgmlType::Q5_0, true) => gemv_interleaved::<Q5_0>,
        (GgmlType::Q5_0, false) => gemv_legacy::<Q5_0, false>,
        (GgmlType::Q8_0, true) => gemv_interleaved::<Q8_0>,
        (GgmlType::Q8_0, false) => gemv_legacy::<Q8_0, false>,
        (GgmlType::Q4_K, true) => gemv_k::<Q4K>,
        (GgmlType::Q4_K, false) => gemv_tile::<Q4K>,
        (GgmlType::Q6_K, true) => gemv_k::<Q6K>,
        (GgmlType::Q6_K, false) => gemv_tile::<Q6K>,
        _ => return None,
    })
}

/// Checks every slice a GEMV call reads for `out.len()` rows (at least one): the tile check of a one-row, one-token
/// tile, and the other rows; returns the number of blocks per row. Panics on a caller bug.
fn check(
    n: usize,
    layout: (usize, usize, usize, usize),
    w: &[u8],
    w_row_bytes: usize,
    x: &ActivationRows<'_>,
    out: &[f32],
) -> usize {
    let one = TileShape { rows: 1, tokens: 1, ld: 1 };
    let nb = tile_check(n, layout, w, w_row_bytes, x, 0, one, out);
    assert!(w.len() >= (out.len() - 1) * w_row_bytes + nb * layout.1, "weight rows too short for {} rows", out.len());
    nb
}

/// Pointers to `G * LANES` rows starting at row `r0` of `w`, the rows past `rows` repeating the last row (not
/// dereferenced here: the callers' `check` has verified that rows below `rows` are in `w`).
fn group<const G: usize>(w: &[u8], w_row_bytes: usize, r0: usize, rows: usize) -> [[*const u8; LANES]; G] {
    std::array::from_fn(|g| {
        std::array::from_fn(|l| w.as_ptr().wrapping_add((r0 + g * LANES + l).min(rows - 1) * w_row_bytes))
    })
}

/// Pointers to the `G * LANES` rows starting at row `r0` of `w`, all below the call's row count (not dereferenced
/// here, as in [`group`]).
fn group_whole<const G: usize>(w: &[u8], w_row_bytes: usize, r0: usize) -> [[*const u8; LANES]; G] {
    let base = w.as_ptr().wrapping_add(r0 * w_row_bytes);
    std::array::from_fn(|g| std::array::from_fn(|l| base.wrapping_add((g * LANES + l) * w_row_bytes)))
}

/// Stores the lanes of `res` that belong to rows `r0..rows` into `out`.
fn put<const G: usize>(out: &mut [f32], r0: usize, res: &[[f32; LANES]; G]) {
    let res = res.as_flattened();
    if let Some(o) = out.get_mut(r0..r0 + res.len()) {
        o.copy_from_slice(res);
        return;
    }
    for (o, v) in out[r0..].iter_mut().zip(res) {
        *o = *v;
    }
}

/// Walks the rows of a GEMV call in groups of eight, then one group of four (possibly partial).
fn walk(
    out: &mut [f32],
    mut eight: impl FnMut(usize) -> [[f32; LANES]; 2],
    mut four: impl FnMut(usize) -> [[f32; LANES]; 1],
) {
    let rows = out.len();
    let mut r = 0;
    while rows - r >= 2 * LANES {
        put(out, r, &eight(r));
        r += 2 * LANES;
    }
    while r < rows {
        put(out, r, &four(r));
        r += LANES;
    }
}

/// A plain NEON tile kernel's one-token entry (Q4_K, Q6_K without `sdot`): the one-token tile per group of four
/// rows, with the slices checked once.
fn gemv_tile<K: Tile>(n: usize, w: &[u8], w_row_bytes: usize, x: &ActivationRows<'_>, out: &mut [f32]) {
    let nb = check(n, (K::BLOCK, K::W_BYTES, K::X_BYTES, K::SPB), w, w_row_bytes, x, out);
    let rows = out.len();
    let t = [Tok { x: x.bytes.as_ptr(), s: x.scales.as_ptr() }];
    let one = |r0: usize| {
        let [p] = group::<1>(w, w_row_bytes, r0, rows);
        // SAFETY: `check` verified that every row below `rows` (the pointers repeat in-range rows) and the activation
        // row with its scales hold `nb` whole blocks; NEON is mandatory on aarch64.
        let [v] = unsafe { K::tile::<false, 1>(nb, p, &t) };
        v
    };
    walk(out, |r0| [one(r0), one(r0 + LANES)], |r0| [one(r0)]);
}

/// The one-token entry of the `neon-sdot-4x8` Q4_K and Q6_K tiles: four rows per pass by the `asm!` loops of
/// `aarch64_neon_gemv_k.rs` (the tiles' integer sums and float steps, so bit-identical to them).
fn gemv_k<K: Tile + KRows>(n: usize, w: &[u8], w_row_bytes: usize, x: &ActivationRows<'_>, out: &mut [f32]) {
    let nb = check(n, (K::BLOCK, K::W_BYTES, K::X_BYTES, K::SPB), w, w_row_bytes, x, out);
    let rows = out.len();
    let four = |r0: usize| {
        let [p] = group::<1>(w, w_row_bytes, r0, rows);
        // SAFETY: `check` verified that every row below `rows` (the pointers repeat in-range rows) and the activation
        // row hold `nb` whole blocks; this entry is handed out only for CPUs with FEAT_DotProd (the caller's
        // contract); NEON is mandatory on aarch64.
        unsafe { K::rows(nb, p, x.bytes.as_ptr()) }
    };
    walk(out, |r0| [four(r0), four(r0 + LANES)], |r0| [four(r0)]);
}

/// The one-token entry of a 32-value format's tile (see the module comment).
fn gemv_legacy<F: Format, const SDOT: bool>(
    n: usize,
    w: &[u8],
    w_row_bytes: usize,
    x: &ActivationRows<'_>,
    out: &mut [f32],
) {
    let (x_bytes, spb) = if F::MIN { (36, 2) } else { (34, 1) };
    let nb = check(n, (32, F::W_BYTES, x_bytes, spb), w, w_row_bytes, x, out);
    let rows = out.len();
    let xs = (x.bytes.as_ptr(), x.scales.as_ptr(), x.sums.as_ptr());
    // SAFETY (both calls): `check` verified that every row below `rows` (the group pointers repeat in-range rows)
    // and the activation row with its scales and sums hold `nb` whole blocks; the `sdot` variant is handed out only
    // for CPUs with FEAT_DotProd (the caller's contract); NEON is mandatory on aarch64.
    walk(
        out,
        |r0| unsafe { legacy_rows::<F, SDOT, 2>(nb, group_whole(w, w_row_bytes, r0), xs) },
        |r0| unsafe { legacy_rows::<F, SDOT, 1>(nb, group(w, w_row_bytes, r0, rows), xs) },
    );
}

/// The one-token entry of the `neon-sdot-4x8` tile (Q4_0, Q5_0, Q8_0 with `sdot`): rows interleaved in registers,
/// `sdot` by element (see `aarch64_neon_tiles_sdot8.rs`).
fn gemv_interleaved<F: Interleave>(n: usize, w: &[u8], w_row_bytes: usize, x: &ActivationRows<'_>, out: &mut [f32]) {
    let nb = check(n, (32, F::W_BYTES, 34, 1), w, w_row_bytes, x, out);
    let rows = out.len();
    let xs = (x.bytes.as_ptr(), x.scales.as_ptr(), x.sums.as_ptr());
    // SAFETY (both calls): `check` verified that every row below `rows` (the group pointers repeat in-range rows)
    // and the activation row with its scales and sums hold `nb` whole blocks; this entry is handed out only for CPUs
    // with FEAT_DotProd (the caller's contract); NEON is mandatory on aarch64.
    walk(
        out,
        |r0| unsafe { F::gemv8(nb, group_whole(w, w_row_bytes, r0), xs) },
        |r0| unsafe { gemv_rows::<F, 1>(nb, group(w, w_row_bytes, r0, rows), xs) },
    );
}

/// The one-token entry of Q4_1's `neon-sdot-4x4` tile: eight rows at a time by [`gemv8_q4_1`] (rows interleaved in
/// registers, `sdot` by element), the rest as [`gemv_legacy`]; the tile's float steps either way.
fn gemv_q4_1(n: usize, w: &[u8], w_row_bytes: usize, x: &ActivationRows<'_>, out: &mut [f32]) {
    let nb = check(n, (32, Q4_1::W_BYTES, 36, 2), w, w_row_bytes, x, out);
    let rows = out.len();
    // SAFETY (both calls): `check` verified that every row below `rows` (the group pointers repeat in-range rows)
    // and the activation row with its scales and sums hold `nb` whole blocks; this entry is handed out only for CPUs
    // with FEAT_DotProd (the caller's contract); NEON is mandatory on aarch64.
    walk(
        out,
        |r0| unsafe { gemv8_q4_1(nb, group_whole(w, w_row_bytes, r0), (x.bytes.as_ptr(), x.scales.as_ptr())) },
        |r0| unsafe {
            let xs = (x.bytes.as_ptr(), x.scales.as_ptr(), x.sums.as_ptr());
            legacy_rows::<Q4_1, true, 1>(nb, group(w, w_row_bytes, r0, rows), xs)
        },
    );
}

/// Whether the format's weights are decoded unsigned with an offset taken off the sums (Q4_0: 8), and the offset.
const fn offset<F: Format>() -> i32 {
    if F::W_BYTES == 18 && !F::MIN {
        8
    } else {
        0
    }
}

/// The 32 weights of the block at `wb` as bytes, less [`offset`] (see the module comment).
#[inline(always)]
unsafe fn decode<F: Format>(wb: *const u8) -> [int8x16_t; 2] {
    if offset::<F>() != 0 {
        let [lo, hi] = nibbles(wb.add(2));
        [vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi)]
    } else {
        F::decode(wb)
    }
}

/// The results of `G` groups of four rows of `F` against one activation row `(bytes, f32 scales, block sums)`.
///
/// # Safety
/// Every pointer of `w` and the activation row, its scales and its sums hold `nb` whole blocks; with `SDOT` the CPU
/// has FEAT_DotProd.
#[target_feature(enable = "neon")]
unsafe fn legacy_rows<F: Format, const SDOT: bool, const G: usize>(
    nb: usize,
    w: [[*const u8; LANES]; G],
    (xp, sp, sump): (*const u8, *const f32, *const i32),
) -> [[f32; LANES]; G] {
    let (x_bytes, x_qs, spb) = if F::MIN { (36, 4, 2) } else { (34, 2, 1) };
    let off = offset::<F>();
    let mut acc = [vdupq_n_f32(0.0); G];
    let mut mins = [vdupq_n_f32(0.0); G];
    // `sdot`: each row's running sums, and the last pairwise reduction of each group.
    let mut run = [[vdupq_n_s32(0); LANES]; G];
    let mut prev = [vdupq_n_s32(0); G];
    for b in 0..nb {
        let yp = xp.add(b * x_bytes + x_qs) as *const i8;
        let y = [vld1q_s8(yp), vld1q_s8(yp.add(16))];
        let sx = sp.add(spb * b);
        let bias = vdupq_n_s32(off * *sump.add(b));
        for g in 0..G {
            let wb = w[g].map(|p| p.add(b * F::W_BYTES));
            let q = wb.map(|p| decode::<F>(p));
            let isum = if SDOT {
                for l in 0..LANES {
                    run[g][l] = dot_i8::<true>(run[g][l], q[l][0], y[0]);
                    run[g][l] = dot_i8::<true>(run[g][l], q[l][1], y[1]);
                }
                let r = &run[g];
                let total = vpaddq_s32(vpaddq_s32(r[0], r[1]), vpaddq_s32(r[2], r[3]));
                let s = vsubq_s32(total, prev[g]);
                prev[g] = total;
                s
            } else {
                block_sums::<false>(F::LANES, &q, &y)
            };
            let isum = if off != 0 { vsubq_s32(isum, bias) } else { isum };
            acc[g] = vfmaq_f32(acc[g], vcvtq_f32_s32(isum), vmulq_n_f32(row_scales(&wb, 0), *sx));
            if F::MIN {
                mins[g] = vfmaq_n_f32(mins[g], row_scales(&wb, 2), *sx.add(1));
            }
        }
    }
    let mut out = [[0f32; LANES]; G];
    for g in 0..G {
        let v = if F::MIN { vaddq_f32(acc[g], mins[g]) } else { acc[g] };
        vst1q_f32(out[g].as_mut_ptr(), v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant;
    use crate::simd::aarch64_neon_tiles::tests::{flavours, FORMATS};
    use crate::simd::tests::values;
    use crate::simd::{prepare_activations, scales_per_block, TileShape};

    /// `rows` quantized weight rows (one all zero, one at +-65000) and `tokens` activation rows with their prepared
    /// scales and sums.
    struct Case {
        wq: Vec<u8>,
        w_row_bytes: usize,
        xq: Vec<u8>,
        x_row_bytes: usize,
        nb: usize,
        spb: usize,
        scales: Vec<f32>,
        sums: Vec<i32>,
    }

    impl Case {
        fn new(ty: GgmlType, n: usize, rows: usize, tokens: usize, seed: u64, scale: f32) -> Case {
            let w_row_bytes = ty.row_bytes(n as u64).unwrap() as usize;
            let mut wq = vec![0u8; w_row_bytes * rows];
            for (r, row) in wq.chunks_exact_mut(w_row_bytes).enumerate() {
                let w = match r {
                    2 => vec![0.0; n],
                    5 => (0..n).map(|i| if i % 3 == 0 { 65000.0 } else { -65000.0 }).collect(),
                    _ => values(seed * 131 + r as u64, n, scale),
                };
                quant::quantize_row(ty, &w, row).unwrap();
            }
            let xt = quant::vec_dot_type(ty);
            let x_row_bytes = xt.row_bytes(n as u64).unwrap() as usize;
            let mut xq = vec![0u8; x_row_bytes * tokens];
            for (t, row) in xq.chunks_exact_mut(x_row_bytes).enumerate() {
                quant::quantize_row(xt, &values(seed * 977 + 50 + t as u64, n, scale), row).unwrap();
            }
            Case::prepared(ty, n, wq, xq)
        }

        /// Quantized weight rows `wq` and activation rows `xq` as they are, with the activations' prepared scales
        /// and sums.
        fn prepared(ty: GgmlType, n: usize, wq: Vec<u8>, xq: Vec<u8>) -> Case {
            let w_row_bytes = ty.row_bytes(n as u64).unwrap() as usize;
            let xt = quant::vec_dot_type(ty);
            let x_row_bytes = xt.row_bytes(n as u64).unwrap() as usize;
            let (nb, spb) = (n / ty.block_size(), scales_per_block(xt));
            let tokens = xq.len() / x_row_bytes;
            let (mut scales, mut sums) = (vec![0f32; tokens * nb * spb], vec![0i32; tokens * nb]);
            for (t, row) in xq.chunks_exact(x_row_bytes).enumerate() {
                prepare_activations(
                    xt,
                    row,
                    &mut scales[t * nb * spb..(t + 1) * nb * spb],
                    &mut sums[t * nb..(t + 1) * nb],
                );
            }
            if spb == 0 {
                sums.clear();
            }
            Case { wq, w_row_bytes, xq, x_row_bytes, nb, spb, scales, sums }
        }

        fn rows(&self) -> usize {
            self.wq.len() / self.w_row_bytes
        }

        fn tokens(&self) -> usize {
            self.xq.len() / self.x_row_bytes
        }

        fn activations(&self) -> ActivationRows<'_> {
            ActivationRows {
                bytes: &self.xq,
                row_bytes: self.x_row_bytes,
                blocks_per_row: self.nb,
                scales_per_block: self.spb,
                scales: &self.scales,
                sums: &self.sums,
            }
        }
    }

    /// `sum |w_i * x_i|` of the dequantized rows: the scale of the rounding differences between kernels.
    fn magnitude(ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
        let (mut wf, mut xf) = (vec![0f32; n], vec![0f32; n]);
        quant::dequantize_row(ty, w, &mut wf).unwrap();
        quant::dequantize_row(quant::vec_dot_type(ty), x, &mut xf).unwrap();
        wf.iter().zip(&xf).map(|(a, b)| (a * b).abs()).sum()
    }

    /// Asserts that the GEMV entry of `ty` (`sdot` or not) gives, for the first `rows` rows of `case` (each of the
    /// `rows` in `row_counts`) and every token, bit for bit the results of its tile run as batched prefill runs it
    /// (tiles of the kernel's rows by tokens), and that they agree with the scalar reference. Returns the results
    /// compared.
    fn assert_gemv_is_the_tile(
        ty: GgmlType,
        sdot: bool,
        n: usize,
        case: &Case,
        row_counts: &[usize],
        what: &str,
    ) -> usize {
        let (name, tile) = super::super::aarch64_neon_tiles::kernel(ty, sdot).unwrap();
        let gemv = kernel(ty, sdot).unwrap();
        let (total, tokens) = (case.rows(), case.tokens());
        let x = case.activations();
        // Batched prefill: tiles of up to the kernel's rows by tokens, results [row][token].
        let mut batched = vec![f32::NAN; total * tokens];
        let (rs, ts) = (tile.max_rows, tile.max_tokens);
        for r in (0..total).step_by(rs) {
            for t in (0..tokens).step_by(ts) {
                let shape = TileShape { rows: rs.min(total - r), tokens: ts.min(tokens - t), ld: tokens };
                let w = &case.wq[r * case.w_row_bytes..];
                (tile.run)(n, w, case.w_row_bytes, &x, t, shape, &mut batched[r * tokens + t..]);
            }
        }
        let mut checked = 0;
        for &rows in row_counts {
            for t in 0..tokens {
                let mut out = vec![f32::NAN; rows];
                gemv(n, &case.wq[..rows * case.w_row_bytes], case.w_row_bytes, &x.token(t), &mut out);
                for (r, got) in out.iter().enumerate() {
                    let want = batched[r * tokens + t];
                    assert_eq!(
                        want.to_bits(),
                        got.to_bits(),
                        "{ty} {name}: n={n} {what} rows {rows} row {r} token {t}: tile {want} gemv {got}"
                    );
                    let wr = &case.wq[r * case.w_row_bytes..(r + 1) * case.w_row_bytes];
                    let xr = &case.xq[t * case.x_row_bytes..(t + 1) * case.x_row_bytes];
                    let reference = quant::vec_dot(ty, n, wr, xr).unwrap();
                    let tol = 2e-5 * magnitude(ty, n, wr, xr) + 1e-6;
                    assert!(
                        (reference - got).abs() <= tol,
                        "{ty} {name}: n={n} {what}: reference {reference} gemv {got}"
                    );
                    checked += 1;
                }
            }
        }
        checked
    }

    /// The GEMV entry of every aarch64 tile kernel gives bit for bit the results of its tile run as batched prefill
    /// runs it, for every row count 1..=17 (whole and partial groups of eight and four), several row lengths (the
    /// 32-value formats up to 5632, the longest rows of the models) and every token; and it agrees with the scalar
    /// reference.
    #[test]
    fn aarch64_gemv_equals_the_tile_bit_for_bit() {
        let mut checked = 0;
        let row_counts: Vec<usize> = (1..=17).collect();
        for ty in FORMATS {
            for sdot in flavours() {
                let lengths: &[usize] = if ty.block_size() == 32 { &[32, 96, 256, 1536, 5632] } else { &[256, 768] };
                for (seed, &n) in lengths.iter().enumerate() {
                    for scale in [1e-3f32, 1.0, 50.0] {
                        let case = Case::new(ty, n, 17, 13, seed as u64 + 1, scale);
                        checked += assert_gemv_is_the_tile(ty, sdot, n, &case, &row_counts, &format!("scale {scale}"));
                    }
                }
            }
        }
        eprintln!("{checked} aarch64 gemv results checked on {}", crate::simd::cpu_path());
    }

    /// One Q4_K or Q6_K block at the extremes of its fields, by `kind` (0..6): every quant at its top or bottom
    /// (Q4_K nibbles 15 or 0; Q6_K six-bit quants 63 or 0, that is 31 or -32) or alternating, every six-bit scale
    /// and min 63 (Q4_K) or every scale 127 or -128 (Q6_K), super-block scales 1 or 0.5.
    fn extreme_k_block(ty: GgmlType, kind: usize) -> Vec<u8> {
        let one = 0x3C00u16.to_le_bytes();
        let half = 0x3800u16.to_le_bytes();
        let d = if kind % 3 == 2 { half } else { one };
        if ty == GgmlType::Q4_K {
            let mut b = vec![0u8; 144];
            b[..2].copy_from_slice(&d);
            b[2..4].copy_from_slice(&one);
            b[4..16].fill(if kind == 5 { 0x3F } else { 0xFF }); // six-bit scales and mins all 63
            b[16..].fill([0xFF, 0x00, 0xF0, 0x0F, 0xFF, 0x5A][kind]);
            b
        } else {
            let mut b = vec![0u8; 210];
            let (ql, qh) = [(0xFF, 0xFF), (0x00, 0x00), (0xF0, 0x33), (0x0F, 0xCC), (0xFF, 0xFF), (0x5A, 0xA5)][kind];
            b[..128].fill(ql);
            b[128..192].fill(qh);
            b[192..208].fill(if kind.is_multiple_of(2) { 127 } else { 0x80 });
            b[208..].copy_from_slice(&d);
            b
        }
    }

    /// The Q4_K and Q6_K GEMV entries (with `sdot`: the `asm!` loops of `aarch64_neon_gemv_k.rs`) on the row
    /// lengths of the models (256, 2048, 5632: one, eight and 22 super-blocks), with 1, 3, 4, 5, 8, 9 and 17 rows,
    /// on random rows and on blocks at the extremes of their fields against activations of all -128 and all 127
    /// (the largest integer sums; the bsums then -2048 and 2032): bit for bit the tile's results, and the reference's.
    #[test]
    fn aarch64_k_quant_gemv_equals_the_tile_on_long_rows_and_extreme_quants() {
        let row_counts = [1, 3, 4, 5, 8, 9, 17];
        let mut checked = 0;
        for ty in [GgmlType::Q4_K, GgmlType::Q6_K] {
            for sdot in flavours() {
                for (seed, n) in [256usize, 2048, 5632].into_iter().enumerate() {
                    let case = Case::new(ty, n, 17, 3, seed as u64 + 7, 1.0);
                    checked += assert_gemv_is_the_tile(ty, sdot, n, &case, &row_counts, "random");
                    // Extreme rows: each block of a row of another kind (row r, block b: kind (r + b) % 6).
                    let wq: Vec<u8> = (0..17)
                        .flat_map(|r| (0..n / 256).flat_map(move |b| extreme_k_block(ty, (r + b) % 6)))
                        .collect();
                    let xq: Vec<u8> = [-128i8, 127]
                        .iter()
                        .flat_map(|&q| {
                            let mut b = vec![0u8; 292];
                            b[..4].copy_from_slice(&1f32.to_le_bytes());
                            b[4..260].fill(q as u8);
                            for k in 0..16 {
                                b[260 + 2 * k..262 + 2 * k].copy_from_slice(&(16 * q as i16).to_le_bytes());
                            }
                            b.repeat(n / 256)
                        })
                        .collect();
                    let case = Case::prepared(ty, n, wq, xq);
                    checked += assert_gemv_is_the_tile(ty, sdot, n, &case, &row_counts, "extreme");
                }
            }
        }
        eprintln!("{checked} aarch64 K-quant gemv results checked on {}", crate::simd::cpu_path());
    }

    /// Q4_0, Q5_0 and Q8_0 at the extremes of their quants (Q4_0: nibbles 0 and 15, the ends of the unsigned
    /// decoding; Q5_0: every fifth bit 0 or every one 1 with nibbles 0 or 15, that is quants -16, -1, 0 and 15, and
    /// mixed bits; Q8_0: -128, -127, 127), activations -127 or 127 (with `sdot` also -128, which the quantizer never
    /// produces and the i16 lanes of the plain NEON path do not hold), unit scales, 17 rows (two groups of eight and
    /// a partial group of four, each row of a group another pattern): exactly the reference.
    #[test]
    fn aarch64_gemv_is_exact_at_the_extreme_quants() {
        let one = 0x3C00u16.to_le_bytes();
        let (n, rows) = (256, 17);
        // (quant byte fill, Q5_0's `qh` byte fill) per row pattern.
        let q5_0: &[(u8, u8)] = &[(0x00, 0x00), (0xFF, 0xFF), (0xFF, 0x00), (0x0F, 0xFF), (0xF0, 0x0F), (0xA5, 0x5A)];
        let patterns: [(GgmlType, &[(u8, u8)]); 3] = [
            (GgmlType::Q4_0, &[(0x00, 0), (0xFF, 0), (0x0F, 0), (0xF0, 0)]),
            (GgmlType::Q5_0, q5_0),
            (GgmlType::Q8_0, &[(0x80, 0), (0x81, 0), (0x7F, 0), (0x01, 0)]),
        ];
        for (ty, fills) in patterns {
            let block_bytes = ty.block_bytes();
            let row_bytes = block_bytes * n / 32;
            let wq: Vec<u8> = (0..rows)
                .flat_map(|r| {
                    let (quants, qh) = fills[r % fills.len()];
                    let mut b = vec![quants; block_bytes];
                    b[..2].copy_from_slice(&one);
                    if ty == GgmlType::Q5_0 {
                        b[2..6].fill(qh);
                    }
                    b.repeat(n / 32)
                })
                .collect();
            for q in [-128i8, -127, 127] {
                let mut xb = [q as u8; 34];
                xb[..2].copy_from_slice(&one);
                let xq = xb.repeat(n / 32);
                let (mut scales, mut sums) = (vec![0f32; n / 32], vec![0i32; n / 32]);
                prepare_activations(GgmlType::Q8_0, &xq, &mut scales, &mut sums);
                let x = ActivationRows {
                    bytes: &xq,
                    row_bytes: xq.len(),
                    blocks_per_row: n / 32,
                    scales_per_block: 1,
                    scales: &scales,
                    sums: &sums,
                };
                for sdot in flavours().into_iter().filter(|&sdot| sdot || q != -128) {
                    let mut out = vec![f32::NAN; rows];
                    kernel(ty, sdot).unwrap()(n, &wq, row_bytes, &x, &mut out);
                    for (r, got) in out.iter().enumerate() {
                        let want = quant::vec_dot(ty, n, &wq[r * row_bytes..(r + 1) * row_bytes], &xq).unwrap();
                        assert_eq!(want, *got, "{ty} sdot={sdot} row {r} activations {q}");
                        assert!(want != 0.0);
                    }
                }
            }
        }
    }

    /// A GEMV call checks its slices once: too short weights panic instead of reading past them.
    #[test]
    #[should_panic(expected = "weight rows too short")]
    fn aarch64_gemv_rejects_short_weights() {
        let case = Case::new(GgmlType::Q8_0, 64, 3, 1, 1, 1.0);
        let mut out = vec![0f32; 4];
        kernel(GgmlType::Q8_0, false).unwrap()(64, &case.wq, case.w_row_bytes, &case.activations(), &mut out);
    }
}
