/* LoRA (family lora) against independent double-precision references.

   Every reference here is double code written for this file (it shares nothing with
   lortensor.h); the only library function a reference uses is lort_dropout_factor, which *is*
   the documented mask (and is itself checked in test_dropout_mask).

   Tolerances. "norm tol t" means |got - want| <= t * (max|want| + |want|) per element, i.e. the
   error relative to the largest entry of the array (float GEMMs of depth K <= 65 lose about
   K * 2^-24 ~ 4e-6 of the magnitude of their terms):
     forward y vs double reference                         norm 2e-5
     backward dx, dA, dB vs central differences in double  norm 1e-4
     backward vs the dense chain rule in double            norm 2e-5
     finite differences vs chain rule (both double)        norm 1e-7
     cache = NULL vs cache (same float computation)        norm 1e-6
     merge / delta vs s B A in double                      norm 1e-5
     unmerge vs W0                                         4 ulp of max(|W0| + |dW|)
*/
#include "lort_test.h"


/* ---- one test configuration -------------------------------------------------------- */
typedef struct {
    int n, d_in, d_out, r;
    float alpha;
    int rslora;
    float p;
    int fd; /* run finite differences (small enough) */
} lcase;

static const lcase CASES[] = {
    {3, 5, 4, 2, 3.4f, 0, 0.5f, 1},     /* the reference gradient check LoRA shapes, s = 1.7 */
    {1, 7, 13, 1, 0.0f, 0, 0.0f, 1},    /* n = 1, r = 1, alpha default */
    {1, 7, 13, 1, 2.0f, 1, 0.3f, 1},    /* n = 1, r = 1, rslora, dropout */
    {5, 13, 7, 7, 16.0f, 0, 0.3f, 1},   /* r = min(d_in, d_out) = d_out */
    {5, 13, 7, 7, 0.0f, 1, 0.0f, 1},    /* rslora with default alpha: s = sqrt(r) */
    {9, 33, 17, 4, 8.0f, 1, 0.3f, 1},
    {4, 65, 33, 33, 0.0f, 0, 0.3f, 1},  /* r = min = d_out, odd sizes */
    {6, 16, 16, 16, 32.0f, 0, 0.0f, 1}, /* square, r = d */
    {17, 20, 65, 3, 0.5f, 0, 0.3f, 1},  /* d_out > d_in */
    {2, 64, 8, 8, 3.5f, 1, 0.3f, 1},
    {70, 65, 33, 8, 12.0f, 0, 0.3f, 0}, /* larger n: chain rule only */
    /* the decode path (n <= 8) on both sides of the threshold: r a multiple of 8 (eight outputs
       at a time, a tail of d_out % 8), d_in not a multiple of 16, blocks of B rows (d_out r
       > 4096), four-row blocks of A with a remainder (r 6) */
    {1, 200, 37, 8, 8.0f, 0, 0.0f, 0},
    {3, 77, 40, 16, 16.0f, 0, 0.0f, 0},
    {8, 129, 65, 24, 4.0f, 0, 0.3f, 0},
    {9, 129, 65, 24, 4.0f, 0, 0.0f, 0},
    {2, 96, 600, 16, 0.0f, 1, 0.0f, 0},
    {1, 48, 300, 32, 2.0f, 0, 0.0f, 0},
    {4, 50, 30, 6, 3.0f, 0, 0.0f, 0},
};
#define NCASES (sizeof(CASES) / sizeof(CASES[0]))

typedef struct {
    int n, d_in, d_out, r;
    lort_lora_desc desc;
    double s;
    float *x, *A, *B, *y0, *G;
    double *xd, *Ad, *Bd, *Gd, *M, *H; /* double copies, dropout mask (n, d_in), scratch */
} lsetup;

static void setup_case(lsetup *S, const lcase *c, uint64_t seed) {
    memset(S, 0, sizeof *S);
    S->n = c->n; S->d_in = c->d_in; S->d_out = c->d_out; S->r = c->r;
    S->desc.d_in = c->d_in; S->desc.d_out = c->d_out; S->desc.r = c->r;
    S->desc.alpha = c->alpha; S->desc.rslora = c->rslora; S->desc.dropout = c->p;
    S->desc.dropout_seed = 0xD0D0ull + seed * 7919ull;
    S->s = ref_scale(c->r, c->alpha, c->rslora);
    tr_seed(seed + 11u);
    size_t nx = zu(c->n) * zu(c->d_in), na = zu(c->r) * zu(c->d_in), nb = zu(c->d_out) * zu(c->r),
           ny = zu(c->n) * zu(c->d_out);
    S->x = tr_rand(nx); S->A = tr_rand(na); S->B = tr_rand(nb);
    S->y0 = tr_rand(ny); S->G = tr_rand(ny);
    S->xd = to_double(S->x, nx); S->Ad = to_double(S->A, na); S->Bd = to_double(S->B, nb);
    S->Gd = to_double(S->G, ny);
    S->M = td_alloc(nx);
    S->H = td_alloc(zu(c->n) * zu(c->r));
    for (int i = 0; i < c->n; ++i)
        for (int k = 0; k < c->d_in; ++k)
            S->M[IX(i, c->d_in, k)] =
                c->p > 0.0f ? (double)lort_dropout_factor(S->desc.dropout_seed, c->p,
                                                          (uint64_t)i, (uint64_t)k)
                            : 1.0;
}
static void teardown_case(lsetup *S) {
    free(S->x); free(S->A); free(S->B); free(S->y0); free(S->G);
    free(S->xd); free(S->Ad); free(S->Bd); free(S->Gd); free(S->M); free(S->H);
}

