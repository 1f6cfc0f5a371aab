//! aarch64 `smmla` tiles (FEAT_I8MM: Cortex-A510/A710/X2, Neoverse N2/V1, Apple M2 and later) for the 32-value
//! formats Q4_0, Q4_1, Q5_0 and Q8_0: `neon-i8mm-4x8`, their prefill kernel on CPUs with FEAT_I8MM; and the frame
//! (the safe entry, [`Tile`], the chunk pairing) that the Q4_K and Q6_K tiles of the same name
//! (`aarch64_neon_tiles_i8mm_k.rs`, `aarch64_neon_tiles_i8mm_q6k.rs`) share.
//!
//! `smmla v.4s, a.16b, b.16b` multiplies a 2x8 int8 matrix (`a`: eight bytes of each of two weight rows) by the
//! transpose of another (`b`: eight bytes of each of two tokens) into a 2x2 int32 accumulator (lanes: row 0 with
//! tokens 0 and 1, row 1 with tokens 0 and 1): 32 multiply-adds per instruction, twice an `sdot`'s. A group of four
//! weight rows by eight tokens keeps eight such accumulators (two row pairs by four token pairs) and takes, per
//! 32-value block, 32 `smmla` (the `neon-sdot-4x8` tile takes 64 `sdot`).
//!
//! Both operands must hold two rows in 8-byte halves. The weights are paired while loading, with no repacking in
//! memory (rows are read in place from the memory map): `ld4` (Q8_0) or `ld2` (Q4_0, Q4_1, Q5_0: the packed
//! nibbles) of 64-bit lanes puts the block's 8-byte chunk `c` of row `a` in lane 0 and of row `b` in lane 1 of
//! vector `c` (Q5_0's fifth bits are spread to that layout by `tbl`, see [`Q5_0`]: 36 instructions per block of
//! four rows for their scales and weights, against Q4_0's 20). The tokens' quants are paired the same way once per
//! call, into a buffer on the stack that every group of four rows of the call reads (a call takes up to [`ROWS`]
//! rows), with each block's two activation scales `[d_c, d_d]` per token pair (and for Q4_1 the two sum terms
//! `[s_c, s_d]` of its Q8_1 activations).
//!
//! The float steps are those of the `sdot` tile (`neon-sdot-4x8`, `aarch64_neon_tiles_sdot8.rs`; Q4_1:
//! `neon-sdot-4x4`, `aarch64_neon_tiles.rs`) per row, token and block: `acc = fma(acc, f32(isum), d_w * d_x)`, lane
//! by lane in the accumulators' 2x2 layout, on the same exact integer sums; Q4_1 also `mins = fma(mins, m_w, s_x)`
//! in accumulators of its own (a second pass over the blocks, [`mins_asm`]) and `acc + mins` at the end. So the
//! results equal that tile's and its GEMV entry's (`aarch64_neon_gemv.rs`, `aarch64_neon_tiles_sdot8.rs`: the
//! decode kernel) bit for bit, for any split into tiles. Q4_0 decodes its nibbles as the weights times 16 (as the
//! sdot tile does) and divides the tokens' scales by 16 instead of the rows': `d_w * (d_x / 16)` and `(d_w / 16) *
//! d_x` are both the exact product of two f16 values over 16 (22 significant bits, normal), so the steps round
//! alike. Q4_1 and Q5_0 decode their weights as they are (0..=15, -16..=15), as their sdot tiles do.

use std::arch::aarch64::*;

use super::aarch64_neon_tiles::{check, Tok};
use super::aarch64_neon_tiles_i8mm_k::Q4K;
use super::aarch64_neon_tiles_i8mm_q6k::Q6K;
use super::{ActivationRows, TileFn, TileKernel, TileShape};
use crate::ggml_type::GgmlType;

/// Most weight rows per call: four groups of four rows share the paired tokens.
const ROWS: usize = 16;
/// Rows per group (two `smmla` row pairs).
pub(super) const GROUP: usize = 4;
/// Most tokens per call (four `smmla` token pairs).
pub(super) const TOKENS: usize = 8;
/// Blocks whose paired tokens the stack buffer holds at once (the float accumulators of each group are carried
/// from one run of blocks to the next).
const RUN: usize = 32;

/// Whether this CPU has FEAT_I8MM (and FEAT_DotProd, whose GEMV entries decode for these tiles). Always false in a
/// build without the `i8mm` feature: the tiles are then unreachable and the linker leaves them out; such CPUs
/// prefill with the `sdot` tiles, whose results are the same bit for bit.
pub fn available() -> bool {
    cfg!(feature = "i8mm") && std::arch::is_aarch64_feature_detected!("i8mm") && super::aarch64_neon::has_dotprod()
}

