#!/usr/bin/env bash
# ARM speed without a board: guest instructions per token under qemu-user, counted by a TCG plugin
# (scripts/qemu-insn-count.c, built here), one thread, for PicoLM and llama.cpp on the Raspberry Pi CPUs:
#   cortex-a53 (Pi Zero 2W / Pi 3: NEON, no dotprod), cortex-a72 (Pi 4), cortex-a76 (Pi 5: NEON + dotprod) under
#   qemu-aarch64, and cortex-a7 (32-bit Raspberry Pi OS, ARMv7 + NEON) under qemu-arm; on request (BENCH_ARM_CPUS)
#   also `max`, qemu-aarch64's every-feature core (dotprod and the i8mm `smmla` of Armv8.6: Cortex-A510/A710,
#   Neoverse N2/V1, Apple M2, Graviton 3), compared with the dotprod llama.cpp build.
# Models (both engines read the same files): SmolLM2-135M Q4_1 (the fetched file) and Q8_0 (quantized from the F32
# copy by PicoLM's quantizer), and a TinyLlama-1.1B-shaped random model with BENCH_ARM_LAYERS layers (default 4
# instead of 22, for run time; scripts/make-bench-models.sh) in Q4_K_M and Q4_0.
#
# Method: each engine's own benchmark command (picolm bench / llama-bench, synthetic tokens, one thread) runs three
# times, with `tg 20`, `tg 4` (decode steps from an empty cache) and `pp 64` (one batched 64-token prompt), and the
# counts are differenced so that loading and start-up cancel:
#   decode  = (count(tg 20) - count(tg 4)) / 16            (decode steps at positions 4..19)
#   prefill = (count(pp 64) - count(tg 4) + 4 * decode) / 64   (all of a 64-token prompt, per token)
# picolm bench always runs one untimed warm-up per test (-r 1 = two runs), so its counts are halved;
# llama-bench runs with --no-warmup -r 1. Instruction counts are a proxy, not time: they ignore memory bandwidth,
# caches, issue width and the cost of each instruction (an `sdot` counts as one, as does a scalar add). The weight
# bytes read per token are printed beside them so that memory-bound cases are visible (weight bytes per token times
# tokens per second must fit the board's memory bandwidth).
#
# llama.cpp: static cross builds (from the llama-cpp-python source package, built outside this repository), given
# as directories that hold llama-bench (DIR/llama-bench or DIR/bin/llama-bench):
#   LLAMA_ARM_V8=DIR       -march=armv8-a            (used on cortex-a53 and cortex-a72)
#   LLAMA_ARM_DOTPROD=DIR  -march=armv8.2-a+dotprod  (used on cortex-a76)
#   LLAMA_ARM_V7=DIR       -march=armv7-a+neon-vfpv4 -mfpu=neon-vfpv4 -mfloat-abi=hard  (used on cortex-a7)
# e.g. for aarch64 (for armv7: arm-linux-gnueabihf-*, CMAKE_SYSTEM_PROCESSOR=armv7l and the flags above):
#   cmake -S llama.cpp -B build-v8 -DCMAKE_BUILD_TYPE=Release -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64
#     -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ -DGGML_NATIVE=OFF
#     -DGGML_CPU_ARM_ARCH=armv8-a -DGGML_OPENMP=OFF -DBUILD_SHARED_LIBS=OFF -DCMAKE_EXE_LINKER_FLAGS=-static
#     -DLLAMA_OPENSSL=OFF && cmake --build build-v8 --target llama-bench
# A CPU whose llama.cpp build is not given gets PicoLM's counts only.
#
# Options (environment): BENCH_ARM_CPUS (default "cortex-a53 cortex-a72 cortex-a76 cortex-a7"), BENCH_ARM_MODELS
# (default "smollm2-Q4_1 smollm2-Q8_0 tinyllama-Q4_K_M tinyllama-Q4_0"), BENCH_ARM_LAYERS (4), BENCH_ARM_JOBS
# (qemu processes at once, default 2), BENCH_ARM_SPLIT (per-function split of decode and prefill instructions for these
# CPU:MODEL pairs, default "cortex-a53:tinyllama-Q4_K_M cortex-a76:tinyllama-Q4_K_M"), BENCH_ARM_OUT (default
# build/bench-arm; counts are cached there by binary, model (name and file size), CPU and command, so a rerun only
# counts what changed),
# BENCH_ARM_PICOLM_AARCH64 / BENCH_ARM_PICOLM_ARMV7 (a statically linked picolm CLI to measure instead of building
# this tree's: before/after comparisons).
# Output: a Markdown table on stdout and in BENCH_ARM_OUT/table.md, raw counts in BENCH_ARM_OUT/results.tsv.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/arm-env.sh
. "$root/scripts/arm-env.sh"

