//! Tokenization and detokenization into caller buffers.

use crate::boundary::{guard, picolm_result, Failure};
use crate::handle::Handle;
use crate::marshal::{str_arg, write_ids, write_out};
use crate::model::picolm_model;

/// Tokenizes `text_len` bytes of UTF-8 `text`. With `add_special` BOS/EOS are added as the model asks; with
/// `parse_special` control-token text (e.g. `<|im_start|>`) becomes those tokens. Writes up to `cap` ids to
/// `out_ids`; `*n_out` receives the number of ids (also when the buffer is too small, in which case nothing is
/// written and PICOLM_ERR_BUFFER_TOO_SMALL is returned; with `out_ids = NULL, cap = 0` that is a size query,
/// which is not logged as an error). Thread-safe.
///
/// # Safety
/// `model` live; `text` `text_len` readable bytes; `out_ids` NULL or `cap` writable ids; `n_out` writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_tokenize(
    model: *const picolm_model,
    text: *const libc::c_char,
    text_len: usize,
    add_special: bool,
    parse_special: bool,
    out_ids: *mut u32,
    cap: usize,
    n_out: *mut usize,
) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract for each pointer.
        let m = unsafe { picolm_model::as_ref(model) }?;
        let text = unsafe { str_arg(text, text_len, "text") }?;
        let ids = m.tokenizer().encode(text, add_special, parse_special);
        // SAFETY: caller contract for out_ids/cap/n_out.
        unsafe { write_ids(&ids, out_ids, cap, n_out, "token ids") }
    })
}

/// Converts `n_ids` token ids back to text: writes the bytes and a NUL to `buf`; `*needed` receives the bytes
/// needed including the NUL. Control tokens are rendered only with `unparse_special`. Ids outside the vocabulary
/// are PICOLM_ERR_INVALID_ARG. The text may contain partial UTF-8 when the ids end mid-character. Thread-safe.
///
/// # Safety
/// `model` live; `ids` `n_ids` readable ids; `buf` NULL or `cap` writable bytes; `needed` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn picolm_detokenize(
    model: *const picolm_model,
    ids: *const u32,
    n_ids: usize,
    unparse_special: bool,
    buf: *mut libc::c_char,
    cap: usize,
    needed: *mut usize,
) -> picolm_result {
    guard(|| {
        // SAFETY: caller contract.
        let m = unsafe { picolm_model::as_ref(model) }?;
        let ids: &[u32] = if n_ids == 0 {
            &[]
        } else if ids.is_null() {
            return Err(Failure::null("ids"));
        } else {
            // SAFETY: `n_ids` readable ids (caller contract).
            unsafe { std::slice::from_raw_parts(ids, n_ids) }
        };
        let n_vocab = m.tokenizer().n_vocab();
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= n_vocab) {
            return Err(Failure::invalid(format!("token id {bad} is outside the vocabulary of {n_vocab}")));
        }
        let bytes = m.tokenizer().decode(ids, unparse_special);
        // SAFETY: caller contract for buf/cap/needed.
        unsafe { write_out(&bytes, buf, cap, needed) }
    })
}
