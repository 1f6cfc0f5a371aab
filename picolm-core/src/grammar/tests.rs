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
    // Insignificant whitespace is allowed when the grammar's bound allows it (the default is compact).
    let g = Grammar::new(CompiledSchema::any(), 16);
    for ok in [
        "{}",
        "[]",
        "0",
        "-0",
        "12.5e-3",
        "true",
        "false",
        "null",
        "\"\"",
        "\"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\"",
        "\"\\u00e9\\ud83d\\ude00\"",
        "{\"a\":[1,2,{\"b\":null}],\"c\":\"é€😀\"}",
        "[ 1 , 2 ]",
        "{ \"k\" : \"v\" }",
        "[[[[[]]]]]",
        "\"\u{7f}\"",
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
        "{abc}",
        "{[}]",
        "{\"a\"}",
        "{\"a\":}",
        "[1,]",
        "{,}",
        "\"a\u{1}\"",
        "\"tab\there\"",
        "01",
        "1.",
        "-",
        "1e",
        "+1",
        ".5",
        "tru",
        "nul",
        "\"\\x\"",
        "\"\\u12g4\"",
        "\"\\udc00\"",
        "\"\\ud800x\"",
        "\"\\ud800\\u0041\"",
        "{\"a\":1}}",
        "[1]]",
        " {}",
        "{'a':1}",
        "NaN",
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
    let g = Grammar::new(CompiledSchema::any(), 16);
    assert!(g.accepts(format!("[{}1]", " ".repeat(16)).as_bytes()));
    assert!(!g.accepts(format!("[{}1]", " ".repeat(17)).as_bytes()));
    // The default is compact: no insignificant whitespace at all.
    assert_eq!(DEFAULT_MAX_WHITESPACE, 0);
    for g in [any(), Grammar::json_object(), Grammar::from_schema(&weather_schema()).unwrap()] {
        assert!(!g.accepts(b"{ }") && !g.accepts(b"{\n  \"city\": \"x\"}") && !g.accepts(b"[1, 2]"));
    }
    assert!(any().accepts(b"[1,2]"));
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
    for s in [
        json!({"enum":[]}),
        json!({"type":"strng"}),
        json!(false),
        json!(3),
        json!({"type":"array","minItems":3,"maxItems":1}),
    ] {
        assert!(matches!(Grammar::from_schema(&s), Err(GrammarError::InvalidSchema { .. })), "{s}");
    }
    assert!(Grammar::from_schema_str("{not json").is_err());
}

