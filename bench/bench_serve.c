/* bench/bench_serve.c - serving figures: decode at n = 1, mixed-adapter batches,
   one call for the sites that share an input.

   Sections:
     a) n = 1 forward, d_in = d_out in {1024, 4096}, r in {8, 16}: lort_adapter_forward (lora)
        beside a hand-written two-loop LoRA and beside the bytes-moved limit, in two settings:
          DRAM (the target): an engine at decode runs every layer's adapters in turn, so their
            factors come from memory, not cache. Each call uses the next of K distinct adapters
            (K >= 128, i.e. 32 layers x 4 sites, and K x (A + B bytes) >= 64 MiB, well past the
            last-level cache), x and y stay hot. limit = the time to stream the same adapters'
            A and B in the same order (a vectorised sum, 32 partial sums): bytes moved at the
            measured memory read bandwidth, K x (A + B) bytes in total.
          hot (informative): one adapter, called again and again, factors in L2; limit = the
            same sum over that one adapter.
        hand = the two loops an engine author writes, well: h = A x with 16 partial sums per
        dot product, then y += s B h with 8 partial sums per output, same flags (-O3
        -march=native). Targets on the DRAM rows: lora <= 1.2x limit and <= 1.2x hand.
        Then every family's n = 1 forward (hot) in ns per KiB of factors read (params +
        frozen), over LoRA's.
     b) mixed batch, LoRA-XS with one shared basis: 256 rows, d = 4096, r = 16, over 1, 16, 256
        and 4096 users; throughput over one lort_loraxs_forward of the same 256 rows.
     c) mixed batch, LoRA (distinct A, B): 64 rows, d = 4096, r = 16, over 1, 4, 16 adapters;
        lort_mixed_forward and a caller's loop (gather, lort_adapter_forward, scatter per
        adapter), both over one lort_lora_forward of the 64 rows.
     d) one call per layer: q, k, v as three lora sites (d = 1024, r = 16) and as three cp sites
        of one block, at n = 1, 16, 512: three lort_adapter_forward calls over one
        lort_multi_forward.

   Protocol: bench/bench_util.h (calibrated samples, medians; the operations compared in one
   row are sampled interleaved, so a change of machine load hits all of them). Run with
   OPENBLAS_NUM_THREADS=1; --cpu-time (as `make bench` does) times with the process CPU clock.
   Rows go to the bench CSV (--csv FILE or BENCH_CSV) as bench "serve"; bench/report.py
   tables them. usage: bench_serve [--quick] [--decode | --mixed | --multi] [bench_util opts] */
#define _POSIX_C_SOURCE 200809L

#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"

#include "bench/bench_util.h"

static unsigned g_seed = 1;
static float *frand(size_t count, float scale) { return bu_frand(count, g_seed++, scale); }
static void check(lort_status st, const char *what) {
    if (st != LORT_OK) {
        fprintf(stderr, "bench_serve: %s: %s\n", what, lort_status_string(st));
        exit(1);
    }
}

/* ---- a) decode ----------------------------------------------------------------------------- */
/* One context for the three operations of a decode row; each call moves to the next of the
   cnt adapters (cnt = 1: the hot row). */
