//! aarch64 kernels using NEON (every 64-bit Raspberry Pi), with the `sdot` instruction where the CPU has the
//! dot-product extension (Pi 5's Cortex-A76; not the Cortex-A53/A72 of the Zero 2W, 3 and 4).
//!
//! `sdot` is emitted with inline assembly (`.arch_extension dotprod`) because its intrinsic is not stable in Rust;
//! the `sdot` variants are only handed out when `is_aarch64_feature_detected!("dotprod")` is true. Every public
//! function is a safe wrapper that checks slice lengths first.

use std::arch::aarch64::*;

use super::{blocks, q8k_bsum, q8k_d, VecDotFn};
use crate::ggml_type::GgmlType;
use crate::half_float::{f16_to_f32, f32_to_f16};

/// The 4x4 transpose of 32-bit lanes: vector `r`, lane `i` = lane `r` of `v[i]` (`trn1`/`trn2` of 32-bit, then of
/// 64-bit lanes). Used for results (a tile's per-token vectors to rows) and for weights (four rows' 4-byte groups
/// interleaved).
#[inline(always)]
pub(crate) fn transpose_f32(v: [float32x4_t; 4]) -> [float32x4_t; 4] {
    // SAFETY: register operations only; NEON is mandatory on aarch64.
    unsafe {
        let (t0, t1) = (vtrn1q_f32(v[0], v[1]), vtrn2q_f32(v[0], v[1])); // a0 b0 a2 b2, a1 b1 a3 b3
        let (t2, t3) = (vtrn1q_f32(v[2], v[3]), vtrn2q_f32(v[2], v[3])); // c0 d0 c2 d2, c1 d1 c3 d3
        let (d, f) = (vreinterpretq_f64_f32, vreinterpretq_f32_f64);
        [
            f(vtrn1q_f64(d(t0), d(t2))),
            f(vtrn1q_f64(d(t1), d(t3))),
            f(vtrn2q_f64(d(t0), d(t2))),
            f(vtrn2q_f64(d(t1), d(t3))),
        ]
    }
}

/// Whether the CPU has the dot-product extension.
pub fn has_dotprod() -> bool {
    std::arch::is_aarch64_feature_detected!("dotprod")
}

/// The NEON kernel for weights of type `ty`, if there is one (NEON is part of every aarch64 CPU).
pub fn kernel(ty: GgmlType) -> Option<VecDotFn> {
    let dot = has_dotprod();
    Some(match ty {
        GgmlType::F32 => dot_f32,
        GgmlType::F16 => dot_f16,
        GgmlType::Q4_0 if dot => dot_q4_0_sdot,
        GgmlType::Q4_0 => dot_q4_0,
        GgmlType::Q4_1 if dot => dot_q4_1_sdot,
        GgmlType::Q4_1 => dot_q4_1,
        GgmlType::Q5_0 if dot => dot_q5_0_sdot,
        GgmlType::Q5_0 => dot_q5_0,
        GgmlType::Q5_1 if dot => dot_q5_1_sdot,
        GgmlType::Q5_1 => dot_q5_1,
        GgmlType::Q5_K if dot => dot_q5_k_sdot,
        GgmlType::Q5_K => dot_q5_k,
        GgmlType::BF16 => dot_bf16,
        GgmlType::Q2_K if dot => dot_q2_k_sdot,
        GgmlType::Q2_K => dot_q2_k,
        GgmlType::Q3_K if dot => dot_q3_k_sdot,
        GgmlType::Q3_K => dot_q3_k,
        GgmlType::Q8_0 if dot => dot_q8_0_sdot,
        GgmlType::Q8_0 => dot_q8_0,
        GgmlType::Q4_K if dot => dot_q4_k_sdot,
        GgmlType::Q4_K => dot_q4_k,
        GgmlType::Q6_K if dot => dot_q6_k_sdot,
        GgmlType::Q6_K => dot_q6_k,
        _ => return None,
    })
}

