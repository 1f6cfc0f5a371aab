//! Allocation failure is an error, not an abort (issue #17.3): every buffer sized by a caller's setting (KV cache
//! for `n_ctx`, activation buffers, logits, RoPE tables, the repetition-penalty window) is allocated fallibly and
//! reported as `OutOfMemory` with its size. The checks run in a child process (this test binary re-executed) whose
//! address space is limited with `RLIMIT_AS` between fork and exec, so an allocation that would abort kills only
//! the child, and the parent reports how it died.
//! The files are made with the GGUF writer, which is part of the `quantize` feature.
#![cfg(feature = "quantize")]

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::Arc;

use picolm_core::gguf::synthetic::{tiny_llama, TinyShape};
use picolm_core::gguf::GgufFile;
use picolm_core::model::{ModelError, ModelParams};
use picolm_core::{Error, GenerateParams, Model, SamplerParams, Session, SessionParams};

/// Address space the child may use: room for the test harness, the tiny model and a few threads, far less than
/// the buffers asked for below.
const LIMIT_BYTES: u64 = 1 << 30;

/// A model whose KV cache is 8 KiB per position: 2^20 positions need 8 GiB.
fn wide_model() -> Arc<Model> {
    let shape = TinyShape { n_layer: 8, n_embd: 256, n_head: 4, n_head_kv: 4, n_ff: 64 };
    let file = GgufFile::from_bytes(tiny_llama(shape).to_bytes()).unwrap();
    Arc::new(Model::from_gguf(file, &ModelParams { n_ctx: 1 << 20, n_threads: 1, ..Default::default() }).unwrap())
}

fn run_child(name: &str) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", name, "--ignored", "--nocapture", "--test-threads=1"]);
    // SAFETY: between fork and exec the closure calls only setrlimit, which is async-signal-safe, on plain data.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: LIMIT_BYTES as libc::rlim_t, rlim_max: LIMIT_BYTES as libc::rlim_t };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("re-run the test binary");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child {name} under RLIMIT_AS = {LIMIT_BYTES}: {:?}\n{text}", out.status);
    assert!(text.contains("1 passed"), "child {name} did not run:\n{text}");
}

#[test]
fn huge_context_is_out_of_memory_under_a_memory_limit() {
    run_child("child_huge_context");
}

#[test]
fn huge_penalty_window_costs_nothing_under_a_memory_limit() {
    run_child("child_huge_penalty_window");
}

#[test]
#[ignore = "runs in the memory-limited child of huge_context_is_out_of_memory_under_a_memory_limit"]
fn child_huge_context() {
    let model = wide_model();
    let err = Session::new(model.clone(), &SessionParams { n_ctx: 1 << 20, ..Default::default() }).unwrap_err();
    let expected = 8u64 * (1 << 20) * 256 * 2 * 2; // layers x positions x kv_dim x f16 x (keys + values)
    match &err {
        Error::Model(ModelError::OutOfMemory(e)) => {
            assert_eq!((e.what, e.bytes), ("KV cache", expected), "{err}");
        }
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    assert!(err.to_string().contains(&expected.to_string()), "{err}");
    assert_eq!(err.out_of_memory().map(|e| e.bytes), Some(expected));
    // The process is intact: a context that fits still works.
    let mut s = Session::new(model, &SessionParams { n_ctx: 64, ..Default::default() }).unwrap();
    s.eval(&[1, 2, 3]).unwrap();
}

#[test]
#[ignore = "runs in the memory-limited child of huge_penalty_window_costs_nothing_under_a_memory_limit"]
fn child_huge_penalty_window() {
    let model = wide_model();
    for penalty in [1.0f32, 1.3] {
        let sampler = SamplerParams { repeat_last_n: 1 << 33, repeat_penalty: penalty, ..Default::default() };
        let mut s = Session::new(model.clone(), &SessionParams { n_ctx: 64, ..Default::default() }).unwrap();
        let params = GenerateParams { max_tokens: 8, sampler, stop_at_eog: false, ..Default::default() };
        let out = s.generate(&[1, 2, 3], &params, None, None, &mut |_| true).unwrap();
        assert_eq!(out.tokens.len(), 8, "penalty {penalty}");
    }
}
