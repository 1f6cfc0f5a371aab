//! Token selection: greedy argmax, or seeded sampling with repetition penalty, top-k, top-p, min-p and temperature
//! (applied in llama.cpp's order: penalties → top-k → top-p → min-p → temperature → draw).

use std::collections::VecDeque;

use crate::compute::ops::argmax;

/// Sampling settings. The defaults ([`SamplerParams::DEFAULT`]) are greedy decoding; every binding takes its
/// defaults from there and checks a caller's values with [`SamplerParams::validate`].
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerParams {
    /// Softmax temperature; `0` selects greedy argmax (negative values are refused).
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (`0` = all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probabilities sum to at least `top_p`, in `[0, 1]` (`1` = all).
    pub top_p: f32,
    /// Drop tokens whose probability is below `min_p` times the most likely one's (`0` = off).
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of recently seen tokens by this (`1` = off).
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    /// Seed of the random generator (same seed, same settings, same prompt → same output).
    pub seed: u64,
}

impl Default for SamplerParams {
    fn default() -> Self {
        SamplerParams::DEFAULT
    }
}

/// Why a sampler setting was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid sampler setting {name} = {value}: {why}")]
pub struct SamplerParamError {
    /// Setting name.
    pub name: &'static str,
    /// Its value, printed.
    pub value: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl SamplerParams {
    /// The defaults of every binding (C `picolm_generate_params_default`, Python keyword defaults): greedy, no
    /// top-k/top-p/min-p filtering, no repetition penalty (looking back 64 tokens when enabled), seed 0.
    pub const DEFAULT: SamplerParams = SamplerParams {
        temperature: 0.0,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        repeat_penalty: 1.0,
        repeat_last_n: 64,
        seed: 0,
    };

    /// Checks the ranges: `0 <= temperature` (finite), `0 <= top_p <= 1`, `0 <= min_p <= 1`, `repeat_penalty > 0`
    /// (finite). NaN is refused everywhere.
    pub fn validate(&self) -> Result<(), SamplerParamError> {
        let err = |name, value: f32, why| Err(SamplerParamError { name, value: value.to_string(), why });
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return err("temperature", self.temperature, "must be a finite number >= 0 (0 = greedy)");
        }
        if !(self.top_p.is_finite() && (0.0..=1.0).contains(&self.top_p)) {
            return err("top_p", self.top_p, "must be in [0, 1] (1 = off)");
        }
        if !(self.min_p.is_finite() && (0.0..=1.0).contains(&self.min_p)) {
            return err("min_p", self.min_p, "must be in [0, 1]");
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return err("repeat_penalty", self.repeat_penalty, "must be > 0");
        }
        Ok(())
    }

    /// Whether this is greedy decoding.
    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
}

/// A small, fast, seedable generator (PCG-XSH-RR 64/32).
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    const MUL: u64 = 6364136223846793005;
    const INC: u64 = 1442695040888963407;

    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        let mut r = Rng { state: 0 };
        r.next_u32();
        r.state = r.state.wrapping_add(seed);
        r.next_u32();
        r
    }

    /// Next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        let old = self.state;
        self.state = old.wrapping_mul(Self::MUL).wrapping_add(Self::INC);
        let xorshifted = (((old >> 18) ^ old) >> 27) as u32;
        xorshifted.rotate_right((old >> 59) as u32)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
    }
}

/// Stateful token selector for one generation.
#[derive(Clone, Debug)]
pub struct Sampler {
    params: SamplerParams,
    rng: Rng,
    recent: VecDeque<u32>,
    /// The candidates of a draw as [`candidate_key`]s (reused between draws).
    candidates: Vec<u64>,
}

/// A candidate token as one sortable number: its logit in descending total order ([`f32::total_cmp`]) in the high
/// half, its id in the low half, so that ascending keys are the candidates by logit, highest first, ties by id (one
/// plain `u64` sort instead of a sort with a comparator).
fn candidate_key(id: u32, logit: f32) -> u64 {
    let b = logit.to_bits();
    // The bits as an unsigned number in the total order: negatives flipped, positives above them.
    let ascending = if b >> 31 == 1 { !b } else { b | 0x8000_0000 };
    (u64::from(!ascending) << 32) | u64::from(id)
}

