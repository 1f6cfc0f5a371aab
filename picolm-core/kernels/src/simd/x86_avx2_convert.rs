//! x86-64 AVX2 + F16C row conversions: the quantizers of activations to the 8-bit dot-product formats (Q8_0, Q8_1,
//! Q8_K; run once per matmul on every input row, and for the KV cache's Q8_0 rows) and the F16 → f32 row
//! conversion (embeddings, KV cache reads). They produce exactly the bytes and values of the scalar references in
//! [`crate::quant`] (same scale, same rounding rule, same sums), only eight values at a time.

use std::arch::x86_64::*;

use super::tile_common::{Q8K_BSUMS, Q8K_QS, Q8_0_QS, Q8_1_QS};
use super::x86_common::fp16;
use crate::ggml_type::GgmlType;

/// Quantizes `src` into `dst` in format `ty` if an AVX2 quantizer exists for it; returns false otherwise. Call
/// only when AVX2/FMA/F16C are present. Panics when the lengths disagree (a caller bug).
pub fn quantize(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> bool {
    let (block, bytes) = (ty.block_size(), ty.block_bytes());
    if !matches!(ty, GgmlType::Q8_0 | GgmlType::Q8_1 | GgmlType::Q8_K) {
        return false;
    }
    assert!(src.len().is_multiple_of(block) && dst.len() == src.len() / block * bytes, "quantize: lengths disagree");
    for (x, b) in src.chunks_exact(block).zip(dst.chunks_exact_mut(bytes)) {
        // SAFETY: `avx2_available()` was checked by the caller; `x` holds one block of values and `b` one block of bytes
        // of `ty`, which is all the block functions read and write.
        unsafe {
            match ty {
                GgmlType::Q8_K => q8_k_block(x.as_ptr(), b),
                _ => q8_0_block(x.as_ptr(), b, ty == GgmlType::Q8_1),
            }
        }
    }
    true
}

#[inline(always)]
unsafe fn abs_ps(v: __m256) -> __m256 {
    _mm256_andnot_ps(_mm256_set1_ps(-0.0), v)
}

#[inline(always)]
unsafe fn hmax_ps(v: __m256) -> f32 {
    let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)))
}

/// Packs four vectors of eight i32 (each within i8 range) into 32 i8 in order.
#[inline(always)]
unsafe fn pack_i8(q: [__m256i; 4]) -> __m256i {
    let a = _mm256_packs_epi32(q[0], q[1]);
    let b = _mm256_packs_epi32(q[2], q[3]);
    let p = _mm256_packs_epi16(a, b);
    // packs works within 128-bit lanes: restore the order of the 32-bit groups.
    _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

#[inline(always)]
unsafe fn hsum_epi32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01)))
}

/// The largest magnitude of the values, or `None` when one is NaN or infinite (the callers then use the scalar
/// reference, so such blocks get exactly its bytes).
#[inline(always)]
unsafe fn finite_amax(v: &[__m256]) -> Option<f32> {
    let mut m = _mm256_setzero_ps();
    let mut bad = _mm256_setzero_ps();
    let inf = _mm256_set1_ps(f32::INFINITY);
    for &x in v {
        let a = abs_ps(x);
        // NaN compares unordered, infinity equal to infinity: either marks the block.
        bad = _mm256_or_ps(bad, _mm256_cmp_ps::<_CMP_NLT_UQ>(a, inf));
        m = _mm256_max_ps(m, a);
    }
    if _mm256_movemask_ps(bad) == 0 {
        Some(hmax_ps(m))
    } else {
        None
    }
}

