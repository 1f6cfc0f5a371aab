//! Shared helpers of the end-to-end tests: where the fetched models and the reference data live.

use std::path::PathBuf;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The folder with the fetched models (`$PICOLM_MODELS` or `<workspace>/models`).
pub fn models_dir() -> PathBuf {
    std::env::var_os("PICOLM_MODELS").map(PathBuf::from).unwrap_or_else(|| workspace_root().join("models"))
}

/// A fetched model file (or a file derived from one, e.g. a test vocabulary); panics with the fix when it is missing.
pub fn model_path(file: &str) -> PathBuf {
    let p = models_dir().join(file);
    assert!(p.is_file(), "model file {} is missing: run scripts/fetch-models.sh --tests first", p.display());
    p
}

/// The reference data kept in the repository: llama.cpp's outputs and the evaluation text (`tests/golden`, see its
/// README for how each file was made).
pub fn golden_dir() -> PathBuf {
    workspace_root().join("tests/golden")
}

/// Parses a JSON file of `tests/golden`.
pub fn golden_json(rel: &str) -> serde_json::Value {
    let p = golden_dir().join(rel);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON in {}: {e}", p.display()))
}

/// The model file of a golden result key (`smollm2-135m-F32`, `original-Q4_1`, ...).
pub fn golden_model_file(key: &str) -> String {
    let g = golden_json("smollm2-greedy.json");
    g["meta"]["model_paths"][key].as_str().unwrap_or_else(|| panic!("no model path for {key}")).to_string()
}

/// Reads a JSON array of integers.
pub fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array().expect("array").iter().map(|x| x.as_u64().expect("integer") as u32).collect()
}

/// Asserts that evaluating `tokens` as one batched prefill and one token at a time gives bit-identical logits
/// after every prefix length a batch ends on, and the same greedy continuation. The model must decode with kernels
/// bit-identical to its prefill kernels (the default `auto` plan, or `ModelParams::kernel = Some("tile")`): the
/// property is that the tile kernels' results do not depend on the tile's shape and that the decode kernels repeat
/// them; kernels forced by name may sum in another order.
pub fn assert_batched_prefill_equals_token_by_token(model: &std::sync::Arc<picolm_core::Model>, prompt: &str) {
    use picolm_core::{GenerateParams, SamplerParams, Session, SessionParams};
    assert!(
        model.kernel_plan().decode_matches_prefill(),
        "the model's decode kernels round otherwise than its prefill kernels; its plan is:\n{}",
        model.kernel_plan().describe()
    );
    let tokens = model.tokenizer().encode(prompt, true, true);
    assert!(tokens.len() > 8, "prompt too short for the check");
    let session = |n_batch| {
        Session::new(model.clone(), &SessionParams { n_ctx: 256, n_batch, ..Default::default() }).expect("session")
    };
    let (mut batched, mut single) = (session(64), session(1));
    batched.eval(&tokens).unwrap();
    single.eval(&tokens).unwrap();
    let (a, b) = (batched.logits().unwrap(), single.logits().unwrap());
    let differing = a.iter().zip(b).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
    assert_eq!(differing, 0, "{differing} of {} logits differ between batched and token-by-token prefill", a.len());
    let params = GenerateParams { max_tokens: 16, sampler: SamplerParams::default(), ..Default::default() };
    let (mut s1, mut s2) = (session(64), session(1));
    let g1 = s1.generate(&tokens, &params, None, None, &mut |_| true).unwrap();
    let g2 = s2.generate(&tokens, &params, None, None, &mut |_| true).unwrap();
    assert_eq!(g1.tokens, g2.tokens, "greedy continuation differs between batched and token-by-token prefill");
}

/// Asserts that a prompt evaluated after a cached prefix gives what the same prompt gives in a fresh session:
/// bit-identical logits after the prompt and the same greedy continuation, for cached prefixes that leave one
/// token (evaluated alone, by the decode kernel), three tokens and half the prompt to evaluate. Holds when the
/// model decodes with kernels bit-identical to its prefill kernels, which the default plan (`auto`) guarantees.
pub fn assert_cached_prefix_changes_nothing(model: &std::sync::Arc<picolm_core::Model>, prompt: &str) {
    use picolm_core::{GenerateParams, SamplerParams, Session, SessionParams};
    let tokens = model.tokenizer().encode(prompt, true, true);
    assert!(tokens.len() > 8, "prompt too short for the check");
    let session = || {
        Session::new(model.clone(), &SessionParams { n_ctx: 256, n_batch: 64, ..Default::default() }).expect("session")
    };
    let greedy = GenerateParams { max_tokens: 12, sampler: SamplerParams::default(), ..Default::default() };
    let mut fresh = session();
    fresh.eval(&tokens).unwrap();
    let want: Vec<u32> = fresh.logits().unwrap().iter().map(|v| v.to_bits()).collect();
    let want_ids = session().generate(&tokens, &greedy, None, None, &mut |_| true).unwrap().tokens;
    for keep in [tokens.len() - 1, tokens.len() - 3, tokens.len() / 2] {
        let mut s = session();
        s.eval(&tokens[..keep]).unwrap();
        s.eval(&tokens[keep..]).unwrap();
        let got = s.logits().unwrap();
        let differing = want.iter().zip(got).filter(|(a, b)| **a != b.to_bits()).count();
        assert_eq!(
            differing,
            0,
            "{differing} of {} logits differ after a cached prefix of {keep} of {} tokens; plan:\n{}",
            want.len(),
            tokens.len(),
            model.kernel_plan().describe()
        );
        let mut g = session();
        g.eval(&tokens[..keep]).unwrap();
        let out = g.generate(&tokens, &greedy, None, None, &mut |_| true).unwrap();
        assert_eq!(out.stats.n_reused, keep, "the cached prefix is reused");
        assert_eq!(
            out.tokens,
            want_ids,
            "greedy continuation after a cached prefix of {keep} tokens differs from the fresh one; plan:\n{}",
            model.kernel_plan().describe()
        );
    }
}
