//! Tokenizer unit tests on small hand-made vocabularies (the llama.cpp parity tests on real vocabularies are in
//! tests/rust/tokenizer_golden.rs).

use super::*;
use crate::gguf::{GgufWriter, MetaArray, MetaValue};

/// A tokenizer over `tokens` (with their `types`, llama.cpp's numbering) and BPE `merges`.
fn tokenizer(model: &str, tokens: &[&str], types: &[i32], merges: &[&str], unk: u32) -> Tokenizer {
    let strs = |v: &[&str]| MetaValue::Array(MetaArray::Str(v.iter().map(|s| s.to_string()).collect()));
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", MetaValue::Str("llama".into()));
    w.add_metadata("tokenizer.ggml.model", MetaValue::Str(model.into()));
    w.add_metadata("tokenizer.ggml.tokens", strs(tokens));
    w.add_metadata("tokenizer.ggml.token_type", MetaValue::Array(MetaArray::I32(types.to_vec())));
    if model == "gpt2" {
        w.add_metadata("tokenizer.ggml.merges", strs(merges));
    }
    w.add_metadata("tokenizer.ggml.unknown_token_id", MetaValue::U32(unk));
    w.add_metadata("tokenizer.ggml.add_bos_token", MetaValue::Bool(false));
    w.add_metadata("tokenizer.ggml.add_space_prefix", MetaValue::Bool(false));
    Tokenizer::from_gguf(&GgufFile::from_bytes(w.to_bytes()).unwrap()).unwrap()
}

/// Like SmolLM2: the unknown token is the control token `<|endoftext|>` (id 0), and some bytes (0x1D, 0xF1, ...)
/// have no byte-level token.
fn gpt2() -> Tokenizer {
    tokenizer("gpt2", &["<|endoftext|>", "a", "b", "Ġ", "ab", "Ā", "Ġb"], &[3, 1, 1, 1, 1, 1, 1], &["a b", "Ġ a"], 0)
}

#[test]
fn gpt2_bytes_without_a_token_are_dropped_not_turned_into_the_unknown_control_token() {
    let t = gpt2();
    for text in ["\u{1d}", "\u{4}\u{6}\u{13}\u{14}\u{16}\u{1d}", "\u{40000}", "\u{80000}\u{bffff}"] {
        assert_eq!(t.encode(text, true, false), Vec::<u32>::new(), "{text:?}");
        assert_eq!(t.encode(text, true, true), Vec::<u32>::new(), "{text:?}");
    }
    assert_eq!(t.encode("ab\u{1d}b", true, false), [4, 2]);
    // U+40000 is F1 80 80 80 (mapped `ñĢĢĢ`), none of which is a token here.
    assert_eq!(t.encode("a\u{40000}", false, false), [1]);
    // Byte 0x00 (mapped `Ā`) has a token.
    assert_eq!(t.encode("\u{0}\u{1d}", false, false), [5]);
}

#[test]
fn gpt2_a_piece_outside_the_vocabulary_keeps_only_its_single_byte_tokens() {
    // The merge "Ġ a" makes the piece "Ġa", which is not a token: llama.cpp then looks up each byte of the piece's
    // text on its own, which finds `a` but not the two bytes of `Ġ`.
    let t = gpt2();
    assert_eq!(t.encode(" a", false, false), [1]);
    // Without a merge rule "Ġ b" the token `Ġb` is not formed: both characters are tokens.
    assert_eq!(t.encode(" b", false, false), [3, 2]);
}

#[test]
fn spm_bytes_without_a_byte_token_are_dropped() {
    let tokens = ["<unk>", "<s>", "</s>", "a", "<0x41>", "<0xC3>", "<0xA9>"];
    let t = tokenizer("llama", &tokens, &[2, 3, 3, 1, 6, 6, 6], &[], 0);
    assert_eq!(t.encode("a\u{1d}a", false, false), [3, 3]);
    assert_eq!(t.encode("\u{1d}", false, true), Vec::<u32>::new());
    assert_eq!(t.encode("aA", false, false), [3, 4]);
    // é (C3 A9) falls back to its two byte tokens; U+40000 (F1 80 80 80) has none.
    assert_eq!(t.encode("é\u{40000}", false, false), [5, 6]);
}
