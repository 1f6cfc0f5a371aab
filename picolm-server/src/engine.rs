//! The model and its slots: each slot owns a [`Session`] whose KV cache outlives the request, so the next request
//! re-evaluates only what follows the longest common token prefix (the prompt cache). Jobs run on blocking
//! threads; they report text pieces as they come and end with an [`Outcome`] or an error.

use std::sync::{Arc, Mutex};

use picolm_core::agent::{Agent, AgentEvent, AgentParams, AgentStop, Tool, ToolCall, ToolChoice, ToolSpec};
use picolm_core::chat::{ChatMessage, ChatTemplate};
use picolm_core::grammar::{Grammar, JsonConstraint};
use picolm_core::{CancelToken, GenerateParams, Model, Session, StopReason, TokenConstraint};

use crate::error::ApiError;
use crate::request::{ChatRequest, CompletionRequest, GenOptions, ResponseFormat, ToolChoiceReq};

/// What a job asks for.
#[derive(Clone, Debug)]
pub enum Job {
    /// A chat completion.
    Chat(ChatRequest),
    /// A raw-prompt completion.
    Completion(CompletionRequest),
}

/// OpenAI's `finish_reason`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its answer, a stop string appeared, or the JSON value is complete.
    Stop,
    /// `max_tokens` or the context ran out.
    Length,
    /// The model called tools.
    ToolCalls,
}

impl FinishReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
        }
    }

    /// The finish reason of an engine stop reason (`None`: the client went away).
    pub fn of(reason: StopReason) -> Option<FinishReason> {
        match reason {
            StopReason::EndOfGeneration | StopReason::StopString | StopReason::GrammarComplete => {
                Some(FinishReason::Stop)
            }
            StopReason::MaxTokens | StopReason::ContextFull => Some(FinishReason::Length),
            StopReason::Cancelled | StopReason::CallbackStopped => None,
        }
    }
}

/// Token counts of a finished job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Of them, reused from the cache.
    pub cached_tokens: usize,
    /// Generated tokens (a final end token included).
    pub completion_tokens: usize,
}

/// The result of a finished job.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// The text (all pieces joined).
    pub text: String,
    /// The tool calls, when the model made some.
    pub tool_calls: Vec<ToolCall>,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// Token counts.
    pub usage: Usage,
}

/// Where a running job sends its text: `false` means the receiver is gone (the job then stops).
pub type PieceSink<'a> = dyn FnMut(&str) -> bool + 'a;

/// A cached tool-call loop: PicoClaw sends the same tools every turn, so the grammar is compiled once.
struct CachedAgent {
    key: String,
    agent: Agent,
}

/// One slot: a session and what was last run on it.
pub struct Slot {
    session: Session,
    agent: Option<CachedAgent>,
    last_messages: Vec<ChatMessage>,
}

/// The loaded model and its slots.
pub struct Engine {
    model: Arc<Model>,
    template: ChatTemplate,
    slots: Mutex<Vec<Slot>>,
    call_counter: std::sync::atomic::AtomicU64,
    /// Start time (Unix seconds, hex) in every tool-call id, so ids stay unique across server restarts.
    call_prefix: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("n_ctx", &self.n_ctx()).finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine with `n_slots` sessions of `n_ctx` positions over `model`.
    pub fn new(model: Arc<Model>, n_ctx: usize, n_slots: usize) -> Result<Engine, picolm_core::Error> {
        let template = ChatTemplate::for_model(model.file(), model.tokenizer())?;
        let params = picolm_core::SessionParams { n_ctx, ..Default::default() };
        let slots = (0..n_slots.max(1))
            .map(|_| {
                Ok(Slot { session: Session::new(model.clone(), &params)?, agent: None, last_messages: Vec::new() })
            })
            .collect::<Result<Vec<_>, picolm_core::Error>>()?;
        let started =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        Ok(Engine {
            model,
            template,
            slots: Mutex::new(slots),
            call_counter: Default::default(),
            call_prefix: format!("{started:x}"),
        })
    }

    /// Context of each slot.
    pub fn n_ctx(&self) -> usize {
        self.slots.lock().map(|s| s.first().map_or(0, |s| s.session.n_ctx())).unwrap_or(0)
    }

