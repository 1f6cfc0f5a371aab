//! 32-bit ARM (armv7, 32-bit Raspberry Pi OS) kernels using NEON and the VFPv4 half-precision conversions: the
//! one-row dot products (`neon-dot`: the matmul's kernel for F16, Q4_1, Q5_0, Q4_K and Q6_K; for Q4_0 and Q8_0, which have
//! the four-row tile of `armv7_neon_rows.rs`, a decode candidate forced by name only) and the f16 row conversions.
//!
//! Stable Rust has neither the `core::arch::arm` NEON intrinsics nor `#[target_feature(enable = "neon")]` on 32-bit
//! ARM, so every kernel is one `asm!` block that takes its pointers and counts in core registers and does all of
//! its vector work inside (`.fpu neon-vfpv4` lets the assembler accept the instructions whatever the target's
//! default FPU). The blocks use only `q0`-`q7` (`d0`-`d15`), which every hard-float target can name as clobbers
//! (`d16`-`d31` exist only with the D32 feature): the compiler then saves the callee-saved `d8`-`d15` around them.
//!
//! The kernels are handed out only when the kernel reports NEON and VFPv4 in `AT_HWCAP` ([`available`]): every
//! Raspberry Pi from the Pi 2 on (Cortex-A7/A53/A72/A76 running 32-bit code). Older NEON cores without VFPv4
//! (Cortex-A8/A9, which lack or make optional the half-precision conversions) keep the scalar path.
//!
//! Bit-exactness: integer products are summed exactly as the scalar reference sums them (the i16 partial sums below
//! cannot overflow: each kernel says why); only the f32 accumulation order differs. Half-precision values are
//! converted with the VFP instructions `vcvtb`/`vcvtt`, which follow FPSCR (round to nearest even, no flush to
//! zero, NaN payloads kept: the Linux default that nothing in this process changes), so they equal the `half`
//! crate bit for bit; the NEON `vcvt.f32.f16` (which forces default NaNs) is used only inside dot products.

use std::sync::OnceLock;

use super::{blocks, q8k_d, ActivationRows, GemvFn, VecDotFn};
use crate::ggml_type::GgmlType;
use crate::half_float::{f16_to_f32, f32_to_f16};

/// `AT_HWCAP` bit: Advanced SIMD (NEON).
const HWCAP_NEON: libc::c_ulong = 1 << 12;
/// `AT_HWCAP` bit: VFPv4 (fused multiply-add and the half-precision conversions).
const HWCAP_VFPV4: libc::c_ulong = 1 << 16;

/// Whether this CPU has NEON and VFPv4 (read once from the kernel's hardware capabilities).
pub fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        // SAFETY: getauxval only reads the process's auxiliary vector; AT_HWCAP is always present on Linux.
        let hwcap = unsafe { libc::getauxval(libc::AT_HWCAP) };
        hwcap & (HWCAP_NEON | HWCAP_VFPV4) == HWCAP_NEON | HWCAP_VFPV4
    })
}

/// The NEON kernel for weights of type `ty`, if there is one. Only call when [`available`].
pub fn kernel(ty: GgmlType) -> Option<VecDotFn> {
    Some(match ty {
        GgmlType::F16 => dot_f16,
        GgmlType::Q4_0 => dot_q4_0,
        GgmlType::Q4_1 => dot_q4_1,
        GgmlType::Q5_0 => dot_q5_0,
        GgmlType::Q8_0 => dot_q8_0,
        GgmlType::Q4_K => dot_q4_k,
        GgmlType::Q6_K => dot_q6_k,
        _ => return None,
    })
}

/// The one-token entry of [`kernel`]'s dot product for `ty` (the formats without a four-row tile): the same dot
/// product per row (so bit-identical to it) over a whole run of rows in one call, which saves the matmul's per-row
/// dispatch. Only call when [`available`].
pub fn gemv(ty: GgmlType) -> Option<GemvFn> {
    Some(match ty {
        GgmlType::F16 => gemv_f16,
        GgmlType::Q4_1 => gemv_q4_1,
        GgmlType::Q5_0 => gemv_q5_0,
        GgmlType::Q4_K => gemv_q4_k,
        GgmlType::Q6_K => gemv_q6_k,
        _ => return None,
    })
}

/// A [`GemvFn`] that runs the dot product `$dot` on each row against activation row 0.
macro_rules! dot_gemv {
    ($name:ident, $dot:ident) => {
        fn $name(n: usize, w: &[u8], w_row_bytes: usize, x: &ActivationRows<'_>, out: &mut [f32]) {
            let xr = &x.bytes[..x.row_bytes];
            for (r, o) in out.iter_mut().enumerate() {
                *o = $dot(n, &w[r * w_row_bytes..], xr);
            }
        }
    };
}

dot_gemv!(gemv_f16, dot_f16);
dot_gemv!(gemv_q4_1, dot_q4_1);
dot_gemv!(gemv_q5_0, dot_q5_0);
dot_gemv!(gemv_q4_k, dot_q4_k);
dot_gemv!(gemv_q6_k, dot_q6_k);

/// `asm!` with the settings every kernel here shares: the NEON/VFPv4 instruction set, `d0`-`d15` clobbered, no
/// stack use. The arguments are the templates and operands (without a trailing comma), then the options.
macro_rules! neon_asm {
    ([$($opt:ident),*] $($args:tt)*) => {
        core::arch::asm!(
            ".fpu neon-vfpv4",
            $($args)*,
            out("d0") _, out("d1") _, out("d2") _, out("d3") _, out("d4") _, out("d5") _, out("d6") _, out("d7") _,
            out("d8") _, out("d9") _, out("d10") _, out("d11") _, out("d12") _, out("d13") _, out("d14") _,
            out("d15") _,
            options(nostack $(, $opt)*)
        )
    };
}

