//! The tool-call loop that agents (PicoClaw) run: register tools (name, description, JSON Schema of the
//! arguments, handler); each step the model either answers in text or emits a tool call constrained by grammar to
//! `{"tool_calls":[{"id":…,"type":"function","function":{"name":<a registered tool>,"arguments":<valid object>}}]}`;
//! handlers run, their results go back as `tool` messages, and the loop repeats until an answer or
//! `max_iterations`.
//!
//! The loop is an explicit state machine ([`LoopState`]). Every step re-renders the whole conversation with the
//! chat template, and the session keeps the cached prefix, so only the new tokens (the tool result and the next
//! assistant header) are evaluated.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::chat::{ChatMessage, ChatTemplate};
use crate::error::Error;
use crate::generate::{CancelToken, GenerateParams, GenerationStats, StopReason, TokenConstraint};
use crate::grammar::{Grammar, GrammarError, JsonConstraint};
use crate::session::Session;

/// What a tool is: its name, what it does, and the JSON Schema of its arguments (an object schema).
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSpec {
    /// Name the model calls it by (`[A-Za-z0-9_-]`, 1–64 characters).
    pub name: String,
    /// One line for the model.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// Runs a tool: gets the arguments (valid against the tool's schema) and returns the result text, or an error
/// text that is sent to the model as the tool's result.
pub trait ToolHandler: Send {
    /// Calls the tool.
    fn call(&mut self, arguments: &Value) -> Result<String, String>;
}

impl<F: FnMut(&Value) -> Result<String, String> + Send> ToolHandler for F {
    fn call(&mut self, arguments: &Value) -> Result<String, String> {
        self(arguments)
    }
}

/// A registered tool.
pub struct Tool {
    /// Its description.
    pub spec: ToolSpec,
    handler: Option<Box<dyn ToolHandler>>,
}

impl std::fmt::Debug for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tool").field("spec", &self.spec).finish_non_exhaustive()
    }
}

impl Tool {
    /// A tool from its description and handler.
    pub fn new(spec: ToolSpec, handler: impl ToolHandler + 'static) -> Tool {
        Tool { spec, handler: Some(Box::new(handler)) }
    }

    /// A tool the caller runs itself: when the model calls it, the loop stops with
    /// [`AgentStop::ToolCallsPending`] and hands the calls over (PicoClaw's mode).
    pub fn external(spec: ToolSpec) -> Tool {
        Tool { spec, handler: None }
    }
}

impl ToolSpec {
    /// Reads a tool from OpenAI's `{"type":"function","function":{name, description, parameters}}` or from a bare
    /// `{name, description, parameters}` object.
    pub fn from_json(v: &Value) -> Result<ToolSpec, Error> {
        let f = v.get("function").unwrap_or(v);
        let bad = |why: String| Error::InvalidArgument { name: "tool definition".into(), why };
        let name = f.get("name").and_then(Value::as_str).ok_or_else(|| bad(format!("no \"name\" string in {v}")))?;
        let description = f.get("description").and_then(Value::as_str).unwrap_or("").to_string();
        let parameters = f.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object", "properties": {}}));
        Ok(ToolSpec { name: name.to_string(), description, parameters })
    }

    /// Checks the name (1–64 characters of `A-Z a-z 0-9 _ -`) and that the parameters are an object schema the
    /// grammar can enforce.
    pub fn validate(&self) -> Result<(), Error> {
        if !valid_tool_name(&self.name) {
            return Err(Error::InvalidArgument {
                name: "tool name".into(),
                why: format!("{:?}: use 1-64 characters of A-Z a-z 0-9 _ -", self.name),
            });
        }
        if self.parameters.get("type").and_then(Value::as_str) != Some("object") {
            return Err(Error::InvalidArgument {
                name: format!("parameters of tool {}", self.name),
                why: "must be a JSON Schema with \"type\": \"object\"".into(),
            });
        }
        Grammar::from_schema(&self.parameters)?;
        Ok(())
    }

    /// Reads a JSON array of tool definitions (see [`ToolSpec::from_json`]).
    pub fn list_from_json(text: &str) -> Result<Vec<ToolSpec>, Error> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| Error::InvalidArgument { name: "tools".into(), why: format!("not JSON: {e}") })?;
        let list = v
            .as_array()
            .ok_or_else(|| Error::InvalidArgument { name: "tools".into(), why: "expected a JSON array".into() })?;
        list.iter().map(ToolSpec::from_json).collect()
    }
}

