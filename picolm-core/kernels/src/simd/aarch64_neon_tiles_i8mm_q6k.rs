//! The aarch64 `smmla` tile (FEAT_I8MM) for Q6_K against Q8_K activations: `neon-i8mm-4x8` of that format, its
//! prefill kernel on CPUs with FEAT_I8MM. It runs in the frame of the Q4_K tile (`aarch64_neon_tiles_i8mm_k.rs`:
//! groups of four weight rows by up to eight tokens, the tokens' Q8_K super-blocks paired once per call), whose
//! module comment and that of `aarch64_neon_tiles_i8mm.rs` explain `smmla` and the pairing.
//!
//! The six-bit decoding of two row pairs does not fit in the registers beside the 16 running sums, so each run of
//! super-blocks of a group is one `asm!` block that goes through each super-block in three phases, with a 1.5 KiB
//! buffer on the stack:
//! 1. the group scales' differences `sc_g - sc_{g+1}` (`sc_16 = 0`), as the i32 vectors `[a, a, b, b]` of each row
//!    pair (rows `a`, `b`) and group that `mla` needs (78 instructions, into the buffer's last 512 bytes);
//! 2. decoding, per 128-value half and row pair: three `ld4` of 64-bit lanes per row (its 32 low-nibble bytes of
//!    quarters 0 and 2, the 32 of quarters 1 and 3, the 32 high-bit bytes), which pair the rows in each vector
//!    (read in place from the memory map), then ten instructions per four vectors turn each quant `q` into `4 * (q -
//!    32)` (its nibble in bits 2..6, its two high bits with the upper one flipped in bits 6..8, as the `neon-sdot-4x8`
//!    tile decodes), stored by pair of groups (one quarter of a half: chunks 0 and 1 of group `2k`, then of `2k +
//!    1`) and row pair into the buffer's first KiB (206 instructions);
//! 3. the products, a pass like that of Q8_0 over the buffer: per pair of groups and token pair, eight `smmla` into
//!    one running sum `S` per row pair (never zeroed within a super-block), with `sum += S * (sc_g - sc_{g+1})` after
//!    group `g`: the sum telescopes to `sum_g sc_g * dot_g`, as in the Q4_K tiles (464 instructions for four token
//!    pairs).
//!
//! With the float steps, about 830 instructions per super-block of four rows by eight tokens, where the
//! `neon-sdot-4x8` tile takes 1310.
//!
//! The float steps are those of the `neon-sdot-4x8` Q6_K tile (`aarch64_neon_tiles_sdot_k.rs`) per row, token and
//! super-block, on the same exact integer sum: `acc = fma(acc, f32(isum), d * d_x)`, lane by lane in the `smmla`
//! layout, with `isum` the running sum shifted right by two (the weights were decoded times four; exact, |4 isum| <
//! 2^31); so the results equal that tile's and its GEMV entry's (the decode kernel, `aarch64_neon_gemv_k.rs`) bit
//! for bit.

use std::arch::aarch64::*;

use super::aarch64_neon_tiles::Tok;
use super::aarch64_neon_tiles_i8mm::{Acc, Tile, GROUP, TOKENS};
use super::aarch64_neon_tiles_i8mm_k::{tile, SuperBlock, X_BYTES};

/// Bytes of a Q6_K block (128 bytes of low nibbles, 64 of high bit pairs, 16 i8 group scales, f16 `d`).
const W_BYTES: usize = 210;

/// Q6_K (the [`Tile`] of `neon-i8mm-4x8` for that format).
pub(super) struct Q6K;

impl Tile for Q6K {
    const LAYOUT: (usize, usize, usize, usize) = (256, W_BYTES, X_BYTES, 0);
    #[inline(always)]
    unsafe fn tile<const TP: usize>(nb: usize, rows: &mut [[*const u8; GROUP]], t: &[Tok; TOKENS], acc: &mut [Acc]) {
        tile::<Self, TP>(nb, rows, t, acc)
    }
}

