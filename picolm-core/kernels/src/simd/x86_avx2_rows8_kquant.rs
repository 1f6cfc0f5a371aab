//! x86-64 AVX2 + FMA + F16C eight-row tiles for Q4_K and Q6_K (kernel name `avx2-rows8`): eight weight rows times
//! up to eight tokens per call, one output per vector lane. The port of the eight-row kernels of the
//! `avx512vnni-rows8` tile ([`super::x86_avx512vnni_tiles`]) to plain AVX2, and the prefill kernel of these formats
//! on CPUs without AVX-512 VNNI.
//!
//! Lane `r` of every vector belongs to weight row `r`. Each 16 bytes of a weight block of the eight rows are
//! transposed in registers so that one 32-bit lane holds four consecutive weights of its row; `vpmaddubsw`
//! multiplies them by four activations broadcast to every lane (unsigned weights times signed activations, the two
//! products of each half of the lane summed in i16), the results of several such steps are summed in i16 where the
//! bounds written at each sum allow it, and `vpmaddwd` by the group's scale (in both i16 halves of the lane) sums the
//! halves into i32. The transposition and the unpacking of a block are done once per block for the eight rows and
//! shared by the tokens of the tile.
//!
//! The integer sums of a row and super-block (`T = sum_g scale_g sum q y`, and for Q4_K `S = sum_g min_g bsum_g`)
//! are exact, so they equal the VNNI tile's whatever the order of the additions; the float steps are the VNNI
//! tile's, per super-block, token and lane: `acc = fma(f32(T), d dx, acc)`, then for Q4_K `acc = fnmadd(f32(S),
//! dmin dx, acc)`. So the results are bit-identical to `avx512vnni-rows8`. Lanes never interact: one token (decode)
//! and eight tokens (prefill) give bit-identical values, and a partial tile (fewer than eight rows) repeats the last
//! row in the unused lanes and drops them. The matrix-vector twins of these tiles (`avx2-rows8-gemv`, in
//! `x86_avx2_avx512vnni_gemv.rs`) repeat the same float steps.

use std::arch::x86_64::*;

use super::tile_common::{check, toks, Tok, L_Q4_K, L_Q6_K, Q4_K_BYTES, Q6_K_BYTES, Q8K_BSUMS, Q8K_QS, Q8_K_BYTES};
use super::x86_avx2_rows8::{broadcast4, halves_f32, prefetch_rows, transpose16, WeightRows, ROWS};
use super::x86_common::load256;
use super::{ActivationRows, TileFn, TileKernel, TileShape};
use crate::ggml_type::GgmlType;

/// Most tokens per call (calls of four and one token take the rest).
const TOKENS: usize = 8;

/// Software prefetch distance in bytes along each weight row (one-token calls only).
const PREFETCH: usize = 512;

/// The eight-row tile for weights of type `ty`. Call only when AVX2/FMA/F16C are present.
pub fn kernel(ty: GgmlType) -> Option<TileKernel> {
    let run: TileFn = match ty {
        GgmlType::Q4_K => rows8_q4_k,
        GgmlType::Q6_K => rows8_q6_k,
        _ => return None,
    };
    Some(TileKernel { run, max_rows: ROWS, max_tokens: TOKENS })
}

macro_rules! rows8_entry {
    ($name:ident, $inner:ident, $layout:expr) => {
        fn $name(
            n: usize,
            w: &[u8],
            w_row_bytes: usize,
            x: &ActivationRows<'_>,
            first: usize,
            shape: TileShape,
            out: &mut [f32],
        ) {
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn run<const NT: usize>(nb: usize, rows: &WeightRows, t: [Tok; NT]) -> [[f32; ROWS]; NT] {
                $inner::<NT>(nb, rows, &t)
            }
            let nb = check(n, &$layout, (ROWS, TOKENS), w, w_row_bytes, x, first, shape, out);
            let rows = WeightRows::new(w, w_row_bytes, shape.rows);
            let mut put = |t: usize, lanes: &[f32; ROWS]| {
                for (r, v) in lanes[..shape.rows].iter().enumerate() {
                    out[r * shape.ld + t] = *v;
                }
            };
            // SAFETY (of the `run` calls): handed out by `kernel` only after AVX2/FMA/F16C were detected; `check`
            // verified that `shape.rows` weight rows of `nb` blocks and every token's row are in bounds, and
            // `WeightRows` points the unused lanes at the last valid row.
            let mut t = 0;
            while t < shape.tokens {
                let left = shape.tokens - t;
                if left >= TOKENS {
                    let res = unsafe { run::<TOKENS>(nb, &rows, toks(x, first + t)) };
                    res.iter().enumerate().for_each(|(i, lanes)| put(t + i, lanes));
                    t += TOKENS;
                } else if left >= TOKENS / 2 {
                    let res = unsafe { run::<{ TOKENS / 2 }>(nb, &rows, toks(x, first + t)) };
                    res.iter().enumerate().for_each(|(i, lanes)| put(t + i, lanes));
                    t += TOKENS / 2;
                } else {
                    put(t, &unsafe { run::<1>(nb, &rows, toks(x, first + t)) }[0]);
                    t += 1;
                }
            }
        }
    };
}

