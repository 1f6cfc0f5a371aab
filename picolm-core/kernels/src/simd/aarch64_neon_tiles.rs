//! aarch64 tile kernels for batched prefill: four weight rows against up to four activation rows (tokens) per
//! call, for Q4_0, Q4_1, Q5_0, Q8_0, Q4_K and Q6_K (in `aarch64_neon_tiles_q6k.rs`), in two flavours chosen at run time:
//!
//! - `neon-sdot-4x4` with `sdot` (FEAT_DotProd: Cortex-A76 of the Pi 5, Cortex-A55 and later; only Q4_1 uses it:
//!   the others take the four rows by eight tokens of `aarch64_neon_tiles_sdot8.rs` and, for Q4_K and Q6_K,
//!   `aarch64_neon_tiles_sdot_k.rs`);
//! - `neon-4x4` with plain NEON widening multiplies (`smull`/`smlal2` into i16 lanes, `saddlp`/`sadalp` into
//!   i32), for the Cortex-A53/A72 of the Pi Zero 2W, 3 and 4.
//!
//! A tile decodes each weight block of its four rows once and multiplies it with every token of the tile, so a
//! prefill pays the decoding (nibble unpacking, the f16 scale conversion) once per block and tile instead of once
//! per block and token. The four rows' integer block sums are folded into the four lanes of one vector (`addp`),
//! so the f32 scale arithmetic runs once per block and token for all four rows: lane `r` of a token's accumulator
//! is `acc = fma(acc, f32(isum_r), d_r * d_x)` per block (Q4_1 adds `m_r * s_x` per block in a second
//! accumulator, added at the end), the same operations in the same order for any tile shape. A partial tile
//! repeats its last row in the unused lanes and runs its leftover tokens as one-token tiles, so batched prefill
//! and token-by-token evaluation give bit-identical results. Decode (one token) runs the same code with one-token
//! tiles. No weight repacking: rows are read in place from the memory map.
//!
//! Exactness of the i16 lanes without `sdot`: activations are Q8_0/Q8_1 quants in -127..=127 (the quantizer
//! clamps them there). Q4_0 (-8..=7), Q4_1 (0..=15) and Q5_0 (-16..=15) weights give products of at most
//! 16 * 127 = 2032 in magnitude, and no i16 lane ever sums more than 16 of them (32512 < 32767); Q8_0 weights give
//! products up to 127 * 127, so its lanes sum two products before widening to i32. `sdot` sums in i32.

use std::arch::aarch64::*;

use super::aarch64_neon::{cvt_f16x4, dot_i8};
use super::aarch64_neon_tiles_q6k::Q6K;
use super::{ActivationRows, TileFn, TileKernel, TileShape};
use crate::ggml_type::GgmlType;

/// Weight rows per call: the four lanes of an f32 vector.
const ROWS: usize = 4;
/// Tokens per call: four accumulators (eight with Q4_1's mins) beside the eight decoded weight registers.
const TOKENS: usize = 4;
/// Tokens per call of the plain NEON Q4_K and Q6_K tiles: their weight decoding (nibbles or six-bit quants, the
/// sub-block scales, two or one f16 row scales) costs more per multiply than a 32-value block's, so eight tokens
/// share it (eight i32 accumulators beside a sub-block's eight decoded weight registers).
pub(super) const K_TOKENS: usize = 8;

/// The tile kernel for weights of type `ty` and its name: the `sdot` one when `sdot` is true (call it so only when
/// the CPU has FEAT_DotProd), else the plain NEON one.
pub fn kernel(ty: GgmlType, sdot: bool) -> Option<(&'static str, TileKernel)> {
    if sdot {
        if let Some(k) = super::aarch64_neon_tiles_sdot8::kernel(ty) {
            return Some(k);
        }
    }
    let (run, tokens): (TileFn, usize) = match (ty, sdot) {
        (GgmlType::Q4_0, false) => (tile_q4_0, TOKENS),
        (GgmlType::Q4_1, true) => (tile_q4_1_sdot, TOKENS),
        (GgmlType::Q4_1, false) => (tile_q4_1, TOKENS),
        (GgmlType::Q5_0, false) => (tile_q5_0, TOKENS),
        (GgmlType::Q8_0, false) => (tile_q8_0, TOKENS),
        (GgmlType::Q4_K, true) => (tile_q4_k_sdot, K_TOKENS),
        (GgmlType::Q4_K, false) => (tile_q4_k, K_TOKENS),
        (GgmlType::Q6_K, true) => (tile_q6_k_sdot, K_TOKENS),
        (GgmlType::Q6_K, false) => (tile_q6_k, K_TOKENS),
        _ => return None,
    };
    let name = match (sdot, tokens) {
        (true, TOKENS) => "neon-sdot-4x4",
        (true, _) => "neon-sdot-4x8",
        (false, TOKENS) => "neon-4x4",
        _ => "neon-4x8",
    };
    Some((name, TileKernel { run, max_rows: ROWS, max_tokens: tokens }))
}

// ---- formats ----

/// How the integer products of a weight block are summed without `sdot` (see the module comment).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Lanes {
    /// |w| <= 16: a row's 32 products are summed in i16 lanes down to pairs, widened by the last `saddlp`.
    Narrow,
    /// |w| <= 127: two products per i16 lane, then widened.
    Wide,
}

/// A 32-value weight format with a Q8_0 (or, with `MIN`, Q8_1) activation format.
pub(super) trait Format {
    /// Bytes of a weight block.
    const W_BYTES: usize;
    /// Whether the weight block carries an f16 min at offset 2 (Q4_1): activations are then Q8_1.
    const MIN: bool;
    /// How products are summed without `sdot`.
    const LANES: Lanes;
    /// The 32 weights of the block at `wb` as signed bytes (elements 0..16, 16..32).
    ///
    /// # Safety
    /// `wb` points to a whole weight block.
    unsafe fn decode(wb: *const u8) -> [int8x16_t; 2];
}

/// The 32 nibbles of a Q4 block at `p` as bytes: (low nibbles = elements 0..16, high nibbles = elements 16..32).
#[inline(always)]
pub(super) unsafe fn nibbles(p: *const u8) -> [uint8x16_t; 2] {
    let v = vld1q_u8(p);
    [vandq_u8(v, vdupq_n_u8(0x0F)), vshrq_n_u8::<4>(v)]
}

