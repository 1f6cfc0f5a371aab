//! `picolm_model`: loading a GGUF model and reading its metadata.

use std::sync::Arc;

use picolm_core::model::{Model, ModelParams, RssBudget};
use picolm_core::session::SessionParams;

use crate::boundary::{guard, picolm_result, Failure};
use crate::handle::Handle;
use crate::log::{log, log_load_warnings, picolm_log_level};
use crate::marshal::{cstr_arg, read_params, write_ids, write_out};

/// The context a model gets when `picolm_model_params.n_ctx` is 0: its training context, capped at this many
/// positions (the same default as the CLI and the Python package: they all take it from picolm-core).
pub const PICOLM_DEFAULT_N_CTX_CAP: u32 = 4096;
const _: () = assert!(PICOLM_DEFAULT_N_CTX_CAP as usize == picolm_core::model::DEFAULT_MAX_CTX);

/// Load options. Initialise with `picolm_model_params_default`, then change fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct picolm_model_params {
    /// Must be `sizeof(picolm_model_params)` (set by `picolm_model_params_default`).
    pub struct_size: usize,
    /// Compute threads (0 = one per CPU). More than the CPUs available to the process (`picolm_cpu_count`) is
    /// clamped to them, with a PICOLM_LOG_WARN message; `picolm_model_get_info` reports the threads used.
    pub n_threads: u32,
    /// Largest context of any session (0 = the model's training context, capped at `PICOLM_DEFAULT_N_CTX_CAP`).
    /// A context beyond the training context is accepted with a warning on the log callback.
    pub n_ctx: u32,
    /// Read weights through a memory map (the only mode; `false` is refused with PICOLM_ERR_UNSUPPORTED).
    pub use_mmap: bool,
    /// Streaming mode for boards with less RAM than the model: the file is not mapped; the weights are read
    /// into two reused slabs (one read ahead by a thread while the other computes) and dropped from the page
    /// cache, so weight memory is two slabs whatever the model size.
    pub stream_weights: bool,
    /// Slab size for streaming mode in bytes (0 = 4 MiB; with `max_rss_bytes`, a cap on the slab the budget picks,
    /// 0 = 32 MiB).
    pub stream_slab_bytes: u64,
    /// A bound on the process's resident memory in bytes (0 = none), for the model and one session of `n_ctx`
    /// positions with the default session settings (`picolm_session_params_default`: its `kv_type` and
    /// `n_batch`; a Q8_0 KV cache needs less, a larger `n_batch` more, which `picolm_session_new` reports with a
    /// PICOLM_LOG_WARN message): the model is mapped when it fits, streamed otherwise with slabs sized to fit
    /// and as many weights kept resident (read once at load) as the rest holds; when even streaming cannot fit,
    /// loading fails with PICOLM_ERR_OUT_OF_MEMORY and a message saying how many MiB are needed.
    pub max_rss_bytes: u64,
}

/// An opaque loaded model. Thread-safe: share it between threads and sessions.
pub struct picolm_model {
    _private: [u8; 0],
}

impl Handle for picolm_model {
    type Inner = Arc<Model>;
    const ARG: &'static str = "model";
}

/// Fills `params` with the defaults. Returns PICOLM_ERR_NULL_ARG for NULL.
///
/// # Safety
/// `params` must be NULL or point to a writable `picolm_model_params`.
#[no_mangle]
pub unsafe extern "C" fn picolm_model_params_default(params: *mut picolm_model_params) -> picolm_result {
    guard(|| {
        if params.is_null() {
            return Err(Failure::null("params"));
        }
        let d = ModelParams::default();
        let p = picolm_model_params {
            struct_size: std::mem::size_of::<picolm_model_params>(),
            n_threads: d.n_threads as u32,
            n_ctx: d.n_ctx as u32,
            use_mmap: true,
            stream_weights: d.stream_weights,
            stream_slab_bytes: d.stream_slab_bytes as u64,
            max_rss_bytes: d.rss_budget.map_or(0, |b| b.max_rss_bytes),
        };
        // SAFETY: non-NULL, caller-provided writable struct.
        unsafe { params.write(p) };
        Ok(())
    })
}

/// CPUs this process may run on (its CPU affinity and cgroup CPU quota respected): what `n_threads = 0` uses and
/// the most threads a model starts. At least 1. Thread-safe.
#[no_mangle]
pub extern "C" fn picolm_cpu_count() -> u32 {
    picolm_core::compute::pool::available_cpus().min(u32::MAX as usize) as u32
}

