//! SIMD dot-product kernels, chosen at run time by CPU feature detection (one binary for every CPU of a family).
//!
//! Each kernel computes exactly what the scalar reference in [`crate::quant`] computes (same block formats, same
//! integer products), only with vector instructions; the tests in this module compare every kernel against the
//! reference on random blocks. [`vec_dot_kernel`] returns the best kernel for a weight type on this CPU, or `None`
//! to use the scalar path.

#[cfg(target_arch = "aarch64")]
mod aarch64_neon;
#[cfg(target_arch = "x86_64")]
mod x86_avx2;

use crate::ggml_type::GgmlType;

/// A dot product of `n` weights (one row, in the weight format) with activations in the weight format's
/// dot-product format. Safe to call: lengths are checked by the wrapper (panics on a caller bug).
pub type VecDotFn = fn(n: usize, w: &[u8], x: &[u8]) -> f32;

/// Checks that `w` and `x` hold `n / block` blocks of the given sizes; returns the block count. Panics on a
/// caller bug (the kernels' safe wrappers call it before any pointer arithmetic).
#[allow(dead_code)] // unused on targets without SIMD kernels
fn blocks(n: usize, block: usize, w: &[u8], w_bytes: usize, x: &[u8], x_bytes: usize) -> usize {
    assert!(n % block == 0, "row length {n} is not a multiple of {block}");
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

/// The kernel path in use on this CPU (`"x86_64-avx2-fma"`, `"aarch64-neon-dotprod"`, `"scalar"`, ...).
pub fn cpu_path() -> &'static str {
    if force_scalar() {
        return "scalar (PICOLM_FORCE_SCALAR)";
    }
    #[cfg(target_arch = "x86_64")]
    if x86_avx2::available() {
        return "x86_64-avx2-fma";
    }
    #[cfg(target_arch = "aarch64")]
    return if aarch64_neon::has_dotprod() { "aarch64-neon-dotprod" } else { "aarch64-neon" };
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
                GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0,
                GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
                GgmlType::Q6_K,
            ],
            p if p.starts_with("aarch64-neon") => {
                &[GgmlType::F32, GgmlType::F16, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::Q6_K]
            }
            _ => &[],
        };
        for &ty in expected {
            assert!(vec_dot_kernel(ty).is_some(), "no {} kernel for {ty}", cpu_path());
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