/* Z = s (x .* M) A^T B^T (n, d_out) in double, from the double arrays passed (so finite
   differences can perturb them); returns L = sum(Z .* G). Z may be NULL. */
static double lora_ref(const lsetup *S, const double *x, const double *A, const double *B,
                       double *Z) {
    int n = S->n, di = S->d_in, dout = S->d_out, r = S->r;
    for (int i = 0; i < n; ++i)
        for (int k = 0; k < r; ++k) {
            double acc = 0.0;
            for (int j = 0; j < di; ++j)
                acc += x[IX(i, di, j)] * S->M[IX(i, di, j)] * A[IX(k, di, j)];
            S->H[IX(i, r, k)] = acc;
        }
    double L = 0.0;
    for (int i = 0; i < n; ++i)
        for (int o = 0; o < dout; ++o) {
            double acc = 0.0;
            for (int k = 0; k < r; ++k) acc += S->H[IX(i, r, k)] * B[IX(o, r, k)];
            acc *= S->s;
            if (Z) Z[IX(i, dout, o)] = acc;
            L += acc * S->Gd[IX(i, dout, o)];
        }
    return L;
}

/* dW = s B A (d_out, d_in) in double. */
static void lora_dense(const lsetup *S, double *D) {
    int di = S->d_in, dout = S->d_out, r = S->r;
    for (int o = 0; o < dout; ++o)
        for (int j = 0; j < di; ++j) {
            double acc = 0.0;
            for (int k = 0; k < r; ++k) acc += S->Bd[IX(o, r, k)] * S->Ad[IX(k, di, j)];
            D[IX(o, di, j)] = S->s * acc;
        }
}

/* Central differences of L with respect to every entry of p (one of S's double arrays). */
static void fd_grad(const lsetup *S, double *p, size_t count, double *out) {
    const double eps = 1e-5;
    for (size_t i = 0; i < count; ++i) {
        double old = p[i];
        p[i] = old + eps;
        double lp = lora_ref(S, S->xd, S->Ad, S->Bd, NULL);
        p[i] = old - eps;
        double lm = lora_ref(S, S->xd, S->Ad, S->Bd, NULL);
        p[i] = old;
        out[i] = (lp - lm) / (2.0 * eps);
    }
}

/* Dense chain rule (the MATH section of lortensor.h): dB = s G^T H, GH = s G B, dA = GH^T Xd, dx = (GH A).*M */
static void lora_chain(const lsetup *S, double *dx, double *dA, double *dB) {
    int n = S->n, di = S->d_in, dout = S->d_out, r = S->r;
    (void)lora_ref(S, S->xd, S->Ad, S->Bd, NULL); /* fills S->H */
    double *GH = td_alloc(zu(n) * zu(r));
    for (int o = 0; o < dout; ++o)
        for (int k = 0; k < r; ++k) {
            double acc = 0.0;
            for (int i = 0; i < n; ++i) acc += S->Gd[IX(i, dout, o)] * S->H[IX(i, r, k)];
            dB[IX(o, r, k)] = S->s * acc;
        }
    for (int i = 0; i < n; ++i)
        for (int k = 0; k < r; ++k) {
            double acc = 0.0;
            for (int o = 0; o < dout; ++o) acc += S->Gd[IX(i, dout, o)] * S->Bd[IX(o, r, k)];
            GH[IX(i, r, k)] = S->s * acc;
        }
    for (int k = 0; k < r; ++k)
        for (int j = 0; j < di; ++j) {
            double acc = 0.0;
            for (int i = 0; i < n; ++i)
                acc += GH[IX(i, r, k)] * S->xd[IX(i, di, j)] * S->M[IX(i, di, j)];
            dA[IX(k, di, j)] = acc;
        }
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < di; ++j) {
            double acc = 0.0;
            for (int k = 0; k < r; ++k) acc += GH[IX(i, r, k)] * S->Ad[IX(k, di, j)];
            dx[IX(i, di, j)] = acc * S->M[IX(i, di, j)];
        }
    free(GH);
}

/* ---- library calls with exactly-sized buffers ---------------------------------------- */
static void *make_cache(const lsetup *S, size_t *cs) {
    OK(lort_lora_cache_size(&S->desc, S->n, cs));
    return tr_buf(*cs);
}
static void lib_forward(const lsetup *S, float *y, void *cache, size_t cs) {
    size_t ws = 0;
    OK(lort_lora_workspace_size(&S->desc, S->n, &ws));
    void *work = tr_buf(ws);
    OK(lort_lora_forward(&S->desc, y, S->x, S->A, S->B, S->n, cache, cs, work, ws));
    free(work);
}
static void lib_backward(const lsetup *S, float *dx, float *dA, float *dB, const void *cache,
                         size_t cs) {
    size_t ws = 0;
    OK(lort_lora_workspace_size(&S->desc, S->n, &ws));
    void *work = tr_buf(ws);
    OK(lort_lora_backward(&S->desc, dx, dA, dB, S->G, S->x, S->A, S->B, S->n, cache, cs, work,
                          ws));
    free(work);
}

