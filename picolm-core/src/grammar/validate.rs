//! A reference validator for the supported JSON Schema subset, written straight from the JSON Schema rules and
//! sharing no code with the automaton: tests check the automaton's outputs with it, and callers can check values
//! that did not come from constrained decoding. Every keyword applies together with the others (an `enum` beside
//! a `type` must satisfy both).

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

/// Validates `v` against the supported schema subset, written straight from the JSON Schema rules. Malformed
/// schemas (which the compiler refuses) validate nothing.
pub fn validate(v: &Value, s: &Value) -> bool {
    let Some(o) = s.as_object() else { return s == &Value::Bool(true) };
    if let Some(c) = o.get("const") {
        if v != c {
            return false;
        }
    }
    if let Some(e) = o.get("enum") {
        if !e.as_array().is_some_and(|list| list.contains(v)) {
            return false;
        }
    }
    if let Some(a) = o.get("anyOf") {
        if !a.as_array().is_some_and(|alts| alts.iter().any(|x| validate(v, x))) {
            return false;
        }
    }
    let types: Vec<&str> = match o.get("type") {
        Some(Value::String(t)) => vec![t],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
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
    if o.contains_key("type") && !types.iter().any(|t| type_ok(t)) {
        return false;
    }
    if let Some(n) = v.as_number() {
        if !numeric_ok(n, o) {
            return false;
        }
    }
    if let Some(sv) = v.as_str() {
        let n = sv.chars().count() as u64;
        if o.get("minLength").and_then(Value::as_u64).is_some_and(|m| n < m) {
            return false;
        }
        if o.get("maxLength").and_then(Value::as_u64).is_some_and(|m| n > m) {
            return false;
        }
        if let Some(f) = o.get("format").and_then(Value::as_str) {
            if !format_ok(f, sv) {
                return false;
            }
        }
    }
    if let Some(arr) = v.as_array() {
        let n = arr.len() as u64;
        if o.get("minItems").and_then(Value::as_u64).is_some_and(|m| n < m) {
            return false;
        }
        if o.get("maxItems").and_then(Value::as_u64).is_some_and(|m| n > m) {
            return false;
        }
        if let Some(items) = o.get("items") {
            if !arr.iter().all(|x| validate(x, items)) {
                return false;
            }
        }
    }
    if let Some(obj) = v.as_object() {
        let props = o.get("properties").and_then(Value::as_object);
        if let Some(req) = o.get("required").and_then(Value::as_array) {
            if !req.iter().all(|r| r.as_str().is_some_and(|r| obj.contains_key(r))) {
                return false;
            }
        }
        let additional = o.get("additionalProperties").cloned().unwrap_or(if props.is_some() {
            Value::Bool(false)
        } else {
            Value::Bool(true)
        });
        for (k, x) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => {
                    if !validate(x, ps) {
                        return false;
                    }
                }
                None => match &additional {
                    Value::Bool(false) => return false,
                    a => {
                        if !validate(x, a) {
                            return false;
                        }
                    }
                },
            }
        }
    }
    true
}

/// `minimum`, `maximum`, `exclusiveMinimum`, `exclusiveMaximum` (numbers, or the draft-4 booleans that make
/// `minimum`/`maximum` exclusive) and `multipleOf`, with exact comparisons (a 64-bit integer is not rounded to a
/// double to be compared with one).
pub(super) fn numeric_ok(n: &Number, o: &Map<String, Value>) -> bool {
    let bound = |key: &str| o.get(key).and_then(Value::as_number);
    let draft4 = |key: &str| o.get(key) == Some(&Value::Bool(true));
    if let Some(m) = bound("minimum") {
        let c = exact_cmp(n, m);
        if c == Ordering::Less || (c == Ordering::Equal && draft4("exclusiveMinimum")) {
            return false;
        }
    }
    if let Some(m) = bound("maximum") {
        let c = exact_cmp(n, m);
        if c == Ordering::Greater || (c == Ordering::Equal && draft4("exclusiveMaximum")) {
            return false;
        }
    }
    if bound("exclusiveMinimum").is_some_and(|m| exact_cmp(n, m) != Ordering::Greater) {
        return false;
    }
    if bound("exclusiveMaximum").is_some_and(|m| exact_cmp(n, m) != Ordering::Less) {
        return false;
    }
    if let Some(m) = bound("multipleOf") {
        let ok = match (n.as_i64(), m.as_i64()) {
            (Some(a), Some(b)) if b > 0 => a % b == 0,
            _ => n
                .as_f64()
                .zip(m.as_f64())
                .is_some_and(|(a, b)| b > 0.0 && (a / b).is_finite() && (a / b).fract() == 0.0),
        };
        if !ok {
            return false;
        }
    }
    true
}

