//! The tensors of a Llama model, located in the GGUF file and checked against the hyper-parameters.
//!
//! Matrices stay in the file (zero-copy: a [`MatrixRef`] holds the byte range, the type and the shape; in streaming
//! mode they are read by [`crate::model::stream`]); the small 1-D norm vectors are read and converted to `f32` once
//! at load.

pub use crate::compute::MatrixRef;
use crate::ggml_type::GgmlType;
use crate::gguf::{GgufFile, TensorInfo};
use crate::model::config::LlamaConfig;
use crate::model::ModelError;
use crate::quant;

/// The weights of one transformer block.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    /// RMSNorm weight before attention.
    pub attn_norm: Vec<f32>,
    /// Query projection (`q_dim x n_embd`).
    pub wq: MatrixRef,
    /// Key projection (`kv_dim x n_embd`).
    pub wk: MatrixRef,
    /// Value projection (`kv_dim x n_embd`).
    pub wv: MatrixRef,
    /// Attention output projection (`n_embd x q_dim`).
    pub wo: MatrixRef,
    /// RMSNorm weight before the feed-forward network.
    pub ffn_norm: Vec<f32>,
    /// SwiGLU gate projection (`n_ff x n_embd`).
    pub w_gate: MatrixRef,
    /// SwiGLU up projection (`n_ff x n_embd`).
    pub w_up: MatrixRef,
    /// Down projection (`n_embd x n_ff`).
    pub w_down: MatrixRef,
}

impl LayerWeights {
    /// The seven matrices of the layer, in compute order.
    pub fn matrices(&self) -> [&MatrixRef; 7] {
        [&self.wq, &self.wk, &self.wv, &self.wo, &self.w_gate, &self.w_up, &self.w_down]
    }
}

/// All weights of a Llama model.
#[derive(Clone, Debug)]
pub struct LlamaWeights {
    /// Token embedding table (`n_vocab x n_embd`).
    pub token_embd: MatrixRef,
    /// The transformer blocks.
    pub layers: Vec<LayerWeights>,
    /// Final RMSNorm weight.
    pub output_norm: Vec<f32>,
    /// Output projection (`n_vocab x n_embd`); the token embedding when the model ties them.
    pub output: MatrixRef,
    /// Whether `output` is the tied token embedding.
    pub tied_output: bool,
}

impl LlamaWeights {
    /// Locates every tensor and checks its type and shape.
    pub fn from_gguf(file: &GgufFile, cfg: &LlamaConfig) -> Result<LlamaWeights, ModelError> {
        let token_embd = matrix(file, "token_embd.weight", cfg.n_vocab, cfg.n_embd)?;
        // `LlamaConfig::from_gguf` bounds `n_layer` by the tensors of the file; a hand-made config is not trusted
        // either: the list grows as blocks are found rather than being reserved from the count.
        let mut layers = Vec::with_capacity(cfg.n_layer.min(file.tensors().len() / super::config::TENSORS_PER_BLOCK));
        for i in 0..cfg.n_layer {
            let name = |t: &str| format!("blk.{i}.{t}.weight");
            layers.push(LayerWeights {
                attn_norm: vector(file, &name("attn_norm"), cfg.n_embd)?,
                wq: matrix(file, &name("attn_q"), cfg.q_dim(), cfg.n_embd)?,
                wk: matrix(file, &name("attn_k"), cfg.kv_dim(), cfg.n_embd)?,
                wv: matrix(file, &name("attn_v"), cfg.kv_dim(), cfg.n_embd)?,
                wo: matrix(file, &name("attn_output"), cfg.n_embd, cfg.q_dim())?,
                ffn_norm: vector(file, &name("ffn_norm"), cfg.n_embd)?,
                w_gate: matrix(file, &name("ffn_gate"), cfg.n_ff, cfg.n_embd)?,
                w_up: matrix(file, &name("ffn_up"), cfg.n_ff, cfg.n_embd)?,
                w_down: matrix(file, &name("ffn_down"), cfg.n_embd, cfg.n_ff)?,
            });
        }
        let output_norm = vector(file, "output_norm.weight", cfg.n_embd)?;
        let (output, tied_output) = match file.tensor("output.weight") {
            Some(_) => (matrix(file, "output.weight", cfg.n_vocab, cfg.n_embd)?, false),
            None => (token_embd.clone(), true),
        };
        Ok(LlamaWeights { token_embd, layers, output_norm, output, tied_output })
    }
}

fn find<'f>(file: &'f GgufFile, name: &str) -> Result<&'f TensorInfo, ModelError> {
    Ok(file.require_tensor(name)?)
}

/// A 2-D tensor with ggml dims `[cols, rows]`.
fn matrix(file: &GgufFile, name: &str, rows: usize, cols: usize) -> Result<MatrixRef, ModelError> {
    let t = find(file, name)?;
    let want = [cols as u64, rows as u64];
    if t.dims.len() != 2 || t.dims[..] != want[..] {
        return Err(ModelError::TensorShape { name: name.to_string(), expected: want.to_vec(), found: t.dims.clone() });
    }
    if matches!(t.ggml_type, GgmlType::Q8_1 | GgmlType::Q8_K) {
        return Err(ModelError::UnsupportedWeightType { name: name.to_string(), ty: t.ggml_type });
    }
    let row_bytes = t.ggml_type.row_bytes(cols as u64).ok_or_else(|| ModelError::TensorShape {
        name: name.to_string(),
        expected: want.to_vec(),
        found: t.dims.clone(),
    })? as usize;
    Ok(MatrixRef { name: name.to_string(), ty: t.ggml_type, rows, cols, offset: t.offset as usize, row_bytes })
}

/// A 1-D tensor of `n` elements, converted to f32.
fn vector(file: &GgufFile, name: &str, n: usize) -> Result<Vec<f32>, ModelError> {
    let t = find(file, name)?;
    if t.dims.len() != 1 || t.dims[0] != n as u64 {
        return Err(ModelError::TensorShape {
            name: name.to_string(),
            expected: vec![n as u64],
            found: t.dims.clone(),
        });
    }
    let mut out = vec![0.0f32; n];
    quant::dequantize_row(t.ggml_type, &file.read_tensor(t)?, &mut out)?;
    Ok(out)
}
