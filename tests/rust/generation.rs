//! Generation behaviour on the real SmolLM2 model: seeded sampling, streaming pieces, stop strings, limits,
//! cancellation, prompt-prefix reuse and KV state save/load.

use std::sync::Arc;

use picolm_core::compute::planner::PlanSource;
use picolm_core::model::ModelError;
use picolm_core::{
    CancelToken, Error, GenerateParams, Model, ModelParams, SamplerParams, Session, SessionParams, StopReason,
};
use picolm_integration_tests::*;

fn model() -> Arc<Model> {
    let path = model_path("SmolLM2-135M-Instruct.Q4_1.gguf");
    Arc::new(Model::load(path, &ModelParams { n_ctx: 512, n_threads: 2, ..Default::default() }).expect("load"))
}

fn session(model: &Arc<Model>, n_ctx: usize) -> Session {
    Session::new(model.clone(), &SessionParams { n_ctx, ..Default::default() }).expect("session")
}

fn sampled(seed: u64) -> GenerateParams {
    GenerateParams {
        max_tokens: 24,
        sampler: SamplerParams {
            temperature: 0.9,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.02,
            repeat_penalty: 1.1,
            seed,
            ..Default::default()
        },
        ..Default::default()
    }
}

const PROMPT: &str = "Once upon a time, in a small village by the sea,";

#[test]
fn seeded_sampling_is_reproducible_and_depends_on_the_seed() {
    let m = model();
    let tokens = m.tokenizer().encode(PROMPT, true, true);
    let run = |seed: u64| {
        let mut s = session(&m, 256);
        s.generate(&tokens, &sampled(seed), None, None, &mut |_| true).unwrap().tokens
    };
    let a = run(11);
    assert_eq!(a.len(), 24);
    assert_eq!(a, run(11), "same seed and settings must give the same tokens");
    let others: Vec<Vec<u32>> = [12, 13, 14].iter().map(|&s| run(s)).collect();
    assert!(others.iter().any(|o| o != &a), "three other seeds all reproduced seed 11's sample");
}

#[test]
fn streamed_pieces_are_the_text_and_the_decoded_tokens() {
    let m = model();
    let tokens = m.tokenizer().encode(PROMPT, true, true);
    let mut s = session(&m, 256);
    let mut pieces = Vec::new();
    let out = s
        .generate(&tokens, &sampled(5), None, None, &mut |p| {
            pieces.push(p.to_string());
            true
        })
        .unwrap();
    assert!(pieces.iter().all(|p| !p.is_empty()), "empty piece delivered");
    assert_eq!(pieces.concat(), out.text);
    let body: Vec<u32> = out.tokens.iter().copied().filter(|&t| !m.tokenizer().is_eog(t)).collect();
    assert_eq!(String::from_utf8(m.tokenizer().decode(&body, false)).unwrap(), out.text);
    assert_eq!(out.stats.n_generated, out.tokens.len());
    assert_eq!(out.stats.n_prompt, tokens.len());
}

#[test]
fn a_stop_string_ends_generation_and_is_not_delivered() {
    let m = model();
    let tokens = m.tokenizer().encode("The capital of France is", true, true);
    let mut s = session(&m, 256);
    let greedy = GenerateParams { max_tokens: 16, ..Default::default() };
    let full = s.generate(&tokens, &greedy, None, None, &mut |_| true).unwrap().text;
    // Stop at the first occurrence of a string that appears inside the greedy continuation, spanning tokens.
    let stop = full.chars().skip(3).take(4).collect::<String>();
    let cut = full.find(&stop).unwrap();
    let params = GenerateParams { stop: vec!["zzzz-not-there".into(), stop.clone()], ..greedy };
    let mut delivered = String::new();
    let out = s
        .generate(&tokens, &params, None, None, &mut |p| {
            delivered.push_str(p);
            true
        })
        .unwrap();
    assert_eq!(out.stop_reason, StopReason::StopString);
    assert_eq!(out.text, full[..cut], "text before the stop string {stop:?}");
    assert_eq!(delivered, out.text, "no part of the stop string was streamed");
}

