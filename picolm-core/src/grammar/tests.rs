//! Tests of the JSON automaton, the schema compiler and the token mask. Outputs are checked by an independent
//! parser (serde_json) and the small schema validator below, which shares no code with the automaton.

use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::sampler::Rng;

use super::validate::validate;

fn any() -> Grammar {
    Grammar::json()
}

#[test]
fn free_json_accepts_rfc8259_values() {
    let g = any();
    for ok in [
        "{}", "[]", "0", "-0", "12.5e-3", "true", "false", "null", "\"\"", "\"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\"",
        "\"\\u00e9\\ud83d\\ude00\"", "{\"a\":[1,2,{\"b\":null}],\"c\":\"é€😀\"}", "[ 1 , 2 ]", "{ \"k\" : \"v\" }",
        "[[[[[]]]]]", "\"\u{7f}\"",
    ] {
        let s = g.advance(&g.initial_state(), ok.as_bytes());
        assert!(g.is_complete(&s) || g.can_end(&s), "rejected valid JSON {ok:?}");
        assert!(serde_json::from_str::<Value>(ok).is_ok(), "test case is not JSON: {ok:?}");
    }
}

#[test]
fn free_json_rejects_what_brace_counting_lets_through() {
    let g = any();
    for bad in [
        "{abc}", "{[}]", "{\"a\"}", "{\"a\":}", "[1,]", "{,}", "\"a\u{1}\"", "\"tab\there\"", "01", "1.", "-",
        "1e", "+1", ".5", "tru", "nul", "\"\\x\"", "\"\\u12g4\"", "\"\\udc00\"", "\"\\ud800x\"", "\"\\ud800\\u0041\"",
        "{\"a\":1}}", "[1]]", " {}", "{'a':1}", "NaN",
    ] {
        assert!(!g.accepts(bad.as_bytes()), "accepted invalid JSON {bad:?}");
    }
    // Truncated values are prefixes, never complete.
    for cut in ["{\"a\":1", "[1,2", "\"abc", "{\"a\":\"\\u00"] {
        let s = g.advance(&g.initial_state(), cut.as_bytes());
        assert!(!s.is_empty() && !g.is_complete(&s) && !g.can_end(&s), "{cut:?}");
    }
    // Invalid UTF-8 inside strings: overlong, surrogate, out of range, stray continuation.
    for bytes in [&b"\"\xc0\xaf\""[..], b"\"\xed\xa0\x80\"", b"\"\xf4\x90\x80\x80\"", b"\"\x80\"", b"\"\xe2\x82\""] {
        assert!(!g.accepts(bytes), "accepted invalid UTF-8 {bytes:?}");
    }
}

#[test]
fn whitespace_runs_are_bounded() {
    let g = any();
    let ok = format!("[{}1]", " ".repeat(DEFAULT_MAX_WHITESPACE as usize));
    let bad = format!("[{}1]", " ".repeat(DEFAULT_MAX_WHITESPACE as usize + 1));
    assert!(g.accepts(ok.as_bytes()));
    assert!(!g.accepts(bad.as_bytes()));
}

fn weather_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "minLength": 1, "maxLength": 20},
            "unit": {"enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 3},
            "exact": {"type": ["number", "null"]},
            "opts": {"type": "object", "properties": {"a": {"type": "boolean"}, "b": {"const": "x"}}, "required": ["a"]},
            "any": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "integer"}}]}
        },
        "required": ["city", "unit"]
    })
}

