//! Quantized block formats (ggml's byte layouts) and their scalar reference kernels: dequantize, quantize and the
//! dot product of a weight row with activations in the matching 8-bit format.
//!
//! These scalar functions define the numerics; the SIMD kernels in [`crate::simd`] are tested against them, and
//! they are the portable path on CPUs without a SIMD kernel (RISC-V, armv7 without NEON kernels).

mod float;
// ggml's search for K-format scales: only the quantizer needs it (activations and the KV cache use Q8_0, Q8_1,
// Q8_K and float formats). Unit tests use it to make K-format test data.
#[cfg(any(feature = "quantize", test))]
mod kquant_search;
mod kquants;
mod legacy;

use thiserror::Error;

use crate::ggml_type::GgmlType;

/// Errors of the checked entry points.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuantError {
    /// A row length is not a whole number of blocks.
    #[error("{n} values are not a whole number of {ty} blocks of {block}")]
    NotBlockMultiple {
        /// Type.
        ty: GgmlType,
        /// Values.
        n: usize,
        /// Block size.
        block: usize,
    },
    /// A byte buffer has the wrong length.
    #[error("{what}: {got} bytes for {n} {ty} values, expected {expected}")]
    LengthMismatch {
        /// Which buffer.
        what: &'static str,
        /// Type.
        ty: GgmlType,
        /// Values.
        n: usize,
        /// Expected bytes.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The operation does not exist for this type.
    #[error("{op} is not supported for {ty}")]
    Unsupported {
        /// Operation.
        op: &'static str,
        /// Type.
        ty: GgmlType,
    },
}

/// A dot product of `n` weights in some format with activations in that format's [`vec_dot_type`].
pub type VecDotFn = fn(n: usize, w: &[u8], x: &[u8]) -> f32;

/// The kernels of one weight type.
#[derive(Clone, Copy)]
pub struct Kernels {
    /// Scalar reference dot product (panics on a length bug of the caller).
    pub vec_dot: VecDotFn,
}

/// The format activations are converted to before a dot product with weights of type `w` (as in ggml).
pub fn vec_dot_type(w: GgmlType) -> GgmlType {
    match w {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => GgmlType::Q8_0,
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q8_1 => GgmlType::Q8_1,
        GgmlType::Q2_K | GgmlType::Q3_K | GgmlType::Q4_K | GgmlType::Q5_K | GgmlType::Q6_K | GgmlType::Q8_K => {
            GgmlType::Q8_K
        }
        GgmlType::F16 => GgmlType::F16,
        GgmlType::BF16 => GgmlType::BF16,
        GgmlType::F32 => GgmlType::F32,
    }
}

fn check_bytes(what: &'static str, ty: GgmlType, n: usize, got: usize) -> Result<(), QuantError> {
    if !n.is_multiple_of(ty.block_size()) {
        return Err(QuantError::NotBlockMultiple { ty, n, block: ty.block_size() });
    }
    let expected = n / ty.block_size() * ty.block_bytes();
    if got != expected {
        return Err(QuantError::LengthMismatch { what, ty, n, expected, got });
    }
    Ok(())
}

/// Dequantizes `dst.len()` values from `src` (exactly their byte size).
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<(), QuantError> {
    check_bytes("dequantize source", ty, dst.len(), src.len())?;
    dequantize_row_unchecked(ty, src, dst);
    Ok(())
}

/// Whether [`quantize_row`] can produce `ty` in this build: every type with the `quantize` feature; without it,
/// the float formats and the legacy block formats (Q4_0 ... Q8_1, Q8_K), not Q2_K ... Q6_K.
pub fn can_quantize(ty: GgmlType) -> bool {
    cfg!(any(feature = "quantize", test)) || !ty.is_k_quant() || ty == GgmlType::Q8_K
}

/// Quantizes `src` into `dst` (exactly their byte size) with ggml's reference algorithm for `ty`.
/// [`QuantError::Unsupported`] for a type that [`can_quantize`] says this build cannot produce.
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<(), QuantError> {
    if !can_quantize(ty) {
        return Err(QuantError::Unsupported { op: "quantizing without the `quantize` feature", ty });
    }
    check_bytes("quantize destination", ty, src.len(), dst.len())?;
    quantize_row_unchecked(ty, src, dst);
    Ok(())
}

