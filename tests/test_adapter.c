/* The generic adapter interface (lort_adapter) for LORT_KIND_LORA and LORT_KIND_LORAXS, AdamW,
   and a small end-to-end training run.

   - The generic verbs must be bit-identical to the family kernels called directly on the
     documented layouts (lora: A = params, B = params + r*d_in; loraxs: R = params,
     A = frozen, B = frozen + r*d_in): compared with memcmp, no tolerance.
   - AdamW vs our double implementation of torch.optim.AdamW (single-tensor path):
     params |got - want| <= 1e-6 * (1 + |want|) after 5 steps (float rounding of p ~ 1 is 6e-8
     per step); m, v relative 1e-5 of max(|want|, the entry's gradient scale (squared for v)).
   - First step, wd = 0: p1 - p0 = -lr g / (|g| + eps) = -lr sign(g) up to eps/|g| <= 1e-6 and
     two roundings of p (|p| <= 1): tolerance 2.4e-7 + 1e-6 lr.
   - End to end: the loss must fall by more than 100x. */
#include "lort_test.h"


/* ---- sizes ------------------------------------------------------------------------------ */
static void test_adapter_sizes(void **state) {
    (void)state;
    static const int shapes[][4] = {{5, 4, 2, 3}, {7, 13, 1, 1}, {65, 33, 33, 9}, {16, 16, 16, 70}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; ++i) {
        int di = shapes[i][0], dout = shapes[i][1], r = shapes[i][2], n = shapes[i][3];
        lort_adapter a;
        lort_adapter_sizes sz;
        size_t want = 0;
        memset(&a, 0, sizeof a);
        a.kind = LORT_KIND_LORA;
        a.desc.lora.d_in = di; a.desc.lora.d_out = dout; a.desc.lora.r = r;
        a.desc.lora.dropout = 0.3f;
        memset(&sz, 0x5a, sizeof sz);
        OK(lort_adapter_sizes_query(&a, n, &sz));
        OK(lort_lora_param_count(&a.desc.lora, &want));
        assert_int_equal(sz.params, want);
        assert_int_equal(sz.params, zu(r) * zu(di + dout));
        assert_int_equal(sz.frozen_bytes, 0);
        OK(lort_lora_cache_size(&a.desc.lora, n, &want));
        assert_int_equal(sz.cache, want);
        OK(lort_lora_workspace_size(&a.desc.lora, n, &want));
        assert_int_equal(sz.work, want);
        assert_int_equal(sz.d_in, di);
        assert_int_equal(sz.d_out, dout);

        memset(&a, 0, sizeof a);
        a.kind = LORT_KIND_LORAXS;
        a.desc.loraxs.d_in = di; a.desc.loraxs.d_out = dout; a.desc.loraxs.r = r;
        a.desc.loraxs.svd.exact = (int)(i % 2u);
        memset(&sz, 0x5a, sizeof sz);
        OK(lort_adapter_sizes_query(&a, n, &sz));
        OK(lort_loraxs_param_count(&a.desc.loraxs, &want));
        assert_int_equal(sz.params, want);
        assert_int_equal(sz.params, zu(r) * zu(r));
        OK(lort_loraxs_frozen_count(&a.desc.loraxs, &want));
        assert_int_equal(sz.frozen_bytes, want * sizeof(float));
        assert_int_equal(sz.frozen_bytes, zu(r) * zu(di + dout) * sizeof(float));
        OK(lort_loraxs_cache_size(&a.desc.loraxs, n, &want));
        assert_int_equal(sz.cache, want);
        OK(lort_loraxs_workspace_size(&a.desc.loraxs, n, &want));
        assert_int_equal(sz.work, want);
        OK(lort_loraxs_init_workspace_size(&a.desc.loraxs, &want));
        assert_int_equal(sz.init_work, want);
        assert_int_equal(sz.d_in, di);
        assert_int_equal(sz.d_out, dout);
    }
    /* an unknown kind is refused */
    lort_adapter a;
    lort_adapter_sizes sz;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_NONE;
    assert_int_equal((int)lort_adapter_sizes_query(&a, 4, &sz), (int)LORT_ERR_UNSUPPORTED);
}