/// Safe wrapper of a whole-row kernel: checks the slices, then runs `$inner(blocks, w, x)` when there are blocks.
macro_rules! safe_kernel {
    ($name:ident, $inner:ident, $block:expr, $wb:expr, $xb:expr) => {
        fn $name(n: usize, w: &[u8], x: &[u8]) -> f32 {
            let nb = blocks(n, $block, w, $wb, x, $xb);
            if nb == 0 {
                return 0.0;
            }
            // SAFETY: `kernel` hands this out only when `available()` (NEON + VFPv4); `blocks` checked that both
            // slices hold `nb` whole blocks, and the kernel reads only inside them.
            unsafe { $inner(nb, w.as_ptr(), x.as_ptr()) }
        }
    };
}

safe_kernel!(dot_q8_0, q8_0_neon, 32, 34, 34);
safe_kernel!(dot_q4_0, q4_0_neon, 32, 18, 34);
safe_kernel!(dot_q4_1, q4_1_neon, 32, 20, 36);
safe_kernel!(dot_q5_0, q5_0_neon, 32, 22, 34);
safe_kernel!(dot_q4_k, q4_k_neon, 256, 144, 292);
safe_kernel!(dot_q6_k, q6_k_neon, 256, 210, 292);
safe_kernel!(dot_f16, f16_neon, 8, 16, 16);

// ---- half-precision conversions (VFPv4) ----

/// Widens the f16 values of `src` (little-endian bits) into `dst` (same count), eight at a time with
/// `vcvtb`/`vcvtt`. Only call when [`available`].
pub(super) fn f16_row_to_f32(src: &[u8], dst: &mut [f32]) {
    assert!(src.len() >= 2 * dst.len(), "f16 row of {} bytes for {} values", src.len(), dst.len());
    let n8 = dst.len() / 8;
    if n8 > 0 {
        // SAFETY: `available()` (checked by the callers) gives VFPv4 and NEON; the loop reads `8 * n8` halves of
        // `src` and writes `8 * n8` floats of `dst`, both in bounds (checked above).
        unsafe {
            neon_asm!([]
                "2:",
                "vld1.16 {{d0-d1}}, [{s}]!",
                "vcvtb.f32.f16 s4, s0",
                "vcvtt.f32.f16 s5, s0",
                "vcvtb.f32.f16 s6, s1",
                "vcvtt.f32.f16 s7, s1",
                "vcvtb.f32.f16 s8, s2",
                "vcvtt.f32.f16 s9, s2",
                "vcvtb.f32.f16 s10, s3",
                "vcvtt.f32.f16 s11, s3",
                "vst1.32 {{d2-d5}}, [{d}]!",
                "subs {n}, {n}, #1",
                "bne 2b",
                s = inout(reg) src.as_ptr() => _,
                d = inout(reg) dst.as_mut_ptr() => _,
                n = inout(reg) n8 => _
            );
        }
    }
    for (i, o) in dst.iter_mut().enumerate().skip(8 * n8) {
        *o = f16_to_f32(u16::from_le_bytes([src[2 * i], src[2 * i + 1]]));
    }
}

/// Narrows `src` into f16 values (little-endian bits) in `dst`, eight at a time with `vcvtb`/`vcvtt` (round to
/// nearest, ties to even). Only call when [`available`].
pub(super) fn f32_row_to_f16(src: &[f32], dst: &mut [u8]) {
    assert!(dst.len() >= 2 * src.len(), "f16 row of {} bytes for {} values", dst.len(), src.len());
    let n8 = src.len() / 8;
    if n8 > 0 {
        // SAFETY: as in `f16_row_to_f32`: `8 * n8` floats read, `8 * n8` halves written, both in bounds.
        unsafe {
            neon_asm!([]
                "2:",
                "vld1.32 {{d0-d3}}, [{s}]!",
                "vcvtb.f16.f32 s8, s0",
                "vcvtt.f16.f32 s8, s1",
                "vcvtb.f16.f32 s9, s2",
                "vcvtt.f16.f32 s9, s3",
                "vcvtb.f16.f32 s10, s4",
                "vcvtt.f16.f32 s10, s5",
                "vcvtb.f16.f32 s11, s6",
                "vcvtt.f16.f32 s11, s7",
                "vst1.16 {{d4-d5}}, [{d}]!",
                "subs {n}, {n}, #1",
                "bne 2b",
                s = inout(reg) src.as_ptr() => _,
                d = inout(reg) dst.as_mut_ptr() => _,
                n = inout(reg) n8 => _
            );
        }
    }
    for (i, v) in src.iter().enumerate().skip(8 * n8) {
        dst[2 * i..2 * i + 2].copy_from_slice(&f32_to_f16(*v).to_le_bytes());
    }
}

/// Rounds every value of `values` to the nearest f16 and back, as `f16::from_f32(v).to_f32()`. Only call when
/// [`available`].
pub(super) fn round_through_f16(values: &mut [f32]) {
    for v in values.iter_mut() {
        let out: f32;
        // SAFETY: `available()` was checked by the caller (VFPv4 has the conversion); only the named register is used.
        unsafe {
            core::arch::asm!(".fpu neon-vfpv4", "vcvtb.f16.f32 {v}, {v}", "vcvtb.f32.f16 {v}, {v}",
                v = inout(sreg) *v => out, options(pure, nomem, nostack, preserves_flags));
        }
        *v = out;
    }
}

/// The little-endian f16 at `p` as f32 (VFPv4 `vcvtb`: exactly [`f16_to_f32`], see the module comment).
///
/// # Safety
/// `p` points to 2 readable bytes; [`available`].
#[inline(always)]
unsafe fn fp16(p: *const u8) -> f32 {
    let bits = u16::from_le_bytes([*p, *p.add(1)]) as u32;
    let out: f32;
    core::arch::asm!(".fpu neon-vfpv4", "vmov {v}, {b}", "vcvtb.f32.f16 {v}, {v}",
        b = in(reg) bits, v = out(sreg) out, options(pure, nomem, nostack, preserves_flags));
    out
}