/// Dot product of a weight row (`n` values of type `ty`) with activations in `vec_dot_type(ty)`.
pub fn vec_dot(ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> Result<f32, QuantError> {
    if matches!(ty, GgmlType::Q8_1 | GgmlType::Q8_K) {
        return Err(QuantError::Unsupported { op: "vec_dot with weights", ty });
    }
    check_bytes("weights", ty, n, w.len())?;
    check_bytes("activations", vec_dot_type(ty), n, x.len())?;
    Ok(vec_dot_unchecked(ty, n, w, x))
}

/// [`dequantize_row`] without the length check (panics on a length bug of the caller).
pub fn dequantize_row_unchecked(ty: GgmlType, src: &[u8], dst: &mut [f32]) {
    match ty {
        GgmlType::F32 => float::dequantize_f32(src, dst),
        GgmlType::F16 => float::dequantize_f16(src, dst),
        GgmlType::BF16 => float::dequantize_bf16(src, dst),
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 | GgmlType::Q8_1 => {
            legacy::dequantize(ty, src, dst)
        }
        GgmlType::Q8_K => kquants::dequantize_q8_k(src, dst),
        _ => kquants::dequantize(ty, src, dst),
    }
}

/// [`quantize_row`] without the checks (panics on a length bug of the caller, or on a type [`can_quantize`]
/// refuses).
pub fn quantize_row_unchecked(ty: GgmlType, src: &[f32], dst: &mut [u8]) {
    match ty {
        GgmlType::F32 => float::quantize_f32(src, dst),
        GgmlType::F16 => float::quantize_f16(src, dst),
        GgmlType::BF16 => float::quantize_bf16(src, dst),
        GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q5_1 | GgmlType::Q8_0 | GgmlType::Q8_1 => {
            legacy::quantize(ty, src, dst)
        }
        GgmlType::Q8_K => kquants::quantize_q8_k(src, dst),
        #[cfg(any(feature = "quantize", test))]
        _ => kquant_search::quantize(ty, src, dst),
        #[cfg(not(any(feature = "quantize", test)))]
        _ => panic!("quantizing to {ty} needs the `quantize` feature (check with quant::can_quantize)"),
    }
}

/// [`vec_dot`] without the checks (panics on a length bug of the caller).
pub fn vec_dot_unchecked(ty: GgmlType, n: usize, w: &[u8], x: &[u8]) -> f32 {
    (kernels(ty).vec_dot)(n, w, x)
}

fn unsupported_dot(_: usize, _: &[u8], _: &[u8]) -> f32 {
    panic!("Q8_1/Q8_K are activation formats, not weight formats (refused at model load)")
}

/// The scalar kernels of a weight type.
pub fn kernels(ty: GgmlType) -> &'static Kernels {
    macro_rules! k {
        ($f:expr) => {{
            static K: Kernels = Kernels { vec_dot: $f };
            &K
        }};
    }
    match ty {
        GgmlType::F32 => k!(float::dot_f32),
        GgmlType::F16 => k!(float::dot_f16),
        GgmlType::BF16 => k!(float::dot_bf16),
        GgmlType::Q4_0 => k!(legacy::dot_q4_0),
        GgmlType::Q4_1 => k!(legacy::dot_q4_1),
        GgmlType::Q5_0 => k!(legacy::dot_q5_0),
        GgmlType::Q5_1 => k!(legacy::dot_q5_1),
        GgmlType::Q8_0 => k!(legacy::dot_q8_0),
        GgmlType::Q2_K => k!(kquants::dot_q2_k),
        GgmlType::Q3_K => k!(kquants::dot_q3_k),
        GgmlType::Q4_K => k!(kquants::dot_q4_k),
        GgmlType::Q5_K => k!(kquants::dot_q5_k),
        GgmlType::Q6_K => k!(kquants::dot_q6_k),
        GgmlType::Q8_1 | GgmlType::Q8_K => k!(unsupported_dot),
    }
}

/// Reads a little-endian f16 at `b[i..i + 2]` (one instruction on aarch64: [`crate::half_float::f16_to_f32`]).
#[inline(always)]
pub(crate) fn f16_at(b: &[u8], i: usize) -> f32 {
    crate::half_float::f16_to_f32(u16::from_le_bytes([b[i], b[i + 1]]))
}

/// Writes `v` as a little-endian f16 at `b[i..i + 2]` (round to nearest even; [`crate::half_float::f32_to_f16`]).
#[inline(always)]
pub(crate) fn put_f16(b: &mut [u8], i: usize, v: f32) {
    b[i..i + 2].copy_from_slice(&crate::half_float::f32_to_f16(v).to_le_bytes());
}

/// Rounds to the nearest integer, ties to even (ggml's `nearest_int` uses the FPU's default rounding).
#[inline(always)]
pub(crate) fn nearest_int(v: f32) -> i32 {
    v.round_ties_even() as i32
}

#[cfg(test)]
mod tests;

/// The 16 signed scales of a Q3_K block's packed `scales[12]` (shared with the SIMD kernels).
#[allow(dead_code)] // used by the x86-64 and aarch64 kernels
pub(crate) fn q3_k_scales(s: &[u8]) -> [i32; 16] {
    kquants::q3_scales(s)
}

/// The 6-bit scale and min of sub-block `j` (0..8) of a Q4_K/Q5_K block's packed `scales[12]`.
#[allow(dead_code)] // used by the aarch64 kernels
pub(crate) fn k4_scale_min(j: usize, scales: &[u8]) -> (u8, u8) {
    kquants::scale_min_k4(j, scales)
}
