#!/usr/bin/env python3
"""Bytes of weights one token reads from a GGUF model (standard library only).

Every tensor is read once per token (the matrices of every layer, the norms, the output head), except the token
embedding table, of which one row is read; when the model has no output.weight the head is the (tied) embedding
table, read whole. Prints the byte count.

usage: gguf_weight_bytes.py MODEL.gguf
"""
import struct
import sys

# ggml type id -> (values per block, bytes per block)
TYPES = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292), 30: (1, 2),
}
# GGUF metadata value type -> size in bytes (fixed-size types)
FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def read(f, fmt):
    size = struct.calcsize("<" + fmt)
    data = f.read(size)
    if len(data) != size:
        raise ValueError("truncated GGUF file")
    return struct.unpack("<" + fmt, data)


def skip_value(f, t):
    if t in FIXED:
        f.seek(FIXED[t], 1)
    elif t == 8:  # string
        (n,) = read(f, "Q")
        f.seek(n, 1)
    elif t == 9:  # array
        et, n = read(f, "IQ")
        if et in FIXED:
            f.seek(FIXED[et] * n, 1)
        else:
            for _ in range(n):
                skip_value(f, et)
    else:
        raise ValueError(f"unknown GGUF value type {t}")


def weight_bytes_per_token(path):
    with open(path, "rb") as f:
        magic, version = read(f, "4sI")
        if magic != b"GGUF" or version < 2:
            raise ValueError(f"{path}: not a GGUF v2/v3 file")
        n_tensors, n_kv = read(f, "QQ")
        for _ in range(n_kv):
            (n,) = read(f, "Q")
            f.seek(n, 1)
            (t,) = read(f, "I")
            skip_value(f, t)
        tensors = {}
        for _ in range(n_tensors):
            (n,) = read(f, "Q")
            name = f.read(n).decode()
            (n_dims,) = read(f, "I")
            dims = read(f, "Q" * n_dims)
            ty, _offset = read(f, "IQ")
            if ty not in TYPES:
                raise ValueError(f"{path}: tensor {name} has unknown type {ty}")
            block, block_bytes = TYPES[ty]
            count = 1
            for d in dims:
                count *= d
            tensors[name] = (count // block * block_bytes, dims[0] // block * block_bytes)
    total = sum(size for size, _ in tensors.values())
    emb_size, emb_row = tensors["token_embd.weight"]
    total += emb_row - emb_size
    if "output.weight" not in tensors:
        total += emb_size
    return total


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(weight_bytes_per_token(sys.argv[1]))
