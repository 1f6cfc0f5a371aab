"""API behaviour: streaming, sampling, stop strings, tokenizer, state, metadata, lifecycle and errors."""

from __future__ import annotations

import math
import os
import stat
import threading
import warnings

import pytest

import picolm
from conftest import model_file

PROMPT = "Once upon a time"


def test_generate_returns_text(model):
    out = model.generate("The capital of France is", max_tokens=16)
    assert isinstance(out, str) and "Paris" in out
    r = model.last_result
    assert r.text == out and r.n_generated == len(r.tokens) <= 16
    assert r.stop_reason in ("eog", "max_tokens")
    assert r.decode_tokens_per_second > 0


def test_stream_concatenation_equals_non_stream(model):
    full = model.generate_full(PROMPT, max_tokens=40)
    stream = model.generate(PROMPT, max_tokens=40, stream=True)
    assert isinstance(stream, picolm.TokenStream)
    pieces = list(stream)
    assert all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces) == full.text
    assert stream.finished and stream.result.tokens == full.tokens
    assert stream.result.stop_reason == full.stop_reason
    with pytest.raises(StopIteration):
        next(stream)


def test_prefix_cache_reused(model):
    model.reset()
    first = model.generate_full(PROMPT, max_tokens=8)
    assert first.n_reused == 0
    again = model.generate_full(PROMPT, max_tokens=8)
    assert again.n_reused == again.n_prompt - 1
    assert again.tokens == first.tokens
    longer = model.generate_full(PROMPT + first.text + " and", max_tokens=4)
    assert longer.n_reused >= first.n_prompt


def test_seeded_sampling_is_reproducible(model):
    kw = dict(max_tokens=24, temperature=0.9, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1)
    a = model.generate_full(PROMPT, seed=1234, **kw)
    b = model.generate_full(PROMPT, seed=1234, **kw)
    assert a.tokens == b.tokens and a.text == b.text
    s = "".join(model.generate(PROMPT, seed=1234, stream=True, **kw))
    assert s == a.text
    others = {tuple(model.generate_full(PROMPT, seed=s, **kw).tokens) for s in (1, 2, 3)}
    assert len(others | {tuple(a.tokens)}) > 1, "different seeds should give some different samples"


def test_default_seed_from_model(q4_path):
    kw = dict(max_tokens=16, temperature=1.0)
    with picolm.Model(q4_path, n_ctx=128, n_threads=1, seed=7) as m:
        a = m.generate(PROMPT, **kw)
        assert a == m.generate(PROMPT, seed=7, **kw)


def test_stop_strings(model):
    base = model.generate_full(PROMPT, max_tokens=40)
    words = base.text.split()
    assert len(words) > 4
    stop = words[3]
    cut = base.text.index(stop)
    r = model.generate_full(PROMPT, max_tokens=40, stop=stop)
    assert r.text == base.text[:cut] and r.stop_reason == "stop_string"
    r2 = model.generate_full(PROMPT, max_tokens=40, stop=["#never#", stop])
    assert r2.text == base.text[:cut]
    streamed = "".join(model.generate(PROMPT, max_tokens=40, stop=(stop,), stream=True))
    assert streamed == base.text[:cut]


def test_max_tokens_zero(model):
    r = model.generate_full(PROMPT, max_tokens=0)
    assert r.text == "" and r.tokens == [] and r.stop_reason == "max_tokens"


def test_tokenize_detokenize(model):
    ids = model.tokenize("Hello, world! Ünïcödé ✓")
    assert all(isinstance(i, int) for i in ids)
    assert model.detokenize(ids) == "Hello, world! Ünïcödé ✓"
    assert model.detokenize_bytes(ids) == "Hello, world! Ünïcödé ✓".encode()
    im = model.tokenize("<|im_start|>user", parse_special=True)
    assert len(im) < len(model.tokenize("<|im_start|>user", parse_special=False))
    assert model.detokenize(im) == "user"
    assert model.detokenize(im, special=True) == "<|im_start|>user"
    assert model.tokenize("") == []
    with pytest.raises(picolm.InvalidArgumentError):
        model.detokenize([model.n_vocab])
    with pytest.raises(ValueError):
        model.detokenize([-1])


def test_properties_and_metadata(model):
    assert model.n_ctx == 512 and model.n_vocab == 49152 and model.n_threads == 2
    md = model.metadata
    assert md["general.architecture"] == "llama"
    assert isinstance(md["llama.context_length"], int)
    assert md["tokenizer.ggml.tokens"] == "array<string>[49152]"
    assert len(model.metadata_value("tokenizer.ggml.tokens")) == 49152
    assert model.metadata_value("no.such.key", 5) == 5
    assert 2 in model.eog_ids
    mem = model.memory()
    assert mem["kv_cache"] > 0 and mem["model_file"] > 0
    assert "SmolLM2" in repr(model)


