"""The Python examples run as written (against the installed package and the fetched model)."""

from __future__ import annotations

import subprocess
import sys

from conftest import Q4_1, REPO, model_file


def run_example(name: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "python" / name), *args], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_stream_example():
    out = run_example("stream.py", str(model_file(Q4_1)), "Once upon a time")
    assert out.startswith("Once upon a time") and "tok/s" in out


def test_iot_agent_example():
    out = run_example("iot_agent.py", str(model_file(Q4_1)), "Switch relay 2 on.")
    assert "[tool call] " in out and "[tool result] " in out and "[done] answered" in out
