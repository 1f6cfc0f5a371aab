//! armv7 NEON kernels over four weight rows at once, for Q4_0 and Q8_0 weights: a tile kernel (`neon-4x4`: four
//! rows by up to four tokens, one pass over the four rows per token; Q4_0 takes a whole tile's tokens in pairs) for
//! prefill and its one-token entry (a GEMV over a whole run of rows) for decode. All passes do the same integer and
//! f32 steps per (row, token), so decode equals batched prefill bit for bit.
//!
//! One pass reads each activation block once for four rows and keeps the four rows' results in the four f32 lanes
//! of one vector: per block, each row's integer dot product is reduced to one i32 (pairwise adds), the four sums
//! are converted at once and `acc += f32(isum) * (d_w * d_x)` (`vmul` then `vmla`, not fused) updates all four rows
//! with one instruction. `d_x` and the activation block sums come from the prepared activations
//! ([`ActivationRows::scales`], [`ActivationRows::sums`]); the four weight scales are widened together by one
//! `vcvt.f32.f16`. The product of two f16 values is exact in f32 (and never subnormal), so the NEON unit's
//! flush-to-zero cannot change it. Lanes never mix in the float arithmetic, so a row's result does not depend on
//! the other rows of its group: a partial group repeats its last row in the unused lanes (dropped).
//!
//! Integer sums (exact, so the order is free; no i16 lane can overflow, each kernel says why):
//! - Q4_0: the nibbles are used unsigned (0..=15: one `vand`, one `vshr` per 16 weights) and the offset of 8 comes
//!   off the four rows' block sums at once as `8 * sum(x)`; the two-token pass, which decodes each weight once for
//!   both tokens, uses `nibble - 8` directly (no activation sums to load).
//! - Q8_0: `vmull`/`vmlal` pairs widened with `vpaddl`/`vpadal`.
//!
//! The blocks use q0-q15 (NEON always has 32 d registers; the crate also builds for armv7 targets without NEON,
//! where these kernels are never handed out); the compiler saves the callee-saved `d8`-`d15` around them. Handed
//! out only when [`super::armv7_neon::available`].

use super::tile_common::{check as tile_check, toks, Layout, Tok, L_Q4_0, L_Q8_0, Q8_0_QS};
use super::{ActivationRows, GemvFn, TileKernel, TileShape};
use crate::ggml_type::GgmlType;

/// Weight rows per pass (the f32 lanes of one vector).
const ROWS: usize = 4;
/// Most tokens per tile call.
const TOKENS: usize = 4;

/// A four-row pass: `nb` blocks of each of the four rows `w` against one activation row (`x` at its first block's
/// quants, `xs` its f32 block scales, `xsum` its block sums); the four rows' dot products into `out[0..4]`.
type RowsFn = unsafe fn(nb: usize, w: [*const u8; ROWS], x: *const u8, xs: *const f32, xsum: *const i32, out: *mut f32);

/// The tile kernel (`neon-4x4`) for weights of type `ty`, if there is one. Only call when NEON and VFPv4 are
/// available.
pub fn tile(ty: GgmlType) -> Option<TileKernel> {
    let run: super::TileFn = match ty {
        GgmlType::Q4_0 => tile_q4_0,
        GgmlType::Q8_0 => tile_q8_0,
        _ => return None,
    };
    Some(TileKernel { run, max_rows: ROWS, max_tokens: TOKENS })
}

/// The one-token entry of [`tile`]'s kernel for `ty` (bit-identical to it). Only call when NEON and VFPv4 are
/// available.
pub fn gemv(ty: GgmlType) -> Option<GemvFn> {
    Some(match ty {
        GgmlType::Q4_0 => gemv_q4_0,
        GgmlType::Q8_0 => gemv_q8_0,
        _ => return None,
    })
}

fn tile_q4_0(n: usize, w: &[u8], wrb: usize, x: &ActivationRows<'_>, first: usize, shape: TileShape, out: &mut [f32]) {
    run_tile(&L_Q4_0, q4_0_rows4, Some(q4_0_rows4_tokens2), n, w, wrb, x, first, shape, out)
}