/* ---- generic verbs == family kernels, bit for bit ------------------------------------- */
typedef struct {
    lort_adapter a;
    lort_adapter_sizes sz;
    int n;
    float *x, *dy, *W0;
    void *cache1, *cache2, *work1, *work2, *iwork;
} gsetup;

static void gsetup_make(gsetup *G, lort_kind kind, int n, int di, int dout, int r) {
    memset(G, 0, sizeof *G);
    G->n = n;
    G->a.kind = kind;
    if (kind == LORT_KIND_LORA) {
        lort_lora_desc *d = &G->a.desc.lora;
        d->d_in = di; d->d_out = dout; d->r = r; d->alpha = 6.0f; d->rslora = 1;
        d->dropout = 0.3f; d->dropout_seed = 1234u;
    } else {
        lort_loraxs_desc *d = &G->a.desc.loraxs;
        d->d_in = di; d->d_out = dout; d->r = r; d->alpha = 5.0f;
        d->dropout = 0.3f; d->dropout_seed = 4321u; d->init_std = 0.1f;
    }
    OK(lort_adapter_sizes_query(&G->a, n, &G->sz));
    G->a.params = tr_alloc(G->sz.params);
    G->a.frozen = G->sz.frozen_bytes ? tr_buf(G->sz.frozen_bytes) : NULL;
    G->a.grads = tr_alloc(G->sz.params);
    G->x = tr_rand(zu(n) * zu(di));
    G->dy = tr_rand(zu(n) * zu(dout));
    G->W0 = tr_rand(zu(dout) * zu(di));
    G->cache1 = tr_buf(G->sz.cache); G->cache2 = tr_buf(G->sz.cache);
    G->work1 = tr_buf(G->sz.work); G->work2 = tr_buf(G->sz.work);
    G->iwork = tr_buf(G->sz.init_work);
}
static void gsetup_free(gsetup *G) {
    free(G->a.params); free(G->a.frozen); free(G->a.grads); free(G->x); free(G->dy); free(G->W0);
    free(G->cache1); free(G->cache2); free(G->work1); free(G->work2); free(G->iwork);
}

/* The family kernels on the documented layouts. */
static lort_status fam_forward(const gsetup *G, float *y, void *cache) {
    const lort_adapter *a = &G->a;
    if (a->kind == LORT_KIND_LORA) {
        size_t ra = zu(a->desc.lora.r) * zu(a->desc.lora.d_in);
        return lort_lora_forward(&a->desc.lora, y, G->x, a->params, a->params + ra, G->n, cache,
                                 G->sz.cache, G->work2, G->sz.work);
    }
    size_t ra = zu(a->desc.loraxs.r) * zu(a->desc.loraxs.d_in);
    return lort_loraxs_forward(&a->desc.loraxs, y, G->x, a->params, (const float *)a->frozen, (const float *)a->frozen + ra,
                               G->n, cache, G->sz.cache, G->work2, G->sz.work);
}
static lort_status fam_backward(const gsetup *G, float *dx, float *grads, const void *cache) {
    const lort_adapter *a = &G->a;
    if (a->kind == LORT_KIND_LORA) {
        size_t ra = zu(a->desc.lora.r) * zu(a->desc.lora.d_in);
        return lort_lora_backward(&a->desc.lora, dx, grads, grads ? grads + ra : NULL, G->dy,
                                  G->x, a->params, a->params + ra, G->n, cache, G->sz.cache,
                                  G->work2, G->sz.work);
    }
    size_t ra = zu(a->desc.loraxs.r) * zu(a->desc.loraxs.d_in);
    return lort_loraxs_backward(&a->desc.loraxs, dx, grads, G->dy, G->x, a->params,
                                (const float *)a->frozen, (const float *)a->frozen + ra, G->n, cache, G->sz.cache, G->work2, G->sz.work);
}
static lort_status fam_merge(const gsetup *G, float *W, float weight) {
    const lort_adapter *a = &G->a;
    if (a->kind == LORT_KIND_LORA) {
        size_t ra = zu(a->desc.lora.r) * zu(a->desc.lora.d_in);
        return lort_lora_merge(&a->desc.lora, W, a->params, a->params + ra, weight, NULL, 0);
    }
    size_t ra = zu(a->desc.loraxs.r) * zu(a->desc.loraxs.d_in);
    return lort_loraxs_merge(&a->desc.loraxs, W, a->params, (const float *)a->frozen, (const float *)a->frozen + ra, weight,
                             G->work2, G->sz.work);
}
static lort_status fam_delta(const gsetup *G, float *dW) {
    const lort_adapter *a = &G->a;
    if (a->kind == LORT_KIND_LORA) {
        size_t ra = zu(a->desc.lora.r) * zu(a->desc.lora.d_in);
        return lort_lora_delta(&a->desc.lora, dW, a->params, a->params + ra, NULL, 0);
    }
    size_t ra = zu(a->desc.loraxs.r) * zu(a->desc.loraxs.d_in);
    return lort_loraxs_delta(&a->desc.loraxs, dW, a->params, (const float *)a->frozen, (const float *)a->frozen + ra, G->work2,
                             G->sz.work);
}
static lort_status fam_init(const gsetup *G, float *params, float *frozen, uint64_t seed) {
    const lort_adapter *a = &G->a;
    lort_rng rng;
    lort_rng_seed(&rng, seed);
    if (a->kind == LORT_KIND_LORA) {
        size_t ra = zu(a->desc.lora.r) * zu(a->desc.lora.d_in);
        return lort_lora_init(&a->desc.lora, params, params + ra, &rng);
    }
    size_t ra = zu(a->desc.loraxs.r) * zu(a->desc.loraxs.d_in);
    return lort_loraxs_init(&a->desc.loraxs, params, frozen, frozen + ra, G->W0, &rng, G->iwork,
                            G->sz.init_work);
}