#[test]
fn schema_accepts_valid_and_rejects_invalid_instances() {
    let g = Grammar::from_schema(&weather_schema()).unwrap();
    for ok in [
        r#"{"city":"Paris","unit":"celsius"}"#,
        r#"{"unit":"fahrenheit","city":"Oslo","days":3,"tags":["a"],"exact":null}"#,
        r#"{"city":"x","unit":"celsius","opts":{"a":true,"b":"x"},"any":[1,2]}"#,
        r#"{"city":"x","unit":"celsius","any":"s","exact":-1.5e3}"#,
    ] {
        assert!(g.accepts(ok.as_bytes()), "rejected {ok}");
        assert!(validate(&serde_json::from_str(ok).unwrap(), &weather_schema()));
    }
    for bad in [
        r#"{"city":"Paris"}"#,
        r#"{"city":"","unit":"celsius"}"#,
        r#"{"city":"Paris","unit":"kelvin"}"#,
        r#"{"city":"Paris","unit":"celsius","extra":1}"#,
        r#"{"city":"Paris","unit":"celsius","days":1.5}"#,
        r#"{"city":"Paris","unit":"celsius","tags":[]}"#,
        r#"{"city":"Paris","unit":"celsius","tags":["a","b","c","d"]}"#,
        r#"{"city":"Paris","unit":"celsius","opts":{"b":"x"}}"#,
        r#"{"city":"Paris","unit":"celsius","city":"Rome"}"#,
        r#"{"city":"123456789012345678901","unit":"celsius"}"#,
        r#"{"city":"Paris","unit":"celsius","any":[1.5]}"#,
    ] {
        assert!(!g.accepts(bad.as_bytes()), "accepted {bad}");
        assert!(!validate(&serde_json::from_str(bad).unwrap(), &weather_schema()) || bad.matches("city").count() == 2);
    }
}