fn tile_q8_0(n: usize, w: &[u8], wrb: usize, x: &ActivationRows<'_>, first: usize, shape: TileShape, out: &mut [f32]) {
    run_tile(&L_Q8_0, q8_0_rows4, None, n, w, wrb, x, first, shape, out)
}

fn gemv_q4_0(n: usize, w: &[u8], wrb: usize, x: &ActivationRows<'_>, out: &mut [f32]) {
    run_gemv(&L_Q4_0, q4_0_rows4, n, w, wrb, x, out)
}

fn gemv_q8_0(n: usize, w: &[u8], wrb: usize, x: &ActivationRows<'_>, out: &mut [f32]) {
    run_gemv(&L_Q8_0, q8_0_rows4, n, w, wrb, x, out)
}

/// Pointers to the four rows `r0 .. r0 + 4` of `w`, the rows at or past `rows` repeating row `rows - 1`.
fn group(w: &[u8], w_row_bytes: usize, r0: usize, rows: usize) -> [*const u8; ROWS] {
    std::array::from_fn(|l| w[(r0 + l).min(rows - 1) * w_row_bytes..].as_ptr())
}

/// One four-row pass against token `t` (`nb >= 1`).
///
/// # Safety
/// Every row of `w` and the token's activation row, scales and sums hold `nb` whole blocks of the format of `f`;
/// NEON and VFPv4 are available.
#[inline(always)]
unsafe fn pass(f: RowsFn, nb: usize, w: [*const u8; ROWS], t: &Tok) -> [f32; ROWS] {
    let mut out = [0f32; ROWS];
    f(nb, w, t.x.add(Q8_0_QS), t.s, t.sum, out.as_mut_ptr());
    out
}

/// A four-row pass against two activation rows at once (the arithmetic of a [`RowsFn`] for each): `nb` blocks of
/// the rows `w_row_bytes` apart from `w` against the Q8_0 rows at `x` and `x + x_row_bytes` (at their first
/// blocks); results `[token][row]` into `out[0..8]`.
type Rows2Fn = unsafe fn(nb: usize, w: *const u8, w_row_bytes: usize, x: *const u8, x_row_bytes: usize, out: *mut f32);

/// The tile entry: the tokens of a whole four-row tile in pairs by `f2` (when the format has one), the others by
/// one pass `f` over the (up to) four rows each.
#[allow(clippy::too_many_arguments)] // a `TileFn`'s arguments plus the format
fn run_tile(
    l: &Layout,
    f: RowsFn,
    f2: Option<Rows2Fn>,
    n: usize,
    w: &[u8],
    w_row_bytes: usize,
    x: &ActivationRows<'_>,
    first: usize,
    shape: TileShape,
    out: &mut [f32],
) {
    let nb = tile_check(n, l, (ROWS, TOKENS), w, w_row_bytes, x, first, shape, out);
    if nb == 0 {
        for r in 0..shape.rows {
            out[r * shape.ld..r * shape.ld + shape.tokens].fill(0.0);
        }
        return;
    }
    let rows = group(w, w_row_bytes, 0, shape.rows);
    let (per_row, x0) = (x.blocks_per_row, toks_one(x, first)[0]);
    let mut t0 = 0;
    if let Some(f2) = f2.filter(|_| shape.rows == ROWS) {
        while t0 + 2 <= shape.tokens {
            let mut res = [0f32; 2 * ROWS];
            // SAFETY: as below, for tokens `t0` and `t0 + 1` and the four (distinct, whole) rows of the tile.
            unsafe { f2(nb, w.as_ptr(), w_row_bytes, x0.x.add(t0 * x.row_bytes), x.row_bytes, res.as_mut_ptr()) };
            for (i, v) in res.iter().enumerate() {
                out[(i % ROWS) * shape.ld + t0 + i / ROWS] = *v;
            }
            t0 += 2;
        }
    }
    for t in t0..shape.tokens {
        // SAFETY: `tile_check` verified that the tile's rows (the group repeats in-range rows) and the tokens'
        // activation rows (`row_bytes` apart), scales and sums (`nb` per token) hold `nb` whole blocks; `tile` hands
        // the kernel out only when NEON and VFPv4 are available (the caller's contract).
        let res = unsafe {
            let tok = Tok { x: x0.x.add(t * x.row_bytes), s: x0.s.add(t * per_row), sum: x0.sum.add(t * per_row) };
            pass(f, nb, rows, &tok)
        };
        for (r, v) in res.iter().take(shape.rows).enumerate() {
            out[r * shape.ld + t] = *v;
        }
    }
}