typedef struct {
    int op; /* 0 stream (the limit), 1 lort_adapter_forward, 2 hand */
    int d, r, cnt, cur;
    float **P;          /* cnt adapters' params: A (r, d) then B (d, r) */
    float *x, *y, *h;
    lort_adapter a;
    void *work;
    size_t ws;
    volatile float sink;
} dec_ctx;
/* the two loops an engine author writes: h = A x, y += s B h */
static void hand_lora(const float *LORT_RESTRICT A, const float *LORT_RESTRICT B,
                      const float *LORT_RESTRICT x, float *LORT_RESTRICT y,
                      float *LORT_RESTRICT h, int d_in, int d_out, int r, float s) {
    for (int q = 0; q < r; ++q) {
        const float *a = A + (size_t)q * (size_t)d_in;
        float p[16] = {0}, acc = 0.0f;
        int j = 0;
        for (; j + 16 <= d_in; j += 16)
            for (int t = 0; t < 16; ++t) p[t] += a[j + t] * x[j + t];
        for (int t = 0; t < 16; ++t) acc += p[t];
        for (; j < d_in; ++j) acc += a[j] * x[j];
        h[q] = acc;
    }
    for (int o = 0; o < d_out; ++o) {
        const float *b = B + (size_t)o * (size_t)r;
        float p[8] = {0}, acc;
        int q = 0;
        for (; q + 8 <= r; q += 8)
            for (int t = 0; t < 8; ++t) p[t] += b[q + t] * h[q + t];
        acc = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
        for (; q < r; ++q) acc += b[q] * h[q];
        y[o] += s * acc;
    }
}
static void dec_op(void *c) {
    dec_ctx *k = (dec_ctx *)c;
    float *P = k->P[k->cur];
    k->cur = k->cur + 1 == k->cnt ? 0 : k->cur + 1;
    if (k->op == 0) { /* stream A and B once */
        size_t count = 2u * (size_t)k->r * (size_t)k->d, j;
        float acc[32] = {0};
        for (j = 0; j + 32 <= count; j += 32)
            for (size_t t = 0; t < 32; ++t) acc[t] += P[j + t];
        k->sink = acc[0] + acc[7] + acc[15] + acc[31];
    } else if (k->op == 1) {
        k->a.params = P;
        check(lort_adapter_forward(&k->a, k->y, k->x, 1, NULL, 0, k->work, k->ws), "forward");
    } else {
        hand_lora(P, P + (size_t)k->r * (size_t)k->d, k->x, k->y, k->h, k->d, k->d, k->r, 1.0f);
    }
}
typedef struct {
    lort_adapter a;
    float *y, *x;
    void *work;
    size_t ws;
    int n;
} fwd_ctx;
static void fwd_op(void *c) {
    fwd_ctx *f = (fwd_ctx *)c;
    check(lort_adapter_forward(&f->a, f->y, f->x, f->n, NULL, 0, f->work, f->ws), "forward");
}

/* Different operations sampled interleaved (bu_time_many takes one function). */
typedef struct {
    bu_fn fn;
    void *ctx;
} any_op;
static void any_run(void *c) { ((any_op *)c)->fn(((any_op *)c)->ctx); }
static void time_ops(const any_op *ops, int count, double *t) {
    void *ctx[8];
    for (int i = 0; i < count; ++i) ctx[i] = (void *)(uintptr_t)&ops[i];
    bu_time_many(any_run, ctx, count, t);
}

static void tt3(lort_tt_desc *t, int a, int b, int c, int rank) {
    memset(t, 0, sizeof *t);
    t->n_cores = 3;
    t->modes[0] = a;
    t->modes[1] = b;
    t->modes[2] = c;
    t->rank = rank;
}
/* A family adapter of width d for the n = 1 table; returns 0 if not built for this d. */
static int family(lort_adapter *a, lort_kind kind, int d, int r) {
    memset(a, 0, sizeof *a);
    a->kind = kind;
    switch (kind) {
    case LORT_KIND_LORA: a->desc.lora.d_in = d; a->desc.lora.d_out = d; a->desc.lora.r = r; break;
    case LORT_KIND_LORAXS: a->desc.loraxs.d_in = d; a->desc.loraxs.d_out = d; a->desc.loraxs.r = r; break;
    case LORT_KIND_TT_REP: /* W_A (d, r), W_B (r, d) as 3 cores each, rank 4 */
        a->desc.tt_rep.d_in = d; a->desc.tt_rep.d_out = d; a->desc.tt_rep.r = r;
        tt3(&a->desc.tt_rep.A, 32, d / 32, r, 4);
        tt3(&a->desc.tt_rep.B, r, d / 32, 32, 4);
        break;
    case LORT_KIND_CP:
        a->desc.cp.d = d; a->desc.cp.heads = d / 128; a->desc.cp.layers = 32; a->desc.cp.r = r;
        break;
    case LORT_KIND_TUCKER:
        a->desc.tucker.d = d; a->desc.tucker.heads = d / 128; a->desc.tucker.layers = 32;
        a->desc.tucker.r1 = r; a->desc.tucker.r2 = r; a->desc.tucker.rh = 4; a->desc.tucker.rl = 4;
        a->desc.tucker.rm = 4;
        break;
    case LORT_KIND_MPO: /* d = 32 * 32 (* 4): 2 or 3 cores, bond 16 */
        a->desc.mpo.n_cores = d == 1024 ? 2 : 3;
        for (int k = 0; k < a->desc.mpo.n_cores; ++k) {
            a->desc.mpo.row_factors[k] = k < 2 ? 32 : 4;
            a->desc.mpo.col_factors[k] = k < 2 ? 32 : 4;
        }
        a->desc.mpo.bond = 16;
        break;
    case LORT_KIND_TT_ADP:
        a->desc.tt_adp.hidden = d; a->desc.tt_adp.bottleneck = r;
        a->desc.tt_adp.placement = LORT_TT_ADP_INPUT;
        tt3(&a->desc.tt_adp.down, 32, d / 32, r, 4);
        break;
    default: return 0;
    }
    return 1;
}
static const char *kind_name(lort_kind k) {
    static const char *names[] = {"none", "lora", "loraxs", "tt_rep", "mpo", "cp", "tucker", "tt_adp"};
    return names[k];
}

