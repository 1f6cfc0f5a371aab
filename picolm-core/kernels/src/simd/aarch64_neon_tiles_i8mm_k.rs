//! The aarch64 `smmla` tile (FEAT_I8MM) for Q4_K against Q8_K activations: `neon-i8mm-4x8` of that format, its
//! prefill kernel on CPUs with FEAT_I8MM. The frame (groups of four weight rows by up to eight tokens, up to 16 rows
//! per call sharing the tokens paired once per call, the results' layout) is that of the 32-value tiles in
//! `aarch64_neon_tiles_i8mm.rs`, whose module comment explains `smmla` and the pairing of rows and tokens.
//!
//! Per 32-value sub-block of a group, the rows' nibbles are loaded with `ld4` of 64-bit lanes (rows 0 | 1 and 2 | 3
//! paired in each vector, read in place from the memory map; the 32 bytes of a sub-block pair are loaded twice, for
//! the low and then the high nibbles) and multiplied with the paired tokens by 32 `smmla`: with the masks or
//! shifts, the tokens' and the scales' loads and the scaled sums, 57 instructions per sub-block of four rows by
//! eight tokens, where the `neon-sdot-4x8` tile takes 97 (64 `sdot`, 8 `ld4` lane loads).
//!
//! The float steps are those of the `neon-sdot-4x8` Q4_K tile (`aarch64_neon_tiles_sdot_k.rs`) per row, token and
//! super-block, on the same exact integer sums: `acc = fma(fma(acc, f32(sumi), d * d_x), f32(summ), -dmin * d_x)`,
//! lane by lane in the `smmla` layout; so the results equal that tile's and its GEMV entry's (the decode kernel,
//! `aarch64_neon_gemv_k.rs`) bit for bit. The integers:
//! - `sumi` = sum over the eight sub-blocks of scale times integer dot product, with one running `smmla` sum `S` per
//!   row pair and token pair across the sub-blocks (never zeroed within a super-block) and `S_j * (sc_j - sc_{j+1})`
//!   added after sub-block `j` (`sc_8 = 0`): the sum telescopes to `sum_j sc_j * dot_j`, as in the `sdot` tile.
//! - `summ` = sum of min times the sub-block's activation sum `bs_j` (two of the block's 16 bsums, |bs_j| <= 4096)
//!   by two `smmla` of the rows' eight mins (0..=63) with `bs_j >> 6` (-64..=63) and `bs_j & 63`, the first sum
//!   shifted left by six: `64 * sum m_j (bs_j >> 6) + sum m_j (bs_j & 63)`. The pairing of the tokens splits the
//!   sums once per call.

use std::arch::aarch64::*;

use super::aarch64_neon_tiles::{k4_scale_bytes, row_scales, Tok};
use super::aarch64_neon_tiles_i8mm::{pair_chunk, Acc, Tile, GROUP, TOKENS};

/// Bytes of a Q8_K block (f32 `d`, 256 quants, 16 i16 bsums).
pub(super) const X_BYTES: usize = 292;
/// Bytes of a Q4_K block (f16 `d` and `dmin`, 12 bytes of six-bit scales and mins, 128 bytes of nibbles).
const W_BYTES: usize = 144;
/// Bytes of one token pair's paired super-block (see [`pair_tokens`]): eight sub-blocks of four paired 16-byte
/// vectors, the sub-block sums' high and low parts (16 bytes each), the two scales.
const PAIR_BYTES: usize = 8 * 64 + 32 + 8;
/// Super-blocks whose paired tokens the stack buffer holds at once.
const RUN: usize = 8;

/// Q4_K (the [`Tile`] of `neon-i8mm-4x8` for that format).
pub(super) struct Q4K;

impl Tile for Q4K {
    const LAYOUT: (usize, usize, usize, usize) = (256, W_BYTES, X_BYTES, 0);
    #[inline(always)]
    unsafe fn tile<const TP: usize>(nb: usize, rows: &mut [[*const u8; GROUP]], t: &[Tok; TOKENS], acc: &mut [Acc]) {
        tile::<Self, TP>(nb, rows, t, acc)
    }
}

