#!/usr/bin/env bash
# The main job on a fresh machine: fetch the real SmolLM2-135M model, build PicoLM (library + CLI), and answer a
# prompt. Usage: scripts/run.sh ["your prompt"]   (extra picolm flags may follow the prompt)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
models="$(scripts/fetch-models.sh)"
make -s cli >&2
prompt="${1:-What is the capital of France?}"
shift || true
chat="<|im_start|>user
${prompt}<|im_end|>
<|im_start|>assistant
"
exec build/picolm "$models/SmolLM2-135M-Instruct.Q4_1.gguf" -p "$chat" -n 128 -t 0 "$@"
