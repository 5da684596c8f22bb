/* bench/bench_families.c - every adapter family, forward and forward + backward, at d = 4096
   and the ranks its paper uses, n in {1, 16, 512}, beside the base layer's GEMMs; all through
   the generic lort_adapter calls, timed with the protocol of bench/bench_util.h. The PyTorch
   peer (bench/peer_torch.py --families) times the same rows; bench/report.py joins the CSVs.

     family  config (d = d_in = d_out = 4096)                        paper's setting
     lora    r = 8, alpha = 16                                       PEFT / LoRA GLUE scripts
     loraxs  r = 64                                                  LoRA-XS at 7B (r = 64)
     tt_rep  r = 8, TT rank 8, modes (16,16,8,4,4) for A and B      LoRETTA_rep scripts
     tt_adp  bottleneck 64, TT rank 8, modes (16,16,16,4,4,4), ReLU  LoRETTA_adp, LLaMA
             on the layer's input (mh_adapter: x' = x + f(x))
     mpo     6 cores, factors 4^6 x 4^6, bond 8, no residual          DoTA (bond unverified)
     cp      r = 8, H = 32, L = 32, M = 4, site (0, Q)               LoRTA LLaMA-2-7B
     tucker  LoTR form: heads 1, r1 = r2 = 16, rl = L = 32, rh = rm = 1

   Rows: fwd = inference forward (no cache); fwd+bwd = training step of the adapter (forward
   with cache, backward with dx and parameter gradients); bwd = that backward alone (from the
   cache of one forward); base = x W0^T (fwd) and x W0^T plus
   dy W0 (fwd+bwd), the frozen layer's own GEMMs, over the same GEMM (lort_gemm_backend()).

   make bench runs it and the peer with one thread and --cpu-time (process CPU clock), so that
   neighbours on a shared machine do not skew one side of a ratio.

   usage: bench_families [--quick] [--samples N] [--cpu-time] [--csv FILE] [--n LIST]
                         [--family NAME] */
#define _POSIX_C_SOURCE 200809L
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"

#include "bench_util.h"

#define D 4096
#define MAX_N 512

typedef struct fam {
    lort_adapter a;
    const char *name;
    int rank; /* the rank column of the CSV */
    int n;
    float *x, *y, *dy, *dx;
    void *cache, *work;
    size_t cs, ws;
} fam;

typedef struct base_job {
    int n;
    float *x, *y, *dy, *dx, *W0;
} base_job;

static lort_tt_desc modes(int d, const int *m, int t) {
    lort_tt_desc q;
    memset(&q, 0, sizeof q);
    q.n_cores = d;
    memcpy(q.modes, m, (size_t)d * sizeof(int));
    q.rank = t;
    return q;
}

