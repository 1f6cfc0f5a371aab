//! x86-64 AVX-512 VNNI (+ VL, BW) eight-row tiles (kernel name `avx512vnni-rows8`): eight weight rows times up to
//! eight tokens per call, one output per vector lane, for Q4_0, Q4_1, Q8_0, Q4_K and Q6_K. The prefill (and default
//! decode) kernel of these formats on CPUs with AVX-512 VNNI. Q4_0, Q8_0, Q4_K and Q6_K take sixteen rows per call: groups of
//! four and eight tokens run in 512-bit vectors (lane `r` = row `r` of sixteen), so that a weight block is
//! decoded once for sixteen rows and each broadcast activation word feeds sixteen rows; their one-token calls
//! (decode) and the last tokens of a tile run the eight-row kernel on each half, with the same per-lane arithmetic.
//!
//! Lane `r` of every vector belongs to weight row `r`. Each weight block of the eight rows is transposed in
//! registers so that one 32-bit lane holds four consecutive weights of its row, and `vpdpbusd` multiplies them
//! with the same four activations broadcast to every lane. A block then costs eight `vpdpbusd` per token for
//! eight rows, and its scales are applied once per lane (one conversion and one FMA per block, token and eight
//! rows) instead of once per eight partial sums as in the one-row kernels. The transposition is paid once per
//! block and shared by the tokens of the tile.
//!
//! Lanes never interact, so a result does not depend on the tile's shape: one token (decode) and eight tokens
//! (prefill) give bit-identical values, and a partial tile (fewer than eight rows) repeats the last row in the
//! unused lanes and drops them.

use std::arch::x86_64::*;

use super::tile_common::{
    check, toks, Tok, L_Q4_0, L_Q4_1, L_Q4_K, L_Q6_K, L_Q8_0, Q4_0_BYTES, Q4_1_BYTES, Q4_K_BYTES, Q6_K_BYTES,
    Q8K_BSUMS, Q8K_QS, Q8_0_BYTES, Q8_0_QS, Q8_1_BYTES, Q8_1_QS, Q8_K_BYTES,
};
use super::x86_common::rd_u16;
use super::{ActivationRows, TileFn, TileKernel, TileShape};
use crate::ggml_type::GgmlType;

/// Rows per call of the eight-row tiles, and per pass of the one-token calls of the sixteen-row ones.
const ROWS: usize = 8;

/// Rows per call of the Q4_0 and Q8_0 tiles: sixteen, one per 32-bit lane of a 512-bit vector.
const WIDE_ROWS: usize = 16;

/// Tokens per call: eight share each transposed weight block (AVX-512 has 32 vector registers).
const TOKENS: usize = 8;

/// Software prefetch distance in bytes along each weight row.
const PREFETCH: usize = 512;

/// The eight-row kernel for weights of type `ty`. Call only when AVX2/FMA/F16C and AVX-512 VNNI/VL/BW are present.
pub fn kernel(ty: GgmlType) -> Option<TileKernel> {
    let (run, max_rows): (TileFn, usize) = match ty {
        GgmlType::Q4_0 => (rows16_q4_0, WIDE_ROWS),
        GgmlType::Q4_1 => (rows8_q4_1, ROWS),
        GgmlType::Q8_0 => (rows16_q8_0, WIDE_ROWS),
        GgmlType::Q4_K => (rows16_q4_k, WIDE_ROWS),
        GgmlType::Q6_K => (rows16_q6_k, WIDE_ROWS),
        _ => return None,
    };
    Some(TileKernel { run, max_rows, max_tokens: TOKENS })
}

/// The eight-token, four-token and one-token calls of an eight-row kernel over `tokens` tokens from token `t`
/// (the same per-lane arithmetic in each); `put(t, lanes)` stores a token's eight results.
macro_rules! narrow_tokens {
    ($run:ident, $nb:expr, $rows:expr, $x:expr, $first:expr, $t:expr, $tokens:expr, $put:expr) => {{
        let mut t = $t;
        while t < $tokens {
            let left = $tokens - t;
            if left >= TOKENS {
                let res = unsafe { $run::<TOKENS>($nb, $rows, toks($x, $first + t)) };
                res.iter().enumerate().for_each(|(i, lanes)| $put(t + i, lanes));
                t += TOKENS;
            } else if left >= TOKENS / 2 {
                let res = unsafe { $run::<{ TOKENS / 2 }>($nb, $rows, toks($x, $first + t)) };
                res.iter().enumerate().for_each(|(i, lanes)| $put(t + i, lanes));
                t += TOKENS / 2;
            } else {
                $put(t, &unsafe { $run::<1>($nb, $rows, toks($x, $first + t)) }[0]);
                t += 1;
            }
        }
    }};
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
            #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vnni,avx512vl,avx512bw")]
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
            // SAFETY (of the `run` calls): handed out by `kernel` only after the CPU features above were detected;
            // `check` verified that `shape.rows` weight rows of `nb` blocks and every token's row, scales and sums
            // are in bounds, and `WeightRows` points the unused lanes at the last valid row.
            narrow_tokens!(run, nb, &rows, x, first, 0, shape.tokens, put);
        }
    };
}