/* ---- tests --------------------------------------------------------------------------- */
static void test_dropout_mask(void **state) {
    (void)state;
    const float p = 0.3f;
    const double keep = (double)(1.0f / (1.0f - p));
    long dropped = 0, total = 0;
    for (uint64_t i = 0; i < 100; ++i)
        for (uint64_t j = 0; j < 100; ++j) {
            float f = lort_dropout_factor(99u, p, i, j);
            assert_true(is_zero_f(f) || fabs((double)f - keep) <= 1e-6 * keep);
            /* a pure function of its arguments */
            assert_memory_equal(&f, &(float){lort_dropout_factor(99u, p, i, j)}, sizeof f);
            assert_true(is_zero_f(lort_dropout_factor(99u, 0.0f, i, j) - 1.0f));
            dropped += is_zero_f(f);
            ++total;
        }
    /* fraction dropped ~ Binomial(10000, 0.3): 5 sigma = 5 * sqrt(0.3 * 0.7 / 1e4) = 0.023 */
    double frac = (double)dropped / (double)total;
    printf("  dropout p=0.3: dropped fraction %.4f\n", frac);
    assert_true(fabs(frac - 0.3) < 0.023);
    /* the mask depends on the seed, the row and the column */
    int diff_seed = 0, diff_row = 0, diff_col = 0;
    for (uint64_t j = 0; j < 64; ++j) {
        float f = lort_dropout_factor(1u, p, 3u, j);
        diff_seed += !is_zero_f(f - lort_dropout_factor(2u, p, 3u, j));
        diff_row += !is_zero_f(f - lort_dropout_factor(1u, p, 4u, j));
        diff_col += !is_zero_f(f - lort_dropout_factor(1u, p, 3u, j + 1u));
    }
    assert_true(diff_seed > 5 && diff_row > 5 && diff_col > 5);
}

static void test_lora_forward(void **state) {
    (void)state;
    for (size_t ci = 0; ci < NCASES; ++ci) {
        const lcase *c = &CASES[ci];
        lsetup S;
        setup_case(&S, c, ci);
        char label[96];
        size_t ny = zu(S.n) * zu(S.d_out);
        /* the scale */
        float s_lib = 0.0f;
        OK(lort_lora_scale(&S.desc, &s_lib));
        assert_true(fabs((double)s_lib - S.s) <= 1e-6 * S.s);
        /* the mask of this case really drops something when p > 0 (so the test can fail) */
        if (c->p > 0.0f) {
            size_t zeros = 0, nx = zu(S.n) * zu(S.d_in);
            for (size_t i = 0; i < nx; ++i)
                if (S.M[i] < 0.5) ++zeros;
            assert_true(zeros > 0 && zeros < nx);
        }
        double *want = td_alloc(ny), *D = td_alloc(zu(S.d_out) * zu(S.d_in)), *Z = td_alloc(ny);
        lora_dense(&S, D);
        ref_dense_adapter(S.n, S.d_in, S.d_out, S.xd, S.M, S.y0, D, want);
        /* the factored reference (used by the finite differences) agrees with the dense one */
        (void)lora_ref(&S, S.xd, S.Ad, S.Bd, Z);
        for (size_t i = 0; i < ny; ++i) Z[i] += (double)S.y0[i];
        assert_true(near_dd("factored vs dense reference", Z, want, ny, 1e-12));
        free(D); free(Z);
        /* with a cache */
        size_t cs = 0;
        void *cache = make_cache(&S, &cs);
        float *y = tr_alloc(ny);
        memcpy(y, S.y0, ny * sizeof(float));
        lib_forward(&S, y, cache, cs);
        snprintf(label, sizeof label, "case %zu forward", ci);
        assert_true(near_fd(label, y, want, ny, 2e-5));
        /* without a cache (inference) */
        float *y2 = tr_alloc(ny);
        memcpy(y2, S.y0, ny * sizeof(float));
        lib_forward(&S, y2, NULL, 0);
        snprintf(label, sizeof label, "case %zu forward cache=NULL", ci);
        assert_true(near_fd(label, y2, want, ny, 2e-5));
        free(y); free(y2); free(want); free(cache);
        teardown_case(&S);
    }
}

