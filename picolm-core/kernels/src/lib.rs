//! PicoLM's hot kernels, in a crate of their own so that release builds keep them at opt-level 3 while the rest of
//! the engine (`picolm-core`, which re-exports these modules under the same names) is built for size.
//!
//! Layers, bottom up:
//! - [`ggml_type`], [`half_float`]: the GGML element types and scalar f16 conversion.
//! - [`quant`]: block formats and their scalar reference kernels (dequantize, quantize, dot).
//! - [`simd`]: the SIMD kernels (x86 AVX2 / AVX-512 VNNI, aarch64 and armv7 NEON), tested against [`quant`].
//! - [`ops`]: the forward pass's element-wise operations (RMSNorm, SwiGLU, RoPE rotation, the attention step).

// Kernels and reference formulas index several arrays with one loop variable, as the formats are specified;
// rewriting them as iterator chains would hide the correspondence with the reference (ggml) code.
#![allow(clippy::needless_range_loop)]

pub mod ggml_type;
pub mod half_float;
pub mod ops;
pub mod quant;
pub mod simd;