/// The two little-endian f16 at `p` (`p[0..2]`, `p[2..4]`) as f32, as [`fp16`] converts them.
///
/// # Safety
/// `p` points to 4 readable bytes; [`available`].
#[inline(always)]
unsafe fn fp16_pair(p: *const u8) -> (f32, f32) {
    let bits = u32::from_le_bytes(std::ptr::read_unaligned(p as *const [u8; 4]));
    let (lo, hi): (f32, f32);
    core::arch::asm!(".fpu neon-vfpv4", "vmov {lo}, {b}", "vcvtt.f32.f16 {hi}, {lo}", "vcvtb.f32.f16 {lo}, {lo}",
        b = in(reg) bits, lo = out(sreg) lo, hi = out(sreg) hi, options(pure, nomem, nostack, preserves_flags));
    (lo, hi)
}

/// The sum of the four i32 lanes of `q7` into the `{out}` operand (the last instructions of a kernel).
macro_rules! hsum_q7_i32 {
    () => {
        "vadd.i32 d14, d14, d15\n vpadd.i32 d14, d14, d14\n vmov {out}, s28"
    };
}

/// The sum of the four f32 lanes of `q7` into `s28`.
macro_rules! hsum_q7_f32 {
    () => {
        "vadd.f32 d14, d14, d15\n vpadd.f32 d14, d14, d14"
    };
}

// ---- the 32-value formats ----
//
// Per block the integer dot product is formed in i16 lanes with `vmull.s8` + `vmlal.s8` (two products per lane),
// widened to i32 with `vpaddl`/`vpadal`, converted to f32 and added into `q7` times the block's scale product,
// which `vcvt.f32.f16` makes from the two f16 scales loaded into one d register (lane 0: weights, 1: activations).

/// The end of a block of the Q8_0 and Q5_0 kernels (see above): the block's 32 weight values (i8) in `d0`-`d3`
/// times the activation quants in `d4`-`d7` (value `i` with quant `i`), summed in `q4`/`q5`, converted and added to
/// `q7` times the product of the two f16 scales in lanes 0 and 1 of `d12`. Clobbers `q0`, `q4`, `q5`.
macro_rules! q8_block_into_q7 {
    () => {
        "vmull.s8 q4, d0, d4\n vmlal.s8 q4, d1, d5\n vmull.s8 q5, d2, d6\n vmlal.s8 q5, d3, d7\n \
         vcvt.f32.f16 q0, d12\n vpaddl.s16 q4, q4\n vpadal.s16 q4, q5\n vmul.f32 s0, s0, s1\n \
         vcvt.f32.s32 q4, q4\n vmla.f32 q7, q4, d0[0]"
    };
}

/// Q8_0 weights · Q8_0 activations.
///
/// No i16 overflow: activations are in -127..=127 (the quantizer clamps), weights in -128..=127, so two products
/// are at most 2 * 128 * 127 = 32512 in magnitude.
///
/// # Safety
/// `nb >= 1`; `w` and `x` hold `nb` blocks of 34 bytes; [`available`].
unsafe fn q8_0_neon(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let out: u32;
    neon_asm!([readonly]
        "vmov.i32 q7, #0",
        "2:",
        "vld1.16 {{d12[0]}}, [{w}]!",
        "vld1.16 {{d12[1]}}, [{x}]!",
        "vld1.8 {{d0-d3}}, [{w}]!",
        "vld1.8 {{d4-d7}}, [{x}]!",
        q8_block_into_q7!(),
        "subs {n}, {n}, #1",
        "bne 2b",
        hsum_q7_f32!(),
        "vmov {out}, s28",
        w = inout(reg) w => _,
        x = inout(reg) x => _,
        n = inout(reg) nb => _,
        out = lateout(reg) out
    );
    f32::from_bits(out)
}

/// Q4_0 weights · Q8_0 activations. The nibbles become `nibble - 8` with one XOR and arithmetic shifts:
/// `(b ^ 0x88)` holds `nibble ^ 8` in each half, and the sign-extended 4-bit `nibble ^ 8` is `nibble - 8`.
///
/// No i16 overflow: two products of at most 8 * 127.
///
/// # Safety
/// `nb >= 1`; `w` holds `nb` blocks of 18 bytes, `x` `nb` blocks of 34; [`available`].
unsafe fn q4_0_neon(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let out: u32;
    neon_asm!([readonly]
        "vmov.i8 q6, #0x88",
        "vmov.i32 q7, #0",
        "2:",
        "vld1.16 {{d10[0]}}, [{w}]!",
        "vld1.16 {{d10[1]}}, [{x}]!",
        "vld1.8 {{d0-d1}}, [{w}]!",
        "vld1.8 {{d4-d7}}, [{x}]!",
        "veor q0, q0, q6",
        "vshl.i8 q1, q0, #4",
        "vshr.s8 q0, q0, #4", // values 16..32
        "vshr.s8 q1, q1, #4", // values 0..16
        "vmull.s8 q4, d2, d4",
        "vmlal.s8 q4, d3, d5",
        "vmull.s8 q1, d0, d6",
        "vmlal.s8 q1, d1, d7",
        "vcvt.f32.f16 q0, d10",
        "vpaddl.s16 q4, q4",
        "vpadal.s16 q4, q1",
        "vmul.f32 s0, s0, s1",
        "vcvt.f32.s32 q4, q4",
        "vmla.f32 q7, q4, d0[0]",
        "subs {n}, {n}, #1",
        "bne 2b",
        hsum_q7_f32!(),
        "vmov {out}, s28",
        w = inout(reg) w => _,
        x = inout(reg) x => _,
        n = inout(reg) nb => _,
        out = lateout(reg) out
    );
    f32::from_bits(out)
}