/// Whether the model may, must, or may not call tools.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum ToolChoice {
    /// The first token decides: a tool call if it starts the tool-call JSON, else a text answer. A call may only
    /// be started when it can be finished within the tokens left (counted in the model's tokens); otherwise the
    /// step answers in text.
    #[default]
    Auto,
    /// The model must call a tool before it may answer (after at least one call, steps are `Auto`). A
    /// `max_tokens` that cannot hold the shortest call is [`GrammarError::BudgetTooSmall`].
    Required,
    /// No tool calls: answer in text.
    None,
}

impl ToolChoice {
    /// Every policy, in declaration order.
    pub const ALL: [ToolChoice; 3] = [ToolChoice::Auto, ToolChoice::Required, ToolChoice::None];

    /// The name bindings use: `"auto"`, `"required"` or `"none"`.
    pub fn name(&self) -> &'static str {
        match self {
            ToolChoice::Auto => "auto",
            ToolChoice::Required => "required",
            ToolChoice::None => "none",
        }
    }

    /// Parses a name of [`ToolChoice::name`] (case-sensitive, as OpenAI's `tool_choice`).
    pub fn from_name(name: &str) -> Option<ToolChoice> {
        ToolChoice::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// How a run is stopped from outside: the cancel token and the `should_stop` hook of [`Agent::run_with`].
struct Interrupt<'a> {
    cancel: Option<CancelToken>,
    should_stop: &'a mut dyn FnMut() -> bool,
}

/// Settings of a loop run.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentParams {
    /// Most model steps (each either a tool call or the answer).
    pub max_iterations: usize,
    /// Token limit, sampler and stop strings of each step.
    pub generate: GenerateParams,
    /// Tool policy.
    pub tool_choice: ToolChoice,
}

impl Default for AgentParams {
    fn default() -> Self {
        AgentParams {
            max_iterations: 5,
            generate: GenerateParams { max_tokens: 192, ..Default::default() },
            tool_choice: ToolChoice::Auto,
        }
    }
}

/// A tool call made by the model (the same type as the calls in a conversation's history).
pub use crate::chat::ToolCall;

/// `{"tool_calls":[…]}` in OpenAI's shape (arguments as JSON strings): what PicoClaw parses.
pub fn tool_calls_json(calls: &[ToolCall]) -> String {
    json!({"tool_calls": calls.iter().map(ToolCall::to_openai).collect::<Vec<_>>()}).to_string()
}

/// Parses the constrained output `{"tool_calls":[…]}` (arguments as objects) into calls.
pub fn parse_tool_calls(text: &str) -> Result<Vec<ToolCall>, Error> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| Error::InvalidArgument { name: "tool call".into(), why: format!("{e}: {text}") })?;
    let calls = v["tool_calls"].as_array().cloned().unwrap_or_default();
    Ok(calls
        .into_iter()
        .map(|c| ToolCall {
            id: c["id"].as_str().unwrap_or_default().to_string(),
            name: c["function"]["name"].as_str().unwrap_or_default().to_string(),
            arguments: c["function"]["arguments"].clone(),
        })
        .collect())
}

/// What the loop reports while it runs.
#[derive(Debug)]
pub enum AgentEvent<'a> {
    /// A piece of the text answer.
    AnswerPiece(&'a str),
    /// The model called a tool (before the handler runs).
    ToolCall(&'a ToolCall),
    /// A handler returned (or failed; the text then is the error message).
    ToolResult {
        /// The call.
        call: &'a ToolCall,
        /// Result text sent back to the model.
        content: &'a str,
        /// Whether the handler failed.
        is_error: bool,
        /// Whether the result was cut to fit the context (the text then ends with a marker saying so).
        truncated: bool,
    },
}

/// How a loop run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AgentStop {
    /// The model answered in text.
    Answered,
    /// `max_iterations` steps ran without an answer.
    MaxIterations,
    /// The cancel token was set or the event callback returned `false`.
    Cancelled,
    /// The model called an external tool (see [`Tool::external`]): the calls are in
    /// [`AgentOutcome::pending_calls`]; add their results as `tool` messages and run again.
    ToolCallsPending,
}