out="${BENCH_ARM_OUT:-$root/build/bench-arm}"
models="${PICOLM_MODELS:-$root/models}"
cpus="${BENCH_ARM_CPUS:-cortex-a53 cortex-a72 cortex-a76 cortex-a7}"
cases="${BENCH_ARM_MODELS:-smollm2-Q4_1 smollm2-Q8_0 tinyllama-Q4_K_M tinyllama-Q4_0}"
layers="${BENCH_ARM_LAYERS:-4}"
jobs="${BENCH_ARM_JOBS:-2}"
split="${BENCH_ARM_SPLIT:-cortex-a53:tinyllama-Q4_K_M cortex-a76:tinyllama-Q4_K_M}"
PP=64 TG_LONG=20 TG_SHORT=4
mkdir -p "$out/counts" "$out/bin"

die() { echo "bench-arm: $*" >&2; exit 1; }
target_of_cpu() { case "$1" in cortex-a7|cortex-a8|cortex-a9|cortex-a15) echo armv7 ;; *) echo aarch64 ;; esac; }
llama_dir_of_cpu() {
  case "$1" in
    cortex-a7|cortex-a8|cortex-a9|cortex-a15) echo "${LLAMA_ARM_V7:-}" ;;
    cortex-a76|neoverse-n1|max) echo "${LLAMA_ARM_DOTPROD:-}" ;;
    *) echo "${LLAMA_ARM_V8:-}" ;;
  esac
}
llama_bench_in() { # DIR -> path of llama-bench or nothing
  local d="$1"
  [ -n "$d" ] || return 0
  if [ -x "$d/llama-bench" ]; then echo "$d/llama-bench"; elif [ -x "$d/bin/llama-bench" ]; then echo "$d/bin/llama-bench"; fi
}

# ---- tools and PicoLM for each target ----
needed_targets=$(for c in $cpus; do target_of_cpu "$c"; done | sort -u | tr '\n' ' ')
# shellcheck disable=SC2086
arm_install_tools $needed_targets
for t in $needed_targets; do
  why=$(arm_target_unusable "$t")
  [ -z "$why" ] || die "cannot build or run $t: $why"
done

# PicoLM's CLI linked fully statically (libpicolm.a + static glibc), so that QEMU finds every symbol in the main
# binary for the per-function split and no sysroot is needed.
declare -A picolm_bin
for t in $needed_targets; do
  override="BENCH_ARM_PICOLM_${t^^}"
  if [ -n "${!override:-}" ]; then
    [ -x "${!override}" ] || die "$override=${!override} is not an executable"
    picolm_bin[$t]="${!override}"
    continue
  fi
  triple=$(arm_triple "$t")
  prefix="$out/cross-$triple"
  echo "bench-arm: building PicoLM for $t" >&2
  make -s cross TARGET="$triple" PREFIX="$prefix" >/dev/null 2>"$out/cross-$t.log" || { cat "$out/cross-$t.log" >&2; die "make cross failed for $t"; }
  # (glibc warns that getaddrinfo / getpwuid_r of Rust's std would need its shared libraries: PicoLM calls neither.)
  # armv7: libpicolm.a carries compiler-rt's integer division helpers (__divsi3, __aeabi_idiv), which static glibc
  # pulls from libgcc.a a second time; both are the same functions, the first one linked is kept.
  extra=()
  [ "$t" = armv7 ] && extra=(-Wl,--allow-multiple-definition)
  "$triple-gcc" -std=c11 -O2 -Iinclude bindings/c/picolm.c "$prefix/lib/libpicolm.a" -static -lpthread -lm -ldl -lrt \
    -lutil "${extra[@]}" -o "$out/bin/picolm-$t" 2>"$out/link-$t.log" || { cat "$out/link-$t.log" >&2; die "cannot link picolm for $t"; }
  picolm_bin[$t]="$out/bin/picolm-$t"