impl SuperBlock for Q4K {
    #[inline(always)]
    unsafe fn superblocks<const TP: usize>(run: usize, w: &mut [*const u8; GROUP], q: *const u8, acc: &mut Acc) {
        for s in 0..run {
            superblock::<TP>(w, q.add(s * TP * PAIR_BYTES), acc);
        }
    }
}

/// A K-quant format of `neon-i8mm-4x8` against Q8_K activations (Q4_K here, Q6_K in
/// `aarch64_neon_tiles_i8mm_q6k.rs`): runs of super-blocks of a group, with the tokens paired by [`pair_tokens`].
pub(super) trait SuperBlock {
    /// `run` super-blocks of the group `w` (pointers to the rows' blocks, advanced past them) with the `TP` token
    /// pairs paired at `q` (`run` paired super-blocks of `TP` pairs, see [`pair_tokens`]), added to the group's
    /// accumulators `acc`.
    ///
    /// # Safety
    /// `run >= 1`; every pointer of `w` holds `run` whole blocks of the format; `q` holds `run` paired super-blocks
    /// of `TP` pairs; the CPU has FEAT_I8MM.
    unsafe fn superblocks<const TP: usize>(run: usize, w: &mut [*const u8; GROUP], q: *const u8, acc: &mut Acc);
}

/// What a group's super-block `asm!` block reads besides the quants (one per super-block and group, in memory, in
/// the order it reads them). Row pair `rp` holds rows `a = 2 rp` and `b = 2 rp + 1` of the group.
#[repr(C)]
struct Params {
    /// Per sub-block `j` and row pair: `sc_j - sc_{j+1}` of rows `a` and `b` (`sc_8 = 0`) as `[a, a, b, b]`.
    dsc: [[int32x4_t; 2]; 8],
    /// Per row pair: the eight mins of row `a`, then those of row `b`.
    mins: [uint8x16_t; 2],
    /// Per row pair: `[d_a, d_a, d_b, d_b]`.
    d: [float32x4_t; 2],
    /// Per row pair: `[-dmin_a, -dmin_a, -dmin_b, -dmin_b]`.
    ndmin: [float32x4_t; 2],
}

/// [`Params`] of the four rows' Q4_K blocks at `wb`.
///
/// # Safety
/// Every pointer of `wb` points to a whole Q4_K block.
#[inline(always)]
unsafe fn params(wb: &[*const u8; GROUP]) -> Params {
    let [sc_lo, sc_hi, m_lo, m_hi] = k4_scale_bytes(wb);
    // Bytes 4r + i of `lo` / `hi` are value i / 4 + i of row r: rows 0 and 1 (then 2 and 3), each its eight values.
    let pairs = |lo: uint8x16_t, hi: uint8x16_t| {
        let (lo, hi) = (vreinterpretq_u32_u8(lo), vreinterpretq_u32_u8(hi));
        [vreinterpretq_u8_u32(vzip1q_u32(lo, hi)), vreinterpretq_u8_u32(vzip2q_u32(lo, hi))]
    };
    let dsc = pairs(sc_lo, sc_hi).map(|s| {
        // Each row's `sc_j - sc_{j+1}` (its next scale: the 64-bit half shifted down by a byte, 0 past the last),
        // -63..=63 as i8; then `[a_j, a_j, b_j, b_j]` bytes for j = 0..4 (`p`) and 4..8 (`q`), sign-extended.
        let next = vreinterpretq_u8_u64(vshrq_n_u64::<8>(vreinterpretq_u64_u8(s)));
        let d = vreinterpretq_s8_u8(vsubq_u8(s, next));
        let (a, b) = (vreinterpretq_s16_s8(vzip1q_s8(d, d)), vreinterpretq_s16_s8(vzip2q_s8(d, d)));
        let (p, q) = (vreinterpretq_s8_s16(vzip1q_s16(a, b)), vreinterpretq_s8_s16(vzip2q_s16(a, b)));
        let h = [vmovl_s8(vget_low_s8(p)), vmovl_high_s8(p), vmovl_s8(vget_low_s8(q)), vmovl_high_s8(q)];
        std::array::from_fn::<int32x4_t, 8, _>(|j| {
            if j % 2 == 0 {
                vmovl_s16(vget_low_s16(h[j / 2]))
            } else {
                vmovl_high_s16(h[j / 2])
            }
        })
    });
    let rows2 = |v: float32x4_t| [vzip1q_f32(v, v), vzip2q_f32(v, v)];
    Params {
        dsc: std::array::from_fn(|j| [dsc[0][j], dsc[1][j]]),
        mins: pairs(m_lo, m_hi),
        d: rows2(row_scales(wb, 0)),
        ndmin: rows2(vnegq_f32(row_scales(wb, 2))),
    }
}

