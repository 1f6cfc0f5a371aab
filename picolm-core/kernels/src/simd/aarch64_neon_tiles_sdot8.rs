//! aarch64 `sdot` tiles of four weight rows by up to eight tokens for the 32-value formats without a min (Q4_0,
//! Q5_0, Q8_0): `neon-sdot-4x8`, the prefill kernel of those formats on CPUs with FEAT_DotProd (Cortex-A76 of the
//! Pi 5, Cortex-A55 and later).
//!
//! The four rows' decoded weight blocks are interleaved in registers (no repacking in memory: rows are read in
//! place from the memory map), four bytes at a time: vector `4h + k` holds in lane `r` the weights `16h + 4k ..
//! 16h + 4k + 4` of row `r`. Then `sdot` by element (`sdot v.4s, w.16b, y.4b[k]`) multiplies the four rows with
//! four activations of one token at once and leaves each row's sum in its own lane, so a token's block costs eight
//! `sdot` into one zeroed register and nothing to reduce, where the 4x4 tile (`aarch64_neon_tiles.rs`) needs a
//! zeroed register per row and three pairwise additions. Q4_0 and Q8_0 interleave while loading (`ld4` to one lane
//! per row: one instruction per row and 16 bytes); Q5_0 decodes each row and transposes (`trn1`/`trn2`). Eight
//! tokens share each decoded block (the 4x4 tile shares it between four).
//!
//! The one-token form ([`gemv_rows`], the decode kernel through `aarch64_neon_gemv.rs`) takes eight rows per pass as
//! one hand-scheduled `asm!` loop per format ([`Interleave::gemv8`]), every row interleaved by `ld4` while loading.
//! Q5_0's loop does not decode and transpose: it loads each row's scale and `qh` by one `ld3`, spreads the fifth
//! bits over the interleaved bytes (`tbl`, then `cmtst` against one bit per byte: 0xFF where the fifth bit is 0,
//! the high nibble of the weight) and merges the nibbles below them (`bit`, `sri`): 88 instructions per block for
//! the eight rows against Q4_0's 64 (SmolLM2-135M Q5_0 decode on Cortex-A76 under qemu: 48.0 M guest instructions
//! per token instead of 115.8 M with [`gemv_rows`]).
//!
//! The float steps are the 4x4 tile's (`acc = fma(acc, f32(isum_r), d_r * d_x)` per block and token) and integer
//! sums are exact however they are formed, so the results equal the 4x4 tile's and the GEMV entry's
//! (`aarch64_neon_gemv.rs`) bit for bit, for any split into tiles.

use std::arch::aarch64::*;

use super::aarch64_neon::transpose_f32;
use super::aarch64_neon_tiles::{row_scales, Format, Q4_0, Q5_0, Q8_0};
use super::tile_common::{self, Layout};
use super::{ActivationRows, TileFn, TileKernel, TileShape};
use crate::ggml_type::GgmlType;

/// Weight rows per call: the four lanes of an i32 (and f32) vector.
const ROWS: usize = 4;
/// Tokens per call: eight f32 accumulators beside the eight interleaved weight registers.
const TOKENS: usize = 8;
/// Rows per call: four groups of [`ROWS`], so that one check and one call serve sixteen rows.
const MAX_ROWS: usize = ROWS * 4;

/// The `neon-sdot-4x8` tile for weights of type `ty` (call it only when the CPU has FEAT_DotProd).
pub fn kernel(ty: GgmlType) -> Option<(&'static str, TileKernel)> {
    let run: TileFn = match ty {
        GgmlType::Q4_0 => tile_entry::<Q4_0>,
        GgmlType::Q5_0 => tile_entry::<Q5_0>,
        GgmlType::Q8_0 => tile_entry::<Q8_0>,
        _ => return None,
    };
    Some(("neon-sdot-4x8", TileKernel { run, max_rows: MAX_ROWS, max_tokens: TOKENS }))
}

/// The raw registers that `ld4` fills one lane at a time (carried from block to block so that no register needs
/// clearing before its four lanes are loaded).
pub(super) type Raw = [uint32x4x4_t; 2];

/// A weight format's interleaved decoding (see the module comment).
pub(super) trait Interleave: Format + Sized {
    /// The 32 weights of each of the four rows' blocks at `wb`, interleaved: vector `4h + k`, lane `r` = the weights
    /// `16h + 4k .. 16h + 4k + 4` of row `r`.
    ///
    /// # Safety
    /// Every pointer of `wb` points to a whole weight block.
    unsafe fn interleaved(wb: &[*const u8; ROWS], raw: &mut Raw) -> [int8x16_t; 8];

    /// Whether [`Interleave::interleaved_x16`] is cheaper than [`Interleave::interleaved`] (Q4_0).
    const X16: bool = false;

    /// The weights of [`Interleave::interleaved`] times 16 (for Q4_0 two instructions per 16 weights fewer: the
    /// nibbles with their top bit flipped are the weights plus 8 as signed 4-bit values, shifted to the high half
    /// of a byte they are the weights times 16). The tile multiplies its row scales by 1/16 instead; both scalings
    /// are by powers of two, so the products and the results stay the same bit for bit (see [`tile`]).
    ///
    /// # Safety
    /// As [`Interleave::interleaved`].
    #[inline(always)]
    unsafe fn interleaved_x16(wb: &[*const u8; ROWS], raw: &mut Raw) -> [int8x16_t; 8] {
        Self::interleaved(wb, raw)
    }

    /// An offset every weight carries in [`Interleave::interleaved_offset`] (Q4_0: 8; the others: none).
    const OFFSET: i32 = 0;