impl SuperBlock for Q6K {
    #[inline(always)]
    unsafe fn superblocks<const TP: usize>(run: usize, w: &mut [*const u8; GROUP], q: *const u8, acc: &mut Acc) {
        superblocks::<TP>(run, w, q, acc)
    }
}

/// The group scale differences of one row pair (scales of rows `a` and `b` in `$a`, `$b`; `v31` = 0): the rows'
/// scales interleaved (`$z1`: groups 0..8, `$z2`: 8..16), the same from the next group on (`$n1`, `$n2`; 0 past the
/// last), and their differences `[a_g - a_{g+1}, b_g - b_{g+1}]` as i16 pairs, four groups in each of `$p`.
macro_rules! scale_differences {
    ($a:literal, $b:literal, $z1:literal, $z2:literal, $n1:literal, $n2:literal, [$p0:literal, $p1:literal, $p2:literal, $p3:literal]) => {
        concat!(
            "zip1 ",
            $z1,
            ".16b, ",
            $a,
            ".16b, ",
            $b,
            ".16b\n",
            "zip2 ",
            $z2,
            ".16b, ",
            $a,
            ".16b, ",
            $b,
            ".16b\n",
            "ext ",
            $n1,
            ".16b, ",
            $z1,
            ".16b, ",
            $z2,
            ".16b, #2\n",
            "ext ",
            $n2,
            ".16b, ",
            $z2,
            ".16b, v31.16b, #2\n",
            "ssubl ",
            $p0,
            ".8h, ",
            $z1,
            ".8b, ",
            $n1,
            ".8b\n",
            "ssubl2 ",
            $p1,
            ".8h, ",
            $z1,
            ".16b, ",
            $n1,
            ".16b\n",
            "ssubl ",
            $p2,
            ".8h, ",
            $z2,
            ".8b, ",
            $n2,
            ".8b\n",
            "ssubl2 ",
            $p3,
            ".8h, ",
            $z2,
            ".16b, ",
            $n2,
            ".16b\n",
        )
    };
}

/// Four groups of scale differences (`$p0`, `$p1`: the i16 pairs of row pairs 0 and 1, see [`scale_differences`])
/// as the i32 vectors `[a, a, b, b]` the products read, stored at `{prm}` (post-indexed) by pair of groups: group
/// `2j` of row pairs 0 and 1, then group `2j + 1`.
macro_rules! scale_vectors {
    ($p0:literal, $p1:literal) => {
        concat!(
            "zip1 v16.8h, ",
            $p0,
            ".8h, ",
            $p0,
            ".8h\n",
            "zip1 v17.8h, ",
            $p1,
            ".8h, ",
            $p1,
            ".8h\n",
            "zip2 v20.8h, ",
            $p0,
            ".8h, ",
            $p0,
            ".8h\n",
            "zip2 v21.8h, ",
            $p1,
            ".8h, ",
            $p1,
            ".8h\n",
            "sxtl2 v18.4s, v16.8h\n",
            "sxtl2 v19.4s, v17.8h\n",
            "sxtl v16.4s, v16.4h\n",
            "sxtl v17.4s, v17.4h\n",
            "sxtl2 v22.4s, v20.8h\n",
            "sxtl2 v23.4s, v21.8h\n",
            "sxtl v20.4s, v20.4h\n",
            "sxtl v21.4s, v21.4h\n",
            "st1 {{v16.4s, v17.4s, v18.4s, v19.4s}}, [{prm}], #64\n",
            "st1 {{v20.4s, v21.4s, v22.4s, v23.4s}}, [{prm}], #64\n",
        )
    };
}

