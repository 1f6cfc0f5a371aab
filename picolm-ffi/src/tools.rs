//! Whole-model tools behind the `picolm` command's subcommands: perplexity and the benchmark; and the JSON
//! constraint used by generation.

use std::sync::Arc;

use picolm_core::bench::{run_bench, BenchParams};
use picolm_core::grammar::{Grammar, JsonConstraint, JsonMode};
use picolm_core::model::{KvType, Model, ModelParams};
use picolm_core::perplexity::perplexity;
use picolm_core::TokenConstraint;

use crate::error::{cstr_arg, guard, picolm_result, str_arg, write_out, Failure};
use crate::model::{model_ref, picolm_model};

/// Reads `picolm_generate_params.json_mode` (an integer from C): `None` for off.
pub(crate) fn json_mode_arg(value: i32) -> Result<Option<JsonMode>, Failure> {
    use crate::generate::picolm_json_mode::*;
    match value {
        v if v == PICOLM_JSON_OFF as i32 => Ok(None),
        v if v == PICOLM_JSON_OBJECT as i32 => Ok(Some(JsonMode::Object)),
        v if v == PICOLM_JSON_VALUE as i32 => Ok(Some(JsonMode::Value)),
        v => Err(Failure::invalid(format!(
            "params.json_mode = {v} is not a picolm_json_mode (0 PICOLM_JSON_OFF, 1 PICOLM_JSON_OBJECT, 2 PICOLM_JSON_VALUE)"
        ))),
    }
}

/// The grammar constraint for the JSON options of a generation (none when both are off): a JSON Schema when
/// `schema` is non-NULL, else the JSON mode's grammar.
pub(crate) fn constraint_for(
    model: &Arc<Model>,
    json_mode: i32,
    schema: *const libc::c_char,
) -> Result<Option<Box<dyn TokenConstraint>>, Failure> {
    let mode = json_mode_arg(json_mode)?;
    let grammar = if !schema.is_null() {
        // SAFETY: the caller passes a NUL-terminated schema (documented on `picolm_generate_params`).
        let text = unsafe { cstr_arg(schema, "params.json_schema") }?;
        Grammar::from_schema_str(text).map_err(picolm_core::Error::from)?
    } else if let Some(mode) = mode {
        Grammar::for_mode(mode)
    } else {
        return Ok(None);
    };
    Ok(Some(Box::new(JsonConstraint::new(Arc::new(grammar), model.grammar_vocab()))))
}

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
        let m = unsafe { model_ref(model) }?;
        let text = unsafe { str_arg(text, text_len, "text") }?;
        if ppl.is_null() {
            return Err(Failure::null("ppl"));
        }
        let chunks = (max_chunks > 0).then_some(max_chunks as usize);
        let r = perplexity(&m.model, text, n_ctx as usize, (n_batch as usize).max(1), chunks, &mut |_, _, _| {})?;
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

/// Benchmark settings (llama-bench style).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct picolm_bench_params {
    /// Prompt length of the prefill test (0 = skip).
    pub n_prompt: u32,
    /// Generated tokens of the decode test (0 = skip).
    pub n_gen: u32,
    /// Thread counts to test (`n_threads_list` entries).
    pub threads: *const u32,
    /// Number of thread counts.
    pub n_threads_list: usize,
    /// Timed repetitions per test.
    pub repetitions: u32,
    /// Prefill batch size.
    pub n_batch: u32,
    /// Streaming mode.
    pub stream_weights: bool,
    /// Use a Q8_0 KV cache instead of F16.
    pub kv_q8_0: bool,
    /// Also measure the read bandwidth (1 thread and each thread count) and report decode as a fraction of the
    /// bandwidth ceiling.
    pub bandwidth: bool,
}

/// Runs the benchmark on the model file at `path` and writes the report to `buf` (NUL-terminated): a JSON object
/// when `json`, else a table. `*needed` receives the bytes needed; call again with a larger buffer on
/// PICOLM_ERR_BUFFER_TOO_SMALL (the benchmark runs again).
///
/// # Safety
/// `path` NUL-terminated; `params` valid with `threads` readable; `buf` NULL or `cap` writable; `needed` NULL or
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
        let p = unsafe { params.as_ref() }.ok_or_else(|| Failure::null("params"))?;
        let threads: Vec<usize> = if p.n_threads_list == 0 {
            Vec::new()
        } else if p.threads.is_null() {
            return Err(Failure::null("params.threads"));
        } else {
            // SAFETY: `n_threads_list` readable entries (caller contract).
            unsafe { std::slice::from_raw_parts(p.threads, p.n_threads_list) }.iter().map(|&t| t as usize).collect()
        };
        let bp = BenchParams {
            n_prompt: p.n_prompt as usize,
            n_gen: p.n_gen as usize,
            threads,
            repetitions: p.repetitions as usize,
            n_batch: (p.n_batch as usize).max(1),
            model: ModelParams { stream_weights: p.stream_weights, ..Default::default() },
            kv_type: if p.kv_q8_0 { KvType::Q8_0 } else { KvType::F16 },
            bandwidth: p.bandwidth,
        };
        let report = run_bench(std::path::Path::new(path), &bp, &mut |_| {})?;
        let text = if json { report.to_json() } else { report.to_table() };
        // SAFETY: caller contract for buf/cap/needed.
        unsafe { write_out(text.as_bytes(), buf, cap, needed) }
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
