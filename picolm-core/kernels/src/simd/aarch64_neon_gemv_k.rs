//! aarch64 one-token (GEMV) loops of the `neon-sdot-4x8` Q4_K and Q6_K tiles for CPUs with FEAT_DotProd: four
//! weight rows against one Q8_K activation row per pass, each loop one `asm!` block over the super-blocks, with the
//! row pointers post-indexed (no address arithmetic per block).
//!
//! The four rows' quants are interleaved in registers while loading (`ld4` to one lane per row: vector `k`, lane
//! `r` = bytes `4k .. 4k + 4` of row `r`'s 16 bytes), so `sdot` by element (`sdot v.4s, w.16b, y.4b[k]`) leaves each
//! row's sum of a group in its own lane, with no reduction; a group's sum is then multiplied by the four rows' group
//! scales (one i32 lane each) into the rows' integer block sums. The tiles (`aarch64_neon_tiles_sdot_k.rs`) form
//! the same exact integer sums per row and super-block with a schedule of their own (several tokens per decoded
//! block), and these loops apply the tiles' float steps in the tiles' order, so the results
//! are bit-identical to the tiles':
//! - Q4_K: `acc = fma(fma(acc, f32(sumi), d * d_x), f32(summ), -dmin * d_x)` (`fmls` by `dmin * d_x`: the same
//!   fused operation, the product's sign flipped exactly);
//! - Q6_K: `acc = fma(acc, f32(isum), d * d_x)`.
//!
//! Q6_K's six-bit quants are assembled as `4 * (q - 32)` (the four bits of `ql` at bits 2..6, the two of `qh`, top
//! one flipped, at bits 6..8: two instructions per 16 weights and one `eor` per 64), so the block sum comes out four
//! times too large and exact (at most 2^29 in magnitude), and one arithmetic shift right by 2 restores it.
//!
//! Budget per four rows and super-block (1024 weights), counted in the loops below: Q6_K 367 instructions (the
//! tile's compiled one-token form took 708), Q4_K 241.

use std::arch::aarch64::*;

use super::aarch64_neon_tiles::Q4K;
use super::aarch64_neon_tiles_q6k::Q6K;

/// Rows per pass: the four lanes of an i32 (and f32) vector.
pub(super) const ROWS: usize = 4;

/// Loads 16 bytes (`ld4`; `ld3`: 12) of each of four rows (post-indexed by `$post`) into one lane of the vectors `$v`:
/// vector `k`, lane `r` = bytes `4k .. 4k + 4` of row `r`.
#[rustfmt::skip]
macro_rules! ld4_rows {
    ($v:literal, $post:literal, $a:literal, $b:literal, $c:literal, $d:literal) => {
        ld4_rows!("ld4", $v, $post, $a, $b, $c, $d)
    };
    ($op:literal, $v:literal, $post:literal, $a:literal, $b:literal, $c:literal, $d:literal) => {
        concat!(
            $op, " {{", $v, "}}[0], [{", $a, "}], ", $post, "\n",
            $op, " {{", $v, "}}[1], [{", $b, "}], ", $post, "\n",
            $op, " {{", $v, "}}[2], [{", $c, "}], ", $post, "\n",
            $op, " {{", $v, "}}[3], [{", $d, "}], ", $post, "\n",
        )
    };
}

/// Byte `$j` of each i32 lane of `$src`, sign-extended (`$signed`: `sshr`) or zero-extended (`ushr`, then the mask
/// 0xFF of `v28` unless it is the top byte), into `$dst`.
#[rustfmt::skip]
macro_rules! lane_byte {
    (signed, $dst:literal, $src:literal, 0) => {
        concat!("shl ", $dst, ".4s, ", $src, ".4s, #24\n", "sshr ", $dst, ".4s, ", $dst, ".4s, #24\n")
    };
    (signed, $dst:literal, $src:literal, 1) => {
        concat!("shl ", $dst, ".4s, ", $src, ".4s, #16\n", "sshr ", $dst, ".4s, ", $dst, ".4s, #24\n")
    };
    (signed, $dst:literal, $src:literal, 2) => {
        concat!("shl ", $dst, ".4s, ", $src, ".4s, #8\n", "sshr ", $dst, ".4s, ", $dst, ".4s, #24\n")
    };
    (signed, $dst:literal, $src:literal, 3) => {
        concat!("sshr ", $dst, ".4s, ", $src, ".4s, #24\n")
    };
    (unsigned, $dst:literal, $src:literal, 0) => {
        concat!("and ", $dst, ".16b, ", $src, ".16b, v28.16b\n")
    };
    (unsigned, $dst:literal, $src:literal, 1) => {
        concat!("ushr ", $dst, ".4s, ", $src, ".4s, #8\n", "and ", $dst, ".16b, ", $dst, ".16b, v28.16b\n")
    };
    (unsigned, $dst:literal, $src:literal, 2) => {
        concat!("ushr ", $dst, ".4s, ", $src, ".4s, #16\n", "and ", $dst, ".16b, ", $dst, ".16b, v28.16b\n")
    };
    (unsigned, $dst:literal, $src:literal, 3) => {
        concat!("ushr ", $dst, ".4s, ", $src, ".4s, #24\n")
    };
}