def test_state_round_trip(q4_path, tmp_path):
    f = tmp_path / "state.bin"
    with picolm.Model(q4_path, n_ctx=256, n_threads=2) as m:
        ref = m.generate_full(PROMPT, max_tokens=20)
        m.save_state(f)
        cached = m.cached_tokens
        m.generate("Something completely different", max_tokens=4)
        m.load_state(str(f))
        assert m.cached_tokens == cached
        again = m.generate_full(PROMPT, max_tokens=20)
        assert again.tokens == ref.tokens and again.n_reused == again.n_prompt - 1
    with picolm.Model(q4_path, n_ctx=256, n_threads=1) as m2:
        m2.load_state(f)
        assert m2.generate_full(PROMPT, max_tokens=20).tokens == ref.tokens


def test_state_errors(model, tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"this is not a state file" * 10)
    with pytest.raises(picolm.StateError):
        model.load_state(bad)
    with pytest.raises(picolm.StateError):
        model.load_state(tmp_path / "missing.bin")
    with pytest.raises(picolm.StateError):
        model.save_state(tmp_path / "no" / "such" / "dir" / "x.bin")
    assert model.generate(PROMPT, max_tokens=4)  # still usable


def _no_hang(fn, seconds=60):
    """Runs fn in a thread; fails the test instead of hanging when it blocks."""
    box = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test thread
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "the call blocked on a special file"
    return box


def test_state_files_never_replace_foreign_or_special_files(model, tmp_path):
    model.generate(PROMPT, max_tokens=2)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00 weights that must survive")
    with pytest.raises(picolm.StateError, match=r"refusing to overwrite.*47 47 55 46 03 00 00 00 \|GGUF\.\.\.\.\|"):
        model.save_state(gguf)
    assert gguf.read_bytes() == b"GGUF\x03\x00\x00\x00 weights that must survive"
    with pytest.raises(picolm.StateError, match=r"47 47 55 46 03 00 00 00 \|GGUF\.\.\.\.\|"):
        model.load_state(gguf)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for call in (lambda: model.load_state(fifo), lambda: model.save_state(fifo), lambda: picolm.Model(fifo)):
        box = _no_hang(call)
        assert isinstance(box.get("error"), picolm.PicoLMError) and "FIFO" in str(box["error"]), box
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    # A link is written through to the state it points to, and stays a link.
    state = tmp_path / "cache.state"
    model.save_state(state)
    link = tmp_path / "link"
    link.symlink_to("cache.state")
    model.save_state(link)
    assert link.is_symlink()
    model.load_state(link)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_state_of_another_model_file_is_refused(model, tmp_path):
    model.generate(PROMPT, max_tokens=2)
    f = tmp_path / "state.bin"
    model.save_state(f)
    with picolm.Model(model_file("smollm2-135m-F16.gguf"), n_ctx=512, n_threads=1) as other:
        with pytest.raises(picolm.StateError, match="another model"):
            other.load_state(f)
        assert other.cached_tokens == []
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x40
    f.write_bytes(bytes(data))
    with pytest.raises(picolm.StateError, match="checksum"):
        model.load_state(f)


