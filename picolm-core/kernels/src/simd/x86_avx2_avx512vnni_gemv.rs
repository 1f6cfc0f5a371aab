//! x86-64 decode (one token) matrix-vector kernels shaped for memory bandwidth: one call takes a whole run of
//! consecutive weight rows (one sequential stream the hardware prefetchers follow), checks the slices once, and
//! spends as little work per weight block as the format allows (full-width loads; K-quant scales unpacked with a
//! few vector operations on the block's first 16 bytes and spread with one `vpshufb` per group instead of byte by
//! byte; Q6_K's `q - 32` taken once per block from the activation block sums instead of a second `vpmaddubsw` per
//! 32 values).
//!
//! Three flavours: `avx2-gemv` (AVX2 + FMA + F16C; Q4_0, Q4_1, Q8_0, Q4_K, Q6_K), `avx2-rows8-gemv` (AVX2 + FMA +
//! F16C; Q4_K, Q6_K: the integer lanes of `avx2-gemv` with the float steps of the eight-row tiles) and
//! `avx512vnni-gemv` (the formats of `avx2-gemv`, AVX-512 VNNI: the 32-wide formats with the 256-bit `vpdpbusd` in
//! place of `vpmaddubsw` + `vpmaddwd`, the K-quants with 512-bit `vpdpbusd` + `vpdpwssd`). The integer sums are
//! exact in every kernel, so a kernel's rounding is decided by its float steps alone, and each kernel repeats those
//! of one prefill tile, which makes its results bit-identical to that tile's (declared in
//! `simd::decode_kernel_candidates`, tested in `simd::tests`): the 32-wide formats (Q4_0, Q4_1, Q8_0) in
//! `avx2-gemv` and `avx512vnni-gemv` (Q4_0 runs the very row kernel of that tile, `x86_q4_0`)
//! and the K-quants of `avx2-gemv` follow the `avx2-row` tile; `avx2-rows8-gemv` follows the `avx2-rows8` tile (the
//! K-quant prefill kernel of CPUs without AVX-512 VNNI); the K-quants of `avx512vnni-gemv` follow the
//! `avx512vnni-rows8` tile (the prefill kernel of the others; the two eight-row tiles share their per-lane steps).
//! Decode may use a kernel under `auto` only where its twin is the CPU's prefill kernel (see `compute::planner`).
//! Every kernel takes the rows one after the other (see `gemv_entry_k`).

use std::arch::x86_64::*;

use super::tile_common::{
    check, toks, Layout, Tok, L_Q4_0, L_Q4_1, L_Q4_K, L_Q6_K, L_Q8_0, Q4_1_BYTES, Q4_K_BYTES, Q6_K_BYTES, Q8K_BSUMS,
    Q8K_QS, Q8_0_BYTES, Q8_0_QS, Q8_1_BYTES, Q8_1_QS, Q8_K_BYTES,
};
use super::x86_common::{dot4_acc, fp16, hsum_ps, load256, nibbles32, rd_u16};
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

/// The `avx2-rows8-gemv` kernel for `ty` (the twin of the `avx2-rows8` tile), if there is one. Call only when
/// AVX2/FMA/F16C are present.
pub fn avx2_rows8(ty: GgmlType) -> Option<GemvFn> {
    Some(match ty {
        GgmlType::Q4_K => gemv_q4_k_rows8,
        GgmlType::Q6_K => gemv_q6_k_rows8,
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
        GgmlType::Q4_K => gemv_q4_k_vnni,
        GgmlType::Q6_K => gemv_q6_k_vnni,
        _ => return None,
    })
}