/// The `neon-i8mm-4x8` tile for weights of type `ty` (call it only when [`available`]).
pub fn kernel(ty: GgmlType) -> Option<(&'static str, TileKernel)> {
    let run: TileFn = match ty {
        GgmlType::Q4_0 => tile_entry::<Q4_0>,
        GgmlType::Q4_1 => tile_entry::<Q4_1>,
        GgmlType::Q5_0 => tile_entry::<Q5_0>,
        GgmlType::Q8_0 => tile_entry::<Q8_0>,
        GgmlType::Q4_K => tile_entry::<Q4K>,
        GgmlType::Q6_K => tile_entry::<Q6K>,
        _ => return None,
    };
    Some(("neon-i8mm-4x8", TileKernel { run, max_rows: ROWS, max_tokens: TOKENS }))
}

/// The eight f32 accumulators of a group (`[row pair * 4 + token pair]`, lanes in `smmla` order: row `2 * pair +
/// i` with token `2 * pair + j` in lane `2i + j`).
pub(super) type Acc = [float32x4_t; 8];

/// A weight format of these tiles, as [`tile_entry`] runs it.
pub(super) trait Tile {
    /// The block layout [`check`] verifies: values, weight bytes and activation bytes per block, prepared
    /// activation scales per block.
    const LAYOUT: (usize, usize, usize, usize);
    /// Adds the results of the groups of four rows `rows` (advanced past what they read) with the `2 * TP` tokens
    /// `t` (the last repeated when the tile's count is odd), `nb` blocks each, to the groups' accumulators `acc`.
    ///
    /// # Safety
    /// Every row pointer and every token's row and scales hold `nb` whole blocks; the CPU has FEAT_I8MM.
    unsafe fn tile<const TP: usize>(nb: usize, rows: &mut [[*const u8; GROUP]], t: &[Tok; TOKENS], acc: &mut [Acc]);
}

/// A 32-value weight format of these tiles.
trait Format {
    /// Whether the blocks carry a min `m` (Q4_1: f16 at offset 2): the activations are then Q8_1 (two prepared
    /// scales per block, `d_x` and the sum term `s_x`) and each result gains the sum of `m_w * s_x` (see
    /// [`mins_asm`]).
    const MIN: bool;
    /// Bytes of an activation block (Q8_0, or Q8_1 with [`Format::MIN`]); its 32 quants are the last bytes.
    const X_BYTES: usize = if Self::MIN { 36 } else { 34 };
    /// Prepared activation scales per block.
    const SPB: usize = if Self::MIN { 2 } else { 1 };
    /// The factor of the tokens' scales (1/16 for Q4_0, whose weights are decoded times 16).
    const X_SCALE: f32;
    /// Runs `nb` blocks of the four rows at `w` (advanced past them) against `TP` token pairs of paired quants at
    /// `q` and paired scales at `s` (see [`pair_tokens`]), adding to `acc`.
    ///
    /// # Safety
    /// `nb >= 1`; every pointer of `w` holds `nb` blocks; `q` and `s` hold `nb` blocks of `TP` pairs; the CPU has
    /// FEAT_I8MM.
    unsafe fn blocks<const TP: usize>(
        nb: usize,
        w: &mut [*const u8; GROUP],
        q: *const u8,
        s: *const f32,
        acc: &mut Acc,
    );
}

