/* LoRA (family lora): what is specific to the family. The generic checks (forward, delta, merge
   against the double reference of tests/lort_ref.h, backward against central differences,
   cache, accumulation, fewer rows, exact and unaligned buffers, untouched outputs on error)
   run on this family's cases in tests/test_conformance.c, and the init distributions there too.
   Here: the dropout mask, counts / resolve / scale, the kernel API's per-factor NULL
   gradients and NULL merge workspace, the init's zero start and seeding, the normal generator,
   and the port of the reference gradient-check script. */
#include "lort_ref.h"

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

/* The kernel API's per-factor gradients: dx, dA, dB NULL in turn (with and without the
   cache) leave the others bit-identical to the full backward. */
static void test_lora_null_gradients(void **state) {
    (void)state;
    lort_lora_desc d;
    memset(&d, 0, sizeof d);
    d.d_in = 13; d.d_out = 7; d.r = 4; d.alpha = 8.0f; d.dropout = 0.3f; d.dropout_seed = 9u;
    const int n = 5;
    size_t nx = zu(n) * 13u, na = 4u * 13u, nb = 7u * 4u, ny = zu(n) * 7u, cs = 0, ws = 0;
    tr_seed(31u);
    float *x = tr_rand(nx), *A = tr_rand(na), *B = tr_rand(nb), *G = tr_rand(ny), *y = tr_rand(ny);
    OK(lort_lora_cache_size(&d, n, &cs));
    OK(lort_lora_workspace_size(&d, n, &ws));
    void *cache = tr_buf(cs), *work = tr_buf(ws);
    OK(lort_lora_forward(&d, y, x, A, B, n, cache, cs, work, ws));
    float *fx = tr_alloc(nx), *fA = tr_alloc(na), *fB = tr_alloc(nb);
    OK(lort_lora_backward(&d, fx, fA, fB, G, x, A, B, n, cache, cs, work, ws));
    /* without a cache backward recomputes x A^T, by the GEMM where forward may have taken the
       few-row loops: the no-cache calls are compared with a full no-cache backward */
    float *nfx = tr_alloc(nx), *nfA = tr_alloc(na), *nfB = tr_alloc(nb);
    OK(lort_lora_backward(&d, nfx, nfA, nfB, G, x, A, B, n, NULL, 0, work, ws));
    for (int skip = 0; skip < 6; ++skip) {
        float *gx = tr_alloc(nx), *gA = tr_alloc(na), *gB = tr_alloc(nb);
        const float *ex = skip < 3 ? fx : nfx, *eA = skip < 3 ? fA : nfA, *eB = skip < 3 ? fB : nfB;
        int sk = skip % 3;
        OK(lort_lora_backward(&d, sk == 0 ? NULL : gx, sk == 1 ? NULL : gA, sk == 2 ? NULL : gB,
                              G, x, A, B, n, skip < 3 ? cache : NULL, skip < 3 ? cs : 0, work, ws));
        float *zx = tr_alloc(nx), *zA = tr_alloc(na), *zB = tr_alloc(nb);
        assert_memory_equal(gx, sk == 0 ? zx : ex, nx * sizeof(float));
        assert_memory_equal(gA, sk == 1 ? zA : eA, na * sizeof(float));
        assert_memory_equal(gB, sk == 2 ? zB : eB, nb * sizeof(float));
        free(gx); free(gA); free(gB); free(zx); free(zA); free(zB);
    }
    free(x); free(A); free(B); free(G); free(y); free(cache); free(work); free(fx); free(fA); free(fB);
    free(nfx); free(nfA); free(nfB);
}

/* lora's merge and delta are one GEMM: work may be NULL, 0, and a garbage-filled workspace of
   the family's size gives the same bits. */
