/* make bench row for the joint tensor families: one cp (LoRTA) site of a LLaMA-2-7B-shaped
   layer (d = 4096, H = 32, L = 32, M = 4) beside a rank-r LoRA of the same layer
   (lort_lora_*) and beside materialise-then-GEMM, the reference code's way (LoRTA's code
   builds the d x d update of the site at every forward, then GEMMs with it).
     materialise forward:  dW = delta (d^2 r), y += x dW^T (n d^2)
     materialise backward: (dW kept from forward, as autograd does) dx += dy dW (n d^2),
                           gW = dy^T x (n d^2), then the chain to the factors (2 d^2 r GEMMs)
   Targets: cp site <= 1.5x the rank-r LoRA, and >= 50x faster than materialise,
   at n = 16. Timing: bench/bench_util.h's protocol, interleaved over the ops (bu_time_many);
   ratios come from the same run. usage: bench_cp [--quick] [--samples N] [--cpu-time] */
#define _POSIX_C_SOURCE 200809L
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"
#include "bench_util.h"

#define now_s bu_now
static int cmp_d(const void *a, const void *b) { return bu_cmp_double(a, b); }
static float *falloc(size_t n) {
    float *p = (float *)malloc(n * sizeof(float));
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    for (size_t i = 0; i < n; ++i) p[i] = (float)((double)((i * 2654435761u) % 1000u) / 1000.0 - 0.5) * 0.02f;
    return p;
}
static void *balloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    return p;
}
static void check(lort_status st, const char *what) {
    if (st != LORT_OK) { fprintf(stderr, "%s: %s\n", what, lort_status_string(st)); exit(1); }
}

enum { OP_CP_F, OP_CP_B, OP_LORA_F, OP_LORA_B, OP_MAT_F, OP_MAT_B, OP_BASE };
typedef struct {
    int n, d, r;
    lort_cp_desc cd;
    lort_lora_desc ld;
    float *x, *y, *dy, *dx, *P, *dP, *A, *B, *dA, *dB, *W0, *dW, *gW, *T;
    void *cw, *cc, *lw, *lc;
    size_t cws, ccs, lws, lcs;
} ctx;

static void run(ctx *c, int op) {
    int n = c->n, d = c->d, r = c->r;
    switch (op) {
    case OP_CP_F:
        check(lort_cp_forward(&c->cd, c->y, c->x, c->P, 0, LORT_CP_Q, n, c->cc, c->ccs, c->cw, c->cws), "cp fwd");
        break;
    case OP_CP_B:
        check(lort_cp_backward(&c->cd, c->dx, c->dP, c->dy, c->x, c->P, 0, LORT_CP_Q, n, c->cc, c->ccs, c->cw, c->cws), "cp bwd");
        break;
    case OP_LORA_F:
        check(lort_lora_forward(&c->ld, c->y, c->x, c->A, c->B, n, c->lc, c->lcs, c->lw, c->lws), "lora fwd");
        break;
    case OP_LORA_B:
        check(lort_lora_backward(&c->ld, c->dx, c->dA, c->dB, c->dy, c->x, c->A, c->B, n, c->lc, c->lcs, c->lw, c->lws), "lora bwd");
        break;
    case OP_MAT_F: /* the reference code: materialise the site's d x d update, then GEMM */
        check(lort_cp_delta(&c->cd, c->dW, c->P, 0, LORT_CP_Q, c->cw, c->cws), "delta");
        check(lort_sgemm(0, 1, n, d, d, 1.0f, c->x, d, c->dW, d, 1.0f, c->y, d), "gemm");
        break;
    case OP_MAT_B: /* autograd through the update materialised by forward (kept in c->dW) */
        check(lort_sgemm(0, 0, n, d, d, 1.0f, c->dy, d, c->dW, d, 1.0f, c->dx, d), "dx");   /* dx += dy dW */
        check(lort_sgemm(1, 0, d, d, n, 1.0f, c->dy, d, c->x, d, 0.0f, c->gW, d), "gW");    /* gW = dy^T x */
        check(lort_sgemm(0, 0, d, r, d, 1.0f, c->gW, d, c->P, r, 0.0f, c->T, r), "chain1"); /* gW A-side */
        check(lort_sgemm(1, 0, d, r, d, 1.0f, c->gW, d, c->P, r, 1.0f, c->dP, r), "chain2"); /* gW^T A */
        break;
    default: /* base layer y = x W0^T */
        check(lort_sgemm(0, 1, n, d, d, 1.0f, c->x, d, c->W0, d, 0.0f, c->y, d), "base");
        break;
    }
}
/* Medians over interleaved rounds (bu_time_many): each round times every op once, so a change
   of machine load hits all ops alike and the ratios stay meaningful. */
typedef struct op_ctx {
    ctx *c;
    int op;
} op_ctx;
static void op_run(void *p) { run(((op_ctx *)p)->c, ((op_ctx *)p)->op); }
static void median_times(ctx *c, double *med, double budget) {
    enum { NOPS = 7 };
    op_ctx oc[NOPS];
    void *ptr[NOPS];
    int op;
    (void)budget;
    for (op = 0; op < NOPS; ++op) oc[op].c = c, oc[op].op = op, ptr[op] = &oc[op];
    bu_time_many(op_run, ptr, NOPS, med);
}

