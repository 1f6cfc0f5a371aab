//! The aarch64 Q6_K tile without `sdot` (four weight rows by up to eight tokens), for `aarch64_neon_tiles.rs`'s
//! kernel table; the `sdot` one is in `aarch64_neon_tiles_sdot_k.rs` (same float steps, bit-identical results).
//!
//! Q6_K `{u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}` against Q8_K `{f32 d; i8 qs[256]; i16 bsums[16]}`: lane `r`
//! of a token's accumulator gets `fma(acc, f32(isum_r), d_r * d_x)` per block, where `isum_r` is the sum over the 16
//! groups of 16 values of the group's signed scale times its integer dot product (weights -32..=31). Each weight
//! block of the four rows is decoded once per tile and multiplied with every token.
//!
//! A group's products (at most 32 * 128 = 4096 in magnitude) are summed in i16 lanes four at a time
//! (16384) and widened to i32 before the rest of the group is added.

use std::arch::aarch64::*;

use super::aarch64_neon_tiles::{each_token, row_scales, Tile, Tok};

/// Rows per tile.
const ROWS: usize = 4;

/// The Q6_K tile (see the module comment).
pub(super) struct Q6K;

impl Tile for Q6K {
    const BLOCK: usize = 256;
    const W_BYTES: usize = 210;
    const X_BYTES: usize = 292;
    const SPB: usize = 0;
    #[inline(always)]
    unsafe fn tile<const SDOT: bool, const NT: usize>(
        nb: usize,
        w: [*const u8; ROWS],
        t: &[Tok; NT],
    ) -> [[f32; ROWS]; NT] {
        if SDOT {
            super::aarch64_neon_tiles_sdot_k::q6_k_tile::<NT>(nb, w, t)
        } else {
            q6_k_tile::<NT>(nb, w, t)
        }
    }
}

/// Four of the 16 groups of 16 weights of the Q6_K block at `wb` as signed bytes: for `(half, part)`, groups
/// `8 * half + 2 * k + part` for `k = 0..4` (the values `128 * half + 32 * k + 16 * part ..` + 16).
///
/// Each six-bit quant `q` is assembled with one shift-and-insert (`sli`/`sri`: its nibble and its two high bits,
/// plus two bits of a neighbour above them) and sign-extended from bit 5 (`shl` 2, `sshr` 2); the high bit of each
/// bit pair of `qh` is flipped first, so that the sign extension of `q ^ 32` gives `q - 32`.
#[inline(always)]
unsafe fn decode(wb: *const u8, half: usize, part: usize) -> [int8x16_t; 4] {
    let (ql, qh) = (wb.add(64 * half + 16 * part), wb.add(128 + 32 * half + 16 * part));
    let (a, b) = (vld1q_u8(ql), vld1q_u8(ql.add(32)));
    let h = veorq_u8(vld1q_u8(qh), vdupq_n_u8(0xAA));
    let h2 = vshrq_n_u8::<2>(h);
    let sext = |v: uint8x16_t| vshrq_n_s8::<2>(vreinterpretq_s8_u8(vshlq_n_u8::<2>(v)));
    [
        // Low nibbles of `a` with bits 0..2 of `h`; of `b` with bits 2..4; high nibbles of `a` with bits 4..6;
        // of `b` with bits 6..8.
        sext(vsliq_n_u8::<4>(a, h)),
        sext(vsliq_n_u8::<4>(b, h2)),
        sext(vsriq_n_u8::<4>(h, a)),
        sext(vsriq_n_u8::<4>(h2, b)),
    ]
}

