//! x86-64 AVX2 + FMA + F16C row tiles (kernel name `avx2-row`): one weight row against up to four activation rows
//! (tokens) per call, for Q4_0, Q4_1, Q8_0, Q4_K and Q6_K. On CPUs without AVX-512 VNNI it is the prefill kernel of
//! Q4_1 and Q8_0 (the other formats take the eight-row tiles of [`super::x86_avx2_rows8`] and
//! [`super::x86_avx2_rows8_kquant`]); with VNNI, those of [`super::x86_avx512vnni_tiles`]. It stays a candidate
//! for every format.
//!
//! A tile decodes each weight block once (nibbles, scales, mins) and multiplies it with every token of the tile, so
//! batched prefill pays the decoding cost once per block instead of once per block and token. Decode (one token)
//! runs the same code with a one-token tile, and every token's accumulation happens in the same order whatever the
//! tile width: batched prefill and token-by-token evaluation give bit-identical results.

use std::arch::x86_64::*;

use super::tile_common::{
    check, toks, Tok, L_Q4_0, L_Q4_1, L_Q4_K, L_Q6_K, L_Q8_0, Q4_1_BYTES, Q4_K_BYTES, Q6_K_BYTES, Q8K_BSUMS, Q8K_QS,
    Q8_0_BYTES, Q8_0_QS, Q8_1_BYTES, Q8_1_QS, Q8_K_BYTES,
};
use super::x86_common::{fp16, hsum_ps, load256, nibbles32, rd_u16};
use super::{ActivationRows, TileFn, TileKernel, TileShape};

use crate::ggml_type::GgmlType;

/// Tokens per call: four, so that a token's accumulators stay in the sixteen AVX2 registers.
const TOKENS: usize = 4;

/// The one-row tile kernel for weights of type `ty`. Call only when AVX2/FMA/F16C are present.
pub fn kernel(ty: GgmlType) -> Option<TileKernel> {
    let run: TileFn = match ty {
        GgmlType::Q4_0 => tile_q4_0,
        GgmlType::Q4_1 => tile_q4_1,
        GgmlType::Q8_0 => tile_q8_0,
        GgmlType::Q4_K => tile_q4_k,
        GgmlType::Q6_K => tile_q6_k,
        _ => return None,
    };
    Some(TileKernel { run, max_rows: 1, max_tokens: TOKENS })
}

/// i32 lanes holding the sums of four products of the unsigned bytes of `u` with the signed bytes of `s`.
/// Exact for `u <= 128`, `|s| <= 127` (no `vpmaddubsw` saturation).
#[inline(always)]
unsafe fn dot4(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// `acc` plus the pairwise-summed i32 products of the i16 lanes of `a` and `b`.
#[inline(always)]
unsafe fn madd_acc(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
    _mm256_add_epi32(acc, _mm256_madd_epi16(a, b))
}

// ---- safe entry points ----

macro_rules! tile_entry {
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
            unsafe fn run<const NT: usize>(nb: usize, w: *const u8, t: [Tok; NT]) -> [f32; NT] {
                $inner::<NT>(nb, w, &t)
            }
            let nb = check(n, &$layout, (1, TOKENS), w, w_row_bytes, x, first, shape, out);
            // SAFETY: handed out by `kernel` only after AVX2/FMA/F16C were detected; `check` verified
            // that the weight row and every token's row and scales hold `nb` whole blocks, and the kernels read
            // only inside those blocks.
            if shape.tokens == TOKENS {
                out[..TOKENS].copy_from_slice(&unsafe { run::<TOKENS>(nb, w.as_ptr(), toks(x, first)) });
            } else {
                for (i, o) in out[..shape.tokens].iter_mut().enumerate() {
                    *o = unsafe { run::<1>(nb, w.as_ptr(), toks(x, first + i)) }[0];
                }
            }
        }
    };
}

tile_entry!(tile_q4_0, q4_0_rows, L_Q4_0);
tile_entry!(tile_q4_1, q4_1_rows, L_Q4_1);
tile_entry!(tile_q8_0, q8_0_rows, L_Q8_0);
tile_entry!(tile_q4_k, q4_k_rows, L_Q4_K);
tile_entry!(tile_q6_k, q6_k_rows, L_Q6_K);

// ---- helpers (the shared ones are in `x86_common`) ----

/// The f16 scales at `p` and `p + stride`, as two broadcast vectors (one conversion for both).
#[inline(always)]
unsafe fn scale_pair(p: *const u8, stride: usize) -> [__m256; 2] {
    let both = rd_u16(p) as u32 | (rd_u16(p.add(stride)) as u32) << 16;
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(both as i32));
    [_mm256_broadcastss_ps(v), _mm256_broadcastss_ps(_mm_movehdup_ps(v))]
}