/// Checks the slices of a GEMV call (`out.len()` rows times token 0 of `x`); returns the blocks per row and the
/// token's pointers. Panics on a caller bug.
pub(super) fn check_gemv(
    n: usize,
    l: &Layout,
    w: &[u8],
    w_row_bytes: usize,
    x: &ActivationRows<'_>,
    out: &[f32],
) -> (usize, Tok) {
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

/// The K-quant kernels. Both take the rows one after the other, each from its first block to its last: the weights
/// are then read in address order, one sequential stream that the hardware prefetchers follow. (Interleaving the
/// blocks of four rows, to share the activation loads, made four streams of one short row each, too short for the
/// prefetchers to lock on: from memory it ran at a third of this speed, though faster from the caches.)
/// `$features` are the CPU features of the flavour (checked by `avx2` / `vnni` before handing the kernel out).
macro_rules! gemv_entry_k {
    ($name:ident, $row:ident, $layout:expr, $features:literal) => {
        fn $name(n: usize, w: &[u8], w_row_bytes: usize, x: &ActivationRows<'_>, out: &mut [f32]) {
            #[target_feature(enable = $features)]
            unsafe fn rows(nb: usize, w: *const u8, stride: usize, t: Tok, out: &mut [f32]) {
                for (r, o) in out.iter_mut().enumerate() {
                    *o = $row(nb, w.add(r * stride), t);
                }
            }
            let (nb, t) = check_gemv(n, &$layout, w, w_row_bytes, x, out);
            // SAFETY: handed out by `avx2`/`vnni` only after the CPU features of the flavour were detected;
            // `check_gemv` verified that `out.len()` rows of `nb` blocks, `w_row_bytes` apart, and the token's
            // blocks are in bounds; the row kernels read only inside them.
            unsafe { rows(nb, w.as_ptr(), w_row_bytes, t, out) }
        }
    };
}

gemv_entry_k!(gemv_q4_k, q4_k_row, L_Q4_K, "avx2,fma,f16c");
gemv_entry_k!(gemv_q6_k, q6_k_row, L_Q6_K, "avx2,fma,f16c");
gemv_entry_k!(gemv_q4_k_rows8, q4_k_row_rows8, L_Q4_K, "avx2,fma,f16c");
gemv_entry_k!(gemv_q6_k_rows8, q6_k_row_rows8, L_Q6_K, "avx2,fma,f16c");
gemv_entry_k!(gemv_q4_k_vnni, q4_k_row_vnni, L_Q4_K, "avx2,fma,f16c,avx512f,avx512bw,avx512vnni,avx512vl");
gemv_entry_k!(gemv_q6_k_vnni, q6_k_row_vnni, L_Q6_K, "avx2,fma,f16c,avx512f,avx512bw,avx512vnni,avx512vl");

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

/// Row of the signed 32-wide format Q8_0 against Q8_0 activations with
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

/// Q4_0: the row kernel shared with the `avx2-row` tile (see [`super::x86_q4_0`]).
#[inline(always)]
unsafe fn q4_0_row<const VNNI: bool>(nb: usize, w: *const u8, t: Tok) -> f32 {
    super::x86_q4_0::q4_0_row::<VNNI, 1>(nb, w, &[t])[0]
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

/// The `vpshufb` pattern that fills the low 128-bit half with copies of its i16 lane `lo` and the high half with
/// copies of its i16 lane `hi`.
const fn i16_picks(lo: u8, hi: u8) -> [u8; 32] {
    let mut s = [0u8; 32];
    let mut i = 0;
    while i < 8 {
        s[2 * i] = 2 * lo;
        s[2 * i + 1] = 2 * lo + 1;
        s[16 + 2 * i] = 2 * hi;
        s[16 + 2 * i + 1] = 2 * hi + 1;
        i += 1;
    }
    s
}

/// Q4_K, pattern `g`: the scale of group `g` in every i16 lane (of `[scales | scales]`).
static Q4_K_PICKS: [[u8; 32]; 8] = {
    let mut s = [[0u8; 32]; 8];
    let mut g = 0;
    while g < 8 {
        s[g] = i16_picks(g as u8, g as u8);
        g += 1;
    }
    s
};

/// Q6_K, pattern `k`: the scale of group `2k` in the low half, of group `2k + 1` in the high half (of eight scales
/// in both halves).
static Q6_K_PICKS: [[u8; 32]; 4] = [i16_picks(0, 1), i16_picks(2, 3), i16_picks(4, 5), i16_picks(6, 7)];

/// `picks` as an opaque pointer, so that the `vpshufb` of each pattern stays one instruction (with the patterns
/// known, LLVM rewrites a broadcast by `vpshufb` as a shift or shuffle plus `vpbroadcastw`: two instructions
/// per 32 weights).
#[inline(always)]
fn opaque<const N: usize>(picks: &'static [[u8; 32]; N]) -> *const [u8; 32] {
    std::hint::black_box(picks).as_ptr()
}

/// Pattern `k` of `picks` applied to `v` (see [`opaque`]).
#[inline(always)]
unsafe fn pick(v: __m256i, picks: *const [u8; 32], k: usize) -> __m256i {
    _mm256_shuffle_epi8(v, _mm256_loadu_si256(picks.add(k) as *const __m256i))
}

/// `acc` plus the pairwise-summed i32 products of the i16 lanes of `a` and `b`. (Not `vpdpwssd`: one instruction
/// instead of two, but the accumulator then waits for the multiply of every step, which made the K-quant loops
/// latency-bound; `vpaddd` waits one cycle.)
#[inline(always)]
unsafe fn madd_acc(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    _mm256_add_epi32(acc, _mm256_madd_epi16(a, b))
}

/// The sums of the lanes of the two 128-bit halves of `v` (four i32 lanes).
#[inline(always)]
unsafe fn fold_epi32(v: __m256i) -> __m128i {
    _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v))
}