macro_rules! safe_kernel {
    ($name:ident, $inner:ident, $dot:expr, $block:expr, $wb:expr, $xb:expr) => {
        fn $name(n: usize, w: &[u8], x: &[u8]) -> f32 {
            let nb = blocks(n, $block, w, $wb, x, $xb);
            // SAFETY: NEON is mandatory on aarch64; the `sdot` variants are only handed out by `kernel` when the
            // CPU reports the dot-product extension; `blocks` checked that both slices hold `nb` whole blocks and
            // the kernel reads only inside them.
            unsafe { $inner::<$dot>(nb, w.as_ptr(), x.as_ptr()) }
        }
    };
}

safe_kernel!(dot_q4_0, q4_0_neon, false, 32, 18, 34);
safe_kernel!(dot_q4_0_sdot, q4_0_neon, true, 32, 18, 34);
safe_kernel!(dot_q4_1, q4_1_neon, false, 32, 20, 36);
safe_kernel!(dot_q4_1_sdot, q4_1_neon, true, 32, 20, 36);
safe_kernel!(dot_q5_0, q5_0_neon, false, 32, 22, 34);
safe_kernel!(dot_q5_0_sdot, q5_0_neon, true, 32, 22, 34);
safe_kernel!(dot_q5_1, q5_1_neon, false, 32, 24, 36);
safe_kernel!(dot_q5_1_sdot, q5_1_neon, true, 32, 24, 36);
safe_kernel!(dot_q5_k, q5_k_neon, false, 256, 176, 292);
safe_kernel!(dot_q5_k_sdot, q5_k_neon, true, 256, 176, 292);
safe_kernel!(dot_q2_k, q2_k_neon, false, 256, 84, 292);
safe_kernel!(dot_q2_k_sdot, q2_k_neon, true, 256, 84, 292);
safe_kernel!(dot_q3_k, q3_k_neon, false, 256, 110, 292);
safe_kernel!(dot_q3_k_sdot, q3_k_neon, true, 256, 110, 292);
safe_kernel!(dot_q8_0, q8_0_neon, false, 32, 34, 34);
safe_kernel!(dot_q8_0_sdot, q8_0_neon, true, 32, 34, 34);
safe_kernel!(dot_q4_k, q4_k_neon, false, 256, 144, 292);
safe_kernel!(dot_q4_k_sdot, q4_k_neon, true, 256, 144, 292);
safe_kernel!(dot_q6_k, q6_k_neon, false, 256, 210, 292);
safe_kernel!(dot_q6_k_sdot, q6_k_neon, true, 256, 210, 292);

fn dot_f32(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let nb = blocks(n, 16, w, 64, x, 64);
    // SAFETY: NEON is mandatory on aarch64; both slices hold `nb * 16` f32 values (checked above).
    unsafe { f32_neon(nb, w.as_ptr(), x.as_ptr()) }
}

fn dot_bf16(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let nb = blocks(n, 8, w, 16, x, 16);
    // SAFETY: NEON is mandatory on aarch64; both slices hold `nb * 8` bf16 values (checked above).
    unsafe { bf16_neon(nb, w.as_ptr(), x.as_ptr()) }
}

fn dot_f16(n: usize, w: &[u8], x: &[u8]) -> f32 {
    let nb = blocks(n, 8, w, 16, x, 16);
    // SAFETY: NEON is mandatory on aarch64 (`fcvtl` is base NEON); both slices hold `nb * 8` f16 values.
    unsafe { f16_neon(nb, w.as_ptr(), x.as_ptr()) }
}

// ---- f16 conversions ----
//
// `fcvt` (scalar) and `fcvtl` / `fcvtn` (vector) convert between half and single precision in the base ARMv8 FP and
// NEON instruction sets, so every aarch64 CPU has them. (The `half` crate uses hardware only with FEAT_FP16, which
// the Cortex-A53/A72 lack, and falls back to ~28 instructions per value.) f16 -> f32 is exact; f32 -> f16 rounds
// to nearest, ties to even (FPCR's default mode, which nothing in this process changes), as `half` does, and keeps
// NaNs quiet NaNs with the top mantissa bits and sign, as `half` does: the tests compare both bit for bit.