/// A small vocabulary: every single byte, JSON fragments, multi-byte characters and split UTF-8 sequences.
fn test_vocab() -> (VocabIndex, u32) {
    let mut toks: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    for f in [
        "{\"",
        "\"}",
        "\":",
        "\",\"",
        "\": \"",
        "true",
        "false",
        "null",
        "},",
        "],",
        "[{",
        "}]",
        "\\u00e9",
        "\\n",
        "\\ud83d",
        "\\ude00",
        "é",
        "€",
        "😀",
        " ",
        "  ",
        "\n",
        "\n  ",
        "123",
        "-0.5e+10",
        "city",
        "\"city\"",
        "\"unit\":\"",
        "celsius",
        "abc def",
        "\"a",
        "0",
        "1.",
        "e5",
        "\"}]}",
        "[\"",
        "\",",
        "x\"",
        "\\\"",
        "Paris",
        "\"tags\":[",
        "\"opts\":{\"a\":",
        "{\"tool_calls\":[{\"",
        "\"function\"",
        "\"name\":\"",
        "get_weather",
        "{}",
        "[]",
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
        let allowed = c.allowed_tokens(max_tokens - produced).unwrap_or_else(|e| {
            panic!(
                "stuck after {:?} with {} of {max_tokens} tokens left: {e}",
                String::from_utf8_lossy(&out),
                max_tokens - produced
            )
        });
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
        json!({"type":"object","properties":{
            "when":{"type":"string","format":"date-time"},"day":{"type":"string","format":"date"},
            "id":{"type":"string","format":"uuid"},"mail":{"type":"string","format":"email","maxLength":24},
            "maybe":{"type":["string","null"],"format":"date"}},"required":["when","day","id","mail","maybe"]}),
        json!({"enum":[1,12,123,"x",[1]]}),
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
            let v: Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("schema {s}: {text:?} does not parse: {e}"));
            assert!(validate(&v, s), "schema {s}: {text} does not validate");
            count += 1;
        }
    }
    assert_eq!(count, 3600);
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
fn budget_is_counted_in_tokens_and_exactly_that_budget_finishes() {
    let (vocab, _) = test_vocab();
    let vocab = Arc::new(vocab);
    let s = json!({"type":"object","properties":{"tool_calls":{"type":"array","items":{"type":"object","properties":{
        "function":{"type":"object","properties":{"name":{"const":"get_weather"}},"required":["name"]}},"required":["function"]},
        "minItems":1}},"required":["tool_calls"]});
    let g = Arc::new(Grammar::from_schema(&s).unwrap());
    let bytes = g.min_close(&g.initial_state()) as u64;
    let tokens = JsonConstraint::new(g.clone(), vocab.clone()).min_tokens();
    // `{"tool_calls":[{"` + `"function"` + `:{` + `"name":"` + `get_weather` + `"}}]}` ... far fewer than bytes.
    assert!(tokens < bytes / 3, "{tokens} tokens for {bytes} bytes");
    let mut rng = Rng::new(9);
    for _ in 0..200 {
        let (bytes, complete) = random_generation(&g, &vocab, &mut rng, tokens as usize);
        assert!(complete, "cut off: {:?}", String::from_utf8_lossy(&bytes));
        assert!(validate(&serde_json::from_slice(&bytes).unwrap(), &s));
    }
}

#[test]
fn a_schema_that_cannot_fit_is_refused_not_wrapped() {
    // 2 + n * min_len wrapped around in release builds: this "fitted in 5 bytes" and printed `[ [[0,`.
    let n = u32::MAX - 1;
    let s = json!({"type":"array","minItems":n,"items":{"type":"array","minItems":n,"items":{"type":"integer"}}});
    let g = Arc::new(Grammar::from_schema(&s).unwrap());
    assert_eq!(g.min_close(&g.initial_state()), usize::MAX);
    let (vocab, _) = test_vocab();
    let mut c = JsonConstraint::new(g, Arc::new(vocab));
    assert!(c.min_tokens() > u64::from(u32::MAX));
    match c.allowed_tokens(1 << 20) {
        Err(GrammarError::BudgetTooSmall { needed, max_tokens }) => assert!(needed > max_tokens as u64),
        other => panic!("{other:?}"),
    }
}

#[test]
fn closing_a_high_surrogate_escape_counts_its_low_half() {
    let g = any();
    // After `"\uD8` the shortest completion is `00\uDC00"` (9 bytes), not `00"`.
    let s = g.advance(&g.initial_state(), b"\"\\uD8");
    assert_eq!(g.min_close(&s), 9);
    assert!(g.accepts(b"\"\\uD800\\uDC00\""));
}

