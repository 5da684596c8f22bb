/* bench/bench.c - lortensor benchmark harness (make bench).

   Sections (all timed in one process, on one machine, in one run):
     a) LoRA forward/backward, d_in = d_out = 4096, r in {8, 16, 64}, n in {1, 16, 512}, beside the
        base layer's GEMM of the same shape (lort_sgemm, i.e. cblas_sgemm when built over BLAS).
     b) LoRA-XS forward at the same shapes.
     c) rank-64 truncated SVD (lort_svd_truncated, default options) of a 4096 x 4096 matrix with
        singular values i^(-1/2), beside LAPACK sgesdd_ (JOBZ='S' and JOBZ='N', run once each).
     d) built-in blocked GEMM vs the BLAS GEMM, 512 x 4096 x 4096.

   Protocol: every timed operation is called once cold and once to calibrate; a sample is then k
   back-to-back calls with k chosen so a sample lasts >= 2 ms (k = 1 for anything slower), and
   the reported time is the MEDIAN over a fixed number of samples of (sample time / k), measured
   with clock_gettime(CLOCK_MONOTONIC). Operations that take seconds (the SVDs, section d) are
   timed once (LAPACK) or a few times, and their "cores used" (process CPU time / wall time)
   is printed: on a shared machine it shows when a neighbour took a core. Threads: whatever
   OpenBLAS uses (OPENBLAS_NUM_THREADS if set); the library itself starts none.

   bench/peer_torch.py measures PyTorch on the same shapes with the same protocol and columns.
   A full run takes about a minute here (2 cores), most of it in sgesdd_; --quick about 15 s.

   Timing: bench/bench_util.h (the protocol above is its bu_time / bu_paired / bu_once).

   usage: bench [--quick] [--lora-only | --svd-only | --gemm-only] [--samples N] [--svd-n N]
                [--svd-iters Q] [--svd-over P] [--no-lapack]
*/
#define _POSIX_C_SOURCE 200809L

#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"

#include <cblas.h> /* cblas_sgemv for the n = 1 reference rows (the bench always links BLAS) */
#include "bench_util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* OpenBLAS extensions and the Fortran LAPACK routines it exports (32-bit integers). The trailing
   size_t is gfortran's hidden length of a CHARACTER argument. LAPACK is column-major. */
int openblas_get_num_threads(void);
char *openblas_get_config(void);
char *openblas_get_corename(void);
void sgeqrf_(const int *m, const int *n, float *a, const int *lda, float *tau, float *work,
             const int *lwork, int *info);
void sorgqr_(const int *m, const int *n, const int *k, float *a, const int *lda,
             const float *tau, float *work, const int *lwork, int *info);
void sgesdd_(const char *jobz, const int *m, const int *n, float *a, const int *lda, float *s,
             float *u, const int *ldu, float *vt, const int *ldvt, float *work, const int *lwork,
             int *iwork, int *info, size_t jobz_len);

/* ---- configuration ------------------------------------------------------------------------ */

typedef struct bench_cfg {
    int quick;
    int do_lora, do_svd, do_gemm, do_lapack;
    int samples;     /* timed samples per operation (median over these) */
    int warmup;      /* untimed samples after the cold and calibration calls */
    double sample_s; /* minimum duration of one sample */
    int svd_n;       /* size of the SVD test matrix */
    int svd_reps;    /* timed runs of lort_svd_truncated */
    int svd_iters;   /* 0: NULL options (library defaults); else opts.power_iters */
    int svd_over;    /* 0: default; else opts.oversample */
} bench_cfg;

static bench_cfg cfg;

#define D_MODEL 4096
#define SVD_RANK 64
#define LORA_TARGET_PCT 2.5
#define SVD_SPEEDUP_TARGET 30.0
#define SVD_ERR_TARGET 1e-3

/* ---- helpers ------------------------------------------------------------------------------ */

static void die(const char *what) { bu_die(what); }

static void check_status(lort_status st, const char *call, int line) {
    if (st != LORT_OK) {
        fprintf(stderr, "bench.c:%d: %s failed: %d (%s)\n", line, call, (int)st,
                lort_status_string(st));
        exit(1);
    }
}
#define CHECK(call) check_status((call), #call, __LINE__)

/* the timing protocol and helpers are bench/bench_util.h's (one protocol for every bench) */
typedef bu_fn bench_fn;
typedef bu_timing timing;
#define MAX_SAMPLES BU_MAX_SAMPLES
#define now_s bu_now
#define cpu_s bu_cpu
#define xalloc bu_alloc
#define falloc bu_falloc
#define median_of bu_median
#define time_op bu_time
#define paired_ratio bu_paired
#define time_once bu_once

static void fill_uniform(float *x, size_t count, float scale, lort_rng *rng) {
    size_t i;
    for (i = 0; i < count; i++) x[i] = scale * (2.0f * lort_rng_uniform(rng) - 1.0f);
}

static void fill_normal(float *x, size_t count, lort_rng *rng) {
    size_t i;
    for (i = 0; i < count; i++) x[i] = lort_rng_normal(rng);
}