done

# ---- the counting plugin ----
plugin="$out/libinsncount.so"
build_plugin() { # extra cc flags...
  cc -O2 -shared -fPIC -fvisibility=hidden -Wall "$@" -o "$plugin" scripts/qemu-insn-count.c -lpthread
}
probe_t=$(echo "$needed_targets" | awk '{print $1}')
probe() { "$(arm_qemu "$probe_t")" -plugin "$plugin,out=$out/probe.count" "${picolm_bin[$probe_t]}" --version >/dev/null 2>"$out/probe.err"; }
header=""
for d in ${QEMU_PLUGIN_INCLUDE:-} /usr/include /usr/include/qemu /usr/local/include; do
  if [ -f "$d/qemu-plugin.h" ]; then header="$d"; break; fi
done
if [ -n "$header" ]; then
  # shellcheck disable=SC2046
  build_plugin -I"$header" $(pkg-config --cflags glib-2.0 2>/dev/null) || die "cannot build the plugin against $header"
  probe || die "qemu refuses the plugin: $(cat "$out/probe.err")"
else
  # No qemu-plugin.h (Debian ships none): the plugin declares the functions it uses itself and states the plugin
  # API version that this QEMU asks for (its refusal names it).
  build_plugin -DINSNCOUNT_OWN_API -DINSNCOUNT_API_VERSION=1 || die "cannot build the plugin"
  if ! probe; then
    v=$(grep -o 'version [0-9]*' "$out/probe.err" | tail -n1 | awk '{print $2}')
    [ -n "$v" ] || die "qemu refuses the plugin: $(cat "$out/probe.err")"
    build_plugin -DINSNCOUNT_OWN_API -DINSNCOUNT_API_VERSION="$v" || die "cannot build the plugin"
    probe || die "qemu refuses the plugin (API version $v): $(cat "$out/probe.err")"
  fi
fi
grep -q '^total [1-9]' "$out/probe.count" || die "the plugin counted nothing"

# ---- models ----
src_q41="$models/SmolLM2-135M-Instruct.Q4_1.gguf"
src_f32="$models/smollm2-135m-F32.gguf"
# (--tests: the F32 copy is one of the test files)
[ -s "$src_q41" ] && [ -s "$src_f32" ] || scripts/fetch-models.sh --tests >/dev/null
make -s cli >/dev/null
mdir="$out/models"
mkdir -p "$mdir"
model_path() {
  case "$1" in
    smollm2-Q4_1) echo "$src_q41" ;;
    smollm2-*) echo "$mdir/smollm2-135m-${1#smollm2-}.gguf" ;;
    tinyllama-*) echo "$mdir/tinyllama-L$layers/tinyllama-shape-${1#tinyllama-}.gguf" ;;
    *) die "unknown model '$1' (smollm2-TYPE or tinyllama-Q4_0/Q8_0/Q4_K_M)" ;;
  esac
}
for c in $cases; do
  p=$(model_path "$c")
  [ -s "$p" ] && continue
  case "$c" in
    smollm2-*) build/picolm quantize "$src_f32" "$p" "${c#smollm2-}" >/dev/null ;;
    tinyllama-*) PICOLM_BENCH_LAYERS="$layers" scripts/make-bench-models.sh "$mdir/tinyllama-L$layers" >/dev/null ;;
  esac
  [ -s "$p" ] || die "could not make $p"
done

