#!/usr/bin/env bash
# Memory benchmark: default (mapped) vs streaming mode (--stream-weights: weights read into two reused slabs) vs a
# --max-rss budget, for one model. For each context size, a greedy generation per mode, reporting peak RSS (VmHWM
# from /usr/bin/time -v: everything the process held, program, metadata, KV cache, buffers and weights), the
# engine's own split (anonymous vs mapped-file pages, KV bytes), decode tok/s, and whether the text is identical
# across modes.
#
# Then (as root, with the cgroup v1 memory controller), the same runs inside a memory cgroup limited to LIMIT_MB
# (default 256), with `sync; echo 3 > /proc/sys/vm/drop_caches` before every run: a page cached by an earlier run
# is charged to the cgroup that read it, so without the drop an engine could run on pages outside its limit. With
# LLAMA_BIN_DIR (a llama.cpp build's bin folder), llama.cpp's llama-bench (decode tok/s) and llama-cli (VmHWM)
# run in the same cgroup, same threads, after the same drop, for comparison. The cgroup is removed at the end.
#
# Usage: scripts/bench-memory.sh MODEL.gguf [CTX...]                       (default CTX: 512 2048)
# Env: THREADS=2 N_GEN=32 LIMIT_MB=256 MAX_RSS_MB=40 LLAMA_BIN_DIR= CGROUP=auto|only|off PICOLM_BIN=build/picolm
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:?usage: scripts/bench-memory.sh MODEL.gguf [CTX...]}"
shift
[ $# -gt 0 ] && ctxs=("$@") || ctxs=(512 2048)
threads="${THREADS:-2}"
n_gen="${N_GEN:-32}"
limit_mb="${LIMIT_MB:-256}"
max_rss="${MAX_RSS_MB:-40}"
cgroup_mode="${CGROUP:-auto}"
bin="${PICOLM_BIN:-$root/build/picolm}"
[ -x "$bin" ] || make -s -C "$root" cli >&2
[ -x /usr/bin/time ] || { echo "bench-memory: /usr/bin/time is needed (apt-get install time)" >&2; exit 1; }
prompt="The history of the city began"
tmp="$(mktemp -d)"
cg=""
cleanup() {
  if [ -n "$cg" ] && [ -d "$cg" ]; then
    # Move any leftover task back to the root group before removing the cgroup.
    while read -r p; do echo "$p" > /sys/fs/cgroup/memory/cgroup.procs 2>/dev/null || true; done < "$cg/cgroup.procs"
    rmdir "$cg" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

hwm_of() { awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$1"; }

# run LABEL [prefix command...] -- picolm args...: prints one table row.
run() {
  local label="$1"
  shift
  local pre=()
  while [ "$1" != "--" ]; do pre+=("$1"); shift; done
  shift
  "${pre[@]}" /usr/bin/time -v "$bin" "$model" -p "$prompt" -n "$n_gen" -t 0 -j "$threads" "$@" \
    > "$tmp/$label.out" 2> "$tmp/$label.err" || { echo "| $label | failed: $(grep -m1 'picolm:' "$tmp/$label.err" || tail -n1 "$tmp/$label.err") |||||"; return; }
  local hwm decode anon file kv
  hwm=$(hwm_of "$tmp/$label.err")
  decode=$(sed -n 's/.*generated: [0-9]* tokens, \([0-9.]*\) tok\/s.*/\1/p' "$tmp/$label.err")
  anon=$(sed -n 's/.*anonymous \([0-9.]*\) MiB.*/\1/p' "$tmp/$label.err")
  file=$(sed -n 's/.*mapped model \([0-9.]*\) MiB.*/\1/p' "$tmp/$label.err")
  kv=$(sed -n 's/.*KV cache \([0-9.]*\) MiB.*/\1/p' "$tmp/$label.err")
  echo "| $label | $hwm | $anon | $file | $kv | $decode |"
}

same() { if cmp -s "$tmp/$1.out" "$tmp/$2.out"; then echo identical; else echo DIFFERENT; fi; }

header() {
  echo "| run | VmHWM MiB | anon MiB (end) | mapped MiB (end) | KV MiB | decode tok/s |"
  echo "|---|---|---|---|---|---|"
}

echo "model: $model, threads $threads, $n_gen generated tokens, greedy, $(uname -r)"
if [ "$cgroup_mode" != only ]; then
  echo
  header
  for c in "${ctxs[@]}"; do
    run "default-ctx$c" env -- -c "$c"
    run "stream-ctx$c" env -- -c "$c" --stream-weights
    run "stream-q8kv-ctx$c" env -- -c "$c" --stream-weights --kv q8_0
    run "max-rss$max_rss-ctx$c" env -- -c "$c" --max-rss "$max_rss"
    echo "|   ctx $c: streaming output $(same "default-ctx$c" "stream-ctx$c") to default, --max-rss output $(same "default-ctx$c" "max-rss$max_rss-ctx$c") |||||"
  done
fi

[ "$cgroup_mode" = off ] && exit 0
base=/sys/fs/cgroup/memory
if ! { [ -w "$base" ] && [ -f "$base/memory.limit_in_bytes" ] && [ -w /proc/sys/vm/drop_caches ]; }; then
  echo
  echo "cgroup runs skipped: needs root and the cgroup v1 memory controller at $base"
  exit 0
fi
cg="$base/picolm-bench-$$"
mkdir "$cg"
echo $((limit_mb * 1024 * 1024)) > "$cg/memory.limit_in_bytes"
echo $((limit_mb * 1024 * 1024)) > "$cg/memory.memsw.limit_in_bytes" 2>/dev/null || true
# Every run starts with the model out of the page cache, as after a reboot of the board.
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
incg() { sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@"; }
c="${ctxs[0]}"
echo
echo "inside a memory cgroup limited to $limit_mb MiB (page cache dropped before every run), ctx $c:"
echo
header
drop; run "cgroup-default-ctx$c" incg -- -c "$c"
drop; run "cgroup-stream-ctx$c" incg -- -c "$c" --stream-weights
drop; run "cgroup-max-rss$max_rss-ctx$c" incg -- -c "$c" --max-rss "$max_rss"
echo "peak memory of the cgroup (page cache included): $(( $(cat "$cg/memory.max_usage_in_bytes") / 1048576 )) MiB"
if [ -n "${LLAMA_BIN_DIR:-}" ]; then
  echo
  echo "llama.cpp ($LLAMA_BIN_DIR) in the same cgroup, $threads threads, page cache dropped before each run:"
  echo
  echo "| run | VmHWM MiB | decode tok/s |"
  echo "|---|---|---|"
  if [ -x "$LLAMA_BIN_DIR/llama-bench" ]; then
    drop
    if incg /usr/bin/time -v "$LLAMA_BIN_DIR/llama-bench" -m "$model" -p 0 -n "$n_gen" -t "$threads" -r 1 -o md \
        > "$tmp/llama-bench.out" 2> "$tmp/llama-bench.err"; then
      ts=$(grep -E "\| *tg$n_gen *\|" "$tmp/llama-bench.out" | sed -n 's/.*| *\([0-9.]*\) ± [0-9.]* *|$/\1/p')
      echo "| llama-bench tg$n_gen | $(hwm_of "$tmp/llama-bench.err") | ${ts:-?} |"
    else
      echo "| llama-bench | failed: $(tail -n1 "$tmp/llama-bench.err") | |"
    fi
  fi
  cli="$LLAMA_BIN_DIR/llama-cli"
  [ -x "$LLAMA_BIN_DIR/llama-completion" ] && cli="$LLAMA_BIN_DIR/llama-completion"
  if [ -x "$cli" ]; then
    drop
    if incg /usr/bin/time -v "$cli" -m "$model" -p "$prompt" -n "$n_gen" -t "$threads" -c "$c" --temp 0 \
        -no-cnv < /dev/null > "$tmp/llama-cli.out" 2> "$tmp/llama-cli.err"; then
      ts=$(grep -v "prompt eval" "$tmp/llama-cli.err" | sed -n 's/.* eval time = .*, *\([0-9.]*\) tokens per second.*/\1/p' | tail -n1)
      echo "| $(basename "$cli") -c $c | $(hwm_of "$tmp/llama-cli.err") | ${ts:-?} |"
    else
      echo "| $(basename "$cli") | failed: $(tail -n1 "$tmp/llama-cli.err") | |"
    fi
  fi
fi