/// The entry of a sixteen-row kernel (`$wide`, 512-bit) with its eight-row twin (`$narrow`, the same per-lane
/// arithmetic in 256 bits): tiles of more than eight rows take groups of four and eight tokens in the wide kernel,
/// one weight decode for sixteen rows; tiles of at most eight rows and the last one to three tokens of a tile go
/// through the eight-row kernel, in two passes of eight rows when the tile has more. So decode (one token) streams
/// eight rows at a time as the eight-row tiles do, and every result is the same whichever kernel computed it.
macro_rules! rows16_entry {
    ($name:ident, $narrow:ident, $wide:ident, $layout:expr) => {
        fn $name(
            n: usize,
            w: &[u8],
            w_row_bytes: usize,
            x: &ActivationRows<'_>,
            first: usize,
            shape: TileShape,
            out: &mut [f32],
        ) {
            #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vnni,avx512vl,avx512bw")]
            unsafe fn run<const NT: usize>(nb: usize, rows: &WeightRows, t: [Tok; NT]) -> [[f32; ROWS]; NT] {
                $narrow::<NT>(nb, rows, &t)
            }
            #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vnni,avx512vl,avx512bw")]
            unsafe fn run_wide<const NT: usize>(nb: usize, rows: &WideRows, t: [Tok; NT]) -> [[f32; WIDE_ROWS]; NT] {
                $wide::<NT>(nb, rows, &t)
            }
            let nb = check(n, &$layout, (WIDE_ROWS, TOKENS), w, w_row_bytes, x, first, shape, out);
            let (ld, n_rows) = (shape.ld, shape.rows);
            // SAFETY (of the `run` and `run_wide` calls): handed out by `kernel` only after the CPU features above
            // were detected; `check` verified that `shape.rows` weight rows of `nb` blocks and every token's row,
            // scales and sums are in bounds, `WideRows` and `WeightRows` point the unused lanes at the last valid
            // row, and each eight-row pass starts at one of the tile's rows.
            let mut t = 0;
            // The wide kernel only runs groups of four or more tokens: one-token calls (decode) build no
            // `WideRows`.
            if n_rows > ROWS && shape.tokens >= TOKENS / 2 {
                let rows = WideRows::new(w, w_row_bytes, n_rows);
                let mut put = |t: usize, lanes: &[f32; WIDE_ROWS]| {
                    for (r, v) in lanes[..n_rows].iter().enumerate() {
                        out[r * ld + t] = *v;
                    }
                };
                while shape.tokens - t >= TOKENS / 2 {
                    if shape.tokens - t >= TOKENS {
                        let res = unsafe { run_wide::<TOKENS>(nb, &rows, toks(x, first + t)) };
                        res.iter().enumerate().for_each(|(i, lanes)| put(t + i, lanes));
                        t += TOKENS;
                    } else {
                        let res = unsafe { run_wide::<{ TOKENS / 2 }>(nb, &rows, toks(x, first + t)) };
                        res.iter().enumerate().for_each(|(i, lanes)| put(t + i, lanes));
                        t += TOKENS / 2;
                    }
                }
            }
            for r0 in (0..n_rows).step_by(ROWS) {
                let take = (n_rows - r0).min(ROWS);
                let rows = WeightRows::new(&w[r0 * w_row_bytes..], w_row_bytes, take);
                let o = &mut out[r0 * ld..];
                let mut put = |t: usize, lanes: &[f32; ROWS]| {
                    for (r, v) in lanes[..take].iter().enumerate() {
                        o[r * ld + t] = *v;
                    }
                };
                narrow_tokens!(run, nb, &rows, x, first, t, shape.tokens, put);
            }
        }
    };
}

rows16_entry!(rows16_q4_0, q4_0_rows8, q4_0_rows16, L_Q4_0);
rows8_entry!(rows8_q4_1, q4_1_rows8, L_Q4_1);
rows16_entry!(rows16_q8_0, q8_0_rows8, q8_0_rows16, L_Q8_0);
rows16_entry!(rows16_q4_k, q4_k_rows8, q4_k_rows16, L_Q4_K);
rows16_entry!(rows16_q6_k, q6_k_rows8, q6_k_rows16, L_Q6_K);

/// The start of each of the eight rows of a tile (rows past the tile's end repeat its last row), and their byte
/// offsets from the first row for gathers.
struct WeightRows {
    p: [*const u8; ROWS],
    offsets: [i32; ROWS],
    /// Distance from a row to the same row of the next tile (eight rows on).
    next_tile: usize,
}

impl WeightRows {
    fn new(w: &[u8], row_bytes: usize, rows: usize) -> WeightRows {
        let off = |r: usize| r.min(rows - 1) * row_bytes;
        // Offsets fit in i32: a tile spans at most 8 rows of a matrix whose rows are far below 256 MiB.
        assert!(off(ROWS - 1) < i32::MAX as usize, "weight rows too long for a gather");
        WeightRows {
            p: std::array::from_fn(|r| w[off(r)..].as_ptr()),
            offsets: std::array::from_fn(|r| off(r) as i32),
            next_tile: ROWS * row_bytes,
        }
    }
}

/// Asks for the cache line `ahead` bytes past `at` in each of the eight rows. Used in decode (one-token tiles),
/// where the rows stream from memory once per token and eight streams at once are more than the hardware
/// prefetchers keep ahead of; a prefill tile re-reads rows that are already cached. Prefetches never fault, so
/// addresses past the end of the matrix are harmless.
#[inline(always)]
unsafe fn prefetch_rows(rows: &WeightRows, at: usize, ahead: usize) {
    for p in rows.p {
        _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(at + ahead) as *const i8);
    }
}

#[inline(always)]
unsafe fn load128(p: *const u8) -> __m128i {
    _mm_loadu_si128(p as *const __m128i)
}

/// Dword `j` (bytes `4j..4j+4`) of the 16 bytes at `p[r] + at`, for `j = 0..4`, each as a vector with lane `r`
/// from row `r`: a 4x8 transpose of 32-bit lanes.
#[inline(always)]
unsafe fn transpose16(rows: &WeightRows, at: usize) -> [__m256i; 4] {
    let ld = |r: usize, s: usize| {
        _mm256_inserti128_si256(_mm256_castsi128_si256(load128(rows.p[r].add(at))), load128(rows.p[s].add(at)), 1)
    };
    let (a0, a1, a2, a3) = (ld(0, 4), ld(1, 5), ld(2, 6), ld(3, 7));
    let (t0, t1) = (_mm256_unpacklo_epi32(a0, a1), _mm256_unpackhi_epi32(a0, a1));
    let (t2, t3) = (_mm256_unpacklo_epi32(a2, a3), _mm256_unpackhi_epi32(a2, a3));
    [
        _mm256_unpacklo_epi64(t0, t2),
        _mm256_unpackhi_epi64(t0, t2),
        _mm256_unpacklo_epi64(t1, t3),
        _mm256_unpackhi_epi64(t1, t3),
    ]
}