static void test_lora_backward(void **state) {
    (void)state;
    for (size_t ci = 0; ci < NCASES; ++ci) {
        const lcase *c = &CASES[ci];
        lsetup S;
        setup_case(&S, c, 100u + ci);
        char label[96];
        size_t nx = zu(S.n) * zu(S.d_in), na = zu(S.r) * zu(S.d_in), nb = zu(S.d_out) * zu(S.r),
               ny = zu(S.n) * zu(S.d_out);
        size_t cs = 0;
        void *cache = make_cache(&S, &cs);
        float *y = tr_alloc(ny);
        lib_forward(&S, y, cache, cs);
        float *dx = tr_alloc(nx), *dA = tr_alloc(na), *dB = tr_alloc(nb); /* zeroed */
        lib_backward(&S, dx, dA, dB, cache, cs);

        double *cx = td_alloc(nx), *cA = td_alloc(na), *cB = td_alloc(nb);
        lora_chain(&S, cx, cA, cB);
        snprintf(label, sizeof label, "case %zu dx vs chain", ci);
        assert_true(near_fd(label, dx, cx, nx, 2e-5));
        snprintf(label, sizeof label, "case %zu dA vs chain", ci);
        assert_true(near_fd(label, dA, cA, na, 2e-5));
        snprintf(label, sizeof label, "case %zu dB vs chain", ci);
        assert_true(near_fd(label, dB, cB, nb, 2e-5));
        if (c->fd) {
            double *fx = td_alloc(nx), *fA = td_alloc(na), *fB = td_alloc(nb);
            fd_grad(&S, S.xd, nx, fx);
            fd_grad(&S, S.Ad, na, fA);
            fd_grad(&S, S.Bd, nb, fB);
            snprintf(label, sizeof label, "case %zu dx vs fd", ci);
            assert_true(near_fd(label, dx, fx, nx, 1e-4));
            snprintf(label, sizeof label, "case %zu dA vs fd", ci);
            assert_true(near_fd(label, dA, fA, na, 1e-4));
            snprintf(label, sizeof label, "case %zu dB vs fd", ci);
            assert_true(near_fd(label, dB, fB, nb, 1e-4));
            /* the two references agree with each other */
            assert_true(near_dd("fd vs chain dx", fx, cx, nx, 1e-7));
            assert_true(near_dd("fd vs chain dA", fA, cA, na, 1e-7));
            assert_true(near_dd("fd vs chain dB", fB, cB, nb, 1e-7));
            free(fx); free(fA); free(fB);
        }
        free(cx); free(cA); free(cB); free(dx); free(dA); free(dB); free(y); free(cache);
        teardown_case(&S);
    }
}

/* Gradients accumulate (+=), NULL skips each gradient, cache = NULL recomputes. */
static void test_lora_backward_accumulate(void **state) {
    (void)state;
    for (size_t ci = 0; ci < NCASES; ++ci) {
        lsetup S;
        setup_case(&S, &CASES[ci], 200u + ci);
        char label[96];
        size_t nx = zu(S.n) * zu(S.d_in), na = zu(S.r) * zu(S.d_in), nb = zu(S.d_out) * zu(S.r),
               ny = zu(S.n) * zu(S.d_out);
        size_t cs = 0;
        void *cache = make_cache(&S, &cs);
        float *y = tr_alloc(ny);
        lib_forward(&S, y, cache, cs);
        double *cx = td_alloc(nx), *cA = td_alloc(na), *cB = td_alloc(nb);
        lora_chain(&S, cx, cA, cB);

        /* += onto known values: want = prefill + grad */
        float *px = tr_rand(nx), *pA = tr_rand(na), *pB = tr_rand(nb);
        float *dx = tr_alloc(nx), *dA = tr_alloc(na), *dB = tr_alloc(nb);
        memcpy(dx, px, nx * sizeof(float)); memcpy(dA, pA, na * sizeof(float));
        memcpy(dB, pB, nb * sizeof(float));
        lib_backward(&S, dx, dA, dB, cache, cs);
        double *w = td_alloc(nx + na + nb);
        for (size_t i = 0; i < nx; ++i) w[i] = (double)px[i] + cx[i];
        for (size_t i = 0; i < na; ++i) w[nx + i] = (double)pA[i] + cA[i];
        for (size_t i = 0; i < nb; ++i) w[nx + na + i] = (double)pB[i] + cB[i];
        snprintf(label, sizeof label, "case %zu dx +=", ci);
        assert_true(near_fd(label, dx, w, nx, 2e-5));
        snprintf(label, sizeof label, "case %zu dA +=", ci);
        assert_true(near_fd(label, dA, w + nx, na, 2e-5));
        snprintf(label, sizeof label, "case %zu dB +=", ci);
        assert_true(near_fd(label, dB, w + nx + na, nb, 2e-5));

        /* cache = NULL: backward recomputes H; same result as with the cache */
        float *ex = tr_alloc(nx), *eA = tr_alloc(na), *eB = tr_alloc(nb);
        memcpy(ex, px, nx * sizeof(float)); memcpy(eA, pA, na * sizeof(float));
        memcpy(eB, pB, nb * sizeof(float));
        lib_backward(&S, ex, eA, eB, NULL, 0);
        double tx = 1e-6 * (1.0 + max_abs_d(w, nx)), tA = 1e-6 * (1.0 + max_abs_d(w + nx, na)),
               tB = 1e-6 * (1.0 + max_abs_d(w + nx + na, nb));
        assert_true(cmp_ff("dx cache=NULL", ex, dx, nx, tx, 1e-6));
        assert_true(cmp_ff("dA cache=NULL", eA, dA, na, tA, 1e-6));
        assert_true(cmp_ff("dB cache=NULL", eB, dB, nb, tB, 1e-6));

        /* NULL dx, NULL dA, NULL dB (with and without the cache): the others are still
           right, the skipped one untouched */
        for (int skip = 0; skip < 6; ++skip) {
            float *gx = tr_alloc(nx), *gA = tr_alloc(na), *gB = tr_alloc(nb);
            int sk = skip % 3;
            lib_backward(&S, sk == 0 ? NULL : gx, sk == 1 ? NULL : gA, sk == 2 ? NULL : gB,
                         skip < 3 ? cache : NULL, skip < 3 ? cs : 0);
            float zero = 0.0f;
            for (size_t i = 0; i < nx; ++i)
                if (sk == 0) assert_memory_equal(&gx[i], &zero, sizeof zero);
            for (size_t i = 0; i < na; ++i)
                if (sk == 1) assert_memory_equal(&gA[i], &zero, sizeof zero);
            for (size_t i = 0; i < nb; ++i)
                if (sk == 2) assert_memory_equal(&gB[i], &zero, sizeof zero);
            snprintf(label, sizeof label, "case %zu skip %d", ci, skip);
            if (sk != 0) assert_true(near_fd(label, gx, cx, nx, 2e-5));
            if (sk != 1) assert_true(near_fd(label, gA, cA, na, 2e-5));
            if (sk != 2) assert_true(near_fd(label, gB, cB, nb, 2e-5));
            free(gx); free(gA); free(gB);
        }
        free(px); free(pA); free(pB); free(dx); free(dA); free(dB); free(ex); free(eA); free(eB);
        free(w); free(cx); free(cA); free(cB); free(y); free(cache);
        teardown_case(&S);
    }
}