/// ggml's `quantize_row_q8_0_ref` / `q8_1_ref` for one block of 32: `d = amax / 127`, `q = round(x / d)` with
/// halves away from zero (Rust's `f32::round`), and for Q8_1 `s = d * sum(q)`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_block(x: *const f32, b: &mut [u8], with_sum: bool) {
    let v = [_mm256_loadu_ps(x), _mm256_loadu_ps(x.add(8)), _mm256_loadu_ps(x.add(16)), _mm256_loadu_ps(x.add(24))];
    let Some(amax) = finite_amax(&v) else {
        let ty = if with_sum { GgmlType::Q8_1 } else { GgmlType::Q8_0 };
        crate::quant::quantize_row_unchecked(ty, std::slice::from_raw_parts(x, 32), b);
        return;
    };
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let idv = _mm256_set1_ps(id);
    let (half, one, lim) = (_mm256_set1_ps(0.5), _mm256_set1_ps(1.0), _mm256_set1_ps(127.0));
    let mut q = [_mm256_setzero_si256(); 4];
    for k in 0..4 {
        let s = _mm256_mul_ps(v[k], idv);
        let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(s);
        // |s - trunc(s)| >= 0.5: one more step away from zero (exact: the difference is representable).
        let away = _mm256_cmp_ps::<_CMP_GE_OQ>(abs_ps(_mm256_sub_ps(s, t)), half);
        let step = _mm256_and_ps(away, _mm256_or_ps(one, _mm256_and_ps(s, _mm256_set1_ps(-0.0))));
        let r = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(t, step), _mm256_sub_ps(_mm256_setzero_ps(), lim)), lim);
        q[k] = _mm256_cvttps_epi32(r);
    }
    let qs_at = if with_sum { Q8_1_QS } else { Q8_0_QS };
    _mm256_storeu_si256(b.as_mut_ptr().add(qs_at) as *mut __m256i, pack_i8(q));
    crate::quant::put_f16(b, 0, d);
    if with_sum {
        let sum = hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
        crate::quant::put_f16(b, 2, sum as f32 * d);
    }
}

/// ggml's `quantize_row_q8_K_ref` for one block of 256: the value of largest magnitude (the first one on ties)
/// sets `iscale = -128 / max`, `q = nearest_int(iscale * x)` capped at 127, `d = 1 / iscale`, and the 16 sums of
/// 16 quants. Blocks with NaN or infinities fall back to the scalar reference.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_k_block(x: *const f32, b: &mut [u8]) {
    let mut v = [_mm256_setzero_ps(); 32];
    for (i, vi) in v.iter_mut().enumerate() {
        *vi = _mm256_loadu_ps(x.add(8 * i));
    }
    let Some(amax) = finite_amax(&v) else {
        crate::quant::quantize_row_unchecked(GgmlType::Q8_K, std::slice::from_raw_parts(x, 256), b);
        return;
    };
    if amax == 0.0 {
        b.fill(0);
        return;
    }
    // The first value whose magnitude is amax.
    let target = _mm256_set1_ps(amax);
    let mut max = 0.0f32;
    for (i, vi) in v.iter().enumerate() {
        let hit = _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(abs_ps(*vi), target));
        if hit != 0 {
            max = *x.add(8 * i + hit.trailing_zeros() as usize);
            break;
        }
    }
    let iscale = -128.0 / max;
    let is = _mm256_set1_ps(iscale);
    let cap = _mm256_set1_epi32(127);
    let qs = b.as_mut_ptr().add(Q8K_QS);
    for g in 0..8 {
        let mut q = [_mm256_setzero_si256(); 4];
        for (k, qk) in q.iter_mut().enumerate() {
            // Round to nearest, ties to even (the default MXCSR mode), as `round_ties_even`.
            let r = _mm256_cvtps_epi32(_mm256_mul_ps(is, _mm256_loadu_ps(x.add(32 * g + 8 * k))));
            *qk = _mm256_min_epi32(r, cap);
        }
        _mm256_storeu_si256(qs.add(32 * g) as *mut __m256i, pack_i8(q));
        for h in 0..2 {
            let s = hsum_epi32(_mm256_add_epi32(q[2 * h], q[2 * h + 1])) as i16;
            b[Q8K_BSUMS + 2 * (2 * g + h)..Q8K_BSUMS + 2 + 2 * (2 * g + h)].copy_from_slice(&s.to_le_bytes());
        }
    }
    b[0..4].copy_from_slice(&(1.0 / iscale).to_le_bytes());
}

/// F16 values (little-endian bytes) to f32: exact, as `half`'s conversion, eight values per F16C instruction.
/// Panics when `src` does not hold `2 * dst.len()` bytes (a caller bug).
pub fn f16_to_f32(src: &[u8], dst: &mut [f32]) {
    assert_eq!(src.len(), 2 * dst.len(), "f16_to_f32: lengths disagree");
    // SAFETY: called only after `avx2_available()` confirmed F16C; every load and store below is inside `src` and
    // `dst` (eight values at a time, then the remainder one by one).
    unsafe { f16_to_f32_f16c(src, dst) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_to_f32_f16c(src: &[u8], dst: &mut [f32]) {
    let n8 = dst.len() / 8 * 8;
    for i in (0..n8).step_by(8) {
        let h = _mm_loadu_si128(src.as_ptr().add(2 * i) as *const __m128i);
        _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
    }
    for i in n8..dst.len() {
        dst[i] = fp16(src.as_ptr().add(2 * i));
    }
}