/// The `asm!` loop over the blocks of a group (see [`Format::blocks`]): per block the format's `$load` (the four
/// rows' f16 scales `d` in lanes 0..4 of `v12`, post-indexed, and their weights: the 8-byte chunk `c` of rows 0 and
/// 1 in `v16 + c`, of rows 2 and 3 in `v20 + c`; `v0`..`v11` are free for it), per token pair its four paired chunks
/// (`v8`..`v11`) and eight `smmla` into its two zeroed accumulators, then the token pairs' scales (`$lds`: `[d_c,
/// d_d]` replicated to both halves of `v8 + p`), `d_w * d_x` per lane and `acc = fma(acc, f32(isum), d_w * d_x)`.
/// Registers: `v0 + p` / `v4 + p` the integer sums of token pair `p` with row pair 0 / 1, `v24 + p` / `v28 + p`
/// their f32 accumulators; `v13`..`v15` and the operands `$named` are the format's (declared in `$consts`).
macro_rules! group_asm {
    ($nb:expr, $w:expr, $q:expr, $s:expr, $acc:expr, [$($load:literal),+], [$($named:tt)*], [$($consts:tt)*],
     $lds:literal, [$(($a0:literal, $a1:literal, $tok:literal, $f0:literal, $f1:literal)),+]) => {{
        let w: &mut [*const u8; GROUP] = $w;
        let acc: &mut Acc = $acc;
        std::arch::asm!(
            ".arch_extension i8mm",
            "2:",
            $($load,)+
            $(concat!(
                "ld1 {{v8.16b, v9.16b, v10.16b, v11.16b}}, [{q}], #64\n",
                "movi ", $a0, ".2d, #0\n",
                "movi ", $a1, ".2d, #0\n",
                "smmla ", $a0, ".4s, v16.16b, v8.16b\n",
                "smmla ", $a1, ".4s, v20.16b, v8.16b\n",
                "smmla ", $a0, ".4s, v17.16b, v9.16b\n",
                "smmla ", $a1, ".4s, v21.16b, v9.16b\n",
                "smmla ", $a0, ".4s, v18.16b, v10.16b\n",
                "smmla ", $a1, ".4s, v22.16b, v10.16b\n",
                "smmla ", $a0, ".4s, v19.16b, v11.16b\n",
                "smmla ", $a1, ".4s, v23.16b, v11.16b\n",
            ),)+
            $lds,
            "fcvtl v12.4s, v12.4h",
            // [d_0, d_0, d_1, d_1] and [d_2, d_2, d_3, d_3]: the rows of each accumulator's lanes.
            "zip1 v16.4s, v12.4s, v12.4s",
            "zip2 v20.4s, v12.4s, v12.4s",
            $(concat!(
                "scvtf ", $a0, ".4s, ", $a0, ".4s\n",
                "fmul v17.4s, v16.4s, ", $tok, ".4s\n",
                "scvtf ", $a1, ".4s, ", $a1, ".4s\n",
                "fmul v21.4s, v20.4s, ", $tok, ".4s\n",
                "fmla ", $f0, ".4s, ", $a0, ".4s, v17.4s\n",
                "fmla ", $f1, ".4s, ", $a1, ".4s, v21.4s\n",
            ),)+
            "subs {n}, {n}, #1",
            "b.ne 2b",
            w0 = inout(reg) w[0],
            w1 = inout(reg) w[1],
            w2 = inout(reg) w[2],
            w3 = inout(reg) w[3],
            q = inout(reg) $q => _,
            s = inout(reg) $s => _,
            n = inout(reg) $nb => _,
            $($named)*
            inout("v24") acc[0],
            inout("v25") acc[1],
            inout("v26") acc[2],
            inout("v27") acc[3],
            inout("v28") acc[4],
            inout("v29") acc[5],
            inout("v30") acc[6],
            inout("v31") acc[7],
            $($consts)*
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _,
            out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _,
            out("v23") _,
            options(readonly, nostack)
        );
    }};
}

/// `$inner!($args, $lds, $pairs)` for one, two, three or four token pairs (`$tp`): `$lds` loads the pairs' values
/// at `{s}` (`[v_c, v_d]` replicated to both halves of `v8 + p`, post-indexed), `$pairs` names per token pair `p` its
/// integer sums with row pairs 0 and 1 (`v0 + p`, `v4 + p`), its values (`v8 + p`) and its f32 accumulators with row
/// pairs 0 and 1 (`v24 + p`, `v28 + p`).
macro_rules! by_token_pairs {
    ($tp:expr, $inner:ident!($($args:tt)*)) => {
        match $tp {
            1 => $inner!($($args)*, "ld1r {{v8.2d}}, [{s}], #8", [("v0", "v4", "v8", "v24", "v28")]),
            2 => $inner!(
                $($args)*,
                "ld2r {{v8.2d, v9.2d}}, [{s}], #16",
                [("v0", "v4", "v8", "v24", "v28"), ("v1", "v5", "v9", "v25", "v29")]
            ),
            3 => $inner!(
                $($args)*,
                "ld3r {{v8.2d, v9.2d, v10.2d}}, [{s}], #24",
                [("v0", "v4", "v8", "v24", "v28"), ("v1", "v5", "v9", "v25", "v29"), ("v2", "v6", "v10", "v26", "v30")]
            ),
            _ => $inner!(
                $($args)*,
                "ld4r {{v8.2d, v9.2d, v10.2d, v11.2d}}, [{s}], #32",
                [
                    ("v0", "v4", "v8", "v24", "v28"),
                    ("v1", "v5", "v9", "v25", "v29"),
                    ("v2", "v6", "v10", "v26", "v30"),
                    ("v3", "v7", "v11", "v27", "v31")
                ]
            ),
        }
    };
}

