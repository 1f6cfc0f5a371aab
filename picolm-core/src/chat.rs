//! Chat prompts: the model's own `tokenizer.chat_template` rendered in minijinja's sandboxed Jinja engine (no file
//! or network access, bounded work through fuel), with built-in ChatML, Zephyr/TinyLlama, Llama 2 and Llama 3
//! formats for models that carry none. Special tokens in the rendered prompt are parsed as special tokens.
//!
//! The Jinja engine is the `jinja` feature. Without it, a model's template is mapped to the built-in format it
//! is written in (recognised by its markers, as llama.cpp does without Jinja; else the format the vocabulary
//! suggests), and [`ChatTemplate::new`] refuses custom templates with [`ChatError::JinjaDisabled`]. The built-in
//! formats are rendered natively in both builds.
//!
//! Messages follow OpenAI's chat format ([`ChatMessage::from_json`]): `content` is a string or a list of text
//! parts, assistant messages may carry `tool_calls`, `tool` messages a `tool_call_id`. Templates that render
//! `message.tool_calls` themselves get them as objects (`{"id", "type": "function", "function": {"name",
//! "arguments": {...}}}`); for the others (the built-in formats, and model templates that only print `content`,
//! like SmolLM2's) the calls are written into the content as the `{"tool_calls":[...]}` JSON the tool-call loop
//! asks the model to produce, so a conversation's calls are never dropped.

#[cfg(feature = "jinja")]
mod jinja;

use serde::{Serialize, Serializer};
use serde_json::{json, Map, Value};

use crate::gguf::GgufFile;
use crate::tokenizer::Tokenizer;

/// A tool call made by the assistant: in a conversation's history, or produced by the tool-call loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolCall {
    /// The call id (tool results refer to it with `tool_call_id`).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments (a JSON object when they come from the tool-call loop).
    pub arguments: Value,
}

impl ToolCall {
    /// The call in OpenAI's shape: `{"id":…,"type":"function","function":{"name":…,"arguments":"<JSON text>"}}`.
    pub fn to_openai(&self) -> Value {
        json!({"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments.to_string()}})
    }

    /// The call as chat templates (and the tool-call grammar) see it: like [`ToolCall::to_openai`] but with the
    /// arguments as a JSON value, not text.
    pub fn to_template(&self) -> Value {
        json!({"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}})
    }

    /// Reads a call in OpenAI's shape (arguments as JSON text or as a value), or a bare
    /// `{"id", "name", "arguments"}` object. A missing id becomes `call_<index+1>`; missing arguments `{}`.
    pub fn from_json(v: &Value, index: usize) -> Result<ToolCall, String> {
        let obj = v.as_object().ok_or_else(|| format!("tool_calls[{index}] must be an object, got {v}"))?;
        if let Some(t) = obj.get("type").filter(|t| !t.is_null()) {
            if t.as_str() != Some("function") {
                return Err(format!("tool_calls[{index}].type must be \"function\", got {t}"));
            }
        }
        let f = match obj.get("function") {
            Some(f) => {
                f.as_object().ok_or_else(|| format!("tool_calls[{index}].function must be an object, got {f}"))?
            }
            None => obj,
        };
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("tool_calls[{index}] has no \"name\" string"))?
            .to_string();
        let arguments = match f.get("arguments") {
            None | Some(Value::Null) => json!({}),
            Some(Value::String(text)) => serde_json::from_str(text)
                .map_err(|e| format!("tool_calls[{index}].function.arguments is not JSON text ({e}): {text:?}"))?,
            Some(other) => other.clone(),
        };
        let id = match obj.get("id") {
            None | Some(Value::Null) => format!("call_{}", index + 1),
            Some(Value::String(id)) => id.clone(),
            Some(other) => return Err(format!("tool_calls[{index}].id must be a string, got {other}")),
        };
        Ok(ToolCall { id, name, arguments })
    }

    /// Reads a JSON array of calls (see [`ToolCall::from_json`]).
    pub fn list_from_json(v: &Value) -> Result<Vec<ToolCall>, String> {
        let list = v.as_array().ok_or_else(|| format!("tool_calls must be an array, got {v}"))?;
        list.iter().enumerate().map(|(i, c)| ToolCall::from_json(c, i)).collect()
    }
}

/// `{"tool_calls":[…]}` with the arguments as JSON values: the text the tool-call loop asks the model to write,
/// and how a template that does not render `tool_calls` itself shows an assistant's calls.
pub fn tool_calls_text(calls: &[ToolCall]) -> String {
    json!({"tool_calls": calls.iter().map(ToolCall::to_template).collect::<Vec<_>>()}).to_string()
}

/// One message of a conversation. Serializes to OpenAI's message shape (tool-call arguments as JSON text).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text.
    pub content: String,
    /// For `tool` messages: the id of the call this is the result of.
    pub tool_call_id: Option<String>,
    /// For `tool` messages: the tool's name.
    pub name: Option<String>,
    /// For `assistant` messages: the tool calls it made (rendered, never dropped: see the module documentation).
    pub tool_calls: Vec<ToolCall>,
}

impl ChatMessage {
    /// A message with a role and text.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage { role: role.into(), content: content.into(), ..Default::default() }
    }

    /// The `tool` message that carries the result of `call`.
    pub fn tool_result(call: &ToolCall, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: "tool".into(),
            content: content.into(),
            tool_call_id: Some(call.id.clone()),
            name: Some(call.name.clone()),
            ..Default::default()
        }
    }