/// Widens the f16 values of `src` (little-endian bits) into `dst` (same count): `fcvtl` eight at a time.
pub(super) fn f16_row_to_f32(src: &[u8], dst: &mut [f32]) {
    assert!(src.len() >= 2 * dst.len(), "f16 row of {} bytes for {} values", src.len(), dst.len());
    let n8 = dst.len() / 8 * 8;
    // SAFETY: NEON is mandatory on aarch64; the loop reads `n8` halves from `src` and writes `n8` floats to `dst`,
    // both checked above.
    unsafe {
        let (s, d) = (src.as_ptr() as *const u16, dst.as_mut_ptr());
        for i in (0..n8).step_by(8) {
            let v = vld1q_u16(s.add(i));
            vst1q_f32(d.add(i), cvt_f16x4(vget_low_u16(v)));
            vst1q_f32(d.add(i + 4), cvt_f16x4(vget_high_u16(v)));
        }
    }
    for (i, o) in dst.iter_mut().enumerate().skip(n8) {
        *o = f16_to_f32(u16::from_le_bytes([src[2 * i], src[2 * i + 1]]));
    }
}

/// Narrows `src` into f16 values (little-endian bits) in `dst`: `fcvtn` eight at a time.
pub(super) fn f32_row_to_f16(src: &[f32], dst: &mut [u8]) {
    assert!(dst.len() >= 2 * src.len(), "f16 row of {} bytes for {} values", dst.len(), src.len());
    let n8 = src.len() / 8 * 8;
    // SAFETY: NEON is mandatory on aarch64; the loop reads `n8` floats from `src` and writes `n8` halves to `dst`,
    // both checked above.
    unsafe {
        let (s, d) = (src.as_ptr(), dst.as_mut_ptr() as *mut u16);
        for i in (0..n8).step_by(8) {
            vst1_u16(d.add(i), cvt_f32x4(vld1q_f32(s.add(i))));
            vst1_u16(d.add(i + 4), cvt_f32x4(vld1q_f32(s.add(i + 4))));
        }
    }
    for (i, v) in src.iter().enumerate().skip(n8) {
        dst[2 * i..2 * i + 2].copy_from_slice(&f32_to_f16(*v).to_le_bytes());
    }
}

/// Rounds every value of `values` to the nearest f16 and back (`fcvtn` + `fcvtl`), as `f16::from_f32(v).to_f32()`.
pub(super) fn round_through_f16(values: &mut [f32]) {
    let n4 = values.len() / 4 * 4;
    // SAFETY: NEON is mandatory on aarch64; the loop reads and writes `n4` floats of `values`.
    unsafe {
        let p = values.as_mut_ptr();
        for i in (0..n4).step_by(4) {
            vst1q_f32(p.add(i), cvt_f16x4(cvt_f32x4(vld1q_f32(p.add(i)))));
        }
    }
    for v in values.iter_mut().skip(n4) {
        *v = f16_to_f32(f32_to_f16(*v));
    }
}

// ---- helpers ----

/// The little-endian f16 at `p` as f32.
#[inline(always)]
unsafe fn fp16(p: *const u8) -> f32 {
    f16_to_f32(u16::from_le_bytes([*p, *p.add(1)]))
}

/// `acc + Σ a·b` over groups of 4 bytes, as `sdot` computes it (or its NEON equivalent without the extension).
#[inline(always)]
pub(super) unsafe fn dot_i8<const SDOT: bool>(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    if SDOT {
        let mut acc = acc;
        std::arch::asm!(
            ".arch_extension dotprod",
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack)
        );
        acc
    } else {
        let lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
        let hi = vmull_high_s8(a, b);
        vaddq_s32(acc, vaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)))
    }
}

/// Widens 4 half floats to f32 (`fcvtl`, base NEON).
#[inline(always)]
pub(super) unsafe fn cvt_f16x4(bits: uint16x4_t) -> float32x4_t {
    let out: float32x4_t;
    std::arch::asm!("fcvtl {o:v}.4s, {i:v}.4h", o = out(vreg) out, i = in(vreg) bits, options(pure, nomem, nostack));
    out
}

/// Narrows 4 floats to half floats (`fcvtn`, base NEON; round to nearest, ties to even).
#[inline(always)]
unsafe fn cvt_f32x4(v: float32x4_t) -> uint16x4_t {
    let out: uint16x4_t;
    std::arch::asm!("fcvtn {o:v}.4h, {i:v}.4s", o = out(vreg) out, i = in(vreg) v, options(pure, nomem, nostack));
    out
}

