//! The x86-64 Q4_0 row kernel shared by the `avx2-row` tile and the `avx2-gemv` / `avx512vnni-gemv` decode
//! kernels: one weight row against up to four Q8_0 activation rows, with the least work per weight block that the
//! zero-copy Q4_0 layout (18-byte blocks: f16 `d`, 16 bytes of nibbles) allows, so that decode is bound by memory
//! bandwidth and not by instructions.
//!
//! - The nibbles are used as unsigned bytes (0..15) against the signed activations, and the `- 8` of every weight
//!   is folded into the activation block sum the matmul prepares once per token:
//!   `sum (q - 8) y = sum q y - 8 * sum y`. So a block is one 16-byte load, a shift, an insert and a mask, then one
//!   `vpdpbusd` per token (`vpmaddubsw` + `vpmaddwd` without VNNI: `15 * 128 * 2` never saturates), instead of the
//!   `vpsignb` pair and the per-block float conversion and scaling of the former kernel.
//! - The float work is done once per eight blocks: the eight blocks' integer dots are reduced to one vector (lane
//!   `j` = block `j` of the group) by a tree of `vphaddd`, then one conversion, one multiplication of the eight
//!   weight scales by the eight activation scales, and one FMA.
//!
//! Every result is the same whatever the flavour (AVX2 or VNNI: the integer sums are exact) and whatever the
//! number of tokens of a call: per token, lane `j` of its accumulator sums `float(isum_b) * (dw_b * dx_b)` over the
//! blocks `b = j mod 8` in order, and the eight lanes are added in one fixed order at the end. So the decode
//! kernels are bit-identical to the `avx2-row` tile (batched prefill on the AVX2 path).

use std::arch::x86_64::*;

use super::tile_common::{Tok, Q4_0_BYTES, Q8_0_BYTES, Q8_0_QS};
use super::x86_common::{dot4_acc, hsum_ps, load256, nibbles32, rd_u16};

/// Blocks whose float steps are done together (one f32 lane each).
const GROUP: usize = 8;

/// The f16 scales of blocks `b0 .. b0 + count` of the row at `w` as f32 lanes (0 in the lanes past `count`).
#[inline(always)]
unsafe fn weight_scales(w: *const u8, b0: usize, count: usize) -> __m256 {
    let h = |k: usize| if k < count { rd_u16(w.add((b0 + k) * Q4_0_BYTES)) as u32 } else { 0 };
    let pair = |k: usize| (h(k) | h(k + 1) << 16) as i32;
    _mm256_cvtph_ps(_mm_set_epi32(pair(6), pair(4), pair(2), pair(0)))
}

/// Lanes `0 .. count` set (all bits), the others clear.
#[inline(always)]
unsafe fn lane_mask(count: usize) -> __m256i {
    _mm256_cmpgt_epi32(_mm256_set1_epi32(count as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}

/// Eight vectors of per-block partial sums (vector `k` belongs to block `k`) reduced to one: lane `k` holds the
/// sum of vector `k`'s lanes.
#[inline(always)]
unsafe fn reduce8(d: &[__m256i; GROUP]) -> __m256i {
    let (h01, h23) = (_mm256_hadd_epi32(d[0], d[1]), _mm256_hadd_epi32(d[2], d[3]));
    let (h45, h67) = (_mm256_hadd_epi32(d[4], d[5]), _mm256_hadd_epi32(d[6], d[7]));
    // Per 128-bit half: the sums of blocks 0..4 (resp. 4..8) over that half's lanes.
    let (q0, q1) = (_mm256_hadd_epi32(h01, h23), _mm256_hadd_epi32(h45, h67));
    _mm256_add_epi32(_mm256_permute2x128_si256::<0x20>(q0, q1), _mm256_permute2x128_si256::<0x31>(q0, q1))
}

/// Bytes ahead of the weights being read that one-token calls ask the caches for. Decode reads a run of rows in
/// address order, so this also reaches into the next row. (TinyLlama-shaped Q4_0 decode on an AVX2-only Zen 3 VM
/// under load, one thread, interleaved runs of 32 tokens, median CPU time: 1024 bytes ahead 0.90 to 0.95 of none,
/// 2048 bytes ahead 0.94 of 1024.)
const PREFETCH: usize = 2048;

/// Asks for the cache lines [`PREFETCH`] bytes past group `b0` (eight blocks, 144 bytes) of the row at `w`.
/// Prefetches never fault: addresses past the end of the weights are harmless.
#[inline(always)]
unsafe fn prefetch_group(w: *const u8, b0: usize) {
    for line in 0..3 {
        _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add(b0 * Q4_0_BYTES + PREFETCH + 64 * line) as *const i8);
    }
}

/// One group of `count` (1 to 8; a compile-time 8 for whole groups) blocks from block `b0` of the row at `w` into
/// each token's accumulator.
#[inline(always)]
unsafe fn group<const VNNI: bool, const NT: usize>(
    w: *const u8,
    b0: usize,
    count: usize,
    t: &[Tok; NT],
    acc: &mut [__m256; NT],
) {
    // The weights are unpacked once and shared by the tokens (eight registers).
    let mut q = [_mm256_setzero_si256(); GROUP];
    for (k, v) in q.iter_mut().enumerate().take(count) {
        *v = nibbles32(w.add((b0 + k) * Q4_0_BYTES + 2));
    }
    let dw = weight_scales(w, b0, count);
    let mask = lane_mask(count);
    for i in 0..NT {
        let mut d = [_mm256_setzero_si256(); GROUP];
        for (k, (dk, qk)) in d.iter_mut().zip(&q).enumerate().take(count) {
            *dk = dot4_acc::<VNNI>(_mm256_setzero_si256(), *qk, load256(t[i].x.add((b0 + k) * Q8_0_BYTES + Q8_0_QS)));
        }
        let (sums, dx) = if count == GROUP {
            (load256(t[i].sum.add(b0) as *const u8), _mm256_loadu_ps(t[i].s.add(b0)))
        } else {
            (_mm256_maskload_epi32(t[i].sum.add(b0), mask), _mm256_maskload_ps(t[i].s.add(b0), mask))
        };
        let isum = _mm256_sub_epi32(reduce8(&d), _mm256_slli_epi32::<3>(sums));
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, dx), acc[i]);
    }
}

/// The dot products of the Q4_0 row at `w` (`nb` blocks) with each token's Q8_0 row (with its prepared f32 scales
/// and block sums).
///
/// # Safety
/// AVX2/FMA/F16C (and with `VNNI`, AVX-512 VNNI + VL) are present; the row holds `nb` blocks and every token's
/// row, scales and sums hold `nb` blocks.
#[inline(always)]
pub(super) unsafe fn q4_0_row<const VNNI: bool, const NT: usize>(nb: usize, w: *const u8, t: &[Tok; NT]) -> [f32; NT] {
    let mut acc = [_mm256_setzero_ps(); NT];
    let mut b0 = 0;
    while b0 + GROUP <= nb {
        if NT == 1 {
            prefetch_group(w, b0);
        }
        group::<VNNI, NT>(w, b0, GROUP, t, &mut acc);
        b0 += GROUP;
    }
    if b0 < nb {
        group::<VNNI, NT>(w, b0, nb - b0, t, &mut acc);
    }
    let mut out = [0f32; NT];
    for (o, a) in out.iter_mut().zip(&acc) {
        *o = hsum_ps(*a);
    }
    out
}
