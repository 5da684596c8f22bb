/* One conformance harness over the generic adapter interface (lort_adapter), in the spirit of
   ggml's test-backend-ops: a table of (kind, desc) cases, and the same list of checks for
   every case. A new family gets every check by adding rows to CASES.

   For every case (sizes from lort_adapter_sizes_query at NR rows; cache and workspace are
   malloc'ed at exactly the queried size, so ASan sees any byte beyond it):
     1. forward == y0 + x dW^T, dW from lort_adapter_delta, the sum in double (for families
        with a linear update; tt_adp is not linear and has its double reference in
        test_loretta.c)                                                        norm 2e-5
     2. merge: W0 + dW as step 1's dW (norm 1e-6), the merged layer x W^T equals base +
        forward (norm 2e-5); merge with weight -1 restores W0 to 4 ulp of max|W0| + |dW|
     3. backward against central differences in double of L = sum(G .* forward(x)) for every
        entry of every parameter block and of x (the adapters other than tt_adp are linear in
        each single entry, so the differences are exact up to float rounding of the forward;
        tt_adp uses GELU and a smaller step)                                    norm 2e-3
     4. backward with the cache forward filled == backward without a cache     norm 1e-6
     5. fewer rows than the buffers were sized for: forward at n = NR - 2 equals the first
        rows of the forward at NR (same float operations per row)              norm 1e-6
     6. exact sizes: a workspace or cache one byte short is LORT_ERR_WORKSPACE / LORT_ERR_CACHE
     7. every error path tried here (short buffers, NULL x or dy, n = 0, n < 0) leaves y, dx,
        the gradients, the cache and W byte for byte untouched
     8. from the default init (lort_adapter_init with a random W0), after one AdamW step on the
        gradient summed over every site (all layers and matrices of a joint family), every
        parameter has a non-zero gradient: no part of an adapter starts frozen
     9. under LORT_DEBUG, a NaN in the parameters is LORT_ERR_NONFINITE in forward and in
        backward.
   The per-family test files keep the independent double references of each family's math. */
#include "lort_test.h"

enum { NR = 5 };

typedef struct {
    const char *name;
    lort_adapter a;      /* kind, desc, layer, matrix (pointers set by the harness) */
    int sites_l, sites_m; /* joint families: layers x matrices to sum over in check 8 */
    int linear;          /* 1: y = y0 + x dW^T with dW from delta; merge works */
    double fd_step, fd_tol;
} ccase;

static lort_tt_desc ttd(int d, const int *modes, int rank) {
    lort_tt_desc t;
    memset(&t, 0, sizeof t);
    t.n_cores = d;
    for (int k = 0; k < d; ++k) t.modes[k] = modes[k];
    t.rank = rank;
    return t;
}

#define NCASES 9
static ccase CASES[NCASES];
static int ncases;

static void add_case(const char *name, lort_adapter a, int sl, int sm, int linear, double step,
                     double tol) {
    assert_true(ncases < NCASES);
    CASES[ncases].name = name;
    CASES[ncases].a = a;
    CASES[ncases].sites_l = sl;
    CASES[ncases].sites_m = sm;
    CASES[ncases].linear = linear;
    CASES[ncases].fd_step = step;
    CASES[ncases].fd_tol = tol;
    ++ncases;
}