#[target_feature(enable = "neon")]
unsafe fn f32_neon(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let (w, x) = (w as *const f32, x as *const f32);
    let mut acc = [vdupq_n_f32(0.0); 4];
    for i in 0..nb {
        for (k, a) in acc.iter_mut().enumerate() {
            *a = vfmaq_f32(*a, vld1q_f32(w.add(16 * i + 4 * k)), vld1q_f32(x.add(16 * i + 4 * k)));
        }
    }
    vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])))
}

#[target_feature(enable = "neon")]
unsafe fn f16_neon(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let (w, x) = (w as *const u16, x as *const u16);
    let mut acc0 = vdupq_n_f32(0.0);
    let mut acc1 = vdupq_n_f32(0.0);
    for i in 0..nb {
        let wv = vld1q_u16(w.add(8 * i));
        let xv = vld1q_u16(x.add(8 * i));
        acc0 = vfmaq_f32(acc0, cvt_f16x4(vget_low_u16(wv)), cvt_f16x4(vget_low_u16(xv)));
        acc1 = vfmaq_f32(acc1, cvt_f16x4(vget_high_u16(wv)), cvt_f16x4(vget_high_u16(xv)));
    }
    vaddvq_f32(vaddq_f32(acc0, acc1))
}

#[target_feature(enable = "neon")]
unsafe fn bf16_neon(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let (w, x) = (w as *const u16, x as *const u16);
    let mut acc0 = vdupq_n_f32(0.0);
    let mut acc1 = vdupq_n_f32(0.0);
    // bf16 is the top half of an f32: widen by shifting 16 bits up.
    let f = |v: uint16x4_t| vreinterpretq_f32_u32(vshll_n_u16::<16>(v));
    for i in 0..nb {
        let wv = vld1q_u16(w.add(8 * i));
        let xv = vld1q_u16(x.add(8 * i));
        acc0 = vfmaq_f32(acc0, f(vget_low_u16(wv)), f(vget_low_u16(xv)));
        acc1 = vfmaq_f32(acc1, f(vget_high_u16(wv)), f(vget_high_u16(xv)));
    }
    vaddvq_f32(vaddq_f32(acc0, acc1))
}

/// The 32 nibbles of a Q4 block as bytes: (low nibbles = elements 0..16, high nibbles = elements 16..32).
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> (uint8x16_t, uint8x16_t) {
    let v = vld1q_u8(p);
    (vandq_u8(v, vdupq_n_u8(0x0F)), vshrq_n_u8(v, 4))
}

/// The fifth bits of a Q5_0/Q5_1 block as `0x10` bytes: (elements 0..16, elements 16..32) from the little-endian
/// u32 at `p`.
#[inline(always)]
unsafe fn fifth_bits(p: *const u8) -> (uint8x16_t, uint8x16_t) {
    let bit = vreinterpretq_u8_u64(vdupq_n_u64(0x8040_2010_0804_0201));
    let spread = |a: u8, b: u8| {
        let v = vcombine_u8(vdup_n_u8(a), vdup_n_u8(b));
        vandq_u8(vtstq_u8(v, bit), vdupq_n_u8(0x10))
    };
    (spread(*p, *p.add(1)), spread(*p.add(2), *p.add(3)))
}

/// Shared loop of the 32-wide formats: `decode(block)` gives a weight block's 32 values as signed bytes
/// (elements 0..16, 16..32). With `MIN` (Q4_1, Q5_1) the weight block carries an f16 min at offset 2 and the
/// activations are Q8_1 (d, s = d * sum, 32 quants at offset 4); otherwise they are Q8_0 (quants at offset 2).
#[inline(always)]
unsafe fn legacy32<const SDOT: bool, const MIN: bool>(
    nb: usize,
    w: *const u8,
    x: *const u8,
    w_bytes: usize,
    decode: impl Fn(*const u8) -> (int8x16_t, int8x16_t),
) -> f32 {
    let (x_bytes, x_qs) = if MIN { (36, 4) } else { (34, 2) };
    let mut acc = vdupq_n_f32(0.0);
    let mut mins = 0.0f32;
    for i in 0..nb {
        let (wb, xb) = (w.add(w_bytes * i), x.add(x_bytes * i));
        if MIN {
            mins += fp16(wb.add(2)) * fp16(xb.add(2));
        }
        let (lo, hi) = decode(wb);
        let y = xb.add(x_qs) as *const i8;
        let s = dot_i8::<SDOT>(vdupq_n_s32(0), lo, vld1q_s8(y));
        let s = dot_i8::<SDOT>(s, hi, vld1q_s8(y.add(16)));
        acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), fp16(wb) * fp16(xb));
    }
    vaddvq_f32(acc) + mins
}

