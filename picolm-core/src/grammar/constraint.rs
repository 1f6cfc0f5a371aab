//! [`JsonConstraint`]: the [`TokenConstraint`] that masks every token whose bytes the JSON automaton rejects, or
//! that would leave too few tokens to close the value.
//!
//! The closing cost is counted in tokens of the model's vocabulary (see `token_cost`), so a budget is refused
//! only when even the shortest tokenization of the cheapest closing path does not fit.
//!
//! Cost per mask: the trie walk visits the tokens the automaton accepts (string content takes a fast path that
//! looks at each plain token once); each accepted token's resulting state is costed with one pass over its top
//! frame's closing part (the parts below are summarised once per link).

use std::sync::Arc;

use super::automaton::{Grammar, State};
use super::closing::ClosePlan;
use super::error::GrammarError;
use super::token_cost::{Scratch, TokenCoster};
use super::vocab_index::{TokenTrie, VocabIndex};

/// Restricts which tokens may come next (JSON grammar, schema). Implemented by [`JsonConstraint`] and by the agent's step constraint; generation calls it once per token.
pub trait TokenConstraint: Send {
    /// Sets the logits of every token that may not come next to `-inf`. `remaining_tokens` is how many tokens the
    /// generation may still produce including this one, so a constraint can steer towards closing its value in
    /// time.
    fn mask_logits(&mut self, logits: &mut [f32], remaining_tokens: usize) -> Result<(), GrammarError>;
    /// Advances the constraint past the chosen token (which must have been allowed).
    fn accept_token(&mut self, token: u32) -> Result<(), GrammarError>;
    /// Whether the constrained output is complete (generation stops).
    fn is_complete(&self) -> bool;
}

/// Constrains generation to one JSON value accepted by a [`Grammar`].
#[derive(Debug)]
pub struct JsonConstraint {
    grammar: Arc<Grammar>,
    vocab: Arc<VocabIndex>,
    plan: Arc<ClosePlan>,
    state: State,
    ended: bool,
    checked_budget: bool,
    /// `levels[d]`: the automaton state after `d` bytes of the trie path being walked (reused buffers).
    levels: Vec<State>,
    allowed: Vec<u64>,
    /// Tokens the automaton accepts but whose closing would not fit the budget (last computation).
    over: Vec<u64>,
    scratch: Scratch,
}

impl JsonConstraint {
    /// A constraint at the start of a value.
    pub fn new(grammar: Arc<Grammar>, vocab: Arc<VocabIndex>) -> JsonConstraint {
        let state = grammar.initial_state();
        let plan = grammar.token_plan(&vocab);
        let words = vocab.n_vocab().div_ceil(64);
        JsonConstraint {
            grammar,
            vocab,
            plan,
            state,
            ended: false,
            checked_budget: false,
            levels: Vec::new(),
            allowed: vec![0; words],
            over: vec![0; words],
            scratch: Scratch::default(),
        }
    }

    /// The grammar.
    pub fn grammar(&self) -> &Arc<Grammar> {
        &self.grammar
    }