static void make_cases(void) {
    lort_adapter a;
    ncases = 0;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_LORA;
    a.desc.lora.d_in = 7; a.desc.lora.d_out = 5; a.desc.lora.r = 3; a.desc.lora.alpha = 6.0f;
    a.desc.lora.dropout = 0.25f; a.desc.lora.dropout_seed = 11u;
    add_case("lora 7->5 r3 dropout", a, 1, 1, 1, 0.05, 2e-3);

    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_LORAXS;
    a.desc.loraxs.d_in = 7; a.desc.loraxs.d_out = 6; a.desc.loraxs.r = 3;
    a.desc.loraxs.alpha = 3.0f;
    add_case("loraxs 7->6 r3", a, 1, 1, 1, 0.05, 2e-3);

    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_TT_REP;
    a.desc.tt_rep.d_in = 8; a.desc.tt_rep.d_out = 6; a.desc.tt_rep.r = 4;
    a.desc.tt_rep.alpha = 2.0f; a.desc.tt_rep.dropout = 0.2f; a.desc.tt_rep.dropout_seed = 5u;
    {
        static const int ma[3] = {2, 4, 4}, mb[2] = {4, 6};
        a.desc.tt_rep.A = ttd(3, ma, 2);
        a.desc.tt_rep.B = ttd(2, mb, 3);
    }
    add_case("tt_rep 8->6 r4", a, 1, 1, 1, 0.05, 2e-3);

    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_TT_ADP;
    a.desc.tt_adp.hidden = 8; a.desc.tt_adp.bottleneck = 4; a.desc.tt_adp.scale = 0.7f;
    a.desc.tt_adp.act = LORT_ACT_GELU; a.desc.tt_adp.placement = LORT_TT_ADP_INPUT;
    {
        static const int md[2] = {4, 8};
        a.desc.tt_adp.down = ttd(2, md, 2);
    }
    add_case("tt_adp 8 b4 gelu, input", a, 1, 1, 0, 1e-2, 5e-3);

    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_CP;
    a.desc.cp.d = 8; a.desc.cp.heads = 2; a.desc.cp.layers = 3; a.desc.cp.r = 3;
    a.desc.cp.matrices = 4; a.desc.cp.alpha = 4.0f;
    a.layer = 1; a.matrix = 2;
    add_case("cp d8 h2 L3 M4 r3, site (1, 2)", a, 3, 4, 1, 0.05, 2e-3);

    a.desc.cp.kv_heads = 1; a.matrix = LORT_CP_K;
    add_case("cp GQA kv 1, site (1, K)", a, 3, 4, 1, 0.05, 2e-3);

    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_TUCKER;
    a.desc.tucker.d = 8; a.desc.tucker.heads = 2; a.desc.tucker.layers = 2;
    a.desc.tucker.matrices = 3; a.desc.tucker.r1 = 4; a.desc.tucker.r2 = 3;
    a.desc.tucker.rh = 2; a.desc.tucker.rl = 2; a.desc.tucker.rm = 1;
    a.layer = 1; a.matrix = 0;
    add_case("tucker d8 r (4,3,2,2,1), site (1, 0)", a, 2, 3, 1, 0.05, 2e-3);

    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_MPO;
    a.desc.mpo.n_cores = 2;
    a.desc.mpo.row_factors[0] = 2; a.desc.mpo.row_factors[1] = 3;
    a.desc.mpo.col_factors[0] = 2; a.desc.mpo.col_factors[1] = 4;
    a.desc.mpo.bond = 3;
    add_case("mpo 8->6 (2x2)(3x4) bond 3", a, 1, 1, 1, 0.05, 2e-3);

    a.desc.mpo.residual = LORT_MPO_RESIDUAL_F32; a.desc.mpo.path = LORT_MPO_FACTORED;
    add_case("mpo DoTA residual f32, factored", a, 1, 1, 1, 0.05, 2e-3);
}

/* ---- one case's buffers ---------------------------------------------------------------- */
typedef struct {
    lort_adapter a;
    lort_adapter_sizes sz;
    int di, dout, replaces;
    float *params, *frozen, *grads, *W0, *x, *y0, *G;
    void *cache, *work;
} run;

static void *xalloc(size_t bytes) { /* exactly `bytes` (1 for 0), so ASan sees an overrun */
    void *p = malloc(bytes ? bytes : 1);
    assert_non_null(p);
    memset(p, 0xa5, bytes ? bytes : 1);
    return p;
}

static void run_make(run *R, const ccase *c, uint64_t seed) {
    memset(R, 0, sizeof *R);
    R->a = c->a;
    assert_int_equal(lort_adapter_sizes_query(&R->a, NR, &R->sz), LORT_OK);
    R->di = R->sz.d_in;
    R->dout = R->sz.d_out;
    R->replaces = R->sz.replaces_base;
    tr_seed(seed);
    R->params = tr_rand(R->sz.params);
    R->grads = tr_alloc(R->sz.params);
    R->frozen = R->sz.frozen_bytes ? tr_rand(R->sz.frozen_bytes / sizeof(float)) : NULL;
    R->W0 = tr_rand(zu(R->dout) * zu(R->di));
    R->x = tr_rand(zu(NR) * zu(R->di));
    R->y0 = tr_rand(zu(NR) * zu(R->dout));
    R->G = tr_rand(zu(NR) * zu(R->dout));
    R->cache = xalloc(R->sz.cache);
    R->work = xalloc(R->sz.work > R->sz.init_work ? R->sz.work : R->sz.init_work);
    R->a.params = R->params;
    R->a.frozen = R->frozen;
    R->a.grads = R->grads;
    if (c->a.kind == LORT_KIND_LORAXS) { /* frozen factors from the SVD of W0 */
        lort_rng rng;
        lort_rng_seed(&rng, seed);
        assert_int_equal(lort_adapter_init(&R->a, R->W0, &rng, R->work, R->sz.init_work), LORT_OK);
        tr_fill(R->params, R->sz.params); /* a non-zero R */
    }
}
static void run_free(run *R) {
    free(R->params); free(R->grads); free(R->frozen); free(R->W0); free(R->x); free(R->y0);
    free(R->G); free(R->cache); free(R->work);
}

