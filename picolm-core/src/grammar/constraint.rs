//! [`JsonConstraint`]: the [`TokenConstraint`] that masks every token whose bytes the JSON automaton rejects, or
//! that would leave too few tokens to close the value.

use std::sync::Arc;

use super::automaton::{Grammar, State};
use super::error::GrammarError;
use super::vocab_index::{TokenTrie, VocabIndex};
use crate::error::Error;
use crate::generate::TokenConstraint;

/// Constrains generation to one JSON value accepted by a [`Grammar`].
#[derive(Debug)]
pub struct JsonConstraint {
    grammar: Arc<Grammar>,
    vocab: Arc<VocabIndex>,
    state: State,
    ended: bool,
    checked_budget: bool,
    /// `levels[d]`: the automaton state after `d` bytes of the trie path being walked (reused buffers).
    levels: Vec<State>,
    allowed: Vec<u64>,
}

impl JsonConstraint {
    /// A constraint at the start of a value.
    pub fn new(grammar: Arc<Grammar>, vocab: Arc<VocabIndex>) -> JsonConstraint {
        let state = grammar.initial_state();
        let words = vocab.n_vocab().div_ceil(64);
        JsonConstraint {
            grammar,
            vocab,
            state,
            ended: false,
            checked_budget: false,
            levels: Vec::new(),
            allowed: vec![0; words],
        }
    }

    /// The grammar.
    pub fn grammar(&self) -> &Arc<Grammar> {
        &self.grammar
    }

    /// Computes the allowed-token bit set for the next token, given the tokens left including it.
    fn compute_allowed(&mut self, remaining_tokens: usize) -> Result<(), GrammarError> {
        self.allowed.iter_mut().for_each(|w| *w = 0);
        let needed = self.grammar.min_close(&self.state);
        if !self.checked_budget {
            self.checked_budget = true;
            if needed > remaining_tokens {
                return Err(GrammarError::BudgetTooSmall { needed, max_tokens: remaining_tokens });
            }
        }
        let budget = remaining_tokens.saturating_sub(1);
        let vocab = Arc::clone(&self.vocab);
        if self.ended || self.grammar.is_complete(&self.state) {
            return Ok(());
        }
        if self.grammar.can_end(&self.state) {
            for &t in &vocab.eog {
                set_bit(&mut self.allowed, t);
            }
        }
        let trie = if let Some((chars, min, max)) = self.grammar.plain_string(&self.state) {
            // Plain tokens only add characters: the closing cost changes only through the minimum length.
            let short = |n: u32| min.saturating_sub(n) as usize;
            let base = needed - short(chars);
            for &(t, n) in &vocab.plain {
                let after = chars.saturating_add(n);
                if after <= max && base + short(after) <= budget {
                    set_bit(&mut self.allowed, t);
                }
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
        if self.allowed.iter().all(|&w| w == 0) {
            return Err(GrammarError::NoAllowedToken(format!("{} stacks", self.state.len())));
        }
        Ok(())
    }

    fn walk(&mut self, trie: &TokenTrie, node: usize, depth: usize, budget: usize) {
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
            if !trie.nodes[child].tokens.is_empty() && self.grammar.min_close(&next[0]) <= budget {
                for &t in &trie.nodes[child].tokens {
                    set_bit(&mut self.allowed, t);
                }
            }
            if !trie.nodes[child].children.is_empty() {
                self.walk(trie, child, depth + 1, budget);
            }
        }
    }

    /// The tokens allowed next (for tests and benchmarks), given the tokens left including the next one.
    pub fn allowed_tokens(&mut self, remaining_tokens: usize) -> Result<Vec<u32>, GrammarError> {
        self.compute_allowed(remaining_tokens)?;
        Ok((0..self.vocab.n_vocab() as u32).filter(|&t| get_bit(&self.allowed, t)).collect())
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
    fn mask_logits(&mut self, logits: &mut [f32], remaining_tokens: usize) -> Result<(), Error> {
        self.compute_allowed(remaining_tokens)?;
        for (t, l) in logits.iter_mut().enumerate() {
            if !get_bit(&self.allowed, t as u32) {
                *l = f32::NEG_INFINITY;
            }
        }
        Ok(())
    }

    fn accept_token(&mut self, token: u32) -> Result<(), Error> {
        Ok(self.accept(token)?)
    }

    fn is_complete(&self) -> bool {
        self.complete()
    }
}