/// The integer part of one Q4_K block `wb` against the Q8_K block `xb`: the eight i32 lanes of `sum_j scale_j
/// sum q y` (lane `l` over the bytes `4l..4l+4` of every 32 values, as in the `avx2-row` tile), and the mins of
/// the groups, each twice (i16 lanes `2j`, `2j + 1`: `m_j`). `picks` is [`Q4_K_PICKS`] (see [`opaque`]).
#[inline(always)]
unsafe fn q4_k_ints(wb: *const u8, xb: *const u8, picks: *const [u8; 32]) -> (__m256i, __m256i) {
    let m4 = _mm256_set1_epi8(0x0F);
    let sm = q4_k_scale_min_bytes(wb);
    let scales = _mm256_cvtepu8_epi16(_mm_unpacklo_epi64(sm, sm)); // i16: the eight scales, twice
    let mut sumi = [_mm256_setzero_si256(); 2];
    for j in 0..4 {
        let (sl, sh) = (pick(scales, picks, 2 * j), pick(scales, picks, 2 * j + 1));
        let bits = load256(wb.add(16 + 32 * j));
        let lo = _mm256_and_si256(bits, m4);
        let hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
        let pl = _mm256_maddubs_epi16(lo, load256(xb.add(Q8K_QS + 64 * j)));
        let ph = _mm256_maddubs_epi16(hi, load256(xb.add(Q8K_QS + 32 + 64 * j)));
        sumi[0] = madd_acc(sumi[0], sl, pl);
        sumi[1] = madd_acc(sumi[1], sh, ph);
    }
    (_mm256_add_epi32(sumi[0], sumi[1]), _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm)))
}

/// The sums of the sixteen-value groups of the Q8_K block `xb` taken in pairs: `bsum_2j + bsum_2j+1`, as i16.
#[inline(always)]
unsafe fn pair_sums(xb: *const u8) -> __m128i {
    let bsums = load256(xb.add(Q8K_BSUMS));
    _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256::<1>(bsums))
}

