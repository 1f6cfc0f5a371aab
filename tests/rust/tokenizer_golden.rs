//! Token ids equal llama.cpp's for every case of tests/golden/tokenizer.json and tokenizer-bytes.json on the three
//! vocabularies (SmolLM2's GPT-2 BPE, a SentencePiece vocabulary with and without the space prefix), and decoding
//! gives the text back.

use picolm_core::gguf::GgufFile;
use picolm_core::tokenizer::Tokenizer;
use picolm_integration_tests::*;

fn tokenizer_for(vocab: &str) -> Tokenizer {
    let path = match vocab {
        "smollm2-gpt2-bpe" => model_path("SmolLM2-135M-Instruct.Q4_1.gguf"),
        other => model_path(&format!("{other}.gguf")),
    };
    let file = GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Tokenizer::from_gguf(&file).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// llama-tokenize (which produced the goldens) runs its prompt through llama.cpp's `string_process_escapes`, so a
/// literal `\"` in the golden text reached the tokenizer as `"`. Apply the same processing to reproduce its input.
fn process_escapes(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('\'') => out.push('\''),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn cases(vocab: &str) -> Vec<(String, Vec<u32>, bool)> {
    let g = golden_json("tokenizer.json");
    g["cases"][vocab]
        .as_array()
        .unwrap_or_else(|| panic!("no cases for {vocab}"))
        .iter()
        .map(|c| {
            let parse_special = !c["note"].as_str().unwrap_or("").contains("NOT parsed");
            (process_escapes(c["text"].as_str().unwrap()), ids(&c["ids"]), parse_special)
        })
        .collect()
}

/// The cases of tokenizer-bytes.json: texts with bytes that have no token of their own, stored verbatim.
fn byte_cases(vocab: &str) -> Vec<(String, Vec<u32>, bool)> {
    let g = golden_json("tokenizer-bytes.json");
    g["cases"][vocab]
        .as_array()
        .unwrap_or_else(|| panic!("no byte cases for {vocab}"))
        .iter()
        .map(|c| (c["text"].as_str().unwrap().to_string(), ids(&c["ids"]), c["parse_special"].as_bool().unwrap()))
        .collect()
}

fn check_vocab(vocab: &str) {
    let all = cases(vocab);
    assert!(all.len() >= 30, "{vocab}: expected 30+ cases");
    check_cases(vocab, &all, true);
}

/// Checks llama.cpp's ids; `round_trip` also checks that decoding gives the text back (not for texts whose
/// tokenless bytes are dropped).
fn check_cases(vocab: &str, all: &[(String, Vec<u32>, bool)], round_trip: bool) {
    let tok = tokenizer_for(vocab);
    let mut failures = Vec::new();
    for (text, want, parse_special) in all {
        let got = tok.encode(text, true, *parse_special);
        if &got != want {
            failures.push(format!("{text:?} (parse_special={parse_special})\n  expected {want:?}\n  got      {got:?}"));
        }
        if !round_trip {
            continue;
        }
        // Round trip without special handling: the exact text comes back.
        let plain = tok.encode(text, false, false);
        let back = tok.decode(&plain, false);
        if back != text.as_bytes() {
            failures.push(format!("{text:?}: decode(encode) gave {:?}", String::from_utf8_lossy(&back)));
        }
        // Streaming: pieces are whole characters and concatenate to the same text.
        let mut dec = tok.stream_decoder();
        let mut streamed = String::new();
        for &id in &plain {
            streamed.push_str(&dec.push(id));
        }
        streamed.push_str(&dec.finish());
        let expected_stream = String::from_utf8_lossy(&tok.token_to_piece_seq(&plain)).into_owned();
        if streamed != expected_stream {
            failures.push(format!("{text:?}: streamed {streamed:?} != {expected_stream:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{vocab}: {} of {} cases differ from llama.cpp:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
}

trait PieceSeq {
    fn token_to_piece_seq(&self, ids: &[u32]) -> Vec<u8>;
}

impl PieceSeq for Tokenizer {
    /// Concatenated pieces without the detokenizer's leading-space removal (what a stream delivers).
    fn token_to_piece_seq(&self, ids: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        for &id in ids {
            self.append_piece(id, false, &mut out);
        }
        out
    }
}

#[test]
fn smollm2_gpt2_bpe_matches_llama_cpp() {
    check_vocab("smollm2-gpt2-bpe");
}

#[test]
fn spm_vocab_matches_llama_cpp() {
    check_vocab("spm-vocab");
}

#[test]
fn spm_vocab_with_space_prefix_matches_llama_cpp() {
    check_vocab("spm-vocab-space-prefix");
}

/// Bytes without a token of their own are dropped as llama.cpp drops them; before, SmolLM2 turned them into its
/// unknown token, id 0 = `<|endoftext|>`, which ended generation even with special-token parsing off.
fn check_byte_cases(vocab: &str) {
    let all = byte_cases(vocab);
    assert!(all.len() >= 20, "{vocab}: expected 20+ byte cases");
    check_cases(vocab, &all, false);
    let tok = tokenizer_for(vocab);
    for (text, _, _) in all.iter().filter(|c| !c.2) {
        let control: Vec<u32> = tok.encode(text, false, false).into_iter().filter(|&id| tok.is_control(id)).collect();
        assert!(control.is_empty(), "{vocab}: {text:?} without special parsing gave control tokens {control:?}");
    }
}

#[test]
fn smollm2_bytes_without_tokens_match_llama_cpp() {
    check_byte_cases("smollm2-gpt2-bpe");
}

#[test]
fn spm_vocab_bytes_without_tokens_match_llama_cpp() {
    check_byte_cases("spm-vocab");
}

#[test]
fn spm_vocab_with_space_prefix_bytes_without_tokens_match_llama_cpp() {
    check_byte_cases("spm-vocab-space-prefix");
}

#[test]
fn vocabulary_only_files_load_without_weights() {
    let f = GgufFile::open(model_path("spm-vocab.gguf")).unwrap();
    assert!(f.tensors().is_empty());
    assert_eq!(Tokenizer::from_gguf(&f).unwrap().n_vocab(), 262144);
}

#[test]
fn smollm2_end_of_generation_tokens_are_endoftext_and_im_end() {
    assert_eq!(tokenizer_for("smollm2-gpt2-bpe").eog_ids(), &[0, 2]);
}