static void check_generic(lort_kind kind, int n, int di, int dout, int r) {
    gsetup G;
    gsetup_make(&G, kind, n, di, dout, r);
    size_t np = G.sz.params, nf = G.sz.frozen_bytes / sizeof(float), nx = zu(n) * zu(di), ny = zu(n) * zu(dout),
           nw = zu(dout) * zu(di);
    /* init */
    float *p2 = tr_alloc(np), *f2 = tr_alloc(nf);
    lort_rng rng;
    lort_rng_seed(&rng, 99u);
    OK(lort_adapter_init(&G.a, G.W0, &rng, G.iwork, G.sz.init_work));
    OK(fam_init(&G, p2, f2, 99u));
    assert_memory_equal(G.a.params, p2, np * sizeof(float));
    if (nf) assert_memory_equal(G.a.frozen, f2, nf * sizeof(float));
    /* make every trainable value visibly nonzero (lora's B is 0 after init) */
    tr_fill(G.a.params, np);
    /* forward */
    float *y1 = tr_rand(ny), *y2 = tr_alloc(ny);
    memcpy(y2, y1, ny * sizeof(float));
    OK(lort_adapter_forward(&G.a, y1, G.x, n, G.cache1, G.sz.cache, G.work1, G.sz.work));
    OK(fam_forward(&G, y2, G.cache2));
    assert_memory_equal(y1, y2, ny * sizeof(float));
    /* backward, grads accumulate onto the same prefill */
    float *dx1 = tr_rand(nx), *dx2 = tr_alloc(nx), *g2 = tr_alloc(np);
    memcpy(dx2, dx1, nx * sizeof(float));
    tr_fill(G.a.grads, np);
    memcpy(g2, G.a.grads, np * sizeof(float));
    OK(lort_adapter_backward(&G.a, dx1, G.dy, G.x, n, G.cache1, G.sz.cache, G.work1, G.sz.work));
    OK(fam_backward(&G, dx2, g2, G.cache2));
    assert_memory_equal(dx1, dx2, nx * sizeof(float));
    assert_memory_equal(G.a.grads, g2, np * sizeof(float));
    /* the gradients did change (the comparison above is not vacuous) */
    {
        float *g0 = tr_alloc(np);
        OK(fam_backward(&G, NULL, g0, NULL));
        size_t nonzero = 0;
        for (size_t i = 0; i < np; ++i)
            if (g0[i] > 0.0f || g0[i] < 0.0f) ++nonzero;
        assert_true(nonzero > np / 2);
        free(g0);
    }
    /* dx NULL, cache NULL: one more accumulation of the same values on both sides */
    OK(lort_adapter_backward(&G.a, NULL, G.dy, G.x, n, NULL, 0, G.work1, G.sz.work));
    OK(fam_backward(&G, NULL, g2, NULL));
    assert_memory_equal(G.a.grads, g2, np * sizeof(float));
    /* grads = NULL skips parameter gradients; dx is unchanged in meaning */
    {
        lort_adapter b = G.a;
        b.grads = NULL;
        memset(dx1, 0, nx * sizeof(float));
        memset(dx2, 0, nx * sizeof(float));
        OK(lort_adapter_backward(&b, dx1, G.dy, G.x, n, G.cache1, G.sz.cache, G.work1, G.sz.work));
        OK(fam_backward(&G, dx2, NULL, G.cache2));
        assert_memory_equal(dx1, dx2, nx * sizeof(float));
    }
    /* merge and delta */
    float *W1 = tr_rand(nw), *W2 = tr_alloc(nw);
    memcpy(W2, W1, nw * sizeof(float));
    OK(lort_adapter_merge(&G.a, W1, 0.75f, G.work1, G.sz.work));
    OK(fam_merge(&G, W2, 0.75f));
    assert_memory_equal(W1, W2, nw * sizeof(float));
    OK(lort_adapter_delta(&G.a, W1, G.work1, G.sz.work));
    OK(fam_delta(&G, W2));
    assert_memory_equal(W1, W2, nw * sizeof(float));
    free(p2); free(f2); free(y1); free(y2); free(dx1); free(dx2); free(g2); free(W1); free(W2);
    gsetup_free(&G);
}

