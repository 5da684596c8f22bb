/* The tt family (the TT layer of LoRETTA, the MATH section of lortensor.h) against independent references.

   The raw tt layer is not an adapter of the generic interface, so its kernels are checked here
   (tt_rep and tt_adp, built on them, run through tests/test_conformance.c).
   References (double, sharing nothing with lortensor.h):
     - W_tt entry by entry (ref_tt_dense of tests/lort_ref.h, the one tt reference): the flat
       row-major offset f = p*cols + q is split into the mode indices (i_1..i_d) and the
       product G_1[0,i_1,:] ... G_d[:,i_d,0] is formed as a vector chain (the naive per-entry
       contraction the library must not use, here as the oracle);
     - the loss L = sum(G .* (y0 + x W_tt + bias)) and its central finite differences with
       respect to every core entry, every bias entry and every x entry. L is affine in each
       single entry, so a central difference is exact up to rounding (~1e-12 relative).
   Tolerances ("norm tol t": |got - want| <= t * (max|want| + |want|) elementwise):
     to_dense and forward vs double                          norm 2e-5
     every gradient vs finite differences                   norm 5e-5 (float GEMM chains of
                                                              depth <= n*rows*cols ~ 1e3 lose
                                                              ~1e3 * 6e-8 relative)
     cache vs no cache, grad_dense vs backward              bit-exact / norm 1e-6
   The mode lists are awkward on purpose: ranks 1, modes of size 1 and 2, a single core, the
   maximum of 16 cores, non-uniform and oversized ranks, and row/column splits inside a mode. */
#include "lort_ref.h"

#include <limits.h>


/* ---- the cases ------------------------------------------------------------------------ */
typedef struct {
    const char *name;
    int rows, cols, d;
    int modes[16];
    int ranks[17]; /* 0 entries: `rank` */
    int rank;
    int n;
} tcase;

static const tcase CASES[] = {
    /* the reference gradient check: in 4, out 6, mode 2 straddles the split */
    {"check_grads", 4, 6, 4, {2, 3, 2, 2}, {1, 2, 3, 2, 1}, 0, 3},
    {"split inside mode 1", 3, 8, 4, {2, 3, 2, 2}, {0}, 3, 2},
    {"all ranks 1, modes of size 1", 5, 12, 5, {5, 1, 3, 4, 1}, {0}, 1, 4},
    {"single core", 3, 5, 1, {15}, {0}, 0, 3},
    {"two cores, split inside mode 0", 6, 10, 2, {4, 15}, {0}, 3, 2},
    {"16 cores of 1 and 2", 8, 8, 16, {2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1},
     {1, 2, 2, 3, 0}, 2, 2},
    {"LoRETTA-like (5,8,6), split inside mode 1", 12, 20, 3, {5, 8, 6}, {1, 3, 5, 1}, 0, 3},
    {"rank above the matrix rank", 2, 3, 2, {2, 3}, {0}, 7, 1},
    {"small lo, big hi (contract the suffix first)", 4, 8, 3, {2, 2, 8}, {0}, 2, 3},
    {"big lo, small hi (contract the prefix first)", 8, 4, 3, {8, 2, 2}, {0}, 2, 3},
    {"wide middle core", 6, 6, 4, {3, 4, 1, 3}, {1, 2, 4, 3, 1}, 0, 5},
    {"high ranks over short modes", 4, 6, 4, {2, 3, 2, 2}, {0}, 8, 2},
    {"short modes then long", 6, 32, 5, {2, 2, 3, 4, 4}, {0}, 3, 2},
};
#define NCASES (sizeof(CASES) / sizeof(CASES[0]))

typedef struct {
    lort_tt_desc desc;
    int d, rows, cols, n, t[17], nm[16];
    size_t N, ncore, coff[17];
    float *cores, *x, *bias, *y0, *G;
    double *cd, *xd, *bd, *Gd, *W; /* double copies and the reference matrix */
} tsetup;