/// Q6_K, first half of a unit: from the interleaved `qh` bytes `$h` (flipped here by `v30` = 0xAA) and low `ql`
/// bytes `$a`, the groups of the low nibbles (pair bits 0..2, `4 * (q - 32)` into `v22`) and of the high nibbles
/// (pair bits 4..6, into `v23`), each multiplied with four activations (`$i`) of its group (`$y0`, `$y2`) into the
/// group sums `v12`, `v14`. `v28` is scratch.
#[rustfmt::skip]
macro_rules! q6k_unit_lo {
    ($h:literal, $a:literal, $i:literal, $y0:literal, $y2:literal) => {
        concat!(
            "eor ", $h, ".16b, ", $h, ".16b, v30.16b\n",
            "shl v23.16b, ", $h, ".16b, #2\n",
            "shl v22.16b, ", $a, ".16b, #2\n",
            "sli v22.16b, ", $h, ".16b, #6\n",
            "sdot v12.4s, v22.16b, ", $y0, ".4b[", $i, "]\n",
            "and v28.16b, ", $a, ".16b, v29.16b\n",
            "sri v23.16b, v28.16b, #2\n",
            "sdot v14.4s, v23.16b, ", $y2, ".4b[", $i, "]\n",
        )
    };
}

/// Q6_K, second half of a unit: the high `ql` bytes `$b` with pair bits 2..4 (into `v22`) and 6..8 (into `$h`,
/// consumed), into the group sums `v13`, `v15` (activations `$y1`, `$y3`).
#[rustfmt::skip]
macro_rules! q6k_unit_hi {
    ($h:literal, $b:literal, $i:literal, $y1:literal, $y3:literal) => {
        concat!(
            "ushr v23.16b, ", $h, ".16b, #2\n",
            "shl v22.16b, ", $b, ".16b, #2\n",
            "sli v22.16b, v23.16b, #6\n",
            "sdot v13.4s, v22.16b, ", $y1, ".4b[", $i, "]\n",
            "and v28.16b, ", $b, ".16b, v29.16b\n",
            "sri ", $h, ".16b, v28.16b, #2\n",
            "sdot v15.4s, ", $h, ".16b, ", $y3, ".4b[", $i, "]\n",
        )
    };
}

/// One Q6_K step: 32 values of each half of a super-block and row (`ql` 16 bytes at `l`, 16 at `l + 32`, `qh` 16 at
/// `l`), four groups of 16 weights: `$qh_post` and `$b_post` advance the row pointers (see [`q6_k_rows`]),
/// `$y0..$y3` hold the activations of the four groups, `$s0`/`$s1` are the raw scale vectors and `$j0`/`$j1` the
/// scale bytes of the groups, `$first` starts the block sum (`mul`) or adds to it (`mla`).
#[rustfmt::skip]
macro_rules! q6k_step {
    ($qh_post:literal, $b_post:literal, $y0:literal, $y1:literal, $y2:literal, $y3:literal,
     $s0:literal, $s1:literal, $j0:tt, $j1:tt, $first:literal) => {
        concat!(
            ld4_rows!("v0.s, v1.s, v2.s, v3.s", $qh_post, "q0", "q1", "q2", "q3"),
            ld4_rows!("v4.s, v5.s, v6.s, v7.s", "{c32}", "p0", "p1", "p2", "p3"),
            "movi v12.4s, #0\n",
            "movi v14.4s, #0\n",
            q6k_unit_lo!("v0", "v4", "0", $y0, $y2),
            q6k_unit_lo!("v1", "v5", "1", $y0, $y2),
            q6k_unit_lo!("v2", "v6", "2", $y0, $y2),
            q6k_unit_lo!("v3", "v7", "3", $y0, $y2),
            ld4_rows!("v4.s, v5.s, v6.s, v7.s", $b_post, "p0", "p1", "p2", "p3"),
            "movi v13.4s, #0\n",
            "movi v15.4s, #0\n",
            q6k_unit_hi!("v0", "v4", "0", $y1, $y3),
            q6k_unit_hi!("v1", "v5", "1", $y1, $y3),
            q6k_unit_hi!("v2", "v6", "2", $y1, $y3),
            q6k_unit_hi!("v3", "v7", "3", $y1, $y3),
            lane_byte!(signed, "v22", $s0, $j0),
            $first, " v20.4s, v12.4s, v22.4s\n",
            lane_byte!(signed, "v22", $s0, $j1),
            "mla v20.4s, v13.4s, v22.4s\n",
            lane_byte!(signed, "v22", $s1, $j0),
            "mla v20.4s, v14.4s, v22.4s\n",
            lane_byte!(signed, "v22", $s1, $j1),
            "mla v20.4s, v15.4s, v22.4s\n",
        )
    };
}