    /// Reads message number `index` of a conversation in OpenAI's format: `role` (string), `content` (a string,
    /// `null`, or a list of `{"type": "text", "text": …}` parts, joined with newlines), and optionally
    /// `tool_call_id` and `name` (strings or null) and, on assistant messages, `tool_calls`. Other keys are
    /// ignored.
    pub fn from_json(v: &Value, index: usize) -> Result<ChatMessage, ChatError> {
        let bad = |why: String| ChatError::InvalidMessage { index, why };
        let obj = v.as_object().ok_or_else(|| bad(format!("a message must be an object, got {v}")))?;
        let role = match obj.get("role") {
            Some(Value::String(r)) => r.clone(),
            None | Some(Value::Null) => return Err(bad("no \"role\"".into())),
            Some(other) => return Err(bad(format!("\"role\" must be a string, got {other}"))),
        };
        let content = match obj.get("content") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(c)) => c.clone(),
            Some(Value::Array(parts)) => text_parts(parts).map_err(bad)?,
            Some(other) => {
                return Err(bad(format!("\"content\" must be a string or a list of text parts, got {other}")))
            }
        };
        let opt_str = |key: &str| -> Result<Option<String>, ChatError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(bad(format!("{key:?} must be a string, got {other}"))),
            }
        };
        let tool_calls = match obj.get("tool_calls") {
            None | Some(Value::Null) => Vec::new(),
            Some(calls) => ToolCall::list_from_json(calls).map_err(bad)?,
        };
        if !tool_calls.is_empty() && role != "assistant" {
            return Err(bad(format!("only assistant messages have tool_calls, this one is {role:?}")));
        }
        Ok(ChatMessage { role, content, tool_call_id: opt_str("tool_call_id")?, name: opt_str("name")?, tool_calls })
    }

    /// Reads a conversation: a JSON array of messages (see [`ChatMessage::from_json`]).
    pub fn list_from_json(v: &Value) -> Result<Vec<ChatMessage>, ChatError> {
        let list = v.as_array().ok_or_else(|| ChatError::InvalidMessage {
            index: 0,
            why: format!("messages must be an array, got {v}"),
        })?;
        list.iter().enumerate().map(|(i, m)| ChatMessage::from_json(m, i)).collect()
    }

    /// The message in OpenAI's shape: `role`, `content`, and `tool_call_id`, `name`, `tool_calls` when present
    /// (tool-call arguments as JSON text).
    pub fn to_openai(&self) -> Value {
        let mut m = Map::new();
        m.insert("role".into(), self.role.clone().into());
        m.insert("content".into(), self.content.clone().into());
        if let Some(id) = &self.tool_call_id {
            m.insert("tool_call_id".into(), id.clone().into());
        }
        if let Some(n) = &self.name {
            m.insert("name".into(), n.clone().into());
        }
        if !self.tool_calls.is_empty() {
            m.insert("tool_calls".into(), self.tool_calls.iter().map(ToolCall::to_openai).collect());
        }
        Value::Object(m)
    }

    /// The message as a template sees it: tool calls as objects when the template renders them itself, else
    /// written into the content as [`tool_calls_text`].
    #[cfg(feature = "jinja")]
    fn to_template(&self, template_renders_tool_calls: bool) -> Value {
        let mut m = Map::new();
        m.insert("role".into(), self.role.clone().into());
        m.insert("content".into(), self.template_content(template_renders_tool_calls).into());
        if let Some(id) = &self.tool_call_id {
            m.insert("tool_call_id".into(), id.clone().into());
        }
        if let Some(n) = &self.name {
            m.insert("name".into(), n.clone().into());
        }
        if template_renders_tool_calls && !self.tool_calls.is_empty() {
            m.insert("tool_calls".into(), self.tool_calls.iter().map(ToolCall::to_template).collect());
        }
        Value::Object(m)
    }
}

