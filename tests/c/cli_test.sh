#!/usr/bin/env bash
# CLI tests: exit codes and messages for bad input, stdin prompts, greedy output, the --cache round trip, --help
# after every subcommand, sampler ranges, warnings, Ctrl-C.
set -uo pipefail
bin="$1"
model="${PICOLM_MODELS:-models}/SmolLM2-135M-Instruct.Q4_1.gguf"
pass=0
fail=0
work=$(mktemp -d)  # private output files: other test runs may share /tmp
trap 'rm -rf "$work"' EXIT
out="$work/out"
err="$work/err"
check() { # description, expected exit code, command...
  local what="$1" want="$2"
  shift 2
  "$@" >"$out" 2>"$err"
  local got=$?
  if [ "$got" = "$want" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $what: exit $got, expected $want"; cat "$err"; fi
}
has_err() { grep -q -- "$1" "$err" || { fail=$((fail + 1)); echo "FAIL: stderr lacks '$1'"; cat "$err"; return; }; pass=$((pass + 1)); }
# The library's optional parts (second line of --version: picolm_features()). The checks of a part the library was
# built without (`make test-c FEATURES=none`) become one check that its option fails with a message naming it.
features=" $("$bin" --version | sed -n 's/^features: //p') "
has_feature() { [[ "$features" == *" $1 "* ]]; }
lacks() { # feature, description, command...: the command fails (exit 1) naming the feature
  local feature="$1" what="$2"
  shift 2
  check "$what without $feature" 1 "$@"
  has_err "\`$feature\` feature"
}
echo "cli: library features:$features"

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
# A model whose block count (2^28) the file cannot hold: a message, not an allocation abort (#17.1).
python3 - "$work/blocks.gguf" <<'PY'
import struct, sys
def s(x): return struct.pack("<Q", len(x)) + x.encode()
def kv_u32(k, v): return s(k) + struct.pack("<II", 4, v)
def kv_str(k, v): return s(k) + struct.pack("<I", 8) + s(v)
b = b"GGUF" + struct.pack("<IQQ", 3, 1, 7)
b += kv_str("general.architecture", "llama") + kv_u32("llama.embedding_length", 8) + kv_u32("llama.block_count", 1 << 28)
b += kv_u32("llama.attention.head_count", 2) + kv_u32("llama.feed_forward_length", 16) + kv_str("tokenizer.ggml.model", "gpt2")
b += s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 4) + b"".join(s(t) for t in "abcd")
b += s("token_embd.weight") + struct.pack("<IQQIQ", 2, 8, 4, 0, 0)
b += b"\0" * (-len(b) % 32) + b"\0" * 128
open(sys.argv[1], "wb").write(b)
PY
check "block count beyond the file" 1 "$bin" "$work/blocks.gguf" -p hi -n 2
has_err "block_count"
has_err "268435456"

# A context whose KV cache (~22 GB at 2^20 positions) cannot be allocated under a 2 GB address-space limit: exit 1
# with the size and a hint, not an allocation abort (#17.3).
check "context beyond the memory limit" 1 bash -c 'ulimit -v 2097152 && exec "$@"' _ "$bin" "$model" -c 1048576 -p hi -n 1 -j 1
has_err "out of memory"
has_err "KV cache"
has_err "lower the context with -c"

check "greedy generation" 0 "$bin" "$model" -p "The capital of France is" -n 8 -t 0 -j 2
grep -q "Paris" "$out" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: no Paris in output"; }
has_err "tok/s"
cp "$out" "$work/mapped.out"
check "streamed generation" 0 "$bin" "$model" -p "The capital of France is" -n 8 -t 0 -j 2 --stream-weights
cmp -s "$out" "$work/mapped.out" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: streamed output differs"; }
check "--max-rss too small" 1 "$bin" "$model" -p "The capital of France is" -n 8 -t 0 --max-rss 2
has_err "MiB needed"
check "--max-rss 0" 2 "$bin" "$model" -p hi --max-rss 0
check "--max-rss that streams" 0 "$bin" "$model" -p "The capital of France is" -n 8 -t 0 -j 2 -c 512 --max-rss 48
cmp -s "$out" "$work/mapped.out" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: --max-rss output differs"; }
echo "The capital of France is" | "$bin" "$model" -n 4 -t 0 >"$out" 2>/dev/null && grep -q "Paris" "$out" \
  && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: stdin prompt"; }
