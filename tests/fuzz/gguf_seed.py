#!/usr/bin/env python3
"""A GGUF seed written by llama.cpp's gguf package (arrays of strings and numbers, a bool, a
custom alignment, F32/F16 tensors): the fuzz corpus then covers what our writer never emits.
usage: gguf_seed.py DIR   (skipped without the gguf package)"""
import sys
try:
    import numpy as np
    import gguf
except ImportError:
    print("gguf_seed.py: no gguf package, skipped")
    sys.exit(0)
w = gguf.GGUFWriter(sys.argv[1] + "/seed_py.gguf", "llama")
w.add_type("adapter")
w.add_string("adapter.type", "lora")
w.add_float32("adapter.lora.alpha", 16.0)
w.add_array("tokenizer.ggml.tokens", ["a", "bc", ""])
w.add_array("some.ints", [1, 2, 3])
w.add_bool("some.flag", True)
w.add_uint32("general.alignment", 64)
w.add_tensor("blk.0.attn_q.weight.lora_a", np.arange(32, dtype=np.float32).reshape(2, 16))
w.add_tensor("blk.0.attn_q.weight.lora_b", np.ones((8, 2), dtype=np.float16))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