static void setup(tsetup *S, const tcase *c, uint64_t seed) {
    memset(S, 0, sizeof *S);
    S->desc.rows = c->rows; S->desc.cols = c->cols; S->desc.n_cores = c->d; S->desc.rank = c->rank;
    for (int k = 0; k < c->d; ++k) S->desc.modes[k] = c->modes[k];
    for (int k = 0; k <= c->d; ++k) S->desc.ranks[k] = c->ranks[k];
    S->d = c->d; S->rows = c->rows; S->cols = c->cols; S->n = c->n;
    S->N = zu(c->rows) * zu(c->cols);
    for (int k = 0; k <= c->d; ++k) {
        int r = c->ranks[k];
        S->t[k] = (k == 0 || k == c->d) ? 1 : (r ? r : c->rank);
    }
    for (int k = 0; k < c->d; ++k) {
        S->nm[k] = c->modes[k];
        S->coff[k + 1] = S->coff[k] + zu(S->t[k]) * zu(S->nm[k]) * zu(S->t[k + 1]);
    }
    S->ncore = S->coff[c->d];
    tr_seed(seed);
    size_t nx = zu(S->n) * zu(S->rows), ny = zu(S->n) * zu(S->cols);
    S->cores = tr_rand(S->ncore); S->x = tr_rand(nx); S->bias = tr_rand(zu(S->cols));
    S->y0 = tr_rand(ny); S->G = tr_rand(ny);
    S->cd = td_alloc(S->ncore); S->xd = td_alloc(nx); S->bd = td_alloc(zu(S->cols));
    S->Gd = td_alloc(ny); S->W = td_alloc(S->N);
    for (size_t i = 0; i < S->ncore; ++i) S->cd[i] = (double)S->cores[i];
    for (size_t i = 0; i < nx; ++i) S->xd[i] = (double)S->x[i];
    for (size_t i = 0; i < zu(S->cols); ++i) S->bd[i] = (double)S->bias[i];
    for (size_t i = 0; i < ny; ++i) S->Gd[i] = (double)S->G[i];
}
static void teardown(tsetup *S) {
    free(S->cores); free(S->x); free(S->bias); free(S->y0); free(S->G);
    free(S->cd); free(S->xd); free(S->bd); free(S->Gd); free(S->W);
}

/* W (rows, cols) entry by entry from the cores cd: the tt reference of tests/lort_ref.h. */
static void ref_dense(const tsetup *S, const double *cd, double *W) {
    ref_tt_dense(S->d, S->nm, S->t, cd, W);
}
/* L = sum(G .* (x W + bias)) (y0 is a constant and left out); Y optional. */
static double ref_loss(const tsetup *S, const double *cd, const double *xd, const double *bd,
                       double *Y) {
    double *W = td_alloc(S->N), L = 0.0;
    ref_dense(S, cd, W);
    for (int i = 0; i < S->n; ++i)
        for (int q = 0; q < S->cols; ++q) {
            double acc = bd[q];
            for (int p = 0; p < S->rows; ++p) acc += xd[(size_t)i * zu(S->rows) + zu(p)] * W[(size_t)p * zu(S->cols) + zu(q)];
            if (Y) Y[(size_t)i * zu(S->cols) + zu(q)] = acc;
            L += acc * S->Gd[(size_t)i * zu(S->cols) + zu(q)];
        }
    free(W);
    return L;
}
static void fd(tsetup *S, double *p, size_t count, double *out) {
    const double eps = 1e-3;
    for (size_t i = 0; i < count; ++i) {
        double old = p[i];
        p[i] = old + eps;
        double lp = ref_loss(S, S->cd, S->xd, S->bd, NULL);
        p[i] = old - eps;
        double lm = ref_loss(S, S->cd, S->xd, S->bd, NULL);
        p[i] = old;
        out[i] = (lp - lm) / (2.0 * eps);
    }
}

