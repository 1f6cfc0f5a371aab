//! x86-64 AVX2 + FMA + F16C eight-row tiles (kernel name `avx2-rows8`) for Q4_0 and Q8_0: eight weight rows times
//! up to [`TOKENS`] tokens per call, one output per vector lane, on the mapped (not repacked) weights. The prefill
//! kernel of these formats on CPUs without AVX-512 VNNI; `avx2-rows8-gemv` is its matrix-vector twin for decode.
//!
//! The AVX2 port of the eight-row kernels of [`super::x86_avx512vnni_tiles`] (`q4_0_rows8`, `q8_0_rows8`), with the
//! same per-lane arithmetic: lane `r` of every vector belongs to weight row `r`; each weight block of the eight rows
//! is transposed in registers so that one 32-bit lane holds four consecutive weights of its row, and those are
//! multiplied with the same four activations broadcast to every lane. Per block, token and row the exact integer
//! `isum = sum w y` is formed, then `acc = fma(f32(isum), dw * dx, acc)`: one conversion, one multiplication and
//! one FMA per block, token and eight rows, in block order. AVX-512 VNNI's `vpdpbusd` becomes `vpmaddubsw` (pairs
//! of u8 x i8 products into i16) and `vpmaddwd` with ones (pairs of i16 into i32); the integer sums are exact in
//! both, so every result is bit-identical to the `avx512vnni-rows8` tile's.
//!
//! Lanes never interact, so a result does not depend on the tile's shape: one token (decode) and [`TOKENS`] tokens
//! (prefill) give bit-identical values, and a partial tile (fewer than eight rows) repeats the last row in the
//! unused lanes and drops them. The matrix-vector twin ([`gemv`]) is the same one-token kernel over a whole run of
//! rows in one call, eight rows at a time, asking for the next eight rows' blocks as it reads these.
//!
//! (An address-order twin, each row from its first block to its last with the `avx2-gemv` row kernel's integer
//! sums and then the tile's FMAs of four rows side by side, streamed at 0.75 to 0.85 of `avx2-gemv` from memory on
//! an AVX2-only Zen 3 under load, and at 0.75 of it from L2: its per-block float steps and transposes cost more
//! than the eight-row kernel's decode. The eight-row kernel at one token runs at 1.3 times `avx2-gemv` from L2.)

use std::arch::x86_64::*;

use super::tile_common::{check, toks, Tok, L_Q4_0, L_Q8_0, Q4_0_BYTES, Q8_0_BYTES, Q8_0_QS};
use super::x86_avx2_avx512vnni_gemv::check_gemv;
use super::x86_common::rd_u16;
use super::{ActivationRows, GemvFn, TileFn, TileKernel, TileShape};
use crate::ggml_type::GgmlType;

/// Rows per call: one per 32-bit lane of a 256-bit vector.
pub(super) const ROWS: usize = 8;

/// Tokens per call: four share each transposed weight block. (With eight, the eight accumulators and the eight
/// transposed weight vectors fill the sixteen AVX2 registers and the loop spills.)
const TOKENS: usize = 4;

/// The eight-row tile for weights of type `ty`. Call only when AVX2/FMA/F16C are present.
pub fn kernel(ty: GgmlType) -> Option<TileKernel> {
    let run: TileFn = match ty {
        GgmlType::Q4_0 => rows8_q4_0,
        GgmlType::Q8_0 => rows8_q8_0,
        _ => return None,
    };
    Some(TileKernel { run, max_rows: ROWS, max_tokens: TOKENS })
}

/// The matrix-vector twin of the tile for `ty` (`avx2-rows8-gemv`, bit-identical to it). Call only when
/// AVX2/FMA/F16C are present.
pub fn gemv(ty: GgmlType) -> Option<GemvFn> {
    Some(match ty {
        GgmlType::Q4_0 => gemv_q4_0,
        GgmlType::Q8_0 => gemv_q8_0,
        _ => return None,
    })
}

