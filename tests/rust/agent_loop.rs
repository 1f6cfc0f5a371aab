//! The tool-call loop's counters and chat history on the real SmolLM2 model: a forced answer (after the model
//! repeats a call it already made) is not an extra iteration, and assistant tool calls given in the history are
//! rendered into the prompt with the model's own template.

use std::sync::Arc;

use picolm_core::agent::{Agent, AgentParams, AgentStop, Tool, ToolChoice, ToolSpec};
use picolm_core::chat::{ChatMessage, ChatTemplate};
use picolm_core::{Model, ModelParams, Session, SessionParams};
use picolm_integration_tests::model_path;
use serde_json::{json, Value};

fn load() -> Arc<Model> {
    let params = ModelParams { n_ctx: 1024, n_threads: 2, ..Default::default() };
    Arc::new(Model::load(model_path("SmolLM2-135M-Instruct.Q4_1.gguf"), &params).unwrap())
}

fn sensor_tool() -> Tool {
    Tool::new(
        ToolSpec {
            name: "read_sensor".into(),
            description: "Read a sensor value".into(),
            parameters: json!({"type":"object","properties":{"name":{"enum":["temperature","humidity"]}},"required":["name"]}),
        },
        |_: &Value| Ok("40 %".to_string()),
    )
}

/// SmolLM2-135M repeats its `read_sensor` call after seeing the result (greedy); the loop then discards that
/// output and forces a text answer. With `max_iterations = 2` that redo happens on the last iteration: it must
/// still produce the answer, and count once.
#[test]
fn a_forced_answer_is_not_an_extra_iteration() {
    let model = load();
    for max_iterations in [2, 4] {
        let mut session = Session::new(model.clone(), &SessionParams { n_ctx: 1024, ..Default::default() }).unwrap();
        let template = ChatTemplate::for_model(model.file(), model.tokenizer()).unwrap();
        let mut agent = Agent::new(vec![sensor_tool()], template, 1).unwrap();
        let params = AgentParams { tool_choice: ToolChoice::Required, max_iterations, ..Default::default() };
        let user = [ChatMessage::new("user", "Read the humidity sensor.")];
        let out = agent.run(&mut session, &user, &params, None, &mut |_| true).unwrap();
        assert_eq!(out.stop, AgentStop::Answered, "max_iterations {max_iterations}: {out:#?}");
        assert_eq!(out.calls.len(), 1, "{out:#?}");
        assert!(!out.answer.is_empty());
        assert_eq!(out.iterations, 2, "one call step and one (forced) answer step: {out:#?}");
        // Three model runs happened (call, discarded repeat, forced answer): the summed counters cover them all.
        let g = out.generation;
        assert_eq!(g.n_prompt, out.prompt_tokens_total);
        assert_eq!(g.n_prompt - g.n_reused, out.prompt_tokens_evaluated);
        assert!(g.n_generated > 2 * 20, "two tool calls of 20+ tokens and an answer: {g:?}");
        // The precondition, checked rather than assumed: given the call and its result, the model's next step
        // (a fresh loop over that history, one iteration) repeats the call.
        let history = &out.messages[..3];
        assert_eq!((history[1].role.as_str(), history[2].role.as_str()), ("assistant", "tool"), "{out:#?}");
        let mut fresh = Session::new(model.clone(), &SessionParams { n_ctx: 1024, ..Default::default() }).unwrap();
        let template = ChatTemplate::for_model(model.file(), model.tokenizer()).unwrap();
        let mut replay = Agent::new(vec![sensor_tool()], template, 1).unwrap();
        let one_step = AgentParams { tool_choice: ToolChoice::Auto, max_iterations: 1, ..Default::default() };
        let next = replay.run(&mut fresh, history, &one_step, None, &mut |_| true).unwrap();
        assert_eq!(next.stop, AgentStop::MaxIterations, "the next step is a call, not an answer: {next:#?}");
        assert_eq!(
            (&next.calls[0].0.name, &next.calls[0].0.arguments),
            (&out.calls[0].0.name, &out.calls[0].0.arguments),
            "the next step repeats the call"
        );
    }
}

#[test]
fn history_tool_calls_reach_the_prompt() {
    let model = load();
    let template = ChatTemplate::for_model(model.file(), model.tokenizer()).unwrap();
    let history = ChatMessage::list_from_json(&json!([
        {"role": "user", "content": [{"type": "text", "text": "Read the humidity sensor."}]},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_9", "type": "function",
            "function": {"name": "read_sensor", "arguments": "{\"name\": \"humidity\"}"}}]},
        {"role": "tool", "tool_call_id": "call_9", "content": "40 %"}
    ]))
    .unwrap();
    let text = template.render(&history, true).unwrap();
    assert!(
        text.contains(r#"<|im_start|>assistant
{"tool_calls":[{"id":"call_9","type":"function","function":{"name":"read_sensor","arguments":{"name":"humidity"}}}]}<|im_end|>"#),
        "{text}"
    );
    assert!(
        text.contains("<|im_start|>user\nRead the humidity sensor.<|im_end|>")
            && text.ends_with("<|im_start|>assistant\n")
    );
}