pub(super) struct Q4_0;
impl Format for Q4_0 {
    const W_BYTES: usize = 18;
    const MIN: bool = false;
    const LANES: Lanes = Lanes::Narrow;
    #[inline(always)]
    unsafe fn decode(wb: *const u8) -> [int8x16_t; 2] {
        let [lo, hi] = nibbles(wb.add(2));
        let eight = vdupq_n_s8(8);
        [vsubq_s8(vreinterpretq_s8_u8(lo), eight), vsubq_s8(vreinterpretq_s8_u8(hi), eight)]
    }
}

pub(super) struct Q4_1;
impl Format for Q4_1 {
    const W_BYTES: usize = 20;
    const MIN: bool = true;
    const LANES: Lanes = Lanes::Narrow;
    #[inline(always)]
    unsafe fn decode(wb: *const u8) -> [int8x16_t; 2] {
        // Nibbles are 0..15, so they are valid signed bytes.
        let [lo, hi] = nibbles(wb.add(4));
        [vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi)]
    }
}

pub(super) struct Q5_0;
impl Format for Q5_0 {
    const W_BYTES: usize = 22;
    const MIN: bool = false;
    const LANES: Lanes = Lanes::Narrow;
    #[inline(always)]
    unsafe fn decode(wb: *const u8) -> [int8x16_t; 2] {
        // 9 instructions: the block's first 16 bytes inverted (`qh`, bit `i` the fifth bit of element `i`, at bytes
        // 2..6), byte `c` of `qh` spread over 8 lanes (`tbl`) and tested against one bit per lane (`cmtst`): 0xFF
        // where the fifth bit is 0, which is the high nibble of the weight `q - 16` as a signed byte (the nibble
        // `q & 15` below it, minus 16 when the fifth bit is 0); the low nibbles are put below it by a bit select,
        // the high ones by `sri`.
        let head = vmvnq_u8(vld1q_u8(wb));
        let bits = vreinterpretq_u8_u64(vdupq_n_u64(0x8040_2010_0804_0201));
        // Bytes c and c + 1 of the block over the two halves of a vector, tested bit by bit.
        let zeros = |c: u8| vtstq_u8(vqtbl1q_u8(head, vcombine_u8(vdup_n_u8(c), vdup_n_u8(c + 1))), bits);
        let qs = vld1q_u8(wb.add(6));
        let lo = vbslq_u8(vdupq_n_u8(0x0F), qs, zeros(2));
        let hi = vsriq_n_u8::<4>(zeros(4), qs);
        [vreinterpretq_s8_u8(lo), vreinterpretq_s8_u8(hi)]
    }
}

pub(super) struct Q8_0;
impl Format for Q8_0 {
    const W_BYTES: usize = 34;
    const MIN: bool = false;
    const LANES: Lanes = Lanes::Wide;
    #[inline(always)]
    unsafe fn decode(wb: *const u8) -> [int8x16_t; 2] {
        [vld1q_s8(wb.add(2) as *const i8), vld1q_s8(wb.add(18) as *const i8)]
    }
}

// ---- safe entry points ----

/// What the safe entry point needs of a kernel: its layout and its unsafe tile.
pub(super) trait Tile {
    /// Values per weight block.
    const BLOCK: usize;
    /// Bytes of a weight block.
    const W_BYTES: usize;
    /// Bytes of an activation block.
    const X_BYTES: usize;
    /// Prepared f32 activation scales per block ([`ActivationRows::scales_per_block`]).
    const SPB: usize;
    /// The results of four weight rows (`w`, each `nb` blocks) with `NT` tokens: `[token][row]`.
    ///
    /// # Safety
    /// Every pointer of `w` and every token's row and scales hold `nb` whole blocks; with `SDOT` the CPU has
    /// FEAT_DotProd.
    unsafe fn tile<const SDOT: bool, const NT: usize>(
        nb: usize,
        w: [*const u8; ROWS],
        t: &[Tok; NT],
    ) -> [[f32; ROWS]; NT];
}

/// A 32-value format's [`Tile`].
struct Legacy<F>(std::marker::PhantomData<F>);

impl<F: Format> Tile for Legacy<F> {
    const BLOCK: usize = 32;
    const W_BYTES: usize = F::W_BYTES;
    const X_BYTES: usize = if F::MIN { 36 } else { 34 };
    const SPB: usize = if F::MIN { 2 } else { 1 };
    #[inline(always)]
    unsafe fn tile<const SDOT: bool, const NT: usize>(
        nb: usize,
        w: [*const u8; ROWS],
        t: &[Tok; NT],
    ) -> [[f32; ROWS]; NT] {
        tile::<F, SDOT, NT>(nb, w, t)
    }
}

/// Checks every slice a tile will read; returns the number of blocks per row. Panics on a caller bug.
#[allow(clippy::too_many_arguments)] // the arguments of a `TileFn` call plus the format's layout
pub(super) fn check(
    n: usize,
    (block, w_bytes, x_bytes, spb): (usize, usize, usize, usize),
    w: &[u8],
    w_row_bytes: usize,
    x: &ActivationRows<'_>,
    first: usize,
    shape: TileShape,
    out: &[f32],
) -> usize {
    assert!(n.is_multiple_of(block), "row length {n} is not a multiple of {block}");
    let nb = n / block;
    assert!((1..=super::MAX_TILE_TOKENS).contains(&shape.tokens), "tile of {} tokens", shape.tokens);
    assert!((1..=ROWS).contains(&shape.rows), "tile of {} rows", shape.rows);
    assert!(
        shape.ld >= shape.tokens && out.len() >= (shape.rows - 1) * shape.ld + shape.tokens,
        "tile output too short"
    );
    assert!(w_row_bytes >= nb * w_bytes, "weight rows too short for {n} values");
    assert!(w.len() >= (shape.rows - 1) * w_row_bytes + nb * w_bytes, "weight tile too short");
    let last = first + shape.tokens;
    assert!(x.blocks_per_row == nb, "activations of {} blocks for {nb}", x.blocks_per_row);
    assert!(x.row_bytes >= nb * x_bytes && x.bytes.len() >= last * x.row_bytes, "activations too short");
    assert!(x.scales_per_block == spb, "{} activation scales per block for {spb}", x.scales_per_block);
    if spb > 0 {
        assert!(x.scales.len() >= last * nb * spb && x.sums.len() >= last * nb, "activation scales too short");
    }
    nb
}

/// One token of a tile: its activation row and its f32 block scales (`d`, or `d, s` for Q8_1; none for Q8_K).
#[derive(Clone, Copy)]
pub(super) struct Tok {
    /// The activation row.
    pub(super) x: *const u8,
    /// Its f32 block scales.
    pub(super) s: *const f32,
}

