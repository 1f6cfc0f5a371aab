//! aarch64 `sdot` tiles of four weight rows by up to eight tokens for Q4_K and Q6_K against Q8_K activations
//! (`neon-sdot-4x8`, the prefill kernel of those formats on CPUs with FEAT_DotProd: the Cortex-A76 of the Pi 5).
//!
//! As in the 32-value tiles of `aarch64_neon_tiles_sdot8.rs`, the four rows' quant bytes are interleaved in
//! registers while loading (`ld4` to one lane per row: vector `k`, lane `r` = bytes `4k .. 4k + 4` of row `r`; no
//! repacking in memory, rows are read in place from the memory map), so that one `sdot` by element
//! (`sdot v.4s, w.16b, y.4b[k]`) multiplies four weights of each of the four rows with four activations of one
//! token and leaves each row's sum in its own lane: 16 multiplies per instruction and nothing to reduce. The
//! sub-block scales are then applied per lane (`mla` with a vector of the four rows' scales), and eight tokens share
//! each decoded sub-block.
//!
//! Per super-block and token, the float steps are those of the 4x4 tiles (`aarch64_neon_tiles.rs`,
//! `aarch64_neon_tiles_q6k.rs`) and of their GEMV entries, on the same exact integer sums:
//! - Q4_K: `acc = fma(fma(acc, f32(sumi), d * d_x), f32(summ), -dmin * d_x)`, `sumi` = sum over the eight 32-value
//!   sub-blocks of scale times integer dot product, `summ` = sum of min times the sub-block's activation sum;
//! - Q6_K: `acc = fma(acc, f32(isum), d * d_x)`, `isum` = sum over the 16 groups of 16 of scale times integer dot
//!   product;
//!
//! so the results equal theirs bit for bit for any split into tiles. How the integers are formed is free (they are
//! exact; i32 arithmetic wraps, so intermediate values may too):
//! - Q4_K keeps one running `sdot` sum `S` per token across the sub-blocks (never zeroed within a super-block) and
//!   adds `S_j * (sc_j - sc_{j+1})` after sub-block `j` (`sc_8 = 0`): the sum telescopes to `sum_j sc_j * dot_j`.
//! - Q6_K decodes each six-bit quant `q` to `4 * (q - 32)` (its nibble and two high bits shifted to the top of the
//!   byte: three instructions per 16 weights fewer than a sign extension), so its sums are four times the
//!   weights' and `isum` is the sum shifted right by two (exact: a multiple of four, |4 isum| < 2^31).
//!
//! Each super-block's integer work for the tile's tokens is one `asm!` block (registers fixed by hand: eight
//! weight registers and per token one or two i32 sums, so that nothing spills); the unpacking of the scales and
//! mins runs once per super-block and tile in intrinsics.

use std::arch::aarch64::*;

use super::aarch64_neon_tiles::{k4_byte, k4_scale_bytes, row_scales, Tok};
use super::aarch64_neon_tiles_q6k::group_scales;

/// Weight rows per tile: the four lanes of an i32 (and f32) vector.
const ROWS: usize = 4;

/// The frame of both tiles: the results `[token][row]` of `NT` (1, 4 or 8) tokens, zero, then `superblock(wb, x,
/// acc)` for each super-block, with the four rows' blocks `wb` (`w_bytes` each), each token's pointer into its
/// activation row (`skip` bytes in at the start; the super-block advances them; the pointers past `NT` repeat the
/// last token's and are never read) and the results.
///
/// # Safety
/// Every pointer of `w` holds `nb` blocks of `w_bytes`; `superblock` is safe to call with them.
#[inline(always)]
unsafe fn superblocks<const NT: usize>(
    nb: usize,
    w: [*const u8; ROWS],
    t: &[Tok; NT],
    (w_bytes, skip): (usize, usize),
    mut superblock: impl FnMut([*const u8; ROWS], &mut [*const u8; 8], *mut [f32; ROWS]),
) -> [[f32; ROWS]; NT] {
    const { assert!(NT == 1 || NT == 4 || NT == 8) };
    let mut acc = [[0f32; ROWS]; NT];
    let mut x: [*const u8; 8] = std::array::from_fn(|i| t[i.min(NT - 1)].x.wrapping_add(skip));
    for b in 0..nb {
        superblock(w.map(|p| p.add(b * w_bytes)), &mut x, acc.as_mut_ptr());
    }
    acc
}

