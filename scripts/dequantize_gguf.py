#!/usr/bin/env python3
"""Writes a copy of a GGUF file with every tensor dequantized, keeping all metadata except general.file_type.

--type F32: every tensor F32.  --type F16: 2-D tensors F16, 1-D tensors F32 (the layout llama.cpp's
converter uses).  Used by scripts/fetch-models.sh to derive the reference F32/F16 SmolLM2 files.
"""
import argparse

import numpy as np
import gguf
from gguf import GGUFReader, GGUFWriter, GGMLQuantizationType, GGUFValueType
from gguf.quants import dequantize


def copy_field(writer: GGUFWriter, field) -> None:
    name = field.name
    if name.startswith("GGUF.") or name in ("general.architecture", "general.file_type"):
        return
    vtype = field.types[0]
    if vtype == GGUFValueType.ARRAY:
        sub = field.types[-1]
        if sub == GGUFValueType.STRING:
            vals = [bytes(field.parts[i]).decode("utf-8", errors="surrogateescape") for i in field.data]
        else:
            vals = [field.parts[i].tolist()[0] for i in field.data]
        writer.add_array(name, vals) if sub != GGUFValueType.STRING else writer.add_array(name, vals)
        return
    if vtype == GGUFValueType.STRING:
        writer.add_string(name, bytes(field.parts[field.data[0]]).decode("utf-8"))
        return
    value = field.parts[field.data[0]].tolist()[0]
    writer.add_key_value(name, value, vtype)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--type", choices=["F32", "F16"], default="F32")
    args = ap.parse_args()

    reader = GGUFReader(args.src)
    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    writer = GGUFWriter(args.dst, arch)
    for field in reader.fields.values():
        copy_field(writer, field)
    for t in reader.tensors:
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))  # numpy order (outermost first)
        data = dequantize(t.data, GGMLQuantizationType(t.tensor_type)).reshape(shape).astype(np.float32)
        if args.type == "F16" and len(shape) >= 2:
            writer.add_tensor(t.name, data.astype(np.float16))
        else:
            writer.add_tensor(t.name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    main()
