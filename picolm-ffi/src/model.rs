//! `picolm_model`: loading a GGUF model and reading its metadata.

use std::sync::Arc;

use picolm_core::model::{KvType, Model, ModelParams};

use crate::error::{read_params, cstr_arg, guard, picolm_result, write_out, Failure};
use crate::log::{log, picolm_log_level};

/// Storage format of a session's KV cache.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum picolm_kv_type {
    /// 16-bit floats (default).
    PICOLM_KV_F16 = 0,
    /// Q8_0 blocks (about 53% of F16's size).
    PICOLM_KV_Q8_0 = 1,
}

/// Load options. Initialise with `picolm_model_params_default`, then change fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct picolm_model_params {
    /// Must be `sizeof(picolm_model_params)` (set by `picolm_model_params_default`).
    pub struct_size: usize,
    /// Compute threads (0 = one per CPU). More than the CPUs available to the process (`picolm_cpu_count`) is
    /// clamped to them, with a PICOLM_LOG_WARN message; `picolm_model_get_info` reports the threads used.
    pub n_threads: u32,
    /// Largest context of any session (0 = the model's training context, capped at 4096).
    pub n_ctx: u32,
    /// Prompt tokens evaluated per batch (default 64).
    pub n_batch: u32,
    /// Read weights through a memory map (the only mode; `false` is refused with PICOLM_ERR_UNSUPPORTED).
    pub use_mmap: bool,
    /// Streaming mode for boards with less RAM than the model: weights are paged in slab by slab with
    /// read-ahead and released after use.
    pub stream_weights: bool,
    /// Slab size for streaming mode in bytes (0 = 4 MiB).
    pub stream_slab_bytes: u64,
    /// KV cache format of the sessions of this model.
    pub kv_type: picolm_kv_type,
}

/// An opaque loaded model. Thread-safe: share it between threads and sessions.
pub struct picolm_model {
    pub(crate) model: Arc<Model>,
    pub(crate) kv_type: KvType,
    pub(crate) n_batch: usize,
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
        let p = picolm_model_params {
            struct_size: std::mem::size_of::<picolm_model_params>(),
            n_threads: 0,
            n_ctx: 0,
            n_batch: 64,
            use_mmap: true,
            stream_weights: false,
            stream_slab_bytes: 0,
            kv_type: picolm_kv_type::PICOLM_KV_F16,
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
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        // SAFETY: non-NULL out-parameter.
        unsafe { *out = std::ptr::null_mut() };
        // SAFETY: documented contract of `path`.
        let path = unsafe { cstr_arg(path, "path") }?;
        // SAFETY: documented contract of `params`.
        let p = unsafe { read_params(params, "picolm_model_params", picolm_model_params_default) }?;
        if !p.use_mmap {
            return Err(Failure::new(picolm_result::PICOLM_ERR_UNSUPPORTED, "use_mmap = false is not supported"));
        }
        if p.n_batch == 0 {
            return Err(Failure::invalid("n_batch must be at least 1"));
        }
        let kv_type = match p.kv_type {
            picolm_kv_type::PICOLM_KV_F16 => KvType::F16,
            picolm_kv_type::PICOLM_KV_Q8_0 => KvType::Q8_0,
        };
        let mp = ModelParams {
            n_ctx: p.n_ctx as usize,
            n_threads: p.n_threads as usize,
            stream_weights: p.stream_weights,
            stream_slab_bytes: p.stream_slab_bytes as usize,
        };
        let model = Model::load(path, &mp)?;
        if let Some(warning) = model.thread_count().warning() {
            log(picolm_log_level::PICOLM_LOG_WARN, &warning);
        }
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
        let handle = Box::new(picolm_model { model: Arc::new(model), kv_type, n_batch: p.n_batch as usize });
        // SAFETY: non-NULL out-parameter.
        unsafe { *out = Box::into_raw(handle) };
        Ok(())
    })
}

/// Releases a model. NULL is a no-op. Sessions created from the model keep it alive until they are freed.
///
/// # Safety
/// `model` must be NULL or a pointer from `picolm_model_load` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn picolm_model_free(model: *mut picolm_model) {
    if !model.is_null() {
        // SAFETY: pointer from Box::into_raw in picolm_model_load, freed once (caller contract).
        drop(unsafe { Box::from_raw(model) });
    }
}

/// Borrows the model behind a handle.
///
/// # Safety
/// `model` must be NULL or a live pointer from `picolm_model_load`.
pub(crate) unsafe fn model_ref<'a>(model: *const picolm_model) -> Result<&'a picolm_model, Failure> {
    // SAFETY: caller contract.
    unsafe { model.as_ref() }.ok_or_else(|| Failure::null("model"))
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
        let m = unsafe { model_ref(model) }?;
        let key = unsafe { cstr_arg(key, "key") }?;
        let v = m
            .model
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
pub unsafe extern "C" fn picolm_model_get_info(model: *const picolm_model, info: *mut picolm_model_info) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let m = unsafe { model_ref(model) }?;
        if info.is_null() {
            return Err(Failure::null("info"));
        }
        let c = m.model.config();
        let i = picolm_model_info {
            n_vocab: c.n_vocab as u32,
            n_ctx: m.model.n_ctx() as u32,
            n_ctx_train: c.n_ctx_train as u32,
            n_embd: c.n_embd as u32,
            n_layer: c.n_layer as u32,
            n_head: c.n_head as u32,
            n_head_kv: c.n_head_kv as u32,
            n_threads: m.model.n_threads() as u32,
            file_bytes: m.model.file().len(),
        };
        // SAFETY: non-NULL writable out-parameter.
        unsafe { info.write(i) };
        Ok(())
    })
}
