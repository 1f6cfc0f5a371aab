//! Streaming mode (weights read with `pread` into two reused slabs) and the resident-memory budget: the output is
//! bit-identical to the mapped mode, loading reads no weight data, the page cache stays empty, read errors are
//! typed, and a process run with a budget stays within it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use picolm_core::gguf::GgufFile;
use picolm_core::model::{KvType, ModelError, RssBudget};
use picolm_core::{GenerateParams, Model, ModelParams, SamplerParams, Session, SessionParams};
use picolm_integration_tests::*;

const Q4_1: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

// Both modes decode with the prefill kernel (`tile`), so that they run the same kernels by construction: the decode
// planner times kernels on mapped rows only. (Its `auto` choice is bit-identical to the tile anyway, which
// `generation.rs` checks; these tests compare the reading of the weights, not the kernel choice.)
fn streamed(slab: usize) -> ModelParams {
    ModelParams {
        n_ctx: 512,
        n_threads: 2,
        stream_weights: true,
        stream_slab_bytes: slab,
        kernel: Some("tile".into()),
        ..Default::default()
    }
}

fn mapped() -> ModelParams {
    ModelParams { n_ctx: 512, n_threads: 2, kernel: Some("tile".into()), ..Default::default() }
}

/// Greedy ids of `prompt` (48 tokens, batched prefill of 64) and the logits after the prompt.
fn greedy(model: &Arc<Model>, prompt: &str, n_batch: usize) -> (Vec<u32>, Vec<f32>) {
    let tokens = model.tokenizer().encode(prompt, true, true);
    let mut s = Session::new(model.clone(), &SessionParams { n_ctx: 512, n_batch, ..Default::default() }).unwrap();
    s.eval(&tokens).unwrap();
    let logits = s.logits().unwrap().to_vec();
    let params = GenerateParams { max_tokens: 48, sampler: SamplerParams::default(), ..Default::default() };
    (s.generate(&tokens, &params, None, None, &mut |_| true).unwrap().tokens, logits)
}

#[test]
fn streamed_f32_greedy_ids_equal_llama_cpp() {
    let golden = golden_json("smollm2-greedy.json");
    let key = "smollm2-135m-F32";
    // A small slab: every matrix is cut into several chunks and the read-ahead crosses matrix and layer bounds.
    let model = Arc::new(Model::load(model_path(&golden_model_file(key)), &streamed(256 << 10)).unwrap());
    assert!(model.file().is_streamed() && model.stream_config().is_some());
    for case in golden["results"][key].as_array().expect("results") {
        let prompt = case["prompt"].as_str().unwrap();
        let (got, _) = greedy(&model, prompt, 64);
        assert_eq!(got, ids(&case["generated_ids"]), "streamed F32 greedy ids of {prompt:?}");
    }
}

#[test]
fn streamed_q4_1_is_bit_identical_to_mapped() {
    let path = model_path(Q4_1);
    let a = Arc::new(Model::load(&path, &mapped()).unwrap());
    assert!(a.stream_config().is_none() && !a.file().is_streamed());
    for slab in [0, 100 << 10] {
        let b = Arc::new(Model::load(&path, &streamed(slab)).unwrap());
        for (prompt, n_batch) in [("The capital of France is", 64), ("Write a haiku about the sea.", 1)] {
            let (ta, la) = greedy(&a, prompt, n_batch);
            let (tb, lb) = greedy(&b, prompt, n_batch);
            assert_eq!(ta, tb, "greedy ids of {prompt:?}, slab {slab}");
            assert!(la.iter().zip(&lb).all(|(x, y)| x.to_bits() == y.to_bits()), "logits of {prompt:?}, slab {slab}");
        }
    }
}

#[test]
fn two_sessions_of_one_streamed_model_on_two_threads_agree() {
    let model = Arc::new(Model::load(model_path(Q4_1), &streamed(512 << 10)).unwrap());
    let expected = greedy(&model, "Once upon a time", 64).0;
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let m = model.clone();
            std::thread::spawn(move || greedy(&m, "Once upon a time", 64).0)
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), expected);
    }
}

/// A private copy of a model, on disk (the tests below look at its page cache or truncate it).
fn private_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let dst = dir.path().join(name);
    std::fs::copy(model_path(name), &dst).unwrap();
    let f = std::fs::File::open(&dst).unwrap();
    f.sync_all().unwrap();
    (dir, dst)
}

