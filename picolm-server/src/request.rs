//! Parsing of OpenAI request bodies into typed requests. Every wrong type or out-of-range value is a 400 naming
//! the parameter and the value; unknown fields are ignored; `null` counts as absent.

use picolm_core::agent::ToolSpec;
use picolm_core::chat::ChatMessage;
use picolm_core::SamplerParams;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Most stop strings (OpenAI's limit).
pub const MAX_STOP_STRINGS: usize = 4;

/// Token limit, sampling and stop strings shared by both endpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct GenOptions {
    /// `max_completion_tokens` or `max_tokens` (`None`: until the context is full).
    pub max_tokens: Option<usize>,
    /// Temperature, top-p and seed.
    pub sampler: SamplerParams,
    /// Stop strings.
    pub stop: Vec<String>,
    /// `stream: true`.
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
}

/// `tool_choice`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolChoiceReq {
    /// The model decides.
    Auto,
    /// No tool calls (the tools are not shown to the model).
    None,
    /// A call to one of the tools is required.
    Required,
    /// A call to this tool is required.
    Function(String),
}

/// `response_format`.
#[derive(Clone, Debug, PartialEq)]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// One JSON object.
    JsonObject,
    /// A value valid against this JSON Schema.
    JsonSchema(Value),
}

/// A parsed `POST /v1/chat/completions` body.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatRequest {
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Tool definitions.
    pub tools: Vec<ToolSpec>,
    /// Tool policy (`None` when no tools are given).
    pub tool_choice: ToolChoiceReq,
    /// Output format.
    pub response_format: ResponseFormat,
    /// Generation settings.
    pub gen: GenOptions,
}

/// A parsed `POST /v1/completions` body.
#[derive(Clone, Debug, PartialEq)]
pub struct CompletionRequest {
    /// The raw prompt (special tokens in it are parsed).
    pub prompt: String,
    /// Generation settings.
    pub gen: GenOptions,
}

/// OpenAI's default `max_tokens` of the legacy completions endpoint.
pub const COMPLETIONS_DEFAULT_MAX_TOKENS: usize = 16;

fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// Parses a body as a JSON object.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    match v {
        Value::Object(m) => Ok(m),
        other => Err(ApiError::bad_request(format!("the body must be a JSON object, got {}", type_name(&other)))),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn number(obj: &Map<String, Value>, key: &str, lo: f64, hi: f64) -> Result<Option<f32>, ApiError> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if !(lo..=hi).contains(&x) {
                return Err(ApiError::invalid(key, format!("{key} must be between {lo} and {hi}, got {n}")));
            }
            Ok(Some(x as f32))
        }
        Some(v) => Err(ApiError::invalid(key, format!("{key} must be a number, got {} {v}", type_name(v)))),
    }
}

fn positive_int(obj: &Map<String, Value>, key: &str) -> Result<Option<usize>, ApiError> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(x) if x >= 1 => Ok(Some(usize::try_from(x).unwrap_or(usize::MAX))),
            _ => Err(ApiError::invalid(key, format!("{key} must be an integer of at least 1, got {n}"))),
        },
        Some(v) => Err(ApiError::invalid(key, format!("{key} must be an integer, got {} {v}", type_name(v)))),
    }
}

fn boolean(obj: &Map<String, Value>, key: &str) -> Result<bool, ApiError> {
    match get(obj, key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(ApiError::invalid(key, format!("{key} must be a boolean, got {} {v}", type_name(v)))),
    }
}

