//! What every x86-64 kernel file shares: the CPU feature checks that gate them, and the small AVX2 helpers (f16
//! loads, 256-bit loads, the horizontal sum, nibble unpacking) that are inlined into their `#[target_feature]`
//! functions.

use std::arch::x86_64::*;

/// Whether this CPU has AVX2, FMA and F16C (every x86-64 kernel needs them).
pub fn avx2_available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
}

/// Whether this CPU has AVX-512 VNNI with 256-bit (VL) and byte/word (BW) instructions (the `avx512vnni-*`
/// kernels, on top of [`avx2_available`]). Always false in a build without the `avx512` feature: the AVX-512
/// kernels are then unreachable, and the linker leaves them out (about 90 KB of a stripped libpicolm.so).
pub fn avx512vnni_available() -> bool {
    cfg!(feature = "avx512")
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512vnni")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512bw")
}

/// The little-endian u16 at `p`.
#[inline(always)]
pub(super) unsafe fn rd_u16(p: *const u8) -> u16 {
    u16::from_le_bytes([*p, *p.add(1)])
}

/// The f16 at `p` as f32 (F16C).
#[inline(always)]
pub(super) unsafe fn fp16(p: *const u8) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(rd_u16(p) as i32)))
}

/// 32 bytes at `p` (unaligned).
#[inline(always)]
pub(super) unsafe fn load256(p: *const u8) -> __m256i {
    _mm256_loadu_si256(p as *const __m256i)
}

/// The sum of the eight lanes.
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

/// `acc` plus, per i32 lane, the sum of four products of the unsigned bytes of `u` and the signed bytes of `s`
/// (`vpdpbusd` with VNNI, for callers compiled with AVX-512 VNNI + VL; `vpmaddubsw` + `vpmaddwd` without, whose pair sums saturate as in the tile kernels).
#[inline(always)]
pub(super) unsafe fn dot4_acc<const VNNI: bool>(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
    if VNNI {
        _mm256_dpbusd_epi32(acc, u, s)
    } else {
        _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)))
    }
}
