//! How many tokens of the model's vocabulary a closing path takes: the shortest tokenization of its bytes (a
//! dynamic program over positions, each step one whole vocabulary token found by walking the token trie).
//!
//! The closing path of a stack is the top frame's part followed by the parts of the frames below, which are
//! shared, immutable links. Each link caches a [`Summary`] of the path from it down: its first bytes and the
//! token counts from each of those positions to the end, which is all a token starting above can reach. So a
//! candidate state costs one pass over its top frame's part: O(part length × trie depth) steps, the trie depth
//! bounded by [`MAX_TOKEN_BYTES`]. Links are summarised once (the frames below the top rarely change between
//! tokens).
//!
//! The count is exact for the closing path chosen by the plan (see `closing`), which is a real completion: it
//! never under-counts what closing needs. Tokens longer than [`MAX_TOKEN_BYTES`] are left out (a fixed subset of
//! the vocabulary, so the count stays consistent from token to token). Paths longer than [`MAX_EXACT_BYTES`] are
//! counted as one token per byte (single-byte tokens exist in byte-level vocabularies), which over-counts safely.

use std::sync::{Arc, LazyLock};

use super::automaton::{Grammar, Link, Stack};
use super::closing::ClosePlan;
use super::vocab_index::{TokenTrie, VocabIndex};

/// Longest token (in bytes) the count uses.
pub(super) const MAX_TOKEN_BYTES: usize = 32;
/// Longest closing path tokenized exactly.
pub(super) const MAX_EXACT_BYTES: u64 = 1 << 16;
/// No tokenization.
const INF: u32 = u32::MAX;

/// The summary below the bottom frame.
static EMPTY: LazyLock<Arc<Summary>> = LazyLock::new(|| Arc::new(Summary::empty()));

/// Buffers reused between costings (the closing bytes of a top frame and their token counts).
#[derive(Debug, Default)]
pub(super) struct Scratch {
    x: Vec<u8>,
    d: Vec<u32>,
}

/// The closing path from a link down, as far as tokens starting above it can see.
#[derive(Debug)]
pub(super) struct Summary {
    /// Bytes of the whole path (saturating).
    len: u64,
    /// Its first `min(len, MAX_TOKEN_BYTES)` bytes (empty when too long to tokenize exactly).
    head: Vec<u8>,
    /// `d[j]`: fewest tokens from byte `j` to the end, for `j` in `0..=head.len()` (`INF`: none).
    d: Vec<u32>,
    too_long: bool,
}

impl Summary {
    fn empty() -> Summary {
        Summary { len: 0, head: Vec::new(), d: vec![0], too_long: false }
    }

    fn too_long(len: u64) -> Summary {
        Summary { len, head: Vec::new(), d: Vec::new(), too_long: true }
    }
}

/// The shortest tokenization of `bytes` alone (`u64::MAX` when the vocabulary cannot spell them).
pub(super) fn isolated_tokens(vocab: &VocabIndex, bytes: &[u8]) -> u64 {
    let mut d = Vec::new();
    tokenize_over(&vocab.all, bytes, &EMPTY, &mut d);
    match d.first() {
        Some(&x) if x != INF => u64::from(x),
        Some(_) => u64::MAX,
        None => 0,
    }
}

fn child(trie: &TokenTrie, node: u32, b: u8) -> Option<u32> {
    let c = &trie.nodes[node as usize].children;
    c.binary_search_by_key(&b, |x| x.0).ok().map(|i| c[i].1)
}

/// Shortest tokenizations of every suffix of `x` followed by the path summarised in `tail`: fills `d` with
/// `d[i]` = fewest tokens from byte `i` of `x` to the end (`x.len()` entries).
fn tokenize_over(trie: &TokenTrie, x: &[u8], tail: &Summary, d: &mut Vec<u32>) {
    let n = x.len();
    d.clear();
    d.resize(n, INF);
    for i in (0..n).rev() {
        let mut best = INF;
        let mut node = 0u32;
        for k in 0..MAX_TOKEN_BYTES {
            let p = i + k;
            let b = if p < n {
                x[p]
            } else if p - n < tail.head.len() {
                tail.head[p - n]
            } else {
                break;
            };
            node = match child(trie, node, b) {
                Some(c) => c,
                None => break,
            };
            if !trie.nodes[node as usize].tokens.is_empty() {
                let after = p + 1;
                let rest = if after < n { d[after] } else { tail.d[after - n] };
                best = best.min(rest.saturating_add(1));
            }
        }
        d[i] = best;
    }
}

/// Counts closing paths of one grammar in tokens of one vocabulary.
pub(super) struct TokenCoster<'a> {
    pub(super) grammar: &'a Grammar,
    pub(super) vocab: &'a VocabIndex,
    pub(super) plan: &'a ClosePlan,
}