macro_rules! rows8_entry {
    ($name:ident, $format:ty, $layout:expr) => {
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
                rows8::<$format, NT>(nb, rows, &t)
            }
            let nb = check(n, &$layout, (ROWS, TOKENS), w, w_row_bytes, x, first, shape, out);
            let rows = WeightRows::new(w, w_row_bytes, shape.rows);
            let mut put = |t: usize, res: &[[f32; ROWS]]| {
                for (i, lanes) in res.iter().enumerate() {
                    for (r, v) in lanes[..shape.rows].iter().enumerate() {
                        out[r * shape.ld + t + i] = *v;
                    }
                }
            };
            // SAFETY (of the `run` calls): handed out by `kernel` only after AVX2/FMA/F16C were detected; `check`
            // verified that `shape.rows` weight rows of `nb` blocks and every token's row, scales and sums are in
            // bounds, and `WeightRows` points the unused lanes at the last valid row.
            let mut t = 0;
            while t < shape.tokens {
                let left = shape.tokens - t;
                if left >= TOKENS {
                    put(t, &unsafe { run::<TOKENS>(nb, &rows, toks(x, first + t)) });
                    t += TOKENS;
                } else if left >= TOKENS / 2 {
                    put(t, &unsafe { run::<{ TOKENS / 2 }>(nb, &rows, toks(x, first + t)) });
                    t += TOKENS / 2;
                } else {
                    put(t, &unsafe { run::<1>(nb, &rows, toks(x, first + t)) });
                    t += 1;
                }
            }
        }
    };
}

rows8_entry!(rows8_q4_0, Q4_0Rows, L_Q4_0);
rows8_entry!(rows8_q8_0, Q8_0Rows, L_Q8_0);

/// The start of each of the eight rows of a tile (rows past the tile's end repeat its last row).
pub(super) struct WeightRows {
    /// Row `r`'s first byte.
    pub p: [*const u8; ROWS],
    /// Distance from a row to the same row of the next tile (eight rows on).
    pub next_tile: usize,
}

impl WeightRows {
    /// The rows of a tile of `rows` (1 to 8) rows, `row_bytes` apart from the start of `w`. Panics when a row
    /// starts past the end of `w`.
    pub(super) fn new(w: &[u8], row_bytes: usize, rows: usize) -> WeightRows {
        let off = |r: usize| r.min(rows - 1) * row_bytes;
        WeightRows { p: std::array::from_fn(|r| w[off(r)..].as_ptr()), next_tile: ROWS * row_bytes }
    }
}

/// Asks for the cache line `at` bytes into each of the eight rows. Prefetches never fault, so addresses past the
/// end of the matrix are harmless.
#[inline(always)]
pub(super) unsafe fn prefetch_rows(rows: &WeightRows, at: usize) {
    for p in rows.p {
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(at) as *const i8);
    }
}

/// Dword `j` (bytes `4j..4j+4`) of the 16 bytes at `p[r] + at`, for `j = 0..4`, each as a vector with lane `r`
/// from row `r`: a 4x8 transpose of 32-bit lanes.
#[inline(always)]
pub(super) unsafe fn transpose16(rows: &WeightRows, at: usize) -> [__m256i; 4] {
    let load128 = |r: usize| _mm_loadu_si128(rows.p[r].add(at) as *const __m128i);
    let ld = |r: usize| _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(load128(r)), load128(r + 4));
    let (a0, a1, a2, a3) = (ld(0), ld(1), ld(2), ld(3));
    let (t0, t1) = (_mm256_unpacklo_epi32(a0, a1), _mm256_unpackhi_epi32(a0, a1));
    let (t2, t3) = (_mm256_unpacklo_epi32(a2, a3), _mm256_unpackhi_epi32(a2, a3));
    [
        _mm256_unpacklo_epi64(t0, t2),
        _mm256_unpackhi_epi64(t0, t2),
        _mm256_unpacklo_epi64(t1, t3),
        _mm256_unpackhi_epi64(t1, t3),
    ]
}

/// The f16 values at `p[r] + at` of the eight rows as f32 lanes (the 32-wide formats' block scale), from eight
/// scalar loads.
#[inline(always)]
pub(super) unsafe fn halves_f32(rows: &WeightRows, at: usize) -> __m256 {
    let h = |r: usize| rd_u16(rows.p[r].add(at)) as i16;
    _mm256_cvtph_ps(_mm_setr_epi16(h(0), h(1), h(2), h(3), h(4), h(5), h(6), h(7)))
}

