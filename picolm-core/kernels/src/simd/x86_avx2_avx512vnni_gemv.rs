//! x86-64 decode (one token) matrix-vector kernels shaped for memory bandwidth: one call takes a whole run of
//! consecutive weight rows (one sequential stream the hardware prefetchers follow), checks the slices once, and
//! spends as little work per weight block as the format allows (full-width loads; K-quant scales unpacked with a
//! few 32-bit word operations and `vpshufb` instead of byte by byte; Q6_K's `q - 32` taken once per block from
//! the activation block sums instead of a second `vpmaddubsw` per 32 values).
//!
//! Two flavours, one file because they are the same loops: `avx2-gemv` (AVX2 + FMA + F16C; Q4_0, Q4_1, Q8_0, Q4_K,
//! Q6_K) and `avx512vnni-gemv` (Q4_0, Q4_1, Q8_0), with the 256-bit `vpdpbusd` (AVX-512 VNNI + VL) in place of
//! `vpmaddubsw` + `vpmaddwd`. The 32-wide formats (Q4_0, Q4_1, Q8_0) follow the integer and float steps of the
//! `avx2-row` tile kernel exactly, so their results are bit-identical to it (tested); the K-quants (Q4_K, Q6_K) sum
//! in another order and equal the scalar reference up to float rounding (tested in `simd::tests`). Neither is
//! bit-identical to the AVX-512 eight-row tile, which is why decode may only use them when batched prefill and
//! token-by-token decode are not required to agree bit for bit (see `compute::planner`).

use std::arch::x86_64::*;

use super::tile_common::{
    check, toks, Layout, Tok, L_Q4_0, L_Q4_1, L_Q4_K, L_Q6_K, L_Q8_0, Q4_0_BYTES, Q4_1_BYTES, Q4_K_BYTES, Q6_K_BYTES,
    Q8K_BSUMS, Q8K_QS, Q8_0_BYTES, Q8_0_QS, Q8_1_BYTES, Q8_1_QS, Q8_K_BYTES,
};
use super::x86_common::{fp16, hsum_ps, load256, nibbles32, rd_u16};
use super::{q8k_d, ActivationRows, GemvFn, TileShape};
use crate::ggml_type::GgmlType;

/// The `avx2-gemv` kernel for `ty`, if there is one. Call only when AVX2/FMA/F16C are present.
pub fn avx2(ty: GgmlType) -> Option<GemvFn> {
    Some(match ty {
        GgmlType::Q4_0 => gemv_q4_0::<false>,
        GgmlType::Q4_1 => gemv_q4_1::<false>,
        GgmlType::Q8_0 => gemv_q8_0::<false>,
        GgmlType::Q4_K => gemv_q4_k,
        GgmlType::Q6_K => gemv_q6_k,
        _ => return None,
    })
}

/// The `avx512vnni-gemv` kernel for `ty`, if there is one. Call only when AVX2/FMA/F16C and AVX-512 VNNI/VL are
/// present.
pub fn vnni(ty: GgmlType) -> Option<GemvFn> {
    Some(match ty {
        GgmlType::Q4_0 => gemv_q4_0::<true>,
        GgmlType::Q4_1 => gemv_q4_1::<true>,
        GgmlType::Q8_0 => gemv_q8_0::<true>,
        _ => return None,
    })
}

/// Checks the slices of a GEMV call (`out.len()` rows times token 0 of `x`); returns the blocks per row and the
/// token's pointers. Panics on a caller bug.
fn check_gemv(n: usize, l: &Layout, w: &[u8], w_row_bytes: usize, x: &ActivationRows<'_>, out: &[f32]) -> (usize, Tok) {
    assert!(!out.is_empty(), "GEMV of no rows");
    // The tile check for a one-token, one-row tile covers the token and the first row; the weight slice must also
    // hold the other rows.
    let nb = check(n, l, (1, 1), w, w_row_bytes, x, 0, TileShape { rows: 1, tokens: 1, ld: 1 }, out);
    assert!(w.len() >= (out.len() - 1) * w_row_bytes + nb * l.w_bytes, "weight rows too short for {} rows", out.len());
    (nb, toks::<1>(x, 0)[0])
}