/// One Q4_K block `wb` against the Q8_K block `xb`: the lanes `(d dx, dmin dx)` (the products the tiles form; f16
/// to f32 is exact), eight i32 lanes summing to `sum_j scale_j sum q y` (see [`q4_k_ints`]) and eight summing to
/// `sum_j m_j (bsum_2j + bsum_2j+1)`.
#[inline(always)]
unsafe fn q4_k_block(wb: *const u8, xb: *const u8, picks: *const [u8; 32]) -> (__m128, __m256i, __m256i) {
    let dm = _mm_cvtph_ps(_mm_cvtsi32_si128((wb as *const i32).read_unaligned()));
    let dm = _mm_mul_ps(dm, _mm_set1_ps(q8k_d(xb)));
    let (sumi, min_pairs) = q4_k_ints(wb, xb, picks);
    (dm, sumi, _mm256_madd_epi16(load256(xb.add(Q8K_BSUMS)), min_pairs))
}

/// Q4_K against Q8_K, one row (`avx2-gemv`). The integer sums are exact, so only the float steps decide the
/// rounding, and they are those of the `avx2-row` tile: eight lanes of partial sums per row, per block `acc +=
/// f32(sumi) * (d dx)` then `acc -= f32(summ) * (dmin dx)` (each one FMA), with the lane `j` of `summ` = `m_j
/// (bsum_2j + bsum_2j+1)`; the lanes summed at the end by `hsum_ps`.
#[inline(always)]
unsafe fn q4_k_row(nb: usize, w: *const u8, t: Tok) -> f32 {
    let picks = opaque(&Q4_K_PICKS);
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        let (dm, sumi, summ) = q4_k_block(w.add(i * Q4_K_BYTES), t.x.add(i * Q8_K_BYTES), picks);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_broadcastss_ps(dm), acc);
        acc = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(summ), _mm256_broadcastss_ps(_mm_movehdup_ps(dm)), acc);
    }
    hsum_ps(acc)
}

/// The integer part of one Q6_K block `wb` against the Q8_K block `xb`: eight i32 lanes of `sum scale (q - 32) y`
/// (lane `l` over the bytes `4l..4l+4` of every 32 values, as in the `avx2-row` tile), with `(q - 32)` handled
/// once per block through the activation block sums (`32 * sum_g scale_g bsum_g`) instead of a second
/// `vpmaddubsw` per 32 values.
#[inline(always)]
unsafe fn q6_k_ints(wb: *const u8, xb: *const u8, picks: *const [u8; 32]) -> __m256i {
    let m4 = _mm256_set1_epi8(0x0F);
    let (m2, m30) = (_mm256_set1_epi8(0x03), _mm256_set1_epi8(0x30));
    let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(wb.add(192) as *const __m128i));
    let corr = _mm256_slli_epi32(_mm256_madd_epi16(load256(xb.add(Q8K_BSUMS)), sc16), 5);
    let mut sumi = _mm256_setzero_si256();
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
        // The scales of the half's eight groups in both 128-bit halves; 32 values span two groups.
        let sc = if half == 0 {
            _mm256_permute4x64_epi64::<0b01_00_01_00>(sc16)
        } else {
            _mm256_permute4x64_epi64::<0b11_10_11_10>(sc16)
        };
        for (k, qk) in q.iter().enumerate() {
            let s = pick(sc, picks, k);
            let y = load256(xb.add(Q8K_QS + 128 * half + 32 * k));
            sumi = madd_acc(sumi, _mm256_maddubs_epi16(*qk, y), s);
        }
    }
    _mm256_sub_epi32(sumi, corr)
}

/// Q6_K against Q8_K, one row (`avx2-gemv`). The integer sums are exact; the float steps are those of the
/// `avx2-row` tile: `acc += f32(total) * (d dx)` on eight lanes summed at the end by `hsum_ps`.
#[inline(always)]
unsafe fn q6_k_row(nb: usize, w: *const u8, t: Tok) -> f32 {
    let picks = opaque(&Q6_K_PICKS);
    let mut acc = _mm256_setzero_ps();
    for i in 0..nb {
        let (wb, xb) = (w.add(i * Q6_K_BYTES), t.x.add(i * Q8_K_BYTES));
        let d = fp16(wb.add(208)) * q8k_d(xb);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q6_k_ints(wb, xb, picks)), _mm256_set1_ps(d), acc);
    }
    hsum_ps(acc)
}