/* Exactly-sized cache and workspace at odd (unaligned) base addresses. */
static void test_lora_unaligned_buffers(void **state) {
    (void)state;
    lsetup S;
    setup_case(&S, &CASES[6], 300u);
    size_t cs = 0, ws = 0, nx = zu(S.n) * zu(S.d_in), ny = zu(S.n) * zu(S.d_out);
    OK(lort_lora_cache_size(&S.desc, S.n, &cs));
    OK(lort_lora_workspace_size(&S.desc, S.n, &ws));
    char *cbuf = (char *)tr_buf(cs + 5), *wbuf = (char *)tr_buf(ws + 3);
    float *y = tr_alloc(ny), *dx = tr_alloc(nx);
    double *want = td_alloc(ny), *cx = td_alloc(nx), *cA = td_alloc(zu(S.r) * zu(S.d_in)),
           *cB = td_alloc(zu(S.d_out) * zu(S.r));
    OK(lort_lora_forward(&S.desc, y, S.x, S.A, S.B, S.n, cbuf + 5, cs, wbuf + 3, ws));
    (void)lora_ref(&S, S.xd, S.Ad, S.Bd, want);
    assert_true(near_fd("unaligned forward", y, want, ny, 2e-5));
    OK(lort_lora_backward(&S.desc, dx, NULL, NULL, S.G, S.x, S.A, S.B, S.n, cbuf + 5, cs,
                          wbuf + 3, ws));
    lora_chain(&S, cx, cA, cB);
    assert_true(near_fd("unaligned dx", dx, cx, nx, 2e-5));
    free(cbuf); free(wbuf); free(y); free(dx); free(want); free(cx); free(cA); free(cB);
    teardown_case(&S);
}

static void test_lora_merge(void **state) {
    (void)state;
    for (size_t ci = 0; ci < NCASES; ++ci) {
        lsetup S;
        lcase c = CASES[ci];
        c.p = 0.0f; /* merged forward == unmerged forward holds without dropout */
        setup_case(&S, &c, 400u + ci);
        char label[96];
        int di = S.d_in, dout = S.d_out, n = S.n;
        size_t nw = zu(dout) * zu(di), ny = zu(n) * zu(dout);
        float *W0 = tr_rand(nw), *W = tr_alloc(nw), *dW = tr_alloc(nw);
        double *D = td_alloc(nw), *want = td_alloc(nw);
        lora_dense(&S, D);
        double dmax = max_abs_d(D, nw);
        /* delta */
        memset(dW, 0xff, nw * sizeof(float)); /* NaN garbage: delta overwrites */
        OK(lort_lora_delta(&S.desc, dW, S.A, S.B, NULL, 0));
        snprintf(label, sizeof label, "case %zu delta", ci);
        assert_true(near_fd(label, dW, D, nw, 1e-5));
        /* merge +1 */
        memcpy(W, W0, nw * sizeof(float));
        OK(lort_lora_merge(&S.desc, W, S.A, S.B, 1.0f, NULL, 0));
        for (size_t i = 0; i < nw; ++i) want[i] = (double)W0[i] + D[i];
        snprintf(label, sizeof label, "case %zu merge", ci);
        assert_true(near_fd(label, W, want, nw, 1e-5));
        /* merged forward == base + adapter forward */
        double *Wd = to_double(W, nw), *W0d = to_double(W0, nw);
        double *ym = td_alloc(ny), *yb = td_alloc(ny);
        ref_linear(n, di, dout, S.x, Wd, ym);
        ref_linear(n, di, dout, S.x, W0d, yb);
        float *y = tr_alloc(ny);
        for (size_t i = 0; i < ny; ++i) y[i] = (float)yb[i];
        lib_forward(&S, y, NULL, 0);
        snprintf(label, sizeof label, "case %zu merged == unmerged", ci);
        assert_true(near_fd(label, y, ym, ny, 2e-5));
        /* unmerge restores W0 */
        OK(lort_lora_merge(&S.desc, W, S.A, S.B, -1.0f, NULL, 0));
        double wmax = 0.0;
        for (size_t i = 0; i < nw; ++i) wmax = fmax(wmax, fabs((double)W0[i]) + dmax);
        snprintf(label, sizeof label, "case %zu unmerge", ci);
        assert_true(cmp_ff(label, W, W0, nw, 4.0 * 1.2e-7 * wmax, 0.0));
        /* weight 0.5 */
        memcpy(W, W0, nw * sizeof(float));
        OK(lort_lora_merge(&S.desc, W, S.A, S.B, 0.5f, NULL, 0));
        for (size_t i = 0; i < nw; ++i) want[i] = (double)W0[i] + 0.5 * D[i];
        snprintf(label, sizeof label, "case %zu merge 0.5", ci);
        assert_true(near_fd(label, W, want, nw, 1e-5));
        /* with the family's workspace (garbage-filled), as every family's merge takes it: the
           same bits as without (lora's merge and delta are one GEMM and need no scratch) */
        size_t ws = 0;
        OK(lort_lora_workspace_size(&S.desc, 1, &ws));
        void *work = tr_buf(ws);
        float *W2 = tr_alloc(nw);
        memset(work, 0xff, ws);
        memcpy(W2, W0, nw * sizeof(float));
        OK(lort_lora_merge(&S.desc, W2, S.A, S.B, 0.5f, work, ws));
        assert_memory_equal(W2, W, nw * sizeof(float));
        OK(lort_lora_delta(&S.desc, W2, S.A, S.B, work, ws));
        assert_memory_equal(W2, dW, nw * sizeof(float));
        free(W0); free(W); free(dW); free(D); free(want); free(Wd); free(W0d); free(ym); free(yb);
        free(y); free(work); free(W2);
        teardown_case(&S);
    }
}

