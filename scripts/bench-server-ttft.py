#!/usr/bin/env python3
"""Time to first token of picolm-server for turn 1 and turn 2 of a PicoClaw-sized conversation.

Starts target/release/picolm-server (or $PICOLM_SERVER) on a free loopback port with the given model, then sends
what PicoClaw sends: a long system prompt (identity, workspace rules, memory) and 12 tool schemas, then the user's
message (turn 1); then the same plus the assistant's tool call, the tool's result and a new user message (turn 2).
TTFT is the time from sending the request to the first streamed chunk that carries text or a tool call; with the
default --max-tokens 1 that is prefill plus one token. Turn 2 should reuse turn 1's prompt from the KV cache
(reported as cached tokens). Only the standard library is used.

    python3 scripts/bench-server-ttft.py MODEL.gguf [-j 2] [-c 4096] [--runs 3] [--max-tokens 1]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def tool(name, description, props, required):
    return {"type": "function", "function": {"name": name, "description": description,
                                             "parameters": {"type": "object", "properties": props, "required": required}}}


S = {"type": "string"}
TOOLS = [
    tool("read_file", "Read the contents of a file in the workspace", {"path": S}, ["path"]),
    tool("write_file", "Write content to a file in the workspace, replacing it", {"path": S, "content": S}, ["path", "content"]),
    tool("append_file", "Append content to the end of a file", {"path": S, "content": S}, ["path", "content"]),
    tool("edit_file", "Replace old_text with new_text in a file", {"path": S, "old_text": S, "new_text": S}, ["path", "old_text", "new_text"]),
    tool("list_dir", "List the entries of a directory", {"path": S}, ["path"]),
    tool("exec", "Run a shell command in the workspace and return its output", {"command": S, "working_dir": S}, ["command"]),
    tool("web_search", "Search the web and return titles, URLs and snippets", {"query": S, "count": {"type": "integer"}}, ["query"]),
    tool("web_fetch", "Fetch a URL and return its readable text", {"url": S, "max_chars": {"type": "integer"}}, ["url"]),
    tool("message", "Send a message to the user on a chat channel", {"content": S, "channel": S, "chat_id": S}, ["content"]),
    tool("spawn", "Start a sub-agent on a background task", {"task": S, "label": S}, ["task"]),
    tool("cron", "Schedule, list or remove reminders and recurring tasks",
         {"action": {"enum": ["add", "list", "remove"]}, "message": S, "every_seconds": {"type": "integer"}, "cron_expr": S, "job_id": S}, ["action"]),
    tool("i2c", "Read or write registers of an I2C device on the board",
         {"action": {"enum": ["detect", "scan", "read", "write"]}, "bus": S, "address": {"type": "integer"}, "register": {"type": "integer"},
          "data": {"type": "array", "items": {"type": "integer"}}}, ["action"]),
]

SECTIONS = [
    "# picoclaw\n\nYou are picoclaw, a helpful personal AI assistant running on a small single-board computer. You are "
    "concise, accurate and friendly. You can use tools to read and write files, run commands, search the web, "
    "fetch pages, send messages, schedule reminders and talk to hardware on the board.",
    "## Current time\n2026-12-03 09:41 (Thursday)\n\n## Runtime\nlinux arm64, Go runtime\n\n## Workspace\nYour "
    "workspace is at: /home/pi/.picoclaw/workspace\n- Memory: /home/pi/.picoclaw/workspace/memory/MEMORY.md\n- Daily "
    "notes: /home/pi/.picoclaw/workspace/memory/YYYYMM/YYYYMMDD.md\n- Skills: /home/pi/.picoclaw/workspace/skills/{skill-name}/SKILL.md",
    "## Important rules\n1. ALWAYS use tools: when you need to perform an action (schedule reminders, send messages, "
    "execute commands, etc.), you MUST call the appropriate tool. Do NOT just say you'll do it or pretend to do it.\n"
    "2. Be helpful and accurate: when using tools, briefly explain what you're doing.\n3. Memory: when remembering "
    "something, write to /home/pi/.picoclaw/workspace/memory/MEMORY.md",
    "## AGENTS.md\n\nYou are a personal assistant. Keep answers short on chat channels. Prefer reading a file before "
    "editing it. Never run destructive commands (rm -rf, mkfs, dd) without explicit confirmation. When a command "
    "fails, read its error output and try to fix the cause once before asking the user. Summarise long tool "
    "outputs instead of pasting them. When asked about the weather, news or prices, search the web first.",
    "## SOUL.md\n\nI am calm, practical and honest. I say when I do not know something. I do not invent file "
    "contents, command outputs or URLs. I respect the user's time: one clear answer is better than three vague ones. "
    "I care about the user's privacy and never send their data anywhere they did not ask for.",
    "## USER.md\n\nName: Alex. Timezone: Europe/Berlin. Languages: English, German. Likes: cycling, electronics, "
    "coffee. Has a Raspberry Pi 5 with a BME280 sensor on I2C bus 1 at address 0x76 and a relay board on GPIO 17. "
    "Prefers metric units and 24-hour time. Works from home on Mondays and Fridays.",
    "## Memory\n\n- 2026-11-28: Alex asked to be reminded to water the plants every Sunday at 10:00 (cron job "
    "plants-weekly).\n- 2026-11-30: The garage relay is on GPIO 17; on means the door motor runs.\n- 2026-12-01: "
    "Alex's bike service is booked for 2026-12-09 at 17:30 at Radhaus Mitte.\n- 2026-12-02: Backup script lives at "
    "~/bin/backup.sh and runs nightly at 02:00; logs go to ~/backup.log.",
    "## Skills\n\n<skills>\n  <skill><name>weather</name><description>Get current weather and forecasts (no API key "
    "required).</description><location>skills/weather/SKILL.md</location></skill>\n  <skill><name>github</name>"
    "<description>Interact with GitHub using the gh CLI.</description><location>skills/github/SKILL.md</location>"
    "</skill>\n  <skill><name>summarize</name><description>Summarize URLs, files and YouTube videos.</description>"
    "<location>skills/summarize/SKILL.md</location></skill>\n  <skill><name>tmux</name><description>Remote-control "
    "tmux sessions.</description><location>skills/tmux/SKILL.md</location></skill>\n</skills>",
]


def system_prompt(repeat: int) -> str:
    # PicoClaw's real prompt also carries the bootstrap files' full text; `repeat` scales the memory and notes.
    notes = "\n\n".join(f"## Daily note {i}\n\n" + SECTIONS[6] + "\n" + SECTIONS[3] for i in range(repeat))
    return "\n\n".join(SECTIONS) + ("\n\n" + notes if notes else "")


class Server:
    def __init__(self, model: str, threads: int, ctx: int):
        binary = Path(os.environ.get("PICOLM_SERVER") or Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")) / "release" / "picolm-server")
        if not binary.is_file():
            sys.exit(f"{binary} not found: run `make server` first")
        cmd = [str(binary), model, "--port", "0", "-j", str(threads), "-c", str(ctx)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for line in self.proc.stderr:
            if "serving" in line and "http://" in line:
                hostport = line.split("http://", 1)[1].split("/", 1)[0]
                self.host, port = hostport.rsplit(":", 1)
                self.port = int(port)
                return
        sys.exit(f"picolm-server did not start (exit {self.proc.wait()})")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()

    def ttft(self, messages, max_tokens: int):
        """(seconds to the first text/tool-call chunk, seconds to the end, usage) of one streamed request."""
        body = {"model": "picolm", "messages": messages, "tools": TOOLS, "tool_choice": "auto", "max_tokens": max_tokens,
                "temperature": 0, "stream": True, "stream_options": {"include_usage": True}}
        conn = http.client.HTTPConnection(self.host, self.port, timeout=3600)
        t0 = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            sys.exit(f"HTTP {resp.status}: {resp.read().decode()}")
        first, usage, reply, calls = None, None, "", []
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            usage = chunk.get("usage") or usage
            for ch in chunk["choices"]:
                d = ch["delta"]
                if (d.get("content") or d.get("tool_calls")) and first is None:
                    first = time.perf_counter() - t0
                reply += d.get("content") or ""
                calls += d.get("tool_calls") or []
        total = time.perf_counter() - t0
        conn.close()
        return first if first is not None else total, total, usage


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("-j", "--threads", type=int, default=2)
    ap.add_argument("-c", "--ctx", type=int, default=4096)
    ap.add_argument("--runs", type=int, default=3, help="conversations measured (the median is reported)")
    ap.add_argument("--max-tokens", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=6, help="size of the system prompt's notes (6: about 3k tokens)")
    a = ap.parse_args()
    system = {"role": "system", "content": system_prompt(a.repeat)}
    user1 = {"role": "user", "content": "What's the temperature on the BME280 right now?"}
    call = {"id": "call_1", "type": "function", "function": {"name": "i2c", "arguments": json.dumps({"action": "read", "bus": "1", "address": 118, "register": 250})}}
    turn2 = [system, user1, {"role": "assistant", "content": "", "tool_calls": [call]},
             {"role": "tool", "tool_call_id": "call_1", "content": "[128, 0, 0] raw temperature 21.4 C"},
             {"role": "assistant", "content": "It is 21.4 °C."}, {"role": "user", "content": "And is that warmer than yesterday?"}]
    server = Server(a.model, a.threads, a.ctx)
    rows = {1: [], 2: []}
    try:
        for run in range(a.runs):
            # A system prompt that starts differently in each run, so turn 1 is always cold (nothing cached).
            sys_run = dict(system, content=f"[session {run}]\n" + system["content"])
            t1 = server.ttft([sys_run, user1], a.max_tokens)
            t2 = server.ttft([sys_run] + turn2[1:], a.max_tokens)
            rows[1].append(t1)
            rows[2].append(t2)
            print(f"run {run}: turn 1 TTFT {t1[0]:.3f} s ({t1[2]['prompt_tokens']} prompt tokens, {t1[2]['prompt_tokens_details']['cached_tokens']} cached); "
                  f"turn 2 TTFT {t2[0]:.3f} s ({t2[2]['prompt_tokens']} prompt tokens, {t2[2]['prompt_tokens_details']['cached_tokens']} cached)", flush=True)
    finally:
        server.stop()
    print(f"\n| model | threads | turn | prompt tokens | cached | TTFT median (s) |\n|---|---|---|---|---|---|")
    for turn in (1, 2):
        r = rows[turn]
        print(f"| {Path(a.model).name} | {a.threads} | {turn} | {r[-1][2]['prompt_tokens']} | {r[-1][2]['prompt_tokens_details']['cached_tokens']} | "
              f"{statistics.median(x[0] for x in r):.3f} |")


if __name__ == "__main__":
    main()