/* n, d_in, d_out, r */
static const int GSHAPES[4][4] = {{3, 5, 4, 2}, {1, 7, 13, 1}, {9, 33, 17, 17}, {40, 65, 20, 8}};
static void check_generic_shapes(lort_kind kind, uint64_t seed) {
    tr_seed(seed);
    for (int i = 0; i < 4; ++i)
        check_generic(kind, GSHAPES[i][0], GSHAPES[i][1], GSHAPES[i][2], GSHAPES[i][3]);
}
static void test_adapter_lora_generic(void **state) {
    (void)state;
    check_generic_shapes(LORT_KIND_LORA, 1u);
}
static void test_adapter_loraxs_generic(void **state) {
    (void)state;
    check_generic_shapes(LORT_KIND_LORAXS, 2u);
}

/* ---- AdamW ------------------------------------------------------------------------------ */
/* torch.optim.AdamW, single-tensor path, in double:
     p *= 1 - lr wd; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
     p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps) */
static void ref_adamw(const lort_adamw_desc *o, double *p, double *m, double *v, const float *g,
                      size_t count, long t) {
    double lr = (double)o->lr, b1 = (double)o->beta1, b2 = (double)o->beta2,
           eps = (double)o->eps, wd = (double)o->weight_decay;
    double bc1 = 1.0 - pow(b1, (double)t), bc2 = 1.0 - pow(b2, (double)t);
    double step = lr / bc1, bc2s = sqrt(bc2);
    for (size_t i = 0; i < count; ++i) {
        double gi = (double)g[i];
        p[i] *= 1.0 - lr * wd;
        m[i] = b1 * m[i] + (1.0 - b1) * gi;
        v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
        p[i] -= step * m[i] / (sqrt(v[i]) / bc2s + eps);
    }
}

/* Bias corrections at late steps (1 - b^t computed in float without pow): one step from a
   mid-run state (m, v nonzero) at t up to 10^7, against the double reference. The update
   itself (p_new - p_old, weight decay off) must match to 2e-6 relative. */
