//! A vocabulary-only GGUF file (no tensors) for the tokenizer tests: llama hyper-parameters of a one-layer toy
//! model and every `tokenizer.*` pair of a source model, in the source's order.
//!
//! Its keys, types and order are those of the files the tokenizer goldens were computed on (first written with the
//! `gguf` Python package): `general.architecture`, `general.name`, eight `llama.*` keys, the tokenizer pairs
//! (optionally without `tokenizer.chat_template`), then `tokenizer.ggml.add_space_prefix` when it is overridden.

use picolm_core::gguf::{GgufFile, GgufWriter, MetaValue};

use crate::error::ToolError;

/// What to change in the copied tokenizer metadata.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VocabOptions {
    /// Replace `tokenizer.ggml.add_space_prefix` with this value (written last).
    pub space_prefix: Option<bool>,
    /// Leave out `tokenizer.chat_template`.
    pub drop_template: bool,
}

/// Builds the vocabulary-only file of `file` (which was read from `src`, named in errors).
pub fn vocab_only(file: &GgufFile, src: &std::path::Path, opts: VocabOptions) -> Result<GgufWriter, ToolError> {
    let tokens = file
        .get_str_array("tokenizer.ggml.tokens")
        .map_err(|source| ToolError::Gguf { path: src.to_path_buf(), source })?
        .ok_or_else(|| ToolError::BadSource { path: src.to_path_buf(), why: "no tokenizer.ggml.tokens".into() })?;
    let n_vocab = u32::try_from(tokens.len()).map_err(|_| ToolError::BadSource {
        path: src.to_path_buf(),
        why: format!("{} tokens do not fit llama.vocab_size (u32)", tokens.len()),
    })?;
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", MetaValue::Str("llama".into()));
    w.add_metadata("general.name", MetaValue::Str("vocab-only test file".into()));
    for (key, value) in [
        ("llama.context_length", 2048),
        ("llama.embedding_length", 64),
        ("llama.block_count", 1),
        ("llama.feed_forward_length", 128),
        ("llama.attention.head_count", 1),
        ("llama.attention.head_count_kv", 1),
    ] {
        w.add_metadata(key, MetaValue::U32(value));
    }
    w.add_metadata("llama.attention.layer_norm_rms_epsilon", MetaValue::F32(1e-5));
    w.add_metadata("llama.vocab_size", MetaValue::U32(n_vocab));
    for (key, value) in file.metadata() {
        let dropped = (opts.drop_template && key == "tokenizer.chat_template")
            || (opts.space_prefix.is_some() && key == "tokenizer.ggml.add_space_prefix");
        if key.starts_with("tokenizer.") && !dropped {
            w.add_metadata(key, value.clone());
        }
    }
    if let Some(prefix) = opts.space_prefix {
        w.add_metadata("tokenizer.ggml.add_space_prefix", MetaValue::Bool(prefix));
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use picolm_core::gguf::MetaArray;
    use picolm_core::GgmlType;

    fn source() -> GgufFile {
        let mut w = GgufWriter::new();
        w.add_metadata("general.architecture", MetaValue::Str("gemma3".into()));
        w.add_metadata("tokenizer.ggml.model", MetaValue::Str("llama".into()));
        w.add_metadata("tokenizer.ggml.add_space_prefix", MetaValue::Bool(false));
        w.add_metadata("tokenizer.ggml.tokens", MetaValue::Array(MetaArray::Str(vec!["<unk>".into(), "a".into()])));
        w.add_metadata("gemma3.block_count", MetaValue::U32(18));
        w.add_metadata("tokenizer.chat_template", MetaValue::Str("{{ x }}".into()));
        w.add_tensor("token_embd.weight", &[4, 2], GgmlType::F32, vec![0; 32]).unwrap();
        GgufFile::from_bytes(w.to_bytes()).unwrap()
    }

    #[test]
    fn copies_tokenizer_keys_and_applies_the_options() {
        let opts = VocabOptions { space_prefix: Some(true), drop_template: true };
        let out = GgufFile::from_bytes(vocab_only(&source(), "src".as_ref(), opts).unwrap().to_bytes()).unwrap();
        assert!(out.tensors().is_empty());
        let keys: Vec<&str> = out.metadata().map(|(k, _)| k).collect();
        assert_eq!(&keys[..2], ["general.architecture", "general.name"]);
        assert_eq!(&keys[10..], ["tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.add_space_prefix"]);
        assert_eq!(out.get_u32("llama.vocab_size").unwrap(), Some(2));
        assert_eq!(out.get_bool("tokenizer.ggml.add_space_prefix").unwrap(), Some(true));
        assert_eq!(out.get_str("general.architecture").unwrap(), Some("llama"));
    }

    #[test]
    fn without_options_every_tokenizer_key_is_kept_in_place() {
        let out = vocab_only(&source(), "src".as_ref(), VocabOptions::default()).unwrap().to_bytes();
        let out = GgufFile::from_bytes(out).unwrap();
        let keys: Vec<&str> = out.metadata().map(|(k, _)| k).skip(10).collect();
        assert_eq!(
            keys,
            [
                "tokenizer.ggml.model",
                "tokenizer.ggml.add_space_prefix",
                "tokenizer.ggml.tokens",
                "tokenizer.chat_template"
            ]
        );
        assert_eq!(out.get_bool("tokenizer.ggml.add_space_prefix").unwrap(), Some(false));
    }

    #[test]
    fn a_file_without_tokens_is_refused() {
        let mut w = GgufWriter::new();
        w.add_metadata("general.architecture", MetaValue::Str("llama".into()));
        let f = GgufFile::from_bytes(w.to_bytes()).unwrap();
        match vocab_only(&f, "x.gguf".as_ref(), VocabOptions::default()) {
            Err(e) => assert_eq!(e.to_string(), "x.gguf: no tokenizer.ggml.tokens"),
            Ok(_) => panic!("a file without tokens was accepted"),
        }
    }
}