// ---- `avx2-rows8-gemv`: the float steps of the `avx2-rows8` tile ----
//
// That tile (`x86_avx2_rows8_kquant`) has the float steps of the `avx512vnni-rows8` tile (see below): per row and
// super-block `acc = fma(f32(T), d dx, acc)` (then `acc = fnmadd(f32(S), dmin dx, acc)` for Q4_K) on one f32. These
// kernels take the exact integer lanes of the `avx2-gemv` kernels, reduce them to `T` (and `S`) per block, then
// take those float steps.

/// Q4_K against Q8_K, one row, with the float steps of the `avx2-rows8` tile.
#[inline(always)]
unsafe fn q4_k_row_rows8(nb: usize, w: *const u8, t: Tok) -> f32 {
    let picks = opaque(&Q4_K_PICKS);
    let mut acc = _mm_setzero_ps();
    for i in 0..nb {
        let (dm, sumi, summ) = q4_k_block(w.add(i * Q4_K_BYTES), t.x.add(i * Q8_K_BYTES), picks);
        // [T, S] in lanes 0 and 1.
        let v = fold_epi32(_mm256_hadd_epi32(sumi, summ));
        let v = _mm_cvtepi32_ps(_mm_hadd_epi32(v, v));
        acc = _mm_fmadd_ss(v, dm, acc);
        acc = _mm_fnmadd_ss(_mm_movehdup_ps(v), _mm_movehdup_ps(dm), acc);
    }
    _mm_cvtss_f32(acc)
}

/// Q6_K against Q8_K, one row, with the float step of the `avx2-rows8` tile.
#[inline(always)]
unsafe fn q6_k_row_rows8(nb: usize, w: *const u8, t: Tok) -> f32 {
    let picks = opaque(&Q6_K_PICKS);
    let mut acc = _mm_setzero_ps();
    for i in 0..nb {
        let (wb, xb) = (w.add(i * Q6_K_BYTES), t.x.add(i * Q8_K_BYTES));
        let d = fp16(wb.add(208)) * q8k_d(xb);
        let v = fold_epi32(q6_k_ints(wb, xb, picks));
        let v = _mm_add_epi32(v, _mm_unpackhi_epi64(v, v));
        let total = _mm_cvtepi32_ps(_mm_add_epi32(v, _mm_shuffle_epi32::<0b01>(v)));
        acc = _mm_fmadd_ss(total, _mm_set_ss(d), acc);
    }
    _mm_cvtss_f32(acc)
}

// ---- `avx512vnni-gemv` K-quants: the float steps of the `avx512vnni-rows8` tile ----
//
// That tile forms, per row and super-block, the block's whole integer sums (`T = sum_g scale_g sum q y`, and for
// Q4_K `S = sum_g min_g (bsum_2g + bsum_2g+1)`), and its only float steps are `acc = fma(f32(T), d dx, acc)` (then
// `acc = fnmadd(f32(S), dmin dx, acc)`) on one f32 per row, block after block. The integer sums are exact
// whatever the order of the additions, so these kernels compute them their own way, for one row at a time: 512-bit
// `vpdpbusd` over 64 weights against 64 contiguous activations, the group scales applied to the still unreduced
// i32 lanes by one `vpdpwssd` (each lane is a sum of four products of at most 4 * 63 * 128 < 2^15 in magnitude, so
// it is its own low i16 half, and the scale lane's high half is zero), then the lanes reduced to `T` (and `S`).
// Then the tile's float steps, block by block, in its order.

/// The sum of the two 256-bit halves of `v` (i32 lanes).
#[inline(always)]
unsafe fn fold512(v: __m512i) -> __m256i {
    _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v))
}