/// Decodes one chunk `c` of a half and row pair (`$a`: its low-nibble bytes of quarters 0 and 2, `$b`: of quarters
/// 1 and 3, `$h`: the high bit pairs, rows `a` | `b` in the vectors' halves; `v31` = 0xAA) into quarter 0 in `$e`,
/// 1 in `$x`, 2 in `$h`, 3 in `$h2`: each quant `q` as `4 * (q - 32)` = `(q ^ 32) << 2`.
macro_rules! decode_chunk {
    ($a:literal, $b:literal, $h:literal, $e:literal, $x:literal, $h2:literal) => {
        concat!(
            // The upper bit of each pair flipped: `q ^ 32`.
            "eor ", $h, ".16b, ", $h, ".16b, v31.16b\n",
            // Quarter 0: the low nibble of `a` to bits 2..6, bits 0..2 of `h` to 6..8.
            "shl ", $e, ".16b, ", $a, ".16b, #2\n",
            "sli ", $e, ".16b, ", $h, ".16b, #6\n",
            // Quarter 1: the low nibble of `b`, bits 2..4 of `h` (bits 0..2 of `h2`).
            "ushr ", $h2, ".16b, ", $h, ".16b, #2\n",
            "shl ", $x, ".16b, ", $b, ".16b, #2\n",
            "sli ", $x, ".16b, ", $h2, ".16b, #6\n",
            // Quarter 3: the high nibble of `b` below bits 6..8 of `h` (bits 4..6 of `h2`, above them zero).
            "sri ", $h2, ".16b, ", $b, ".16b, #4\n",
            "shl ", $h2, ".16b, ", $h2, ".16b, #2\n",
            // Quarter 2: the high nibble of `a` below bits 4..6 of `h` (its bits 6..8 shifted out).
            "sri ", $h, ".16b, ", $a, ".16b, #4\n",
            "shl ", $h, ".16b, ", $h, ".16b, #2\n",
        )
    };
}

/// Loads, decodes and stores one half of a row pair (rows `{$la}`, `{$lb}`: low nibbles, post-indexed to the next
/// half; `{$ha}`, `{$hb}`: high bits, likewise) into the buffer at `{$buf}` (post-indexed by `{k128}` per store):
/// quarter `k` of the half (groups `2k` and `2k + 1`: chunks 0 and 1 of each) as four vectors.
macro_rules! decode_half {
    ($la:literal, $lb:literal, $ha:literal, $hb:literal, $buf:literal) => {
        concat!(
            "ld4 {{v0.d, v1.d, v2.d, v3.d}}[0], [{",
            $la,
            "}], #32\n",
            "ld4 {{v0.d, v1.d, v2.d, v3.d}}[1], [{",
            $lb,
            "}], #32\n",
            "ld4 {{v4.d, v5.d, v6.d, v7.d}}[0], [{",
            $la,
            "}], #32\n",
            "ld4 {{v4.d, v5.d, v6.d, v7.d}}[1], [{",
            $lb,
            "}], #32\n",
            "ld4 {{v8.d, v9.d, v10.d, v11.d}}[0], [{",
            $ha,
            "}], #32\n",
            "ld4 {{v8.d, v9.d, v10.d, v11.d}}[1], [{",
            $hb,
            "}], #32\n",
            decode_chunk!("v0", "v4", "v8", "v12", "v16", "v20"),
            decode_chunk!("v1", "v5", "v9", "v13", "v17", "v21"),
            decode_chunk!("v2", "v6", "v10", "v14", "v18", "v22"),
            decode_chunk!("v3", "v7", "v11", "v15", "v19", "v23"),
            "st1 {{v12.16b, v13.16b, v14.16b, v15.16b}}, [{",
            $buf,
            "}], {k128}\n",
            "st1 {{v16.16b, v17.16b, v18.16b, v19.16b}}, [{",
            $buf,
            "}], {k128}\n",
            "st1 {{v8.16b, v9.16b, v10.16b, v11.16b}}, [{",
            $buf,
            "}], {k128}\n",
            "st1 {{v20.16b, v21.16b, v22.16b, v23.16b}}, [{",
            $buf,
            "}], {k128}\n",
        )
    };
}