macro_rules! gemv_entry {
    ($name:ident, $row:ident, $layout:expr) => {
        fn $name<const VNNI: bool>(n: usize, w: &[u8], w_row_bytes: usize, x: &ActivationRows<'_>, out: &mut [f32]) {
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn avx2(nb: usize, w: *const u8, stride: usize, t: Tok, out: &mut [f32]) {
                for (r, o) in out.iter_mut().enumerate() {
                    *o = $row::<false>(nb, w.add(r * stride), t);
                }
            }
            #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vnni,avx512vl")]
            unsafe fn vnni(nb: usize, w: *const u8, stride: usize, t: Tok, out: &mut [f32]) {
                for (r, o) in out.iter_mut().enumerate() {
                    *o = $row::<true>(nb, w.add(r * stride), t);
                }
            }
            let (nb, t) = check_gemv(n, &$layout, w, w_row_bytes, x, out);
            // SAFETY: handed out by `avx2`/`vnni` only after the CPU features of the flavour were detected;
            // `check_gemv` verified that `out.len()` rows of `nb` blocks, `w_row_bytes` apart, and the token's
            // blocks, scales and sums are in bounds; the row kernels read only inside them.
            unsafe {
                if VNNI {
                    vnni(nb, w.as_ptr(), w_row_bytes, t, out)
                } else {
                    avx2(nb, w.as_ptr(), w_row_bytes, t, out)
                }
            }
        }
    };
}

gemv_entry!(gemv_q4_0, q4_0_row, L_Q4_0);
gemv_entry!(gemv_q4_1, q4_1_row, L_Q4_1);
gemv_entry!(gemv_q8_0, q8_0_row, L_Q8_0);

/// The K-quant kernels have no VNNI flavour (their per-16/32 integer scales fit `vpmaddwd`, not `vpdpbusd`).
macro_rules! gemv_entry_avx2 {
    ($name:ident, $row:ident, $layout:expr) => {
        fn $name(n: usize, w: &[u8], w_row_bytes: usize, x: &ActivationRows<'_>, out: &mut [f32]) {
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn run(nb: usize, w: *const u8, stride: usize, t: Tok, out: &mut [f32]) {
                for (r, o) in out.iter_mut().enumerate() {
                    *o = $row(nb, w.add(r * stride), t);
                }
            }
            let (nb, t) = check_gemv(n, &$layout, w, w_row_bytes, x, out);
            // SAFETY: as in `gemv_entry`; handed out by `avx2` only after AVX2/FMA/F16C were detected.
            unsafe { run(nb, w.as_ptr(), w_row_bytes, t, out) }
        }
    };
}

gemv_entry_avx2!(gemv_q4_k, q4_k_row, L_Q4_K);
gemv_entry_avx2!(gemv_q6_k, q6_k_row, L_Q6_K);

/// `acc` plus, per i32 lane, the sum of four products of the unsigned bytes of `u` and the signed bytes of `s`
/// (`vpdpbusd` with VNNI; `vpmaddubsw` + `vpmaddwd` without, whose pair sums saturate as in the tile kernels).
#[inline(always)]
unsafe fn dot4_acc<const VNNI: bool>(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
    if VNNI {
        _mm256_dpbusd_epi32(acc, u, s)
    } else {
        _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)))
    }
}

/// The f16 values at `p`, `p + stride`, `p + 2 stride`, `p + 3 stride` as four f32.
#[inline(always)]
unsafe fn halves4(p: *const u8, stride: usize) -> __m128 {
    let lo = rd_u16(p) as u32 | (rd_u16(p.add(stride)) as u32) << 16;
    let hi = rd_u16(p.add(2 * stride)) as u32 | (rd_u16(p.add(3 * stride)) as u32) << 16;
    _mm_cvtph_ps(_mm_set_epi32(0, 0, hi as i32, lo as i32))
}