/// The 32-bit words at `p[r] + at` of the eight rows (one gather).
#[inline(always)]
unsafe fn gather_dwords(rows: &WeightRows, at: usize) -> __m256i {
    let idx = _mm256_loadu_si256(rows.offsets.as_ptr() as *const __m256i);
    _mm256_i32gather_epi32::<1>(rows.p[0].add(at) as *const i32, idx)
}

/// The f16 values at `p[r] + at` of the eight rows as f32 lanes, from eight scalar loads: the 32-wide formats'
/// block scale. (A `vpgatherdd` is microcoded on AMD Zen 4; with its dependent `vpmovdw` it took 40 % of the
/// one-token Q4_0 tile's time there.)
#[inline(always)]
unsafe fn halves_f32(rows: &WeightRows, at: usize) -> __m256 {
    let h = |r: usize| rd_u16(rows.p[r].add(at)) as i16;
    _mm256_cvtph_ps(_mm_setr_epi16(h(0), h(1), h(2), h(3), h(4), h(5), h(6), h(7)))
}

/// The f16 values in the low (`HIGH = false`) or high halves of eight 32-bit lanes, as f32.
#[inline(always)]
unsafe fn halves_to_f32<const HIGH: bool>(v: __m256i) -> __m256 {
    let v = if HIGH { _mm256_srli_epi32(v, 16) } else { v };
    _mm256_cvtph_ps(_mm256_cvtepi32_epi16(v))
}

/// Low and high nibbles of 16 transposed bytes: lanes hold weights 0..16 (low) and 16..32 (high) of the block,
/// four per lane in order.
#[inline(always)]
unsafe fn nibbles_transposed(rows: &WeightRows, at: usize) -> [__m256i; 8] {
    let d = transpose16(rows, at);
    let m4 = _mm256_set1_epi8(0x0F);
    let lo = |v: __m256i| _mm256_and_si256(v, m4);
    let hi = |v: __m256i| _mm256_and_si256(_mm256_srli_epi32(v, 4), m4);
    [lo(d[0]), lo(d[1]), lo(d[2]), lo(d[3]), hi(d[0]), hi(d[1]), hi(d[2]), hi(d[3])]
}

/// Per token: the i32 sums over one block of 32 of `weights (unsigned bytes) x activations` for the eight rows, with
/// two dependency chains (even and odd groups of four).
#[inline(always)]
unsafe fn block_dot(wq: &[__m256i; 8], y: *const u8) -> __m256i {
    let (a, b) = half_dots(wq, y);
    _mm256_add_epi32(a, b)
}

/// As [`block_dot`] with one dependency chain: for kernels that run several of these side by side.
#[inline(always)]
unsafe fn chain_dot(wq: &[__m256i; 8], y: *const u8) -> __m256i {
    chain_dot_from(_mm256_setzero_si256(), wq, y)
}

/// `init` plus the [`block_dot`] sums, in one dependency chain: for the tiles whose tokens give enough independent
/// chains, and whose per-token correction can be the chain's start instead of two more instructions.
#[inline(always)]
unsafe fn chain_dot_from(init: __m256i, wq: &[__m256i; 8], y: *const u8) -> __m256i {
    let mut sum = init;
    for (k, w) in wq.iter().enumerate() {
        sum = _mm256_dpbusd_epi32(sum, *w, _mm256_set1_epi32((y.add(4 * k) as *const i32).read_unaligned()));
    }
    sum
}

/// As [`block_dot`], split into the sums over the first and the last 16 values.
#[inline(always)]
unsafe fn half_dots(wq: &[__m256i; 8], y: *const u8) -> (__m256i, __m256i) {
    let bc = |k: usize| _mm256_set1_epi32((y.add(4 * k) as *const i32).read_unaligned());
    let mut first = _mm256_setzero_si256();
    let mut last = _mm256_setzero_si256();
    for k in 0..4 {
        first = _mm256_dpbusd_epi32(first, wq[k], bc(k));
        last = _mm256_dpbusd_epi32(last, wq[k + 4], bc(k + 4));
    }
    (first, last)
}

/// Shared loop of the formats whose weights are stored as `u - offset` with unsigned `u` (Q4_0: nibbles, offset
/// 8; Q8_0: bytes flipped to `w + 128`, offset 128) against Q8_0 activations:
/// `sum (u - offset) y = sum u y - offset * sum y`.
#[inline(always)]
unsafe fn offset_rows8<const NT: usize>(
    nb: usize,
    rows: &WeightRows,
    wb: usize,
    offset: i32,
    t: &[Tok; NT],
    decode: impl Fn(usize) -> [__m256i; 8],
) -> [[f32; ROWS]; NT] {
    let mut acc = [_mm256_setzero_ps(); NT];
    for b in 0..nb {
        if NT == 1 && b % 2 == 0 {
            // Near the end of the rows, the start of the next tile's rows (the engine's next call), which the
            // per-row streams would otherwise fetch on demand, one miss per row at once.
            let ahead = b * wb + PREFETCH;
            let at = if ahead < nb * wb { ahead } else { rows.next_tile + ahead - nb * wb };
            prefetch_rows(rows, at, 0);
        }
        let dw = halves_f32(rows, b * wb);
        let wq = decode(b * wb + 2);
        for i in 0..NT {
            let correction = _mm256_set1_epi32(-offset * *t[i].sum.add(b));
            let isum = chain_dot_from(correction, &wq, t[i].x.add(b * Q8_0_BYTES + Q8_0_QS));
            let d = _mm256_mul_ps(dw, _mm256_broadcast_ss(&*t[i].s.add(b)));
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), d, acc[i]);
        }
    }
    store(&acc)
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

