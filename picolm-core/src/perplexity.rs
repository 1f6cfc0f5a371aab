//! Perplexity of a model on a text, by llama.cpp's method: the tokens are cut into chunks of `n_ctx`; each chunk
//! is evaluated from an empty cache (its first token replaced by BOS when the model adds BOS) and only the second
//! half of each chunk is scored, so every scored token sees at least `n_ctx / 2` tokens of context.

use crate::error::Error;
use crate::session::{Session, SessionParams};
use std::sync::Arc;

use crate::model::Model;

/// The outcome of a perplexity run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PerplexityResult {
    /// `exp(mean negative log-likelihood)` over the scored tokens.
    pub ppl: f64,
    /// Standard error of the estimate (llama.cpp's "+/-" figure).
    pub uncertainty: f64,
    /// Number of chunks evaluated.
    pub n_chunks: usize,
    /// Number of scored tokens.
    pub n_scored: usize,
}

/// `log p(token)` under the softmax of `logits` (max-subtracted, sum in f64 like llama.cpp).
pub fn log_prob(logits: &[f32], token: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    (logits[token] - max) as f64 - sum.ln()
}

/// Computes the perplexity of `model` on `text` with chunks of `n_ctx` tokens (at most `max_chunks` of them when
/// given). `progress(chunk, n_chunks, ppl_so_far)` is called after each chunk.
pub fn perplexity(
    model: &Arc<Model>,
    text: &str,
    n_ctx: usize,
    n_batch: usize,
    max_chunks: Option<usize>,
    progress: &mut dyn FnMut(usize, usize, f64),
) -> Result<PerplexityResult, Error> {
    if n_ctx < 8 {
        return Err(Error::InvalidArgument { name: "n_ctx".into(), why: format!("{n_ctx} is too small (minimum 8)") });
    }
    let tok = model.tokenizer();
    let tokens = tok.encode(text, true, false);
    let available = tokens.len() / n_ctx;
    if available == 0 {
        return Err(Error::InvalidArgument {
            name: "text".into(),
            why: format!("{} tokens are fewer than one chunk of {n_ctx}", tokens.len()),
        });
    }
    let n_chunks = max_chunks.map_or(available, |m| m.min(available));
    let mut session =
        Session::new(model.clone(), &SessionParams { n_ctx, n_batch: n_batch.min(n_ctx), ..Default::default() })?;
    let first = n_ctx / 2;
    let (mut nll, mut nll2, mut count) = (0.0f64, 0.0f64, 0usize);
    let bos = if tok.add_bos() { tok.bos_id() } else { None };
    for c in 0..n_chunks {
        let mut chunk = tokens[c * n_ctx..(c + 1) * n_ctx].to_vec();
        if let Some(b) = bos {
            chunk[0] = b;
        }
        session.reset();
        let targets = &tokens[c * n_ctx..(c + 1) * n_ctx];
        session.eval_all_logits(&chunk, &mut |i, logits| {
            if i >= first && i + 1 < n_ctx {
                let v = -log_prob(logits, targets[i + 1] as usize);
                nll += v;
                nll2 += v * v;
                count += 1;
            }
        })?;
        progress(c + 1, n_chunks, (nll / count as f64).exp());
    }
    let mean = nll / count as f64;
    let ppl = mean.exp();
    let var = nll2 / count as f64 - mean * mean;
    let uncertainty = if var > 0.0 && count > 1 { (var / (count - 1) as f64).sqrt() * ppl } else { 0.0 };
    Ok(PerplexityResult { ppl, uncertainty, n_chunks, n_scored: count })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_prob_of_uniform_logits_is_minus_log_n() {
        let l = vec![0.5f32; 8];
        assert!((log_prob(&l, 3) + (8f64).ln()).abs() < 1e-9);
    }
}
