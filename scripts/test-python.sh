#!/usr/bin/env bash
# Builds the picolm Python package into a venv under build/pyenv (reused) and runs tests/python with pytest.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=build/pyenv
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check pytest jsonschema
fi
"$VENV/bin/python" -c "import pytest, jsonschema" 2>/dev/null || "$VENV/bin/pip" install -q --disable-pip-version-check pytest jsonschema
"$VENV/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps .
exec "$VENV/bin/python" -m pytest -q tests/python "$@"
