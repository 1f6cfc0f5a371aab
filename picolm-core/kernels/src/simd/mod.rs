//! SIMD kernels, chosen at run time by CPU feature detection (one binary for every CPU of a family).
//!
//! Each kernel computes exactly what the scalar reference in [`crate::quant`] computes (same block formats, same
//! integer products), only with vector instructions; the tests (`simd/tests.rs`) compare every kernel this CPU
//! runs against the reference on random and extreme blocks. [`prefill_kernel`], [`decode_kernel_candidates`],
//! [`tile_kernel`] and [`vec_dot_kernel`] hand out the kernels for a weight format; `None` or the `scalar`
//! candidate means the scalar reference.
//!
//! The files, by instruction set and shape (kernel names as `PICOLM_KERNEL` and the bench report show them):
//! - `x86_avx512vnni_tiles.rs`: AVX-512 VNNI tiles of eight weight rows by up to eight tokens
//!   (`avx512vnni-rows8`) for Q4_0, Q4_1, Q8_0, Q4_K and Q6_K; the prefill kernel where the CPU has VNNI.
//! - `x86_avx2_rows8.rs`: AVX2 tiles of eight weight rows by up to four tokens (`avx2-rows8`) for Q4_0 and Q8_0,
//!   the AVX2 port of `avx512vnni-rows8` (bit-identical to it); the prefill kernel of those formats without VNNI,
//!   with its one-token kernel over a run of rows as the decode twin (`avx2-rows8-gemv`).
//! - `x86_avx2_tiles.rs`: AVX2 tiles of one weight row by up to four tokens (`avx2-row`), the same formats.
//! - `x86_avx2_rows8_kquant.rs`: AVX2 tiles of eight weight rows by up to eight tokens (`avx2-rows8`) for Q4_K and
//!   Q6_K, with the per-lane arithmetic of `avx512vnni-rows8`; the prefill kernel of these formats without VNNI.
//! - `x86_avx2_avx512vnni_gemv.rs`: decode matrix-vector kernels over a run of rows (`avx2-gemv`,
//!   `avx2-rows8-gemv`, `avx512vnni-gemv`), each bit-identical to one of the tiles (see
//!   [`DecodeKernel::matches_prefill`]).
//! - `x86_avx2_dot.rs`: AVX2 one-row dot products (`avx2-dot`) for the formats without tiles (F32, F16, BF16,
//!   Q5_0, Q5_1, Q2_K, Q3_K, Q5_K).
//! - `x86_avx2_convert.rs`: AVX2 activation quantizers (f32 to Q8_0, Q8_1, Q8_K) and the F16C f16 to f32 rows.
//! - `x86_q4_0.rs`: the Q4_0 row kernel the `avx2-row` tile and both matrix-vector kernels share (bit-identical).
//! - `x86_common.rs`: the x86-64 feature checks and AVX2 helpers; `tile_common.rs`: block layouts (sizes from
//!   [`GgmlType`]) and the slice checks the tile and matrix-vector kernels share.
//! - `aarch64_neon_tiles.rs`: aarch64 tiles of four weight rows by up to four tokens, with `sdot` (`neon-sdot-4x4`,
//!   FEAT_DotProd) or plain NEON (`neon-4x4`), for Q4_0, Q4_1, Q5_0, Q8_0, Q4_K and (`aarch64_neon_tiles_q6k.rs`)
//!   Q6_K; without `sdot`, Q4_K and Q6_K take eight tokens (`neon-4x8`: each token's widening multiplies one `asm!`
//!   block); with `sdot`, Q4_0, Q5_0 and Q8_0 use the four rows by eight tokens of `aarch64_neon_tiles_sdot8.rs`
//!   (`neon-sdot-4x8`: rows interleaved in registers for `sdot` by element), whose one-token entry for Q4_0 and
//!   Q8_0 is a hand-scheduled eight-row `asm!` loop, and Q4_K and Q6_K those of `aarch64_neon_tiles_sdot_k.rs`
//!   (`neon-sdot-4x8` too: one `asm!` block per super-block).
//! - `aarch64_neon_tiles_i8mm.rs`: with FEAT_I8MM, the Q4_0, Q4_1, Q5_0 and Q8_0 prefill tiles `neon-i8mm-4x8` (`smmla`: groups
//!   of four weight rows by eight tokens, up to 16 rows per call sharing the tokens paired once per call), the Q4_K
//!   one (`aarch64_neon_tiles_i8mm_k.rs`) and the Q6_K one (`aarch64_neon_tiles_i8mm_q6k.rs`: each super-block of a
//!   group decoded into a stack buffer, then multiplied), bit-identical to `neon-sdot-4x8` (Q4_1: `neon-sdot-4x4`),
//!   whose one-token entry decodes for them.
//! - `aarch64_neon_quantize.rs`: NEON activation quantizers (f32 to Q8_0, Q8_1, Q8_K).
//! - `aarch64_neon_gemv.rs`: the one-token (decode) entries of those tiles, bit-identical to them; decode runs
//!   them under the tile's name. With `sdot`, Q4_K and Q6_K decode by the four-row `asm!` loops of
//!   `aarch64_neon_gemv_k.rs` (rows interleaved in registers, `sdot` by element).
//! - `armv7_neon_rows.rs`: armv7 NEON passes over four weight rows for Q4_0 and Q8_0: a tile of four rows by up to
//!   four tokens (`neon-4x4`) for prefill and its one-token (GEMV) entry for decode, bit-identical to it.
//! - `armv7_neon_convert.rs`: armv7 NEON activation quantizers (f32 to Q8_0, Q8_1).
//! - `aarch64_neon.rs`, `armv7_neon.rs`: NEON one-row dot products (`neon-dot`) and f16 conversions.