impl AgentStop {
    /// Every outcome, in declaration order (for bindings that list the names).
    pub const ALL: [AgentStop; 4] =
        [AgentStop::Answered, AgentStop::MaxIterations, AgentStop::Cancelled, AgentStop::ToolCallsPending];

    /// The name every binding reports (Python `AgentResult.stop`, `picolm_agent_stop_name` in C, the CLI):
    /// `"answered"`, `"max_iterations"`, `"cancelled"` or `"tool_calls_pending"`.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStop::Answered => "answered",
            AgentStop::MaxIterations => "max_iterations",
            AgentStop::Cancelled => "cancelled",
            AgentStop::ToolCallsPending => "tool_calls_pending",
        }
    }
}

/// The outcome of a loop run.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentOutcome {
    /// The final text answer (empty unless [`AgentStop::Answered`]).
    pub answer: String,
    /// The conversation including the assistant's tool calls, the tool results and the answer.
    pub messages: Vec<ChatMessage>,
    /// Every call made, with its result text.
    pub calls: Vec<(ToolCall, String)>,
    /// Model steps run, each ending in a tool call or the answer (at most `max_iterations`). When the model
    /// repeats a call it already made, that output is discarded and the step is redone as a forced text answer:
    /// the redo is part of the same iteration, not an extra one.
    pub iterations: usize,
    /// Why it ended.
    pub stop: AgentStop,
    /// Prompt tokens evaluated over all steps (after prefix reuse) and prompt tokens in total.
    pub prompt_tokens_evaluated: usize,
    /// Prompt tokens over all steps, before prefix reuse.
    pub prompt_tokens_total: usize,
    /// Calls of external tools waiting for their results ([`AgentStop::ToolCallsPending`]).
    pub pending_calls: Vec<ToolCall>,
    /// Token counts and times summed over every model run of the loop (forced answers included).
    pub generation: GenerationStats,
    /// Why the last model run ended (`None` when no model step ran): tells an answer cut by `max_tokens` or the
    /// context ([`StopReason::MaxTokens`], [`StopReason::ContextFull`]) from a finished one, as OpenAI's
    /// `finish_reason` does.
    pub last_stop_reason: Option<StopReason>,
}

/// The states of the loop.
#[derive(Debug)]
pub enum LoopState {
    /// Render the conversation and let the model produce a step.
    ModelStep {
        /// Whether this step must answer in text.
        answer_only: bool,
    },
    /// Redo the current step as a text answer (the model repeated a call it already made); not an extra
    /// iteration.
    ForcedAnswer,
    /// Run the handlers of these calls.
    RunTools(Vec<ToolCall>),
    /// Finished.
    Done(AgentStop),
}

/// The tool-call loop over a set of tools and a chat template.
#[derive(Debug)]
pub struct Agent {
    tools: Vec<Tool>,
    template: ChatTemplate,
    grammar: Arc<Grammar>,
}

/// Bytes per token beyond which a tool result is certainly too long (real text averages about four); bounds the
/// tokenizer's work on huge results.
const TOOL_RESULT_BYTES_PER_TOKEN: usize = 64;

const MODE_UNDECIDED: u8 = 0;
const MODE_JSON: u8 = 1;
const MODE_TEXT: u8 = 2;
/// Answer-only step, before its first token: tokens that would start a tool call are masked, so a model that
/// tends to repeat its call has to answer in words.
const MODE_ANSWER_START: u8 = 3;

/// A step's constraint: undecided until the first token, then a tool call (grammar) or free text.
struct StepConstraint {
    json: JsonConstraint,
    mode: Arc<AtomicU8>,
}