    fn coster(&self) -> TokenCoster<'_> {
        TokenCoster { grammar: &self.grammar, vocab: &self.vocab, plan: &self.plan }
    }

    /// Fewest tokens that complete the value from here (including an end token where the value needs one); 0 once
    /// complete. Never less than what closing really takes: the mask keeps this many tokens.
    pub fn min_tokens(&self) -> u64 {
        if self.complete() {
            return 0;
        }
        self.coster().state_cost(&self.state, &mut Scratch::default())
    }

    /// Computes the allowed-token bit set for the next token, given the tokens left including it. With
    /// `strict`, a budget that cannot hold the shortest completion is an error (checked at the first token);
    /// otherwise the accepted tokens that do not fit are recorded in `over`.
    fn compute_allowed(&mut self, remaining_tokens: usize, strict: bool) -> Result<(), GrammarError> {
        self.allowed.iter_mut().for_each(|w| *w = 0);
        self.over.iter_mut().for_each(|w| *w = 0);
        if self.ended || self.grammar.is_complete(&self.state) {
            return Ok(());
        }
        let coster = TokenCoster { grammar: &self.grammar, vocab: &self.vocab, plan: &self.plan };
        if strict && !self.checked_budget {
            self.checked_budget = true;
            let needed = coster.state_cost(&self.state, &mut self.scratch);
            if needed > remaining_tokens as u64 {
                return Err(GrammarError::BudgetTooSmall { needed, max_tokens: remaining_tokens });
            }
        }
        let budget = remaining_tokens.saturating_sub(1) as u64;
        let vocab = Arc::clone(&self.vocab);
        if self.grammar.can_end(&self.state) {
            for &t in &vocab.eog {
                set_bit(&mut self.allowed, t);
            }
        }
        let trie = if let Some((chars, min, max)) = self.grammar.plain_string(&self.state) {
            // Plain tokens only add characters: the closing cost depends only on how many are still missing.
            let short = min.saturating_sub(chars);
            // Far from the end of the budget every plain token fits (the path's bytes bound its tokens).
            let all_fit = self.plan.bytes_bound_tokens && self.plan.stack_len(&self.grammar, &self.state[0]) <= budget;
            let costs =
                if all_fit { Vec::new() } else { coster.pad_costs(&self.state[0], short, vocab.max_plain_chars) };
            for &(t, n) in &vocab.plain {
                let after = chars.saturating_add(n);
                if after > max {
                    continue;
                }
                let fits = all_fit || costs[(short - min.saturating_sub(after)) as usize] <= budget;
                set_bit(if fits { &mut self.allowed } else { &mut self.over }, t);
            }
            &vocab.non_plain
        } else {
            &vocab.all
        };
        if self.levels.is_empty() {
            self.levels.push(State::new());
        }
        self.levels[0].clone_from(&self.state);
        self.walk(trie, 0, 0, budget);
        if strict && self.allowed.iter().all(|&w| w == 0) {
            return Err(GrammarError::NoAllowedToken(format!("{} stacks", self.state.len())));
        }
        Ok(())
    }

    fn walk(&mut self, trie: &TokenTrie, node: usize, depth: usize, budget: u64) {
        if self.levels.len() <= depth + 1 {
            self.levels.push(State::new());
        }
        for &(b, child) in &trie.nodes[node].children {
            let (cur, next) = self.levels.split_at_mut(depth + 1);
            self.grammar.step_state(&cur[depth], b, &mut next[0]);
            if next[0].is_empty() {
                continue;
            }
            let child = child as usize;
            if !trie.nodes[child].tokens.is_empty() {
                let coster = TokenCoster { grammar: &self.grammar, vocab: &self.vocab, plan: &self.plan };
                let fits = coster.fits(&self.levels[depth + 1], budget, &mut self.scratch);
                let bits = if fits { &mut self.allowed } else { &mut self.over };
                for &t in &trie.nodes[child].tokens {
                    set_bit(bits, t);
                }
            }
            if !trie.nodes[child].children.is_empty() {
                self.walk(trie, child, depth + 1, budget);
            }
        }
    }

    /// The tokens allowed next (for tests and benchmarks), given the tokens left including the next one.
    pub fn allowed_tokens(&mut self, remaining_tokens: usize) -> Result<Vec<u32>, GrammarError> {
        self.compute_allowed(remaining_tokens, true)?;
        Ok((0..self.vocab.n_vocab() as u32).filter(|&t| get_bit(&self.allowed, t)).collect())
    }

    /// The tokens the grammar accepts next whatever the budget (the tokens that would start or continue the
    /// value).
    pub fn accepted_tokens(&mut self) -> Vec<u32> {
        let _ = self.compute_allowed(usize::MAX, false);
        (0..self.vocab.n_vocab() as u32).filter(|&t| get_bit(&self.allowed, t) || get_bit(&self.over, t)).collect()
    }

    /// Masks only the tokens the grammar accepts whose value could not be closed within `remaining_tokens`
    /// (including the next one); every other token stays allowed. For a step that may answer in text or start a
    /// constrained value: a value is started only if it can be finished.
    pub fn mask_over_budget(&mut self, logits: &mut [f32], remaining_tokens: usize) {
        let _ = self.compute_allowed(remaining_tokens, false);
        for (t, l) in logits.iter_mut().enumerate() {
            if get_bit(&self.over, t as u32) && !get_bit(&self.allowed, t as u32) {
                *l = f32::NEG_INFINITY;
            }
        }
    }

    /// Advances past a token; an end-of-generation token ends the value where that is allowed.
    pub fn accept(&mut self, token: u32) -> Result<(), GrammarError> {
        let rejected = || GrammarError::TokenRejected {
            token,
            text: String::from_utf8_lossy(self.vocab.token_bytes(token)).into_owned(),
        };
        if self.ended {
            return Err(rejected());
        }
        if self.vocab.eog.contains(&token) {
            if self.grammar.can_end(&self.state) {
                self.ended = true;
                return Ok(());
            }
            return Err(rejected());
        }
        let bytes = self.vocab.token_bytes(token);
        if bytes.is_empty() {
            return Err(rejected());
        }
        let next = self.grammar.advance(&self.state, bytes);
        if next.is_empty() {
            return Err(rejected());
        }
        self.state = next;
        Ok(())
    }

    /// Whether the bytes so far form a complete value.
    pub fn complete(&self) -> bool {
        self.ended || self.grammar.is_complete(&self.state)
    }
}

fn set_bit(bits: &mut [u64], t: u32) {
    bits[(t / 64) as usize] |= 1 << (t % 64);
}

fn get_bit(bits: &[u64], t: u32) -> bool {
    bits[(t / 64) as usize] >> (t % 64) & 1 == 1
}

impl TokenConstraint for JsonConstraint {
    fn mask_logits(&mut self, logits: &mut [f32], remaining_tokens: usize) -> Result<(), GrammarError> {
        self.compute_allowed(remaining_tokens, true)?;
        for (t, l) in logits.iter_mut().enumerate() {
            if !get_bit(&self.allowed, t as u32) {
                *l = f32::NEG_INFINITY;
            }
        }
        Ok(())
    }

    fn accept_token(&mut self, token: u32) -> Result<(), GrammarError> {
        self.accept(token)
    }

    fn is_complete(&self) -> bool {
        self.complete()
    }
}
