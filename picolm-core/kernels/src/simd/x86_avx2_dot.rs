//! x86-64 AVX2 + FMA + F16C (Haswell and later, Zen) one-row dot products (kernel name `avx2-dot`): one weight row
//! times one activation row per call, for the formats without a tile kernel: F32, F16, BF16, Q5_0, Q5_1, Q2_K, Q3_K
//! and Q5_K. They are the matmul kernel of these formats (prefill and decode); integer multiply-accumulate of
//! quantized weight blocks with 8-bit activation blocks, as in ggml. (Q4_0, Q4_1, Q8_0, Q4_K and Q6_K have no
//! one-row kernel here: every AVX2 CPU runs the tiles of [`super::x86_avx2_tiles`] for them.)
//!
//! Every public function here is a safe wrapper that checks slice lengths and then calls a `#[target_feature]`
//! function; wrappers are only handed out by [`kernel`] after [`super::x86_common::avx2_available`] confirmed the CPU
//! features.

use std::arch::x86_64::*;

use super::tile_common::{Q8K_QS, Q8_0_BYTES, Q8_0_QS, Q8_1_BYTES, Q8_1_QS, Q8_K_BYTES};
use super::x86_common::{fp16, hsum_ps, load256, nibbles32};
use super::{blocks, q8k_bsum, q8k_d, VecDotFn};
use crate::ggml_type::GgmlType;

/// The AVX2 kernel for weights of type `ty`, if there is one. Call only when AVX2/FMA/F16C are present.
pub fn kernel(ty: GgmlType) -> Option<VecDotFn> {
    Some(match ty {
        GgmlType::F32 => dot_f32,
        GgmlType::F16 => dot_f16,
        GgmlType::BF16 => dot_bf16,
        GgmlType::Q5_0 => dot_q5_0,
        GgmlType::Q5_1 => dot_q5_1,
        GgmlType::Q2_K => dot_q2_k,
        GgmlType::Q3_K => dot_q3_k,
        GgmlType::Q5_K => dot_q5_k,
        _ => return None,
    })
}

/// Wraps the `#[target_feature]` kernel `$inner` of weights `$w` against activations `$x`, which takes `$step`
/// values per step (its format's block, or eight values of a float format).
macro_rules! safe_kernel {
    ($name:ident, $inner:ident, $w:expr, $x:expr) => {
        safe_kernel!($name, $inner, $w, $x, $w.block_size());
    };
    ($name:ident, $inner:ident, $w:expr, $x:expr, $step:expr) => {
        fn $name(n: usize, w: &[u8], x: &[u8]) -> f32 {
            let units = $step / $w.block_size();
            let nb = blocks(n, $step, w, units * $w.block_bytes(), x, units * $x.block_bytes());
            // SAFETY: handed out by `kernel` only after `avx2_available()` confirmed AVX2/FMA/F16C; `blocks` checked
            // that both slices hold `nb` whole steps, and the kernel reads only inside them.
            unsafe { $inner(nb, w.as_ptr(), x.as_ptr()) }
        }
    };
}

safe_kernel!(dot_f32, f32_avx2, GgmlType::F32, GgmlType::F32, 8);
safe_kernel!(dot_f16, f16_avx2, GgmlType::F16, GgmlType::F16, 8);
safe_kernel!(dot_bf16, bf16_avx2, GgmlType::BF16, GgmlType::BF16, 8);
safe_kernel!(dot_q5_0, q5_0_avx2, GgmlType::Q5_0, GgmlType::Q8_0);
safe_kernel!(dot_q5_1, q5_1_avx2, GgmlType::Q5_1, GgmlType::Q8_1);
safe_kernel!(dot_q2_k, q2_k_avx2, GgmlType::Q2_K, GgmlType::Q8_K);
safe_kernel!(dot_q3_k, q3_k_avx2, GgmlType::Q3_K, GgmlType::Q8_K);
safe_kernel!(dot_q5_k, q5_k_avx2, GgmlType::Q5_K, GgmlType::Q8_K);

/// Bytes of one block of the weight formats only these kernels read (the others are in [`super::tile_common`]).
const Q5_0_BYTES: usize = GgmlType::Q5_0.block_bytes();
const Q5_1_BYTES: usize = GgmlType::Q5_1.block_bytes();
const Q2_K_BYTES: usize = GgmlType::Q2_K.block_bytes();
const Q3_K_BYTES: usize = GgmlType::Q3_K.block_bytes();
const Q5_K_BYTES: usize = GgmlType::Q5_K.block_bytes();

/// Byte `k` is 0xFF when bit `k` of the little-endian u32 at `p` is set.
#[inline(always)]
unsafe fn bits32(p: *const u8) -> __m256i {
    let x = u32::from_le_bytes([*p, *p.add(1), *p.add(2), *p.add(3)]);
    let shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(x as i32), shuf);
    let bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
}