fn tok(x: &ActivationRows<'_>, t: usize) -> Tok {
    let per_row = x.blocks_per_row * x.scales_per_block;
    Tok { x: x.bytes[t * x.row_bytes..].as_ptr(), s: x.scales[t * per_row..].as_ptr() }
}

/// Runs a tile of kernel `K`: full groups of `NT` tokens, then (when `NT` is larger) of [`TOKENS`], then the
/// leftover ones one at a time.
fn run_tile<K: Tile, const SDOT: bool, const NT: usize>(
    n: usize,
    w: &[u8],
    w_row_bytes: usize,
    x: &ActivationRows<'_>,
    first: usize,
    shape: TileShape,
    out: &mut [f32],
) {
    let nb = check(n, (K::BLOCK, K::W_BYTES, K::X_BYTES, K::SPB), w, w_row_bytes, x, first, shape, out);
    // Unused lanes of a partial tile repeat its last row (their results are dropped).
    let rows: [*const u8; ROWS] = std::array::from_fn(|r| w[r.min(shape.rows - 1) * w_row_bytes..].as_ptr());
    let mut put = |t0: usize, res: &[[f32; ROWS]]| {
        for (i, lanes) in res.iter().enumerate() {
            for (r, v) in lanes.iter().take(shape.rows).enumerate() {
                out[r * shape.ld + t0 + i] = *v;
            }
        }
    };
    let mut t = 0;
    while t < shape.tokens {
        let at = first + t;
        // SAFETY (each call): see `tile`: `check` verified that the four rows (repeats of in-range rows) and every
        // token's row and scales hold `nb` whole blocks (the tokens taken never pass `shape.tokens`); the `sdot`
        // variant is handed out by `kernel` only when the CPU has FEAT_DotProd (the caller's contract); NEON is
        // mandatory on aarch64.
        t += if shape.tokens - t >= NT {
            put(t, &unsafe { K::tile::<SDOT, NT>(nb, rows, &std::array::from_fn(|i| tok(x, at + i))) });
            NT
        } else if NT > TOKENS && shape.tokens - t >= TOKENS {
            put(t, &unsafe { K::tile::<SDOT, TOKENS>(nb, rows, &std::array::from_fn(|i| tok(x, at + i))) });
            TOKENS
        } else {
            put(t, &unsafe { K::tile::<SDOT, 1>(nb, rows, &[tok(x, at)]) });
            1
        };
    }
}

macro_rules! tile_entry {
    ($name:ident, $fmt:ty, $sdot:expr, $tokens:expr) => {
        fn $name(
            n: usize,
            w: &[u8],
            w_row_bytes: usize,
            x: &ActivationRows<'_>,
            first: usize,
            shape: TileShape,
            out: &mut [f32],
        ) {
            run_tile::<$fmt, $sdot, $tokens>(n, w, w_row_bytes, x, first, shape, out)
        }
    };
}

tile_entry!(tile_q4_0, Legacy<Q4_0>, false, TOKENS);
tile_entry!(tile_q4_1, Legacy<Q4_1>, false, TOKENS);
tile_entry!(tile_q4_1_sdot, Legacy<Q4_1>, true, TOKENS);
tile_entry!(tile_q5_0, Legacy<Q5_0>, false, TOKENS);
tile_entry!(tile_q8_0, Legacy<Q8_0>, false, TOKENS);
tile_entry!(tile_q4_k, Q4K, false, K_TOKENS);
tile_entry!(tile_q4_k_sdot, Q4K, true, K_TOKENS);
tile_entry!(tile_q6_k, Q6K, false, K_TOKENS);
tile_entry!(tile_q6_k_sdot, Q6K, true, K_TOKENS);

// ---- kernels ----

/// Runs `$body` with `$i` bound to each token index `0..$nt` (`$nt` at most [`K_TOKENS`]), unrolled: the token
/// loops of the K-quant tiles, whose per-token accumulators must stay in registers (LLVM keeps a loop of eight
/// such bodies rolled, with the accumulators in memory: seven loads, stores and loop steps more per sub-block and
/// token in the Q4_K tile).
macro_rules! each_token {
    ($nt:expr, |$i:ident| $body:block) => {{
        const { assert!($nt <= $crate::simd::aarch64_neon_tiles::K_TOKENS) };
        each_token!(@ $nt, $i, $body, 0 1 2 3 4 5 6 7);
    }};
    (@ $nt:expr, $i:ident, $body:block, $($k:literal)*) => {
        $(
            if $k < $nt {
                let $i: usize = $k;
                $body
            }
        )*
    };
}
pub(super) use each_token;

/// The little-endian u16 at `p` (any alignment).
#[inline(always)]
unsafe fn rd_u16(p: *const u8) -> u16 {
    (p as *const u16).read_unaligned()
}

/// The f16 values at offset `at` of the current block of the four rows, as one f32 vector (one `fcvtl`).
#[inline(always)]
pub(super) unsafe fn row_scales(wb: &[*const u8; ROWS], at: usize) -> float32x4_t {
    let v = vdup_n_u16(rd_u16(wb[0].add(at)));
    let v = vset_lane_u16::<1>(rd_u16(wb[1].add(at)), v);
    let v = vset_lane_u16::<2>(rd_u16(wb[2].add(at)), v);
    let v = vset_lane_u16::<3>(rd_u16(wb[3].add(at)), v);
    cvt_f16x4(v)
}

/// The products of one row's 32 weights `q` with the activations `y` summed into i16 lanes (four per lane): four
/// widening multiplies in one `asm!` block, because the compiler turns the intrinsics into sign/zero extensions
/// plus 16-bit `mul`/`mla` (two extensions more per 16 products and token, measured in the Q4_K tile's loop).
#[inline(always)]
unsafe fn mul16_4(q: &[int8x16_t; 2], y: &[int8x16_t; 2]) -> int16x8_t {
    let p: int16x8_t;
    std::arch::asm!(
        "smull {p:v}.8h, {q0:v}.8b, {y0:v}.8b",
        "smlal2 {p:v}.8h, {q0:v}.16b, {y0:v}.16b",
        "smlal {p:v}.8h, {q1:v}.8b, {y1:v}.8b",
        "smlal2 {p:v}.8h, {q1:v}.16b, {y1:v}.16b",
        p = out(vreg) p,
        q0 = in(vreg) q[0],
        q1 = in(vreg) q[1],
        y0 = in(vreg) y[0],
        y1 = in(vreg) y[1],
        options(pure, nomem, nostack, preserves_flags)
    );
    p
}