#[inline(always)]
unsafe fn q4_0_rows8<const NT: usize>(nb: usize, rows: &WeightRows, t: &[Tok; NT]) -> [[f32; ROWS]; NT] {
    offset_rows8::<NT>(nb, rows, Q4_0_BYTES, 8, t, |at| nibbles_transposed(rows, at))
}

#[inline(always)]
unsafe fn q8_0_rows8<const NT: usize>(nb: usize, rows: &WeightRows, t: &[Tok; NT]) -> [[f32; ROWS]; NT] {
    let flip = _mm256_set1_epi8(0x80u8 as i8);
    offset_rows8::<NT>(nb, rows, Q8_0_BYTES, 128, t, |at| {
        let (a, b) = (transpose16(rows, at), transpose16(rows, at + 16));
        let mut wq = [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]];
        for v in wq.iter_mut() {
            *v = _mm256_xor_si256(*v, flip);
        }
        wq
    })
}

/// The start of each of the sixteen rows of a wide tile (rows past the tile's end repeat its last row), and their
/// byte offsets from the first row for gathers.
struct WideRows {
    p: [*const u8; WIDE_ROWS],
    offsets: [i32; WIDE_ROWS],
}

impl WideRows {
    fn new(w: &[u8], row_bytes: usize, rows: usize) -> WideRows {
        let off = |r: usize| r.min(rows - 1) * row_bytes;
        // Offsets fit in i32: a tile spans at most 16 rows of a matrix whose rows are far below 128 MiB.
        assert!(off(WIDE_ROWS - 1) < i32::MAX as usize, "weight rows too long for a gather");
        WideRows { p: std::array::from_fn(|r| w[off(r)..].as_ptr()), offsets: std::array::from_fn(|r| off(r) as i32) }
    }
}

/// [`gather_dwords`] for sixteen rows.
#[inline(always)]
unsafe fn gather_dwords_wide(rows: &WideRows, at: usize) -> __m512i {
    let idx = _mm512_loadu_si512(rows.offsets.as_ptr() as *const __m512i);
    _mm512_i32gather_epi32::<1>(idx, rows.p[0].add(at) as *const i32)
}

/// [`halves_to_f32`] for sixteen lanes.
#[inline(always)]
unsafe fn halves_to_f32_wide<const HIGH: bool>(v: __m512i) -> __m512 {
    let v = if HIGH { _mm512_srli_epi32::<16>(v) } else { v };
    _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v))
}

/// [`transpose16`] for sixteen rows: dword `j` of the 16 bytes at `p[r] + at`, lane `r` from row `r`.
#[inline(always)]
unsafe fn transpose16_wide(rows: &WideRows, at: usize) -> [__m512i; 4] {
    let ld = |r: usize| {
        let v = _mm512_castsi128_si512(load128(rows.p[r].add(at)));
        let v = _mm512_inserti32x4::<1>(v, load128(rows.p[r + 4].add(at)));
        let v = _mm512_inserti32x4::<2>(v, load128(rows.p[r + 8].add(at)));
        _mm512_inserti32x4::<3>(v, load128(rows.p[r + 12].add(at)))
    };
    // 128-bit lane `k` of `a_i` holds row `4k + i`; the unpacks work within 128-bit lanes.
    let (a0, a1, a2, a3) = (ld(0), ld(1), ld(2), ld(3));
    let (t0, t1) = (_mm512_unpacklo_epi32(a0, a1), _mm512_unpackhi_epi32(a0, a1));
    let (t2, t3) = (_mm512_unpacklo_epi32(a2, a3), _mm512_unpackhi_epi32(a2, a3));
    [
        _mm512_unpacklo_epi64(t0, t2),
        _mm512_unpackhi_epi64(t0, t2),
        _mm512_unpacklo_epi64(t1, t3),
        _mm512_unpackhi_epi64(t1, t3),
    ]
}

/// [`halves_f32`] for sixteen rows.
#[inline(always)]
unsafe fn halves16_f32(rows: &WideRows, at: usize) -> __m512 {
    let h = |r: usize| rd_u16(rows.p[r].add(at)) as i16;
    let lo = _mm_setr_epi16(h(0), h(1), h(2), h(3), h(4), h(5), h(6), h(7));
    let hi = _mm_setr_epi16(h(8), h(9), h(10), h(11), h(12), h(13), h(14), h(15));
    _mm512_cvtph_ps(_mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi))
}

/// [`offset_rows8`] for sixteen rows, 512-bit: per lane the same integer sums and the same float steps (the
/// correction as the chain's start, the products `dw * dx`, one FMA per block in block order), so each result
/// equals the eight-row kernel's bit for bit. One weight decode per block serves sixteen rows, and each
/// broadcast activation word sixteen rows instead of eight.
#[inline(always)]
unsafe fn offset_rows16<const NT: usize>(
    nb: usize,
    rows: &WideRows,
    wb: usize,
    offset: i32,
    t: &[Tok; NT],
    decode: impl Fn(usize) -> [__m512i; 8],
) -> [[f32; WIDE_ROWS]; NT] {
    let mut acc = [_mm512_setzero_ps(); NT];
    for b in 0..nb {
        let dw = halves16_f32(rows, b * wb);
        let wq = decode(b * wb + 2);
        for i in 0..NT {
            let y = t[i].x.add(b * Q8_0_BYTES + Q8_0_QS);
            let mut isum = _mm512_set1_epi32(-offset * *t[i].sum.add(b));
            for (k, w) in wq.iter().enumerate() {
                isum = _mm512_dpbusd_epi32(isum, *w, _mm512_set1_epi32((y.add(4 * k) as *const i32).read_unaligned()));
            }
            let d = _mm512_mul_ps(dw, _mm512_set1_ps(*t[i].s.add(b)));
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), d, acc[i]);
        }
    }
    let mut out = [[0f32; WIDE_ROWS]; NT];
    for (o, a) in out.iter_mut().zip(&acc) {
        _mm512_storeu_ps(o.as_mut_ptr(), *a);
    }
    out
}

