#!/usr/bin/env bash
# Builds the picolm Python package into a venv under build/pyenv (reused) and picolm-server (release), and runs
# tests/python with pytest (test_server.py talks to the server through the official `openai` package).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=build/pyenv
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check pytest jsonschema openai
fi
"$VENV/bin/python" -c "import pytest, jsonschema, openai" 2>/dev/null || "$VENV/bin/pip" install -q --disable-pip-version-check pytest jsonschema openai
"$VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps .
cargo build --release -q -p picolm-server
exec "$VENV/bin/python" -m pytest -q tests/python "$@"
