"""Greedy decoding equals llama.cpp's token ids (mirrors tests/rust/golden_greedy.rs)."""

from __future__ import annotations

import pytest

import picolm
from conftest import model_file


def run(golden: dict, key: str):
    path = model_file(golden["meta"]["model_paths"][key])
    out = []
    with picolm.Model(path, n_ctx=512, n_threads=2, n_batch=64) as m:
        for case in golden["results"][key]:
            assert m.tokenize(case["prompt"]) == case["prompt_ids"], f"{key}: prompt ids of {case['prompt']!r}"
            m.reset()
            r = m.generate_full(case["prompt"], max_tokens=48, temperature=0.0)
            out.append((case, r))
    return out


@pytest.mark.parametrize("key", ["smollm2-135m-F32", "smollm2-135m-F16"])
def test_greedy_ids_equal_llama_cpp(golden, key):
    for case, r in run(golden, key):
        assert r.tokens == case["generated_ids"], case["prompt"]
        assert r.stop_reason == ("eog" if case["stopped_on_eog"] else "max_tokens")
        assert r.n_prompt == len(case["prompt_ids"])


def test_q4_1_leading_agreement(golden):
    for case, r in run(golden, "original-Q4_1"):
        want = case["generated_ids"]
        n = next((i for i, (a, b) in enumerate(zip(r.tokens, want)) if a != b), min(len(r.tokens), len(want)))
        assert n >= min(8, len(want)), case["prompt"]


def test_stream_equals_golden_text(golden):
    key = "smollm2-135m-F32"
    path = model_file(golden["meta"]["model_paths"][key])
    with picolm.Model(path, n_ctx=512, n_threads=2) as m:
        case = golden["results"][key][0]
        text = "".join(m.generate(case["prompt"], max_tokens=48, stream=True))
        ids = [t for t in case["generated_ids"] if t not in m.eog_ids]
        assert text == m.detokenize(ids)
        assert m.last_result.tokens == case["generated_ids"]