#[inline(always)]
unsafe fn q4_0_rows16<const NT: usize>(nb: usize, rows: &WideRows, t: &[Tok; NT]) -> [[f32; WIDE_ROWS]; NT] {
    let m4 = _mm512_set1_epi8(0x0F);
    offset_rows16::<NT>(nb, rows, Q4_0_BYTES, 8, t, |at| {
        let d = transpose16_wide(rows, at);
        let lo = |v: __m512i| _mm512_and_si512(v, m4);
        let hi = |v: __m512i| _mm512_and_si512(_mm512_srli_epi32::<4>(v), m4);
        [lo(d[0]), lo(d[1]), lo(d[2]), lo(d[3]), hi(d[0]), hi(d[1]), hi(d[2]), hi(d[3])]
    })
}

#[inline(always)]
unsafe fn q8_0_rows16<const NT: usize>(nb: usize, rows: &WideRows, t: &[Tok; NT]) -> [[f32; WIDE_ROWS]; NT] {
    let flip = _mm512_set1_epi8(0x80u8 as i8);
    offset_rows16::<NT>(nb, rows, Q8_0_BYTES, 128, t, |at| {
        let (a, b) = (transpose16_wide(rows, at), transpose16_wide(rows, at + 16));
        let mut wq = [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]];
        for v in wq.iter_mut() {
            *v = _mm512_xor_si512(*v, flip);
        }
        wq
    })
}

#[inline(always)]
unsafe fn q4_1_rows8<const NT: usize>(nb: usize, rows: &WeightRows, t: &[Tok; NT]) -> [[f32; ROWS]; NT] {
    let mut acc = [_mm256_setzero_ps(); NT];
    for b in 0..nb {
        if NT == 1 && b % 2 == 0 {
            prefetch_rows(rows, b * Q4_1_BYTES, PREFETCH);
        }
        let dm = gather_dwords(rows, b * Q4_1_BYTES);
        let (dw, mw) = (halves_to_f32::<false>(dm), halves_to_f32::<true>(dm));
        let wq = nibbles_transposed(rows, b * Q4_1_BYTES + 4);
        for i in 0..NT {
            let isum = block_dot(&wq, t[i].x.add(b * Q8_1_BYTES + Q8_1_QS));
            let d = _mm256_mul_ps(dw, _mm256_broadcast_ss(&*t[i].s.add(2 * b)));
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), d, acc[i]);
            acc[i] = _mm256_fmadd_ps(mw, _mm256_broadcast_ss(&*t[i].s.add(2 * b + 1)), acc[i]);
        }
    }
    store(&acc)
}

// ---- Q4_K: d, dmin (f16) @0, 12 bytes of 6-bit scales and mins @4, 128 bytes of nibbles @16; against Q8_K
// (f32 d @0, i8 qs[256] @4, i16 bsums[16] @260) ----

/// Lane-wise bytes `k` of 32-bit lanes as i32.
#[inline(always)]
unsafe fn byte_lanes(v: __m256i, k: i32) -> __m256i {
    _mm256_and_si256(_mm256_srlv_epi32(v, _mm256_set1_epi32(8 * k)), _mm256_set1_epi32(0xFF))
}

/// Bytes `2h` and `2h + 1` of 32-bit lanes as the two i16 halves of each lane.
#[inline(always)]
unsafe fn byte_pair_lanes(v: __m256i, h: i32) -> __m256i {
    let v = _mm256_srlv_epi32(v, _mm256_set1_epi32(16 * h));
    let lo = _mm256_and_si256(v, _mm256_set1_epi32(0xFF));
    let hi = _mm256_slli_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0xFF00)), 8);
    _mm256_or_si256(lo, hi)
}