/// Lane `k` of `v` broadcast to eight lanes.
#[inline(always)]
unsafe fn lane(v: __m128, k: i32) -> __m256 {
    _mm256_permutevar8x32_ps(_mm256_castps128_ps256(v), _mm256_set1_epi32(k))
}

/// Shared row of the signed 32-wide formats (Q4_0: nibbles - 8; Q8_0: bytes) against Q8_0 activations with
/// prepared f32 scales: the integer and float steps of the `avx2-row` tile kernel (`vpsignb` pair, products summed
/// per four values, `(sum * dw) * dx` into even/odd block accumulators), so the results are bit-identical to it;
/// only the per-row overhead and, with VNNI, one instruction per block are saved.
#[inline(always)]
unsafe fn signed_row<const VNNI: bool>(
    nb: usize,
    w: *const u8,
    wb: usize,
    t: Tok,
    decode: impl Fn(*const u8) -> __m256i,
) -> f32 {
    let mut acc = [_mm256_setzero_ps(); 2];
    let block = |wp: *const u8, b: usize| {
        let q = decode(wp);
        let y = load256(t.x.add(b * Q8_0_BYTES + Q8_0_QS));
        dot4_acc::<VNNI>(_mm256_setzero_si256(), _mm256_sign_epi8(q, q), _mm256_sign_epi8(y, q))
    };
    let mut b = 0;
    while b + 4 <= nb {
        let wp = w.add(b * wb);
        let dw = halves4(wp, wb);
        for k in 0..4 {
            let p = _mm256_mul_ps(_mm256_cvtepi32_ps(block(wp.add(k * wb + 2), b + k)), lane(dw, k as i32));
            acc[k % 2] = _mm256_fmadd_ps(p, _mm256_broadcast_ss(&*t.s.add(b + k)), acc[k % 2]);
        }
        b += 4;
    }
    while b < nb {
        let wp = w.add(b * wb);
        let p = _mm256_mul_ps(_mm256_cvtepi32_ps(block(wp.add(2), b)), _mm256_set1_ps(fp16(wp)));
        acc[b % 2] = _mm256_fmadd_ps(p, _mm256_broadcast_ss(&*t.s.add(b)), acc[b % 2]);
        b += 1;
    }
    hsum_ps(_mm256_add_ps(acc[0], acc[1]))
}

#[inline(always)]
unsafe fn q4_0_row<const VNNI: bool>(nb: usize, w: *const u8, t: Tok) -> f32 {
    let eight = _mm256_set1_epi8(8);
    signed_row::<VNNI>(nb, w, Q4_0_BYTES, t, |p| _mm256_sub_epi8(nibbles32(p), eight))
}

#[inline(always)]
unsafe fn q8_0_row<const VNNI: bool>(nb: usize, w: *const u8, t: Tok) -> f32 {
    signed_row::<VNNI>(nb, w, Q8_0_BYTES, t, |p| load256(p))
}