/* y = y0 + forward(x) at n rows (no cache) into y (n, dout). */
static void fwd(run *R, float *y, const float *x, int n, void *cache, size_t cs) {
    memcpy(y, R->y0, zu(n) * zu(R->dout) * sizeof(float));
    assert_int_equal(lort_adapter_forward(&R->a, y, x, n, cache, cs, R->work, R->sz.work), LORT_OK);
}
/* L = sum(G .* forward(x)) in double (the y0 part is a constant and left out). */
static double loss(run *R, const float *x, float *y) {
    double L = 0.0;
    fwd(R, y, x, NR, NULL, 0);
    for (size_t i = 0; i < zu(NR) * zu(R->dout); ++i)
        L += (double)R->G[i] * ((double)y[i] - (double)R->y0[i]);
    return L;
}

/* The documented input dropout mask (lort_dropout_factor) of the families that have one. */
static double drop(const ccase *c, int i, int k) {
    float p = 0.0f;
    uint64_t seed = 0;
    if (c->a.kind == LORT_KIND_LORA) { p = c->a.desc.lora.dropout; seed = c->a.desc.lora.dropout_seed; }
    if (c->a.kind == LORT_KIND_TT_REP) { p = c->a.desc.tt_rep.dropout; seed = c->a.desc.tt_rep.dropout_seed; }
    return p > 0.0f ? (double)lort_dropout_factor(seed, p, (uint64_t)i, (uint64_t)k) : 1.0;
}

static int has_dropout(const ccase *c) {
    return (c->a.kind == LORT_KIND_LORA && c->a.desc.lora.dropout > 0.0f) ||
           (c->a.kind == LORT_KIND_TT_REP && c->a.desc.tt_rep.dropout > 0.0f);
}

