//! aarch64 `smmla` tiles (FEAT_I8MM: Cortex-A510/A710/X2, Neoverse N2/V1, Apple M2 and later) for the 32-value
//! formats Q4_0 and Q8_0: `neon-i8mm-4x8`, their prefill kernel on CPUs with FEAT_I8MM; and the frame (the safe
//! entry, [`Tile`], the chunk pairing) that the Q4_K and Q6_K tiles of the same name (`aarch64_neon_tiles_i8mm_k.rs`,
//! `aarch64_neon_tiles_i8mm_q6k.rs`) share.
//!
//! `smmla v.4s, a.16b, b.16b` multiplies a 2x8 int8 matrix (`a`: eight bytes of each of two weight rows) by the
//! transpose of another (`b`: eight bytes of each of two tokens) into a 2x2 int32 accumulator (lanes: row 0 with
//! tokens 0 and 1, row 1 with tokens 0 and 1): 32 multiply-adds per instruction, twice an `sdot`'s. A group of four
//! weight rows by eight tokens keeps eight such accumulators (two row pairs by four token pairs) and takes, per
//! 32-value block, 32 `smmla` (the `neon-sdot-4x8` tile takes 64 `sdot`).
//!
//! Both operands must hold two rows in 8-byte halves. The weights are paired while loading, with no repacking in
//! memory (rows are read in place from the memory map): `ld4` (Q8_0) or `ld2` (Q4_0) of 64-bit lanes puts the
//! block's 8-byte chunk `c` of row `a` in lane 0 and of row `b` in lane 1 of vector `c`. The tokens' quants are
//! paired the same way once per call, into a buffer on the stack that every group of four rows of the call reads
//! (a call takes up to [`ROWS`] rows), with each block's two activation scales `[d_c, d_d]` per token pair.
//!
//! The float steps are those of the `neon-sdot-4x8` tile (`aarch64_neon_tiles_sdot8.rs`) per row, token and
//! block: `acc = fma(acc, f32(isum), d_w * d_x)`, lane by lane in the accumulators' 2x2 layout, on the same exact
//! integer sums; so the results equal that tile's and its GEMV entry's (`aarch64_neon_gemv.rs`, the decode kernel)
//! bit for bit, for any split into tiles. Q4_0 decodes its nibbles as the weights times 16 (as the sdot tile does)
//! and divides the tokens' scales by 16 instead of the rows': `d_w * (d_x / 16)` and `(d_w / 16) * d_x` are both the
//! exact product of two f16 values over 16 (22 significant bits, normal), so the steps round alike.

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

/// Whether this CPU has FEAT_I8MM (and FEAT_DotProd, whose GEMV entries decode for these tiles).
pub fn available() -> bool {
    std::arch::is_aarch64_feature_detected!("i8mm") && super::aarch64_neon::has_dotprod()
}