/* one decode row: lora, hand and limit over cnt adapters, interleaved */
static void decode_row(int d, int r, int cnt, const char *op, int quick) {
    dec_ctx k[3];
    void *ctx[3];
    double t[3];
    lort_adapter a;
    lort_adapter_sizes z;
    size_t per;
    float **P = (float **)bu_alloc((size_t)cnt * sizeof(float *));
    float *x = frand((size_t)d, 1.0f), *y = bu_falloc((size_t)d), *h = bu_falloc(64);
    family(&a, LORT_KIND_LORA, d, r);
    check(lort_adapter_sizes_query(&a, 1, &z), "sizes");
    per = z.params;
    for (int i = 0; i < cnt; ++i) P[i] = frand(per, 0.05f);
    void *work = bu_alloc(z.work);
    for (int i = 0; i < 3; ++i) {
        memset(&k[i], 0, sizeof k[i]);
        k[i].op = i; k[i].d = d; k[i].r = r; k[i].cnt = cnt; k[i].P = P; k[i].x = x;
        k[i].y = y; k[i].h = h; k[i].a = a; k[i].work = work; k[i].ws = z.work;
        ctx[i] = &k[i];
    }
    bu_time_many(dec_op, ctx, 3, t);
    printf("   %-4s %5d %3d %5d %9.1f %9.2f %9.2f %9.2f %7.1f | %-8.2f %-8.2f %s\n", op, d, r, cnt,
           (double)cnt * (double)per * 4.0 / 1048576.0, t[0] * 1e6, t[1] * 1e6, t[2] * 1e6,
           (double)per * 4.0 / t[0] * 1e-9, t[1] / t[0], t[1] / t[2],
           cnt == 1 ? "(informative)" : (t[1] / t[0] <= 1.2 && t[1] / t[2] <= 1.2) ? "PASS" : "MISS");
    bu_csv_row("lora", op, 1, r, d, "limit", t[0], "A+B bytes at the measured read bandwidth");
    bu_csv_row("lora", op, 1, r, d, "lortensor", t[1], "");
    bu_csv_row("lora", op, 1, r, d, "hand", t[2], "two loops, same flags");
    for (int i = 0; i < cnt; ++i) free(P[i]);
    free(P); free(x); free(y); free(h); free(work);
    (void)quick;
}