static void test_lora_init_default(void **state) {
    (void)state;
    lort_lora_desc d;
    memset(&d, 0, sizeof d);
    d.d_in = 64; d.d_out = 10; d.r = 32;
    size_t na = zu(d.r) * zu(d.d_in), nb = zu(d.d_out) * zu(d.r);
    float *A = tr_alloc(na), *B = tr_alloc(nb), *A2 = tr_alloc(na), *B2 = tr_alloc(nb);
    for (size_t i = 0; i < nb; ++i) B[i] = 7.0f; /* init must overwrite */
    lort_rng rng;
    lort_rng_seed(&rng, 1234u);
    OK(lort_lora_init(&d, A, B, &rng));
    const double a = 1.0 / sqrt((double)d.d_in);
    double sum = 0.0, sq = 0.0, mx = 0.0;
    for (size_t i = 0; i < na; ++i) {
        double v = (double)A[i];
        assert_true(fabs(v) <= a * (1.0 + 1e-6));
        sum += v; sq += v * v; mx = fmax(mx, fabs(v));
    }
    float zero = 0.0f;
    for (size_t i = 0; i < nb; ++i) assert_memory_equal(&B[i], &zero, sizeof zero);
    /* U(-a, a): mean 0 (sd a/sqrt(3N)); E[v^2] = a^2/3 with sd sqrt(4/45) a^2 / sqrt(N) */
    double N = (double)na, mean = sum / N, msq = sq / N;
    double var = msq - mean * mean;
    printf("  default init: mean %.3g var %.5g (want %.5g) max %.4f bound %.4f\n", mean, var,
           a * a / 3.0, mx, a);
    assert_true(fabs(mean) < 5.0 * a / sqrt(3.0 * N));
    assert_true(fabs(msq - a * a / 3.0) < 5.0 * sqrt(4.0 / 45.0) * a * a / sqrt(N));
    assert_true(mx > 0.95 * a); /* P(all 2048 draws below 0.95 a) = 0.95^2048 ~ 1e-46 */
    /* forward after init adds exactly zero (B = 0) */
    int n = 5;
    size_t nx = zu(n) * zu(d.d_in), ny = zu(n) * zu(d.d_out), ws = 0, cs = 0;
    float *x = tr_rand(nx), *y = tr_rand(ny), *y0 = tr_alloc(ny);
    for (size_t i = 0; i < ny; ++i) y[i] = 0.25f + 0.5f * fabsf(y[i]); /* no -0 */
    memcpy(y0, y, ny * sizeof(float));
    OK(lort_lora_workspace_size(&d, n, &ws));
    OK(lort_lora_cache_size(&d, n, &cs));
    void *work = tr_buf(ws), *cache = tr_buf(cs);
    OK(lort_lora_forward(&d, y, x, A, B, n, cache, cs, work, ws));
    assert_memory_equal(y, y0, ny * sizeof(float));
    /* same seed -> same A; another seed -> another A */
    lort_rng_seed(&rng, 1234u);
    OK(lort_lora_init(&d, A2, B2, &rng));
    assert_memory_equal(A, A2, na * sizeof(float));
    lort_rng_seed(&rng, 1235u);
    OK(lort_lora_init(&d, A2, B2, &rng));
    size_t same = 0;
    for (size_t i = 0; i < na; ++i)
        if (!memcmp(&A[i], &A2[i], sizeof(float))) ++same;
    assert_true(same < na / 100);
    /* successive inits from one stream differ */
    OK(lort_lora_init(&d, A, B, &rng));
    same = 0;
    for (size_t i = 0; i < na; ++i)
        if (!memcmp(&A[i], &A2[i], sizeof(float))) ++same;
    assert_true(same < na / 100);
    free(A); free(B); free(A2); free(B2); free(x); free(y); free(y0); free(work); free(cache);
}

/* lort_rng_normal (float polar method with its own log) against the normal CDF (erf, double):
   200,000 draws, mean, variance, both 3-sigma tails and the Kolmogorov-Smirnov distance
   (critical value 1.63 / sqrt(N) = 0.0036 at the 1% level; we allow 0.005). */