/// One pair of groups `2j`, `2j + 1` for one token pair (running sums `$s0`, `$s1` and scaled sums `$m0`, `$m1` of
/// row pairs 0 and 1): its four paired vectors (`v8`..`v11`, post-indexed), four `smmla` per group and row pair with
/// the weights (`v16`..`v19` row pair 0, `v20`..`v23` row pair 1: chunks 0 and 1 of group `2j`, then of `2j + 1`)
/// and `sum += S * (sc_g - sc_{g+1})` (`v12`..`v15`).
macro_rules! group_pair {
    ($s0:literal, $s1:literal, $m0:literal, $m1:literal) => {
        concat!(
            "ld1 {{v8.16b, v9.16b, v10.16b, v11.16b}}, [{q}], #64\n",
            "smmla ",
            $s0,
            ".4s, v16.16b, v8.16b\n",
            "smmla ",
            $s1,
            ".4s, v20.16b, v8.16b\n",
            "smmla ",
            $s0,
            ".4s, v17.16b, v9.16b\n",
            "smmla ",
            $s1,
            ".4s, v21.16b, v9.16b\n",
            "mla ",
            $m0,
            ".4s, ",
            $s0,
            ".4s, v12.4s\n",
            "mla ",
            $m1,
            ".4s, ",
            $s1,
            ".4s, v13.4s\n",
            "smmla ",
            $s0,
            ".4s, v18.16b, v10.16b\n",
            "smmla ",
            $s1,
            ".4s, v22.16b, v10.16b\n",
            "smmla ",
            $s0,
            ".4s, v19.16b, v11.16b\n",
            "smmla ",
            $s1,
            ".4s, v23.16b, v11.16b\n",
            "mla ",
            $m0,
            ".4s, ",
            $s0,
            ".4s, v14.4s\n",
            "mla ",
            $m1,
            ".4s, ",
            $s1,
            ".4s, v15.4s\n",
        )
    };
}

/// The float steps of a row pair's super-block for each token pair listed (scaled sums `$m`, the pair's scales
/// `$dx`, its accumulator register `$a`, scratch `$t`): `acc = fma(acc, f32(isum), d * d_x)` with `isum` = the sum
/// shifted right by two and the row pair's `d` in `$d`.
macro_rules! row_pair_end {
    ($d:literal, $(($m:literal, $dx:literal, $a:literal, $t:literal)),+) => {
        concat!(
            $(
                "sshr ", $m, ".4s, ", $m, ".4s, #2\n",
                "fmul ", $t, ".4s, ", $d, ".4s, ", $dx, ".4s\n",
                "scvtf ", $m, ".4s, ", $m, ".4s\n",
                "fmla ", $a, ".4s, ", $m, ".4s, ", $t, ".4s\n",
            )+
        )
    };
}