/// Bytes of `[from, len)` of the file that are in the page cache (`mincore` over a mapping that is never touched).
fn cached_bytes(path: &Path, from: u64) -> u64 {
    use std::os::unix::io::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    let page = 4096usize;
    // SAFETY: a read-only shared mapping of a file we hold open; its memory is never read, only passed to mincore.
    let addr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, f.as_raw_fd(), 0) };
    assert_ne!(addr, libc::MAP_FAILED);
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: `addr..addr + len` is the mapping made above; `vec` has one byte per page of it.
    let rc = unsafe { libc::mincore(addr, len, vec.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: unmaps the mapping made above, which nothing references.
    unsafe { libc::munmap(addr, len) };
    let first = (from as usize) / page;
    vec[first..].iter().filter(|&&b| b & 1 == 1).count() as u64 * page as u64
}

/// Drops a file's clean pages from the page cache.
fn evict(path: &Path) {
    use std::os::unix::io::AsRawFd;
    let f = std::fs::File::open(path).unwrap();
    // SAFETY: integer arguments and a descriptor open for the call.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

#[test]
fn streamed_load_and_decode_leave_no_weight_pages_in_the_page_cache() {
    let (_dir, path) = private_copy(Q4_1);
    evict(&path);
    let data_offset = GgufFile::open_streamed(&path).unwrap().data_offset();
    let before = cached_bytes(&path, data_offset);
    assert!(before < 64 << 10, "the copy could not be evicted from the page cache ({before} bytes cached)");
    let model = Arc::new(Model::load(&path, &streamed(0)).unwrap());
    let after_load = cached_bytes(&path, data_offset);
    // Load reads only the header and the norm vectors (a few KiB each), and drops what it read.
    assert!(after_load <= 256 << 10, "loading left {after_load} bytes of tensor data in the page cache");
    let (tokens, _) = greedy(&model, "The capital of France is", 64);
    assert!(!tokens.is_empty());
    let after_decode = cached_bytes(&path, data_offset);
    let data = std::fs::metadata(&path).unwrap().len() - data_offset;
    // Every slab read is dropped after use: at most the chunk being read ahead can be cached.
    assert!(
        after_decode <= 2 * model.stream_config().unwrap().slab_bytes as u64,
        "decoding left {after_decode} of {data} bytes of tensor data in the page cache"
    );
}

#[test]
fn a_file_truncated_under_a_streamed_model_is_a_typed_read_error() {
    let (_dir, path) = private_copy(Q4_1);
    let model = Arc::new(Model::load(&path, &streamed(0)).unwrap());
    let mut s = Session::new(model.clone(), &SessionParams { n_ctx: 64, ..Default::default() }).unwrap();
    let tokens = model.tokenizer().encode("Hello", true, true);
    s.eval(&tokens).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(len / 2).unwrap();
    let err = s.eval(&[tokens[tokens.len() - 1]]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("cannot read") && msg.contains(&*path.to_string_lossy()), "{msg}");
    assert!(s.logits().is_none(), "logits of a failed pass must not be offered");
    assert_eq!(s.tokens(), &tokens[..], "the failed token is not cached");
}

fn budget(mib: u64) -> ModelParams {
    ModelParams {
        n_ctx: 512,
        n_threads: 2,
        rss_budget: Some(RssBudget { max_rss_bytes: mib << 20, kv_type: KvType::F16, n_batch: 64 }),
        ..Default::default()
    }
}

#[test]
fn a_budget_too_small_is_refused_saying_what_is_needed() {
    let err = Model::load(model_path(Q4_1), &budget(1)).unwrap_err();
    match &err {
        ModelError::MemoryBudget { budget, needed, detail } => {
            assert_eq!(*budget, 1 << 20);
            assert!(*needed > *budget, "{err}");
            assert!(detail.contains("KV cache") && detail.contains("weight slabs"), "{detail}");
        }
        other => panic!("expected MemoryBudget, got {other:?}"),
    }
    assert!(err.to_string().contains("MiB needed"), "{err}");
}

#[test]
fn a_budget_maps_a_model_that_fits() {
    let big = Model::load(model_path(Q4_1), &budget(1 << 20)).unwrap();
    assert!(big.stream_config().is_none() && !big.file().is_streamed(), "a 1 TiB budget maps the model");
    let plan = big.memory_plan().unwrap();
    assert_eq!(plan.slab_bytes, 0);
    assert!(plan.weights >= std::fs::metadata(model_path(Q4_1)).unwrap().len() / 2, "{}", plan.describe());
}

/// Child side of [`a_process_with_a_budget_stays_within_it`]: loads `PICOLM_STREAM_CHILD_MODEL` with the budget
/// `PICOLM_STREAM_CHILD_MIB` (streaming not asked for: the budget must choose it; `0`: no budget, streaming mode),
/// decodes 16 tokens at context 512, prints the plan, whether the model was streamed, the bytes of weights kept
/// resident and the peak resident set.
#[test]
#[ignore = "run by a_process_with_a_budget_stays_within_it in a child process"]
fn budget_child() {
    let Some(path) = std::env::var_os("PICOLM_STREAM_CHILD_MODEL") else { return };
    let mib: u64 = std::env::var("PICOLM_STREAM_CHILD_MIB").unwrap().parse().unwrap();
    let params = if mib == 0 { streamed(0) } else { budget(mib) };
    let model = Arc::new(Model::load(PathBuf::from(path), &params).unwrap_or_else(|e| panic!("load: {e}")));
    let tokens = model.tokenizer().encode("The history of the city began", true, true);
    let mut s = Session::new(model.clone(), &SessionParams { n_ctx: 512, n_batch: 64, kv_type: KvType::F16 }).unwrap();
    let params = GenerateParams { max_tokens: 16, sampler: SamplerParams::default(), ..Default::default() };
    s.generate(&tokens, &params, None, None, &mut |_| true).unwrap();
    let m = picolm_core::memory::MemoryUsage::current().unwrap();
    let streamed = model.stream_config().is_some() as u64;
    let plan = model.memory_plan().map_or(0, |p| p.total());
    let kept = model.streamer().map_or(0, |s| s.resident_and_streamed_bytes().0);
    println!("CHILD plan={plan} streamed={streamed} resident={kept} peak={}", m.peak_rss);
    // The plan's items against what the session and the streamer really allocated.
    if let Some(p) = model.memory_plan() {
        let sum = p.resident + p.kv + p.buffers + p.weights + p.resident_weights + p.slack;
        assert_eq!(p.total(), sum, "{}", p.describe());
        assert!(s.kv_bytes() as u64 <= p.kv, "KV cache {} above the planned {}", s.kv_bytes(), p.kv);
        assert!(s.scratch_bytes() as u64 <= p.buffers, "buffers {} above the planned {}", s.scratch_bytes(), p.buffers);
        if let Some(streamer) = model.streamer() {
            let held = streamer.buffer_bytes() as u64;
            let planned = p.weights + p.resident_weights;
            assert!(held <= planned, "streamer buffers {held} above the planned {planned}: {}", p.describe());
            let (resident, _) = streamer.resident_and_streamed_bytes();
            assert!(resident <= p.resident_weights, "resident weights {resident} above the plan: {}", p.describe());
            assert!(streamer.config().slab_bytes as u64 <= p.slab_bytes, "slab above the planned one");
        }
    }
}

/// Runs [`budget_child`]: (planned bytes, streamed, VmHWM).
fn child_peak(model: &Path, mib: u64) -> (u64, bool, u64) {
    let (plan, streamed, _, peak) = child_run(model, mib);
    (plan, streamed, peak)
}

/// Runs [`budget_child`]: (planned bytes, streamed, resident weight bytes, VmHWM).
fn child_run(model: &Path, mib: u64) -> (u64, bool, u64, u64) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "budget_child", "--nocapture", "--test-threads", "1"])
        .env("PICOLM_STREAM_CHILD_MODEL", model)
        .env("PICOLM_STREAM_CHILD_MIB", mib.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed: {text}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = text
        .lines()
        .find_map(|l| l.find("CHILD ").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("no CHILD line in {text}"));
    let field = |k: &str| -> u64 { line.split_whitespace().find_map(|w| w.strip_prefix(k)).unwrap().parse().unwrap() };
    (field("plan="), field("streamed=") == 1, field("resident="), field("peak="))
}