/// The pointers of token `t` alone (checked by the caller's `tile_check`).
fn toks_one(x: &ActivationRows<'_>, t: usize) -> [Tok; 1] {
    toks::<1>(x, t)
}

/// The GEMV entry: `out.len()` rows against token 0 of `x`, four rows per pass.
fn run_gemv(l: &Layout, f: RowsFn, n: usize, w: &[u8], w_row_bytes: usize, x: &ActivationRows<'_>, out: &mut [f32]) {
    let rows = out.len();
    if rows == 0 {
        return;
    }
    let one = TileShape { rows: 1, tokens: 1, ld: 1 };
    let nb = tile_check(n, l, (ROWS, TOKENS), w, w_row_bytes, x, 0, one, out);
    assert!(w.len() >= (rows - 1) * w_row_bytes + nb * l.w_bytes, "weight rows too short for {rows} rows");
    if nb == 0 {
        out.fill(0.0);
        return;
    }
    let [tok] = toks_one(x, 0);
    let xq = tok.x.wrapping_add(Q8_0_QS);
    // Whole groups: the kernel writes the four results in place.
    let whole = rows / ROWS * ROWS;
    for r0 in (0..whole).step_by(ROWS) {
        let p = w[r0 * w_row_bytes..].as_ptr();
        // SAFETY: checked above: rows `r0 .. r0 + 4` (below `rows`) and the activation row with its scales and sums
        // hold `nb` whole blocks, `out` has the four places; NEON and VFPv4 as in `run_tile`.
        unsafe {
            let ptrs = [p, p.add(w_row_bytes), p.add(2 * w_row_bytes), p.add(3 * w_row_bytes)];
            f(nb, ptrs, xq, tok.s, tok.sum, out[r0..r0 + ROWS].as_mut_ptr());
        }
    }
    if whole < rows {
        // SAFETY: as above; the group repeats in-range rows.
        let res = unsafe { pass(f, nb, group(w, w_row_bytes, whole, rows), &tok) };
        out[whole..].copy_from_slice(&res[..rows - whole]);
    }
}

/// `asm!` with all sixteen q registers clobbered and no stack use; the arguments are the templates and operands
/// (without a trailing comma).
macro_rules! neon_asm_all {
    ($($args:tt)*) => {
        core::arch::asm!(
            ".fpu neon-vfpv4",
            $($args)*,
            out("q0") _, out("q1") _, out("q2") _, out("q3") _, out("q4") _, out("q5") _, out("q6") _, out("q7") _,
            out("q8") _, out("q9") _, out("q10") _, out("q11") _, out("q12") _, out("q13") _, out("q14") _,
            out("q15") _,
            options(nostack)
        )
    };
}

/// One Q4_0 row `$r` of a block: its f16 scale into lane `$r` of `d11`, its nibbles into `q$a` (high) and `q$b`
/// (low), the 32 products summed into i16 lanes of `q$c` (four products a lane) and pairwise into `d(4 + $r)`.
macro_rules! q4_0_row {
    ($r:literal, $w:literal, $a0:literal, $a1:literal, $b0:literal, $b1:literal, $c0:literal, $c1:literal,
     $qa:literal, $qb:literal, $qc:literal, $dr:literal) => {
        concat!(
            "vld1.16 {{d11[",
            $r,
            "]}}, [{",
            $w,
            "}]!\n",
            "vld1.8 {{",
            $a0,
            "-",
            $a1,
            "}}, [{",
            $w,
            "}]!\n",
            "vand ",
            $qb,
            ", ",
            $qa,
            ", q14\n",
            "vshr.u8 ",
            $qa,
            ", ",
            $qa,
            ", #4\n",
            "vmull.s8 ",
            $qc,
            ", ",
            $b0,
            ", d0\n",
            "vmlal.s8 ",
            $qc,
            ", ",
            $b1,
            ", d1\n",
            "vmlal.s8 ",
            $qc,
            ", ",
            $a0,
            ", d2\n",
            "vmlal.s8 ",
            $qc,
            ", ",
            $a1,
            ", d3\n",
            "vpadd.i16 ",
            $dr,
            ", ",
            $c0,
            ", ",
            $c1,
            "\n",
        )
    };
}

