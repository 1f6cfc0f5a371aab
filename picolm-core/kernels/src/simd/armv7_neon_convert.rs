//! armv7 NEON activation quantizers: f32 rows to Q8_0 and Q8_1 (what the matmul converts every activation row to
//! for the 32-value weight formats), byte for byte the reference [`crate::quant::quantize_row_unchecked`].
//!
//! Per block of 32: the largest magnitude by `vabs`/`vmax` (NEON's maximum returns one of its inputs, so `amax` is
//! the reference's), `d = amax / 127` and `1 / d` in scalar f32 as the reference computes them, then per value
//! `s = x / d` (`vmul`), rounded half away from zero without ARMv8's `vrinta`: `t = trunc(s)` (`vcvt`), and one more
//! step away from zero exactly when `trunc(2 (s - t))` is ±1 (`s - t` and its double are exact), narrowed with
//! saturation (|s| <= 127 already). Blocks where NEON's flush-to-zero could matter or the reference has special
//! cases (`amax` not finite, zero, or below [`MIN_AMAX`]: `1 / d` could overflow) go to the reference itself;
//! above it, a subnormal input or product is below 2^-126 * 127 / 1e-30 of a step and rounds to 0 either way.

use crate::ggml_type::GgmlType;
use crate::quant::{put_f16, quantize_row_unchecked};

/// The smallest block maximum quantized here (smaller ones, zero and non-finite ones: the reference).
const MIN_AMAX: f32 = 1e-30;

/// Quantizes `src` into `dst` as `ty` when `ty` is Q8_0 or Q8_1 (returns whether it did). Panics when the lengths
/// disagree. Only call when NEON is available.
pub(super) fn quantize(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> bool {
    let qs_at = match ty {
        GgmlType::Q8_0 => 2,
        GgmlType::Q8_1 => 4,
        _ => return false,
    };
    let bytes = ty.block_bytes();
    assert!(src.len().is_multiple_of(32) && dst.len() == src.len() / 32 * bytes, "quantize: lengths disagree");
    for (x, b) in src.chunks_exact(32).zip(dst.chunks_exact_mut(bytes)) {
        // SAFETY: `x` holds 32 values; NEON is available (the caller's contract).
        let amax = unsafe { abs_max32(x.as_ptr()) };
        if !(MIN_AMAX..=f32::MAX).contains(&amax) {
            quantize_row_unchecked(ty, x, b);
            continue;
        }
        let d = amax / 127.0;
        let id = 1.0 / d;
        // SAFETY: `x` holds 32 values and `b` `qs_at + 32` bytes (one block of `ty`); NEON as above.
        let sum = unsafe { round32(x.as_ptr(), id, b[qs_at..qs_at + 32].as_mut_ptr()) };
        put_f16(b, 0, d);
        if ty == GgmlType::Q8_1 {
            put_f16(b, 2, sum as f32 * d);
        }
    }
    true
}

/// The largest |value| of the 32 values at `x` (NaN when one of them is NaN).
///
/// # Safety
/// `x` points to 32 readable f32; NEON is available.
unsafe fn abs_max32(x: *const f32) -> f32 {
    let out: u32;
    core::arch::asm!(
        ".fpu neon-vfpv4",
        "vld1.32 {{d0-d3}}, [{x}]!",
        "vld1.32 {{d4-d7}}, [{x}]!",
        "vld1.32 {{d8-d11}}, [{x}]!",
        "vld1.32 {{d12-d15}}, [{x}]",
        "vabs.f32 q0, q0",
        "vabs.f32 q1, q1",
        "vabs.f32 q2, q2",
        "vabs.f32 q3, q3",
        "vabs.f32 q4, q4",
        "vabs.f32 q5, q5",
        "vabs.f32 q6, q6",
        "vabs.f32 q7, q7",
        "vmax.f32 q0, q0, q1",
        "vmax.f32 q2, q2, q3",
        "vmax.f32 q4, q4, q5",
        "vmax.f32 q6, q6, q7",
        "vmax.f32 q0, q0, q2",
        "vmax.f32 q4, q4, q6",
        "vmax.f32 q0, q0, q4",
        "vpmax.f32 d0, d0, d1",
        "vpmax.f32 d0, d0, d0",
        "vmov {out}, s0",
        x = inout(reg) x => _,
        out = lateout(reg) out,
        out("q0") _, out("q1") _, out("q2") _, out("q3") _, out("q4") _, out("q5") _, out("q6") _, out("q7") _,
        options(nostack, readonly)
    );
    f32::from_bits(out)
}

/// One value vector `q$k` (times `id` in `q15`) rounded half away from zero into i32 lanes (temporaries q8, q9).
macro_rules! round4 {
    ($k:literal) => {
        concat!(
            "vmul.f32 q",
            $k,
            ", q",
            $k,
            ", q15\n",
            "vcvt.s32.f32 q8, q",
            $k,
            "\n", // t = trunc(s)
            "vcvt.f32.s32 q9, q8\n",
            "vsub.f32 q9, q",
            $k,
            ", q9\n", // s - t, exact
            "vadd.f32 q9, q9, q9\n",
            "vcvt.s32.f32 q9, q9\n", // ±1 when |s - t| >= 1/2
            "vadd.i32 q",
            $k,
            ", q8, q9\n",
        )
    };
}

/// Rounds `x[i] * id` (half away from zero) into the 32 i8 at `q`; returns their sum.
///
/// # Safety
/// `x` points to 32 readable f32, `q` to 32 writable bytes; NEON is available.
unsafe fn round32(x: *const f32, id: f32, q: *mut u8) -> i32 {
    let sum: i32;
    core::arch::asm!(
        ".fpu neon-vfpv4",
        "vld1.32 {{d0-d3}}, [{x}]!",
        "vld1.32 {{d4-d7}}, [{x}]!",
        "vld1.32 {{d8-d11}}, [{x}]!",
        "vld1.32 {{d12-d15}}, [{x}]",
        "vdup.32 q15, {id}",
        round4!("0"),
        round4!("1"),
        round4!("2"),
        round4!("3"),
        round4!("4"),
        round4!("5"),
        round4!("6"),
        round4!("7"),
        // Narrow (each step reads a register before the steps after it overwrite it).
        "vqmovn.s32 d0, q0",
        "vqmovn.s32 d1, q1",
        "vqmovn.s32 d2, q2",
        "vqmovn.s32 d3, q3",
        "vqmovn.s32 d4, q4",
        "vqmovn.s32 d5, q5",
        "vqmovn.s32 d6, q6",
        "vqmovn.s32 d7, q7",
        "vqmovn.s16 d0, q0",
        "vqmovn.s16 d1, q1",
        "vqmovn.s16 d2, q2",
        "vqmovn.s16 d3, q3",
        "vst1.8 {{d0-d3}}, [{q}]",
        "vpaddl.s8 q0, q0",
        "vpadal.s8 q0, q1",
        "vpaddl.s16 q0, q0",
        "vpadd.i32 d0, d0, d1",
        "vpadd.i32 d0, d0, d0",
        "vmov {sum}, s0",
        x = inout(reg) x => _,
        id = in(reg) id.to_bits(),
        q = in(reg) q,
        sum = lateout(reg) sum,
        out("q0") _, out("q1") _, out("q2") _, out("q3") _, out("q4") _, out("q5") _, out("q6") _, out("q7") _,
        out("q8") _, out("q9") _, out("q15") _,
        options(nostack)
    );
    sum
}
