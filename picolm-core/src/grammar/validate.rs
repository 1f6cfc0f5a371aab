//! A reference validator for the supported JSON Schema subset, written straight from the JSON Schema rules and
//! sharing no code with the automaton: tests check the automaton's outputs with it, and callers can check values
//! that did not come from constrained decoding.

use serde_json::Value;

/// Validates `v` against the supported schema subset, written straight from the JSON Schema rules.
pub fn validate(v: &Value, s: &Value) -> bool {
    let Some(o) = s.as_object() else { return s == &Value::Bool(true) };
    if let Some(c) = o.get("const") {
        return v == c;
    }
    if let Some(e) = o.get("enum") {
        return e.as_array().unwrap().contains(v);
    }
    if let Some(a) = o.get("anyOf") {
        return a.as_array().unwrap().iter().any(|x| validate(v, x));
    }
    let types: Vec<&str> = match o.get("type") {
        Some(Value::String(t)) => vec![t],
        Some(Value::Array(ts)) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
        _ => vec![],
    };
    let type_ok = |t: &str| match t {
        "string" => v.is_string(),
        "number" => v.is_number(),
        // JSON Schema: any number with a zero fractional part (so `-0` is an integer).
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    };
    if !types.is_empty() && !types.iter().any(|t| type_ok(t)) {
        return false;
    }
    if let Some(sv) = v.as_str() {
        let n = sv.chars().count() as u64;
        if o.get("minLength").and_then(Value::as_u64).is_some_and(|m| n < m) { return false; }
        if o.get("maxLength").and_then(Value::as_u64).is_some_and(|m| n > m) { return false; }
    }
    if let Some(arr) = v.as_array() {
        let n = arr.len() as u64;
        if o.get("minItems").and_then(Value::as_u64).is_some_and(|m| n < m) { return false; }
        if o.get("maxItems").and_then(Value::as_u64).is_some_and(|m| n > m) { return false; }
        if let Some(items) = o.get("items") {
            if !arr.iter().all(|x| validate(x, items)) { return false; }
        }
    }
    if let Some(obj) = v.as_object() {
        let props = o.get("properties").and_then(Value::as_object);
        if let Some(req) = o.get("required").and_then(Value::as_array) {
            if !req.iter().all(|r| obj.contains_key(r.as_str().unwrap())) { return false; }
        }
        let additional = o.get("additionalProperties").cloned().unwrap_or(if props.is_some() { Value::Bool(false) } else { Value::Bool(true) });
        for (k, x) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => if !validate(x, ps) { return false; },
                None => match &additional {
                    Value::Bool(false) => return false,
                    a => if !validate(x, a) { return false; },
                },
            }
        }
    }
    true
}

