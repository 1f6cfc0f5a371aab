//! Crafted model files whose counts (blocks, heads, widths, vocabulary, array lengths, tensors) are far larger than
//! the file can hold: each must be refused with a typed error before anything is sized by the count (issue #17.1:
//! `llama.block_count = 2^28` used to abort the process in `Vec::with_capacity`).
//! The files are made with the GGUF writer, which is part of the `quantize` feature.
#![cfg(feature = "quantize")]

use picolm_core::gguf::synthetic::{tiny_llama, TinyShape};
use picolm_core::gguf::{GgufError, GgufFile, GgufWriter, MetaArray, MetaValue};
use picolm_core::model::{Model, ModelError, ModelParams};

fn load(w: &GgufWriter) -> Result<Model, ModelError> {
    Model::from_gguf(GgufFile::from_bytes(w.to_bytes())?, &ModelParams { n_threads: 1, ..Default::default() })
}

fn with_u32(key: &str, v: u32) -> GgufWriter {
    let mut w = tiny_llama(TinyShape::default());
    w.add_metadata(key, MetaValue::U32(v));
    w
}

#[test]
fn the_tiny_model_loads_and_runs() {
    let m = std::sync::Arc::new(load(&tiny_llama(TinyShape::default())).expect("tiny model loads"));
    assert_eq!(m.config().n_layer, 2);
    let mut s = picolm_core::Session::new(m, &Default::default()).unwrap();
    s.eval(&[1, 2, 3]).unwrap();
    assert!(s.logits().unwrap().iter().all(|x| x.is_finite()));
}

#[test]
fn huge_block_count_is_refused_before_allocating() {
    for n in [3u32, 1 << 20, 1 << 28, u32::MAX] {
        let err = load(&with_u32("llama.block_count", n)).unwrap_err();
        assert!(
            matches!(&err, ModelError::InvalidHyperParameter { name, .. } if name == "block_count"),
            "block_count {n}: {err}"
        );
        assert!(err.to_string().contains(&n.to_string()), "{err}");
    }
}

#[test]
fn huge_widths_and_head_counts_are_refused() {
    for key in ["llama.embedding_length", "llama.feed_forward_length", "llama.attention.head_count"] {
        for n in [1u32 << 28, u32::MAX] {
            let err = load(&with_u32(key, n)).unwrap_err();
            assert!(matches!(err, ModelError::InvalidHyperParameter { .. }), "{key} = {n}: {err}");
        }
    }
    // A head count that divides the width but whose tensors are not in the file: a shape error, not a crash.
    let err = load(&with_u32("llama.attention.head_count_kv", 1)).unwrap_err();
    assert!(matches!(err, ModelError::TensorShape { .. }), "{err}");
    let err = load(&with_u32("llama.attention.key_length", 1 << 30)).unwrap_err();
    assert!(matches!(err, ModelError::InvalidHyperParameter { .. }), "{err}");
}

#[test]
fn vocab_size_without_tokens_or_mismatching_them_is_refused() {
    let mut w = with_u32("llama.vocab_size", u32::MAX);
    assert!(load(&w).is_ok(), "the token list decides the vocabulary size when both are present");
    w.remove_metadata("tokenizer.ggml.tokens");
    let err = load(&w).unwrap_err();
    assert!(err.to_string().contains("tokenizer.ggml.tokens"), "{err}");
    let mut w = tiny_llama(TinyShape::default());
    w.add_metadata("tokenizer.ggml.scores", MetaValue::Array(MetaArray::F32(vec![0.0; 3])));
    assert!(load(&w).unwrap_err().to_string().contains("tokenizer.ggml.scores"));
}

/// Rewrites the little-endian u64 that follows the first occurrence of `marker` in `bytes`.
fn patch_u64_after(bytes: &mut [u8], marker: &[u8], skip: usize, v: u64) {
    let at = bytes.windows(marker.len()).position(|w| w == marker).expect("marker") + marker.len() + skip;
    bytes[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn huge_array_lengths_and_counts_in_the_file_are_typed_errors() {
    let good = tiny_llama(TinyShape::default()).to_bytes();
    // The token array's length (after the key, the array type 9 and the element type 8).
    for n in [1u64 << 28, 1 << 40, u64::MAX] {
        let mut b = good.clone();
        patch_u64_after(&mut b, b"tokenizer.ggml.tokens", 8, n);
        let err = GgufFile::from_bytes(b).unwrap_err();
        assert!(matches!(err, GgufError::CountTooLarge { count, .. } if count == n), "{err}");
    }
    // Tensor and metadata counts of the header.
    for (at, what) in [(8usize, "tensor infos"), (16, "metadata")] {
        let mut b = good.clone();
        b[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let err = GgufFile::from_bytes(b).unwrap_err();
        assert!(matches!(&err, GgufError::CountTooLarge { what: w, .. } if w == what), "{err}");
    }
}
