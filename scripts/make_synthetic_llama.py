#!/usr/bin/env python3
# Provenance: copied unchanged (apart from this comment) from the project's reference tools, where it made the
# TinyLlama-shaped benchmark models used so far (sha256 of the original script:
# d39100511bde78bb0a6c52339ed76d189db8678045f9b4392b6be97d08077f2c). Needs numpy and the gguf package;
# scripts/make-bench-models.sh runs it inside a virtualenv (build/toolenv), never the system Python.
"""Synthetic Llama GGUF with TinyLlama-1.1B's layer shapes and the SmolLM2 tokenizer.

  llama arch, 22 layers, n_embd 2048, n_ff 5632, 32 heads, 4 KV heads (head dim 64),
  context 2048, rope freq base 10000, rms eps 1e-5.
  Vocabulary / tokenizer metadata copied verbatim from SmolLM2-135M (vocab 49152),
  so token_embd and output are [2048 x 49152] (ne0 x ne1) instead of TinyLlama's 32000.
  Weights: N(0, 0.02) from numpy default_rng([SEED, tensor_index]), stored F16;
  norm weights = 1.0 (F32). Separate (untied) output.weight, as in TinyLlama.

usage: make_synthetic_llama.py TOKENIZER_SOURCE.gguf OUT.gguf [seed] [--layers N --embd N --ff N --heads N --kv-heads N --ctx N]
Defaults are TinyLlama-1.1B's shapes. Writes F16 matrices; quantize the result with the project's own quantizer
(or the gguf Python package for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0).
"""
import sys
import numpy as np
import gguf

import argparse
ap = argparse.ArgumentParser()
ap.add_argument("src"); ap.add_argument("dst"); ap.add_argument("seed", nargs="?", type=int, default=1234)
ap.add_argument("--layers", type=int, default=22); ap.add_argument("--embd", type=int, default=2048)
ap.add_argument("--ff", type=int, default=5632); ap.add_argument("--heads", type=int, default=32)
ap.add_argument("--kv-heads", type=int, default=4); ap.add_argument("--ctx", type=int, default=2048)
a = ap.parse_args()
src, dst, SEED = a.src, a.dst, a.seed
N_LAYER, N_EMBD, N_FF, N_HEAD, N_HEAD_KV, N_CTX = a.layers, a.embd, a.ff, a.heads, a.kv_heads, a.ctx
HEAD_DIM = N_EMBD // N_HEAD
STD = 0.02

r = gguf.GGUFReader(src)
n_vocab = len(r.fields["tokenizer.ggml.tokens"].data)

w = gguf.GGUFWriter(dst, arch="llama")
w.add_type("model")
w.add_name(f"synthetic llama {N_LAYER}x{N_EMBD} (random N(0,0.02), SmolLM2 tokenizer)")
w.add_context_length(N_CTX)
w.add_embedding_length(N_EMBD)
w.add_block_count(N_LAYER)
w.add_feed_forward_length(N_FF)
w.add_head_count(N_HEAD)
w.add_head_count_kv(N_HEAD_KV)
w.add_rope_freq_base(10000.0)
w.add_layer_norm_rms_eps(1e-5)
w.add_rope_dimension_count(HEAD_DIM)
w.add_vocab_size(n_vocab)
w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

# copy every tokenizer.* key unchanged
for field in r.fields.values():
    if not field.name.startswith("tokenizer."):
        continue
    vt = field.types[0]
    st = field.types[-1] if vt == gguf.GGUFValueType.ARRAY else None
    w.add_key_value(field.name, field.contents(), vt, sub_type=st)
w.add_quantization_version(gguf.GGML_QUANT_VERSION)

# tensor list: (name, numpy shape = (ne1, ne0) for matrices, kind)
tensors = [("token_embd.weight", (n_vocab, N_EMBD), "w")]
for i in range(N_LAYER):
    p = f"blk.{i}."
    tensors += [
        (p + "attn_norm.weight", (N_EMBD,), "norm"),
        (p + "attn_q.weight", (N_EMBD, N_EMBD), "w"),
        (p + "attn_k.weight", (N_HEAD_KV * HEAD_DIM, N_EMBD), "w"),
        (p + "attn_v.weight", (N_HEAD_KV * HEAD_DIM, N_EMBD), "w"),
        (p + "attn_output.weight", (N_EMBD, N_EMBD), "w"),
        (p + "ffn_norm.weight", (N_EMBD,), "norm"),
        (p + "ffn_gate.weight", (N_FF, N_EMBD), "w"),
        (p + "ffn_up.weight", (N_FF, N_EMBD), "w"),
        (p + "ffn_down.weight", (N_EMBD, N_FF), "w"),
    ]
tensors += [("output_norm.weight", (N_EMBD,), "norm"),
            ("output.weight", (n_vocab, N_EMBD), "w")]

for name, shape, kind in tensors:
    dt = np.float32 if kind == "norm" else np.float16
    nbytes = int(np.prod(shape)) * np.dtype(dt).itemsize
    w.add_tensor_info(name, shape, np.dtype(dt), nbytes)

w.write_header_to_file()
w.write_kv_data_to_file()
w.write_ti_data_to_file()

n_params = 0
for idx, (name, shape, kind) in enumerate(tensors):
    if kind == "norm":
        x = np.ones(shape, dtype=np.float32)
    else:
        rng = np.random.default_rng([SEED, idx])
        x = (rng.standard_normal(shape, dtype=np.float32) * STD).astype(np.float16)
    n_params += x.size
    w.write_tensor_data(x)
    del x
w.close()
print(f"wrote {dst}: {len(tensors)} tensors, {n_params} params, vocab {n_vocab}, seed {SEED}")