/// Q5_0 weights · Q8_0 activations (block: f16 `d`, 32 fifth bits `qh`, 16 bytes of nibbles; value `i` is nibble
/// `i` (low nibbles first) with bit `i` of `qh` on top, minus 16). Each value is built in the top five bits of a
/// byte and sign-extended by `vshr.s8 #3`: the nibble shifted to bits 3-6, and bit 7 set where the fifth bit is
/// clear, which makes the 5-bit two's complement of `value - 16` (`v ^ 16`, as Q4_0's `nibble ^ 8`). The fifth bits
/// become bytes by `vdup` of each byte of `~qh` and `vtst` against the lane's bit (`d13`: 1, 2, 4, .. 128), and go to
/// bit 7 by `vsli #7`, which also clears what the nibble shift left there.
///
/// No i16 overflow: two products of at most 16 * 127.
///
/// # Safety
/// `nb >= 1`; `w` holds `nb` blocks of 22 bytes, `x` `nb` blocks of 34; [`available`].
unsafe fn q5_0_neon(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let out: u32;
    let lane_bits: u64 = 0x8040_2010_0804_0201;
    neon_asm!([readonly]
        "vmov d13, {bits_lo}, {bits_hi}",
        "vmov.i32 q7, #0",
        "2:",
        "vld1.16 {{d12[0]}}, [{w}]!",
        "vld1.16 {{d12[1]}}, [{x}]!",
        "vld1.32 {{d11[0]}}, [{w}]!",
        "vld1.8 {{d0-d1}}, [{w}]!",
        "vld1.8 {{d4-d7}}, [{x}]!",
        "vmvn d11, d11",
        "vdup.8 d8, d11[0]",
        "vdup.8 d9, d11[1]",
        "vdup.8 d10, d11[2]",
        "vdup.8 d11, d11[3]",
        "vtst.8 d8, d8, d13", // 0xFF where the fifth bit of value 0..7 is clear
        "vtst.8 d9, d9, d13",
        "vtst.8 d10, d10, d13",
        "vtst.8 d11, d11, d13",
        "vshr.u8 q1, q0, #1", // high nibbles (values 16..32) to bits 3-6
        "vshl.i8 q0, q0, #3", // low nibbles (values 0..16) to bits 3-6
        "vsli.8 q0, q4, #7",
        "vsli.8 q1, q5, #7",
        "vshr.s8 q0, q0, #3", // values 0..16 in d0-d1, 16..32 in d2-d3, as Q8_0's
        "vshr.s8 q1, q1, #3",
        q8_block_into_q7!(),
        "subs {n}, {n}, #1",
        "bne 2b",
        hsum_q7_f32!(),
        "vmov {out}, s28",
        bits_lo = in(reg) lane_bits as u32,
        bits_hi = in(reg) (lane_bits >> 32) as u32,
        w = inout(reg) w => _,
        x = inout(reg) x => _,
        n = inout(reg) nb => _,
        out = lateout(reg) out
    );
    f32::from_bits(out)
}

/// Q4_1 weights · Q8_1 activations: `d_w d_x Σ nibble·q + m_w s_x` per block. One 32-bit lane load takes each
/// block's two f16 (`d, m` of the weights into lanes 0-1, `d, s` of the activations into lanes 2-3); the `m s`
/// terms are summed apart in `s22`, as the reference does.
///
/// No i16 overflow: two products of at most 15 * 127.
///
/// # Safety
/// `nb >= 1`; `w` holds `nb` blocks of 20 bytes, `x` `nb` blocks of 36; [`available`].
unsafe fn q4_1_neon(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let out: u32;
    neon_asm!([readonly]
        "vmov.i8 q6, #0x0f",
        "vmov.i32 q7, #0",
        "vmov.i32 d11, #0",
        "2:",
        "vld1.32 {{d10[0]}}, [{w}]!",
        "vld1.32 {{d10[1]}}, [{x}]!",
        "vld1.8 {{d0-d1}}, [{w}]!",
        "vld1.8 {{d4-d7}}, [{x}]!",
        "vand q1, q0, q6",    // values 0..16
        "vshr.u8 q0, q0, #4", // values 16..32
        "vmull.s8 q4, d2, d4",
        "vmlal.s8 q4, d3, d5",
        "vmull.s8 q1, d0, d6",
        "vmlal.s8 q1, d1, d7",
        "vcvt.f32.f16 q0, d10", // s0 = d_w, s1 = m_w, s2 = d_x, s3 = s_x
        "vpaddl.s16 q4, q4",
        "vpadal.s16 q4, q1",
        "vmul.f32 s0, s0, s2",
        "vmla.f32 s22, s1, s3",
        "vcvt.f32.s32 q4, q4",
        "vmla.f32 q7, q4, d0[0]",
        "subs {n}, {n}, #1",
        "bne 2b",
        hsum_q7_f32!(),
        "vadd.f32 s28, s28, s22",
        "vmov {out}, s28",
        w = inout(reg) w => _,
        x = inout(reg) x => _,
        n = inout(reg) nb => _,
        out = lateout(reg) out
    );
    f32::from_bits(out)
}