/// The outcome says why the last model run ended: an answer cut by `max_tokens` reports `MaxTokens` (a server
/// maps it to `finish_reason: "length"`), a finished one an end token; a step that made a call ends its grammar.
#[test]
fn the_outcome_reports_the_last_stop_reason() {
    use picolm_core::StopReason;
    let model = load();
    let run = |choice: ToolChoice, max_tokens: usize| {
        let mut session = Session::new(model.clone(), &SessionParams { n_ctx: 1024, ..Default::default() }).unwrap();
        let template = ChatTemplate::for_model(model.file(), model.tokenizer()).unwrap();
        let spec = sensor_tool().spec;
        let mut agent = Agent::new(vec![Tool::external(spec)], template, 1).unwrap();
        let mut params = AgentParams { tool_choice: choice, max_iterations: 1, ..Default::default() };
        params.generate.max_tokens = max_tokens;
        let user = [ChatMessage::new("user", "Say hello to me in one long sentence.")];
        agent.run(&mut session, &user, &params, None, &mut |_| true).unwrap()
    };
    let cut = run(ToolChoice::None, 3);
    assert_eq!((cut.stop, cut.last_stop_reason), (AgentStop::Answered, Some(StopReason::MaxTokens)), "{cut:#?}");
    let full = run(ToolChoice::None, 200);
    assert_eq!(
        (full.stop, full.last_stop_reason),
        (AgentStop::Answered, Some(StopReason::EndOfGeneration)),
        "{full:#?}"
    );
    let call = run(ToolChoice::Required, 200);
    assert_eq!(
        (call.stop, call.last_stop_reason),
        (AgentStop::ToolCallsPending, Some(StopReason::GrammarComplete)),
        "{call:#?}"
    );
}

/// `run_with`'s `should_stop` reaches the prefill of a step: the run ends as cancelled with the prompt only
/// partly evaluated (batches of 8), and polls keep coming while a tool call is generated (no events then).
#[test]
fn should_stop_interrupts_the_prefill_and_the_tool_call() {
    let model = load();
    let template = || ChatTemplate::for_model(model.file(), model.tokenizer()).unwrap();
    let params = AgentParams { tool_choice: ToolChoice::Required, ..Default::default() };
    let user = [ChatMessage::new("user", "Read the humidity sensor.")];
    let new_session =
        || Session::new(model.clone(), &SessionParams { n_ctx: 1024, n_batch: 8, ..Default::default() }).unwrap();

    let mut session = new_session();
    let mut agent = Agent::new(vec![sensor_tool()], template(), 1).unwrap();
    let mut polls = 0;
    let out = agent
        .run_with(
            &mut session,
            &user,
            &params,
            None,
            &mut || {
                polls += 1;
                polls == 3
            },
            &mut |_| true,
        )
        .unwrap();
    assert_eq!(out.stop, AgentStop::Cancelled, "{out:#?}");
    assert_eq!(session.tokens().len(), 16, "stopped after two prefill batches");
    assert!(out.calls.is_empty());

    // Count the polls of a whole run, then stop one poll before the end of the first (tool-call) step: the call
    // is cut short, although it sends no event until it is complete.
    let mut session = new_session();
    let mut agent = Agent::new(vec![sensor_tool()], template(), 1).unwrap();
    let mut first_call_polls = None;
    let polls = std::cell::Cell::new(0);
    let full = agent
        .run_with(
            &mut session,
            &user,
            &AgentParams { max_iterations: 1, ..params.clone() },
            None,
            &mut || {
                polls.set(polls.get() + 1);
                false
            },
            &mut |e| {
                if matches!(e, picolm_core::agent::AgentEvent::ToolCall(_)) && first_call_polls.is_none() {
                    first_call_polls = Some(polls.get());
                }
                true
            },
        )
        .unwrap();
    let at_call = first_call_polls.unwrap_or_else(|| panic!("no tool call: {full:#?}"));
    let prompt_batches = full.generation.n_prompt.div_ceil(8);
    assert!(at_call > prompt_batches + 1, "polls during the call's tokens: {at_call} vs {prompt_batches} batches");
    let mut session = new_session();
    let mut agent = Agent::new(vec![sensor_tool()], template(), 1).unwrap();
    let mut polls = 0;
    let cut = agent
        .run_with(
            &mut session,
            &user,
            &params,
            None,
            &mut || {
                polls += 1;
                polls == at_call - 1
            },
            &mut |_| true,
        )
        .unwrap();
    assert_eq!(cut.stop, AgentStop::Cancelled, "{cut:#?}");
    assert!(cut.calls.is_empty(), "{cut:#?}");
}
