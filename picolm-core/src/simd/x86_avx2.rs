//! x86-64 kernels using AVX2 + FMA + F16C (Haswell and later, Zen): integer multiply-accumulate of quantized weight
//! blocks with 8-bit activation blocks, as in ggml.
//!
//! Every public function here is a safe wrapper that checks slice lengths and then calls a `#[target_feature]`
//! function; wrappers are only handed out by [`kernel`] after [`available`] confirmed the CPU features.

use std::arch::x86_64::*;

use super::{blocks, q8k_bsum, q8k_d, VecDotFn};
use crate::ggml_type::GgmlType;

/// Whether this CPU has AVX2, FMA and F16C.
pub fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
}

/// The AVX2 kernel for weights of type `ty`, if there is one. Call only when [`available`] is true.
pub fn kernel(ty: GgmlType) -> Option<VecDotFn> {
    Some(match ty {
        GgmlType::F32 => dot_f32,
        GgmlType::F16 => dot_f16,
        GgmlType::BF16 => dot_bf16,
        GgmlType::Q4_0 => dot_q4_0,
        GgmlType::Q4_1 => dot_q4_1,
        GgmlType::Q5_0 => dot_q5_0,
        GgmlType::Q5_1 => dot_q5_1,
        GgmlType::Q8_0 => dot_q8_0,
        GgmlType::Q2_K => dot_q2_k,
        GgmlType::Q3_K => dot_q3_k,
        GgmlType::Q4_K => dot_q4_k,
        GgmlType::Q5_K => dot_q5_k,
        GgmlType::Q6_K => dot_q6_k,
        _ => return None,
    })
}

macro_rules! safe_kernel {
    ($name:ident, $inner:ident, $block:expr, $wb:expr, $xb:expr) => {
        fn $name(n: usize, w: &[u8], x: &[u8]) -> f32 {
            let nb = blocks(n, $block, w, $wb, x, $xb);
            // SAFETY: handed out by `kernel` only after `available()` confirmed AVX2/FMA/F16C; `blocks` checked that
            // both slices hold `nb` whole blocks, and the kernel reads only inside those blocks.
            unsafe { $inner(nb, w.as_ptr(), x.as_ptr()) }
        }
    };
}

safe_kernel!(dot_f32, f32_avx2, 8, 32, 32);
safe_kernel!(dot_f16, f16_avx2, 8, 16, 16);
safe_kernel!(dot_bf16, bf16_avx2, 8, 16, 16);
safe_kernel!(dot_q4_0, q4_0_avx2, 32, 18, 34);
safe_kernel!(dot_q4_1, q4_1_avx2, 32, 20, 36);
safe_kernel!(dot_q5_0, q5_0_avx2, 32, 22, 34);
safe_kernel!(dot_q5_1, q5_1_avx2, 32, 24, 36);
safe_kernel!(dot_q8_0, q8_0_avx2, 32, 34, 34);
safe_kernel!(dot_q2_k, q2_k_avx2, 256, 84, 292);
safe_kernel!(dot_q3_k, q3_k_avx2, 256, 110, 292);
safe_kernel!(dot_q4_k, q4_k_avx2, 256, 144, 292);
safe_kernel!(dot_q5_k, q5_k_avx2, 256, 176, 292);
safe_kernel!(dot_q6_k, q6_k_avx2, 256, 210, 292);

/// F16 values (little-endian bytes) to f32: exact, as `half`'s conversion, eight values per F16C instruction.
/// Panics when `src` does not hold `2 * dst.len()` bytes (a caller bug).
pub fn f16_to_f32(src: &[u8], dst: &mut [f32]) {
    assert_eq!(src.len(), 2 * dst.len(), "f16_to_f32: lengths disagree");
    // SAFETY: handed out only after `available()` confirmed F16C; every load and store below is inside `src` and
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

// ---- helpers (all inlined into the target-feature functions; shared with `x86_tiles`) ----

#[inline(always)]
pub(super) unsafe fn rd_u16(p: *const u8) -> u16 {
    u16::from_le_bytes([*p, *p.add(1)])
}

#[inline(always)]
pub(super) unsafe fn fp16(p: *const u8) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(rd_u16(p) as i32)))
}

