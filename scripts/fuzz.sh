#!/usr/bin/env bash
# Coverage-guided fuzzing of PicoLM's input surfaces (cargo-fuzz / libFuzzer, in fuzz/): the GGUF reader and model
# loader, the tokenizer round trip, the JSON Schema compiler + automaton, and the KV state loader. Separate from
# scripts/test.sh (which runs the crafted-file corpus and a small GGUF mutation campaign).
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default: 60 seconds, every target
#
# Installs the nightly toolchain and cargo-fuzz when missing, writes the seed corpora into fuzz/corpus/<target>
# (from the real models in $PICOLM_MODELS or models/, see scripts/fetch-models.sh; never committed), runs each
# target for the given time, and prints a table: executions, corpus size, crashes (saved in fuzz/artifacts/). The
# exit status is 1 when any target found a crash, a timeout or a memory blow-up.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
secs="${1:-60}"
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(gguf_load tokenizer_roundtrip schema_automaton state_load)
case "$secs" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS_PER_TARGET must be a number, got '$secs'" >&2; exit 2 ;; esac

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "== installing the nightly toolchain"
  rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  cargo +nightly install cargo-fuzz --locked
fi

export PICOLM_MODELS="${PICOLM_MODELS:-$root/models}"
cd "$root/fuzz"
echo "== building the fuzz targets"
cargo +nightly fuzz build
echo "== seed corpora"
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
"target/$host/release/seed_corpus" corpus
mkdir -p logs

rows=()
status=0
for t in "${targets[@]}"; do
  echo "== fuzzing $t for ${secs}s"
  mkdir -p "corpus/$t" "artifacts/$t"
  before=$(find "artifacts/$t" -type f | wc -l)
  log="logs/$t.log"
  # -timeout: one input running longer is a hang; -rss_limit_mb: more memory is a blow-up; both are findings.
  set +e
  cargo +nightly fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -max_len=262144 -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  corpus=$(find "corpus/$t" -type f | wc -l)
  found=$(( $(find "artifacts/$t" -type f | wc -l) - before ))
  if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
    status=1
    echo "!! $t: exit $rc, $found new artifact(s); log: fuzz/$log"
    grep -E '^==[0-9]+==|panicked|ERROR|SUMMARY' "$log" | head -5 || true
  fi
  rows+=("$(printf '%-22s %8s %12s %10s %8s %6s' "$t" "$secs" "${execs:-?}" "$(( ${execs:-0} / (secs > 0 ? secs : 1) ))" "$corpus" "$found")")
done

echo
printf '%-22s %8s %12s %10s %8s %6s\n' target seconds execs "execs/s" corpus crashes
for r in "${rows[@]}"; do echo "$r"; done
exit $status
