//! A conversation with a model: its KV cache, activation buffers and the tokens already evaluated.
//!
//! Sessions reuse their cache: [`Session::sync_prompt`] keeps the longest common prefix of the cached tokens and
//! the new prompt and evaluates only the rest, which is what makes multi-turn chat and the tool-call loop cheap.

use std::io::{Read, Write};
use std::sync::Arc;

use crate::error::Error;
use crate::model::kv_cache::{KvPart, KvType};
use crate::model::{forward, ForwardBuffers, KvCache, Logits, Model, ModelError};

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

const STATE_MAGIC: &[u8; 8] = b"PICOKV01";

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
            return Err(ModelError::InvalidParameter { name: "n_batch".into(), value: params.n_batch.to_string() }.into());
        }
        let cfg = model.config();
        let kv = KvCache::new(params.kv_type, cfg.n_layer, n_ctx, cfg.kv_dim(), cfg.head_dim).ok_or_else(|| {
            ModelError::InvalidParameter {
                name: "kv_type".into(),
                value: format!("{} cannot store heads of {} values", params.kv_type.name(), cfg.head_dim),
            }
        })?;
        let buf = ForwardBuffers::new(&model, params.n_batch.min(n_ctx));
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
            forward(&self.model, &mut self.kv, &mut self.buf, chunk, pos, Logits::Last)?;
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

    /// Writes the cached tokens, their keys and values and the current logits. The format is tied to the model's
    /// shape (checked on load).
    pub fn save_state(&self, w: &mut dyn Write) -> Result<(), Error> {
        let cfg = self.model.config();
        let n = self.tokens.len();
        w.write_all(STATE_MAGIC)?;
        let kv_id = self.kv.kv_type().ggml_type().id() as usize;
        for x in [cfg.n_layer, cfg.kv_dim(), cfg.n_vocab, n, kv_id, self.has_logits as usize] {
            w.write_all(&(x as u64).to_le_bytes())?;
        }
        for t in &self.tokens {
            w.write_all(&t.to_le_bytes())?;
        }
        for part in [KvPart::Key, KvPart::Value] {
            for l in 0..cfg.n_layer {
                w.write_all(self.kv.layer_bytes(part, l, n))?;
            }
        }
        if self.has_logits {
            let bytes: Vec<u8> = self.buf.logits().iter().flat_map(|x| x.to_le_bytes()).collect();
            w.write_all(&bytes)?;
        }
        Ok(())
    }

    /// Restores a state written by [`Session::save_state`] for a model of the same shape. On error the session is
    /// left empty (never half-loaded).
    pub fn load_state(&mut self, r: &mut dyn Read) -> Result<(), Error> {
        self.reset();
        let res = self.load_state_inner(r);
        if res.is_err() {
            self.reset();
        }
        res
    }

    fn load_state_inner(&mut self, r: &mut dyn Read) -> Result<(), Error> {
        let bad = |why: String| Error::InvalidState(why);
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic).map_err(|_| bad("file too short for a state header".into()))?;
        if &magic != STATE_MAGIC {
            return Err(bad(format!("bad magic {magic:?}")));
        }
        let mut hdr = [0u64; 6];
        for h in hdr.iter_mut() {
            let mut b = [0u8; 8];
            r.read_exact(&mut b).map_err(|_| bad("truncated state header".into()))?;
            *h = u64::from_le_bytes(b);
        }
        let cfg = self.model.config().clone();
        let [n_layer, kvd, n_vocab, n, kv_id, has_logits] = hdr;
        if (n_layer, kvd, n_vocab) != (cfg.n_layer as u64, cfg.kv_dim() as u64, cfg.n_vocab as u64) {
            return Err(bad(format!(
                "state is for a model with {n_layer} layers, kv width {kvd}, vocab {n_vocab}; this model has {}, {}, {}",
                cfg.n_layer,
                cfg.kv_dim(),
                cfg.n_vocab
            )));
        }
        let own_kv = self.kv.kv_type().ggml_type().id() as u64;
        if kv_id != own_kv {
            return Err(bad(format!("state holds a KV cache of type id {kv_id}, this session uses {own_kv}")));
        }
        if has_logits > 1 {
            return Err(bad(format!("bad logits flag {has_logits}")));
        }
        if n > self.n_ctx() as u64 {
            return Err(Error::ContextOverflow { needed: n as usize, n_ctx: self.n_ctx() });
        }
        let n = n as usize;
        let mut tokens = vec![0u32; n];
        let mut b4 = [0u8; 4];
        for t in tokens.iter_mut() {
            r.read_exact(&mut b4).map_err(|_| bad("truncated token list".into()))?;
            *t = u32::from_le_bytes(b4);
            if *t as usize >= cfg.n_vocab {
                return Err(bad(format!("token id {t} outside the vocabulary")));
            }
        }
        for part in [KvPart::Key, KvPart::Value] {
            for l in 0..cfg.n_layer {
                r.read_exact(self.kv.layer_bytes_mut(part, l, n)).map_err(|_| bad("truncated key/value data".into()))?;
            }
        }
        if has_logits == 1 {
            let mut logits = vec![0u8; cfg.n_vocab * 4];
            r.read_exact(&mut logits).map_err(|_| bad("truncated logits".into()))?;
            let dst = self.buf.set_logits_len(cfg.n_vocab);
            for (d, s) in dst.iter_mut().zip(logits.chunks_exact(4)) {
                *d = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
            }
        }
        self.tokens = tokens;
        self.has_logits = has_logits == 1;
        Ok(())
    }
}