/// The results of four Q6_K rows (`w`: each row's first block) against one Q8_K activation row at `x` (`nb`
/// blocks each): the `neon-sdot-4x8` tile's integer block sums and float step per row (see the module comment).
///
/// Each row has two pointers: `p` walks `ql` (per block: offsets 0, 32, 16, 48, 64, 96, 80, 112, then the next
/// block), `q` walks the rest (`d` at 208, the scales at 192, `qh` at 128..192, then the next block's `d`). The
/// activation pointer walks `d_x`, then the quants of each half (groups 0..4 into `v8`..`v11`, 4..8 into `v24`..`v27`).
///
/// # Safety
/// Every pointer of `w` and `x` hold `nb` whole blocks (Q6_K, 210 bytes; Q8_K, 292 bytes); the CPU has
/// FEAT_DotProd.
#[inline(always)]
unsafe fn q6_k_rows(nb: usize, w: [*const u8; ROWS], x: *const u8) -> [f32; ROWS] {
    let mut acc = vdupq_n_f32(0.0);
    if nb > 0 {
        let [p0, p1, p2, p3] = w;
        let [q0, q1, q2, q3] = w.map(|p| p.wrapping_add(208));
        std::arch::asm!(
            ".arch_extension dotprod",
            "2:",
            // d * d_x of the four rows (v31), the raw scales (v16..v19: lane r = four scales of row r).
            "ld1 {{v31.h}}[0], [{q0}], {cm16}",
            "ld1 {{v31.h}}[1], [{q1}], {cm16}",
            "ld1 {{v31.h}}[2], [{q2}], {cm16}",
            "ld1 {{v31.h}}[3], [{q3}], {cm16}",
            "ldr s22, [{y}], #4",
            "fcvtl v31.4s, v31.4h",
            "fmul v31.4s, v31.4s, v22.s[0]",
            ld4_rows!("v16.s, v17.s, v18.s, v19.s", "{cm64}", "q0", "q1", "q2", "q3"),
            "ld1 {{v8.16b, v9.16b, v10.16b, v11.16b}}, [{y}], #64",
            "ld1 {{v24.16b, v25.16b, v26.16b, v27.16b}}, [{y}], #64",
            q6k_step!("#16", "{cm16}", "v8", "v10", "v24", "v26", "v16", "v17", 0, 2, "mul"),
            q6k_step!("#16", "#16", "v9", "v11", "v25", "v27", "v16", "v17", 1, 3, "mla"),
            "ld1 {{v8.16b, v9.16b, v10.16b, v11.16b}}, [{y}], #64",
            "ld1 {{v24.16b, v25.16b, v26.16b, v27.16b}}, [{y}], {c96}",
            q6k_step!("#16", "{cm16}", "v8", "v10", "v24", "v26", "v18", "v19", 0, 2, "mla"),
            q6k_step!("{c242}", "{c98}", "v9", "v11", "v25", "v27", "v18", "v19", 1, 3, "mla"),
            "sshr v20.4s, v20.4s, #2",
            "scvtf v20.4s, v20.4s",
            "fmla v21.4s, v20.4s, v31.4s",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            p0 = inout(reg) p0 => _,
            p1 = inout(reg) p1 => _,
            p2 = inout(reg) p2 => _,
            p3 = inout(reg) p3 => _,
            q0 = inout(reg) q0 => _,
            q1 = inout(reg) q1 => _,
            q2 = inout(reg) q2 => _,
            q3 = inout(reg) q3 => _,
            y = inout(reg) x => _,
            n = inout(reg) nb => _,
            c32 = in(reg) 32usize,
            cm16 = in(reg) -16isize,
            cm64 = in(reg) -64isize,
            c96 = in(reg) 96usize,
            c98 = in(reg) 98usize,
            c242 = in(reg) 242usize,
            in("v29") vdupq_n_u8(0xF0),
            in("v30") vdupq_n_u8(0xAA),
            inout("v21") acc,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _,
            out("v15") _, out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v22") _,
            out("v23") _, out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _, out("v31") _,
            options(readonly, nostack)
        );
    }
    let mut out = [0f32; ROWS];
    vst1q_f32(out.as_mut_ptr(), acc);
    out
}

