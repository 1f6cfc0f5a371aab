//! Scalar IEEE half-precision conversion, the bottom of the kernel stack: every block scale of the quantized
//! formats and every F16 value is converted through these two functions (the row-wide SIMD conversions in
//! [`crate::simd`] build on them for their tails).
//!
//! On aarch64 each is one `fcvt` (base ARMv8 FP). The `half` crate uses hardware there only with FEAT_FP16, which
//! the Cortex-A53/A72 lack, and otherwise takes ~28 instructions per value. On 32-bit ARM each is one VFP
//! `vcvtb` when the CPU has VFPv4 (every Raspberry Pi from the Pi 2 on; read once from `AT_HWCAP`), which follows
//! FPSCR (round to nearest even, no flush to zero, NaN payloads kept: the Linux default that nothing in this
//! process changes). Elsewhere the `half` crate is used.
//! f16 -> f32 is exact; f32 -> f16 rounds to nearest, ties to even (FPCR's default mode, which nothing in this
//! process changes), and keeps NaNs quiet NaNs with the top mantissa bits and sign, exactly as `half` does (the
//! SIMD tests compare both bit for bit).

/// One IEEE half (little-endian bits as `u16`) as f32; exact.
#[inline(always)]
pub fn f16_to_f32(bits: u16) -> f32 {
    #[cfg(target_arch = "arm")]
    if arm::has_vfpv4() {
        let out: f32;
        // SAFETY: VFPv4 has the conversion (checked above); it only reads and writes the named registers.
        unsafe {
            core::arch::asm!(".fpu neon-vfpv4", "vcvtb.f32.f16 {o}, {i}", o = lateout(sreg) out, i = in(sreg) bits as i32,
                options(pure, nomem, nostack, preserves_flags));
        }
        return out;
    }
    #[cfg(target_arch = "aarch64")]
    {
        let out: f32;
        // SAFETY: `fcvt` is base ARMv8 FP; the instruction only reads and writes the named registers.
        unsafe {
            std::arch::asm!("fcvt {o:s}, {i:h}", o = lateout(vreg) out, i = in(vreg) bits as i16,
                options(pure, nomem, nostack, preserves_flags));
        }
        out
    }
    #[cfg(not(target_arch = "aarch64"))]
    half::f16::from_bits(bits).to_f32()
}

/// `v` as IEEE half bits, rounded to nearest, ties to even (exactly `half::f16::from_f32`).
#[inline(always)]
pub fn f32_to_f16(v: f32) -> u16 {
    #[cfg(target_arch = "arm")]
    if arm::has_vfpv4() {
        let out: f32;
        // SAFETY: as in `f16_to_f32`. The instruction writes the bottom half of the register; the top half keeps
        // the input's bits (an `inout`), cut off below.
        unsafe {
            core::arch::asm!(".fpu neon-vfpv4", "vcvtb.f16.f32 {o}, {o}", o = inout(sreg) v => out,
                options(pure, nomem, nostack, preserves_flags));
        }
        return out.to_bits() as u16;
    }
    #[cfg(target_arch = "aarch64")]
    {
        let out: i16;
        // SAFETY: as in `f16_to_f32`.
        unsafe {
            std::arch::asm!("fcvt {o:h}, {i:s}", o = lateout(vreg) out, i = in(vreg) v,
                options(pure, nomem, nostack, preserves_flags));
        }
        out as u16
    }
    #[cfg(not(target_arch = "aarch64"))]
    half::f16::from_f32(v).to_bits()
}

#[cfg(target_arch = "arm")]
mod arm {
    use std::sync::OnceLock;

    /// `AT_HWCAP` bit: VFPv4 (fused multiply-add and the half-precision conversions).
    const HWCAP_VFPV4: libc::c_ulong = 1 << 16;

    /// Whether this CPU has VFPv4 (read once from the kernel's hardware capabilities).
    pub(super) fn has_vfpv4() -> bool {
        static HAS: OnceLock<bool> = OnceLock::new();
        // SAFETY: getauxval only reads the process's auxiliary vector; AT_HWCAP is always present on Linux.
        *HAS.get_or_init(|| unsafe { libc::getauxval(libc::AT_HWCAP) } & HWCAP_VFPV4 != 0)
    }
}