#[target_feature(enable = "neon")]
unsafe fn q8_0_neon<const SDOT: bool>(nb: usize, w: *const u8, x: *const u8) -> f32 {
    legacy32::<SDOT, false>(nb, w, x, 34, |wb| (vld1q_s8(wb.add(2) as *const i8), vld1q_s8(wb.add(18) as *const i8)))
}

#[target_feature(enable = "neon")]
unsafe fn q4_0_neon<const SDOT: bool>(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let eight = vdupq_n_s8(8);
    legacy32::<SDOT, false>(nb, w, x, 18, |wb| {
        let (lo, hi) = nibbles(wb.add(2));
        (vsubq_s8(vreinterpretq_s8_u8(lo), eight), vsubq_s8(vreinterpretq_s8_u8(hi), eight))
    })
}

#[target_feature(enable = "neon")]
unsafe fn q4_1_neon<const SDOT: bool>(nb: usize, w: *const u8, x: *const u8) -> f32 {
    // Nibbles are 0..15, so they are valid signed bytes.
    legacy32::<SDOT, true>(nb, w, x, 20, |wb| {
        let (lo, hi) = nibbles(wb.add(4));
        (vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi))
    })
}

#[target_feature(enable = "neon")]
unsafe fn q5_0_neon<const SDOT: bool>(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let sixteen = vdupq_n_s8(16);
    legacy32::<SDOT, false>(nb, w, x, 22, |wb| {
        let ((lo, hi), (h_lo, h_hi)) = (nibbles(wb.add(6)), fifth_bits(wb.add(2)));
        let v = |q: uint8x16_t, h: uint8x16_t| vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(q, h)), sixteen);
        (v(lo, h_lo), v(hi, h_hi))
    })
}

#[target_feature(enable = "neon")]
unsafe fn q5_1_neon<const SDOT: bool>(nb: usize, w: *const u8, x: *const u8) -> f32 {
    // Values are 0..31, so they are valid signed bytes.
    legacy32::<SDOT, true>(nb, w, x, 24, |wb| {
        let ((lo, hi), (h_lo, h_hi)) = (nibbles(wb.add(8)), fifth_bits(wb.add(4)));
        (vreinterpretq_s8_u8(vorrq_u8(lo, h_lo)), vreinterpretq_s8_u8(vorrq_u8(hi, h_hi)))
    })
}