    /// [`Interleave::interleaved`] plus [`Interleave::OFFSET`] (cheaper for Q4_0: nibbles as they are; the GEMV
    /// takes the offset off the sums once per block, as `OFFSET * sum(x)`).
    ///
    /// # Safety
    /// As [`Interleave::interleaved`].
    #[inline(always)]
    unsafe fn interleaved_offset(wb: &[*const u8; ROWS], raw: &mut Raw) -> [int8x16_t; 8] {
        Self::interleaved(wb, raw)
    }

    /// The one-token results of eight rows (two groups of four) against one activation row: the steps of
    /// [`gemv_rows`] with two groups as one hand-scheduled loop ([`gemv8_q4_0`], [`gemv8_q5_0`], [`gemv8_q8_0`]).
    ///
    /// # Safety
    /// As [`gemv_rows`].
    unsafe fn gemv8(nb: usize, w: [[*const u8; ROWS]; 2], xs: (*const u8, *const f32, *const i32)) -> [[f32; ROWS]; 2];
}

/// Loads 16 bytes at `p[r]` into lane `r` of four vectors: vector `k`, lane `r` = bytes `4k .. 4k + 4` of `p[r]`.
///
/// # Safety
/// 16 bytes are readable at every `p[r]` (any alignment: `ld4` to one lane has no alignment requirement).
#[inline(always)]
unsafe fn ld4_rows(p: [*const u8; ROWS], raw: uint32x4x4_t) -> uint32x4x4_t {
    let v = vld4q_lane_u32::<0>(p[0] as *const u32, raw);
    let v = vld4q_lane_u32::<1>(p[1] as *const u32, v);
    let v = vld4q_lane_u32::<2>(p[2] as *const u32, v);
    vld4q_lane_u32::<3>(p[3] as *const u32, v)
}

impl Interleave for Q4_0 {
    #[inline(always)]
    unsafe fn interleaved(wb: &[*const u8; ROWS], raw: &mut Raw) -> [int8x16_t; 8] {
        // Packed byte j holds element j (low nibble) and element 16 + j (high nibble), so the low nibbles of the
        // interleaved packed bytes are half 0 and the high nibbles half 1, already in place.
        raw[0] = ld4_rows(wb.map(|p| p.add(2)), raw[0]);
        let v = [raw[0].0, raw[0].1, raw[0].2, raw[0].3].map(|v| vreinterpretq_u8_u32(v));
        let (m4, eight) = (vdupq_n_u8(0x0F), vdupq_n_s8(8));
        let lo = v.map(|v| vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, m4)), eight));
        let hi = v.map(|v| vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8::<4>(v)), eight));
        [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]]
    }

    const OFFSET: i32 = 8;

    const X16: bool = true;

    #[inline(always)]
    unsafe fn interleaved_x16(wb: &[*const u8; ROWS], raw: &mut Raw) -> [int8x16_t; 8] {
        raw[0] = ld4_rows(wb.map(|p| p.add(2)), raw[0]);
        let v = [raw[0].0, raw[0].1, raw[0].2, raw[0].3].map(|v| veorq_u8(vreinterpretq_u8_u32(v), vdupq_n_u8(0x88)));
        let lo = v.map(|v| vreinterpretq_s8_u8(vshlq_n_u8::<4>(v)));
        let hi = v.map(|v| vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0xF0))));
        [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]]
    }

    #[inline(always)]
    unsafe fn interleaved_offset(wb: &[*const u8; ROWS], raw: &mut Raw) -> [int8x16_t; 8] {
        raw[0] = ld4_rows(wb.map(|p| p.add(2)), raw[0]);
        let v = [raw[0].0, raw[0].1, raw[0].2, raw[0].3].map(|v| vreinterpretq_u8_u32(v));
        let m4 = vdupq_n_u8(0x0F);
        let lo = v.map(|v| vreinterpretq_s8_u8(vandq_u8(v, m4)));
        let hi = v.map(|v| vreinterpretq_s8_u8(vshrq_n_u8::<4>(v)));
        [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]]
    }

    #[inline(always)]
    unsafe fn gemv8(nb: usize, w: [[*const u8; ROWS]; 2], xs: (*const u8, *const f32, *const i32)) -> [[f32; ROWS]; 2] {
        gemv8_q4_0(nb, w, xs)
    }
}

impl Interleave for Q8_0 {
    #[inline(always)]
    unsafe fn interleaved(wb: &[*const u8; ROWS], raw: &mut Raw) -> [int8x16_t; 8] {
        raw[0] = ld4_rows(wb.map(|p| p.add(2)), raw[0]);
        raw[1] = ld4_rows(wb.map(|p| p.add(18)), raw[1]);
        let s = vreinterpretq_s8_u32;
        [raw[0].0, raw[0].1, raw[0].2, raw[0].3, raw[1].0, raw[1].1, raw[1].2, raw[1].3].map(|v| s(v))
    }

    #[inline(always)]
    unsafe fn gemv8(nb: usize, w: [[*const u8; ROWS]; 2], xs: (*const u8, *const f32, *const i32)) -> [[f32; ROWS]; 2] {
        gemv8_q8_0(nb, w, xs)
    }
}

impl Interleave for Q5_0 {
    #[inline(always)]
    unsafe fn interleaved(wb: &[*const u8; ROWS], _raw: &mut Raw) -> [int8x16_t; 8] {
        let q = wb.map(|p| Q5_0::decode(p));
        let [a, b] = transpose([q[0][0], q[1][0], q[2][0], q[3][0]]);
        let [c, d] = transpose([q[0][1], q[1][1], q[2][1], q[3][1]]);
        [a[0], a[1], b[0], b[1], c[0], c[1], d[0], d[1]].map(|v| vreinterpretq_s8_s32(v))
    }