static const char *pass_miss(int ok) { return ok ? "PASS" : "MISS"; }

/* ---- configuration report ----------------------------------------------------------------- */

static void cpu_model(char *out, size_t len) {
    char line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    snprintf(out, len, "unknown");
    if (!f) return;
    while (fgets(line, (int)sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *p = strchr(line, ':');
            if (p) {
                size_t l;
                p++;
                while (*p == ' ' || *p == '\t') p++;
                l = strlen(p);
                while (l > 0 && (p[l - 1] == '\n' || p[l - 1] == ' ')) p[--l] = '\0';
                snprintf(out, len, "%s", p);
            }
            break;
        }
    }
    fclose(f);
}

static void print_config(void) {
    char cpu[256];
    const char *env = getenv("OPENBLAS_NUM_THREADS");
    cpu_model(cpu, sizeof cpu);
    printf("# lortensor bench\n\n");
    printf("| setting | value |\n|---|---|\n");
    printf("| lortensor | %s (header %s) |\n", lort_version_string(), LORT_VERSION_STRING);
    printf("| GEMM backend | %s |\n", lort_gemm_backend());
    printf("| OpenBLAS | %s (core %s) |\n", openblas_get_config(), openblas_get_corename());
    printf("| OPENBLAS_NUM_THREADS | %s |\n", env ? env : "(unset)");
    printf("| openblas_get_num_threads() | %d |\n", openblas_get_num_threads());
    printf("| CPU | %s, %ld online cores |\n", cpu, sysconf(_SC_NPROCESSORS_ONLN));
    {
        char la[128] = "?";
        FILE *f = fopen("/proc/loadavg", "r");
        if (f) {
            if (!fgets(la, (int)sizeof la, f)) snprintf(la, sizeof la, "?");
            fclose(f);
            la[strcspn(la, "\n")] = '\0';
        }
        printf("| /proc/loadavg at start | %s |\n", la);
    }
#ifdef __VERSION__
    printf("| compiler | %s%s%s |\n", __VERSION__,
#ifdef __AVX2__
           ", AVX2",
#else
           "",
#endif
#ifdef __FMA__
           ", FMA"
#else
           ""
#endif
    );
#endif
    printf("| protocol | 1 cold + 1 calibration call, %d warmup sample(s), median of %d samples;"
           " a sample is k calls, k chosen so it lasts >= %.0f ms |\n",
           cfg.warmup, cfg.samples, cfg.sample_s * 1e3);
    printf("| mode | %s |\n\n", cfg.quick ? "--quick" : "full");
    fflush(stdout);
}

/* ---- operations --------------------------------------------------------------------------- */

typedef struct gemm_ctx {
    int ta, tb, M, N, K;
    const float *A, *B;
    int lda, ldb, ldc;
    float *C;
    int builtin;
} gemm_ctx;

static void op_gemm(void *p) {
    gemm_ctx *c = (gemm_ctx *)p;
    if (c->builtin)
        CHECK(lort_sgemm_builtin(c->ta, c->tb, c->M, c->N, c->K, 1.0f, c->A, c->lda, c->B,
                                 c->ldb, 0.0f, c->C, c->ldc));
    else
        CHECK(lort_sgemm(c->ta, c->tb, c->M, c->N, c->K, 1.0f, c->A, c->lda, c->B, c->ldb, 0.0f,
                         c->C, c->ldc));
}

typedef struct lora_ctx {
    lort_lora_desc d;
    lort_loraxs_desc dxs;
    int n;
    float *y, *dx, *dA, *dB, *dR;
    const float *x, *dy, *A, *B, *R;
    void *cache;
    size_t cache_size;
    void *work;
    size_t work_size;
} lora_ctx;

static void op_lora_fwd(void *p) {
    lora_ctx *c = (lora_ctx *)p;
    CHECK(lort_lora_forward(&c->d, c->y, c->x, c->A, c->B, c->n, NULL, 0, c->work, c->work_size));
}

static void op_lora_fwd_cache(void *p) {
    lora_ctx *c = (lora_ctx *)p;
    CHECK(lort_lora_forward(&c->d, c->y, c->x, c->A, c->B, c->n, c->cache, c->cache_size,
                            c->work, c->work_size));
}

static void op_lora_bwd(void *p) {
    lora_ctx *c = (lora_ctx *)p;
    CHECK(lort_lora_backward(&c->d, c->dx, c->dA, c->dB, c->dy, c->x, c->A, c->B, c->n, c->cache,
                             c->cache_size, c->work, c->work_size));
}

/* n = 1 reference: y = W0 x by GEMV, and the LoRA forward as two GEMVs (h = A x; y += s B h),
   what a decode loop would call; beside lort_sgemm / lort_lora_forward at M = 1. */
typedef struct gemv_ctx {
    int d, r;
    const float *W0, *A, *B, *x;
    float *y, *h, s;
} gemv_ctx;

static void op_base_gemv(void *p) {
    gemv_ctx *c = (gemv_ctx *)p;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, c->d, c->d, 1.0f, c->W0, c->d, c->x, 1, 0.0f, c->y,
                1);
}