/* ---- tests ----------------------------------------------------------------------------- */
static void test_tt_to_dense(void **state) {
    (void)state;
    int seen_split[3] = {0, 0, 0}, seen_order[2] = {0, 0};
    for (size_t ci = 0; ci < NCASES; ++ci) {
        tsetup S;
        setup(&S, &CASES[ci], 10u + ci);
        size_t ws = 0, np = 0;
        OK(lort_tt_param_count(&S.desc, &np));
        assert_int_equal(np, S.ncore);
        OK(lort_tt_workspace_size(&S.desc, 1, &ws));
        void *work = tr_buf(ws);
        float *W = tr_alloc(S.N);
        OK(lort_tt_to_dense(&S.desc, W, S.cores, work, ws));
        ref_dense(&S, S.cd, S.W);
        lort_test_plan_info pl; /* which gradient path the plan takes (private, for coverage) */
        OK(lort_test_tt_plan(&S.desc, &pl));
        printf("  %-46s d=%2d params %4zu work %6zu B, sweep from core %d\n", CASES[ci].name,
               S.d, np, ws, pl.split + 1);
        for (int k = 1; k < pl.split; ++k) /* per-core middle cores: which order */
            seen_order[(size_t)pl.t[k] * pl.hi[k] <= pl.lo[k] * (size_t)pl.t[k + 1]] = 1;
        if (S.d >= 3) {
            seen_split[0] |= pl.split == 0;
            seen_split[1] |= pl.split > 0 && pl.split < S.d - 1;
            seen_split[2] |= pl.split == S.d - 1;
        }
        assert_true(near_fd(CASES[ci].name, W, S.W, S.N, 2e-5));
        /* resolve fills the ranks */
        lort_tt_desc r;
        OK(lort_tt_desc_resolve(&S.desc, &r));
        for (int k = 0; k <= S.d; ++k) assert_int_equal(r.ranks[k], S.t[k]);
        free(work); free(W);
        teardown(&S);
    }
    /* the cases cover the three gradient paths: all sweep, per-core then sweep, all per-core */
    printf("  gradient paths covered: sweep only %d, mixed %d, per-core only %d\n", seen_split[0],
           seen_split[1], seen_split[2]);
    assert_true(seen_split[0] && seen_split[1] && seen_split[2]);
    printf("  per-core orders covered: prefix first %d, suffix first %d\n", seen_order[1],
           seen_order[0]);
    assert_true(seen_order[0] && seen_order[1]);
}

static void run_forward(const tsetup *S, float *y, void *cache, size_t cs) {
    size_t ws = 0;
    OK(lort_tt_workspace_size(&S->desc, S->n, &ws));
    void *work = tr_buf(ws);
    OK(lort_tt_forward(&S->desc, y, S->x, S->cores, S->bias, S->n, cache, cs, work, ws));
    free(work);
}

static void test_tt_forward(void **state) {
    (void)state;
    for (size_t ci = 0; ci < NCASES; ++ci) {
        tsetup S;
        setup(&S, &CASES[ci], 20u + ci);
        size_t ny = zu(S.n) * zu(S.cols), cs = 0;
        double *want = td_alloc(ny);
        (void)ref_loss(&S, S.cd, S.xd, S.bd, want);
        for (size_t i = 0; i < ny; ++i) want[i] += (double)S.y0[i];
        OK(lort_tt_cache_size(&S.desc, S.n, &cs));
        void *cache = tr_buf(cs);
        float *y = tr_alloc(ny), *y2 = tr_alloc(ny);
        memcpy(y, S.y0, ny * sizeof(float));
        memcpy(y2, S.y0, ny * sizeof(float));
        run_forward(&S, y, cache, cs);
        run_forward(&S, y2, NULL, 0);
        assert_true(near_fd(CASES[ci].name, y, want, ny, 2e-5));
        assert_memory_equal(y, y2, ny * sizeof(float)); /* the cache changes nothing */
        free(want); free(cache); free(y); free(y2);
        teardown(&S);
    }
}