/* ---- the checks ---------------------------------------------------------------------------- */
static void check_case(const ccase *c) {
    run R;
    run_make(&R, c, 1000u + (uint64_t)(c - CASES));
    const size_t ny = zu(NR) * zu(R.dout), nx = zu(NR) * zu(R.di), nw = zu(R.dout) * zu(R.di);
    float *y = tr_alloc(ny), *y2 = tr_alloc(ny), *dx = tr_alloc(nx), *dx2 = tr_alloc(nx);
    float *g2 = tr_alloc(R.sz.params), *dW = tr_alloc(nw), *W = tr_alloc(nw);
    double *want = td_alloc(ny > nw ? (ny > R.sz.params ? ny : R.sz.params)
                                    : (nw > R.sz.params ? nw : R.sz.params));
    printf("  %-40s params %5zu frozen %4zu B cache %6zu work %7zu\n", c->name, R.sz.params,
           R.sz.frozen_bytes, R.sz.cache, R.sz.work);

    /* 1, 2: forward vs x dW^T; merge / unmerge */
    fwd(&R, y, R.x, NR, NULL, 0);
    if (c->linear) {
        assert_int_equal(lort_adapter_delta(&R.a, dW, R.work, R.sz.work), LORT_OK);
        for (int i = 0; i < NR; ++i)
            for (int o = 0; o < R.dout; ++o) {
                double s = (double)R.y0[zu(i) * zu(R.dout) + zu(o)];
                for (int k = 0; k < R.di; ++k)
                    s += drop(c, i, k) * (double)R.x[zu(i) * zu(R.di) + zu(k)] *
                         (double)dW[zu(o) * zu(R.di) + zu(k)];
                want[zu(i) * zu(R.dout) + zu(o)] = s;
            }
        assert_true(near_fd("forward vs y0 + x dW^T", y, want, ny, 2e-5));
        memcpy(W, R.W0, nw * sizeof(float));
        assert_int_equal(lort_adapter_merge(&R.a, W, 1.0f, R.work, R.sz.work), LORT_OK);
        for (size_t i = 0; i < nw; ++i) want[i] = (double)R.W0[i] + (double)dW[i];
        assert_true(near_fd("merge vs W0 + dW", W, want, nw, 1e-6));
        for (int i = 0; i < NR; ++i) /* merged layer vs base + forward */
            for (int o = 0; o < R.dout; ++o) {
                double s = 0.0, b = 0.0;
                for (int k = 0; k < R.di; ++k) {
                    s += (double)R.x[zu(i) * zu(R.di) + zu(k)] * (double)W[zu(o) * zu(R.di) + zu(k)];
                    b += (double)R.x[zu(i) * zu(R.di) + zu(k)] * (double)R.W0[zu(o) * zu(R.di) + zu(k)];
                }
                /* replaces_base: forward is the whole layer (x (W_res + M)^T), merge gives
                   W0 + W_res + M, so the merged layer is x W0^T + forward */
                want[zu(i) * zu(R.dout) + zu(o)] = s;
                y2[zu(i) * zu(R.dout) + zu(o)] =
                    (float)(b + (double)y[zu(i) * zu(R.dout) + zu(o)] -
                            (double)R.y0[zu(i) * zu(R.dout) + zu(o)]);
            }
        if (!has_dropout(c)) /* with dropout the merged layer is the eval-mode one */
            assert_true(near_fd("merged layer vs base + forward", y2, want, ny, 2e-5));
        assert_int_equal(lort_adapter_merge(&R.a, W, -1.0f, R.work, R.sz.work), LORT_OK);
        double big = 0.0;
        for (size_t i = 0; i < nw; ++i)
            big = fmax(big, fabs((double)R.W0[i]) + fabs((double)dW[i]));
        for (size_t i = 0; i < nw; ++i)
            assert_true(fabs((double)W[i] - (double)R.W0[i]) <= 4.0 * 1.1920929e-7 * big);
    } else {
        assert_int_equal(lort_adapter_merge(&R.a, W, 1.0f, R.work, R.sz.work),
                         LORT_ERR_NOT_MERGEABLE);
    }

    /* 3: backward vs central differences, every parameter entry and every x entry */
    memset(R.grads, 0, R.sz.params * sizeof(float));
    memset(dx, 0, nx * sizeof(float));
    assert_int_equal(lort_adapter_backward(&R.a, dx, R.G, R.x, NR, NULL, 0, R.work, R.sz.work),
                     LORT_OK);
    {
        double h = c->fd_step;
        for (size_t e = 0; e < R.sz.params; ++e) {
            float keep = R.params[e];
            R.params[e] = (float)((double)keep + h);
            double hp = (double)R.params[e] - (double)keep, Lp = loss(&R, R.x, y2);
            R.params[e] = (float)((double)keep - h);
            double hm = (double)keep - (double)R.params[e], Lm = loss(&R, R.x, y2);
            R.params[e] = keep;
            want[e] = (Lp - Lm) / (hp + hm);
        }
        assert_true(near_fd("dparams vs central differences", R.grads, want, R.sz.params, c->fd_tol));
        float *xp = tr_alloc(nx);
        memcpy(xp, R.x, nx * sizeof(float));
        for (size_t e = 0; e < nx; ++e) {
            float keep = xp[e];
            xp[e] = (float)((double)keep + h);
            double hp = (double)xp[e] - (double)keep, Lp = loss(&R, xp, y2);
            xp[e] = (float)((double)keep - h);
            double hm = (double)keep - (double)xp[e], Lm = loss(&R, xp, y2);
            xp[e] = keep;
            want[e] = (Lp - Lm) / (hp + hm);
        }
        assert_true(near_fd("dx vs central differences", dx, want, nx, c->fd_tol));
        free(xp);
    }

    /* 4: with the cache == without */
    fwd(&R, y2, R.x, NR, R.cache, R.sz.cache);
    memset(g2, 0, R.sz.params * sizeof(float));
    memset(dx2, 0, nx * sizeof(float));
    R.a.grads = g2;
    assert_int_equal(lort_adapter_backward(&R.a, dx2, R.G, R.x, NR, R.cache, R.sz.cache, R.work,
                                           R.sz.work), LORT_OK);
    R.a.grads = R.grads;
    for (size_t i = 0; i < R.sz.params; ++i) want[i] = (double)R.grads[i];
    assert_true(near_fd("dparams with cache vs without", g2, want, R.sz.params, 1e-6));
    for (size_t i = 0; i < nx; ++i) want[i] = (double)dx[i];
    assert_true(near_fd("dx with cache vs without", dx2, want, nx, 1e-6));

    /* 5: fewer rows than sized for */
    fwd(&R, y2, R.x, NR - 2, R.cache, R.sz.cache);
    for (size_t i = 0; i < zu(NR - 2) * zu(R.dout); ++i) want[i] = (double)y[i];
    assert_true(near_fd("n = NR - 2 with buffers for NR", y2, want, zu(NR - 2) * zu(R.dout), 1e-6));

    /* 6, 7: one byte short, NULL inputs, n <= 0: the status, and nothing written */
    {
        unsigned char *snap_c = (unsigned char *)xalloc(R.sz.cache);
        float *snap_y = tr_alloc(ny), *snap_dx = tr_alloc(nx), *snap_g = tr_alloc(R.sz.params);
        memcpy(y2, y, ny * sizeof(float));
        memcpy(snap_y, y2, ny * sizeof(float));
        memcpy(snap_dx, dx, nx * sizeof(float));
        memcpy(snap_g, R.grads, R.sz.params * sizeof(float));
        memcpy(snap_c, R.cache, R.sz.cache);
        memcpy(W, R.W0, nw * sizeof(float));
        struct { const char *what; lort_status got, want; } e[12];
        int ne = 0;
#define TRY(label, call, code) do { e[ne].what = label; e[ne].got = (call); e[ne].want = code; ++ne; } while (0)
        if (R.sz.work) {
            TRY("forward, work - 1", lort_adapter_forward(&R.a, y2, R.x, NR, NULL, 0, R.work, R.sz.work - 1), LORT_ERR_WORKSPACE);
            TRY("backward, work - 1", lort_adapter_backward(&R.a, dx, R.G, R.x, NR, NULL, 0, R.work, R.sz.work - 1), LORT_ERR_WORKSPACE);
        }
        if (R.sz.cache) {
            TRY("forward, cache - 1", lort_adapter_forward(&R.a, y2, R.x, NR, R.cache, R.sz.cache - 1, R.work, R.sz.work), LORT_ERR_CACHE);
            TRY("backward, cache - 1", lort_adapter_backward(&R.a, dx, R.G, R.x, NR, R.cache, R.sz.cache - 1, R.work, R.sz.work), LORT_ERR_CACHE);
        }
        TRY("forward, x NULL", lort_adapter_forward(&R.a, y2, NULL, NR, NULL, 0, R.work, R.sz.work),
            c->a.kind == LORT_KIND_TT_ADP ? LORT_ERR_NULL : LORT_ERR_NULL);
        TRY("backward, dy NULL", lort_adapter_backward(&R.a, dx, NULL, R.x, NR, NULL, 0, R.work, R.sz.work), LORT_ERR_NULL);
        TRY("forward, n = 0", lort_adapter_forward(&R.a, y2, R.x, 0, NULL, 0, R.work, R.sz.work), LORT_ERR_INVALID_ARG);
        TRY("backward, n = 0", lort_adapter_backward(&R.a, dx, R.G, R.x, 0, NULL, 0, R.work, R.sz.work), LORT_ERR_INVALID_ARG);
        TRY("forward, n = -1", lort_adapter_forward(&R.a, y2, R.x, -1, NULL, 0, R.work, R.sz.work), LORT_ERR_INVALID_ARG);
        TRY("sizes, n = 0", lort_adapter_sizes_query(&R.a, 0, &R.sz), LORT_ERR_INVALID_ARG);
        if (c->linear)
            TRY("merge, weight NaN", lort_adapter_merge(&R.a, W, (float)NAN, R.work, R.sz.work), LORT_ERR_INVALID_ARG);
#undef TRY
        for (int i = 0; i < ne; ++i) {
            if (e[i].got != e[i].want)
                printf("    %s: %s, want %s\n", e[i].what, lort_status_string(e[i].got),
                       lort_status_string(e[i].want));
            assert_int_equal(e[i].got, e[i].want);
        }
        assert_memory_equal(y2, snap_y, ny * sizeof(float));
        assert_memory_equal(dx, snap_dx, nx * sizeof(float));
        assert_memory_equal(R.grads, snap_g, R.sz.params * sizeof(float));
        if (R.sz.cache) assert_memory_equal(R.cache, snap_c, R.sz.cache);
        assert_memory_equal(W, R.W0, nw * sizeof(float));
        free(snap_c); free(snap_y); free(snap_dx); free(snap_g);
    }

#ifdef LORT_DEBUG
    /* 9: NaN in the parameters */
    {
        float keep = R.params[R.sz.params / 2];
        R.params[R.sz.params / 2] = (float)NAN;
        memcpy(y2, R.y0, ny * sizeof(float));
        assert_int_equal(lort_adapter_forward(&R.a, y2, R.x, NR, NULL, 0, R.work, R.sz.work),
                         LORT_ERR_NONFINITE);
        assert_int_equal(lort_adapter_backward(&R.a, dx, R.G, R.x, NR, NULL, 0, R.work, R.sz.work),
                         LORT_ERR_NONFINITE);
        R.params[R.sz.params / 2] = keep;
    }
#endif
    free(y); free(y2); free(dx); free(dx2); free(g2); free(dW); free(W); free(want);
    run_free(&R);
}