static void op_lora_gemv(void *p) {
    gemv_ctx *c = (gemv_ctx *)p;
    cblas_sgemv(CblasRowMajor, CblasNoTrans, c->r, c->d, 1.0f, c->A, c->d, c->x, 1, 0.0f, c->h, 1);
    cblas_sgemv(CblasRowMajor, CblasNoTrans, c->d, c->r, c->s, c->B, c->r, c->h, 1, 1.0f, c->y, 1);
}

static void op_loraxs_fwd(void *p) {
    lora_ctx *c = (lora_ctx *)p;
    CHECK(lort_loraxs_forward(&c->dxs, c->y, c->x, c->R, c->A, c->B, c->n, NULL, 0, c->work,
                              c->work_size));
}

/* ---- a) + b): LoRA and LoRA-XS ------------------------------------------------------------ */

typedef struct row {
    const char *op;
    int n, r;
    double t, flops;       /* adapter */
    double tb, flops_base; /* base GEMM of the same layer */
} row;

#define MAX_ROWS 64

static void print_rows(const char *lib, const row *rows, int count) {
    int i;
    printf("| op | n | r | %s ms | GFLOP/s | base ms | base GFLOP/s | adapter/base time |"
           " FLOP ratio |\n",
           lib);
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (i = 0; i < count; i++) {
        const row *w = &rows[i];
        printf("| %s | %d | %d | %.4f | %.2f | %.3f | %.1f | %.2f%% | %.2f%% |\n", w->op, w->n,
               w->r, w->t * 1e3, w->flops / w->t * 1e-9, w->tb * 1e3,
               w->flops_base / w->tb * 1e-9, 100.0 * w->t / w->tb,
               100.0 * w->flops / w->flops_base);
    }
    printf("\n");
}