impl TokenCoster<'_> {
    fn summary_of(&self, below: Option<&Arc<Link>>) -> Arc<Summary> {
        match below {
            None => EMPTY.clone(),
            Some(link) => {
                if let Some((id, s)) = link.summary.get() {
                    if *id == self.plan.id {
                        return s.clone();
                    }
                }
                let tail = self.summary_of(link.below.as_ref());
                let s = Arc::new(self.extend(&link.frame, &tail));
                let _ = link.summary.set((self.plan.id, s.clone()));
                s
            }
        }
    }

    /// The summary of `frame`'s closing part followed by `tail`.
    fn extend(&self, frame: &super::automaton::Frame, tail: &Summary) -> Summary {
        let len = self.plan.frame_len(self.grammar, frame).saturating_add(tail.len);
        if tail.too_long || len > MAX_EXACT_BYTES {
            return Summary::too_long(len);
        }
        let mut x = Vec::with_capacity((len - tail.len) as usize);
        self.plan.write_frame(self.grammar, frame, &mut x);
        debug_assert_eq!(x.len() as u64, len - tail.len, "closing length and bytes agree for {frame:?}");
        let mut dx = Vec::new();
        tokenize_over(&self.vocab.all, &x, tail, &mut dx);
        let keep = (len as usize).min(MAX_TOKEN_BYTES);
        let n = x.len();
        let head: Vec<u8> = x.iter().chain(tail.head.iter()).take(keep).copied().collect();
        let d = (0..=keep).map(|j| if j < n { dx[j] } else { tail.d[j - n] }).collect();
        Summary { len, head, d, too_long: false }
    }

    fn fallback(&self, bytes: u64) -> u64 {
        if self.plan.bytes_bound_tokens {
            bytes
        } else {
            u64::MAX
        }
    }

    /// Fewest tokens of the stack's closing path, plus the end token where one is needed.
    pub(super) fn stack_cost(&self, s: &Stack, scratch: &mut Scratch) -> u64 {
        let eog = u64::from(self.plan.stack_eog(self.grammar, s));
        let tail = self.summary_of(s.below.as_ref());
        let len = self.plan.frame_len(self.grammar, &s.top).saturating_add(tail.len);
        if tail.too_long || len > MAX_EXACT_BYTES {
            return self.fallback(len).saturating_add(eog);
        }
        scratch.x.clear();
        self.plan.write_frame(self.grammar, &s.top, &mut scratch.x);
        let first = if scratch.x.is_empty() {
            tail.d[0]
        } else {
            tokenize_over(&self.vocab.all, &scratch.x, &tail, &mut scratch.d);
            scratch.d[0]
        };
        if first == INF {
            u64::MAX
        } else {
            u64::from(first) + eog
        }
    }

    /// Fewest tokens that close any parse of `state` (`u64::MAX` for a rejected state).
    pub(super) fn state_cost(&self, state: &[Stack], scratch: &mut Scratch) -> u64 {
        state.iter().map(|s| self.stack_cost(s, scratch)).min().unwrap_or(u64::MAX)
    }

    /// Whether some parse of `state` closes within `budget` tokens. The closing path's length in bytes bounds its
    /// tokens from above (single-byte tokens), so the exact count is only needed near the end of the budget.
    pub(super) fn fits(&self, state: &[Stack], budget: u64, scratch: &mut Scratch) -> bool {
        if self.plan.bytes_bound_tokens && state.iter().any(|s| self.plan.stack_len(self.grammar, s) <= budget) {
            return true;
        }
        state.iter().any(|s| self.stack_cost(s, scratch) <= budget)
    }

    /// For the only stack of a plain-string state that still needs `short` characters: `costs[j]` = tokens to
    /// close once `short - j` characters are still needed, for `j` in `0..=min(short, span)`.
    pub(super) fn pad_costs(&self, s: &Stack, short: u32, span: u32) -> Vec<u64> {
        let tail = self.summary_of(s.below.as_ref());
        let eog = u64::from(self.plan.stack_eog(self.grammar, s));
        let len = (u64::from(short) + 1).saturating_add(tail.len);
        let upto = short.min(span) as usize;
        if tail.too_long || len > MAX_EXACT_BYTES {
            return (0..=upto).map(|j| self.fallback(len - j as u64).saturating_add(eog)).collect();
        }
        let mut x = vec![self.plan.pad; short as usize];
        x.push(b'"');
        let mut d = Vec::new();
        tokenize_over(&self.vocab.all, &x, &tail, &mut d);
        (0..=upto).map(|j| if d[j] == INF { u64::MAX } else { u64::from(d[j]) + eog }).collect()
    }
}