/// F16 weights · F16 activations, eight values a step (`vcvt.f32.f16`, `vmla.f32` into two accumulators).
///
/// # Safety
/// `nb >= 1`; `w` and `x` hold `8 * nb` halves; [`available`].
unsafe fn f16_neon(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let out: u32;
    neon_asm!([readonly]
        "vmov.i32 q6, #0",
        "vmov.i32 q7, #0",
        "2:",
        "vld1.16 {{d0-d1}}, [{w}]!",
        "vld1.16 {{d2-d3}}, [{x}]!",
        "vcvt.f32.f16 q2, d0",
        "vcvt.f32.f16 q3, d1",
        "vcvt.f32.f16 q4, d2",
        "vcvt.f32.f16 q5, d3",
        "vmla.f32 q6, q2, q4",
        "vmla.f32 q7, q3, q5",
        "subs {n}, {n}, #1",
        "bne 2b",
        "vadd.f32 q7, q7, q6",
        hsum_q7_f32!(),
        "vmov {out}, s28",
        w = inout(reg) w => _,
        x = inout(reg) x => _,
        n = inout(reg) nb => _,
        out = lateout(reg) out
    );
    f32::from_bits(out)
}

// ---- K-quants (256-value blocks against Q8_K activations: f32 d, i8 qs[256], i16 bsums[16]) ----

/// One 64-value step `j` of [`q4_k_block`]: 32 bytes of nibbles (low: sub-block `2j`, high: `2j + 1`) against
/// 64 activations, with the two sub-block scales `$lo`, `$hi` (16-bit lanes of `d6`/`d7`).
macro_rules! q4k_step {
    ($lo:literal, $hi:literal) => {
        concat!(
            "vld1.8 {{d0-d1}}, [{q}]!\n",
            "vld1.8 {{d4-d5}}, [{y}]!\n", // activations 0..16 of sub-block 2j
            "vand q1, q0, q4\n",
            "vshr.u8 q0, q0, #4\n",
            "vmull.s8 q5, d2, d4\n",
            "vmlal.s8 q5, d3, d5\n",
            "vld1.8 {{d4-d5}}, [{y2}]!\n", // activations 0..16 of sub-block 2j + 1
            "vmull.s8 q6, d0, d4\n",
            "vmlal.s8 q6, d1, d5\n",
            "vld1.8 {{d0-d1}}, [{q}]!\n",
            "vld1.8 {{d4-d5}}, [{y}], {step}\n", // 16..32 of sub-block 2j; then on to sub-block 2j + 2
            "vand q1, q0, q4\n",
            "vshr.u8 q0, q0, #4\n",
            "vmlal.s8 q5, d2, d4\n",
            "vmlal.s8 q5, d3, d5\n",
            "vld1.8 {{d4-d5}}, [{y2}], {step}\n",
            "vmlal.s8 q6, d0, d4\n",
            "vmlal.s8 q6, d1, d5\n",
            "vmlal.s16 q7, d10, ",
            $lo,
            "\n",
            "vmlal.s16 q7, d11, ",
            $lo,
            "\n",
            "vmlal.s16 q7, d12, ",
            $hi,
            "\n",
            "vmlal.s16 q7, d13, ",
            $hi,
            "\n",
        )
    };
}

/// `Σ scale[s] · Σ nibble·q` over the 8 sub-blocks of one Q4_K block (`q` its 128 bytes of nibbles, `y` the 256
/// activations, `sm` the 6-bit sub-block scales then mins, one byte each), and `Σ min[s] · Σ q` over the sub-blocks
/// from the activations' 16 sums of 16 (`bsums`).
///
/// No i16 overflow: a lane sums four products of at most 15 * 128, and a pair of `bsums` is at most 32 * 128; the
/// scales and mins (at most 63) multiply into i32.
///
/// # Safety
/// `q` points to 128 readable bytes, `y` to 256, `bsums` to 16 i16; [`available`].
#[inline(always)]
unsafe fn q4_k_block(q: *const u8, y: *const u8, sm: &[u8; 16], bsums: *const u8) -> (i32, i32) {
    let (out, outm): (i32, i32);
    neon_asm!([readonly]
        "vld1.8 {{d10}}, [{sc}]!",
        "vmovl.u8 q3, d10",
        "vmov.i8 q4, #0x0f",
        "vmov.i32 q7, #0",
        q4k_step!("d6[0]", "d6[1]"),
        q4k_step!("d6[2]", "d6[3]"),
        q4k_step!("d7[0]", "d7[1]"),
        q4k_step!("d7[2]", "d7[3]"),
        hsum_q7_i32!(),
        // Σ min · (bsum[2s] + bsum[2s + 1]).
        "vld1.8 {{d10}}, [{sc}]",
        "vmovl.u8 q0, d10",
        "vld1.16 {{d2-d5}}, [{bs}]",
        "vpadd.i16 d2, d2, d3",
        "vpadd.i16 d3, d4, d5",
        "vmull.s16 q2, d0, d2",
        "vmlal.s16 q2, d1, d3",
        "vadd.i32 d4, d4, d5",
        "vpadd.i32 d4, d4, d4",
        "vmov {outm}, s8",
        q = inout(reg) q => _,
        y = inout(reg) y => _,
        y2 = inout(reg) y.add(32) => _,
        step = in(reg) 48usize,
        sc = inout(reg) sm.as_ptr() => _,
        bs = in(reg) bsums,
        // (written before `sc` and `bs` are last read: not a late output)
        out = out(reg) out,
        outm = lateout(reg) outm
    );
    (out, outm)
}

/// Q4_K weights (f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles) · Q8_K activations.
///
/// # Safety
/// `w` holds `nb` blocks of 144 bytes, `x` `nb` blocks of 292; [`available`].
unsafe fn q4_k_neon(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let mut total = 0.0f32;
    for i in 0..nb {
        let (wb, xb) = (w.add(144 * i), x.add(292 * i));
        let sm = k4_scales_mins(wb.add(4));
        let (sumi, summ) = q4_k_block(wb.add(16), xb.add(4), &sm, xb.add(260));
        let dx = q8k_d(xb);
        let (d, dmin) = fp16_pair(wb);
        total += d * dx * sumi as f32 - dmin * dx * summ as f32;
    }
    total
}