/// The exact order of two JSON numbers. An integer and a double are compared through the double's integer part
/// (exact in `i128` below 2^100) and then its fraction.
fn exact_cmp(a: &Number, b: &Number) -> Ordering {
    let as_int = |n: &Number| n.as_i64().map(i128::from).or(n.as_u64().map(i128::from));
    let int_float = |i: i128, f: f64| -> Ordering {
        let limit = 2f64.powi(100);
        if f.abs() >= limit {
            return if f > 0.0 { Ordering::Less } else { Ordering::Greater };
        }
        let fl = f.floor();
        match i.cmp(&(fl as i128)) {
            Ordering::Equal if f > fl => Ordering::Less,
            other => other,
        }
    };
    match (as_int(a), as_int(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(x), None) => int_float(x, b.as_f64().unwrap_or(f64::NAN)),
        (None, Some(y)) => int_float(y, a.as_f64().unwrap_or(f64::NAN)).reverse(),
        (None, None) => a.as_f64().partial_cmp(&b.as_f64()).unwrap_or(Ordering::Equal),
    }
}

/// The supported formats, checked by parsing (RFC 3339 dates and times, RFC 4122 UUIDs, dot-atom e-mail
/// addresses at DNS names); unknown formats validate nothing.
fn format_ok(format: &str, s: &str) -> bool {
    match format {
        "date" => date_ok(s),
        "date-time" => date_time_ok(s),
        "uuid" => uuid_ok(s),
        "email" => email_ok(s),
        _ => false,
    }
}

fn number(s: &str, digits: usize) -> Option<u32> {
    (s.len() == digits && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

fn date_ok(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts[..] else { return false };
    let (Some(y), Some(m), Some(d)) = (number(y, 4), number(m, 2), number(d, 2)) else { return false };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

fn date_time_ok(s: &str) -> bool {
    let Some(t) = s.find(['T', 't']) else { return false };
    let (date, time) = (&s[..t], &s[t + 1..]);
    if !date_ok(date) {
        return false;
    }
    let (clock, offset) = match time.find(['Z', 'z', '+', '-']) {
        Some(i) => (&time[..i], &time[i..]),
        None => return false,
    };
    let (hms, frac) = match clock.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (clock, None),
    };
    if frac.is_some_and(|f| f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit())) {
        return false;
    }
    let hms: Vec<&str> = hms.split(':').collect();
    let [h, mi, se] = hms[..] else { return false };
    let (Some(h), Some(mi), Some(se)) = (number(h, 2), number(mi, 2), number(se, 2)) else { return false };
    if h > 23 || mi > 59 || se > 59 {
        return false;
    }
    match offset {
        "Z" | "z" => true,
        o => {
            let Some((oh, om)) = o[1..].split_once(':') else { return false };
            matches!((number(oh, 2), number(om, 2)), (Some(oh), Some(om)) if oh <= 23 && om <= 59)
        }
    }
}

fn uuid_ok(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn email_ok(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.split('.').all(|atom| !atom.is_empty() && atom.bytes().all(atext));
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    local_ok
        && s.len() <= 254
        && domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(label_ok)
        && labels.last().is_some_and(|l| l.bytes().any(|b| b.is_ascii_alphabetic()))
}