/// Loads a GGUF model. `path` is a NUL-terminated UTF-8 path to a regular file (a FIFO, device or directory is
/// refused with PICOLM_ERR_IO without blocking); `params` may be NULL for the defaults. On success
/// `*out` receives a model to release with `picolm_model_free`; on failure `*out` is set to NULL.
///
/// # Safety
/// `path` must be a NUL-terminated string; `params` NULL or a valid struct; `out` a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn picolm_model_load(
    path: *const libc::c_char,
    params: *const picolm_model_params,
    out: *mut *mut picolm_model,
) -> picolm_result {
    guard(|| {
        // SAFETY: `out` NULL or writable (caller contract).
        unsafe { picolm_model::clear_out(out) }?;
        // SAFETY: documented contract of `path`.
        let path = unsafe { cstr_arg(path, "path") }?;
        // SAFETY: documented contract of `params`.
        let p = unsafe { read_params(params, "picolm_model_params", picolm_model_params_default) }?;
        if !p.use_mmap {
            return Err(Failure::new(picolm_result::PICOLM_ERR_UNSUPPORTED, "use_mmap = false is not supported"));
        }
        // The budget is planned for one session with the default session settings (see `max_rss_bytes`).
        let session = SessionParams::default();
        let mp = ModelParams {
            n_ctx: p.n_ctx as usize,
            n_threads: p.n_threads as usize,
            stream_weights: p.stream_weights,
            stream_slab_bytes: usize::try_from(p.stream_slab_bytes)
                .map_err(|_| Failure::invalid(format!("stream_slab_bytes {} is too large", p.stream_slab_bytes)))?,
            rss_budget: (p.max_rss_bytes > 0).then_some(RssBudget {
                max_rss_bytes: p.max_rss_bytes,
                kv_type: session.kv_type,
                n_batch: session.n_batch,
            }),
            kernel: None,
        };
        let model = Model::load(path, &mp)?;
        log(
            picolm_log_level::PICOLM_LOG_INFO,
            &format!(
                "loaded {path}: {} layers, {} tokens, context {}, {} threads",
                model.config().n_layer,
                model.config().n_vocab,
                model.n_ctx(),
                model.n_threads()
            ),
        );
        log_load_warnings(&model);
        // SAFETY: `out` checked writable above.
        unsafe { picolm_model::write_out(out, Arc::new(model)) };
        Ok(())
    })
}

/// Releases a model. NULL is a no-op. Sessions created from the model keep it alive until they are freed.
///
/// # Safety
/// `model` must be NULL or a pointer from `picolm_model_load` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn picolm_model_free(model: *mut picolm_model) {
    // SAFETY: caller contract.
    unsafe { picolm_model::free(model) }
}

/// Copies the metadata value of `key` (NUL-terminated) as text into `buf` (NUL-terminated; arrays are summarised
/// as `type[length]`). `*needed` receives the bytes needed including the NUL. Returns PICOLM_ERR_NOT_FOUND when
/// the key is absent, PICOLM_ERR_BUFFER_TOO_SMALL when `cap` is too small. Thread-safe.
///
/// # Safety
/// `model` a live model; `key` NUL-terminated; `buf` NULL or `cap` writable bytes; `needed` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_model_meta(
    model: *const picolm_model,
    key: *const libc::c_char,
    buf: *mut libc::c_char,
    cap: usize,
    needed: *mut usize,
) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract for each pointer.
        let m = unsafe { picolm_model::as_ref(model) }?;
        let key = unsafe { cstr_arg(key, "key") }?;
        let v = m
            .file()
            .get(key)
            .ok_or_else(|| Failure::new(picolm_result::PICOLM_ERR_NOT_FOUND, format!("no metadata key {key:?}")))?;
        // SAFETY: caller contract for buf/cap/needed.
        unsafe { write_out(v.display_short().as_bytes(), buf, cap, needed) }
    })
}

/// Numbers describing a loaded model.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct picolm_model_info {
    /// Vocabulary size.
    pub n_vocab: u32,
    /// Largest context a session may use.
    pub n_ctx: u32,
    /// Context length the model was trained with.
    pub n_ctx_train: u32,
    /// Width of the residual stream.
    pub n_embd: u32,
    /// Transformer blocks.
    pub n_layer: u32,
    /// Query heads.
    pub n_head: u32,
    /// Key/value heads.
    pub n_head_kv: u32,
    /// Compute threads.
    pub n_threads: u32,
    /// Model file size in bytes.
    pub file_bytes: u64,
}