/// Pairs `nb` Q8_K super-blocks of two tokens (`x`: each token's first block) as token pair `p` of `tp` into the
/// paired super-blocks at `out` (`tp * PAIR_BYTES` bytes each): per super-block the quants of sub-block `j` at
/// `64 * (j * tp + p)` (four vectors `c` = `[chunk c of token a, chunk c of token b]`), at `tp * 512 + 32 * p` the
/// sub-block sums `bs_j` (pairs of the bsums) as `[bs_j >> 6 of a, of b]` and `[bs_j & 63 of a, of b]` (bytes), at
/// `tp * 544 + 8 * p` the scales `[d_a, d_b]`.
///
/// # Safety
/// Both tokens' rows hold the `nb` blocks; `out` holds `nb` paired super-blocks of `tp` pairs; `p < tp`, `nb >= 1`.
#[inline(always)]
unsafe fn pair_tokens(nb: usize, x: [*const u8; 2], out: *mut u8, p: usize, tp: usize) {
    std::arch::asm!(
        "2:",
        "ld1 {{v4.s}}[0], [{xa}], #4",
        "ld1 {{v4.s}}[1], [{xb}], #4",
        pair_chunk!("#32"),
        pair_chunk!("#32"),
        pair_chunk!("#32"),
        pair_chunk!("#32"),
        pair_chunk!("#32"),
        pair_chunk!("#32"),
        pair_chunk!("#32"),
        pair_chunk!("#32"),
        "add {q}, {q}, {qskip}",
        "ldp q0, q1, [{xa}], #32",
        "ldp q2, q3, [{xb}], #32",
        "addp v0.8h, v0.8h, v1.8h",
        "addp v2.8h, v2.8h, v3.8h",
        "sqshrn v5.8b, v0.8h, #6",
        "sqshrn2 v5.16b, v2.8h, #6",
        "xtn v6.8b, v0.8h",
        "xtn2 v6.16b, v2.8h",
        "and v6.16b, v6.16b, {m63:v}.16b",
        "st1 {{v5.16b, v6.16b}}, [{m}], {step}",
        "st1 {{v4.2s}}, [{s}], {step}",
        "subs {n}, {n}, #1",
        "b.ne 2b",
        xa = inout(reg) x[0] => _,
        xb = inout(reg) x[1] => _,
        q = inout(reg) out.add(64 * p) => _,
        m = inout(reg) out.add(512 * tp + 32 * p) => _,
        s = inout(reg) out.add(544 * tp + 8 * p) => _,
        n = inout(reg) nb => _,
        qstep = in(reg) 64 * tp,
        qskip = in(reg) (PAIR_BYTES - 512) * tp,
        step = in(reg) PAIR_BYTES * tp,
        m63 = in(vreg) vdupq_n_u8(63),
        out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _,
        options(nostack)
    );
}