/// `acc + sc * isum` without `sdot`, where lane `r` of `isum` is the integer dot product of row `r`'s 32 weights
/// `q[r]` (|w| <= 16) with the 32 activations at `*yp`, and `*yp` advanced past them: the narrow lanes of
/// [`block_sums`] (the same integers), in one `asm!` block with the activations' load (post-indexed), so that LLVM
/// cannot hoist the products of all the tokens of a tile above their reductions (it did so with eight tokens and
/// spilled the products: 23 loads and stores more per sub-block of eight tokens in the Q4_K tile).
///
/// # Safety
/// `*yp` points to 32 readable bytes.
#[inline(always)]
unsafe fn mla_sub_block(acc: int32x4_t, q: &[[int8x16_t; 2]; ROWS], yp: &mut *const i8, sc: int32x4_t) -> int32x4_t {
    let mut acc = acc;
    std::arch::asm!(
        "ldp {y0:q}, {y1:q}, [{yp}], #32",
        "smull {p0:v}.8h, {a0:v}.8b, {y0:v}.8b",
        "smlal2 {p0:v}.8h, {a0:v}.16b, {y0:v}.16b",
        "smlal {p0:v}.8h, {a1:v}.8b, {y1:v}.8b",
        "smlal2 {p0:v}.8h, {a1:v}.16b, {y1:v}.16b",
        "smull {p1:v}.8h, {b0:v}.8b, {y0:v}.8b",
        "smlal2 {p1:v}.8h, {b0:v}.16b, {y0:v}.16b",
        "smlal {p1:v}.8h, {b1:v}.8b, {y1:v}.8b",
        "smlal2 {p1:v}.8h, {b1:v}.16b, {y1:v}.16b",
        "smull {p2:v}.8h, {c0:v}.8b, {y0:v}.8b",
        "smlal2 {p2:v}.8h, {c0:v}.16b, {y0:v}.16b",
        "smlal {p2:v}.8h, {c1:v}.8b, {y1:v}.8b",
        "smlal2 {p2:v}.8h, {c1:v}.16b, {y1:v}.16b",
        "smull {p3:v}.8h, {d0:v}.8b, {y0:v}.8b",
        "smlal2 {p3:v}.8h, {d0:v}.16b, {y0:v}.16b",
        "smlal {p3:v}.8h, {d1:v}.8b, {y1:v}.8b",
        "smlal2 {p3:v}.8h, {d1:v}.16b, {y1:v}.16b",
        "addp {p0:v}.8h, {p0:v}.8h, {p1:v}.8h",
        "addp {p2:v}.8h, {p2:v}.8h, {p3:v}.8h",
        "addp {p0:v}.8h, {p0:v}.8h, {p2:v}.8h",
        "saddlp {p0:v}.4s, {p0:v}.8h",
        "mla {acc:v}.4s, {p0:v}.4s, {sc:v}.4s",
        acc = inout(vreg) acc,
        yp = inout(reg) *yp,
        sc = in(vreg) sc,
        a0 = in(vreg) q[0][0],
        a1 = in(vreg) q[0][1],
        b0 = in(vreg) q[1][0],
        b1 = in(vreg) q[1][1],
        c0 = in(vreg) q[2][0],
        c1 = in(vreg) q[2][1],
        d0 = in(vreg) q[3][0],
        d1 = in(vreg) q[3][1],
        y0 = out(vreg) _,
        y1 = out(vreg) _,
        p0 = out(vreg) _,
        p1 = out(vreg) _,
        p2 = out(vreg) _,
        p3 = out(vreg) _,
        options(pure, readonly, nostack, preserves_flags)
    );
    acc
}

/// Lane `r` = the integer dot product of row `r`'s 32 weights `q[r]` with the activations `y`.
#[inline(always)]
pub(super) unsafe fn block_sums<const SDOT: bool>(
    lanes: Lanes,
    q: &[[int8x16_t; 2]; ROWS],
    y: &[int8x16_t; 2],
) -> int32x4_t {
    if SDOT {
        let s: [int32x4_t; ROWS] = [0, 1, 2, 3].map(|r| {
            let a = dot_i8::<true>(vdupq_n_s32(0), q[r][0], y[0]);
            dot_i8::<true>(a, q[r][1], y[1])
        });
        return vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]));
    }
    match lanes {
        Lanes::Narrow => {
            // Pairwise sums of the four rows' i16 lanes: [r0 x2, r1 x2, r2 x2, r3 x2] (16 products per lane),
            // widened pairwise to [r0, r1, r2, r3].
            let p: [int16x8_t; ROWS] = [0, 1, 2, 3].map(|r| mul16_4(&q[r], y));
            vpaddlq_s16(vpaddq_s16(vpaddq_s16(p[0], p[1]), vpaddq_s16(p[2], p[3])))
        }
        Lanes::Wide => {
            let s: [int32x4_t; ROWS] = [0, 1, 2, 3].map(|r| {
                let a = vpaddlq_s16(vmlal_high_s8(vmull_s8(vget_low_s8(q[r][0]), vget_low_s8(y[0])), q[r][0], y[0]));
                vpadalq_s16(a, vmlal_high_s8(vmull_s8(vget_low_s8(q[r][1]), vget_low_s8(y[1])), q[r][1], y[1]))
            });
            vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]))
        }
    }
}

/// The results of four weight rows (`w`, each `nb` blocks of `F`) with `NT` tokens: `[token][row]`.
///
/// # Safety
/// Every pointer of `w` and every token's row and scales hold `nb` whole blocks; with `SDOT` the CPU has
/// FEAT_DotProd.
#[target_feature(enable = "neon")]
unsafe fn tile<F: Format, const SDOT: bool, const NT: usize>(
    nb: usize,
    w: [*const u8; ROWS],
    t: &[Tok; NT],
) -> [[f32; ROWS]; NT] {
    let (x_bytes, x_qs, spb) = if F::MIN { (36, 4, 2) } else { (34, 2, 1) };
    let mut acc = [vdupq_n_f32(0.0); NT];
    let mut mins = [vdupq_n_f32(0.0); NT];
    for b in 0..nb {
        let wb =
            [w[0].add(b * F::W_BYTES), w[1].add(b * F::W_BYTES), w[2].add(b * F::W_BYTES), w[3].add(b * F::W_BYTES)];
        let q = [F::decode(wb[0]), F::decode(wb[1]), F::decode(wb[2]), F::decode(wb[3])];
        let dw = row_scales(&wb, 0);
        let mw = if F::MIN { row_scales(&wb, 2) } else { dw };
        for i in 0..NT {
            let yp = t[i].x.add(b * x_bytes + x_qs) as *const i8;
            let y = [vld1q_s8(yp), vld1q_s8(yp.add(16))];
            let isum = block_sums::<SDOT>(F::LANES, &q, &y);
            let sx = t[i].s.add(spb * b);
            acc[i] = vfmaq_f32(acc[i], vcvtq_f32_s32(isum), vmulq_n_f32(dw, *sx));
            if F::MIN {
                mins[i] = vfmaq_n_f32(mins[i], mw, *sx.add(1));
            }
        }
    }
    let mut out = [[0f32; ROWS]; NT];
    for i in 0..NT {
        let v = if F::MIN { vaddq_f32(acc[i], mins[i]) } else { acc[i] };
        vst1q_f32(out[i].as_mut_ptr(), v);
    }
    out
}