static void section_decode(int quick) {
    static const int ds[] = {1024, 4096}, rs[] = {8, 16};
    printf("a) n = 1 forward (decode path), times in us per call. dram: each call the next of K\n"
           "   adapters (K >= 128 = 32 layers x 4 sites, K (A + B) >= 64 MiB, past the last-level\n"
           "   cache); hot: one adapter, in L2. limit = streaming the same A and B (same order,\n"
           "   same bytes) at the read bandwidth measured here. Target (dram): lora <= 1.2 limit\n"
           "   and <= 1.2 hand.\n");
    printf("   %-4s %5s %3s %5s %9s %9s %9s %9s %7s | %-8s %-8s\n", "row", "d", "r", "K", "MiB",
           "limit", "lora", "hand", "GB/s", "lora/lim", "lora/hand");
    for (int di = 0; di < 2; ++di)
        for (int ri = 0; ri < (quick ? 1 : 2); ++ri) {
            int d = ds[di], r = rs[ri];
            size_t per = 2u * (size_t)r * (size_t)d * sizeof(float);
            size_t k = ((size_t)64 << 20) / per + 1;
            decode_row(d, r, k < 128 ? 128 : (int)k, "dram", quick);
            decode_row(d, r, 1, "hot", quick);
        }
    printf("   per family, n = 1 (hot): ns per KiB of factors read (params + frozen), and / lora's"
           " (target <= 2)\n");
    static const lort_kind kinds[] = {LORT_KIND_LORA, LORT_KIND_LORAXS, LORT_KIND_TT_REP,
                                      LORT_KIND_CP, LORT_KIND_TUCKER, LORT_KIND_MPO,
                                      LORT_KIND_TT_ADP};
    for (int di = 0; di < 2; ++di) {
        int d = ds[di], r = 16;
        double lora_per = 0.0;
        for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; ++k) {
            fwd_ctx f;
            lort_adapter_sizes z;
            family(&f.a, kinds[k], d, r);
            check(lort_adapter_sizes_query(&f.a, 1, &z), kind_name(kinds[k]));
            f.a.params = frand(z.params, 0.05f);
            f.a.frozen = z.frozen_bytes ? frand(z.frozen_bytes / 4, 0.05f) : NULL;
            f.x = frand((size_t)d, 1.0f);
            f.y = bu_falloc((size_t)d);
            f.ws = z.work;
            f.work = bu_alloc(z.work);
            f.n = 1;
            double t = bu_time(fwd_op, &f).median;
            double kib = ((double)z.params * 4.0 + (double)z.frozen_bytes) / 1024.0;
            double per = t * 1e9 / kib;
            if (kinds[k] == LORT_KIND_LORA) lora_per = per;
            printf("   d %5d %-7s %8.2f us %9.1f KiB %8.1f ns/KiB  x%-6.2f %s\n", d,
                   kind_name(kinds[k]), t * 1e6, kib, per, per / lora_per,
                   per / lora_per <= 2.0 ? "PASS" : "MISS");
            bu_csv_row(kind_name(kinds[k]), "decode_family", 1, r, d, "lortensor", t, "");
            free(f.a.params); free(f.a.frozen); free(f.x); free(f.y); free(f.work);
        }
    }
}

/* ---- b), c) mixed batches --------------------------------------------------------------------- */
typedef struct {
    lort_adapter *ad;
    int na, n, d;
    const int *ra;
    float *y, *x;
    void *work;
    size_t ws;
    /* the caller's loop */
    float *xs, *ys;
} mix_ctx;
static void mixed_op(void *c) {
    mix_ctx *m = (mix_ctx *)c;
    check(lort_mixed_forward(m->ad, m->na, m->y, m->x, m->ra, m->n, m->work, m->ws), "mixed");
}
static void loop_op(void *c) { /* PEFT's way: per adapter, gather its rows, apply, scatter */
    mix_ctx *m = (mix_ctx *)c;
    size_t d = (size_t)m->d;
    for (int a = 0; a < m->na; ++a) {
        int k = 0;
        for (int i = 0; i < m->n; ++i)
            if (m->ra[i] == a) memcpy(m->xs + (size_t)k++ * d, m->x + (size_t)i * d, d * sizeof(float));
        if (!k) continue;
        memset(m->ys, 0, (size_t)k * d * sizeof(float));
        check(lort_adapter_forward(&m->ad[a], m->ys, m->xs, k, NULL, 0, m->work, m->ws), "loop");
        k = 0;
        for (int i = 0; i < m->n; ++i)
            if (m->ra[i] == a) {
                float *yr = m->y + (size_t)i * d;
                const float *s = m->ys + (size_t)k++ * d;
                for (size_t j = 0; j < d; ++j) yr[j] += s[j];
            }
    }
}