/* Other configurations beside the same-layer rank-r LoRA (information, no target): cp with
   heads on the input (the GLUE convention, always the Bk path), a GQA K site (LLaMA-3-8B-like
   8 KV heads: d_out = 1024, LoRA 4096 -> 1024 beside it), and tucker with r1 = r2 = r and
   rH = rL = rM = 4. */
static void other_rows(void) {
    const int d = 4096, n = 16;
    static const struct { const char *name; int kind, r, side, kv; } cfg[] = {
        {"cp, heads in", 0, 8, 1, 0},   {"cp, heads in", 0, 64, 1, 0},
        {"cp, heads in", 0, 235, 1, 0}, {"cp, GQA K site (kv 8)", 0, 64, 0, 8},
        {"tucker (rH = rL = rM = 4)", 1, 8, 0, 0}, {"tucker (rH = rL = rM = 4)", 1, 64, 0, 0},
    };
    printf("\n### other configurations, n = %d (information)\n\n", n);
    printf("| site | r | LoRA fwd | site fwd | ratio | LoRA bwd | site bwd | ratio |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof cfg / sizeof cfg[0]; ++i) {
        int r = cfg[i].r, dout = cfg[i].kv ? cfg[i].kv * 128 : d, m = cfg[i].kv ? LORT_CP_K : LORT_CP_Q;
        lort_cp_desc cd;
        lort_tucker_desc td;
        lort_lora_desc ld;
        size_t np = 0, ws = 0, cs = 0, lws = 0, lcs = 0;
        memset(&cd, 0, sizeof cd); memset(&td, 0, sizeof td); memset(&ld, 0, sizeof ld);
        cd.d = d; cd.heads = 32; cd.layers = 32; cd.r = r; cd.head_side = cfg[i].side;
        cd.kv_heads = cfg[i].kv;
        td.d = d; td.heads = 32; td.layers = 32; td.r1 = td.r2 = r; td.rh = td.rl = td.rm = 4;
        ld.d_in = d; ld.d_out = dout; ld.r = r;
        if (cfg[i].kind) {
            check(lort_tucker_param_count(&td, &np), "count");
            check(lort_tucker_workspace_size(&td, n, &ws), "ws");
            check(lort_tucker_cache_size(&td, n, &cs), "cs");
        } else {
            check(lort_cp_param_count(&cd, &np), "count");
            check(lort_cp_workspace_size(&cd, n, &ws), "ws");
            check(lort_cp_cache_size(&cd, n, &cs), "cs");
        }
        check(lort_lora_workspace_size(&ld, n, &lws), "lws");
        check(lort_lora_cache_size(&ld, n, &lcs), "lcs");
        void *w = balloc(ws), *c = balloc(cs), *lw = balloc(lws), *lc = balloc(lcs);
        size_t nd = (size_t)n * (size_t)d, rd = (size_t)r * (size_t)d;
        float *x = falloc(nd), *y = falloc(nd), *dy = falloc(nd), *dx = falloc(nd);
        float *P = falloc(np), *dP = falloc(np), *A = falloc(rd), *B = falloc(rd);
        float *dA = falloc(rd), *dB = falloc(rd);
        double t[4][41], start;
        int k = 0, op;
        for (int round = -1; round < 41; ++round) {
            if (round == 0) start = now_s();
            if (round > 4 && now_s() - start > 2.0) break;
            for (op = 0; op < 4; ++op) {
                double t0 = now_s();
                switch (op) {
                case 0: check(lort_lora_forward(&ld, y, x, A, B, n, lc, lcs, lw, lws), "lf"); break;
                case 1:
                    check(cfg[i].kind ? lort_tucker_forward(&td, y, x, P, 0, m, n, c, cs, w, ws)
                                      : lort_cp_forward(&cd, y, x, P, 0, m, n, c, cs, w, ws), "sf");
                    break;
                case 2: check(lort_lora_backward(&ld, dx, dA, dB, dy, x, A, B, n, lc, lcs, lw, lws), "lb"); break;
                default:
                    check(cfg[i].kind ? lort_tucker_backward(&td, dx, dP, dy, x, P, 0, m, n, c, cs, w, ws)
                                      : lort_cp_backward(&cd, dx, dP, dy, x, P, 0, m, n, c, cs, w, ws), "sb");
                    break;
                }
                if (round >= 0) t[op][round] = now_s() - t0;
            }
            if (round >= 0) k = round + 1;
        }
        for (op = 0; op < 4; ++op) qsort(t[op], (size_t)k, sizeof(double), cmp_d);
        printf("| %s | %d | %.1f | %.1f | %.2fx | %.1f | %.1f | %.2fx |\n", cfg[i].name, r,
               1e6 * t[0][k / 2], 1e6 * t[1][k / 2], t[1][k / 2] / t[0][k / 2], 1e6 * t[2][k / 2],
               1e6 * t[3][k / 2], t[3][k / 2] / t[2][k / 2]);
        fflush(stdout);
        free(w); free(c); free(lw); free(lc); free(x); free(y); free(dy); free(dx); free(P);
        free(dP); free(A); free(B); free(dA); free(dB);
    }
}

