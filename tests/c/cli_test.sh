#!/usr/bin/env bash
# CLI tests: exit codes and messages for bad input, stdin prompts, greedy output, the --cache round trip.
set -uo pipefail
bin="$1"
model="${PICOLM_MODELS:-models}/SmolLM2-135M-Instruct.Q4_1.gguf"
pass=0
fail=0
check() { # description, expected exit code, command...
  local what="$1" want="$2"
  shift 2
  "$@" >/tmp/picolm-cli.out 2>/tmp/picolm-cli.err
  local got=$?
  if [ "$got" = "$want" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $what: exit $got, expected $want"; cat /tmp/picolm-cli.err; fi
}
has_err() { grep -q -- "$1" /tmp/picolm-cli.err || { fail=$((fail + 1)); echo "FAIL: stderr lacks '$1'"; cat /tmp/picolm-cli.err; return; }; pass=$((pass + 1)); }

check "no arguments" 2 "$bin"
check "help" 0 "$bin" --help
check "missing model" 1 "$bin" /nonexistent.gguf -p hi
has_err "/nonexistent.gguf"
check "bad number" 2 "$bin" "$model" -p hi -n abc
has_err "expects an integer"
check "unknown flag" 2 "$bin" "$model" -p hi --frobnicate
has_err "unknown option"
check "missing value" 2 "$bin" "$model" -p
check "empty stdin prompt" 2 "$bin" "$model" </dev/null
long=$(python3 -c "print('word ' * 600)")
check "prompt longer than context" 1 "$bin" "$model" -c 64 -p "$long"
has_err "does not fit in the context of 64"
check "greedy generation" 0 "$bin" "$model" -p "The capital of France is" -n 8 -t 0 -j 2
grep -q "Paris" /tmp/picolm-cli.out && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: no Paris in output"; }
has_err "tok/s"
echo "The capital of France is" | "$bin" "$model" -n 4 -t 0 >/tmp/picolm-cli.out 2>/dev/null && grep -q "Paris" /tmp/picolm-cli.out \
  && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: stdin prompt"; }
cache=$(mktemp -u /tmp/picolm-cache-XXXXXX)
check "cache first run" 0 "$bin" "$model" --cache "$cache" -p "The capital of France is" -n 4 -t 0
cp /tmp/picolm-cli.out /tmp/picolm-cli.first
check "cache second run" 0 "$bin" "$model" --cache "$cache" -p "The capital of France is" -n 4 -t 0
has_err "Skipping 4 cached prompt tokens"
cmp -s /tmp/picolm-cli.out /tmp/picolm-cli.first && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: cached run differs"; }
rm -f "$cache"
check "tokenize" 0 "$bin" tokenize "$model" -p "The capital of France is"
grep -qx "504 3575 282 4649 314" /tmp/picolm-cli.out && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: tokenize ids"; }
echo "cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