    #[inline(always)]
    unsafe fn gemv8(nb: usize, w: [[*const u8; ROWS]; 2], xs: (*const u8, *const f32, *const i32)) -> [[f32; ROWS]; 2] {
        gemv8_q5_0(nb, w, xs)
    }
}

/// The 4x4 transpose of 32-bit lanes of four rows' 16 weights: vector `k`, lane `r` = lane `k` of `v[r]`; as two
/// pairs (`[k0, k1]`, `[k2, k3]`).
#[inline(always)]
unsafe fn transpose(v: [int8x16_t; ROWS]) -> [[int32x4_t; 2]; 2] {
    let [k0, k1, k2, k3] = transpose_f32(v.map(|v| vreinterpretq_f32_s8(v))).map(|v| vreinterpretq_s32_f32(v));
    [[k0, k1], [k2, k3]]
}

/// One token's step of a block for the four rows: `acc = fma(acc, f32(isum), dw * sx)`, where `isum` (lane `r`) is
/// the dot product of row `r`'s weights (the interleaved `q`, see [`Interleave::interleaved`]) with the token's 32
/// activations at `*y`, by `sdot` by element into a zeroed register, and `sx` the activations' scale at `*sx`. One
/// `asm!` block, so that the compiler keeps each token's work together: left to itself it loaded all eight tokens'
/// activations at the top of the block and spilled the sums and accumulators. The float steps are those of
/// `vfmaq_f32(acc, vcvtq_f32_s32(isum), vmulq_n_f32(dw, sx))` in the other tiles and the GEMV entry.
///
/// Both loads advance their pointer to the next token's block (`*y += y_step` bytes, `*sx += sx_step` bytes) in the
/// same instruction (post-index by register): a tile walks its tokens without an address addition per token (two
/// fewer instructions per token and block, 14 in all).
///
/// # Safety
/// 32 bytes are readable at `*y` and 4 at `*sx` (any alignment); the CPU has FEAT_DotProd. The advanced pointers are
/// only dereferenced by a later call under the same contract.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn token_step(
    acc: float32x4_t,
    q: &[int8x16_t; 8],
    dw: float32x4_t,
    y: &mut *const u8,
    y_step: usize,
    sx: &mut *const f32,
    sx_step: usize,
) -> float32x4_t {
    let mut acc = acc;
    // `ld1` of two registers needs consecutive register numbers: v30 and v31, named.
    std::arch::asm!(
        ".arch_extension dotprod",
        "ld1 {{v30.16b, v31.16b}}, [{y}], {y_step}",
        "movi {s:v}.4s, #0",
        "sdot {s:v}.4s, {q0:v}.16b, v30.4b[0]",
        "sdot {s:v}.4s, {q1:v}.16b, v30.4b[1]",
        "sdot {s:v}.4s, {q2:v}.16b, v30.4b[2]",
        "sdot {s:v}.4s, {q3:v}.16b, v30.4b[3]",
        "ld1 {{{x:v}.s}}[0], [{sx}], {sx_step}",
        "sdot {s:v}.4s, {q4:v}.16b, v31.4b[0]",
        "sdot {s:v}.4s, {q5:v}.16b, v31.4b[1]",
        "fmul {x:v}.4s, {dw:v}.4s, {x:v}.s[0]",
        "sdot {s:v}.4s, {q6:v}.16b, v31.4b[2]",
        "sdot {s:v}.4s, {q7:v}.16b, v31.4b[3]",
        "scvtf {s:v}.4s, {s:v}.4s",
        "fmla {acc:v}.4s, {s:v}.4s, {x:v}.4s",
        acc = inout(vreg) acc,
        y = inout(reg) *y,
        y_step = in(reg) y_step,
        sx = inout(reg) *sx,
        sx_step = in(reg) sx_step,
        out("v30") _,
        out("v31") _,
        s = out(vreg) _,
        x = out(vreg) _,
        dw = in(vreg) dw,
        q0 = in(vreg) q[0],
        q1 = in(vreg) q[1],
        q2 = in(vreg) q[2],
        q3 = in(vreg) q[3],
        q4 = in(vreg) q[4],
        q5 = in(vreg) q[5],
        q6 = in(vreg) q[6],
        q7 = in(vreg) q[7],
        options(pure, readonly, nostack, preserves_flags)
    );
    acc
}

/// The four rows' integer dot products (lanes) of the interleaved weights `q` with the 32 activations `y`: eight
/// `sdot` by element into a zeroed register, in one `asm!` block (see [`token_step`]).
///
/// # Safety
/// The CPU has FEAT_DotProd.
#[inline(always)]
unsafe fn dot_rows(q: &[int8x16_t; 8], y: [int8x16_t; 2]) -> int32x4_t {
    let s: int32x4_t;
    std::arch::asm!(
        ".arch_extension dotprod",
        "movi {s:v}.4s, #0",
        "sdot {s:v}.4s, {q0:v}.16b, {y0:v}.4b[0]",
        "sdot {s:v}.4s, {q1:v}.16b, {y0:v}.4b[1]",
        "sdot {s:v}.4s, {q2:v}.16b, {y0:v}.4b[2]",
        "sdot {s:v}.4s, {q3:v}.16b, {y0:v}.4b[3]",
        "sdot {s:v}.4s, {q4:v}.16b, {y1:v}.4b[0]",
        "sdot {s:v}.4s, {q5:v}.16b, {y1:v}.4b[1]",
        "sdot {s:v}.4s, {q6:v}.16b, {y1:v}.4b[2]",
        "sdot {s:v}.4s, {q7:v}.16b, {y1:v}.4b[3]",
        s = out(vreg) s,
        y0 = in(vreg) y[0],
        y1 = in(vreg) y[1],
        q0 = in(vreg) q[0],
        q1 = in(vreg) q[1],
        q2 = in(vreg) q[2],
        q3 = in(vreg) q[3],
        q4 = in(vreg) q[4],
        q5 = in(vreg) q[5],
        q6 = in(vreg) q[6],
        q7 = in(vreg) q[7],
        options(pure, nomem, nostack, preserves_flags)
    );
    s
}