/// A [`Format`] named `$name`: its block bytes, whether it has a min, its token scale factor, its loads (see
/// [`group_asm`]) and the operands they use (named, then registers).
macro_rules! format {
    ($(#[$doc:meta])* $name:ident, $w_bytes:expr, $min:expr, $x_scale:expr, $load:tt, $named:tt, $consts:tt) => {
        $(#[$doc])*
        struct $name;
        impl Format for $name {
            const MIN: bool = $min;
            const X_SCALE: f32 = $x_scale;
            #[inline(always)]
            unsafe fn blocks<const TP: usize>(
                nb: usize,
                w: &mut [*const u8; GROUP],
                q: *const u8,
                s: *const f32,
                acc: &mut Acc,
            ) {
                by_token_pairs!(TP, group_asm!(nb, w, q, s, acc, $load, $named, $consts))
            }
        }
        impl Tile for $name {
            const LAYOUT: (usize, usize, usize, usize) =
                (32, $w_bytes, <$name as Format>::X_BYTES, <$name as Format>::SPB);
            #[inline(always)]
            unsafe fn tile<const TP: usize>(
                nb: usize,
                rows: &mut [[*const u8; GROUP]],
                t: &[Tok; TOKENS],
                acc: &mut [Acc],
            ) {
                tile::<Self, TP>(nb, rows, t, acc)
            }
        }
    };
}

format!(
    /// Q4_0 (f16 d, 16 bytes of nibbles: element `j` low, `16 + j` high). `ld2` of 64-bit lanes: `v16` = packed
    /// bytes 0..8 of rows 0 | 1 (low nibbles: chunk 0, high: chunk 2), `v17` = bytes 8..16 (chunks 1 and 3). XOR
    /// 0x88 makes each nibble the weight plus 8 as a signed 4-bit value: shifted to the high half of a byte (`shl`,
    /// or masking the high nibble) it is the weight times 16.
    Q4_0,
    18,
    false,
    1.0 / 16.0,
    [
        "ld1 {{v12.h}}[0], [{w0}], #2",
        "ld1 {{v12.h}}[1], [{w1}], #2",
        "ld1 {{v12.h}}[2], [{w2}], #2",
        "ld1 {{v12.h}}[3], [{w3}], #2",
        "ld2 {{v16.d, v17.d}}[0], [{w0}], #16",
        "ld2 {{v16.d, v17.d}}[1], [{w1}], #16",
        "ld2 {{v20.d, v21.d}}[0], [{w2}], #16",
        "ld2 {{v20.d, v21.d}}[1], [{w3}], #16",
        "eor v16.16b, v16.16b, v13.16b",
        "eor v17.16b, v17.16b, v13.16b",
        "eor v20.16b, v20.16b, v13.16b",
        "eor v21.16b, v21.16b, v13.16b",
        "and v18.16b, v16.16b, v14.16b",
        "and v19.16b, v17.16b, v14.16b",
        "and v22.16b, v20.16b, v14.16b",
        "and v23.16b, v21.16b, v14.16b",
        "shl v16.16b, v16.16b, #4",
        "shl v17.16b, v17.16b, #4",
        "shl v20.16b, v20.16b, #4",
        "shl v21.16b, v21.16b, #4"
    ],
    [],
    [in("v13") vdupq_n_u8(0x88), in("v14") vdupq_n_u8(0xF0),]
);

format!(
    /// Q8_0 (f16 d, 32 signed bytes). `ld4` of 64-bit lanes: chunk `c` of rows 0 | 1 in `v16 + c`, of rows 2 | 3
    /// in `v20 + c`.
    Q8_0,
    34,
    false,
    1.0,
    [
        "ld1 {{v12.h}}[0], [{w0}], #2",
        "ld1 {{v12.h}}[1], [{w1}], #2",
        "ld1 {{v12.h}}[2], [{w2}], #2",
        "ld1 {{v12.h}}[3], [{w3}], #2",
        "ld4 {{v16.d, v17.d, v18.d, v19.d}}[0], [{w0}], #32",
        "ld4 {{v16.d, v17.d, v18.d, v19.d}}[1], [{w1}], #32",
        "ld4 {{v20.d, v21.d, v22.d, v23.d}}[0], [{w2}], #32",
        "ld4 {{v20.d, v21.d, v22.d, v23.d}}[1], [{w3}], #32"
    ],
    [],
    []
);

format!(
    /// Q4_1 (f16 d and m, 16 bytes of nibbles as in Q4_0, the weights 0..=15) against Q8_1 activations: `ld2` of
    /// 16-bit lanes loads each row's `d` (into `v12`) and `m` (into `v13`, unused here), `ld2` of 64-bit lanes the
    /// nibbles as for Q4_0, masked (`and` with `v14`) or shifted down (`ushr`) in place. The mins are added by their
    /// own pass ([`mins_asm`]).
    Q4_1,
    20,
    true,
    1.0,
    [
        "ld2 {{v12.h, v13.h}}[0], [{w0}], #4",
        "ld2 {{v12.h, v13.h}}[1], [{w1}], #4",
        "ld2 {{v12.h, v13.h}}[2], [{w2}], #4",
        "ld2 {{v12.h, v13.h}}[3], [{w3}], #4",
        "ld2 {{v16.d, v17.d}}[0], [{w0}], #16",
        "ld2 {{v16.d, v17.d}}[1], [{w1}], #16",
        "ld2 {{v20.d, v21.d}}[0], [{w2}], #16",
        "ld2 {{v20.d, v21.d}}[1], [{w3}], #16",
        "ushr v18.16b, v16.16b, #4",
        "ushr v19.16b, v17.16b, #4",
        "ushr v22.16b, v20.16b, #4",
        "ushr v23.16b, v21.16b, #4",
        "and v16.16b, v16.16b, v14.16b",
        "and v17.16b, v17.16b, v14.16b",
        "and v20.16b, v20.16b, v14.16b",
        "and v21.16b, v21.16b, v14.16b"
    ],
    [],
    [out("v13") _, in("v14") vdupq_n_u8(0x0F),]
);

/// The min pass of Q4_1 over `$nb` blocks of the four rows `$w` (pointers to their current blocks, not advanced),
/// with the token pairs' paired sum terms at `$sm` ([`pair_tokens`]): per block and lane `mins = fma(mins, m_w,
/// s_x)` into the group's min accumulators `$mins` (the layout of [`Acc`]), as the `neon-sdot-4x4` tile and its
/// GEMV entry do per row and token, so that `acc + mins` at the end repeats their float steps. (The main loop has
/// no registers left for eight more accumulators.) Per block: the rows' `m` (one lane each of `v12`), `$lds` the
/// pairs' `[s_c, s_d]`, `[m_0, m_0, m_1, m_1]` and `[m_2, m_2, m_3, m_3]`, two `fmla` per token pair.
macro_rules! mins_asm {
    ($nb:expr, $w:expr, $sm:expr, $mins:expr, $lds:literal,
     [$(($a0:literal, $a1:literal, $tok:literal, $f0:literal, $f1:literal)),+]) => {{
        let w: [*const u8; GROUP] = $w;
        let m: &mut Acc = $mins;
        std::arch::asm!(
            "2:",
            "ld1 {{v12.h}}[0], [{w0}], {step}",
            "ld1 {{v12.h}}[1], [{w1}], {step}",
            "ld1 {{v12.h}}[2], [{w2}], {step}",
            "ld1 {{v12.h}}[3], [{w3}], {step}",
            $lds,
            "fcvtl v12.4s, v12.4h",
            "zip1 v16.4s, v12.4s, v12.4s",
            "zip2 v20.4s, v12.4s, v12.4s",
            $(concat!(
                "fmla ", $f0, ".4s, v16.4s, ", $tok, ".4s\n",
                "fmla ", $f1, ".4s, v20.4s, ", $tok, ".4s\n",
            ),)+
            "subs {n}, {n}, #1",
            "b.ne 2b",
            w0 = inout(reg) w[0].add(2) => _,
            w1 = inout(reg) w[1].add(2) => _,
            w2 = inout(reg) w[2].add(2) => _,
            w3 = inout(reg) w[3].add(2) => _,
            s = inout(reg) $sm => _,
            n = inout(reg) $nb => _,
            step = in(reg) 20usize,
            inout("v24") m[0],
            inout("v25") m[1],
            inout("v26") m[2],
            inout("v27") m[3],
            inout("v28") m[4],
            inout("v29") m[5],
            inout("v30") m[6],
            inout("v31") m[7],
            out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v16") _, out("v20") _,
            options(readonly, nostack)
        );
    }};
}

/// `tbl` indices that spread Q5_0's fifth bits (see [`Q5_0`]): vector `4 rp + c` (row pair `rp`, chunk `c`) picks
/// byte `c` of the `qh` of row `2 rp` into bytes 0..8 and of row `2 rp + 1` into bytes 8..16, from the table
/// `{v13, v14}` where `ld3` of 16-bit lanes put `qh` bytes 0 and 1 of row `r` at bytes `2r`, `2r + 1` of `v13` and
/// bytes 2 and 3 at those of `v14` (table index 16 on).
static Q5_0_SPREAD: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        let (v, byte) = (i / 16, i % 16);
        let (c, r) = (v % 4, 2 * (v / 4) + byte / 8);
        t[i] = ((c / 2) * 16 + 2 * r + c % 2) as u8;
        i += 1;
    }
    t
};