/// One sub-block of a group for each token pair listed (running sums `$s0`, `$s1` and scaled sums `$m0`, `$m1` of
/// row pairs 0 and 1): the row pairs' scale differences (`v12`, `v13`, post-indexed), then per token pair its four
/// paired vectors (`v8`..`v11`, post-indexed), eight `smmla` with the weights (`v16`..`v19` rows 0 | 1, `v20`..`v23`
/// rows 2 | 3) and `sum += S * (sc_j - sc_{j+1})`.
macro_rules! sub_block {
    ($(($s0:literal, $s1:literal, $m0:literal, $m1:literal)),+) => {
        concat!(
            "ldp q12, q13, [{prm}], #32\n",
            $(
                "ld1 {{v8.16b, v9.16b, v10.16b, v11.16b}}, [{q}], #64\n",
                "smmla ", $s0, ".4s, v16.16b, v8.16b\n",
                "smmla ", $s1, ".4s, v20.16b, v8.16b\n",
                "smmla ", $s0, ".4s, v17.16b, v9.16b\n",
                "smmla ", $s1, ".4s, v21.16b, v9.16b\n",
                "smmla ", $s0, ".4s, v18.16b, v10.16b\n",
                "smmla ", $s1, ".4s, v22.16b, v10.16b\n",
                "smmla ", $s0, ".4s, v19.16b, v11.16b\n",
                "smmla ", $s1, ".4s, v23.16b, v11.16b\n",
                "mla ", $m0, ".4s, ", $s0, ".4s, v12.4s\n",
                "mla ", $m1, ".4s, ", $s1, ".4s, v13.4s\n",
            )+
        )
    };
}

/// Eight vector instructions `$op v16..v24, v16..v24$arg` (the weight registers of a sub-block).
macro_rules! weights8 {
    ($op:literal, $arg:literal) => {
        concat!(
            $op,
            " v16.16b, v16.16b",
            $arg,
            "\n",
            $op,
            " v17.16b, v17.16b",
            $arg,
            "\n",
            $op,
            " v18.16b, v18.16b",
            $arg,
            "\n",
            $op,
            " v19.16b, v19.16b",
            $arg,
            "\n",
            $op,
            " v20.16b, v20.16b",
            $arg,
            "\n",
            $op,
            " v21.16b, v21.16b",
            $arg,
            "\n",
            $op,
            " v22.16b, v22.16b",
            $arg,
            "\n",
            $op,
            " v23.16b, v23.16b",
            $arg,
            "\n",
        )
    };
}

/// The rows' 32 bytes of a sub-block pair: chunk `c` of rows 0 | 1 in `v16 + c`, of rows 2 | 3 in `v20 + c`
/// (`ld4` of 64-bit lanes; `$post`: the post-index, or nothing).
macro_rules! load_weights {
    ($post:literal) => {
        concat!(
            "ld4 {{v16.d, v17.d, v18.d, v19.d}}[0], [{w0}]",
            $post,
            "\n",
            "ld4 {{v16.d, v17.d, v18.d, v19.d}}[1], [{w1}]",
            $post,
            "\n",
            "ld4 {{v20.d, v21.d, v22.d, v23.d}}[0], [{w2}]",
            $post,
            "\n",
            "ld4 {{v20.d, v21.d, v22.d, v23.d}}[1], [{w3}]",
            $post,
            "\n",
        )
    };
}

/// The float steps of a row pair's super-block for each token pair listed (scaled sums `$m`, min sums `$n`, the
/// pair's scales `$dx`, its accumulator register `$a`): `acc = fma(fma(acc, f32(sumi), d * d_x), f32(summ), -dmin *
/// d_x)` with the row pair's `d` in `$d` and `-dmin` in `$nd` (`v4`, `v5` scratch).
macro_rules! row_pair_end {
    ($d:literal, $nd:literal, $(($m:literal, $n:literal, $dx:literal, $a:literal)),+) => {
        concat!(
            $(
                "scvtf ", $m, ".4s, ", $m, ".4s\n",
                "fmul v4.4s, ", $d, ".4s, ", $dx, ".4s\n",
                "fmla ", $a, ".4s, ", $m, ".4s, v4.4s\n",
                "scvtf ", $n, ".4s, ", $n, ".4s\n",
                "fmul v5.4s, ", $nd, ".4s, ", $dx, ".4s\n",
                "fmla ", $a, ".4s, ", $n, ".4s, v5.4s\n",
            )+
        )
    };
}