impl ChatMessage {
    /// The content a template prints: the text, followed by the tool calls as [`tool_calls_text`] unless the
    /// template renders `tool_calls` itself.
    fn template_content(&self, template_renders_tool_calls: bool) -> String {
        if self.tool_calls.is_empty() || template_renders_tool_calls {
            self.content.clone()
        } else if self.content.is_empty() {
            tool_calls_text(&self.tool_calls)
        } else {
            format!("{}\n{}", self.content, tool_calls_text(&self.tool_calls))
        }
    }
}

impl Serialize for ChatMessage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_openai().serialize(s)
    }
}

/// The text of OpenAI content parts (`[{"type": "text", "text": …}, …]`), joined with newlines as llama.cpp does.
fn text_parts(parts: &[Value]) -> Result<String, String> {
    let mut texts = Vec::with_capacity(parts.len());
    for (i, p) in parts.iter().enumerate() {
        let ty = p.get("type").and_then(Value::as_str);
        match (ty, p.get("text")) {
            (Some("text"), Some(Value::String(t))) => texts.push(t.as_str()),
            (Some("text"), _) => return Err(format!("content[{i}] is a text part without a \"text\" string")),
            (Some(other), _) => {
                return Err(format!("content[{i}] has type {other:?}: only \"text\" parts are supported"))
            }
            (None, _) => return Err(format!("content[{i}] must be an object with \"type\": \"text\", got {p}")),
        }
    }
    Ok(texts.join("\n"))
}

/// Why a chat prompt could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// The template does not compile.
    #[error("chat template does not compile: {0}")]
    InvalidTemplate(String),
    /// Rendering failed (the template raised an exception, ran out of fuel, or used an unknown function).
    #[error("chat template failed to render: {0}")]
    Render(String),
    /// A custom Jinja template was given to a build without the `jinja` feature.
    #[error(
        "custom Jinja chat templates need the `jinja` feature, which this build of PicoLM leaves out (the built-in \
         ChatML, Zephyr, Llama 2 and Llama 3 formats work without it)"
    )]
    JinjaDisabled,
    /// A message is not in OpenAI's chat format.
    #[error("message {index} is invalid: {why}")]
    InvalidMessage {
        /// Position in the conversation.
        index: usize,
        /// What is wrong.
        why: String,
    },
    /// A message has an empty or unknown role.
    #[error("message {index} has an invalid role {role:?} (expected system, user, assistant or tool)")]
    InvalidRole {
        /// Position in the conversation.
        index: usize,
        /// The role given.
        role: String,
    },
}

/// The built-in chat formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltinFormat {
    /// `<|im_start|>role\n...<|im_end|>` (SmolLM2, Qwen).
    ChatMl,
    /// `<|user|>\n...</s>` (Zephyr, TinyLlama-Chat).
    Zephyr,
    /// `[INST] <<SYS>>...<</SYS>> ... [/INST]` (Llama 2).
    Llama2,
    /// `<|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>` (Llama 3).
    Llama3,
}