/// Two accumulators per token (even and odd blocks), added at the end: enough independent FMA chains for one
/// token, and the same order for any tile width.
#[inline(always)]
unsafe fn finish<const NT: usize>(acc: &[[__m256; 2]; NT]) -> [f32; NT] {
    // Loops, not `array::from_fn`: a closure would not be compiled with the caller's target features.
    let mut out = [0f32; NT];
    for (o, a) in out.iter_mut().zip(acc) {
        *o = hsum_ps(_mm256_add_ps(a[0], a[1]));
    }
    out
}

/// The horizontal sum of each token's accumulator.
#[inline(always)]
unsafe fn sums<const NT: usize>(acc: &[__m256; NT]) -> [f32; NT] {
    let mut out = [0f32; NT];
    for (o, a) in out.iter_mut().zip(acc) {
        *o = hsum_ps(*a);
    }
    out
}

// ---- 32-wide formats: weight row of `nb` blocks against Q8_0 / Q8_1 rows with f32 scales ----

/// Loop of the signed 32-wide format Q8_0: `decode(block)` gives the block's signed weights.
#[inline(always)]
unsafe fn signed32_rows<const NT: usize>(
    nb: usize,
    w: *const u8,
    wb: usize,
    t: &[Tok; NT],
    decode: impl Fn(*const u8) -> __m256i,
) -> [f32; NT] {
    let mut acc = [[_mm256_setzero_ps(); 2]; NT];
    let mut b = 0;
    while b < nb {
        let pair = b + 1 < nb;
        let dw = scale_pair(w.add(b * wb), if pair { wb } else { 0 });
        for k in 0..2 {
            if k == 1 && !pair {
                break;
            }
            let bk = b + k;
            let q = decode(w.add(bk * wb + 2));
            let aq = _mm256_sign_epi8(q, q);
            for i in 0..NT {
                let y = load256(t[i].x.add(bk * Q8_0_BYTES + Q8_0_QS));
                let p = _mm256_mul_ps(_mm256_cvtepi32_ps(dot4(aq, _mm256_sign_epi8(y, q))), dw[k]);
                acc[i][k] = _mm256_fmadd_ps(p, _mm256_broadcast_ss(&*t[i].s.add(bk)), acc[i][k]);
            }
        }
        b += 2;
    }
    finish(&acc)
}

/// Q4_0: the row kernel shared with the matrix-vector kernels (see [`super::x86_q4_0`]).
#[inline(always)]
unsafe fn q4_0_rows<const NT: usize>(nb: usize, w: *const u8, t: &[Tok; NT]) -> [f32; NT] {
    super::x86_q4_0::q4_0_row::<false, NT>(nb, w, t)
}

#[inline(always)]
unsafe fn q8_0_rows<const NT: usize>(nb: usize, w: *const u8, t: &[Tok; NT]) -> [f32; NT] {
    signed32_rows::<NT>(nb, w, Q8_0_BYTES, t, |p| load256(p))
}

#[inline(always)]
unsafe fn q4_1_rows<const NT: usize>(nb: usize, w: *const u8, t: &[Tok; NT]) -> [f32; NT] {
    let mut acc = [[_mm256_setzero_ps(); 2]; NT];
    let mut mins = [0f32; NT];
    let mut b = 0;
    while b < nb {
        let pair = b + 1 < nb;
        let step = if pair { Q4_1_BYTES } else { 0 };
        let dw = scale_pair(w.add(b * Q4_1_BYTES), step);
        let mw = scale_pair(w.add(b * Q4_1_BYTES + 2), step);
        for k in 0..2 {
            if k == 1 && !pair {
                break;
            }
            let bk = b + k;
            let q = nibbles32(w.add(bk * Q4_1_BYTES + 4));
            let m = _mm256_cvtss_f32(mw[k]);
            for i in 0..NT {
                let y = load256(t[i].x.add(bk * Q8_1_BYTES + Q8_1_QS));
                let p = _mm256_mul_ps(_mm256_cvtepi32_ps(dot4(q, y)), dw[k]);
                acc[i][k] = _mm256_fmadd_ps(p, _mm256_broadcast_ss(&*t[i].s.add(2 * bk)), acc[i][k]);
                mins[i] += m * *t[i].s.add(2 * bk + 1);
            }
        }
        b += 2;
    }
    let mut out = finish(&acc);
    for (o, m) in out.iter_mut().zip(mins) {
        *o += m;
    }
    out
}

// ---- K-quants against Q8_K (f32 d @0, i8 qs[256] @4, i16 bsums[16] @260) ----

