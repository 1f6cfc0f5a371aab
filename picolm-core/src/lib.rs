//! PicoLM engine: runs Llama-architecture language models stored in GGUF files on small CPUs.
//!
//! Layers, bottom up:
//! - [`gguf`]: a validating, zero-copy GGUF v2/v3 reader over a memory map (and a writer).
//! - [`quant`]: block formats, scalar reference kernels and SIMD kernels (dequantize, quantize, dot).
//! - [`tokenizer`]: GPT-2 byte-level BPE and SentencePiece-style vocabularies read from GGUF metadata.
//! - [`model`]: hyper-parameters, weights, KV cache and the Llama forward pass.
//! - [`sampler`] and [`generate`]: token selection and streaming generation sessions.
//!
//! Cargo features (all on by default; turn them off for small builds): `jinja` (the models' own Jinja chat
//! templates; without it the built-in formats of [`chat::BuiltinFormat`]), `json-schema` (the JSON Schema compiler
//! of [`grammar`]; the JSON object/value modes need no feature), `agent` (the tool-call loop, [`agent`]) and
//! `quantize` (the model quantizer `quantize`, the K-quant search and the GGUF writer `gguf::GgufWriter`).
//! [`FEATURES`] lists the features of a build.

pub mod error;
pub mod fs_safety;
pub mod ggml_type;
pub mod gguf;
pub mod quant;
pub mod tokenizer;

pub use error::Error;
pub use ggml_type::GgmlType;
pub mod compute;
pub mod model;
pub mod generate;
pub mod grammar;
pub mod chat;
#[cfg(feature = "agent")]
pub mod agent;
pub mod sampler;
pub mod session;

pub use generate::{CancelToken, GenerateParams, GenerationOutput, GenerationState, StopReason, TokenConstraint};
pub use model::{Model, ModelParams};
pub use sampler::SamplerParams;
pub use session::{Session, SessionParams};
pub mod perplexity;
pub mod memory;
pub mod bench;
#[cfg(feature = "quantize")]
pub mod quantize;
pub mod simd;

/// The optional Cargo features this build of the crate was compiled with, in a fixed order
/// (`jinja`, `json-schema`, `agent`, `quantize`).
pub const FEATURES: &[&str] = &[
    #[cfg(feature = "jinja")]
    "jinja",
    #[cfg(feature = "json-schema")]
    "json-schema",
    #[cfg(feature = "agent")]
    "agent",
    #[cfg(feature = "quantize")]
    "quantize",
];
