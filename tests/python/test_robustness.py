"""Inputs that used to kill the interpreter (issue #17): a model file whose block count the file cannot hold, a
context whose KV cache cannot be allocated under a memory limit, a huge repetition-penalty window. Each runs in a
child interpreter (an abort there fails the test instead of ending the test run) and must raise the package's
typed exception."""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap

import picolm

LIMIT = 2 << 30  # address space of the child: far below the 22 GB KV cache of 2^20 positions


def run_child(code: str, *args: str) -> str:
    prelude = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({LIMIT}, {LIMIT}))
        import picolm
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code), *args], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"child exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_out_of_memory_error_is_a_memory_error():
    assert issubclass(picolm.OutOfMemoryError, picolm.PicoLMError)
    assert issubclass(picolm.OutOfMemoryError, MemoryError)
    assert "OutOfMemoryError" in picolm.__all__


def test_huge_context_raises_out_of_memory_error(q4_path):
    out = run_child(
        """
        try:
            picolm.Model(sys.argv[1], n_ctx=1 << 20, n_threads=1)
        except picolm.OutOfMemoryError as e:
            assert isinstance(e, MemoryError) and isinstance(e, picolm.PicoLMError)
            assert "KV cache" in str(e) and "bytes" in str(e), str(e)
            print("raised:", e)
        else:
            raise SystemExit("no error")
        # The interpreter and the library are intact.
        with picolm.Model(sys.argv[1], n_ctx=64, n_threads=1) as m:
            assert m.generate("Hi", max_tokens=2)
        print("ok")
        """,
        str(q4_path),
    )
    assert "raised:" in out and out.strip().endswith("ok"), out


def test_huge_repeat_last_n_costs_no_memory(q4_path):
    out = run_child(
        """
        with picolm.Model(sys.argv[1], n_ctx=128, n_threads=1) as m:
            for penalty in (1.0, 1.3):
                r = m.generate("The capital of France is", max_tokens=4, repeat_last_n=1 << 33, repeat_penalty=penalty)
                assert isinstance(r, str)
        print("ok")
        """,
        str(q4_path),
    )
    assert out.strip().endswith("ok"), out


def crafted_block_count_file(path) -> None:
    """A small llama file with a valid token embedding but llama.block_count = 2^28."""

    def s(x: str) -> bytes:
        return struct.pack("<Q", len(x)) + x.encode()

    def kv_u32(k: str, v: int) -> bytes:
        return s(k) + struct.pack("<II", 4, v)

    def kv_str(k: str, v: str) -> bytes:
        return s(k) + struct.pack("<I", 8) + s(v)

    b = b"GGUF" + struct.pack("<IQQ", 3, 1, 7)
    b += kv_str("general.architecture", "llama") + kv_u32("llama.embedding_length", 8)
    b += kv_u32("llama.block_count", 1 << 28) + kv_u32("llama.attention.head_count", 2)
    b += kv_u32("llama.feed_forward_length", 16) + kv_str("tokenizer.ggml.model", "gpt2")
    b += s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 4) + b"".join(s(t) for t in "abcd")
    b += s("token_embd.weight") + struct.pack("<IQQIQ", 2, 8, 4, 0, 0)
    b += b"\0" * (-len(b) % 32) + b"\0" * 128
    path.write_bytes(b)


def test_huge_block_count_raises_model_load_error(tmp_path):
    f = tmp_path / "blocks.gguf"
    crafted_block_count_file(f)
    out = run_child(
        """
        try:
            picolm.Model(sys.argv[1], n_threads=1)
        except picolm.ModelLoadError as e:
            assert "block_count" in str(e) and "268435456" in str(e), str(e)
            print("ok")
        """,
        str(f),
    )
    assert out.strip() == "ok", out
