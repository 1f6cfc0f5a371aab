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
tmpd=$(mktemp -d)
# --json: one compact JSON object (checked by Python's json module, independent of the engine), also with
# PicoClaw's call: the prompt on stdin, -n N -j T -t 0.7 --json.
check "json mode" 0 "$bin" "$model" --chat -p "Describe a dog as JSON." --json -n 64 -t 0.8 -s 5
python3 -c "
import json; t = open('/tmp/picolm-cli.out').read().strip(); v = json.loads(t)
assert isinstance(v, dict) and t == json.dumps(v, separators=(',', ':'), ensure_ascii=False), t" \
  && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: --json output is not one compact object"; cat /tmp/picolm-cli.out; }
for seed in 1 2 3; do
  printf 'How many legs does a spider have? Answer in JSON.\n' | "$bin" "$model" -n 48 -j 2 -t 0.7 -s "$seed" --json \
    >/tmp/picolm-cli.out 2>/tmp/picolm-cli.err
  python3 -c "import json; assert isinstance(json.load(open('/tmp/picolm-cli.out')), dict)" && pass=$((pass + 1)) \
    || { fail=$((fail + 1)); echo "FAIL: PicoClaw-style --json (seed $seed) is not an object"; cat /tmp/picolm-cli.out; }
done
# --json-value: any value (here a number is what the prompt asks for); it parses.
check "json-value mode" 0 "$bin" "$model" -p "The number of legs of a spider, as a JSON number:" --json-value -n 8 -t 0
python3 -c "import json; json.load(open('/tmp/picolm-cli.out'))" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: --json-value output does not parse"; cat /tmp/picolm-cli.out; }
# A budget too small for the schema has its own message (not "invalid grammar or schema").
echo '{"type":"object","properties":{"name":{"type":"string","minLength":40}},"required":["name"]}' > "$tmpd/long.json"
check "budget too small" 1 "$bin" "$model" -p "x" --schema "$tmpd/long.json" -n 4
has_err "too small for the JSON output"
grep -q "invalid grammar" /tmp/picolm-cli.err && { fail=$((fail + 1)); echo "FAIL: budget reported as a grammar error"; } || pass=$((pass + 1))
echo '{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}' > "$tmpd/schema.json"
check "schema mode" 0 "$bin" "$model" --chat -p "Describe Alice, 30, as JSON." --schema "$tmpd/schema.json" -n 64 -t 0
python3 -c "
import json; v = json.load(open('/tmp/picolm-cli.out'))
assert set(v) == {'name', 'age'} and isinstance(v['name'], str) and isinstance(v['age'], int), v" \
  && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: --schema output invalid"; cat /tmp/picolm-cli.out; }
echo '{"type":"string","pattern":"x"}' > "$tmpd/bad.json"
check "unsupported schema" 1 "$bin" "$model" -p hi --schema "$tmpd/bad.json"
has_err "pattern"
check "missing schema file" 1 "$bin" "$model" -p hi --schema "$tmpd/none.json"
has_err "cannot open"
cat > "$tmpd/tools.json" <<'JSON'
[{"type":"function","function":{"name":"read_sensor","description":"Read a sensor value","parameters":{"type":"object","properties":{"name":{"enum":["temperature","humidity"]}},"required":["name"]}}},
 {"type":"function","function":{"name":"set_relay","description":"Switch a relay on or off","parameters":{"type":"object","properties":{"id":{"type":"integer"},"on":{"type":"boolean"}},"required":["id","on"]}}}]
JSON
check "tool-call mode" 0 "$bin" "$model" -p "Turn on relay 2." --tools "$tmpd/tools.json" --tool-choice required -t 0 -n 160
python3 -c "
import json; v = json.load(open('/tmp/picolm-cli.out'))
c = v['tool_calls'][0]; assert c['type'] == 'function' and c['id']
f = c['function']; args = json.loads(f['arguments'])
assert (f['name'] == 'set_relay' and set(args) == {'id', 'on'}) or (f['name'] == 'read_sensor' and args['name'] in ('temperature', 'humidity')), v" \
  && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: tool-call output is not PicoClaw's shape"; cat /tmp/picolm-cli.out; }
# -n too small for any call: auto answers in text (exit 0), required reports the budget.
check "tools auto, small -n" 0 "$bin" "$model" -p "Turn on relay 2." --tools "$tmpd/tools.json" -t 0 -n 12
grep -q "tool_calls" /tmp/picolm-cli.out && { fail=$((fail + 1)); echo "FAIL: a call that cannot fit was started"; } || pass=$((pass + 1))
check "tools required, small -n" 1 "$bin" "$model" -p "Turn on relay 2." --tools "$tmpd/tools.json" --tool-choice required -t 0 -n 12
has_err "too small for the JSON output"
# PicoClaw's default budget holds a call: -n 64 with required.
check "tools required, -n 64" 0 "$bin" "$model" -p "Turn on relay 2." --tools "$tmpd/tools.json" --tool-choice required -t 0 -n 64
grep -q '^{"tool_calls":\[' /tmp/picolm-cli.out && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: no call with -n 64"; cat /tmp/picolm-cli.out; }
check "bad tool-choice" 2 "$bin" "$model" -p hi --tools "$tmpd/tools.json" --tool-choice maybe
echo '[{"function":{}}]' > "$tmpd/badtools.json"
check "bad tools file" 1 "$bin" "$model" -p hi --tools "$tmpd/badtools.json"
has_err "name"
rm -rf "$tmpd"
echo "cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
