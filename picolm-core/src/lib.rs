//! PicoLM engine: runs Llama-architecture language models stored in GGUF files on small CPUs.
//!
//! Layers, bottom up (a module uses only modules listed before it; CONTRIBUTING.md has the diagram):
//! - [`ggml_type`], [`half_float`], [`fs_safety`], [`memory`]: element types, scalar f16 conversion, safe access to
//!   user-named files, process memory readings.
//! - [`gguf`]: a validating, zero-copy GGUF v2/v3 reader over a memory map (and a writer).
//! - [`quant`]: block formats and their scalar reference kernels (dequantize, quantize, dot).
//! - [`simd`]: the SIMD kernels (x86 AVX2 / AVX-512 VNNI, aarch64 NEON), tested against [`quant`].
//! - [`compute`]: the thread pool, weight-matrix references, matmul and element-wise operations.
//! - [`tokenizer`]: GPT-2 byte-level BPE and SentencePiece-style vocabularies read from GGUF metadata.
//! - [`model`], [`grammar`], [`sampler`], [`chat`]: hyper-parameters, weights, KV cache and the Llama forward
//!   pass; the JSON / JSON Schema automaton and its token constraint; token selection; chat templates.
//! - `state_file`: the format of saved session states and its checks (tied to a model fingerprint).
//! - [`session`]: a conversation's KV cache and buffers; saving and restoring it as a state file.
//! - [`generate`]: streaming generation over a session.
//! - [`agent`], [`perplexity`], [`bench`], [`quantize`]: the tool-call loop and the tools built on generation.
//! - [`error`]: the crate-wide [`Error`] that wraps each module's own error type.
//!
//! [`ggml_type`], [`half_float`], [`quant`] and [`simd`] are the crate `picolm-kernels`, re-exported here under the
//! same names: a crate of its own so that release builds keep the kernels at opt-level 3 and build the rest for size.
//!
//! Cargo features (all on by default; turn them off for small builds): `jinja` (the models' own Jinja chat
//! templates; without it the built-in formats of [`chat::BuiltinFormat`]), `json-schema` (the JSON Schema compiler
//! of [`grammar`]; the JSON object/value modes need no feature), `agent` (the tool-call loop, [`agent`]),
//! `quantize` (the model quantizer `quantize`, the K-quant search and the GGUF writer `gguf::GgufWriter`), `bench`
//! (running the benchmark, `bench::run_bench`, and the read-bandwidth test `bandwidth`) and `state` (saving and
//! restoring session states: `state_file`, the model fingerprint and the `Session::save_state` family).
//! [`FEATURES`] lists the features of a build.

// Kernels and reference formulas index several arrays with one loop variable, as the formats are specified;
// rewriting them as iterator chains would hide the correspondence with the reference (ggml) code.
#![allow(clippy::needless_range_loop)]

// The kernel crate's modules, under the names they had when they lived here (`crate::simd::…`,
// `picolm_core::quant::…`): picolm-kernels is a crate of its own only so that it keeps opt-level 3 in release builds
// while the rest of picolm-core is built for size.
pub use picolm_kernels::{ggml_type, half_float, quant, simd};

pub mod alloc;
pub mod error;
pub mod fs_safety;
pub mod gguf;
pub mod names;
pub mod tokenizer;

pub use error::Error;
pub use ggml_type::GgmlType;
#[cfg(feature = "agent")]
pub mod agent;
pub mod chat;
pub mod compute;
pub mod generate;
pub mod grammar;
pub mod model;
pub mod sampler;
pub mod session;
mod sorting;
#[cfg(feature = "state")]
pub mod state_file;

pub use generate::{CancelToken, GenerateParams, GenerationOutput, GenerationState, StopReason, TokenConstraint};
pub use model::{Model, ModelParams};
pub use sampler::SamplerParams;
pub use session::{Session, SessionParams};
#[cfg(feature = "bench")]
pub mod bandwidth;
pub mod bench;
pub mod memory;
pub mod perplexity;
#[cfg(feature = "quantize")]
pub mod quantize;

/// The optional Cargo features this build of the crate was compiled with, in a fixed order
/// (`jinja`, `json-schema`, `agent`, `quantize`, `bench`, `state`, `avx512`, `i8mm`; `avx512` only on x86-64 and
/// `i8mm` only on aarch64, the only architectures where they change anything).
pub const FEATURES: &[&str] = &[
    #[cfg(feature = "jinja")]
    "jinja",
    #[cfg(feature = "json-schema")]
    "json-schema",
    #[cfg(feature = "agent")]
    "agent",
    #[cfg(feature = "quantize")]
    "quantize",
    #[cfg(feature = "bench")]
    "bench",
    #[cfg(feature = "state")]
    "state",
    #[cfg(all(feature = "avx512", target_arch = "x86_64"))]
    "avx512",
    #[cfg(all(feature = "i8mm", target_arch = "aarch64"))]
    "i8mm",
];