/// Reads the generation settings. `default_max_tokens` applies when neither `max_completion_tokens` nor
/// `max_tokens` is given. Temperature defaults to OpenAI's 1; a missing seed is drawn per request.
pub fn parse_gen(obj: &Map<String, Value>, default_max_tokens: Option<usize>) -> Result<GenOptions, ApiError> {
    if let Some(n) = get(obj, "n") {
        if n.as_u64() != Some(1) {
            return Err(ApiError::invalid("n", format!("only n = 1 is supported, got {n}")));
        }
    }
    let max_tokens = match positive_int(obj, "max_completion_tokens")? {
        Some(n) => Some(n),
        None => positive_int(obj, "max_tokens")?,
    }
    .or(default_max_tokens);
    let mut sampler = SamplerParams { temperature: 1.0, ..SamplerParams::DEFAULT };
    if let Some(t) = number(obj, "temperature", 0.0, 2.0)? {
        sampler.temperature = t;
    }
    if let Some(p) = number(obj, "top_p", 0.0, 1.0)? {
        sampler.top_p = p;
    }
    sampler.seed = match get(obj, "seed") {
        None => random_seed(),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => {
            n.as_u64().unwrap_or_else(|| n.as_i64().unwrap_or(0) as u64)
        }
        Some(v) => return Err(ApiError::invalid("seed", format!("seed must be an integer, got {v}"))),
    };
    let stop = match get(obj, "stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(list)) => {
            if list.len() > MAX_STOP_STRINGS {
                return Err(ApiError::invalid(
                    "stop",
                    format!("at most {MAX_STOP_STRINGS} stop strings, got {}", list.len()),
                ));
            }
            list.iter()
                .map(|s| {
                    s.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| ApiError::invalid("stop", format!("stop strings must be strings, got {s}")))
                })
                .collect::<Result<_, _>>()?
        }
        Some(v) => {
            return Err(ApiError::invalid("stop", format!("stop must be a string or a list of strings, got {v}")))
        }
    };
    let stream = boolean(obj, "stream")?;
    let include_usage = match get(obj, "stream_options") {
        None => false,
        Some(Value::Object(o)) => boolean(o, "include_usage")
            .map_err(|e| ApiError { param: Some("stream_options.include_usage".into()), ..e })?,
        Some(v) => {
            return Err(ApiError::invalid("stream_options", format!("stream_options must be an object, got {v}")))
        }
    };
    Ok(GenOptions { max_tokens, sampler, stop, stream, include_usage })
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.finish()
}

fn parse_tools(obj: &Map<String, Value>) -> Result<Vec<ToolSpec>, ApiError> {
    let list = match get(obj, "tools") {
        None => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(v) => return Err(ApiError::invalid("tools", format!("tools must be a list, got {v}"))),
    };
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            let param = format!("tools[{i}]");
            match t.get("type").filter(|v| !v.is_null()) {
                None => {}
                Some(Value::String(s)) if s == "function" => {}
                Some(other) => {
                    return Err(ApiError::invalid(
                        param,
                        format!("only \"function\" tools are supported, got type {other}"),
                    ))
                }
            }
            let spec = ToolSpec::from_json(t).map_err(|e| ApiError::invalid(param.clone(), e.to_string()))?;
            spec.validate().map_err(|e| ApiError::invalid(param, e.to_string()))?;
            Ok(spec)
        })
        .collect()
}

fn parse_tool_choice(obj: &Map<String, Value>, tools: &[ToolSpec]) -> Result<ToolChoiceReq, ApiError> {
    let choice = match get(obj, "tool_choice") {
        None if tools.is_empty() => ToolChoiceReq::None,
        None => ToolChoiceReq::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "auto" => ToolChoiceReq::Auto,
            "none" => ToolChoiceReq::None,
            "required" => ToolChoiceReq::Required,
            other => {
                return Err(ApiError::invalid(
                    "tool_choice",
                    format!("tool_choice must be auto, none, required or a function, got {other:?}"),
                ))
            }
        },
        Some(v @ Value::Object(_)) => {
            let name = v.get("function").and_then(|f| f.get("name")).and_then(Value::as_str).ok_or_else(|| {
                ApiError::invalid(
                    "tool_choice",
                    format!("a named tool_choice is {{\"type\":\"function\",\"function\":{{\"name\":...}}}}, got {v}"),
                )
            })?;
            ToolChoiceReq::Function(name.to_string())
        }
        Some(v) => {
            return Err(ApiError::invalid("tool_choice", format!("tool_choice must be a string or an object, got {v}")))
        }
    };
    match &choice {
        ToolChoiceReq::Required if tools.is_empty() => {
            Err(ApiError::invalid("tool_choice", "tool_choice \"required\" needs tools"))
        }
        ToolChoiceReq::Function(n) if !tools.iter().any(|t| &t.name == n) => Err(ApiError::invalid(
            "tool_choice",
            format!("tool_choice names the function {n:?}, which is not among the tools"),
        )),
        ToolChoiceReq::Auto if tools.is_empty() => Ok(ToolChoiceReq::None),
        _ => Ok(choice),
    }
}

fn parse_response_format(obj: &Map<String, Value>) -> Result<ResponseFormat, ApiError> {
    let Some(rf) = get(obj, "response_format") else { return Ok(ResponseFormat::Text) };
    let bad = |why: String| ApiError::invalid("response_format", why);
    match rf.get("type").and_then(Value::as_str) {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => {
            let schema = rf
                .get("json_schema")
                .and_then(|j| j.get("schema"))
                .filter(|s| s.is_object() || s.is_boolean())
                .ok_or_else(|| {
                    bad(format!("json_schema needs {{\"json_schema\":{{\"name\":...,\"schema\":{{...}}}}}}, got {rf}"))
                })?;
            Ok(ResponseFormat::JsonSchema(schema.clone()))
        }
        _ => Err(bad(format!("response_format.type must be text, json_object or json_schema, got {rf}"))),
    }
}

