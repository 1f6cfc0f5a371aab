//! A conversation with a model: its KV cache, activation buffers and the tokens already evaluated.
//!
//! Sessions reuse their cache: [`Session::sync_prompt`] keeps the longest common prefix of the cached tokens and
//! the new prompt and evaluates only the rest, which is what makes multi-turn chat and the tool-call loop cheap.

use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;

use crate::error::Error;
use crate::fs_safety::{self, ReplacePolicy};
use crate::model::kv_cache::{KvPart, KvType};
use crate::model::{forward, ForwardBuffers, KvCache, Logits, Model, ModelError};
use crate::state_file::{self as state, HashingReader, HashingWriter, StateError, StateHeader};

/// Per-session settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionParams {
    /// Context length in positions (`0` = the model's `n_ctx`); the KV cache is allocated for exactly this.
    pub n_ctx: usize,
    /// Largest number of tokens evaluated in one forward call during prefill.
    pub n_batch: usize,
    /// Storage format of the KV cache.
    pub kv_type: KvType,
}

impl Default for SessionParams {
    fn default() -> Self {
        SessionParams { n_ctx: 0, n_batch: 64, kv_type: KvType::F16 }
    }
}

/// Evaluation state of one conversation.
#[derive(Debug)]
pub struct Session {
    model: Arc<Model>,
    kv: KvCache,
    buf: ForwardBuffers,
    tokens: Vec<u32>,
    has_logits: bool,
}

impl Session {
    /// A fresh session. Fails when `n_ctx` exceeds the model's `n_ctx` or `n_batch` is 0.
    pub fn new(model: Arc<Model>, params: &SessionParams) -> Result<Session, Error> {
        let n_ctx = if params.n_ctx == 0 { model.n_ctx() } else { params.n_ctx };
        if n_ctx > model.n_ctx() {
            return Err(ModelError::InvalidParameter {
                name: "n_ctx".into(),
                value: format!("{n_ctx} (the model was loaded with n_ctx {})", model.n_ctx()),
            }
            .into());
        }
        if params.n_batch == 0 || params.n_batch > 8192 {
            return Err(
                ModelError::InvalidParameter { name: "n_batch".into(), value: params.n_batch.to_string() }.into()
            );
        }
        let cfg = model.config();
        let kv = KvCache::new(params.kv_type, cfg.n_layer, n_ctx, cfg.kv_dim(), cfg.head_dim)?;
        let buf = ForwardBuffers::new(&model, params.n_batch.min(n_ctx))?;
        Ok(Session { model, kv, buf, tokens: Vec::new(), has_logits: false })
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Context length.
    pub fn n_ctx(&self) -> usize {
        self.kv.n_ctx()
    }

    /// Tokens whose keys and values are in the cache, in order.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Bytes of the KV cache.
    pub fn kv_bytes(&self) -> usize {
        self.kv.n_bytes()
    }

    /// Bytes of the activation buffers.
    pub fn scratch_bytes(&self) -> usize {
        self.buf.n_bytes()
    }

    /// Forgets every cached token.
    pub fn reset(&mut self) {
        self.tokens.clear();
        self.has_logits = false;
    }

    /// Keeps only the first `n` cached tokens.
    pub fn truncate(&mut self, n: usize) {
        if n < self.tokens.len() {
            self.tokens.truncate(n);
            self.has_logits = false;
        }
    }

    /// Logits after the last evaluated token (`None` before any evaluation, or after a truncation).
    pub fn logits(&self) -> Option<&[f32]> {
        self.has_logits.then(|| self.buf.logits())
    }

    /// Mutable logits (for masking by a grammar before sampling).
    pub fn logits_mut(&mut self) -> Option<&mut [f32]> {
        if self.has_logits {
            Some(self.buf.logits_mut())
        } else {
            None
        }
    }

    fn check_room(&self, extra: usize) -> Result<(), Error> {
        let needed = self.tokens.len() + extra;
        if needed > self.n_ctx() {
            return Err(Error::ContextOverflow { needed, n_ctx: self.n_ctx() });
        }
        Ok(())
    }

    /// Appends `tokens` after the cached ones, evaluated in batches of `n_batch`; afterwards [`Session::logits`]
    /// holds the logits after the last one. `should_stop` is polled between batches; when it returns true the
    /// evaluation stops early (the tokens evaluated so far stay cached) and `Ok(false)` is returned.
    pub fn eval_with(&mut self, tokens: &[u32], should_stop: &mut dyn FnMut() -> bool) -> Result<bool, Error> {
        self.check_room(tokens.len())?;
        for chunk in tokens.chunks(self.buf.capacity()) {
            if should_stop() {
                return Ok(false);
            }
            let pos = self.tokens.len();
            if let Err(e) = forward(&self.model, &mut self.kv, &mut self.buf, chunk, pos, Logits::Last) {
                // A read error in streaming mode can stop a pass midway: its logits are not to be used.
                self.has_logits = false;
                return Err(e.into());
            }
            self.tokens.extend_from_slice(chunk);
            self.has_logits = true;
        }
        Ok(true)
    }

    /// Appends `tokens` (see [`Session::eval_with`]).
    pub fn eval(&mut self, tokens: &[u32]) -> Result<(), Error> {
        self.eval_with(tokens, &mut || false).map(|_| ())
    }

    /// Appends `tokens` and hands the logits after each of them to `each(index, logits)` (perplexity, scoring).
    pub fn eval_all_logits(&mut self, tokens: &[u32], each: &mut dyn FnMut(usize, &[f32])) -> Result<(), Error> {
        self.check_room(tokens.len())?;
        let nv = self.model.config().n_vocab;
        let mut index = 0;
        for chunk in tokens.chunks(self.buf.capacity()) {
            let pos = self.tokens.len();
            forward(&self.model, &mut self.kv, &mut self.buf, chunk, pos, Logits::All)?;
            self.tokens.extend_from_slice(chunk);
            for row in self.buf.logits().chunks(nv) {
                each(index, row);
                index += 1;
            }
        }
        // The buffer holds every row; keep only "logits after the last token" semantics valid.
        self.has_logits = false;
        Ok(())
    }

    /// Makes the cache hold exactly `prompt`: keeps the longest common prefix with the cached tokens, evaluates
    /// the rest, and guarantees logits for the last prompt token. Returns how many tokens were reused.
    pub fn sync_prompt(&mut self, prompt: &[u32], should_stop: &mut dyn FnMut() -> bool) -> Result<usize, Error> {
        if prompt.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        if prompt.len() > self.n_ctx() {
            return Err(Error::PromptTooLong { n_prompt: prompt.len(), n_ctx: self.n_ctx() });
        }
        let common = self.tokens.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        if common == prompt.len() && common == self.tokens.len() && self.has_logits {
            return Ok(common);
        }
        // Re-evaluate at least the last prompt token so that its logits are fresh.
        let keep = common.min(prompt.len() - 1);
        self.truncate(keep);
        self.tokens.truncate(keep);
        self.eval_with(&prompt[keep..], should_stop)?;
        Ok(keep)
    }

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