/// The one-token (GEMV) form of this tile: the results of `G` groups of four rows of `F` against one activation
/// row `(bytes, f32 scales, block sums)`, with the same integer sums and float steps per row as [`tile`] (Q4_0's
/// offset of 8 comes off the four rows' sums at once as `8 * sum(x)`), so bit-identical to it.
///
/// # Safety
/// Every pointer of `w` and the activation row, its scales and its sums hold `nb` whole blocks; the CPU has
/// FEAT_DotProd.
#[target_feature(enable = "neon")]
pub(super) unsafe fn gemv_rows<F: Interleave, const G: usize>(
    nb: usize,
    w: [[*const u8; ROWS]; G],
    (xp, sp, sump): (*const u8, *const f32, *const i32),
) -> [[f32; ROWS]; G] {
    let mut acc = [vdupq_n_f32(0.0); G];
    let zero = vdupq_n_u32(0);
    let mut raw: [Raw; G] = [[uint32x4x4_t(zero, zero, zero, zero); 2]; G];
    for b in 0..nb {
        let yp = xp.add(b * 34 + 2) as *const i8;
        let y = [vld1q_s8(yp), vld1q_s8(yp.add(16))];
        let sx = *sp.add(b);
        let bias = vdupq_n_s32(F::OFFSET * *sump.add(b));
        for g in 0..G {
            let wb = w[g].map(|p| p.add(b * F::W_BYTES));
            let q = F::interleaved_offset(&wb, &mut raw[g]);
            let isum = dot_rows(&q, y);
            let isum = if F::OFFSET != 0 { vsubq_s32(isum, bias) } else { isum };
            acc[g] = vfmaq_f32(acc[g], vcvtq_f32_s32(isum), vmulq_n_f32(row_scales(&wb, 0), sx));
        }
    }
    let mut out = [[0f32; ROWS]; G];
    for g in 0..G {
        vst1q_f32(out[g].as_mut_ptr(), acc[g]);
    }
    out
}

/// The per-block prelude of the eight-row loops: the activations' 32 bytes (`v0`, `v1`; `xa` points past the
/// block's f16 scale, `stride` = 34) and f32 scale (`v5`), the eight rows' f16 scales (one lane each, `v2`,
/// post-indexed: each row pointer then points at its quants) and the scale products `d_w * d_x` of rows 0..4 (`v3`)
/// and 4..8 (`v4`). With arguments, the rows' scales are loaded by the structure load `$load` (to lane `r` of each
/// register of its list, `$step` bytes per row) and taken from its first register `$d` (Q5_0: the scale and the two
/// halves of `qh` by one `ld3`).
macro_rules! gemv8_prelude {
    () => {
        gemv8_prelude!("ld1 {{v2.h}}", "v2", "#2")
    };
    ($load:literal, $d:literal, $step:literal) => {
        concat!(
            "ld1 {{v0.16b, v1.16b}}, [{xa}], {stride}\n",
            "ldr s5, [{xs}], #4\n",
            $load,
            "[0], [{w0}], ",
            $step,
            "\n",
            $load,
            "[1], [{w1}], ",
            $step,
            "\n",
            $load,
            "[2], [{w2}], ",
            $step,
            "\n",
            $load,
            "[3], [{w3}], ",
            $step,
            "\n",
            $load,
            "[4], [{w4}], ",
            $step,
            "\n",
            $load,
            "[5], [{w5}], ",
            $step,
            "\n",
            $load,
            "[6], [{w6}], ",
            $step,
            "\n",
            $load,
            "[7], [{w7}], ",
            $step,
            "\n",
            "fcvtl v3.4s, ",
            $d,
            ".4h\n",
            "fcvtl2 v4.4s, ",
            $d,
            ".8h\n",
            "fmul v3.4s, v3.4s, v5.s[0]\n",
            "fmul v4.4s, v4.4s, v5.s[0]\n",
        )
    };
}

/// Loads 16 bytes of each of four rows (post-indexed) into one lane of four consecutive vectors starting at `$v`
/// (`ld4` to one lane, see [`ld4_rows`]).
macro_rules! ld4_lanes {
    ($v:literal, $a:literal, $b:literal, $c:literal, $d:literal) => {
        concat!(
            "ld4 {{",
            $v,
            "}}[0], [{",
            $a,
            "}], #16\n",
            "ld4 {{",
            $v,
            "}}[1], [{",
            $b,
            "}], #16\n",
            "ld4 {{",
            $v,
            "}}[2], [{",
            $c,
            "}], #16\n",
            "ld4 {{",
            $v,
            "}}[3], [{",
            $d,
            "}], #16\n",
        )
    };
}

/// The end of a group's block: the eight `sdot` by element of the interleaved weights (`v20`..`v23` with the first
/// 16 activations, `v16`..`v19` with the last 16) into `v24` (holding the start value), then
/// `acc = fma(acc, f32(isum), d_w * d_x)` with the scale products `$dw`.
macro_rules! gemv8_dot {
    ($acc:literal, $dw:literal) => {
        concat!(
            "sdot v24.4s, v20.16b, v0.4b[0]\n",
            "sdot v24.4s, v21.16b, v0.4b[1]\n",
            "sdot v24.4s, v22.16b, v0.4b[2]\n",
            "sdot v24.4s, v23.16b, v0.4b[3]\n",
            "sdot v24.4s, v16.16b, v1.4b[0]\n",
            "sdot v24.4s, v17.16b, v1.4b[1]\n",
            "sdot v24.4s, v18.16b, v1.4b[2]\n",
            "sdot v24.4s, v19.16b, v1.4b[3]\n",
            "scvtf v24.4s, v24.4s\n",
            "fmla ",
            $acc,
            ".4s, v24.4s, ",
            $dw,
            ".4s\n",
        )
    };
}