static void section_lora(void) {
    static const int ns[3] = {1, 16, 512};
    static const int rs[3] = {8, 16, 64};
    const int d = D_MODEL;
    const size_t dd = (size_t)d * (size_t)d;
    const size_t nmax = 512;
    row rows[MAX_ROWS], xsrows[MAX_ROWS];
    double gemv_base = 0.0, gemv_lora[3] = {0.0, 0.0, 0.0}, sgemm_base1 = 0.0;
    double lort_fwd1[3] = {0.0, 0.0, 0.0};
    float h[64];
    int nrows = 0, nxs = 0, target_idx = -1;
    double target_paired = -1.0;
    int in, ir;
    lort_rng rng;
    float *W0 = falloc(dd), *x = falloc(nmax * (size_t)d), *y = falloc(nmax * (size_t)d);
    float *dy = falloc(nmax * (size_t)d), *dx = falloc(nmax * (size_t)d);
    float *A = falloc(64 * (size_t)d), *B = falloc(64 * (size_t)d);
    float *dA = falloc(64 * (size_t)d), *dB = falloc(64 * (size_t)d);
    float *R = falloc(64 * 64), *dR = falloc(64 * 64);

    lort_rng_seed(&rng, 1);
    fill_uniform(W0, dd, 1.0f / 64.0f, &rng);
    fill_uniform(x, nmax * (size_t)d, 1.0f, &rng);
    fill_uniform(dy, nmax * (size_t)d, 1.0f, &rng);
    fill_uniform(A, 64 * (size_t)d, 1.0f / 64.0f, &rng);
    fill_uniform(B, 64 * (size_t)d, 1.0f / 64.0f, &rng); /* nonzero B: PEFT init has B = 0 */
    fill_uniform(R, 64 * 64, 1.0f / 8.0f, &rng);

    for (in = 0; in < 3; in++) {
        const int n = ns[in];
        const double base_flops = 2.0 * n * (double)d * (double)d;
        gemm_ctx gf, gb;
        timing tf, tb;
        /* base forward y = x W0^T (n x d_out), base backward dx = dy W0 (W0 frozen: no dW0) */
        gf.ta = 0; gf.tb = 1; gf.M = n; gf.N = d; gf.K = d;
        gf.A = x; gf.lda = d; gf.B = W0; gf.ldb = d; gf.C = y; gf.ldc = d; gf.builtin = 0;
        gb.ta = 0; gb.tb = 0; gb.M = n; gb.N = d; gb.K = d;
        gb.A = dy; gb.lda = d; gb.B = W0; gb.ldb = d; gb.C = dx; gb.ldc = d; gb.builtin = 0;
        fprintf(stderr, "  base GEMM n=%d ...\n", n);
        tf = time_op(op_gemm, &gf);
        tb = time_op(op_gemm, &gb);
        if (n == 1) {
            gemv_ctx gv;
            gv.d = d; gv.r = 0; gv.W0 = W0; gv.A = A; gv.B = B; gv.x = x; gv.y = y; gv.h = h;
            gv.s = 2.0f;
            gemv_base = time_op(op_base_gemv, &gv).median;
            sgemm_base1 = tf.median;
        }

        for (ir = 0; ir < 3; ir++) {
            const int r = rs[ir];
            lora_ctx c;
            size_t ws, cs, ws2;
            timing t;
            memset(&c, 0, sizeof c);
            c.d.d_in = d; c.d.d_out = d; c.d.r = r; c.d.alpha = 2.0f * (float)r;
            c.dxs.d_in = d; c.dxs.d_out = d; c.dxs.r = r; c.dxs.alpha = 2.0f * (float)r;
            c.n = n;
            c.y = y; c.dx = dx; c.dA = dA; c.dB = dB; c.dR = dR;
            c.x = x; c.dy = dy; c.A = A; c.B = B; c.R = R;
            CHECK(lort_lora_workspace_size(&c.d, n, &ws));
            CHECK(lort_lora_cache_size(&c.d, n, &cs));
            CHECK(lort_loraxs_workspace_size(&c.dxs, n, &ws2));
            if (ws2 > ws) ws = ws2;
            c.work = xalloc(ws); c.work_size = ws;
            c.cache = xalloc(cs); c.cache_size = cs;
            fprintf(stderr, "  lora n=%d r=%d ...\n", n, r);

            /* forward, inference path (cache = NULL), y += s (x A^T) B^T */
            t = time_op(op_lora_fwd, &c);
            rows[nrows].op = "fwd";
            rows[nrows].n = n; rows[nrows].r = r; rows[nrows].t = t.median;
            rows[nrows].flops = 2.0 * n * (double)r * (2.0 * d);
            rows[nrows].tb = tf.median; rows[nrows].flops_base = base_flops;
            if (n == 512 && r == 16) {
                target_idx = nrows;
                target_paired = paired_ratio(op_lora_fwd, &c, op_gemm, &gf);
            }
            if (n == 1) {
                gemv_ctx gv;
                gv.d = d; gv.r = r; gv.W0 = W0; gv.A = A; gv.B = B; gv.x = x; gv.y = y; gv.h = h;
                gv.s = 2.0f;
                lort_fwd1[ir] = t.median;
                gemv_lora[ir] = time_op(op_lora_gemv, &gv).median;
            }
            nrows++;

            /* backward (dx, dA, dB), cache filled by a training forward */
            op_lora_fwd_cache(&c);
            t = time_op(op_lora_bwd, &c);
            rows[nrows].op = "bwd";
            rows[nrows].n = n; rows[nrows].r = r; rows[nrows].t = t.median;
            rows[nrows].flops = 4.0 * n * (double)r * (2.0 * d);
            rows[nrows].tb = tb.median; rows[nrows].flops_base = base_flops;
            nrows++;

            /* LoRA-XS forward: y += s ((x A^T) R^T) B^T */
            t = time_op(op_loraxs_fwd, &c);
            xsrows[nxs].op = "xs-fwd";
            xsrows[nxs].n = n; xsrows[nxs].r = r; xsrows[nxs].t = t.median;
            xsrows[nxs].flops = 2.0 * n * (double)r * (2.0 * d + r);
            xsrows[nxs].tb = tf.median; xsrows[nxs].flops_base = base_flops;
            nxs++;

            free(c.work);
            free(c.cache);
        }
    }

    {   /* order: all forward rows, then all backward rows */
        row sorted[MAX_ROWS];
        int i, k = 0;
        for (i = 0; i < nrows; i++) if (rows[i].op[0] == 'f') sorted[k++] = rows[i];
        for (i = 0; i < nrows; i++) if (rows[i].op[0] == 'b') sorted[k++] = rows[i];
        printf("## a) LoRA, d_in = d_out = %d (lortensor, %s GEMM)\n\n", d, lort_gemm_backend());
        printf("FLOPs counted: fwd = 2nr(d_in+d_out) (x A^T, then H B^T), against the base"
               " forward y = x W0^T, 2n d_in d_out.\n");
        printf("bwd = 4nr(d_in+d_out) (GH = s dy B, dB += s dy^T H, dA += GH^T x,"
               " dx += GH A), against the base backward dx = dy W0, 2n d_in d_out"
               " (W0 is frozen: no dW0).\n");
        printf("fwd is the inference call (cache = NULL); bwd uses the cache of a training"
               " forward. Scalings and adds are not counted. \"adapter/base time\" is the"
               " adapter's median time as a percentage of the base GEMM's; \"FLOP ratio\" is"
               " the ideal.\n\n");
        print_rows("lort", sorted, k);
    }
    if (target_idx >= 0) {
        const row *w = &rows[target_idx];
        double pct = 100.0 * w->t / w->tb, paired = 100.0 * target_paired;
        printf("**target** unmerged LoRA forward, n=512, d=4096, r=16: %.2f%% of the base GEMM"
               " (median of %d back-to-back adapter/base pairs; from the table's medians %.2f%% ="
               " %.3f ms / %.1f ms; ideal %.2f%%), target <= %.1f%%: **%s**\n\n",
               paired, cfg.samples, pct, w->t * 1e3, w->tb * 1e3,
               100.0 * w->flops / w->flops_base, LORA_TARGET_PCT,
               pass_miss(paired <= LORA_TARGET_PCT));
    }

    printf("### a') n = 1 (one token, decode): GEMV reference\n\n");
    printf("With one row, lort_sgemm and the adapter kernels route to cblas_sgemv; this table"
           " checks them against direct cblas_sgemv calls. Base: y = W0 x by sgemv %.3f ms vs"
           " lort_sgemm %.3f ms (%.1fx).\n\n",
           gemv_base * 1e3, sgemm_base1 * 1e3, sgemm_base1 / gemv_base);
    printf("| r | lort fwd ms | as 2 x cblas_sgemv ms | lort / sgemv | lort fwd / base sgemv |"
           " sgemv fwd / base sgemv | FLOP ratio |\n|---:|---:|---:|---:|---:|---:|---:|\n");
    for (ir = 0; ir < 3; ir++)
        printf("| %d | %.4f | %.4f | %.1fx | %.2f%% | %.2f%% | %.2f%% |\n", rs[ir],
               lort_fwd1[ir] * 1e3, gemv_lora[ir] * 1e3, lort_fwd1[ir] / gemv_lora[ir],
               100.0 * lort_fwd1[ir] / gemv_base, 100.0 * gemv_lora[ir] / gemv_base,
               100.0 * 2.0 * rs[ir] * 2.0 * d / (2.0 * d * (double)d));
    printf("\n");

    printf("## b) LoRA-XS forward, d_in = d_out = %d\n\n", d);
    printf("FLOPs counted: 2nr(d_in + r + d_out) (x A^T, H1 R^T, H2 B^T); frozen A, B random"
           " (values do not affect time). Base = y = x W0^T as in a).\n\n");
    print_rows("lort", xsrows, nxs);
    fflush(stdout);

    free(W0); free(x); free(y); free(dy); free(dx);
    free(A); free(B); free(dA); free(dB); free(R); free(dR);
}