/// The eight 6-bit scales then the eight 6-bit mins of a Q4_K block from its 12 packed bytes at `p` (as
/// `quant::k4_scale_min` unpacks them one at a time), four at a time in 32-bit words: scale `j < 4` is the low six
/// bits of byte `j`, min `j < 4` of byte `j + 4`; scale `j >= 4` is the low nibble of byte `j + 4` with the top two
/// bits of byte `j - 4` above it, min `j >= 4` the high nibble of byte `j + 4` with the top two bits of byte `j`.
///
/// # Safety
/// `p` points to 12 readable bytes.
#[inline(always)]
unsafe fn k4_scales_mins(p: *const u8) -> [u8; 16] {
    const LOW6: u32 = 0x3f3f_3f3f;
    const LOW4: u32 = 0x0f0f_0f0f;
    const LOW2: u32 = 0x0303_0303;
    let word = |k: usize| u32::from_le_bytes(std::ptr::read_unaligned(p.add(4 * k) as *const [u8; 4]));
    let (u0, u1, u2) = (word(0), word(1), word(2));
    let words =
        [u0 & LOW6, (u2 & LOW4) | (((u0 >> 6) & LOW2) << 4), u1 & LOW6, ((u2 >> 4) & LOW4) | (((u1 >> 6) & LOW2) << 4)];
    let mut out = [0u8; 16];
    for (o, w) in out.chunks_exact_mut(4).zip(words) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    out
}

/// One 16-position chunk `(half, part)` of [`q6_k_block`]: the 6-bit values `32k + l` (k = 0..4, l the chunk's 16
/// positions) of one half, each against its 16 activations at `{y} + $yoff + 32k`, times its group scale (lane `k`
/// of the 4 scales loaded into `d0`). Registers: `q1` low bits a (`ql[l]`), `q2` low bits b (`ql[32 + l]`), `q3`
/// high bits h (`qh[l]`). Each value is assembled with shift-and-insert and no masks:
/// `q = ((h << 6) | (a_lo << 2)) >> 2` etc.
macro_rules! q6k_chunk {
    ($yoff:literal) => {
        concat!(
            "vld1.16 {{d0}}, [{sc}]!\n",
            "vld1.8 {{d2-d3}}, [{a}]!\n",
            "vld1.8 {{d4-d5}}, [{b}]!\n",
            "vld1.8 {{d6-d7}}, [{h}]!\n",
            "add {yk}, {y}, #",
            $yoff,
            "\n",
            // k = 0: (a & 15) | (h & 3) << 4
            "vshl.i8 q5, q1, #4\n",
            "vshl.i8 q4, q3, #6\n",
            "vsri.8 q4, q5, #2\n",
            "vshr.u8 q4, q4, #2\n",
            "vld1.8 {{d10-d11}}, [{yk}], {r32}\n",
            "vmull.s8 q6, d8, d10\n",
            "vmlal.s8 q6, d9, d11\n",
            "vmlal.s16 q7, d12, d0[0]\n",
            "vmlal.s16 q7, d13, d0[0]\n",
            // k = 1: (b & 15) | (h >> 2 & 3) << 4
            "vshl.i8 q5, q2, #4\n",
            "vshl.i8 q4, q3, #4\n",
            "vsri.8 q4, q5, #2\n",
            "vshr.u8 q4, q4, #2\n",
            "vld1.8 {{d10-d11}}, [{yk}], {r32}\n",
            "vmull.s8 q6, d8, d10\n",
            "vmlal.s8 q6, d9, d11\n",
            "vmlal.s16 q7, d12, d0[1]\n",
            "vmlal.s16 q7, d13, d0[1]\n",
            // k = 2: (a >> 4) | (h >> 4 & 3) << 4  (the bits of a shifted below bit 0 fall out)
            "vshl.i8 q4, q3, #2\n",
            "vsri.8 q4, q1, #2\n",
            "vshr.u8 q4, q4, #2\n",
            "vld1.8 {{d10-d11}}, [{yk}], {r32}\n",
            "vmull.s8 q6, d8, d10\n",
            "vmlal.s8 q6, d9, d11\n",
            "vmlal.s16 q7, d12, d0[2]\n",
            "vmlal.s16 q7, d13, d0[2]\n",
            // k = 3: (b >> 4) | (h >> 6) << 4
            "vsri.8 q3, q2, #2\n",
            "vshr.u8 q3, q3, #2\n",
            "vld1.8 {{d10-d11}}, [{yk}]\n",
            "vmull.s8 q6, d6, d10\n",
            "vmlal.s8 q6, d7, d11\n",
            "vmlal.s16 q7, d12, d0[3]\n",
            "vmlal.s16 q7, d13, d0[3]\n",
        )
    };
}