/// The id of a [`candidate_key`].
fn candidate_id(key: u64) -> u32 {
    key as u32
}

/// The logit of a [`candidate_key`].
fn candidate_logit(key: u64) -> f32 {
    let ascending = !((key >> 32) as u32);
    f32::from_bits(if ascending >> 31 == 1 { ascending & 0x7fff_ffff } else { !ascending })
}

impl Sampler {
    /// A sampler with checked settings.
    pub fn new(params: SamplerParams) -> Result<Sampler, SamplerParamError> {
        params.validate()?;
        let rng = Rng::new(params.seed);
        // The penalty window grows with the tokens actually accepted (at most the context), so any
        // `repeat_last_n` (2^33 included, with the penalty on or off) costs no memory up front.
        Ok(Sampler { recent: VecDeque::new(), params, rng, candidates: Vec::new() })
    }

    /// The settings.
    pub fn params(&self) -> &SamplerParams {
        &self.params
    }

    /// Records a token that is now part of the context (prompt or generated) for the repetition penalty.
    pub fn accept(&mut self, token: u32) {
        if self.params.repeat_last_n == 0 || self.params.repeat_penalty == 1.0 {
            return;
        }
        if self.recent.len() == self.params.repeat_last_n {
            self.recent.pop_front();
        }
        self.recent.push_back(token);
    }