/// Q4_K against Q8_K (f32 d @0, i8 qs[256] @4, i16 bsums[16] @260): lane `r` of a token's accumulator gets
/// `fma(fma(acc, f32(sumi_r), d_r * d_x), f32(summ_r), -dmin_r * d_x)` per block, where `sumi_r` is the sum over
/// the eight 32-value sub-blocks of scale times integer dot product, and `summ_r` the sum of min times the
/// sub-block's activation sum. Without `sdot` a sub-block's products (nibbles 0..=15 times -128..=127) fit the
/// narrow i16 lanes (16 * 15 * 128 = 30720).
pub(super) struct Q4K;

impl Tile for Q4K {
    const BLOCK: usize = 256;
    const W_BYTES: usize = 144;
    const X_BYTES: usize = 292;
    const SPB: usize = 0;
    #[inline(always)]
    unsafe fn tile<const SDOT: bool, const NT: usize>(
        nb: usize,
        w: [*const u8; ROWS],
        t: &[Tok; NT],
    ) -> [[f32; ROWS]; NT] {
        if SDOT {
            super::aarch64_neon_tiles_sdot_k::q4_k_tile::<NT>(nb, w, t)
        } else {
            q4_k_tile_neon::<NT>(nb, w, t)
        }
    }
}

/// The 6-bit sub-block scales and mins of the four rows' Q4_K blocks at `wb` (12 bytes at offset 4 each, packed as
/// in `quant::k4_scale_min`), unpacked to bytes: `[scales 0..4, scales 4..8, mins 0..4, mins 4..8]`, byte `4r + i` of
/// each = scale or min `i` (or `4 + i`) of row `r`. `ld3` to one lane per row puts bytes `4i .. 4i + 4` of row `r` in
/// lane `r` of vector `i`, so the unpacking runs once for the four rows.
///
/// # Safety
/// Every pointer of `wb` points to a whole Q4_K block.
#[inline(always)]
pub(super) unsafe fn k4_scale_bytes(wb: &[*const u8; ROWS]) -> [uint8x16_t; 4] {
    let z = vdupq_n_u32(0);
    let v = vld3q_lane_u32::<0>(wb[0].add(4) as *const u32, uint32x4x3_t(z, z, z));
    let v = vld3q_lane_u32::<1>(wb[1].add(4) as *const u32, v);
    let v = vld3q_lane_u32::<2>(wb[2].add(4) as *const u32, v);
    let v = vld3q_lane_u32::<3>(wb[3].add(4) as *const u32, v);
    let (q0, q4, q8) = (vreinterpretq_u8_u32(v.0), vreinterpretq_u8_u32(v.1), vreinterpretq_u8_u32(v.2));
    // Bytes 4r + i of each: the scale or min i (of 0..4, or of 4..8) of row r.
    let (m6, m4) = (vdupq_n_u8(63), vdupq_n_u8(0x0F));
    let sc_lo = vandq_u8(q0, m6);
    let m_lo = vandq_u8(q4, m6);
    // (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4): the low bits from q8, bits 4 and 5 from q0 >> 2 (whose top bits are 0).
    let sc_hi = vbslq_u8(m4, q8, vshrq_n_u8::<2>(q0));
    // (q[j + 4] >> 4) | ((q[j] >> 6) << 4).
    let m_hi = vbslq_u8(m4, vshrq_n_u8::<4>(q8), vshrq_n_u8::<2>(q4));
    [sc_lo, sc_hi, m_lo, m_hi]
}

/// The 6-bit sub-block scales and mins of the four rows' Q4_K blocks at `wb` ([`k4_scale_bytes`]): scale `j` of every
/// row as the i32 lanes of vector `j` (for the per-lane multiply-accumulate), and each row's eight mins as i16 lanes
/// (for the widening multiply with the activations' sub-block sums).
///
/// # Safety
/// Every pointer of `wb` points to a whole Q4_K block.
#[inline(always)]
pub(super) unsafe fn k4_scales(wb: &[*const u8; ROWS]) -> ([int32x4_t; 8], [int16x8_t; ROWS]) {
    let [sc_lo, sc_hi, m_lo, m_hi] = k4_scale_bytes(wb);
    let sc = [0, 1, 2, 3, 4, 5, 6, 7].map(|j| k4_byte(if j < 4 { sc_lo } else { sc_hi }, j % 4));
    // Rows 0 and 1, then 2 and 3: each row's mins 0..4 then 4..8, widened to i16.
    let (m01, m23) = (
        vreinterpretq_u8_u32(vzip1q_u32(vreinterpretq_u32_u8(m_lo), vreinterpretq_u32_u8(m_hi))),
        vreinterpretq_u8_u32(vzip2q_u32(vreinterpretq_u32_u8(m_lo), vreinterpretq_u32_u8(m_hi))),
    );
    let w = |v: uint16x8_t| vreinterpretq_s16_u16(v);
    let mins =
        [w(vmovl_u8(vget_low_u8(m01))), w(vmovl_high_u8(m01)), w(vmovl_u8(vget_low_u8(m23))), w(vmovl_high_u8(m23))];
    (sc, mins)
}

/// Byte `i` (0..4) of each 32-bit lane of `v`, as the i32 lanes: byte `4r + i` of [`k4_scale_bytes`]'s vectors for
/// each row `r`.
#[inline(always)]
pub(super) unsafe fn k4_byte(v: uint8x16_t, i: usize) -> int32x4_t {
    let w = vreinterpretq_u32_u8(v);
    let w = match i {
        0 => w,
        1 => vshrq_n_u32::<8>(w),
        2 => vshrq_n_u32::<16>(w),
        _ => vshrq_n_u32::<24>(w),
    };
    vreinterpretq_s32_u32(if i == 3 { w } else { vandq_u32(w, vdupq_n_u32(0xFF)) })
}