# ---- counting runs ----
# One run: cache file name from the binary's hash, the model (its name and its file's size, so that models of
# another layer count or quantizer never share a count), the CPU and the command.
declare -a queue=()
run_key() { # engine-binary cpu model-name model-path args... -> file name
  local bin="$1" cpu="$2" mname="$3" mpath="$4"; shift 4
  echo "$(sha256sum "$bin" | cut -c1-12)-$cpu-$mname-$(stat -L -c %s "$mpath")-$(echo "$*" | tr ' /' '_~')"
}
queue_run() { # key target cpu binary args...
  local key="$1" t="$2" cpu="$3"
  shift 3
  [ -s "$out/counts/$key" ] || queue+=("$key|$t|$cpu|$*")
}
do_run() { # "key|target|cpu|binary args..."
  local key t cpu cmd
  IFS='|' read -r key t cpu cmd <<<"$1"
  [ -s "$out/counts/$key" ] && return 0 # counted meanwhile by another invocation sharing the cache
  # shellcheck disable=SC2086
  if QEMU_CPU="$cpu" timeout 14400 "$(arm_qemu "$t")" -plugin "$plugin,out=$out/counts/$key.part,symbols=on" $cmd \
      >"$out/counts/$key.log" 2>&1; then
    mv -f "$out/counts/$key.part" "$out/counts/$key" 2>/dev/null || [ -s "$out/counts/$key" ]
  else
    echo "bench-arm: run failed ($cpu: $cmd), see $out/counts/$key.log" >&2
    return 1
  fi
}

declare -A keys
for cpu in $cpus; do
  t=$(target_of_cpu "$cpu")
  lb=$(llama_bench_in "$(llama_dir_of_cpu "$cpu")")
  for c in $cases; do
    m=$(model_path "$c")
    for eng in picolm llama; do
      if [ "$eng" = picolm ]; then
        bin="${picolm_bin[$t]}"
        pre=("$bin" bench "$m" -j 1 -r 1)
      else
        [ -n "$lb" ] || continue
        bin="$lb"
        pre=("$bin" -m "$m" -t 1 -r 1 --no-warmup -o csv)
      fi
      for q in "pp $PP" "tg $TG_LONG" "tg $TG_SHORT"; do
        set -- $q
        if [ "$1" = pp ]; then args=(-p "$2" -n 0); else args=(-p 0 -n "$2"); fi
        key=$(run_key "$bin" "$cpu" "$c" "$m" "${args[@]}")
        keys["$eng|$cpu|$c|$1$2"]="$key"
        queue_run "$key" "$t" "$cpu" "${pre[@]}" "${args[@]}"
      done
    done
  done
done