static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}
static void test_rng_normal_distribution(void **state) {
    (void)state;
    enum { NS = 200000 };
    float *z = tr_alloc(NS);
    lort_rng rng;
    lort_rng_seed(&rng, 2024);
    double mean = 0.0, var = 0.0, ks = 0.0;
    size_t tails = 0;
    for (size_t i = 0; i < NS; ++i) {
        z[i] = lort_rng_normal(&rng);
        assert_true(isfinite(z[i]));
        mean += (double)z[i];
        tails += fabs((double)z[i]) > 3.0;
    }
    mean /= NS;
    for (size_t i = 0; i < NS; ++i) var += ((double)z[i] - mean) * ((double)z[i] - mean);
    var /= NS - 1;
    qsort(z, NS, sizeof *z, cmp_float);
    for (size_t i = 0; i < NS; ++i) {
        double F = 0.5 * (1.0 + erf((double)z[i] / sqrt(2.0)));
        ks = fmax(ks, fmax(fabs(F - (double)i / NS), fabs(F - (double)(i + 1) / NS)));
    }
    printf("  rng normal: mean %.4f var %.4f, |z| > 3: %zu (expect %.0f), KS %.4f\n", mean, var,
           tails, 0.0026998 * NS, ks);
    assert_true(fabs(mean) < 0.01 && fabs(var - 1.0) < 0.015);
    assert_true(tails > 420 && tails < 660); /* 540 +- 5 sigma */
    assert_true(ks < 0.005);
    free(z);
}

static void test_lora_init_gaussian(void **state) {
    (void)state;
    lort_lora_desc d;
    memset(&d, 0, sizeof d);
    d.d_in = 512; d.d_out = 3; d.r = 8; d.init = LORT_LORA_INIT_GAUSSIAN;
    size_t na = zu(d.r) * zu(d.d_in), nb = zu(d.d_out) * zu(d.r);
    float *A = tr_alloc(na), *B = tr_alloc(nb);
    for (size_t i = 0; i < nb; ++i) B[i] = -3.0f;
    lort_rng rng;
    lort_rng_seed(&rng, 77u);
    OK(lort_lora_init(&d, A, B, &rng));
    const double sd = 1.0 / (double)d.r, N = (double)na;
    double sum = 0.0, sq = 0.0;
    size_t tails = 0;
    for (size_t i = 0; i < na; ++i) {
        double v = (double)A[i];
        sum += v; sq += v * v;
        if (fabs(v) > 3.0 * sd) ++tails;
    }
    float zero = 0.0f;
    for (size_t i = 0; i < nb; ++i) assert_memory_equal(&B[i], &zero, sizeof zero);
    double mean = sum / N, msq = sq / N;
    printf("  gaussian init: mean %.3g std %.5g (want %.5g), |v| > 3 sd: %zu of %zu\n", mean,
           sqrt(msq), sd, tails, na);
    /* N(0, sd^2): mean sd/sqrt(N); E[v^2] = sd^2 with sd sqrt(2/N) sd^2; 5-sigma bounds */
    assert_true(fabs(mean) < 5.0 * sd / sqrt(N));
    assert_true(fabs(msq - sd * sd) < 5.0 * sqrt(2.0 / N) * sd * sd);
    /* Gaussian tails (a uniform of the same variance has none beyond 1.73 sd): expected
       4096 * 0.0027 = 11 draws beyond 3 sd, P(0) ~ 2e-5 */
    assert_true(tails >= 1 && tails < 40);
    free(A); free(B);
}

static void test_lora_counts_resolve(void **state) {
    (void)state;
    static const int shapes[][3] = {{5, 4, 2}, {7, 13, 1}, {65, 33, 33}, {4096, 4096, 16}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; ++i) {
        lort_lora_desc d, out;
        memset(&d, 0, sizeof d);
        d.d_in = shapes[i][0]; d.d_out = shapes[i][1]; d.r = shapes[i][2];
        size_t count = 0;
        OK(lort_lora_param_count(&d, &count));
        assert_int_equal(count, zu(d.r) * (zu(d.d_in) + zu(d.d_out)));
        /* defaults: alpha 0 -> r (scale 1) */
        memset(&out, 0x5a, sizeof out);
        OK(lort_lora_desc_resolve(&d, &out));
        assert_int_equal(out.d_in, d.d_in);
        assert_int_equal(out.d_out, d.d_out);
        assert_int_equal(out.r, d.r);
        assert_true(fabs((double)out.alpha - (double)d.r) <= 0.0);
        assert_int_equal(out.rslora, 0);
        assert_true(is_zero_f(out.dropout));
        assert_int_equal(out.init, LORT_LORA_INIT_DEFAULT);
        float s;
        OK(lort_lora_scale(&d, &s));
        assert_true(fabs((double)s - 1.0) <= 1e-7);
        /* explicit values are kept */
        d.alpha = 3.0f; d.rslora = 1; d.dropout = 0.25f; d.dropout_seed = 42u;
        d.init = LORT_LORA_INIT_GAUSSIAN;
        OK(lort_lora_desc_resolve(&d, &out));
        assert_true(fabs((double)out.alpha - 3.0) <= 0.0);
        assert_int_equal(out.rslora, 1);
        assert_true(fabs((double)out.dropout - 0.25) <= 0.0);
        assert_int_equal(out.dropout_seed, 42u);
        assert_int_equal(out.init, LORT_LORA_INIT_GAUSSIAN);
        OK(lort_lora_scale(&d, &s));
        assert_true(fabs((double)s - 3.0 / sqrt((double)d.r)) <= 1e-6 * (double)s);
        /* rslora with default alpha: s = r / sqrt(r) = sqrt(r) */
        d.alpha = 0.0f;
        OK(lort_lora_scale(&d, &s));
        assert_true(fabs((double)s - sqrt((double)d.r)) <= 1e-6 * (double)s);
        d.rslora = 0; d.alpha = 32.0f;
        OK(lort_lora_scale(&d, &s));
        assert_true(fabs((double)s - 32.0 / (double)d.r) <= 1e-6 * (double)s);
    }
}