impl BuiltinFormat {
    /// The format's Jinja source (rendered natively by [`BuiltinFormat::render`]).
    pub fn source(self) -> &'static str {
        match self {
            BuiltinFormat::ChatMl => {
                "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\
                 {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
            }
            BuiltinFormat::Zephyr => {
                "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}{{ eos_token }}\n{% endfor %}\
                 {% if add_generation_prompt %}<|assistant|>\n{% endif %}"
            }
            BuiltinFormat::Llama2 => {
                "{% set ns = namespace(sys='', first=true) %}\
                 {% for m in messages %}{% if m.role == 'system' %}{% set ns.sys = m.content %}{% endif %}{% endfor %}\
                 {% for m in messages %}{% if m.role == 'user' or m.role == 'tool' %}{{ bos_token }}[INST] \
                 {% if ns.first and ns.sys %}<<SYS>>\n{{ ns.sys }}\n<</SYS>>\n\n{% endif %}{{ m.content | trim }} [/INST]\
                 {% set ns.first = false %}{% elif m.role == 'assistant' %} {{ m.content | trim }} {{ eos_token }}{% endif %}\
                 {% endfor %}"
            }
            BuiltinFormat::Llama3 => {
                "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n\
                 {{ m.content | trim }}<|eot_id|>{% endfor %}\
                 {% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
            }
        }
    }

    /// The format a Jinja chat template is written in, recognised by its markers (as llama.cpp does without a
    /// Jinja engine): `<|im_start|>` ChatML, `<|start_header_id|>` Llama 3, `<|assistant|>` Zephyr, `[INST]`
    /// Llama 2; `None` for a template with none of them.
    pub fn from_template(source: &str) -> Option<BuiltinFormat> {
        if source.contains("<|im_start|>") {
            Some(BuiltinFormat::ChatMl)
        } else if source.contains("<|start_header_id|>") {
            Some(BuiltinFormat::Llama3)
        } else if source.contains("<|assistant|>") {
            Some(BuiltinFormat::Zephyr)
        } else if source.contains("[INST]") {
            Some(BuiltinFormat::Llama2)
        } else {
            None
        }
    }

    /// Renders a conversation in this format: exactly what the Jinja [`BuiltinFormat::source`] renders (a test
    /// holds the two together), without a template engine. Tool calls are written into the content.
    pub fn render(self, messages: &[ChatMessage], add_generation_prompt: bool, bos: &str, eos: &str) -> String {
        let mut out = String::new();
        match self {
            BuiltinFormat::ChatMl => {
                for m in messages {
                    out += &format!("<|im_start|>{}\n{}<|im_end|>\n", m.role, m.template_content(false));
                }
                if add_generation_prompt {
                    out += "<|im_start|>assistant\n";
                }
            }
            BuiltinFormat::Zephyr => {
                for m in messages {
                    out += &format!("<|{}|>\n{}{eos}\n", m.role, m.template_content(false));
                }
                if add_generation_prompt {
                    out += "<|assistant|>\n";
                }
            }
            BuiltinFormat::Llama2 => {
                // The last system message goes into the first user turn.
                let sys = messages.iter().rev().find(|m| m.role == "system").map(|m| m.template_content(false));
                let mut first = true;
                for m in messages {
                    match m.role.as_str() {
                        "user" | "tool" => {
                            out += bos;
                            out += "[INST] ";
                            match &sys {
                                Some(sys) if first && !sys.is_empty() => {
                                    out += &format!("<<SYS>>\n{sys}\n<</SYS>>\n\n")
                                }
                                _ => {}
                            }
                            out += m.template_content(false).trim();
                            out += " [/INST]";
                            first = false;
                        }
                        "assistant" => out += &format!(" {} {eos}", m.template_content(false).trim()),
                        _ => {}
                    }
                }
            }
            BuiltinFormat::Llama3 => {
                out += bos;
                for m in messages {
                    out += &format!(
                        "<|start_header_id|>{}<|end_header_id|>\n\n{}<|eot_id|>",
                        m.role,
                        m.template_content(false).trim()
                    );
                }
                if add_generation_prompt {
                    out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
                }
            }
        }
        out
    }

    /// Guesses the format from the special tokens of a vocabulary.
    pub fn detect(tok: &Tokenizer) -> BuiltinFormat {
        if tok.token_id("<|im_start|>").is_some() {
            BuiltinFormat::ChatMl
        } else if tok.token_id("<|start_header_id|>").is_some() {
            BuiltinFormat::Llama3
        } else if tok.token_id("<|assistant|>").is_some() {
            BuiltinFormat::Zephyr
        } else {
            BuiltinFormat::Llama2
        }
    }
}