int main(int argc, char **argv) {
    const int d = 4096, H = 32, Lyr = 32, ranks[] = {8, 64, 235}, ns[] = {16, 128};
    int pass_all = 1;
    bu_init("cp", argc, argv);
    const char *thr = getenv("OPENBLAS_NUM_THREADS");
#if defined(OPENBLAS_VERSION)
    /* one BLAS thread unless the environment says otherwise: the machine this runs on is
       shared, and a multi-threaded BLAS stalls whenever one of its threads is preempted, which
       swamps the small-n GEMMs being compared. All rows use the same setting. */
    if (!thr) {
        openblas_set_num_threads(1);
        thr = "1 (set by the bench; export OPENBLAS_NUM_THREADS to override)";
    }
#endif
    printf("\n## cp (LoRTA) site vs rank-r LoRA vs materialise-then-GEMM — LLaMA-2-7B layer "
           "(d = %d, H = %d, L = %d, M = 4), site (layer 0, Q), heads %s\n\n", d, H, Lyr, "out");
    printf("GEMM backend: %s, OPENBLAS_NUM_THREADS=%s. Times are medians in microseconds.\n\n",
           lort_gemm_backend(), thr ? thr : "(unset)");
    printf("| n | r | pass | base x W0^T | LoRA r | cp site | cp / LoRA | materialise | materialise / cp | targets |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    for (size_t in = 0; in < sizeof ns / sizeof ns[0]; ++in)
        for (size_t ir = 0; ir < sizeof ranks / sizeof ranks[0]; ++ir) {
            ctx c;
            memset(&c, 0, sizeof c);
            c.n = ns[in]; c.d = d; c.r = ranks[ir];
            int n = c.n, r = c.r;
            c.cd.d = d; c.cd.heads = H; c.cd.layers = Lyr; c.cd.r = r; c.cd.alpha = 16.0f;
            c.ld.d_in = d; c.ld.d_out = d; c.ld.r = r; c.ld.alpha = 16.0f;
            size_t np = 0;
            check(lort_cp_param_count(&c.cd, &np), "count");
            check(lort_cp_workspace_size(&c.cd, n, &c.cws), "ws");
            check(lort_cp_cache_size(&c.cd, n, &c.ccs), "cs");
            check(lort_lora_workspace_size(&c.ld, n, &c.lws), "lws");
            check(lort_lora_cache_size(&c.ld, n, &c.lcs), "lcs");
            c.cw = balloc(c.cws); c.cc = balloc(c.ccs); c.lw = balloc(c.lws); c.lc = balloc(c.lcs);
            size_t nd = (size_t)n * (size_t)d, dd = (size_t)d * (size_t)d, rd = (size_t)r * (size_t)d;
            c.x = falloc(nd); c.y = falloc(nd); c.dy = falloc(nd); c.dx = falloc(nd);
            c.P = falloc(np); c.dP = falloc(np); c.A = falloc(rd); c.B = falloc(rd);
            c.dA = falloc(rd); c.dB = falloc(rd); c.W0 = falloc(dd); c.dW = falloc(dd);
            c.gW = falloc(dd); c.T = falloc(rd);
            double t[7], tb;
            median_times(&c, t, 3.0);
            tb = t[OP_BASE];
            for (int pass = 0; pass < 2; ++pass) {
                double tc = t[pass ? OP_CP_B : OP_CP_F], tl = t[pass ? OP_LORA_B : OP_LORA_F];
                double tm = t[pass ? OP_MAT_B : OP_MAT_F];
                int ok1 = tc <= 1.5 * tl, ok2 = tm >= 50.0 * tc;
                const char *verdict = n == 16 ? ((ok1 && ok2) ? "PASS" : "MISS") : "(info)";
                if (n == 16 && !(ok1 && ok2)) pass_all = 0;
                printf("| %d | %d | %s | %.1f | %.1f | %.1f | %.2fx%s | %.1f | %.0fx%s | %s |\n", n, r,
                       pass ? "backward" : "forward", 1e6 * tb, 1e6 * tl, 1e6 * tc, tc / tl,
                       ok1 ? "" : " (>1.5)", 1e6 * tm, tm / tc, ok2 ? "" : " (<50)", verdict);
            }
            fflush(stdout);
            free(c.cw); free(c.cc); free(c.lw); free(c.lc); free(c.x); free(c.y); free(c.dy);
            free(c.dx); free(c.P); free(c.dP); free(c.A); free(c.B); free(c.dA); free(c.dB);
            free(c.W0); free(c.dW); free(c.gW); free(c.T);
        }
    printf("\ncp targets at n = 16 (<= 1.5x LoRA, >= 50x less than materialise): %s\n",
           pass_all ? "PASS" : "MISS");
    other_rows();
    return 0;
}