/// Low and high nibbles of 16 transposed bytes: lanes hold weights 0..16 (low) and 16..32 (high) of the block,
/// four per lane in order.
#[inline(always)]
pub(super) unsafe fn nibbles_transposed(rows: &WeightRows, at: usize) -> [__m256i; 8] {
    let d = transpose16(rows, at);
    let m4 = _mm256_set1_epi8(0x0F);
    let lo = |v: __m256i| _mm256_and_si256(v, m4);
    let hi = |v: __m256i| _mm256_and_si256(_mm256_srli_epi32::<4>(v), m4);
    [lo(d[0]), lo(d[1]), lo(d[2]), lo(d[3]), hi(d[0]), hi(d[1]), hi(d[2]), hi(d[3])]
}

/// Activations `4k .. 4k + 4` at `y` broadcast to every 32-bit lane.
#[inline(always)]
pub(super) unsafe fn broadcast4(y: *const u8, k: usize) -> __m256i {
    _mm256_set1_epi32((y.add(4 * k) as *const i32).read_unaligned())
}

/// A 32-wide weight format of the eight-row kernels: its block size, how a block of the eight rows is decoded, and
/// the exact integer sums of a decoded block with one token's activations. (A trait, not closures: a closure is not
/// compiled with the caller's target features, and where LLVM does not inline it, as in the fat-LTO library, its
/// intrinsics become calls.)
trait Rows8Format {
    /// Bytes of one weight block.
    const WB: usize;
    /// A decoded block of the eight rows.
    type Weights;

    /// The block of the eight rows whose quants start `at` bytes into each row.
    ///
    /// # Safety
    /// AVX2 is present and the rows hold the block.
    unsafe fn decode(rows: &WeightRows, at: usize) -> Self::Weights;

    /// Lane `r`: the exact integer `sum w y` of row `r`'s block against the 32 activation quants at `y`, whose sum
    /// is `sum`.
    ///
    /// # Safety
    /// AVX2 is present and `y` points to 32 readable bytes.
    unsafe fn dot(w: &Self::Weights, y: *const u8, sum: i32) -> __m256i;
}

/// The shared loop of the 32-wide formats against Q8_0 activations: per block, the eight rows' f16 scales and
/// decoded weights, then per token the exact integer sums and the float steps of the `avx512vnni-rows8` tile.
#[inline(always)]
unsafe fn rows8<F: Rows8Format, const NT: usize>(nb: usize, rows: &WeightRows, t: &[Tok; NT]) -> [[f32; ROWS]; NT] {
    let wb = F::WB;
    let mut acc = [_mm256_setzero_ps(); NT];
    for b in 0..nb {
        if NT == 1 && b % 2 == 0 {
            // Decode streams the rows from memory once per token, eight short streams at once, which the hardware
            // prefetchers do not keep ahead of: ask for the same blocks of the next eight rows (the next tile,
            // contiguous with these in a matrix). (TinyLlama-shaped Q4_0 rows of 2048 values, from memory, one
            // thread: 512 bytes ahead along each row instead ran at 0.83 of `avx2-gemv`, this at 0.95 to 1.0;
            // rows of 5632 values 1.0 and 1.1 to 1.3.)
            prefetch_rows(rows, rows.next_tile + b * wb);
        }
        let dw = halves_f32(rows, b * wb);
        let wq = F::decode(rows, b * wb + 2);
        for i in 0..NT {
            let isum = F::dot(&wq, t[i].x.add(b * Q8_0_BYTES + Q8_0_QS), *t[i].sum.add(b));
            let d = _mm256_mul_ps(dw, _mm256_broadcast_ss(&*t[i].s.add(b)));
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), d, acc[i]);
        }
    }
    let mut out = [[0f32; ROWS]; NT];
    for (o, a) in out.iter_mut().zip(&acc) {
        _mm256_storeu_ps(o.as_mut_ptr(), *a);
    }
    out
}

/// Q4_0: `sum (q - 8) y = sum q y - 8 sum y` with the nibbles `q` as unsigned bytes. Each `vpmaddubsw` lane is
/// `q0 y0 + q1 y1` with `q` in 0..=15 and `y` in -128..=127, so in -3840..=3810 (no saturation); the eight of a
/// block added in i16 are in -30720..=30480 (no wrap), and `vpmaddwd` with ones adds a lane's two halves in i32.
struct Q4_0Rows;

impl Rows8Format for Q4_0Rows {
    const WB: usize = Q4_0_BYTES;
    type Weights = [__m256i; 8];

    #[inline(always)]
    unsafe fn decode(rows: &WeightRows, at: usize) -> [__m256i; 8] {
        nibbles_transposed(rows, at)
    }