#[test]
fn limits_end_generation_with_their_reason() {
    let m = model();
    let tokens = m.tokenizer().encode(PROMPT, true, true);
    // max_tokens
    let mut s = session(&m, 256);
    let out = s
        .generate(
            &tokens,
            &GenerateParams { max_tokens: 3, stop_at_eog: false, ..Default::default() },
            None,
            None,
            &mut |_| true,
        )
        .unwrap();
    assert_eq!((out.tokens.len(), out.stop_reason), (3, StopReason::MaxTokens));
    // A full context stops generation cleanly, after exactly the positions that fit.
    let n_ctx = tokens.len() + 6;
    let mut s = session(&m, n_ctx);
    let out = s
        .generate(
            &tokens,
            &GenerateParams { max_tokens: 100, stop_at_eog: false, ..Default::default() },
            None,
            None,
            &mut |_| true,
        )
        .unwrap();
    assert_eq!(out.stop_reason, StopReason::ContextFull);
    assert_eq!(s.tokens().len(), n_ctx);
    assert_eq!(out.tokens.len(), 7, "6 evaluated positions plus the last sampled token");
    // The callback can stop generation.
    let mut s = session(&m, 256);
    let mut n = 0;
    let out = s
        .generate(&tokens, &sampled(1), None, None, &mut |_| {
            n += 1;
            n < 2
        })
        .unwrap();
    assert_eq!((out.stop_reason, n), (StopReason::CallbackStopped, 2));
}

#[test]
fn prompt_errors_are_typed() {
    let m = model();
    let mut s = session(&m, 32);
    let long = m.tokenizer().encode(&"word ".repeat(100), true, true);
    match s.generate(&long, &GenerateParams::default(), None, None, &mut |_| true) {
        Err(Error::PromptTooLong { n_prompt, n_ctx: 32 }) => assert_eq!(n_prompt, long.len()),
        other => panic!("expected PromptTooLong, got {other:?}"),
    }
    assert!(matches!(s.generate(&[], &GenerateParams::default(), None, None, &mut |_| true), Err(Error::EmptyPrompt)));
    let bad =
        GenerateParams { sampler: SamplerParams { temperature: f32::NAN, ..Default::default() }, ..Default::default() };
    assert!(matches!(s.generate(&[1, 2], &bad, None, None, &mut |_| true), Err(Error::Sampler(_))));
    let out_of_vocab = m.config().n_vocab as u32;
    assert!(s.generate(&[out_of_vocab], &GenerateParams::default(), None, None, &mut |_| true).is_err());
    assert!(Session::new(m.clone(), &SessionParams { n_ctx: 100_000, ..Default::default() }).is_err());
}

#[test]
fn cancellation_stops_between_tokens() {
    let m = model();
    let tokens = m.tokenizer().encode(PROMPT, true, true);
    let mut s = session(&m, 256);
    let cancel = CancelToken::new();
    let c = cancel.clone();
    let mut n = 0;
    let out = s
        .generate(
            &tokens,
            &GenerateParams { max_tokens: 50, stop_at_eog: false, ..Default::default() },
            None,
            Some(cancel),
            &mut |_| {
                n += 1;
                if n == 3 {
                    c.cancel();
                }
                true
            },
        )
        .unwrap();
    assert_eq!(out.stop_reason, StopReason::Cancelled);
    assert!(out.tokens.len() < 10, "generation went on for {} tokens after cancel", out.tokens.len());
    // Already cancelled before start: the prompt is not even evaluated fully, nothing is generated.
    let cancel = CancelToken::new();
    cancel.cancel();
    let mut s = session(&m, 256);
    let out = s.generate(&tokens, &GenerateParams::default(), None, Some(cancel), &mut |_| true).unwrap();
    assert_eq!((out.stop_reason, out.tokens.len()), (StopReason::Cancelled, 0));
}