format!(
    /// Q5_0 (f16 d, u32 qh: bit `i` the fifth bit of element `i`, 16 bytes of nibbles as in Q4_0). `ld3` of 16-bit
    /// lanes loads each row's `d` (into `v12`) and its `qh` (into `v13`, `v14`), `ld2` of 64-bit lanes the nibbles
    /// as for Q4_0. The fifth bits, inverted (`mvn`), are spread by `tbl` ([`Q5_0_SPREAD`]) so that byte `k` of
    /// each half holds byte `c` of its row's inverted `qh`, and tested against bit `k` (`cmtst` with `v15`): 0xFF
    /// where the fifth bit is 0. Its high nibble is that of the weight `q - 16` as a signed byte (the nibble `q & 15`
    /// below it, minus 16 when the fifth bit is 0), so one `sli` (low nibbles) or `sri` (high nibbles) of the packed
    /// bytes into it leaves the weight.
    Q5_0,
    22,
    false,
    1.0,
    [
        "ld3 {{v12.h, v13.h, v14.h}}[0], [{w0}], #6",
        "ld3 {{v12.h, v13.h, v14.h}}[1], [{w1}], #6",
        "ld3 {{v12.h, v13.h, v14.h}}[2], [{w2}], #6",
        "ld3 {{v12.h, v13.h, v14.h}}[3], [{w3}], #6",
        "ld2 {{v16.d, v17.d}}[0], [{w0}], #16",
        "ld2 {{v16.d, v17.d}}[1], [{w1}], #16",
        "ld2 {{v20.d, v21.d}}[0], [{w2}], #16",
        "ld2 {{v20.d, v21.d}}[1], [{w3}], #16",
        "ld1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{spread0}]",
        "ld1 {{v4.16b, v5.16b, v6.16b, v7.16b}}, [{spread1}]",
        "mvn v13.8b, v13.8b",
        "mvn v14.8b, v14.8b",
        "tbl v18.16b, {{v13.16b, v14.16b}}, v2.16b",
        "tbl v19.16b, {{v13.16b, v14.16b}}, v3.16b",
        "tbl v22.16b, {{v13.16b, v14.16b}}, v6.16b",
        "tbl v23.16b, {{v13.16b, v14.16b}}, v7.16b",
        "tbl v0.16b, {{v13.16b, v14.16b}}, v0.16b",
        "tbl v1.16b, {{v13.16b, v14.16b}}, v1.16b",
        "tbl v4.16b, {{v13.16b, v14.16b}}, v4.16b",
        "tbl v5.16b, {{v13.16b, v14.16b}}, v5.16b",
        "cmtst v18.16b, v18.16b, v15.16b",
        "cmtst v19.16b, v19.16b, v15.16b",
        "cmtst v22.16b, v22.16b, v15.16b",
        "cmtst v23.16b, v23.16b, v15.16b",
        "cmtst v0.16b, v0.16b, v15.16b",
        "cmtst v1.16b, v1.16b, v15.16b",
        "cmtst v4.16b, v4.16b, v15.16b",
        "cmtst v5.16b, v5.16b, v15.16b",
        "sri v18.16b, v16.16b, #4",
        "sri v19.16b, v17.16b, #4",
        "sri v22.16b, v20.16b, #4",
        "sri v23.16b, v21.16b, #4",
        "sli v16.16b, v0.16b, #4",
        "sli v17.16b, v1.16b, #4",
        "sli v20.16b, v4.16b, #4",
        "sli v21.16b, v5.16b, #4"
    ],
    [spread0 = in(reg) Q5_0_SPREAD.as_ptr(), spread1 = in(reg) Q5_0_SPREAD.as_ptr().add(64),],
    [out("v13") _, out("v14") _, in("v15") vreinterpretq_u8_u64(vdupq_n_u64(0x8040_2010_0804_0201)),]
);

