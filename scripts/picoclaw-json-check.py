#!/usr/bin/env python3
"""PicoClaw's subprocess contract, measured: how many of N seeds give a tool call PicoClaw can use.

PicoClaw's picolm provider (pkg/providers/picolm_provider.go) runs `picolm MODEL -n N -j T -t 0.7 --json` with
the prompt on standard input: a `<|system|>` turn holding its system text and a tools section that asks for
`{"tool_calls":[{"id":...,"type":"function","function":{"name":...,"arguments":"{...}"}}]}`, then the
`<|user|>` request and an open `<|assistant|>` turn. It then looks for `{"tool_calls"` in the output, takes the
object that starts there and decodes it with `arguments` as a JSON string.

This script builds that prompt byte for byte, runs the CLI once per seed (PicoClaw passes no seed; `-s` is the
only flag added) and prints, for each seed, whether the output contains `{"tool_calls"`, whether the whole
output parses as JSON, and whether PicoClaw's decoder would accept it; then the counts. For comparison it runs
the same with `--tools` (grammar-constrained tool calls, the CLI's own tool mode).

Usage: scripts/picoclaw-json-check.py [--bin build/picolm] [--model PATH] [--seeds 12] [-n 256] [-j 2] [--user TEXT]
Exit status 0 (it measures; it does not judge).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}}, "required": ["city"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "set_relay",
            "description": "Switch a relay on or off",
            "parameters": {"type": "object", "properties": {"id": {"type": "integer"}, "on": {"type": "boolean"}}, "required": ["id", "on"]},
        },
    },
]
SYSTEM = "You are PicoClaw, a helpful assistant running on a small board. Use tools when they help."
USER = "What is the weather in Paris right now?"


def tools_prompt(tools: list[dict]) -> str:
    """PicoClaw's buildToolsPrompt, reproduced (Go's json.Marshal of the parameters is compact with sorted keys)."""
    out = ["## Available Tools\n\n", "When you need to use a tool, respond with ONLY a JSON object:\n\n", "```json\n",
           '{"tool_calls":[{"id":"call_xxx","type":"function","function":{"name":"tool_name","arguments":"{...}"}}]}',
           "\n```\n\n", "CRITICAL: The 'arguments' field MUST be a JSON-encoded STRING.\n\n", "### Tool Definitions:\n\n"]
    for t in tools:
        f = t["function"]
        out.append(f"#### {f['name']}\n")
        if f.get("description"):
            out.append(f"Description: {f['description']}\n")
        if f.get("parameters"):
            params = json.dumps(f["parameters"], separators=(",", ":"), sort_keys=True)
            out.append(f"Parameters:\n```json\n{params}\n```\n")
        out.append("\n")
    return "".join(out)


def build_prompt(user: str) -> str:
    """PicoClaw's buildPrompt for one system message, the tools and one user message."""
    system = "\n\n".join([SYSTEM, tools_prompt(TOOLS)])
    return f"<|system|>\n{system}</s>\n<|user|>\n{user}</s>\n<|assistant|>\n"


def matching_brace(text: str, start: int) -> int:
    """PicoClaw's findMatchingBrace: the end (exclusive) of the object starting at `start`, or `start`."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    return start


def picoclaw_accepts(output: str) -> bool:
    """PicoClaw's extractToolCallsFromText: `{"tool_calls"`, the object from there, `arguments` as a string."""
    start = output.find('{"tool_calls"')
    if start < 0:
        return False
    end = matching_brace(output, start)
    if end == start:
        return False
    try:
        v = json.loads(output[start:end])
        calls = v["tool_calls"]
        return isinstance(calls, list) and len(calls) > 0 and all(
            isinstance(c.get("function", {}).get("name"), str) and isinstance(c["function"].get("arguments", ""), str) for c in calls
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


def run(args: argparse.Namespace, extra: list[str], seed: int, prompt: str) -> str:
    cmd = [args.bin, args.model, "-n", str(args.n), "-j", str(args.j), "-t", "0.7", "-s", str(seed), *extra]
    p = subprocess.run(cmd, input=prompt.encode(), capture_output=True, timeout=600)
    if p.returncode != 0:
        return f"<exit {p.returncode}: {p.stderr.decode(errors='replace').strip()}>"
    return p.stdout.decode(errors="replace").strip()


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    models = os.environ.get("PICOLM_MODELS", os.path.join(here, "..", "models"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default=os.path.join(here, "..", "build", "picolm"))
    ap.add_argument("--model", default=os.path.join(models, "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--seeds", type=int, default=12)
    ap.add_argument("-n", type=int, default=256, help="max tokens (PicoClaw's default is 256)")
    ap.add_argument("-j", type=int, default=2, help="threads")
    ap.add_argument("--user", default=USER, help="the user's request")
    args = ap.parse_args()
    prompt = build_prompt(args.user)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(TOOLS, f)
        tools_file = f.name
    try:
        for label, extra in [("--json (PicoClaw's call)", ["--json"]), ("--tools (grammar-constrained calls)", ["--tools", tools_file])]:
            contains = parses = accepted = 0
            print(f"== {label}")
            for seed in range(1, args.seeds + 1):
                out = run(args, extra, seed, prompt)
                has = '{"tool_calls"' in out
                try:
                    json.loads(out)
                    ok = True
                except ValueError:
                    ok = False
                pc = picoclaw_accepts(out)
                contains, parses, accepted = contains + has, parses + ok, accepted + pc
                print(f"seed {seed:2}: tool_calls={'yes' if has else 'no ':3} parses={'yes' if ok else 'no ':3} "
                      f"picoclaw={'yes' if pc else 'no ':3} {out[:110]!r}")
            print(f"{label}: {contains}/{args.seeds} contain {{\"tool_calls\", {parses}/{args.seeds} parse as JSON, "
                  f"{accepted}/{args.seeds} accepted by PicoClaw's decoder\n")
    finally:
        os.unlink(tools_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
