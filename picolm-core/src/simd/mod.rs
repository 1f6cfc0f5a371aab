//! SIMD dot-product kernels, chosen at run time by CPU feature detection (one binary for every CPU of a family).
//!
//! Each kernel computes exactly what the scalar reference in [`crate::quant`] computes (same block formats, same
//! integer products), only with vector instructions; the tests in this module compare every kernel against the
//! reference on random blocks. [`vec_dot_kernel`] returns the best kernel for a weight type on this CPU, or `None`
//! to use the scalar path.

#[cfg(target_arch = "aarch64")]
mod aarch64_dotprod_tiles;
#[cfg(target_arch = "aarch64")]
mod aarch64_neon;
#[cfg(target_arch = "arm")]
mod armv7_neon;
#[cfg(target_arch = "x86_64")]
mod x86_avx2;
#[cfg(target_arch = "x86_64")]
mod x86_gemv;
#[cfg(target_arch = "x86_64")]
mod x86_quantize;
#[cfg(target_arch = "x86_64")]
mod x86_rows8;
#[cfg(target_arch = "x86_64")]
mod x86_tiles;

use crate::ggml_type::GgmlType;

/// A dot product of `n` weights (one row, in the weight format) with activations in the weight format's
/// dot-product format. Safe to call: lengths are checked by the wrapper (panics on a caller bug).
pub type VecDotFn = fn(n: usize, w: &[u8], x: &[u8]) -> f32;

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
    "avx2-gemv",
    "avx2-row",
    "avx2-dot",
    "neon-sdot-4x4",
    "neon-4x4",
    "neon-dot",
    "scalar",
];

/// The decode kernels this CPU can run for weights of type `ty`, the prefill kernel (see [`prefill_kernel`])
/// first. Never empty: the last resort is the scalar reference.
pub fn decode_kernel_candidates(ty: GgmlType) -> Vec<DecodeKernel> {
    let mut out = Vec::new();
    if !force_scalar() {
        for (name, k) in tile_kernel_candidates(ty).into_iter().flatten() {
            out.push(DecodeKernel { name, run: DecodeFn::Tile(k) });
        }
        #[cfg(target_arch = "x86_64")]
        if x86_avx2::available() {
            if avx512_allowed() {
                if let Some(g) = x86_gemv::vnni(ty) {
                    out.push(DecodeKernel { name: "avx512vnni-gemv", run: DecodeFn::Gemv(g) });
                }
            }
            if let Some(g) = x86_gemv::avx2(ty) {
                out.push(DecodeKernel { name: "avx2-gemv", run: DecodeFn::Gemv(g) });
            }
        }
        // aarch64: the one-row NEON dot product stays a decode candidate beside the tile (`PICOLM_KERNEL=auto`).
        #[cfg(target_arch = "aarch64")]
        if let Some(dot) = aarch64_neon::kernel(ty).filter(|_| !out.is_empty()) {
            out.push(DecodeKernel { name: "neon-dot", run: DecodeFn::Dot(dot) });
        }
        if out.is_empty() {
            if let Some(dot) = vec_dot_kernel(ty) {
                let name = if cfg!(target_arch = "aarch64") { "neon-dot" } else { "avx2-dot" };
                out.push(DecodeKernel { name, run: DecodeFn::Dot(dot) });
            }
        }
    }
    if out.is_empty() {
        out.push(DecodeKernel { name: "scalar", run: DecodeFn::Dot(crate::quant::kernels(ty).vec_dot) });
    }
    out
}

/// The kernel batched matmuls (prefill) of `ty` use on this CPU: the first of [`decode_kernel_candidates`].
pub fn prefill_kernel(ty: GgmlType) -> DecodeKernel {
    decode_kernel_candidates(ty)[0]
}

