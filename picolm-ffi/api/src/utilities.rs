//! The whole-model utilities behind the `picolm` command's subcommands: perplexity, the benchmark and the
//! quantizer (not to be confused with the agent's tool calls, in `agent.rs`).

use std::sync::OnceLock;

use picolm_core::bench::BenchParams;
use picolm_core::model::ModelParams;
use picolm_core::perplexity::perplexity;

use crate::boundary::{guard, picolm_result, Failure};
use crate::handle::Handle;
use crate::marshal::{cstr_arg, read_params, str_arg};
use crate::model::picolm_model;
use crate::session::{kv_type_arg, kv_type_code};

/// Perplexity of the model on `text` (UTF-8, `text_len` bytes) by llama.cpp's method: chunks of `n_ctx` tokens,
/// the second half of each scored. `max_chunks` 0 means all. Writes the perplexity and its standard error.
///
/// # Safety
/// `model` live; `text` readable; `ppl` and `uncertainty` writable (uncertainty may be NULL).
#[no_mangle]
pub unsafe extern "C" fn picolm_perplexity(
    model: *const picolm_model,
    text: *const libc::c_char,
    text_len: usize,
    n_ctx: u32,
    n_batch: u32,
    max_chunks: u32,
    ppl: *mut f64,
    uncertainty: *mut f64,
) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let m = unsafe { picolm_model::as_ref(model) }?;
        let text = unsafe { str_arg(text, text_len, "text") }?;
        if ppl.is_null() {
            return Err(Failure::null("ppl"));
        }
        let chunks = (max_chunks > 0).then_some(max_chunks as usize);
        let r = perplexity(m, text, n_ctx as usize, (n_batch as usize).max(1), chunks, &mut |_, _, _| {})?;
        // SAFETY: non-NULL writable out-parameters.
        unsafe {
            *ppl = r.ppl;
            if !uncertainty.is_null() {
                *uncertainty = r.uncertainty;
            }
        }
        Ok(())
    })
}

/// Benchmark settings (llama-bench style). Initialise with `picolm_bench_params_default`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct picolm_bench_params {
    /// Must be `sizeof(picolm_bench_params)` (set by `picolm_bench_params_default`).
    pub struct_size: usize,
    /// Prompt length of the prefill test (0 = skip).
    pub n_prompt: u32,
    /// Generated tokens of the decode test (0 = skip).
    pub n_gen: u32,
    /// Thread counts to test (`n_threads_list` entries; the defaults point to a static list owned by the
    /// library).
    pub threads: *const u32,
    /// Number of thread counts.
    pub n_threads_list: usize,
    /// Timed repetitions per test (after one untimed warm-up).
    pub repetitions: u32,
    /// Prefill batch size (at least 1).
    pub n_batch: u32,
    /// Streaming mode.
    pub stream_weights: bool,
    /// KV cache format: a `picolm_kv_type` value (others are PICOLM_ERR_INVALID_ARG).
    pub kv_type: i32,
    /// Also measure the read bandwidth (1 thread and each thread count) and report decode as a fraction of the
    /// bandwidth ceiling.
    pub bandwidth: bool,
}

/// The thread counts of picolm-core's default benchmark, as the static list `picolm_bench_params_default`
/// points to.
fn default_bench_threads() -> &'static [u32] {
    static THREADS: OnceLock<Vec<u32>> = OnceLock::new();
    THREADS
        .get_or_init(|| BenchParams::default().threads.iter().map(|&t| u32::try_from(t).unwrap_or(u32::MAX)).collect())
}

/// Fills `params` with picolm-core's benchmark defaults (`BenchParams::default()`: the prompt and generation
/// lengths, thread counts, repetitions, batch and KV type of `picolm bench` without options).
/// PICOLM_ERR_NULL_ARG for NULL.
///
/// # Safety
/// `params` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_bench_params_default(params: *mut picolm_bench_params) -> picolm_result {
    guard(|| {
        if params.is_null() {
            return Err(Failure::null("params"));
        }
        let d = BenchParams::default();
        let threads = default_bench_threads();
        let p = picolm_bench_params {
            struct_size: std::mem::size_of::<picolm_bench_params>(),
            n_prompt: d.n_prompt as u32,
            n_gen: d.n_gen as u32,
            threads: threads.as_ptr(),
            n_threads_list: threads.len(),
            repetitions: d.repetitions as u32,
            n_batch: d.n_batch as u32,
            stream_weights: d.model.stream_weights,
            kv_type: kv_type_code(d.kv_type),
            bandwidth: d.bandwidth,
        };
        // SAFETY: non-NULL writable (caller contract).
        unsafe { params.write(p) };
        Ok(())
    })
}