/// Four Q4_0 rows (18-byte blocks: f16 `d`, 16 bytes of nibbles, value `i` in the low nibble of byte `i`, value
/// `16 + i` in the high one) against one Q8_0 activation row.
///
/// No i16 overflow: a lane of the products sums 4, then (pairwise) 8 and 16 products of at most 15 * 128 in
/// magnitude: 30720. The offset: `Σ (nibble - 8) x = Σ nibble x - 8 Σ x` (i32, exact).
///
/// # Safety
/// `nb >= 1`; each `w[r]` points to `nb` blocks of 18 bytes; `x` to the quants of the first of `nb` Q8_0 blocks
/// (34 bytes apart); `xs` and `xsum` to `nb` values; `out` to 4 writable f32; NEON and VFPv4 are available.
unsafe fn q4_0_rows4(nb: usize, w: [*const u8; ROWS], x: *const u8, xs: *const f32, xsum: *const i32, out: *mut f32) {
    neon_asm_all!(
        "vmov.i8 q14, #0x0f",
        "vmov.i32 q15, #8",
        "vmov.i32 q13, #0",
        "2:",
        "vld1.8 {{d0-d3}}, [{x}], {xstep}",
        "vld1.32 {{d10[0]}}, [{xs}]!",
        "vld1.32 {{d10[1]}}, [{xsum}]!",
        q4_0_row!("0", "w0", "d16", "d17", "d18", "d19", "d20", "d21", "q8", "q9", "q10", "d4"),
        q4_0_row!("1", "w1", "d14", "d15", "d22", "d23", "d24", "d25", "q7", "q11", "q12", "d5"),
        q4_0_row!("2", "w2", "d16", "d17", "d18", "d19", "d20", "d21", "q8", "q9", "q10", "d6"),
        q4_0_row!("3", "w3", "d14", "d15", "d22", "d23", "d24", "d25", "q7", "q11", "q12", "d7"),
        "vpadd.i16 d8, d4, d5",      // rows 0, 1: two lanes each
        "vpadd.i16 d9, d6, d7",      // rows 2, 3
        "vpaddl.s16 q4, q4",         // one i32 per row
        "vmls.i32 q4, q15, d10[1]",  // - 8 Σ x
        "vcvt.f32.f16 q6, d11",      // d_w of the four rows
        "vcvt.f32.s32 q4, q4",
        "vmul.f32 q6, q6, d10[0]",   // d_w d_x
        "vmla.f32 q13, q4, q6",
        "subs {n}, {n}, #1",
        "bne 2b",
        "vst1.32 {{d26-d27}}, [{out}]",
        w0 = inout(reg) w[0] => _,
        w1 = inout(reg) w[1] => _,
        w2 = inout(reg) w[2] => _,
        w3 = inout(reg) w[3] => _,
        x = inout(reg) x => _,
        xs = inout(reg) xs => _,
        xsum = inout(reg) xsum => _,
        xstep = in(reg) 34usize,
        n = inout(reg) nb => _,
        out = in(reg) out
    );
}

/// One Q4_0 row `$r` of a block against two tokens: its f16 scale into lane `$r` of `d1`, its nibbles as
/// `nibble - 8` (the XOR with 0x88 and arithmetic shifts) into `q4` (high) and `q5` (low), the products with each
/// token summed into i16 lanes of `q6` and pairwise into `$da` (token A: quants in `d16-d19`) and `$db` (token B:
/// `d20-d23`); the pointer then steps by `$step` (to the next row, or back to the first row's next block).
macro_rules! q4_0_row_tokens2 {
    ($r:literal, $step:literal, $da:literal, $db:literal) => {
        concat!(
            "vld1.16 {{d1[",
            $r,
            "]}}, [{w}]!
",
            "vld1.8 {{d8-d9}}, [{w}], {",
            $step,
            "}
",
            "veor q4, q4, q7
",
            "vshl.i8 q5, q4, #4
",
            "vshr.s8 q4, q4, #4
", // values 16..32
            "vshr.s8 q5, q5, #4
", // values 0..16
            "vmull.s8 q6, d10, d16
",
            "vmlal.s8 q6, d11, d17
",
            "vmlal.s8 q6, d8, d18
",
            "vmlal.s8 q6, d9, d19
",
            "vpadd.i16 ",
            $da,
            ", d12, d13
",
            "vmull.s8 q6, d10, d20
",
            "vmlal.s8 q6, d11, d21
",
            "vmlal.s8 q6, d8, d22
",
            "vmlal.s8 q6, d9, d23
",
            "vpadd.i16 ",
            $db,
            ", d12, d13
",
        )
    };
}