static void test_tt_backward_fd(void **state) {
    (void)state;
    for (size_t ci = 0; ci < NCASES; ++ci) {
        tsetup S;
        setup(&S, &CASES[ci], 30u + ci);
        size_t nx = zu(S.n) * zu(S.rows), ny = zu(S.n) * zu(S.cols), cs = 0, ws = 0;
        OK(lort_tt_cache_size(&S.desc, S.n, &cs));
        OK(lort_tt_workspace_size(&S.desc, S.n, &ws));
        void *cache = tr_buf(cs), *work = tr_buf(ws);
        float *y = tr_alloc(ny);
        OK(lort_tt_forward(&S.desc, y, S.x, S.cores, S.bias, S.n, cache, cs, work, ws));
        memset(work, 0xff, ws); /* the workspace is dead between calls: poison it */
        /* accumulation: start from known values and subtract them afterwards */
        float *dx = tr_rand(nx), *dc = tr_rand(S.ncore), *db = tr_rand(zu(S.cols));
        float *dx0 = tr_alloc(nx), *dc0 = tr_alloc(S.ncore), *db0 = tr_alloc(zu(S.cols));
        memcpy(dx0, dx, nx * sizeof(float));
        memcpy(dc0, dc, S.ncore * sizeof(float));
        memcpy(db0, db, zu(S.cols) * sizeof(float));
        OK(lort_tt_backward(&S.desc, dx, dc, db, S.G, S.x, S.cores, S.n, cache, cs, work, ws));
        for (size_t i = 0; i < nx; ++i) dx[i] -= dx0[i];
        for (size_t i = 0; i < S.ncore; ++i) dc[i] -= dc0[i];
        for (size_t i = 0; i < zu(S.cols); ++i) db[i] -= db0[i];
        double *fx = td_alloc(nx), *fc = td_alloc(S.ncore), *fb = td_alloc(zu(S.cols));
        fd(&S, S.xd, nx, fx);
        fd(&S, S.cd, S.ncore, fc);
        fd(&S, S.bd, zu(S.cols), fb);
        char label[128];
        snprintf(label, sizeof label, "%s: dx", CASES[ci].name);
        assert_true(near_fd(label, dx, fx, nx, 5e-5));
        snprintf(label, sizeof label, "%s: dbias", CASES[ci].name);
        assert_true(near_fd(label, db, fb, zu(S.cols), 5e-5));
        for (int k = 0; k < S.d; ++k) { /* every core on its own scale */
            snprintf(label, sizeof label, "%s: dG_%d", CASES[ci].name, k + 1);
            assert_true(near_fd(label, dc + S.coff[k], fc + S.coff[k], S.coff[k + 1] - S.coff[k],
                                5e-5));
        }
        /* without the cache, with NULL gradients skipped: same numbers */
        float *dc2 = tr_alloc(S.ncore), *dx2 = tr_alloc(nx);
        OK(lort_tt_backward(&S.desc, NULL, dc2, NULL, S.G, S.x, S.cores, S.n, NULL, 0, work, ws));
        assert_true(cmp_ff("dcores cache=NULL", dc2, dc, S.ncore, 1e-6, 1e-5));
        OK(lort_tt_backward(&S.desc, dx2, NULL, NULL, S.G, NULL, S.cores, S.n, NULL, 0, work, ws));
        assert_true(cmp_ff("dx only", dx2, dx, nx, 1e-6, 1e-5));
        /* grad_dense of dW = x^T G is the same pullback */
        float *dW = tr_alloc(S.N), *dc3 = tr_alloc(S.ncore);
        for (int p = 0; p < S.rows; ++p)
            for (int q = 0; q < S.cols; ++q) {
                double acc = 0.0;
                for (int i = 0; i < S.n; ++i)
                    acc += S.xd[(size_t)i * zu(S.rows) + zu(p)] * S.Gd[(size_t)i * zu(S.cols) + zu(q)];
                dW[(size_t)p * zu(S.cols) + zu(q)] = (float)acc;
            }
        size_t ws1 = 0;
        OK(lort_tt_workspace_size(&S.desc, 1, &ws1));
        OK(lort_tt_grad_dense(&S.desc, dc3, dW, S.cores, work, ws1));
        snprintf(label, sizeof label, "%s: grad_dense", CASES[ci].name);
        assert_true(near_fd(label, dc3, fc, S.ncore, 5e-5));
        free(dW); free(dc3); free(dc2); free(dx2);
        free(fx); free(fc); free(fb); free(dx0); free(dc0); free(db0);
        free(dx); free(dc); free(db); free(y); free(cache); free(work);
        teardown(&S);
    }
}

/* LoRETTA's init: core k ~ N(0, sigma^(2/d)/t_k). Checked two ways:
   (1) each core's sample variance against sigma^(2/d)/t_k (chi-square: relative sd
       sqrt(2/m) for m samples; bound 5 sd);
   (2) the variance of W_tt entries against 1/(rows + cols) exactly, over many inits. An
       entry is a sum of prod t_k products of d Gaussians; E[w^4] <= 3^d E[w^2]^2, so the
       relative sd of the mean of w^2 over M (correlated within an init, independent across
       inits) draws is at most sqrt(3^d / M_inits); bound 5 sd. */