static void test_adamw_late_steps(void **state) {
    (void)state;
    enum { COUNT = 16 };
    static const long ts[] = {2, 3, 10, 999, 1000, 123457, 10000000};
    lort_adamw_desc o = lort_adamw_default(1e-3f);
    o.beta2 = 0.9999f;
    o.weight_decay = 0.0f;
    for (size_t k = 0; k < sizeof ts / sizeof ts[0]; ++k) {
        float p[COUNT], p0[COUNT], m[COUNT], v[COUNT], g[COUNT];
        double pd[COUNT], md[COUNT], vd[COUNT];
        tr_seed(900u + (uint64_t)k);
        for (size_t i = 0; i < COUNT; ++i) {
            p0[i] = p[i] = tr_sym();
            m[i] = 0.1f * tr_sym();
            v[i] = 0.01f * fabsf(tr_sym()) + 1e-6f;
            g[i] = tr_sym();
            pd[i] = (double)p[i]; md[i] = (double)m[i]; vd[i] = (double)v[i];
        }
        OK(lort_adamw_step(&o, p, m, v, g, COUNT, ts[k]));
        ref_adamw(&o, pd, md, vd, g, COUNT, ts[k]);
        for (size_t i = 0; i < COUNT; ++i) {
            double got = (double)p[i] - (double)p0[i], want = pd[i] - (double)p0[i];
            int ok = fabs(got - want) <= 2e-6 * fabs(want) + 2.0 * 6e-8 * fabs((double)p0[i]);
            if (!ok)
                printf("  adamw t = %ld entry %zu: step %.9g want %.9g\n", ts[k], i, got, want);
            assert_true(ok);
        }
    }
}

static void test_adamw_default_values(void **state) {
    (void)state;
    lort_adamw_desc d = lort_adamw_default(3e-4f);
    const float want[5] = {3e-4f, 0.9f, 0.999f, 1e-8f, 0.01f};
    const float got[5] = {d.lr, d.beta1, d.beta2, d.eps, d.weight_decay};
    assert_memory_equal(got, want, sizeof want);
}

static void test_adamw_vs_torch(void **state) {
    (void)state;
    enum { COUNT = 48 };
    lort_adamw_desc opts[2];
    opts[0] = lort_adamw_default(1e-2f);
    opts[1].lr = 0.05f; opts[1].beta1 = 0.8f; opts[1].beta2 = 0.95f; opts[1].eps = 1e-3f;
    opts[1].weight_decay = 0.1f;
    for (int oi = 0; oi < 2; ++oi) {
        tr_seed(31u + (uint64_t)oi);
        float p[COUNT], m[COUNT] = {0}, v[COUNT] = {0}, g[COUNT];
        double pd[COUNT], md[COUNT] = {0}, vd[COUNT] = {0}, scale[COUNT];
        for (size_t i = 0; i < COUNT; ++i) {
            p[i] = tr_sym();
            pd[i] = (double)p[i];
            /* gradient scales 1, 1e-3 and 1e-7 (where eps and its placement matter) */
            scale[i] = i % 3 == 0 ? 1.0 : (i % 3 == 1 ? 1e-3 : 1e-7);
        }
        for (long t = 1; t <= 5; ++t) {
            for (size_t i = 0; i < COUNT; ++i) {
                double gi = scale[i] * (double)tr_sym();
                if (t == 3 && i % 4 == 0) gi = 0.0; /* a zero gradient mid-run */
                g[i] = (float)gi;
            }
            OK(lort_adamw_step(&opts[oi], p, m, v, g, COUNT, t));
            ref_adamw(&opts[oi], pd, md, vd, g, COUNT, t);
        }
        for (size_t i = 0; i < COUNT; ++i) {
            int ok = fabs((double)p[i] - pd[i]) <= 1e-6 * (1.0 + fabs(pd[i])) &&
                     fabs((double)m[i] - md[i]) <= 1e-5 * fmax(fabs(md[i]), scale[i]) &&
                     fabs((double)v[i] - vd[i]) <= 1e-5 * fmax(vd[i], scale[i] * scale[i]);
            if (!ok)
                printf("  adamw opts %d entry %zu: p %.9g want %.9g, m %.6g want %.6g, "
                       "v %.6g want %.6g\n",
                       oi, i, (double)p[i], pd[i], (double)m[i], md[i], (double)v[i], vd[i]);
            assert_true(ok);
        }
        /* the run moved the parameters by a meaningful amount */
        double moved = 0.0;
        tr_seed(31u + (uint64_t)oi);
        for (size_t i = 0; i < COUNT; ++i) moved = fmax(moved, fabs(pd[i] - (double)tr_sym()));
        assert_true(moved > 2.0 * (double)opts[oi].lr);
    }
}

