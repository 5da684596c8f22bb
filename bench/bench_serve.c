/* bench/bench_serve.c - serving figures: decode at n = 1, mixed-adapter batches,
   one call for the sites that share an input.

   Sections:
     a) n = 1 forward, d_in = d_out in {1024, 4096}, r in {8, 16}: lort_lora_forward beside a
        hand-written two-loop LoRA and beside the bytes-moved limit (A and B read once at the
        read bandwidth measured here on a buffer of the same size, summed with 32 partial sums);
        every family's n = 1 forward in ns per KiB of factors read (params + frozen), over
        LoRA's.
     b) mixed batch, LoRA-XS with one shared basis: 256 rows, d = 4096, r = 16, over 1, 16, 256
        and 4096 users; throughput over one lort_loraxs_forward of the same 256 rows.
     c) mixed batch, LoRA (distinct A, B): 64 rows, d = 4096, r = 16, over 1, 4, 16 adapters;
        lort_mixed_forward and a caller's loop (gather, lort_lora_forward, scatter per adapter),
        both over one lort_lora_forward of the 64 rows.
     d) one call per layer: q, k, v as three lora sites (d = 1024, r = 16) and as three cp sites
        of one block, at n = 1, 16, 512: three lort_adapter_forward calls over one
        lort_multi_forward.

   Protocol: each operation runs once cold and once to calibrate; a sample is k back-to-back
   calls with k chosen so a sample lasts >= 2 ms; the time is the fastest of 7 samples of
   (sample time / k), measured as this thread's CPU time (CLOCK_THREAD_CPUTIME_ID): on a shared
   machine wall time mostly measures the neighbours. Run with OPENBLAS_NUM_THREADS=1 (all work
   on the calling thread). Ratios compare figures of this one run. usage: bench_serve [--quick] [--decode | --mixed | --multi] */
#define _POSIX_C_SOURCE 200809L

#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- timing kit ---------------------------------------------------------------------------- */
typedef void (*op_fn)(void *ctx);
static double now_s(void) { /* this thread's CPU time: the machine is shared (run with
                               OPENBLAS_NUM_THREADS=1 so that all work is on this thread) */
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static int g_samples = 7;
/* median seconds per call */
static double time_op(op_fn fn, void *ctx) {
    double t0, one, s[32];
    long k, i;
    int j;
    fn(ctx);
    t0 = now_s();
    fn(ctx);
    one = now_s() - t0;
    k = one > 2e-3 ? 1 : (long)(2e-3 / (one > 1e-9 ? one : 1e-9)) + 1;
    for (j = 0; j < g_samples; ++j) {
        t0 = now_s();
        for (i = 0; i < k; ++i) fn(ctx);
        s[j] = (now_s() - t0) / (double)k;
    }
    qsort(s, (size_t)g_samples, sizeof(double), cmp_double);
    return s[0]; /* the fastest sample: others were slowed by neighbours (caches, time slices) */
}
static void *xalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    memset(p, 0, bytes ? bytes : 1);
    return p;
}
static float *frand(size_t count, float scale, unsigned *seed) {
    float *p = (float *)xalloc(count * sizeof(float));
    for (size_t i = 0; i < count; ++i) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i] = scale * ((float)(*seed >> 8) * (1.0f / 8388608.0f) - 1.0f);
    }
    return p;
}
static void check(lort_status st, const char *what) {
    if (st != LORT_OK) {
        fprintf(stderr, "%s: %s\n", what, lort_status_string(st));
        exit(1);
    }
}