static int family_desc(const char *name, lort_adapter *a, int *rank) {
    static const int m8[] = {16, 16, 8, 4, 4}, m64[] = {16, 16, 16, 4, 4, 4};
    int k;
    memset(a, 0, sizeof *a);
    if (!strcmp(name, "lora")) {
        a->kind = LORT_KIND_LORA;
        a->desc.lora.d_in = D, a->desc.lora.d_out = D, a->desc.lora.r = 8;
        a->desc.lora.alpha = 16.0f;
        *rank = 8;
    } else if (!strcmp(name, "loraxs")) {
        a->kind = LORT_KIND_LORAXS;
        a->desc.loraxs.d_in = D, a->desc.loraxs.d_out = D, a->desc.loraxs.r = 64;
        *rank = 64;
    } else if (!strcmp(name, "tt_rep")) {
        a->kind = LORT_KIND_TT_REP;
        a->desc.tt_rep.d_in = D, a->desc.tt_rep.d_out = D, a->desc.tt_rep.r = 8;
        a->desc.tt_rep.alpha = 16.0f;
        a->desc.tt_rep.A = modes(5, m8, 8);
        a->desc.tt_rep.B = modes(5, m8, 8);
        *rank = 8;
    } else if (!strcmp(name, "tt_adp")) {
        a->kind = LORT_KIND_TT_ADP;
        a->desc.tt_adp.hidden = D, a->desc.tt_adp.bottleneck = 64;
        a->desc.tt_adp.placement = LORT_TT_ADP_INPUT;
        a->desc.tt_adp.down = modes(6, m64, 8);
        *rank = 64;
    } else if (!strcmp(name, "mpo")) {
        a->kind = LORT_KIND_MPO;
        a->desc.mpo.n_cores = 6, a->desc.mpo.bond = 8;
        for (k = 0; k < 6; ++k) a->desc.mpo.row_factors[k] = a->desc.mpo.col_factors[k] = 4;
        a->desc.mpo.residual = LORT_MPO_RESIDUAL_NONE;
        *rank = 8;
    } else if (!strcmp(name, "cp")) {
        a->kind = LORT_KIND_CP;
        a->desc.cp.d = D, a->desc.cp.heads = 32, a->desc.cp.layers = 32, a->desc.cp.r = 8;
        *rank = 8;
    } else if (!strcmp(name, "tucker")) {
        a->kind = LORT_KIND_TUCKER;
        a->desc.tucker.d = D, a->desc.tucker.heads = 1, a->desc.tucker.layers = 32;
        a->desc.tucker.r1 = 16, a->desc.tucker.r2 = 16;
        a->desc.tucker.rh = 1, a->desc.tucker.rl = 32, a->desc.tucker.rm = 1;
        *rank = 16;
    } else {
        return 0;
    }
    return 1;
}

static void fam_fwd(void *p) {
    fam *f = (fam *)p;
    BU_CHECK(lort_adapter_forward(&f->a, f->y, f->x, f->n, NULL, 0, f->work, f->ws));
}
static void fam_step(void *p) {
    fam *f = (fam *)p;
    BU_CHECK(lort_adapter_forward(&f->a, f->y, f->x, f->n, f->cache, f->cs, f->work, f->ws));
    BU_CHECK(lort_adapter_backward(&f->a, f->dx, f->dy, f->x, f->n, f->cache, f->cs, f->work,
                                   f->ws));
}
static void fam_bwd(void *p) { /* the backward alone, from the cache of one fam_step */
    fam *f = (fam *)p;
    BU_CHECK(lort_adapter_backward(&f->a, f->dx, f->dy, f->x, f->n, f->cache, f->cs, f->work,
                                   f->ws));
}
static void base_fwd(void *p) {
    base_job *b = (base_job *)p;
    BU_CHECK(lort_linear_forward(b->y, b->x, b->W0, NULL, b->n, D, D));
}
static void base_step(void *p) {
    base_job *b = (base_job *)p;
    BU_CHECK(lort_linear_forward(b->y, b->x, b->W0, NULL, b->n, D, D));
    BU_CHECK(lort_linear_backward(b->dx, NULL, NULL, b->dy, b->x, b->W0, b->n, D, D));
}