/// Four whole Q4_0 rows against two Q8_0 activation rows: for each token exactly the integer block sums (exact,
/// so equal however formed) and the f32 steps of [`q4_0_rows4`], with the weights' loads, nibble decoding and
/// scale conversion shared. The nibbles are decoded signed here (`nibble - 8`), which needs no activation sums: no
/// i16 overflow, as a lane sums at most 16 products of at most 8 * 128 (16384). The activation scales are the
/// blocks' f16 values widened by `vcvt` (exact, so equal to the prepared ones).
///
/// # Safety
/// `nb >= 1`; the four rows at `w + r * w_row_bytes` hold `nb` blocks of 18 bytes, the two activation rows at `x`
/// and `x + x_row_bytes` `nb` Q8_0 blocks; `out` points to 8 writable f32; NEON and VFPv4 are available.
unsafe fn q4_0_rows4_tokens2(
    nb: usize,
    w: *const u8,
    w_row_bytes: usize,
    x: *const u8,
    x_row_bytes: usize,
    out: *mut f32,
) {
    // Pointer steps (wrapping: some are negative): a row's quants to the next row's block, the last row's quants to
    // the first row's next block; token A's quants to token B's block, token B's to token A's next block.
    let w_next = w_row_bytes.wrapping_sub(2);
    let w_back = 16usize.wrapping_sub(3 * w_row_bytes);
    let x_next = x_row_bytes.wrapping_sub(2);
    let x_back = 32usize.wrapping_sub(x_row_bytes);
    neon_asm_all!(
        "vmov.i8 q7, #0x88",
        "vmov.i32 q2, #0",
        "vmov.i32 q3, #0",
        "2:",
        "vld1.16 {{d0[0]}}, [{x}]!",
        "vld1.8 {{d16-d19}}, [{x}], {x_next}",
        "vld1.16 {{d0[1]}}, [{x}]!",
        "vld1.8 {{d20-d23}}, [{x}], {x_back}",
        "vcvt.f32.f16 q1, d0", // d_x of the two tokens in d2
        q4_0_row_tokens2!("0", "w_next", "d24", "d26"),
        q4_0_row_tokens2!("1", "w_next", "d25", "d27"),
        "vpadd.i16 d28, d24, d25", // token A, rows 0, 1
        "vpadd.i16 d30, d26, d27", // token B
        q4_0_row_tokens2!("2", "w_next", "d24", "d26"),
        q4_0_row_tokens2!("3", "w_back", "d25", "d27"),
        "vpadd.i16 d29, d24, d25", // rows 2, 3
        "vpadd.i16 d31, d26, d27",
        "vpaddl.s16 q14, q14", // one i32 per row, token A
        "vpaddl.s16 q15, q15", // token B
        "vcvt.f32.f16 q12, d1", // d_w of the four rows
        "vmul.f32 q13, q12, d2[1]",
        "vmul.f32 q12, q12, d2[0]",
        "vcvt.f32.s32 q14, q14",
        "vcvt.f32.s32 q15, q15",
        "vmla.f32 q2, q14, q12",
        "vmla.f32 q3, q15, q13",
        "subs {n}, {n}, #1",
        "bne 2b",
        "vst1.32 {{d4-d7}}, [{out}]",
        w = inout(reg) w => _,
        w_next = in(reg) w_next,
        w_back = in(reg) w_back,
        x = inout(reg) x => _,
        x_next = in(reg) x_next,
        x_back = in(reg) x_back,
        n = inout(reg) nb => _,
        out = in(reg) out
    );
}

