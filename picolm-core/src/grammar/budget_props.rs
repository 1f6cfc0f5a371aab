//! Property tests of the budget arithmetic: on random schemas, small random vocabularies and random prefixes,
//! the mask's token count of the cheapest closing path is never below the true minimum (found by exhaustive
//! search), the mask can always follow it (one token fewer each step), generations given exactly that budget
//! finish with a value that parses and validates, and huge schema bounds saturate instead of wrapping.

use std::collections::HashSet;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::automaton::{Frame, Grammar, State};
use super::*;
use crate::sampler::Rng;

/// Characters of the small vocabularies: JSON punctuation, digits, the letters of `true`/`false`/`null`, and `a`,
/// `b` for string content.
const ALPHABET: &[u8] = b"{}[]\":,-.0123456789eE+abtrufalsn";

fn leaf() -> impl Strategy<Value = Value> {
    let literal = prop_oneof![
        Just(json!(0)),
        Just(json!(1)),
        Just(json!(10)),
        Just(json!(-2)),
        Just(json!("a")),
        Just(json!("ab")),
        Just(json!(true)),
        Just(json!(null)),
        Just(json!([0])),
        Just(json!({"a": 0})),
    ];
    prop_oneof![
        Just(json!({"type": "integer"})),
        Just(json!({"type": "number"})),
        Just(json!({"type": "boolean"})),
        Just(json!({"type": "null"})),
        Just(json!(true)),
        (0u32..4, 0u32..4).prop_map(|(min, extra)| json!({"type": "string", "minLength": min, "maxLength": min + extra})),
        prop::collection::vec(literal, 1..5).prop_map(|v| json!({"enum": v})),
        (-120i64..120, 0i64..150).prop_map(|(lo, w)| json!({"type": "integer", "minimum": lo, "maximum": lo + w})),
        (-120i64..120).prop_map(|lo| json!({"type": "integer", "exclusiveMinimum": lo})),
        (-300i64..300, 1i64..200, any::<bool>())
            .prop_map(|(lo, w, x)| json!({"type": "number", "minimum": lo as f64 / 100.0, (if x { "exclusiveMaximum" } else { "maximum" }): (lo + w) as f64 / 100.0})),
    ]
}

fn schema() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            (inner.clone(), 0u32..3, 0u32..3).prop_map(
                |(items, min, extra)| json!({"type": "array", "items": items, "minItems": min, "maxItems": min + extra})
            ),
            (
                prop::collection::vec(
                    (prop_oneof![Just("a"), Just("b"), Just("ab")], inner.clone(), any::<bool>()),
                    0..3
                ),
                0u8..3
            )
                .prop_map(|(props, extra)| {
                    let mut p = Map::new();
                    let mut required = Vec::new();
                    for (k, s, r) in props {
                        if p.insert(k.to_string(), s).is_none() && r {
                            required.push(k);
                        }
                    }
                    let mut o = json!({"type": "object", "properties": p, "required": required});
                    match extra {
                        1 => o["additionalProperties"] = json!({"type": "integer"}),
                        2 => o["additionalProperties"] = json!(true),
                        _ => {}
                    }
                    o
                }),
            prop::collection::vec(inner, 1..3).prop_map(|alts| json!({"anyOf": alts})),
        ]
    })
}

/// Every single character of the alphabet, some JSON fragments, and random multi-byte tokens; the end token last.
fn vocab(extra: &[Vec<u8>]) -> (Arc<VocabIndex>, u32) {
    let mut toks: Vec<Vec<u8>> = ALPHABET.iter().map(|&b| vec![b]).collect();
    for f in [
        "\":", "\"}", "{\"", "},", "],", "\"a\"", "null", "true", "false", "aa", "\",\"", "}]", "[{", "\"a", "a\"",
        "0,", ":0", "\"}]}", "[]", "{}", "\"\"",
    ] {
        toks.push(f.as_bytes().to_vec());
    }
    toks.extend(extra.iter().cloned());
    let eog = toks.len() as u32;
    toks.push(Vec::new());
    (Arc::new(VocabIndex::from_token_bytes(toks, vec![eog])), eog)
}

fn extra_tokens() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(prop::sample::select(ALPHABET.to_vec()), 2..5), 0..12)
}

fn key(s: &State) -> Vec<Vec<Frame>> {
    s.iter().map(|st| st.key()).collect()
}