/// What the Q4_K super-block `asm!` block reads besides the quants (one per super-block and tile, in memory).
#[repr(C)]
struct Q4kParams {
    /// `sc_j - sc_{j+1}` per sub-block `j` (lanes = rows; `sc_8 = 0`), for the telescoped scale sums.
    dsc: [int32x4_t; 8],
    /// The rows' f32 scales `d`.
    d: float32x4_t,
    /// The rows' `-dmin`.
    ndmin: float32x4_t,
    /// The rows' mins as i16: vector `k` = `[min_k of rows 0..4, min_{k+4} of rows 0..4]`.
    mins: [int16x8_t; 4],
}

/// [`Q4kParams`] of the four rows' Q4_K blocks at `wb`.
///
/// # Safety
/// Every pointer of `wb` points to a whole Q4_K block.
#[inline(always)]
unsafe fn q4k_params(wb: &[*const u8; ROWS]) -> Q4kParams {
    let [sc_lo, sc_hi, m_lo, m_hi] = k4_scale_bytes(wb);
    // Byte `4r + i` of `sc_lo` / `sc_hi` is scale `i` / `4 + i` of row `r`: scale `j` of every row as i32 lanes.
    let sc: [int32x4_t; 8] = std::array::from_fn(|j| k4_byte(if j < 4 { sc_lo } else { sc_hi }, j % 4));
    let dsc = std::array::from_fn(|j| if j < 7 { vsubq_s32(sc[j], sc[j + 1]) } else { sc[7] });
    // The mins transposed by one table lookup per two vectors: bytes 4r + k of `m_lo` (min k of row r) and of `m_hi`
    // (min 4 + k), for rows 0..4, then widened.
    let table = uint8x16x2_t(m_lo, m_hi);
    let idx: [u8; 16] = [0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29];
    let idx = vld1q_u8(idx.as_ptr());
    let t01 = vqtbl2q_u8(table, idx);
    let t23 = vqtbl2q_u8(table, vaddq_u8(idx, vdupq_n_u8(2)));
    let w = |v: uint16x8_t| vreinterpretq_s16_u16(v);
    Q4kParams {
        dsc,
        d: row_scales(wb, 0),
        ndmin: vnegq_f32(row_scales(wb, 2)),
        mins: [
            w(vmovl_u8(vget_low_u8(t01))),
            w(vmovl_high_u8(t01)),
            w(vmovl_u8(vget_low_u8(t23))),
            w(vmovl_high_u8(t23)),
        ],
    }
}

/// Loads 16 bytes of each of the four rows into one lane of four vectors (`ld4` to one lane, post-indexed by `$step`):
/// vector `k`, lane `r` = bytes `4k .. 4k + 4` of row `r`.
macro_rules! ld4_rows {
    ($v:literal, [$a:literal, $b:literal, $c:literal, $d:literal], $step:literal) => {
        concat!(
            "ld4 {{",
            $v,
            "}}[0], [{",
            $a,
            "}], ",
            $step,
            "\n",
            "ld4 {{",
            $v,
            "}}[1], [{",
            $b,
            "}], ",
            $step,
            "\n",
            "ld4 {{",
            $v,
            "}}[2], [{",
            $c,
            "}], ",
            $step,
            "\n",
            "ld4 {{",
            $v,
            "}}[3], [{",
            $d,
            "}], ",
            $step,
            "\n",
        )
    };
}

/// Eight vector instructions `$op v0..v8, v0..v8$arg` (the eight weight registers of a Q4_K sub-block).
macro_rules! q4k_all8 {
    ($op:literal, $arg:literal) => {
        concat!(
            $op,
            " v0.16b, v0.16b",
            $arg,
            "\n",
            $op,
            " v1.16b, v1.16b",
            $arg,
            "\n",
            $op,
            " v2.16b, v2.16b",
            $arg,
            "\n",
            $op,
            " v3.16b, v3.16b",
            $arg,
            "\n",
            $op,
            " v4.16b, v4.16b",
            $arg,
            "\n",
            $op,
            " v5.16b, v5.16b",
            $arg,
            "\n",
            $op,
            " v6.16b, v6.16b",
            $arg,
            "\n",
            $op,
            " v7.16b, v7.16b",
            $arg,
            "\n",
        )
    };
}