/// f32 values [`prepare_activations`] writes per block of the dot-product format `dot_ty` (0: none needed).
pub fn scales_per_block(dot_ty: GgmlType) -> usize {
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
    if !force_scalar() && x86_avx2::available() && x86_quantize::quantize(ty, src, dst) {
        return;
    }
    #[cfg(target_arch = "aarch64")]
    if ty == GgmlType::F16 && !force_scalar() {
        return aarch64_neon::f32_row_to_f16(src, dst);
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
    if ty == GgmlType::F16 && !force_scalar() && x86_avx2::available() {
        return x86_avx2::f16_to_f32(src, dst);
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
    if force_scalar() {
        return [None, None];
    }
    #[cfg(target_arch = "x86_64")]
    if x86_avx2::available() {
        let rows8 = if avx512_allowed() { x86_rows8::kernel(ty) } else { None };
        return [rows8.map(|k| ("avx512vnni-rows8", k)), x86_tiles::kernel(ty).map(|k| ("avx2-row", k))];
    }
    #[cfg(target_arch = "aarch64")]
    return [aarch64_dotprod_tiles::kernel(ty, aarch64_neon::has_dotprod()), None];
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

/// The f32 scale of the Q8_K activation block at `xb` (layout: f32 d, i8 qs[256], i16 bsums[16]).
///
/// # Safety
/// `xb` points to a whole Q8_K block (292 readable bytes).
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
    i16::from_le_bytes([*xb.add(260 + 2 * k), *xb.add(261 + 2 * k)]) as i32
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
    *ALLOWED.get_or_init(|| std::env::var_os("PICOLM_NO_AVX512").is_none() && x86_rows8::available())
}

/// The kernel path in use on this CPU (`"x86_64-avx2-fma"`, `"aarch64-neon-dotprod"`, `"scalar"`, ...).
pub fn cpu_path() -> &'static str {
    if force_scalar() {
        return "scalar (PICOLM_FORCE_SCALAR)";
    }
    #[cfg(target_arch = "x86_64")]
    if x86_avx2::available() {
        return if avx512_allowed() { "x86_64-avx2-fma+avx512vnni" } else { "x86_64-avx2-fma" };
    }
    #[cfg(target_arch = "aarch64")]
    return if aarch64_neon::has_dotprod() { "aarch64-neon-dotprod" } else { "aarch64-neon" };
    #[cfg(target_arch = "arm")]
    if armv7_neon::available() {
        return "armv7-neon-vfpv4";
    }
    #[allow(unreachable_code)]
    "scalar"
}

/// The fastest dot-product kernel for weights of type `ty` on this CPU, if a SIMD one exists.
pub fn vec_dot_kernel(ty: GgmlType) -> Option<VecDotFn> {
    if force_scalar() {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    if x86_avx2::available() {
        return x86_avx2::kernel(ty);
    }
    #[cfg(target_arch = "aarch64")]
    return aarch64_neon::kernel(ty);
    #[cfg(target_arch = "arm")]
    if armv7_neon::available() {
        return armv7_neon::kernel(ty);
    }
    #[allow(unreachable_code)]
    {
        let _ = ty;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant;

    /// Deterministic pseudo-random floats with occasional extreme values.
    fn values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let u = (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
                if i % 97 == 13 {
                    u * scale * 30.0
                } else {
                    u * scale
                }
            })
            .collect()
    }

    fn check(ty: GgmlType, n: usize, w: &[f32], x: &[f32]) {
        let Some(kernel) = vec_dot_kernel(ty) else { return };
        let wq = {
            let mut b = vec![0u8; ty.row_bytes(n as u64).unwrap() as usize];
            quant::quantize_row(ty, w, &mut b).unwrap();
            b
        };
        let xt = quant::vec_dot_type(ty);
        let mut xq = vec![0u8; xt.row_bytes(n as u64).unwrap() as usize];
        quant::quantize_row(xt, x, &mut xq).unwrap();
        let reference = quant::vec_dot(ty, n, &wq, &xq).unwrap();
        let fast = kernel(n, &wq, &xq);
        // Both sum the same integer (or float) products; only the float accumulation order differs.
        let magnitude: f32 = w.iter().zip(x).map(|(a, b)| (a * b).abs()).sum::<f32>().max(1e-6);
        let tol = 2e-5 * magnitude + 1e-6;
        assert!((reference - fast).abs() <= tol, "{ty}: n={n} reference {reference} simd {fast} (tol {tol})");
    }

    /// The CPUs with SIMD paths must actually hand out kernels (so the comparison below cannot silently skip).
    #[test]
    fn simd_kernels_exist_on_simd_cpus() {
        eprintln!("cpu path: {}", cpu_path());
        let expected: &[GgmlType] = match cpu_path() {
            p if p.starts_with("x86_64-avx2") => &[
                GgmlType::F32,
                GgmlType::F16,
                GgmlType::BF16,
                GgmlType::Q4_0,
                GgmlType::Q4_1,
                GgmlType::Q5_0,
                GgmlType::Q5_1,
                GgmlType::Q8_0,
                GgmlType::Q2_K,
                GgmlType::Q3_K,
                GgmlType::Q4_K,
                GgmlType::Q5_K,
                GgmlType::Q6_K,
            ],
            p if p.starts_with("aarch64-neon") => &[
                GgmlType::F32,
                GgmlType::F16,
                GgmlType::BF16,
                GgmlType::Q4_0,
                GgmlType::Q4_1,
                GgmlType::Q5_0,
                GgmlType::Q5_1,
                GgmlType::Q8_0,
                GgmlType::Q2_K,
                GgmlType::Q3_K,
                GgmlType::Q4_K,
                GgmlType::Q5_K,
                GgmlType::Q6_K,
            ],
            p if p.starts_with("armv7-neon") => {
                &[GgmlType::F16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K]
            }
            _ => &[],
        };
        for &ty in expected {
            assert!(vec_dot_kernel(ty).is_some(), "no {} kernel for {ty}", cpu_path());
        }
        if cpu_path().starts_with("x86_64-avx2") {
            for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K] {
                assert!(tile_kernel(ty).is_some(), "no tile kernel for {ty}");
            }
        }
    }

    /// Run-time detection picks the path the test runner expects for the emulated CPU (scripts/test-arm.sh sets
    /// `PICOLM_EXPECT_CPU_PATH` for each `-cpu`), so a broken detection cannot leave a CPU on the scalar path unseen.
    #[test]
    fn cpu_path_is_the_expected_one() {
        if let Some(want) = std::env::var_os("PICOLM_EXPECT_CPU_PATH").filter(|w| !w.is_empty()) {
            assert_eq!(std::ffi::OsStr::new(cpu_path()), want, "kernel path on this CPU");
        }
    }

    /// A tile check's data: `rows` quantized weight rows and `xs.len()` converted activation rows.
    struct TileCase {
        wq: Vec<u8>,
        w_row_bytes: usize,
        xq: Vec<u8>,
        x_row_bytes: usize,
        scales: Vec<f32>,
        sums: Vec<i32>,
        blocks: usize,
        per_block: usize,
    }

    impl TileCase {
        fn new(ty: GgmlType, n: usize, ws: &[Vec<f32>], xs: &[Vec<f32>]) -> TileCase {
            let w_row_bytes = ty.row_bytes(n as u64).unwrap() as usize;
            let mut wq = vec![0u8; w_row_bytes * ws.len()];
            for (w, row) in ws.iter().zip(wq.chunks_exact_mut(w_row_bytes)) {
                quant::quantize_row(ty, w, row).unwrap();
            }
            let xt = quant::vec_dot_type(ty);
            let x_row_bytes = xt.row_bytes(n as u64).unwrap() as usize;
            let (blocks, per_block) = (n / xt.block_size(), scales_per_block(xt));
            let sums_per_row = if per_block > 0 { blocks } else { 0 };
            let mut xq = vec![0u8; x_row_bytes * xs.len()];
            let mut scales = vec![0f32; blocks * per_block * xs.len()];
            let mut sums = vec![0i32; sums_per_row * xs.len()];
            for (i, x) in xs.iter().enumerate() {
                let row = &mut xq[i * x_row_bytes..(i + 1) * x_row_bytes];
                quant::quantize_row(xt, x, row).unwrap();
                let sc = &mut scales[i * blocks * per_block..(i + 1) * blocks * per_block];
                prepare_activations(xt, row, sc, &mut sums[i * sums_per_row..(i + 1) * sums_per_row]);
            }
            TileCase { wq, w_row_bytes, xq, x_row_bytes, scales, sums, blocks, per_block }
        }

        fn rows(&self) -> ActivationRows<'_> {
            ActivationRows {
                bytes: &self.xq,
                row_bytes: self.x_row_bytes,
                blocks_per_row: self.blocks,
                scales_per_block: self.per_block,
                scales: &self.scales,
                sums: &self.sums,
            }
        }

        /// Results of weight rows `r0 .. r0 + rows` times tokens `t0 .. t0 + tokens` in one call.
        fn run(&self, k: &TileKernel, n: usize, r0: usize, rows: usize, t0: usize, tokens: usize) -> Vec<f32> {
            let mut out = vec![f32::NAN; rows * tokens];
            let shape = TileShape { rows, tokens, ld: tokens };
            (k.run)(n, &self.wq[r0 * self.w_row_bytes..], self.w_row_bytes, &self.rows(), t0, shape, &mut out);
            out
        }
    }

    #[test]
    fn tile_kernels_match_the_scalar_reference_and_do_not_depend_on_the_tile_shape() {
        let mut checked = 0;
        for ty in GgmlType::ALL {
            for (name, k) in tile_kernel_candidates(ty).into_iter().flatten() {
                for (seed, n) in [(1u64, 256usize), (2, 512), (3, 1536), (4, 4096)] {
                    for scale in [1e-3f32, 1.0, 50.0] {
                        // Nine weight rows (one full tile of eight and a partial one), some all-zero or extreme.
                        let mut ws: Vec<Vec<f32>> = (0..9u64).map(|r| values(seed + 20 + r, n, scale)).collect();
                        ws[2] = vec![0.0; n];
                        ws[5] = (0..n).map(|i| if i % 3 == 0 { 65000.0 } else { -65000.0 }).collect();
                        let mut xs: Vec<Vec<f32>> =
                            (0..MAX_TILE_TOKENS as u64 + 1).map(|t| values(seed + 10 + t, n, scale)).collect();
                        xs[1] = vec![0.0; n];
                        let case = TileCase::new(ty, n, &ws, &xs);
                        let wide = case.run(&k, n, 0, k.max_rows, 0, k.max_tokens);
                        for r in 0..k.max_rows {
                            for t in 0..k.max_tokens {
                                let one = case.run(&k, n, r, 1, t, 1)[0];
                                let got = wide[r * k.max_tokens + t];
                                assert_eq!(
                                    one.to_bits(),
                                    got.to_bits(),
                                    "{ty} {name}: row {r} token {t} depends on the tile"
                                );
                                let xq = &case.xq[t * case.x_row_bytes..(t + 1) * case.x_row_bytes];
                                let wq = &case.wq[r * case.w_row_bytes..(r + 1) * case.w_row_bytes];
                                let reference = quant::vec_dot(ty, n, wq, xq).unwrap();
                                let magnitude: f32 = ws[r].iter().zip(&xs[t]).map(|(a, b)| (a * b).abs()).sum::<f32>();
                                let tol = 2e-5 * magnitude.max(1e-6) + 1e-6;
                                assert!(
                                    (reference - got).abs() <= tol,
                                    "{ty} {name}: n={n} reference {reference} tile {got}"
                                );
                                checked += 1;
                            }
                        }
                        // Partial tiles at the end of the matrix (last row; all and some of the tokens from the
                        // second) agree too.
                        let last = ws.len() - 1;
                        for count in [k.max_tokens, k.max_tokens - 3] {
                            let part = case.run(&k, n, last, 1, 1, count);
                            for (i, v) in part.iter().enumerate() {
                                let one = case.run(&k, n, last, 1, 1 + i, 1)[0];
                                assert_eq!(v.to_bits(), one.to_bits(), "{ty} {name}: partial tile of {count} tokens");
                            }
                        }
                    }
                }
            }
        }
        eprintln!("{checked} tile results checked on {}", cpu_path());
    }

    /// Runs a decode kernel over weight rows `r0..rows` of `case` for token `t` (each call as the engine makes it).
    fn decode_run(k: &DecodeKernel, case: &TileCase, n: usize, r0: usize, rows: usize, t: usize) -> Vec<f32> {
        let mut out = vec![f32::NAN; rows - r0];
        let w = &case.wq[r0 * case.w_row_bytes..];
        match k.run {
            DecodeFn::Gemv(g) => g(n, w, case.w_row_bytes, &case.rows().token(t), &mut out),
            DecodeFn::Tile(tile) => {
                for (i, o) in out.iter_mut().enumerate() {
                    let shape = TileShape { rows: 1, tokens: 1, ld: 1 };
                    (tile.run)(
                        n,
                        &w[i * case.w_row_bytes..],
                        case.w_row_bytes,
                        &case.rows(),
                        t,
                        shape,
                        std::slice::from_mut(o),
                    );
                }
            }
            DecodeFn::Dot(dot) => {
                let x = &case.xq[t * case.x_row_bytes..(t + 1) * case.x_row_bytes];
                for (i, o) in out.iter_mut().enumerate() {
                    *o = dot(n, &w[i * case.w_row_bytes..(i + 1) * case.w_row_bytes], x);
                }
            }
        }
        out
    }

    /// Every decode kernel candidate (matrix-vector kernels included) agrees with the scalar reference, on every
    /// row of a run, with block counts that leave every tail of the four-block loops; a row's result does not
    /// depend on where the run starts.
    #[test]
    fn decode_kernels_match_the_scalar_reference() {
        let mut checked = 0;
        for ty in GgmlType::ALL {
            if matches!(ty, GgmlType::Q8_1 | GgmlType::Q8_K) {
                continue;
            }
            let candidates = decode_kernel_candidates(ty);
            assert_eq!(candidates[0].name, prefill_kernel(ty).name);
            for k in &candidates {
                assert!(DECODE_KERNEL_NAMES.contains(&k.name), "{ty}: {} is not a listed name", k.name);
                for (seed, n) in [(1u64, 256usize), (2, 512), (3, 1536), (5, 96), (6, 160), (7, 224)] {
                    if n % ty.block_size() != 0 {
                        continue;
                    }
                    for scale in [1e-3f32, 1.0, 50.0] {
                        let mut ws: Vec<Vec<f32>> = (0..9u64).map(|r| values(seed + 40 + r, n, scale)).collect();
                        ws[2] = vec![0.0; n];
                        ws[5] = (0..n).map(|i| if i % 3 == 0 { 65000.0 } else { -65000.0 }).collect();
                        let mut xs: Vec<Vec<f32>> = (0..3u64).map(|t| values(seed + 70 + t, n, scale)).collect();
                        xs[1] = vec![0.0; n];
                        let case = TileCase::new(ty, n, &ws, &xs);
                        for t in 0..xs.len() {
                            let all = decode_run(k, &case, n, 0, ws.len(), t);
                            let tail = decode_run(k, &case, n, 4, ws.len(), t);
                            for (r, got) in all.iter().enumerate() {
                                let xq = &case.xq[t * case.x_row_bytes..(t + 1) * case.x_row_bytes];
                                let wq = &case.wq[r * case.w_row_bytes..(r + 1) * case.w_row_bytes];
                                let reference = quant::vec_dot(ty, n, wq, xq).unwrap();
                                let magnitude: f32 = ws[r].iter().zip(&xs[t]).map(|(a, b)| (a * b).abs()).sum::<f32>();
                                let tol = 2e-5 * magnitude.max(1e-6) + 1e-6;
                                assert!(
                                    (reference - got).abs() <= tol,
                                    "{ty} {}: n={n} row {r} reference {reference} got {got}",
                                    k.name
                                );
                                if r >= 4 {
                                    assert_eq!(
                                        got.to_bits(),
                                        tail[r - 4].to_bits(),
                                        "{ty} {}: row {r} depends on the run",
                                        k.name
                                    );
                                }
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        eprintln!("{checked} decode results checked on {}", cpu_path());
    }

    /// The 32-wide matrix-vector kernels repeat the `avx2-row` tile's arithmetic: bit-identical results.
    #[test]
    fn gemv_kernels_of_32_wide_formats_equal_the_avx2_tile_bit_for_bit() {
        for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0] {
            let candidates = decode_kernel_candidates(ty);
            let Some(tile) = candidates.iter().find(|k| k.name == "avx2-row") else { continue };
            for k in candidates.iter().filter(|k| k.name.ends_with("-gemv")) {
                for (seed, n) in [(1u64, 256usize), (6, 160), (7, 224), (3, 1536)] {
                    for scale in [1e-3f32, 1.0, 50.0] {
                        let ws: Vec<Vec<f32>> = (0..5u64).map(|r| values(seed + 90 + r, n, scale)).collect();
                        let xs = vec![values(seed + 95, n, scale)];
                        let case = TileCase::new(ty, n, &ws, &xs);
                        let (a, b) = (decode_run(tile, &case, n, 0, 5, 0), decode_run(k, &case, n, 0, 5, 0));
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&a), bits(&b), "{ty} {}: n={n} scale {scale}", k.name);
                    }
                }
            }
        }
    }

    /// This CPU gets the decode kernels shaped for bandwidth where it has the instructions.
    #[test]
    fn gemv_kernels_are_candidates_on_x86() {
        if !cpu_path().starts_with("x86_64-avx2") {
            return;
        }
        for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q4_K, GgmlType::Q6_K] {
            assert!(decode_kernel_candidates(ty).iter().any(|k| k.name == "avx2-gemv"), "{ty}: no avx2-gemv");
        }
        if cpu_path().ends_with("avx512vnni") {
            for ty in [GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0] {
                assert!(decode_kernel_candidates(ty).iter().any(|k| k.name == "avx512vnni-gemv"), "{ty}: no VNNI gemv");
                assert!(decode_kernel_candidates(ty).iter().any(|k| k.name == "avx2-gemv"), "{ty}: no avx2-gemv");
            }
        }
    }

    #[test]
    fn activation_quantizers_give_the_reference_bytes() {
        for ty in [GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K] {
            for (seed, n) in [(1u64, 256usize), (2, 512), (3, 4096)] {
                let mut cases = vec![values(seed, n, 1.0), values(seed, n, 1e-3), values(seed, n, 300.0), vec![0.0; n]];
                // Exact halves and ties (x.5 steps), repeated magnitudes of both signs, a lone NaN and infinity.
                // Q8_0/Q8_1: amax 127 gives d = 1, so k + 0.5 are exact ties (rounded away from zero).
                cases.push((0..n).map(|i| if i % 32 == 0 { 127.0 } else { (i % 41) as f32 - 20.5 }).collect());
                // Q8_K: max -16 gives iscale 8, so odd sixteenths are exact ties (rounded to even).
                cases
                    .push((0..n).map(|i| if i % 256 == 0 { -16.0 } else { ((i % 61) as f32 - 30.0) / 16.0 }).collect());
                cases.push(
                    (0..n)
                        .map(|i| {
                            if i % 7 == 0 {
                                -2.0
                            } else if i % 5 == 0 {
                                2.0
                            } else {
                                1.0
                            }
                        })
                        .collect(),
                );
                let mut special = values(seed, n, 1.0);
                special[3] = f32::NAN;
                special[n - 1] = f32::INFINITY;
                cases.push(special);
                for x in cases {
                    let bytes = ty.row_bytes(n as u64).unwrap() as usize;
                    let (mut want, mut got) = (vec![0u8; bytes], vec![0u8; bytes]);
                    quant::quantize_row_unchecked(ty, &x, &mut want);
                    quantize_activations(ty, &x, &mut got);
                    assert_eq!(want, got, "{ty}: n={n} bytes differ from the reference");
                }
            }
        }
    }

    /// f32 bit patterns that probe every f32 -> f16 rounding case: zeros, every exponent from f16-subnormal
    /// underflow to overflow with mantissas around each tie point, the f16 range limits, infinities and NaNs (with
    /// payloads and signs), plus a stride through all 2^32 patterns.
    fn f32_probe_bits() -> Vec<u32> {
        let mut bits =
            vec![0, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0xFFC0_0000, 0x7F80_0001, 0x7FBF_FFFF];
        bits.extend([0x7FA0_1000u32, 0xFF80_2001, 0x7FFF_FFFF, 0x0000_0001, 0x8000_0001, 0x007F_FFFF]);
        for exp in 90u32..=150 {
            for sign in [0u32, 0x8000_0000] {
                for m in [
                    0u32, 1, 0xFFF, 0x1000, 0x1001, 0x1FFF, 0x2000, 0x2001, 0x3000, 0x5000, 0x7F_E000, 0x7F_EFFF,
                    0x7F_F000, 0x7F_F001, 0x7F_FFFF,
                ] {
                    bits.push(sign | exp << 23 | m);
                }
                // Below f16's smallest subnormal the tie point moves with the exponent: probe a spread of mantissas.
                for m in (0u32..0x80_0000).step_by(0x1_0001) {
                    bits.push(sign | exp << 23 | m);
                }
            }
        }
        bits.extend((0u64..(1 << 32)).step_by(65_537).map(|b| b as u32));
        bits
    }

    #[test]
    fn f16_scalar_conversions_equal_the_half_crate_bit_for_bit() {
        for h in 0..=u16::MAX {
            let (want, got) = (half::f16::from_bits(h).to_f32(), f16_to_f32(h));
            assert_eq!(want.to_bits(), got.to_bits(), "f16 {h:#06x}: half {want} vs {got}");
        }
        for b in f32_probe_bits() {
            let v = f32::from_bits(b);
            let (want, got) = (half::f16::from_f32(v).to_bits(), f32_to_f16(v));
            assert_eq!(want, got, "f32 {b:#010x} ({v}): half {want:#06x} vs {got:#06x}");
        }
    }

    #[test]
    fn f16_row_conversions_equal_the_reference_bit_for_bit() {
        // Every f16 value, in rows of lengths that leave each possible tail after the vector loop.
        let all: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
        for n in [65536usize, 65535, 65533, 65529, 9, 8, 7, 1, 0] {
            let src = &all[2 * (65536 - n)..];
            let (mut want, mut got) = (vec![0f32; n], vec![1f32; n]);
            quant::dequantize_row_unchecked(GgmlType::F16, src, &mut want);
            dequantize_row(GgmlType::F16, src, &mut got);
            let differ = want.iter().zip(&got).position(|(a, b)| a.to_bits() != b.to_bits());
            assert!(differ.is_none(), "n={n}: value {differ:?} differs");
        }
        let probe: Vec<f32> = f32_probe_bits().into_iter().map(f32::from_bits).collect();
        for n in [probe.len(), probe.len() - 1, probe.len() - 3, probe.len() - 7, 5, 0] {
            let src = &probe[probe.len() - n..];
            let (mut want, mut got) = (vec![0u8; 2 * n], vec![0xA5u8; 2 * n]);
            quant::quantize_row_unchecked(GgmlType::F16, src, &mut want);
            quantize_activations(GgmlType::F16, src, &mut got);
            assert_eq!(want, got, "f32 -> f16 row of {n} values");
            let mut rounded = src.to_vec();
            round_through_f16(&mut rounded);
            for (a, b) in src.iter().zip(&rounded) {
                assert_eq!(half::f16::from_f32(*a).to_f32().to_bits(), b.to_bits(), "round_through_f16({a})");
            }
        }
    }

    #[test]
    fn f16_rows_convert_exactly() {
        for n in [0usize, 1, 7, 8, 64, 67] {
            let bits: Vec<u8> = (0..n).flat_map(|i| ((i as u16).wrapping_mul(40503) ^ 0x3c00).to_le_bytes()).collect();
            let (mut want, mut got) = (vec![0f32; n], vec![1f32; n]);
            quant::dequantize_row_unchecked(GgmlType::F16, &bits, &mut want);
            dequantize_row(GgmlType::F16, &bits, &mut got);
            assert_eq!(
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "n={n}"
            );
        }
    }

    #[test]
    fn simd_kernels_match_the_scalar_reference() {
        for ty in GgmlType::ALL {
            if matches!(ty, GgmlType::Q8_1 | GgmlType::Q8_K) {
                continue;
            }
            for (seed, n) in [(1u64, 256usize), (2, 512), (3, 1536), (4, 4096)] {
                for scale in [1e-3f32, 1.0, 50.0] {
                    check(ty, n, &values(seed, n, scale), &values(seed + 100, n, scale));
                }
                let zeros = vec![0.0f32; n];
                check(ty, n, &zeros, &values(seed, n, 1.0));
                check(ty, n, &values(seed, n, 1.0), &zeros);
                let maxed: Vec<f32> = (0..n).map(|i| if i % 2 == 0 { 65000.0 } else { -65000.0 }).collect();
                check(ty, n, &maxed, &values(seed, n, 1.0));
            }
        }
    }
}
