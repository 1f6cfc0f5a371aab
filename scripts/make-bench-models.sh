#!/usr/bin/env bash
# Makes the benchmark models with TinyLlama-1.1B's shapes (22 layers, 2048 wide, 5632 FFN, 32/4 heads): random
# N(0, 0.02) weights with a fixed seed from scripts/make_synthetic_llama.py (SmolLM2's tokenizer), written as F16,
# then quantized by PicoLM's own quantizer to Q4_0, Q8_0 and Q4_K_M. The Python script runs in a virtualenv
# (build/toolenv, made on first use with numpy and gguf from PyPI), never in the system Python.
# Usage: scripts/make-bench-models.sh [OUT_DIR]   (default: models/bench; about 4.5 GB)
# PICOLM_BENCH_LAYERS=N makes the same shapes with N layers instead of 22 (shorter runs, e.g. under qemu).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${1:-models/bench}"
models="$(scripts/fetch-models.sh)"
mkdir -p "$out"
venv=build/toolenv
if ! "$venv/bin/python" -c "import numpy, gguf" 2>/dev/null; then
  echo "make-bench-models: making the virtualenv $venv (numpy, gguf)" >&2
  python3 -m venv "$venv" || { echo "make-bench-models: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 1; }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check numpy "gguf>=0.10"
fi
f16="$out/tinyllama-shape-F16.gguf"
if [ ! -s "$f16" ]; then
  "$venv/bin/python" scripts/make_synthetic_llama.py "$models/SmolLM2-135M-Instruct.Q4_1.gguf" "$f16.part" 1234 \
    --layers "${PICOLM_BENCH_LAYERS:-22}"
  mv "$f16.part" "$f16"
fi
make -s cli >&2
for t in Q4_0 Q8_0 Q4_K_M; do
  dst="$out/tinyllama-shape-$t.gguf"
  [ -s "$dst" ] || build/picolm quantize "$f16" "$dst" "$t"
done
ls -l "$out"
