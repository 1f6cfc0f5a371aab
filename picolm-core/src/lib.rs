//! PicoLM engine: runs Llama-architecture language models stored in GGUF files on small CPUs.
//!
//! Layers, bottom up:
//! - [`gguf`]: a validating, zero-copy GGUF v2/v3 reader over a memory map (and a writer).
//! - [`quant`]: block formats, scalar reference kernels and SIMD kernels (dequantize, quantize, dot).
//! - [`tokenizer`]: GPT-2 byte-level BPE and SentencePiece-style vocabularies read from GGUF metadata.
//! - [`model`]: hyper-parameters, weights, KV cache and the Llama forward pass.
//! - [`sampler`] and [`generate`]: token selection and streaming generation sessions.

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
pub mod agent;
pub mod sampler;
pub mod session;

pub use generate::{CancelToken, GenerateParams, GenerationOutput, GenerationState, StopReason, TokenConstraint};
pub use model::{Model, ModelParams};
pub use sampler::SamplerParams;
pub use session::{Session, SessionParams};
pub mod perplexity;
pub mod memory;
pub mod bandwidth;
pub mod bench;
pub mod quantize;
pub mod simd;