#[inline(always)]
unsafe fn q4_k_rows8<const NT: usize>(nb: usize, rows: &WeightRows, t: &[Tok; NT]) -> [[f32; ROWS]; NT] {
    let mut acc = [_mm256_setzero_ps(); NT];
    let m4 = _mm256_set1_epi8(0x0F);
    let (c3f, c0f, c30) = (_mm256_set1_epi8(0x3F), _mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x30));
    for b in 0..nb {
        let base = b * Q4_K_BYTES;
        if NT == 1 {
            prefetch_rows(rows, base, PREFETCH);
            prefetch_rows(rows, base + 64, PREFETCH);
        }
        let dd = gather_dwords(rows, base);
        let (dw, dmin) = (halves_to_f32::<false>(dd), halves_to_f32::<true>(dd));
        // ggml's get_scale_min_k4, four sub-blocks per 32-bit lane: scales/mins 0..4 are the low six bits of
        // bytes 0..4 / 4..8; 4..8 take their low four bits from bytes 8..12 and their top two from the top bits
        // of bytes 0..4 / 4..8.
        let (g0, g1, g2) =
            (gather_dwords(rows, base + 4), gather_dwords(rows, base + 8), gather_dwords(rows, base + 12));
        let top = |g: __m256i| _mm256_and_si256(_mm256_srli_epi32(g, 2), c30);
        let sc_lo = _mm256_and_si256(g0, c3f);
        let sc_hi = _mm256_or_si256(_mm256_and_si256(g2, c0f), top(g0));
        let m_lo = _mm256_and_si256(g1, c3f);
        let m_hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(g2, 4), c0f), top(g1));
        let mins =
            [byte_pair_lanes(m_lo, 0), byte_pair_lanes(m_lo, 1), byte_pair_lanes(m_hi, 0), byte_pair_lanes(m_hi, 1)];

        let mut total = [_mm256_setzero_si256(); NT];
        for j in 0..4 {
            let (a, c) = (transpose16(rows, base + 16 + 32 * j), transpose16(rows, base + 32 + 32 * j));
            let raw = [a[0], a[1], a[2], a[3], c[0], c[1], c[2], c[3]];
            for half in 0..2 {
                let g = 2 * j + half;
                // (Loops, not `array::map`: a closure called through `map` is not compiled with this function's
                // target features, and its intrinsics would become calls.)
                let mut wq = raw;
                for v in wq.iter_mut() {
                    *v = _mm256_and_si256(if half == 0 { *v } else { _mm256_srli_epi32(*v, 4) }, m4);
                }
                let sc = byte_lanes(if g < 4 { sc_lo } else { sc_hi }, (g % 4) as i32);
                for i in 0..NT {
                    let isum = chain_dot(&wq, t[i].x.add(b * Q8_K_BYTES + Q8K_QS + 32 * g));
                    total[i] = _mm256_add_epi32(total[i], _mm256_mullo_epi32(isum, sc));
                }
            }
        }
        for i in 0..NT {
            let xb = t[i].x.add(b * Q8_K_BYTES);
            // Sums of the activations of each 32-value sub-block, as i16 pairs (g0, g1) (g2, g3) | (g4, g5) (g6, g7).
            let g32 = _mm256_madd_epi16(_mm256_loadu_si256(xb.add(Q8K_BSUMS) as *const __m256i), _mm256_set1_epi16(1));
            let g16 = _mm256_packs_epi32(g32, g32);
            let mut summ = _mm256_setzero_si256();
            for (k, lane) in [0, 1, 4, 5].into_iter().enumerate() {
                let pair = _mm256_permutevar8x32_epi32(g16, _mm256_set1_epi32(lane));
                summ = _mm256_dpwssd_epi32(summ, mins[k], pair);
            }
            let dx = _mm256_set1_ps((xb as *const f32).read_unaligned());
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total[i]), _mm256_mul_ps(dw, dx), acc[i]);
            acc[i] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(summ), _mm256_mul_ps(dmin, dx), acc[i]);
        }
    }
    store(&acc)
}

/// [`q4_k_rows8`] for sixteen rows, 512-bit, with the same per-lane integer sums and float steps (so the same
/// results bit for bit): the scale and min unpacking, the nibble masks and the weight transposition are done once
/// for sixteen rows, and each broadcast activation word feeds sixteen rows.
#[inline(always)]
unsafe fn q4_k_rows16<const NT: usize>(nb: usize, rows: &WideRows, t: &[Tok; NT]) -> [[f32; WIDE_ROWS]; NT] {
    let mut acc = [_mm512_setzero_ps(); NT];
    let m4 = _mm512_set1_epi8(0x0F);
    let (c3f, c0f, c30) = (_mm512_set1_epi8(0x3F), _mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x30));
    let (ff, ff00) = (_mm512_set1_epi32(0xFF), _mm512_set1_epi32(0xFF00));
    // Bytes `2h` and `2h + 1` of 32-bit lanes as the two i16 halves of each lane (see `byte_pair_lanes`).
    let pair_lanes = |v: __m512i, h: u32| {
        let v = _mm512_srlv_epi32(v, _mm512_set1_epi32(16 * h as i32));
        _mm512_or_si512(_mm512_and_si512(v, ff), _mm512_slli_epi32::<8>(_mm512_and_si512(v, ff00)))
    };
    for b in 0..nb {
        let base = b * Q4_K_BYTES;
        let dd = gather_dwords_wide(rows, base);
        let (dw, dmin) = (halves_to_f32_wide::<false>(dd), halves_to_f32_wide::<true>(dd));
        let (g0, g1, g2) = (
            gather_dwords_wide(rows, base + 4),
            gather_dwords_wide(rows, base + 8),
            gather_dwords_wide(rows, base + 12),
        );
        let top = |g: __m512i| _mm512_and_si512(_mm512_srli_epi32::<2>(g), c30);
        let sc_lo = _mm512_and_si512(g0, c3f);
        let sc_hi = _mm512_or_si512(_mm512_and_si512(g2, c0f), top(g0));
        let m_lo = _mm512_and_si512(g1, c3f);
        let m_hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi32::<4>(g2), c0f), top(g1));
        let mins = [pair_lanes(m_lo, 0), pair_lanes(m_lo, 1), pair_lanes(m_hi, 0), pair_lanes(m_hi, 1)];

        let mut total = [_mm512_setzero_si512(); NT];
        for j in 0..4 {
            let (a, c) = (transpose16_wide(rows, base + 16 + 32 * j), transpose16_wide(rows, base + 32 + 32 * j));
            let raw = [a[0], a[1], a[2], a[3], c[0], c[1], c[2], c[3]];
            for half in 0..2 {
                let g = 2 * j + half;
                let mut wq = raw;
                for v in wq.iter_mut() {
                    *v = _mm512_and_si512(if half == 0 { *v } else { _mm512_srli_epi32::<4>(*v) }, m4);
                }
                // Byte `g % 4` of the scale lanes (see `byte_lanes`).
                let scv = if g < 4 { sc_lo } else { sc_hi };
                let sc = _mm512_and_si512(_mm512_srlv_epi32(scv, _mm512_set1_epi32(8 * (g % 4) as i32)), ff);
                for i in 0..NT {
                    let y = t[i].x.add(b * Q8_K_BYTES + Q8K_QS + 32 * g);
                    let mut isum = _mm512_setzero_si512();
                    for (k, w) in wq.iter().enumerate() {
                        let yk = _mm512_set1_epi32((y.add(4 * k) as *const i32).read_unaligned());
                        isum = _mm512_dpbusd_epi32(isum, *w, yk);
                    }
                    total[i] = _mm512_add_epi32(total[i], _mm512_mullo_epi32(isum, sc));
                }
            }
        }
        for i in 0..NT {
            let xb = t[i].x.add(b * Q8_K_BYTES);
            let g32 = _mm256_madd_epi16(_mm256_loadu_si256(xb.add(Q8K_BSUMS) as *const __m256i), _mm256_set1_epi16(1));
            let g16 = _mm256_packs_epi32(g32, g32);
            let mut summ = _mm512_setzero_si512();
            for (k, lane) in [0, 1, 4, 5].into_iter().enumerate() {
                let pair = _mm256_permutevar8x32_epi32(g16, _mm256_set1_epi32(lane));
                summ = _mm512_dpwssd_epi32(summ, mins[k], _mm512_broadcast_i64x4(pair));
            }
            let dx = _mm512_set1_ps((xb as *const f32).read_unaligned());
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(total[i]), _mm512_mul_ps(dw, dx), acc[i]);
            acc[i] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(summ), _mm512_mul_ps(dmin, dx), acc[i]);
        }
    }
    let mut out = [[0f32; WIDE_ROWS]; NT];
    for (o, a) in out.iter_mut().zip(&acc) {
        _mm512_storeu_ps(o.as_mut_ptr(), *a);
    }
    out
}

