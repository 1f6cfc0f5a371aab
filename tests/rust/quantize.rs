//! `quantize_file` on the real SmolLM2 F32 model: the written files follow llama.cpp's type choices, load, and
//! keep the perplexity close to the F32 model's (bounds from each format's precision, on the same chunks).

use std::sync::Arc;

use picolm_core::ggml_type::GgmlType;
use picolm_core::gguf::GgufFile;
use picolm_core::perplexity::perplexity;
use picolm_core::quantize::{quantize_file, QuantScheme};
use picolm_core::{Model, ModelParams};
use picolm_integration_tests::*;

fn ppl(path: &std::path::Path, text: &str) -> f64 {
    let model = Arc::new(Model::load(path, &ModelParams { n_ctx: 512, n_threads: 2, ..Default::default() }).unwrap());
    perplexity(&model, text, 512, 512, Some(3), &mut |_, _, _| {}).unwrap().ppl
}

#[test]
fn quantized_files_load_and_keep_perplexity() {
    let src = model_path("smollm2-135m-F32.gguf");
    let text = std::fs::read_to_string(golden_dir().join("eval/persuasion.txt")).expect("eval text");
    let base = ppl(&src, &text);
    let dir = std::env::temp_dir().join(format!("picolm-quantize-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (scheme, bound) in [("Q8_0", 0.01), ("Q4_K_M", 0.10), ("Q4_0", 0.35)] {
        let dst = dir.join(format!("{scheme}.gguf"));
        let report = quantize_file(&src, &dst, QuantScheme::parse(scheme).unwrap(), &mut |_, _| {}).unwrap();
        assert!(report.bytes_out < report.bytes_in / 3, "{scheme}: {} -> {} bytes", report.bytes_in, report.bytes_out);
        let f = GgufFile::open(&dst).unwrap();
        let ty = |name: &str| f.tensor(name).unwrap().ggml_type;
        assert_eq!(ty("blk.0.attn_norm.weight"), GgmlType::F32);
        match scheme {
            // Tied output: the token embedding is the output matrix and gets Q6_K, whose 256-blocks do not fit
            // SmolLM2's 576-wide rows, so it falls back to Q8_0 (as llama.cpp does).
            "Q4_0" => {
                assert_eq!(ty("blk.0.attn_q.weight"), GgmlType::Q4_0);
                assert_eq!(ty("token_embd.weight"), GgmlType::Q8_0);
            }
            "Q4_K_M" => {
                assert_eq!(ty("blk.5.attn_q.weight"), GgmlType::Q5_0, "576-wide rows fall back from Q4_K");
                assert_eq!(ty("blk.4.ffn_down.weight"), GgmlType::Q4_K, "1536-wide rows are whole K blocks");
                assert_eq!(ty("blk.5.ffn_down.weight"), GgmlType::Q6_K, "every third layer gets more bits");
                assert_eq!(ty("blk.0.ffn_down.weight"), GgmlType::Q6_K, "first layers get more bits");
            }
            _ => assert_eq!(ty("blk.0.ffn_up.weight"), GgmlType::Q8_0),
        }
        let tile = ModelParams { n_ctx: 512, n_threads: 2, kernel: Some("tile".into()), ..Default::default() };
        let model = Arc::new(Model::load(&dst, &tile).unwrap());
        assert_batched_prefill_equals_token_by_token(&model, "In the spring of that year the sailors of the harbour");
        drop(model);
        let p = ppl(&dst, &text);
        let rel = (p - base) / base;
        eprintln!("{scheme}: perplexity {p:.4} vs F32 {base:.4} ({:+.2}%)", rel * 100.0);
        assert!(rel.abs() <= bound, "{scheme}: perplexity {p:.4} is not within {bound} of F32's {base:.4}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
