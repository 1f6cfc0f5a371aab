//! Perplexity on the Austen text of tests/golden/eval at ctx 512 must be within 1% of llama.cpp's figure for each
//! file in tests/golden/ppl.json.

use std::sync::Arc;

use picolm_core::perplexity::perplexity;
use picolm_core::{Model, ModelParams};
use picolm_integration_tests::*;

fn check(key: &str) {
    let golden = golden_json("ppl.json");
    let want = golden["ppl"][key]["ppl"].as_f64().unwrap_or_else(|| panic!("no ppl for {key}"));
    let text = std::fs::read_to_string(golden_dir().join("eval/persuasion.txt")).expect("eval text");
    let model = Arc::new(
        Model::load(
            model_path(&golden_model_file(key)),
            &ModelParams { n_ctx: 512, n_threads: 2, ..Default::default() },
        )
        .unwrap(),
    );
    let r = perplexity(&model, &text, 512, 512, None, &mut |_, _, _| {}).unwrap();
    let rel = (r.ppl - want).abs() / want;
    eprintln!(
        "{key}: PPL {:.4} +/- {:.4} over {} chunks; llama.cpp {want}; difference {:.3}%",
        r.ppl,
        r.uncertainty,
        r.n_chunks,
        rel * 100.0
    );
    assert!(rel <= 0.01, "{key}: perplexity {:.4} is not within 1% of llama.cpp's {want}", r.ppl);
}

#[test]
fn perplexity_f32_within_1_percent() {
    check("smollm2-135m-F32");
}

#[test]
fn perplexity_f16_within_1_percent() {
    check("smollm2-135m-F16");
}

#[test]
fn perplexity_q4_1_within_1_percent() {
    check("original-Q4_1");
}
