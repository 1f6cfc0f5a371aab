//! Response bodies in OpenAI's shapes: chat completions, chat completion chunks (streaming), text completions,
//! the model list.

use picolm_core::agent::ToolCall;
use serde_json::{json, Value};

use crate::engine::{FinishReason, Outcome, Usage};

/// Identity shared by every object of one response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    /// `chatcmpl-…` or `cmpl-…`.
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// The model name the server reports.
    pub model: String,
}

/// `usage`, with the cached prompt tokens under `prompt_tokens_details.cached_tokens` as OpenAI reports them.
pub fn usage(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens}
    })
}

fn tool_calls_json(calls: &[ToolCall]) -> Value {
    calls.iter().map(ToolCall::to_openai).collect()
}

/// A non-streamed `chat.completion`. `content` is `null` when the model called tools.
pub fn chat_completion(meta: &Meta, out: &Outcome) -> Value {
    let mut message = json!({"role": "assistant", "content": out.text});
    if !out.tool_calls.is_empty() {
        message["content"] = Value::Null;
        message["tool_calls"] = tool_calls_json(&out.tool_calls);
    }
    json!({
        "id": meta.id, "object": "chat.completion", "created": meta.created, "model": meta.model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": out.finish_reason.as_str()}],
        "usage": usage(&out.usage),
        "system_fingerprint": null
    })
}

/// A `chat.completion.chunk` with one choice carrying `delta` (and `finish_reason`, on the last one).
pub fn chat_chunk(meta: &Meta, delta: Value, finish_reason: Option<FinishReason>) -> Value {
    json!({
        "id": meta.id, "object": "chat.completion.chunk", "created": meta.created, "model": meta.model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason.map(FinishReason::as_str)}],
        "system_fingerprint": null
    })
}

/// The usage chunk of `stream_options.include_usage`: no choices, `usage` filled.
pub fn chat_usage_chunk(meta: &Meta, u: &Usage) -> Value {
    json!({
        "id": meta.id, "object": "chat.completion.chunk", "created": meta.created, "model": meta.model,
        "choices": [], "usage": usage(u), "system_fingerprint": null
    })
}

/// The deltas that stream tool calls: per call, one delta opening it (index, id, type, name, empty arguments)
/// and one carrying its arguments.
pub fn tool_call_deltas(calls: &[ToolCall]) -> Vec<Value> {
    let mut out = Vec::with_capacity(calls.len() * 2);
    for (i, c) in calls.iter().enumerate() {
        out.push(json!({"tool_calls": [{"index": i, "id": c.id, "type": "function", "function": {"name": c.name, "arguments": ""}}]}));
        out.push(json!({"tool_calls": [{"index": i, "function": {"arguments": c.arguments.to_string()}}]}));
    }
    out
}

/// A non-streamed `text_completion`.
pub fn completion(meta: &Meta, out: &Outcome) -> Value {
    json!({
        "id": meta.id, "object": "text_completion", "created": meta.created, "model": meta.model,
        "choices": [{"index": 0, "text": out.text, "logprobs": null, "finish_reason": out.finish_reason.as_str()}],
        "usage": usage(&out.usage),
        "system_fingerprint": null
    })
}

/// A streamed `text_completion` piece (with `finish_reason` on the last one).
pub fn completion_chunk(meta: &Meta, text: &str, finish_reason: Option<FinishReason>) -> Value {
    json!({
        "id": meta.id, "object": "text_completion", "created": meta.created, "model": meta.model,
        "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish_reason.map(FinishReason::as_str)}]
    })
}

/// The usage chunk of a streamed completion.
pub fn completion_usage_chunk(meta: &Meta, u: &Usage) -> Value {
    json!({"id": meta.id, "object": "text_completion", "created": meta.created, "model": meta.model, "choices": [], "usage": usage(u)})
}

/// `GET /v1/models`.
pub fn models(name: &str, created: u64) -> Value {
    json!({"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "picolm"}]})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta { id: "chatcmpl-1".into(), created: 5, model: "m".into() }
    }

    fn call() -> ToolCall {
        ToolCall { id: "call_0_0".into(), name: "get_weather".into(), arguments: json!({"city": "Paris"}) }
    }

    #[test]
    fn text_answer() {
        let out = Outcome {
            text: "Hi".into(),
            tool_calls: vec![],
            finish_reason: FinishReason::Length,
            usage: Usage { prompt_tokens: 7, cached_tokens: 3, completion_tokens: 2 },
        };
        let v = chat_completion(&meta(), &out);
        assert_eq!(v["choices"][0]["message"], json!({"role": "assistant", "content": "Hi"}));
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(v["usage"]["total_tokens"], 9);
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 3);
        assert_eq!(v["object"], "chat.completion");
    }

    #[test]
    fn tool_call_answer_has_null_content_and_string_arguments() {
        let out = Outcome {
            text: String::new(),
            tool_calls: vec![call()],
            finish_reason: FinishReason::ToolCalls,
            usage: Usage::default(),
        };
        let v = chat_completion(&meta(), &out);
        let m = &v["choices"][0]["message"];
        assert!(m["content"].is_null());
        assert_eq!(m["tool_calls"][0]["function"]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(m["tool_calls"][0]["type"], "function");
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn streamed_tool_call_deltas_join_to_the_call() {
        let d = tool_call_deltas(&[call()]);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0]["tool_calls"][0]["id"], "call_0_0");
        assert_eq!(d[0]["tool_calls"][0]["function"]["name"], "get_weather");
        let args: String = d.iter().map(|x| x["tool_calls"][0]["function"]["arguments"].as_str().unwrap()).collect();
        assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), json!({"city": "Paris"}));
        assert!(d.iter().all(|x| x["tool_calls"][0]["index"] == 0));
    }

    #[test]
    fn chunks() {
        let c = chat_chunk(&meta(), json!({"content": "a"}), None);
        assert!(c["choices"][0]["finish_reason"].is_null());
        assert_eq!(c["object"], "chat.completion.chunk");
        let u = chat_usage_chunk(&meta(), &Usage { prompt_tokens: 1, cached_tokens: 0, completion_tokens: 2 });
        assert_eq!(u["choices"], json!([]));
        assert_eq!(u["usage"]["total_tokens"], 3);
        let t = completion_chunk(&meta(), "x", Some(FinishReason::Stop));
        assert_eq!(t["choices"][0]["finish_reason"], "stop");
    }
}