/// Parses a chat completions body.
pub fn parse_chat(obj: &Map<String, Value>) -> Result<ChatRequest, ApiError> {
    let messages = match get(obj, "messages") {
        None => return Err(ApiError::invalid("messages", "messages is required")),
        Some(v) => ChatMessage::list_from_json(v).map_err(|e| ApiError::invalid("messages", e.to_string()))?,
    };
    if messages.is_empty() {
        return Err(ApiError::invalid("messages", "messages must hold at least one message"));
    }
    for (i, m) in messages.iter().enumerate() {
        if !matches!(m.role.as_str(), "system" | "developer" | "user" | "assistant" | "tool") {
            return Err(ApiError::invalid(format!("messages[{i}].role"), format!("unknown role {:?}", m.role)));
        }
    }
    // OpenAI's newer name for the system role.
    let messages = messages
        .into_iter()
        .map(|mut m| {
            if m.role == "developer" {
                m.role = "system".into();
            }
            m
        })
        .collect();
    let tools = parse_tools(obj)?;
    let tool_choice = parse_tool_choice(obj, &tools)?;
    let response_format = parse_response_format(obj)?;
    let gen = parse_gen(obj, None)?;
    Ok(ChatRequest { messages, tools, tool_choice, response_format, gen })
}

/// Parses a completions body: `prompt` is a string or a list of exactly one string.
pub fn parse_completion(obj: &Map<String, Value>) -> Result<CompletionRequest, ApiError> {
    let prompt = match get(obj, "prompt") {
        None => return Err(ApiError::invalid("prompt", "prompt is required")),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(list)) if list.len() == 1 && list[0].is_string() => {
            list[0].as_str().unwrap_or_default().to_string()
        }
        Some(v) => {
            return Err(ApiError::invalid(
                "prompt",
                format!("prompt must be a string or a list of one string, got {v}"),
            ))
        }
    };
    if prompt.is_empty() {
        return Err(ApiError::invalid("prompt", "prompt must not be empty"));
    }
    let gen = parse_gen(obj, Some(COMPLETIONS_DEFAULT_MAX_TOKENS))?;
    Ok(CompletionRequest { prompt, gen })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn chat(v: Value) -> Result<ChatRequest, ApiError> {
        parse_chat(&obj(v))
    }

    #[test]
    fn accepts_every_role_text_parts_and_tool_history_and_ignores_unknown_fields() {
        let r = chat(json!({
            "model": "anything", "frequency_penalty": 0, "user": "x", "logit_bias": {},
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_9", "type": "function", "function": {"name": "get", "arguments": "{\"k\":1}"}}]},
                {"role": "tool", "tool_call_id": "call_9", "content": "42"},
                {"role": "developer", "content": "d"}
            ],
            "temperature": 0, "top_p": 0.5, "seed": 7, "stop": ["\n\n"], "max_tokens": 9, "n": 1
        }))
        .unwrap();
        assert_eq!(r.messages[1].content, "a\nb");
        assert_eq!(r.messages[2].tool_calls[0].arguments, json!({"k": 1}));
        assert_eq!(r.messages[3].tool_call_id.as_deref(), Some("call_9"));
        assert_eq!(r.messages[4].role, "system");
        assert_eq!(r.gen.max_tokens, Some(9));
        assert_eq!((r.gen.sampler.temperature, r.gen.sampler.top_p, r.gen.sampler.seed), (0.0, 0.5, 7));
        assert_eq!(r.gen.stop, vec!["\n\n".to_string()]);
        assert_eq!(r.tool_choice, ToolChoiceReq::None);
        assert_eq!(r.response_format, ResponseFormat::Text);
    }

    #[test]
    fn max_completion_tokens_wins_over_max_tokens() {
        let r =
            chat(json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": 9, "max_completion_tokens": 3}))
                .unwrap();
        assert_eq!(r.gen.max_tokens, Some(3));
    }

    #[test]
    fn wrong_types_name_the_parameter() {
        let base = |k: &str, v: Value| {
            let mut o = obj(json!({"messages": [{"role": "user", "content": "x"}]}));
            o.insert(k.into(), v);
            parse_chat(&o).unwrap_err()
        };
        for (k, v) in [
            ("temperature", json!("hot")),
            ("temperature", json!(3)),
            ("top_p", json!(1.5)),
            ("max_tokens", json!(0)),
            ("max_tokens", json!(2.5)),
            ("n", json!(2)),
            ("seed", json!("s")),
            ("stop", json!([1])),
            ("stop", json!(["a", "b", "c", "d", "e"])),
            ("stream", json!("yes")),
            ("tools", json!({})),
            ("tool_choice", json!("sometimes")),
            ("response_format", json!({"type": "xml"})),
        ] {
            let e = base(k, v.clone());
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{k}={v}");
            assert_eq!(e.param.as_deref(), Some(k), "{k}={v}: {}", e.message);
        }
        let e = chat(json!({"messages": [{"role": "wizard", "content": "x"}]})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].role"));
        assert!(chat(json!({"messages": []})).is_err());
        assert!(chat(json!({"messages": "hi"})).is_err());
        assert!(chat(json!({})).is_err());
    }

    #[test]
    fn tools_and_tool_choice() {
        let tools = json!([{"type": "function", "function": {"name": "get_weather", "description": "d",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]);
        let msgs = json!([{"role": "user", "content": "x"}]);
        let r = chat(json!({"messages": msgs, "tools": tools})).unwrap();
        assert_eq!(r.tool_choice, ToolChoiceReq::Auto);
        assert_eq!(r.tools[0].name, "get_weather");
        let r = chat(json!({"messages": msgs, "tools": tools, "tool_choice": {"type": "function", "function": {"name": "get_weather"}}})).unwrap();
        assert_eq!(r.tool_choice, ToolChoiceReq::Function("get_weather".into()));
        let e = chat(json!({"messages": msgs, "tools": tools, "tool_choice": {"type": "function", "function": {"name": "other"}}})).unwrap_err();
        assert!(e.message.contains("other"));
        let e = chat(json!({"messages": msgs, "tool_choice": "required"})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tool_choice"));
        let e = chat(json!({"messages": msgs, "tools": [{"type": "function", "function": {"name": "bad name!"}}]}))
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tools[0]"));
        let e = chat(json!({"messages": msgs, "tools": [{"type": "function", "function": {"name": "f",
            "parameters": {"type": "object", "properties": {"a": {"type": "string", "pattern": "^x"}}}}}]}))
        .unwrap_err();
        assert!(e.message.contains("pattern"), "{}", e.message);
    }

    #[test]
    fn response_formats() {
        let msgs = json!([{"role": "user", "content": "x"}]);
        let r = chat(json!({"messages": msgs, "response_format": {"type": "json_object"}})).unwrap();
        assert_eq!(r.response_format, ResponseFormat::JsonObject);
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        let r = chat(json!({"messages": msgs, "response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}})).unwrap();
        assert_eq!(r.response_format, ResponseFormat::JsonSchema(schema));
        assert!(chat(json!({"messages": msgs, "response_format": {"type": "json_schema"}})).is_err());
    }

    #[test]
    fn stream_options() {
        let r = chat(json!({"messages": [{"role": "user", "content": "x"}], "stream": true, "stream_options": {"include_usage": true}})).unwrap();
        assert!(r.gen.stream && r.gen.include_usage);
        let e = chat(json!({"messages": [{"role": "user", "content": "x"}], "stream_options": {"include_usage": 1}}))
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("stream_options.include_usage"));
    }

    #[test]
    fn completions_prompt_forms_and_default_max_tokens() {
        let r = parse_completion(&obj(json!({"prompt": "Hi"}))).unwrap();
        assert_eq!((r.prompt.as_str(), r.gen.max_tokens), ("Hi", Some(COMPLETIONS_DEFAULT_MAX_TOKENS)));
        assert_eq!(
            parse_completion(&obj(json!({"prompt": ["Hi"], "max_tokens": 48}))).unwrap().gen.max_tokens,
            Some(48)
        );
        for bad in [json!({}), json!({"prompt": ["a", "b"]}), json!({"prompt": [1, 2]}), json!({"prompt": ""})] {
            assert_eq!(parse_completion(&obj(bad.clone())).unwrap_err().param.as_deref(), Some("prompt"), "{bad}");
        }
    }

    #[test]
    fn body_must_be_a_json_object() {
        assert!(parse_object(b"{\"a\":1}").is_ok());
        assert!(parse_object(b"{nope").unwrap_err().message.contains("not valid JSON"));
        assert!(parse_object(b"[1]").unwrap_err().message.contains("an array"));
    }
}