/// The `asm!` lines that pair one 32-value chunk of two tokens (quants at `{xa}` and `{xb}`, post-indexed by
/// `$step`) into `{q}` (post-indexed by `{qstep}`): `ld4` of 64-bit lanes puts the chunk's 8-byte piece `c` of token
/// `a` in lane 0 and of token `b` in lane 1 of `v0 + c`, stored as the four 16-byte vectors `smmla` reads.
macro_rules! pair_chunk {
    ($step:literal) => {
        concat!(
            "ld4 {{v0.d, v1.d, v2.d, v3.d}}[0], [{xa}], ",
            $step,
            "\n",
            "ld4 {{v0.d, v1.d, v2.d, v3.d}}[1], [{xb}], ",
            $step,
            "\n",
            "st1 {{v0.16b, v1.16b, v2.16b, v3.16b}}, [{q}], {qstep}\n",
        )
    };
}
pub(super) use pair_chunk;

/// Pairs the quants and scales of `nb` blocks of two tokens for [`group_asm`] (token pair `p` of `TP`): per block
/// the four 16-byte vectors `c` = `[chunk c of token a, chunk c of token b]` into `q` (then `tp * 64` bytes on), and
/// `[d_a, d_b] * scale` into `s` (then `tp * 2` values on); with `min` (Q8_1 activations) also the sum terms
/// `[s_a, s_b]` into `sm` (as `s`). `x` points to each token's first block's quants, `sx` to its f32 scales.
///
/// # Safety
/// Both tokens' rows and scales hold the `nb` blocks (34-byte Q8_0 blocks with one f32 scale each, or with `min`
/// 36-byte Q8_1 blocks with two); `q` holds `(nb - 1) * tp * 64 + 64` bytes, `s` (and with `min` `sm`) `(nb - 1) *
/// tp * 2 + 2` values; `nb >= 1`.
#[inline(always)]
unsafe fn pair_tokens(
    nb: usize,
    x: [*const u8; 2],
    sx: [*const f32; 2],
    scale: f32,
    (q, s, sm): (*mut u8, *mut f32, *mut f32),
    (tp, min): (usize, bool),
) {
    macro_rules! pair_asm {
        ($x_bytes:expr, [$($scales:literal),+], $($operands:tt)*) => {
            std::arch::asm!(
                "2:",
                pair_chunk!("{stride}"),
                $($scales,)+
                "subs {n}, {n}, #1",
                "b.ne 2b",
                xa = inout(reg) x[0] => _,
                xb = inout(reg) x[1] => _,
                sa = inout(reg) sx[0] => _,
                sb = inout(reg) sx[1] => _,
                q = inout(reg) q => _,
                s = inout(reg) s => _,
                n = inout(reg) nb => _,
                stride = in(reg) $x_bytes,
                qstep = in(reg) tp * 64,
                sstep = in(reg) tp * 8,
                k = in(vreg) vdup_n_f32(scale),
                $($operands)*
                out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _,
                options(nostack)
            )
        };
    }
    if min {
        pair_asm!(
            36usize,
            [
                "ld1 {{v4.2s}}, [{sa}], #8",
                "ld1 {{v5.2s}}, [{sb}], #8",
                "zip1 v6.2s, v4.2s, v5.2s",
                "zip2 v7.2s, v4.2s, v5.2s",
                "fmul v6.2s, v6.2s, {k:v}.2s",
                "st1 {{v6.2s}}, [{s}], {sstep}",
                "st1 {{v7.2s}}, [{sm}], {sstep}"
            ],
            sm = inout(reg) sm => _,
            out("v5") _,
            out("v6") _,
            out("v7") _,
        );
    } else {
        pair_asm!(
            34usize,
            [
                "ld1 {{v4.s}}[0], [{sa}], #4",
                "ld1 {{v4.s}}[1], [{sb}], #4",
                "fmul v4.2s, v4.2s, {k:v}.2s",
                "st1 {{v4.2s}}, [{s}], {sstep}"
            ],
        );
    }
}

