//! Property tests of numeric bounds: on random ranges, every string the automaton accepts parses and lies in the
//! range (checked with exact integer arithmetic and with the reference validator), every integer of the range (and
//! every short decimal of a `number` range) is accepted, and the closing path of every prefix is the shortest
//! completion (found by breadth-first search) and follows itself byte by byte.

use std::collections::{HashSet, VecDeque};

use proptest::prelude::*;
use serde_json::{json, Value};

use super::automaton::{Frame, Grammar, State};
use super::range::{NumRange, RangeFrame};
use super::schema::SchemaNode;
use super::validate::validate;
use super::*;
use crate::sampler::Rng;

const BYTES: &[u8] = b"-.0123456789eE+";

/// Every complete number the grammar accepts with at most `max_len` bytes (breadth-first over viable prefixes).
fn accepted_strings(g: &Grammar, max_len: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut queue = VecDeque::from([(Vec::new(), g.initial_state())]);
    while let Some((text, state)) = queue.pop_front() {
        if !text.is_empty() && g.can_end(&state) {
            out.push(String::from_utf8(text.clone()).unwrap());
        }
        if text.len() == max_len {
            continue;
        }
        for &b in BYTES {
            let next = g.advance(&state, &[b]);
            if !next.is_empty() {
                let mut t = text.clone();
                t.push(b);
                queue.push_back((t, next));
            }
        }
    }
    out
}

/// The fewest bytes after which the number may end (breadth-first), `None` beyond `limit`.
fn true_min_close(g: &Grammar, state: &State, limit: usize) -> Option<usize> {
    let mut layer = vec![state.clone()];
    for depth in 0..=limit {
        if layer.iter().any(|s| g.can_end(s)) {
            return Some(depth);
        }
        let mut seen = HashSet::new();
        let mut next = Vec::new();
        for s in &layer {
            for &b in BYTES {
                let n = g.advance(s, &[b]);
                if !n.is_empty() && seen.insert(n.iter().map(|x| x.key()).collect::<Vec<_>>()) {
                    next.push(n);
                }
            }
        }
        layer = next;
    }
    None
}