/// The bytes of the eight 6-bit scales (bytes 0..8) and mins (bytes 8..16) of the Q4_K block `wb` (ggml's
/// `get_scale_min_k4`, on the block's first 16 bytes at once): scales/mins 0..4 are the low six bits of bytes
/// 4..8 / 8..12 of the block; 4..8 take their low four bits from bytes 12..16 and their top two from the top bits
/// of bytes 4..8 / 8..12.
#[inline(always)]
unsafe fn q4_k_scale_min_bytes(wb: *const u8) -> __m128i {
    let v = _mm_loadu_si128(wb as *const __m128i); // words [d dmin, u0, u1, u2]
    let a = _mm_shuffle_epi32::<0b11_10_11_01>(v); // [u0, u2, u1, u2]
    let b = _mm_shuffle_epi32::<0b10_10_01_01>(v); // [u0, u0, u1, u1]
    let low = _mm_and_si128(
        _mm_srlv_epi32(a, _mm_setr_epi32(0, 0, 0, 4)),
        _mm_setr_epi32(0x3f3f_3f3f, 0x0f0f_0f0f, 0x3f3f_3f3f, 0x0f0f_0f0f),
    );
    let top = _mm_and_si128(_mm_srli_epi32::<2>(b), _mm_setr_epi32(0, 0x3030_3030, 0, 0x3030_3030));
    _mm_or_si128(low, top)
}

/// One Q4_K block `wb` against the Q8_K block `xb`: `[partial sums of T (4 lanes) | partial sums of S (4 lanes)]`.
#[inline(always)]
unsafe fn q4_k_block_vnni(wb: *const u8, xb: *const u8) -> __m256i {
    let sm = q4_k_scale_min_bytes(wb);
    // i32 lanes 0..8: the scales, 8..16: the mins (high i16 halves zero).
    let sc = _mm512_cvtepu8_epi32(sm);
    let m4 = _mm512_set1_epi8(0x0F);
    // The 32 bytes of nibbles of each 64 values in both halves: low nibbles (first 32 values) below, high above.
    let shift = _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4);
    let halves = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
    let mut acc = [_mm512_setzero_si512(); 2];
    for j in 0..4 {
        let bits = _mm512_broadcast_i64x4(load256(wb.add(16 + 32 * j)));
        let q = _mm512_and_si512(_mm512_srlv_epi64(bits, shift), m4);
        let y = _mm512_loadu_si512(xb.add(Q8K_QS + 64 * j) as *const _);
        let dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, y);
        // Scale 2j on the low eight lanes, 2j + 1 on the high eight.
        let s = _mm512_permutexvar_epi32(_mm512_add_epi32(halves, _mm512_set1_epi32(2 * j as i32)), sc);
        acc[j % 2] = _mm512_dpwssd_epi32(acc[j % 2], dot, s);
    }
    let t = fold_epi32(fold512(_mm512_add_epi32(acc[0], acc[1])));
    let mins = _mm_cvtepu8_epi16(_mm_unpackhi_epi64(sm, sm));
    _mm256_set_m128i(_mm_madd_epi16(mins, pair_sums(xb)), t)
}

/// Q4_K against Q8_K, one row, with the float steps of the `avx512vnni-rows8` tile (see above). (Each block's
/// sums are reduced on their own: sharing the reductions of four blocks was faster from the caches, but rows with
/// a partial group of blocks at their end, such as the 22 blocks of a 5632-value row, then streamed from memory at
/// half the speed.)
#[inline(always)]
unsafe fn q4_k_row_vnni(nb: usize, w: *const u8, t: Tok) -> f32 {
    let mut acc = _mm_setzero_ps();
    for i in 0..nb {
        let (wb, xb) = (w.add(i * Q4_K_BYTES), t.x.add(i * Q8_K_BYTES));
        let dm = _mm_cvtph_ps(_mm_cvtsi32_si128((wb as *const i32).read_unaligned()));
        let dm = _mm_mul_ps(dm, _mm_set1_ps(q8k_d(xb)));
        let v = q4_k_block_vnni(wb, xb);
        let v = _mm256_add_epi32(v, _mm256_shuffle_epi32::<0b11_10_11_10>(v));
        let v = _mm256_cvtepi32_ps(_mm256_add_epi32(v, _mm256_shuffle_epi32::<0b01_01_01_01>(v)));
        acc = _mm_fmadd_ss(_mm256_castps256_ps128(v), dm, acc);
        acc = _mm_fnmadd_ss(_mm256_extractf128_ps::<1>(v), _mm_movehdup_ps(dm), acc);
    }
    _mm_cvtss_f32(acc)
}