/// One Q8_0 row `$r` of a block: its f16 scale into lane `$r` of `d11`, its quants into `$w0-$w3`, the products in
/// two i16 vectors (two products a lane) widened into `q$c` and pairwise into `d(4 + $r)`.
macro_rules! q8_0_row {
    ($r:literal, $w:literal, $w0:literal, $w1:literal, $w2:literal, $w3:literal, $qc:literal, $c0:literal,
     $c1:literal, $qd:literal, $dr:literal) => {
        concat!(
            "vld1.16 {{d11[",
            $r,
            "]}}, [{",
            $w,
            "}]!\n",
            "vld1.8 {{",
            $w0,
            "-",
            $w3,
            "}}, [{",
            $w,
            "}]!\n",
            "vmull.s8 ",
            $qc,
            ", ",
            $w0,
            ", d0\n",
            "vmlal.s8 ",
            $qc,
            ", ",
            $w1,
            ", d1\n",
            "vmull.s8 ",
            $qd,
            ", ",
            $w2,
            ", d2\n",
            "vmlal.s8 ",
            $qd,
            ", ",
            $w3,
            ", d3\n",
            "vpaddl.s16 ",
            $qc,
            ", ",
            $qc,
            "\n",
            "vpadal.s16 ",
            $qc,
            ", ",
            $qd,
            "\n",
            "vpadd.i32 ",
            $dr,
            ", ",
            $c0,
            ", ",
            $c1,
            "\n",
        )
    };
}

/// Four Q8_0 rows (34-byte blocks: f16 `d`, 32 quants) against one Q8_0 activation row.
///
/// No i16 overflow: activations are in -127..=127 (the quantizer clamps), weights in -128..=127, so two products
/// are at most 2 * 128 * 127 = 32512 in magnitude.
///
/// # Safety
/// As [`q4_0_rows4`], with blocks of 34 bytes in each `w[r]` (`xsum` unused).
unsafe fn q8_0_rows4(nb: usize, w: [*const u8; ROWS], x: *const u8, xs: *const f32, _xsum: *const i32, out: *mut f32) {
    neon_asm_all!(
        "vmov.i32 q7, #0",
        "2:",
        "vld1.8 {{d0-d3}}, [{x}], {xstep}",
        "vld1.32 {{d10[0]}}, [{xs}]!",
        q8_0_row!("0", "w0", "d16", "d17", "d18", "d19", "q10", "d20", "d21", "q11", "d4"),
        q8_0_row!("1", "w1", "d24", "d25", "d26", "d27", "q14", "d28", "d29", "q15", "d5"),
        q8_0_row!("2", "w2", "d16", "d17", "d18", "d19", "q10", "d20", "d21", "q11", "d6"),
        q8_0_row!("3", "w3", "d24", "d25", "d26", "d27", "q14", "d28", "d29", "q15", "d7"),
        "vpadd.i32 d8, d4, d5", // one i32 per row
        "vpadd.i32 d9, d6, d7",
        "vcvt.f32.f16 q6, d11", // d_w of the four rows
        "vcvt.f32.s32 q4, q4",
        "vmul.f32 q6, q6, d10[0]", // d_w d_x
        "vmla.f32 q7, q4, q6",
        "subs {n}, {n}, #1",
        "bne 2b",
        "vst1.32 {{d14-d15}}, [{out}]",
        w0 = inout(reg) w[0] => _,
        w1 = inout(reg) w[1] => _,
        w2 = inout(reg) w[2] => _,
        w3 = inout(reg) w[3] => _,
        x = inout(reg) x => _,
        xs = inout(reg) xs => _,
        xstep = in(reg) 34usize,
        n = inout(reg) nb => _,
        out = in(reg) out
    );
}

#[cfg(test)]
mod tests {
    //! The GEMV entry against the tile as batched prefill runs it, bit for bit; exactness at the extreme quants;
    //! the slice checks. (The shared tests in `simd::tests` compare both with the scalar reference.) Run only where
    //! the kernels exist.