/// The range frame and its bounds of a state inside a top-level bounded number.
fn range_frame(g: &Grammar, state: &State) -> Option<(NumRange, RangeFrame)> {
    match state.as_slice() {
        [s] => match s.top {
            Frame::Range(f) => match g.node(f.node) {
                SchemaNode::BoundedNumber(r) => Some(((**r).clone(), f)),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// A random walk through viable prefixes; returns every prefix on the way.
fn random_walk(g: &Grammar, rng: &mut Rng, max_len: usize) -> Vec<Vec<u8>> {
    let mut text = Vec::new();
    let mut state = g.initial_state();
    let mut prefixes = vec![Vec::new()];
    while text.len() < max_len {
        if g.can_end(&state) && !text.is_empty() && rng.next_u32().is_multiple_of(4) {
            break;
        }
        let options: Vec<(u8, State)> =
            BYTES.iter().map(|&b| (b, g.advance(&state, &[b]))).filter(|(_, n)| !n.is_empty()).collect();
        if options.is_empty() {
            break;
        }
        let (b, next) = options[rng.next_u32() as usize % options.len()].clone();
        text.push(b);
        state = next;
        prefixes.push(text.clone());
    }
    prefixes
}

/// Checks the closing path of `prefix`: its length is the true shortest completion, the bytes complete the
/// number, and after its first byte the closing path is the rest.
fn check_closing(g: &Grammar, prefix: &[u8]) -> Result<(), TestCaseError> {
    let state = g.advance(&g.initial_state(), prefix);
    prop_assert!(!state.is_empty(), "{:?} is not viable", String::from_utf8_lossy(prefix));
    let truth = true_min_close(g, &state, 40);
    // `min_close` counts the end token after a top-level number.
    let ours = g.min_close(&state);
    prop_assert_eq!(Some(ours - 1), truth, "shortest completion of {:?}", String::from_utf8_lossy(prefix));
    if let Some((r, f)) = range_frame(g, &state) {
        let mut path = Vec::new();
        prop_assert!(r.complete(f, &mut path).is_some());
        prop_assert_eq!(path.len(), ours - 1);
        let done = g.advance(&state, &path);
        prop_assert!(
            g.can_end(&done),
            "{:?} + {:?} cannot end",
            String::from_utf8_lossy(prefix),
            String::from_utf8_lossy(&path)
        );
        if let Some(&first) = path.first() {
            let next = g.advance(&state, &[first]);
            let (r2, f2) = range_frame(g, &next).expect("still inside the number");
            let mut rest = Vec::new();
            r2.complete(f2, &mut rest);
            prop_assert_eq!(
                &rest[..],
                &path[1..],
                "the closing path follows itself after {:?}",
                String::from_utf8_lossy(prefix)
            );
        }
    }
    Ok(())
}

fn bound_keys(lo: Option<i64>, lo_excl: bool, hi: Option<i64>, hi_excl: bool, scale: f64) -> Value {
    let num = |v: i64| if scale == 1.0 { json!(v) } else { json!(v as f64 / scale) };
    let mut s = serde_json::Map::new();
    if let Some(v) = lo {
        s.insert(if lo_excl { "exclusiveMinimum" } else { "minimum" }.into(), num(v));
    }
    if let Some(v) = hi {
        s.insert(if hi_excl { "exclusiveMaximum" } else { "maximum" }.into(), num(v));
    }
    Value::Object(s)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn small_integer_ranges_accept_exactly_their_integers(
        lo in prop::option::of(-1200i64..1200), width in 0i64..400, hi_some in any::<bool>(),
        lo_excl in any::<bool>(), hi_excl in any::<bool>(), seed in any::<u64>()
    ) {
        let hi = hi_some.then(|| lo.unwrap_or(-200) + width);
        prop_assume!(lo.is_some() || hi.is_some());
        let mut s = bound_keys(lo, lo_excl, hi, hi_excl, 1.0);
        s["type"] = json!("integer");
        let (min, max) = (lo.map_or(i64::MIN as i128, |v| (v + i64::from(lo_excl)) as i128),
                          hi.map_or(u64::MAX as i128, |v| (v - i64::from(hi_excl)) as i128));
        let g = match Grammar::from_schema(&s) {
            Ok(g) => g,
            Err(e) => {
                prop_assert!(min > max, "{s}: {e}");
                prop_assert!(matches!(e, GrammarError::InvalidSchema { .. }), "{s}: {e}");
                return Ok(());
            }
        };
        prop_assert!(min <= max, "{s} compiled but is empty");
        // Every accepted string of up to 5 bytes is an integer of the range; every integer of the range with up
        // to 5 bytes is accepted.
        let accepted = accepted_strings(&g, 5);
        for t in &accepted {
            let v: i128 = t.parse().map_err(|e| TestCaseError::fail(format!("{s}: {t:?}: {e}")))?;
            prop_assert!(min <= v && v <= max, "{s}: accepted {t}");
            prop_assert!(validate(&serde_json::from_str(t).unwrap(), &s), "{s}: {t} does not validate");
            prop_assert!(!t.starts_with("-0") || t == "-0", "{s}: {t}");
        }
        let set: HashSet<&str> = accepted.iter().map(String::as_str).collect();
        for v in min.max(-9_999)..=max.min(99_999) {
            prop_assert!(set.contains(v.to_string().as_str()), "{s}: {v} is in the range but refused");
        }
        prop_assert_eq!(set.contains("-0"), min <= 0 && 0 <= max);
        // Closing paths of random prefixes are shortest and follow themselves.
        let mut rng = Rng::new(seed);
        for p in random_walk(&g, &mut rng, 8) {
            check_closing(&g, &p)?;
        }
    }

    #[test]
    fn wide_integer_ranges_accept_exactly_their_integers(
        a in any::<i64>(), b in any::<i64>(), lo_excl in any::<bool>(), hi_excl in any::<bool>(),
        hi_u64 in any::<bool>(), seed in any::<u64>()
    ) {
        let (lo, hi) = (a.min(b), a.max(b));
        let mut s = bound_keys(Some(lo), lo_excl, Some(hi), hi_excl, 1.0);
        if hi_u64 {
            s.as_object_mut().unwrap().remove("maximum");
            s.as_object_mut().unwrap().remove("exclusiveMaximum");
        }
        s["type"] = json!("integer");
        let min = lo as i128 + i128::from(lo_excl);
        let max = if hi_u64 { u64::MAX as i128 } else { hi as i128 - i128::from(hi_excl) };
        let g = match Grammar::from_schema(&s) {
            Ok(g) => g,
            Err(_) => {
                prop_assert!(min > max, "{s}");
                return Ok(());
            }
        };
        let mut rng = Rng::new(seed);
        // Values at and around both ends and random ones: accepted exactly when in the range.
        let mut probes: Vec<i128> = vec![min - 1, min, min + 1, max - 1, max, max + 1, 0, -1, 1];
        for _ in 0..40 {
            let r = (u128::from(rng.next_u32()) << 64 | u128::from(rng.next_u32()) << 32 | u128::from(rng.next_u32())) as i128;
            probes.push(min + r.rem_euclid((max - min + 1).max(1)));
            probes.push(i128::from(rng.next_u32() as i32) * i128::from(rng.next_u32()));
        }
        for v in probes {
            prop_assert_eq!(g.accepts(v.to_string().as_bytes()), min <= v && v <= max, "{} {}", s, v);
        }
        // Random walks end in the range, validate, and close by their shortest completion.
        for _ in 0..8 {
            let walk = random_walk(&g, &mut rng, 24);
            let text = String::from_utf8(walk.last().unwrap().clone()).unwrap();
            if g.can_end(&g.advance(&g.initial_state(), text.as_bytes())) {
                let v: i128 = text.parse().unwrap();
                prop_assert!(min <= v && v <= max, "{s}: {text}");
                prop_assert!(validate(&serde_json::from_str(&text).unwrap(), &s), "{s}: {text}");
            }
            for p in walk.iter().step_by(3) {
                let state = g.advance(&g.initial_state(), p);
                let (r, f) = match range_frame(&g, &state) { Some(x) => x, None => continue };
                let mut path = Vec::new();
                r.complete(f, &mut path);
                prop_assert!(g.can_end(&g.advance(&state, &path)), "{s}: {:?}+{:?}", String::from_utf8_lossy(p), String::from_utf8_lossy(&path));
                prop_assert_eq!(path.len() + 1, g.min_close(&state));
            }
        }
    }

    #[test]
    fn decimal_ranges_accept_in_range_decimals_only(
        lo in prop::option::of(-3000i64..3000), width in 0i64..800, hi_some in any::<bool>(),
        lo_excl in any::<bool>(), hi_excl in any::<bool>(), seed in any::<u64>()
    ) {
        // Bounds in hundredths: -30.00 … 30.00.
        let hi = hi_some.then(|| lo.unwrap_or(-500) + width);
        prop_assume!(lo.is_some() || hi.is_some());
        let mut s = bound_keys(lo, lo_excl, hi, hi_excl, 100.0);
        s["type"] = json!("number");
        let in_range = |v: i64| { // v in hundredths
            lo.is_none_or(|l| if lo_excl { v > l } else { v >= l }) && hi.is_none_or(|h| if hi_excl { v < h } else { v <= h })
        };
        let g = match Grammar::from_schema(&s) {
            Ok(g) => g,
            Err(e) => {
                let empty = match (lo, hi) { (Some(l), Some(h)) => l > h || (l == h && (lo_excl || hi_excl)), _ => false };
                prop_assert!(empty, "{s}: {e}");
                return Ok(());
            }
        };
        let accepted = accepted_strings(&g, 5);
        for t in &accepted {
            let v: Value = serde_json::from_str(t).map_err(|e| TestCaseError::fail(format!("{s}: {t:?}: {e}")))?;
            prop_assert!(validate(&v, &s), "{s}: accepted {t}");
            prop_assert!(!t.contains(['e', 'E']), "{s}: {t}");
        }
        // Every decimal with up to two fraction digits and up to 5 bytes that lies in the range is accepted.
        let set: HashSet<&str> = accepted.iter().map(String::as_str).collect();
        for v in -9_999i64..=99_999 {
            if !in_range(v) {
                continue;
            }
            let (neg, m) = (v < 0, v.unsigned_abs());
            let (int, frac) = (m / 100, m % 100);
            let text = match frac {
                0 => format!("{}{int}", if neg { "-" } else { "" }),
                f if f % 10 == 0 => format!("{}{int}.{}", if neg { "-" } else { "" }, f / 10),
                f => format!("{}{int}.{f:02}", if neg { "-" } else { "" }),
            };
            if text.len() <= 5 {
                prop_assert!(set.contains(text.as_str()), "{s}: {text} is in the range but refused");
            }
        }
        let mut rng = Rng::new(seed);
        for p in random_walk(&g, &mut rng, 8) {
            check_closing(&g, &p)?;
        }
    }

    #[test]
    fn arbitrary_double_bounds_admit_only_values_that_validate(
        lo in prop::option::of(-1e6f64..1e6), hi in prop::option::of(-1e6f64..1e6), shift in -12i32..12,
        lo_excl in any::<bool>(), hi_excl in any::<bool>(), integer in any::<bool>(), seed in any::<u64>()
    ) {
        // Doubles with all their digits (0.30000000000000004, …), scaled from 1e-12 to 1e12.
        let scale = 10f64.powi(shift);
        let mut s = serde_json::Map::new();
        if let Some(l) = lo { s.insert(if lo_excl { "exclusiveMinimum" } else { "minimum" }.into(), json!(l * scale)); }
        if let Some(h) = hi { s.insert(if hi_excl { "exclusiveMaximum" } else { "maximum" }.into(), json!(h * scale)); }
        s.insert("type".into(), json!(if integer { "integer" } else { "number" }));
        let s = Value::Object(s);
        let Ok(g) = Grammar::from_schema(&s) else { return Ok(()) };
        let mut rng = Rng::new(seed);
        for _ in 0..20 {
            let walk = random_walk(&g, &mut rng, 24);
            for p in &walk {
                let state = g.advance(&g.initial_state(), p);
                let Some((r, f)) = range_frame(&g, &state) else { continue };
                let mut text = p.clone();
                r.complete(f, &mut text);
                let text = String::from_utf8(text).unwrap();
                let v: Value = serde_json::from_str(&text).map_err(|e| TestCaseError::fail(format!("{s}: {text:?}: {e}")))?;
                prop_assert!(validate(&v, &s), "{s}: {text} does not validate");
                prop_assert!(g.accepts(text.as_bytes()));
            }
        }
    }
}

#[test]
fn picoclaw_style_bounds_compile_and_close() {
    let g = Grammar::from_schema(&json!({"type":"integer","minimum":1,"maximum":10})).unwrap();
    for ok in ["1", "5", "9", "10"] {
        assert!(g.accepts(ok.as_bytes()), "{ok}");
    }
    for bad in ["0", "11", "-1", "-0", "01", "100", "1.0", "1e1"] {
        assert!(!g.accepts(bad.as_bytes()), "{bad}");
    }
    // After `1` the value may end (1) or go on to 10; nothing else.
    let s = g.advance(&g.initial_state(), b"1");
    assert!(g.can_end(&s) && g.advance(&s, b"1").is_empty() && !g.advance(&s, b"0").is_empty());
    // maxChars-like: a lower bound only; the shortest value is 100.
    let g = Grammar::from_schema(&json!({"type":"integer","minimum":100})).unwrap();
    assert_eq!(g.min_close(&g.initial_state()), 4, "100 and the end token");
    let s = g.advance(&g.initial_state(), b"9");
    assert_eq!(g.min_close(&s), 3, "90 is too small: 900");
    assert!(g.accepts(b"18446744073709551615") && !g.accepts(b"18446744073709551616"));
    // Negative ranges: the shortest value is the one closest to zero.
    let g = Grammar::from_schema(&json!({"type":"integer","minimum":-25,"exclusiveMaximum":-3})).unwrap();
    assert!(g.accepts(b"-4") && g.accepts(b"-25") && !g.accepts(b"-3") && !g.accepts(b"-26") && !g.accepts(b"4"));
    let (r, f) = range_frame(&g, &g.advance(&g.initial_state(), b"-")).unwrap();
    let mut out = Vec::new();
    r.complete(f, &mut out);
    assert_eq!(out, b"4");
    // Decimals: exclusive bounds with fraction digits.
    let g = Grammar::from_schema(&json!({"type":"number","exclusiveMinimum":0,"maximum":1.5})).unwrap();
    for ok in ["0.1", "1", "1.5", "1.25", "0.00000000000001"] {
        assert!(g.accepts(ok.as_bytes()), "{ok}");
    }
    for bad in ["0", "-0", "0.0", "1.51", "2", "1e0", "-0.5", "0.000000000000001"] {
        assert!(!g.accepts(bad.as_bytes()), "{bad}");
    }
    assert_eq!(g.min_close(&g.initial_state()), 2, "1 and the end token");
    let s = g.advance(&g.initial_state(), b"0");
    assert_eq!(g.min_close(&s), 3, "0 needs .1");
}