impl TokenConstraint for StepConstraint {
    fn mask_logits(&mut self, logits: &mut [f32], remaining: usize) -> Result<(), GrammarError> {
        match self.mode.load(Ordering::Relaxed) {
            MODE_JSON => self.json.mask_logits(logits, remaining),
            MODE_ANSWER_START => {
                for t in self.json.accepted_tokens() {
                    logits[t as usize] = f32::NEG_INFINITY;
                }
                Ok(())
            }
            // The first token decides: it may start a tool call only if the call can be finished within the
            // tokens left; otherwise the model answers in text.
            MODE_UNDECIDED => {
                self.json.mask_over_budget(logits, remaining);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn accept_token(&mut self, token: u32) -> Result<(), GrammarError> {
        match self.mode.load(Ordering::Relaxed) {
            MODE_JSON => self.json.accept_token(token),
            MODE_UNDECIDED => {
                let mode = if self.json.accept(token).is_ok() { MODE_JSON } else { MODE_TEXT };
                self.mode.store(mode, Ordering::Relaxed);
                Ok(())
            }
            MODE_ANSWER_START => {
                self.mode.store(MODE_TEXT, Ordering::Relaxed);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn is_complete(&self) -> bool {
        self.mode.load(Ordering::Relaxed) == MODE_JSON && self.json.complete()
    }
}

fn valid_tool_name(n: &str) -> bool {
    !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The schema of one step's tool-call output.
pub fn tool_call_schema(tools: &[ToolSpec], max_calls: u32) -> Value {
    let items: Vec<Value> = tools
        .iter()
        .map(|t| {
            json!({
                "type": "object",
                "properties": {
                    "id": {"type": "string", "minLength": 1, "maxLength": 24},
                    "type": {"const": "function"},
                    "function": {
                        "type": "object",
                        "properties": {"name": {"const": t.name}, "arguments": t.parameters},
                        "required": ["name", "arguments"]
                    }
                },
                "required": ["id", "type", "function"]
            })
        })
        .collect();
    json!({
        "type": "object",
        "properties": {"tool_calls": {"type": "array", "items": {"anyOf": items}, "minItems": 1, "maxItems": max_calls}},
        "required": ["tool_calls"]
    })
}

/// A compact one-line signature of a tool for the prompt: `name(a: string, b?: integer) - description`.
fn signature(t: &ToolSpec) -> String {
    let props = t.parameters.get("properties").and_then(Value::as_object);
    let required: Vec<&str> = t
        .parameters
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let args: Vec<String> = props
        .map(|p| {
            p.iter()
                .map(|(k, s)| {
                    let ty = if let Some(e) = s.get("enum") {
                        e.as_array()
                            .map(|a| a.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("|"))
                            .unwrap_or_default()
                    } else {
                        s.get("type")
                            .map(|t| t.as_str().map(str::to_string).unwrap_or_else(|| t.to_string()))
                            .unwrap_or("any".into())
                    };
                    let opt = if required.contains(&k.as_str()) { "" } else { "?" };
                    format!("{k}{opt}: {ty}")
                })
                .collect()
        })
        .unwrap_or_default();
    format!("{}({}) - {}", t.name, args.join(", "), t.description)
}

impl Agent {
    /// A loop over `tools` using `template`. Fails on duplicate or invalid names and on argument schemas the
    /// grammar cannot enforce.
    pub fn new(tools: Vec<Tool>, template: ChatTemplate, max_calls_per_step: u32) -> Result<Agent, Error> {
        if tools.is_empty() {
            return Err(Error::InvalidArgument { name: "tools".into(), why: "at least one tool is needed".into() });
        }
        for (i, t) in tools.iter().enumerate() {
            t.spec.validate()?;
            if tools[..i].iter().any(|o| o.spec.name == t.spec.name) {
                return Err(Error::InvalidArgument {
                    name: "tool name".into(),
                    why: format!("{:?} is registered twice", t.spec.name),
                });
            }
        }
        let specs: Vec<ToolSpec> = tools.iter().map(|t| t.spec.clone()).collect();
        let grammar = Arc::new(Grammar::from_schema(&tool_call_schema(&specs, max_calls_per_step.max(1)))?);
        Ok(Agent { tools, template, grammar })
    }

    /// Gives the tools back (to add more and build a new loop).
    pub fn into_tools(self) -> Vec<Tool> {
        self.tools
    }

    /// The registered tools.
    pub fn tools(&self) -> impl Iterator<Item = &ToolSpec> {
        self.tools.iter().map(|t| &t.spec)
    }

    /// The system text that describes the tools (appended to the conversation's system message).
    pub fn tools_prompt(&self) -> String {
        let mut s = String::from("You can call these tools:\n");
        for t in &self.tools {
            s += &format!("- {}\n", signature(&t.spec));
        }
        s += "To call a tool, reply with only JSON: {\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\
              \"function\":{\"name\":\"<tool>\",\"arguments\":{…}}}]}. A tool's result comes back in a tool \
              message. Otherwise, answer in plain text.";
        s
    }

    fn with_tools(&self, messages: &[ChatMessage]) -> Vec<ChatMessage> {
        let mut out = messages.to_vec();
        match out.first_mut() {
            Some(m) if m.role == "system" => m.content = format!("{}\n\n{}", m.content, self.tools_prompt()),
            _ => out.insert(0, ChatMessage::new("system", self.tools_prompt())),
        }
        out
    }

    /// Runs the loop on `messages` (the conversation so far, ending with the user's message). `on_event` sees
    /// answer pieces, calls and results; returning `false` from it stops the run. Same as [`Agent::run_with`]
    /// without a `should_stop` hook.
    pub fn run(
        &mut self,
        session: &mut Session,
        messages: &[ChatMessage],
        params: &AgentParams,
        cancel: Option<CancelToken>,
        on_event: &mut dyn FnMut(AgentEvent<'_>) -> bool,
    ) -> Result<AgentOutcome, Error> {
        self.run_with(session, messages, params, cancel, &mut || false, on_event)
    }

    /// Runs the loop like [`Agent::run`]; every model step goes through [`Session::generate_with`], so
    /// `should_stop` is polled between prefill batches and between generated pieces (tool calls included, which
    /// send no events until they are complete). When it returns true the run ends with [`AgentStop::Cancelled`].
    pub fn run_with(
        &mut self,
        session: &mut Session,
        messages: &[ChatMessage],
        params: &AgentParams,
        cancel: Option<CancelToken>,
        should_stop: &mut dyn FnMut() -> bool,
        on_event: &mut dyn FnMut(AgentEvent<'_>) -> bool,
    ) -> Result<AgentOutcome, Error> {
        // The shortest tool call in tokens of this model. `Required` cannot do without one; `Auto` answers in text
        // when a call does not fit (the first token of each step may only start a call that can be finished).
        let needed = JsonConstraint::new(self.grammar.clone(), session.model().grammar_vocab()).min_tokens();
        if params.tool_choice == ToolChoice::Required && (params.generate.max_tokens as u64) < needed {
            return Err(GrammarError::BudgetTooSmall { needed, max_tokens: params.generate.max_tokens }.into());
        }
        let mut out = AgentOutcome {
            answer: String::new(),
            messages: messages.to_vec(),
            calls: Vec::new(),
            iterations: 0,
            stop: AgentStop::MaxIterations,
            prompt_tokens_evaluated: 0,
            prompt_tokens_total: 0,
            pending_calls: Vec::new(),
            generation: GenerationStats::default(),
            last_stop_reason: None,
        };
        let mut interrupt = Interrupt { cancel, should_stop };
        let mut state = LoopState::ModelStep { answer_only: params.tool_choice == ToolChoice::None };
        loop {
            state = match state {
                LoopState::Done(stop) => {
                    out.stop = stop;
                    return Ok(out);
                }
                LoopState::ModelStep { .. } if out.iterations >= params.max_iterations => {
                    LoopState::Done(AgentStop::MaxIterations)
                }
                LoopState::ModelStep { answer_only } => {
                    out.iterations += 1;
                    self.model_step(session, &mut out, params, answer_only, &mut interrupt, on_event)?
                }
                LoopState::ForcedAnswer => {
                    self.model_step(session, &mut out, params, true, &mut interrupt, on_event)?
                }
                LoopState::RunTools(calls) => self.run_tools(session, calls, &mut out, params, on_event)?,
            };
        }
    }

    fn model_step(
        &mut self,
        session: &mut Session,
        out: &mut AgentOutcome,
        params: &AgentParams,
        answer_only: bool,
        interrupt: &mut Interrupt<'_>,
        on_event: &mut dyn FnMut(AgentEvent<'_>) -> bool,
    ) -> Result<LoopState, Error> {
        let prompt_text = self.template.render(&self.with_tools(&out.messages), true)?;
        let prompt = self.template.encode(session.model().tokenizer(), &prompt_text);
        let first_mode = if answer_only && params.tool_choice == ToolChoice::None {
            MODE_TEXT
        } else if answer_only {
            MODE_ANSWER_START
        } else if params.tool_choice == ToolChoice::Required && out.calls.is_empty() {
            MODE_JSON
        } else {
            MODE_UNDECIDED
        };
        let mode = Arc::new(AtomicU8::new(first_mode));
        let constraint = (first_mode != MODE_TEXT).then(|| {
            Box::new(StepConstraint {
                json: JsonConstraint::new(self.grammar.clone(), session.model().grammar_vocab()),
                mode: mode.clone(),
            }) as Box<dyn TokenConstraint>
        });
        let mut stopped_by_callback = false;
        let cancel = interrupt.cancel.clone();
        let should_stop = &mut *interrupt.should_stop;
        let result =
            session.generate_with(&prompt, &params.generate, constraint, cancel, should_stop, &mut |piece| {
                if matches!(mode.load(Ordering::Relaxed), MODE_TEXT | MODE_ANSWER_START)
                    && !on_event(AgentEvent::AnswerPiece(piece))
                {
                    stopped_by_callback = true;
                    return false;
                }
                true
            })?;
        out.prompt_tokens_total += result.stats.n_prompt;
        out.prompt_tokens_evaluated += result.stats.n_prompt - result.stats.n_reused;
        let (sum, st) = (&mut out.generation, &result.stats);
        sum.n_prompt += st.n_prompt;
        sum.n_reused += st.n_reused;
        sum.n_generated += st.n_generated;
        sum.prefill += st.prefill;
        sum.decode += st.decode;
        out.last_stop_reason = Some(result.stop_reason);
        if matches!(result.stop_reason, StopReason::Cancelled) || stopped_by_callback {
            return Ok(LoopState::Done(AgentStop::Cancelled));
        }
        if mode.load(Ordering::Relaxed) != MODE_JSON {
            out.answer = result.text.trim().to_string();
            out.messages.push(ChatMessage::new("assistant", out.answer.clone()));
            return Ok(LoopState::Done(AgentStop::Answered));
        }
        if result.stop_reason != StopReason::GrammarComplete {
            return Err(
                GrammarError::NoAllowedToken(format!("tool call ended by {}", result.stop_reason.as_str())).into()
            );
        }
        let calls = parse_tool_calls(&result.text)?;
        out.messages.push(ChatMessage::new("assistant", result.text.clone()));
        // A small model may repeat a call it already made instead of answering: answer with what it has.
        if calls.iter().all(|c| out.calls.iter().any(|(p, _)| p.name == c.name && p.arguments == c.arguments)) {
            out.messages.pop();
            return Ok(LoopState::ForcedAnswer);
        }
        Ok(LoopState::RunTools(calls))
    }

    fn run_tools(
        &mut self,
        session: &Session,
        calls: Vec<ToolCall>,
        out: &mut AgentOutcome,
        params: &AgentParams,
        on_event: &mut dyn FnMut(AgentEvent<'_>) -> bool,
    ) -> Result<LoopState, Error> {
        let external = |c: &ToolCall| self.tools.iter().any(|t| t.spec.name == c.name && t.handler.is_none());
        if calls.iter().any(external) {
            for c in &calls {
                if !on_event(AgentEvent::ToolCall(c)) {
                    return Ok(LoopState::Done(AgentStop::Cancelled));
                }
            }
            out.pending_calls = calls;
            return Ok(LoopState::Done(AgentStop::ToolCallsPending));
        }
        for call in calls {
            if !on_event(AgentEvent::ToolCall(&call)) {
                return Ok(LoopState::Done(AgentStop::Cancelled));
            }
            let tool = self
                .tools
                .iter_mut()
                .find(|t| t.spec.name == call.name)
                .expect("the grammar only allows registered names");
            let handler = tool.handler.as_mut().expect("external tools were handled above");
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler.call(&call.arguments)))
                .unwrap_or_else(|_| Err("the tool handler panicked".to_string()));
            let (content, is_error) = match result {
                Ok(text) => (text, false),
                Err(e) => (format!("error: {e}"), true),
            };
            let (content, truncated) = self.fit_tool_result(session, &out.messages, &call, content, params)?;
            if !on_event(AgentEvent::ToolResult { call: &call, content: &content, is_error, truncated }) {
                return Ok(LoopState::Done(AgentStop::Cancelled));
            }
            out.messages.push(ChatMessage::tool_result(&call, content.clone()));
            out.calls.push((call, content));
        }
        Ok(LoopState::ModelStep { answer_only: false })
    }

    /// Prompt tokens of the conversation `messages` plus a tool message with `content`, as the next step renders
    /// it.
    fn prompt_tokens_with(
        &self,
        session: &Session,
        messages: &[ChatMessage],
        call: &ToolCall,
        content: &str,
    ) -> Result<usize, Error> {
        let mut all = messages.to_vec();
        all.push(ChatMessage::tool_result(call, content));
        let text = self.template.render(&self.with_tools(&all), true)?;
        Ok(self.template.encode(session.model().tokenizer(), &text).len())
    }

    /// Cuts a tool result that would not fit in the context, by tokens, keeping room for the next step's output
    /// (`max_tokens`, at most a quarter of the context), and marks the cut in the text. Returns the text the
    /// model sees and whether it was cut.
    fn fit_tool_result(
        &self,
        session: &Session,
        messages: &[ChatMessage],
        call: &ToolCall,
        content: String,
        params: &AgentParams,
    ) -> Result<(String, bool), Error> {
        let n_ctx = session.n_ctx();
        let limit = n_ctx - params.generate.max_tokens.min(n_ctx / 4);
        let base = self.prompt_tokens_with(session, messages, call, "")?;
        let room = limit.saturating_sub(base);
        // Fewer bytes than tokens of room always fit (every token has at least one byte): skip the count.
        if content.len() < room / 2
            || (content.len() <= room * TOOL_RESULT_BYTES_PER_TOKEN
                && self.prompt_tokens_with(session, messages, call, &content)? <= limit)
        {
            return Ok((content, false));
        }
        let tokenizer = session.model().tokenizer();
        // Beyond this many bytes the text cannot fit in `room` tokens (bounds the tokenizer's work on huge results).
        let mut cut = content.len().min(room.saturating_mul(TOOL_RESULT_BYTES_PER_TOKEN));
        while !content.is_char_boundary(cut) {
            cut -= 1;
        }
        let ids = tokenizer.encode(&content[..cut], false, false);
        let mut keep = ids.len().min(room);
        for _ in 0..8 {
            let bytes = tokenizer.decode(&ids[..keep], false);
            let shown = match std::str::from_utf8(&bytes) {
                Ok(s) => s,
                Err(e) => std::str::from_utf8(&bytes[..e.valid_up_to()]).expect("valid prefix"),
            };
            let text = format!(
                "{shown}\n[tool result truncated to fit the context: {} of {} bytes shown]",
                shown.len(),
                content.len()
            );
            let used = self.prompt_tokens_with(session, messages, call, &text)?;
            if used <= limit || keep == 0 {
                return Ok((text, true));
            }
            keep = keep.saturating_sub(used - limit + 4);
        }
        Ok((format!("[tool result of {} bytes omitted: it does not fit in the context]", content.len()), true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ToolSpec {
        ToolSpec {
            name: "set_relay".into(),
            description: "Switch a relay".into(),
            parameters: json!({"type":"object","properties":{"id":{"type":"integer"},"on":{"type":"boolean"}},"required":["id","on"]}),
        }
    }

    #[test]
    fn tool_call_schema_accepts_the_openai_shape_with_object_arguments() {
        let g = Grammar::from_schema(&tool_call_schema(&[spec()], 1)).unwrap();
        let ok = r#"{"tool_calls":[{"id":"call_1","type":"function","function":{"name":"set_relay","arguments":{"id":2,"on":true}}}]}"#;
        assert!(g.accepts(ok.as_bytes()));
        let calls = parse_tool_calls(ok).unwrap();
        assert_eq!(calls[0].arguments, json!({"id":2,"on":true}));
        assert_eq!(
            tool_calls_json(&calls),
            r#"{"tool_calls":[{"id":"call_1","type":"function","function":{"name":"set_relay","arguments":"{\"id\":2,\"on\":true}"}}]}"#
        );
        for bad in [
            r#"{"tool_calls":[{"id":"c","type":"function","function":{"name":"other","arguments":{"id":2,"on":true}}}]}"#,
            r#"{"tool_calls":[{"id":"c","type":"function","function":{"name":"set_relay","arguments":{"id":"2","on":true}}}]}"#,
            r#"{"tool_calls":[]}"#,
        ] {
            assert!(!g.accepts(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn signature_is_compact() {
        assert_eq!(signature(&spec()), "set_relay(id: integer, on: boolean) - Switch a relay");
    }
}
