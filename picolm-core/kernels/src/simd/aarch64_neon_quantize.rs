//! aarch64 NEON quantizers of activations to the 8-bit dot-product formats (Q8_0, Q8_1, Q8_K): run once per matmul
//! on every input row (and for the KV cache's Q8_0 rows). They write exactly the bytes of the scalar references in
//! [`crate::quant`] (same scale, same rounding rule, same sums), four values per instruction instead of one value
//! per dozen instructions.
//!
//! Exactness: a block whose largest magnitude is below [`NORMAL_AMAX`] (zero excepted), infinite or NaN goes to the
//! scalar reference, so the vector path only sees scales whose reciprocals are finite normal numbers; then every
//! scaled value lies within a few ulps of +-127 (Q8_0/Q8_1) or of [-128, 128] (Q8_K), its rounding (`fcvtas`: to
//! nearest, ties away from zero, as `f32::round`; `fcvtns`: ties to even, as `round_ties_even`) is exact, and the
//! references' clamps have nothing to clamp but Q8_K's 128 -> 127.

use std::arch::aarch64::*;

use super::tile_common::{Q8K_BSUMS, Q8K_QS, Q8_0_QS, Q8_1_QS};
use crate::ggml_type::GgmlType;

/// Blocks whose largest magnitude is smaller than this (and not zero) use the scalar reference: their scales'
/// reciprocals could overflow or lose precision (`-128 / max` overflows below ~3.8e-37).
const NORMAL_AMAX: f32 = 1e-30;