/// A token's Q4_K block result added to its accumulator `acc`: `fma(fma(acc, f32(sumi), d * d_x), f32(summ),
/// -dmin * d_x)` with `d_x` the f32 at `xb` and `summ_r` the sum of row `r`'s eight mins (`mins[r]`) times the
/// sub-blocks' activation sums (pairs of the 16 i16 bsums at `bsums`, at most 2 * 16 * 128 in magnitude), in one
/// `asm!` block so that LLVM cannot interleave the eight tokens of a tile and spill (it did: about 70 loads and
/// stores per block of eight tokens).
///
/// # Safety
/// `xb` points to 4 readable bytes and `bsums` to 32.
#[inline(always)]
unsafe fn q4_k_block_end(
    acc: float32x4_t,
    sumi: int32x4_t,
    xb: *const u8,
    bsums: *const i8,
    mins: &[int16x8_t; ROWS],
    d: float32x4_t,
    ndmin: float32x4_t,
) -> float32x4_t {
    let mut acc = acc;
    std::arch::asm!(
        "ldr {dx:s}, [{xb}]",
        "ldp {b0:q}, {b1:q}, [{bs}]",
        "addp {b0:v}.8h, {b0:v}.8h, {b1:v}.8h",
        "smull {m0:v}.4s, {n0:v}.4h, {b0:v}.4h",
        "smlal2 {m0:v}.4s, {n0:v}.8h, {b0:v}.8h",
        "smull {m1:v}.4s, {n1:v}.4h, {b0:v}.4h",
        "smlal2 {m1:v}.4s, {n1:v}.8h, {b0:v}.8h",
        "smull {m2:v}.4s, {n2:v}.4h, {b0:v}.4h",
        "smlal2 {m2:v}.4s, {n2:v}.8h, {b0:v}.8h",
        "smull {m3:v}.4s, {n3:v}.4h, {b0:v}.4h",
        "smlal2 {m3:v}.4s, {n3:v}.8h, {b0:v}.8h",
        "addp {m0:v}.4s, {m0:v}.4s, {m1:v}.4s",
        "addp {m2:v}.4s, {m2:v}.4s, {m3:v}.4s",
        "addp {m0:v}.4s, {m0:v}.4s, {m2:v}.4s",
        "fmul {f1:v}.4s, {d:v}.4s, {dx:v}.s[0]",
        "fmul {f2:v}.4s, {nd:v}.4s, {dx:v}.s[0]",
        "scvtf {si:v}.4s, {si:v}.4s",
        "scvtf {m0:v}.4s, {m0:v}.4s",
        "fmla {acc:v}.4s, {si:v}.4s, {f1:v}.4s",
        "fmla {acc:v}.4s, {m0:v}.4s, {f2:v}.4s",
        acc = inout(vreg) acc,
        si = inout(vreg) sumi => _,
        xb = in(reg) xb,
        bs = in(reg) bsums,
        d = in(vreg) d,
        nd = in(vreg) ndmin,
        n0 = in(vreg) mins[0],
        n1 = in(vreg) mins[1],
        n2 = in(vreg) mins[2],
        n3 = in(vreg) mins[3],
        dx = out(vreg) _,
        b0 = out(vreg) _,
        b1 = out(vreg) _,
        m0 = out(vreg) _,
        m1 = out(vreg) _,
        m2 = out(vreg) _,
        m3 = out(vreg) _,
        f1 = out(vreg) _,
        f2 = out(vreg) _,
        options(pure, readonly, nostack, preserves_flags)
    );
    acc
}

/// The Q4_K tile without `sdot` (see [`Q4K`]): eight tokens per call ([`K_TOKENS`]).
///
/// # Safety
/// Every pointer of `w` and every token's row hold `nb` whole blocks.
#[target_feature(enable = "neon")]
unsafe fn q4_k_tile_neon<const NT: usize>(nb: usize, w: [*const u8; ROWS], t: &[Tok; NT]) -> [[f32; ROWS]; NT] {
    let mut acc = [vdupq_n_f32(0.0); NT];
    let m4 = vdupq_n_u8(0x0F);
    for b in 0..nb {
        let wb = [w[0].add(b * 144), w[1].add(b * 144), w[2].add(b * 144), w[3].add(b * 144)];
        let d = row_scales(&wb, 0);
        let dmin = row_scales(&wb, 2);
        let (sc, mins) = k4_scales(&wb);
        let mut sumi = [vdupq_n_s32(0); NT];
        // Each token's activations of the current sub-block, advanced by 32 bytes per sub-block.
        let mut yq: [*const i8; NT] = std::array::from_fn(|i| t[i].x.add(b * 292 + 4) as *const i8);
        for j in 0..8 {
            // Sub-block j: the low (even j) or high (odd j) nibbles of bytes 32 * (j / 2) .. + 32.
            let q: [[int8x16_t; 2]; ROWS] = [0, 1, 2, 3].map(|r| {
                let v = vld1q_u8_x2(wb[r].add(16 + 32 * (j / 2)));
                let nib =
                    |v: uint8x16_t| vreinterpretq_s8_u8(if j % 2 == 0 { vandq_u8(v, m4) } else { vshrq_n_u8::<4>(v) });
                [nib(v.0), nib(v.1)]
            });
            let scj = sc[j];
            each_token!(NT, |i| {
                sumi[i] = mla_sub_block(sumi[i], &q, &mut yq[i], scj);
            });
        }
        let ndmin = vnegq_f32(dmin);
        each_token!(NT, |i| {
            // `yq[i]` has passed the 256 quants: it points to the bsums.
            acc[i] = q4_k_block_end(acc[i], sumi[i], t[i].x.add(b * 292), yq[i], &mins, d, ndmin);
        });
    }
    let mut out = [[0f32; ROWS]; NT];
    for i in 0..NT {
        vst1q_f32(out[i].as_mut_ptr(), acc[i]);
    }
    out
}