/// One Q4_K pair of sub-blocks (`32 * $jp .. + 64`): 32 packed bytes of each row (`ld4`, low nibbles sub-block
/// `2 jp`, high nibbles `2 jp + 1`) times the 64 activations (`$y_post` advances the activation pointer), the two
/// sums times the rows' scales (bytes `$j0`, `$j1` of `$sc`) into the block sum `v21` (`$first`: `mul` or `mla`).
#[rustfmt::skip]
macro_rules! q4k_pair {
    ($y_post:literal, $sc:literal, $j0:tt, $j1:tt, $first:literal) => {
        concat!(
            ld4_rows!("v0.s, v1.s, v2.s, v3.s", "#16", "p0", "p1", "p2", "p3"),
            ld4_rows!("v4.s, v5.s, v6.s, v7.s", "#16", "p0", "p1", "p2", "p3"),
            "ld1 {{v8.16b, v9.16b, v10.16b, v11.16b}}, [{y}], ", $y_post, "\n",
            "movi v12.4s, #0\n",
            "movi v13.4s, #0\n",
            q4k_nibbles!("v0", "v8", "0", "v14"),
            q4k_nibbles!("v1", "v8", "1", "v16"),
            q4k_nibbles!("v2", "v8", "2", "v14"),
            q4k_nibbles!("v3", "v8", "3", "v16"),
            q4k_nibbles!("v4", "v9", "0", "v14"),
            q4k_nibbles!("v5", "v9", "1", "v16"),
            q4k_nibbles!("v6", "v9", "2", "v14"),
            q4k_nibbles!("v7", "v9", "3", "v16"),
            lane_byte!(unsigned, "v15", $sc, $j0),
            $first, " v21.4s, v12.4s, v15.4s\n",
            lane_byte!(unsigned, "v15", $sc, $j1),
            "mla v21.4s, v13.4s, v15.4s\n",
        )
    };
}

/// Q4_K: the low nibbles of the interleaved bytes `$w` (masked by `v26` into `$t`) times four activations (`$i`) of
/// `$y` into `v12`, the high nibbles (shifted in place) times the same four of the next sub-block (`$y` + 2
/// registers) into `v13`.
#[rustfmt::skip]
macro_rules! q4k_nibbles {
    ($w:literal, "v8", $i:literal, $t:literal) => {
        q4k_nibbles!(@ $w, "v8", "v10", $i, $t)
    };
    ($w:literal, "v9", $i:literal, $t:literal) => {
        q4k_nibbles!(@ $w, "v9", "v11", $i, $t)
    };
    (@ $w:literal, $ylo:literal, $yhi:literal, $i:literal, $t:literal) => {
        concat!(
            "and ", $t, ".16b, ", $w, ".16b, v26.16b\n",
            "sdot v12.4s, ", $t, ".16b, ", $ylo, ".4b[", $i, "]\n",
            "ushr ", $w, ".16b, ", $w, ".16b, #4\n",
            "sdot v13.4s, ", $w, ".16b, ", $yhi, ".4b[", $i, "]\n",
        )
    };
}

