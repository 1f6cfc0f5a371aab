"""Shared fixtures: model files from $PICOLM_MODELS or <repo>/models, goldens from <repo>/tests/golden."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import picolm

REPO = Path(__file__).resolve().parents[2]
MODELS = Path(os.environ.get("PICOLM_MODELS", REPO / "models"))
GOLDEN = REPO / "tests" / "golden"
Q4_1 = "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_file(name: str) -> Path:
    """Path of a model file; a missing file fails the test (the test command fetches the models first)."""
    p = MODELS / name
    if not p.is_file():
        pytest.fail(f"model file {p} not found: run scripts/fetch-models.sh --tests")
    return p


@pytest.fixture(scope="session")
def golden() -> dict:
    """The llama.cpp greedy reference."""
    p = GOLDEN / "smollm2-greedy.json"
    if not p.is_file():
        pytest.fail(f"reference data {p} not found")
    return json.loads(p.read_text())


@pytest.fixture(scope="session")
def q4_path() -> Path:
    """The small quantized model."""
    return model_file(Q4_1)


@pytest.fixture(scope="module")
def model(q4_path):
    """One shared Q4_1 model for a test module."""
    m = picolm.Model(q4_path, n_ctx=512, n_threads=2)
    yield m
    m.close()
