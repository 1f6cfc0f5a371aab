"""picolm-server through the official ``openai`` client and raw HTTP: chat, streaming, tools, JSON schema, every
error status, a PicoClaw-shaped replay, greedy goldens, the prompt cache, queueing, cancellation and a bounded
load test. Each server runs on a free loopback port."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import jsonschema
import openai
import pytest

from conftest import Q4_1, model_file
from server_util import Server, sse_events

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 40}, "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city", "unit"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a timezone",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string", "maxLength": 40}}, "required": ["tz"]},
    },
}
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 30}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
USER = [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def server():
    s = Server(model_file(Q4_1))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def schema_of(tool):
    return tool["function"]["parameters"]


def test_health_and_models(server, client):
    h = server.health()
    assert h["status"] == "ok" and h["busy"] == 0
    models = client.models.list()
    assert [m.id for m in models.data] == ["SmolLM2-135M-Instruct.Q4_1"]


def test_plain_chat_fills_usage(client):
    r = client.chat.completions.create(model="picolm", messages=USER, temperature=0, max_tokens=24)
    c = r.choices[0]
    assert c.message.role == "assistant" and isinstance(c.message.content, str) and c.message.content
    assert c.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 10 and r.usage.completion_tokens >= 1
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    # The same request again reuses the whole prompt but its last token from the cache.
    r2 = client.chat.completions.create(model="picolm", messages=USER, temperature=0, max_tokens=24)
    assert r2.choices[0].message.content == c.message.content
    assert r2.usage.prompt_tokens_details.cached_tokens == r2.usage.prompt_tokens - 1


def test_max_tokens_gives_length_and_max_completion_tokens_wins(client):
    r = client.chat.completions.create(model="picolm", messages=USER, temperature=0, max_tokens=3)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3
    r = client.chat.completions.create(model="picolm", messages=USER, temperature=0, max_tokens=50, max_completion_tokens=2)
    assert r.usage.completion_tokens == 2


def test_stop_strings_and_text_parts(client):
    parts = [{"role": "user", "content": [{"type": "text", "text": "Count from one to ten"}, {"type": "text", "text": "in words."}]}]
    full = client.chat.completions.create(model="picolm", messages=parts, temperature=0, max_tokens=40).choices[0].message.content
    assert len(full) > 4
    stop = full[2:4]
    cut = client.chat.completions.create(model="picolm", messages=parts, temperature=0, max_tokens=40, stop=[stop])
    assert cut.choices[0].message.content == full[: full.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_streamed_deltas_join_to_the_non_streamed_text(client):
    kw = dict(model="picolm", messages=USER, temperature=0, max_tokens=40)
    whole = client.chat.completions.create(**kw)
    chunks = list(client.chat.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[0].choices[0].delta.role == "assistant"
    usage = chunks[-1].usage
    assert not chunks[-1].choices and usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (whole.usage.prompt_tokens, whole.usage.completion_tokens)
    # Without include_usage no chunk carries usage.
    assert all(c.usage is None for c in client.chat.completions.create(**kw, stream=True))


def test_sse_wire_format_ends_with_done(server):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=60)
    conn.request("POST", "/v1/chat/completions", body=json.dumps({"messages": USER, "max_tokens": 4, "stream": True}),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/event-stream")
    events = sse_events(resp)
    conn.close()
    assert events[-1] == "[DONE]"
    assert all(json.loads(e)["object"] == "chat.completion.chunk" for e in events[:-1])


@pytest.mark.parametrize("choice", ["required", "named"])
def test_tool_calls_validate_against_their_schema(client, choice):
    tool_choice = "required" if choice == "required" else {"type": "function", "function": {"name": "get_time"}}
    for seed in range(3):
        r = client.chat.completions.create(
            model="picolm",
            messages=[{"role": "user", "content": "What is the weather in Paris, and the time in Tokyo?"}],
            tools=[WEATHER, TIME], tool_choice=tool_choice, temperature=0.8, seed=seed, max_tokens=120,
        )
        c = r.choices[0]
        assert c.finish_reason == "tool_calls", c
        assert c.message.content is None and len(c.message.tool_calls) == 1
        call = c.message.tool_calls[0]
        assert call.type == "function" and call.id.startswith("call_")
        tool = {"get_weather": WEATHER, "get_time": TIME}[call.function.name]
        if choice == "named":
            assert call.function.name == "get_time"
        assert isinstance(call.function.arguments, str)
        jsonschema.validate(json.loads(call.function.arguments), schema_of(tool))
        assert r.usage.completion_tokens > 5


def test_tool_choice_none_and_auto(client):
    msgs = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = client.chat.completions.create(model="picolm", messages=msgs, tools=[WEATHER], tool_choice="none", temperature=0, max_tokens=30)
    assert r.choices[0].message.tool_calls is None and r.choices[0].finish_reason in ("stop", "length")
    r = client.chat.completions.create(model="picolm", messages=msgs, tools=[WEATHER], temperature=0, max_tokens=80)
    c = r.choices[0]
    if c.finish_reason == "tool_calls":
        jsonschema.validate(json.loads(c.message.tool_calls[0].function.arguments), schema_of(WEATHER))
    else:
        assert c.message.content and not c.message.tool_calls


def test_streamed_tool_call_deltas(client):
    kw = dict(model="picolm", messages=[{"role": "user", "content": "Weather in Oslo?"}], tools=[WEATHER], tool_choice="required",
              temperature=0, max_tokens=120)
    whole = client.chat.completions.create(**kw).choices[0].message.tool_calls[0]
    calls = {}
    finish = None
    for chunk in client.chat.completions.create(**kw, stream=True):
        if not chunk.choices:
            continue
        d = chunk.choices[0].delta
        for tc in d.tool_calls or []:
            slot = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            slot["id"] = tc.id or slot["id"]
            if tc.function and tc.function.name:
                slot["name"] += tc.function.name
            if tc.function and tc.function.arguments:
                slot["arguments"] += tc.function.arguments
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and list(calls) == [0]
    assert calls[0]["name"] == "get_weather" and calls[0]["id"]
    assert json.loads(calls[0]["arguments"]) == json.loads(whole.function.arguments)
    jsonschema.validate(json.loads(calls[0]["arguments"]), schema_of(WEATHER))


def test_response_formats(client):
    for seed in range(3):
        r = client.chat.completions.create(
            model="picolm", messages=[{"role": "user", "content": "Invent a person."}], temperature=0.9, seed=seed, max_tokens=60,
            response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}},
        )
        jsonschema.validate(json.loads(r.choices[0].message.content), PERSON)
        assert r.choices[0].finish_reason == "stop"
    r = client.chat.completions.create(model="picolm", messages=[{"role": "user", "content": "A fact as JSON."}], temperature=0,
                                       max_tokens=60, response_format={"type": "json_object"})
    assert isinstance(json.loads(r.choices[0].message.content), dict)


def test_completions_endpoint(client):
    r = client.completions.create(model="picolm", prompt="The capital of France is", max_tokens=5, temperature=0)
    assert r.choices[0].text.startswith(" Paris") and r.usage.prompt_tokens == 5 and r.usage.completion_tokens <= 5
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="picolm", prompt="The capital of France is", max_tokens=5, temperature=0, stream=True) if c.choices)
    assert streamed == r.choices[0].text


# ---------------------------------------------------------------------------------------------------- errors


def assert_error(status_body, status, param=None, contains=None):
    got, body = status_body
    assert got == status, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"], err
    if param is not None:
        assert err["param"] == param, err
    if contains is not None:
        assert contains in err["message"], err
    return err


def test_400_bad_json_types_and_unsupported_schemas(server, client):
    chat = "/v1/chat/completions"
    assert_error(server.request("POST", chat, b"{not json"), 400, contains="not valid JSON")
    assert_error(server.request("POST", chat, [1, 2]), 400, contains="an array")
    assert_error(server.request("POST", chat, {"messages": USER, "temperature": "hot"}), 400, "temperature")
    assert_error(server.request("POST", chat, {"messages": USER, "n": 2}), 400, "n")
    assert_error(server.request("POST", chat, {"messages": "hi"}), 400, "messages")
    assert_error(server.request("POST", chat, {"messages": [{"role": "wizard", "content": "x"}]}), 400, "messages[0].role")
    bad_tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string", "pattern": "^x"}}}}}
    assert_error(server.request("POST", chat, {"messages": USER, "tools": [bad_tool]}), 400, "tools[0]", contains="pattern")
    rf = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "^x"}}}
    assert_error(server.request("POST", chat, {"messages": USER, "response_format": rf}), 400, "response_format", contains="pattern")
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="picolm", messages=USER, top_p=3)
    assert e.value.status_code == 400 and "top_p" in str(e.value)


def test_400_prompt_longer_than_the_context_says_how_many_tokens(server, client):
    long = [{"role": "user", "content": "word " * 3000}]
    for stream in (False, True):
        err = assert_error(server.request("POST", "/v1/chat/completions", {"messages": long, "stream": stream}), 400, "messages")
        assert err["code"] == "context_length_exceeded" and "2048" in err["message"], err
    err = assert_error(server.request("POST", "/v1/completions", {"prompt": "word " * 3000}), 400)
    assert "2048" in err["message"]
    # The server still works afterwards.
    assert client.chat.completions.create(model="picolm", messages=USER, max_tokens=2).choices[0].message.content


def test_404_405_and_413(server):
    assert_error(server.request("GET", "/v1/nothing"), 404)
    assert_error(server.request("POST", "/nothing", {}), 404)
    assert_error(server.request("GET", "/v1/chat/completions"), 405)
    assert_error(server.request("DELETE", "/v1/models"), 405)
    big = json.dumps({"messages": [{"role": "user", "content": "x" * (9 << 20)}]}).encode()
    assert_error(server.request("POST", "/v1/chat/completions", big), 413, contains="--max-body-bytes")
    assert server.health()["status"] == "ok"


def test_401_with_an_api_key_and_read_timeouts():
    s = Server(model_file(Q4_1), "--api-key", "sekrit-key", "--read-timeout", "1", ctx=512)
    try:
        # A client that never finishes its headers, or its body, is dropped after the read timeout.
        for partial in (b"POST /v1/models HTTP/1.1\r\nHost: x\r\n", b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                        b"Authorization: Bearer sekrit-key\r\nContent-Length: 100\r\n\r\n{"):
            sock = socket.create_connection((s.host, s.port), timeout=10)
            sock.sendall(partial)
            t0 = time.monotonic()
            reply = b""
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
            sock.close()
            assert time.monotonic() - t0 < 5, reply
            # Headers not finished: the connection is closed; body not finished: 408 with the error JSON.
            assert reply == b"" if b"Content-Length" not in partial else b" 408 " in reply.split(b"\r\n", 1)[0], reply
        assert s.health()["status"] == "ok"  # /health needs no key
        assert_error(s.request("GET", "/v1/models"), 401)
        assert_error(s.request("GET", "/v1/models", headers={"Authorization": "Bearer wrong-key!"}), 401)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=s.base_url, api_key="nope", max_retries=0).models.list()
        ok = openai.OpenAI(base_url=s.base_url, api_key="sekrit-key", max_retries=0)
        assert ok.chat.completions.create(model="picolm", messages=USER, max_tokens=2).usage.completion_tokens == 2
    finally:
        s.stop()


# ------------------------------------------------------------------------------------ queue and cancellation


# A generation that cannot end early: the schema needs a string of 2000+ characters, so no end token is allowed
# for hundreds of tokens.
LONG = {"type": "json_schema", "json_schema": {"name": "long", "schema": {
    "type": "object", "properties": {"story": {"type": "string", "minLength": 2000}}, "required": ["story"]}}}


def open_stream(s: Server, max_tokens: int):
    """Starts a long streamed chat on a raw socket and reads until the first content chunk arrived."""
    body = json.dumps({"messages": USER, "stream": True, "max_tokens": max_tokens, "temperature": 1.0, "seed": 1,
                       "response_format": LONG}).encode()
    sock = socket.create_connection((s.host, s.port), timeout=60)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    seen = b""
    while seen.count(b"data: ") < 2:
        data = sock.recv(65536)
        assert data, seen
        seen += data
    assert b" 200 " in seen.split(b"\r\n", 1)[0]
    return sock


def test_queue_full_is_503_and_a_disconnect_frees_the_slot():
    s = Server(model_file(Q4_1), "--parallel", "1", "--queue", "0", ctx=1024)
    try:
        sock = open_stream(s, max_tokens=1500)
        assert s.health()["busy"] == 1  # /health answers while a generation runs
        err = assert_error(s.request("POST", "/v1/chat/completions", {"messages": USER, "max_tokens": 2}), 503)
        assert err["code"] == "server_busy"
        sock.close()
        # Cancelled within one token: the slot is free long before 2000 characters could be generated.
        assert s.wait_idle(timeout=3.0) < 3.0
        status, body = s.request("POST", "/v1/chat/completions", {"messages": USER, "max_tokens": 2})
        assert status == 200 and body["usage"]["completion_tokens"] == 2
    finally:
        s.stop()


def test_a_disconnect_cancels_a_non_streamed_generation(server):
    body = json.dumps({"messages": [{"role": "user", "content": "Write a long story."}], "max_tokens": 1500,
                       "temperature": 1.0, "seed": 3, "response_format": LONG}).encode()
    sock = socket.create_connection((server.host, server.port), timeout=60)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    t0 = time.monotonic()
    while server.health()["busy"] == 0:
        assert time.monotonic() - t0 < 10, "the request never started"
        time.sleep(0.01)
    time.sleep(0.5)
    assert server.health()["busy"] == 1
    sock.close()
    assert server.wait_idle(timeout=3.0) < 3.0


def test_parallel_slots_give_the_sequential_answers():
    s = Server(model_file(Q4_1), "--parallel", "2", "--queue", "0", ctx=512)
    try:
        prompts = [[{"role": "user", "content": "Name three colours."}], [{"role": "user", "content": "Count to five."}]]
        body = lambda m: {"messages": m, "max_tokens": 24, "temperature": 0}  # noqa: E731
        alone = [s.request("POST", "/v1/chat/completions", body(m))[1]["choices"][0]["message"]["content"] for m in prompts]
        got = [None, None]

        def run(i):
            # A different prompt prefix for each slot, then the same prompts at once.
            got[i] = s.request("POST", "/v1/chat/completions", body(prompts[i]))

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert [g[0] for g in got] == [200, 200], got
        assert [g[1]["choices"][0]["message"]["content"] for g in got] == alone
    finally:
        s.stop()


def test_load_8_clients_200_requests_answered_or_503_memory_flat():
    # Room for 5 of the 8 clients: the others are refused with 503 and retry after a pause, as real clients do.
    s = Server(model_file(Q4_1), "--parallel", "1", "--queue", "4", ctx=512)
    try:
        def one(i):
            msgs = [{"role": "user", "content": f"Say a word about the number {i}."}]
            return s.request("POST", "/v1/chat/completions", {"messages": msgs, "max_tokens": 3, "temperature": 0.5, "seed": i}, timeout=60)

        for i in range(20):  # warm-up: allocator pools, agent caches, thread stacks
            assert one(i)[0] == 200
        base = s.rss_kib()
        results, errors = [], []
        lock = threading.Lock()
        counter = iter(range(200))

        def worker():
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                try:
                    status, body = one(i)
                    with lock:
                        results.append((status, body))
                    if status == 503:
                        time.sleep(0.2)
                except Exception as e:  # a connection error fails the test below
                    with lock:
                        errors.append(repr(e))

        t0 = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=600)
        elapsed = time.monotonic() - t0
        assert not errors, errors[:5]
        assert len(results) == 200
        statuses = [st for st, _ in results]
        assert set(statuses) <= {200, 503}, set(statuses)
        for st, body in results:
            if st == 200:
                assert body["usage"]["completion_tokens"] >= 1
            else:
                assert body["error"]["code"] == "server_busy"
        growth = s.rss_kib() - base
        ok = statuses.count(200)
        print(f"\nload: 200 requests in {elapsed:.1f} s, {ok} answered, {200 - ok} refused with 503, RSS growth {growth} KiB")
        assert ok >= 20
        assert growth < 5 * 1024, f"RSS grew by {growth} KiB"
        assert s.wait_idle(timeout=10) < 10
    finally:
        s.stop()


# ------------------------------------------------------------------------------------------ PicoClaw replay


def picoclaw_request(s: Server, messages, tools, stream=False):
    """The body PicoClaw's OpenAI-compatible provider builds, parsed the way it parses the answer."""
    body = {"model": "picolm", "messages": messages, "tools": tools, "tool_choice": "auto", "max_tokens": 160, "temperature": 0}
    if stream:
        body["stream"] = True
    conn = http.client.HTTPConnection(s.host, s.port, timeout=120)
    conn.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"Content-Type": "application/json", "Authorization": "Bearer KEY"})
    resp = conn.getresponse()
    assert resp.status == 200
    if not stream:
        data = json.loads(resp.read())
        conn.close()
        choice = data["choices"][0]
        content = choice["message"].get("content") or ""
        calls = [{"id": c["id"], "name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
                 for c in choice["message"].get("tool_calls") or []]
        return content, calls, choice["finish_reason"], data["usage"]
    content, calls, finish, usage = "", {}, None, None
    for e in sse_events(resp):
        if e == "[DONE]":
            break
        chunk = json.loads(e)
        usage = chunk.get("usage") or usage
        for ch in chunk["choices"]:
            d = ch["delta"]
            content += d.get("content") or ""
            for tc in d.get("tool_calls") or []:
                c = calls.setdefault(tc["index"], {"id": "", "name": "", "arguments": ""})
                c["id"] = tc.get("id") or c["id"]
                c["name"] += tc.get("function", {}).get("name") or ""
                c["arguments"] += tc.get("function", {}).get("arguments") or ""
            finish = ch.get("finish_reason") or finish
    conn.close()
    return content, [{**c, "arguments": json.loads(c["arguments"])} for c in calls.values()], finish, usage


def test_picoclaw_three_turn_replay_with_a_tool_result(server):
    system = {"role": "system", "content": "You are picoclaw, a personal assistant on a Raspberry Pi. Use tools when they help."}
    user1 = {"role": "user", "content": "What is the weather in Paris? Use celsius."}
    msgs = [system, user1]
    content, calls, finish, usage1 = picoclaw_request(server, msgs, [WEATHER, TIME])
    # The same turn streamed (temperature 0) gives the same answer, parsed from the deltas.
    s_content, s_calls, s_finish, s_usage = picoclaw_request(server, msgs, [WEATHER, TIME], stream=True)
    assert (s_content, s_calls, s_finish) == (content, [{**c, "id": s_calls[0]["id"]} for c in calls] if calls else [], finish)
    assert s_usage is None  # no stream_options: no usage chunk
    if calls:
        assert finish == "tool_calls" and calls[0]["name"] in ("get_weather", "get_time")
        call = calls[0]
    else:
        assert finish in ("stop", "length") and content
        call = {"id": "call_replay_1", "name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}
    # Turn 2: the assistant's call and the tool's result go back, as PicoClaw sends them.
    assistant = {"role": "assistant", "content": "", "tool_calls": [
        {"id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])}}]}
    tool = {"role": "tool", "tool_call_id": call["id"], "content": "Paris: 18 C, light rain"}
    msgs = [system, user1, assistant, tool]
    content2, calls2, finish2, usage2 = picoclaw_request(server, msgs, [WEATHER, TIME])
    assert finish2 in ("stop", "length", "tool_calls")
    assert content2 or calls2
    # The prompt cache: turn 2 re-evaluates only what follows turn 1's prompt.
    assert usage2["prompt_tokens_details"]["cached_tokens"] >= usage1["prompt_tokens"] - 1, (usage1, usage2)
    # Turn 3: a follow-up question after the answer.
    if calls2:
        msgs += [{"role": "assistant", "content": "", "tool_calls": [{"id": c["id"], "type": "function", "function": {
            "name": c["name"], "arguments": json.dumps(c["arguments"])}} for c in calls2]},
                 {"role": "tool", "tool_call_id": calls2[0]["id"], "content": "done"}]
    else:
        msgs += [{"role": "assistant", "content": content2}]
    msgs += [{"role": "user", "content": "Thanks. Should I take an umbrella?"}]
    content3, calls3, finish3, usage3 = picoclaw_request(server, msgs, [WEATHER, TIME], stream=True)
    assert finish3 in ("stop", "length", "tool_calls") and (content3 or calls3)
    assert usage3 is None  # no stream_options: PicoClaw's streaming parse gets no usage chunk
    for c in calls2 + calls3:
        jsonschema.validate(c["arguments"], schema_of({"get_weather": WEATHER, "get_time": TIME}[c["name"]]))


# ---------------------------------------------------------------------------------------------- goldens


@pytest.mark.parametrize("key", ["smollm2-135m-F32", "smollm2-135m-F16"])
def test_greedy_goldens_exact_through_the_server(golden, key):
    s = Server(model_file(golden["meta"]["model_paths"][key]), ctx=512)
    try:
        c = openai.OpenAI(base_url=s.base_url, api_key="unused", max_retries=0, timeout=120)
        for case in golden["results"][key]:
            r = c.completions.create(model="picolm", prompt=case["prompt"], max_tokens=48, temperature=0)
            eog = case["stopped_on_eog"]
            want = "".join(case["generated_pieces"][:-1] if eog else case["generated_pieces"])
            assert r.choices[0].text == want, case["prompt"]
            assert r.choices[0].finish_reason == ("stop" if eog else "length")
            assert r.usage.prompt_tokens == len(case["prompt_ids"])
            assert r.usage.completion_tokens == len(case["generated_ids"])
    finally:
        s.stop()