/// Q4_1 (`d, m` f16, 16 bytes of nibbles) against Q8_1 with prepared `(d, s)` f32 pairs: `sum_b dw dx sum q y +
/// mw s`, with the float steps of the `avx2-row` tile kernel (bit-identical to it).
#[inline(always)]
unsafe fn q4_1_row<const VNNI: bool>(nb: usize, w: *const u8, t: Tok) -> f32 {
    let mut acc = [_mm256_setzero_ps(); 2];
    let mut mins = 0f32;
    let mut b = 0;
    while b + 4 <= nb {
        let wp = w.add(b * Q4_1_BYTES);
        let dw = halves4(wp, Q4_1_BYTES);
        for k in 0..4 {
            let i = dot4_acc::<VNNI>(
                _mm256_setzero_si256(),
                nibbles32(wp.add(k * Q4_1_BYTES + 4)),
                load256(t.x.add((b + k) * Q8_1_BYTES + Q8_1_QS)),
            );
            let p = _mm256_mul_ps(_mm256_cvtepi32_ps(i), lane(dw, k as i32));
            acc[k % 2] = _mm256_fmadd_ps(p, _mm256_broadcast_ss(&*t.s.add(2 * (b + k))), acc[k % 2]);
            mins += fp16(wp.add(k * Q4_1_BYTES + 2)) * *t.s.add(2 * (b + k) + 1);
        }
        b += 4;
    }
    while b < nb {
        let wp = w.add(b * Q4_1_BYTES);
        let i =
            dot4_acc::<VNNI>(_mm256_setzero_si256(), nibbles32(wp.add(4)), load256(t.x.add(b * Q8_1_BYTES + Q8_1_QS)));
        let p = _mm256_mul_ps(_mm256_cvtepi32_ps(i), _mm256_set1_ps(fp16(wp)));
        acc[b % 2] = _mm256_fmadd_ps(p, _mm256_broadcast_ss(&*t.s.add(2 * b)), acc[b % 2]);
        mins += fp16(wp.add(2)) * *t.s.add(2 * b + 1);
        b += 1;
    }
    hsum_ps(_mm256_add_ps(acc[0], acc[1])) + mins
}

/// `vpshufb` patterns that broadcast the i16 at lane `k` of a 128-bit lane to all eight of its i16 lanes.
const SCALE_SHUFFLE: [[u8; 32]; 8] = {
    let mut s = [[0u8; 32]; 8];
    let mut k = 0;
    while k < 8 {
        let mut i = 0;
        while i < 16 {
            s[k][2 * i] = 2 * k as u8;
            s[k][2 * i + 1] = 2 * k as u8 + 1;
            i += 1;
        }
        k += 1;
    }
    s
};

/// Q4_K against Q8_K: the eight 6-bit scales and mins unpacked with 32-bit word arithmetic (as ggml), the mins
/// term from the activation block sums, two integer chains per block.
#[inline(always)]
unsafe fn q4_k_row(nb: usize, w: *const u8, t: Tok) -> f32 {
    const K1: u32 = 0x3f3f_3f3f;
    const K2: u32 = 0x0f0f_0f0f;
    const K3: u32 = 0x0303_0303;
    let m4 = _mm256_set1_epi8(0x0F);
    let mut acc = [_mm256_setzero_ps(); 2];
    let mut acc_m = _mm_setzero_ps();
    for i in 0..nb {
        let (wb, xb) = (w.add(i * Q4_K_BYTES), t.x.add(i * Q8_K_BYTES));
        let dx = q8k_d(xb);
        let dm = _mm_cvtph_ps(_mm_cvtsi32_si128((wb as *const i32).read_unaligned()));
        let dm = _mm_mul_ps(dm, _mm_set1_ps(dx));
        let rd = |k: usize| (wb.add(4 + 4 * k) as *const u32).read_unaligned();
        let (u0, u1, u2) = (rd(0), rd(1), rd(2));
        let sc_hi = (u2 & K2) | (((u0 >> 6) & K3) << 4);
        let m_hi = ((u2 >> 4) & K2) | (((u1 >> 6) & K3) << 4);
        // i16 lanes: scales 0..8, then mins 0..8.
        let ms = _mm256_cvtepu8_epi16(_mm_set_epi32(m_hi as i32, (u1 & K1) as i32, sc_hi as i32, (u0 & K1) as i32));
        let bsums = load256(xb.add(Q8K_BSUMS));
        let pair_sums = _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256::<1>(bsums));
        let prod = _mm_madd_epi16(_mm256_extracti128_si256::<1>(ms), pair_sums);
        acc_m = _mm_fmadd_ps(_mm_permute_ps::<0b01_01_01_01>(dm), _mm_cvtepi32_ps(prod), acc_m);
        let sc = _mm256_castsi128_si256(_mm256_castsi256_si128(ms));
        let scales = _mm256_inserti128_si256::<1>(sc, _mm256_castsi256_si128(ms));
        let mut sumi = [_mm256_setzero_si256(); 2];
        for j in 0..4 {
            let shuf = |k: usize| _mm256_loadu_si256(SCALE_SHUFFLE[k].as_ptr() as *const __m256i);
            let (sl, sh) = (_mm256_shuffle_epi8(scales, shuf(2 * j)), _mm256_shuffle_epi8(scales, shuf(2 * j + 1)));
            let bits = load256(wb.add(16 + 32 * j));
            let lo = _mm256_and_si256(bits, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
            let pl = _mm256_maddubs_epi16(lo, load256(xb.add(Q8K_QS + 64 * j)));
            let ph = _mm256_maddubs_epi16(hi, load256(xb.add(Q8K_QS + 32 + 64 * j)));
            sumi[0] = _mm256_add_epi32(sumi[0], _mm256_madd_epi16(sl, pl));
            sumi[1] = _mm256_add_epi32(sumi[1], _mm256_madd_epi16(sh, ph));
        }
        let d = _mm256_broadcastss_ps(dm);
        acc[i % 2] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_add_epi32(sumi[0], sumi[1])), acc[i % 2]);
    }
    let m = _mm_add_ps(acc_m, _mm_movehl_ps(acc_m, acc_m));
    let m = _mm_cvtss_f32(_mm_add_ss(m, _mm_movehdup_ps(m)));
    hsum_ps(_mm256_add_ps(acc[0], acc[1])) - m
}