// ---- Q6_K: ql[128] @0 (low four bits), qh[64] @128 (top two bits), 16 i8 scales @192, d (f16) @208; against
// Q8_K. Value = d * scale * (q - 32), so sum (q - 32) y scale = sum q y scale - 32 * sum scale bsum. ----

/// Byte `k` of 32-bit lanes, sign-extended to i32.
#[inline(always)]
unsafe fn signed_byte_lanes(v: __m256i, k: i32) -> __m256i {
    _mm256_srai_epi32(_mm256_sllv_epi32(v, _mm256_set1_epi32(24 - 8 * k)), 24)
}

#[inline(always)]
unsafe fn q6_k_rows8<const NT: usize>(nb: usize, rows: &WeightRows, t: &[Tok; NT]) -> [[f32; ROWS]; NT] {
    let mut acc = [_mm256_setzero_ps(); NT];
    let (m4, m2, m30) = (_mm256_set1_epi8(0x0F), _mm256_set1_epi8(0x03), _mm256_set1_epi8(0x30));
    for b in 0..nb {
        let base = b * Q6_K_BYTES;
        if NT == 1 {
            prefetch_rows(rows, base, PREFETCH);
            prefetch_rows(rows, base + 64, PREFETCH);
            prefetch_rows(rows, base + 128, PREFETCH);
        }
        // The dword at 206 ends the block: its high half is d.
        let dw = halves_to_f32::<true>(gather_dwords(rows, base + 206));
        let sc4 = [
            gather_dwords(rows, base + 192),
            gather_dwords(rows, base + 196),
            gather_dwords(rows, base + 200),
            gather_dwords(rows, base + 204),
        ];
        let mut total = [_mm256_setzero_si256(); NT];
        for half in 0..2 {
            let h = {
                let (x, y) = (transpose16(rows, base + 128 + 32 * half), transpose16(rows, base + 144 + 32 * half));
                [x[0], x[1], x[2], x[3], y[0], y[1], y[2], y[3]]
            };
            for lowbits in 0..2 {
                // Quarter `lowbits` (low nibbles) and `lowbits + 2` (high nibbles) share these 32 bytes of ql.
                let at = base + 64 * half + 32 * lowbits;
                let q = {
                    let (x, y) = (transpose16(rows, at), transpose16(rows, at + 16));
                    [x[0], x[1], x[2], x[3], y[0], y[1], y[2], y[3]]
                };
                for high_nibble in 0..2 {
                    let quarter = lowbits + 2 * high_nibble;
                    let mut wq = q;
                    for (w, hk) in wq.iter_mut().zip(&h) {
                        let low = if high_nibble == 0 { *w } else { _mm256_srli_epi32(*w, 4) };
                        let top = match quarter {
                            0 => _mm256_slli_epi32(_mm256_and_si256(*hk, m2), 4),
                            1 => _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(*hk, 2), m2), 4),
                            2 => _mm256_and_si256(*hk, m30),
                            _ => _mm256_and_si256(_mm256_srli_epi32(*hk, 2), m30),
                        };
                        *w = _mm256_or_si256(_mm256_and_si256(low, m4), top);
                    }
                    // Scale groups of 16: 8 * half + 2 * quarter and the next one.
                    let g = 8 * half + 2 * quarter;
                    let sa = signed_byte_lanes(sc4[g / 4], (g % 4) as i32);
                    let sb = signed_byte_lanes(sc4[g / 4], (g % 4 + 1) as i32);
                    for i in 0..NT {
                        let (a, c) = half_dots(&wq, t[i].x.add(b * Q8_K_BYTES + Q8K_QS + 128 * half + 32 * quarter));
                        let s = _mm256_add_epi32(_mm256_mullo_epi32(a, sa), _mm256_mullo_epi32(c, sb));
                        total[i] = _mm256_add_epi32(total[i], s);
                    }
                }
            }
        }
        // Scale pairs (2k, 2k + 1) as the i16 halves of each lane, for the bsums correction.
        let mut pairs = [_mm256_setzero_si256(); 8];
        for (k, p) in pairs.iter_mut().enumerate() {
            let v = sc4[k / 2];
            let j = 2 * (k % 2) as i32;
            let lo = _mm256_and_si256(signed_byte_lanes(v, j), _mm256_set1_epi32(0xFFFF));
            *p = _mm256_or_si256(lo, _mm256_slli_epi32(signed_byte_lanes(v, j + 1), 16));
        }
        for i in 0..NT {
            let xb = t[i].x.add(b * Q8_K_BYTES);
            let mut corr = _mm256_setzero_si256();
            for (k, p) in pairs.iter().enumerate() {
                let bs = _mm256_set1_epi32((xb.add(Q8K_BSUMS + 4 * k) as *const i32).read_unaligned());
                corr = _mm256_dpwssd_epi32(corr, *p, bs);
            }
            let sum = _mm256_sub_epi32(total[i], _mm256_slli_epi32(corr, 5));
            let dx = _mm256_set1_ps((xb as *const f32).read_unaligned());
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), _mm256_mul_ps(dw, dx), acc[i]);
        }
    }
    store(&acc)
}