/// What renders a template.
#[derive(Debug)]
enum Engine {
    /// A Jinja template (the model's own, or one given to [`ChatTemplate::new`]).
    #[cfg(feature = "jinja")]
    Jinja(Box<jinja::JinjaTemplate>),
    /// A built-in format, rendered natively.
    Builtin(BuiltinFormat),
}

/// A compiled chat template with the model's BOS/EOS texts.
#[derive(Debug)]
pub struct ChatTemplate {
    engine: Engine,
    source: String,
    bos: String,
    eos: String,
    renders_tool_calls: bool,
}

impl ChatTemplate {
    /// Compiles a Jinja chat template ([`ChatError::JinjaDisabled`] without the `jinja` feature).
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate, ChatError> {
        #[cfg(feature = "jinja")]
        {
            let mut t = ChatTemplate {
                engine: Engine::Jinja(Box::new(jinja::JinjaTemplate::new(source)?)),
                source: source.to_string(),
                bos: bos_token.to_string(),
                eos: eos_token.to_string(),
                renders_tool_calls: false,
            };
            t.renders_tool_calls = t.probe_tool_calls();
            Ok(t)
        }
        #[cfg(not(feature = "jinja"))]
        {
            let _ = (source, bos_token, eos_token);
            Err(ChatError::JinjaDisabled)
        }
    }

    /// Whether the template prints `message.tool_calls` itself: renders a probe conversation with a call and looks
    /// for the call's name in the output (a template that fails on it does not).
    #[cfg(feature = "jinja")]
    fn probe_tool_calls(&self) -> bool {
        const PROBE_NAME: &str = "picolm_probe_tool_4f1c";
        let call = ToolCall { id: "call_1".into(), name: PROBE_NAME.into(), arguments: json!({"x": 1}) };
        let probe = [
            ChatMessage::new("user", "probe"),
            ChatMessage { role: "assistant".into(), tool_calls: vec![call], ..Default::default() },
        ];
        self.render_with(&probe, false, true).is_ok_and(|text| text.contains(PROBE_NAME))
    }

    /// Whether the template renders assistant `tool_calls` itself (else they are written into the content).
    pub fn renders_tool_calls(&self) -> bool {
        self.renders_tool_calls
    }

    /// A built-in format with the tokenizer's BOS/EOS texts.
    pub fn builtin(format: BuiltinFormat, tok: &Tokenizer) -> ChatTemplate {
        let (bos, eos) = special_texts(tok);
        ChatTemplate::builtin_with(format, &bos, &eos)
    }

    /// A built-in format with the given BOS/EOS texts.
    pub fn builtin_with(format: BuiltinFormat, bos_token: &str, eos_token: &str) -> ChatTemplate {
        ChatTemplate {
            engine: Engine::Builtin(format),
            source: format.source().to_string(),
            bos: bos_token.to_string(),
            eos: eos_token.to_string(),
            renders_tool_calls: false,
        }
    }

    /// The model's own template (`tokenizer.chat_template`), or the built-in format its vocabulary suggests.
    /// Without the `jinja` feature, the built-in format the model's template is written in (see
    /// [`BuiltinFormat::from_template`]), else the one its vocabulary suggests.
    pub fn for_model(file: &GgufFile, tok: &Tokenizer) -> Result<ChatTemplate, ChatError> {
        match file.get_str("tokenizer.chat_template").ok().flatten() {
            Some(src) if !src.trim().is_empty() => {
                let (bos, eos) = special_texts(tok);
                if cfg!(feature = "jinja") {
                    ChatTemplate::new(src, &bos, &eos)
                } else {
                    let format = BuiltinFormat::from_template(src).unwrap_or_else(|| BuiltinFormat::detect(tok));
                    Ok(ChatTemplate::builtin_with(format, &bos, &eos))
                }
            }
            _ => Ok(ChatTemplate::builtin(BuiltinFormat::detect(tok), tok)),
        }
    }

    /// The Jinja source (for a built-in format, the Jinja equivalent of its native rendering).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The built-in format this template renders natively, if it is one.
    pub fn builtin_format(&self) -> Option<BuiltinFormat> {
        match self.engine {
            Engine::Builtin(f) => Some(f),
            #[cfg(feature = "jinja")]
            Engine::Jinja(_) => None,
        }
    }