static void test_lora_merge_without_workspace(void **state) {
    (void)state;
    lort_lora_desc d;
    memset(&d, 0, sizeof d);
    d.d_in = 33; d.d_out = 17; d.r = 4; d.alpha = 8.0f; d.rslora = 1;
    size_t na = 4u * 33u, nb = 17u * 4u, nw = 17u * 33u, ws = 0;
    tr_seed(32u);
    float *A = tr_rand(na), *B = tr_rand(nb), *W0 = tr_rand(nw), *W = tr_alloc(nw), *W2 = tr_alloc(nw);
    OK(lort_lora_workspace_size(&d, 1, &ws));
    void *work = tr_buf(ws);
    memset(work, 0xff, ws);
    memcpy(W, W0, nw * sizeof(float));
    memcpy(W2, W0, nw * sizeof(float));
    OK(lort_lora_merge(&d, W, A, B, 0.5f, NULL, 0));
    OK(lort_lora_merge(&d, W2, A, B, 0.5f, work, ws));
    assert_memory_equal(W2, W, nw * sizeof(float));
    OK(lort_lora_delta(&d, W, A, B, NULL, 0));
    OK(lort_lora_delta(&d, W2, A, B, work, ws));
    assert_memory_equal(W2, W, nw * sizeof(float));
    free(A); free(B); free(W0); free(W); free(W2); free(work);
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
    /* the distribution of A, and B = 0, are checked two-sided in test_conformance.c */
    float zero = 0.0f;
    for (size_t i = 0; i < nb; ++i) assert_memory_equal(&B[i], &zero, sizeof zero);
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

/* Port of the LoRA case of the reference gradient check: din=5, dout=4, r=2, s=1.7, n=3, Gaussian data,
   an inverted-dropout mask with values {0, 2} (p = 0.5), the base layer included in the loss:
   L = sum((x W0^T + s (x.*M) A^T B^T) .* G). dx = G W0 (the caller's base) + the adapter's dx.
   Metric of the script: |fd - g| / max(1, |fd|) <= 1e-5 (float kernel vs double fd of the
   reference of tests/lort_ref.h). */
static void test_lora_check_grads_port(void **state) {
    (void)state;
    enum { n = 3, di = 5, dout = 4, r = 2 };
    lort_adapter a;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_LORA;
    a.desc.lora.d_in = di; a.desc.lora.d_out = dout; a.desc.lora.r = r;
    a.desc.lora.alpha = 3.4f; a.desc.lora.dropout = 0.5f; a.desc.lora.dropout_seed = 0xD0D0u;
    ref_shape S;
    ref_shape_of(&a, &S);
    assert_true(fabs(S.s - 1.7) < 1e-6);
    const size_t nx = n * di, np = r * (di + dout), ny = n * dout, nw = dout * di;
    float x[n * di], P[r * (di + dout)], G[n * dout], W0[dout * di];
    tr_seed(0);
    for (size_t i = 0; i < nx; ++i) x[i] = (float)tg_normal();
    for (size_t i = 0; i < np; ++i) P[i] = (float)tg_normal();
    for (size_t i = 0; i < ny; ++i) G[i] = (float)tg_normal();
    for (size_t i = 0; i < nw; ++i) W0[i] = (float)tg_normal();
    double xd[n * di], Pd[r * (di + dout)], Gd[n * dout], W0d[dout * di], yb[n * dout];
    for (size_t i = 0; i < nx; ++i) xd[i] = (double)x[i];
    for (size_t i = 0; i < np; ++i) Pd[i] = (double)P[i];
    for (size_t i = 0; i < ny; ++i) Gd[i] = (double)G[i];
    for (size_t i = 0; i < nw; ++i) W0d[i] = (double)W0[i];
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < di; ++j)
            assert_true(ref_mask(&S, i, j) < 1e-12 || fabs(ref_mask(&S, i, j) - 2.0) < 1e-6);
    /* library: y = base + adapter; dx = G W0 + adapter dx */
    float y[n * dout], dx[n * di], dP[r * (di + dout)] = {0};
    ref_linear(n, di, dout, x, W0d, yb);
    for (size_t i = 0; i < ny; ++i) y[i] = (float)yb[i];
    size_t cs = 0, ws = 0;
    OK(lort_lora_cache_size(&a.desc.lora, n, &cs));
    OK(lort_lora_workspace_size(&a.desc.lora, n, &ws));
    void *cache = tr_buf(cs), *work = tr_buf(ws);
    OK(lort_lora_forward(&a.desc.lora, y, x, P, P + r * di, n, cache, cs, work, ws));
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < di; ++j) {
            double acc = 0.0;
            for (int o = 0; o < dout; ++o) acc += Gd[IX(i, dout, o)] * W0d[IX(o, di, j)];
            dx[IX(i, di, j)] = (float)acc;
        }
    OK(lort_lora_backward(&a.desc.lora, dx, dP, dP + r * di, G, x, P, P + r * di, n, cache, cs,
                          work, ws));
    /* full loss in double, central differences with eps 1e-6 as the script */
    const double eps = 1e-6;
    double *params[2] = {Pd, xd};
    const float *grads[2] = {dP, dx};
    size_t counts[2] = {np, nx};
    double worst = 0.0, yr[n * dout];
    for (int pi = 0; pi < 2; ++pi)
        for (size_t i = 0; i < counts[pi]; ++i) {
            double old = params[pi][i], l[2];
            for (int sgn = 0; sgn < 2; ++sgn) {
                params[pi][i] = old + (sgn ? -eps : eps);
                ref_adapter_forward(&a, &S, Pd, xd, 0, n, yr);
                l[sgn] = 0.0;
                for (int b = 0; b < n; ++b)
                    for (int o = 0; o < dout; ++o) {
                        double acc = yr[IX(b, dout, o)]; /* + (x W0^T)[b, o] */
                        for (int j = 0; j < di; ++j) acc += xd[IX(b, di, j)] * W0d[IX(o, di, j)];
                        l[sgn] += acc * Gd[IX(b, dout, o)];
                    }
            }
            params[pi][i] = old;
            double num = (l[0] - l[1]) / (2.0 * eps);
            worst = fmax(worst, fabs(num - (double)grads[pi][i]) / fmax(1.0, fabs(num)));
        }
    printf("  check_grads LoRA port: max rel err %.2e\n", worst);
    assert_true(worst < 1e-5);
    free(cache); free(work);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dropout_mask),
        cmocka_unit_test(test_lora_counts_resolve),
        cmocka_unit_test(test_lora_null_gradients),
        cmocka_unit_test(test_lora_merge_without_workspace),
        cmocka_unit_test(test_lora_init_default),
        cmocka_unit_test(test_rng_normal_distribution),
        cmocka_unit_test(test_lora_check_grads_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