#[cfg(target_arch = "aarch64")]
mod aarch64_neon;
#[cfg(target_arch = "aarch64")]
pub(crate) use aarch64_neon::transpose_f32;
#[cfg(target_arch = "aarch64")]
mod aarch64_neon_gemv;
#[cfg(target_arch = "aarch64")]
mod aarch64_neon_gemv_k;
#[cfg(target_arch = "aarch64")]
mod aarch64_neon_quantize;
#[cfg(target_arch = "aarch64")]
mod aarch64_neon_tiles;
#[cfg(target_arch = "aarch64")]
mod aarch64_neon_tiles_i8mm;
#[cfg(target_arch = "aarch64")]
mod aarch64_neon_tiles_i8mm_k;
#[cfg(target_arch = "aarch64")]
mod aarch64_neon_tiles_i8mm_q6k;
#[cfg(target_arch = "aarch64")]
mod aarch64_neon_tiles_q6k;
#[cfg(target_arch = "aarch64")]
mod aarch64_neon_tiles_sdot8;
#[cfg(target_arch = "aarch64")]
mod aarch64_neon_tiles_sdot_k;
#[cfg(target_arch = "arm")]
mod armv7_neon;
#[cfg(target_arch = "arm")]
mod armv7_neon_convert;
#[cfg(target_arch = "arm")]
mod armv7_neon_rows;
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))] // aarch64 uses only `check` and `Layout` (neon-sdot-4x8)
mod tile_common;
#[cfg(target_arch = "x86_64")]
mod x86_avx2_avx512vnni_gemv;
#[cfg(target_arch = "x86_64")]
mod x86_avx2_convert;
#[cfg(target_arch = "x86_64")]
mod x86_avx2_dot;
#[cfg(target_arch = "x86_64")]
mod x86_avx2_rows8;
#[cfg(target_arch = "x86_64")]
mod x86_avx2_rows8_kquant;
#[cfg(target_arch = "x86_64")]
mod x86_avx2_tiles;
#[cfg(target_arch = "x86_64")]
mod x86_avx512vnni_tiles;
#[cfg(target_arch = "x86_64")]
mod x86_common;
#[cfg(target_arch = "x86_64")]
mod x86_q4_0;

use crate::ggml_type::GgmlType;

// The one definition of a one-row dot product (the scalar references in `quant` and the SIMD kernels here share it;
// the SIMD wrappers check the lengths and panic on a caller bug).
use crate::quant::VecDotFn;