/// `$run` super-blocks of a group (rows `$w`, paired tokens at `$q`, a 1.5 KiB buffer at `$buf`, accumulators at
/// `$acc`) for the token pairs listed: `($s0, $s1, $m0, $m1, $dx, $a, $t)` = running sums and scaled sums of row
/// pairs 0 and 1, the pair's scales, its accumulator register and a scratch register; `$ldx` loads the pairs'
/// scales (`[d_a, d_b]` replicated; post-indexed to the next paired super-block), `$accs` is the list of
/// accumulator registers.
///
/// Per super-block: the scale differences into the buffer's last 512 bytes (`{prm}`, see [`scale_vectors`]), the
/// decoded weights into its first KiB (per pair of groups, 64 bytes of row pair 0 then 64 of row pair 1, see
/// [`decode_half`]), the products, the float steps. Registers: scale differences: `v0`..`v23`, `v31` = 0;
/// decoding: `v0`..`v23` (see [`decode_half`]), `v31` = 0xAA; products: `v0`..`v7` running sums, `v8`..`v11` a
/// token pair's vectors, `v12`..`v15` the scale differences, `v16`..`v23` the weights, `v24`..`v31` the scaled
/// sums; end: `v8`..`v11` the pairs' scales, `v12`/`v13` the row pairs' `d`, `v16`..`v19` the accumulators,
/// `v20`..`v23` scratch.
macro_rules! superblocks_asm {
    ($run:expr, $w:expr, $q:expr, $buf:expr, $acc:expr, $ldx:literal, $accs:literal,
     $(($s0:literal, $s1:literal, $m0:literal, $m1:literal, $tdx:literal, $a:literal, $t:literal)),+) => {{
        let w: &mut [*const u8; GROUP] = $w;
        let [h0, h1, h2, h3] = w.map(|p| p.add(128));
        let buf: *mut u8 = $buf;
        std::arch::asm!(
            ".arch_extension i8mm",
            "3:",
            "ldr q0, [{l0}, #192]",
            "ldr q1, [{l1}, #192]",
            "ldr q2, [{l2}, #192]",
            "ldr q3, [{l3}, #192]",
            "movi v31.2d, #0",
            scale_differences!("v0", "v1", "v4", "v5", "v6", "v7", ["v8", "v9", "v10", "v11"]),
            scale_differences!("v2", "v3", "v4", "v5", "v6", "v7", ["v12", "v13", "v14", "v15"]),
            scale_vectors!("v8", "v12"),
            scale_vectors!("v9", "v13"),
            scale_vectors!("v10", "v14"),
            scale_vectors!("v11", "v15"),
            "sub {prm}, {prm}, #512",
            "movi v31.16b, #0xAA",
            "mov {n}, #2",
            "2:",
            decode_half!("l0", "l1", "h0", "h1", "bufa"),
            decode_half!("l2", "l3", "h2", "h3", "bufb"),
            "subs {n}, {n}, #1",
            "b.ne 2b",
            "sub {bufa}, {bufa}, #1024",
            "sub {bufb}, {bufb}, #1024",
            $(concat!(
                "movi ", $s0, ".2d, #0\n",
                "movi ", $s1, ".2d, #0\n",
                "movi ", $m0, ".2d, #0\n",
                "movi ", $m1, ".2d, #0\n",
            ),)+
            "mov {n}, #8",
            "2:",
            "ld1 {{v16.16b, v17.16b, v18.16b, v19.16b}}, [{bufa}], #64",
            "ld1 {{v20.16b, v21.16b, v22.16b, v23.16b}}, [{bufa}], #64",
            "ld1 {{v12.4s, v13.4s, v14.4s, v15.4s}}, [{prm}], #64",
            $(group_pair!($s0, $s1, $m0, $m1),)+
            "subs {n}, {n}, #1",
            "b.ne 2b",
            "sub {bufa}, {bufa}, #1024",
            "sub {prm}, {prm}, #512",
            // The rows' `d` (after their scales: `{hN}` points to them) as `[d_a, d_a, d_b, d_b]` per row pair.
            "ldr h12, [{h0}, #16]",
            "ldr h20, [{h1}, #16]",
            "ldr h13, [{h2}, #16]",
            "ldr h21, [{h3}, #16]",
            "zip1 v12.4h, v12.4h, v20.4h",
            "zip1 v13.4h, v13.4h, v21.4h",
            "fcvtl v12.4s, v12.4h",
            "fcvtl v13.4s, v13.4h",
            "zip1 v12.4s, v12.4s, v12.4s",
            "zip1 v13.4s, v13.4s, v13.4s",
            // The pairs' scales follow the quants and the sub-block sums (unused here) of the paired super-block.
            "add {q}, {q}, {sums}",
            $ldx,
            // acc = fma(acc, f32(isum), d * d_x), row pair 0 then 1.
            concat!("ld1 ", $accs, ", [{acc0}]"),
            row_pair_end!("v12", $(($m0, $tdx, $a, $t)),+),
            concat!("st1 ", $accs, ", [{acc0}]"),
            concat!("ld1 ", $accs, ", [{acc1}]"),
            row_pair_end!("v13", $(($m1, $tdx, $a, $t)),+),
            concat!("st1 ", $accs, ", [{acc1}]"),
            // The next blocks (the quants' pointers advanced by 128 bytes, the high bits' by 64).
            "add {l0}, {l0}, #82",
            "add {l1}, {l1}, #82",
            "add {l2}, {l2}, #82",
            "add {l3}, {l3}, #82",
            "add {h0}, {h0}, #146",
            "add {h1}, {h1}, #146",
            "add {h2}, {h2}, #146",
            "add {h3}, {h3}, #146",
            "subs {m}, {m}, #1",
            "b.ne 3b",
            l0 = inout(reg) w[0],
            l1 = inout(reg) w[1],
            l2 = inout(reg) w[2],
            l3 = inout(reg) w[3],
            h0 = inout(reg) h0 => _,
            h1 = inout(reg) h1 => _,
            h2 = inout(reg) h2 => _,
            h3 = inout(reg) h3 => _,
            q = inout(reg) $q => _,
            bufa = inout(reg) buf => _,
            bufb = inout(reg) buf.add(64) => _,
            prm = inout(reg) buf.add(1024) => _,
            acc0 = in(reg) $acc,
            acc1 = in(reg) ($acc).add(4),
            k128 = in(reg) 128usize,
            sums = in(reg) 32 * TP,
            m = inout(reg) $run => _,
            n = out(reg) _,
            out("v0") _, out("v1") _, out("v2") _, out("v3") _, out("v4") _, out("v5") _, out("v6") _, out("v7") _,
            out("v8") _, out("v9") _, out("v10") _, out("v11") _, out("v12") _, out("v13") _, out("v14") _,
            out("v15") _, out("v16") _, out("v17") _, out("v18") _, out("v19") _, out("v20") _, out("v21") _,
            out("v22") _, out("v23") _, out("v24") _, out("v25") _, out("v26") _, out("v27") _, out("v28") _,
            out("v29") _, out("v30") _, out("v31") _,
            options(nostack)
        );
    }};
}

