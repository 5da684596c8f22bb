/* Benchmark of the tt adapters (LoRETTA_rep, LoRETTA_adp) at the papers' shapes (hidden 768 and
   4096, tensor rank 5 and 8, the mode lists of yifanycc/loretta utils/tensor_util.py), beside a
   LoRA of the same role and the base layer's GEMM, all measured in the same run.

     base fwd       y = x W0^T                                (n, d) x (d, d)
     base fwd+bwd   y = x W0^T, then dx = dy W0               (the frozen layer in training)
     LoRA r=8       fwd + bwd (dx, dA, dB) at d x d           (the role of LoRETTA_rep)
     LoRETTA_rep    r=8, tt factors, fwd + bwd (dx, dcores)
     LoRA r=64      fwd + bwd at d x d: the GEMM shapes of a dense bottleneck of width 64
                    (the role of LoRETTA_adp, minus its activation and biases)
     LoRETTA_adp    bottleneck 64, ReLU, output placement, fwd + bwd (dx, dcores, dbiases)

   Timing: bench/bench_util.h's protocol, interleaved over the rows of one d (bu_time_many).
   Ratios are to the base fwd+bwd and to the LoRA of the same role, from the same run.
   usage: bench_tt [--quick] [--samples N] [--cpu-time] */
#define _POSIX_C_SOURCE 200809L
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"

#include "bench_util.h"

#define NTOK 256
#define now bu_now
static float *randbuf(size_t count, lort_rng *rng) {
    float *p = (float *)malloc((count ? count : 1) * sizeof(float));
    if (!p) exit(2);
    for (size_t i = 0; i < count; ++i) p[i] = 2.0f * lort_rng_uniform(rng) - 1.0f;
    return p;
}
static void *buf(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) exit(2);
    return p;
}
static void check(lort_status st, const char *what) {
    if (st != LORT_OK) {
        fprintf(stderr, "%s: %s\n", what, lort_status_string(st));
        exit(1);
    }
}

/* One timed workload: the generic adapter forward + backward, or the base layer. */
typedef struct {
    int kind; /* 0: base fwd, 1: base fwd+bwd, 2: adapter fwd+bwd */
    lort_adapter a;
    int n, d;
    float *x, *y, *dy, *dx, *W0;
    void *cache, *work;
    size_t cs, ws;
} job;

static void job_run(job *j) {
    if (j->kind <= 1) {
        check(lort_linear_forward(j->y, j->x, j->W0, NULL, j->n, j->d, j->d), "base fwd");
        if (j->kind == 1)
            check(lort_linear_backward(j->dx, NULL, NULL, j->dy, j->x, j->W0, j->n, j->d, j->d),
                  "base bwd");
        return;
    }
    /* tt_adp on a layer's output maps y0 = y in place: its forward takes x = NULL */
    check(lort_adapter_forward(&j->a, j->y,
                               j->a.kind == LORT_KIND_TT_ADP &&
                                       j->a.desc.tt_adp.placement == LORT_TT_ADP_OUTPUT
                                   ? NULL
                                   : j->x,
                               j->n, j->cache, j->cs, j->work, j->ws),
          "fwd");
    check(lort_adapter_backward(&j->a, j->dx, j->dy, j->x, j->n, j->cache, j->cs, j->work, j->ws),
          "bwd");
}
static void job_init(job *j, int kind, const lort_adapter *a, int n, int d, lort_rng *rng,
                     size_t *params) {
    memset(j, 0, sizeof *j);
    j->kind = kind;
    j->n = n;
    j->d = d;
    size_t nd = (size_t)n * (size_t)d;
    j->x = randbuf(nd, rng);
    j->y = randbuf(nd, rng);
    j->dy = randbuf(nd, rng);
    j->dx = randbuf(nd, rng);
    *params = 0;
    if (kind <= 1) {
        j->W0 = randbuf((size_t)d * (size_t)d, rng);
        return;
    }
    lort_adapter_sizes sz;
    j->a = *a;
    check(lort_adapter_sizes_query(&j->a, n, &sz), "sizes");
    j->a.params = randbuf(sz.params, rng);
    j->a.grads = randbuf(sz.params, rng);
    check(lort_adapter_init(&j->a, NULL, rng, NULL, 0), "init");
    if (a->kind == LORT_KIND_LORA) /* B = 0 at init: make the backward do real work */
        for (size_t i = (size_t)a->desc.lora.r * (size_t)d; i < sz.params; ++i)
            j->a.params[i] = 0.01f;
    j->cs = sz.cache;
    j->ws = sz.work;
    j->cache = buf(sz.cache);
    j->work = buf(sz.work);
    *params = sz.params;
}
static void job_free(job *j) {
    free(j->x); free(j->y); free(j->dy); free(j->dx); free(j->W0);
    free(j->a.params); free(j->a.grads); free(j->cache); free(j->work);
}

