//! A complete, tiny Llama model built in memory with the GGUF writer: the smallest file that loads and generates.
//! Used by the crafted-file tests, the GGUF mutation harness and the fuzz seeds, where the real models are too big
//! to mutate by the thousand.

use super::value::{MetaArray, MetaValue};
use super::writer::GgufWriter;
use crate::ggml_type::GgmlType;

/// Shape of the tiny model written by [`tiny_llama`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TinyShape {
    /// Transformer blocks.
    pub n_layer: u32,
    /// Residual width.
    pub n_embd: u32,
    /// Query heads.
    pub n_head: u32,
    /// Key/value heads.
    pub n_head_kv: u32,
    /// Feed-forward width.
    pub n_ff: u32,
}

impl Default for TinyShape {
    fn default() -> Self {
        TinyShape { n_layer: 2, n_embd: 32, n_head: 4, n_head_kv: 2, n_ff: 64 }
    }
}

/// The vocabulary of the tiny model: `<|endoftext|>` (id 0, end of generation), `a`..`z`, the GPT-2 space `Ġ`,
/// and two merged tokens.
pub const TINY_TOKENS: &[&str] = &[
    "<|endoftext|>",
    "a",
    "b",
    "c",
    "d",
    "e",
    "f",
    "g",
    "h",
    "i",
    "j",
    "k",
    "l",
    "m",
    "n",
    "o",
    "p",
    "q",
    "r",
    "s",
    "t",
    "u",
    "v",
    "w",
    "x",
    "y",
    "z",
    "Ġ",
    "ab",
    "Ġa",
];

/// A writer holding a complete Llama model of `shape` with a byte-level BPE tokenizer over [`TINY_TOKENS`] and
/// F32 weights drawn from a fixed-seed generator (norms are 1). Callers may edit metadata before serialising.
pub fn tiny_llama(shape: TinyShape) -> GgufWriter {
    let TinyShape { n_layer, n_embd, n_head, n_head_kv, n_ff } = shape;
    let mut w = GgufWriter::new();
    let s = |v: &str| MetaValue::Str(v.to_string());
    w.add_metadata("general.architecture", s("llama"));
    w.add_metadata("general.name", s("picolm tiny synthetic"));
    w.add_metadata("llama.context_length", MetaValue::U32(128));
    w.add_metadata("llama.embedding_length", MetaValue::U32(n_embd));
    w.add_metadata("llama.block_count", MetaValue::U32(n_layer));
    w.add_metadata("llama.feed_forward_length", MetaValue::U32(n_ff));
    w.add_metadata("llama.attention.head_count", MetaValue::U32(n_head));
    w.add_metadata("llama.attention.head_count_kv", MetaValue::U32(n_head_kv));
    w.add_metadata("llama.attention.layer_norm_rms_epsilon", MetaValue::F32(1e-5));
    w.add_metadata("llama.rope.freq_base", MetaValue::F32(10000.0));
    w.add_metadata("tokenizer.ggml.model", s("gpt2"));
    w.add_metadata("tokenizer.ggml.pre", s("default"));
    let tokens: Vec<String> = TINY_TOKENS.iter().map(|t| t.to_string()).collect();
    let mut types = vec![1i32; tokens.len()];
    types[0] = 3;
    w.add_metadata("tokenizer.ggml.tokens", MetaValue::Array(MetaArray::Str(tokens)));
    w.add_metadata("tokenizer.ggml.token_type", MetaValue::Array(MetaArray::I32(types)));
    w.add_metadata("tokenizer.ggml.merges", MetaValue::Array(MetaArray::Str(vec!["a b".into(), "Ġ a".into()])));
    w.add_metadata("tokenizer.ggml.bos_token_id", MetaValue::U32(0));
    w.add_metadata("tokenizer.ggml.eos_token_id", MetaValue::U32(0));
    w.add_metadata("tokenizer.ggml.add_bos_token", MetaValue::Bool(false));

    let n_vocab = TINY_TOKENS.len() as u64;
    let head_dim = (n_embd / n_head) as u64;
    let (e, q, kv, ff) = (n_embd as u64, n_head as u64 * head_dim, n_head_kv as u64 * head_dim, n_ff as u64);
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut random = |n: u64| -> Vec<u8> {
        (0..n)
            .flat_map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let x = ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2;
                x.to_le_bytes()
            })
            .collect()
    };
    let ones = |n: u64| -> Vec<u8> { (0..n).flat_map(|_| 1.0f32.to_le_bytes()).collect() };
    let add = |w: &mut GgufWriter, name: &str, dims: &[u64], data: Vec<u8>| {
        w.add_tensor(name, dims, GgmlType::F32, data).expect("the tiny model's tensors are consistent");
    };
    add(&mut w, "token_embd.weight", &[e, n_vocab], random(e * n_vocab));
    for l in 0..n_layer {
        let name = |t: &str| format!("blk.{l}.{t}.weight");
        add(&mut w, &name("attn_norm"), &[e], ones(e));
        add(&mut w, &name("attn_q"), &[e, q], random(e * q));
        add(&mut w, &name("attn_k"), &[e, kv], random(e * kv));
        add(&mut w, &name("attn_v"), &[e, kv], random(e * kv));
        add(&mut w, &name("attn_output"), &[q, e], random(q * e));
        add(&mut w, &name("ffn_norm"), &[e], ones(e));
        add(&mut w, &name("ffn_gate"), &[e, ff], random(e * ff));
        add(&mut w, &name("ffn_up"), &[e, ff], random(e * ff));
        add(&mut w, &name("ffn_down"), &[ff, e], random(ff * e));
    }
    add(&mut w, "output_norm.weight", &[e], ones(e));
    w
}