cache=$(mktemp -u /tmp/picolm-cache-XXXXXX)
if has_feature state; then
check "cache first run" 0 "$bin" "$model" --cache "$cache" -p "The capital of France is" -n 4 -t 0
cp "$out" "$work/first"
check "cache second run" 0 "$bin" "$model" --cache "$cache" -p "The capital of France is" -n 4 -t 0
has_err "Skipping 4 cached prompt tokens"
cmp -s "$out" "$work/first" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: cached run differs"; }
rm -f "$cache"
else
  lacks state "--cache" "$bin" "$model" --cache "$cache" -p "The capital of France is" -n 4 -t 0
  [ ! -e "$cache" ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: --cache wrote a file without state"; }
fi
# --cache never replaces a file that is not a PicoLM state (the model itself, a text), nor a special file, and
# never blocks on a FIFO; a symbolic link is written through to its state file.
sdir=$(mktemp -d)
printf 'GGUF\003\000\000\000 stands for a model file' > "$sdir/model.gguf"
cp "$sdir/model.gguf" "$sdir/model.orig"
mkfifo "$sdir/fifo"
if has_feature state; then
check "--cache on a model file" 1 "$bin" "$model" --cache "$sdir/model.gguf" -p hi -n 2 -t 0
has_err "refusing to overwrite"
has_err "47 47 55 46 03 00 00 00 |GGUF....|"
cmp -s "$sdir/model.gguf" "$sdir/model.orig" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: --cache changed a model file"; }
printf '# notes\n' > "$sdir/notes.md"
check "--cache on a text file" 1 "$bin" "$model" --cache "$sdir/notes.md" -p hi -n 2 -t 0
grep -qx '# notes' "$sdir/notes.md" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: --cache changed a text file"; }
check "--cache on a FIFO" 1 timeout 60 "$bin" "$model" --cache "$sdir/fifo" -p hi -n 2 -t 0
has_err "FIFO"
fi
check "model is a FIFO" 1 timeout 60 "$bin" "$sdir/fifo" -p hi -n 2
has_err "FIFO"
check "--schema is a FIFO" 1 timeout 60 "$bin" "$model" --schema "$sdir/fifo" -p hi -n 2
has_err "FIFO"
check "--tools is a FIFO" 1 timeout 60 "$bin" "$model" --tools "$sdir/fifo" -p hi -n 2
has_err "FIFO"
check "perplexity -f is a FIFO" 1 timeout 60 "$bin" perplexity "$model" -f "$sdir/fifo"
has_err "FIFO"
check "--schema is a directory" 1 "$bin" "$model" --schema "$sdir" -p hi -n 2
has_err "directory"
[ -p "$sdir/fifo" ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: the FIFO was replaced"; }
if has_feature state; then
ln -s nowhere "$sdir/link"
check "cache through a dangling link" 1 "$bin" "$model" --cache "$sdir/link" -p "The capital of France is" -n 2 -t 0
has_err "does not exist"
[ ! -e "$sdir/nowhere" ] && [ -L "$sdir/link" ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: dangling link followed"; }
rm -f "$sdir/link"
check "cache first save" 0 "$bin" "$model" --cache "$sdir/state" -p "The capital of France is" -n 2 -t 0
ln -s state "$sdir/link"
check "cache through a link" 0 "$bin" "$model" --cache "$sdir/link" -p "The capital of France is" -n 2 -t 0
has_err "Skipping 4 cached prompt tokens"
[ -L "$sdir/link" ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: the link was replaced by a file"; }
printf 'PICOKV02 damaged' > "$sdir/state"
check "damaged cache is replaced" 0 "$bin" "$model" --cache "$sdir/state" -p "The capital of France is" -n 2 -t 0
has_err "ignoring cache"
check "replaced cache is used" 0 "$bin" "$model" --cache "$sdir/state" -p "The capital of France is" -n 2 -t 0
has_err "Skipping 4 cached prompt tokens"
ls -a "$sdir" | grep -q '\.tmp$' && { fail=$((fail + 1)); echo "FAIL: temporary files left"; ls -a "$sdir"; } || pass=$((pass + 1))
fi
rm -rf "$sdir"
# -j above the CPU count is lowered to it with a warning; -j 0 means one thread per CPU.
check "-j 999" 0 timeout 300 "$bin" "$model" -p "The capital of France is" -n 4 -t 0 -j 999
has_err "warning: n_threads 999 exceeds the"
grep -q "Paris" "$out" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: -j 999 output"; }
check "-j 0" 0 "$bin" "$model" -p "The capital of France is" -n 2 -t 0 -j 0
grep -q "warning" "$err" && { fail=$((fail + 1)); echo "FAIL: -j 0 warned"; cat "$err"; } || pass=$((pass + 1))
if command -v taskset >/dev/null 2>&1; then  # the CPU count respects the affinity mask
  check "-j 2 on one CPU" 0 taskset -c 0 "$bin" "$model" -p "The capital of France is" -n 2 -t 0 -j 2
  has_err "warning: n_threads 2 exceeds the 1 CPU available to this process; using 1 thread"
  check "default -j on one CPU" 0 taskset -c 0 "$bin" "$model" -p "The capital of France is" -n 2 -t 0
  grep -q "warning" "$err" && { fail=$((fail + 1)); echo "FAIL: default -j warned"; } || pass=$((pass + 1))
fi
check "tokenize" 0 "$bin" tokenize "$model" -p "The capital of France is"
grep -qx "504 3575 282 4649 314" "$out" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: tokenize ids"; }
tmpd=$(mktemp -d)
if has_feature json; then
# --json: one compact JSON object (checked by Python's json module, independent of the engine), also with
# PicoClaw's call: the prompt on stdin, -n N -j T -t 0.7 --json.
check "json mode" 0 "$bin" "$model" --chat -p "Describe a dog as JSON." --json -n 64 -t 0.8 -s 5
python3 -c "
import json; t = open('$out').read().strip(); v = json.loads(t)
assert isinstance(v, dict) and t == json.dumps(v, separators=(',', ':'), ensure_ascii=False), t" \
  && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: --json output is not one compact object"; cat "$out"; }
for seed in 1 2 3; do
  printf 'How many legs does a spider have? Answer in JSON.\n' | "$bin" "$model" -n 48 -j 2 -t 0.7 -s "$seed" --json \
    >"$out" 2>"$err"
  python3 -c "import json; assert isinstance(json.load(open('$out')), dict)" && pass=$((pass + 1)) \
    || { fail=$((fail + 1)); echo "FAIL: PicoClaw-style --json (seed $seed) is not an object"; cat "$out"; }
done
# --json-value: any value (here a number is what the prompt asks for); it parses.
check "json-value mode" 0 "$bin" "$model" -p "The number of legs of a spider, as a JSON number:" --json-value -n 8 -t 0
python3 -c "import json; json.load(open('$out'))" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: --json-value output does not parse"; cat "$out"; }
else
  lacks json "--json" "$bin" "$model" -p "Describe a dog as JSON." --json -n 8
  lacks json "--json-value" "$bin" "$model" -p "A number:" --json-value -n 8
fi
echo '{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer"}},"required":["name","age"]}' > "$tmpd/schema.json"
if has_feature json-schema; then
# A budget too small for the schema has its own message (not "invalid grammar or schema").
echo '{"type":"object","properties":{"name":{"type":"string","minLength":40}},"required":["name"]}' > "$tmpd/long.json"
check "budget too small" 1 "$bin" "$model" -p "x" --schema "$tmpd/long.json" -n 4
has_err "too small for the JSON output"
grep -q "invalid grammar" "$err" && { fail=$((fail + 1)); echo "FAIL: budget reported as a grammar error"; } || pass=$((pass + 1))
check "schema mode" 0 "$bin" "$model" --chat -p "Describe Alice, 30, as JSON." --schema "$tmpd/schema.json" -n 64 -t 0
python3 -c "
import json; v = json.load(open('$out'))
assert set(v) == {'name', 'age'} and isinstance(v['name'], str) and isinstance(v['age'], int), v" \
  && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: --schema output invalid"; cat "$out"; }
echo '{"type":"string","pattern":"x"}' > "$tmpd/bad.json"
check "unsupported schema" 1 "$bin" "$model" -p hi --schema "$tmpd/bad.json"
has_err "pattern"
else
  # Without json, a schema is refused naming `json` (the grammar itself is left out).
  if has_feature json; then missing=json-schema; else missing=json; fi
  lacks "$missing" "--schema" "$bin" "$model" -p hi --schema "$tmpd/schema.json" -n 8
fi
check "missing schema file" 1 "$bin" "$model" -p hi --schema "$tmpd/none.json"
has_err "cannot open"
cat > "$tmpd/tools.json" <<'JSON'
[{"type":"function","function":{"name":"read_sensor","description":"Read a sensor value","parameters":{"type":"object","properties":{"name":{"enum":["temperature","humidity"]}},"required":["name"]}}},
 {"type":"function","function":{"name":"set_relay","description":"Switch a relay on or off","parameters":{"type":"object","properties":{"id":{"type":"integer"},"on":{"type":"boolean"}},"required":["id","on"]}}}]
JSON
if has_feature agent; then
check "tool-call mode" 0 "$bin" "$model" -p "Turn on relay 2." --tools "$tmpd/tools.json" --tool-choice required -t 0 -n 160
python3 -c "
import json; v = json.load(open('$out'))
c = v['tool_calls'][0]; assert c['type'] == 'function' and c['id']
f = c['function']; args = json.loads(f['arguments'])
assert (f['name'] == 'set_relay' and set(args) == {'id', 'on'}) or (f['name'] == 'read_sensor' and args['name'] in ('temperature', 'humidity')), v" \
  && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: tool-call output is not PicoClaw's shape"; cat "$out"; }
has_err "stop: tool_calls_pending"  # --tools mode prints the statistics like generation does
has_err "tok/s"
# -n too small for any call: auto answers in text (exit 0), required reports the budget.
check "tools auto, small -n" 0 "$bin" "$model" -p "Turn on relay 2." --tools "$tmpd/tools.json" -t 0 -n 12
grep -q "tool_calls" "$out" && { fail=$((fail + 1)); echo "FAIL: a call that cannot fit was started"; } || pass=$((pass + 1))
check "tools required, small -n" 1 "$bin" "$model" -p "Turn on relay 2." --tools "$tmpd/tools.json" --tool-choice required -t 0 -n 12
has_err "too small for the JSON output"
# PicoClaw's default budget holds a call: -n 64 with required.
check "tools required, -n 64" 0 "$bin" "$model" -p "Turn on relay 2." --tools "$tmpd/tools.json" --tool-choice required -t 0 -n 64
grep -q '^{"tool_calls":\[' "$out" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: no call with -n 64"; cat "$out"; }
check "bad tool-choice" 2 "$bin" "$model" -p hi --tools "$tmpd/tools.json" --tool-choice maybe
has_err 'tool choice "maybe" is not one of auto, required, none'
else
  lacks agent "--tools" "$bin" "$model" -p "Turn on relay 2." --tools "$tmpd/tools.json" -t 0 -n 64
fi
# KV type names are the core's (parsed by the library): q8 is q8_0, others are usage errors naming the choices.
check "--kv q8" 0 "$bin" "$model" -p hi -n 1 -t 0 -c 64 --kv q8
check "bad --kv" 2 "$bin" "$model" -p hi --kv q4_0
has_err 'KV cache type "q4_0" is not one of f16, q8_0'
check "bench bad --kv" 2 "$bin" bench "$model" --kv q4_0
has_err 'KV cache type "q4_0"'
if has_feature agent; then
echo '[{"function":{}}]' > "$tmpd/badtools.json"
check "bad tools file" 1 "$bin" "$model" -p hi --tools "$tmpd/badtools.json"
has_err "name"
fi

# --help works after every subcommand and after the model (exit 0, usage on stdout).
for args in "$model --help" "$model -p hi -h" "bench --help" "bench $model --help" "perplexity --help" \
            "perplexity $model -f x --help" "tokenize --help" "tokenize $model --help" "quantize --help"; do
  # shellcheck disable=SC2086
  check "help: $args" 0 "$bin" $args
  grep -q "Usage: picolm" "$out" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: no usage for $args"; }
done

# Sampler ranges are the library's (one rule for C, Python and the CLI), checked before the model loads.
check "top_p (-k) above 1" 2 "$bin" "$model" -p hi -k 7
has_err "top_p = 7"
check "negative temperature" 2 "$bin" "$model" -p hi -t -3
has_err "temperature = -3"
check "top_p exactly 1 is fine" 0 "$bin" "$model" -p hi -n 1 -k 1 -t 0.5
check "min-p above 1" 2 "$bin" "$model" -p hi --min-p 1.5
has_err "min_p = 1.5"

# A context beyond the training context (8192 for SmolLM2) works with a warning on stderr.
check "context beyond training" 0 "$bin" "$model" -p hi -n 1 -t 0 -c 9000
has_err "warning: n_ctx 9000 is larger than the model's training context 8192"
check "context within training: no warning" 0 "$bin" "$model" -p hi -n 1 -t 0 -c 512
grep -q "warning" "$err" && { fail=$((fail + 1)); echo "FAIL: unexpected warning"; cat "$err"; } || pass=$((pass + 1))

# The default context comes from the library (the model's training context capped at PICOLM_DEFAULT_N_CTX_CAP),
# as in C and Python: its KV cache is the one of -c 4096, not of -c 2048.
kv_line() { grep -o "KV cache [0-9.]* MiB" "$err"; }
check "default context" 0 "$bin" "$model" -p hi -n 1 -t 0; kv_default=$(kv_line)
check "context 4096" 0 "$bin" "$model" -p hi -n 1 -t 0 -c 4096; kv_4096=$(kv_line)
check "context 2048" 0 "$bin" "$model" -p hi -n 1 -t 0 -c 2048; kv_2048=$(kv_line)
[ -n "$kv_default" ] && [ "$kv_default" = "$kv_4096" ] && [ "$kv_default" != "$kv_2048" ] && pass=$((pass + 1)) \
  || { fail=$((fail + 1)); echo "FAIL: default context: $kv_default, -c 4096: $kv_4096, -c 2048: $kv_2048"; }

# One name for the grammar-complete stop reason.
echo '{"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"]}' > "$tmpd/ok.json"
if has_feature json-schema; then
check "schema stop reason" 0 "$bin" "$model" --chat -p "Is the sky blue? Answer in JSON." --schema "$tmpd/ok.json" -n 48 -t 0
has_err "stop: grammar_complete"
fi

# tokenize: --raw-special like generation, and a clear message for a missing value.
check "tokenize special" 0 "$bin" tokenize "$model" -p "<|im_start|>"
grep -qx "1" "$out" && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: <|im_start|> is not one token"; cat "$out"; }
check "tokenize --raw-special" 0 "$bin" tokenize "$model" -p "<|im_start|>" --raw-special
[ "$(wc -w <"$out")" -gt 1 ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: --raw-special parsed the special token"; cat "$out"; }
check "tokenize -p without value" 2 "$bin" tokenize "$model" -p
has_err "option -p needs a value"

# bench: more than 16 thread counts is a usage error with a message.
check "bench 17 thread counts" 2 "$bin" bench "$model" -j 1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1
has_err "at most 16 thread counts"

# quantize: a failed write says so.
if has_feature quantize; then
check "quantize into a missing directory" 1 "$bin" quantize "$model" "$tmpd/no/such/dir/out.gguf" Q8_0
has_err "cannot write $tmpd/no/such/dir/out.gguf"
else
  lacks quantize "quantize" "$bin" quantize "$model" "$tmpd/out.gguf" Q8_0
  [ ! -e "$tmpd/out.gguf" ] && pass=$((pass + 1)) || { fail=$((fail + 1)); echo "FAIL: quantize wrote a file"; }
fi

# Ctrl-C: a real SIGINT to a running generation ends it; the statistics are printed and the exit status is 130.
python3 - "$bin" "$model" <<'PY' && pass=$((pass + 1)) || fail=$((fail + 1))
import signal, subprocess, sys
p = subprocess.Popen([sys.argv[1], sys.argv[2], "-p", "Once upon a time", "-n", "3000", "-t", "0", "-j", "2"],
                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
first = p.stdout.read1(64)  # the generation is running once text arrives
p.send_signal(signal.SIGINT)
out, err = p.communicate(timeout=120)
err = err.decode()
ok = first and p.returncode == 130 and "stop: cancelled" in err and "tok/s" in err
if not ok:
    print(f"FAIL: Ctrl-C: exit {p.returncode}, stderr: {err}")
sys.exit(0 if ok else 1)
PY

rm -rf "$tmpd"
echo "cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