echo "bench-arm: ${#queue[@]} runs to count (cached: the rest), $jobs at a time" >&2
failed=0
running=0
for item in "${queue[@]}"; do
  if [ "$running" -ge "$jobs" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
  do_run "$item" &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
[ "$failed" = 0 ] || die "some runs failed"

# ---- table ----
tsv="$out/results.tsv"
printf 'engine\tcpu\tmodel\tweight_bytes_per_token\tpp%s\ttg%s\ttg%s\tdecode_per_token\tprefill_per_token\n' \
  "$PP" "$TG_LONG" "$TG_SHORT" >"$tsv"
total_of() { sed -n 's/^total //p' "$out/counts/$1"; }
for cpu in $cpus; do
  for c in $cases; do
    wb=$(python3 scripts/gguf_weight_bytes.py "$(model_path "$c")")
    for eng in picolm llama; do
      [ -n "${keys["$eng|$cpu|$c|pp$PP"]:-}" ] || continue
      reps=1
      [ "$eng" = picolm ] && reps=2
      pp=$(total_of "${keys["$eng|$cpu|$c|pp$PP"]}")
      tgl=$(total_of "${keys["$eng|$cpu|$c|tg$TG_LONG"]}"); tgs=$(total_of "${keys["$eng|$cpu|$c|tg$TG_SHORT"]}")
      dec=$(( (tgl - tgs) / (reps * (TG_LONG - TG_SHORT)) ))
      pre=$(( (pp - tgs + reps * TG_SHORT * dec) / (reps * PP) ))
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$eng" "$cpu" "$c" "$wb" "$pp" "$tgl" "$tgs" "$dec" "$pre" >>"$tsv"
    done
  done
done

python3 - "$tsv" "$layers" >"$out/table.md" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
layers = sys.argv[2]
by = {(r["engine"], r["cpu"], r["model"]): r for r in rows}
cpus = list(dict.fromkeys(r["cpu"] for r in rows))
models = list(dict.fromkeys(r["model"] for r in rows))
m = lambda v: f"{int(v) / 1e6:.1f}"
print("Guest instructions per token (millions), one thread, decode / prefill; llama.cpp's ratio = PicoLM / llama.cpp.")
print(f"tinyllama = TinyLlama-1.1B shapes with {layers} of its 22 layers (random weights). A proxy, not time.\n")
print("| model | weights MB/token | CPU | PicoLM decode | PicoLM prefill | llama.cpp decode | llama.cpp prefill | ratio decode | ratio prefill |")
print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
for model in models:
    for cpu in cpus:
        p = by.get(("picolm", cpu, model))
        l = by.get(("llama", cpu, model))
        if not p:
            continue
        wb = f"{int(p['weight_bytes_per_token']) / 1e6:.1f}"
        if l:
            rd = f"{int(p['decode_per_token']) / int(l['decode_per_token']):.2f}x"
            rp = f"{int(p['prefill_per_token']) / int(l['prefill_per_token']):.2f}x"
            ld, lp = m(l["decode_per_token"]), m(l["prefill_per_token"])
        else:
            rd = rp = ld = lp = "-"
        print(f"| {model} | {wb} | {cpu} | {m(p['decode_per_token'])} | {m(p['prefill_per_token'])} | {ld} | {lp} | {rd} | {rp} |")
PY
cat "$out/table.md"

# ---- where the decode and prefill instructions go ----
# Per function, with the same differencing as the totals: decode from the tg runs, prefill from pp, tg 4 and the
# per-function decode counts.
for pair in $split; do
  cpu="${pair%%:*}"; c="${pair#*:}"
  for eng in picolm llama; do
    [ -n "${keys["$eng|$cpu|$c|tg$TG_LONG"]:-}" ] || continue
    reps=1
    [ "$eng" = picolm ] && reps=2
    for phase in decode prefill; do
      echo
      echo "${phase^} instructions per token by function, $eng on $cpu, $c (top 12; millions):"
      python3 - "$phase" "$out/counts/${keys["$eng|$cpu|$c|pp$PP"]}" "$out/counts/${keys["$eng|$cpu|$c|tg$TG_LONG"]}" \
        "$out/counts/${keys["$eng|$cpu|$c|tg$TG_SHORT"]}" "$reps" "$PP" "$TG_LONG" "$TG_SHORT" <<'PY' |
import sys
def load(p):
    d = {}
    for line in open(p):
        k, v = line.rstrip("\n").split(" ", 1)
        if k != "total":
            d[v] = d.get(v, 0) + int(k)
    return d
phase, pp, tgl, tgs = sys.argv[1], load(sys.argv[2]), load(sys.argv[3]), load(sys.argv[4])
reps, n_pp, n_long, n_short = (int(a) for a in sys.argv[5:9])
rows = []
for s in set(pp) | set(tgl) | set(tgs):
    dec = (tgl.get(s, 0) - tgs.get(s, 0)) / (reps * (n_long - n_short))
    pre = (pp.get(s, 0) - tgs.get(s, 0) + reps * n_short * dec) / (reps * n_pp)
    rows.append((dec if phase == "decode" else pre, s))
rows.sort(reverse=True)
total = sum(v for v, _ in rows)
for v, s in rows[:12]:
    print(f"  {v / 1e6:8.2f}  {100 * v / total:5.1f}%  {s}")
print(f"  {total / 1e6:8.2f}  total")
PY
        { if command -v c++filt >/dev/null; then c++filt; else cat; fi; }
    done
  done
done