/// Most activation rows (tokens) any [`TileFn`] call handles; each kernel has its own [`TileKernel::max_tokens`].
pub const MAX_TILE_TOKENS: usize = 8;

/// The activation rows of a matmul, converted to the weights' dot-product format, with what the tile kernels read
/// besides the blocks: each block's f16 scale (and Q8_1 sum term) as f32, and each block's integer sum of quants.
#[derive(Clone, Copy, Debug)]
pub struct ActivationRows<'a> {
    /// `n_tokens` rows of `row_bytes` bytes.
    pub bytes: &'a [u8],
    /// Bytes of one converted row.
    pub row_bytes: usize,
    /// Blocks in one row.
    pub blocks_per_row: usize,
    /// [`scales_per_block`] of the format: 0 when the format carries f32 scales itself (Q8_K).
    pub scales_per_block: usize,
    /// `n_tokens * blocks_per_row * scales_per_block` values (see [`prepare_activations`]).
    pub scales: &'a [f32],
    /// `n_tokens * blocks_per_row` sums when `scales_per_block > 0`, else empty.
    pub sums: &'a [i32],
}

impl<'a> ActivationRows<'a> {
    /// Activation row `t` alone (as row 0), with its scales and sums. Panics when `t` is out of range.
    pub fn token(&self, t: usize) -> ActivationRows<'a> {
        let per_row = self.blocks_per_row * self.scales_per_block;
        let sums_per_row = if self.scales_per_block > 0 { self.blocks_per_row } else { 0 };
        ActivationRows {
            bytes: &self.bytes[t * self.row_bytes..(t + 1) * self.row_bytes],
            scales: &self.scales[(t * per_row).min(self.scales.len())..],
            sums: &self.sums[(t * sums_per_row).min(self.sums.len())..],
            ..*self
        }
    }
}

/// Where the outputs of one [`TileFn`] call go: `rows x tokens` results, result `(r, t)` at `out[r * ld + t]`.
#[derive(Clone, Copy, Debug)]
pub struct TileShape {
    /// Consecutive weight rows (1 to the kernel's `max_rows`).
    pub rows: usize,
    /// Consecutive tokens (1 to the kernel's `max_tokens`).
    pub tokens: usize,
    /// Distance in `out` between the results of two rows.
    pub ld: usize,
}

/// Dot products of `shape.rows` consecutive weight rows (`n` values each, `w_row_bytes` apart in `w`) with
/// activation rows `first .. first + shape.tokens`. Each result is bit-identical whatever the tile's shape, so
/// batched prefill equals token-by-token evaluation. Safe to call: lengths are checked (panics on a caller bug).
pub type TileFn =
    fn(n: usize, w: &[u8], w_row_bytes: usize, x: &ActivationRows<'_>, first: usize, shape: TileShape, out: &mut [f32]);

/// A tile kernel and the most weight rows it takes per call.
#[derive(Clone, Copy)]
pub struct TileKernel {
    /// The kernel.
    pub run: TileFn,
    /// Most rows per call (results are the same for any split; larger tiles are faster).
    pub max_rows: usize,
    /// Most tokens per call (at most [`MAX_TILE_TOKENS`]).
    pub max_tokens: usize,
}

impl std::fmt::Debug for TileKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TileKernel").field("max_rows", &self.max_rows).field("max_tokens", &self.max_tokens).finish()
    }
}