/* ---- c) truncated SVD vs LAPACK ----------------------------------------------------------- */

/* Q (n, n), orthogonal: QR of a Gaussian matrix via sgeqrf_ + sorgqr_. */
static float *random_orthogonal(int n, lort_rng *rng) {
    const size_t nn = (size_t)n * (size_t)n;
    float *Q = falloc(nn), *tau = falloc((size_t)n), *work, wq;
    int lwork = -1, info = 0, lw1, lw2;
    fill_normal(Q, nn, rng);
    sgeqrf_(&n, &n, Q, &n, tau, &wq, &lwork, &info);
    if (info != 0) die("sgeqrf_ workspace query failed");
    lw1 = (int)(wq * 1.001f) + 64;
    sorgqr_(&n, &n, &n, Q, &n, tau, &wq, &lwork, &info);
    if (info != 0) die("sorgqr_ workspace query failed");
    lw2 = (int)(wq * 1.001f) + 64;
    lwork = lw1 > lw2 ? lw1 : lw2;
    work = falloc((size_t)lwork);
    sgeqrf_(&n, &n, Q, &n, tau, work, &lwork, &info);
    if (info != 0) die("sgeqrf_ failed");
    sorgqr_(&n, &n, &n, Q, &n, tau, work, &lwork, &info);
    if (info != 0) die("sorgqr_ failed");
    free(work);
    free(tau);
    return Q;
}

typedef struct svd_ctx {
    float *U, *S, *Vt;
    const float *W;
    int n, r;
    void *work;
    size_t work_size;
} svd_ctx;

/* NULL (the defaults) unless --svd-iters or --svd-over was given */
static const lort_svd_opts *svd_opts(void) {
    static lort_svd_opts o;
    if (cfg.svd_iters == 0 && cfg.svd_over == 0) return NULL;
    memset(&o, 0, sizeof o);
    o.power_iters = cfg.svd_iters;
    o.oversample = cfg.svd_over;
    return &o;
}

static void op_svd(void *p) {
    svd_ctx *c = (svd_ctx *)p;
    CHECK(lort_svd_truncated(c->U, c->S, c->Vt, c->W, c->n, c->n, c->n, c->r, svd_opts(),
                             c->work, c->work_size));
}

typedef struct gesdd_ctx {
    char jobz;
    int n;
    float *a, *s, *u, *vt, *work;
    int *iwork;
    int lwork, info;
} gesdd_ctx;

static void op_gesdd(void *p) {
    gesdd_ctx *c = (gesdd_ctx *)p;
    sgesdd_(&c->jobz, &c->n, &c->n, c->a, &c->n, c->s, c->u, &c->n, c->vt, &c->n, c->work,
            &c->lwork, c->iwork, &c->info, 1);
}