/// Shared by Q4_K and Q5_K: the 256-value block at `q` (128 bytes of nibbles) with optional fifth bits from the 32
/// bytes at `qh` (bit `2j` for sub-block `2j`, bit `2j + 1` for sub-block `2j + 1`), 6-bit scales and mins at
/// `scales`, against the Q8_K block at `xb`: returns `(sum of scale * q * y, sum of min * bsum)`.
#[inline(always)]
unsafe fn k4_block<const SDOT: bool>(q: *const u8, qh: Option<*const u8>, scales: &[u8], xb: *const u8) -> (i32, i32) {
    let mut summ = 0i32;
    let mut sumi = 0i32;
    let top = |h: uint8x16_t, bit: i8| vshlq_n_u8::<4>(vandq_u8(vshlq_u8(h, vdupq_n_s8(-bit)), vdupq_n_u8(1)));
    for j in 0..4 {
        let (sc_lo, m_lo) = crate::quant::k4_scale_min(2 * j, scales);
        let (sc_hi, m_hi) = crate::quant::k4_scale_min(2 * j + 1, scales);
        summ += m_lo as i32 * (q8k_bsum(xb, 4 * j) + q8k_bsum(xb, 4 * j + 1));
        summ += m_hi as i32 * (q8k_bsum(xb, 4 * j + 2) + q8k_bsum(xb, 4 * j + 3));
        let qj = q.add(32 * j);
        let y = xb.add(4 + 64 * j) as *const i8;
        let (mut a_lo, mut a_hi) = nibbles(qj);
        let (mut b_lo, mut b_hi) = nibbles(qj.add(16));
        if let Some(qh) = qh {
            let (ha, hb) = (vld1q_u8(qh), vld1q_u8(qh.add(16)));
            let (lo_bit, hi_bit) = (2 * j as i8, 2 * j as i8 + 1);
            a_lo = vorrq_u8(a_lo, top(ha, lo_bit));
            b_lo = vorrq_u8(b_lo, top(hb, lo_bit));
            a_hi = vorrq_u8(a_hi, top(ha, hi_bit));
            b_hi = vorrq_u8(b_hi, top(hb, hi_bit));
        }
        let s_lo = dot_i8::<SDOT>(vdupq_n_s32(0), vreinterpretq_s8_u8(a_lo), vld1q_s8(y));
        let s_lo = dot_i8::<SDOT>(s_lo, vreinterpretq_s8_u8(b_lo), vld1q_s8(y.add(16)));
        let s_hi = dot_i8::<SDOT>(vdupq_n_s32(0), vreinterpretq_s8_u8(a_hi), vld1q_s8(y.add(32)));
        let s_hi = dot_i8::<SDOT>(s_hi, vreinterpretq_s8_u8(b_hi), vld1q_s8(y.add(48)));
        sumi += vaddvq_s32(s_lo) * sc_lo as i32 + vaddvq_s32(s_hi) * sc_hi as i32;
    }
    (sumi, summ)
}

#[target_feature(enable = "neon")]
unsafe fn q5_k_neon<const SDOT: bool>(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let mut total = 0.0f32;
    for i in 0..nb {
        let (wb, xb) = (w.add(176 * i), x.add(292 * i));
        let dx = q8k_d(xb);
        let scales = std::slice::from_raw_parts(wb.add(4), 12);
        let (sumi, summ) = k4_block::<SDOT>(wb.add(48), Some(wb.add(16)), scales, xb);
        total += fp16(wb) * dx * sumi as f32 - fp16(wb.add(2)) * dx * summ as f32;
    }
    total
}

#[target_feature(enable = "neon")]
unsafe fn q4_k_neon<const SDOT: bool>(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let mut total = 0.0f32;
    for i in 0..nb {
        let (wb, xb) = (w.add(144 * i), x.add(292 * i));
        let dx = q8k_d(xb);
        let scales = std::slice::from_raw_parts(wb.add(4), 12);
        let (sumi, summ) = k4_block::<SDOT>(wb.add(16), None, scales, xb);
        total += fp16(wb) * dx * sumi as f32 - fp16(wb.add(2)) * dx * summ as f32;
    }
    total
}

/// Q2_K and Q3_K: two bits per value in `qs` (32 bytes per 128 values; bits `2s..2s+2` of byte `l` are value
/// `32s + l`), minus an optional per-value offset `sub(half, s, part)` (Q3_K's missing high bit), times 16-value
/// group scales `scale(g)`: returns the integer sum against the Q8_K block at `xb`.
#[inline(always)]
unsafe fn two_bit_block<const SDOT: bool>(
    qs: *const u8,
    xb: *const u8,
    sub: impl Fn(usize, usize, usize) -> int8x16_t,
    scale: impl Fn(usize) -> i32,
) -> i32 {
    let m3 = vdupq_n_u8(3);
    let mut sumi = 0i32;
    for half in 0..2 {
        let y = xb.add(4 + 128 * half) as *const i8;
        for part in 0..2 {
            let bits = vld1q_u8(qs.add(32 * half + 16 * part));
            for s in 0..4 {
                let q = vandq_u8(vshlq_u8(bits, vdupq_n_s8(-2 * s as i8)), m3);
                let q = vsubq_s8(vreinterpretq_s8_u8(q), sub(half, s, part));
                let d = dot_i8::<SDOT>(vdupq_n_s32(0), q, vld1q_s8(y.add(32 * s + 16 * part)));
                sumi += vaddvq_s32(d) * scale(8 * half + 2 * s + part);
            }
        }
    }
    sumi
}