/// The prefill entry of every binding: `should_stop` is polled between batches of `n_batch`, the batches
/// evaluated so far stay cached, and the state is already finished as cancelled.
#[test]
fn should_stop_ends_the_prefill_between_batches() {
    let m = model();
    let tokens = m.tokenizer().encode(&"word ".repeat(60), true, true);
    assert!(tokens.len() > 40);
    let mut s = Session::new(m.clone(), &SessionParams { n_ctx: 256, n_batch: 8, ..Default::default() }).unwrap();
    let mut polls = 0;
    let params = GenerateParams::default();
    let st = s
        .start_generation_with(&tokens, &params, None, None, &mut || {
            polls += 1;
            polls == 3
        })
        .unwrap();
    assert!(st.is_finished());
    assert_eq!(st.output().stop_reason, StopReason::Cancelled);
    assert_eq!(s.tokens(), &tokens[..16], "two batches of 8 were evaluated before the third poll stopped it");
    // The next call reuses those 16 tokens and completes the prompt.
    let st = s.start_generation_with(&tokens, &params, None, None, &mut || false).unwrap();
    assert!(!st.is_finished());
    assert_eq!(st.output().stats.n_reused, 16);
    assert_eq!(s.tokens(), &tokens[..]);
}

/// `generate_with` also polls `should_stop` between generated pieces, ending as cancelled.
#[test]
fn should_stop_ends_a_generation_between_pieces() {
    let m = model();
    let tokens = m.tokenizer().encode(PROMPT, true, true);
    let mut s = session(&m, 256);
    let params = GenerateParams { max_tokens: 50, stop_at_eog: false, ..Default::default() };
    let pieces = std::cell::Cell::new(0);
    let mut polls = 0;
    let out = s
        .generate_with(
            &tokens,
            &params,
            None,
            None,
            &mut || {
                polls += 1;
                pieces.get() >= 3
            },
            &mut |_| {
                pieces.set(pieces.get() + 1);
                true
            },
        )
        .unwrap();
    assert_eq!(out.stop_reason, StopReason::Cancelled);
    assert_eq!(pieces.get(), 3, "stopped right after the third piece");
    assert!(out.tokens.len() < 10, "{} tokens", out.tokens.len());
    assert!(polls >= 4, "polled in prefill and before each piece: {polls}");
    // Without a hook it is the plain generation (the default entry delegates to the same code).
    let mut a = session(&m, 256);
    let mut b = session(&m, 256);
    let plain = a.generate(&tokens, &params, None, None, &mut |_| true).unwrap();
    let hooked = b.generate_with(&tokens, &params, None, None, &mut || false, &mut |_| true).unwrap();
    assert_eq!(plain.tokens, hooked.tokens);
    assert_eq!(plain.stop_reason, StopReason::MaxTokens);
}

#[test]
fn a_shared_prompt_prefix_is_reused_and_gives_the_same_output() {
    let m = model();
    let tok = m.tokenizer();
    let first = tok.encode("User: Name a color.\nAssistant:", true, true);
    let second = tok.encode("User: Name a color.\nAssistant: Blue.\nUser: Name a fruit.\nAssistant:", true, true);
    let common = first.iter().zip(&second).take_while(|(a, b)| a == b).count();
    assert!(common > 5);
    let greedy = GenerateParams { max_tokens: 8, ..Default::default() };
    let mut s = session(&m, 256);
    s.generate(&first, &greedy, None, None, &mut |_| true).unwrap();
    let reused = s.generate(&second, &greedy, None, None, &mut |_| true).unwrap();
    assert_eq!(reused.stats.n_reused, common);
    let fresh = session(&m, 256).generate(&second, &greedy, None, None, &mut |_| true).unwrap();
    assert_eq!(reused.tokens, fresh.tokens);
}

