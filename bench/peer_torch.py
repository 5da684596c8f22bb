#!/usr/bin/python3
"""PyTorch peer of bench/bench.c (run by `make bench` with /usr/bin/python3 + python3-torch).

Same shapes, same FLOP counts, same protocol as the C bench: each operation is called once cold
and once to calibrate; a sample is k back-to-back calls with k chosen so it lasts >= 2 ms; the
reported time is the median over a fixed number of samples of (sample time / k).

LoRA is written as HuggingFace PEFT runs it (float32, dropout = identity):
    fwd          result = base(x) + lora_B(lora_A(x)) * scaling        (the adapter part alone:
                 y0 + F.linear(F.linear(x, A), B) * s, y0 the base output, under no_grad)
    fwd-inplace  y.addmm_(F.linear(x, A), B.t(), alpha=s)   (torch's best case, like y += in C)
    bwd          autograd backward of that adapter graph, accumulating x.grad, A.grad, B.grad
The base layer: F.linear(x, W0) (nn.Linear) forward; torch.mm(dy, W0) backward (W0 frozen).

Threads: OPENBLAS_NUM_THREADS if set, else the CPUs this process may run on (what OpenBLAS uses
by default in the C bench); both torch.set_num_threads and OpenBLAS (torch's BLAS here) get it.
OMP_WAIT_POLICY defaults to PASSIVE (see below: libgomp's spinning threads otherwise starve
OpenBLAS's on a small machine).

usage: peer_torch.py [--quick] [--lora-only | --svd-only | --gemm-only] [--samples N] [--svd-n N]
                     [--svd-iters Q] [--no-dense-svd | --no-lapack]
(the flags of bench.c, so one BENCH_ARGS can drive both)
"""
import argparse
import ctypes
import ctypes.util
import os
import platform
import resource
import sys
import time

D_MODEL = 4096
SVD_RANK = 64

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--quick", action="store_true", help="fewer samples, skip the dense SVDs")
g = ap.add_mutually_exclusive_group()
g.add_argument("--lora-only", action="store_true")
g.add_argument("--svd-only", action="store_true")
g.add_argument("--gemm-only", action="store_true", help="(bench.c's flag: nothing to run here)")
ap.add_argument("--samples", type=int, default=0, help="timed samples per operation")
ap.add_argument("--svd-n", type=int, default=D_MODEL, help="size of the SVD test matrix")
ap.add_argument("--svd-iters", type=int, default=0,
                help="svd_lowrank niter (default: time both 5 and 8)")
ap.add_argument("--no-dense-svd", "--no-lapack", action="store_true",
                help="skip torch.linalg.svd/svdvals")
args = ap.parse_args()

env_threads = os.environ.get("OPENBLAS_NUM_THREADS")
threads = int(env_threads) if env_threads else len(os.sched_getaffinity(0))
# must be set before torch (and with it OpenBLAS and libgomp) is loaded
os.environ["OPENBLAS_NUM_THREADS"] = str(threads)
os.environ.setdefault("OMP_NUM_THREADS", str(threads))
# torch's elementwise ops run on libgomp threads, its GEMMs on OpenBLAS's pthreads. With libgomp's
# default spin-waiting the two pools fight over the cores and single calls stall for whole
# scheduler ticks (4-40 ms on a 2-core machine); a passive wait policy removes that pathology.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(threads)
torch.manual_seed(0)

SAMPLES = args.samples or (5 if args.quick else 11)
WARMUP = 0 if args.quick else 1
SAMPLE_S = 2e-3
SVD_REPS = 1 if args.quick else 3


def openblas_threads():
    """(openblas_get_num_threads(), openblas_get_config()) of the OpenBLAS torch loaded."""
    for name in ("libopenblas.so.0", ctypes.util.find_library("openblas")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)  # already loaded by torch: same handle, same state
        except OSError:
            continue
        conf = "?"
        if hasattr(lib, "openblas_get_config"):
            lib.openblas_get_config.restype = ctypes.c_char_p
            conf = lib.openblas_get_config().decode()
        return int(lib.openblas_get_num_threads()), conf
    return None, "not found"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def median(v):
    v = sorted(v)
    m = len(v) // 2
    return v[m] if len(v) % 2 else 0.5 * (v[m - 1] + v[m])