/// `run` Q6_K super-blocks of the group `w` (pointers to the rows' blocks, advanced past them) with the `TP` token
/// pairs paired at `q` (`run` paired super-blocks), added to the group's accumulators `acc`.
///
/// # Safety
/// `run >= 1`; every pointer of `w` holds `run` whole Q6_K blocks; `q` holds `run` paired super-blocks of `TP`
/// pairs; the CPU has FEAT_I8MM.
#[inline(never)]
unsafe fn superblocks<const TP: usize>(run: usize, w: &mut [*const u8; GROUP], q: *const u8, acc: &mut Acc) {
    // Written by the `asm!` block before it reads them (through pointers only): the decoded weights, then the scale
    // differences.
    let mut buf = std::mem::MaybeUninit::<[uint8x16_t; 96]>::uninit();
    let (b, a) = (buf.as_mut_ptr() as *mut u8, acc.as_mut_ptr());
    match TP {
        1 => superblocks_asm!(
            run,
            w,
            q,
            b,
            a,
            "ld1r {{v8.2d}}, [{q}], #8",
            "{{v16.4s}}",
            ("v0", "v4", "v24", "v28", "v8", "v16", "v20")
        ),
        2 => superblocks_asm!(
            run,
            w,
            q,
            b,
            a,
            "ld2r {{v8.2d, v9.2d}}, [{q}], #16",
            "{{v16.4s, v17.4s}}",
            ("v0", "v4", "v24", "v28", "v8", "v16", "v20"),
            ("v1", "v5", "v25", "v29", "v9", "v17", "v21")
        ),
        3 => superblocks_asm!(
            run,
            w,
            q,
            b,
            a,
            "ld3r {{v8.2d, v9.2d, v10.2d}}, [{q}], #24",
            "{{v16.4s, v17.4s, v18.4s}}",
            ("v0", "v4", "v24", "v28", "v8", "v16", "v20"),
            ("v1", "v5", "v25", "v29", "v9", "v17", "v21"),
            ("v2", "v6", "v26", "v30", "v10", "v18", "v22")
        ),
        _ => superblocks_asm!(
            run,
            w,
            q,
            b,
            a,
            "ld4r {{v8.2d, v9.2d, v10.2d, v11.2d}}, [{q}], #32",
            "{{v16.4s, v17.4s, v18.4s, v19.4s}}",
            ("v0", "v4", "v24", "v28", "v8", "v16", "v20"),
            ("v1", "v5", "v25", "v29", "v9", "v17", "v21"),
            ("v2", "v6", "v26", "v30", "v10", "v18", "v22"),
            ("v3", "v7", "v27", "v31", "v11", "v19", "v23")
        ),
    }
}
