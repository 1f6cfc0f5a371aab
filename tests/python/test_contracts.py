"""The Python package's contracts shared with C and the CLI: constructor names, OpenAI messages and tool dicts,
handler exceptions, stop-reason names, sampler ranges and defaults from picolm-core, load warnings, invalid
Unicode in str and path arguments, and close() from another thread."""

from __future__ import annotations

import ast
import json
import logging
import threading
import time
from pathlib import Path

import pytest

import picolm

RELAY = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "on": {"type": "boolean"}},
    "required": ["id", "on"],
}
OPENAI_RELAY = {"type": "function", "function": {"name": "set_relay", "description": "Switch a relay", "parameters": RELAY}}
SENSOR = {"type": "object", "properties": {"name": {"enum": ["temperature", "humidity"]}}, "required": ["name"]}


def test_model_path_keyword(q4_path):
    with picolm.Model(model_path=q4_path, n_ctx=64, n_threads=1) as m:
        assert m.path == str(q4_path) and m.n_ctx == 64
    with picolm.Model(model_path=str(q4_path).encode(), n_ctx=64, n_threads=1) as m:
        assert m.n_vocab == 49152
    with pytest.raises(TypeError, match="model_path"):
        picolm.Model()
    with pytest.raises(TypeError, match="both"):
        picolm.Model(q4_path, model_path=q4_path)
    with pytest.raises(TypeError, match="path"):
        picolm.Model(3.5)


def test_default_context_is_the_library_default(q4_path):
    """n_ctx=0: the training context (8192 for SmolLM2) capped at 4096, as in C (PICOLM_DEFAULT_N_CTX_CAP) and the CLI."""
    with picolm.Model(q4_path, n_threads=1) as m:
        assert m.metadata["llama.context_length"] == 8192
        assert m.n_ctx == 4096


def test_context_beyond_training_warns(q4_path, recwarn):
    with pytest.warns(picolm.PicoLMWarning, match="n_ctx 9000 .* training context 8192") as caught:
        picolm.Model(q4_path, n_ctx=9000, n_threads=1).close()
    assert caught[0].filename == __file__  # attributed to the caller's line
    recwarn.clear()
    picolm.Model(q4_path, n_ctx=8192, n_threads=1).close()
    assert not [w for w in recwarn if issubclass(w.category, picolm.PicoLMWarning)]
    assert issubclass(picolm.PicoLMWarning, UserWarning)


@pytest.mark.parametrize(
    "kw, name",
    [(dict(top_p=5.0), "top_p"), (dict(top_p=1.01), "top_p"), (dict(temperature=-3.0), "temperature"), (dict(min_p=2.0), "min_p")],
)
def test_sampler_ranges_from_the_core(model, kw, name):
    with pytest.raises(picolm.InvalidArgumentError, match=name):
        model.generate("Hi", max_tokens=2, **kw)
    if "min_p" not in kw:
        with pytest.raises(picolm.InvalidArgumentError, match=name):
            model.run_tools([{"role": "user", "content": "x"}], [OPENAI_RELAY], **kw)


def _stub_literal(name: str) -> set[str]:
    stub = Path(picolm.__file__).with_name("_picolm.pyi")
    for node in ast.parse(stub.read_text()).body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == name:
            value = node.value
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            value = node.value
        else:
            continue
        return {e.value for e in value.slice.elts}  # Literal["a", "b", ...]
    raise AssertionError(f"{name} not in the stub")