/* ---- a) decode ----------------------------------------------------------------------------- */
typedef struct {
    const float *buf;
    size_t count;
    volatile float sink;
} bw_ctx;
static void bw_op(void *c) { /* read count floats, 32 partial sums (vectorised) */
    bw_ctx *b = (bw_ctx *)c;
    float acc[32] = {0};
    size_t j, t;
    for (j = 0; j + 32 <= b->count; j += 32)
        for (t = 0; t < 32; ++t) acc[t] += b->buf[j + t];
    b->sink = acc[0] + acc[7] + acc[15] + acc[31];
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
    lort_status st = lort_adapter_forward(&f->a, f->y, f->x, f->n, NULL, 0, f->work, f->ws);
    if (st) check(st, "forward");
}
typedef struct {
    const float *A, *B, *x;
    float *y, *h, s;
    int d_in, d_out, r;
} hand_ctx;
static void hand_op(void *c) { /* the two loops an engine author writes first */
    hand_ctx *k = (hand_ctx *)c;
    for (int q = 0; q < k->r; ++q) {
        float acc = 0.0f;
        for (int j = 0; j < k->d_in; ++j) acc += k->A[(size_t)q * (size_t)k->d_in + (size_t)j] * k->x[j];
        k->h[q] = acc;
    }
    for (int o = 0; o < k->d_out; ++o) {
        float acc = 0.0f;
        for (int q = 0; q < k->r; ++q) acc += k->B[(size_t)o * (size_t)k->r + (size_t)q] * k->h[q];
        k->y[o] += k->s * acc;
    }
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

static void section_decode(int quick) {
    static const int ds[] = {1024, 4096}, rs[] = {8, 16};
    unsigned seed = 1;
    printf("a) n = 1 forward (decode path), times in us; limit = (A + B bytes) / read bandwidth\n");
    printf("   %5s %3s %9s %9s %9s %9s | %-9s %-9s\n", "d", "r", "limit", "lora", "hand", "GB/s",
           "lora/lim", "lora/hand");
    for (int di = 0; di < 2; ++di)
        for (int ri = 0; ri < (quick ? 1 : 2); ++ri) {
            int d = ds[di], r = rs[ri];
            fwd_ctx f;
            lort_adapter_sizes z;
            family(&f.a, LORT_KIND_LORA, d, r);
            check(lort_adapter_sizes_query(&f.a, 1, &z), "sizes");
            f.a.params = frand(z.params, 0.05f, &seed);
            f.x = frand((size_t)d, 1.0f, &seed);
            f.y = (float *)xalloc((size_t)d * sizeof(float));
            f.ws = z.work;
            f.work = xalloc(z.work);
            f.n = 1;
            bw_ctx b = {f.a.params, z.params, 0.0f};
            double tb = time_op(bw_op, &b);
            double tl = time_op(fwd_op, &f);
            hand_ctx h = {f.a.params, f.a.params + (size_t)r * (size_t)d, f.x, f.y, NULL, 1.0f, d, d, r};
            h.h = (float *)xalloc((size_t)r * sizeof(float));
            double th = time_op(hand_op, &h);
            printf("   %5d %3d %9.2f %9.2f %9.2f %9.1f | %-9.2f %-9.2f %s\n", d, r, tb * 1e6, tl * 1e6,
                   th * 1e6, (double)z.params * 4.0 / tb * 1e-9, tl / tb, tl / th,
                   (tl / tb <= 1.2 && tl / th <= 1.2) ? "PASS" : "MISS");
            free(f.a.params); free(f.x); free(f.y); free(f.work); free(h.h);
        }
    printf("   per family, n = 1: ns per KiB of factors read (params + frozen), and / lora's"
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
            f.a.params = frand(z.params, 0.05f, &seed);
            f.a.frozen = z.frozen_bytes ? frand(z.frozen_bytes / 4, 0.05f, &seed) : NULL;
            f.x = frand((size_t)d, 1.0f, &seed);
            f.y = (float *)xalloc((size_t)d * sizeof(float));
            f.ws = z.work;
            f.work = xalloc(z.work);
            f.n = 1;
            double t = time_op(fwd_op, &f);
            double kib = ((double)z.params * 4.0 + (double)z.frozen_bytes) / 1024.0;
            double per = t * 1e9 / kib;
            if (kinds[k] == LORT_KIND_LORA) lora_per = per;
            printf("   d %5d %-7s %8.2f us %9.1f KiB %8.1f ns/KiB  x%-6.2f %s\n", d,
                   kind_name(kinds[k]), t * 1e6, kib, per, per / lora_per,
                   per / lora_per <= 2.0 ? "PASS" : "MISS");
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
    unsigned seed = 7;
    /* b) LoRA-XS, one basis */
    {
        enum { N = 256 };
        static const int users[] = {1, 16, 256, 4096};
        float *frozen = frand((size_t)R * 2 * D, 0.05f, &seed);
        float *Rs = frand((size_t)4096 * R * R, 0.5f, &seed);
        float *x = frand((size_t)N * D, 1.0f, &seed), *y = (float *)xalloc((size_t)N * D * 4);
        lort_adapter *ad = (lort_adapter *)xalloc(4096 * sizeof(lort_adapter));
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
        one.work = xalloc(z.work);
        double t1 = time_op(fwd_op, &one);
        printf("b) mixed LoRA-XS, one shared basis, %d rows, d %d, r %d: one lort_loraxs_forward"
               " %.0f us\n", N, D, R, t1 * 1e6);
        printf("   %6s %10s %12s %s\n", "users", "mixed us", "throughput", "(over one adapter; target >= 0.9 at 4096)");
        for (size_t u = 0; u < sizeof users / sizeof users[0]; ++u) {
            mix_ctx m;
            for (int i = 0; i < N; ++i) ra[i] = users[u] == 1 ? 0 : (int)(((unsigned)i * 2654435761u) % (unsigned)users[u]);
            memset(&m, 0, sizeof m);
            m.ad = ad; m.na = users[u]; m.n = N; m.d = D; m.ra = ra; m.y = y; m.x = x;
            check(lort_mixed_workspace_size(ad, m.na, N, &m.ws), "ws");
            m.work = xalloc(m.ws);
            double t = time_op(mixed_op, &m);
            printf("   %6d %10.0f %12.2f %s\n", users[u], t * 1e6, t1 / t,
                   users[u] == 4096 ? (t1 / t >= 0.9 ? "PASS" : "MISS") : "");
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
        float *x = frand((size_t)N * D, 1.0f, &seed), *y = (float *)xalloc((size_t)N * D * 4);
        int ra[N];
        lort_adapter_sizes z;
        for (int a = 0; a < 16; ++a) {
            family(&ad[a], LORT_KIND_LORA, D, R);
            check(lort_adapter_sizes_query(&ad[a], N, &z), "sizes");
            P[a] = frand(z.params, 0.05f, &seed);
            ad[a].params = P[a];
        }
        fwd_ctx one = {ad[0], y, x, NULL, 0, N};
        one.ws = z.work;
        one.work = xalloc(z.work);
        double t1 = time_op(fwd_op, &one);
        printf("c) mixed LoRA, distinct A and B, %d rows, d %d, r %d: one lort_lora_forward %.0f us\n",
               N, D, R, t1 * 1e6);
        printf("   %8s %10s %10s %11s %11s %s\n", "adapters", "mixed us", "loop us", "mixed thr", "loop thr",
               "(throughput over one adapter; target >= 0.9 at 16)");
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; ++c) {
            mix_ctx m;
            for (int i = 0; i < N; ++i) ra[i] = (int)(((unsigned)i * 2654435761u) % (unsigned)counts[c]);
            memset(&m, 0, sizeof m);
            m.ad = ad; m.na = counts[c]; m.n = N; m.d = D; m.ra = ra; m.y = y; m.x = x;
            check(lort_mixed_workspace_size(ad, m.na, N, &m.ws), "ws");
            m.work = xalloc(m.ws);
            m.xs = (float *)xalloc((size_t)N * D * 4);
            m.ys = (float *)xalloc((size_t)N * D * 4);
            double t = time_op(mixed_op, &m), tl = time_op(loop_op, &m);
            printf("   %8d %10.0f %10.0f %11.2f %11.2f %s\n", counts[c], t * 1e6, tl * 1e6, t1 / t,
                   t1 / tl, counts[c] == 16 ? (t1 / t >= 0.9 ? "PASS" : "MISS") : "");
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
    unsigned seed = 9;
    printf("d) one call for q, k, v (d %d, r %d): three per-site calls over one lort_multi_forward\n", D, R);
    printf("   %-5s %5s %10s %10s %8s\n", "kind", "n", "sites us", "multi us", "gain");
    for (int kind = 0; kind < 2; ++kind) {
        lort_adapter ad[3];
        float *P[3] = {NULL, NULL, NULL};
        lort_adapter_sizes z;
        for (int i = 0; i < 3; ++i) {
            family(&ad[i], kind ? LORT_KIND_CP : LORT_KIND_LORA, D, R);
            check(lort_adapter_sizes_query(&ad[i], 512, &z), "sizes");
            if (!kind || i == 0) P[i] = frand(z.params, 0.05f, &seed);
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
                ys[i] = (float *)xalloc((size_t)n * D * 4);
            }
            float *x = frand((size_t)n * D, 1.0f, &seed);
            m.ad = ad; m.count = 3; m.n = n; m.y = ys; m.x = x;
            m.ws = maxw;
            m.work = xalloc(maxw);
            double ts = time_op(sites_op, &m);
            free(m.work);
            check(lort_multi_workspace_size(ad, 3, n, &m.ws), "ws");
            m.work = xalloc(m.ws);
            double tm = time_op(multi_op, &m);
            printf("   %-5s %5d %10.2f %10.2f %8.2f\n", kind ? "cp" : "lora", n, ts * 1e6, tm * 1e6, ts / tm);
            free(m.work); free(x);
            for (int i = 0; i < 3; ++i) free(ys[i]);
        }
        for (int i = 0; i < 3; ++i) free(P[i]);
    }
}

int main(int argc, char **argv) {
    int quick = 0, only = 0; /* 1 decode, 2 mixed, 3 multi */
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--decode")) only = 1;
        else if (!strcmp(argv[i], "--mixed")) only = 2;
        else if (!strcmp(argv[i], "--multi")) only = 3;
    }
    if (quick) g_samples = 5;
    printf("bench_serve: lortensor %s, GEMM backend %s\n", lort_version_string(), lort_gemm_backend());
    if (!only || only == 1) section_decode(quick);
    if (!only || only == 2) section_mixed(quick);
    if (!only || only == 3) section_multi(quick);
    return 0;
}
