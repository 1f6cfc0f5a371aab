"""JSON mode, JSON Schema, chat templates and the tool-call loop from Python, checked with the independent
``json`` and ``jsonschema`` packages."""

from __future__ import annotations

import datetime
import json
import uuid

import jsonschema
import pytest

import picolm

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 30}, "age": {"type": "integer"}, "pets": {"type": "array", "items": {"type": "string"}, "maxItems": 3}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def assert_compact(text):
    """No whitespace outside strings."""
    in_string = escaped = False
    for ch in text:
        if in_string:
            in_string, escaped = (not (ch == '"' and not escaped)), (ch == "\\" and not escaped)
        elif ch == '"':
            in_string = True
        else:
            assert ch not in " \t\r\n", f"insignificant whitespace in {text!r}"


def test_json_mode_outputs_compact_objects(model):
    for seed in range(6):
        for mode in (True, "object"):
            text = model.chat([{"role": "user", "content": "Give me a random fact as JSON."}], json=mode, temperature=1.0, seed=seed, max_tokens=48)
            v = json.loads(text)
            assert isinstance(v, dict), text
            assert_compact(text)


def test_json_value_mode_and_bad_modes(model):
    text = model.generate("The number of legs of a spider, in JSON:", json="value", max_tokens=8)
    json.loads(text)
    assert model.generate("x", json=False, max_tokens=2) is not None
    with pytest.raises(picolm.InvalidArgumentError, match="value"):
        model.generate("x", json="array")
    with pytest.raises(TypeError):
        model.generate("x", json=3)


def test_formats(model):
    schema = {
        "type": "object",
        "properties": {
            "day": {"type": "string", "format": "date"},
            "at": {"type": "string", "format": "date-time"},
            "id": {"type": "string", "format": "uuid"},
            "mail": {"type": "string", "format": "email", "maxLength": 40},
        },
        "required": ["day", "at", "id", "mail"],
    }
    checker = jsonschema.FormatChecker()
    for seed, temp in [(0, 0.0), (1, 0.9), (2, 1.3)]:
        text = model.chat([{"role": "user", "content": "A meeting record as JSON."}], schema=schema, temperature=temp, seed=seed, max_tokens=160)
        v = json.loads(text)
        jsonschema.validate(v, schema, format_checker=checker)
        datetime.date.fromisoformat(v["day"])
        uuid.UUID(v["id"])
    with pytest.raises(picolm.GrammarError, match="hostname"):
        model.generate("x", schema={"type": "string", "format": "hostname"})


def test_schema_outputs_validate(model):
    for seed, temp in [(0, 0.0), (1, 0.8), (2, 1.2), (3, 1.5)]:
        r = model.chat([{"role": "user", "content": "Describe a person as JSON."}], schema=PERSON, temperature=temp, seed=seed, max_tokens=64)
        jsonschema.validate(json.loads(r), PERSON)
    # Schema as JSON text, raw prompt, result object.
    res = model.generate_full("Person:", schema=json.dumps(PERSON), max_tokens=64)
    assert res.stop_reason in ("grammar_complete", "eog")
    jsonschema.validate(json.loads(res.text), PERSON)


def test_streaming_json_equals_non_streaming(model):
    msgs = [{"role": "user", "content": "A person as JSON."}]
    whole = model.chat(msgs, schema=PERSON, max_tokens=64)
    pieces = list(model.chat(msgs, schema=PERSON, max_tokens=64, stream=True))
    assert "".join(pieces) == whole


def test_grammar_errors(model):
    with pytest.raises(picolm.GrammarError, match="pattern"):
        model.generate("x", schema={"type": "string", "pattern": "a+"})
    with pytest.raises(picolm.BudgetError, match="too small"):
        model.generate("x", schema=PERSON, max_tokens=4)
    with pytest.raises(picolm.BudgetError):
        model.generate("x", schema={"type": "array", "minItems": 4294967294, "items": {"type": "array", "minItems": 4294967294}}, max_tokens=64)
    with pytest.raises(picolm.GrammarError, match="empty"):
        model.generate("x", schema={"type": []})
    with pytest.raises(picolm.GrammarError):
        model.generate("x", schema="{not json")
    with pytest.raises(picolm.PicoLMError):
        model.generate("x", schema={"enum": []})