#[test]
fn additional_properties_schema_and_declared_names() {
    let s = json!({"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":{"type":"string"}});
    let g = Grammar::from_schema(&s).unwrap();
    assert!(g.accepts(br#"{"a":1,"b":"x"}"#));
    assert!(g.accepts(br#"{"b":"x"}"#));
    assert!(!g.accepts(br#"{"b":1}"#));
    assert!(!g.accepts(br#"{"a":"x"}"#), "a declared key must use its declared schema");
}

#[test]
fn unsupported_and_invalid_schemas_are_refused() {
    for (s, want) in [
        (json!({"type":"string","pattern":"^a"}), "pattern"),
        (json!({"$ref":"#/defs/x"}), "$ref"),
        (json!({"allOf":[]}), "allOf"),
        (json!({"type":"object","properties":{"a":{"oneOf":[]}}}), "oneOf"),
    ] {
        match Grammar::from_schema(&s) {
            Err(GrammarError::UnsupportedKeyword { keyword, .. }) => assert_eq!(keyword, want),
            other => panic!("{s}: {other:?}"),
        }
    }
    for s in [json!({"enum":[]}), json!({"type":"strng"}), json!(false), json!(3), json!({"type":"array","minItems":3,"maxItems":1})] {
        assert!(matches!(Grammar::from_schema(&s), Err(GrammarError::InvalidSchema { .. })), "{s}");
    }
    assert!(Grammar::from_schema_str("{not json").is_err());
}

/// A small vocabulary: every single byte, JSON fragments, multi-byte characters and split UTF-8 sequences.
fn test_vocab() -> (VocabIndex, u32) {
    let mut toks: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    for f in [
        "{\"", "\"}", "\":", "\",\"", "\": \"", "true", "false", "null", "},", "],", "[{", "}]", "\\u00e9", "\\n",
        "\\ud83d", "\\ude00", "é", "€", "😀", " ", "  ", "\n", "\n  ", "123", "-0.5e+10", "city", "\"city\"",
        "\"unit\":\"", "celsius", "abc def", "\"a", "0", "1.", "e5", "\"}]}", "[\"", "\",", "x\"", "\\\"", "Paris",
        "\"tags\":[", "\"opts\":{\"a\":", "{\"tool_calls\":[{\"", "\"function\"", "\"name\":\"", "get_weather", "{}", "[]",
    ] {
        toks.push(f.as_bytes().to_vec());
    }
    toks.push(vec![0xF0, 0x9F]);
    toks.push(vec![0x98, 0x80]);
    toks.push(Vec::new()); // a special token: never allowed
    let eog = toks.len() as u32;
    toks.push(Vec::new());
    (VocabIndex::from_token_bytes(toks, vec![eog]), eog)
}

/// Runs one constrained generation with random logits; returns the produced bytes and whether it completed.
fn random_generation(g: &Arc<Grammar>, vocab: &Arc<VocabIndex>, rng: &mut Rng, max_tokens: usize) -> (Vec<u8>, bool) {
    let mut c = JsonConstraint::new(g.clone(), vocab.clone());
    let mut out = Vec::new();
    for produced in 0..max_tokens {
        let allowed = c.allowed_tokens(max_tokens - produced).unwrap_or_else(|e| panic!("stuck after {:?} with {} of {max_tokens} tokens left: {e}", String::from_utf8_lossy(&out), max_tokens - produced));
        assert!(!allowed.is_empty());
        let t = allowed[(rng.next_u32() as usize) % allowed.len()];
        c.accept(t).expect("an allowed token is accepted");
        out.extend_from_slice(vocab.token_bytes(t));
        if c.complete() {
            return (out, true);
        }
    }
    (out, false)
}

#[test]
fn thousands_of_random_constrained_generations_parse_and_validate() {
    let (vocab, _) = test_vocab();
    let vocab = Arc::new(vocab);
    let schemas = [
        json!(true),
        weather_schema(),
        json!({"type":"array","items":{"type":"object","properties":{"n":{"type":"integer"},"s":{"type":"string","maxLength":3}},"required":["n"]},"maxItems":4}),
        json!({"anyOf":[{"type":"object","properties":{"x":{"const":1}},"required":["x"]},{"type":"object","properties":{"y":{"type":"boolean"}},"required":["y"]}]}),
        json!({"type":"object","properties":{"k":{"enum":["a","ab","abc",1,12,null,[1,2],{"z":true}]}},"required":["k"]}),
        json!({"type":"string"}),
        json!({"type":"integer"}),
    ];
    let mut rng = Rng::new(1234);
    let mut count = 0;
    for s in &schemas {
        let g = Arc::new(Grammar::from_schema(s).unwrap());
        let min = g.min_close(&g.initial_state());
        for i in 0..400 {
            let max_tokens = min + (i % 60);
            let (bytes, complete) = random_generation(&g, &vocab, &mut rng, max_tokens);
            let text = String::from_utf8(bytes).expect("constrained output is UTF-8");
            // Top-level numbers end with the end token: treat an unfinished number run as ended there.
            let done = complete || g.can_end(&g.advance(&g.initial_state(), text.as_bytes()));
            assert!(done, "schema {s}: not complete within {max_tokens} tokens: {text:?}");
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("schema {s}: {text:?} does not parse: {e}"));
            assert!(validate(&v, s), "schema {s}: {text} does not validate");
            count += 1;
        }
    }
    assert_eq!(count, 2800);
}

#[test]
fn end_token_only_where_the_value_may_end() {
    let (vocab, eog) = test_vocab();
    let vocab = Arc::new(vocab);
    let g = Arc::new(Grammar::from_schema(&json!({"type":"integer"})).unwrap());
    let mut c = JsonConstraint::new(g.clone(), vocab.clone());
    assert!(!c.allowed_tokens(10).unwrap().contains(&eog));
    let mut c = JsonConstraint::new(g, vocab.clone());
    c.accept(b'4' as u32).unwrap();
    assert!(c.allowed_tokens(10).unwrap().contains(&eog));
    c.accept(eog).unwrap();
    assert!(c.complete());
    assert!(c.accept(b'1' as u32).is_err());
}

#[test]
fn budget_too_small_is_an_error_not_a_truncated_value() {
    let (vocab, _) = test_vocab();
    let g = Arc::new(Grammar::from_schema(&weather_schema()).unwrap());
    let mut c = JsonConstraint::new(g, Arc::new(vocab));
    assert!(matches!(c.allowed_tokens(5), Err(GrammarError::BudgetTooSmall { .. })));
}