/// Decode matrix-vector product: `out[r]` = the dot product of weight row `r` (`n` values; rows `w_row_bytes`
/// apart in `w`) with activation row 0 of `x`, for every `r < out.len()`. Reads `x`'s prepared scales and sums
/// like a [`TileFn`]. Safe to call: lengths are checked once per call (panics on a caller bug).
pub type GemvFn = fn(n: usize, w: &[u8], w_row_bytes: usize, x: &ActivationRows<'_>, out: &mut [f32]);

/// How a decode kernel is called.
#[derive(Clone, Copy)]
pub enum DecodeFn {
    /// A tile kernel with one-token tiles (the prefill kernel: bit-identical to batched prefill).
    Tile(TileKernel),
    /// A matrix-vector kernel over a run of rows.
    Gemv(GemvFn),
    /// A one-row dot product called per row.
    Dot(VecDotFn),
}

impl DecodeFn {
    /// Whether the kernel reads the activations' prepared scales and sums ([`prepare_activations`]).
    pub fn reads_prepared(&self) -> bool {
        !matches!(self, DecodeFn::Dot(_))
    }
}

/// A named candidate kernel for decode (one token) matmuls of one weight format.
#[derive(Clone, Copy)]
pub struct DecodeKernel {
    /// Its name (`PICOLM_KERNEL` and the bench report use it), e.g. `"avx2-gemv"`.
    pub name: &'static str,
    /// The kernel.
    pub run: DecodeFn,
    /// Whether its results are bit-identical to those of the format's prefill kernel on this CPU (declared by
    /// [`decode_kernel_candidates`], checked by `simd::tests` on random blocks and odd shapes): only such kernels
    /// decode under `PICOLM_KERNEL=auto`, so that a cached prompt prefix or the split of a prompt into batches
    /// never changes a result. The others can only be forced by name.
    pub matches_prefill: bool,
}

impl std::fmt::Debug for DecodeKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Every decode kernel name this build knows, on any CPU (what `PICOLM_KERNEL` accepts besides `tile`).
pub const DECODE_KERNEL_NAMES: &[&str] = &[
    "avx512vnni-rows8",
    "avx512vnni-gemv",
    "avx2-rows8",
    "avx2-rows8-gemv",
    "avx2-gemv",
    "avx2-row",
    "avx2-dot",
    "neon-i8mm-4x8",
    "neon-sdot-4x8",
    "neon-sdot-4x4",
    "neon-4x8",
    "neon-4x4",
    "neon-dot",
    "scalar",
];

/// The decode kernels this CPU can run for weights of type `ty`, the prefill kernel (see [`prefill_kernel`])
/// first, each declaring whether it is bit-identical to the prefill kernel ([`DecodeKernel::matches_prefill`]).
/// Never empty: the last resort is the scalar reference.
pub fn decode_kernel_candidates(ty: GgmlType) -> Vec<DecodeKernel> {
    #[cfg(target_arch = "x86_64")]
    return decode_kernel_candidates_on(ty, avx512_allowed());
    #[cfg(not(target_arch = "x86_64"))]
    decode_kernel_candidates_on(ty, false)
}

/// [`decode_kernel_candidates`] of the x86-64 AVX-512 path (`avx512`, where the CPU has AVX-512 VNNI) or of the
/// AVX2 path (`PICOLM_NO_AVX512`), so that the tests check both in one run; `avx512` is ignored elsewhere.
fn decode_kernel_candidates_on(ty: GgmlType, avx512: bool) -> Vec<DecodeKernel> {
    let mut out: Vec<DecodeKernel> = Vec::new();
    let _ = avx512;
    if !force_scalar() {
        for (name, k) in tile_kernel_candidates_on(ty, avx512).into_iter().flatten() {
            // The tiles of one CPU path differ in their float steps (the eight-row tile sums a block's integers
            // before converting them; the one-row tile keeps eight lanes of partial sums): only the first, the
            // prefill kernel, matches itself.
            out.push(DecodeKernel { name, run: DecodeFn::Tile(k), matches_prefill: out.is_empty() });
        }
        // aarch64: the tile decodes one token through its GEMV entry (bit-identical to the tile, see
        // `aarch64_neon_gemv.rs`), so the prefill kernel's decode is a matrix-vector kernel under the tile's name.
        #[cfg(target_arch = "aarch64")]
        if let (Some(first), Some(g)) = (out.first_mut(), aarch64_neon_gemv::kernel(ty, aarch64_neon::has_dotprod())) {
            first.run = DecodeFn::Gemv(g);
        }
        // armv7: likewise, the four-row tile's GEMV entry (`armv7_neon_rows.rs`).
        #[cfg(target_arch = "arm")]
        if let (Some(first), Some(g)) = (out.first_mut(), armv7_neon_rows::gemv(ty)) {
            first.run = DecodeFn::Gemv(g);
        }
        #[cfg(target_arch = "x86_64")]
        if x86_common::avx2_available() {
            let prefill = out.first().map_or("", |k| k.name);
            let gemv = |name, g| DecodeKernel {
                name,
                run: DecodeFn::Gemv(g),
                matches_prefill: gemv_twin(name, ty) == prefill,
            };
            if avx512 && x86_common::avx512vnni_available() {
                if let Some(g) = x86_avx2_avx512vnni_gemv::vnni(ty) {
                    out.push(gemv("avx512vnni-gemv", g));
                }
            }
            // The twin of the AVX2 eight-row tile: Q4_0/Q8_0 its one-token kernel over a run of rows, Q4_K/Q6_K
            // the address-order rows of `avx2-gemv` with the tile's float steps.
            let rows8_twin = x86_avx2_rows8::gemv(ty).or_else(|| x86_avx2_avx512vnni_gemv::avx2_rows8(ty));
            if let Some(g) = rows8_twin.filter(|_| out.iter().any(|k| k.name == "avx2-rows8")) {
                out.push(gemv("avx2-rows8-gemv", g));
            }
            if let Some(g) = x86_avx2_avx512vnni_gemv::avx2(ty) {
                out.push(gemv("avx2-gemv", g));
            }
        }
        // aarch64: the one-row NEON dot product stays a decode candidate beside the tile (forced by name only: it
        // sums in another order than the tile).
        #[cfg(target_arch = "aarch64")]
        if let Some(dot) = aarch64_neon::kernel(ty).filter(|_| !out.is_empty()) {
            out.push(DecodeKernel { name: "neon-dot", run: DecodeFn::Dot(dot), matches_prefill: false });
        }
        #[cfg(target_arch = "arm")]
        if let Some(dot) = armv7_neon::kernel(ty).filter(|_| !out.is_empty()) {
            out.push(DecodeKernel { name: "neon-dot", run: DecodeFn::Dot(dot), matches_prefill: false });
        }
        if out.is_empty() {
            if let Some(dot) = vec_dot_kernel(ty) {
                let name =
                    if cfg!(any(target_arch = "aarch64", target_arch = "arm")) { "neon-dot" } else { "avx2-dot" };
                // The format's only kernel: prefill uses it too.
                #[allow(unused_mut)]
                let mut run = DecodeFn::Dot(dot);
                // armv7: decode runs the same dot product through its GEMV entry (one call per run of rows).
                #[cfg(target_arch = "arm")]
                if let Some(g) = armv7_neon::gemv(ty) {
                    run = DecodeFn::Gemv(g);
                }
                out.push(DecodeKernel { name, run, matches_prefill: true });
            }
        }
    }
    if out.is_empty() {
        out.push(DecodeKernel {
            name: "scalar",
            run: DecodeFn::Dot(crate::quant::kernels(ty).vec_dot),
            matches_prefill: true,
        });
    }
    out
}

/// The tile kernel whose float steps the matrix-vector kernel `gemv` repeats for `ty`, so that its results equal
/// that tile's bit for bit (see `x86_avx2_avx512vnni_gemv`; `simd::tests` checks every pair).
#[cfg(target_arch = "x86_64")]
fn gemv_twin(gemv: &str, ty: GgmlType) -> &'static str {
    match (gemv, ty) {
        ("avx512vnni-gemv", GgmlType::Q4_K | GgmlType::Q6_K) => "avx512vnni-rows8",
        ("avx2-rows8-gemv", _) => "avx2-rows8",
        _ => "avx2-row",
    }
}

