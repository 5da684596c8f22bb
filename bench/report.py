#!/usr/bin/env python3
"""Joins the CSV rows of one `make bench` run (bench/bench_util.h columns:
bench,family,op,n,r,d,impl,seconds,note) into markdown tables and an SVG plot.

  - every family, fwd+bwd, fwd and bwd (the backward alone), lortensor against the PyTorch peer's two forms (torch_ref:
    the paper's reference code; torch_best: the factored form), with speed-ups (peer time / our
    time) and the targets: at n <= 16 >= 3x the reference form and >= 1.5x the best
    form; at n = 512 not slower than either (>= 1x). fwd+bwd rows carry the verdict.
  - the built-in GEMM's share of OpenBLAS speed per shape (target >= 50%).
  - overhead.svg: adapter fwd+bwd time as % of the base layer's fwd+bwd GEMMs against n, one
    line per family, log-log axes (hand-written SVG, no plotting library).

usage: report.py results.csv [--md OUT.md] [--svg OUT.svg]   (standard library only)
"""
import argparse
import csv
import math
import sys
from collections import defaultdict

FAMILIES = ["lora", "loraxs", "tt_rep", "tt_adp", "mpo", "cp", "tucker"]
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]


def load(path):
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if r.get("seconds") == "seconds":  # a repeated header (bench.c's rows are bench=bench)
                continue
            r["n"], r["r"], r["d"] = int(r["n"]), int(r["r"]), int(r["d"])
            r["seconds"] = float(r["seconds"])
            rows.append(r)
    return rows


def fmt_ms(t):
    return "–" if t is None else (f"{t * 1e3:.3f}" if t < 1 else f"{t * 1e3:.0f}")


def verdict(n, ref, best):
    """PASS/MISS of the performance targets from the two speed-ups (None: not measured)."""
    need_ref, need_best = (3.0, 1.5) if n <= 16 else (1.0, 1.0)
    parts = []
    for name, v, need in (("ref", ref, need_ref), ("best", best, need_best)):
        if v is None:
            continue
        parts.append(f"{name} {'PASS' if v >= need else 'MISS'}")
    return ", ".join(parts) if parts else "(no peer)"