static void test_adamw_first_step_sign(void **state) {
    (void)state;
    enum { COUNT = 64 };
    lort_adamw_desc o = lort_adamw_default(1e-3f);
    o.weight_decay = 0.0f;
    float p[COUNT], p0[COUNT], m[COUNT] = {0}, v[COUNT] = {0}, g[COUNT];
    tr_seed(5u);
    for (size_t i = 0; i < COUNT; ++i) {
        p0[i] = p[i] = tr_sym();
        float mag = 0.01f + (float)(i % 7) * 10.0f * (float)tr_uniform(); /* 0.01 .. 60 */
        g[i] = (i % 2) ? mag : -mag;
    }
    OK(lort_adamw_step(&o, p, m, v, g, COUNT, 1));
    for (size_t i = 0; i < COUNT; ++i) {
        double step = (double)p[i] - (double)p0[i];
        double want = g[i] > 0.0f ? -(double)o.lr : (double)o.lr;
        if (!(fabs(step - want) <= 2.4e-7 + 1e-6 * (double)o.lr))
            printf("  entry %zu: step %.9g want %.9g (g %g)\n", i, step, want, (double)g[i]);
        assert_true(fabs(step - want) <= 2.4e-7 + 1e-6 * (double)o.lr);
    }
}

/* Zero gradients: m = v = 0, the update is 0 / eps = 0, only the decay acts:
   p_t = p0 (1 - lr wd)^t. */
static void test_adamw_decay_only(void **state) {
    (void)state;
    enum { COUNT = 16 };
    lort_adamw_desc o = lort_adamw_default(0.1f);
    o.weight_decay = 0.5f;
    float p[COUNT], p0[COUNT], m[COUNT] = {0}, v[COUNT] = {0}, g[COUNT] = {0};
    tr_seed(6u);
    for (size_t i = 0; i < COUNT; ++i) p0[i] = p[i] = 2.0f * tr_sym();
    for (long t = 1; t <= 5; ++t) OK(lort_adamw_step(&o, p, m, v, g, COUNT, t));
    double f = pow(1.0 - (double)o.lr * (double)o.weight_decay, 5.0);
    for (size_t i = 0; i < COUNT; ++i)
        assert_true(fabs((double)p[i] - (double)p0[i] * f) <= 1e-6 * fabs((double)p0[i]));
}

/* ---- end to end: fit a planted low-rank update with the generic interface + AdamW ------- */
static double e2e_loss(const lort_adapter *a, const lort_adapter_sizes *sz, const float *x,
                       const float *yt, int n, int dout, float *y, void *work) {
    size_t ny = zu(n) * zu(dout);
    memset(y, 0, ny * sizeof(float));
    OK(lort_adapter_forward(a, y, x, n, NULL, 0, work, sz->work));
    double L = 0.0;
    for (size_t i = 0; i < ny; ++i) {
        double e = (double)y[i] - (double)yt[i];
        L += 0.5 * e * e;
    }
    return L / (double)ny;
}