#[test]
fn a_process_with_a_budget_stays_within_it() {
    let (plan, streamed, peak) = child_peak(&model_path(Q4_1), 40);
    assert!(streamed, "a model larger than the budget is streamed");
    eprintln!(
        "SmolLM2 Q4_1 streamed within 40 MiB: plan {:.1} MiB, VmHWM {:.1} MiB",
        plan as f64 / 1048576.0,
        peak as f64 / 1048576.0
    );
    assert!(peak <= 40 << 20, "VmHWM {peak} above the 40 MiB budget (plan {plan})");
    assert!(plan <= 40 << 20);
    // The planner's arithmetic is an upper bound of what the process held.
    assert!(peak <= plan, "VmHWM {peak} above the plan {plan}");
}

#[test]
fn a_tinyllama_shape_q4_k_m_process_streams_within_40_mib_and_keeps_weights_resident_within_244() {
    let p = models_dir().join("bench/tinyllama-shape-Q4_K_M.gguf");
    if !p.is_file() {
        eprintln!("skipped: {} is missing (scripts/make-bench-models.sh makes it)", p.display());
        return;
    }
    // Streaming mode alone: the goal.
    let (_, streamed, peak) = child_peak(&p, 0);
    assert!(streamed);
    eprintln!("TinyLlama-shape Q4_K_M streamed: VmHWM {:.1} MiB", peak as f64 / 1048576.0);
    assert!(peak <= 40 << 20, "VmHWM {peak} above 40 MiB");
    // `--max-rss 40` admits the full context's KV cache (ctx 512, f16) with streaming, and the process stays
    // within the plan, which stays within the budget.
    let (plan, streamed, peak) = child_peak(&p, 40);
    assert!(streamed);
    eprintln!(
        "TinyLlama-shape Q4_K_M within 40 MiB: plan {:.1} MiB, VmHWM {:.1} MiB",
        plan as f64 / 1048576.0,
        peak as f64 / 1048576.0
    );
    assert!(peak <= plan && plan <= 40 << 20, "VmHWM {peak}, plan {plan}, budget 40 MiB");
    // `--max-rss 244` (a 256 MiB cgroup less a margin): most of the room goes to weights kept resident.
    let (plan, streamed, resident, peak) = child_run(&p, 244);
    assert!(streamed);
    eprintln!(
        "TinyLlama-shape Q4_K_M within 244 MiB: plan {:.1} MiB, resident weights {:.1} MiB, VmHWM {:.1} MiB",
        plan as f64 / 1048576.0,
        resident as f64 / 1048576.0,
        peak as f64 / 1048576.0
    );
    assert!(resident >= 128 << 20, "only {resident} bytes of weights kept resident in a 244 MiB budget");
    assert!(peak <= plan && plan <= 244 << 20, "VmHWM {peak}, plan {plan}, budget 244 MiB");
}

