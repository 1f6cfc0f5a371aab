#!/usr/bin/env python3
"""Writes tests/golden/tokenizer-bytes.json: llama.cpp's token ids for texts with bytes that have no token of their
own (control characters, the UTF-8 lead bytes F1/F2 of U+40000..U+BFFFF) on the three test vocabularies.

usage: golden_tokenizer_bytes.py LLAMA_TOKENIZE MODELS_DIR LLAMA_CPP_VERSION > tests/golden/tokenizer-bytes.json

LLAMA_TOKENIZE is llama.cpp's llama-tokenize binary; MODELS_DIR the model cache after
`scripts/fetch-models.sh --tests`; LLAMA_CPP_VERSION a free-form note recorded in the file. Each text is written
byte for byte to a file and tokenized with `llama-tokenize -m VOCAB -f FILE --ids --no-escape --log-disable`
(plus `--no-parse-special` for the cases that do not parse special tokens), so no shell or escape processing
touches it.
"""

import json
import os
import subprocess
import sys
import tempfile

VOCABS = {
    "smollm2-gpt2-bpe": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "spm-vocab": "spm-vocab.gguf",
    "spm-vocab-space-prefix": "spm-vocab-space-prefix.gguf",
}

# (text, parse_special). SmolLM2 has no byte-level token for 0x04 0x06 0x13 0x14 0x16 0x1D 0xC0 0xC1 0xF1 0xF2
# 0xF5..0xFF; of these only the control characters and the lead bytes F1/F2 (U+40000..U+BFFFF) occur in UTF-8 text.
COMMON = [
    ("\x1d", False),
    ("\x1d", True),
    ("a\x1db", False),
    ("Hello\x1dworld", True),
    (" \x1d ", False),
    ("\x1d\x1d\x1d", False),
    ("\x04\x06\x13\x14\x16\x1d", False),
    ("".join(chr(c) for c in list(range(1, 9)) + [0x0b, 0x0c] + list(range(0x0e, 0x20)) + [0x7f]), False),
    ("a\x00b", False),
    ("Tab\tand\x1dgroup\x1eseparators\x1f", False),
    ("price: 5\x1d% \x04end", True),
    ("\U00040000", False),
    ("x\U00080000y", False),
    ("\U0004abcd\U000bffff", True),
    ("\U00040000 text \U00080000 more\x1d", False),
    ("\U0003ffff\U000c0000 (F0 and F3 lead bytes)", False),
    ("ÀÁ ñ ÿ", False),
    ("{\"id\": \"\x1d\", \"v\": \"\U00040001\"}", False),
]
SPECIAL = {
    "smollm2-gpt2-bpe": "<|im_start|>user\n\x1dHi\U00040000<|im_end|>\n",
    "spm-vocab": "<start_of_turn>user\n\x1dHi\U00040000<end_of_turn>\n",
    "spm-vocab-space-prefix": "<start_of_turn>user\n\x1dHi\U00040000<end_of_turn>\n",
}


def tokenize(tool: str, model: str, text: str, parse_special: bool) -> list:
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
        f.write(text.encode("utf-8"))
        path = f.name
    try:
        cmd = [tool, "-m", model, "-f", path, "--ids", "--no-escape", "--log-disable"]
        if not parse_special:
            cmd.append("--no-parse-special")
        out = subprocess.run(cmd, capture_output=True, check=True).stdout.decode()
    finally:
        os.unlink(path)
    line = [l for l in out.splitlines() if l.startswith("[")][-1]
    return json.loads(line)


def main() -> None:
    tool, models, version = sys.argv[1:4]
    cases = {}
    for name, file in VOCABS.items():
        model = os.path.join(models, file)
        texts = COMMON + [(SPECIAL[name], True), (SPECIAL[name], False)]
        cases[name] = [
            {"text": t, "parse_special": p, "ids": tokenize(tool, model, t, p)} for t, p in texts
        ]
    doc = {
        "about": "llama.cpp tokenization of texts with bytes that have no token of their own (llama-tokenize -m VOCAB "
        "-f FILE --ids --no-escape --log-disable, plus --no-parse-special when parse_special is false; the text "
        "written to FILE byte for byte as UTF-8; BOS added when the vocabulary says so). Vocabularies as in "
        "tokenizer.json. Made by scripts/golden_tokenizer_bytes.py.",
        "llama_cpp": version,
        "cases": cases,
    }
    json.dump(doc, sys.stdout, ensure_ascii=True, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