int main(int argc, char **argv) {
    static const char *all[] = {"lora", "loraxs", "tt_rep", "tt_adp", "mpo", "cp", "tucker"};
    int ns[8] = {1, 16, 512}, nn = 3, i, fi;
    const char *only = NULL;
    float *x, *dy, *y, *dx, *W0;
    argc = bu_init("families", argc, argv);
    for (i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--n") && i + 1 < argc) {
            char *s = argv[++i], *end;
            nn = 0;
            while (*s && nn < 8) {
                ns[nn++] = (int)strtol(s, &end, 10);
                s = *end ? end + 1 : end;
            }
        } else if (!strcmp(argv[i], "--family") && i + 1 < argc) {
            only = argv[++i];
        } else {
            fprintf(stderr, "usage: bench_families [--quick] [--samples N] [--csv FILE] "
                            "[--n 1,16,512] [--family NAME]\n");
            return 2;
        }
    }
    for (i = 0; i < nn; ++i)
        if (ns[i] < 1 || ns[i] > MAX_N) bu_die("n out of range (1..512)");
    x = bu_frand((size_t)MAX_N * D, 1, 1.0f);
    dy = bu_frand((size_t)MAX_N * D, 2, 1.0f);
    y = bu_falloc((size_t)MAX_N * D);
    dx = bu_falloc((size_t)MAX_N * D);
    W0 = bu_frand((size_t)D * D, 3, 1.0f / 64.0f);

    printf("## Every family at d = %d, forward and forward + backward (GEMM: %s, %s clock)\n\n",
           D, lort_gemm_backend(), BU.clock == CLOCK_MONOTONIC ? "wall" : "process CPU");
    printf("Median of %d samples (bench/bench_util.h protocol). overhead = adapter time / base "
           "time of the same n (base fwd: x W0^T; base fwd+bwd: x W0^T and dy W0).\n\n",
           BU.samples);
    printf("| family | rank | n | fwd ms | fwd overhead | fwd+bwd ms | fwd+bwd overhead | bwd ms "
           "|\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    fflush(stdout);
    for (i = 0; i < nn; ++i) {
        base_job b;
        bu_timing tbf, tbs;
        b.n = ns[i], b.x = x, b.y = y, b.dy = dy, b.dx = dx, b.W0 = W0;
        tbf = bu_time(base_fwd, &b);
        tbs = bu_time(base_step, &b);
        bu_csv_row("base", "fwd", ns[i], 0, D, "lortensor", tbf.median, lort_gemm_backend());
        bu_csv_row("base", "fwd+bwd", ns[i], 0, D, "lortensor", tbs.median, lort_gemm_backend());
        for (fi = 0; fi < (int)(sizeof all / sizeof all[0]); ++fi) {
            fam f;
            lort_adapter_sizes sz;
            float *params, *grads, *frozen;
            bu_timing tf, ts, tb;
            if (only && strcmp(only, all[fi])) continue;
            memset(&f, 0, sizeof f);
            if (!family_desc(all[fi], &f.a, &f.rank)) bu_die("unknown family");
            f.name = all[fi];
            f.n = ns[i];
            BU_CHECK(lort_adapter_sizes_query(&f.a, f.n, &sz));
            params = bu_frand(sz.params, 4, 0.05f);
            grads = bu_falloc(sz.params);
            frozen = bu_frand(sz.frozen_bytes / sizeof(float), 5, 0.05f);
            f.a.params = params, f.a.grads = grads, f.a.frozen = sz.frozen_bytes ? frozen : NULL;
            f.cs = sz.cache, f.ws = sz.work;
            f.cache = bu_alloc(f.cs), f.work = bu_alloc(f.ws);
            f.x = x, f.y = y, f.dy = dy, f.dx = dx;
            fprintf(stderr, "  %s n=%d ...\n", f.name, f.n);
            tf = bu_time(fam_fwd, &f);
            ts = bu_time(fam_step, &f); /* leaves the cache of a forward for fam_bwd */
            tb = bu_time(fam_bwd, &f);
            printf("| %s | %d | %d | %.4f | %.2f%% | %.4f | %.2f%% | %.4f |\n", f.name, f.rank,
                   f.n, tf.median * 1e3, 100.0 * tf.median / tbf.median, ts.median * 1e3,
                   100.0 * ts.median / tbs.median, tb.median * 1e3);
            fflush(stdout);
            bu_csv_row(f.name, "fwd", f.n, f.rank, D, "lortensor", tf.median, "");
            bu_csv_row(f.name, "fwd+bwd", f.n, f.rank, D, "lortensor", ts.median, "");
            bu_csv_row(f.name, "bwd", f.n, f.rank, D, "lortensor", tb.median, "");
            free(params), free(grads), free(frozen), free(f.cache), free(f.work);
        }
    }
    printf("\n");
    free(x), free(dy), free(y), free(dx), free(W0);
    return 0;
}