rows8_entry!(rows8_q4_k, q4_k_rows8, L_Q4_K);
rows8_entry!(rows8_q6_k, q6_k_rows8, L_Q6_K);

/// [`transpose16`] of the 32 bytes at `at`: dword `j` of the 32 bytes of each row, `j = 0..8`.
#[inline(always)]
unsafe fn transpose32(rows: &WeightRows, at: usize) -> [__m256i; 8] {
    let (a, b) = (transpose16(rows, at), transpose16(rows, at + 16));
    [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]
}

/// A `vpshufb` pattern applying the same byte selection `p` to each 32-bit lane: byte `i` of a lane takes byte
/// `p[i]` of that lane (0..4), or zero for [`ZERO`].
const fn per_lane(p: [u8; 4]) -> [u8; 32] {
    let mut s = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        s[i] = if p[i % 4] == ZERO { ZERO } else { p[i % 4] + 4 * ((i / 4) % 4) as u8 };
        i += 1;
    }
    s
}

/// A `vpshufb` index that writes a zero byte.
const ZERO: u8 = 0x80;

/// Byte `k` of each 32-bit lane, zero-extended into both i16 halves of the lane.
static BYTE_TWICE: [[u8; 32]; 4] = [
    per_lane([0, ZERO, 0, ZERO]),
    per_lane([1, ZERO, 1, ZERO]),
    per_lane([2, ZERO, 2, ZERO]),
    per_lane([3, ZERO, 3, ZERO]),
];

/// Byte `k` of each 32-bit lane in the high byte of both i16 halves (an arithmetic shift by 8 then sign-extends it).
static BYTE_TWICE_HIGH: [[u8; 32]; 4] = [
    per_lane([ZERO, 0, ZERO, 0]),
    per_lane([ZERO, 1, ZERO, 1]),
    per_lane([ZERO, 2, ZERO, 2]),
    per_lane([ZERO, 3, ZERO, 3]),
];

/// Bytes `2h` and `2h + 1` of each 32-bit lane, zero-extended into its low and high i16 halves.
static BYTE_PAIR: [[u8; 32]; 2] = [per_lane([0, ZERO, 1, ZERO]), per_lane([2, ZERO, 3, ZERO])];

/// Bytes `2h` and `2h + 1` of each 32-bit lane in the high bytes of its low and high i16 halves.
static BYTE_PAIR_HIGH: [[u8; 32]; 2] = [per_lane([ZERO, 0, ZERO, 1]), per_lane([ZERO, 2, ZERO, 3])];

/// `v` with the bytes of each 32-bit lane selected by `pattern` (one of the patterns above).
#[inline(always)]
unsafe fn select(v: __m256i, pattern: &[u8; 32]) -> __m256i {
    _mm256_shuffle_epi8(v, _mm256_loadu_si256(pattern.as_ptr() as *const __m256i))
}

/// The f16 values in the low (`HIGH = false`) or high halves of the eight 32-bit lanes of `v`, as f32.
#[inline(always)]
unsafe fn halves_to_f32<const HIGH: bool>(v: __m256i) -> __m256 {
    let v = if HIGH { _mm256_srli_epi32::<16>(v) } else { _mm256_and_si256(v, _mm256_set1_epi32(0xFFFF)) };
    // Lanes are at most 0xFFFF, so the unsigned saturation of the pack keeps them.
    _mm256_cvtph_ps(_mm_packus_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v)))
}