/// The core settings of a C `picolm_bench_params`, checked.
///
/// # Safety
/// `p.threads` NULL or `p.n_threads_list` readable entries.
unsafe fn bench_params(p: &picolm_bench_params) -> Result<BenchParams, Failure> {
    let threads: Vec<usize> = if p.n_threads_list == 0 {
        Vec::new()
    } else if p.threads.is_null() {
        return Err(Failure::null("params.threads"));
    } else {
        // SAFETY: `n_threads_list` readable entries (caller contract).
        unsafe { std::slice::from_raw_parts(p.threads, p.n_threads_list) }.iter().map(|&t| t as usize).collect()
    };
    if p.n_batch == 0 {
        return Err(Failure::invalid("picolm_bench_params.n_batch must be at least 1"));
    }
    Ok(BenchParams {
        n_prompt: p.n_prompt as usize,
        n_gen: p.n_gen as usize,
        threads,
        repetitions: p.repetitions as usize,
        n_batch: p.n_batch as usize,
        model: ModelParams { stream_weights: p.stream_weights, ..Default::default() },
        kv_type: kv_type_arg(p.kv_type, "picolm_bench_params.kv_type")?,
        bandwidth: p.bandwidth,
    })
}

/// Runs the benchmark on the model file at `path` and writes the report to `buf` (NUL-terminated): a JSON object
/// when `json`, else a table. `params` may be NULL for the defaults; a wrong `struct_size`, an `n_batch` of 0 or
/// an unknown `kv_type` is PICOLM_ERR_INVALID_ARG (checked before any work). `*needed` receives the bytes needed; call again with a larger buffer on
/// PICOLM_ERR_BUFFER_TOO_SMALL (the benchmark runs again). PICOLM_ERR_UNSUPPORTED (after those checks) in a library
/// built without the `bench` feature (see `picolm_features`).
///
/// # Safety
/// `path` NUL-terminated; `params` NULL or valid with `threads` readable; `buf` NULL or `cap` writable; `needed` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_bench(
    path: *const libc::c_char,
    params: *const picolm_bench_params,
    json: bool,
    buf: *mut libc::c_char,
    cap: usize,
    needed: *mut usize,
) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let path = unsafe { cstr_arg(path, "path") }?;
        // SAFETY: caller contract of `params`.
        let p = unsafe { read_params(params, "picolm_bench_params", picolm_bench_params_default) }?;
        // SAFETY: `threads` readable (caller contract of `params`).
        let bp = unsafe { bench_params(&p) }?;
        #[cfg(not(feature = "bench"))]
        return Err({
            let _ = (path, bp, json, buf, cap, needed);
            Failure::unsupported("bench", "picolm_bench")
        });
        #[cfg(feature = "bench")]
        {
            let report = picolm_core::bench::run_bench(std::path::Path::new(path), &bp, &mut |_| {})?;
            let text = if json { report.to_json() } else { report.to_table() };
            // SAFETY: caller contract for buf/cap/needed.
            unsafe { crate::marshal::write_out(text.as_bytes(), buf, cap, needed) }
        }
    })
}

/// Quantizes the GGUF model at `src_path` into `dst_path` (both NUL-terminated paths). `type_name` is one of
/// F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K Q4_K_M Q5_K_M (case-insensitive); tensor types
/// follow llama.cpp's rules (norms F32, output Q6_K, `_M` mixes, fallbacks for rows that are not whole K blocks).
/// `bytes_in` / `bytes_out` (may be NULL) receive the tensor data sizes. Uses all CPUs. PICOLM_ERR_UNSUPPORTED in a
/// library built without the `quantize` feature (see `picolm_features`).
///
/// # Safety
/// Strings NUL-terminated; out-parameters NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_model_quantize(
    src_path: *const libc::c_char,
    dst_path: *const libc::c_char,
    type_name: *const libc::c_char,
    bytes_in: *mut u64,
    bytes_out: *mut u64,
) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let src = unsafe { cstr_arg(src_path, "src_path") }?;
        let dst = unsafe { cstr_arg(dst_path, "dst_path") }?;
        let ty = unsafe { cstr_arg(type_name, "type_name") }?;
        #[cfg(not(feature = "quantize"))]
        return Err({
            let _ = (src, dst, ty, bytes_in, bytes_out);
            Failure::unsupported("quantize", "picolm_model_quantize")
        });
        #[cfg(feature = "quantize")]
        {
            let scheme = picolm_core::quantize::QuantScheme::parse(ty)?;
            if std::fs::canonicalize(src).ok().is_some_and(|a| std::fs::canonicalize(dst).ok() == Some(a)) {
                return Err(Failure::invalid("the output path is the input file"));
            }
            let r = picolm_core::quantize::quantize_file(src, dst, scheme, &mut |_, _| {})?;
            // SAFETY: NULL or writable out-parameters.
            unsafe {
                if !bytes_in.is_null() {
                    *bytes_in = r.bytes_in;
                }
                if !bytes_out.is_null() {
                    *bytes_out = r.bytes_out;
                }
            }
            Ok(())
        }
    })
}