    use super::super::armv7_neon::available;
    use super::super::{prepare_activations, scales_per_block, tests::values};
    use super::*;
    use crate::quant;

    /// Quantized weight rows (row 2 all zero, row 5 at the f16 limits) and activation rows with their prepared
    /// scales and sums.
    struct Case {
        wq: Vec<u8>,
        w_row_bytes: usize,
        xq: Vec<u8>,
        x_row_bytes: usize,
        nb: usize,
        scales: Vec<f32>,
        sums: Vec<i32>,
    }

    impl Case {
        fn new(ty: GgmlType, n: usize, rows: usize, tokens: usize, seed: u64, scale: f32) -> Case {
            let w_row_bytes = ty.row_bytes(n as u64).unwrap() as usize;
            let mut wq = vec![0u8; w_row_bytes * rows];
            for (r, row) in wq.chunks_exact_mut(w_row_bytes).enumerate() {
                let w = match r {
                    2 => vec![0.0; n],
                    5 => (0..n).map(|i| if i % 3 == 0 { 65000.0 } else { -65000.0 }).collect(),
                    _ => values(seed * 131 + r as u64, n, scale),
                };
                quant::quantize_row(ty, &w, row).unwrap();
            }
            let xt = quant::vec_dot_type(ty);
            assert_eq!(scales_per_block(xt), 1);
            let x_row_bytes = xt.row_bytes(n as u64).unwrap() as usize;
            let nb = n / 32;
            let mut xq = vec![0u8; x_row_bytes * tokens];
            let (mut scales, mut sums) = (vec![0f32; tokens * nb], vec![0i32; tokens * nb]);
            for t in 0..tokens {
                let row = &mut xq[t * x_row_bytes..(t + 1) * x_row_bytes];
                quant::quantize_row(xt, &values(seed * 977 + 50 + t as u64, n, scale), row).unwrap();
                prepare_activations(xt, row, &mut scales[t * nb..(t + 1) * nb], &mut sums[t * nb..(t + 1) * nb]);
            }
            Case { wq, w_row_bytes, xq, x_row_bytes, nb, scales, sums }
        }