/// One super-block of a group (quants at `$w`, params at `$prm`, paired tokens at `$q`, accumulators at `$acc`)
/// for the token pairs listed: `($s0, $s1, $m0, $m1, $n0, $n1, $dx, $a)` = running sums, scaled sums, min sums of row
/// pairs 0 and 1, the pair's scales and its accumulator register; `$ldx` loads the pairs' scales (`[d_a, d_b]`
/// replicated), `$accs` is the list of accumulator registers.
///
/// Registers: `v0`..`v7` running sums (then the accumulators and two products), `v8`..`v11` a token pair's
/// vectors (then the pairs' scales), `v12`/`v13` the row pairs' scale differences (then mins, then `d`), `v14` the
/// nibble mask (then `-dmin` with `v15`), `v16`..`v23` the weights (then the min sums), `v24`..`v31` the scaled sums.
macro_rules! superblock_asm {
    ($w:expr, $prm:expr, $q:expr, $acc:expr, $ldx:literal, $accs:literal,
     $(($s0:literal, $s1:literal, $m0:literal, $m1:literal, $n0:literal, $n1:literal, $dx:literal, $a:literal)),+) => {{
        let [w0, w1, w2, w3] = $w;
        std::arch::asm!(
            ".arch_extension i8mm",
            $(concat!(
                "movi ", $s0, ".2d, #0\n",
                "movi ", $s1, ".2d, #0\n",
                "movi ", $m0, ".2d, #0\n",
                "movi ", $m1, ".2d, #0\n",
            ),)+
            "mov {n}, #4",
            "2:",
            load_weights!(""),
            weights8!("and", ", v14.16b"),
            sub_block!($(($s0, $s1, $m0, $m1)),+),
            load_weights!(", #32"),
            weights8!("ushr", ", #4"),
            sub_block!($(($s0, $s1, $m0, $m1)),+),
            "subs {n}, {n}, #1",
            "b.ne 2b",
            // summ: 64 * (mins . (bs >> 6)) + mins . (bs & 63).
            "ldp q12, q13, [{prm}], #32",
            $(concat!(
                "ld1 {{v8.16b, v9.16b}}, [{q}], #32\n",
                "movi ", $n0, ".2d, #0\n",
                "movi ", $n1, ".2d, #0\n",
                "smmla ", $n0, ".4s, v12.16b, v8.16b\n",
                "smmla ", $n1, ".4s, v13.16b, v8.16b\n",
                "shl ", $n0, ".4s, ", $n0, ".4s, #6\n",
                "shl ", $n1, ".4s, ", $n1, ".4s, #6\n",
                "smmla ", $n0, ".4s, v12.16b, v9.16b\n",
                "smmla ", $n1, ".4s, v13.16b, v9.16b\n",
            ),)+
            // acc = fma(fma(acc, f32(sumi), d * d_x), f32(summ), -dmin * d_x), row pair 0 then 1.
            "ldp q12, q13, [{prm}], #32",
            "ldp q14, q15, [{prm}]",
            $ldx,
            concat!("ld1 ", $accs, ", [{acc}]"),
            row_pair_end!("v12", "v14", $(($m0, $n0, $dx, $a)),+),
            concat!("st1 ", $accs, ", [{acc}], {rp}"),
            concat!("ld1 ", $accs, ", [{acc}]"),
            row_pair_end!("v13", "v15", $(($m1, $n1, $dx, $a)),+),
            concat!("st1 ", $accs, ", [{acc}]"),
            w0 = inout(reg) w0 => _,
            w1 = inout(reg) w1 => _,
            w2 = inout(reg) w2 => _,
            w3 = inout(reg) w3 => _,
            prm = inout(reg) $prm => _,
            q = inout(reg) $q => _,
            acc = inout(reg) $acc => _,
            rp = in(reg) 64usize,
            n = out(reg) _,
            inout("v14") vdupq_n_u8(0x0F) => _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v15") _,
            out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _, out("v22") _,
            out("v23") _, out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v29") _,
            out("v30") _, out("v31") _,
            options(nostack)
        );
    }};
}