/// Per i16 half of each 32-bit lane, the sum over `k` of the two products of the bytes of that half of `w[k]`
/// (unsigned) and of the four activations at `y + 4 (k0 + k)` (signed): `vpmaddubsw` per `k`, summed in i16. The
/// caller bounds the weights so that neither a `vpmaddubsw` pair nor the sum leaves the i16 range (the additions
/// wrap, so only the final sum matters).
#[inline(always)]
unsafe fn maddubs_sum<const K: usize>(w: &[__m256i], y: *const u8, k0: usize) -> __m256i {
    let mut p: [__m256i; K] = [_mm256_setzero_si256(); K];
    for (k, v) in p.iter_mut().enumerate() {
        *v = _mm256_maddubs_epi16(w[k], broadcast4(y, k0 + k));
    }
    // Pairwise, for short dependency chains.
    let mut width = K;
    while width > 1 {
        width /= 2;
        for k in 0..width {
            p[k] = _mm256_add_epi16(p[k], p[k + width]);
        }
    }
    p[0]
}

#[inline(always)]
fn store<const NT: usize>(acc: &[__m256; NT]) -> [[f32; ROWS]; NT] {
    let mut out = [[0f32; ROWS]; NT];
    for (o, a) in out.iter_mut().zip(acc) {
        // SAFETY (of the intrinsic): `o` holds 8 f32; only called from kernels compiled with AVX.
        unsafe { _mm256_storeu_ps(o.as_mut_ptr(), *a) };
    }
    out
}

// ---- Q4_K: d, dmin (f16) @0, 12 bytes of 6-bit scales and mins @4, 128 bytes of nibbles @16; against Q8_K
// (f32 d @0, i8 qs[256] @4, i16 bsums[16] @260) ----

