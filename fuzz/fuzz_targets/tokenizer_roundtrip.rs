//! Encode/decode round trip with special-token parsing off, on the real SmolLM2 vocabulary (byte-level BPE) when
//! `$PICOLM_MODELS` (or `models/`) holds it, else on the tiny synthetic one. Invariants: no panic; with special
//! parsing off no control token is ever produced from text (issue #17.9); decoding the tokens gives back the text
//! minus the bytes the vocabulary cannot represent (which are dropped, as llama.cpp does), so for text made only of
//! representable bytes the round trip is exact.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use picolm_core::gguf::synthetic::{tiny_llama, TinyShape};
use picolm_core::gguf::GgufFile;
use picolm_core::tokenizer::Tokenizer;

fn tokenizer() -> &'static (Tokenizer, [bool; 256]) {
    static T: OnceLock<(Tokenizer, [bool; 256])> = OnceLock::new();
    T.get_or_init(|| {
        let dir = std::env::var("PICOLM_MODELS").unwrap_or_else(|_| "models".into());
        let path = std::path::Path::new(&dir).join("SmolLM2-135M-Instruct.Q4_1.gguf");
        let file = match GgufFile::open(&path) {
            Ok(f) => f,
            Err(_) => GgufFile::from_bytes(tiny_llama(TinyShape::default()).to_bytes()).unwrap(),
        };
        let tok = Tokenizer::from_gguf(&file).expect("tokenizer");
        // Which single bytes survive a round trip on their own.
        let mut ok = [false; 256];
        for b in 0u8..=255 {
            if b.is_ascii() {
                let s = (b as char).to_string();
                ok[b as usize] = tok.decode(&tok.encode(&s, false, false), false) == s.as_bytes();
            }
        }
        (tok, ok)
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (tok, ascii_ok) = tokenizer();
    let ids = tok.encode(text, false, false);
    for &id in &ids {
        assert!((id as usize) < tok.n_vocab(), "token id {id} outside the vocabulary");
        assert!(!tok.is_control(id), "control token {id} produced from text with special parsing off: {text:?}");
    }
    let back = tok.decode(&ids, false);
    // Decoded bytes are a subsequence of the input (only unrepresentable bytes are dropped) ...
    let mut it = text.as_bytes().iter();
    assert!(
        back.iter().all(|b| it.any(|c| c == b)),
        "decode(encode({text:?})) = {:?} adds bytes",
        String::from_utf8_lossy(&back)
    );
    // ... and text made of representable ASCII comes back exactly.
    if text.bytes().all(|b| b.is_ascii() && ascii_ok[b as usize]) {
        assert_eq!(back, text.as_bytes(), "round trip of {text:?}");
    }
});