/// One token's Q4_K sub-block: its 32 activations (post-indexed), eight `sdot` by element into its running sum
/// `$s`, and `$sum += $s * (sc_j - sc_{j+1})` (`v26`).
macro_rules! q4k_token {
    ($t:ident, $s:literal, $sum:literal) => {
        concat!(
            "ldp q24, q25, [{",
            stringify!($t),
            "}], #32\n",
            "sdot ",
            $s,
            ".4s, v0.16b, v24.4b[0]\n",
            "sdot ",
            $s,
            ".4s, v1.16b, v24.4b[1]\n",
            "sdot ",
            $s,
            ".4s, v2.16b, v24.4b[2]\n",
            "sdot ",
            $s,
            ".4s, v3.16b, v24.4b[3]\n",
            "sdot ",
            $s,
            ".4s, v4.16b, v25.4b[0]\n",
            "sdot ",
            $s,
            ".4s, v5.16b, v25.4b[1]\n",
            "sdot ",
            $s,
            ".4s, v6.16b, v25.4b[2]\n",
            "sdot ",
            $s,
            ".4s, v7.16b, v25.4b[3]\n",
            "mla ",
            $sum,
            ".4s, ",
            $s,
            ".4s, v26.4s\n",
        )
    };
}

/// One token's end of a Q4_K super-block: the activations' sub-block sums (pairs of the 16 bsums, post-indexed: the
/// token's pointer then points to its next block), `summ` = their products with the mins (`v3`..`v6`) by element,
/// and `acc = fma(fma(acc, f32(sumi), d * d_x), f32(summ), -dmin * d_x)` with `d` in `v1`, `-dmin` in `v2`, `d_x` in
/// lane `$dx` and the accumulator at byte `$acc` of `{acc}`.
macro_rules! q4k_token_end {
    ($t:ident, $sum:literal, $dx:literal, $acc:literal) => {
        concat!(
            "ldp q0, q7, [{",
            stringify!($t),
            "}], #32\n",
            "addp v0.8h, v0.8h, v7.8h\n",
            "smull v30.4s, v3.4h, v0.h[0]\n",
            "smlal2 v30.4s, v3.8h, v0.h[4]\n",
            "smlal v30.4s, v4.4h, v0.h[1]\n",
            "smlal2 v30.4s, v4.8h, v0.h[5]\n",
            "smlal v30.4s, v5.4h, v0.h[2]\n",
            "smlal2 v30.4s, v5.8h, v0.h[6]\n",
            "smlal v30.4s, v6.4h, v0.h[3]\n",
            "smlal2 v30.4s, v6.8h, v0.h[7]\n",
            "fmul v31.4s, v1.4s, ",
            $dx,
            "\n",
            "fmul v24.4s, v2.4s, ",
            $dx,
            "\n",
            "scvtf ",
            $sum,
            ".4s, ",
            $sum,
            ".4s\n",
            "scvtf v30.4s, v30.4s\n",
            "ldr q25, [{acc}, #",
            $acc,
            "]\n",
            "fmla v25.4s, ",
            $sum,
            ".4s, v31.4s\n",
            "fmla v25.4s, v30.4s, v24.4s\n",
            "str q25, [{acc}, #",
            $acc,
            "]\n",
        )
    };
}