def test_thread_count_above_the_cpus_is_clamped_with_a_warning(q4_path):
    cpus = len(os.sched_getaffinity(0))
    with pytest.warns(picolm.PicoLMWarning, match=r"n_threads 100000 exceeds the \d+ CPUs? available to this process") as w:
        m = picolm.Model(q4_path, n_ctx=64, n_threads=100000)
    with m:
        used = m.n_threads
        assert 1 <= used <= cpus
        assert f"using {used} thread" in str(w[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with picolm.Model(q4_path, n_ctx=64, n_threads=0) as m0:
            assert m0.n_threads == used


def test_load_errors(tmp_path):
    with pytest.raises(picolm.ModelLoadError):
        picolm.Model(tmp_path / "missing.gguf")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 64)
    with pytest.raises(picolm.ModelLoadError):
        picolm.Model(junk)
    text = tmp_path / "text.gguf"
    text.write_text("hello")
    with pytest.raises(picolm.PicoLMError):
        picolm.Model(text)
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(b"")
    with pytest.raises(picolm.ModelLoadError):
        picolm.Model(empty)


def test_bad_model_arguments(q4_path):
    for kw in (dict(n_ctx=-1), dict(kv_type="f8"), dict(n_batch=0), dict(n_ctx=1 << 30)):
        with pytest.raises(picolm.InvalidArgumentError):
            picolm.Model(q4_path, **kw)


@pytest.mark.parametrize(
    "kw",
    [
        dict(temperature=math.nan),
        dict(top_p=-0.5),
        dict(min_p=1.5),
        dict(repeat_penalty=0.0),
        dict(max_tokens=-1),
        dict(top_k=-3),
        dict(stop=[""]),
    ],
)
def test_bad_sampler_values(model, kw):
    with pytest.raises(picolm.InvalidArgumentError) as e:
        model.generate(PROMPT, **kw)
    assert isinstance(e.value, ValueError)


def test_type_errors(model):
    with pytest.raises(TypeError):
        model.generate(b"bytes prompt")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        model.generate(PROMPT, stop=[1, 2])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        model.generate(PROMPT, 5)  # type: ignore[misc]


def test_empty_prompt(model):
    with pytest.raises(picolm.InvalidArgumentError):
        model.generate("", add_bos=True)


def test_prompt_too_long(q4_path):
    with picolm.Model(q4_path, n_ctx=32, n_threads=1) as m:
        with pytest.raises(picolm.ContextOverflowError):
            m.generate("word " * 100, max_tokens=4)
        with pytest.raises(picolm.ContextOverflowError):
            m.generate("word " * 100, max_tokens=4, stream=True)
        r = m.generate_full("word " * 20, max_tokens=100)
        assert r.stop_reason == "context_full"
        assert m.generate("Hi", max_tokens=2) is not None


def test_close_and_context_manager(q4_path):
    with picolm.Model(q4_path, n_ctx=64, n_threads=1) as m:
        assert not m.closed
        m.generate("Hi", max_tokens=2)
    assert m.closed
    m.close()
    m.close()
    for call in (
        lambda: m.generate("Hi"),
        lambda: m.generate_full("Hi"),
        lambda: m.tokenize("Hi"),
        lambda: m.detokenize([1]),
        lambda: m.metadata,
        lambda: m.n_vocab,
        lambda: m.reset(),
        lambda: m.memory(),
        lambda: m.save_state("/tmp/never-written"),
    ):
        with pytest.raises(picolm.ClosedError):
            call()
    with pytest.raises(picolm.ClosedError):
        with m:
            pass
    assert "closed" in repr(m)


def test_stream_after_close_raises(q4_path):
    m = picolm.Model(q4_path, n_ctx=64, n_threads=1)
    s = m.generate(PROMPT, max_tokens=20, stream=True)
    next(s)
    m.close()
    with pytest.raises(picolm.ClosedError):
        next(s)
    assert s.finished and s.result.stop_reason == "cancelled"


def test_new_generation_invalidates_stream(model):
    s = model.generate(PROMPT, max_tokens=30, stream=True)
    first = next(s)
    assert first
    model.generate("The capital of France is", max_tokens=4)
    with pytest.raises(picolm.PicoLMError, match="newer generation"):
        next(s)
    with pytest.raises(StopIteration):
        next(s)


def test_stream_close_and_with(model):
    with model.generate(PROMPT, max_tokens=30, stream=True) as s:
        next(s)
    assert s.finished and s.result.stop_reason == "cancelled"
    s.close()
    assert list(s) == []


def test_two_models_two_threads(q4_path):
    prompts = ["The capital of France is", "Once upon a time"]
    with picolm.Model(q4_path, n_ctx=128, n_threads=1) as m:
        expected = [m.generate(p, max_tokens=24) for p in prompts]
    results: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            with picolm.Model(q4_path, n_ctx=128, n_threads=1) as mm:
                results[i] = [mm.generate(prompts[i], max_tokens=24) for _ in range(3)]
                results[i].append("".join(mm.generate(prompts[i], max_tokens=24, stream=True)))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    for i in range(2):
        assert results[i] == [expected[i]] * 4


def test_same_model_two_threads_serialised(model):
    prompts = ["The capital of France is", "Once upon a time"]
    for p in prompts:
        model.reset()
    expected = [model.generate(p, max_tokens=16) for p in prompts]
    out: dict[int, list[str]] = {}

    def work(i: int) -> None:
        out[i] = [model.generate(prompts[i], max_tokens=16) for _ in range(3)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert out == {0: [expected[0]] * 3, 1: [expected[1]] * 3}


def test_streamed_model_generates_the_mapped_text(model, q4_path):
    want = model.generate("The capital of France is", max_tokens=12, temperature=0.0)
    with picolm.Model(q4_path, n_ctx=512, n_threads=2, stream_weights=True) as m:
        assert m.generate("The capital of France is", max_tokens=12, temperature=0.0) == want


def test_max_rss_bytes_too_small_says_what_is_needed(q4_path):
    with pytest.raises(picolm.ModelLoadError, match=r"MiB needed .*KV cache"):
        picolm.Model(q4_path, n_ctx=512, max_rss_bytes=1 << 20)
    with pytest.raises(picolm.InvalidArgumentError):
        picolm.Model(q4_path, max_rss_bytes=-1)