#[target_feature(enable = "neon")]
unsafe fn q2_k_neon<const SDOT: bool>(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let mut total = 0.0f32;
    for i in 0..nb {
        let (wb, xb) = (w.add(84 * i), x.add(292 * i));
        let dx = q8k_d(xb);
        let scales = std::slice::from_raw_parts(wb, 16);
        let summ: i32 = (0..16).map(|g| (scales[g] >> 4) as i32 * q8k_bsum(xb, g)).sum();
        let sumi = two_bit_block::<SDOT>(wb.add(16), xb, |_, _, _| vdupq_n_s8(0), |g| (scales[g] & 0xF) as i32);
        total += fp16(wb.add(80)) * dx * sumi as f32 - fp16(wb.add(82)) * dx * summ as f32;
    }
    total
}

#[target_feature(enable = "neon")]
unsafe fn q3_k_neon<const SDOT: bool>(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let mut total = 0.0f32;
    for i in 0..nb {
        let (wb, xb) = (w.add(110 * i), x.add(292 * i));
        let scales = crate::quant::q3_k_scales(std::slice::from_raw_parts(wb.add(96), 12));
        let hm = [vld1q_u8(wb), vld1q_u8(wb.add(16))];
        // 4 where the high bit (bit 4 * half + s of hmask[l]) is clear: q = low - 4 there.
        let sub = |half: usize, s: usize, part: usize| {
            let set = vtstq_u8(hm[part], vdupq_n_u8(1u8 << (4 * half + s)));
            vreinterpretq_s8_u8(vbicq_u8(vdupq_n_u8(4), set))
        };
        let sumi = two_bit_block::<SDOT>(wb.add(32), xb, sub, |g| scales[g]);
        total += fp16(wb.add(108)) * q8k_d(xb) * sumi as f32;
    }
    total
}

#[target_feature(enable = "neon")]
unsafe fn q6_k_neon<const SDOT: bool>(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let mut total = 0.0f32;
    let m4 = vdupq_n_u8(0x0F);
    let m3 = vdupq_n_u8(0x03);
    let m32 = vdupq_n_s8(32);
    for i in 0..nb {
        let (wb, xb) = (w.add(210 * i), x.add(292 * i));
        let scales = wb.add(192) as *const i8;
        let mut sumi = 0i32;
        for half in 0..2 {
            let ql = wb.add(64 * half);
            let qh = wb.add(128 + 32 * half);
            let y = xb.add(4 + 128 * half) as *const i8;
            for part in 0..2 {
                // 16 of the 32 positions l of this half.
                let l = 16 * part;
                let a = vld1q_u8(ql.add(l));
                let b = vld1q_u8(ql.add(32 + l));
                let h = vld1q_u8(qh.add(l));
                let q = [
                    vorrq_u8(vandq_u8(a, m4), vshlq_n_u8(vandq_u8(h, m3), 4)),
                    vorrq_u8(vandq_u8(b, m4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 2), m3), 4)),
                    vorrq_u8(vshrq_n_u8(a, 4), vshlq_n_u8(vandq_u8(vshrq_n_u8(h, 4), m3), 4)),
                    vorrq_u8(vshrq_n_u8(b, 4), vshlq_n_u8(vshrq_n_u8(h, 6), 4)),
                ];
                for (k, qk) in q.iter().enumerate() {
                    let v = vsubq_s8(vreinterpretq_s8_u8(*qk), m32);
                    let s = dot_i8::<SDOT>(vdupq_n_s32(0), v, vld1q_s8(y.add(32 * k + l)));
                    // Value index half*128 + 32k + l: group (32k + l) / 16 = 2k + part.
                    sumi += vaddvq_s32(s) * *scales.add(8 * half + 2 * k + part) as i32;
                }
            }
        }
        total += fp16(wb.add(208)) * q8k_d(xb) * sumi as f32;
    }
    total
}