static void test_tt_init_variance(void **state) {
    (void)state;
    lort_tt_desc d;
    memset(&d, 0, sizeof d);
    d.rows = 12; d.cols = 20; d.n_cores = 3; d.modes[0] = 5; d.modes[1] = 8; d.modes[2] = 6;
    d.ranks[1] = 3; d.ranks[2] = 5;
    int t[4] = {1, 3, 5, 1}, nm[3] = {5, 8, 6};
    size_t np = 0, ws = 0, off[4] = {0};
    OK(lort_tt_param_count(&d, &np));
    for (int k = 0; k < 3; ++k) off[k + 1] = off[k] + zu(t[k] * nm[k] * t[k + 1]);
    assert_int_equal(np, off[3]);
    OK(lort_tt_workspace_size(&d, 1, &ws));
    void *work = tr_buf(ws);
    float *cores = tr_alloc(np), *W = tr_alloc(240);
    const int inits = 4000;
    double sig2 = 1.0 / 32.0, core_ss[3] = {0, 0, 0}, wss = 0.0, wsum = 0.0;
    lort_rng rng;
    lort_rng_seed(&rng, 5);
    for (int it = 0; it < inits; ++it) {
        OK(lort_tt_init(&d, cores, &rng));
        for (int k = 0; k < 3; ++k)
            for (size_t i = off[k]; i < off[k + 1]; ++i) core_ss[k] += (double)cores[i] * (double)cores[i];
        OK(lort_tt_to_dense(&d, W, cores, work, ws));
        for (size_t i = 0; i < 240; ++i) {
            wss += (double)W[i] * (double)W[i];
            wsum += (double)W[i];
        }
    }
    for (int k = 0; k < 3; ++k) {
        double m = (double)inits * (double)(off[k + 1] - off[k]);
        double want = pow(sig2, 1.0 / 3.0) / (double)t[k + 1], got = core_ss[k] / m;
        printf("  core %d: variance %.6g want %.6g\n", k + 1, got, want);
        assert_true(fabs(got / want - 1.0) < 5.0 * sqrt(2.0 / m));
    }
    double var = wss / (240.0 * inits), mean = wsum / (240.0 * inits);
    double bound = 5.0 * sqrt(27.0 / inits);
    printf("  W_tt entries: mean %.3g variance %.6g want %.6g (rel. bound %.3f)\n", mean, var,
           sig2, bound);
    assert_true(fabs(var / sig2 - 1.0) < bound);
    assert_true(fabs(mean) < 5.0 * sqrt(sig2 / inits));
    /* the same seed gives the same cores; the init is not zero (LoRETTA: f(0) != 0) */
    float *c2 = tr_alloc(np);
    lort_rng_seed(&rng, 9); OK(lort_tt_init(&d, cores, &rng));
    lort_rng_seed(&rng, 9); OK(lort_tt_init(&d, c2, &rng));
    assert_memory_equal(cores, c2, np * sizeof(float));
    free(c2); free(cores); free(W); free(work);
}

