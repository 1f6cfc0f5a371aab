//! Grammar-constrained decoding on the real SmolLM2 vocabulary and model: random-logit generations checked by an
//! independent parser and validator, real-model JSON and schema runs, and the tool-call loop end to end.

use std::sync::{Arc, Mutex};

use picolm_core::agent::{Agent, AgentEvent, AgentParams, AgentStop, Tool, ToolChoice, ToolSpec};
use picolm_core::chat::{ChatMessage, ChatTemplate};
use picolm_core::grammar::{validate as validate_schema, Grammar, JsonConstraint};
use picolm_core::sampler::Rng;
use picolm_core::{GenerateParams, Model, ModelParams, SamplerParams, Session, SessionParams, StopReason};
use picolm_integration_tests::model_path;
use serde_json::{json, Value};

fn load(file: &str) -> Arc<Model> {
    Arc::new(Model::load(model_path(file), &ModelParams { n_ctx: 1024, n_threads: 2, ..Default::default() }).unwrap())
}

fn schemas() -> Vec<Value> {
    vec![
        json!(true),
        json!({"type":"object","properties":{"name":{"type":"string","maxLength":24},"age":{"type":"integer"},"email":{"type":["string","null"]}},"required":["name","age"]}),
        json!({"type":"array","items":{"type":"object","properties":{"sensor":{"enum":["temp","humidity","co2"]},"value":{"type":"number"}},"required":["sensor","value"]},"minItems":1,"maxItems":3}),
        json!({"anyOf":[{"type":"object","properties":{"on":{"type":"boolean"}},"required":["on"]},{"type":"object","properties":{"level":{"type":"integer"}},"required":["level"]}]}),
        json!({"type":"object","properties":{"text":{"type":"string","minLength":2,"maxLength":40},"tags":{"type":"array","items":{"type":"string"}}},"required":["text","tags"]}),
    ]
}

/// Random-logit constrained generation on the model's vocabulary: at each step a uniformly random token among those
/// the constraint allows with the tokens left, at most `max_tokens`. Returns the text and whether the value is
/// complete.
fn random_constrained_generation(model: &Model, g: &Arc<Grammar>, rng: &mut Rng, max_tokens: usize) -> (String, bool) {
    let mut c = JsonConstraint::new(g.clone(), model.grammar_vocab());
    let mut ids = Vec::new();
    for k in 0..max_tokens {
        let allowed = c.allowed_tokens(max_tokens - k).unwrap_or_else(|e| {
            panic!("{e} after {:?}", model.tokenizer().decode_string(&ids, false));
        });
        let t = allowed[rng.next_u32() as usize % allowed.len()];
        c.accept(t).unwrap();
        ids.push(t);
        if c.complete() {
            break;
        }
    }
    let text = model.tokenizer().decode_string(&ids, false).expect("constrained output is UTF-8");
    (text, c.complete())
}

#[test]
fn random_logit_generations_on_the_real_vocabulary_parse_and_validate() {
    let model = load("SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut rng = Rng::new(7);
    let mut n = 0;
    for s in schemas() {
        let g = Arc::new(Grammar::from_schema(&s).unwrap());
        let needed = g.min_close(&g.initial_state());
        for i in 0..120 {
            let max_tokens = needed + i % 50;
            let (text, done) = random_constrained_generation(&model, &g, &mut rng, max_tokens);
            if !done {
                // Only a top-level number may be unfinished here, and it may end now.
                assert!(g.can_end(&g.advance(&g.initial_state(), text.as_bytes())), "schema {s}: cut off: {text:?}");
            }
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("schema {s}: {text:?}: {e}"));
            assert!(validate_schema(&v, &s), "schema {s}: {text} does not validate");
            n += 1;
        }
    }
    assert_eq!(n, 600);
}

fn chat_prompt(model: &Model, user: &str) -> Vec<u32> {
    let t = ChatTemplate::for_model(model.file(), model.tokenizer()).unwrap();
    t.encode(model.tokenizer(), &t.render(&[ChatMessage::new("user", user)], true).unwrap())
}