/// Quantizes `src` into `dst` in format `ty` if a NEON quantizer exists for it; returns false otherwise. Panics when
/// the lengths disagree (a caller bug).
pub(super) fn quantize(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> bool {
    if !matches!(ty, GgmlType::Q8_0 | GgmlType::Q8_1 | GgmlType::Q8_K) {
        return false;
    }
    let (block, bytes) = (ty.block_size(), ty.block_bytes());
    assert!(src.len().is_multiple_of(block) && dst.len() == src.len() / block * bytes, "quantize: lengths disagree");
    for (x, b) in src.chunks_exact(block).zip(dst.chunks_exact_mut(bytes)) {
        // SAFETY: NEON is mandatory on aarch64; `x` holds one block of values and `b` one block of bytes of `ty`,
        // which is all the block functions read and write.
        unsafe {
            match ty {
                GgmlType::Q8_K => q8_k_block(x, b),
                _ => q8_0_block(x, b, ty == GgmlType::Q8_1),
            }
        }
    }
    true
}

/// The largest magnitude of `N` vectors of values (NaN if one is NaN: `fmax` propagates it).
#[inline(always)]
unsafe fn amax<const N: usize>(v: &[float32x4_t; N]) -> f32 {
    let mut m = vabsq_f32(v[0]);
    for x in &v[1..] {
        m = vmaxq_f32(m, vabsq_f32(*x));
    }
    vmaxvq_f32(m)
}

/// Whether a block of largest magnitude `amax` takes the vector path (see the module comment).
#[inline(always)]
fn vector_path(amax: f32) -> bool {
    amax == 0.0 || (amax >= NORMAL_AMAX && amax.is_finite())
}

/// Narrows eight vectors of i32 (each within i8 range) into 32 bytes in order.
#[inline(always)]
unsafe fn narrow(q: &[int32x4_t; 8]) -> [int8x16_t; 2] {
    let h = [0, 2, 4, 6].map(|k| vqmovn_high_s32(vqmovn_s32(q[k]), q[k + 1]));
    [vqmovn_high_s16(vqmovn_s16(h[0]), h[1]), vqmovn_high_s16(vqmovn_s16(h[2]), h[3])]
}

/// ggml's `quantize_row_q8_0_ref` / `q8_1_ref` for one block of 32: `d = amax / 127`, `q = round(x / d)` with halves
/// away from zero, and for Q8_1 `s = d * sum(q)`.
#[target_feature(enable = "neon")]
unsafe fn q8_0_block(x: &[f32], b: &mut [u8], with_sum: bool) {
    let p = x.as_ptr();
    let v: [float32x4_t; 8] = std::array::from_fn(|k| vld1q_f32(p.add(4 * k)));
    let amax = amax(&v);
    if !vector_path(amax) {
        let ty = if with_sum { GgmlType::Q8_1 } else { GgmlType::Q8_0 };
        return crate::quant::quantize_row_unchecked(ty, x, b);
    }
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let q = narrow(&v.map(|v| vcvtaq_s32_f32(vmulq_n_f32(v, id))));
    let qs = b.as_mut_ptr().add(if with_sum { Q8_1_QS } else { Q8_0_QS }) as *mut i8;
    vst1q_s8(qs, q[0]);
    vst1q_s8(qs.add(16), q[1]);
    crate::quant::put_f16(b, 0, d);
    if with_sum {
        let sum = vaddlvq_s8(q[0]) as i32 + vaddlvq_s8(q[1]) as i32;
        crate::quant::put_f16(b, 2, sum as f32 * d);
    }
}

/// ggml's `quantize_row_q8_K_ref` for one block of 256: the value of largest magnitude (the first one on ties) sets
/// `iscale = -128 / max`, `q = nearest_int(iscale * x)` capped at 127, `d = 1 / iscale`, and the 16 sums of 16
/// quants.
#[target_feature(enable = "neon")]
unsafe fn q8_k_block(x: &[f32], b: &mut [u8]) {
    let p = x.as_ptr();
    let v: [float32x4_t; 64] = std::array::from_fn(|k| vld1q_f32(p.add(4 * k)));
    let amax = amax(&v);
    if !vector_path(amax) {
        return crate::quant::quantize_row_unchecked(GgmlType::Q8_K, x, b);
    }
    if amax == 0.0 {
        b.fill(0);
        return;
    }
    // The first value whose magnitude is amax.
    let target = vdupq_n_f32(amax);
    let k = v.iter().position(|v| vmaxvq_u32(vceqq_f32(vabsq_f32(*v), target)) != 0).unwrap_or(0);
    let max = x[4 * k..4 * k + 4].iter().copied().find(|v| v.abs() == amax).unwrap_or(amax);
    let iscale = -128.0 / max;
    let cap = vdupq_n_s32(127);
    let qs = b.as_mut_ptr().add(Q8K_QS) as *mut i8;
    let mut sums = [0i16; 16];
    for g in 0..8 {
        let q: [int32x4_t; 8] =
            std::array::from_fn(|k| vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(v[8 * g + k], iscale)), cap));
        let q = narrow(&q);
        vst1q_s8(qs.add(32 * g), q[0]);
        vst1q_s8(qs.add(32 * g + 16), q[1]);
        sums[2 * g] = vaddlvq_s8(q[0]);
        sums[2 * g + 1] = vaddlvq_s8(q[1]);
    }
    let bs = b.as_mut_ptr().add(Q8K_BSUMS) as *mut i16;
    vst1q_s16(bs, vld1q_s16(sums.as_ptr()));
    vst1q_s16(bs.add(8), vld1q_s16(sums.as_ptr().add(8)));
    b[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant;
    use crate::simd::tests::values;

    /// The NEON quantizers give the reference bytes at the edges of their vector path: largest magnitudes around
    /// [`NORMAL_AMAX`], subnormal and huge ones, negative and positive infinity, NaN, ties of both rounding rules,
    /// and a largest magnitude reached by both signs (the first one sets Q8_K's sign).
    #[test]
    fn aarch64_quantizers_give_the_reference_bytes_at_the_edges() {
        for ty in [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K] {
            let n = 512;
            let mut cases: Vec<Vec<f32>> = Vec::new();
            for scale in [1e-45f32, 1e-38, 3e-37, 4e-37, 1e-31, 1e-30, 2e-30, 1e-3, 1.0, 1e30, 3e38] {
                cases.push(values(7, n, 1.0).iter().map(|v| v * scale).collect());
            }
            for special in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MIN_POSITIVE, -0.0] {
                let mut c = values(8, n, 1.0);
                c[5] = special;
                c[300] = special;
                cases.push(c);
            }
            cases.push(
                (0..n)
                    .map(|i| {
                        if i % 3 == 0 {
                            -4.0
                        } else if i % 3 == 1 {
                            4.0
                        } else {
                            1.0
                        }
                    })
                    .collect(),
            );
            cases.push((0..n).map(|i| if i % 32 == 0 { -127.0 } else { (i % 17) as f32 - 8.5 }).collect());
            cases.push((0..n).map(|i| if i % 256 == 9 { 16.0 } else { ((i % 29) as f32 - 14.0) / 16.0 }).collect());
            for (c, x) in cases.iter().enumerate() {
                let bytes = ty.row_bytes(n as u64).unwrap() as usize;
                let (mut want, mut got) = (vec![0u8; bytes], vec![0xA5u8; bytes]);
                quant::quantize_row_unchecked(ty, x, &mut want);
                assert!(quantize(ty, x, &mut got));
                assert_eq!(want, got, "{ty}: case {c} differs from the reference");
            }
        }
        assert!(!quantize(GgmlType::Q4_0, &[0.0; 32], &mut [0u8; 18]));
    }
}
