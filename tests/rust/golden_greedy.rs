//! Greedy decoding against llama.cpp: prompt token ids must be identical for every prompt; generated ids must be
//! identical on the F32 and F16 files; for the original Q4_1 file the number of leading agreeing tokens is reported
//! (llama.cpp computes Q4_1 dots with Q8_1 activations, so late divergence on near-ties is possible).

use std::sync::Arc;

use picolm_core::{GenerateParams, Model, ModelParams, SamplerParams, Session, SessionParams};
use picolm_integration_tests::*;

struct Outcome {
    prompt: String,
    expected: Vec<u32>,
    got: Vec<u32>,
}

fn run_model(key: &str) -> Vec<Outcome> {
    let golden = golden_json("smollm2-greedy.json");
    let model = Arc::new(
        Model::load(
            model_path(&golden_model_file(key)),
            &ModelParams { n_ctx: 512, n_threads: 2, ..Default::default() },
        )
        .unwrap_or_else(|e| panic!("loading {key}: {e}")),
    );
    let mut out = Vec::new();
    for case in golden["results"][key].as_array().expect("results") {
        let prompt = case["prompt"].as_str().unwrap();
        let prompt_ids = ids(&case["prompt_ids"]);
        let tokens = model.tokenizer().encode(prompt, true, true);
        assert_eq!(tokens, prompt_ids, "{key}: prompt ids of {prompt:?}");

        let expected = ids(&case["generated_ids"]);
        let mut session =
            Session::new(model.clone(), &SessionParams { n_ctx: 512, n_batch: 64, ..Default::default() }).unwrap();
        // First-step logits agree with llama.cpp's top five.
        session.eval(&tokens).unwrap();
        let logits = session.logits().unwrap();
        for pair in case["first_step_top5"].as_array().unwrap() {
            let (id, want) = (pair[0].as_u64().unwrap() as usize, pair[1].as_f64().unwrap() as f32);
            // F32/F16: 2 %. Q4_1: 5 %, because every matmul re-quantizes its input to 8 bits and a last-bit float
            // difference (summation order) flips some of those roundings; the scalar reference, the AVX2 kernels
            // and llama.cpp land up to ~3 % apart on this file's first-step logits.
            let tol = if key.contains("Q4_1") { 0.05 } else { 0.02 } * want.abs().max(1.0);
            assert!(
                (logits[id] - want).abs() <= tol,
                "{key} {prompt:?}: logit of {id} is {}, llama.cpp {want}",
                logits[id]
            );
        }
        let params = GenerateParams { max_tokens: 48, sampler: SamplerParams::default(), ..Default::default() };
        let gen = session.generate(&tokens, &params, None, None, &mut |_| true).unwrap();
        out.push(Outcome { prompt: prompt.to_string(), expected, got: gen.tokens });
    }
    out
}

fn leading_agreement(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn assert_exact(key: &str) {
    let mut failures = Vec::new();
    for o in run_model(key) {
        if o.got != o.expected {
            failures.push(format!(
                "{:?}: agree on {} of {} tokens\n  expected {:?}\n  got      {:?}",
                o.prompt,
                leading_agreement(&o.got, &o.expected),
                o.expected.len(),
                o.expected,
                o.got
            ));
        }
    }
    assert!(failures.is_empty(), "{key}: greedy ids differ from llama.cpp:\n{}", failures.join("\n"));
}

#[test]
fn f32_greedy_ids_equal_llama_cpp() {
    assert_exact("smollm2-135m-F32");
}

#[test]
fn f16_greedy_ids_equal_llama_cpp() {
    assert_exact("smollm2-135m-F16");
}

#[test]
fn q4_1_greedy_agreement_with_llama_cpp() {
    let mut total = (0, 0);
    for o in run_model("original-Q4_1") {
        let n = leading_agreement(&o.got, &o.expected);
        eprintln!("Q4_1 agreement: {n:>2} / {:>2} leading tokens for {:?}", o.expected.len(), o.prompt);
        total.0 += n;
        total.1 += o.expected.len();
        // Quantized activations (Q8_1 in llama.cpp) may flip a late near-tie, never the start.
        assert!(n >= 8.min(o.expected.len()), "Q4_1 diverges within the first 8 tokens for {:?}", o.prompt);
    }
    eprintln!("Q4_1 agreement total: {} / {} tokens", total.0, total.1);
}