/// The results of up to [`ROWS`] rows (`rows`, groups of four; a partial group repeats its last row) with `2 * TP`
/// tokens (`t`; the last repeated when the tile's count is odd), `nb` blocks each, added to the groups'
/// accumulators `acc`.
///
/// # Safety
/// Every row pointer, token row and scale row holds `nb` whole blocks; the CPU has FEAT_I8MM.
#[target_feature(enable = "neon")]
unsafe fn tile<F: Format, const TP: usize>(
    nb: usize,
    rows: &mut [[*const u8; GROUP]],
    t: &[Tok; TOKENS],
    acc: &mut [Acc],
) {
    // Written by `pair_tokens` before the groups read them (through pointers only: never referenced uninitialized).
    let mut q = std::mem::MaybeUninit::<[uint8x16_t; RUN * 4 * 4]>::uninit();
    let mut s = std::mem::MaybeUninit::<[f32; RUN * 4 * 2]>::uninit();
    // With a min: the tokens' paired sum terms, and each group's min accumulators (added to `acc` at the end).
    let mut sm = std::mem::MaybeUninit::<[f32; RUN * 4 * 2]>::uninit();
    let mut mins = [[vdupq_n_f32(0.0); 8]; ROWS / GROUP];
    let (qp, sp, smp) = (q.as_mut_ptr() as *mut u8, s.as_mut_ptr() as *mut f32, sm.as_mut_ptr() as *mut f32);
    let mut b0 = 0;
    while b0 < nb {
        let run = RUN.min(nb - b0);
        for p in 0..TP {
            let (a, b) = (t[2 * p], t[2 * p + 1]);
            let at = b0 * F::X_BYTES + F::X_BYTES - 32;
            let sx = [a.s.add(b0 * F::SPB), b.s.add(b0 * F::SPB)];
            let out = (qp.add(p * 64), sp.add(p * 2), smp.add(p * 2));
            pair_tokens(run, [a.x.add(at), b.x.add(at)], sx, F::X_SCALE, out, (TP, F::MIN));
        }
        for ((w, a), m) in rows.iter_mut().zip(acc.iter_mut()).zip(mins.iter_mut()) {
            if F::MIN {
                // The mins' own pass over the blocks (from the rows' current blocks, before `blocks` advances them).
                by_token_pairs!(TP, mins_asm!(run, *w, smp, m));
            }
            F::blocks::<TP>(run, w, qp, sp, a);
        }
        b0 += run;
    }
    if F::MIN {
        for (a, m) in acc.iter_mut().zip(&mins) {
            for (a, m) in a.iter_mut().zip(m) {
                *a = vaddq_f32(*a, *m);
            }
        }
    }
}