/// Sum of products of signed bytes, in 8 f32 lanes.
#[inline(always)]
unsafe fn dot_i8_ps(x: __m256i, y: __m256i) -> __m256 {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    let dot = _mm256_maddubs_epi16(ax, sy);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(dot, _mm256_set1_epi16(1)))
}

/// Sum of products of unsigned `x` and signed `y` bytes, in 8 f32 lanes.
#[inline(always)]
unsafe fn dot_u8i8_ps(x: __m256i, y: __m256i) -> __m256 {
    let dot = _mm256_maddubs_epi16(x, y);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(dot, _mm256_set1_epi16(1)))
}

// ---- float formats: 8 values per "block" ----

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_avx2(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let (w, x) = (w as *const f32, x as *const f32);
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 4 <= nb {
        for (k, a) in acc.iter_mut().enumerate() {
            let o = (i + k) * 8;
            *a = _mm256_fmadd_ps(_mm256_loadu_ps(w.add(o)), _mm256_loadu_ps(x.add(o)), *a);
        }
        i += 4;
    }
    while i < nb {
        acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(w.add(i * 8)), _mm256_loadu_ps(x.add(i * 8)), acc[0]);
        i += 1;
    }
    hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_avx2(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let mut acc = [_mm256_setzero_ps(); 4];
    let ld = |p: *const u8, i: usize| _mm256_cvtph_ps(_mm_loadu_si128(p.add(i * 16) as *const __m128i));
    let mut i = 0;
    while i + 4 <= nb {
        for (k, a) in acc.iter_mut().enumerate() {
            *a = _mm256_fmadd_ps(ld(w, i + k), ld(x, i + k), *a);
        }
        i += 4;
    }
    while i < nb {
        acc[0] = _mm256_fmadd_ps(ld(w, i), ld(x, i), acc[0]);
        i += 1;
    }
    hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16_avx2(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let ld = |p: *const u8, i: usize| {
        let v = _mm256_cvtepu16_epi32(_mm_loadu_si128(p.add(i * 16) as *const __m128i));
        _mm256_castsi256_ps(_mm256_slli_epi32(v, 16))
    };
    for i in 0..nb {
        acc = _mm256_fmadd_ps(ld(w, i), ld(x, i), acc);
    }
    hsum_ps(acc)
}

// ---- 32-wide formats against Q8_0 (d, qs[32]) or Q8_1 (d, s, qs[32]) ----

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_0_avx2(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        let (wb, xb) = (w.add(i * Q5_0_BYTES), x.add(i * Q8_0_BYTES));
        let d = _mm256_set1_ps(fp16(wb) * fp16(xb));
        // value = nibble + 16 * bit - 16: OR 0xF0 (i.e. subtract 16) where the fifth bit is clear.
        let hi = _mm256_andnot_si256(bits32(wb.add(2)), _mm256_set1_epi8(0xF0u8 as i8));
        let qw = _mm256_or_si256(nibbles32(wb.add(6)), hi);
        acc = _mm256_fmadd_ps(d, dot_i8_ps(qw, load256(xb.add(Q8_0_QS))), acc);
    }
    hsum_ps(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_1_avx2(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut mins = 0.0f32;
    for i in 0..nb {
        let (wb, xb) = (w.add(i * Q5_1_BYTES), x.add(i * Q8_1_BYTES));
        mins += fp16(wb.add(2)) * fp16(xb.add(2));
        let d = _mm256_set1_ps(fp16(wb) * fp16(xb));
        let hi = _mm256_and_si256(bits32(wb.add(4)), _mm256_set1_epi8(0x10));
        let qw = _mm256_or_si256(nibbles32(wb.add(8)), hi);
        acc = _mm256_fmadd_ps(d, dot_u8i8_ps(qw, load256(xb.add(Q8_1_QS))), acc);
    }
    hsum_ps(acc) + mins
}

// ---- K-quants against Q8_K (f32 d, qs[256], bsums[16] i16) ----

/// The 6-bit scales and mins of a Q4_K/Q5_K block (ggml's `get_scale_min_k4` for j = 0..8).
#[inline(always)]
unsafe fn scales_mins_k4(q: *const u8) -> ([u8; 8], [u8; 8]) {
    let q = std::slice::from_raw_parts(q, 12);
    let (mut sc, mut m) = ([0u8; 8], [0u8; 8]);
    for j in 0..8 {
        if j < 4 {
            sc[j] = q[j] & 63;
            m[j] = q[j + 4] & 63;
        } else {
            sc[j] = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
            m[j] = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }
    (sc, m)
}

/// Multiplies 16 i16 products by two group scales (lanes 0..7 by `lo`, 8..15 by `hi`) and sums pairs to i32.
#[inline(always)]
unsafe fn scale_pairs(p: __m256i, lo: i32, hi: i32) -> __m256i {
    _mm256_madd_epi16(p, _mm256_set_m128i(_mm_set1_epi16(hi as i16), _mm_set1_epi16(lo as i16)))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q2_k_avx2(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut acc_m = 0.0f32;
    let m3 = _mm256_set1_epi8(3);
    for i in 0..nb {
        let (wb, xb) = (w.add(i * Q2_K_BYTES), x.add(i * Q8_K_BYTES));
        let dx = q8k_d(xb);
        let d = fp16(wb.add(80)) * dx;
        let dmin = fp16(wb.add(82)) * dx;
        let scales = std::slice::from_raw_parts(wb, 16);
        let mut summ = 0i32;
        for (g, &sc) in scales.iter().enumerate() {
            summ += (sc >> 4) as i32 * q8k_bsum(xb, g);
        }
        acc_m += dmin * summ as f32;
        let mut sumi = _mm256_setzero_si256();
        for half in 0..2 {
            let bits = load256(wb.add(16 + 32 * half));
            for s in 0..4 {
                let q = _mm256_and_si256(_mm256_srl_epi16(bits, _mm_cvtsi32_si128(2 * s as i32)), m3);
                let y = load256(xb.add(Q8K_QS + 128 * half + 32 * s));
                let g = half * 8 + 2 * s;
                let p = _mm256_maddubs_epi16(q, y);
                sumi = _mm256_add_epi32(sumi, scale_pairs(p, (scales[g] & 0xF) as i32, (scales[g + 1] & 0xF) as i32));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc) - acc_m
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q3_k_avx2(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let m3 = _mm256_set1_epi8(3);
    let four = _mm256_set1_epi8(4);
    for i in 0..nb {
        let (wb, xb) = (w.add(i * Q3_K_BYTES), x.add(i * Q8_K_BYTES));
        let d = fp16(wb.add(108)) * q8k_d(xb);
        let scales = crate::quant::q3_k_scales(std::slice::from_raw_parts(wb.add(96), 12));
        let hm = load256(wb);
        let mut sumi = _mm256_setzero_si256();
        for half in 0..2 {
            let bits = load256(wb.add(32 + 32 * half));
            for s in 0..4 {
                let low = _mm256_and_si256(_mm256_srl_epi16(bits, _mm_cvtsi32_si128(2 * s as i32)), m3);
                let bit = _mm256_set1_epi8((1u8 << (half * 4 + s)) as i8);
                // 4 where the high bit is clear: q = low - 4 there, q = low elsewhere.
                let sub = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), _mm256_setzero_si256()), four);
                let y = load256(xb.add(Q8K_QS + 128 * half + 32 * s));
                let p = _mm256_sub_epi16(_mm256_maddubs_epi16(low, y), _mm256_maddubs_epi16(sub, y));
                let g = half * 8 + 2 * s;
                sumi = _mm256_add_epi32(sumi, scale_pairs(p, scales[g], scales[g + 1]));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_k_avx2(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut acc_m = 0.0f32;
    let m4 = _mm256_set1_epi8(0x0F);
    let one = _mm256_set1_epi8(1);
    for i in 0..nb {
        let (wb, xb) = (w.add(i * Q5_K_BYTES), x.add(i * Q8_K_BYTES));
        let dx = q8k_d(xb);
        let d = fp16(wb) * dx;
        let dmin = fp16(wb.add(2)) * dx;
        let (sc, m) = scales_mins_k4(wb.add(4));
        let mut summ = 0i32;
        for j in 0..8 {
            summ += m[j] as i32 * (q8k_bsum(xb, 2 * j) + q8k_bsum(xb, 2 * j + 1));
        }
        acc_m += dmin * summ as f32;
        let qh = load256(wb.add(16));
        let (qs, q8) = (wb.add(48), xb.add(Q8K_QS));
        let mut sumi = _mm256_setzero_si256();
        for j in 0..4 {
            let bits = load256(qs.add(32 * j));
            let hl = _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j as i32)), one), 4);
            let hh =
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, _mm_cvtsi32_si128(2 * j as i32 + 1)), one), 4);
            let lo = _mm256_or_si256(_mm256_and_si256(bits, m4), hl);
            let hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), m4), hh);
            let pl = _mm256_maddubs_epi16(lo, load256(q8.add(64 * j)));
            let ph = _mm256_maddubs_epi16(hi, load256(q8.add(64 * j + 32)));
            let pl = _mm256_madd_epi16(pl, _mm256_set1_epi16(sc[2 * j] as i16));
            let ph = _mm256_madd_epi16(ph, _mm256_set1_epi16(sc[2 * j + 1] as i16));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(pl, ph));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc) - acc_m
}