static void section_mixed(int quick) {
    enum { D = 4096, R = 16 };
    /* b) LoRA-XS, one basis */
    {
        enum { N = 256 };
        static const int users[] = {1, 16, 256, 4096};
        float *frozen = frand((size_t)R * 2 * D, 0.05f);
        float *Rs = frand((size_t)4096 * R * R, 0.5f);
        float *x = frand((size_t)N * D, 1.0f), *y = (float *)bu_alloc((size_t)N * D * 4);
        lort_adapter *ad = (lort_adapter *)bu_alloc(4096 * sizeof(lort_adapter));
        int ra[N];
        for (int a = 0; a < 4096; ++a) {
            family(&ad[a], LORT_KIND_LORAXS, D, R);
            ad[a].frozen = frozen;
            ad[a].params = Rs + (size_t)a * R * R;
        }
        fwd_ctx one = {ad[0], y, x, NULL, 0, N};
        lort_adapter_sizes z;
        check(lort_adapter_sizes_query(&ad[0], N, &z), "sizes");
        one.ws = z.work;
        one.work = bu_alloc(z.work);
        printf("b) mixed LoRA-XS, one shared basis, %d rows, d %d, r %d; times in us, the mixed call"
               " and one lort_loraxs_forward of the same rows sampled interleaved\n", N, D, R);
        printf("   %6s %10s %10s %12s %s\n", "users", "mixed us", "one us", "throughput",
               "(mixed over one adapter; target >= 0.9 at 4096)");
        for (size_t u = 0; u < sizeof users / sizeof users[0]; ++u) {
            mix_ctx m;
            double t[2];
            char note[32];
            for (int i = 0; i < N; ++i) ra[i] = users[u] == 1 ? 0 : (int)(((unsigned)i * 2654435761u) % (unsigned)users[u]);
            memset(&m, 0, sizeof m);
            m.ad = ad; m.na = users[u]; m.n = N; m.d = D; m.ra = ra; m.y = y; m.x = x;
            check(lort_mixed_workspace_size(ad, m.na, N, &m.ws), "ws");
            m.work = bu_alloc(m.ws);
            any_op ops[2] = {{mixed_op, &m}, {fwd_op, &one}};
            time_ops(ops, 2, t);
            printf("   %6d %10.0f %10.0f %12.2f %s\n", users[u], t[0] * 1e6, t[1] * 1e6, t[1] / t[0],
                   users[u] == 4096 ? (t[1] / t[0] >= 0.9 ? "PASS" : "MISS") : "");
            snprintf(note, sizeof note, "%d users", users[u]);
            bu_csv_row("loraxs", "mixed_shared", N, R, D, "lortensor", t[0], note);
            bu_csv_row("loraxs", "mixed_shared", N, R, D, "one_adapter", t[1], note);
            free(m.work);
        }
        free(frozen); free(Rs); free(x); free(y); free(ad); free(one.work);
    }
    /* c) LoRA, distinct adapters */
    {
        enum { N = 64 };
        static const int counts[] = {1, 4, 16};
        lort_adapter ad[16];
        float *P[16];
        float *x = frand((size_t)N * D, 1.0f), *y = (float *)bu_alloc((size_t)N * D * 4);
        int ra[N];
        lort_adapter_sizes z;
        for (int a = 0; a < 16; ++a) {
            family(&ad[a], LORT_KIND_LORA, D, R);
            check(lort_adapter_sizes_query(&ad[a], N, &z), "sizes");
            P[a] = frand(z.params, 0.05f);
            ad[a].params = P[a];
        }
        fwd_ctx one = {ad[0], y, x, NULL, 0, N};
        one.ws = z.work;
        one.work = bu_alloc(z.work);
        printf("c) mixed LoRA, distinct A and B, %d rows, d %d, r %d; times in us, sampled"
               " interleaved\n", N, D, R);
        printf("   %8s %10s %10s %10s %11s %11s %s\n", "adapters", "mixed us", "loop us", "one us",
               "mixed thr", "loop thr", "(throughput over one adapter; target >= 0.9 at 16)");
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; ++c) {
            mix_ctx m;
            double t[3];
            char note[32];
            for (int i = 0; i < N; ++i) ra[i] = (int)(((unsigned)i * 2654435761u) % (unsigned)counts[c]);
            memset(&m, 0, sizeof m);
            m.ad = ad; m.na = counts[c]; m.n = N; m.d = D; m.ra = ra; m.y = y; m.x = x;
            check(lort_mixed_workspace_size(ad, m.na, N, &m.ws), "ws");
            m.work = bu_alloc(m.ws);
            m.xs = (float *)bu_alloc((size_t)N * D * 4);
            m.ys = (float *)bu_alloc((size_t)N * D * 4);
            any_op ops[3] = {{mixed_op, &m}, {loop_op, &m}, {fwd_op, &one}};
            time_ops(ops, 3, t);
            printf("   %8d %10.0f %10.0f %10.0f %11.2f %11.2f %s\n", counts[c], t[0] * 1e6, t[1] * 1e6,
                   t[2] * 1e6, t[2] / t[0], t[2] / t[1],
                   counts[c] == 16 ? (t[2] / t[0] >= 0.9 ? "PASS" : "MISS") : "");
            snprintf(note, sizeof note, "%d adapters", counts[c]);
            bu_csv_row("lora", "mixed", N, R, D, "lortensor", t[0], note);
            bu_csv_row("lora", "mixed", N, R, D, "caller_loop", t[1], note);
            bu_csv_row("lora", "mixed", N, R, D, "one_adapter", t[2], note);
            free(m.work); free(m.xs); free(m.ys);
        }
        for (int a = 0; a < 16; ++a) free(P[a]);
        free(x); free(y); free(one.work);
    }
    (void)quick;
}