/// The results of four Q4_K rows (`w`: each row's first block) against one Q8_K activation row at `x` (`nb` blocks
/// each): the `neon-sdot-4x8` tile's integer block sums and float steps per row (see the module comment). Each row
/// pointer walks its blocks in order (`d` and `dmin`, the twelve bytes of scales and mins, the quants); the
/// activation pointer walks `d_x`, then the quants (the bsums are read at an offset first).
///
/// # Safety
/// Every pointer of `w` and `x` hold `nb` whole blocks (Q4_K, 144 bytes; Q8_K, 292 bytes); the CPU has
/// FEAT_DotProd.
#[inline(always)]
unsafe fn q4_k_rows(nb: usize, w: [*const u8; ROWS], x: *const u8) -> [f32; ROWS] {
    let mut acc = vdupq_n_f32(0.0);
    if nb > 0 {
        let [p0, p1, p2, p3] = w;
        std::arch::asm!(
            ".arch_extension dotprod",
            "2:",
            // d (v24) and dmin (v25) of the four rows, times d_x.
            "ld2 {{v24.h, v25.h}}[0], [{p0}], #4",
            "ld2 {{v24.h, v25.h}}[1], [{p1}], #4",
            "ld2 {{v24.h, v25.h}}[2], [{p2}], #4",
            "ld2 {{v24.h, v25.h}}[3], [{p3}], #4",
            ld4_rows!("ld3", "v16.s, v17.s, v18.s", "#12", "p0", "p1", "p2", "p3"),
            "ldr s29, [{y}], #4",
            "ldp q30, q31, [{y}, #256]",
            "fcvtl v24.4s, v24.4h",
            "fcvtl v25.4s, v25.4h",
            "fmul v24.4s, v24.4s, v29.s[0]",
            "fmul v25.4s, v25.4s, v29.s[0]",
            // The sub-blocks' activation sums (pairs of the 16 bsums) and each row's mins (lane r of v19: mins
            // 0..4, of v22: 4..8, as in `k4_scales`), widened per row; summ (v22) = sum of mins times sums.
            "addp v30.8h, v30.8h, v31.8h",
            "and v19.16b, v17.16b, v27.16b",
            "ushr v22.16b, v17.16b, #2",
            "ushr v29.16b, v18.16b, #4",
            "bit v22.16b, v29.16b, v26.16b",
            "zip1 v29.4s, v19.4s, v22.4s",
            "zip2 v31.4s, v19.4s, v22.4s",
            "uxtl v19.8h, v29.8b",
            "uxtl2 v29.8h, v29.16b",
            "uxtl v22.8h, v31.8b",
            "uxtl2 v31.8h, v31.16b",
            "smull v12.4s, v19.4h, v30.4h",
            "smlal2 v12.4s, v19.8h, v30.8h",
            "smull v13.4s, v29.4h, v30.4h",
            "smlal2 v13.4s, v29.8h, v30.8h",
            "smull v14.4s, v22.4h, v30.4h",
            "smlal2 v14.4s, v22.8h, v30.8h",
            "smull v15.4s, v31.4h, v30.4h",
            "smlal2 v15.4s, v31.8h, v30.8h",
            "addp v12.4s, v12.4s, v13.4s",
            "addp v14.4s, v14.4s, v15.4s",
            "addp v22.4s, v12.4s, v14.4s",
            // The scales: sub-blocks 0..4 in the bytes of v19's lanes, 4..8 in v20's.
            "and v19.16b, v16.16b, v27.16b",
            "ushr v20.16b, v16.16b, #2",
            "bit v20.16b, v18.16b, v26.16b",
            q4k_pair!("#64", "v19", 0, 1, "mul"),
            q4k_pair!("#64", "v19", 2, 3, "mla"),
            q4k_pair!("#64", "v20", 0, 1, "mla"),
            q4k_pair!("{c96}", "v20", 2, 3, "mla"),
            "scvtf v21.4s, v21.4s",
            "scvtf v22.4s, v22.4s",
            "fmla v23.4s, v21.4s, v24.4s",
            "fmls v23.4s, v22.4s, v25.4s",
            "subs {n}, {n}, #1",
            "b.ne 2b",
            p0 = inout(reg) p0 => _,
            p1 = inout(reg) p1 => _,
            p2 = inout(reg) p2 => _,
            p3 = inout(reg) p3 => _,
            y = inout(reg) x => _,
            n = inout(reg) nb => _,
            c96 = in(reg) 96usize,
            in("v26") vdupq_n_u8(0x0F),
            in("v27") vdupq_n_u8(0x3F),
            in("v28") vdupq_n_u32(0xFF),
            inout("v23") acc,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _,
            out("v15") _, out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _,
            out("v22") _, out("v24") _, out("v25") _, out("v29") _, out("v30") _, out("v31") _,
            options(readonly, nostack)
        );
    }
    let mut out = [0f32; ROWS];
    vst1q_f32(out.as_mut_ptr(), acc);
    out
}

/// A K-quant format's four-row one-token loop.
pub(super) trait KRows {
    /// The results of four rows (`w`: each row's first block) against one Q8_K activation row at `x`, `nb` blocks
    /// each.
    ///
    /// # Safety
    /// Every pointer of `w` and `x` hold `nb` whole blocks; the CPU has FEAT_DotProd.
    unsafe fn rows(nb: usize, w: [*const u8; ROWS], x: *const u8) -> [f32; ROWS];
}

impl KRows for Q4K {
    #[inline(always)]
    unsafe fn rows(nb: usize, w: [*const u8; ROWS], x: *const u8) -> [f32; ROWS] {
        q4_k_rows(nb, w, x)
    }
}

impl KRows for Q6K {
    #[inline(always)]
    unsafe fn rows(nb: usize, w: [*const u8; ROWS], x: *const u8) -> [f32; ROWS] {
        q6_k_rows(nb, w, x)
    }
}