/* Bad mode lists return a status and write nothing; none crashes (ASan build). */
static void test_tt_bad_mode_lists(void **state) {
    (void)state;
    lort_tt_desc g;
    memset(&g, 0, sizeof g);
    g.rows = 4; g.cols = 6; g.n_cores = 4; g.rank = 2;
    g.modes[0] = 2; g.modes[1] = 3; g.modes[2] = 2; g.modes[3] = 2;
    size_t np = 0, ws = 0;
    OK(lort_tt_param_count(&g, &np));
    OK(lort_tt_workspace_size(&g, 3, &ws));
    void *work = tr_buf(ws);
    float cores[256], y[64], x[64], dx[64], dc[256], sent[256];
    tr_fill(cores, 256); tr_fill(x, 64);
    for (int i = 0; i < 256; ++i) sent[i] = 12345.0f;
    struct { const char *what; lort_tt_desc d; lort_status want; } bad[16];
    int nb = 0;
#define BAD(label, code, edit) do { bad[nb].what = label; bad[nb].d = g; { lort_tt_desc *D = &bad[nb].d; edit; } bad[nb].want = code; ++nb; } while (0)
    BAD("product of modes != rows*cols", LORT_ERR_SHAPE, D->modes[3] = 3);
    BAD("product smaller", LORT_ERR_SHAPE, D->modes[0] = 1);
    BAD("rank 0", LORT_ERR_INVALID_ARG, D->rank = 0);
    BAD("one inner rank negative", LORT_ERR_INVALID_ARG, D->ranks[2] = -1);
    BAD("t_0 = 2", LORT_ERR_INVALID_ARG, D->ranks[0] = 2);
    BAD("t_d = 3", LORT_ERR_INVALID_ARG, D->ranks[4] = 3);
    BAD("too many cores", LORT_ERR_INVALID_ARG, D->n_cores = LORT_TT_MAX_CORES + 1);
    BAD("no cores", LORT_ERR_INVALID_ARG, D->n_cores = 0);
    BAD("negative d", LORT_ERR_INVALID_ARG, D->n_cores = -3);
    BAD("mode 0", LORT_ERR_INVALID_ARG, D->modes[1] = 0);
    BAD("negative mode", LORT_ERR_INVALID_ARG, D->modes[1] = -3);
    BAD("rows 0", LORT_ERR_INVALID_ARG, D->rows = 0);
    BAD("rows*cols overflows int", LORT_ERR_OVERFLOW, (D->rows = 65536, D->cols = 65536));
    BAD("modes multiply past INT_MAX", LORT_ERR_OVERFLOW,
        (D->modes[0] = 65536, D->modes[1] = 65536, D->modes[2] = 1, D->modes[3] = 1));
    BAD("a core larger than INT_MAX", LORT_ERR_OVERFLOW,
        (D->rows = 1, D->cols = 2, D->n_cores = 2, D->modes[0] = 2, D->modes[1] = 1, D->rank = 1 << 30));
    BAD("modes multiply to 2^64 (wraps size_t)", LORT_ERR_OVERFLOW,
        (D->n_cores = 4, D->modes[0] = 65536, D->modes[1] = 65536, D->modes[2] = 65536, D->modes[3] = 65536));
#undef BAD
    for (int i = 0; i < nb; ++i) {
        const lort_tt_desc *D = &bad[i].d;
        lort_rng rng;
        lort_rng_seed(&rng, 1);
        size_t v = 777;
        lort_tt_desc r;
        int ok = 1;
        memcpy(y, sent, sizeof y); memcpy(dx, sent, sizeof dx); memcpy(dc, sent, sizeof dc);
        ok &= lort_tt_param_count(D, &v) == bad[i].want && v == 777;
        ok &= lort_tt_workspace_size(D, 3, &v) == bad[i].want && v == 777;
        ok &= lort_tt_cache_size(D, 3, &v) == bad[i].want && v == 777;
        ok &= lort_tt_desc_resolve(D, &r) == bad[i].want;
        ok &= lort_tt_init(D, dc, &rng) == bad[i].want;
        ok &= lort_tt_to_dense(D, y, cores, work, ws) == bad[i].want;
        ok &= lort_tt_grad_dense(D, dc, x, cores, work, ws) == bad[i].want;
        ok &= lort_tt_forward(D, y, x, cores, NULL, 3, NULL, 0, work, ws) == bad[i].want;
        ok &= lort_tt_backward(D, dx, dc, NULL, y, x, cores, 3, NULL, 0, work, ws) == bad[i].want;
        ok &= memcmp(y, sent, sizeof y) == 0 && memcmp(dx, sent, sizeof dx) == 0 &&
              memcmp(dc, sent, sizeof dc) == 0;
        printf("  %-40s -> %s%s\n", bad[i].what, lort_status_string(bad[i].want), ok ? "" : "  FAILED");
        assert_true(ok);
    }
    /* other argument errors */
    assert_int_equal(lort_tt_param_count(NULL, &np), LORT_ERR_NULL);
    assert_int_equal(lort_tt_param_count(&g, NULL), LORT_ERR_NULL);
    assert_int_equal(lort_tt_forward(&g, y, x, cores, NULL, 0, NULL, 0, work, ws), LORT_ERR_INVALID_ARG);
    assert_int_equal(lort_tt_forward(&g, y, x, NULL, NULL, 3, NULL, 0, work, ws), LORT_ERR_NULL);
    assert_int_equal(lort_tt_forward(&g, y, x, cores, NULL, 3, NULL, 0, work, ws - 1), LORT_ERR_WORKSPACE);
    assert_int_equal(lort_tt_backward(&g, dx, dc, NULL, y, NULL, cores, 3, NULL, 0, work, ws), LORT_ERR_NULL);
    size_t cs = 0;
    OK(lort_tt_cache_size(&g, 3, &cs));
    void *cache = tr_buf(cs);
    assert_int_equal(lort_tt_forward(&g, y, x, cores, NULL, 3, cache, cs - 1, work, ws), LORT_ERR_CACHE);
#ifdef LORT_DEBUG
    /* under LORT_DEBUG the kernels scan their inputs */
    x[5] = (float)NAN;
    assert_int_equal(lort_tt_forward(&g, y, x, cores, NULL, 3, NULL, 0, work, ws), LORT_ERR_NONFINITE);
    x[5] = 0.0f;
    cores[3] = (float)INFINITY;
    assert_int_equal(lort_tt_to_dense(&g, y, cores, work, ws), LORT_ERR_NONFINITE);
    lort_tt_rep_desc rd;
    memset(&rd, 0, sizeof rd);
    rd.d_in = 4; rd.d_out = 6; rd.r = 1; rd.A.n_cores = 1; rd.A.modes[0] = 4; rd.B.n_cores = 1; rd.B.modes[0] = 6;
    assert_int_equal(lort_tt_rep_forward(&rd, y, x, cores, 3, NULL, 0, work, ws), LORT_ERR_NONFINITE);
#endif
    free(cache);
    free(work);
}