/// [`q6_k_rows8`] for sixteen rows, 512-bit, with the same per-lane integer sums and float steps (so the same
/// results bit for bit): the weight transposition and the six-bit assembly are done once for sixteen rows, and each
/// broadcast activation word feeds sixteen rows.
#[inline(always)]
unsafe fn q6_k_rows16<const NT: usize>(nb: usize, rows: &WideRows, t: &[Tok; NT]) -> [[f32; WIDE_ROWS]; NT] {
    let mut acc = [_mm512_setzero_ps(); NT];
    let (m4, m2, m30) = (_mm512_set1_epi8(0x0F), _mm512_set1_epi8(0x03), _mm512_set1_epi8(0x30));
    // Byte `k` of 32-bit lanes, sign-extended to i32 (see `signed_byte_lanes`).
    let sbyte = |v: __m512i, k: i32| _mm512_srai_epi32::<24>(_mm512_sllv_epi32(v, _mm512_set1_epi32(24 - 8 * k)));
    for b in 0..nb {
        let base = b * Q6_K_BYTES;
        let dw = halves_to_f32_wide::<true>(gather_dwords_wide(rows, base + 206));
        let sc4 = [
            gather_dwords_wide(rows, base + 192),
            gather_dwords_wide(rows, base + 196),
            gather_dwords_wide(rows, base + 200),
            gather_dwords_wide(rows, base + 204),
        ];
        let mut total = [_mm512_setzero_si512(); NT];
        for half in 0..2 {
            let h = {
                let (x, y) =
                    (transpose16_wide(rows, base + 128 + 32 * half), transpose16_wide(rows, base + 144 + 32 * half));
                [x[0], x[1], x[2], x[3], y[0], y[1], y[2], y[3]]
            };
            for lowbits in 0..2 {
                let at = base + 64 * half + 32 * lowbits;
                let q = {
                    let (x, y) = (transpose16_wide(rows, at), transpose16_wide(rows, at + 16));
                    [x[0], x[1], x[2], x[3], y[0], y[1], y[2], y[3]]
                };
                for high_nibble in 0..2 {
                    let quarter = lowbits + 2 * high_nibble;
                    let mut wq = q;
                    for (w, hk) in wq.iter_mut().zip(&h) {
                        let low = if high_nibble == 0 { *w } else { _mm512_srli_epi32::<4>(*w) };
                        let top = match quarter {
                            0 => _mm512_slli_epi32::<4>(_mm512_and_si512(*hk, m2)),
                            1 => _mm512_slli_epi32::<4>(_mm512_and_si512(_mm512_srli_epi32::<2>(*hk), m2)),
                            2 => _mm512_and_si512(*hk, m30),
                            _ => _mm512_and_si512(_mm512_srli_epi32::<2>(*hk), m30),
                        };
                        *w = _mm512_or_si512(_mm512_and_si512(low, m4), top);
                    }
                    let g = 8 * half + 2 * quarter;
                    let sa = sbyte(sc4[g / 4], (g % 4) as i32);
                    let sb = sbyte(sc4[g / 4], (g % 4 + 1) as i32);
                    for i in 0..NT {
                        let y = t[i].x.add(b * Q8_K_BYTES + Q8K_QS + 128 * half + 32 * quarter);
                        let bc = |k: usize| _mm512_set1_epi32((y.add(4 * k) as *const i32).read_unaligned());
                        let (mut a, mut c) = (_mm512_setzero_si512(), _mm512_setzero_si512());
                        for k in 0..4 {
                            a = _mm512_dpbusd_epi32(a, wq[k], bc(k));
                            c = _mm512_dpbusd_epi32(c, wq[k + 4], bc(k + 4));
                        }
                        let s = _mm512_add_epi32(_mm512_mullo_epi32(a, sa), _mm512_mullo_epi32(c, sb));
                        total[i] = _mm512_add_epi32(total[i], s);
                    }
                }
            }
        }
        let mut pairs = [_mm512_setzero_si512(); 8];
        for (k, p) in pairs.iter_mut().enumerate() {
            let v = sc4[k / 2];
            let j = 2 * (k % 2) as i32;
            let lo = _mm512_and_si512(sbyte(v, j), _mm512_set1_epi32(0xFFFF));
            *p = _mm512_or_si512(lo, _mm512_slli_epi32::<16>(sbyte(v, j + 1)));
        }
        for i in 0..NT {
            let xb = t[i].x.add(b * Q8_K_BYTES);
            let mut corr = _mm512_setzero_si512();
            for (k, p) in pairs.iter().enumerate() {
                let bs = _mm512_set1_epi32((xb.add(Q8K_BSUMS + 4 * k) as *const i32).read_unaligned());
                corr = _mm512_dpwssd_epi32(corr, *p, bs);
            }
            let sum = _mm512_sub_epi32(total[i], _mm512_slli_epi32::<5>(corr));
            let dx = _mm512_set1_ps((xb as *const f32).read_unaligned());
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(dw, dx), acc[i]);
        }
    }
    let mut out = [[0f32; WIDE_ROWS]; NT];
    for (o, a) in out.iter_mut().zip(&acc) {
        _mm512_storeu_ps(o.as_mut_ptr(), *a);
    }
    out
}
