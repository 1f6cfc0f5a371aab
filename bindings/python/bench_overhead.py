"""Per-token overhead of the Python stream iterator compared with the Rust loop behind generate(stream=False).

Both runs generate the same greedy tokens from the same cached prompt (max_tokens fixed, EOG disabled by a
long-essay prompt; text equality is asserted), so the difference in decode time per token is what the iterator costs: one GIL
release/re-acquire, one Python str and one signal check per piece.

Usage: python bindings/python/bench_overhead.py [MODEL.gguf] [N_TOKENS] [REPEATS]
"""

from __future__ import annotations

import sys
import time

import picolm

path = sys.argv[1] if len(sys.argv) > 1 else "models/SmolLM2-135M-Instruct.Q4_1.gguf"
n_tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 128
repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 5
prompt = "Once upon a time, in a small village by the sea,"

with picolm.Model(path, n_ctx=512, n_threads=int(sys.argv[4]) if len(sys.argv) > 4 else 1) as m:
    m.generate(prompt, max_tokens=4)  # warm up, cache the prompt
    rust, py = [], []
    n = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = m.generate_full(prompt, max_tokens=n_tokens)
        rust.append((time.perf_counter() - t0) / r.n_generated)
        n = r.n_generated
        t0 = time.perf_counter()
        text = "".join(m.generate(prompt, max_tokens=n_tokens, stream=True))
        py.append((time.perf_counter() - t0) / m.last_result.n_generated)
        assert text == r.text
    if n < n_tokens // 2:
        sys.exit(f"the model stopped after {n} tokens; use another prompt")
    r_med, p_med = min(rust), min(py)  # minimum: least disturbed by other processes
    print(f"model {path}, {n} tokens x {repeats} runs (best of each)")
    print(f"  Rust loop  (stream=False): {r_med * 1e6:9.1f} us/token")
    print(f"  Python iterator (stream):  {p_med * 1e6:9.1f} us/token")
    print(f"  iterator overhead:         {(p_med - r_med) * 1e6:9.1f} us/token ({(p_med / r_med - 1) * 100:+.2f} %)")


    # The fixed cost of one iterator step without model compute: next() on an ended stream still releases and
    # re-acquires the GIL and takes the session lock, like every step of a live stream.
    s = m.generate(prompt, max_tokens=1, stream=True)
    list(s)
    k = 200_000
    t0 = time.perf_counter()
    for _ in range(k):
        next(s, None)
    step = (time.perf_counter() - t0) / k
    print(f"  iterator step without compute (GIL release + lock): {step * 1e9:.0f} ns")