/// The tile tests, and the test helpers the GEMV entry's tests (`aarch64_neon_gemv`) share.
#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::quant;
    use crate::simd::tests::values;
    use crate::simd::{prepare_activations, scales_per_block};

    /// The formats with aarch64 tiles.
    pub(in crate::simd) const FORMATS: [GgmlType; 6] =
        [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K];

    /// The flavours this CPU can run: plain NEON always, `sdot` with FEAT_DotProd.
    pub(in crate::simd) fn flavours() -> Vec<bool> {
        if super::super::aarch64_neon::has_dotprod() {
            vec![false, true]
        } else {
            vec![false]
        }
    }

    /// Quantized weight rows and activation rows with their prepared scales and sums.
    struct Case {
        ty: GgmlType,
        n: usize,
        wq: Vec<u8>,
        w_row_bytes: usize,
        xq: Vec<u8>,
        x_row_bytes: usize,
        scales: Vec<f32>,
        sums: Vec<i32>,
    }

    impl Case {
        fn rows(&self) -> usize {
            self.wq.len() / self.w_row_bytes
        }

        fn tokens(&self) -> usize {
            self.xq.len() / self.x_row_bytes
        }

        /// Builds the prepared scales and sums of activation rows already in `xq`.
        fn from_bytes(ty: GgmlType, n: usize, wq: Vec<u8>, xq: Vec<u8>) -> Case {
            let w_row_bytes = ty.row_bytes(n as u64).unwrap() as usize;
            let xt = quant::vec_dot_type(ty);
            let x_row_bytes = xt.row_bytes(n as u64).unwrap() as usize;
            let (nb, spb) = (n / ty.block_size(), scales_per_block(xt));
            let tokens = xq.len() / x_row_bytes;
            let (mut scales, mut sums) = (vec![0f32; tokens * nb * spb], vec![0i32; tokens * nb]);
            for t in 0..tokens {
                prepare_activations(
                    xt,
                    &xq[t * x_row_bytes..(t + 1) * x_row_bytes],
                    &mut scales[t * nb * spb..(t + 1) * nb * spb],
                    &mut sums[t * nb..(t + 1) * nb],
                );
            }
            Case { ty, n, wq, w_row_bytes, xq, x_row_bytes, scales, sums }
        }

        fn new(ty: GgmlType, n: usize, ws: &[Vec<f32>], xs: &[Vec<f32>]) -> Case {
            let w_row_bytes = ty.row_bytes(n as u64).unwrap() as usize;
            let mut wq = vec![0u8; w_row_bytes * ws.len()];
            for (w, row) in ws.iter().zip(wq.chunks_exact_mut(w_row_bytes)) {
                quant::quantize_row(ty, w, row).unwrap();
            }
            let xt = quant::vec_dot_type(ty);
            let x_row_bytes = xt.row_bytes(n as u64).unwrap() as usize;
            let mut xq = vec![0u8; x_row_bytes * xs.len()];
            for (x, row) in xs.iter().zip(xq.chunks_exact_mut(x_row_bytes)) {
                quant::quantize_row(xt, x, row).unwrap();
            }
            Case::from_bytes(ty, n, wq, xq)
        }

        fn activations(&self) -> ActivationRows<'_> {
            let xt = quant::vec_dot_type(self.ty);
            ActivationRows {
                bytes: &self.xq,
                row_bytes: self.x_row_bytes,
                blocks_per_row: self.n / self.ty.block_size(),
                scales_per_block: scales_per_block(xt),
                scales: &self.scales,
                sums: &self.sums,
            }
        }

        /// All results `[row][token]`, computed as a matmul does: tiles of up to `row_step` rows and `token_step`
        /// tokens.
        fn matmul(&self, k: &TileKernel, row_step: usize, token_step: usize) -> Vec<Vec<f32>> {
            let (rows, tokens) = (self.rows(), self.tokens());
            let mut out = vec![f32::NAN; rows * tokens];
            for r in (0..rows).step_by(row_step) {
                for t in (0..tokens).step_by(token_step) {
                    let shape =
                        TileShape { rows: row_step.min(rows - r), tokens: token_step.min(tokens - t), ld: tokens };
                    let w = &self.wq[r * self.w_row_bytes..];
                    (k.run)(self.n, w, self.w_row_bytes, &self.activations(), t, shape, &mut out[r * tokens + t..]);
                }
            }
            out.chunks(tokens).map(|c| c.to_vec()).collect()
        }

        fn reference(&self, r: usize, t: usize) -> f32 {
            let w = &self.wq[r * self.w_row_bytes..(r + 1) * self.w_row_bytes];
            let x = &self.xq[t * self.x_row_bytes..(t + 1) * self.x_row_bytes];
            quant::vec_dot(self.ty, self.n, w, x).unwrap()
        }
    }

    fn bits(v: &[Vec<f32>]) -> Vec<Vec<u32>> {
        v.iter().map(|r| r.iter().map(|x| x.to_bits()).collect()).collect()
    }

    /// Every kernel agrees with the scalar reference on random rows, for every matrix height 1..=9 (partial row
    /// tiles) and token counts 1..=9, 12, 13 and 17 (whole and partial tiles of four or eight tokens), and gives bit-identical
    /// results for any tiling: whole tiles, one row at a time, one token at a time, three rows by two tokens.
    #[test]
    fn aarch64_tiles_match_the_scalar_reference_on_odd_shapes() {
        let mut checked = 0;
        for ty in FORMATS {
            for sdot in flavours() {
                let (name, k) = kernel(ty, sdot).unwrap();
                let sizes: &[(u64, usize)] = if ty.block_size() == 32 {
                    &[(1, 32), (2, 96), (3, 256), (4, 1536)]
                } else {
                    &[(1, 256), (2, 768)]
                };
                for &(seed, n) in sizes {
                    for scale in [1e-3f32, 1.0, 50.0] {
                        let mut ws: Vec<Vec<f32>> = (0..18u64).map(|r| values(seed * 31 + r, n, scale)).collect();
                        ws[2] = vec![0.0; n];
                        ws[5] = (0..n).map(|i| if i % 3 == 0 { 65000.0 } else { -65000.0 }).collect();
                        let mut xs: Vec<Vec<f32>> = (0..17u64).map(|t| values(seed * 57 + 100 + t, n, scale)).collect();
                        xs[1] = vec![0.0; n];
                        // 18 rows: a kernel taking sixteen rows per call (neon-sdot-4x8) runs four whole groups of
                        // four, then a partial call.
                        for rows in [1usize, 2, 3, 4, 5, 7, 9, 18] {
                            let token_counts: &[usize] =
                                if rows > 9 { &[1, 4, 8, 9, 17] } else { &[1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 17] };
                            for &tokens in token_counts {
                                let case = Case::new(ty, n, &ws[..rows], &xs[..tokens]);
                                let whole = case.matmul(&k, k.max_rows, k.max_tokens);
                                assert_eq!(
                                    bits(&whole),
                                    bits(&case.matmul(&k, 1, 1)),
                                    "{ty} {name}: n={n} {rows}x{tokens}"
                                );
                                assert_eq!(
                                    bits(&whole),
                                    bits(&case.matmul(&k, 3, 2)),
                                    "{ty} {name}: n={n} {rows}x{tokens}"
                                );
                                for (r, row) in whole.iter().enumerate() {
                                    for (t, got) in row.iter().enumerate() {
                                        let want = case.reference(r, t);
                                        let magnitude: f32 =
                                            ws[r].iter().zip(&xs[t]).map(|(a, b)| (a * b).abs()).sum::<f32>();
                                        let tol = 2e-5 * magnitude.max(1e-6) + 1e-6;
                                        assert!(
                                            (want - got).abs() <= tol,
                                            "{ty} {name}: n={n} {rows}x{tokens} row {r} token {t}: reference {want} tile {got}"
                                        );
                                        checked += 1;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        eprintln!("{checked} aarch64 tile results checked on {}", crate::simd::cpu_path());
    }

    /// The extreme quants (the largest products the i16 lanes must hold without `sdot`): every weight at its most
    /// negative or most positive value against activations of -127 or 127 with unit scales, so that each block's
    /// integer sum is exact in f32 and must equal the reference exactly.
    #[test]
    fn aarch64_tiles_are_exact_at_the_extreme_quants() {
        let one = 0x3C00u16.to_le_bytes(); // f16 1.0
        for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0] {
            let n = 128;
            let wb = ty.block_bytes();
            // (weight fill, activation quant): all combinations of the extremes' signs.
            let weight_blocks = |low: bool| -> Vec<u8> {
                let mut b = vec![0u8; wb];
                b[..2].copy_from_slice(&one);
                match ty {
                    GgmlType::Q4_0 => b[2..].fill(if low { 0x00 } else { 0xFF }), // -8 or 7
                    GgmlType::Q4_1 => {
                        b[2..4].copy_from_slice(&0u16.to_le_bytes()); // min 0
                        b[4..].fill(if low { 0x00 } else { 0xFF }); // 0 or 15
                    }
                    GgmlType::Q5_0 => b[2..].fill(if low { 0x00 } else { 0xFF }), // -16 or 15
                    _ => b[2..].fill(if low { 0x81 } else { 0x7F }),              // -127 or 127
                }
                b.repeat(n / 32)
            };
            let xt = quant::vec_dot_type(ty);
            let xb = xt.block_bytes();
            let act_blocks = |q: i8| -> Vec<u8> {
                let mut b = vec![0u8; xb];
                b[..2].copy_from_slice(&one);
                let qs = xb - 32;
                if xt == GgmlType::Q8_1 {
                    b[2..4].copy_from_slice(&f32_to_f16_bits(32.0 * q as f32));
                }
                b[qs..].fill(q as u8);
                b.repeat(n / 32)
            };
            let wq: Vec<u8> = [true, false, true, true, false].iter().flat_map(|&low| weight_blocks(low)).collect();
            let xq: Vec<u8> = [-127i8, 127, 127, -127, -127].iter().flat_map(|&q| act_blocks(q)).collect();
            let case = Case::from_bytes(ty, n, wq, xq);
            for sdot in flavours() {
                let (name, k) = kernel(ty, sdot).unwrap();
                let got = case.matmul(&k, k.max_rows, k.max_tokens);
                for (r, row) in got.iter().enumerate() {
                    for (t, v) in row.iter().enumerate() {
                        let want = case.reference(r, t);
                        assert_eq!(want, *v, "{ty} {name}: row {r} token {t}");
                        assert!(want.abs() >= 4.0 * 32.0 * 7.0 * 127.0 * 0.99 || ty == GgmlType::Q4_1);
                    }
                }
            }
        }
    }

    /// Q4_K at its extremes: every nibble 15 and every 6-bit scale 63 against Q8_K activations of -128 or 127
    /// (the products the narrow i16 lanes must hold), with unit scales: equal to the reference exactly.
    #[test]
    fn aarch64_q4_k_tile_is_exact_at_the_extreme_quants() {
        let n = 512;
        let mut wblock = vec![0xFFu8; 144];
        wblock[..2].copy_from_slice(&0x3C00u16.to_le_bytes()); // d = 1
        wblock[2..4].copy_from_slice(&0x3C00u16.to_le_bytes()); // dmin = 1: the mins count too
        let mut low = wblock.clone();
        low[16..].fill(0x00); // nibbles 0
        let wq: Vec<u8> = [&wblock, &low, &wblock, &wblock, &low].iter().flat_map(|b| b.repeat(n / 256)).collect();
        let act = |q: i8| -> Vec<u8> {
            let mut b = vec![0u8; 292];
            b[..4].copy_from_slice(&1f32.to_le_bytes());
            b[4..260].fill(q as u8);
            for k in 0..16 {
                b[260 + 2 * k..262 + 2 * k].copy_from_slice(&(16 * q as i16).to_le_bytes());
            }
            b.repeat(n / 256)
        };
        let xq: Vec<u8> = [-128i8, 127, -128, 127, 127].iter().flat_map(|&q| act(q)).collect();
        let case = Case::from_bytes(GgmlType::Q4_K, n, wq, xq);
        for sdot in flavours() {
            let (name, k) = kernel(GgmlType::Q4_K, sdot).unwrap();
            for (r, row) in case.matmul(&k, k.max_rows, k.max_tokens).iter().enumerate() {
                for (t, v) in row.iter().enumerate() {
                    let want = case.reference(r, t);
                    assert_eq!(want, *v, "Q4_K {name}: row {r} token {t}");
                    assert!(want != 0.0);
                }
            }
        }
    }

    fn f32_to_f16_bits(v: f32) -> [u8; 2] {
        crate::simd::f32_to_f16(v).to_le_bytes()
    }

    /// The kernels are what this CPU gets: `smmla` for Q4_0, Q4_1, Q5_0, Q8_0, Q4_K and Q6_K where FEAT_I8MM is,
    /// `sdot` where
    /// FEAT_DotProd is, plain NEON elsewhere.
    #[test]
    fn aarch64_tiles_are_the_prefill_kernels() {
        let i8mm = super::super::aarch64_neon_tiles_i8mm::available();
        for ty in FORMATS {
            let want = match (super::super::aarch64_neon::has_dotprod(), ty) {
                (
                    true,
                    GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::Q4_K | GgmlType::Q6_K,
                ) if i8mm => "neon-i8mm-4x8",
                (true, GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::Q4_K | GgmlType::Q6_K) => {
                    "neon-sdot-4x8"
                }
                (true, _) => "neon-sdot-4x4",
                (false, GgmlType::Q4_K | GgmlType::Q6_K) => "neon-4x8",
                (false, _) => "neon-4x4",
            };
            assert_eq!(crate::simd::prefill_kernel(ty).name, want, "{ty}");
            assert!(crate::simd::DECODE_KERNEL_NAMES.contains(&want));
        }
    }
}
