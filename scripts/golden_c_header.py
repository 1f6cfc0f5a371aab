#!/usr/bin/env python3
"""Writes a C header with llama.cpp's reference ids (from golden/smollm2-greedy.json) for the C API tests."""
import json
import sys

g = json.load(open(sys.argv[1]))
case = g["results"]["original-Q4_1"][0]
print("/* Generated from golden/smollm2-greedy.json by scripts/golden_c_header.py */")
print("#define GOLDEN_PROMPT %s" % json.dumps(case["prompt"]))
print("static const uint32_t GOLDEN_PROMPT_IDS[] = {%s};" % ", ".join(map(str, case["prompt_ids"])))
print("static const uint32_t GOLDEN_Q4_1_IDS[] = {%s};" % ", ".join(map(str, case["generated_ids"][:8])))
