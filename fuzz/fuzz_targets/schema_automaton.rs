//! JSON Schema compile + automaton walk. Input: a schema (JSON text) and, after the first NUL byte, a candidate
//! output. Invariants: compilation is a typed error or a grammar (within its size/time budget, never a panic or a
//! hang); walking the candidate byte by byte never panics; whenever the grammar accepts the candidate, it parses
//! as JSON and validates against the schema (the promise of constrained output).
#![no_main]

use libfuzzer_sys::fuzz_target;
use picolm_core::grammar::{validate, Grammar};

fuzz_target!(|data: &[u8]| {
    let (schema, text) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(schema) = std::str::from_utf8(schema) else { return };
    let Ok(schema_value) = serde_json::from_str::<serde_json::Value>(schema) else { return };
    let Ok(grammar) = Grammar::from_schema(&schema_value) else { return };
    let mut state = grammar.initial_state();
    let mut next = Vec::new();
    for &b in text {
        let _ = grammar.min_close(&state);
        grammar.step_state(&state, b, &mut next);
        std::mem::swap(&mut state, &mut next);
        if state.is_empty() {
            break;
        }
    }
    if !state.is_empty() && (grammar.is_complete(&state) || grammar.can_end(&state)) {
        let v: serde_json::Value = serde_json::from_slice(text)
            .unwrap_or_else(|e| panic!("accepted output does not parse ({e}): {:?}", String::from_utf8_lossy(text)));
        assert!(validate(&v, &schema_value), "accepted output {v} does not validate against {schema}");
    }
});