/* ---- d) one call per layer ---------------------------------------------------------------------- */
typedef struct {
    lort_adapter *ad;
    int count, n;
    float **y;
    const float *x;
    void *work;
    size_t ws;
} multi_ctx;
static void sites_op(void *c) {
    multi_ctx *m = (multi_ctx *)c;
    for (int i = 0; i < m->count; ++i)
        check(lort_adapter_forward(&m->ad[i], m->y[i], m->x, m->n, NULL, 0, m->work, m->ws), "site");
}
static void multi_op(void *c) {
    multi_ctx *m = (multi_ctx *)c;
    check(lort_multi_forward(m->ad, m->count, m->y, m->x, m->n, m->work, m->ws), "multi");
}
static void section_multi(int quick) {
    enum { D = 1024, R = 16 };
    static const int ns[] = {1, 16, 512};
    printf("d) one call for q, k, v (d %d, r %d): three per-site calls over one lort_multi_forward"
           " (sampled interleaved)\n", D, R);
    printf("   %-5s %5s %10s %10s %8s\n", "kind", "n", "sites us", "multi us", "gain");
    for (int kind = 0; kind < 2; ++kind) {
        lort_adapter ad[3];
        float *P[3] = {NULL, NULL, NULL};
        lort_adapter_sizes z;
        for (int i = 0; i < 3; ++i) {
            family(&ad[i], kind ? LORT_KIND_CP : LORT_KIND_LORA, D, R);
            check(lort_adapter_sizes_query(&ad[i], 512, &z), "sizes");
            if (!kind || i == 0) P[i] = frand(z.params, 0.05f);
            ad[i].params = kind ? P[0] : P[i];
            ad[i].matrix = kind ? i : 0;
        }
        for (size_t t = 0; t < sizeof ns / sizeof ns[0]; ++t) {
            int n = ns[t];
            if (quick && n == 512) continue;
            multi_ctx m;
            float *ys[3];
            size_t maxw = 0;
            for (int i = 0; i < 3; ++i) {
                check(lort_adapter_sizes_query(&ad[i], n, &z), "sizes");
                if (z.work > maxw) maxw = z.work;
                ys[i] = (float *)bu_alloc((size_t)n * D * 4);
            }
            float *x = frand((size_t)n * D, 1.0f);
            m.ad = ad; m.count = 3; m.n = n; m.y = ys; m.x = x;
            multi_ctx m2 = m;
            double tm[2];
            m.ws = maxw;
            m.work = bu_alloc(maxw);
            check(lort_multi_workspace_size(ad, 3, n, &m2.ws), "ws");
            m2.work = bu_alloc(m2.ws);
            any_op ops[2] = {{sites_op, &m}, {multi_op, &m2}};
            time_ops(ops, 2, tm);
            printf("   %-5s %5d %10.2f %10.2f %8.2f\n", kind ? "cp" : "lora", n, tm[0] * 1e6,
                   tm[1] * 1e6, tm[0] / tm[1]);
            bu_csv_row(kind ? "cp" : "lora", "multi_qkv", n, R, D, "per_site", tm[0], "");
            bu_csv_row(kind ? "cp" : "lora", "multi_qkv", n, R, D, "lortensor", tm[1], "");
            free(m2.work);
            free(m.work); free(x);
            for (int i = 0; i < 3; ++i) free(ys[i]);
        }
        for (int i = 0; i < 3; ++i) free(P[i]);
    }
}

int main(int argc, char **argv) {
    int only = 0; /* 1 decode, 2 mixed, 3 multi */
    argc = bu_init("serve", argc, argv);
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--decode")) only = 1;
        else if (!strcmp(argv[i], "--mixed")) only = 2;
        else if (!strcmp(argv[i], "--multi")) only = 3;
        else {
            fprintf(stderr, "usage: bench_serve [--quick] [--decode | --mixed | --multi] [--samples N]"
                            " [--cpu-time | --wall-time] [--csv FILE]\n");
            return 2;
        }
    }
    printf("bench_serve: lortensor %s, GEMM backend %s, %s clock\n", lort_version_string(),
           lort_gemm_backend(), BU.clock == CLOCK_MONOTONIC ? "wall" : "process CPU");
    if (!only || only == 1) section_decode(BU.quick);
    if (!only || only == 2) section_mixed(BU.quick);
    if (!only || only == 3) section_multi(BU.quick);
    return 0;
}