/// One group of four rows of packed nibbles (Q4_0, Q4_1) in the eight-row loops: the packed bytes interleaved by
/// `ld4` (`v16`..`v19`), the low nibbles (elements 0..16, unsigned) masked by `v7` into `v20`..`v23`, the high ones
/// shifted down in place, and the sums started by `$start` (Q4_0: at `-8 * sum(x)`, the offset of the unsigned
/// nibbles as in [`gemv_rows`]; Q4_1: at zero).
macro_rules! gemv8_nibbles_group {
    ($a:literal, $b:literal, $c:literal, $d:literal, $start:literal, $acc:literal, $dw:literal) => {
        concat!(
            ld4_lanes!("v16.s, v17.s, v18.s, v19.s", $a, $b, $c, $d),
            "and v20.16b, v16.16b, v7.16b\n",
            "and v21.16b, v17.16b, v7.16b\n",
            "and v22.16b, v18.16b, v7.16b\n",
            "and v23.16b, v19.16b, v7.16b\n",
            "ushr v16.16b, v16.16b, #4\n",
            "ushr v17.16b, v17.16b, #4\n",
            "ushr v18.16b, v18.16b, #4\n",
            "ushr v19.16b, v19.16b, #4\n",
            $start,
            "\n",
            gemv8_dot!($acc, $dw),
        )
    };
}

/// One group of four Q8_0 rows in the eight-row loop: the quants interleaved by `ld4` (bytes 0..16 into `v20`..`v23`,
/// 16..32 into `v16`..`v19`), the sums started at zero.
macro_rules! gemv8_q8_0_group {
    ($a:literal, $b:literal, $c:literal, $d:literal, $acc:literal, $dw:literal) => {
        concat!(
            ld4_lanes!("v20.s, v21.s, v22.s, v23.s", $a, $b, $c, $d),
            ld4_lanes!("v16.s, v17.s, v18.s, v19.s", $a, $b, $c, $d),
            "movi v24.2d, #0\n",
            gemv8_dot!($acc, $dw),
        )
    };
}

/// One group of four Q5_0 rows in the eight-row loop: the packed nibbles interleaved by `ld4` (`v12`..`v15`), and
/// the fifth bits merged in from the inverted `qh` halves of the eight rows (`v30`: elements 0..16, `v31`: 16..32;
/// 16-bit lane `r` per row). `tbl` by `$ix0` (`$ix1`) copies byte 0 (1) of each of the group's rows' half into the
/// four bytes of its lane, `cmtst` with `v25` (bytes 1, 2, 4, 8 in each lane) and `v26` (16, 32, 64, 128) tests byte
/// `i` of vector `k` against the bit of element `4k + i`: 0xFF where the fifth bit is 0. That is the high nibble of
/// the weight `q - 16` as a signed byte (the nibble `q & 15` below it, minus 16 when the fifth bit is 0), so `bit`
/// with `v7` (0x0F) puts the low nibbles below it (elements 0..16 into `v20`..`v23`) and `sri` the high ones
/// (elements 16..32 into `v16`..`v19`): the weights themselves, the sums started at zero.
macro_rules! gemv8_q5_0_group {
    ($a:literal, $b:literal, $c:literal, $d:literal, $ix0:literal, $ix1:literal, $acc:literal, $dw:literal) => {
        concat!(
            ld4_lanes!("v12.s, v13.s, v14.s, v15.s", $a, $b, $c, $d),
            "tbl v5.16b, {{v30.16b}}, ",
            $ix0,
            ".16b\n",
            "tbl v6.16b, {{v30.16b}}, ",
            $ix1,
            ".16b\n",
            "cmtst v20.16b, v5.16b, v25.16b\n",
            "cmtst v21.16b, v5.16b, v26.16b\n",
            "cmtst v22.16b, v6.16b, v25.16b\n",
            "cmtst v23.16b, v6.16b, v26.16b\n",
            "tbl v5.16b, {{v31.16b}}, ",
            $ix0,
            ".16b\n",
            "tbl v6.16b, {{v31.16b}}, ",
            $ix1,
            ".16b\n",
            "cmtst v16.16b, v5.16b, v25.16b\n",
            "cmtst v17.16b, v5.16b, v26.16b\n",
            "cmtst v18.16b, v6.16b, v25.16b\n",
            "cmtst v19.16b, v6.16b, v26.16b\n",
            "bit v20.16b, v12.16b, v7.16b\n",
            "bit v21.16b, v13.16b, v7.16b\n",
            "bit v22.16b, v14.16b, v7.16b\n",
            "bit v23.16b, v15.16b, v7.16b\n",
            "sri v16.16b, v12.16b, #4\n",
            "sri v17.16b, v13.16b, #4\n",
            "sri v18.16b, v14.16b, #4\n",
            "sri v19.16b, v15.16b, #4\n",
            "movi v24.2d, #0\n",
            gemv8_dot!($acc, $dw),
        )
    };
}