/// One Q4_K super-block of the four rows (quants at `{w0}`..`{w3}`, advanced past them) against the tokens listed
/// (`name = pointer to the token's block, advanced to its next block`, running-sum and sum registers, lane of its
/// `d_x`, byte offset of its accumulator in `{acc}`); `$prm` points to the super-block's [`Q4kParams`].
///
/// Registers: `v0`..`v7` the sub-block's interleaved weights, `v24`/`v25` a token's activations, `v26` the scale
/// differences, `v27` the nibble mask, `v28`/`v29` the tokens' `d_x`, per token `v8 + i` (running sum) and `v16 + i`
/// (scaled sum).
macro_rules! q4k_superblock {
    ($w:expr, $prm:expr, $acc:expr, $(($t:ident = $x:expr, $dxload:literal, $s:literal, $sum:literal, $dx:literal, $ao:literal)),+) => {{
        let [w0, w1, w2, w3] = $w;
        std::arch::asm!(
            ".arch_extension dotprod",
            $(concat!($dxload, "movi ", $s, ".4s, #0\n", "movi ", $sum, ".4s, #0\n"),)+
            "mov {n}, #4",
            "2:",
            // The low nibbles of the pair's 32 bytes (the row pointers step back), then the high ones.
            ld4_rows!("v0.s, v1.s, v2.s, v3.s", ["w0", "w1", "w2", "w3"], "#16"),
            ld4_rows!("v4.s, v5.s, v6.s, v7.s", ["w0", "w1", "w2", "w3"], "{back}"),
            q4k_all8!("and", ", v27.16b"),
            "ldr q26, [{prm}], #16",
            $(q4k_token!($t, $s, $sum),)+
            ld4_rows!("v0.s, v1.s, v2.s, v3.s", ["w0", "w1", "w2", "w3"], "#16"),
            ld4_rows!("v4.s, v5.s, v6.s, v7.s", ["w0", "w1", "w2", "w3"], "#16"),
            q4k_all8!("ushr", ", #4"),
            "ldr q26, [{prm}], #16",
            $(q4k_token!($t, $s, $sum),)+
            "subs {n}, {n}, #1",
            "b.ne 2b",
            "ldp q1, q2, [{prm}]",
            "ldp q3, q4, [{prm}, #32]",
            "ldp q5, q6, [{prm}, #64]",
            $(q4k_token_end!($t, $sum, $dx, $ao),)+
            w0 = inout(reg) w0 => _,
            w1 = inout(reg) w1 => _,
            w2 = inout(reg) w2 => _,
            w3 = inout(reg) w3 => _,
            $($t = inout(reg) $x,)+
            prm = inout(reg) $prm => _,
            acc = in(reg) $acc,
            back = in(reg) -16isize,
            n = out(reg) _,
            in("v27") vdupq_n_u8(0x0F),
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _,
            out("v15") _, out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _,
            out("v22") _, out("v23") _, out("v24") _, out("v25") _, out("v26") _, out("v28") _, out("v29") _,
            out("v30") _, out("v31") _,
            options(nostack)
        );
    }};
}

/// The results of four Q4_K rows (`w`, each `nb` blocks) with `NT` (1, 4 or 8) Q8_K tokens: `[token][row]`.
///
/// # Safety
/// Every pointer of `w` and every token's row hold `nb` whole blocks; the CPU has FEAT_DotProd.
#[target_feature(enable = "neon")]
pub(super) unsafe fn q4_k_tile<const NT: usize>(nb: usize, w: [*const u8; ROWS], t: &[Tok; NT]) -> [[f32; ROWS]; NT] {
    // Each token's pointer goes to its current block.
    superblocks::<NT>(nb, w, t, (144, 0), |wb, x, a| {
        let prm = q4k_params(&wb);
        let p = &prm as *const Q4kParams;
        let q = wb.map(|p| p.add(16));
        match NT {
            1 => q4k_superblock!(q, p, a, (t0 = x[0], "ld1 {{v28.s}}[0], [{t0}], #4\n", "v8", "v16", "v28.s[0]", "0")),
            4 => q4k_superblock!(
                q,
                p,
                a,
                (t0 = x[0], "ld1 {{v28.s}}[0], [{t0}], #4\n", "v8", "v16", "v28.s[0]", "0"),
                (t1 = x[1], "ld1 {{v28.s}}[1], [{t1}], #4\n", "v9", "v17", "v28.s[1]", "16"),
                (t2 = x[2], "ld1 {{v28.s}}[2], [{t2}], #4\n", "v10", "v18", "v28.s[2]", "32"),
                (t3 = x[3], "ld1 {{v28.s}}[3], [{t3}], #4\n", "v11", "v19", "v28.s[3]", "48")
            ),
            _ => q4k_superblock!(
                q,
                p,
                a,
                (t0 = x[0], "ld1 {{v28.s}}[0], [{t0}], #4\n", "v8", "v16", "v28.s[0]", "0"),
                (t1 = x[1], "ld1 {{v28.s}}[1], [{t1}], #4\n", "v9", "v17", "v28.s[1]", "16"),
                (t2 = x[2], "ld1 {{v28.s}}[2], [{t2}], #4\n", "v10", "v18", "v28.s[2]", "32"),
                (t3 = x[3], "ld1 {{v28.s}}[3], [{t3}], #4\n", "v11", "v19", "v28.s[3]", "48"),
                (t4 = x[4], "ld1 {{v29.s}}[0], [{t4}], #4\n", "v12", "v20", "v29.s[0]", "64"),
                (t5 = x[5], "ld1 {{v29.s}}[1], [{t5}], #4\n", "v13", "v21", "v29.s[1]", "80"),
                (t6 = x[6], "ld1 {{v29.s}}[2], [{t6}], #4\n", "v14", "v22", "v29.s[2]", "96"),
                (t7 = x[7], "ld1 {{v29.s}}[3], [{t7}], #4\n", "v15", "v23", "v29.s[3]", "112")
            ),
        }
    })
}

