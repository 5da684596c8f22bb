#!/usr/bin/env python3
"""bench/peer_serve.py - PyTorch + PEFT peer of bench_serve's mixed LoRA batch (section c).

One nn.Linear(4096, 4096) with 1, 4 or 16 LoRA adapters (r = 16) loaded through PEFT; a batch
of 64 rows, row i served by adapter i mod k through PEFT's mixed batch (forward(...,
adapter_names=[...]), which groups rows per adapter in Python). The base layer is replaced by
nn.Identity (d_in = d_out) so that only the adapter part is timed; throughput over one adapter
applied to all 64 rows, as bench_serve prints. One thread (torch.set_num_threads(1)); the protocol
of bench/bench_util.h: a cold call, a calibration call, one warmup sample, then the median of 11
samples of process CPU time, each sample >= 2 ms of back-to-back calls. --csv FILE (or
BENCH_CSV) appends the rows in bench_util.h's columns (bench serve, impl torch_peft).
Skips with a message when torch or peft is missing."""
import os
import sys
import time

try:
    import torch
    from peft import LoraConfig, get_peft_model
except ImportError as e:  # make test never needs this file
    print(f"peer_serve: skipped ({e}); pip install torch peft")
    sys.exit(0)

D, R, N = 4096, 16, 64
torch.set_num_threads(1)
torch.manual_seed(0)


class One(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(D, D, bias=False)

    def forward(self, x):
        return self.lin(x)


def best(fn):
    """Median seconds per call (bench/bench_util.h's protocol, process CPU clock)."""
    fn()  # cold
    t0 = time.process_time()
    fn()
    one = max(time.process_time() - t0, 1e-8)
    k = 1 if one >= 2e-3 else min(100000, int(-(-2e-3 // one)))
    for _ in range(k):  # one warmup sample
        fn()
    samples = []
    for _ in range(11):
        t0 = time.process_time()
        for _ in range(k):
            fn()
        samples.append((time.process_time() - t0) / k)
    samples.sort()
    return samples[len(samples) // 2]


def csv_row(path, k, seconds):
    if not path:
        return
    fresh = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a") as f:
        if fresh:
            f.write("bench,family,op,n,r,d,impl,seconds,note\n")
        f.write(f"serve,lora,mixed,{N},{R},{D},torch_peft,{seconds:.9g},{k} adapters\n")


def main():
    csv = os.environ.get("BENCH_CSV", "")
    if "--csv" in sys.argv[1:-1]:
        csv = sys.argv[sys.argv.index("--csv") + 1]
    x = torch.randn(N, D)
    print(f"peer_serve: torch {torch.__version__}, 1 thread; mixed LoRA batch, {N} rows, d {D}, r {R}")
    print(f"   {'adapters':>8} {'adapter us':>11} {'thr':>6}   (base layer = identity: the adapter part)")
    t_one = None
    for k in (1, 4, 16):
        model = get_peft_model(One(), LoraConfig(r=R, lora_alpha=2 * R, target_modules=["lin"],
                                                 init_lora_weights=False), adapter_name="a0")
        for a in range(1, k):
            model.add_adapter(f"a{a}", LoraConfig(r=R, lora_alpha=2 * R, target_modules=["lin"],
                                                  init_lora_weights=False))
        model.eval()
        model.base_model.model.lin.base_layer = torch.nn.Identity()
        names = [f"a{i % k}" for i in range(N)]
        with torch.no_grad():
            if k == 1:
                t_one = best(lambda: model(x))
            part = best(lambda: model(x, adapter_names=names))
        print(f"   {k:>8} {part * 1e6:>11.0f} {t_one / part:>6.2f}")
        csv_row(csv, k, part)


if __name__ == "__main__":
    main()
