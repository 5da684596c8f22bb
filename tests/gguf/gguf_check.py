#!/usr/bin/env python3
"""Independent check of a GGUF LoRA adapter written by lortensor, with the `gguf` package of
llama.cpp (pip install gguf numpy).

usage: gguf_check.py FILE.gguf EXPECT.txt RAW.f64

EXPECT.txt (written by tests/test_gguf.c): line 1 "arch alpha n_sites"; then per site
"base_name d_in d_out r dtype" where dtype is F32 or F16. RAW.f64: per site, the site's dW
(d_out x d_in, float64, row-major) computed by the C test in double from the lora entries'
own factors and scales. The script reads the file only through gguf.GGUFReader and checks:
the KV keys, types and values llama.cpp's llama-adapter.cpp requires; every tensor's name,
ggml type and shape (ne order) with llama.cpp's pairing rules (both halves present, lora_a
ne = {d_in, r}, lora_b ne = {r, d_out}, a.ne[1] == b.ne[0]); and that alpha / r * B @ A (the
scale llama.cpp applies, at user scale 1) equals dW. Exit status 0 only if all hold."""
import sys
import numpy as np
import gguf


def gguf_version():
    try:
        from importlib.metadata import version
        return version("gguf")
    except Exception:
        return "?"


def field_value(reader, key):
    f = reader.get_field(key)
    if f is None:
        raise SystemExit(f"missing key {key}")
    t = f.types[0]
    if t == gguf.GGUFValueType.STRING:
        return t, bytes(f.parts[f.data[0]]).decode("utf-8")
    return t, f.parts[f.data[0]][0]


def main():
    path, expect_path, raw_path = sys.argv[1:4]
    lines = open(expect_path).read().split("\n")
    arch, alpha_want, n_sites = lines[0].split()
    alpha_want, n_sites = float(alpha_want), int(n_sites)
    sites = [l.split() for l in lines[1:1 + n_sites]]
    raw = np.fromfile(raw_path, dtype="<f8")
    r = gguf.GGUFReader(path)
    fails = []

    def check(cond, what):
        if not cond:
            fails.append(what)

    t, v = field_value(r, "general.architecture")
    check(t == gguf.GGUFValueType.STRING and v == arch, f"general.architecture = {v!r}")
    t, v = field_value(r, "general.type")
    check(t == gguf.GGUFValueType.STRING and v == "adapter", f"general.type = {v!r}")
    t, v = field_value(r, "adapter.type")
    check(t == gguf.GGUFValueType.STRING and v == "lora", f"adapter.type = {v!r}")
    t, alpha = field_value(r, "adapter.lora.alpha")
    check(t == gguf.GGUFValueType.FLOAT32, f"adapter.lora.alpha type {t}")
    check(np.float32(alpha) == np.float32(alpha_want), f"alpha {alpha} != {alpha_want}")
    check(r.alignment == 32, f"alignment {r.alignment}")

    tensors = {t.name: t for t in r.tensors}
    check(len(tensors) == 2 * n_sites, f"{len(tensors)} tensors, want {2 * n_sites}")
    for name in tensors:
        check(name.endswith(".lora_a") or name.endswith(".lora_b"), f"suffix of {name}")
    off = 0
    worst = 0.0
    for base, d_in, d_out, rank, dtype in sites:
        d_in, d_out, rank = int(d_in), int(d_out), int(rank)
        a, b = tensors.get(base + ".lora_a"), tensors.get(base + ".lora_b")
        check(a is not None and b is not None, f"pair of {base}")
        if a is None or b is None:
            continue
        want_type = gguf.GGMLQuantizationType[dtype]
        check(a.tensor_type == want_type and b.tensor_type == want_type, f"type of {base}")
        check(list(a.shape) == [d_in, rank], f"{base}.lora_a ne {list(a.shape)}")
        check(list(b.shape) == [rank, d_out], f"{base}.lora_b ne {list(b.shape)}")
        check(a.shape[1] == b.shape[0], f"{base}: lora_a not transposed")
        check(a.data_offset % 32 == 0 and b.data_offset % 32 == 0, f"{base}: alignment")
        A = np.asarray(a.data, dtype=np.float64).reshape(rank, d_in)
        B = np.asarray(b.data, dtype=np.float64).reshape(d_out, rank)
        dW = raw[off:off + d_out * d_in].reshape(d_out, d_in)
        off += d_out * d_in
        got = float(alpha) / rank * (B @ A)
        tol = (1e-6 if dtype == "F32" else 2e-3) * max(1e-30, np.abs(dW).max())
        err = np.abs(got - dW).max()
        worst = max(worst, err / max(1e-30, np.abs(dW).max()))
        check(err <= tol, f"{base}: max |alpha/r B A - dW| = {err:.3g} > {tol:.3g}")
    check(off == raw.size, f"raw has {raw.size} values, used {off}")
    if fails:
        print("gguf_check: FAILED\n  " + "\n  ".join(fails))
        return 1
    print(f"gguf_check: ok ({n_sites} sites, {len(r.fields)} KV, alpha {alpha}, "
          f"max rel dW error {worst:.2e}, gguf {gguf_version()})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