/// Q4_K, eight rows by `NT` tokens.
///
/// Bounds: a group's weights are nibbles (0..15) and activations i8 (-128..127), so a `vpmaddubsw` pair is at most
/// 2 * 15 * 128 = 3840 in magnitude (no saturation) and the i16 sum of the eight steps of a group of 32 values
/// (16 products per i16 half) at most 16 * 15 * 128 = 30720 < 32768; times a 6-bit scale, summed by `vpmaddwd`
/// into i32, and over the eight groups, at most 8 * 2 * 30720 * 63 < 2^25.
#[inline(always)]
unsafe fn q4_k_rows8<const NT: usize>(nb: usize, rows: &WeightRows, t: &[Tok; NT]) -> [[f32; ROWS]; NT] {
    let mut acc = [_mm256_setzero_ps(); NT];
    let m4 = _mm256_set1_epi8(0x0F);
    let (c3f, c30) = (_mm256_set1_epi8(0x3F), _mm256_set1_epi8(0x30));
    for b in 0..nb {
        let base = b * Q4_K_BYTES;
        if NT == 1 {
            prefetch_rows(rows, base + PREFETCH);
            prefetch_rows(rows, base + 64 + PREFETCH);
        }
        // The block's first 16 bytes: d and dmin, then the 12 bytes of scales and mins.
        let [dd, g0, g1, g2] = transpose16(rows, base);
        let (dw, dmin) = (halves_to_f32::<false>(dd), halves_to_f32::<true>(dd));
        // ggml's get_scale_min_k4, four sub-blocks per 32-bit lane: scales/mins 0..4 are the low six bits of
        // bytes 0..4 / 4..8; 4..8 take their low four bits from bytes 8..12 and their top two from the top bits
        // of bytes 0..4 / 4..8.
        let top = |g: __m256i| _mm256_and_si256(_mm256_srli_epi32::<2>(g), c30);
        let sc_lo = _mm256_and_si256(g0, c3f);
        let sc_hi = _mm256_or_si256(_mm256_and_si256(g2, m4), top(g0));
        let m_lo = _mm256_and_si256(g1, c3f);
        let m_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32::<4>(g2), m4), top(g1));
        // Mins (2k, 2k + 1) as the i16 halves of each lane.
        let mins = [
            select(m_lo, &BYTE_PAIR[0]),
            select(m_lo, &BYTE_PAIR[1]),
            select(m_hi, &BYTE_PAIR[0]),
            select(m_hi, &BYTE_PAIR[1]),
        ];

        let mut total = [_mm256_setzero_si256(); NT];
        for j in 0..4 {
            // 32 bytes of nibbles: the low nibbles are group 2j, the high ones group 2j + 1.
            let raw = transpose32(rows, base + 16 + 32 * j);
            for half in 0..2 {
                let g = 2 * j + half;
                // (Loops, not `array::map`: a closure called through `map` is not compiled with this function's
                // target features, and its intrinsics would become calls.)
                let mut wq = raw;
                for v in wq.iter_mut() {
                    *v = _mm256_and_si256(if half == 0 { *v } else { _mm256_srli_epi32::<4>(*v) }, m4);
                }
                let sc = select(if g < 4 { sc_lo } else { sc_hi }, &BYTE_TWICE[g % 4]);
                // Two tokens per step (fewer loop and pointer instructions per token; the eight weight vectors and
                // two tokens' sums still fit the sixteen registers).
                let y = |i: usize| t[i].x.add(b * Q8_K_BYTES + Q8K_QS + 32 * g);
                let mut i = 0;
                while i + 2 <= NT {
                    let (sa, sb) = (maddubs_sum::<8>(&wq, y(i), 0), maddubs_sum::<8>(&wq, y(i + 1), 0));
                    total[i] = _mm256_add_epi32(total[i], _mm256_madd_epi16(sa, sc));
                    total[i + 1] = _mm256_add_epi32(total[i + 1], _mm256_madd_epi16(sb, sc));
                    i += 2;
                }
                if i < NT {
                    let s16 = maddubs_sum::<8>(&wq, y(i), 0);
                    total[i] = _mm256_add_epi32(total[i], _mm256_madd_epi16(s16, sc));
                }
            }
        }
        for i in 0..NT {
            let xb = t[i].x.add(b * Q8_K_BYTES);
            // The sums of the activations of each 32-value group, G0..G7 as i16 (each at most 32 * 128), in both
            // 128-bit halves: dword k of a half is (G_2k, G_2k+1).
            let bsums = load256(xb.add(Q8K_BSUMS));
            let g = _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256::<1>(bsums));
            let g = _mm256_set_m128i(g, g);
            let mut summ = _mm256_madd_epi16(mins[0], _mm256_shuffle_epi32::<0x00>(g));
            summ = _mm256_add_epi32(summ, _mm256_madd_epi16(mins[1], _mm256_shuffle_epi32::<0x55>(g)));
            summ = _mm256_add_epi32(summ, _mm256_madd_epi16(mins[2], _mm256_shuffle_epi32::<0xAA>(g)));
            summ = _mm256_add_epi32(summ, _mm256_madd_epi16(mins[3], _mm256_shuffle_epi32::<0xFF>(g)));
            let dx = _mm256_set1_ps((xb as *const f32).read_unaligned());
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total[i]), _mm256_mul_ps(dw, dx), acc[i]);
            acc[i] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(summ), _mm256_mul_ps(dmin, dx), acc[i]);
        }
    }
    store(&acc)
}

// ---- Q6_K: ql[128] @0 (low four bits), qh[64] @128 (top two bits), 16 i8 scales @192, d (f16) @208; against
// Q8_K. Value = d * scale * (q - 32), so sum (q - 32) y scale = sum q y scale - 32 * sum scale bsum. ----

/// The signed bytes `k` of the 32-bit lanes of `v` in both i16 halves of the lane.
#[inline(always)]
unsafe fn signed_byte_twice(v: __m256i, k: usize) -> __m256i {
    _mm256_srai_epi16::<8>(select(v, &BYTE_TWICE_HIGH[k]))
}