/// The integer dot product of one Q6_K block (`w` at the block: ql[128], qh[64], i8 scales[16]) with one Q8_K
/// block (`xb`): `Σ scale[g] Σ (q - 32)·y`, computed as `Σ scale[g] Σ q·y - 32 Σ scale[g]·bsum[g]` so that the
/// unsigned 6-bit values multiply directly. The scales are first reordered (into `tmp`) so that each chunk's four
/// scales (groups `8 half + 2k + part`) are one d register: `vuzp` splits even and odd groups.
///
/// No overflow: a lane sums two products of at most 63 * 128; |Σ 32 scale·bsum| <= 32 * 16 * 128 * 2048.
///
/// # Safety
/// `w` points to a 210-byte block, `xb` to a 292-byte block; [`available`].
#[inline(always)]
unsafe fn q6_k_block(w: *const u8, xb: *const u8) -> i32 {
    let mut tmp = [0i16; 16];
    let out: i32;
    neon_asm!([]
        // -32 Σ scale·bsum into q7 (the accumulator).
        "vld1.8 {{d0-d1}}, [{scales}]",
        "vmovl.s8 q1, d0",
        "vmovl.s8 q2, d1",
        "vld1.16 {{d8-d11}}, [{bsums}]",
        "vmull.s16 q7, d2, d8",
        "vmlal.s16 q7, d3, d9",
        "vmlal.s16 q7, d4, d10",
        "vmlal.s16 q7, d5, d11",
        "vshl.i32 q7, q7, #5",
        "vneg.s32 q7, q7",
        // Chunk order of the scales: (half 0, part 0): groups 0 2 4 6; (0, 1): 1 3 5 7; (1, 0): 8 ..; (1, 1): 9 ...
        "vuzp.16 d2, d3",
        "vuzp.16 d4, d5",
        "vst1.16 {{d2-d5}}, [{sc}]",
        q6k_chunk!("0"),
        q6k_chunk!("16"),
        "add {a}, {a}, #32",
        "add {b}, {b}, #32",
        q6k_chunk!("128"),
        q6k_chunk!("144"),
        hsum_q7_i32!(),
        scales = in(reg) w.add(192),
        bsums = in(reg) xb.add(260),
        sc = inout(reg) tmp.as_mut_ptr() => _,
        a = inout(reg) w => _,
        b = inout(reg) w.add(32) => _,
        h = inout(reg) w.add(128) => _,
        y = in(reg) xb.add(4),
        yk = out(reg) _,
        r32 = in(reg) 32usize,
        out = lateout(reg) out
    );
    out
}

/// Q6_K weights · Q8_K activations.
///
/// # Safety
/// `w` holds `nb` blocks of 210 bytes, `x` `nb` blocks of 292; [`available`].
unsafe fn q6_k_neon(nb: usize, w: *const u8, x: *const u8) -> f32 {
    let mut total = 0.0f32;
    for i in 0..nb {
        let (wb, xb) = (w.add(210 * i), x.add(292 * i));
        let sumi = q6_k_block(wb, xb);
        total += fp16(wb.add(208)) * q8k_d(xb) * sumi as f32;
    }
    total
}

#[cfg(test)]
mod tests {
    //! Each kernel against the scalar reference on blocks of raw bytes: every nibble and 6-bit pattern, weights of
    //! -128, activations of -128 where the format allows them, zero, subnormal and largest f16 scales. (The shared
    //! tests in `simd::tests` add quantized random rows.) Runs only where the kernels exist: `available()`.

    use super::*;
    use crate::quant;