/// The safe entry of format `T`: checks the slices (each group of four rows as the sdot tiles check theirs), runs
/// the groups and stores their results.
fn tile_entry<T: Tile>(
    n: usize,
    w: &[u8],
    w_row_bytes: usize,
    x: &ActivationRows<'_>,
    first: usize,
    shape: TileShape,
    out: &mut [f32],
) {
    assert!((1..=ROWS).contains(&shape.rows), "tile of {} rows", shape.rows);
    let groups = shape.rows.div_ceil(GROUP);
    let mut nb = 0;
    for g in 0..groups {
        let rows = GROUP.min(shape.rows - g * GROUP);
        let part = TileShape { rows, ..shape };
        let (wg, og) = (&w[g * GROUP * w_row_bytes..], &out[g * GROUP * shape.ld..]);
        nb = check(n, T::LAYOUT, wg, w_row_bytes, x, first, part, og);
    }
    // Rows past the last repeat it, tokens past the last repeat it (their results are dropped).
    // (Plain pointer arithmetic: `check` verified the ranges, which slicing would check again per pointer.)
    let mut rows = [[std::ptr::null::<u8>(); GROUP]; ROWS / GROUP];
    for (g, group) in rows.iter_mut().enumerate().take(groups) {
        *group = std::array::from_fn(|r| w.as_ptr().wrapping_add((g * GROUP + r).min(shape.rows - 1) * w_row_bytes));
    }
    let spb = T::LAYOUT.3;
    let t: [Tok; TOKENS] = std::array::from_fn(|i| {
        let t = first + i.min(shape.tokens - 1);
        Tok { x: x.bytes.as_ptr().wrapping_add(t * x.row_bytes), s: x.scales.as_ptr().wrapping_add(t * nb * spb) }
    });
    // SAFETY: NEON is mandatory on aarch64.
    let mut acc = unsafe { [[vdupq_n_f32(0.0); 8]; ROWS / GROUP] };
    let (r, a) = (&mut rows[..groups], &mut acc[..groups]);
    // SAFETY: `check` verified for every group that its rows (repeats of in-range rows) and every token's row and
    // scales hold `nb` whole blocks (the repeated tokens are in range); `kernel` hands this tile out only for CPUs
    // with FEAT_I8MM (the caller's contract); NEON is mandatory on aarch64.
    // Three token pairs (five or six tokens: only the last tile of a prompt) run as four, the fourth pair repeating
    // the last token: one instantiation less per format (about 15 KB of aarch64 code), for one pair of extra work in
    // such a tile.
    unsafe {
        match shape.tokens.div_ceil(2) {
            1 => T::tile::<1>(nb, r, &t, a),
            2 => T::tile::<2>(nb, r, &t, a),
            _ => T::tile::<4>(nb, r, &t, a),
        }
    }
    // Accumulator `rp * 4 + p`, lanes `2i + j`: row `2 rp + i` of the group, token `2p + j`.
    for (g, group) in acc.iter().take(groups).enumerate() {
        for (i, v) in group.iter().enumerate() {
            let (row, token) = (g * GROUP + 2 * (i / 4), 2 * (i % 4));
            if row + 1 < shape.rows && token + 1 < shape.tokens {
                // SAFETY: `check` verified `out.len() >= (shape.rows - 1) * ld + shape.tokens`, so both pairs of
                // results (rows `row`, `row + 1` < `shape.rows`, tokens `token`, `token + 1` < `shape.tokens`) are in
                // `out`.
                unsafe {
                    let at = out.as_mut_ptr().add(row * shape.ld + token);
                    vst1_f32(at, vget_low_f32(*v));
                    vst1_f32(at.add(shape.ld), vget_high_f32(*v));
                }
                continue;
            }
            let mut lanes = [0f32; 4];
            // SAFETY: four f32 into a four-element array.
            unsafe { vst1q_f32(lanes.as_mut_ptr(), *v) };
            for (l, value) in lanes.iter().enumerate() {
                let (row, token) = (row + l / 2, token + l % 2);
                if row < shape.rows && token < shape.tokens {
                    out[row * shape.ld + token] = *value;
                }
            }
        }
    }
}