    /// Renders a conversation; `add_generation_prompt` appends the opening of the assistant's turn.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String, ChatError> {
        for (index, m) in messages.iter().enumerate() {
            if !matches!(m.role.as_str(), "system" | "user" | "assistant" | "tool") {
                return Err(ChatError::InvalidRole { index, role: m.role.clone() });
            }
        }
        self.render_with(messages, add_generation_prompt, self.renders_tool_calls)
    }

    fn render_with(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        native_tool_calls: bool,
    ) -> Result<String, ChatError> {
        match &self.engine {
            #[cfg(feature = "jinja")]
            Engine::Jinja(t) => {
                let messages: Vec<Value> = messages.iter().map(|m| m.to_template(native_tool_calls)).collect();
                t.render(&messages, add_generation_prompt, &self.bos, &self.eos)
            }
            Engine::Builtin(f) => {
                let _ = native_tool_calls;
                Ok(f.render(messages, add_generation_prompt, &self.bos, &self.eos))
            }
        }
    }

    /// Tokenizes a rendered prompt: special tokens parsed, BOS added when the model wants it and the template did
    /// not already write it.
    pub fn encode(&self, tok: &Tokenizer, prompt: &str) -> Vec<u32> {
        let mut ids = tok.encode(prompt, false, true);
        if tok.add_bos() {
            let bos = tok.bos_id().expect("add_bos implies a BOS token");
            if ids.first() != Some(&bos) {
                ids.insert(0, bos);
            }
        }
        ids
    }
}

