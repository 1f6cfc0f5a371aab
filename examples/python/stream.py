"""Streams a completion to the terminal.

Usage: python examples/python/stream.py [MODEL.gguf] [PROMPT]
(build the package first: `pip install .` in the repository root).
"""

import sys

import picolm

model_path = sys.argv[1] if len(sys.argv) > 1 else "models/SmolLM2-135M-Instruct.Q4_1.gguf"
prompt = sys.argv[2] if len(sys.argv) > 2 else "Once upon a time"

with picolm.Model(model_path, n_ctx=512) as model:
    stream = model.generate(prompt, max_tokens=128, temperature=0.7, top_p=0.9, seed=42, stream=True)
    print(prompt, end="", flush=True)
    try:
        for piece in stream:
            print(piece, end="", flush=True)
    except KeyboardInterrupt:
        stream.close()
    r = stream.result
    print(f"\n\n[{r.n_generated} tokens, {r.decode_tokens_per_second:.1f} tok/s, stop: {r.stop_reason}]")