/// The `neon-i8mm-4x8` tile for weights of type `ty` (call it only when [`available`]).
pub fn kernel(ty: GgmlType) -> Option<(&'static str, TileKernel)> {
    let run: TileFn = match ty {
        GgmlType::Q4_0 => tile_entry::<Q4_0>,
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

/// The `asm!` loop over the blocks of a group (see [`Format::blocks`]): per block the four rows' f16 scales (one
/// lane each of `v12`, post-indexed: the pointers then point at the quants), the weights `$load` (the 8-byte chunk
/// `c` of rows 0 and 1 in `v16 + c`, of rows 2 and 3 in `v20 + c`), per token pair its four paired chunks
/// (`v8`..`v11`) and eight `smmla` into its two zeroed accumulators, then the token pairs' scales (`$lds`: `[d_c,
/// d_d]` replicated to both halves of `v8 + p`), `d_w * d_x` per lane and `acc = fma(acc, f32(isum), d_w * d_x)`.
/// Registers: `v0 + p` / `v4 + p` the integer sums of token pair `p` with row pair 0 / 1, `v24 + p` / `v28 + p`
/// their f32 accumulators, `v13`/`v14` the constants of `$consts`.
macro_rules! group_asm {
    ($nb:expr, $w:expr, $q:expr, $s:expr, $acc:expr, [$($load:literal),+], $lds:literal,
     [$(($a0:literal, $a1:literal, $tok:literal, $f0:literal, $f1:literal)),+], [$($consts:tt)*]) => {{
        let w: &mut [*const u8; GROUP] = $w;
        let acc: &mut Acc = $acc;
        std::arch::asm!(
            ".arch_extension i8mm",
            "2:",
            "ld1 {{v12.h}}[0], [{w0}], #2",
            "ld1 {{v12.h}}[1], [{w1}], #2",
            "ld1 {{v12.h}}[2], [{w2}], #2",
            "ld1 {{v12.h}}[3], [{w3}], #2",
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

/// [`group_asm`] for one, two, three or four token pairs (`$tp`), with the format's weight loads and constants.
macro_rules! group_asm_pairs {
    ($tp:expr, $nb:expr, $w:expr, $q:expr, $s:expr, $acc:expr, $load:tt, $consts:tt) => {
        match $tp {
            1 => group_asm!(
                $nb,
                $w,
                $q,
                $s,
                $acc,
                $load,
                "ld1r {{v8.2d}}, [{s}], #8",
                [("v0", "v4", "v8", "v24", "v28")],
                $consts
            ),
            2 => group_asm!(
                $nb,
                $w,
                $q,
                $s,
                $acc,
                $load,
                "ld2r {{v8.2d, v9.2d}}, [{s}], #16",
                [("v0", "v4", "v8", "v24", "v28"), ("v1", "v5", "v9", "v25", "v29")],
                $consts
            ),
            3 => group_asm!(
                $nb,
                $w,
                $q,
                $s,
                $acc,
                $load,
                "ld3r {{v8.2d, v9.2d, v10.2d}}, [{s}], #24",
                [("v0", "v4", "v8", "v24", "v28"), ("v1", "v5", "v9", "v25", "v29"), ("v2", "v6", "v10", "v26", "v30")],
                $consts
            ),
            _ => group_asm!(
                $nb,
                $w,
                $q,
                $s,
                $acc,
                $load,
                "ld4r {{v8.2d, v9.2d, v10.2d, v11.2d}}, [{s}], #32",
                [
                    ("v0", "v4", "v8", "v24", "v28"),
                    ("v1", "v5", "v9", "v25", "v29"),
                    ("v2", "v6", "v10", "v26", "v30"),
                    ("v3", "v7", "v11", "v27", "v31")
                ],
                $consts
            ),
        }
    };
}

/// A [`Format`] named `$name`: its block bytes, token scale factor, weight loads (into `v16`..`v23`, see
/// [`group_asm`]) and the constants they use.
macro_rules! format {
    ($(#[$doc:meta])* $name:ident, $w_bytes:expr, $x_scale:expr, $load:tt, $consts:tt) => {
        $(#[$doc])*
        struct $name;
        impl Format for $name {
            const X_SCALE: f32 = $x_scale;
            #[inline(always)]
            unsafe fn blocks<const TP: usize>(
                nb: usize,
                w: &mut [*const u8; GROUP],
                q: *const u8,
                s: *const f32,
                acc: &mut Acc,
            ) {
                group_asm_pairs!(TP, nb, w, q, s, acc, $load, $consts)
            }
        }
        impl Tile for $name {
            const LAYOUT: (usize, usize, usize, usize) = (32, $w_bytes, 34, 1);
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
    1.0 / 16.0,
    [
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
    [in("v13") vdupq_n_u8(0x88), in("v14") vdupq_n_u8(0xF0),]
);

format!(
    /// Q8_0 (f16 d, 32 signed bytes). `ld4` of 64-bit lanes: chunk `c` of rows 0 | 1 in `v16 + c`, of rows 2 | 3
    /// in `v20 + c`.
    Q8_0,
    34,
    1.0,
    [
        "ld4 {{v16.d, v17.d, v18.d, v19.d}}[0], [{w0}], #32",
        "ld4 {{v16.d, v17.d, v18.d, v19.d}}[1], [{w1}], #32",
        "ld4 {{v20.d, v21.d, v22.d, v23.d}}[0], [{w2}], #32",
        "ld4 {{v20.d, v21.d, v22.d, v23.d}}[1], [{w3}], #32"
    ],
    []
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
/// `[d_a, d_b] * scale` into `s` (then `tp * 2` values on). `x` points to each token's first block's quants, `sx`
/// to its f32 scale.
///
/// # Safety
/// Both tokens' rows and scales hold the `nb` blocks (34-byte Q8_0 blocks, f32 scales); `q` holds `(nb - 1) * tp
/// * 64 + 64` bytes and `s` `(nb - 1) * tp * 2 + 2` values; `nb >= 1`.
#[inline(always)]
unsafe fn pair_tokens(
    nb: usize,
    x: [*const u8; 2],
    sx: [*const f32; 2],
    scale: f32,
    (q, s): (*mut u8, *mut f32),
    tp: usize,
) {
    std::arch::asm!(
        "2:",
        pair_chunk!("{stride}"),
        "ld1 {{v4.s}}[0], [{sa}], #4",
        "ld1 {{v4.s}}[1], [{sb}], #4",
        "fmul v4.2s, v4.2s, {k:v}.2s",
        "st1 {{v4.2s}}, [{s}], {sstep}",
        "subs {n}, {n}, #1",
        "b.ne 2b",
        xa = inout(reg) x[0] => _,
        xb = inout(reg) x[1] => _,
        sa = inout(reg) sx[0] => _,
        sb = inout(reg) sx[1] => _,
        q = inout(reg) q => _,
        s = inout(reg) s => _,
        n = inout(reg) nb => _,
        stride = in(reg) 34usize,
        qstep = in(reg) tp * 64,
        sstep = in(reg) tp * 8,
        k = in(vreg) vdup_n_f32(scale),
        out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _,
        options(nostack)
    );
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
    let (qp, sp) = (q.as_mut_ptr() as *mut u8, s.as_mut_ptr() as *mut f32);
    let mut b0 = 0;
    while b0 < nb {
        let run = RUN.min(nb - b0);
        for p in 0..TP {
            let (a, b) = (t[2 * p], t[2 * p + 1]);
            let xq = [a.x.add(b0 * 34 + 2), b.x.add(b0 * 34 + 2)];
            pair_tokens(run, xq, [a.s.add(b0), b.s.add(b0)], F::X_SCALE, (qp.add(p * 64), sp.add(p * 2)), TP);
        }
        for (w, a) in rows.iter_mut().zip(acc.iter_mut()) {
            F::blocks::<TP>(run, w, qp, sp, a);
        }
        b0 += run;
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
    unsafe {
        match shape.tokens.div_ceil(2) {
            1 => T::tile::<1>(nb, r, &t, a),
            2 => T::tile::<2>(nb, r, &t, a),
            3 => T::tile::<3>(nb, r, &t, a),
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
