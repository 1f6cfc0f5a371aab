//! Llama hyper-parameters read from GGUF metadata (`llama.*` keys).

use crate::gguf::GgufFile;
use crate::model::ModelError;

/// Largest head size supported (the attention kernel's stack buffers are this size).
pub const MAX_HEAD_DIM: usize = 1024;

/// Largest number of query heads sharing one KV head (the attention kernel's stack buffers are this size).
pub const MAX_GROUP: usize = 64;

/// Largest `group * head_dim` (the attention kernel's stack buffers are this size).
pub const MAX_GROUP_VALUES: usize = 8192;

/// The architectures whose tensors and metadata follow the Llama layout this engine implements.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama"];

/// Tensors of one transformer block: two RMSNorm vectors and seven matrices.
pub const TENSORS_PER_BLOCK: usize = 9;

/// Shape and numerical constants of a Llama-architecture model.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    /// `general.architecture` (always one of [`SUPPORTED_ARCHITECTURES`]).
    pub architecture: String,
    /// Vocabulary size (rows of the token embedding).
    pub n_vocab: usize,
    /// Width of the residual stream (`llama.embedding_length`).
    pub n_embd: usize,
    /// Number of transformer blocks (`llama.block_count`).
    pub n_layer: usize,
    /// Number of query heads (`llama.attention.head_count`).
    pub n_head: usize,
    /// Number of key/value heads (`llama.attention.head_count_kv`, defaults to `n_head`).
    pub n_head_kv: usize,
    /// Size of one attention head (`n_embd / n_head`, or `llama.attention.key_length`).
    pub head_dim: usize,
    /// Hidden width of the SwiGLU feed-forward network (`llama.feed_forward_length`).
    pub n_ff: usize,
    /// Context length the model was trained with (`llama.context_length`).
    pub n_ctx_train: usize,
    /// RoPE base frequency (`llama.rope.freq_base`, default 10000).
    pub rope_freq_base: f32,
    /// Number of dimensions of each head that RoPE rotates (`llama.rope.dimension_count`, default `head_dim`).
    pub rope_dim: usize,
    /// RMSNorm epsilon (`llama.attention.layer_norm_rms_epsilon`, default 1e-5).
    pub rms_eps: f32,
}

impl LlamaConfig {
    /// Reads and checks the hyper-parameters. Unknown architectures and inconsistent shapes are refused.
    pub fn from_gguf(file: &GgufFile) -> Result<LlamaConfig, ModelError> {
        let arch = file.architecture()?.to_string();
        if !SUPPORTED_ARCHITECTURES.contains(&arch.as_str()) {
            return Err(ModelError::UnsupportedArchitecture(arch));
        }
        let key = |k: &str| format!("{arch}.{k}");
        let n_embd = file.require_u32(&key("embedding_length"))? as usize;
        let n_layer = file.require_u32(&key("block_count"))? as usize;
        let n_head = file.require_u32(&key("attention.head_count"))? as usize;
        let n_head_kv = file.get_u32(&key("attention.head_count_kv"))?.map_or(n_head, |v| v as usize);
        let n_ff = file.require_u32(&key("feed_forward_length"))? as usize;
        let n_ctx_train = file.get_u32(&key("context_length"))?.unwrap_or(2048) as usize;
        let rope_freq_base = file.get_f32(&key("rope.freq_base"))?.unwrap_or(10000.0);
        let rms_eps = file.get_f32(&key("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-5);

        let invalid = |what: &str, value: String| ModelError::InvalidHyperParameter { name: what.to_string(), value };
        if n_embd == 0 || n_layer == 0 || n_head == 0 || n_ff == 0 {
            return Err(invalid(
                "embedding_length/block_count/head_count/feed_forward_length",
                format!("{n_embd}/{n_layer}/{n_head}/{n_ff}"),
            ));
        }
        // Every count sizes something (the layer list, the attention buffers), so each is bounded by what the file
        // can hold before anything is allocated from it: every block needs its nine tensors (two norms, seven
        // matrices), and every width is a dimension of a tensor whose data lies in the file.
        let n_tensors = file.tensors().len();
        if n_layer > n_tensors / TENSORS_PER_BLOCK {
            return Err(invalid(
                "block_count",
                format!("{n_layer}, but the file holds only {n_tensors} tensors ({TENSORS_PER_BLOCK} per block)"),
            ));
        }
        let max_dim = file.len();
        for (name, v) in [("embedding_length", n_embd), ("attention.head_count", n_head), ("feed_forward_length", n_ff)]
        {
            if v as u64 > max_dim {
                return Err(invalid(name, format!("{v}, larger than the file of {max_dim} bytes can hold")));
            }
        }
        if n_head_kv == 0 || !n_head.is_multiple_of(n_head_kv) {
            return Err(invalid("attention.head_count_kv", format!("{n_head_kv} (head_count {n_head})")));
        }
        let head_dim = match file.get_u32(&key("attention.key_length"))? {
            Some(v) => v as usize,
            None => {
                if !n_embd.is_multiple_of(n_head) {
                    return Err(invalid("embedding_length", format!("{n_embd} not divisible by head_count {n_head}")));
                }
                n_embd / n_head
            }
        };
        if head_dim == 0 || head_dim % 2 != 0 || head_dim > MAX_HEAD_DIM {
            return Err(invalid("head dimension", head_dim.to_string()));
        }
        let group = n_head / n_head_kv;
        if group > MAX_GROUP || group * head_dim > MAX_GROUP_VALUES {
            return Err(invalid(
                "attention.head_count_kv",
                format!("{n_head_kv}: {group} query heads of {head_dim} per KV head"),
            ));
        }
        if (n_head as u64).saturating_mul(head_dim as u64) > max_dim {
            return Err(invalid(
                "attention.head_count",
                format!("{n_head} heads of {head_dim} values, more than the file holds"),
            ));
        }
        let rope_dim = file.get_u32(&key("rope.dimension_count"))?.map_or(head_dim, |v| v as usize);
        if rope_dim == 0 || rope_dim > head_dim || rope_dim % 2 != 0 {
            return Err(invalid("rope.dimension_count", format!("{rope_dim} (head dim {head_dim})")));
        }
        if !(rope_freq_base.is_finite() && rope_freq_base > 0.0) {
            return Err(invalid("rope.freq_base", rope_freq_base.to_string()));
        }
        if !(rms_eps.is_finite() && rms_eps >= 0.0) {
            return Err(invalid("attention.layer_norm_rms_epsilon", rms_eps.to_string()));
        }
        let tokens = file.get_str_array("tokenizer.ggml.tokens")?.map(|t| t.len());
        let n_vocab = match (file.get_u32(&key("vocab_size"))?, tokens) {
            (_, Some(n)) => n,
            (Some(n), None) => n as usize,
            (None, None) => {
                return Err(ModelError::Gguf(crate::gguf::GgufError::MissingKey("tokenizer.ggml.tokens".into())))
            }
        };
        Ok(LlamaConfig {
            architecture: arch,
            n_vocab,
            n_embd,
            n_layer,
            n_head,
            n_head_kv,
            head_dim,
            n_ff,
            n_ctx_train,
            rope_freq_base,
            rope_dim,
            rms_eps,
        })
    }

    /// Width of the query projection (`n_head * head_dim`).
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Width of the key and value projections (`n_head_kv * head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }
}