#[test]
fn saved_state_restores_the_conversation_exactly() {
    let m = model();
    let tokens = m.tokenizer().encode(PROMPT, true, true);
    let greedy = GenerateParams { max_tokens: 12, ..Default::default() };
    let mut s = session(&m, 256);
    s.eval(&tokens).unwrap();
    let mut saved = Vec::new();
    s.save_state(&mut saved).unwrap();
    let expected = s.generate(&tokens, &greedy, None, None, &mut |_| true).unwrap();

    let mut restored = session(&m, 256);
    restored.load_state(&mut saved.as_slice()).unwrap();
    assert_eq!(restored.tokens(), tokens.as_slice());
    let again = restored.generate(&tokens, &greedy, None, None, &mut |_| true).unwrap();
    assert_eq!(again.stats.n_reused, tokens.len(), "the restored cache serves the whole prompt");
    assert_eq!(again.tokens, expected.tokens);

    // Damaged or foreign states are refused and leave the session empty.
    for bad in [&saved[..7], &saved[..saved.len() - 1], b"NOTASTATEFILE-at-all".as_slice()] {
        let mut r = session(&m, 256);
        assert!(matches!(r.load_state(&mut &bad[..]), Err(Error::InvalidState(_))));
        assert!(r.tokens().is_empty());
    }
    let mut small = session(&m, 8);
    assert!(small.load_state(&mut saved.as_slice()).is_err());
    assert!(small.tokens().is_empty());
}

fn model_with_kernel(kernel: &str) -> Arc<Model> {
    let path = model_path("SmolLM2-135M-Instruct.Q4_1.gguf");
    let params = ModelParams { n_ctx: 512, n_threads: 2, kernel: Some(kernel.into()), ..Default::default() };
    Arc::new(Model::load(path, &params).expect("load"))
}

#[test]
fn batched_prefill_equals_token_by_token_prefill() {
    let model = model_with_kernel("tile");
    assert!(
        model.kernel_plan().entries().iter().all(|e| e.source == PlanSource::Prefill),
        "{}",
        model.kernel_plan().describe()
    );
    assert_batched_prefill_equals_token_by_token(
        &model,
        "The history of the lighthouse on the northern cape began when",
    );
}