def test_grammar_complete_is_the_one_name(model):
    r = model.generate_full("Is the sky blue? JSON:", max_tokens=40, schema={"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]})
    assert r.stop_reason == "grammar_complete"
    names = _stub_literal("_StopReason")
    assert "grammar_complete" in names and "constraint_complete" not in names
    assert {"eog", "max_tokens", "stop_string", "context_full", "cancelled"} <= names


def test_content_as_text_parts(model):
    parts = [{"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]}]
    assert model.apply_chat_template(parts) == model.apply_chat_template([{"role": "user", "content": "Hello\nthere"}])
    assert model.chat(parts, max_tokens=6) == model.chat([{"role": "user", "content": "Hello\nthere"}], max_tokens=6)
    with pytest.raises(picolm.InvalidArgumentError, match="image_url"):
        model.apply_chat_template([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])
    with pytest.raises(picolm.InvalidArgumentError, match="content"):
        model.apply_chat_template([{"role": "user", "content": 42}])


def test_history_tool_calls_are_rendered(model):
    call = {"id": "call_3", "type": "function", "function": {"name": "set_relay", "arguments": json.dumps({"id": 2, "on": True})}}
    history = [
        {"role": "user", "content": "Turn on relay 2."},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_3", "name": "set_relay", "content": "relay 2 is on"},
    ]
    text = model.apply_chat_template(history)
    assert '<|im_start|>assistant\n{"tool_calls":[{"id":"call_3","type":"function","function":{"name":"set_relay","arguments":{"id":2,"on":true}}}]}<|im_end|>' in text
    assert "<|im_start|>tool\nrelay 2 is on<|im_end|>" in text
    # Arguments given as a dict work too; broken argument text is refused, not dropped.
    call_dict = dict(call, function={"name": "set_relay", "arguments": {"id": 2, "on": True}})
    assert model.apply_chat_template([history[0], dict(history[1], tool_calls=[call_dict]), history[2]]) == text
    broken = dict(call, function={"name": "set_relay", "arguments": "{oops"})
    with pytest.raises(picolm.InvalidArgumentError, match="arguments"):
        model.apply_chat_template([history[0], dict(history[1], tool_calls=[broken])])


def test_run_tools_takes_openai_tool_dicts(model):
    r = model.run_tools([{"role": "user", "content": "Turn on relay 1."}], [OPENAI_RELAY], tool_choice="required")
    assert r.stop == "tool_calls_pending"
    calls = json.loads(r.tool_calls_json)["tool_calls"]
    assert calls[0]["function"]["name"] == "set_relay" and set(json.loads(calls[0]["function"]["arguments"])) == {"id", "on"}
    # The conversation comes back in OpenAI's shape and can be continued with the tool's result.
    messages = r.messages + [{"role": "tool", "tool_call_id": calls[0]["id"], "name": "set_relay", "content": "relay 1 is on"}]
    again = model.run_tools(messages, [OPENAI_RELAY], tool_choice="none", max_tokens=24)
    assert again.stop == "answered" and again.answer
    with pytest.raises(picolm.InvalidArgumentError, match="name"):
        model.run_tools([{"role": "user", "content": "x"}], [{"type": "function", "function": {"description": "no name"}}])
    with pytest.raises(TypeError):
        model.run_tools([{"role": "user", "content": "x"}], ["set_relay"])


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit])
def test_handler_base_exceptions_propagate(model, exc):
    calls = []

    def handler(args):
        calls.append(args)
        raise exc()

    tool = picolm.Tool("read_sensor", "Read a sensor", SENSOR, handler)
    with pytest.raises(exc):
        model.run_tools([{"role": "user", "content": "Read the temperature."}], [tool], tool_choice="required", max_iterations=3)
    assert len(calls) == 1  # the loop stopped at once
    assert model.generate("The capital of France is", max_tokens=3)  # and the model still works


def test_handler_exceptions_are_logged_with_traceback(model, caplog):
    def broken(args):
        raise ValueError("sensor bus timeout")

    tool = picolm.Tool("read_sensor", "Read a sensor", SENSOR, broken)
    events = []
    with caplog.at_level(logging.ERROR, logger="picolm"):
        model.run_tools([{"role": "user", "content": "Read the temperature."}], [tool], tool_choice="required", max_iterations=2,
                        on_event=lambda k, d: events.append((k, d)))
    records = [r for r in caplog.records if r.name == "picolm"]
    assert records and "read_sensor" in records[0].getMessage()
    exc_type, exc_value, tb = records[0].exc_info
    assert exc_type is ValueError and str(exc_value) == "sensor bus timeout" and tb is not None
    assert "in broken" in caplog.text  # the traceback reaches the handler's frame
    results = [d for k, d in events if k == "tool_result"]
    assert results and results[0]["is_error"] and "sensor bus timeout" in results[0]["content"]


LONE = "\ud800"  # a lone surrogate: not encodable as UTF-8


def test_lone_surrogates_in_paths_are_a_package_error(q4_path, model, tmp_path):
    for bad in (LONE, str(tmp_path / f"x{LONE}.gguf")):
        with pytest.raises(picolm.InvalidArgumentError, match="surrogate") as e:
            picolm.Model(bad)
        assert isinstance(e.value.__cause__, UnicodeEncodeError)
        with pytest.raises(picolm.InvalidArgumentError, match="surrogate"):
            picolm.Model(model_path=bad)
        with pytest.raises(picolm.InvalidArgumentError, match="surrogate"):
            model.save_state(bad)
        with pytest.raises(picolm.InvalidArgumentError, match="surrogate"):
            model.load_state(bad)
    # A surrogate-escaped byte (what os.listdir gives for a non-UTF-8 name) is a valid path, as for open().
    with pytest.raises(picolm.ModelLoadError):
        picolm.Model(str(tmp_path / "caf\udce9.gguf"))


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.generate(LONE, max_tokens=1),
        lambda m: m.generate_full("a" + LONE, max_tokens=1),
        lambda m: m.generate("hi", max_tokens=1, stop=[LONE]),
        lambda m: m.generate("hi", max_tokens=1, stop=LONE),
        lambda m: m.generate("hi", max_tokens=1, schema=LONE),
        lambda m: m.tokenize(LONE),
        lambda m: m.metadata_value(LONE),
        lambda m: m.chat([{"role": "user", "content": LONE}], max_tokens=1),
        lambda m: m.apply_chat_template([{"role": LONE, "content": "x"}]),
        lambda m: m.run_tools([{"role": "user", "content": "x"}], [OPENAI_RELAY], tool_choice=LONE),
        lambda m: m.run_tools([{"role": "user", "content": "x"}], [picolm.Tool(LONE, "d", RELAY)]),
        lambda m: m.run_tools([{"role": "user", "content": "x"}], [picolm.Tool("t", LONE, RELAY)]),
        lambda m: picolm.Model(m.path, kv_type=LONE),
    ],
)
def test_lone_surrogates_in_str_arguments_are_a_package_error(model, call):
    with pytest.raises(picolm.InvalidArgumentError):
        call(model)