    #[inline(always)]
    unsafe fn dot(wq: &[__m256i; 8], y: *const u8, sum: i32) -> __m256i {
        let mut p = [_mm256_setzero_si256(); 8];
        for (k, pk) in p.iter_mut().enumerate() {
            *pk = _mm256_maddubs_epi16(wq[k], broadcast4(y, k));
        }
        let s01 = _mm256_add_epi16(_mm256_add_epi16(p[0], p[1]), _mm256_add_epi16(p[2], p[3]));
        let s23 = _mm256_add_epi16(_mm256_add_epi16(p[4], p[5]), _mm256_add_epi16(p[6], p[7]));
        let dot = _mm256_madd_epi16(_mm256_add_epi16(s01, s23), _mm256_set1_epi16(1));
        _mm256_sub_epi32(dot, _mm256_slli_epi32::<3>(_mm256_set1_epi32(sum)))
    }
}

/// Q8_0: `sum w y` with `vpmaddubsw` of `|w|` (0..=128) and `y` signed by `w` (the quantizer's -127..=127): pairs
/// of products in -32512..=32512 (no saturation), each widened by `vpmaddwd` with ones before they are added.
struct Q8_0Rows;

impl Rows8Format for Q8_0Rows {
    const WB: usize = Q8_0_BYTES;
    /// The signed weights and their magnitudes.
    type Weights = ([__m256i; 8], [__m256i; 8]);

    #[inline(always)]
    unsafe fn decode(rows: &WeightRows, at: usize) -> Self::Weights {
        let (a, b) = (transpose16(rows, at), transpose16(rows, at + 16));
        let wq = [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]];
        let mut abs = wq;
        for v in abs.iter_mut() {
            *v = _mm256_sign_epi8(*v, *v);
        }
        (wq, abs)
    }

    #[inline(always)]
    unsafe fn dot((wq, abs): &Self::Weights, y: *const u8, _sum: i32) -> __m256i {
        let mut p = [_mm256_setzero_si256(); 8];
        for (k, pk) in p.iter_mut().enumerate() {
            let prod = _mm256_maddubs_epi16(abs[k], _mm256_sign_epi8(broadcast4(y, k), wq[k]));
            *pk = _mm256_madd_epi16(prod, _mm256_set1_epi16(1));
        }
        let s01 = _mm256_add_epi32(_mm256_add_epi32(p[0], p[1]), _mm256_add_epi32(p[2], p[3]));
        let s23 = _mm256_add_epi32(_mm256_add_epi32(p[4], p[5]), _mm256_add_epi32(p[6], p[7]));
        _mm256_add_epi32(s01, s23)
    }
}

// ---- the matrix-vector entry (`avx2-rows8-gemv`) ----

macro_rules! gemv_entry {
    ($name:ident, $format:ty, $layout:expr) => {
        /// The one-token kernel of the tile over a whole run of rows in one call (decode): the rows in tiles of
        /// eight, each tile asking for the next one's rows as it goes (see [`rows8`]); bit-identical to the tile.
        fn $name(n: usize, w: &[u8], w_row_bytes: usize, x: &ActivationRows<'_>, out: &mut [f32]) {
            #[target_feature(enable = "avx2,fma,f16c")]
            unsafe fn run(nb: usize, rows: &WeightRows, t: [Tok; 1]) -> [[f32; ROWS]; 1] {
                rows8::<$format, 1>(nb, rows, &t)
            }
            let (nb, t) = check_gemv(n, &$layout, w, w_row_bytes, x, out);
            for (i, o) in out.chunks_mut(ROWS).enumerate() {
                let rows = WeightRows::new(&w[i * ROWS * w_row_bytes..], w_row_bytes, o.len());
                // SAFETY: handed out by `gemv` only after AVX2/FMA/F16C were detected; `check_gemv` verified that
                // `out.len()` rows of `nb` blocks, `w_row_bytes` apart, and the token's blocks, scales and sums are
                // in bounds, and `WeightRows` points the unused lanes at the last valid row.
                let res = unsafe { run(nb, &rows, [t]) };
                o.copy_from_slice(&res[0][..o.len()]);
            }
        }
    };
}

gemv_entry!(gemv_q4_0, Q4_0Rows, L_Q4_0);
gemv_entry!(gemv_q8_0, Q8_0Rows, L_Q8_0);