/// What the Q6_K super-block `asm!` block reads besides the quants (one per super-block and tile, in memory).
#[repr(C)]
struct Q6kParams {
    /// The group scales (lanes = rows) in the order the groups are used: `8 * half + 4 * part + k` holds group
    /// `8 * half + part + 2 * k`.
    sc: [int32x4_t; 16],
    /// The rows' f32 scales `d`.
    d: float32x4_t,
}

/// [`Q6kParams`] of the four rows' Q6_K blocks at `wb`.
///
/// # Safety
/// Every pointer of `wb` points to a whole Q6_K block.
#[inline(always)]
unsafe fn q6k_params(wb: &[*const u8; ROWS]) -> Q6kParams {
    let sc = group_scales(wb);
    Q6kParams { sc: std::array::from_fn(|i| sc[8 * (i / 8) + (i / 4) % 2 + 2 * (i % 4)]), d: row_scales(wb, 208) }
}

/// The four groups of one (half, part) of a Q6_K super-block from the interleaved bytes of `ql` (`v0`..`v3` for
/// the low quarter `a`, `v4`..`v7` for `b`, 32 bytes further) and `qh` (`v8`..`v11`): vector `k` of each group is
/// made of `a`, `b`, `h` vector `k`; each quant `q` as `4 * (q - 32)`, i.e. `(q ^ 32) << 2`: its nibble in bits 2..6
/// and its two high bits (of `qh ^ 0xAA`, `v27`; `v28` = 0xF0) in bits 6..8. The groups end in `v12`..`v15`
/// (low nibbles of `a`), `$x` (low nibbles of `b`), `v0`..`v3` (high nibbles of `a`), `v8`..`v11` (high nibbles of
/// `b`); `v30` is scratch.
macro_rules! q6k_decode_k {
    ($a:literal, $b:literal, $h:literal, $e:literal, $x:literal) => {
        concat!(
            "eor ",
            $h,
            ".16b, ",
            $h,
            ".16b, v27.16b\n",
            "shl ",
            $e,
            ".16b, ",
            $h,
            ".16b, #6\n",
            "shl v30.16b, ",
            $a,
            ".16b, #4\n",
            "sri ",
            $e,
            ".16b, v30.16b, #2\n",
            "and v30.16b, ",
            $a,
            ".16b, v28.16b\n",
            "shl ",
            $a,
            ".16b, ",
            $h,
            ".16b, #2\n",
            "sri ",
            $a,
            ".16b, v30.16b, #2\n",
            "shl v30.16b, ",
            $b,
            ".16b, #4\n",
            "and ",
            $b,
            ".16b, ",
            $b,
            ".16b, v28.16b\n",
            "shl ",
            $x,
            ".16b, ",
            $h,
            ".16b, #4\n",
            "sri ",
            $x,
            ".16b, v30.16b, #2\n",
            "sri ",
            $h,
            ".16b, ",
            $b,
            ".16b, #2\n",
        )
    };
}