#[test]
fn real_model_json_and_schema_outputs_parse_and_validate() {
    let model = load("SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut session = Session::new(model.clone(), &SessionParams { n_ctx: 1024, ..Default::default() }).unwrap();
    let prompts = [
        "Describe a person as JSON with name and age.",
        "Turn the light on and list two sensor readings. Reply in JSON.",
    ];
    let mut n = 0;
    for (si, s) in schemas().into_iter().enumerate() {
        for (pi, p) in prompts.iter().enumerate() {
            for (temperature, extra) in [(0.0, 48), (0.9, 24), (1.5, 0)] {
                let g = Arc::new(Grammar::from_schema(&s).unwrap());
                let max_tokens = g.min_close(&g.initial_state()) + extra;
                let c = JsonConstraint::new(g, model.grammar_vocab());
                let params = GenerateParams {
                    max_tokens,
                    sampler: SamplerParams {
                        temperature,
                        top_k: 40,
                        seed: (si * 10 + pi) as u64,
                        ..Default::default()
                    },
                    ..Default::default()
                };
                let out =
                    session.generate(&chat_prompt(&model, p), &params, Some(Box::new(c)), None, &mut |_| true).unwrap();
                assert!(
                    matches!(out.stop_reason, StopReason::GrammarComplete | StopReason::EndOfGeneration),
                    "{s} / {p}: stopped by {:?}: {:?}",
                    out.stop_reason,
                    out.text
                );
                let v: Value =
                    serde_json::from_str(&out.text).unwrap_or_else(|e| panic!("{s} / {p}: {:?}: {e}", out.text));
                assert!(validate_schema(&v, &s), "{s} / {p}: {} does not validate", out.text);
                assert!(out.tokens.len() <= max_tokens);
                n += 1;
            }
        }
    }
    assert_eq!(n, 30);
}

/// The IoT demo's tools: a sensor table and relays; `fail` makes `read_sensor` fail for unknown names.
fn iot_tools(log: Arc<Mutex<Vec<String>>>) -> Vec<Tool> {
    let l1 = log.clone();
    let read_sensor = Tool::new(
        ToolSpec {
            name: "read_sensor".into(),
            description: "Read a sensor value".into(),
            parameters: json!({"type":"object","properties":{"name":{"enum":["temperature","humidity"]}},"required":["name"]}),
        },
        move |args: &Value| {
            l1.lock().unwrap().push(format!("read_sensor {args}"));
            match args["name"].as_str() {
                Some("temperature") => Ok("21.5 C".to_string()),
                Some("humidity") => Ok("40 %".to_string()),
                other => Err(format!("unknown sensor {other:?}")),
            }
        },
    );
    let l2 = log;
    let set_relay = Tool::new(
        ToolSpec {
            name: "set_relay".into(),
            description: "Switch a relay on or off".into(),
            parameters: json!({"type":"object","properties":{"id":{"type":"integer"},"on":{"type":"boolean"}},"required":["id","on"]}),
        },
        move |args: &Value| {
            l2.lock().unwrap().push(format!("set_relay {args}"));
            Ok(format!("relay {} is {}", args["id"], if args["on"] == json!(true) { "on" } else { "off" }))
        },
    );
    vec![read_sensor, set_relay]
}

#[test]
fn tool_loop_calls_a_tool_feeds_the_result_back_and_answers() {
    let model = load("SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut session = Session::new(model.clone(), &SessionParams { n_ctx: 1024, ..Default::default() }).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let template = ChatTemplate::for_model(model.file(), model.tokenizer()).unwrap();
    let mut agent = Agent::new(iot_tools(log.clone()), template, 1).unwrap();
    let params = AgentParams { tool_choice: ToolChoice::Required, ..Default::default() };
    let mut events = Vec::new();
    let out = agent
        .run(&mut session, &[ChatMessage::new("user", "What is the temperature?")], &params, None, &mut |e| {
            events.push(match e {
                AgentEvent::AnswerPiece(p) => format!("piece {p}"),
                AgentEvent::ToolCall(c) => format!("call {} {}", c.name, c.arguments),
                AgentEvent::ToolResult { content, is_error, .. } => format!("result {content} {is_error}"),
            });
            true
        })
        .unwrap();
    eprintln!("events: {events:#?}\noutcome: {out:#?}");
    assert_eq!(out.stop, AgentStop::Answered, "{out:?}");
    assert!(!out.calls.is_empty());
    let specs: Vec<ToolSpec> = agent.tools().cloned().collect();
    for (call, result) in &out.calls {
        let spec = specs.iter().find(|s| s.name == call.name).expect("a registered tool");
        assert!(validate_schema(&call.arguments, &spec.parameters), "{call:?}");
        assert!(out.messages.iter().any(|m| m.role == "tool" && &m.content == result));
    }
    assert_eq!(log.lock().unwrap().len(), out.calls.len());
    assert!(!out.answer.is_empty());
    assert!(out.prompt_tokens_evaluated < out.prompt_tokens_total, "the KV cache is reused across steps");
}

#[test]
fn a_failing_tool_becomes_a_tool_message() {
    let model = load("SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut session = Session::new(model.clone(), &SessionParams { n_ctx: 1024, ..Default::default() }).unwrap();
    let failing = Tool::new(
        ToolSpec {
            name: "read_sensor".into(),
            description: "Read a sensor value".into(),
            parameters: json!({"type":"object","properties":{"name":{"type":"string","maxLength":16}},"required":["name"]}),
        },
        |_: &Value| -> Result<String, String> { Err("sensor bus not responding".into()) },
    );
    let template = ChatTemplate::for_model(model.file(), model.tokenizer()).unwrap();
    let mut agent = Agent::new(vec![failing], template, 1).unwrap();
    let params = AgentParams { tool_choice: ToolChoice::Required, max_iterations: 3, ..Default::default() };
    let out = agent
        .run(&mut session, &[ChatMessage::new("user", "Read the temperature sensor.")], &params, None, &mut |_| true)
        .unwrap();
    let tool_msgs: Vec<_> = out.messages.iter().filter(|m| m.role == "tool").collect();
    assert!(!tool_msgs.is_empty());
    assert!(tool_msgs[0].content.contains("sensor bus not responding"));
}

/// A weather tool as PicoClaw registers it.
fn weather_tool() -> ToolSpec {
    ToolSpec {
        name: "get_weather".into(),
        description: "Get the current weather for a city".into(),
        parameters: json!({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}),
    }
}

#[test]
fn tool_call_budget_is_counted_in_tokens_of_the_vocabulary() {
    let model = load("SmolLM2-135M-Instruct.Q4_1.gguf");
    let g = Arc::new(Grammar::from_schema(&picolm_core::agent::tool_call_schema(&[weather_tool()], 1)).unwrap());
    let bytes = g.min_close(&g.initial_state());
    let c = JsonConstraint::new(g.clone(), model.grammar_vocab());
    let tokens = c.min_tokens();
    // The shortest call, tokenized by the model's own tokenizer, is an upper bound of what the mask may reserve.
    let shortest =
        r#"{"tool_calls":[{"id":"a","type":"function","function":{"name":"get_weather","arguments":{"city":""}}}]}"#;
    let tokenized = model.tokenizer().encode(shortest, false, false).len() as u64;
    eprintln!("shortest call: {bytes} bytes, {tokens} tokens by the mask, {tokenized} by the tokenizer");
    assert_eq!(bytes, shortest.len());
    assert!(tokens <= tokenized, "the mask's count is the shortest tokenization");
    assert!(tokens * 2 < bytes as u64, "counted in tokens, not bytes: {tokens} vs {bytes}");
    // A budget of exactly that many tokens is enough: random-logit generations finish with a valid call.
    let vocab = model.grammar_vocab();
    let mut rng = Rng::new(3);
    for _ in 0..30 {
        let max_tokens = tokens as usize;
        let (text, complete) = random_constrained_generation(&model, &g, &mut rng, max_tokens);
        assert!(complete, "not finished within {max_tokens} tokens: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["tool_calls"][0]["function"]["name"], "get_weather");
    }
    // One token fewer is refused up front with the budget error.
    let mut c = JsonConstraint::new(g, vocab);
    assert!(matches!(
        c.allowed_tokens(tokens as usize - 1),
        Err(picolm_core::grammar::GrammarError::BudgetTooSmall { .. })
    ));
}

#[test]
fn auto_mode_answers_in_text_when_a_call_cannot_fit_and_required_reports_the_budget() {
    let model = load("SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut session = Session::new(model.clone(), &SessionParams { n_ctx: 1024, ..Default::default() }).unwrap();
    let template = ChatTemplate::for_model(model.file(), model.tokenizer()).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut agent = Agent::new(iot_tools(log.clone()), template, 1).unwrap();
    let msgs = [ChatMessage::new("user", "Turn on relay 2.")];
    for seed in 0..4 {
        let params = AgentParams {
            max_iterations: 1,
            generate: GenerateParams {
                max_tokens: 12,
                sampler: SamplerParams { temperature: 1.0, seed, ..Default::default() },
                ..Default::default()
            },
            ..Default::default()
        };
        let out = agent.run(&mut session, &msgs, &params, None, &mut |_| true).unwrap();
        assert_eq!(out.stop, AgentStop::Answered, "{out:?}");
        assert!(out.calls.is_empty() && !out.answer.contains("tool_calls"), "{:?}", out.answer);
    }
    assert!(log.lock().unwrap().is_empty());
    let params = AgentParams {
        tool_choice: ToolChoice::Required,
        generate: GenerateParams { max_tokens: 12, ..Default::default() },
        ..Default::default()
    };
    match agent.run(&mut session, &msgs, &params, None, &mut |_| true) {
        Err(picolm_core::Error::Grammar(picolm_core::grammar::GrammarError::BudgetTooSmall { needed, max_tokens })) => {
            assert!(needed > 12 && max_tokens == 12)
        }
        other => panic!("{other:?}"),
    }
    // PicoClaw's default of 64 tokens holds a call.
    let params = AgentParams {
        tool_choice: ToolChoice::Required,
        max_iterations: 1,
        generate: GenerateParams { max_tokens: 64, ..Default::default() },
    };
    let out = agent.run(&mut session, &msgs, &params, None, &mut |_| true).unwrap();
    assert_eq!(out.calls.len(), 1, "{out:?}");
}

#[test]
fn a_huge_tool_result_is_cut_to_fit_the_context_and_flagged() {
    let model = load("SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut session = Session::new(model.clone(), &SessionParams { n_ctx: 512, ..Default::default() }).unwrap();
    let template = ChatTemplate::for_model(model.file(), model.tokenizer()).unwrap();
    let big = "kernel: usb 1-1: new high-speed USB device number 2 using ehci-pci\n".repeat(16_000); // about 1 MB
    let total = big.len();
    let tool = Tool::new(
        ToolSpec {
            name: "read_log".into(),
            description: "Read the system log".into(),
            parameters: json!({"type":"object","properties":{}}),
        },
        move |_: &Value| Ok(big.clone()),
    );
    let mut agent = Agent::new(vec![tool], template, 1).unwrap();
    let params = AgentParams {
        tool_choice: ToolChoice::Required,
        max_iterations: 2,
        generate: GenerateParams { max_tokens: 48, ..Default::default() },
    };
    let mut flagged = Vec::new();
    let out = agent
        .run(&mut session, &[ChatMessage::new("user", "Show me the system log.")], &params, None, &mut |e| {
            if let AgentEvent::ToolResult { content, truncated, .. } = e {
                flagged.push((truncated, content.len()));
            }
            true
        })
        .expect("a huge tool result does not fail the run");
    assert!(!flagged.is_empty() && flagged.iter().all(|&(t, n)| t && n < total / 100), "{flagged:?}");
    let tool_msg = out.messages.iter().find(|m| m.role == "tool").unwrap();
    assert!(tool_msg.content.starts_with("kernel: usb 1-1"));
    assert!(
        tool_msg.content.ends_with(&format!("of {total} bytes shown]")),
        "{}",
        &tool_msg.content[tool_msg.content.len() - 80..]
    );
    // What the model saw fits, with room left for its next output.
    let t = ChatTemplate::for_model(model.file(), model.tokenizer()).unwrap();
    let n =
        t.encode(model.tokenizer(), &t.render(&agent_messages_with_tools(&agent, &out.messages), true).unwrap()).len();
    assert!(n + 48 <= 512, "{n} prompt tokens");
}

/// The conversation as the agent renders it (the tools prompt added to the system message).
fn agent_messages_with_tools(agent: &Agent, messages: &[ChatMessage]) -> Vec<ChatMessage> {
    let mut all = messages.to_vec();
    let prompt = agent.tools_prompt();
    match all.first_mut() {
        Some(m) if m.role == "system" => m.content = format!("{}\n\n{prompt}", m.content),
        _ => all.insert(0, ChatMessage::new("system", prompt)),
    }
    // Up to the last tool message: the next step's prompt.
    let last_tool = all.iter().rposition(|m| m.role == "tool").unwrap();
    all.truncate(last_tool + 1);
    all
}

#[test]
fn json_object_mode_on_the_real_model_gives_compact_objects() {
    let model = load("SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut session = Session::new(model.clone(), &SessionParams { n_ctx: 1024, ..Default::default() }).unwrap();
    // PicoClaw's prompt shape: a system text listing the tools and asking for tool_calls JSON, then the request.
    let prompt = "<|system|>\nWhen you need a tool, respond with ONLY a JSON object: {\"tool_calls\":[...]}</s>\n<|user|>\nWhat is the weather in Paris?</s>\n<|assistant|>\n";
    let ids = model.tokenizer().encode(prompt, true, true);
    for seed in 0..6 {
        let c = JsonConstraint::new(Arc::new(Grammar::json_object()), model.grammar_vocab());
        let params = GenerateParams {
            max_tokens: 48,
            sampler: SamplerParams { temperature: 0.7, seed, ..Default::default() },
            ..Default::default()
        };
        let out = session.generate(&ids, &params, Some(Box::new(c)), None, &mut |_| true).unwrap();
        assert_eq!(out.stop_reason, StopReason::GrammarComplete, "{:?}", out.text);
        let v: Value = serde_json::from_str(&out.text).unwrap();
        assert!(v.is_object(), "{}", out.text);
        assert!(!out.text.contains('\n') && !out.text.contains("{ "), "{}", out.text);
    }
}

#[test]
fn a_tool_without_arguments_is_called_with_an_empty_object() {
    let model = load("SmolLM2-135M-Instruct.Q4_1.gguf");
    let spec =
        ToolSpec::from_json(&json!({"type":"function","function":{"name":"get_time","description":"Current time"}}))
            .unwrap();
    let g = Grammar::from_schema(&picolm_core::agent::tool_call_schema(std::slice::from_ref(&spec), 1)).unwrap();
    assert!(!g.accepts(
        br#"{"tool_calls":[{"id":"a","type":"function","function":{"name":"get_time","arguments":{"x":{}}}}]}"#
    ));
    let mut session = Session::new(model.clone(), &SessionParams { n_ctx: 1024, ..Default::default() }).unwrap();
    let template = ChatTemplate::for_model(model.file(), model.tokenizer()).unwrap();
    let mut agent = Agent::new(vec![Tool::external(spec)], template, 1).unwrap();
    for seed in 0..4 {
        let params = AgentParams {
            tool_choice: ToolChoice::Required,
            generate: GenerateParams {
                sampler: SamplerParams { temperature: 1.0, seed, ..Default::default() },
                ..Default::default()
            },
            ..Default::default()
        };
        let out = agent
            .run(&mut session, &[ChatMessage::new("user", "What time is it?")], &params, None, &mut |_| true)
            .unwrap();
        assert_eq!(out.pending_calls[0].arguments, json!({}));
    }
}

/// PicoClaw's built-in web tools, as it sends them: bounded integers in the argument schemas.
fn picoclaw_web_tools() -> Vec<ToolSpec> {
    let tools = json!([
        {"type":"function","function":{"name":"web_search",
            "description":"Search the web for current information. Returns titles, URLs, and snippets from search results.",
            "parameters":{"type":"object","properties":{
                "query":{"type":"string","description":"Search query"},
                "count":{"type":"integer","description":"Number of results (1-10)","minimum":1,"maximum":10}},
                "required":["query"]}}},
        {"type":"function","function":{"name":"web_fetch",
            "description":"Fetch a URL and extract readable content (HTML to text).",
            "parameters":{"type":"object","properties":{
                "url":{"type":"string","description":"URL to fetch"},
                "maxChars":{"type":"integer","description":"Maximum characters to extract","minimum":100}},
                "required":["url"]}}}
    ]);
    ToolSpec::list_from_json(&tools.to_string()).unwrap()
}

/// Checks one call's arguments against its tool (by the reference validator, and the bounds by hand).
fn check_web_call(specs: &[ToolSpec], name: &str, args: &Value) {
    let spec = specs.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("unknown tool {name}"));
    assert!(validate_schema(args, &spec.parameters), "{name} {args}");
    if let Some(c) = args.get("count") {
        assert!(c.as_i64().is_some_and(|c| (1..=10).contains(&c)), "{args}");
    }
    if let Some(m) = args.get("maxChars") {
        assert!(m.as_u64().is_some_and(|m| m >= 100), "{args}");
    }
}

#[test]
fn picoclaw_web_tools_with_numeric_bounds_generate_valid_arguments() {
    let model = load("SmolLM2-135M-Instruct.Q4_1.gguf");
    let specs = picoclaw_web_tools();
    for s in &specs {
        s.validate().unwrap_or_else(|e| panic!("{}: {e}", s.name));
    }
    // Random logits on the real vocabulary: every finished call is valid, within a budget of exactly the tokens
    // the mask reserves plus a little.
    let g = Arc::new(Grammar::from_schema(&picolm_core::agent::tool_call_schema(&specs, 1)).unwrap());
    let vocab = model.grammar_vocab();
    let needed = JsonConstraint::new(g.clone(), vocab.clone()).min_tokens() as usize;
    let mut rng = Rng::new(11);
    let mut with_count = 0;
    for i in 0..80 {
        let max_tokens = needed + i % 40;
        let (text, complete) = random_constrained_generation(&model, &g, &mut rng, max_tokens);
        assert!(complete, "cut off within {max_tokens} tokens: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        let f = &v["tool_calls"][0]["function"];
        check_web_call(&specs, f["name"].as_str().unwrap(), &f["arguments"]);
        with_count += usize::from(f["arguments"].get("count").is_some() || f["arguments"].get("maxChars").is_some());
    }
    assert!(with_count > 0, "no generation wrote a bounded argument");
    // The real model, as PicoClaw runs it (external tools: the calls come back to the caller).
    let mut session = Session::new(model.clone(), &SessionParams { n_ctx: 1024, ..Default::default() }).unwrap();
    let template = ChatTemplate::for_model(model.file(), model.tokenizer()).unwrap();
    let mut agent = Agent::new(specs.iter().cloned().map(Tool::external).collect(), template, 1).unwrap();
    let prompts = [
        "Search the web for the 3 best pizza places in Naples.",
        "Fetch https://example.com and give me at most 500 characters.",
    ];
    for (i, p) in prompts.iter().enumerate() {
        for seed in 0..3 {
            let params = AgentParams {
                tool_choice: ToolChoice::Required,
                generate: GenerateParams {
                    sampler: SamplerParams { temperature: 0.8, seed, ..Default::default() },
                    ..Default::default()
                },
                ..Default::default()
            };
            let out = agent.run(&mut session, &[ChatMessage::new("user", *p)], &params, None, &mut |_| true).unwrap();
            eprintln!("prompt {i} seed {seed}: {:?}", out.pending_calls);
            assert_eq!(out.stop, AgentStop::ToolCallsPending, "{out:?}");
            for call in &out.pending_calls {
                check_web_call(&specs, &call.name, &call.arguments);
            }
        }
    }
}
