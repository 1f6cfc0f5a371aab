"""Ctrl-C during generation raises KeyboardInterrupt promptly and leaves the model usable."""

from __future__ import annotations

import _thread
import signal
import sys
import threading
import time

import pytest

import picolm

LONG = "Write a very long story about a dragon who learns to cook. Chapter 1:"


@pytest.fixture(autouse=True)
def _keyboard_interrupt_handler():
    """Python's own Ctrl-C handler for each test, restored afterwards.

    A process started in the background by a non-interactive shell (`cmd &` in a script, `nohup`) inherits SIGINT
    as ignored, and Python then installs no handler: no KeyboardInterrupt can be raised, whatever the library does
    (both `pthread_kill` and `interrupt_main` are ignored). These tests are about the library's checks, so they
    install the handler an interactive Python has.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _interrupt_soon(how: str, delay: float = 0.4) -> threading.Timer:
    main = threading.main_thread().ident

    def fire() -> None:
        if how == "signal":
            signal.pthread_kill(main, signal.SIGINT)
        else:
            _thread.interrupt_main()

    t = threading.Timer(delay, fire)
    t.start()
    return t


def _run_until_interrupted(run) -> float:
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        while time.monotonic() - start < 30:
            run()
    return time.monotonic() - start


@pytest.mark.skipif(sys.platform == "win32", reason="pthread_kill")
@pytest.mark.parametrize("how", ["signal", "interrupt_main"])
@pytest.mark.parametrize("stream", [False, True])
def test_interrupt_is_prompt(q4_path, how, stream):
    with picolm.Model(q4_path, n_ctx=512, n_threads=2) as m:
        ref = m.generate_full("The capital of France is", max_tokens=12)

        def run() -> None:
            if stream:
                for _ in m.generate(LONG, max_tokens=450, temperature=0.8, stream=True):
                    pass
            else:
                m.generate(LONG, max_tokens=450, temperature=0.8)

        t = _interrupt_soon(how)
        elapsed = _run_until_interrupted(run)
        t.join()
        assert elapsed < 0.4 + 2.0
        # The model still works and gives the same greedy output.
        again = m.generate_full("The capital of France is", max_tokens=12)
        assert again.tokens == ref.tokens


def test_interrupt_during_prefill(q4_path):
    with picolm.Model(q4_path, n_ctx=512, n_threads=2, n_batch=8) as m:
        prompt = "word " * 480

        def run() -> None:
            m.reset()
            m.generate(prompt, max_tokens=1)

        t = _interrupt_soon("interrupt_main", 0.3)
        elapsed = _run_until_interrupted(run)
        t.join()
        assert elapsed < 0.3 + 2.0
        cached = m.cached_tokens
        assert len(cached) % 8 == 0  # stopped between batches, keeping what was evaluated
        assert cached == m.tokenize(prompt)[: len(cached)]


def test_interrupt_during_run_tools_prefill(q4_path):
    """Ctrl-C reaches the tool loop's prefill (no event is sent then) through the core's should_stop hook."""
    tool = picolm.Tool(
        "read_sensor",
        "Read a sensor value",
        {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
        handler=lambda args: "40 %",
    )
    n_words = 1800  # a prefill far longer than the 0.3 s before the interrupt, even on a fast machine
    with picolm.Model(q4_path, n_ctx=2048, n_threads=2, n_batch=8) as m:
        messages = [{"role": "user", "content": "word " * n_words}]

        def run() -> None:
            m.reset()
            m.run_tools(messages, [tool], max_tokens=1, max_iterations=1)  # (almost) all of a run is prefill

        t = _interrupt_soon("interrupt_main", 0.3)
        elapsed = _run_until_interrupted(run)
        t.join()
        assert elapsed < 0.3 + 2.0
        cached = m.cached_tokens
        # Stopped inside the prompt (which holds more than n_words tokens), between batches of 8.
        assert len(cached) < n_words
        assert len(cached) % 8 == 0
        r = m.run_tools([{"role": "user", "content": "Read the humidity sensor."}], [tool], max_iterations=1)
        assert r.stop in ("answered", "max_iterations")
