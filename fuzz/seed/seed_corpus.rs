//! Writes the seed corpora of the fuzz targets into `DIR/<target>/` (default `corpus/`), from the real model files
//! when `$PICOLM_MODELS` (or `../models`) holds them and from the tiny synthetic model otherwise. Nothing here is
//! committed: `scripts/fuzz.sh` runs this before fuzzing.
//!
//!   cargo +nightly fuzz build && target/<host triple>/release/seed_corpus [DIR]

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use picolm_core::gguf::synthetic::{tiny_llama, TinyShape};
use picolm_core::gguf::GgufFile;
use picolm_core::model::ModelParams;
use picolm_core::{Model, Session, SessionParams};

/// Bytes of the real model's beginning used as a GGUF seed (header, metadata and part of the tensor table).
const REAL_PREFIX: u64 = 64 << 10;

fn put(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn models_dir() -> PathBuf {
    std::env::var_os("PICOLM_MODELS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("../models"))
}

fn gguf_seeds(dir: &Path) {
    let shapes = [
        ("tiny", TinyShape::default()),
        ("tiny-1layer-mha", TinyShape { n_layer: 1, n_embd: 16, n_head: 2, n_head_kv: 2, n_ff: 32 }),
    ];
    for (name, shape) in shapes {
        put(dir, &format!("{name}.gguf"), &tiny_llama(shape).to_bytes());
    }
    for file in ["SmolLM2-135M-Instruct.Q4_1.gguf", "spm-vocab.gguf"] {
        if let Ok(f) = fs::File::open(models_dir().join(file)) {
            let mut prefix = Vec::new();
            f.take(REAL_PREFIX).read_to_end(&mut prefix).unwrap();
            put(dir, &format!("{file}.prefix"), &prefix);
        }
    }
}

fn tokenizer_seeds(dir: &Path) {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/tokenizer.json");
    let mut n = 0;
    if let Ok(text) = fs::read_to_string(golden) {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        for cases in v["cases"].as_object().into_iter().flat_map(|o| o.values()) {
            for case in cases.as_array().into_iter().flatten() {
                if let Some(t) = case["text"].as_str() {
                    put(dir, &format!("golden-{n}"), t.as_bytes());
                    n += 1;
                }
            }
        }
    }
    let extra: &[&str] = &[
        "Hello world",
        "<|endoftext|> not special",
        "tabs\tand\u{1d}controls\u{7f}",
        "  spaces  ",
        "日本語 ünïcödé 🙂",
        "123456789 3.14 -0.5e10",
        "x\r\ny\n\n",
        "<|im_start|>user\nhi<|im_end|>",
    ];
    for (i, t) in extra.iter().enumerate() {
        put(dir, &format!("extra-{i}"), t.as_bytes());
    }
}

fn schema_seeds(dir: &Path) {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}"#,
            r#"{"name":"Alice","age":30}"#,
        ),
        (r#"{"type":"array","items":{"type":"number"},"minItems":1,"maxItems":3}"#, "[1,2.5,-3e2]"),
        (r#"{"enum":["red","green",3,null,true]}"#, r#""green""#),
        (r#"{"type":["string","null"],"maxLength":4}"#, r#""abcd""#),
        (r#"{"type":"string","format":"date"}"#, r#""2024-02-29""#),
        (r#"{"anyOf":[{"type":"boolean"},{"type":"object","additionalProperties":false}]}"#, "{}"),
        (r#"{"type":"integer","minimum":-5,"maximum":5}"#, "-5"),
        (r#"{"const":{"a":[1,{"b":null}]}}"#, r#"{"a":[1,{"b":null}]}"#),
        (
            r#"{"type":"object","properties":{"tags":{"type":"array","items":{"type":"string","pattern":"^[a-z]+$"}}}}"#,
            r#"{"tags":["x"]}"#,
        ),
        ("true", r#"[{"any":"json"}]"#),
    ];
    for (i, (schema, value)) in cases.iter().enumerate() {
        let mut b = schema.as_bytes().to_vec();
        b.push(0);
        b.extend_from_slice(value.as_bytes());
        put(dir, &format!("schema-{i}"), &b);
    }
}

fn state_seeds(dir: &Path) {
    let file = GgufFile::from_bytes(tiny_llama(TinyShape::default()).to_bytes()).unwrap();
    let model =
        Arc::new(Model::from_gguf(file, &ModelParams { n_ctx: 32, n_threads: 1, ..Default::default() }).unwrap());
    let mut s = Session::new(model, &SessionParams { n_ctx: 32, n_batch: 8, ..Default::default() }).unwrap();
    let save = |s: &Session, name: &str| {
        let mut b = Vec::new();
        s.save_state(&mut b).unwrap();
        put(dir, name, &b);
    };
    save(&s, "empty.state");
    s.eval(&[1, 2, 3]).unwrap();
    save(&s, "three-tokens-logits.state");
    s.eval_all_logits(&[4, 5], &mut |_, _| {}).unwrap();
    save(&s, "five-tokens-no-logits.state");
}

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    gguf_seeds(&out.join("gguf_load"));
    tokenizer_seeds(&out.join("tokenizer_roundtrip"));
    schema_seeds(&out.join("schema_automaton"));
    state_seeds(&out.join("state_load"));
    println!("seed corpora written to {}", out.display());
}
