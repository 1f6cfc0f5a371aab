//! Saving a session's cached tokens, KV cache and logits as a state file and restoring them (the `state`
//! feature): the format is [`crate::state_file`], the atomic write [`fs_safety::replace_atomically`].

use std::io::{BufReader, Read, Write};
use std::path::Path;

use super::Session;
use crate::error::Error;
use crate::fs_safety::{self, ReplacePolicy};
use crate::model::kv_cache::KvPart;
use crate::state_file::{self as state, HashingReader, HashingWriter, StateError, StateHeader};

impl Session {
    /// Writes the cached tokens, their keys and values and the current logits in the state format of
    /// [`crate::state_file`] (version 2): tied to this model's fingerprint, KV type and shape, and protected by a checksum.
    pub fn save_state(&self, w: &mut dyn Write) -> Result<(), Error> {
        let cfg = self.model.config();
        let n = self.tokens.len();
        let logits = if self.has_logits { Some(&self.buf.logits()[..cfg.n_vocab]) } else { None };
        let mut header = StateHeader {
            fingerprint: *self.model.fingerprint(),
            kv_type_id: self.kv.kv_type().ggml_type().id(),
            n_layer: cfg.n_layer as u32,
            kv_dim: cfg.kv_dim() as u32,
            n_vocab: cfg.n_vocab as u32,
            n_tokens: n as u64,
            flags: if logits.is_some() { state::FLAG_LOGITS } else { 0 },
            payload_bytes: 0,
        };
        header.payload_bytes = header
            .expected_payload(self.kv.row_bytes() as u64)
            .expect("the payload of a live cache fits in memory, so in u64");
        let mut w = HashingWriter::new(w);
        w.put(&header.encode())?;
        let tokens: Vec<u8> = self.tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
        w.put(&tokens)?;
        for part in [KvPart::Key, KvPart::Value] {
            for l in 0..cfg.n_layer {
                w.put(self.kv.layer_bytes(part, l, n))?;
            }
        }
        if let Some(logits) = logits {
            let bytes: Vec<u8> = logits.iter().flat_map(|x| x.to_le_bytes()).collect();
            w.put(&bytes)?;
        }
        w.finish()?;
        Ok(())
    }

    /// Restores a state written by [`Session::save_state`] from the same model file into a session with the same
    /// KV type and at least as much context. Anything else (another model, a damaged, truncated or extended file)
    /// is refused with [`Error::InvalidState`] naming the problem ([`Error::ContextOverflow`] when the state holds
    /// more tokens than the context). On error the session is left empty (never half-loaded).
    pub fn load_state(&mut self, r: &mut dyn Read) -> Result<(), Error> {
        self.reset();
        let res = self.load_state_inner(r);
        if res.is_err() {
            self.reset();
        }
        res
    }

    fn load_state_inner(&mut self, r: &mut dyn Read) -> Result<(), Error> {
        let mut r = HashingReader::new(r);
        let mut raw = [0u8; state::HEADER_BYTES];
        raw[..8].copy_from_slice(&r.magic()?);
        r.take(&mut raw[8..], "header")?;
        let h = StateHeader::decode(&raw);
        let cfg = self.model.config().clone();
        if h.fingerprint != *self.model.fingerprint() {
            return Err(StateError::OtherModel { saved: h.fingerprint, current: *self.model.fingerprint() }.into());
        }
        let own_kv = self.kv.kv_type();
        if h.kv_type_id != own_kv.ggml_type().id() {
            let saved = state::kv_type_name(h.kv_type_id);
            return Err(StateError::KvTypeMismatch { saved, current: own_kv.name() }.into());
        }
        let shape = [cfg.n_layer as u32, cfg.kv_dim() as u32, cfg.n_vocab as u32];
        if [h.n_layer, h.kv_dim, h.n_vocab] != shape {
            return Err(StateError::ShapeMismatch { saved: [h.n_layer, h.kv_dim, h.n_vocab], current: shape }.into());
        }
        if h.flags & !state::FLAG_LOGITS != 0 {
            return Err(StateError::UnknownFlags(h.flags).into());
        }
        let expected = h.expected_payload(self.kv.row_bytes() as u64);
        if expected != Some(h.payload_bytes) {
            let expected = expected.unwrap_or(u64::MAX);
            return Err(StateError::LengthMismatch { declared: h.payload_bytes, expected, n_tokens: h.n_tokens }.into());
        }
        if h.n_tokens > self.n_ctx() as u64 {
            return Err(Error::ContextOverflow { needed: h.n_tokens as usize, n_ctx: self.n_ctx() });
        }
        let n = h.n_tokens as usize;
        let mut token_bytes = crate::alloc::try_filled(n * 4, 0u8, "state token list")?;
        r.take(&mut token_bytes, "token list")?;
        for (part, what) in [(KvPart::Key, "keys"), (KvPart::Value, "values")] {
            for l in 0..cfg.n_layer {
                r.take(self.kv.layer_bytes_mut(part, l, n), what)?;
            }
        }
        let has_logits = h.flags & state::FLAG_LOGITS != 0;
        let mut logits = crate::alloc::try_filled(if has_logits { cfg.n_vocab * 4 } else { 0 }, 0u8, "state logits")?;
        r.take(&mut logits, "logits")?;
        r.finish()?;
        let tokens: Vec<u32> =
            token_bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if let Some((pos, &id)) = tokens.iter().enumerate().find(|(_, &t)| t as usize >= cfg.n_vocab) {
            return Err(StateError::BadToken { id, pos, n_vocab: cfg.n_vocab }.into());
        }
        if has_logits {
            let dst = self.buf.set_logits_len(cfg.n_vocab)?;
            for (d, s) in dst.iter_mut().zip(logits.chunks_exact(4)) {
                *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            }
        }
        self.tokens = tokens;
        self.has_logits = has_logits;
        Ok(())
    }

    /// Saves the state to the file `path`, atomically, by the rules of [`fs_safety::replace_atomically`]: a new
    /// path is created; an existing file is replaced only if it is a regular file that is empty or a PicoLM state
    /// (of any version); anything else (a model, a text, a FIFO, a device, a directory) is refused with
    /// [`Error::File`] and left untouched. A symbolic link is written through to its existing target.
    pub fn save_state_file(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        let policy = ReplacePolicy { prefix_len: 8, is_own: &state::may_replace };
        fs_safety::replace_atomically(path, policy, |w| self.save_state(w))
    }

    /// Loads a state from the file `path` (see [`Session::load_state`]). Only regular files are opened: a FIFO,
    /// socket, device or directory is refused without blocking ([`Error::File`]).
    pub fn load_state_file(&mut self, path: impl AsRef<Path>) -> Result<(), Error> {
        self.reset();
        let file = fs_safety::open_regular(path)?;
        self.load_state(&mut BufReader::new(file))
    }
}

/// Checks, without writing, that [`Session::save_state_file`] may write `path`: it does not exist, or it is (a
/// symbolic link to) a regular file that is empty or a PicoLM state. Returns the error the save would return.
/// Front ends call it before a long generation whose state they will save.
pub fn check_state_path(path: impl AsRef<Path>) -> Result<(), Error> {
    let policy = ReplacePolicy { prefix_len: 8, is_own: &state::may_replace };
    Ok(fs_safety::check_replaceable(path, policy)?)
}