/* sgesdd_ on a copy of W; returns seconds, singular values in s (n), *cores as time_once. */
static double run_gesdd(char jobz, const float *W, int n, float *s, double *cores) {
    const size_t nn = (size_t)n * (size_t)n;
    gesdd_ctx c;
    float wq;
    double t;
    memset(&c, 0, sizeof c);
    c.jobz = jobz;
    c.n = n;
    c.a = falloc(nn);
    memcpy(c.a, W, nn * sizeof(float)); /* row-major W = column-major W^T: same values */
    c.s = s;
    if (jobz == 'S') {
        c.u = falloc(nn);
        c.vt = falloc(nn);
    } else {
        c.u = falloc(1);
        c.vt = falloc(1);
    }
    c.iwork = (int *)xalloc(8 * (size_t)n * sizeof(int));
    c.lwork = -1;
    c.work = &wq;
    op_gesdd(&c);
    if (c.info != 0) die("sgesdd_ workspace query failed");
    /* lwork comes back as a float: round up generously (LAPACK < 3.12 may round it down) */
    c.lwork = (int)((double)wq * 1.0001) + 1024;
    c.work = falloc((size_t)c.lwork);
    t = time_once(op_gesdd, &c, cores);
    if (c.info != 0) {
        fprintf(stderr, "sgesdd_(JOBZ='%c') info = %d\n", jobz, c.info);
        die("sgesdd_ failed");
    }
    free(c.a); free(c.u); free(c.vt); free(c.iwork); free(c.work);
    return t;
}

static double max_rel_err(const float *s, const double *ref, int r) {
    double e = 0.0;
    int i;
    for (i = 0; i < r; i++) {
        double d = fabs((double)s[i] - ref[i]) / ref[i];
        if (d > e) e = d;
    }
    return e;
}