/// The `asm!` block of an eight-row loop (two groups of four rows): the loop body `$body` (template strings),
/// repeated `$nb` times, over the eight row pointers of `$w` (post-indexed by the body), the activations' quants at
/// `$xa` (`{xa}`, `{stride}` bytes per block) and scales at `$xs` (`{xs}`), with the two groups' accumulators
/// `$acc0` (`v27`) and `$acc1` (`v28`), the registers every loop uses as scratch, and the loop's own operands
/// `$operands`.
macro_rules! gemv8_asm {
    ($w:expr, $nb:expr, ($xa:expr, $xs:expr, $stride:expr), ($acc0:ident, $acc1:ident), [$($body:tt)*],
     $($operands:tt)*) => {{
        let [[w0, w1, w2, w3], [w4, w5, w6, w7]] = $w;
        std::arch::asm!(
            ".arch_extension dotprod",
            "2:",
            $($body)*
            "subs {n}, {n}, #1",
            "b.ne 2b",
            w0 = inout(reg) w0 => _,
            w1 = inout(reg) w1 => _,
            w2 = inout(reg) w2 => _,
            w3 = inout(reg) w3 => _,
            w4 = inout(reg) w4 => _,
            w5 = inout(reg) w5 => _,
            w6 = inout(reg) w6 => _,
            w7 = inout(reg) w7 => _,
            xa = inout(reg) $xa => _,
            xs = inout(reg) $xs => _,
            n = inout(reg) $nb => _,
            stride = in(reg) $stride,
            $($operands)*
            inout("v27") $acc0,
            inout("v28") $acc1,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _,
            out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _,
            out("v23") _, out("v24") _,
            options(readonly, nostack)
        );
    }};
}