def test_close_from_another_thread_cancels_first(q4_path):
    m = picolm.Model(q4_path, n_ctx=2048, n_threads=2)
    outcome = {}

    def run():
        # Generations one after another until one does not end on its own: a sampled text may reach its end
        # within the 1.5 s below (which seed does depends on the numerics), and the contract is about the
        # generation running when close() comes. Bounded, as every loop in the tests.
        for seed in range(1, 101):
            try:
                r = m.generate_full("Once upon a time", max_tokens=1800, temperature=0.8, seed=seed)
            except picolm.ClosedError as e:  # closed between two generations or while a prompt was read
                outcome["error"] = e
                return
            if r.stop_reason != "eog":
                outcome["result"] = r
                return

    t = threading.Thread(target=run)
    t.start()
    time.sleep(1.5)  # a generation is running (1800 tokens would take well over a minute)
    start = time.monotonic()
    m.close()
    closed_in = time.monotonic() - start
    t.join(timeout=60)
    assert not t.is_alive()
    assert closed_in < 3.0, f"close() waited {closed_in:.1f} s for the generation"
    if "result" in outcome:
        r = outcome["result"]
        assert r.stop_reason == "cancelled" and r.n_generated < 1800
    else:
        assert isinstance(outcome["error"], picolm.ClosedError)
    with pytest.raises(picolm.ClosedError):
        m.generate("x")


def test_close_from_another_thread_cancels_a_tool_loop(q4_path):
    m = picolm.Model(q4_path, n_ctx=2048, n_threads=2)
    entered = threading.Event()
    outcome = {}

    def slow_answer_events(kind, data):
        if kind == "answer_piece":
            entered.set()

    def run():
        outcome["result"] = m.run_tools([{"role": "user", "content": "Tell me a very long story about a dragon."}], [OPENAI_RELAY],
                                        tool_choice="none", max_tokens=1500, temperature=0.9, seed=3, on_event=slow_answer_events)

    t = threading.Thread(target=run)
    t.start()
    assert entered.wait(60)
    start = time.monotonic()
    m.close()
    closed_in = time.monotonic() - start
    t.join(timeout=60)
    assert not t.is_alive() and closed_in < 3.0, closed_in
    assert outcome["result"].stop == "cancelled"