static void section_svd(void) {
    const int n = cfg.svd_n, r = SVD_RANK;
    const size_t nn = (size_t)n * (size_t)n;
    double t_setup, t_lapack_s = 0.0, t_lapack_n = 0.0, err_exact, err_lapack = -1.0;
    double resid = 0.0, resid_opt = 0.0, tail = 0.0, cores_s = 0.0, cores_n = 0.0;
    double cores_lort[16], cores_lort_med = 0.0;
    double *sig = (double *)xalloc((size_t)n * sizeof(double));
    double *ref = (double *)xalloc((size_t)r * sizeof(double));
    float *W, *Q1, *Q2, *S, *U, *Vt, *s_lapack;
    lort_rng rng;
    svd_ctx c;
    timing t;
    size_t ws, i;
    int j;

    fprintf(stderr, "  building the %d x %d test matrix ...\n", n, n);
    t_setup = now_s();
    lort_rng_seed(&rng, 7);
    for (j = 0; j < n; j++) sig[j] = 1.0 / sqrt((double)(j + 1));
    Q1 = random_orthogonal(n, &rng);
    Q2 = random_orthogonal(n, &rng);
    /* row-major W = (Q1 diag(sigma)) Q2^T: scale column j of Q1 by sigma_j */
    for (i = 0; i < nn; i++) Q1[i] *= (float)sig[i % (size_t)n];
    W = falloc(nn);
    CHECK(lort_sgemm(0, 1, n, n, n, 1.0f, Q1, n, Q2, n, 0.0f, W, n));
    free(Q1);
    free(Q2);
    t_setup = now_s() - t_setup;

    S = falloc((size_t)r);
    U = falloc((size_t)n * (size_t)r);
    Vt = falloc((size_t)r * (size_t)n);
    CHECK(lort_svd_truncated_workspace_size(n, n, r, svd_opts(), &ws));
    memset(&c, 0, sizeof c);
    c.U = U; c.S = S; c.Vt = Vt; c.W = W; c.n = n; c.r = r;
    c.work = xalloc(ws);
    c.work_size = ws;
    fprintf(stderr, "  lort_svd_truncated r=%d (workspace %.1f MB) ...\n", r, (double)ws / 1e6);
    {
        double ts[16];
        int k;
        op_svd(&c); /* warmup */
        for (k = 0; k < cfg.svd_reps; k++) ts[k] = time_once(op_svd, &c, &cores_lort[k]);
        t.median = median_of(ts, cfg.svd_reps);
        t.min = ts[0];
        cores_lort_med = median_of(cores_lort, cfg.svd_reps);
        t.inner = 1;
    }
    for (j = 0; j < r; j++) ref[j] = sig[j];
    err_exact = max_rel_err(S, ref, r);

    /* ||W - U diag(S) Vt||_F against the optimum sqrt(sum_{i > r} sigma_i^2) */
    {
        float *E = falloc(nn);
        memcpy(E, W, nn * sizeof(float));
        for (i = 0; i < (size_t)n * (size_t)r; i++) U[i] *= S[i % (size_t)r];
        CHECK(lort_sgemm(0, 0, n, n, r, -1.0f, U, r, Vt, n, 1.0f, E, n));
        for (i = 0; i < nn; i++) resid += (double)E[i] * (double)E[i];
        resid = sqrt(resid);
        for (j = r; j < n; j++) tail += sig[j] * sig[j];
        resid_opt = sqrt(tail);
        free(E);
    }

    s_lapack = falloc((size_t)n);
    if (cfg.do_lapack) {
        fprintf(stderr, "  LAPACK sgesdd_ JOBZ='S' on %d x %d (once; can take a minute) ...\n",
                n, n);
        t_lapack_s = run_gesdd('S', W, n, s_lapack, &cores_s);
        for (j = 0; j < r; j++) ref[j] = (double)s_lapack[j];
        err_lapack = max_rel_err(S, ref, r);
        fprintf(stderr, "  LAPACK sgesdd_ JOBZ='N' (once) ...\n");
        t_lapack_n = run_gesdd('N', W, n, s_lapack, &cores_n);
    }

    {
        char note[64];
        snprintf(note, sizeof note, "max rel err %.3e", err_exact);
        bu_csv_row("svd", "truncated", n, r, n, "lortensor", t.median, note);
        if (cfg.do_lapack) bu_csv_row("svd", "truncated", n, r, n, "lapack_sgesdd_S", t_lapack_s, "");
    }
    printf("## c) rank-%d truncated SVD of a %d x %d matrix, sigma_i = i^(-1/2)\n\n", r, n, n);
    printf("W = Q1 diag(sigma) Q2^T, Q1, Q2 orthogonal from LAPACK QR of Gaussian matrices"
           " (built in %.1f s). lort_svd_truncated with %s:"
           " 1 warmup + median of %d run(s). LAPACK sgesdd_ (column-major, given W^T: same"
           " singular values) runs once per JOBZ, no repetitions.\n\n",
           t_setup, cfg.svd_iters || cfg.svd_over ? "opts from --svd-iters / --svd-over (other options default)"
                                  : "default options (randomized, NULL opts)",
           cfg.svd_reps);
    if (cfg.svd_iters || cfg.svd_over)
        printf("opts.power_iters = %d, opts.oversample = %d (0 = default)\n\n", cfg.svd_iters,
               cfg.svd_over);
    printf("| method | time s | speedup of lort | cores used (CPU s / wall s) |\n"
           "|---|---:|---:|---:|\n");
    printf("| lort_svd_truncated r=%d | %.3f (min %.3f) | 1.0x | %.2f (median) |\n", r,
           t.median, t.min, cores_lort_med);
    if (cfg.do_lapack) {
        printf("| sgesdd_ JOBZ='S' (all values + thin vectors) | %.2f | %.1fx | %.2f |\n",
               t_lapack_s, t_lapack_s / t.median, cores_s);
        printf("| sgesdd_ JOBZ='N' (values only) | %.2f | %.1fx | %.2f |\n", t_lapack_n,
               t_lapack_n / t.median, cores_n);
    } else {
        printf("| sgesdd_ | skipped (--quick / --no-lapack) | | |\n");
    }
    printf("\n| accuracy of the top %d singular values | value |\n|---|---:|\n", r);
    printf("| max rel. error vs exact sigma_i | %.2e |\n", err_exact);
    if (cfg.do_lapack) printf("| max rel. error vs sgesdd_ | %.2e |\n", err_lapack);
    printf("| S[0], S[%d] (exact %.4f, %.4f) | %.6f, %.6f |\n", r - 1, sig[0], sig[r - 1],
           (double)S[0], (double)S[r - 1]);
    printf("| ||W - U S Vt||_F / optimum sqrt(sum_{i>%d} sigma_i^2) | %.5f / %.5f = %.5f |\n\n",
           r, resid, resid_opt, resid / resid_opt);
    if (cfg.do_lapack) {
        double sp = t_lapack_s / t.median;
        printf("**target** speedup vs sgesdd_ JOBZ='S' %.1fx, target >= %.0fx: **%s**\n\n", sp,
               SVD_SPEEDUP_TARGET, pass_miss(sp >= SVD_SPEEDUP_TARGET));
        printf("**target** max rel. error of the top-%d singular values vs sgesdd_ %.2e,"
               " target <= %.0e: **%s**\n\n",
               r, err_lapack, SVD_ERR_TARGET, pass_miss(err_lapack <= SVD_ERR_TARGET));
    } else {
        printf("**target** speedup vs sgesdd_: not measured (LAPACK skipped)\n\n");
        printf("**target** max rel. error of the top-%d singular values vs exact sigma %.2e"
               " (LAPACK skipped), target <= %.0e: **%s**\n\n",
               r, err_exact, SVD_ERR_TARGET, pass_miss(err_exact <= SVD_ERR_TARGET));
    }
    fflush(stdout);

    free(sig); free(ref); free(W); free(S); free(U); free(Vt); free(s_lapack); free(c.work);
}

/* ---- d) built-in GEMM vs BLAS ------------------------------------------------------------- */