/// The kernel batched matmuls (prefill) of `ty` use on this CPU: the first of [`decode_kernel_candidates`].
pub fn prefill_kernel(ty: GgmlType) -> DecodeKernel {
    decode_kernel_candidates(ty)[0]
}

/// f32 values [`prepare_activations`] writes per block of the dot-product format `dot_ty` (0: none needed).
pub const fn scales_per_block(dot_ty: GgmlType) -> usize {
    match dot_ty {
        GgmlType::Q8_0 => 1,
        GgmlType::Q8_1 => 2,
        _ => 0,
    }
}

/// For one converted activation row of a Q8_0/Q8_1 format: each block's f16 scale(s) as f32 (`d`, or `d, s` for
/// Q8_1) into `scales`, and each block's sum of quants into `sums`. Nothing for other formats.
pub fn prepare_activations(dot_ty: GgmlType, row: &[u8], scales: &mut [f32], sums: &mut [i32]) {
    let per = scales_per_block(dot_ty);
    if per == 0 {
        return;
    }
    let block_bytes = dot_ty.block_bytes();
    let qs_at = block_bytes - 32;
    for ((blk, sc), sum) in row.chunks_exact(block_bytes).zip(scales.chunks_exact_mut(per)).zip(sums.iter_mut()) {
        for (j, v) in sc.iter_mut().enumerate() {
            *v = f16_to_f32(u16::from_le_bytes([blk[2 * j], blk[2 * j + 1]]));
        }
        *sum = blk[qs_at..].iter().map(|&q| q as i8 as i32).sum();
    }
}