/// The four rows' 16 group scales as i32 lanes: element `g` = `[scale_g of row 0, .., of row 3]`.
#[inline(always)]
pub(super) unsafe fn group_scales(wb: &[*const u8; ROWS]) -> [int32x4_t; 16] {
    let s = wb.map(|p| vld1q_s8(p.add(192) as *const i8));
    // Interleave bytes, then pairs: [r0 r1 r2 r3] per group, four groups per vector.
    let (ab, cd) = ([vzip1q_s8(s[0], s[1]), vzip2q_s8(s[0], s[1])], [vzip1q_s8(s[2], s[3]), vzip2q_s8(s[2], s[3])]);
    let mut out = [vdupq_n_s32(0); 16];
    for h in 0..2 {
        let (x, y) = (vreinterpretq_s16_s8(ab[h]), vreinterpretq_s16_s8(cd[h]));
        for (k, v) in [vzip1q_s16(x, y), vzip2q_s16(x, y)].into_iter().enumerate() {
            let v = vreinterpretq_s8_s16(v);
            let (lo, hi) = (vmovl_s8(vget_low_s8(v)), vmovl_high_s8(v));
            let g = 8 * h + 4 * k;
            out[g] = vmovl_s16(vget_low_s16(lo));
            out[g + 1] = vmovl_high_s16(lo);
            out[g + 2] = vmovl_s16(vget_low_s16(hi));
            out[g + 3] = vmovl_high_s16(hi);
        }
    }
    out
}

/// `acc + sc * isum` without `sdot`, where lane `r` of `isum` is the integer dot product of row `r`'s 16 weights
/// `q[r]` with the 16 activations at `y + at` (two products per i16 lane (8192), then four (16384), widened to i32
/// before the last pairing), in one `asm!` block with the activations' load (register offset: `at` is the same for every token), so that LLVM cannot hoist
/// the products of all the tokens of a tile above their reductions and spill them.
///
/// # Safety
/// `y + at` points to 16 readable bytes.
#[inline(always)]
unsafe fn mla_group(acc: int32x4_t, q: &[int8x16_t; ROWS], y: *const i8, at: usize, sc: int32x4_t) -> int32x4_t {
    let mut acc = acc;
    std::arch::asm!(
        "ldr {y:q}, [{yp}, {at}]",
        "smull {p0:v}.8h, {a:v}.8b, {y:v}.8b",
        "smlal2 {p0:v}.8h, {a:v}.16b, {y:v}.16b",
        "smull {p1:v}.8h, {b:v}.8b, {y:v}.8b",
        "smlal2 {p1:v}.8h, {b:v}.16b, {y:v}.16b",
        "smull {p2:v}.8h, {c:v}.8b, {y:v}.8b",
        "smlal2 {p2:v}.8h, {c:v}.16b, {y:v}.16b",
        "smull {p3:v}.8h, {d:v}.8b, {y:v}.8b",
        "smlal2 {p3:v}.8h, {d:v}.16b, {y:v}.16b",
        "addp {p0:v}.8h, {p0:v}.8h, {p1:v}.8h",
        "addp {p2:v}.8h, {p2:v}.8h, {p3:v}.8h",
        "saddlp {p0:v}.4s, {p0:v}.8h",
        "saddlp {p2:v}.4s, {p2:v}.8h",
        "addp {p0:v}.4s, {p0:v}.4s, {p2:v}.4s",
        "mla {acc:v}.4s, {p0:v}.4s, {sc:v}.4s",
        acc = inout(vreg) acc,
        yp = in(reg) y,
        at = in(reg) at,
        sc = in(vreg) sc,
        a = in(vreg) q[0],
        b = in(vreg) q[1],
        c = in(vreg) q[2],
        d = in(vreg) q[3],
        y = out(vreg) _,
        p0 = out(vreg) _,
        p1 = out(vreg) _,
        p2 = out(vreg) _,
        p3 = out(vreg) _,
        options(pure, readonly, nostack, preserves_flags)
    );
    acc
}