/// Q6_K against Q8_K: `(q - 32)` handled once per block through the activation block sums (`32 * sum_g scale_g
/// bsum_g`) instead of a second `vpmaddubsw` per 32 values.
#[inline(always)]
unsafe fn q6_k_row(nb: usize, w: *const u8, t: Tok) -> f32 {
    let m4 = _mm256_set1_epi8(0x0F);
    let (m2, m30) = (_mm256_set1_epi8(0x03), _mm256_set1_epi8(0x30));
    let mut acc = [_mm256_setzero_ps(); 2];
    for i in 0..nb {
        let (wb, xb) = (w.add(i * Q6_K_BYTES), t.x.add(i * Q8_K_BYTES));
        let d = _mm256_set1_ps(fp16(wb.add(208)) * q8k_d(xb));
        let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(wb.add(192) as *const __m128i));
        let corr = _mm256_slli_epi32(_mm256_madd_epi16(load256(xb.add(Q8K_BSUMS)), sc16), 5);
        let mut sumi = [_mm256_setzero_si256(), corr];
        for half in 0..2 {
            let ql = wb.add(64 * half);
            let qh = load256(wb.add(128 + 32 * half));
            let (b1, b2) = (load256(ql), load256(ql.add(32)));
            let q = [
                _mm256_or_si256(_mm256_and_si256(b1, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4)),
                _mm256_or_si256(
                    _mm256_and_si256(b2, m4),
                    _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4),
                ),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4), _mm256_and_si256(qh, m30)),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(b2, 4), m4),
                    _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30),
                ),
            ];
            for (k, qk) in q.iter().enumerate() {
                let g = 8 * half + 2 * k;
                let s = _mm256_set_m128i(
                    _mm_set1_epi16(*wb.add(192 + g + 1) as i8 as i16),
                    _mm_set1_epi16(*wb.add(192 + g) as i8 as i16),
                );
                let y = load256(xb.add(Q8K_QS + 128 * half + 32 * k));
                sumi[0] = _mm256_add_epi32(sumi[0], _mm256_madd_epi16(_mm256_maddubs_epi16(*qk, y), s));
            }
        }
        acc[i % 2] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(_mm256_sub_epi32(sumi[0], sumi[1])), acc[i % 2]);
    }
    hsum_ps(_mm256_add_ps(acc[0], acc[1]))
}