    /// Takes the free slot whose last conversation shares the longest message prefix with `job` (the best prompt
    /// cache hit). The caller holds a permit, so a slot is free.
    fn take_slot(&self, job: &Job) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let score = |s: &Slot| match job {
            Job::Chat(c) => s.last_messages.iter().zip(&c.messages).take_while(|(a, b)| a == b).count(),
            Job::Completion(_) => 0,
        };
        let best = (0..slots.len()).max_by_key(|&i| score(&slots[i])).expect("a permit guarantees a free slot");
        slots.swap_remove(best)
    }

    fn put_slot(&self, slot: Slot) {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).push(slot);
    }

    /// Runs a job on a free slot (the caller holds a permit), sending text pieces to `sink`. Returns `Ok(None)`
    /// when the job was cancelled (the client went away). A panic inside the engine is caught: the slot's cache
    /// is dropped and the job answers 500.
    pub fn run(&self, job: &Job, cancel: &CancelToken, sink: &mut PieceSink<'_>) -> Result<Option<Outcome>, ApiError> {
        let mut slot = self.take_slot(job);
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_on(&mut slot, job, cancel, sink)));
        let result = match result {
            Ok(r) => r,
            Err(_) => {
                slot.session.reset();
                slot.agent = None;
                Err(ApiError::internal("the engine failed on this request (a bug): its slot was reset"))
            }
        };
        slot.last_messages = match (job, &result) {
            (Job::Chat(c), Ok(_)) => c.messages.clone(),
            _ => Vec::new(),
        };
        self.put_slot(slot);
        result
    }

    fn run_on(
        &self,
        slot: &mut Slot,
        job: &Job,
        cancel: &CancelToken,
        sink: &mut PieceSink<'_>,
    ) -> Result<Option<Outcome>, ApiError> {
        match job {
            Job::Chat(c) if !c.tools.is_empty() && c.tool_choice != ToolChoiceReq::None => {
                self.run_tools(slot, c, cancel, sink)
            }
            Job::Chat(c) => {
                let text = self
                    .template
                    .render(&c.messages, true)
                    .map_err(|e| ApiError::invalid("messages", e.to_string()))?;
                let prompt = self.template.encode(self.model.tokenizer(), &text);
                let constraint = self.constraint(&c.response_format)?;
                self.generate(&mut slot.session, &prompt, &c.gen, constraint, "response_format", cancel, sink)
            }
            Job::Completion(c) => {
                let prompt = self.model.tokenizer().encode(&c.prompt, true, true);
                self.generate(&mut slot.session, &prompt, &c.gen, None, "prompt", cancel, sink)
            }
        }
    }

    fn constraint(&self, format: &ResponseFormat) -> Result<Option<Box<dyn TokenConstraint>>, ApiError> {
        let grammar = match format {
            ResponseFormat::Text => return Ok(None),
            ResponseFormat::JsonObject => Grammar::json_object(),
            ResponseFormat::JsonSchema(schema) => {
                Grammar::from_schema(schema).map_err(|e| ApiError::invalid("response_format", e.to_string()))?
            }
        };
        Ok(Some(Box::new(JsonConstraint::new(Arc::new(grammar), self.model.grammar_vocab()))))
    }

    /// Checks that the prompt leaves room for at least one new token, and returns the token limit.
    fn budget(&self, session: &Session, n_prompt: usize, gen: &GenOptions) -> Result<usize, ApiError> {
        let n_ctx = session.n_ctx();
        if n_prompt >= n_ctx {
            return Err(ApiError::from_core(&picolm_core::Error::PromptTooLong { n_prompt, n_ctx }, "messages"));
        }
        Ok(gen.max_tokens.unwrap_or(n_ctx - n_prompt))
    }

    #[allow(clippy::too_many_arguments)]
    fn generate(
        &self,
        session: &mut Session,
        prompt: &[u32],
        gen: &GenOptions,
        constraint: Option<Box<dyn TokenConstraint>>,
        param: &str,
        cancel: &CancelToken,
        sink: &mut PieceSink<'_>,
    ) -> Result<Option<Outcome>, ApiError> {
        let max_tokens = self.budget(session, prompt.len(), gen)?;
        let params =
            GenerateParams { max_tokens, sampler: gen.sampler.clone(), stop: gen.stop.clone(), stop_at_eog: true };
        let out = session
            .generate(prompt, &params, constraint, Some(cancel.clone()), sink)
            .map_err(|e| ApiError::from_core(&e, param))?;
        let Some(finish_reason) = FinishReason::of(out.stop_reason) else { return Ok(None) };
        let usage = Usage {
            prompt_tokens: out.stats.n_prompt,
            cached_tokens: out.stats.n_reused,
            completion_tokens: out.stats.n_generated,
        };
        Ok(Some(Outcome { text: out.text, tool_calls: Vec::new(), finish_reason, usage }))
    }

    fn agent_for<'s>(&self, cache: &'s mut Option<CachedAgent>, req: &ChatRequest) -> Result<&'s mut Agent, ApiError> {
        let tools: Vec<&ToolSpec> = match &req.tool_choice {
            ToolChoiceReq::Function(name) => req.tools.iter().filter(|t| &t.name == name).collect(),
            _ => req.tools.iter().collect(),
        };
        let key =
            serde_json::to_string(&tools.iter().map(|t| (&t.name, &t.description, &t.parameters)).collect::<Vec<_>>())
                .unwrap_or_default();
        if cache.as_ref().is_none_or(|a| a.key != key) {
            *cache = None;
            let template = ChatTemplate::for_model(self.model.file(), self.model.tokenizer())
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let registered = tools.iter().map(|t| Tool::external((*t).clone())).collect();
            let agent = Agent::new(registered, template, 1).map_err(|e| ApiError::from_core(&e, "tools"))?;
            *cache = Some(CachedAgent { key, agent });
        }
        Ok(&mut cache.as_mut().expect("set above").agent)
    }

    fn run_tools(
        &self,
        slot: &mut Slot,
        req: &ChatRequest,
        cancel: &CancelToken,
        sink: &mut PieceSink<'_>,
    ) -> Result<Option<Outcome>, ApiError> {
        let n_ctx = slot.session.n_ctx();
        let choice = match req.tool_choice {
            ToolChoiceReq::Auto => ToolChoice::Auto,
            ToolChoiceReq::Required | ToolChoiceReq::Function(_) => ToolChoice::Required,
            ToolChoiceReq::None => ToolChoice::None,
        };
        let Slot { session, agent, .. } = slot;
        let agent = self.agent_for(agent, req)?;
        // The prompt length is known only once the loop renders it: the limit is capped by the context there.
        let max_tokens = req.gen.max_tokens.unwrap_or(n_ctx);
        let generate = GenerateParams {
            max_tokens,
            sampler: req.gen.sampler.clone(),
            stop: req.gen.stop.clone(),
            stop_at_eog: true,
        };
        let params = AgentParams { max_iterations: 1, generate, tool_choice: choice };
        let mut text = String::new();
        let mut gone = false;
        let out = agent
            .run(session, &req.messages, &params, Some(cancel.clone()), &mut |event| {
                if let AgentEvent::AnswerPiece(piece) = event {
                    text.push_str(piece);
                    if !sink(piece) {
                        gone = true;
                        return false;
                    }
                }
                true
            })
            .map_err(|e| ApiError::from_core(&e, "tools"))?;
        let usage = Usage {
            prompt_tokens: out.generation.n_prompt,
            cached_tokens: out.generation.n_reused,
            completion_tokens: out.generation.n_generated,
        };
        match out.stop {
            AgentStop::Cancelled => Ok(None),
            _ if gone => Ok(None),
            AgentStop::ToolCallsPending => {
                let base = self.call_counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let tool_calls = out
                    .pending_calls
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| ToolCall { id: format!("call_{}{base:x}_{i}", self.call_prefix), ..c })
                    .collect();
                Ok(Some(Outcome { text: String::new(), tool_calls, finish_reason: FinishReason::ToolCalls, usage }))
            }
            AgentStop::Answered | AgentStop::MaxIterations => {
                let finish_reason = out.last_stop_reason.and_then(FinishReason::of).unwrap_or(FinishReason::Stop);
                Ok(Some(Outcome { text, tool_calls: Vec::new(), finish_reason, usage }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons_follow_openai() {
        assert_eq!(FinishReason::of(StopReason::EndOfGeneration), Some(FinishReason::Stop));
        assert_eq!(FinishReason::of(StopReason::StopString), Some(FinishReason::Stop));
        assert_eq!(FinishReason::of(StopReason::GrammarComplete), Some(FinishReason::Stop));
        assert_eq!(FinishReason::of(StopReason::MaxTokens), Some(FinishReason::Length));
        assert_eq!(FinishReason::of(StopReason::ContextFull), Some(FinishReason::Length));
        assert_eq!(FinishReason::of(StopReason::Cancelled), None);
        assert_eq!(FinishReason::ToolCalls.as_str(), "tool_calls");
    }
}