/// Loads and decodes one (half, part) of the four rows' Q6_K blocks (see [`q6k_decode_k`]): `a` at `{qlN}`
/// (post-indexed by 32, to `b`), `b` (post-indexed by `$bstep`, to the next part's `a`), `h` at `{qhN}`.
macro_rules! q6k_decode {
    ($bstep:literal) => {
        concat!(
            ld4_rows!("v0.s, v1.s, v2.s, v3.s", ["ql0", "ql1", "ql2", "ql3"], "{c32}"),
            ld4_rows!("v4.s, v5.s, v6.s, v7.s", ["ql0", "ql1", "ql2", "ql3"], $bstep),
            ld4_rows!("v8.s, v9.s, v10.s, v11.s", ["qh0", "qh1", "qh2", "qh3"], "#16"),
            q6k_decode_k!("v0", "v4", "v8", "v12", "v31"),
            q6k_decode_k!("v1", "v5", "v9", "v13", "v4"),
            q6k_decode_k!("v2", "v6", "v10", "v14", "v5"),
            q6k_decode_k!("v3", "v7", "v11", "v15", "v6"),
        )
    };
}

/// One group of 16 weights (interleaved in `$w0`..`$w3`, activations at byte `$off` of each token's quants) for
/// each token: its scale vector (`v26`, post-indexed), then per token the 16 activations, four `sdot` by element
/// into a zeroed `v25` and `sum += v25 * scale`.
macro_rules! q6k_group {
    ($w0:literal, $w1:literal, $w2:literal, $w3:literal, $off:literal, $(($t:ident, $sum:literal)),+) => {
        concat!(
            "ldr q26, [{prm}], #16\n",
            $(concat!(
                "ldr q24, [{", stringify!($t), "}, #", $off, "]\n",
                "movi v25.4s, #0\n",
                "sdot v25.4s, ", $w0, ".16b, v24.4b[0]\n",
                "sdot v25.4s, ", $w1, ".16b, v24.4b[1]\n",
                "sdot v25.4s, ", $w2, ".16b, v24.4b[2]\n",
                "sdot v25.4s, ", $w3, ".16b, v24.4b[3]\n",
                "mla ", $sum, ".4s, v25.4s, v26.4s\n",
            ),)+
        )
    };
}

/// One (half, part) of a Q6_K super-block for every token: decoding, then its four groups (offsets `$o0`..`$o3`).
macro_rules! q6k_part {
    ($bstep:literal, $o0:literal, $o1:literal, $o2:literal, $o3:literal, $tok:tt) => {
        concat!(
            q6k_decode!($bstep),
            q6k_group_tt!("v12", "v13", "v14", "v15", $o0, $tok),
            q6k_group_tt!("v31", "v4", "v5", "v6", $o1, $tok),
            q6k_group_tt!("v0", "v1", "v2", "v3", $o2, $tok),
            q6k_group_tt!("v8", "v9", "v10", "v11", $o3, $tok),
        )
    };
}

/// [`q6k_group`] with the token list as one token tree.
macro_rules! q6k_group_tt {
    ($w0:literal, $w1:literal, $w2:literal, $w3:literal, $off:literal, [$($tok:tt)+]) => {
        q6k_group!($w0, $w1, $w2, $w3, $off, $($tok)+)
    };
}

/// One token's end of a Q6_K super-block: `isum` = its sum shifted right by two (the weights were decoded times
/// four), `acc = fma(acc, f32(isum), d * d_x)` with `d` in `v0`, `d_x` the f32 before the token's quants and the
/// accumulator at byte `$acc` of `{acc}`; the token's pointer then advances to its next block's quants.
macro_rules! q6k_token_end {
    ($t:ident, $sum:literal, $acc:literal) => {
        concat!(
            "ldur s24, [{",
            stringify!($t),
            "}, #-4]\n",
            "fmul v25.4s, v0.4s, v24.s[0]\n",
            "sshr ",
            $sum,
            ".4s, ",
            $sum,
            ".4s, #2\n",
            "scvtf ",
            $sum,
            ".4s, ",
            $sum,
            ".4s\n",
            "ldr q24, [{acc}, #",
            $acc,
            "]\n",
            "fmla v24.4s, ",
            $sum,
            ".4s, v25.4s\n",
            "str q24, [{acc}, #",
            $acc,
            "]\n",
            "add {",
            stringify!($t),
            "}, {",
            stringify!($t),
            "}, #292\n",
        )
    };
}