/// Quantizes one activation row `src` into `dst` in the dot-product format `ty` (exactly the bytes of
/// [`quant::quantize_row_unchecked`], with SIMD where this CPU has a quantizer for `ty`; also the KV cache's rows).
/// Panics on a length bug.
pub fn quantize_activations(ty: GgmlType, src: &[f32], dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if !force_scalar() && x86_common::avx2_available() && x86_avx2_convert::quantize(ty, src, dst) {
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if ty == GgmlType::F16 && !force_scalar() {
        return aarch64_neon::f32_row_to_f16(src, dst);
    }
    #[cfg(target_arch = "aarch64")]
    if !force_scalar() && aarch64_neon_quantize::quantize(ty, src, dst) {
        return;
    }
    #[cfg(target_arch = "arm")]
    if !force_scalar() && armv7_neon::available() && armv7_neon_convert::quantize(ty, src, dst) {
        return;
    }
    #[cfg(target_arch = "arm")]
    if ty == GgmlType::F16 && !force_scalar() && armv7_neon::available() {
        return armv7_neon::f32_row_to_f16(src, dst);
    }
    crate::quant::quantize_row_unchecked(ty, src, dst);
}

/// Converts one row of `ty` values to f32 (exactly [`quant::dequantize_row_unchecked`], with SIMD for F16 where
/// the CPU has it: F16C on x86-64, `fcvtl` on every aarch64 CPU, VFPv4 `vcvtb`/`vcvtt` on armv7). Panics on a
/// length bug.
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if ty == GgmlType::F16 && !force_scalar() && x86_common::avx2_available() {
        return x86_avx2_convert::f16_to_f32(src, dst);
    }
    #[cfg(target_arch = "aarch64")]
    if ty == GgmlType::F16 && !force_scalar() {
        return aarch64_neon::f16_row_to_f32(src, dst);
    }
    #[cfg(target_arch = "arm")]
    if ty == GgmlType::F16 && !force_scalar() && armv7_neon::available() {
        return armv7_neon::f16_row_to_f32(src, dst);
    }
    crate::quant::dequantize_row_unchecked(ty, src, dst);
}

pub use crate::half_float::{f16_to_f32, f32_to_f16};

/// Rounds every value to the nearest f16 and back (exactly `half::f16::from_f32(v).to_f32()` per value), as the
/// attention does with queries that meet an F16 KV cache. `fcvtn` + `fcvtl` on aarch64.
pub fn round_through_f16(values: &mut [f32]) {
    #[cfg(target_arch = "aarch64")]
    if !force_scalar() {
        return aarch64_neon::round_through_f16(values);
    }
    #[cfg(target_arch = "arm")]
    if !force_scalar() && armv7_neon::available() {
        return armv7_neon::round_through_f16(values);
    }
    values.iter_mut().for_each(|v| *v = half::f16::from_f32(*v).to_f32());
}

