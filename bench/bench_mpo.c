/* bench_mpo: the mpo family (DoTA) factored vs dense, forward + backward, at d = 4096, and the
   NF4 GEMM against the fp32 GEMM of the same layer. Timing: bench/bench_util.h (bu_time for
   the path comparison; the QDoTA and NF4 rows take the median of a few back-to-back runs with
   its clock); every ratio is measured in the same run. Built and run by `make bench`.
   usage: bench_mpo [--quick] [--samples N] [--cpu-time] */
#define _POSIX_C_SOURCE 200809L
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <math.h>

#include "bench_util.h"

#define now bu_now
static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}
static float *frand(size_t count, unsigned seed, float scale) {
    float *p = (float *)xmalloc(count * sizeof(float));
    lort_rng r;
    lort_rng_seed(&r, seed);
    for (size_t i = 0; i < count; ++i) p[i] = scale * lort_rng_normal(&r);
    return p;
}
#define CHECK(call)                                                                          \
    do {                                                                                     \
        lort_status st_ = (call);                                                            \
        if (st_) {                                                                           \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, lort_status_string(st_));    \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

/* forward + backward of one mpo layer on a forced path: median seconds (bu_time; at most
   `reps` samples, the slow dense paths take few) */
typedef struct mpo_job {
    const lort_mpo_desc *d;
    int n;
    float *cores, *dc, *x, *dy, *y, *dx;
    void *work, *cache;
    size_t ws, cs;
} mpo_job;
static void mpo_step(void *p) {
    mpo_job *j = (mpo_job *)p;
    CHECK(lort_mpo_forward(j->d, j->y, j->x, j->cores, NULL, j->n, j->cache, j->cs, j->work, j->ws));
    CHECK(lort_mpo_backward(j->d, j->dx, j->dc, j->dy, j->x, j->cores, NULL, j->n, j->cache, j->cs,
                            j->work, j->ws));
}
static double time_mpo(const lort_mpo_desc *d, int n, int reps, size_t *ws_out) {
    size_t np;
    mpo_job j;
    int samples = BU.samples;
    double t;
    j.d = d, j.n = n;
    CHECK(lort_mpo_param_count(d, &np));
    CHECK(lort_mpo_workspace_size(d, n, &j.ws));
    CHECK(lort_mpo_cache_size(d, n, &j.cs));
    j.cores = frand(np, 1, 0.1f), j.dc = (float *)xmalloc(np * sizeof(float));
    j.x = frand((size_t)n * 4096, 2, 1.0f), j.dy = frand((size_t)n * 4096, 3, 1.0f);
    j.y = (float *)calloc((size_t)n * 4096, sizeof(float));
    j.dx = (float *)calloc((size_t)n * 4096, sizeof(float));
    j.work = xmalloc(j.ws), j.cache = xmalloc(j.cs);
    if (BU.samples > reps) BU.samples = reps;
    {
        bu_timing tm = bu_time(mpo_step, &j);
        t = tm.median;
    }
    BU.samples = samples;
    *ws_out = j.ws + j.cs;
    free(j.cores); free(j.dc); free(j.x); free(j.dy); free(j.y); free(j.dx); free(j.work);
    free(j.cache);
    return t;
}

/* the FLOPs the two paths execute (the estimate AUTO compares), from the train's shape */
static void mpo_flops(const lort_mpo_desc *d, int n, double *fac, double *den) {
    lort_mpo_desc r;
    CHECK(lort_mpo_desc_resolve(d, &r));
    int N = r.n_cores;
    double size = (double)r.d_in * (double)r.d_out, mat = 0.0, sweep = 0.0, f = 0.0;
    double rest[LORT_MPO_MAX_CORES + 1];
    rest[N] = 1.0;
    for (int k = N - 1; k >= 0; --k) rest[k] = rest[k + 1] * r.row_factors[k] * r.col_factors[k];
    for (int k = 0; k < N; ++k) {
        double m = (double)r.row_factors[k] * r.col_factors[k];
        double ia = 1.0, jb = 1.0;
        for (int q = k + 1; q < N; ++q) ia *= r.row_factors[q];
        for (int q = 0; q < k; ++q) jb *= r.col_factors[q];
        f += 2.0 * ia * n * jb * r.bonds[k] * m * r.bonds[k + 1];
        sweep += 4.0 * r.bonds[k] * m * rest[k + 1] * r.bonds[k + 1];
        if (k >= 1 && k + 1 < N) mat += 2.0 * r.bonds[k] * m * rest[k + 1] * r.bonds[k + 1];
    }
    if (N > 1) mat += 2.0 * size * r.bonds[1];
    *fac = 3.0 * f;
    *den = 2.0 * mat + 6.0 * n * size + sweep;
}

static void bench_mpo_paths(void) {
    const int n = 32, Ds[3] = {8, 32, 128};
    printf("\n### mpo (DoTA) forward + backward, d_in = d_out = 4096, factors (4,4,4,4,4,4) x "
           "(4,4,4,4,4,4), n = %d\n\n", n);
    printf("| D | params | path AUTO picks | factored ms | dense ms | factored GFLOP | dense "
           "GFLOP | dense / factored time |\n|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < 3; ++i) {
        lort_mpo_desc d;
        memset(&d, 0, sizeof d);
        d.n_cores = 6;
        for (int k = 0; k < 6; ++k) d.row_factors[k] = d.col_factors[k] = 4;
        d.bond = Ds[i];
        size_t np, wf, wd;
        int path;
        double ff, fd;
        CHECK(lort_mpo_param_count(&d, &np));
        CHECK(lort_mpo_path_used(&d, n, &path));
        mpo_flops(&d, n, &ff, &fd);
        d.path = LORT_MPO_FACTORED;
        double tf = time_mpo(&d, n, Ds[i] >= 128 ? 1 : 3, &wf);
        d.path = LORT_MPO_DENSE;
        double td = time_mpo(&d, n, 3, &wd);
        printf("| %d | %zu | %s | %.1f | %.1f | %.2f | %.2f | %.2f |\n", Ds[i], np,
               path == LORT_MPO_DENSE ? "dense" : "factored", 1e3 * tf, 1e3 * td, 1e-9 * ff,
               1e-9 * fd, td / tf);
        fflush(stdout);
    }
    printf("\n(the dense column includes materialising M twice: forward and backward; the "
           "factored path never forms the 4096 x 4096 matrix)\n");
}

static void bench_nf4(void) {
    const int n = 512, d = 4096, reps = 5;
    size_t cw = (size_t)d * (size_t)d, bytes, ws;
    float *W = frand(cw, 7, 0.02f), *x = frand((size_t)n * (size_t)d, 8, 1.0f), *dy = frand((size_t)n * (size_t)d, 9, 1.0f);
    float *y = (float *)calloc((size_t)n * (size_t)d, sizeof(float)), *dx = (float *)calloc((size_t)n * (size_t)d, sizeof(float));
    CHECK(lort_nf4_size(d, d, &bytes));
    CHECK(lort_nf4_linear_workspace_size(n, d, d, &ws));
    void *q = xmalloc(bytes), *work = xmalloc(ws);
    CHECK(lort_nf4_quantize(q, W, d, d));
    double tf[8], tq[8], bf[8], bq[8];
    for (int r = 0; r <= reps; ++r) {
        double t0 = now();
        CHECK(lort_sgemm(0, 1, n, d, d, 1.0f, x, d, W, d, 1.0f, y, d)); /* y += x W^T */
        double t1 = now();
        CHECK(lort_nf4_linear_forward(y, x, q, n, d, d, work, ws));
        double t2 = now();
        CHECK(lort_sgemm(0, 0, n, d, d, 1.0f, dy, d, W, d, 1.0f, dx, d)); /* dx += dy W */
        double t3 = now();
        CHECK(lort_nf4_linear_backward(dx, dy, q, n, d, d, work, ws));
        double t4 = now();
        if (r) {
            tf[r - 1] = t1 - t0; tq[r - 1] = t2 - t1; bf[r - 1] = t3 - t2; bq[r - 1] = t4 - t3;
        }
    }
    double mf = bu_median(tf, reps), mq = bu_median(tq, reps), mbf = bu_median(bf, reps), mbq = bu_median(bq, reps);
    double gf = 2.0 * n * (double)d * d * 1e-9;
    printf("\n### NF4 GEMM vs fp32 GEMM, n = %d, d_in = d_out = %d (target: NF4 <= 1.5x fp32)\n\n", n, d);
    printf("| op | fp32 ms | NF4 ms | NF4 / fp32 | fp32 GFLOP/s | result |\n|---|---|---|---|---|---|\n");
    printf("| forward y += x W^T | %.1f | %.1f | %.2f | %.0f | %s |\n", 1e3 * mf, 1e3 * mq, mq / mf,
           gf / mf, mq <= 1.5 * mf ? "PASS" : "MISS");
    printf("| backward dx += dy W | %.1f | %.1f | %.2f | %.0f | %s |\n", 1e3 * mbf, 1e3 * mbq,
           mbq / mbf, gf / mbf, mbq <= 1.5 * mbf ? "PASS" : "MISS");
    printf("\n| weight memory | bytes | bits / entry |\n|---|---|---|\n");
    printf("| fp32 W | %zu | 32 |\n", cw * 4);
    printf("| NF4 blob (absmax fp32 per 64 + 4-bit codes) | %zu | %.3f |\n", bytes, 8.0 * (double)bytes / (double)cw);
    printf("| NF4 GEMM workspace (one dequantised tile) | %zu | - |\n", ws);
    free(W); free(x); free(dy); free(y); free(dx); free(q); free(work);
}

static lort_mpo_desc desc_4096(int D, int residual) {
    lort_mpo_desc d;
    memset(&d, 0, sizeof d);
    d.n_cores = 6;
    for (int k = 0; k < 6; ++k) d.row_factors[k] = d.col_factors[k] = 4;
    d.bond = D;
    d.residual = residual;
    return d;
}

/* DoTA init at 4096: TT-SVD (randomized SVD, the library's default) + the fp32 residual; a
   Gaussian W0 is the hard case (flat spectrum), so the truncation error is large. */
static void bench_dota(void) {
    const int Ds[3] = {8, 32, 128}, n = 512;
    size_t cw = 4096u * 4096u;
    float *W0 = frand(cw, 11, 0.02f), *E = (float *)xmalloc(cw * sizeof(float));
    double n0 = 0.0;
    for (size_t i = 0; i < cw; ++i) n0 += (double)W0[i] * (double)W0[i];
    n0 = sqrt(n0);
    printf("\n### DoTA init at d = 4096 (factors 4^6 x 4^6, Gaussian W0, randomized SVD)\n\n");
    printf("| D | params | init ms | truncation error / ||W0|| | ||W_res + MPO - W0|| / ||W0|| |"
           "\n|---|---|---|---|---|\n");
    for (int i = 0; i < 3; ++i) {
        lort_mpo_desc d = desc_4096(Ds[i], LORT_MPO_RESIDUAL_F32);
        size_t np, iw, ws;
        float err;
        CHECK(lort_mpo_param_count(&d, &np));
        CHECK(lort_mpo_init_workspace_size(&d, &iw));
        CHECK(lort_mpo_workspace_size(&d, 1, &ws));
        float *cores = (float *)xmalloc(np * sizeof(float)), *res = (float *)xmalloc(cw * sizeof(float));
        void *work = xmalloc(iw > ws ? iw : ws);
        double t0 = now();
        CHECK(lort_mpo_init(&d, cores, res, &err, W0, work, iw));
        double t = now() - t0;
        CHECK(lort_mpo_delta(&d, E, cores, res, work, ws)); /* W_res + MPO */
        double e = 0.0;
        for (size_t k = 0; k < cw; ++k) e += ((double)E[k] - (double)W0[k]) * ((double)E[k] - (double)W0[k]);
        printf("| %d | %zu | %.0f | %.4f | %.2e |\n", Ds[i], np, 1e3 * t, (double)err / n0, sqrt(e) / n0);
        fflush(stdout);
        free(cores); free(res); free(work);
    }
    /* QDoTA vs DoTA: the same layer with W_res in NF4, forward + backward at n rows */
    printf("\n### QDoTA (W_res in NF4) vs DoTA (fp32 W_res), d = 4096, D = 8, n = %d, "
           "forward + backward (dx and core gradients), path AUTO\n\n", n);
    printf("| variant | W_res bytes | bits / entry | ms |\n|---|---|---|---|\n");
    double tt[2];
    for (int q = 0; q < 2; ++q) {
        lort_mpo_desc d = desc_4096(8, q ? LORT_MPO_RESIDUAL_NF4 : LORT_MPO_RESIDUAL_F32);
        size_t np, fz, iw, ws, cs;
        CHECK(lort_mpo_param_count(&d, &np));
        CHECK(lort_mpo_residual_size(&d, &fz));
        CHECK(lort_mpo_init_workspace_size(&d, &iw));
        CHECK(lort_mpo_workspace_size(&d, n, &ws));
        CHECK(lort_mpo_cache_size(&d, n, &cs));
        float *cores = (float *)xmalloc(np * sizeof(float)), *dc = (float *)calloc(np, sizeof(float));
        float *res = (float *)xmalloc(fz * sizeof(float));
        float *x = frand((size_t)n * 4096u, 12, 1.0f), *dy = frand((size_t)n * 4096u, 13, 1.0f);
        float *y = (float *)calloc((size_t)n * 4096u, sizeof(float)), *dx = (float *)calloc((size_t)n * 4096u, sizeof(float));
        void *iwork = xmalloc(iw);
        CHECK(lort_mpo_init(&d, cores, res, NULL, W0, iwork, iw));
        free(iwork);
        void *work = xmalloc(ws), *cache = xmalloc(cs);
        double t[4];
        for (int r = 0; r <= 3; ++r) {
            double t0 = now();
            CHECK(lort_mpo_forward(&d, y, x, cores, res, n, cache, cs, work, ws));
            CHECK(lort_mpo_backward(&d, dx, dc, dy, x, cores, res, n, cache, cs, work, ws));
            if (r) t[r - 1] = now() - t0;
        }
        tt[q] = bu_median(t, 3);
        printf("| %s | %zu | %.3f | %.1f |\n", q ? "QDoTA (NF4)" : "DoTA (fp32)", fz * 4,
               32.0 * (double)fz / (double)cw, 1e3 * tt[q]);
        free(cores); free(dc); free(res); free(x); free(dy); free(y); free(dx); free(work); free(cache);
    }
    printf("\nQDoTA / DoTA time: %.2f\n", tt[1] / tt[0]);
    free(W0); free(E);
}

int main(int argc, char **argv) {
    const char *th = getenv("OPENBLAS_NUM_THREADS");
    bu_init("mpo", argc, argv);
    printf("## bench_mpo (lortensor %s, GEMM backend %s, OPENBLAS_NUM_THREADS=%s)\n",
           lort_version_string(), lort_gemm_backend(), th ? th : "(unset)");
    bench_nf4();
    bench_mpo_paths();
    bench_dota();
    return 0;
}