/* Random descs, valid and not: every call returns a status or OK, and OK calls run the kernels
   on exactly-sized buffers (the ASan build checks every access). Valid descs take rows and
   cols from a random split of the mode product; a few fields are then corrupted at random. */
static void test_tt_fuzz(void **state) {
    (void)state;
    int ok_count = 0, err_count = 0;
    tr_seed(4242);
    for (int it = 0; it < 3000; ++it) {
        lort_tt_desc d;
        memset(&d, 0, sizeof d);
        d.n_cores = 1 + (int)(tr_uniform() * 6.0);
        long prod = 1;
        for (int k = 0; k < d.n_cores; ++k) {
            d.modes[k] = 1 + (int)(tr_uniform() * 4.0);
            prod *= d.modes[k];
        }
        long rows = 1; /* a divisor of prod */
        for (long q = 1; q <= prod; ++q)
            if (prod % q == 0 && tr_uniform() < 0.3) rows = q;
        d.rows = (int)rows;
        d.cols = (int)(prod / rows);
        d.rank = 1 + (int)(tr_uniform() * 4.0);
        for (int k = 1; k < d.n_cores; ++k)
            if (tr_uniform() < 0.3) d.ranks[k] = 1 + (int)(tr_uniform() * 3.0);
        double u = tr_uniform();
        if (u < 0.1) d.n_cores = (int)(tr_uniform() * 40.0) - 10;
        else if (u < 0.2) d.modes[(int)(tr_uniform() * 16.0)] = (int)(tr_uniform() * 7.0) - 2;
        else if (u < 0.3) d.ranks[(int)(tr_uniform() * 17.0)] = (int)(tr_uniform() * 5.0) - 1;
        else if (u < 0.35) d.rank = (int)(tr_uniform() * 3.0) - 1;
        else if (u < 0.4) d.rows += 1;
        else if (u < 0.45) d.modes[0] = INT_MAX / 2 + (int)(tr_uniform() * 1000.0);
        size_t np = 0, ws = 0, cs = 0;
        lort_status st = lort_tt_param_count(&d, &np);
        lort_status st2 = lort_tt_workspace_size(&d, 2, &ws);
        lort_status st3 = lort_tt_cache_size(&d, 2, &cs);
        assert_int_equal(st, st2);
        assert_int_equal(st, st3);
        if (st != LORT_OK) {
            assert_true(st < 0 && st >= LORT__STATUS_MIN);
            ++err_count;
            continue;
        }
        ++ok_count;
        size_t nx = 2u * zu(d.rows), ny = 2u * zu(d.cols), N = zu(d.rows) * zu(d.cols);
        float *c = tr_rand(np), *dc = tr_alloc(np), *x = tr_rand(nx), *y = tr_rand(ny),
              *dx = tr_alloc(nx), *W = tr_alloc(N);
        void *work = tr_buf(ws), *cache = tr_buf(cs);
        OK(lort_tt_to_dense(&d, W, c, work, ws));
        OK(lort_tt_forward(&d, y, x, c, NULL, 2, cache, cs, work, ws));
        OK(lort_tt_backward(&d, dx, dc, NULL, y, x, c, 2, cache, cs, work, ws));
        OK(lort_tt_grad_dense(&d, dc, W, c, work, ws));
        free(c); free(dc); free(x); free(y); free(dx); free(W); free(work); free(cache);
    }
    printf("  %d valid and %d invalid descs\n", ok_count, err_count);
    assert_true(ok_count > 1000 && err_count > 500);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tt_to_dense),
        cmocka_unit_test(test_tt_forward),
        cmocka_unit_test(test_tt_backward_fd),
        cmocka_unit_test(test_tt_init_variance),
        cmocka_unit_test(test_tt_bad_mode_lists),
        cmocka_unit_test(test_tt_fuzz),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