fn special_texts(tok: &Tokenizer) -> (String, String) {
    let text = |id: Option<u32>| id.and_then(|i| tok.token_text(i)).unwrap_or("").to_string();
    (text(tok.bos_id()), text(tok.eos_id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs() -> Vec<ChatMessage> {
        vec![
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "Hi"),
            ChatMessage::new("assistant", "Hello!"),
        ]
    }

    #[test]
    fn builtin_formats_render_expected_text() {
        let t = ChatTemplate::builtin_with(BuiltinFormat::ChatMl, "", "");
        assert_eq!(
            t.render(&msgs()[..2], true).unwrap(),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let t = ChatTemplate::builtin_with(BuiltinFormat::Llama2, "<s>", "</s>");
        assert_eq!(
            t.render(&msgs(), false).unwrap(),
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s>"
        );
        let t = ChatTemplate::builtin_with(BuiltinFormat::Zephyr, "<s>", "</s>");
        assert_eq!(t.render(&msgs()[1..2], true).unwrap(), "<|user|>\nHi</s>\n<|assistant|>\n");
        let t = ChatTemplate::builtin_with(BuiltinFormat::Llama3, "<|begin_of_text|>", "");
        assert_eq!(
            t.render(&msgs()[1..2], true).unwrap(),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
    }

    #[test]
    fn template_formats_are_recognised_by_their_markers() {
        let cases = [
            ("{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}", Some(BuiltinFormat::ChatMl)),
            ("{{ bos_token }}<|start_header_id|>{{ m.role }}", Some(BuiltinFormat::Llama3)),
            ("<|user|>\n{{ m.content }}<|assistant|>", Some(BuiltinFormat::Zephyr)),
            ("{{ bos_token + '[INST] ' + m.content + ' [/INST]' }}", Some(BuiltinFormat::Llama2)),
            ("{% for m in messages %}{{ m.content }}{% endfor %}", None),
        ];
        for (src, want) in cases {
            assert_eq!(BuiltinFormat::from_template(src), want, "{src}");
        }
        for f in [BuiltinFormat::ChatMl, BuiltinFormat::Zephyr, BuiltinFormat::Llama2, BuiltinFormat::Llama3] {
            assert_eq!(BuiltinFormat::from_template(f.source()), Some(f));
            let t = ChatTemplate::builtin_with(f, "<s>", "</s>");
            assert_eq!((t.builtin_format(), t.source(), t.renders_tool_calls()), (Some(f), f.source(), false));
        }
    }

    #[cfg(not(feature = "jinja"))]
    #[test]
    fn custom_templates_need_the_jinja_feature() {
        let err = ChatTemplate::new("{{ messages[0].content }}", "", "").unwrap_err();
        assert_eq!(err, ChatError::JinjaDisabled);
        assert!(err.to_string().contains("`jinja` feature"), "{err}");
    }

    /// Conversations that exercise every branch of the built-in formats.
    #[cfg(feature = "jinja")]
    fn builtin_cases() -> Vec<Vec<ChatMessage>> {
        let two_systems = vec![
            ChatMessage::new("system", "first"),
            ChatMessage::new("user", "  padded\n "),
            ChatMessage::new("system", "second"),
            ChatMessage::new("assistant", " answer "),
            ChatMessage::new("user", "again"),
        ];
        let empty_system = vec![ChatMessage::new("system", ""), ChatMessage::new("user", "Hi")];
        let with_tool = history_with_call();
        let mut text_and_call = history_with_call();
        text_and_call[1].content = "Switching it on.".into();
        vec![msgs(), msgs()[1..].to_vec(), two_systems, empty_system, with_tool, text_and_call, Vec::new()]
    }

    /// The native rendering of the built-in formats is exactly what their Jinja sources render.
    #[cfg(feature = "jinja")]
    #[test]
    fn builtin_formats_render_as_their_jinja_sources() {
        for f in [BuiltinFormat::ChatMl, BuiltinFormat::Zephyr, BuiltinFormat::Llama2, BuiltinFormat::Llama3] {
            let jinja = ChatTemplate::new(f.source(), "<s>", "</s>").unwrap();
            assert!(!jinja.renders_tool_calls(), "{f:?}");
            let native = ChatTemplate::builtin_with(f, "<s>", "</s>");
            for (i, conv) in builtin_cases().iter().enumerate() {
                for agp in [false, true] {
                    assert_eq!(
                        native.render(conv, agp).unwrap(),
                        jinja.render(conv, agp).unwrap(),
                        "{f:?} case {i} agp {agp}"
                    );
                }
            }
        }
    }

    #[cfg(feature = "jinja")]
    #[test]
    fn hf_style_templates_work_and_misuse_is_an_error() {
        let src = "{% for m in messages %}{% if m.role not in ['user','system'] %}{{ raise_exception('bad role ' + m.role) }}{% endif %}{{ m.content.strip() | upper }}{% endfor %}";
        let t = ChatTemplate::new(src, "", "").unwrap();
        assert_eq!(t.render(&[ChatMessage::new("user", " hi ")], false).unwrap(), "HI");
        let err = t.render(&[ChatMessage::new("assistant", "x")], false).unwrap_err();
        assert!(matches!(&err, ChatError::Render(m) if m.contains("bad role assistant")), "{err}");
        assert!(matches!(ChatTemplate::new("{% for %}", "", ""), Err(ChatError::InvalidTemplate(_))));
        let err = t.render(&[ChatMessage::new("robot", "x")], false).unwrap_err();
        assert_eq!(err, ChatError::InvalidRole { index: 0, role: "robot".into() });
        let runaway = ChatTemplate::new(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "",
            "",
        )
        .unwrap();
        assert!(matches!(runaway.render(&[], false), Err(ChatError::Render(_))));
    }

    fn history_with_call() -> Vec<ChatMessage> {
        ChatMessage::list_from_json(&json!([
            {"role": "user", "content": [{"type": "text", "text": "Turn on"}, {"type": "text", "text": "relay 2."}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_7", "type": "function", "function": {"name": "set_relay", "arguments": "{\"id\":2,\"on\":true}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_7", "name": "set_relay", "content": "relay 2 is on"}
        ]))
        .unwrap()
    }

    #[test]
    fn openai_messages_parse_with_text_parts_and_tool_calls() {
        let m = history_with_call();
        assert_eq!(m[0].content, "Turn on\nrelay 2.");
        assert_eq!(m[1].content, "");
        assert_eq!(
            m[1].tool_calls,
            vec![ToolCall { id: "call_7".into(), name: "set_relay".into(), arguments: json!({"id": 2, "on": true}) }]
        );
        assert_eq!(m[2].tool_call_id.as_deref(), Some("call_7"));
        // Serializing gives OpenAI's shape back (arguments as JSON text), which parses to the same messages.
        let again = ChatMessage::list_from_json(&serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(again, m);
        assert_eq!(
            serde_json::to_value(&m[1]).unwrap()["tool_calls"][0]["function"]["arguments"],
            json!("{\"id\":2,\"on\":true}")
        );
        // Object arguments and bare {name, arguments} calls are accepted too; a missing id is numbered.
        let bare = ChatMessage::from_json(
            &json!({"role": "assistant", "tool_calls": [{"name": "f", "arguments": {"a": [1]}}]}),
            0,
        )
        .unwrap();
        assert_eq!(
            bare.tool_calls[0],
            ToolCall { id: "call_1".into(), name: "f".into(), arguments: json!({"a": [1]}) }
        );
    }

    #[test]
    fn malformed_openai_messages_are_refused_with_the_reason() {
        let cases = [
            (json!({"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}), "image_url"),
            (json!({"role": "user", "content": [{"type": "text"}]}), "without a \"text\""),
            (json!({"role": "user", "content": 5}), "list of text parts"),
            (json!({"content": "x"}), "no \"role\""),
            (json!({"role": "user", "tool_calls": [{"name": "f"}]}), "only assistant messages"),
            (
                json!({"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}),
                "not JSON text",
            ),
            (json!({"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}), "\"name\""),
            (json!({"role": "assistant", "tool_calls": {"name": "f"}}), "must be an array"),
            (json!({"role": "tool", "tool_call_id": 3, "content": "x"}), "tool_call_id"),
            (json!("user"), "must be an object"),
        ];
        for (v, want) in cases {
            let e = ChatMessage::from_json(&v, 4).unwrap_err();
            assert!(
                matches!(e, ChatError::InvalidMessage { index: 4, .. }) && e.to_string().contains(want),
                "{v}: {e}"
            );
        }
    }

    #[test]
    fn assistant_tool_calls_are_rendered_by_every_template() {
        // A template that prints only `content` (SmolLM2's, the built-in formats): the calls go into the content
        // as the JSON the tool-call loop asks for.
        #[cfg_attr(not(feature = "jinja"), allow(unused_mut))]
        let mut templates = vec![ChatTemplate::builtin_with(BuiltinFormat::ChatMl, "", "")];
        #[cfg(feature = "jinja")]
        let smollm2 = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";
        #[cfg(feature = "jinja")]
        templates.push(ChatTemplate::new(smollm2, "", "").unwrap());
        for t in templates {
            assert!(!t.renders_tool_calls());
            let text = t.render(&history_with_call(), false).unwrap();
            assert!(
                text.contains(concat!(
                    "<|im_start|>assistant\n",
                    r#"{"tool_calls":[{"id":"call_7","type":"function","function":{"name":"set_relay","arguments":{"id":2,"on":true}}}]}"#,
                    "<|im_end|>"
                )),
                "{text}"
            );
            assert!(text.contains("<|im_start|>tool\nrelay 2 is on<|im_end|>"), "{text}");
        }
        for f in [BuiltinFormat::Zephyr, BuiltinFormat::Llama2, BuiltinFormat::Llama3] {
            let text = ChatTemplate::builtin_with(f, "<s>", "</s>").render(&history_with_call(), true).unwrap();
            assert!(text.contains(r#""name":"set_relay","arguments":{"id":2,"on":true}"#), "{f:?}: {text}");
        }
        // Text before the calls is kept.
        let mut m = history_with_call();
        m[1].content = "Switching it on.".into();
        let text = ChatTemplate::builtin_with(BuiltinFormat::ChatMl, "", "").render(&m, false).unwrap();
        assert!(text.contains("assistant\nSwitching it on.\n{\"tool_calls\""), "{text}");
    }

    #[cfg(feature = "jinja")]
    #[test]
    fn templates_that_know_tool_calls_get_them_as_objects() {
        // A template that knows `tool_calls` (HF style) gets them as objects with the arguments as a value.
        let native = "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% if m.tool_calls %}{% for c in m.tool_calls %}\
                      <call {{ c.id }} {{ c.function.name }} {{ c.function.arguments | tojson }}>{% endfor %}{% endif %}{% endfor %}";
        let t = ChatTemplate::new(native, "", "").unwrap();
        assert!(t.renders_tool_calls());
        let text = t.render(&history_with_call(), false).unwrap();
        assert!(text.starts_with("[user]Turn on\nrelay 2.[assistant]<call call_7 set_relay {"), "{text}");
        assert!(!text.contains("tool_calls"), "{text}");
        // Without tool calls nothing changes.
        let plain = [ChatMessage::new("user", "Hi")];
        assert_eq!(t.render(&plain, false).unwrap(), "[user]Hi");
    }
}