/// Fills `*info` with the model's shape. Thread-safe.
///
/// # Safety
/// `model` a live model, `info` a writable struct.
#[no_mangle]
pub unsafe extern "C" fn picolm_model_get_info(
    model: *const picolm_model,
    info: *mut picolm_model_info,
) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let m = unsafe { picolm_model::as_ref(model) }?;
        if info.is_null() {
            return Err(Failure::null("info"));
        }
        let c = m.config();
        let i = picolm_model_info {
            n_vocab: c.n_vocab as u32,
            n_ctx: m.n_ctx() as u32,
            n_ctx_train: c.n_ctx_train as u32,
            n_embd: c.n_embd as u32,
            n_layer: c.n_layer as u32,
            n_head: c.n_head as u32,
            n_head_kv: c.n_head_kv as u32,
            n_threads: m.n_threads() as u32,
            file_bytes: m.file().len(),
        };
        // SAFETY: non-NULL writable out-parameter.
        unsafe { info.write(i) };
        Ok(())
    })
}

/// Writes the beginning-of-sequence token id to `*id`. PICOLM_ERR_NOT_FOUND when the vocabulary has none.
/// Thread-safe.
///
/// # Safety
/// `model` a live model; `id` writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_model_bos(model: *const picolm_model, id: *mut u32) -> picolm_result {
    // SAFETY: caller contract.
    guard(|| unsafe { write_token(model, id, "BOS", |m| m.tokenizer().bos_id()) })
}

/// Writes the end-of-sequence token id to `*id`. PICOLM_ERR_NOT_FOUND when the vocabulary has none. Thread-safe.
///
/// # Safety
/// `model` a live model; `id` writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_model_eos(model: *const picolm_model, id: *mut u32) -> picolm_result {
    // SAFETY: caller contract.
    guard(|| unsafe { write_token(model, id, "EOS", |m| m.tokenizer().eos_id()) })
}

/// # Safety
/// `model` live or NULL; `id` writable or NULL.
unsafe fn write_token(
    model: *const picolm_model,
    id: *mut u32,
    what: &str,
    get: impl FnOnce(&Model) -> Option<u32>,
) -> Result<(), Failure> {
    // SAFETY: caller contract.
    let m = unsafe { picolm_model::as_ref(model) }?;
    if id.is_null() {
        return Err(Failure::null("id"));
    }
    let t = get(m).ok_or_else(|| {
        Failure::new(picolm_result::PICOLM_ERR_NOT_FOUND, format!("the vocabulary has no {what} token"))
    })?;
    // SAFETY: non-NULL writable out-parameter.
    unsafe { *id = t };
    Ok(())
}

/// The end-of-generation token ids (EOS, end-of-turn, ...): up to `cap` ids go to `ids`, `*n_out` receives how
/// many there are. PICOLM_ERR_BUFFER_TOO_SMALL (nothing written) when `cap` is smaller; `ids = NULL, cap = 0` is
/// a size query. Thread-safe.
///
/// # Safety
/// `model` a live model; `ids` NULL or `cap` writable ids; `n_out` writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_model_eog_ids(
    model: *const picolm_model,
    ids: *mut u32,
    cap: usize,
    n_out: *mut usize,
) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let m = unsafe { picolm_model::as_ref(model) }?;
        // SAFETY: caller contract for ids/cap/n_out.
        unsafe { write_ids(m.tokenizer().eog_ids(), ids, cap, n_out, "end-of-generation ids") }
    })
}

/// Writes the number of metadata keys of the model file to `*n_out`. Thread-safe.
///
/// # Safety
/// `model` a live model; `n_out` writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_model_meta_count(model: *const picolm_model, n_out: *mut usize) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let m = unsafe { picolm_model::as_ref(model) }?;
        if n_out.is_null() {
            return Err(Failure::null("n_out"));
        }
        let n = m.file().metadata().count();
        // SAFETY: non-NULL writable out-parameter.
        unsafe { *n_out = n };
        Ok(())
    })
}

/// Copies metadata key number `index` (in file order, `0 <= index < picolm_model_meta_count`) into `buf`
/// (NUL-terminated); `*needed` receives the bytes needed including the NUL. Read its value with
/// `picolm_model_meta`. PICOLM_ERR_NOT_FOUND when `index` is past the last key; PICOLM_ERR_BUFFER_TOO_SMALL as
/// for `picolm_model_meta`. Thread-safe.
///
/// # Safety
/// `model` a live model; `buf` NULL or `cap` writable bytes; `needed` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_model_meta_key(
    model: *const picolm_model,
    index: usize,
    buf: *mut libc::c_char,
    cap: usize,
    needed: *mut usize,
) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let m = unsafe { picolm_model::as_ref(model) }?;
        let file = m.file();
        let (key, _) = file.metadata().nth(index).ok_or_else(|| {
            let n = file.metadata().count();
            Failure::new(
                picolm_result::PICOLM_ERR_NOT_FOUND,
                format!("metadata key index {index} is past the last key ({n} keys)"),
            )
        })?;
        // SAFETY: caller contract for buf/cap/needed.
        unsafe { write_out(key.as_bytes(), buf, cap, needed) }
    })
}