/// One Q6_K super-block of the four rows (`$w`: pointers to their blocks) against the tokens listed (`name =
/// pointer to the token's quants, advanced to its next block's`, sum register, byte offset of its accumulator in
/// `{acc}`); `$prm` points to the super-block's [`Q6kParams`].
///
/// Registers: `v0`..`v15`, `v31` the decoded groups of one (half, part), `v24` a token's activations, `v25` its
/// group sum, `v26` the group scales, `v27`/`v28` constants, `v30` scratch, per token `v16 + i` (scaled sum).
macro_rules! q6k_superblock {
    ($w:expr, $prm:expr, $acc:expr, $(($t:ident = $x:expr, $sum:literal, $ao:literal)),+) => {{
        let [ql0, ql1, ql2, ql3] = $w;
        let [qh0, qh1, qh2, qh3] = $w.map(|p: *const u8| p.add(128));
        std::arch::asm!(
            ".arch_extension dotprod",
            $(concat!("movi ", $sum, ".4s, #0\n"),)+
            q6k_part!("{cm16}", "0", "32", "64", "96", [$(($t, $sum)),+]),
            q6k_part!("#16", "16", "48", "80", "112", [$(($t, $sum)),+]),
            q6k_part!("{cm16}", "128", "160", "192", "224", [$(($t, $sum)),+]),
            q6k_part!("#16", "144", "176", "208", "240", [$(($t, $sum)),+]),
            "ldr q0, [{prm}]",
            $(q6k_token_end!($t, $sum, $ao),)+
            ql0 = inout(reg) ql0 => _,
            ql1 = inout(reg) ql1 => _,
            ql2 = inout(reg) ql2 => _,
            ql3 = inout(reg) ql3 => _,
            qh0 = inout(reg) qh0 => _,
            qh1 = inout(reg) qh1 => _,
            qh2 = inout(reg) qh2 => _,
            qh3 = inout(reg) qh3 => _,
            $($t = inout(reg) $x,)+
            prm = inout(reg) $prm => _,
            acc = in(reg) $acc,
            c32 = in(reg) 32usize,
            cm16 = in(reg) -16isize,
            in("v27") vdupq_n_u8(0xAA),
            in("v28") vdupq_n_u8(0xF0),
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _,
            out("v15") _, out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _,
            out("v22") _, out("v23") _, out("v24") _, out("v25") _, out("v26") _, out("v30") _, out("v31") _,
            options(nostack)
        );
    }};
}

/// The results of four Q6_K rows (`w`, each `nb` blocks) with `NT` (1, 4 or 8) Q8_K tokens: `[token][row]`.
///
/// # Safety
/// Every pointer of `w` and every token's row hold `nb` whole blocks; the CPU has FEAT_DotProd.
#[target_feature(enable = "neon")]
pub(super) unsafe fn q6_k_tile<const NT: usize>(nb: usize, w: [*const u8; ROWS], t: &[Tok; NT]) -> [[f32; ROWS]; NT] {
    // Each token's pointer goes to the quants of its current block.
    superblocks::<NT>(nb, w, t, (210, 4), |wb, x, a| {
        let prm = q6k_params(&wb);
        let p = &prm as *const Q6kParams;
        match NT {
            1 => q6k_superblock!(wb, p, a, (t0 = x[0], "v16", "0")),
            4 => q6k_superblock!(
                wb,
                p,
                a,
                (t0 = x[0], "v16", "0"),
                (t1 = x[1], "v17", "16"),
                (t2 = x[2], "v18", "32"),
                (t3 = x[3], "v19", "48")
            ),
            _ => q6k_superblock!(
                wb,
                p,
                a,
                (t0 = x[0], "v16", "0"),
                (t1 = x[1], "v17", "16"),
                (t2 = x[2], "v18", "32"),
                (t3 = x[3], "v19", "48"),
                (t4 = x[4], "v20", "64"),
                (t5 = x[5], "v21", "80"),
                (t6 = x[6], "v22", "96"),
                (t7 = x[7], "v23", "112")
            ),
        }
    })
}
