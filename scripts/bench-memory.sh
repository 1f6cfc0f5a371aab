#!/usr/bin/env bash
# Memory benchmark (issue: compact KV cache and streaming mode): for one model, runs a greedy generation at each
# context size in default and --stream-weights mode and reports peak RSS (VmHWM, from /usr/bin/time -v), the
# engine's own split (anonymous vs mapped-file pages, KV bytes), decode tok/s, and whether the generated text is
# identical across modes. Then, when cgroup v1 memory limits are writable, repeats the runs inside a cgroup
# limited to LIMIT_MB (default 256, a 256 MB board) and, when LLAMA_BENCH is set to a llama-bench binary,
# runs llama.cpp in the same cgroup for comparison. The cgroup is created and removed by this script.
#
# Usage: scripts/bench-memory.sh MODEL.gguf [CTX...]        (env: THREADS=2 N_GEN=32 LIMIT_MB=256 LLAMA_BENCH=)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:?usage: scripts/bench-memory.sh MODEL.gguf [CTX...]}"
shift
ctxs=("${@:-512 2048}")
[ $# -gt 0 ] && ctxs=("$@") || ctxs=(512 2048)
threads="${THREADS:-2}"
n_gen="${N_GEN:-32}"
limit_mb="${LIMIT_MB:-256}"
bin="$root/build/picolm"
[ -x "$bin" ] || make -s -C "$root" cli >&2
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

# run LABEL [prefix command...] -- picolm args...: prints one table row.
run() {
  local label="$1"
  shift
  local pre=()
  while [ "$1" != "--" ]; do pre+=("$1"); shift; done
  shift
  "${pre[@]}" /usr/bin/time -v "$bin" "$model" -p "$prompt" -n "$n_gen" -t 0 -j "$threads" "$@" \
    > "$tmp/$label.out" 2> "$tmp/$label.err" || { echo "| $label | failed: $(tail -n1 "$tmp/$label.err") |"; return; }
  local hwm decode anon file kv
  hwm=$(awk -F': ' '/Maximum resident set size/ {printf "%.1f", $2 / 1024}' "$tmp/$label.err")
  decode=$(sed -n 's/.*generated: [0-9]* tokens, \([0-9.]*\) tok\/s.*/\1/p' "$tmp/$label.err")
  anon=$(sed -n 's/.*anonymous \([0-9.]*\) MiB.*/\1/p' "$tmp/$label.err")
  file=$(sed -n 's/.*mapped model \([0-9.]*\) MiB.*/\1/p' "$tmp/$label.err")
  kv=$(sed -n 's/.*KV cache \([0-9.]*\) MiB.*/\1/p' "$tmp/$label.err")
  echo "| $label | $hwm | $anon | $file | $kv | $decode |"
}

echo "model: $model, threads $threads, $n_gen generated tokens, greedy"
echo
echo "| run | VmHWM MiB | anon MiB (end) | mapped MiB (end) | KV MiB | decode tok/s |"
echo "|---|---|---|---|---|---|"
for c in "${ctxs[@]}"; do
  run "default-ctx$c" env -- -c "$c"
  run "stream-ctx$c" env -- -c "$c" --stream-weights
  run "stream-q8kv-ctx$c" env -- -c "$c" --stream-weights --kv q8_0
  if cmp -s "$tmp/default-ctx$c.out" "$tmp/stream-ctx$c.out"; then s="identical"; else s="DIFFERENT"; fi
  if cmp -s "$tmp/default-ctx$c.out" "$tmp/stream-q8kv-ctx$c.out"; then q="identical"; else q="different"; fi
  echo "|   ctx $c: streaming output $s to default; Q8_0-KV output $q |||||"
done

base=/sys/fs/cgroup/memory
if [ -w "$base" ] && [ -f "$base/memory.limit_in_bytes" ]; then
  cg="$base/picolm-bench-$$"
  mkdir "$cg"
  echo $((limit_mb * 1024 * 1024)) > "$cg/memory.limit_in_bytes"
  echo $((limit_mb * 1024 * 1024)) > "$cg/memory.memsw.limit_in_bytes" 2>/dev/null || true
  # Start every run with the model out of the page cache, as after a reboot of the board.
  drop() { sync; echo 1 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
  incg() { sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@"; }
  echo
  echo "inside a memory cgroup limited to $limit_mb MiB:"
  echo
  echo "| run | VmHWM MiB | anon MiB (end) | mapped MiB (end) | KV MiB | decode tok/s |"
  echo "|---|---|---|---|---|---|"
  drop
  run "cgroup-default-ctx512" incg -- -c 512
  drop
  run "cgroup-stream-ctx512" incg -- -c 512 --stream-weights
  if [ -n "${LLAMA_BENCH:-}" ] && [ -x "$LLAMA_BENCH" ]; then
    drop
    echo
    echo "llama.cpp (llama-bench -p 0 -n $n_gen -t $threads) in the same cgroup:"
    incg "$LLAMA_BENCH" -m "$model" -p 0 -n "$n_gen" -t "$threads" -r 1 2>&1 | grep -E "^\|" || true
  fi
  echo "peak memory of the cgroup: $(( $(cat "$cg/memory.max_usage_in_bytes") / 1048576 )) MiB"
else
  echo
  echo "cgroup runs skipped: $base is not writable (cgroup v1 memory controller needed)"
fi
