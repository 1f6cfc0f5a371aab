#!/usr/bin/env bash
# Memory benchmark: default (mapped) vs streaming mode (--stream-weights: weights read into two reused slabs) vs a
# --max-rss budget, for one model. For each context size, a greedy generation per mode, reporting peak RSS (VmHWM
# from /usr/bin/time -v: everything the process held, program, metadata, KV cache, buffers and weights), the
# engine's own split (anonymous vs mapped-file pages, KV bytes), decode tok/s, and whether the text is identical
# across modes.
#
# Then (as root, with the cgroup v1 memory controller), runs inside a memory cgroup limited to LIMIT_MB (default
# 256; /sys/fs/cgroup/memory/CGROUP_NAME), with `sync; echo 3 > /proc/sys/vm/drop_caches` before every run: a page
# cached by an earlier run is charged to the cgroup that read it, so without the drop an engine could run on pages
# outside its limit. ROUNDS interleaved rounds (A M B A M B ...) of PicoLM streaming (A), PicoLM with
# `--max-rss CG_MAX_RSS_MB` (M: streaming with as many weights kept resident as the budget holds) and, with
# LLAMA_BENCH (the path of a llama.cpp llama-bench), llama.cpp's decode (B, `llama-bench -p 0 -n N_GEN -r 1 -o
# csv`), same threads, same cgroup, same drop (LLAMA_ARGS, default `--repack 0`: llama-bench's default repacks the
# weights into anonymous memory, which cannot fit a 256 MiB limit without swap and thrashes; `--repack 0` runs on
# the mapped file, llama.cpp's low-memory setting); each round is reported with the tok/s ratios to llama.cpp and
# the load average at the time (the figures of a shared machine are only comparable within a round). A round of PicoLM's default (mapped) mode follows. The
# cgroup is removed at the end.
#
# CG_MAX_RSS_MB defaults to LIMIT_MB - 12: `--max-rss` bounds the process's resident set (VmHWM <= the plan <= the
# budget), but the cgroup also charges what is not in it: kernel memory (page tables, thread stacks, the slab objects
# of the open files) and the page cache of the shell, `time` and the metadata pages read at load (dropped after use,
# charged while cached). Measured on TinyLlama-shape Q4_K_M, ctx 512, `--max-rss 232` and `--max-rss 244` in a
# 256 MiB cgroup: the cgroup's peak exceeded VmHWM by 1.5-1.8 MiB, and the limit was never hit (failcnt 0). The
# rest of the 12 MiB keeps the program's text pages (reclaimable page cache) from being evicted and refaulted when
# a long run fills the whole KV cache and the resident set reaches the plan.
#
# Usage: scripts/bench-memory.sh MODEL.gguf [CTX...]                       (default CTX: 512 2048)
# Env: THREADS=2 N_GEN=32 LIMIT_MB=256 MAX_RSS_MB=40 CG_MAX_RSS_MB=LIMIT_MB-12 ROUNDS=3 LLAMA_BENCH=
#      LLAMA_ARGS="--repack 0" CGROUP=auto|only|off
#      CGROUP_NAME=picolm-bench-PID TIMEOUT_S=900 (per cgroup run) PICOLM_BIN=build/picolm
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:?usage: scripts/bench-memory.sh MODEL.gguf [CTX...]}"
shift
[ $# -gt 0 ] && ctxs=("$@") || ctxs=(512 2048)
threads="${THREADS:-2}"
n_gen="${N_GEN:-32}"
limit_mb="${LIMIT_MB:-256}"
max_rss="${MAX_RSS_MB:-40}"
cg_max_rss="${CG_MAX_RSS_MB:-$((limit_mb - 12))}"
cgroup_mode="${CGROUP:-auto}"
rounds="${ROUNDS:-3}"
llama_bench="${LLAMA_BENCH:-}"
read -r -a llama_args <<< "${LLAMA_ARGS---repack 0}"
timeout_s="${TIMEOUT_S:-900}"
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
cg="$base/${CGROUP_NAME:-picolm-bench-$$}"
[ -e "$cg" ] && { echo "bench-memory: $cg exists already (another run?)" >&2; cg=""; exit 1; }
mkdir "$cg"
echo $((limit_mb * 1024 * 1024)) > "$cg/memory.limit_in_bytes"
echo $((limit_mb * 1024 * 1024)) > "$cg/memory.memsw.limit_in_bytes" 2>/dev/null || true
# Every run starts with the model out of the page cache, as after a reboot of the board.
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
incg() { sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$cg" "$@"; }
load() { cut -d' ' -f1 /proc/loadavg; }
c="${ctxs[0]}"

# picolm_cg LABEL ARGS...: one PicoLM run in the cgroup after a drop; sets $tps and $hwm (empty on failure).
picolm_cg() {
  local label="$1"
  shift
  drop
  tps="" hwm=""
  if incg timeout "$timeout_s" /usr/bin/time -v "$bin" "$model" -p "$prompt" -n "$n_gen" -t 0 -j "$threads" -c "$c" "$@" \
      > "$tmp/$label.out" 2> "$tmp/$label.err"; then
    tps=$(sed -n 's/.*generated: [0-9]* tokens, \([0-9.]*\) tok\/s.*/\1/p' "$tmp/$label.err")
    hwm=$(hwm_of "$tmp/$label.err")
  else
    echo "  $label failed: $(grep -m1 'picolm:' "$tmp/$label.err" || tail -n1 "$tmp/$label.err")" >&2
  fi
}

# llama_cg LABEL: one llama-bench decode run in the cgroup after a drop; sets $tps and $hwm. llama-bench's CSV has
# a header row naming the columns; the decode speed is `avg_ts` of the row with n_gen = N_GEN.
llama_cg() {
  local label="$1"
  drop
  tps="" hwm=""
  if incg timeout "$timeout_s" /usr/bin/time -v "$llama_bench" -m "$model" -p 0 -n "$n_gen" -t "$threads" -r 1 -o csv \
      ${llama_args[@]+"${llama_args[@]}"} \
      > "$tmp/$label.out" 2> "$tmp/$label.err"; then
    tps=$(awk -F, -v n="$n_gen" '
      NR == 1 { for (i = 1; i <= NF; i++) { gsub(/"/, "", $i); col[$i] = i }; next }
      { gsub(/"/, "") } $col["n_gen"] == n && $col["n_prompt"] == 0 { printf "%.2f", $col["avg_ts"] }' "$tmp/$label.out")
    hwm=$(hwm_of "$tmp/$label.err")
  fi
  [ -n "$tps" ] || echo "  $label failed: $(grep -m1 -iE 'error|killed|failed' "$tmp/$label.err" || tail -n1 "$tmp/$label.err")" >&2
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", a / b; else print "-" }'; }

echo
echo "inside a memory cgroup limited to $limit_mb MiB ($cg), page cache dropped before every run, ctx $c,"
echo "$threads threads, $n_gen generated tokens, $rounds interleaved rounds${llama_bench:+, llama-bench ${llama_args[*]}}:"
echo
echo "| round | load avg | PicoLM --stream-weights tok/s | VmHWM MiB | PicoLM --max-rss $cg_max_rss tok/s | VmHWM MiB | llama.cpp tok/s | llama.cpp VmHWM MiB | stream / llama.cpp | max-rss / llama.cpp |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for r in $(seq 1 "$rounds"); do
  l=$(load)
  picolm_cg "cg-stream-$r" --stream-weights
  a_tps="$tps" a_hwm="$hwm"
  picolm_cg "cg-budget-$r" --max-rss "$cg_max_rss"
  m_tps="$tps" m_hwm="$hwm"
  b_tps="" b_hwm=""
  if [ -n "$llama_bench" ]; then
    llama_cg "cg-llama-$r"
    b_tps="$tps" b_hwm="$hwm"
  fi
  echo "| $r | $l | ${a_tps:-failed} | ${a_hwm:--} | ${m_tps:-failed} | ${m_hwm:--} | ${b_tps:-${llama_bench:+failed}} | ${b_hwm:--} | $(ratio "${a_tps:-0}" "${b_tps:-0}") | $(ratio "${m_tps:-0}" "${b_tps:-0}") |"
done
l=$(load)
picolm_cg "cg-default" 
echo "| mapped | $l | ${tps:-failed} (PicoLM default mode) | ${hwm:--} | | | | | | |"
l=$(load)
picolm_cg "cg-max-rss" --max-rss "$max_rss"
echo "| --max-rss $max_rss | $l | ${tps:-failed} | ${hwm:--} | | | | | | |"
echo
echo "peak memory of the cgroup (page cache included): $(( $(cat "$cg/memory.max_usage_in_bytes") / 1048576 )) MiB"