/// The tile kernel for weights of type `ty` on this CPU, if there is one (see [`TileFn`]).
pub fn tile_kernel(ty: GgmlType) -> Option<TileKernel> {
    tile_kernel_candidates(ty).into_iter().flatten().next().map(|(_, k)| k)
}

/// The tile kernels for `ty` this CPU can run, best first, each with a name (the tests check them all). A fixed
/// array, so that picking one per matmul does not allocate.
fn tile_kernel_candidates(ty: GgmlType) -> [Option<(&'static str, TileKernel)>; 2] {
    #[cfg(target_arch = "x86_64")]
    return tile_kernel_candidates_on(ty, avx512_allowed());
    #[cfg(not(target_arch = "x86_64"))]
    tile_kernel_candidates_on(ty, false)
}

/// [`tile_kernel_candidates`] of the x86-64 AVX-512 path (`avx512`, where the CPU has AVX-512 VNNI) or of the AVX2
/// path; `avx512` is ignored elsewhere.
fn tile_kernel_candidates_on(ty: GgmlType, avx512: bool) -> [Option<(&'static str, TileKernel)>; 2] {
    let _ = avx512;
    if force_scalar() {
        return [None, None];
    }
    #[cfg(target_arch = "x86_64")]
    if x86_common::avx2_available() {
        let row = x86_avx2_tiles::kernel(ty).map(|k| ("avx2-row", k));
        if avx512 && x86_common::avx512vnni_available() {
            return [x86_avx512vnni_tiles::kernel(ty).map(|k| ("avx512vnni-rows8", k)), row];
        }
        let rows8 = x86_avx2_rows8::kernel(ty).or_else(|| x86_avx2_rows8_kquant::kernel(ty)).map(|k| ("avx2-rows8", k));
        // Q8_0 keeps `avx2-row` for prefill: decode must round like prefill, and the eight-row tile's twin decoded
        // SmolLM2-135M (whose Q8_0 output head is a third of a token's weights) 8-16 % slower than `avx2-gemv`, the
        // twin of `avx2-row` (Zen 3, 1 thread, interleaved runs), for a 1.2x faster Q8_0 prefill. The eight-row tile
        // stays a candidate that `PICOLM_KERNEL=avx2-rows8` forces.
        if ty == GgmlType::Q8_0 {
            return [row, rows8];
        }
        return [rows8, row];
    }
    #[cfg(target_arch = "aarch64")]
    {
        let tile = aarch64_neon_tiles::kernel(ty, aarch64_neon::has_dotprod());
        // With FEAT_I8MM, Q4_0, Q4_1, Q5_0, Q8_0, Q4_K and Q6_K prefill with `smmla` (bit-identical to the `sdot` tile,
        // which stays a candidate that `PICOLM_KERNEL=neon-sdot-4x8`, or `neon-sdot-4x4` for Q4_1, forces for decode).
        if let Some(i8mm) = aarch64_neon_tiles_i8mm::kernel(ty).filter(|_| aarch64_neon_tiles_i8mm::available()) {
            return [Some(i8mm), tile];
        }
        return [tile, None];
    }
    #[cfg(target_arch = "arm")]
    if armv7_neon::available() {
        return [armv7_neon_rows::tile(ty).map(|k| ("neon-4x4", k)), None];
    }
    #[allow(unreachable_code)]
    let _ = ty;
    [None, None]
}

/// Checks that `w` and `x` hold `n / block` blocks of the given sizes; returns the block count. Panics on a
/// caller bug (the kernels' safe wrappers call it before any pointer arithmetic).
#[allow(dead_code)] // unused on targets without SIMD kernels
fn blocks(n: usize, block: usize, w: &[u8], w_bytes: usize, x: &[u8], x_bytes: usize) -> usize {
    assert!(n.is_multiple_of(block), "row length {n} is not a multiple of {block}");
    let nb = n / block;
    assert!(w.len() >= nb * w_bytes && x.len() >= nb * x_bytes, "kernel slices too short for {n} values");
    nb
}

/// The f32 scale of the Q8_K activation block at `xb` (layout: see [`tile_common`]).
///
/// # Safety
/// `xb` points to a whole Q8_K block (`GgmlType::Q8_K.block_bytes()` readable bytes).
#[allow(dead_code)] // unused on targets without K-quant kernels
#[inline(always)]
unsafe fn q8k_d(xb: *const u8) -> f32 {
    f32::from_le_bytes([*xb, *xb.add(1), *xb.add(2), *xb.add(3)])
}

/// The sum of the 16 activations of group `k` (0..16) of the Q8_K block at `xb`.
///
/// # Safety
/// As [`q8k_d`].
#[allow(dead_code)]
#[inline(always)]
unsafe fn q8k_bsum(xb: *const u8, k: usize) -> i32 {
    i16::from_le_bytes([*xb.add(tile_common::Q8K_BSUMS + 2 * k), *xb.add(tile_common::Q8K_BSUMS + 1 + 2 * k)]) as i32
}

/// Whether `PICOLM_FORCE_SCALAR` is set (read once): every kernel is then the scalar reference.
fn force_scalar() -> bool {
    static FORCE_SCALAR: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FORCE_SCALAR.get_or_init(|| std::env::var_os("PICOLM_FORCE_SCALAR").is_some())
}

/// Whether `PICOLM_NO_AVX512` is set (read once): x86-64 then uses its AVX2 kernels even on AVX-512 CPUs (to
/// compare paths, or to test the AVX2 path end to end on an AVX-512 machine).
#[cfg(target_arch = "x86_64")]
fn avx512_allowed() -> bool {
    static ALLOWED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ALLOWED.get_or_init(|| std::env::var_os("PICOLM_NO_AVX512").is_none() && x86_common::avx512vnni_available())
}

/// The kernel path in use on this CPU (`"x86_64-avx2-fma"`, `"aarch64-neon-dotprod"`, `"aarch64-neon-i8mm"`,
/// `"scalar"`, ...).
pub fn cpu_path() -> &'static str {
    if force_scalar() {
        return "scalar (PICOLM_FORCE_SCALAR)";
    }
    #[cfg(target_arch = "x86_64")]
    if x86_common::avx2_available() {
        return if avx512_allowed() { "x86_64-avx2-fma+avx512vnni" } else { "x86_64-avx2-fma" };
    }
    #[cfg(target_arch = "aarch64")]
    return if aarch64_neon_tiles_i8mm::available() {
        "aarch64-neon-i8mm"
    } else if aarch64_neon::has_dotprod() {
        "aarch64-neon-dotprod"
    } else {
        "aarch64-neon"
    };
    #[cfg(target_arch = "arm")]
    if armv7_neon::available() {
        return "armv7-neon-vfpv4";
    }
    #[allow(unreachable_code)]
    "scalar"
}

/// The SIMD one-row dot product for weights of type `ty` on this CPU, if there is one: what the matmul uses for
/// formats without a tile kernel ([`tile_kernel`]), i.e. the formats other than Q4_0 and Q8_0 on armv7, the formats
/// other than Q4_0, Q4_1, Q5_0, Q8_0, Q4_K and Q6_K on aarch64, and the formats other than Q4_0, Q4_1, Q8_0, Q4_K
/// and Q6_K on x86-64.
pub fn vec_dot_kernel(ty: GgmlType) -> Option<VecDotFn> {
    if force_scalar() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    if x86_common::avx2_available() {
        return x86_avx2_dot::kernel(ty);
    }
    // aarch64: the formats with a tile kernel reach their one-row kernel only as the `neon-dot` decode candidate.
    #[cfg(target_arch = "aarch64")]
    return aarch64_neon::kernel(ty).filter(|_| tile_kernel(ty).is_none());
    // armv7: likewise (Q4_0 and Q8_0 have the four-row tile).
    #[cfg(target_arch = "arm")]
    if armv7_neon::available() {
        return armv7_neon::kernel(ty).filter(|_| tile_kernel(ty).is_none());
    }
    #[allow(unreachable_code)]
    {
        let _ = ty;
        None
    }
}

#[cfg(test)]
mod tests;