/// The scales and mins of a Q4_K block as i16 lanes: scales `[s0 x16, s1 x16]`-style pairs are built by the caller;
/// here lane `2j` and `2j + 1` of the returned mins vector both hold `m[j]` (so `madd` with the 16 bsums gives
/// `m[j] * (bsum[2j] + bsum[2j+1])`).
#[inline(always)]
unsafe fn q4_k_scales_mins(q: *const u8) -> ([i16; 8], __m256i) {
    let q = std::slice::from_raw_parts(q, 12);
    let (mut sc, mut m) = ([0i16; 8], [0i16; 8]);
    for j in 0..8 {
        let (s, mm) = if j < 4 {
            (q[j] & 63, q[j + 4] & 63)
        } else {
            ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
        };
        sc[j] = s as i16;
        m[j] = mm as i16;
    }
    let mins = _mm256_set_epi16(
        m[7], m[7], m[6], m[6], m[5], m[5], m[4], m[4], m[3], m[3], m[2], m[2], m[1], m[1], m[0], m[0],
    );
    (sc, mins)
}

#[inline(always)]
unsafe fn q4_k_rows<const NT: usize>(nb: usize, w: *const u8, t: &[Tok; NT]) -> [f32; NT] {
    let mut acc = [_mm256_setzero_ps(); NT];
    let m4 = _mm256_set1_epi8(0x0F);
    for b in 0..nb {
        let wb = w.add(b * Q4_K_BYTES);
        let (d, dmin) = (fp16(wb), fp16(wb.add(2)));
        let (sc, mins) = q4_k_scales_mins(wb.add(4));
        // Two integer chains per token (low and high nibbles) so that the multiply-accumulate latency overlaps.
        let mut sumi = [[_mm256_setzero_si256(); 2]; NT];
        for j in 0..4 {
            let bits = load256(wb.add(16 + 32 * j));
            let lo = _mm256_and_si256(bits, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
            let (sl, sh) = (_mm256_set1_epi16(sc[2 * j]), _mm256_set1_epi16(sc[2 * j + 1]));
            for i in 0..NT {
                let q8 = t[i].x.add(b * Q8_K_BYTES + Q8K_QS + 64 * j);
                sumi[i][0] = madd_acc(sumi[i][0], _mm256_maddubs_epi16(lo, load256(q8)), sl);
                sumi[i][1] = madd_acc(sumi[i][1], _mm256_maddubs_epi16(hi, load256(q8.add(32))), sh);
            }
        }
        for i in 0..NT {
            let xb = t[i].x.add(b * Q8_K_BYTES);
            let dx = (xb as *const f32).read_unaligned();
            let summ = _mm256_madd_epi16(load256(xb.add(Q8K_BSUMS)), mins);
            let sumi = _mm256_add_epi32(sumi[i][0], sumi[i][1]);
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), _mm256_set1_ps(d * dx), acc[i]);
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(summ), _mm256_set1_ps(-dmin * dx), acc[i]);
        }
    }
    sums(&acc)
}

#[inline(always)]
unsafe fn q6_k_rows<const NT: usize>(nb: usize, w: *const u8, t: &[Tok; NT]) -> [f32; NT] {
    let mut acc = [_mm256_setzero_ps(); NT];
    let m4 = _mm256_set1_epi8(0x0F);
    let m2 = _mm256_set1_epi8(0x03);
    for b in 0..nb {
        let wb = w.add(b * Q6_K_BYTES);
        let d = fp16(wb.add(208));
        let sc8 = _mm_loadu_si128(wb.add(192) as *const __m128i);
        // The 16 group scales as i16: (q - 32) * y summed with scales = q * y with scales - 32 * scales . bsums.
        let sc16 = _mm256_cvtepi8_epi16(sc8);
        // Two integer chains per token (even and odd 32-value groups), as in Q4_K.
        let mut sumi = [[_mm256_setzero_si256(); 2]; NT];
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
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(b1, 4), m4),
                    _mm256_and_si256(qh, _mm256_set1_epi8(0x30)),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16(b2, 4), m4),
                    _mm256_and_si256(_mm256_srli_epi16(qh, 2), _mm256_set1_epi8(0x30)),
                ),
            ];
            for (k, qk) in q.iter().enumerate() {
                // Scales of the two 16-value groups of these 32 values: lanes 0..7 and 8..15.
                let g = 8 * half + 2 * k;
                let s = _mm256_set_m128i(
                    _mm_set1_epi16(*wb.add(192 + g + 1) as i8 as i16),
                    _mm_set1_epi16(*wb.add(192 + g) as i8 as i16),
                );
                for i in 0..NT {
                    let y = load256(t[i].x.add(b * Q8_K_BYTES + Q8K_QS + 128 * half + 32 * k));
                    sumi[i][k & 1] = madd_acc(sumi[i][k & 1], _mm256_maddubs_epi16(*qk, y), s);
                }
            }
        }
        for i in 0..NT {
            let xb = t[i].x.add(b * Q8_K_BYTES);
            let dx = (xb as *const f32).read_unaligned();
            let corr = _mm256_slli_epi32(_mm256_madd_epi16(load256(xb.add(Q8K_BSUMS)), sc16), 5);
            let total = _mm256_sub_epi32(_mm256_add_epi32(sumi[i][0], sumi[i][1]), corr);
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total), _mm256_set1_ps(d * dx), acc[i]);
        }
    }
    sums(&acc)
}