/// The results of four Q6_K rows (`w`, each `nb` blocks) with `NT` Q8_K tokens: `[token][row]`.
///
/// # Safety
/// Every pointer of `w` and every token's row hold `nb` whole blocks.
#[target_feature(enable = "neon")]
unsafe fn q6_k_tile<const NT: usize>(nb: usize, w: [*const u8; ROWS], t: &[Tok; NT]) -> [[f32; ROWS]; NT] {
    let mut acc = [vdupq_n_f32(0.0); NT];
    for b in 0..nb {
        let wb = w.map(|p| p.add(b * 210));
        let d = row_scales(&wb, 208);
        let sc = group_scales(&wb);
        let mut sumi = [vdupq_n_s32(0); NT];
        // Each token's activations of the block (group `g` at offset `16 * g`).
        let yq: [*const i8; NT] = std::array::from_fn(|i| t[i].x.add(b * 292 + 4) as *const i8);
        // The groups by (half, part): integer sums are exact, so the order is free; this one keeps the
        // decoded groups of one (half, part) in registers.
        for half in 0..2 {
            for part in 0..2 {
                let q = wb.map(|p| decode(p, half, part));
                for k in 0..4 {
                    let g = 8 * half + 2 * k + part;
                    let qg = [q[0][k], q[1][k], q[2][k], q[3][k]];
                    each_token!(NT, |i| {
                        sumi[i] = mla_group(sumi[i], &qg, yq[i], 16 * g, sc[g]);
                    });
                }
            }
        }
        each_token!(NT, |i| {
            let dx = (t[i].x.add(b * 292) as *const f32).read_unaligned();
            acc[i] = vfmaq_f32(acc[i], vcvtq_f32_s32(sumi[i]), vmulq_n_f32(d, dx));
        });
    }
    let mut out = [[0f32; ROWS]; NT];
    for i in 0..NT {
        vst1q_f32(out[i].as_mut_ptr(), acc[i]);
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::ggml_type::GgmlType;
    use crate::quant;
    use crate::simd::{ActivationRows, TileShape};

    /// Q6_K at its extremes (the products the i16 lanes must hold without `sdot`): every weight -32 or 31, every
    /// group scale -128 or 127, against Q8_K activations of -128 or 127 with unit scales, in every combination of
    /// signs over five rows and five tokens: each result is an integer exact in f32 and equals the reference.
    #[test]
    fn aarch64_q6_k_tile_is_exact_at_the_extreme_quants() {
        let n = 512;
        let block = |low_q: bool, scale: i8| {
            let mut b = vec![0u8; 210];
            let (ql, qh) = if low_q { (0x00, 0x00) } else { (0xFF, 0xFF) }; // q = 0 - 32 or 63 - 32
            b[..128].fill(ql);
            b[128..192].fill(qh);
            b[192..208].fill(scale as u8);
            b[208..210].copy_from_slice(&0x3C00u16.to_le_bytes()); // d = 1
            b.repeat(n / 256)
        };
        let wq: Vec<u8> = [(true, -128i8), (false, 127), (true, 127), (false, -128), (true, -128)]
            .iter()
            .flat_map(|&(l, s)| block(l, s))
            .collect();
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
        let x = ActivationRows {
            bytes: &xq,
            row_bytes: 292 * n / 256,
            blocks_per_row: n / 256,
            scales_per_block: 0,
            scales: &[],
            sums: &[],
        };
        let flavours = if super::super::aarch64_neon::has_dotprod() { vec![false, true] } else { vec![false] };
        for sdot in flavours {
            let (name, k) = super::super::aarch64_neon_tiles::kernel(GgmlType::Q6_K, sdot).unwrap();
            let wrb = 210 * n / 256;
            let mut out = [f32::NAN; 5 * 5];
            for r in (0..5).step_by(4) {
                for t in (0..5).step_by(4) {
                    let shape = TileShape { rows: 4.min(5 - r), tokens: 4.min(5 - t), ld: 5 };
                    (k.run)(n, &wq[r * wrb..], wrb, &x, t, shape, &mut out[r * 5 + t..]);
                }
            }
            for r in 0..5 {
                for t in 0..5 {
                    let want = quant::vec_dot(
                        GgmlType::Q6_K,
                        n,
                        &wq[r * wrb..(r + 1) * wrb],
                        &xq[t * x.row_bytes..][..x.row_bytes],
                    )
                    .unwrap();
                    assert_eq!(want, out[r * 5 + t], "Q6_K {name}: row {r} token {t}");
                    assert!(want.abs() >= 16.0 * 16.0 * 31.0 * 127.0 * 127.0);
                }
            }
        }
    }
}