/// An eight-row loop against Q8_0 activations (34-byte blocks, one f32 scale each) with the body `$body` and the
/// loop's own operands `$operands` ([`gemv8_asm`], run when there are blocks): the two groups' results.
macro_rules! gemv8_q8_0_activations {
    ($w:expr, $nb:expr, ($xp:expr, $sp:expr), [$($body:tt)*], $($operands:tt)*) => {{
        let (mut acc0, mut acc1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
        if $nb > 0 {
            gemv8_asm!($w, $nb, ($xp.add(2), $sp, 34usize), (acc0, acc1), [$($body)*], $($operands)*);
        }
        store2(acc0, acc1)
    }};
}

/// [`gemv_rows`] for eight Q4_0 rows (two groups of four) as one loop in `asm!`: per block 64 instructions for the
/// eight rows (the compiled [`gemv_rows`] takes 82: address arithmetic per row and block), with the same integer
/// sums and float steps per row, so bit-identical to it and to [`tile`].
///
/// # Safety
/// As [`gemv_rows`].
#[inline(always)]
unsafe fn gemv8_q4_0(
    nb: usize,
    w: [[*const u8; ROWS]; 2],
    (xp, sp, sump): (*const u8, *const f32, *const i32),
) -> [[f32; ROWS]; 2] {
    gemv8_q8_0_activations!(
        w,
        nb,
        (xp, sp),
        [
            gemv8_prelude!(),
            "ld1r {{v6.4s}}, [{xsum}], #4",
            "mul v6.4s, v6.4s, v26.4s",
            gemv8_nibbles_group!("w0", "w1", "w2", "w3", "mov v24.16b, v6.16b", "v27", "v3"),
            gemv8_nibbles_group!("w4", "w5", "w6", "w7", "mov v24.16b, v6.16b", "v28", "v4"),
        ],
        xsum = inout(reg) sump => _,
        in("v7") vdupq_n_u8(0x0F),
        in("v26") vdupq_n_s32(-8),
        out("v6") _,
    )
}

/// [`gemv_rows`] for eight Q8_0 rows (two groups of four) as one loop in `asm!`: per block 54 instructions for the
/// eight rows, with the same integer sums and float steps per row as [`tile`], so bit-identical to it.
///
/// # Safety
/// As [`gemv_rows`].
#[inline(always)]
unsafe fn gemv8_q8_0(
    nb: usize,
    w: [[*const u8; ROWS]; 2],
    (xp, sp, _): (*const u8, *const f32, *const i32),
) -> [[f32; ROWS]; 2] {
    gemv8_q8_0_activations!(
        w,
        nb,
        (xp, sp),
        [
            gemv8_prelude!(),
            gemv8_q8_0_group!("w0", "w1", "w2", "w3", "v27", "v3"),
            gemv8_q8_0_group!("w4", "w5", "w6", "w7", "v28", "v4"),
        ],
    )
}

/// `tbl` indices that copy byte `c` of the 16-bit lane `4g + r` (row `r` of group `g`) of a register into the four
/// bytes of lane `r`, for `(g, c)` = (0, 0), (0, 1), (1, 0), (1, 1) (see [`gemv8_q5_0_group`]).
const Q5_0_QH_SPREAD: [u32; 16] = {
    let mut t = [0u32; 16];
    let mut i = 0;
    while i < 16 {
        let (g, c, r) = (i / 8, i / 4 % 2, i % 4);
        t[i] = (8 * g + 2 * r + c) as u32 * 0x0101_0101;
        i += 1;
    }
    t
};

/// [`gemv_rows`] for eight Q5_0 rows (two groups of four) as one loop in `asm!` (88 instructions per block for the
/// eight rows): each row's scale and `qh` by one `ld3`, the nibbles interleaved by `ld4` and the fifth bits merged
/// in by `tbl`, `cmtst` and `bit`/`sri` ([`gemv8_q5_0_group`]: 24 instructions per group more than Q4_0's nibbles,
/// no offset to take off), with the same integer sums and float steps per row as [`tile`], so bit-identical to it.
///
/// # Safety
/// As [`gemv_rows`].
#[inline(always)]
unsafe fn gemv8_q5_0(
    nb: usize,
    w: [[*const u8; ROWS]; 2],
    (xp, sp, _): (*const u8, *const f32, *const i32),
) -> [[f32; ROWS]; 2] {
    let ix = |k: usize| vreinterpretq_u8_u32(vld1q_u32(Q5_0_QH_SPREAD[4 * k..].as_ptr()));
    gemv8_q8_0_activations!(
        w,
        nb,
        (xp, sp),
        [
            gemv8_prelude!("ld3 {{v29.h, v30.h, v31.h}}", "v29", "#6"),
            "mvn v30.16b, v30.16b",
            "mvn v31.16b, v31.16b",
            gemv8_q5_0_group!("w0", "w1", "w2", "w3", "v8", "v9", "v27", "v3"),
            gemv8_q5_0_group!("w4", "w5", "w6", "w7", "v10", "v11", "v28", "v4"),
        ],
        in("v7") vdupq_n_u8(0x0F),
        in("v8") ix(0),
        in("v9") ix(1),
        in("v10") ix(2),
        in("v11") ix(3),
        in("v25") vreinterpretq_u8_u32(vdupq_n_u32(0x0804_0201)),
        in("v26") vreinterpretq_u8_u32(vdupq_n_u32(0x8040_2010)),
        out("v6") _,
        out("v12") _,
        out("v13") _,
        out("v14") _,
        out("v15") _,
        out("v29") _,
        out("v30") _,
        out("v31") _,
    )
}

/// The one-token entry of the `neon-sdot-4x4` tile for eight Q4_1 rows (two groups of four) as one loop in `asm!`
/// (68 instructions per block for the eight rows): the rows interleaved in registers and `sdot` by element as in
/// this file's tile (the integer sums are exact however they are formed), and the 4x4 tile's float steps per row
/// (`aarch64_neon_tiles.rs`): `acc = fma(acc, f32(isum), d_w * d_x)` and `mins = fma(mins, m_w, s_x)` per block,
/// `acc + mins` at the end, so bit-identical to that tile. The activations are Q8_1 (36-byte blocks, f32 scales
/// `d_x, s_x` per block).
///
/// # Safety
/// Every pointer of `w` and the activation row and its scales hold `nb` whole blocks (Q4_1 weights, Q8_1
/// activations); the CPU has FEAT_DotProd.
#[inline(always)]
pub(super) unsafe fn gemv8_q4_1(
    nb: usize,
    w: [[*const u8; ROWS]; 2],
    (xp, sp): (*const u8, *const f32),
) -> [[f32; ROWS]; 2] {
    let (mut acc0, mut acc1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    let (mut mins0, mut mins1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    if nb > 0 {
        gemv8_asm!(
            w,
            nb,
            (xp.add(4), sp, 36usize),
            (acc0, acc1),
            [
                "ld1 {{v0.16b, v1.16b}}, [{xa}], {stride}",
                "ldr d5, [{xs}], #8",
                "ld2 {{v2.h, v3.h}}[0], [{w0}], #4",
                "ld2 {{v2.h, v3.h}}[1], [{w1}], #4",
                "ld2 {{v2.h, v3.h}}[2], [{w2}], #4",
                "ld2 {{v2.h, v3.h}}[3], [{w3}], #4",
                "ld2 {{v2.h, v3.h}}[4], [{w4}], #4",
                "ld2 {{v2.h, v3.h}}[5], [{w5}], #4",
                "ld2 {{v2.h, v3.h}}[6], [{w6}], #4",
                "ld2 {{v2.h, v3.h}}[7], [{w7}], #4",
                "fcvtl v4.4s, v2.4h",
                "fcvtl2 v2.4s, v2.8h",
                "fcvtl v6.4s, v3.4h",
                "fcvtl2 v3.4s, v3.8h",
                "fmul v4.4s, v4.4s, v5.s[0]",
                "fmul v2.4s, v2.4s, v5.s[0]",
                "fmla v29.4s, v6.4s, v5.s[1]",
                "fmla v30.4s, v3.4s, v5.s[1]",
                gemv8_nibbles_group!("w0", "w1", "w2", "w3", "movi v24.2d, #0", "v27", "v4"),
                gemv8_nibbles_group!("w4", "w5", "w6", "w7", "movi v24.2d, #0", "v28", "v2"),
            ],
            in("v7") vdupq_n_u8(0x0F),
            inout("v29") mins0,
            inout("v30") mins1,
            out("v6") _,
        );
    }
    store2(vaddq_f32(acc0, mins0), vaddq_f32(acc1, mins1))
}

/// Two vectors of four row results as arrays.
#[inline(always)]
unsafe fn store2(a: float32x4_t, b: float32x4_t) -> [[f32; ROWS]; 2] {
    let mut out = [[0f32; ROWS]; 2];
    vst1q_f32(out[0].as_mut_ptr(), a);
    vst1q_f32(out[1].as_mut_ptr(), b);
    out
}

/// The results of four weight rows (`w`, each `nb` blocks of `F`) with `NT` tokens: token `i`'s in `acc[i]`, lane
/// `r` for row `r`.
///
/// # Safety
/// Every pointer of `w`, and the rows and scales of the `NT` tokens of `t` (token `i` at `x + i x_step`, `s + i
/// s_step`), hold `nb` whole blocks; the CPU has FEAT_DotProd.
#[target_feature(enable = "neon")]
unsafe fn tile<F: Interleave, const NT: usize>(nb: usize, w: [*const u8; ROWS], t: Toks) -> [float32x4_t; NT] {
    let mut acc = [vdupq_n_f32(0.0); NT];
    let zero = vdupq_n_u32(0);
    let mut raw: Raw = [uint32x4x4_t(zero, zero, zero, zero); 2];
    for b in 0..nb {
        let wb = w.map(|p| p.add(b * F::W_BYTES));
        // With X16: weights times 16, scales over 16. Both are exact (|isum| < 2^24; the f16 scales over 16 and their
        // products with the activations' f16 scales stay normal f32), so `fma(acc, f32(16 isum), dw / 16 * sx)` has
        // the exact product of `fma(acc, f32(isum), dw * sx)` and rounds to the same result.
        let (q, dw) = if F::X16 {
            (F::interleaved_x16(&wb, &mut raw), vmulq_n_f32(row_scales(&wb, 0), 1.0 / 16.0))
        } else {
            (F::interleaved(&wb, &mut raw), row_scales(&wb, 0))
        };
        // Token 0's block; each step moves both pointers on to the next token's block.
        let (mut y, mut sx) = (t.x.add(b * 34 + 2), t.s.add(b));
        let (y_step, sx_step) = (t.x_step, t.s_step * 4);
        let mut token = |i: usize| acc[i] = token_step(acc[i], &q, dw, &mut y, y_step, &mut sx, sx_step);
        // Unrolled by hand: as a loop over eight tokens the compiler keeps the accumulators on the stack.
        macro_rules! tokens {
            ($($i:literal)*) => { $(if $i < NT { token($i); })* };
        }
        tokens!(0 1 2 3 4 5 6 7);
    }
    acc
}

/// The tokens of a tile: the first token's activation row and f32 block scales, and the distance from one token's
/// row (scales) to the next's, in bytes (in scales).
#[derive(Clone, Copy)]
struct Toks {
    /// Token 0's activation row.
    x: *const u8,
    /// Token 0's f32 block scales.
    s: *const f32,
    /// Bytes from one token's activation row to the next's.
    x_step: usize,
    /// Scales from one token's block scales to the next's.
    s_step: usize,
}

/// The safe entry: checks the slices once, then for each group of four rows runs tiles of eight tokens, one of
/// four, then single tokens.
fn tile_entry<F: Interleave>(
    n: usize,
    w: &[u8],
    w_row_bytes: usize,
    x: &ActivationRows<'_>,
    first: usize,
    shape: TileShape,
    out: &mut [f32],
) {
    let layout = Layout { block: 32, w_bytes: F::W_BYTES, x_bytes: 34, x_scales: true };
    let nb = tile_common::check(n, &layout, (MAX_ROWS, TOKENS), w, w_row_bytes, x, first, shape, out);
    // The tiles step from one token's scales to the next's by `blocks_per_row`: one scale per block (Q8_0).
    assert!(x.scales_per_block == 1, "{} activation scales per block for 1", x.scales_per_block);
    // Tokens `t..` as a tile's `Toks` (the activation rows are `row_bytes` apart, their scales `blocks_per_row`).
    let toks = |t: usize| {
        let t = first + t;
        Toks {
            x: x.bytes[t * x.row_bytes..].as_ptr(),
            s: x.scales[t * x.blocks_per_row..].as_ptr(),
            x_step: x.row_bytes,
            s_step: x.blocks_per_row,
        }
    };
    for r0 in (0..shape.rows).step_by(ROWS) {
        let group = ROWS.min(shape.rows - r0);
        // Unused lanes of a partial group repeat its last row (their results are dropped).
        let rows: [*const u8; ROWS] = std::array::from_fn(|r| w[(r0 + r.min(group - 1)) * w_row_bytes..].as_ptr());
        let out = &mut out[r0 * shape.ld..];
        let mut t = 0;
        // SAFETY (every call): `check` verified that the rows (repeats of in-range rows) and every token's row and
        // scales hold `nb` whole blocks; `kernel` hands this tile out only for CPUs with FEAT_DotProd (the caller's
        // contract); NEON is mandatory on aarch64.
        if shape.tokens - t == TOKENS {
            put(out, shape.ld, group, t, unsafe { tile::<F, TOKENS>(nb, rows, toks(t)) });
            t += TOKENS;
        }
        if shape.tokens - t >= 4 {
            put(out, shape.ld, group, t, unsafe { tile::<F, 4>(nb, rows, toks(t)) });
            t += 4;
        }
        while t < shape.tokens {
            put(out, shape.ld, group, t, unsafe { tile::<F, 1>(nb, rows, toks(t)) });
            t += 1;
        }
    }
}

/// Stores a tile's results by row: `out[r * ld + t0 + i]` = lane `r` of `acc[i]`, for the first `rows` rows. A
/// whole group of four rows and four or eight tokens is transposed in registers and stored four values at a time.
#[inline(always)]
fn put<const NT: usize>(out: &mut [f32], ld: usize, rows: usize, t0: usize, acc: [float32x4_t; NT]) {
    if rows == ROWS && NT.is_multiple_of(4) {
        for (q, a) in acc.chunks_exact(4).enumerate() {
            for (r, v) in transpose_f32([a[0], a[1], a[2], a[3]]).into_iter().enumerate() {
                let dst = &mut out[r * ld + t0 + 4 * q..][..4];
                // SAFETY: `dst` holds four values.
                unsafe { vst1q_f32(dst.as_mut_ptr(), v) };
            }
        }
    } else {
        let mut lanes = [[0f32; ROWS]; NT];
        for (l, a) in lanes.iter_mut().zip(acc) {
            // SAFETY: `l` holds four values.
            unsafe { vst1q_f32(l.as_mut_ptr(), a) };
        }
        for (i, l) in lanes.iter().enumerate() {
            for (r, v) in l.iter().take(rows).enumerate() {
                out[r * ld + t0 + i] = *v;
            }
        }
    }
}