#[inline(always)]
pub(super) unsafe fn load256(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

#[inline(always)]
pub(super) unsafe fn hsum_ps(x: __m256) -> f32 {
    let r = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
    let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    let r = _mm_add_ss(r, _mm_movehdup_ps(r));
    _mm_cvtss_f32(r)
}

/// 32 nibbles → 32 bytes: low nibbles of the 16 bytes first (values 0..15), then the high nibbles (16..31).
#[inline(always)]
pub(super) unsafe fn nibbles32(p: *const u8) -> __m256i {
    let tmp = _mm_loadu_si128(p as *const __m128i);
    let both = _mm256_set_m128i(_mm_srli_epi16(tmp, 4), tmp);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
}

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

/// The products `w.d * x.d` of four consecutive blocks whose f16 scales sit at offset 0 of blocks of
/// `wb`/`xb` bytes: one F16C conversion for all eight halves instead of eight scalar ones.
#[inline(always)]
unsafe fn scale_products4(w: *const u8, wb: usize, x: *const u8, xb: usize) -> [f32; 4] {
    let h = |p: *const u8| rd_u16(p) as i16;
    let halves = _mm_set_epi16(
        h(x.add(3 * xb)),
        h(x.add(2 * xb)),
        h(x.add(xb)),
        h(x),
        h(w.add(3 * wb)),
        h(w.add(2 * wb)),
        h(w.add(wb)),
        h(w),
    );
    let f = _mm256_cvtph_ps(halves);
    let d = _mm_mul_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1));
    let mut out = [0f32; 4];
    _mm_storeu_ps(out.as_mut_ptr(), d);
    out
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_0_avx2(nb: usize, w: *const u8, x: *const u8) -> f32 {
    // Four blocks per step with independent accumulators: the FMA chains overlap and the scale conversions are
    // batched.
    let mut acc = [_mm256_setzero_ps(); 4];
    let eight = _mm256_set1_epi8(8);
    let mut i = 0;
    while i + 4 <= nb {
        let (wb, xb) = (w.add(i * 18), x.add(i * 34));
        let d = scale_products4(wb, 18, xb, 34);
        for k in 0..4 {
            let qw = _mm256_sub_epi8(nibbles32(wb.add(18 * k + 2)), eight);
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d[k]), dot_i8_ps(qw, load256(xb.add(34 * k + 2))), acc[k]);
        }
        i += 4;
    }
    while i < nb {
        let (wb, xb) = (w.add(i * 18), x.add(i * 34));
        let d = _mm256_set1_ps(fp16(wb) * fp16(xb));
        let qw = _mm256_sub_epi8(nibbles32(wb.add(2)), eight);
        acc[0] = _mm256_fmadd_ps(d, dot_i8_ps(qw, load256(xb.add(2))), acc[0]);
        i += 1;
    }
    hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1_avx2(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut mins = 0.0f32;
    let mut i = 0;
    while i + 4 <= nb {
        let (wb, xb) = (w.add(i * 20), x.add(i * 36));
        let d = scale_products4(wb, 20, xb, 36);
        let m = scale_products4(wb.add(2), 20, xb.add(2), 36);
        mins += m[0] + m[1] + m[2] + m[3];
        for k in 0..4 {
            let p = dot_u8i8_ps(nibbles32(wb.add(20 * k + 4)), load256(xb.add(36 * k + 4)));
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d[k]), p, acc[k]);
        }
        i += 4;
    }
    while i < nb {
        let (wb, xb) = (w.add(i * 20), x.add(i * 36));
        mins += fp16(wb.add(2)) * fp16(xb.add(2));
        let d = _mm256_set1_ps(fp16(wb) * fp16(xb));
        acc[0] = _mm256_fmadd_ps(d, dot_u8i8_ps(nibbles32(wb.add(4)), load256(xb.add(4))), acc[0]);
        i += 1;
    }
    hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]))) + mins
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_0_avx2(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        let (wb, xb) = (w.add(i * 22), x.add(i * 34));
        let d = _mm256_set1_ps(fp16(wb) * fp16(xb));
        // value = nibble + 16 * bit - 16: OR 0xF0 (i.e. subtract 16) where the fifth bit is clear.
        let hi = _mm256_andnot_si256(bits32(wb.add(2)), _mm256_set1_epi8(0xF0u8 as i8));
        let qw = _mm256_or_si256(nibbles32(wb.add(6)), hi);
        acc = _mm256_fmadd_ps(d, dot_i8_ps(qw, load256(xb.add(2))), acc);
    }
    hsum_ps(acc)
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_1_avx2(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut mins = 0.0f32;
    for i in 0..nb {
        let (wb, xb) = (w.add(i * 24), x.add(i * 36));
        mins += fp16(wb.add(2)) * fp16(xb.add(2));
        let d = _mm256_set1_ps(fp16(wb) * fp16(xb));
        let hi = _mm256_and_si256(bits32(wb.add(4)), _mm256_set1_epi8(0x10));
        let qw = _mm256_or_si256(nibbles32(wb.add(8)), hi);
        acc = _mm256_fmadd_ps(d, dot_u8i8_ps(qw, load256(xb.add(4))), acc);
    }
    hsum_ps(acc) + mins
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_avx2(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i + 4 <= nb {
        let (wb, xb) = (w.add(i * 34), x.add(i * 34));
        let d = scale_products4(wb, 34, xb, 34);
        for k in 0..4 {
            let p = dot_i8_ps(load256(wb.add(34 * k + 2)), load256(xb.add(34 * k + 2)));
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(d[k]), p, acc[k]);
        }
        i += 4;
    }
    while i < nb {
        let (wb, xb) = (w.add(i * 34), x.add(i * 34));
        let d = _mm256_set1_ps(fp16(wb) * fp16(xb));
        acc[0] = _mm256_fmadd_ps(d, dot_i8_ps(load256(wb.add(2)), load256(xb.add(2))), acc[0]);
        i += 1;
    }
    hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])))
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

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_k_avx2(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let mut acc_m = 0.0f32;
    let m4 = _mm256_set1_epi8(0x0F);
    for i in 0..nb {
        let (wb, xb) = (w.add(i * 144), x.add(i * 292));
        let dx = q8k_d(xb);
        let d = fp16(wb) * dx;
        let dmin = fp16(wb.add(2)) * dx;
        let (sc, m) = scales_mins_k4(wb.add(4));
        let mut summ = 0i32;
        for j in 0..8 {
            summ += m[j] as i32 * (q8k_bsum(xb, 2 * j) + q8k_bsum(xb, 2 * j + 1));
        }
        acc_m += dmin * summ as f32;
        let (qs, q8) = (wb.add(16), xb.add(4));
        let mut sumi = _mm256_setzero_si256();
        for j in 0..4 {
            let bits = load256(qs.add(32 * j));
            let lo = _mm256_and_si256(bits, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
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

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6_k_avx2(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let mut acc = _mm256_setzero_ps();
    let m4 = _mm256_set1_epi8(0x0F);
    let m2 = _mm256_set1_epi8(0x03);
    let m32 = _mm256_set1_epi8(32);
    for i in 0..nb {
        let (wb, xb) = (w.add(i * 210), x.add(i * 292));
        let d = fp16(wb.add(208)) * q8k_d(xb);
        let scales = wb.add(192) as *const i8;
        let mut sumi = _mm256_setzero_si256();
        for half in 0..2 {
            let ql = wb.add(64 * half);
            let qh = load256(wb.add(128 + 32 * half));
            let q8 = xb.add(4 + 128 * half);
            let sc = scales.add(8 * half);
            let b1 = load256(ql);
            let b2 = load256(ql.add(32));
            let h = [
                _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4),
            ];
            let q = [
                _mm256_or_si256(_mm256_and_si256(b1, m4), h[0]),
                _mm256_or_si256(_mm256_and_si256(b2, m4), h[1]),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4), h[2]),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4), h[3]),
            ];
            for (k, qk) in q.iter().enumerate() {
                let y = load256(q8.add(32 * k));
                // (q - 32) * y = q * y - 32 * y, both in i16 without overflow.
                let p = _mm256_sub_epi16(_mm256_maddubs_epi16(*qk, y), _mm256_maddubs_epi16(m32, y));
                let s =
                    _mm256_set_m128i(_mm_set1_epi16(*sc.add(2 * k + 1) as i16), _mm_set1_epi16(*sc.add(2 * k) as i16));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, s));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    hsum_ps(acc)
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
        let (wb, xb) = (w.add(i * 84), x.add(i * 292));
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
                let y = load256(xb.add(4 + 128 * half + 32 * s));
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
        let (wb, xb) = (w.add(i * 110), x.add(i * 292));
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
                let y = load256(xb.add(4 + 128 * half + 32 * s));
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
        let (wb, xb) = (w.add(i * 176), x.add(i * 292));
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
        let (qs, q8) = (wb.add(48), xb.add(4));
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