#[test]
fn empty_properties_admit_no_keys() {
    // The default parameters of a tool without arguments: only `{}`.
    let g = Grammar::from_schema(&json!({"type":"object","properties":{}})).unwrap();
    assert!(g.accepts(b"{}"));
    for bad in [&br#"{"a":1}"#[..], br#"{"":{}}"#, br#"{"x":{"y":{"z":[]}}}"#] {
        assert!(!g.accepts(bad), "{}", String::from_utf8_lossy(bad));
    }
    // Without `properties`, any members; with `additionalProperties`, those.
    assert!(Grammar::from_schema(&json!({"type":"object"})).unwrap().accepts(br#"{"a":1}"#));
    let g = Grammar::from_schema(&json!({"type":"object","properties":{},"additionalProperties":{"type":"integer"}}))
        .unwrap();
    assert!(g.accepts(br#"{"a":1}"#) && !g.accepts(br#"{"a":"x"}"#));
}

#[test]
fn undeclared_keys_cannot_spell_a_declared_name_differently() {
    let s = json!({"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":{"type":"string"}});
    let g = Grammar::from_schema(&s).unwrap();
    assert!(g.accepts(br#"{"a":1,"b":"x"}"#));
    // `\u0061` is "a": as an undeclared key it would be a second "a" with a string value.
    assert!(!g.accepts(br#"{"a":1,"\u0061":"x"}"#));
    assert!(!g.accepts(br#"{"\u0061":"x"}"#));
}

#[test]
fn formats_are_enforced_and_unknown_formats_refused() {
    let cases = [
        ("date", &["2024-02-29", "1999-12-31"][..], &["2023-02-29", "2024-13-01", "2024-1-1", "\\u0032024-01-01"][..]),
        (
            "date-time",
            &["2024-02-29T23:59:59Z", "1996-12-19T16:39:57.25-08:00"],
            &["2024-02-29 23:59:59Z", "2024-02-29T24:00:00Z", "2024-02-29T23:59:60Z"],
        ),
        (
            "uuid",
            &["123e4567-e89b-12d3-a456-426614174000"],
            &["123e4567e89b12d3a456426614174000", "123e4567-e89b-12d3-a456-42661417400g"],
        ),
        ("email", &["first.last@example.org", "a@b.co"], &["a@b", "a..b@c.de", "a@-b.de", "é@x.io"]),
    ];
    for (f, good, bad) in cases {
        let s = json!({"type":"string","format":f});
        let g = Grammar::from_schema(&s).unwrap();
        for v in good {
            assert!(g.accepts(format!("\"{v}\"").as_bytes()), "{f}: {v}");
            assert!(validate(&json!(v), &s), "{f}: {v}");
        }
        for v in bad {
            assert!(!g.accepts(format!("\"{v}\"").as_bytes()), "{f}: {v}");
        }
    }
    for f in ["hostname", "uri", "ipv4", "int32", "regex"] {
        match Grammar::from_schema(&json!({"type":"string","format":f})) {
            Err(GrammarError::UnsupportedKeyword { keyword, .. }) => assert!(keyword.contains(f), "{keyword}"),
            other => panic!("{f}: {other:?}"),
        }
    }
    // A format cannot fit a shorter maxLength; a longer minLength than its shortest value is not supported.
    assert!(matches!(
        Grammar::from_schema(&json!({"type":"string","format":"date","maxLength":9})),
        Err(GrammarError::InvalidSchema { .. })
    ));
    assert!(matches!(
        Grammar::from_schema(&json!({"type":"string","format":"email","minLength":6})),
        Err(GrammarError::UnsupportedKeyword { .. })
    ));
    // maxLength bounds an e-mail address while it is written: a prefix that cannot end in time is refused.
    let g = Grammar::from_schema(&json!({"type":"string","format":"email","maxLength":7})).unwrap();
    assert!(g.accepts(br#""ab@c.de""#) && !g.accepts(br#""abc@d.ef""#));
    assert!(g.advance(&g.initial_state(), br#""abcd@"#).is_empty(), "abcd@ needs at least 3 more characters");
}

#[test]
fn json_object_mode_admits_only_objects() {
    let g = Grammar::json_object();
    for ok in [&b"{}"[..], br#"{"a":[1,{"b":null}],"c":"x"}"#] {
        assert!(g.accepts(ok));
    }
    for bad in [&b"5"[..], b"\"x\"", b"[1]", b"true", b"null", b"{ }"] {
        assert!(!g.accepts(bad), "{}", String::from_utf8_lossy(bad));
    }
    assert!(Grammar::json().accepts(b"5"));
    assert_eq!(JsonMode::from_name("object"), Some(JsonMode::Object));
    assert_eq!(JsonMode::Value.name(), "value");
}

#[test]
fn duplicate_types_compile_once() {
    // `type: ["array","array"]` nested 24 deep compiled `items` once per entry: 2^24 nodes, 29 s and 4.7 GB.
    let mut s = json!({"type":"integer"});
    for _ in 0..24 {
        s = json!({"type":["array","array"],"items":s});
    }
    let g = Grammar::from_schema(&s).unwrap();
    assert!(g.schema().nodes.len() < 64, "{} nodes", g.schema().nodes.len());
    assert!(g.accepts(format!("{}1{}", "[".repeat(24), "]".repeat(24)).as_bytes()));
}

#[test]
fn a_huge_enum_compiles_in_linear_time_and_parses_as_one_stack() {
    let values: Vec<Value> = (0..100_000).map(|i| json!(format!("value-{i}"))).collect();
    let s = json!({"enum": values});
    let g = Grammar::from_schema(&s).unwrap();
    assert_eq!(g.schema().literals.len(), 100_000 + 3);
    // One parse follows all values through their trie (not 100 000 parses side by side).
    assert_eq!(g.advance(&g.initial_state(), b"\"value-9").len(), 1);
    assert!(g.accepts(b"\"value-99999\"") && !g.accepts(b"\"value-100000\""));
    let (vocab, _) = test_vocab();
    let mut c = JsonConstraint::new(Arc::new(g), Arc::new(vocab));
    assert!(!c.allowed_tokens(64).unwrap().is_empty());
}

#[test]
fn enum_values_must_satisfy_the_keywords_beside_them() {
    let g = Grammar::from_schema(&json!({"type":"string","enum":["a",1,"abc"],"maxLength":2})).unwrap();
    assert!(g.accepts(b"\"a\"") && !g.accepts(b"1") && !g.accepts(b"\"abc\""));
    assert!(matches!(
        Grammar::from_schema(&json!({"type":"integer","enum":["a"]})),
        Err(GrammarError::InvalidSchema { .. })
    ));
    assert!(matches!(
        Grammar::from_schema(&json!({"anyOf":[{"type":"string"}],"required":["a"]})),
        Err(GrammarError::UnsupportedKeyword { .. })
    ));
}

#[test]
fn compile_budgets_give_clear_errors() {
    assert!(
        matches!(Grammar::from_schema(&json!({"type":[]})), Err(GrammarError::InvalidSchema { why, .. }) if why.contains("empty"))
    );
    // Too many nodes.
    let alts: Vec<Value> = (0..MAX_SCHEMA_NODES + 1).map(|_| json!({"type":"null"})).collect();
    assert!(matches!(Grammar::from_schema(&json!({"anyOf": alts})), Err(GrammarError::TooLarge { .. })));
    // Too much literal text.
    let long = "x".repeat(MAX_LITERAL_BYTES / 2 + 1);
    assert!(matches!(
        Grammar::from_schema(&json!({"enum":[long.clone(), long + "y"]})),
        Err(GrammarError::TooLarge { .. })
    ));
    // anyOf alternatives multiplied along the nesting: 40 x 40 parses at once.
    let inner: Vec<Value> =
        (0..40).map(|i| json!({"type":"object","properties":{"k":{"const":i}},"required":["k"]})).collect();
    let outer: Vec<Value> =
        (0..40).map(|_| json!({"type":"object","properties":{"v":{"anyOf": inner.clone()}}})).collect();
    match Grammar::from_schema(&json!({"anyOf": outer})) {
        Err(e @ GrammarError::TooLarge { .. }) => assert!(e.to_string().contains("1600"), "{e}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn budget_too_small_is_an_error_not_a_truncated_value() {
    let (vocab, _) = test_vocab();
    let g = Arc::new(Grammar::from_schema(&weather_schema()).unwrap());
    let mut c = JsonConstraint::new(g, Arc::new(vocab));
    assert!(matches!(c.allowed_tokens(5), Err(GrammarError::BudgetTooSmall { .. })));
}

#[test]
fn numeric_bounds_are_enforced_and_bad_bounds_refused() {
    // Empty ranges are invalid schemas, and the message names the keywords.
    for (s, words) in [
        (json!({"type":"integer","minimum":10,"maximum":1}), ["minimum 10", "maximum 1"]),
        (json!({"type":"number","minimum":1,"exclusiveMaximum":1}), ["minimum 1", "exclusiveMaximum 1"]),
        (
            json!({"type":"integer","exclusiveMinimum":1,"exclusiveMaximum":2}),
            ["exclusiveMinimum 1", "exclusiveMaximum 2"],
        ),
        (json!({"type":"integer","minimum":1.2,"maximum":1.8}), ["minimum 1.2", "maximum 1.8"]),
    ] {
        match Grammar::from_schema(&s) {
            Err(e @ GrammarError::InvalidSchema { .. }) => {
                let m = e.to_string();
                assert!(words.iter().all(|w| m.contains(w)), "{s}: {m}");
            }
            other => panic!("{s}: {other:?}"),
        }
    }
    for s in [
        json!({"type":"integer","minimum":"1"}),
        json!({"maximum":true}),
        json!({"type":"number","multipleOf":0}),
        json!({"type":"integer","exclusiveMinimum":true}),
    ] {
        assert!(matches!(Grammar::from_schema(&s), Err(GrammarError::InvalidSchema { .. })), "{s}");
    }
    // multipleOf: only where every integer satisfies it.
    for s in [
        json!({"type":"integer","multipleOf":3}),
        json!({"type":"number","multipleOf":0.5}),
        json!({"type":"integer","multipleOf":0.1}),
    ] {
        match Grammar::from_schema(&s) {
            Err(GrammarError::UnsupportedKeyword { keyword, .. }) => {
                assert!(keyword.starts_with("multipleOf"), "{keyword}")
            }
            other => panic!("{s}: {other:?}"),
        }
    }
    let g = Grammar::from_schema(&json!({"type":"integer","multipleOf":1,"minimum":0,"maximum":3})).unwrap();
    assert!(g.accepts(b"3") && !g.accepts(b"4"));
    assert!(Grammar::from_schema(&json!({"type":"integer","multipleOf":0.5})).unwrap().accepts(b"7"));
    // A number range no 15-digit decimal reaches is refused, naming the keyword; integers beyond 64 bits too.
    for (s, word) in [
        (json!({"type":"number","minimum":1e20}), "minimum"),
        (json!({"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1e-20}), "exclusiveMaximum"),
        (json!({"type":"integer","minimum":1e20}), "minimum"),
    ] {
        match Grammar::from_schema(&s) {
            Err(GrammarError::UnsupportedKeyword { keyword, .. }) => assert!(keyword.contains(word), "{keyword}"),
            other => panic!("{s}: {other:?}"),
        }
    }
    // Draft-4 booleans make minimum/maximum exclusive; the tighter of two lower bounds wins.
    let g = Grammar::from_schema(
        &json!({"type":"integer","minimum":1,"exclusiveMinimum":true,"maximum":5,"exclusiveMaximum":true}),
    )
    .unwrap();
    assert!(!g.accepts(b"1") && g.accepts(b"2") && g.accepts(b"4") && !g.accepts(b"5"));
    let g = Grammar::from_schema(&json!({"type":"integer","minimum":3,"exclusiveMinimum":3})).unwrap();
    assert!(!g.accepts(b"3") && g.accepts(b"4"));
    // Without `type`, bounds mean a number; beside enum they filter its values; in a type list they bound numbers.
    let g = Grammar::from_schema(&json!({"minimum":0})).unwrap();
    assert!(g.accepts(b"0.5") && !g.accepts(b"-1") && !g.accepts(b"\"x\""));
    let g = Grammar::from_schema(&json!({"enum":[1,5,"a",50],"maximum":10})).unwrap();
    assert!(g.accepts(b"1") && g.accepts(b"5") && g.accepts(b"\"a\"") && !g.accepts(b"50"));
    let g = Grammar::from_schema(&json!({"type":["integer","null"],"minimum":1,"maximum":10})).unwrap();
    assert!(g.accepts(b"null") && g.accepts(b"10") && !g.accepts(b"0"));
    // The validator applies the same bounds, exactly.
    let s = json!({"type":"integer","minimum":1,"maximum":10});
    assert!(
        validate(&json!(1), &s) && validate(&json!(10), &s) && !validate(&json!(0), &s) && !validate(&json!(11), &s)
    );
    let s = json!({"exclusiveMaximum": 9007199254740993u64});
    assert!(validate(&json!(9007199254740992u64), &s) && !validate(&json!(9007199254740993u64), &s));
    assert!(!validate(&json!(3), &json!({"multipleOf": 2})) && validate(&json!(4), &json!({"multipleOf": 2})));
}

#[test]
fn bounded_numbers_in_objects_generate_valid_values_within_budget() {
    let (vocab, _) = test_vocab();
    let vocab = Arc::new(vocab);
    let s = json!({"type":"object","properties":{
        "query":{"type":"string","maxLength":8},
        "count":{"type":"integer","minimum":1,"maximum":10},
        "maxChars":{"type":"integer","minimum":100},
        "ratio":{"type":"number","exclusiveMinimum":0,"maximum":1},
        "delta":{"type":"integer","minimum":-50,"maximum":-7}},
        "required":["query","count","maxChars","ratio","delta"]});
    let g = Arc::new(Grammar::from_schema(&s).unwrap());
    let tokens = JsonConstraint::new(g.clone(), vocab.clone()).min_tokens() as usize;
    let mut rng = Rng::new(77);
    for i in 0..300 {
        let (bytes, complete) = random_generation(&g, &vocab, &mut rng, tokens + i % 20);
        let text = String::from_utf8(bytes).unwrap();
        assert!(complete, "cut off: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(validate(&v, &s), "{text} does not validate");
    }
}

/// Regression (schema fuzzer, `fuzz/fuzz_targets/schema_automaton.rs`): keywords of one type without `type` were
/// ignored, so `{"minItems":1,"maxItems":2}` accepted `[1,2e5,-3e2]`. Whatever a type-less schema accepts must
/// validate; and it must still accept some valid instance.
#[test]
fn type_specific_keywords_without_type_are_enforced() {
    let candidates = [
        "[1,2e5,-3e2]",
        "[]",
        "[1]",
        "[1,2]",
        "{}",
        r#"{"a":1}"#,
        r#"{"b":"x"}"#,
        r#""""#,
        r#""abc""#,
        "1",
        "-2.5",
        "true",
        "null",
    ];
    for schema in [
        json!({"minItems":1,"maxItems":2}),
        json!({"maxItems":0}),
        json!({"minItems":3}),
        json!({"required":["a"],"properties":{"a":{"type":"integer"}}}),
        json!({"minLength":2}),
        json!({"maximum":0}),
    ] {
        let g = Grammar::from_schema(&schema).unwrap_or_else(|e| panic!("{schema}: {e}"));
        let mut accepted = 0;
        for c in candidates {
            let valid = validate(&serde_json::from_str(c).unwrap(), &schema);
            if g.accepts(c.as_bytes()) {
                assert!(valid, "{schema} accepted {c}, which does not validate");
                accepted += 1;
            }
        }
        assert!(accepted > 0, "{schema} accepted none of the candidates");
    }
    // `required` alone means an object, so it is refused as it is with `"type":"object"` (a required name must be
    // declared), not read as "any value" (which accepted `{}`).
    let typeless = Grammar::from_schema(&json!({"required":["a"]})).map(|_| ()).unwrap_err().to_string();
    let typed = Grammar::from_schema(&json!({"type":"object","required":["a"]})).map(|_| ()).unwrap_err().to_string();
    assert_eq!(typeless, typed);
}