    /// Chooses the next token from `logits` (edited in place by the penalty). Tokens whose logit is `-inf`
    /// (masked by a grammar) are never chosen unless every token is masked.
    pub fn sample(&mut self, logits: &mut [f32]) -> u32 {
        if self.params.repeat_penalty != 1.0 {
            let p = self.params.repeat_penalty;
            let mut seen: Vec<u32> = self.recent.iter().copied().collect();
            crate::sorting::sort_u32(&mut seen);
            seen.dedup();
            for t in seen {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = if *l > 0.0 { *l / p } else { *l * p };
                }
            }
        }
        if self.params.is_greedy() {
            return argmax(logits).unwrap_or(0) as u32;
        }
        self.sample_distribution(logits)
    }

    fn sample_distribution(&mut self, logits: &[f32]) -> u32 {
        let p = &self.params;
        let c = &mut self.candidates;
        c.clear();
        c.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, l)| **l > f32::NEG_INFINITY)
                .map(|(i, &l)| candidate_key(i as u32, l)),
        );
        if c.is_empty() {
            return argmax(logits).unwrap_or(0) as u32;
        }
        // Keys are distinct (ids are), so the unstable selection and sort have one result.
        if p.top_k > 0 && p.top_k < c.len() {
            c.select_nth_unstable(p.top_k - 1);
            c.truncate(p.top_k);
        }
        crate::sorting::sort_u64(c);
        // Probabilities at temperature 1 for top-p / min-p (as llama.cpp does before the temperature step).
        let softmax = |c: &[u64], temp: f32| -> Vec<f32> {
            let max = candidate_logit(c[0]);
            let e: Vec<f32> = c.iter().map(|&x| ((candidate_logit(x) - max) / temp).exp()).collect();
            let s: f32 = e.iter().sum();
            e.into_iter().map(|v| v / s).collect()
        };
        if p.top_p < 1.0 {
            let probs = softmax(c, 1.0);
            let mut cum = 0.0;
            let mut keep = c.len();
            for (i, pr) in probs.iter().enumerate() {
                cum += pr;
                if cum >= p.top_p {
                    keep = i + 1;
                    break;
                }
            }
            c.truncate(keep.max(1));
        }
        if p.min_p > 0.0 {
            let max = candidate_logit(c[0]);
            let threshold = max + p.min_p.ln();
            let keep = c.iter().take_while(|&&x| candidate_logit(x) >= threshold).count();
            c.truncate(keep.max(1));
        }
        let probs = softmax(c, p.temperature);
        let r = self.rng.next_f32();
        let mut cum = 0.0;
        for (i, pr) in probs.iter().enumerate() {
            cum += pr;
            if r < cum {
                return candidate_id(c[i]);
            }
        }
        candidate_id(c[c.len() - 1])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_argmax_lowest_index_on_ties() {
        let mut s = Sampler::new(SamplerParams::default()).unwrap();
        assert_eq!(s.sample(&mut [0.1, 2.0, 2.0, -1.0]), 1);
    }

    #[test]
    fn same_seed_same_choices_and_top_k_one_is_greedy() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let params = SamplerParams { temperature: 0.9, top_p: 0.95, min_p: 0.02, seed: 7, ..Default::default() };
        let run = |params: &SamplerParams| {
            let mut s = Sampler::new(params.clone()).unwrap();
            (0..50).map(|_| s.sample(&mut logits.clone())).collect::<Vec<_>>()
        };
        assert_eq!(run(&params), run(&params));
        let varied = run(&params);
        assert!(varied.iter().any(|&t| t != varied[0]), "sampling at T=0.9 should vary");
        let k1 = SamplerParams { top_k: 1, ..params.clone() };
        let best = argmax(&logits).unwrap() as u32;
        assert!(run(&k1).iter().all(|&t| t == best));
    }

    #[test]
    fn candidate_keys_order_as_logit_descending_then_id() {
        let logits = [
            f32::NAN,
            f32::INFINITY,
            3.5,
            1.0,
            0.0,
            -0.0,
            -1.0,
            -3.5,
            f32::MIN,
            -f32::NAN,
            f32::MIN_POSITIVE,
            -f32::MIN_POSITIVE,
            1.0,
        ];
        let mut keyed: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
        let mut keys: Vec<u64> = keyed.iter().map(|&(i, l)| candidate_key(i, l)).collect();
        for (&k, &(i, l)) in keys.iter().zip(&keyed) {
            assert_eq!((candidate_id(k), candidate_logit(k).to_bits()), (i, l.to_bits()));
        }
        keyed.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        crate::sorting::sort_u64(&mut keys);
        let ids: Vec<u32> = keys.iter().map(|&k| candidate_id(k)).collect();
        assert_eq!(ids, keyed.iter().map(|x| x.0).collect::<Vec<_>>());
    }

    #[test]
    fn masked_tokens_are_never_sampled() {
        let mut logits = vec![f32::NEG_INFINITY; 10];
        logits[3] = -5.0;
        logits[7] = -5.5;
        let mut s = Sampler::new(SamplerParams { temperature: 1.5, seed: 1, ..Default::default() }).unwrap();
        for _ in 0..200 {
            let t = s.sample(&mut logits.clone());
            assert!(t == 3 || t == 7);
        }
    }

    #[test]
    fn repeat_penalty_demotes_seen_tokens() {
        let mut s = Sampler::new(SamplerParams { repeat_penalty: 2.0, ..Default::default() }).unwrap();
        s.accept(0);
        assert_eq!(s.sample(&mut [3.0, 2.0, -1.0]), 1);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(Sampler::new(SamplerParams { temperature: f32::NAN, ..Default::default() }).is_err());
        for (t, p) in
            [(-3.0, 1.0), (-0.01, 1.0), (f32::INFINITY, 1.0), (0.7, 5.0), (0.7, 7.0), (0.7, 1.0001), (0.7, -0.5)]
        {
            let e = SamplerParams { temperature: t, top_p: p, ..Default::default() }.validate().unwrap_err();
            assert!(e.to_string().contains(&if t < 0.0 || !t.is_finite() { t } else { p }.to_string()), "{e}");
        }
        for (t, p) in [(0.0, 0.0), (0.0, 1.0), (2.0, 0.5)] {
            assert!(SamplerParams { temperature: t, top_p: p, ..Default::default() }.validate().is_ok());
        }
        assert!(Sampler::new(SamplerParams { min_p: 1.5, ..Default::default() }).is_err());
        assert!(Sampler::new(SamplerParams { repeat_penalty: 0.0, ..Default::default() }).is_err());
    }
}