/* yifanycc/loretta TRANSFORMERS_HIDDEN_SIZE_TO_TENSOR_SHAPE[b][hidden] */
static lort_tt_desc mode_list(int b, int hidden, int t) {
    lort_tt_desc d;
    memset(&d, 0, sizeof d);
    static const int s8_768[] = {8, 8, 12, 8}, s8_4096[] = {16, 16, 8, 4, 4};
    static const int s64_768[] = {8, 8, 12, 8, 8}, s64_4096[] = {16, 16, 16, 4, 4, 4};
    const int *m = b == 8 ? (hidden == 768 ? s8_768 : s8_4096) : (hidden == 768 ? s64_768 : s64_4096);
    d.n_cores = b == 8 ? (hidden == 768 ? 4 : 5) : (hidden == 768 ? 5 : 6);
    memcpy(d.modes, m, (size_t)d.n_cores * sizeof(int));
    d.rank = t;
    return d;
}

static void job_op(void *p) { job_run((job *)p); }

int main(int argc, char **argv) {
    static const int dims[] = {768, 4096};
    enum { NJOB = 8 };
    static const char *names[NJOB] = {
        "base GEMM fwd", "base GEMM fwd+bwd", "LoRA r=8 (dropout 0.05)",
        "LoRA r=64 (bottleneck-64 shapes)", "LoRETTA_rep r=8 t=5 (dropout 0.05)",
        "LoRETTA_rep r=8 t=8 (dropout 0.05)", "LoRETTA_adp b=64 t=5 (ReLU)",
        "LoRETTA_adp b=64 t=8 (ReLU)"};
    static const int role[NJOB] = {-1, -1, 2, 3, 2, 2, 3, 3}; /* the LoRA of the same role */
    const char *thr = getenv("OPENBLAS_NUM_THREADS");
    lort_rng rng;
    lort_rng_seed(&rng, 1);
    bu_init("tt", argc, argv);
    double t_start = now();
    printf("\n## tt adapters (LoRETTA) vs LoRA and the base GEMM: n = %d tokens, fwd+bwd\n\n", NTOK);
    printf("GEMM backend %s, OPENBLAS_NUM_THREADS=%s. Median of %d samples (bench_util.h),\n"
           "taken round-robin over all rows of a d so that every ratio sees the same load.\n\n",
           lort_gemm_backend(), thr ? thr : "(unset)", BU.samples);
    printf("| d | method | trainable | time (ms) | x base fwd+bwd | x LoRA same role |\n");
    printf("|---:|---|---:|---:|---:|---:|\n");
    for (size_t di = 0; di < 2; ++di) {
        int d = dims[di], n = NTOK;
        job jobs[NJOB];
        size_t np[NJOB];
        double med[NJOB];
        void *ctxs[NJOB];
        for (int k = 0; k < NJOB; ++k) {
            lort_adapter a;
            memset(&a, 0, sizeof a);
            if (k == 2 || k == 3) {
                a.kind = LORT_KIND_LORA;
                a.desc.lora.d_in = d; a.desc.lora.d_out = d; a.desc.lora.r = k == 2 ? 8 : 64;
                a.desc.lora.alpha = 2.0f * (float)a.desc.lora.r;
                if (k == 2) { /* the scripts' LoRETTA_rep dropout, on both */
                    a.desc.lora.dropout = 0.05f;
                    a.desc.lora.dropout_seed = 3;
                }
            } else if (k == 4 || k == 5) {
                a.kind = LORT_KIND_TT_REP;
                a.desc.tt_rep.d_in = d; a.desc.tt_rep.d_out = d; a.desc.tt_rep.r = 8;
                a.desc.tt_rep.alpha = 16.0f; a.desc.tt_rep.dropout = 0.05f;
                a.desc.tt_rep.dropout_seed = 3;
                a.desc.tt_rep.A = mode_list(8, d, k == 4 ? 5 : 8);
                a.desc.tt_rep.B = mode_list(8, d, k == 4 ? 5 : 8);
            } else if (k >= 6) {
                a.kind = LORT_KIND_TT_ADP;
                a.desc.tt_adp.hidden = d; a.desc.tt_adp.bottleneck = 64;
                a.desc.tt_adp.down = mode_list(64, d, k == 6 ? 5 : 8);
            }
            job_init(&jobs[k], k < 2 ? k : 2, &a, n, d, &rng, &np[k]);
            job_run(&jobs[k]); /* warm-up */
        }
        for (int k = 0; k < NJOB; ++k) ctxs[k] = &jobs[k];
        bu_time_many(job_op, ctxs, NJOB, med);
        for (int k = 0; k < NJOB; ++k) {
            char tr[32], rl[32];
            if (k < 2) snprintf(tr, sizeof tr, "(frozen %zu)", (size_t)d * (size_t)d);
            else snprintf(tr, sizeof tr, "%zu", np[k]);
            if (role[k] >= 0) snprintf(rl, sizeof rl, "%.3f", med[k] / med[role[k]]);
            else rl[0] = 0;
            printf("| %d | %s | %s | %.3f | %.3f | %s |\n", d, names[k], tr, 1e3 * med[k],
                   med[k] / med[1], rl);
            job_free(&jobs[k]);
        }
    }
    printf("\n(total bench time %.1f s)\n", now() - t_start);
    return 0;
}
