"""Keyword options: one parser (picolm-core's defaults and name parsing) behind generate, generate_full, chat and
run_tools; each method accepts exactly its own keywords."""

from __future__ import annotations

import pytest

import picolm

PROMPT = "The capital of France is"
USER = [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda m: m.generate(PROMPT, temp=0.5), "generate"),
        (lambda m: m.generate_full(PROMPT, stream=True), "generate_full"),
        (lambda m: m.chat(USER, add_bos=False), "chat"),
        (lambda m: m.run_tools(USER, [], min_p=0.1), "run_tools"),
        (lambda m: m.run_tools(USER, [], stop=["x"]), "run_tools"),
    ],
)
def test_unknown_keywords_are_type_errors(model, call, name):
    with pytest.raises(TypeError, match=rf"{name}\(\) got an unexpected keyword argument"):
        call(model)


def test_wrong_types_name_the_argument(model):
    with pytest.raises(TypeError, match="argument 'max_tokens'"):
        model.generate(PROMPT, max_tokens="5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="argument 'temperature'"):
        model.chat(USER, temperature="hot")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="argument 'seed'"):
        model.generate(PROMPT, seed=1.5)  # type: ignore[arg-type]


def test_defaults_are_the_explicit_defaults(model):
    """Calling without options is the same as passing every default the signature shows."""
    shown = picolm._picolm._defaults()["generate"]
    plain = model.generate_full(PROMPT, max_tokens=8)
    explicit = model.generate_full(PROMPT, **{**shown, "max_tokens": 8})
    assert plain.tokens == explicit.tokens
    assert model.generate_full(PROMPT).n_generated <= shown["max_tokens"]


def test_tool_choice_names_come_from_the_core(model):
    with pytest.raises(picolm.InvalidArgumentError, match='"auto", "required", "none"'):
        model.run_tools(USER, [], tool_choice="always")
    noop = {"type": "function", "function": {"name": "noop", "description": "Does nothing", "parameters": {"type": "object"}}}
    # None is the core's default policy ("auto"): with 4 tokens no call fits, so the model answers in text.
    r = model.run_tools(USER, [noop], tool_choice=None, max_tokens=4)
    assert r.stop == "answered"


def test_kv_type_accepts_what_the_core_accepts(q4_path):
    """"q8" is the core's short name of "q8_0" (as the CLI and C accept it)."""
    sizes = {}
    for name in ("q8", "Q8_0", "f16"):
        with picolm.Model(q4_path, n_ctx=64, n_threads=1, kv_type=name) as m:
            sizes[name] = m.memory()["kv_cache"]
    assert sizes["q8"] == sizes["Q8_0"] < sizes["f16"]
    with pytest.raises(picolm.InvalidArgumentError, match="q8"):
        picolm.Model(q4_path, kv_type="f8")