/// Every decode kernel this CPU has for the model's formats, forced in turn, gives the logits of the prefill
/// kernel within a float-summation tolerance and the same greedy continuation. The tolerance is loose because 30
/// layers amplify summation-order differences: the AVX2 and AVX-512 tile kernels (both exact integer products,
/// other float orders) differ by 0.62 on a largest logit of 29.8 after this prompt.
#[test]
fn every_decode_kernel_agrees_with_the_prefill_kernel() {
    let prompt = "The history of the lighthouse on the northern cape began when";
    let greedy = GenerateParams { max_tokens: 12, sampler: SamplerParams::default(), ..Default::default() };
    let run = |m: &Arc<Model>| {
        let tokens = m.tokenizer().encode(prompt, true, true);
        let mut s = Session::new(m.clone(), &SessionParams { n_ctx: 256, n_batch: 1, ..Default::default() }).unwrap();
        s.eval(&tokens).unwrap();
        let logits = s.logits().unwrap().to_vec();
        let mut g = Session::new(m.clone(), &SessionParams { n_ctx: 256, n_batch: 1, ..Default::default() }).unwrap();
        (logits, g.generate(&tokens, &greedy, None, None, &mut |_| true).unwrap().tokens)
    };
    let reference = model_with_kernel("tile");
    let (want, want_ids) = run(&reference);
    let mut names: Vec<&str> = Vec::new();
    for e in reference.kernel_plan().entries() {
        names.extend(picolm_core::simd::decode_kernel_candidates(e.ty).iter().map(|k| k.name));
    }
    names.sort_unstable();
    names.dedup();
    let mut failures = Vec::new();
    for name in names {
        let m = model_with_kernel(name);
        let (got, ids) = run(&m);
        let scale = want.iter().fold(0f32, |a, v| a.max(v.abs()));
        let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        eprintln!("{name}: largest logit difference {worst:e} (largest logit {scale})\n{}", m.kernel_plan().describe());
        if m.kernel_plan().decode_matches_prefill() && (got.iter().zip(&want).any(|(a, b)| a.to_bits() != b.to_bits()))
        {
            failures.push(format!("{name}: declared bit-identical to prefill, logits differ by {worst}"));
        }
        if worst > 0.04 * scale.max(1.0) {
            failures.push(format!("{name}: logits differ by {worst} from the prefill kernel's"));
        }
        if ids != want_ids {
            failures
                .push(format!("{name}: greedy continuation {ids:?} differs from the prefill kernel's {want_ids:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Under the default kernel choice, a prompt after a cached prefix gives the logits and greedy continuation of the
/// same prompt fresh, bit for bit, and batched prefill equals token-by-token evaluation: on SmolLM2 Q4_1 and on
/// a Q4_K_M quantization of it (Q4_K, Q6_K, Q5_0 and Q8_0 matrices). Also with `auto` named, and with every kernel
/// name whose forced plan is still declared bit-identical to prefill.
#[test]
fn a_cached_prefix_changes_no_result_under_the_default_kernel_choice() {
    let dir = tempfile::tempdir().unwrap();
    let kquant = dir.path().join("Q4_K_M.gguf");
    let scheme = picolm_core::quantize::QuantScheme::parse("Q4_K_M").unwrap();
    picolm_core::quantize::quantize_file(model_path("smollm2-135m-F32.gguf"), &kquant, scheme, &mut |_, _| {}).unwrap();
    let prompt = "The history of the lighthouse on the northern cape began when";
    for path in [model_path("SmolLM2-135M-Instruct.Q4_1.gguf"), kquant] {
        let load = |kernel: Option<&str>| {
            let params =
                ModelParams { n_ctx: 512, n_threads: 2, kernel: kernel.map(String::from), ..Default::default() };
            Arc::new(Model::load(&path, &params).expect("load"))
        };
        let default = load(None);
        let mut names: Vec<Option<&str>> = vec![None, Some("auto")];
        for e in default.kernel_plan().entries() {
            names.extend(picolm_core::simd::decode_kernel_candidates(e.ty).iter().map(|k| Some(k.name)));
        }
        names.sort_unstable();
        names.dedup();
        for name in names {
            let m = if name.is_none() { default.clone() } else { load(name) };
            let plan = m.kernel_plan();
            eprintln!("{} {name:?}:\n{}", path.display(), plan.describe());
            if name.is_none() && std::env::var_os("PICOLM_KERNEL").is_none() {
                assert!(
                    plan.decode_matches_prefill(),
                    "the default plan rounds otherwise than prefill:\n{}",
                    plan.describe()
                );
                assert!(plan
                    .entries()
                    .iter()
                    .all(|e| e.source != PlanSource::Prefill && e.source != PlanSource::Forced));
            }
            if !plan.decode_matches_prefill() {
                continue; // a forced kernel with other rounding
            }
            assert_cached_prefix_changes_nothing(&m, prompt);
            if name.is_none() {
                assert_batched_prefill_equals_token_by_token(&m, prompt);
            }
        }
    }
}

#[test]
fn an_unknown_kernel_name_is_a_typed_error_listing_the_names() {
    let path = model_path("SmolLM2-135M-Instruct.Q4_1.gguf");
    let params = ModelParams { n_ctx: 64, n_threads: 1, kernel: Some("avx9-warp".into()), ..Default::default() };
    let err = Model::load(path, &params).unwrap_err();
    assert!(matches!(err, ModelError::UnknownKernel(_)), "{err:?}");
    let msg = err.to_string();
    for needle in ["avx9-warp", "tile", "avx2-gemv", "avx512vnni-rows8"] {
        assert!(msg.contains(needle), "{msg:?} does not mention {needle}");
    }
}

/// The planner stays within its load-time budget and names a kernel for each format of the model.
#[test]
fn the_auto_plan_covers_every_format_within_its_budget() {
    let m = model_with_kernel("auto");
    let plan = m.kernel_plan();
    let mut formats: Vec<_> = m.weights().layers.iter().flat_map(|l| l.matrices()).map(|x| x.ty).collect();
    formats.push(m.weights().output.ty);
    for ty in formats {
        assert!(plan.decode(ty).is_some(), "no decode kernel for {ty}:\n{}", plan.describe());
    }
    // The measuring stops at the budget; one pass in flight may overrun it.
    assert!(plan.elapsed() < picolm_core::compute::planner::PLAN_BUDGET * 3, "planning took {:?}", plan.elapsed());
    eprintln!("plan in {:?}:\n{}", plan.elapsed(), plan.describe());
}
