//! Chat prompts: the model's own `tokenizer.chat_template` rendered in minijinja's sandboxed Jinja engine (no file
//! or network access, bounded work through fuel), with built-in ChatML, Zephyr/TinyLlama, Llama 2 and Llama 3
//! templates for models that carry none. Special tokens in the rendered prompt are parsed as special tokens.

use minijinja::{context, Environment, ErrorKind};
use serde::Serialize;

use crate::gguf::GgufFile;
use crate::tokenizer::Tokenizer;

/// Instructions a template may execute before it is stopped (guards against runaway templates).
const TEMPLATE_FUEL: u64 = 2_000_000;

/// One message of a conversation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text.
    pub content: String,
    /// For `tool` messages: the id of the call this is the result of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For `tool` messages: the tool's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ChatMessage {
    /// A message with a role and text.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage { role: role.into(), content: content.into(), ..Default::default() }
    }
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
    /// The format's Jinja source.
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

/// A compiled chat template with the model's BOS/EOS texts.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos: String,
    eos: String,
}

const TEMPLATE_NAME: &str = "chat";

impl ChatTemplate {
    /// Compiles a Jinja chat template.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate, ChatError> {
        let mut env = Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.add_function("raise_exception", |msg: String| -> Result<String, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_function("strftime_now", |fmt: String| strftime_now(&fmt));
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(|e| ChatError::InvalidTemplate(e.to_string()))?;
        Ok(ChatTemplate { env, source: source.to_string(), bos: bos_token.to_string(), eos: eos_token.to_string() })
    }

    /// A built-in format with the tokenizer's BOS/EOS texts.
    pub fn builtin(format: BuiltinFormat, tok: &Tokenizer) -> ChatTemplate {
        let (bos, eos) = special_texts(tok);
        ChatTemplate::new(format.source(), &bos, &eos).expect("built-in templates compile")
    }

    /// The model's own template (`tokenizer.chat_template`), or the built-in format its vocabulary suggests.
    pub fn for_model(file: &GgufFile, tok: &Tokenizer) -> Result<ChatTemplate, ChatError> {
        match file.get_str("tokenizer.chat_template").ok().flatten() {
            Some(src) if !src.trim().is_empty() => {
                let (bos, eos) = special_texts(tok);
                ChatTemplate::new(src, &bos, &eos)
            }
            _ => Ok(ChatTemplate::builtin(BuiltinFormat::detect(tok), tok)),
        }
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders a conversation; `add_generation_prompt` appends the opening of the assistant's turn.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String, ChatError> {
        for (index, m) in messages.iter().enumerate() {
            if !matches!(m.role.as_str(), "system" | "user" | "assistant" | "tool") {
                return Err(ChatError::InvalidRole { index, role: m.role.clone() });
            }
        }
        let tmpl = self.env.get_template(TEMPLATE_NAME).map_err(|e| ChatError::InvalidTemplate(e.to_string()))?;
        tmpl.render(context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos,
            eos_token => &self.eos,
        })
        .map_err(|e| ChatError::Render(format!("{e:#}")))
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

/// `strftime_now(fmt)` for templates that print today's date: supports `%d %m %Y %y %b %B %H %M %S %%`.
fn strftime_now(fmt: &str) -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let (y, m, d) = civil_from_days(days);
    let tod = secs % 86_400;
    const MONTHS: [&str; 12] =
        ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out += &format!("{d:02}"),
            Some('m') => out += &format!("{m:02}"),
            Some('Y') => out += &y.to_string(),
            Some('y') => out += &format!("{:02}", y % 100),
            Some('b') => out += &MONTHS[(m - 1) as usize][..3],
            Some('B') => out += MONTHS[(m - 1) as usize],
            Some('H') => out += &format!("{:02}", tod / 3600),
            Some('M') => out += &format!("{:02}", tod / 60 % 60),
            Some('S') => out += &format!("{:02}", tod % 60),
            Some('%') => out.push('%'),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs() -> Vec<ChatMessage> {
        vec![ChatMessage::new("system", "Be brief."), ChatMessage::new("user", "Hi"), ChatMessage::new("assistant", "Hello!")]
    }

    #[test]
    fn builtin_formats_render_expected_text() {
        let t = ChatTemplate::new(BuiltinFormat::ChatMl.source(), "", "").unwrap();
        assert_eq!(
            t.render(&msgs()[..2], true).unwrap(),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let t = ChatTemplate::new(BuiltinFormat::Llama2.source(), "<s>", "</s>").unwrap();
        assert_eq!(t.render(&msgs(), false).unwrap(), "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello! </s>");
        let t = ChatTemplate::new(BuiltinFormat::Zephyr.source(), "<s>", "</s>").unwrap();
        assert_eq!(t.render(&msgs()[1..2], true).unwrap(), "<|user|>\nHi</s>\n<|assistant|>\n");
        let t = ChatTemplate::new(BuiltinFormat::Llama3.source(), "<|begin_of_text|>", "").unwrap();
        assert_eq!(
            t.render(&msgs()[1..2], true).unwrap(),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        );
    }

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
        let runaway = ChatTemplate::new("{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}", "", "").unwrap();
        assert!(matches!(runaway.render(&[], false), Err(ChatError::Render(_))));
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_785), (2026, 11, 28));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