    /// Deterministic pseudo-random bytes.
    fn bytes(seed: u64, n: usize) -> Vec<u8> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 32) as u8
            })
            .collect()
    }

    /// A finite f16 scale: mostly moderate of either sign, sometimes zero, the smallest subnormal or the largest.
    fn scale_bits(r: u8, r2: u8) -> u16 {
        match r % 16 {
            0 => 0,
            1 => 0x0001,
            2 => 0x7BFF,
            3 => 0x83FF,                                                     // a negative subnormal
            _ => (((r as u16) & 0x80) << 8) | (0x1800 + ((r2 as u16) << 4)), // ±[2^-9, 2^-1)
        }
    }

    /// Raw weight bytes of `nb` blocks of `ty` with finite f16 scales at the format's scale offsets.
    fn raw_weights(ty: GgmlType, seed: u64, nb: usize) -> Vec<u8> {
        let (block, offsets): (usize, &[usize]) = match ty {
            GgmlType::Q4_0 => (18, &[0]),
            GgmlType::Q4_1 => (20, &[0, 2]),
            GgmlType::Q5_0 => (22, &[0]),
            GgmlType::Q8_0 => (34, &[0]),
            GgmlType::Q4_K => (144, &[0, 2]),
            GgmlType::Q6_K => (210, &[208]),
            _ => unreachable!(),
        };
        let mut w = bytes(seed, block * nb);
        let r = bytes(seed + 7, 2 * offsets.len() * nb);
        for (i, b) in w.chunks_exact_mut(block).enumerate() {
            for (k, &o) in offsets.iter().enumerate() {
                let j = 2 * (i * offsets.len() + k);
                b[o..o + 2].copy_from_slice(&scale_bits(r[j], r[j + 1]).to_le_bytes());
            }
        }
        w
    }

    /// Raw activations of `nb` blocks in the dot-product format of `ty`, consistent as the quantizers make them:
    /// Q8_0 quants in -127..=127 (the Q8_0 quantizer clamps), Q8_1 `s = d * Σ q`, Q8_K `bsums` the group sums.
    fn raw_activations(ty: GgmlType, seed: u64, nb: usize) -> Vec<u8> {
        let xt = quant::vec_dot_type(ty);
        let r = bytes(seed, 4 * nb);
        let mut x = bytes(seed + 1, xt.block_bytes() * nb);
        for (i, b) in x.chunks_exact_mut(xt.block_bytes()).enumerate() {
            let d = scale_bits(r[4 * i], r[4 * i + 1]);
            match xt {
                GgmlType::Q8_0 => {
                    b[0..2].copy_from_slice(&d.to_le_bytes());
                    b[2..].iter_mut().for_each(|q| *q = (*q as i8).max(-127) as u8);
                }
                GgmlType::Q8_1 => {
                    // s = d Σ q must stay finite, as the quantizer's does: no largest-f16 scale here.
                    let d = if d == 0x7BFF { 0x4BFF } else { d };
                    let sum: i32 = b[4..].iter().map(|&q| q as i8 as i32).sum();
                    let s = half::f16::from_bits(d).to_f32() * sum as f32;
                    b[0..2].copy_from_slice(&d.to_le_bytes());
                    b[2..4].copy_from_slice(&half::f16::from_f32(s).to_bits().to_le_bytes());
                }
                GgmlType::Q8_K => {
                    let d = (r[4 * i + 2] as f32 + 1.0) / 4096.0;
                    b[0..4].copy_from_slice(&d.to_le_bytes());
                    for g in 0..16 {
                        let s: i32 = b[4 + 16 * g..20 + 16 * g].iter().map(|&q| q as i8 as i32).sum();
                        b[260 + 2 * g..262 + 2 * g].copy_from_slice(&(s as i16).to_le_bytes());
                    }
                }
                _ => unreachable!(),
            }
        }
        x
    }

    fn check(ty: GgmlType, n: usize, w: &[u8], x: &[u8], what: &str) {
        let k = kernel(ty).expect("a NEON kernel");
        let want = quant::vec_dot(ty, n, w, x).unwrap();
        let got = k(n, w, x);
        let (mut wd, mut xd) = (vec![0f32; n], vec![0f32; n]);
        quant::dequantize_row(ty, w, &mut wd).unwrap();
        quant::dequantize_row(quant::vec_dot_type(ty), x, &mut xd).unwrap();
        // (For Q4_1 this includes the `m s` terms: |m s| <= Σ |m d q|.)
        let magnitude: f32 = wd.iter().zip(&xd).map(|(a, b)| (a * b).abs()).sum();
        let tol = 2e-5 * magnitude + 1e-6;
        assert!((want - got).abs() <= tol, "{ty} {what}: n={n} reference {want} neon {got} (tol {tol})");
    }

    #[test]
    fn kernels_match_the_reference_on_raw_blocks() {
        if !available() {
            return;
        }
        for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K] {
            for n in [0usize, 256, 512, 4096] {
                let nb = n / ty.block_size();
                for seed in 0..8u64 {
                    let (w, x) = (raw_weights(ty, seed, nb), raw_activations(ty, seed + 100, nb));
                    check(ty, n, &w, &x, &format!("raw seed {seed}"));
                }
                // Extreme quants: every weight byte 0x00, 0xFF, 0x80 (-128 in Q8_0), 0x88.
                for fill in [0x00u8, 0xFF, 0x80, 0x88] {
                    let mut w = raw_weights(ty, 1, nb);
                    let mut x = raw_activations(ty, 2, nb);
                    let (bb, xb) = (ty.block_bytes(), quant::vec_dot_type(ty).block_bytes());
                    for b in w.chunks_exact_mut(bb) {
                        let (lo, hi) = match ty {
                            GgmlType::Q4_0 | GgmlType::Q8_0 => (2, bb),
                            GgmlType::Q4_1 => (4, bb),
                            // Q5_0: the fifth bits and the nibbles.
                            GgmlType::Q5_0 => (2, bb),
                            GgmlType::Q4_K => (16, bb),
                            _ => (0, 208),
                        };
                        b[lo..hi].fill(fill);
                    }
                    // Activations at the end of their range (-128 where the format allows it).
                    let q = if quant::vec_dot_type(ty) == GgmlType::Q8_0 { -127i8 } else { -128 };
                    for b in x.chunks_exact_mut(xb) {
                        let qs = xb - if xb == 292 { 288 } else { 32 };
                        b[qs..qs + if xb == 292 { 256 } else { 32 }].fill(q as u8);
                    }
                    let x = if xb == 292 { refresh_bsums(x) } else { x };
                    check(ty, n, &w, &x, &format!("weights {fill:#04x}, activations {q}"));
                }
            }
        }
    }

    /// The GEMV entries give each row's dot product bit for bit (the decode candidate declared identical to the
    /// one-row prefill kernel).
    #[test]
    fn gemv_entries_equal_the_dot_products_bit_for_bit() {
        if !available() {
            return;
        }
        for ty in [GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q4_K, GgmlType::Q6_K] {
            let (n, rows) = (512, 5);
            let nb = n / ty.block_size();
            let w = raw_weights(ty, 3, nb * rows);
            let x = raw_activations(ty, 4, nb);
            let row_bytes = ty.block_bytes() * nb;
            let xr = ActivationRows {
                bytes: &x,
                row_bytes: x.len(),
                blocks_per_row: nb,
                scales_per_block: 0,
                scales: &[],
                sums: &[],
            };
            let mut out = vec![f32::NAN; rows];
            gemv(ty).unwrap()(n, &w, row_bytes, &xr, &mut out);
            for (r, got) in out.iter().enumerate() {
                let want = kernel(ty).unwrap()(n, &w[r * row_bytes..(r + 1) * row_bytes], &x);
                assert_eq!(want.to_bits(), got.to_bits(), "{ty} row {r}");
            }
        }
        assert!(gemv(GgmlType::F16).is_some() && gemv(GgmlType::Q4_0).is_none());
    }

    /// Recomputes the `bsums` of Q8_K blocks after their quants changed.
    fn refresh_bsums(mut x: Vec<u8>) -> Vec<u8> {
        for b in x.chunks_exact_mut(292) {
            for g in 0..16 {
                let s: i32 = b[4 + 16 * g..20 + 16 * g].iter().map(|&q| q as i8 as i32).sum();
                b[260 + 2 * g..262 + 2 * g].copy_from_slice(&(s as i16).to_le_bytes());
            }
        }
        x
    }

    #[test]
    fn f16_kernel_matches_the_reference_on_short_rows() {
        if !available() {
            return;
        }
        for n in [0usize, 8, 16, 72] {
            let w: Vec<u8> = (0..n).flat_map(|i| half::f16::from_f32(i as f32 * 0.37 - 5.0).to_le_bytes()).collect();
            let x: Vec<u8> = (0..n).flat_map(|i| half::f16::from_f32(1.5 - i as f32 * 0.11).to_le_bytes()).collect();
            let want = quant::vec_dot(GgmlType::F16, n, &w, &x).unwrap();
            let got = kernel(GgmlType::F16).unwrap()(n, &w, &x);
            assert!((want - got).abs() <= 1e-3, "n={n}: reference {want} neon {got}");
        }
    }
}