/* 8: no parameter starts frozen. Default init, the gradient summed over every site, one AdamW
   step, then the summed gradient again: every entry non-zero. */
static void grad_sum(run *R, const ccase *c, float *gsum) {
    enum { MAXD = 64 }; /* the sites of a joint family differ in d_out (GQA): inputs of MAXD */
    float *dx = tr_alloc(zu(NR) * MAXD), *x = tr_alloc(zu(NR) * MAXD), *dy = tr_alloc(zu(NR) * MAXD);
    assert_true(R->di <= MAXD && R->dout <= MAXD);
    tr_seed(5u);
    tr_fill(x, zu(NR) * MAXD);
    tr_fill(dy, zu(NR) * MAXD);
    memset(gsum, 0, R->sz.params * sizeof(float));
    for (int l = 0; l < c->sites_l; ++l)
        for (int m = 0; m < c->sites_m; ++m) {
            R->a.layer = c->sites_l > 1 ? l : c->a.layer;
            R->a.matrix = c->sites_m > 1 ? m : c->a.matrix;
            R->a.grads = gsum; /* gradients accumulate */
            assert_int_equal(lort_adapter_backward(&R->a, dx, dy, x, NR, NULL, 0, R->work,
                                                   R->sz.work), LORT_OK);
        }
    R->a.layer = c->a.layer;
    R->a.matrix = c->a.matrix;
    R->a.grads = R->grads;
    free(dx); free(x); free(dy);
}
static void check_no_frozen_start(const ccase *c) {
    run R;
    run_make(&R, c, 2000u + (uint64_t)(c - CASES));
    lort_rng rng;
    lort_rng_seed(&rng, 77u);
    assert_int_equal(lort_adapter_init(&R.a, R.W0, &rng, R.work,
                                       R.sz.work > R.sz.init_work ? R.sz.work : R.sz.init_work),
                     LORT_OK);
    float *g = tr_alloc(R.sz.params), *m = tr_alloc(R.sz.params), *v = tr_alloc(R.sz.params);
    grad_sum(&R, c, g);
    lort_adamw_desc o = lort_adamw_default(1e-2f);
    assert_int_equal(lort_adamw_step(&o, R.params, m, v, g, R.sz.params, 1), LORT_OK);
    grad_sum(&R, c, g);
    size_t zeros = 0, first = 0;
    for (size_t i = 0; i < R.sz.params; ++i)
        if (!(fabs((double)g[i]) > 0.0)) {
            if (!zeros) first = i;
            ++zeros;
        }
    printf("  %-40s %zu of %zu parameters with a zero gradient after one step%s\n", c->name,
           zeros, R.sz.params, zeros ? "  FAILED" : "");
    if (zeros) printf("    first at flat index %zu\n", first);
    assert_int_equal(zeros, 0);
    free(g); free(m); free(v);
    run_free(&R);
}

static void test_conformance(void **state) {
    (void)state;
    make_cases();
    for (int i = 0; i < ncases; ++i) check_case(&CASES[i]);
}
static void test_no_frozen_start(void **state) {
    (void)state;
    make_cases();
    for (int i = 0; i < ncases; ++i) check_no_frozen_start(&CASES[i]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conformance),
        cmocka_unit_test(test_no_frozen_start),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