def calibrate(fn):
    """Cold call + timed call -> k calls per sample (>= SAMPLE_S); then the warmup samples."""
    fn()  # cold
    t0 = time.perf_counter()
    fn()
    t1 = time.perf_counter() - t0
    inner = 1
    if t1 < SAMPLE_S:
        inner = min(100000, int(-(-SAMPLE_S // max(t1, 1e-8))))
    for _ in range(WARMUP):
        for _ in range(inner):
            fn()
    return inner


def sample(fn, inner):
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def time_op(fn):
    """Median seconds per call (protocol of bench.c)."""
    inner = calibrate(fn)
    return median([sample(fn, inner) for _ in range(SAMPLES)])


def paired_ratio(fa, fb):
    """Median over back-to-back pairs of (sample of fa) / (sample of fb), as bench.c."""
    ka, kb = calibrate(fa), calibrate(fb)
    q = []
    for _ in range(SAMPLES):
        ta = sample(fa, ka)
        q.append(ta / sample(fb, kb))
    return median(q)


def print_config():
    nt, cfgs = openblas_threads()
    print("# PyTorch peer\n")
    print("| setting | value |\n|---|---|")
    print(f"| torch | {torch.__version__} (Python {platform.python_version()}) |")
    print(f"| torch.get_num_threads() | {torch.get_num_threads()} |")
    print(f"| OPENBLAS_NUM_THREADS | {env_threads if env_threads else '(unset) -> ' + str(threads)} |")
    print(f"| OMP_NUM_THREADS, OMP_WAIT_POLICY | {os.environ['OMP_NUM_THREADS']}, "
          f"{os.environ['OMP_WAIT_POLICY']} |")
    print(f"| OpenBLAS in this process | {cfgs}, openblas_get_num_threads() = {nt} |")
    print(f"| CPU | {cpu_model()}, {os.cpu_count()} cores |")
    try:
        with open("/proc/loadavg") as f:
            print(f"| /proc/loadavg at start | {f.read().strip()} |")
    except OSError:
        pass
    print(f"| protocol | 1 cold + 1 calibration call, {WARMUP} warmup sample(s), median of "
          f"{SAMPLES} samples; a sample is k calls, k chosen so it lasts >= {SAMPLE_S * 1e3:.0f} ms |")
    print(f"| mode | {'--quick' if args.quick else 'full'} |\n")
    sys.stdout.flush()


def print_rows(rows):
    print("| op | n | r | torch ms | GFLOP/s | base ms | base GFLOP/s | adapter/base time | FLOP ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for op, n, r, t, fl, tb, flb in rows:
        print(f"| {op} | {n} | {r} | {t * 1e3:.4f} | {fl / t * 1e-9:.2f} | {tb * 1e3:.3f} | "
              f"{flb / tb * 1e-9:.1f} | {100 * t / tb:.2f}% | {100 * fl / flb:.2f}% |")
    print()


def section_lora():
    d = D_MODEL
    ns, rs = (1, 16, 512), (8, 16, 64)
    W0 = (torch.rand(d, d) * 2 - 1) / 64
    xall = torch.rand(512, d) * 2 - 1
    dyall = torch.rand(512, d) * 2 - 1
    Aall = (torch.rand(64, d) * 2 - 1) / 64
    Ball = (torch.rand(d, 64) * 2 - 1) / 64
    Rall = (torch.rand(64, 64) * 2 - 1) / 8
    fwd, fwdi, bwd, xs = [], [], [], []
    target = None
    for n in ns:
        x = xall[:n].contiguous()
        dy = dyall[:n].contiguous()
        base_fl = 2.0 * n * d * d
        print(f"  base GEMM n={n} ...", file=sys.stderr)
        with torch.no_grad():
            tbf = time_op(lambda: F.linear(x, W0))
            tbb = time_op(lambda: torch.mm(dy, W0))
            y0 = F.linear(x, W0)
        for r in rs:
            print(f"  lora n={n} r={r} ...", file=sys.stderr)
            s = 2.0  # alpha = 2r
            A = Aall[:r].contiguous()
            B = Ball[:, :r].contiguous()
            R = Rall[:r, :r].contiguous()
            fl = 2.0 * n * r * 2 * d
            with torch.no_grad():
                t = time_op(lambda: y0 + F.linear(F.linear(x, A), B) * s)
                fwd.append(("fwd", n, r, t, fl, tbf, base_fl))
                y = y0.clone()
                if n == 512 and r == 16:
                    target = (t, tbf, fl, base_fl,
                              paired_ratio(lambda: y0 + F.linear(F.linear(x, A), B) * s,
                                           lambda: F.linear(x, W0)),
                              paired_ratio(lambda: y.addmm_(F.linear(x, A), B.t(), alpha=s),
                                           lambda: F.linear(x, W0)))
                t = time_op(lambda: y.addmm_(F.linear(x, A), B.t(), alpha=s))
                fwdi.append(("fwd-inplace", n, r, t, fl, tbf, base_fl))
                t = time_op(lambda: y0 + F.linear(F.linear(F.linear(x, A), R), B) * s)
                xs.append(("xs-fwd", n, r, t, 2.0 * n * r * (2 * d + r), tbf, base_fl))
            xg = x.clone().requires_grad_(True)
            Ag = A.clone().requires_grad_(True)
            Bg = B.clone().requires_grad_(True)
            out = y0 + F.linear(F.linear(xg, Ag), Bg) * s
            t = time_op(lambda: out.backward(dy, retain_graph=True))
            bwd.append(("bwd", n, r, t, 2 * fl, tbb, base_fl))
            del xg, Ag, Bg
    print(f"## a) LoRA, d_in = d_out = {d} (PyTorch {torch.__version__}, PEFT-style)\n")
    print("Same FLOP counts as bench.c: fwd 2nr(d_in+d_out) vs base F.linear(x, W0) 2n d_in d_out;"
          " bwd 4nr(d_in+d_out) (autograd: dH = g B, dB += g^T H, dA += dH^T x, dx += dH A) vs"
          " base dx = dy W0. fwd = PEFT's `y0 + lora_B(lora_A(x)) * s` (allocates); fwd-inplace ="
          " `y.addmm_(lora_A(x), B^T, alpha=s)`.\n")
    print_rows(fwd + fwdi + bwd)
    if target:
        t, tb, fl, flb, pr, pri = target
        print(f"PEFT-style unmerged forward, n=512, d=4096, r=16: {100 * pr:.2f}% of the base GEMM"
              f" (median of {SAMPLES} back-to-back adapter/base pairs; from the table's medians"
              f" {100 * t / tb:.2f}% = {t * 1e3:.3f} ms / {tb * 1e3:.1f} ms); fwd-inplace"
              f" {100 * pri:.2f}%; ideal {100 * fl / flb:.2f}%\n")
    print(f"## b) LoRA-XS forward, d_in = d_out = {d} (PyTorch)\n")
    print_rows(xs)
    sys.stdout.flush()


def section_svd():
    n, r = args.svd_n, SVD_RANK
    l = r + max(10, r // 2)  # lortensor's default: oversample max(10, r/2)
    # power iterations: 5 is lortensor's default (the same number of passes over W; lortensor's
    # are shifted, svd_lowrank's plain); 8 buys svd_lowrank more accuracy. Both are timed.
    niters = (max(args.svd_iters, 0),) if args.svd_iters else (5, 8)
    print(f"  building the {n} x {n} test matrix ...", file=sys.stderr)
    t0 = time.perf_counter()
    sig = torch.arange(1, n + 1, dtype=torch.float64).pow(-0.5)
    Q1 = torch.linalg.qr(torch.randn(n, n)).Q
    Q2 = torch.linalg.qr(torch.randn(n, n)).Q
    W = (Q1 * sig.float()) @ Q2.t()
    del Q1, Q2
    t_setup = time.perf_counter() - t0

    lowrank = []  # (niter, median s, min s, top-r singular values)
    for niter in niters:
        print(f"  torch.svd_lowrank q={l} niter={niter} ...", file=sys.stderr)
        torch.svd_lowrank(W, q=l, niter=niter)  # warmup
        ts = []
        for _ in range(SVD_REPS):
            t0 = time.perf_counter()
            U, S, V = torch.svd_lowrank(W, q=l, niter=niter)
            ts.append(time.perf_counter() - t0)
        lowrank.append((niter, median(ts), min(ts), S[:r].double()))
    t_lr = lowrank[0][1]

    dense = not (args.quick or args.no_dense_svd)
    if dense:
        print(f"  torch.linalg.svd {n} x {n} (once) ...", file=sys.stderr)
        t0 = time.perf_counter()
        Sd = torch.linalg.svd(W, full_matrices=False).S
        t_svd = time.perf_counter() - t0
        print("  torch.linalg.svdvals (once) ...", file=sys.stderr)
        t0 = time.perf_counter()
        torch.linalg.svdvals(W)
        t_vals = time.perf_counter() - t0
        ref = Sd[:r].double()

    print(f"## c) rank-{r} truncated SVD of a {n} x {n} matrix, sigma_i = i^(-1/2) (PyTorch)\n")
    print(f"W = Q1 diag(sigma) Q2^T with Q1, Q2 from torch.linalg.qr of Gaussian matrices (built in"
          f" {t_setup:.1f} s; same recipe as bench.c, different random draws). svd_lowrank: 1 warmup +"
          f" median of {SVD_REPS} run(s); the dense SVDs run once.\n")
    def relerr(S, ref):
        return ((S - ref).abs() / ref).max().item()

    print(f"| method | time s | vs svd_lowrank(niter={niters[0]}) | top-{r} max rel. error vs exact"
          f" sigma | vs torch.linalg.svd |\n|---|---:|---:|---:|---:|")
    for niter, t, tmin, S in lowrank:
        vs_dense = f"{relerr(S, ref):.2e}" if dense else "(skipped)"
        print(f"| torch.svd_lowrank(q={l}, niter={niter}) | {t:.3f} (min {tmin:.3f}) |"
              f" {t / t_lr:.2f}x | {relerr(S, sig[:r]):.2e} | {vs_dense} |")
    if dense:
        print(f"| torch.linalg.svd(full_matrices=False) | {t_svd:.2f} | {t_svd / t_lr:.1f}x | | |")
        print(f"| torch.linalg.svdvals | {t_vals:.2f} | {t_vals / t_lr:.1f}x | | |")
    else:
        print("| torch.linalg.svd | skipped (--quick / --no-dense-svd) | | | |")
    print()
    sys.stdout.flush()


def main():
    t_start = time.perf_counter()
    print_config()
    if not (args.svd_only or args.gemm_only):
        section_lora()
    if not (args.lora_only or args.gemm_only):
        section_svd()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"peak RSS {rss:.1f} MB; peer wall time {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