static void test_train_lora_end_to_end(void **state) {
    (void)state;
    enum { DI = 16, DO = 12, R = 4, RT = 2, NB = 32, NE = 128, STEPS = 1500 };
    tr_seed(777u);
    lort_adapter a;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_LORA;
    a.desc.lora.d_in = DI; a.desc.lora.d_out = DO; a.desc.lora.r = R; a.desc.lora.alpha = 8.0f;
    const double s = 2.0; /* alpha / r */
    lort_adapter_sizes sz, sze;
    OK(lort_adapter_sizes_query(&a, NB, &sz));
    OK(lort_adapter_sizes_query(&a, NE, &sze));
    a.params = tr_alloc(sz.params);
    a.grads = tr_alloc(sz.params);
    float *m = tr_alloc(sz.params), *v = tr_alloc(sz.params);
    void *cache = tr_buf(sz.cache), *work = tr_buf(sz.work), *ework = tr_buf(sze.work),
         *iwork = tr_buf(sz.init_work);
    lort_rng rng;
    lort_rng_seed(&rng, 2025u);
    OK(lort_adapter_init(&a, NULL, &rng, iwork, sz.init_work));
    /* planted target dW* = s B* A*, rank 2, in double */
    double Wt[DO * DI];
    {
        double At[RT * DI], Bt[DO * RT];
        for (size_t i = 0; i < RT * DI; ++i) At[i] = 0.5 * (double)tr_sym();
        for (size_t i = 0; i < DO * RT; ++i) Bt[i] = 0.5 * (double)tr_sym();
        for (size_t o = 0; o < DO; ++o)
            for (size_t j = 0; j < DI; ++j) {
                double acc = 0.0;
                for (size_t k = 0; k < RT; ++k) acc += Bt[o * RT + k] * At[k * DI + j];
                Wt[o * DI + j] = s * acc;
            }
    }
    /* a fixed evaluation batch */
    float *xe = tr_rand(NE * DI), *ye = tr_alloc(NE * DO), *yte = tr_alloc(NE * DO);
    double *tmp = td_alloc(NE * DO);
    ref_linear(NE, DI, DO, xe, Wt, tmp);
    for (size_t i = 0; i < NE * DO; ++i) yte[i] = (float)tmp[i];
    double L0 = e2e_loss(&a, &sze, xe, yte, NE, DO, ye, ework);
    float *x = tr_alloc(NB * DI), *y = tr_alloc(NB * DO), *dy = tr_alloc(NB * DO);
    double *yt = td_alloc(NB * DO);
    lort_adamw_desc opt = lort_adamw_default(1e-2f);
    for (long t = 1; t <= STEPS; ++t) {
        tr_fill(x, NB * DI);
        ref_linear(NB, DI, DO, x, Wt, yt);
        memset(y, 0, sizeof(float) * NB * DO);
        OK(lort_adapter_forward(&a, y, x, NB, cache, sz.cache, work, sz.work));
        for (size_t i = 0; i < NB * DO; ++i) /* L = mean 0.5 (y - y*)^2 */
            dy[i] = (float)(((double)y[i] - yt[i]) / (double)(NB * DO));
        lort_zero(a.grads, sz.params);
        OK(lort_adapter_backward(&a, NULL, dy, x, NB, cache, sz.cache, work, sz.work));
        /* cosine learning-rate decay */
        opt.lr = (float)(1e-2 * 0.5 * (1.0 + cos(3.141592653589793 * (double)(t - 1) / STEPS)));
        OK(lort_adamw_step(&opt, a.params, m, v, a.grads, sz.params, t));
    }
    double L1 = e2e_loss(&a, &sze, xe, yte, NE, DO, ye, ework);
    printf("  end-to-end LoRA fit: loss %.4g -> %.4g (%.0fx)\n", L0, L1, L0 / L1);
    assert_true(L0 > 1e-3);
    assert_true(L1 * 100.0 < L0);
    free(a.params); free(a.grads); free(m); free(v); free(cache); free(work); free(ework);
    free(iwork); free(xe); free(ye); free(yte); free(tmp); free(x); free(y); free(dy); free(yt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adapter_sizes),
        cmocka_unit_test(test_adapter_lora_generic),
        cmocka_unit_test(test_adapter_loraxs_generic),
        cmocka_unit_test(test_adamw_default_values),
        cmocka_unit_test(test_adamw_late_steps),
        cmocka_unit_test(test_adamw_vs_torch),
        cmocka_unit_test(test_adamw_first_step_sign),
        cmocka_unit_test(test_adamw_decay_only),
        cmocka_unit_test(test_train_lora_end_to_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