/// One Q6_K block `wb` against the Q8_K block `xb`: four i32 lanes summing to the block's `sum scale (q - 32) y`.
#[inline(always)]
unsafe fn q6_k_block_vnni(wb: *const u8, xb: *const u8) -> __m128i {
    let sc8 = _mm_loadu_si128(wb.add(192) as *const __m128i);
    let sc16 = _mm256_cvtepi8_epi16(sc8);
    // i32 lane g: scale g as i16 with a zero high half.
    let sc = _mm512_cvtepu16_epi32(sc16);
    let (m4, m30) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x30));
    let quarter = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    let mut acc = [_mm512_setzero_si512(); 2];
    for half in 0..2 {
        // ql: 64 bytes, low nibbles = values 0..64 of the half, high nibbles = values 64..128. qh (32 bytes, in
        // both 256-bit halves): bits 0-1 / 2-3 / 4-5 / 6-7 are the top bits of values 0..32 / 32..64 / 64..96 /
        // 96..128.
        let ql = _mm512_loadu_si512(wb.add(64 * half) as *const _);
        let qh = _mm512_broadcast_i64x4(load256(wb.add(128 + 32 * half)));
        let top01 = _mm512_and_si512(_mm512_sllv_epi64(qh, _mm512_setr_epi64(4, 4, 4, 4, 2, 2, 2, 2)), m30);
        let top23 = _mm512_and_si512(_mm512_srlv_epi64(qh, _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2)), m30);
        let q01 = _mm512_or_si512(_mm512_and_si512(ql, m4), top01);
        let q23 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16::<4>(ql), m4), top23);
        let y = xb.add(Q8K_QS + 128 * half);
        let d01 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q01, _mm512_loadu_si512(y as *const _));
        let d23 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q23, _mm512_loadu_si512(y.add(64) as *const _));
        // Lane l of a 64-value dot covers values 4l..4l+4: scale group l / 4 of the 64.
        let g = 8 * half as i32;
        let s01 = _mm512_permutexvar_epi32(_mm512_add_epi32(quarter, _mm512_set1_epi32(g)), sc);
        let s23 = _mm512_permutexvar_epi32(_mm512_add_epi32(quarter, _mm512_set1_epi32(g + 4)), sc);
        acc[0] = _mm512_dpwssd_epi32(acc[0], d01, s01);
        acc[1] = _mm512_dpwssd_epi32(acc[1], d23, s23);
    }
    // (q - 32): minus 32 * sum_g scale_g bsum_g.
    let corr = _mm256_slli_epi32::<5>(_mm256_madd_epi16(load256(xb.add(Q8K_BSUMS)), sc16));
    fold_epi32(_mm256_sub_epi32(fold512(_mm512_add_epi32(acc[0], acc[1])), corr))
}

/// Q6_K against Q8_K, one row, with the float step of the `avx512vnni-rows8` tile (see above).
#[inline(always)]
unsafe fn q6_k_row_vnni(nb: usize, w: *const u8, t: Tok) -> f32 {
    let mut acc = _mm_setzero_ps();
    for i in 0..nb {
        let (wb, xb) = (w.add(i * Q6_K_BYTES), t.x.add(i * Q8_K_BYTES));
        let d = fp16(wb.add(208)) * q8k_d(xb);
        let v = q6_k_block_vnni(wb, xb);
        let v = _mm_add_epi32(v, _mm_unpackhi_epi64(v, v));
        let total = _mm_cvtepi32_ps(_mm_add_epi32(v, _mm_shuffle_epi32::<0b01>(v)));
        acc = _mm_fmadd_ss(total, _mm_set_ss(d), acc);
    }
    _mm_cvtss_f32(acc)
}