def families_md(rows, out):
    t = defaultdict(dict)  # (family, op, n) -> impl -> seconds
    rank = {}
    base = {}
    for r in rows:
        if r["bench"] != "families":
            continue
        if r["family"] == "base":
            base[r["op"], r["n"]] = r["seconds"]
            continue
        t[r["family"], r["op"], r["n"]][r["impl"]] = r["seconds"]
        if r["impl"] == "lortensor":
            rank[r["family"]] = r["r"]
    if not t:
        return {}
    ns = sorted({k[2] for k in t})
    torch_note = sorted({r["note"] for r in rows
                         if r["bench"] == "families" and r["impl"].startswith("torch")})
    out.append("## Every family at d = 4096: lortensor vs the PyTorch peer, same run\n")
    if torch_note:
        out.append(f"Peer: {', '.join(torch_note)}, eager, CPU. Speed-up = peer time / lortensor "
                   "time (> 1: lortensor faster). Targets (fwd+bwd): n <= 16: >= 3x ref and "
                   ">= 1.5x best; n = 512: >= 1x both. overhead = our time / the base layer's "
                   "GEMMs of the same n and op.\n")
    else:
        out.append("(PyTorch peer not run: no python3 with torch.)\n")
    overhead = defaultdict(dict)
    for op in ("fwd+bwd", "fwd", "bwd"):
        out.append(f"### {op}\n")
        out.append("| family | rank | n | lortensor ms | overhead | torch_ref ms | torch_best ms "
                   "| vs ref | vs best | target |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for fam in FAMILIES:
            for n in ns:
                m = t.get((fam, op, n))
                if not m or "lortensor" not in m:
                    continue
                ours = m["lortensor"]
                ref, best = m.get("torch_ref"), m.get("torch_best")
                sr = ref / ours if ref else None
                sb = best / ours if best else None
                b = base.get((op, n))
                ov = 100.0 * ours / b if b else None
                if ov is not None:
                    overhead[op][fam, n] = ov
                out.append(
                    f"| {fam} | {rank.get(fam, '')} | {n} | {fmt_ms(ours)} | "
                    f"{'–' if ov is None else f'{ov:.2f}%'} | {fmt_ms(ref)} | {fmt_ms(best)} | "
                    f"{'–' if sr is None else f'{sr:.1f}x'} | {'–' if sb is None else f'{sb:.2f}x'} | "
                    f"{verdict(n, sr, sb) if op == 'fwd+bwd' else ''} |")
        out.append("")
    return overhead


def gemm_md(rows, out):
    t = defaultdict(dict)
    paired = {}
    for r in rows:
        if r["bench"] == "gemm":
            t[r["op"]][r["impl"]] = r["seconds"]
            if r["note"].startswith("paired share "):
                paired[r["op"]] = float(r["note"].split()[-1])
    if not t:
        return
    out.append("## Built-in GEMM vs OpenBLAS, 1 thread (process CPU time)\n")
    out.append("Share = the median over back-to-back (OpenBLAS, built-in) sample pairs of their "
               "time ratio (bench_gemm's paired ratio: a change of machine load hits both sides "
               "of a pair); the two medians beside it were taken one after the other.\n")
    out.append("| shape (op M x N x K) | OpenBLAS ms | built-in ms | built-in / OpenBLAS speed | >= 50% |")
    out.append("|---|---:|---:|---:|---|")
    logs = []
    for shape, m in t.items():
        if "openblas" in m and "builtin" in m:
            share = paired.get(shape, m["openblas"] / m["builtin"])
            logs.append(math.log(share))
            out.append(f"| {shape} | {fmt_ms(m['openblas'])} | {fmt_ms(m['builtin'])} | "
                       f"{100 * share:.0f}% | {'PASS' if share >= 0.5 else 'MISS'} |")
    if logs:
        out.append(f"\nGeometric mean {100 * math.exp(sum(logs) / len(logs)):.0f}% "
                   f"({sum(1 for v in logs if v >= math.log(0.5))} of {len(logs)} shapes >= 50%).\n")


def svd_md(rows, out):
    t = {r["impl"]: r for r in rows if r["family"] == "svd"}
    ours = t.get("lortensor")
    if not ours:
        return

    def err(r):
        try:
            return float(r["note"].split()[-1])
        except (ValueError, IndexError):
            return None
    e0 = err(ours)
    out.append(f"## Truncated SVD, rank {ours['r']} of a {ours['n']} x {ours['n']} matrix "
               "(sigma_i = i^-1/2)\n")
    out.append("1 thread; make bench times bench.c and the peer with the process CPU clock. "
               "lortensor's defaults: 96 probes, 5 power iterations with dynamic shifts; "
               "torch.svd_lowrank(q = 96) with niter 5 (the same number of passes over W) and 8. "
               "Equal accuracy: a torch row at least as accurate as ours is compared on time.\n")
    out.append("| method | time s | top-r max rel. error vs exact | lortensor speed-up | target |")
    out.append("|---|---:|---:|---:|---|")
    out.append(f"| lort_svd_truncated (defaults) | {ours['seconds']:.3f} | {e0:.2e} | 1.0x | |")
    lap = t.get("lapack_sgesdd_S")
    if lap:
        sp = lap["seconds"] / ours["seconds"]
        out.append(f"| LAPACK sgesdd_ JOBZ='S' | {lap['seconds']:.2f} | | {sp:.1f}x | "
                   f">= 30x: {'PASS' if sp >= 30 else 'MISS'} |")
    for impl in sorted(k for k in t if k.startswith("torch_svd_lowrank")):
        r = t[impl]
        e, sp = err(r), r["seconds"] / ours["seconds"]
        tgt = ""
        if e is not None and e0 is not None:
            tgt = (f"faster at equal or better accuracy: {'PASS' if sp >= 1 else 'MISS'}"
                   if e >= e0 else "(more accurate than ours: not comparable)")
        out.append(f"| torch.svd_lowrank {impl.split('_')[-1]} | {r['seconds']:.3f} | "
                   f"{'' if e is None else f'{e:.2e}'} | {sp:.2f}x | {tgt} |")
    out.append("")


def serve_md(rows, out):
    """bench_serve's rows: decode at n = 1 (DRAM and hot), mixed batches, q/k/v in one call."""
    t = defaultdict(dict)  # (family, op, n, r, d, note) -> impl -> seconds
    for r in rows:
        if r["bench"] == "serve":
            t[r["family"], r["op"], r["n"], r["r"], r["d"], r["note"] if r["op"].startswith("mixed")
              else ""][r["impl"]] = r["seconds"]
    if not t:
        return
    out.append("## Serving (bench_serve)\n")
    out.append("Decode, n = 1 LoRA forward. dram: each call the next of K adapters (K (A + B) >= 64 "
               "MiB); limit = streaming the same bytes at the measured read bandwidth; hot: one "
               "adapter in L2 (informative). Target (dram): <= 1.2x limit and <= 1.2x hand.\n")
    out.append("| row | d | r | limit us | lortensor us | hand us | / limit | / hand | target |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for (fam, op, n, rk, d, _), m in sorted(t.items()):
        if op not in ("dram", "hot") or not {"limit", "lortensor", "hand"} <= m.keys():
            continue
        a, b = m["lortensor"] / m["limit"], m["lortensor"] / m["hand"]
        tgt = "(informative)" if op == "hot" else ("PASS" if a <= 1.2 and b <= 1.2 else "MISS")
        out.append(f"| {op} | {d} | {rk} | {m['limit'] * 1e6:.2f} | {m['lortensor'] * 1e6:.2f} | "
                   f"{m['hand'] * 1e6:.2f} | {a:.2f}x | {b:.2f}x | {tgt} |")
    out.append("\nMixed batches and one call per layer: throughput of lortensor over the "
               "reference (one adapter for all rows; the per-site calls).\n")
    out.append("| family | op | n | setting | lortensor ms | reference ms | ratio |")
    out.append("|---|---|---:|---|---:|---:|---:|")
    for (fam, op, n, rk, d, note), m in sorted(t.items(), key=lambda kv: (kv[0][1], kv[0][0],
                                                                        kv[0][2], kv[0][5])):
        ref = m.get("one_adapter") or m.get("per_site")
        if op in ("dram", "hot", "decode_family") or "lortensor" not in m or not ref:
            continue
        out.append(f"| {fam} | {op} | {n} | {note} | {fmt_ms(m['lortensor'])} | {fmt_ms(ref)} | "
                   f"{ref / m['lortensor']:.2f} |")
    out.append("")


def svg_plot(overhead, path):
    """Overhead (% of base fwd+bwd) against n, log-log, one polyline per family."""
    pts = overhead.get("fwd+bwd", {})
    if not pts:
        return False
    W, H, L, R, T, B = 640, 400, 70, 150, 30, 50
    ns = sorted({n for _, n in pts})
    ys = [v for v in pts.values() if v > 0]
    ylo = 10 ** math.floor(math.log10(min(ys)))
    yhi = 10 ** math.ceil(math.log10(max(ys)))
    if yhi <= ylo:
        yhi = ylo * 10
    xlo, xhi = math.log10(ns[0]), math.log10(ns[-1]) if ns[-1] > ns[0] else math.log10(ns[0]) + 1

    def X(n):
        return L + (W - L - R) * (math.log10(n) - xlo) / (xhi - xlo)

    def Y(v):
        return T + (H - T - B) * (1 - (math.log10(v) - math.log10(ylo)) /
                                  (math.log10(yhi) - math.log10(ylo)))

    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{L}" y="18" font-size="14">Adapter fwd+bwd time, % of the base layer\'s '
         'GEMMs (d = 4096)</text>']
    e = math.log10(ylo)
    while e <= math.log10(yhi) + 1e-9:
        v = 10 ** e
        o.append(f'<line x1="{L}" x2="{W - R}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#ddd"/>')
        o.append(f'<text x="{L - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:g}%</text>')
        e += 1
    for n in ns:
        o.append(f'<line x1="{X(n):.1f}" x2="{X(n):.1f}" y1="{T}" y2="{H - B}" stroke="#ddd"/>')
        o.append(f'<text x="{X(n):.1f}" y="{H - B + 16}" text-anchor="middle">{n}</text>')
    o.append(f'<text x="{(L + W - R) / 2:.0f}" y="{H - 12}" text-anchor="middle">n (tokens, log '
             'scale)</text>')
    o.append(f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" fill="none" '
             'stroke="#444"/>')
    k = 0
    for i, fam in enumerate(FAMILIES):
        p = sorted((n, v) for (f, n), v in pts.items() if f == fam and v > 0)
        if not p:
            continue
        c = COLORS[i % len(COLORS)]
        o.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="' +
                 " ".join(f"{X(n):.1f},{Y(v):.1f}" for n, v in p) + '"/>')
        for n, v in p:
            o.append(f'<circle cx="{X(n):.1f}" cy="{Y(v):.1f}" r="3" fill="{c}"/>')
        ly = T + 14 + 18 * k
        o.append(f'<line x1="{W - R + 12}" x2="{W - R + 32}" y1="{ly - 4}" y2="{ly - 4}" '
                 f'stroke="{c}" stroke-width="2"/>')
        o.append(f'<text x="{W - R + 38}" y="{ly}">{fam}</text>')
        k += 1
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("csv")
    ap.add_argument("--md", default="")
    ap.add_argument("--svg", default="")
    a = ap.parse_args()
    rows = load(a.csv)
    out = []
    overhead = families_md(rows, out)
    svd_md(rows, out)
    gemm_md(rows, out)
    serve_md(rows, out)
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    if a.md:
        with open(a.md, "w") as f:
            f.write(text)
    if a.svg and svg_plot(overhead, a.svg):
        print(f"(plot: {a.svg}; CSV: {a.csv}; table: {a.md or 'stdout'})")


if __name__ == "__main__":
    main()