/// One Q4_K super-block of the group `w` (pointers to the rows' blocks, advanced to their next ones) with the `TP`
/// token pairs paired at `q`, added to the group's accumulators `acc`.
///
/// # Safety
/// Every pointer of `w` points to a whole Q4_K block; `q` holds a paired super-block of `TP` pairs; the CPU has
/// FEAT_I8MM.
#[inline(always)]
unsafe fn superblock<const TP: usize>(w: &mut [*const u8; GROUP], q: *const u8, acc: &mut Acc) {
    let prm = params(w);
    let (p, a) = (&prm as *const Params, acc.as_mut_ptr());
    let qs = w.map(|p| p.add(16));
    match TP {
        1 => superblock_asm!(
            qs,
            p,
            q,
            a,
            "ld1r {{v8.2d}}, [{q}]",
            "{{v0.4s}}",
            ("v0", "v4", "v24", "v28", "v16", "v20", "v8", "v0")
        ),
        2 => superblock_asm!(
            qs,
            p,
            q,
            a,
            "ld2r {{v8.2d, v9.2d}}, [{q}]",
            "{{v0.4s, v1.4s}}",
            ("v0", "v4", "v24", "v28", "v16", "v20", "v8", "v0"),
            ("v1", "v5", "v25", "v29", "v17", "v21", "v9", "v1")
        ),
        3 => superblock_asm!(
            qs,
            p,
            q,
            a,
            "ld3r {{v8.2d, v9.2d, v10.2d}}, [{q}]",
            "{{v0.4s, v1.4s, v2.4s}}",
            ("v0", "v4", "v24", "v28", "v16", "v20", "v8", "v0"),
            ("v1", "v5", "v25", "v29", "v17", "v21", "v9", "v1"),
            ("v2", "v6", "v26", "v30", "v18", "v22", "v10", "v2")
        ),
        _ => superblock_asm!(
            qs,
            p,
            q,
            a,
            "ld4r {{v8.2d, v9.2d, v10.2d, v11.2d}}, [{q}]",
            "{{v0.4s, v1.4s, v2.4s, v3.4s}}",
            ("v0", "v4", "v24", "v28", "v16", "v20", "v8", "v0"),
            ("v1", "v5", "v25", "v29", "v17", "v21", "v9", "v1"),
            ("v2", "v6", "v26", "v30", "v18", "v22", "v10", "v2"),
            ("v3", "v7", "v27", "v31", "v19", "v23", "v11", "v3")
        ),
    }
    *w = w.map(|p| p.add(W_BYTES));
}

/// The results of the groups `rows` of format `K` with the `2 * TP` tokens `t`, `nb` super-blocks each, added to
/// `acc` (see [`Tile::tile`]).
///
/// # Safety
/// As [`Tile::tile`].
#[target_feature(enable = "neon")]
pub(super) unsafe fn tile<K: SuperBlock, const TP: usize>(
    nb: usize,
    rows: &mut [[*const u8; GROUP]],
    t: &[Tok; TOKENS],
    acc: &mut [Acc],
) {
    // Written by `pair_tokens` before the groups read them (through pointers only: never referenced uninitialized).
    let mut paired = std::mem::MaybeUninit::<[uint8x16_t; RUN * 4 * PAIR_BYTES / 16]>::uninit();
    let pp = paired.as_mut_ptr() as *mut u8;
    let mut b0 = 0;
    while b0 < nb {
        let run = RUN.min(nb - b0);
        for p in 0..TP {
            let x = [t[2 * p].x.add(b0 * X_BYTES), t[2 * p + 1].x.add(b0 * X_BYTES)];
            pair_tokens(run, x, pp, p, TP);
        }
        for (w, a) in rows.iter_mut().zip(acc.iter_mut()) {
            K::superblocks::<TP>(run, w, pp, a);
        }
        b0 += run;
    }
}