#[test]
fn a_process_with_resident_weights_stays_within_its_budget() {
    // SmolLM2 F32 (about 515 MiB) in 120 MiB: after the KV cache, buffers and slabs, tens of MiB of weights are kept
    // resident, read at load; the peak stays within the plan, which lists them and stays within the budget.
    let (plan, streamed, resident, peak) = child_run(&model_path("smollm2-135m-F32.gguf"), 120);
    assert!(streamed, "a model larger than the budget is streamed");
    eprintln!(
        "SmolLM2 F32 within 120 MiB: plan {:.1} MiB, resident weights {:.1} MiB, VmHWM {:.1} MiB",
        plan as f64 / 1048576.0,
        resident as f64 / 1048576.0,
        peak as f64 / 1048576.0
    );
    assert!(resident >= 32 << 20, "only {resident} bytes of weights kept resident in a 120 MiB budget");
    assert!(peak <= plan && plan <= 120 << 20, "VmHWM {peak}, plan {plan}, budget 120 MiB");
}

#[test]
fn resident_weights_are_bit_identical_to_mapped() {
    let path = model_path(Q4_1);
    let a = Arc::new(Model::load(&path, &mapped()).unwrap());
    // A budget that holds part of the weights: some matrices resident, the others streamed. The budget counts what
    // this test process holds already (the mapped model, other tests' models): 48 MiB above it.
    let rss = picolm_core::memory::MemoryUsage::current().unwrap().rss;
    let max_rss_bytes = rss + (48 << 20);
    let rss_budget = Some(RssBudget { max_rss_bytes, kv_type: KvType::F16, n_batch: 64 });
    let params = ModelParams { rss_budget, ..streamed(0) };
    let b = Arc::new(Model::load(&path, &params).unwrap());
    let (resident, streamed) = b.streamer().expect("streamed").resident_and_streamed_bytes();
    let plan = b.memory_plan().unwrap();
    assert!(resident > 0 && streamed > 0, "resident {resident}, streamed {streamed}: {}", plan.describe());
    assert!(plan.describe().contains("resident weights"), "{}", plan.describe());
    for (prompt, n_batch) in [("The capital of France is", 64), ("Write a haiku about the sea.", 1)] {
        let (ta, la) = greedy(&a, prompt, n_batch);
        let (tb, lb) = greedy(&b, prompt, n_batch);
        assert_eq!(ta, tb, "greedy ids of {prompt:?}");
        assert!(la.iter().zip(&lb).all(|(x, y)| x.to_bits() == y.to_bits()), "logits of {prompt:?}");
    }
}