def test_chat_template(model):
    text = model.apply_chat_template([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert text.endswith("<|im_start|>assistant\n") and "<|im_start|>user\nHi<|im_end|>" in text
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    answer = model.chat(msgs, max_tokens=24)
    # The model's own template adds SmolLM2's default system message; chat() is generate() on that text.
    assert answer and answer == model.generate(model.apply_chat_template(msgs), max_tokens=24)
    with pytest.raises(picolm.InvalidArgumentError, match="robot"):
        model.chat([{"role": "robot", "content": "x"}])
    with pytest.raises(TypeError):
        model.chat(["not a dict"])


def iot_tools(log):
    def read_sensor(args):
        log.append(("read_sensor", args))
        return {"temperature": "21.5 C", "humidity": "40 %"}[args["name"]]

    def set_relay(args):
        log.append(("set_relay", args))
        return f"relay {args['id']} is {'on' if args['on'] else 'off'}"

    return [
        picolm.Tool("read_sensor", "Read a sensor value", {"type": "object", "properties": {"name": {"enum": ["temperature", "humidity"]}}, "required": ["name"]}, read_sensor),
        picolm.Tool("set_relay", "Switch a relay on or off", {"type": "object", "properties": {"id": {"type": "integer"}, "on": {"type": "boolean"}}, "required": ["id", "on"]}, set_relay),
    ]


def test_tool_loop_calls_feeds_back_and_answers(model):
    log, events = [], []
    tools = iot_tools(log)
    r = model.run_tools([{"role": "user", "content": "Switch relay 2 on."}], tools, tool_choice="required", on_event=lambda k, d: events.append((k, d)))
    assert r.stop == "answered" and r.answer
    assert r.calls and len(log) == len(r.calls)
    for call in r.calls:
        tool = next(t for t in tools if t.name == call["name"])
        jsonschema.validate(call["arguments"], tool.parameters)
        assert any(m["role"] == "tool" and m["content"] == call["result"] for m in r.messages)
    kinds = [k for k, _ in events]
    assert kinds.index("tool_call") < kinds.index("tool_result") < kinds.index("answer_piece")
    assert "".join(d["text"] for k, d in events if k == "answer_piece").strip() == r.answer


def test_failing_handler_becomes_a_tool_message(model):
    def broken(args):
        raise RuntimeError("sensor bus timeout")

    tool = picolm.Tool("read_sensor", "Read a sensor", {"type": "object", "properties": {"name": {"type": "string", "maxLength": 12}}, "required": ["name"]}, broken)
    r = model.run_tools([{"role": "user", "content": "Read the temperature."}], [tool], tool_choice="required", max_iterations=3)
    tool_msgs = [m for m in r.messages if m["role"] == "tool"]
    assert tool_msgs and "sensor bus timeout" in tool_msgs[0]["content"]


def test_external_tools_hand_over_picoclaw_json(model):
    tool = picolm.Tool("set_relay", "Switch a relay", {"type": "object", "properties": {"id": {"type": "integer"}, "on": {"type": "boolean"}}, "required": ["id", "on"]})
    r = model.run_tools([{"role": "user", "content": "Turn on relay 1."}], [tool], tool_choice="required")
    assert r.stop == "tool_calls_pending"
    calls = json.loads(r.tool_calls_json)["tool_calls"]
    assert calls[0]["type"] == "function" and calls[0]["function"]["name"] == "set_relay"
    jsonschema.validate(json.loads(calls[0]["function"]["arguments"]), tool.parameters)
    assert r.pending_calls == calls


def test_tool_definition_errors(model):
    with pytest.raises(picolm.InvalidArgumentError):
        model.run_tools([{"role": "user", "content": "x"}], [picolm.Tool("bad name!", "", {"type": "object"})])
    with pytest.raises(picolm.InvalidArgumentError):
        model.run_tools([{"role": "user", "content": "x"}], [picolm.Tool("t", "", {"type": "object"})], tool_choice="sometimes")
    with pytest.raises(picolm.GrammarError):
        model.run_tools([{"role": "user", "content": "x"}], [picolm.Tool("t", "", {"type": "object", "properties": {"a": {"$ref": "#"}}})])


def test_a_tool_without_arguments_gets_empty_arguments(model):
    calls = []
    tool = picolm.Tool("get_time", "Get the current time", handler=lambda args: calls.append(args) or "12:00")
    r = model.run_tools([{"role": "user", "content": "What time is it?"}], [tool], tool_choice="required", max_iterations=2,
                        temperature=0.9, seed=4)
    assert calls and all(a == {} for a in calls), calls


def test_a_huge_tool_result_is_cut_to_fit_the_context(model):
    events = []
    tool = picolm.Tool("read_log", "Read the system log", handler=lambda args: "kernel: usb 1-1: new device\n" * 40000)
    r = model.run_tools([{"role": "user", "content": "Show me the system log."}], [tool], tool_choice="required",
                        max_iterations=2, max_tokens=48, on_event=lambda k, d: events.append((k, d)))
    results = [d for k, d in events if k == "tool_result"]
    assert results and all(d["truncated"] for d in results)
    tool_msgs = [m for m in r.messages if m["role"] == "tool"]
    assert tool_msgs and "truncated to fit the context" in tool_msgs[0]["content"]
    assert len(tool_msgs[0]["content"]) < 10_000


def test_tool_budget_auto_answers_in_text_required_raises(model):
    log = []
    tools = iot_tools(log)
    r = model.run_tools([{"role": "user", "content": "Switch relay 2 on."}], tools, max_tokens=8, max_iterations=1)
    assert r.stop == "answered" and not r.calls and not log
    with pytest.raises(picolm.BudgetError):
        model.run_tools([{"role": "user", "content": "Switch relay 2 on."}], tools, tool_choice="required", max_tokens=8)