static void section_gemm(void) {
    const int M = 512, N = D_MODEL, K = D_MODEL;
    const double flops = 2.0 * M * (double)N * (double)K;
    float *A = falloc((size_t)M * (size_t)K), *B = falloc((size_t)N * (size_t)K);
    float *C1 = falloc((size_t)M * (size_t)N), *C2 = falloc((size_t)M * (size_t)N);
    gemm_ctx g;
    double t_blas, t_builtin, diff = 0.0, cmax = 0.0, cores_blas, cores_builtin;
    size_t i;
    lort_rng rng;
    lort_rng_seed(&rng, 3);
    fill_uniform(A, (size_t)M * (size_t)K, 1.0f, &rng);
    fill_uniform(B, (size_t)N * (size_t)K, 1.0f, &rng);
    g.ta = 0; g.tb = 1; g.M = M; g.N = N; g.K = K;
    g.A = A; g.lda = K; g.B = B; g.ldb = K; g.ldc = N;
    fprintf(stderr, "  GEMM %dx%dx%d builtin vs %s ...\n", M, N, K, lort_gemm_backend());
    g.C = C1; g.builtin = 0;
    op_gemm(&g); /* warm the BLAS threads and first-touch C */
    t_blas = time_once(op_gemm, &g, &cores_blas);
    g.C = C2; g.builtin = 1;
    t_builtin = time_once(op_gemm, &g, &cores_builtin);
    for (i = 0; i < (size_t)M * (size_t)N; i++) {
        double dlt = fabs((double)C1[i] - (double)C2[i]), a = fabs((double)C1[i]);
        if (dlt > diff) diff = dlt;
        if (a > cmax) cmax = a;
    }
    printf("## d) GEMM %d x %d x %d, C = A B^T (one call each, after one warmup BLAS call)\n\n",
           M, N, K);
    printf("| GEMM | time ms | GFLOP/s | cores used |\n|---|---:|---:|---:|\n");
    printf("| lort_sgemm (%s) | %.1f | %.1f | %.2f |\n", lort_gemm_backend(), t_blas * 1e3,
           flops / t_blas * 1e-9, cores_blas);
    printf("| lort_sgemm_builtin | %.1f | %.1f | %.2f |\n\n", t_builtin * 1e3,
           flops / t_builtin * 1e-9, cores_builtin);
    printf("built-in is %.1fx slower; max |C_builtin - C_blas| / max |C| = %.2e\n\n",
           t_builtin / t_blas, diff / (cmax > 0.0 ? cmax : 1.0));
    fflush(stdout);
    free(A); free(B); free(C1); free(C2);
}

/* ---- main --------------------------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr,
            "usage: bench [--quick] [--lora-only | --svd-only | --gemm-only] [--samples N]\n"
            "             [--svd-n N] [--svd-iters Q] [--svd-over P] [--no-lapack] [--csv FILE]\n"
            "  --quick      fewer samples, skip the LAPACK SVD\n"
            "  --samples N  timed samples per operation (median over them), 1..%d\n"
            "  --svd-n N    size of the SVD test matrix (default %d)\n"
            "  --svd-iters Q  opts.power_iters for lort_svd_truncated (-1 = none; default: NULL opts)\n"
            "  --svd-over P   opts.oversample for lort_svd_truncated (default: NULL opts)\n"
            "  --no-lapack  skip sgesdd_\n",
            MAX_SAMPLES, D_MODEL);
    exit(2);
}

int main(int argc, char **argv) {
    int i, only = 0;
    struct rusage ru;
    double t_start;
    argc = bu_init("bench", argc, argv); /* --quick, --samples, --csv, --cpu-time */
    t_start = now_s(); /* after bu_init: --cpu-time switches the clock */

    cfg.quick = BU.quick;
    cfg.do_lora = cfg.do_svd = cfg.do_gemm = cfg.do_lapack = 1;
    cfg.samples = BU.samples;
    cfg.warmup = 1;
    cfg.sample_s = 2e-3;
    cfg.svd_n = D_MODEL;
    cfg.svd_reps = 5;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--lora-only") == 0 || strcmp(a, "--svd-only") == 0 ||
                   strcmp(a, "--gemm-only") == 0) {
            if (only) usage();
            only = 1;
            cfg.do_lora = a[2] == 'l';
            cfg.do_svd = a[2] == 's';
            cfg.do_gemm = a[2] == 'g';
        } else if (strcmp(a, "--no-lapack") == 0) {
            cfg.do_lapack = 0;
        } else if (strcmp(a, "--svd-iters") == 0 && i + 1 < argc) {
            cfg.svd_iters = atoi(argv[++i]);
            if (cfg.svd_iters == 0 || cfg.svd_iters > 100) usage();
        } else if (strcmp(a, "--svd-over") == 0 && i + 1 < argc) {
            cfg.svd_over = atoi(argv[++i]);
            if (cfg.svd_over < 1 || cfg.svd_over > 1000) usage();
        } else if (strcmp(a, "--svd-n") == 0 && i + 1 < argc) {
            cfg.svd_n = atoi(argv[++i]);
            if (cfg.svd_n < 2 * SVD_RANK || cfg.svd_n > 16384) usage();
        } else {
            usage();
        }
    }
    if (cfg.quick) {
        cfg.warmup = 0;
        cfg.svd_reps = 1;
        cfg.do_lapack = 0;
    }

    BU.samples = cfg.samples, BU.warmup = cfg.warmup, BU.sample_s = cfg.sample_s;
    print_config();
    if (cfg.do_lora) section_lora();
    if (cfg.do_svd) section_svd();
    if (cfg.do_gemm) section_gemm();

    getrusage(RUSAGE_SELF, &ru);
    printf("peak RSS %.1f MB; bench time %.1f s (%s clock)\n", (double)ru.ru_maxrss / 1024.0,
           now_s() - t_start, BU.clock == CLOCK_MONOTONIC ? "wall" : "process CPU");
    return 0;
}
