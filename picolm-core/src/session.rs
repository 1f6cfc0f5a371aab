//! A conversation with a model: its KV cache, activation buffers and the tokens already evaluated.
//!
//! Sessions reuse their cache: [`Session::sync_prompt`] keeps the longest common prefix of the cached tokens and
//! the new prompt and evaluates only the rest, which is what makes multi-turn chat and the tool-call loop cheap.

use std::sync::Arc;

use crate::error::Error;
use crate::model::kv_cache::KvType;
use crate::model::{forward, ForwardBuffers, KvCache, Logits, Model, ModelError};

// Saving and restoring the session as a state file (the `state` feature).
#[cfg(feature = "state")]
mod state_io;
#[cfg(feature = "state")]
pub use state_io::check_state_path;

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
}