/// The fewest tokens of `vocab` (plus an end token where needed) that complete a value from `state`, by breadth-
/// first search up to `limit` tokens; `None` when the search grew too large to finish.
fn true_minimum(g: &Grammar, vocab: &VocabIndex, state: &State, limit: u64) -> Option<Option<u64>> {
    let mut layer = vec![state.clone()];
    let mut seen: HashSet<Vec<Vec<Frame>>> = HashSet::new();
    seen.insert(key(state));
    let mut best: Option<u64> = None;
    // Prune with a lower bound: the fewest bytes to close, over the longest token.
    let longest = (0..vocab.n_vocab() as u32).map(|t| vocab.token_bytes(t).len()).max().unwrap_or(1).max(1) as u64;
    let lower = |s: &State| (g.min_close(s) as u64).div_ceil(longest);
    for depth in 0..=limit {
        let mut next = Vec::new();
        for s in &layer {
            if g.is_complete(s) {
                return Some(Some(best.map_or(depth, |b| b.min(depth))));
            }
            if g.can_end(s) {
                best = Some(best.map_or(depth + 1, |b| b.min(depth + 1)));
            }
            for id in 0..vocab.n_vocab() as u32 {
                let bytes = vocab.token_bytes(id);
                if bytes.is_empty() {
                    continue;
                }
                let n = g.advance(s, bytes);
                if !n.is_empty() && depth + 1 + lower(&n) <= limit && seen.insert(key(&n)) {
                    next.push(n);
                }
            }
        }
        if best.is_some_and(|b| b <= depth + 1) {
            return Some(best);
        }
        if next.len() > 20_000 {
            return None;
        }
        layer = next;
    }
    Some(best)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn token_minimum_is_achievable_consistent_and_never_below_the_true_minimum(
        schema in schema(), extra in extra_tokens(), steps in 0usize..10, seed in any::<u64>()
    ) {
        let Ok(g) = Grammar::from_schema(&schema) else { return Ok(()) };
        let g = Arc::new(g);
        let (vocab, _) = vocab(&extra);
        let mut rng = Rng::new(seed);
        // A random prefix, generated under a generous budget.
        let mut c = JsonConstraint::new(g.clone(), vocab.clone());
        let mut prefix = Vec::new();
        for _ in 0..steps {
            let allowed = c.allowed_tokens(64).unwrap();
            let t = allowed[rng.next_u32() as usize % allowed.len()];
            if vocab.eog.contains(&t) {
                break;
            }
            c.accept(t).unwrap();
            prefix.extend_from_slice(vocab.token_bytes(t));
            if c.complete() {
                return Ok(());
            }
        }
        let state = g.advance(&g.initial_state(), &prefix);
        let needed = c.min_tokens();
        prop_assert!(needed < 1000, "{schema} after {:?}: {needed}", String::from_utf8_lossy(&prefix));
        // Achievable, and never below the true minimum.
        if needed <= 8 {
            if let Some(found) = true_minimum(&g, &vocab, &state, needed) {
                prop_assert!(found.is_some_and(|m| m <= needed),
                    "{schema} after {:?}: the mask reserves {needed}, the search found {found:?}",
                    String::from_utf8_lossy(&prefix));
            }
        }
        // With exactly `needed` tokens left the mask is not empty, and following it always finishes.
        let mut left = needed as usize;
        let mut out = prefix.clone();
        while !c.complete() {
            prop_assert!(left > 0, "{schema}: out of budget after {:?}", String::from_utf8_lossy(&out));
            let allowed = c.allowed_tokens(left);
            prop_assert!(allowed.is_ok(), "{schema} after {:?}: {:?}", String::from_utf8_lossy(&out), allowed);
            let allowed = allowed.unwrap();
            let t = allowed[rng.next_u32() as usize % allowed.len()];
            c.accept(t).unwrap();
            out.extend_from_slice(vocab.token_bytes(t));
            left -= 1;
            // Consistency: the count never exceeds the tokens left.
            prop_assert!(c.min_tokens() <= left as u64, "{schema}: {} > {left} after {:?}", c.min_tokens(), String::from_utf8_lossy(&out));
        }
        let text = String::from_utf8(out).unwrap();
        let v: Value = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("{schema}: {text:?}: {e}")))?;
        prop_assert!(validate(&v, &schema), "{schema}: {text} does not validate");
    }

    #[test]
    fn huge_bounds_saturate_and_stay_monotonic(
        outer in 0u32..u32::MAX - 1, inner in 0u32..u32::MAX - 1, len in 0u32..u32::MAX - 1, depth in 1usize..4
    ) {
        // [[ "xxx…", … ], …] nested `depth` times; the exact shortest length in bytes with u128 arithmetic.
        let mut s = json!({"type": "string", "minLength": len});
        let mut expect: u128 = 2 + u128::from(len);
        for d in 0..depth {
            let n = if d % 2 == 0 { inner } else { outer };
            s = json!({"type": "array", "items": s, "minItems": n});
            expect = 2 + u128::from(n) * expect + u128::from(n.saturating_sub(1));
        }
        let g = Grammar::from_schema(&s).unwrap();
        let bytes = g.min_close(&g.initial_state()) as u128;
        prop_assert_eq!(bytes, expect.min(usize::MAX as u128));
        // One more item never makes the value shorter.
        let mut bigger = s.clone();
        bigger["minItems"] = json!(bigger["minItems"].as_u64().unwrap() + 1);
        let gb = Grammar::from_schema(&bigger).unwrap();
        prop_assert!(gb.min_close(&gb.initial_state()) >= g.min_close(&g.initial_state()));
        // In tokens (a vocabulary with every single byte): never more than the bytes, never wrapped; too much for
        // a small budget is an error.
        let mut toks: Vec<Vec<u8>> = (0x20..=0xffu8).map(|b| vec![b]).collect();
        toks.extend(["\"aa", "aaaa", "aa\"", "[\"", "\",\""].iter().map(|t| t.as_bytes().to_vec()));
        let vocab = Arc::new(VocabIndex::from_token_bytes(toks, Vec::new()));
        let mut c = JsonConstraint::new(Arc::new(g), vocab);
        let tokens = c.min_tokens();
        prop_assert!(u128::from(tokens) <= expect.max(1));
        if tokens > 64 {
            let refused = matches!(c.allowed_tokens(64), Err(GrammarError::BudgetTooSmall { .. }));
            prop_assert!(refused);
        }
    }
}