/* Port of the LoRA case of the reference gradient check: din=5, dout=4, r=2, s=1.7, n=3, Gaussian data,
   an inverted-dropout mask with values {0, 2} (p = 0.5), the base layer included in the loss:
   L = sum((x W0^T + s (x.*M) A^T B^T) .* G). dx = G W0 (the caller's base) + the adapter's dx.
   Metric of the script: |fd - g| / max(1, |fd|) <= 1e-5 (float kernel vs double fd). */
static void test_lora_check_grads_port(void **state) {
    (void)state;
    lsetup S;
    lcase c = {3, 5, 4, 2, 3.4f, 0, 0.5f, 1};
    setup_case(&S, &c, 500u);
    assert_true(fabs(S.s - 1.7) < 1e-6);
    int n = 3, di = 5, dout = 4;
    size_t nx = 15, na = 10, nb = 8, ny = 12, nw = 20;
    tr_seed(0);
    for (size_t i = 0; i < nx; ++i) S.x[i] = (float)tg_normal();
    for (size_t i = 0; i < na; ++i) S.A[i] = (float)tg_normal();
    for (size_t i = 0; i < nb; ++i) S.B[i] = (float)tg_normal();
    for (size_t i = 0; i < ny; ++i) S.G[i] = (float)tg_normal();
    float W0[20];
    for (size_t i = 0; i < nw; ++i) W0[i] = (float)tg_normal();
    for (size_t i = 0; i < nx; ++i) S.xd[i] = (double)S.x[i];
    for (size_t i = 0; i < na; ++i) S.Ad[i] = (double)S.A[i];
    for (size_t i = 0; i < nb; ++i) S.Bd[i] = (double)S.B[i];
    for (size_t i = 0; i < ny; ++i) S.Gd[i] = (double)S.G[i];
    for (size_t i = 0; i < nx; ++i) assert_true(S.M[i] < 1e-12 || fabs(S.M[i] - 2.0) < 1e-6);
    /* library: y = base + adapter; dx = G W0 + adapter dx */
    float y[12], dx[15], dA[10] = {0}, dB[8] = {0};
    double W0d[20], yb[12];
    for (size_t i = 0; i < nw; ++i) W0d[i] = (double)W0[i];
    ref_linear(n, di, dout, S.x, W0d, yb);
    for (size_t i = 0; i < ny; ++i) y[i] = (float)yb[i];
    size_t cs = 0;
    void *cache = make_cache(&S, &cs);
    lib_forward(&S, y, cache, cs);
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < di; ++j) {
            double acc = 0.0;
            for (int o = 0; o < dout; ++o) acc += S.Gd[IX(i, dout, o)] * W0d[IX(o, di, j)];
            dx[IX(i, di, j)] = (float)acc;
        }
    lib_backward(&S, dx, dA, dB, cache, cs);
    /* full loss in double, central differences with eps 1e-6 as the script */
    const double eps = 1e-6;
    double *params[3] = {S.Ad, S.Bd, S.xd};
    const float *grads[3] = {dA, dB, dx};
    size_t counts[3] = {na, nb, nx};
    double worst = 0.0;
    for (int pi = 0; pi < 3; ++pi)
        for (size_t i = 0; i < counts[pi]; ++i) {
            double old = params[pi][i], l[2];
            for (int sgn = 0; sgn < 2; ++sgn) {
                params[pi][i] = old + (sgn ? -eps : eps);
                double base = 0.0; /* sum((x W0^T) .* G) */
                for (int a = 0; a < n; ++a)
                    for (int o = 0; o < dout; ++o) {
                        double acc = 0.0;
                        for (int j = 0; j < di; ++j) acc += S.xd[IX(a, di, j)] * W0d[IX(o, di, j)];
                        base += acc * S.Gd[IX(a, dout, o)];
                    }
                l[sgn] = base + lora_ref(&S, S.xd, S.Ad, S.Bd, NULL);
            }
            params[pi][i] = old;
            double num = (l[0] - l[1]) / (2.0 * eps);
            worst = fmax(worst, fabs(num - (double)grads[pi][i]) / fmax(1.0, fabs(num)));
        }
    printf("  check_grads LoRA port: max rel err %.2e\n", worst);
    assert_true(worst < 1e-5);
    free(cache);
    teardown_case(&S);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dropout_mask),
        cmocka_unit_test(test_lora_counts_resolve),
        cmocka_unit_test(test_lora_forward),
        cmocka_unit_test(test_lora_backward),
        cmocka_unit_test(test_lora_backward_accumulate),
        cmocka_unit_test(test_lora_unaligned_buffers),
        cmocka_unit_test(test_lora_merge),
        cmocka_unit_test(test_lora_init_default),
        cmocka_unit_test(test_lora_init_gaussian),
        cmocka_unit_test(test_rng_normal_distribution),
        cmocka_unit_test(test_lora_check_grads_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
