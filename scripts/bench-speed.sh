#!/usr/bin/env bash
# Speed benchmark in one sitting: `picolm bench` (prefill pp N and decode tg N, mean ± sd over repetitions, at
# each thread count) for each model given, and, when LLAMA_BENCH points to a llama-bench binary built from
# llama.cpp (e.g. from the llama-cpp-python source package, outside this repository), llama.cpp on the same
# models with the same settings right after.
# Usage: scripts/bench-speed.sh MODEL.gguf...      (env: PP=128 TG=32 THREADS=1,2 REPS=3 LLAMA_BENCH=)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -gt 0 ] || { echo "usage: scripts/bench-speed.sh MODEL.gguf..." >&2; exit 2; }
pp="${PP:-128}"; tg="${TG:-32}"; threads="${THREADS:-1,2}"; reps="${REPS:-3}"
bin="$root/build/picolm"
[ -x "$bin" ] || make -s -C "$root" cli >&2
for m in "$@"; do
  echo "== PicoLM: $m"
  "$bin" bench "$m" -p "$pp" -n "$tg" -j "$threads" -r "$reps"
  if [ -n "${LLAMA_BENCH:-}" ]; then
    echo "== llama.cpp: $m"
    "$LLAMA_BENCH" -m "$m" -p "$pp" -n "$tg" -t "$threads" -r "$reps" 2>/dev/null
  fi
done