/// Q6_K, eight rows by `NT` tokens.
///
/// Bounds: the weights are 0..63 and the activations i8, so a `vpmaddubsw` pair is at most 2 * 63 * 128 = 16128 in
/// magnitude (no saturation) and the i16 sum of two steps (four products per i16 half) at most 32256 < 32768; a
/// scale group of 16 values takes two such sums, each multiplied by the group's scale (-128..127) and summed into
/// i32 by `vpmaddwd`; over the block, at most 256 * 63 * 128 * 128 < 2^29.
#[inline(always)]
unsafe fn q6_k_rows8<const NT: usize>(nb: usize, rows: &WeightRows, t: &[Tok; NT]) -> [[f32; ROWS]; NT] {
    let mut acc = [_mm256_setzero_ps(); NT];
    let (m4, m2, m30) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x03), _mm256_set1_epi8(0x30));
    for b in 0..nb {
        let base = b * Q6_K_BYTES;
        if NT == 1 {
            prefetch_rows(rows, base + PREFETCH);
            prefetch_rows(rows, base + 64 + PREFETCH);
            prefetch_rows(rows, base + 128 + PREFETCH);
        }
        let dw = halves_f32(rows, base + 208);
        // Scales 4m..4m+4 in lane bytes 0..4 of `sc4[m]`.
        let sc4 = transpose16(rows, base + 192);
        let mut total = [_mm256_setzero_si256(); NT];
        for half in 0..2 {
            let h = transpose32(rows, base + 128 + 32 * half);
            for lowbits in 0..2 {
                // Quarter `lowbits` (low nibbles) and `lowbits + 2` (high nibbles) share these 32 bytes of ql.
                let q = transpose32(rows, base + 64 * half + 32 * lowbits);
                for high_nibble in 0..2 {
                    let quarter = lowbits + 2 * high_nibble;
                    let mut wq = q;
                    for (w, hk) in wq.iter_mut().zip(&h) {
                        let low = if high_nibble == 0 { *w } else { _mm256_srli_epi32::<4>(*w) };
                        let top = match quarter {
                            0 => _mm256_slli_epi32::<4>(_mm256_and_si256(*hk, m2)),
                            1 => _mm256_slli_epi32::<4>(_mm256_and_si256(_mm256_srli_epi32::<2>(*hk), m2)),
                            2 => _mm256_and_si256(*hk, m30),
                            _ => _mm256_and_si256(_mm256_srli_epi32::<2>(*hk), m30),
                        };
                        *w = _mm256_or_si256(_mm256_and_si256(low, m4), top);
                    }
                    // Scale groups of 16: 8 * half + 2 * quarter and the next one.
                    let g = 8 * half + 2 * quarter;
                    let sa = signed_byte_twice(sc4[g / 4], g % 4);
                    let sb = signed_byte_twice(sc4[g / 4], g % 4 + 1);
                    for i in 0..NT {
                        let y = t[i].x.add(b * Q8_K_BYTES + Q8K_QS + 128 * half + 32 * quarter);
                        let a = _mm256_add_epi32(
                            _mm256_madd_epi16(maddubs_sum::<2>(&wq[0..2], y, 0), sa),
                            _mm256_madd_epi16(maddubs_sum::<2>(&wq[2..4], y, 2), sa),
                        );
                        let c = _mm256_add_epi32(
                            _mm256_madd_epi16(maddubs_sum::<2>(&wq[4..6], y, 4), sb),
                            _mm256_madd_epi16(maddubs_sum::<2>(&wq[6..8], y, 6), sb),
                        );
                        total[i] = _mm256_add_epi32(total[i], _mm256_add_epi32(a, c));
                    }
                }
            }
        }
        // Scale pairs (2k, 2k + 1) as the i16 halves of each lane, for the bsums correction.
        let mut pairs = [_mm256_setzero_si256(); 8];
        for (k, p) in pairs.iter_mut().enumerate() {
            *p = _mm256_srai_epi16::<8>(select(sc4[k / 2], &BYTE_PAIR_HIGH[k % 2]));
        }
        for i in 0..NT {
            let xb = t[i].x.add(b * Q8_K_BYTES);
            let mut corr = _mm256_setzero_si256();
            for (k, p) in pairs.iter().enumerate() {
                corr = _mm256_add_epi32(corr, _mm256_madd_epi16(*p, broadcast4(xb.add(Q8K_BSUMS), k)));
            }
            let sum = _mm256_sub_epi32(total[i], _mm256_slli_epi32::<5>(corr));
            let dx = _mm256_set1_ps((xb as *const f32).read_unaligned());
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_mul_ps(dw, dx), acc[i]);
        }
    }
    store(&acc)
}