        fn activations(&self) -> ActivationRows<'_> {
            ActivationRows {
                bytes: &self.xq,
                row_bytes: self.x_row_bytes,
                blocks_per_row: self.nb,
                scales_per_block: 1,
                scales: &self.scales,
                sums: &self.sums,
            }
        }
    }

    /// `sum |w_i * x_i|` of the dequantized rows: the scale of the rounding differences between kernels.
    fn magnitude(ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
        let (mut wf, mut xf) = (vec![0f32; n], vec![0f32; n]);
        quant::dequantize_row(ty, w, &mut wf).unwrap();
        quant::dequantize_row(quant::vec_dot_type(ty), x, &mut xf).unwrap();
        wf.iter().zip(&xf).map(|(a, b)| (a * b).abs()).sum()
    }

    /// The GEMV entry gives bit for bit the results of the tile run as batched prefill runs it (tiles of four rows
    /// by four tokens, the leftovers in partial tiles), for every row count 1..=9 and 17, several row lengths and
    /// every token; and it agrees with the scalar reference.
    #[test]
    fn armv7_gemv_equals_the_tile_bit_for_bit() {
        if !available() {
            return;
        }
        let mut checked = 0;
        for ty in [GgmlType::Q4_0, GgmlType::Q8_0] {
            let (k, g) = (tile(ty).unwrap(), gemv(ty).unwrap());
            for (seed, n) in [(1u64, 32usize), (2, 96), (3, 256), (4, 1536)] {
                for scale in [1e-3f32, 1.0, 50.0] {
                    let tokens = 6;
                    let case = Case::new(ty, n, 17, tokens, seed, scale);
                    let x = case.activations();
                    let mut batched = vec![f32::NAN; 17 * tokens];
                    for r in (0..17).step_by(ROWS) {
                        for t in (0..tokens).step_by(TOKENS) {
                            let shape =
                                TileShape { rows: ROWS.min(17 - r), tokens: TOKENS.min(tokens - t), ld: tokens };
                            let w = &case.wq[r * case.w_row_bytes..];
                            (k.run)(n, w, case.w_row_bytes, &x, t, shape, &mut batched[r * tokens + t..]);
                        }
                    }
                    for rows in (1..=9).chain([17]) {
                        for t in 0..tokens {
                            let mut out = vec![f32::NAN; rows];
                            g(n, &case.wq[..rows * case.w_row_bytes], case.w_row_bytes, &x.token(t), &mut out);
                            for (r, got) in out.iter().enumerate() {
                                let want = batched[r * tokens + t];
                                assert_eq!(
                                    want.to_bits(),
                                    got.to_bits(),
                                    "{ty}: n={n} scale {scale} rows {rows} row {r} token {t}: tile {want} gemv {got}"
                                );
                                let wr = &case.wq[r * case.w_row_bytes..(r + 1) * case.w_row_bytes];
                                let xr = &case.xq[t * case.x_row_bytes..(t + 1) * case.x_row_bytes];
                                let reference = quant::vec_dot(ty, n, wr, xr).unwrap();
                                let tol = 2e-5 * magnitude(ty, n, wr, xr) + 1e-6;
                                assert!((reference - got).abs() <= tol, "{ty}: reference {reference} gemv {got}");
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        eprintln!("{checked} armv7 gemv results checked");
    }

    /// At the extreme quants (Q4_0: every nibble 0 or 15; Q8_0: weights -128 and 127; activations -127 or 127;
    /// unit scales) the integer sums (the offset of 8 taken off Q4_0's, the widest i16 lanes) give exactly the
    /// reference, through both entries.
    #[test]
    fn armv7_rows_are_exact_at_the_extreme_quants() {
        if !available() {
            return;
        }
        let one = 0x3C00u16.to_le_bytes();
        let n = 256;
        for (ty, fills) in
            [(GgmlType::Q4_0, [0x00u8, 0xFF, 0x0F, 0xF0, 0x00]), (GgmlType::Q8_0, [0x80, 0x7F, 0x80, 0x7F, 0x80])]
        {
            let bb = ty.block_bytes();
            let block = |fill: u8| {
                let mut b = vec![fill; bb];
                b[..2].copy_from_slice(&one);
                b.repeat(n / 32)
            };
            let wq: Vec<u8> = fills.iter().flat_map(|&f| block(f)).collect();
            let rb = bb * n / 32;
            for q in [-127i8, 127] {
                let mut xb = [q as u8; 34];
                xb[..2].copy_from_slice(&one);
                let xq = xb.repeat(n / 32);
                let (mut scales, mut sums) = (vec![0f32; n / 32], vec![0i32; n / 32]);
                prepare_activations(GgmlType::Q8_0, &xq, &mut scales, &mut sums);
                let x = ActivationRows {
                    bytes: &xq,
                    row_bytes: xq.len(),
                    blocks_per_row: n / 32,
                    scales_per_block: 1,
                    scales: &scales,
                    sums: &sums,
                };
                let mut by_gemv = vec![f32::NAN; 5];
                gemv(ty).unwrap()(n, &wq, rb, &x, &mut by_gemv);
                let mut by_tile = vec![f32::NAN; 4];
                (tile(ty).unwrap().run)(n, &wq, rb, &x, 0, TileShape { rows: 4, tokens: 1, ld: 1 }, &mut by_tile);
                for r in 0..5 {
                    let want = quant::vec_dot(ty, n, &wq[r * rb..(r + 1) * rb], &xq).unwrap();
                    assert_eq!(want, by_gemv[r], "{ty} gemv row {r} activations {q}");
                    if r < 4 {
                        assert_eq!(want, by_tile[r], "{ty} tile row {r} activations {q}");
                    }
                    assert!(want != 0.0);
                }
            }
        }
    }

    /// A GEMV call checks its slices once: too short weights panic instead of reading past them.
    #[test]
    #[should_panic(expected = "weight rows too short")]
    fn armv7_gemv_rejects_short_weights() {
        // (The check comes before any NEON instruction, so this runs on every CPU.)
        let case = Case::new(GgmlType::Q8_0, 64, 3, 1, 1, 1.0);
        let mut out = vec![0f32; 4];
        gemv(GgmlType::Q8_0).unwrap()(64, &case.wq, case.w_row_bytes, &case.activations(), &mut out);
    }
}
