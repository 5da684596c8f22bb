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
g.add_argument("--families-only", action="store_true",
               help="only the every-family rows (bench_families.c's peer)")
ap.add_argument("--no-families", action="store_true", help="skip the every-family rows")
ap.add_argument("--cpu-time", action="store_true",
                help="time with the process CPU clock (as bench_util.h --cpu-time; 1 thread)")
ap.add_argument("--n", default="1,16,512", help="token counts of the every-family rows")
ap.add_argument("--family", default="", help="only this family in the every-family rows")
ap.add_argument("--csv", default=os.environ.get("BENCH_CSV", ""),
                help="append CSV rows (bench/bench_util.h columns) to this file")
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

TORCH_ORIGIN = ("Debian python3-torch" if torch.__file__.startswith("/usr/lib/python3/")
                else "Python package index (pip)")
print(f"peer: PyTorch {torch.__version__} from {TORCH_ORIGIN} ({torch.__file__}), "
      f"{sys.executable}", file=sys.stderr)

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
    t0 = CLOCK()
    fn()
    t1 = CLOCK() - t0
    LAST_CALL[0] = t1
    inner = 1
    if t1 < SAMPLE_S:
        inner = min(100000, int(-(-SAMPLE_S // max(t1, 1e-8))))
    for _ in range(WARMUP):
        for _ in range(inner):
            fn()
    return inner


def sample(fn, inner):
    t0 = CLOCK()
    for _ in range(inner):
        fn()
    return (CLOCK() - t0) / inner


LAST_CALL = [0.0]
CLOCK = time.process_time if args.cpu_time else time.perf_counter


def time_op(fn):
    """Median seconds per call (protocol of bench/bench_util.h; --quick: one sample of a call
    slower than 50 ms; at most 3 samples of a call slower than 0.5 s)."""
    inner = calibrate(fn)
    n = 1 if args.quick and LAST_CALL[0] > 0.05 else SAMPLES
    if LAST_CALL[0] > 0.5:
        n = min(n, 3)
    return median([sample(fn, inner) for _ in range(n)])


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
    print(f"| torch | {torch.__version__} from {TORCH_ORIGIN} (Python {platform.python_version()}) |")
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
        for _ in range(SVD_REPS):  # CLOCK: the process CPU clock with --cpu-time, as bench.c
            t0 = CLOCK()
            U, S, V = torch.svd_lowrank(W, q=l, niter=niter)
            ts.append(CLOCK() - t0)
        lowrank.append((niter, median(ts), min(ts), S[:r].double()))
    t_lr = lowrank[0][1]

    dense = not (args.quick or args.no_dense_svd)
    if dense:
        print(f"  torch.linalg.svd {n} x {n} (once) ...", file=sys.stderr)
        t0 = CLOCK()
        Sd = torch.linalg.svd(W, full_matrices=False).S
        t_svd = CLOCK() - t0
        print("  torch.linalg.svdvals (once) ...", file=sys.stderr)
        t0 = CLOCK()
        torch.linalg.svdvals(W)
        t_vals = CLOCK() - t0
        ref = Sd[:r].double()

    if args.csv:
        new = not os.path.exists(args.csv) or os.path.getsize(args.csv) == 0
        with open(args.csv, "a") as f:
            if new:
                f.write("bench,family,op,n,r,d,impl,seconds,note\n")
            for niter, t, tmin, S in lowrank:
                err = ((S - sig[:r]).abs() / sig[:r]).max().item()
                f.write(f"peer,svd,truncated,{n},{r},{n},torch_svd_lowrank_niter{niter},{t:.9g},"
                        f"max rel err {err:.3e}\n")
    print(f"## c) rank-{r} truncated SVD of a {n} x {n} matrix, sigma_i = i^(-1/2) (PyTorch)\n")
    print(f"W = Q1 diag(sigma) Q2^T with Q1, Q2 from torch.linalg.qr of Gaussian matrices (built in"
          f" {t_setup:.1f} s; same recipe as bench.c, different random draws). svd_lowrank: 1 warmup +"
          f" median of {SVD_REPS} run(s); the dense SVDs run once; "
          f"{'process CPU' if args.cpu_time else 'wall'} clock.\n")
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



# ---- every family at d = 4096 (the peer of bench/bench_families.c) ---------------------------
#
# Two forms per family, both eager PyTorch on the CPU with autograd for the training step:
#   torch_ref   what the paper's released code computes: PEFT's LoRA (two nn.Linear, y0 + B(A(x)) s);
#               LoRA-XS's (three linears, A and B frozen); LoRETTA's TT layers (materialise each
#               TT matrix from its cores, then GEMM); DoTA's MPO (released no code: the MPO matrix
#               contracted from its cores by einsum, then GEMM); LoRTA's (the site's d x d update
#               built at every forward, then GEMM); the Tucker form likewise (dense update).
#   torch_best  the best PyTorch we could write: the factored form lortensor computes (addmm into
#               the base output; for cp, tucker and mpo the factors applied to x, never a d x d).
# fwd = inference (torch.no_grad); fwd+bwd = forward with autograd + backward(dy) giving dx and
# the trainable parameters' gradients (frozen factors: requires_grad False); bwd = that backward
# alone, repeated on one retained graph.

FAM_D = 4096


def _p(*shape, scale=0.05, grad=True):
    t = (torch.rand(*shape) * 2 - 1) * scale
    return t.requires_grad_(grad)


def _tt_matrix(cores, rows, cols):
    """The row-major (rows, cols) matrix of a tensor train with 3-D cores (t, n_k, t')."""
    m = cores[0].reshape(-1, cores[0].shape[-1])
    for g in cores[1:]:
        m = (m @ g.reshape(g.shape[0], -1)).reshape(-1, g.shape[-1])
    return m.reshape(rows, cols)


def _tt_cores(mode_list, t):
    ranks = [1] + [t] * (len(mode_list) - 1) + [1]
    return [_p(ranks[k], mode_list[k], ranks[k + 1], scale=0.3) for k in range(len(mode_list))]


def _mpo_dense(cores):
    """DoTA's MPO matrix (rows = prod i_k, cols = prod j_k) contracted from 4-D cores by einsum."""
    m = cores[0][0]  # (i1, j1, D1)
    for t in cores[1:]:
        I, J, Dk = m.shape
        m = torch.einsum("ijd,dabe->iajbe", m, t).reshape(I * t.shape[1], J * t.shape[2],
                                                          t.shape[3])
    return m[..., 0]


def _mpo_apply(x, cores):
    """x M^T without forming M: contract x's column modes with the cores one by one."""
    n = x.shape[0]
    J = x.shape[1]
    s = x.reshape(n, J, 1, 1)  # (n, J_rest, I_done, D)
    for t in cores:
        D0, i, j, D1 = t.shape
        Jr, I = s.shape[1] // j, s.shape[2]
        s = torch.einsum("njrid,dajD->nriaD", s.reshape(n, j, Jr, I, D0), t)
        s = s.reshape(n, Jr, I * i, D1)
    return s.reshape(n, -1)


def family_models(name):
    """(rank, params dict, ref(x, y0), best(x, y0)): y0 is the base output, x the input."""
    d = FAM_D
    if name == "lora":
        r, s = 8, 2.0
        A, B = _p(r, d), _p(d, r)
        ref = lambda x, y0: y0 + F.linear(F.linear(x, A), B) * s  # noqa: E731
        best = lambda x, y0: torch.addmm(y0, F.linear(x, A), B.t(), alpha=s)  # noqa: E731
        return r, [A, B], ref, best
    if name == "loraxs":
        r, s = 64, 1.0
        A, B, R = _p(r, d, grad=False), _p(d, r, grad=False), _p(r, r)
        ref = lambda x, y0: y0 + F.linear(F.linear(F.linear(x, A), R), B) * s  # noqa: E731
        best = lambda x, y0: torch.addmm(y0, (x @ A.t()) @ R.t(), B.t(), alpha=s)  # noqa: E731
        return r, [R], ref, best
    if name == "tt_rep":
        r, t, s, ml = 8, 8, 2.0, (16, 16, 8, 4, 4)
        GA, GB = _tt_cores(ml, t), _tt_cores(ml, t)

        def ref(x, y0):
            WA, WB = _tt_matrix(GA, d, r), _tt_matrix(GB, r, d)
            return y0 + (x @ WA) @ WB * s

        def best(x, y0):
            WA, WB = _tt_matrix(GA, d, r), _tt_matrix(GB, r, d)
            return torch.addmm(y0, x @ WA, WB, alpha=s)
        return r, GA + GB, ref, best
    if name == "tt_adp":
        b, t, ml = 64, 8, (16, 16, 16, 4, 4, 4)
        Gd, Gu = _tt_cores(ml, t), _tt_cores(ml, t)
        bd, bu = _p(b), _p(d)

        def ref(x, y0):  # LLaMA mh_adapter on the layer input: x' = x + f(x)
            Wd, Wu = _tt_matrix(Gd, d, b), _tt_matrix(Gu, b, d)
            return x + (torch.relu(x @ Wd + bd) @ Wu + bu)

        def best(x, y0):
            Wd, Wu = _tt_matrix(Gd, d, b), _tt_matrix(Gu, b, d)
            return torch.addmm(bu, torch.relu(torch.addmm(bd, x, Wd)), Wu).add_(x)
        return b, Gd + Gu + [bd, bu], ref, best
    if name == "mpo":
        D = 8
        bonds = [1, 4 * 4, D, D, D, 4 * 4, 1]  # min(D, exact bound): as lort_mpo_desc_resolve
        cores = [_p(bonds[k], 4, 4, bonds[k + 1], scale=0.3) for k in range(6)]
        ref = lambda x, y0: y0 + F.linear(x, _mpo_dense(cores))  # noqa: E731
        best = lambda x, y0: y0 + _mpo_apply(x, cores)  # noqa: E731
        return D, cores, ref, best
    if name == "cp":
        r, H, L, M, s = 8, 32, 32, 4, 1.0
        dh = d // H
        A, B, CH, CL, CM = _p(d, r), _p(r, dh), _p(H, r), _p(L, r), _p(M, r)

        def ref(x, y0):  # LoRTA: the site's d x d update at every forward
            c = CH * (CL[0] * CM[0])
            dW = torch.einsum("ir,hr,rj->ihj", A, c, B).reshape(d, d)
            return y0 + (x @ dW) * s

        def best(x, y0):
            c = CH * (CL[0] * CM[0])
            P = ((x @ A).unsqueeze(1) * c) @ B  # (n, H, d_h)
            return y0 + P.reshape(x.shape[0], d) * s
        return r, [A, B, CH, CL, CM], ref, best
    if name == "tucker":
        r1, r2, L, s = 16, 16, 32, 1.0
        G, A, B = _p(r1, r2, 1, L, 1), _p(d, r1), _p(r2, d)
        CH, CL, CM = _p(1, 1), _p(L, L), _p(4, 1)

        def core(l):
            return torch.einsum("abxyz,x,y,z->ab", G, CH[0], CL[l], CM[0])

        ref = lambda x, y0: y0 + (x @ (A @ core(0) @ B)) * s  # noqa: E731
        best = lambda x, y0: torch.addmm(y0, (x @ A) @ core(0), B, alpha=s)  # noqa: E731
        return r1, [G, A, B, CH, CL, CM], ref, best
    raise ValueError(name)


def csv_rows(rows):
    if not args.csv:
        return
    new = not os.path.exists(args.csv) or os.path.getsize(args.csv) == 0
    with open(args.csv, "a") as f:
        if new:
            f.write("bench,family,op,n,r,d,impl,seconds,note\n")
        for fam, op, n, r, impl, t in rows:
            f.write(f"families,{fam},{op},{n},{r},{FAM_D},{impl},{t:.9g},torch {torch.__version__}\n")


def section_families():
    d = FAM_D
    ns = [int(v) for v in args.n.split(",") if v]
    names = ["lora", "loraxs", "tt_rep", "tt_adp", "mpo", "cp", "tucker"]
    if args.family:
        names = [args.family]
    W0 = (torch.rand(d, d) * 2 - 1) / 64
    xall = torch.rand(max(ns), d) * 2 - 1
    dyall = torch.rand(max(ns), d) * 2 - 1
    print(f"## Every family at d = {d}, PyTorch {torch.__version__} ({TORCH_ORIGIN}), "
          f"{torch.get_num_threads()} thread(s), {'process CPU' if args.cpu_time else 'wall'} clock\n")
    print("torch_ref = the paper's reference-code form, torch_best = the factored form; fwd under "
          "no_grad, fwd+bwd = autograd forward + backward(dy) with dx and parameter gradients.\n")
    print("| family | rank | n | ref fwd ms | best fwd ms | ref fwd+bwd ms | best fwd+bwd ms | "
          "ref bwd ms | best bwd ms |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in ns:
        x = xall[:n].contiguous()
        dy = dyall[:n].contiguous()
        with torch.no_grad():
            y0 = F.linear(x, W0)
        for name in names:
            torch.manual_seed(1)
            r, params, ref, best = family_models(name)
            xg = x.clone().requires_grad_(True)
            res = {}
            for form, fn in (("torch_ref", ref), ("torch_best", best)):
                print(f"  {name} {form} n={n} ...", file=sys.stderr)

                def fwd():
                    with torch.no_grad():
                        fn(x, y0)

                def step():
                    fn(xg, y0).backward(dy)
                res[form, "fwd"] = time_op(fwd)
                res[form, "fwd+bwd"] = time_op(step)
                out = fn(xg, y0)  # the backward alone, on one retained graph
                res[form, "bwd"] = time_op(lambda: out.backward(dy, retain_graph=True))
                del out
                for p in params + [xg]:
                    p.grad = None
            csv_rows([(name, op, n, r, form, t) for (form, op), t in res.items()])
            print(f"| {name} | {r} | {n} | {res['torch_ref', 'fwd'] * 1e3:.4f} | "
                  f"{res['torch_best', 'fwd'] * 1e3:.4f} | {res['torch_ref', 'fwd+bwd'] * 1e3:.4f} | "
                  f"{res['torch_best', 'fwd+bwd'] * 1e3:.4f} | {res['torch_ref', 'bwd'] * 1e3:.4f} | "
                  f"{res['torch_best', 'bwd'] * 1e3:.4f} |")
            sys.stdout.flush()
    print()


def main():
    t_start = time.perf_counter()
    print_config()
    if not (args.svd_only or args.gemm_only or args.families_only):
        section_lora()
    if not (args.lora_only or args.gemm_only or args.families_only):
        section_svd()
    if not (args.lora_only or args.svd_only or args.gemm_only or args.no_families):
        section_families()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"peak RSS {rss:.1f} MB; peer wall time {time.perf_counter() - t_start:.1f} s")


if __name__ == "__main__":
    main()
