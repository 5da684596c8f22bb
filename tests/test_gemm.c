/* GEMM (lort_sgemm, lort_sgemm_builtin) against a double reference, and the core API:
   status strings, version, backend name, RNG, counter-based hash and dropout, allocation.
   Every expected value comes from double math, closed forms or statistical bounds, never from
   the code under test. */
#include "lort_test.h"

#include <float.h>
#include <limits.h>

typedef lort_status (*gemm_fn)(int, int, int, int, int, float, const float *, int, const float *,
                               int, float, float *, int);

static const float SENTINEL = -12345.5f;
static const size_t GUARD = 37; /* extra elements after C, must stay SENTINEL */

static int same_bits(const void *a, const void *b, size_t bytes) {
    return memcmp(a, b, bytes) == 0;
}

static void fill_value(float *x, size_t count, float v) {
    for (size_t i = 0; i < count; ++i) x[i] = v;
}

/* One GEMM case: A stored (tA ? K x M : M x K) with lda = cols + padA, B likewise, C (M, N) with
   ldc = N + padC; padding and a guard region after C hold SENTINEL and must stay untouched.
   c_init: 0 random C, 1 NaN C (only meaningful with beta == 0). Error bound per element:
   gamma = 4 (K + 2) FLT_EPSILON times the magnitude sum |alpha| sum|a||b| + |beta||c|. */
static int gemm_case(gemm_fn fn, const char *name, int tA, int tB, int M, int N, int K, float alpha,
                     float beta, int padA, int padB, int padC, int c_init) {
    int arows = tA ? K : M, acols = tA ? M : K;
    int brows = tB ? N : K, bcols = tB ? K : N;
    int lda = (acols > 0 ? acols : 1) + padA;
    int ldb = (bcols > 0 ? bcols : 1) + padB;
    int ldc = (N > 0 ? N : 1) + padC;
    size_t asz = (size_t)arows * (size_t)lda, bsz = (size_t)brows * (size_t)ldb;
    size_t csz = (size_t)M * (size_t)ldc;
    float *A = tr_alloc(asz + 1), *B = tr_alloc(bsz + 1), *C = tr_alloc(csz + GUARD);
    float *A0 = tr_alloc(asz + 1), *B0 = tr_alloc(bsz + 1), *C0 = tr_alloc(csz + GUARD);
    double *P = td_alloc((size_t)M * (size_t)N), *Pabs = td_alloc((size_t)M * (size_t)N);
    int ok = 1;

    fill_value(A, asz + 1, SENTINEL);
    fill_value(B, bsz + 1, SENTINEL);
    fill_value(C, csz + GUARD, SENTINEL);
    for (int i = 0; i < arows; ++i)
        for (int j = 0; j < acols; ++j) A[(size_t)i * (size_t)lda + (size_t)j] = tr_sym();
    for (int i = 0; i < brows; ++i)
        for (int j = 0; j < bcols; ++j) B[(size_t)i * (size_t)ldb + (size_t)j] = tr_sym();
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j)
            C[(size_t)i * (size_t)ldc + (size_t)j] = c_init == 1 ? (float)NAN : tr_sym();
    memcpy(A0, A, (asz + 1) * sizeof(float));
    memcpy(B0, B, (bsz + 1) * sizeof(float));
    memcpy(C0, C, (csz + GUARD) * sizeof(float));

    /* reference op(A) op(B) and |op(A)| |op(B)| in double */
    ref_gemm(tA, tB, M, N, K, A, lda, B, ldb, P);
    {
        float *Aa = tr_alloc(asz + 1), *Ba = tr_alloc(bsz + 1);
        for (size_t i = 0; i < asz; ++i) Aa[i] = fabsf(A[i]);
        for (size_t i = 0; i < bsz; ++i) Ba[i] = fabsf(B[i]);
        ref_gemm(tA, tB, M, N, K, Aa, lda, Ba, ldb, Pabs);
        free(Aa);
        free(Ba);
    }

    lort_status st = fn(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (st != LORT_OK) {
        printf("  %s: status %d (%s)\n", name, (int)st, lort_status_string(st));
        ok = 0;
    }
    double gamma = 4.0 * (double)(K + 2) * (double)FLT_EPSILON;
    double worst = 0.0;
    for (int i = 0; i < M && ok; ++i) {
        for (int j = 0; j < N; ++j) {
            size_t ij = (size_t)i * (size_t)N + (size_t)j,
                   cij = (size_t)i * (size_t)ldc + (size_t)j;
            double c0 = (double)C0[cij];
            int beta_zero = fpclassify(beta) == FP_ZERO;
            double want = (double)alpha * P[ij] + (beta_zero ? 0.0 : (double)beta * c0);
            double mag =
                fabs((double)alpha) * Pabs[ij] + (beta_zero ? 0.0 : fabs((double)beta * c0));
            double err = fabs((double)C[cij] - want);
            double tol = gamma * mag + 1e-30;
            if (!(err <= tol)) {
                printf("  %s tA=%d tB=%d M=%d N=%d K=%d alpha=%g beta=%g: C[%d,%d] = %.9g want "
                       "%.9g (tol %.3g)\n",
                       name, tA, tB, M, N, K, (double)alpha, (double)beta, i, j, (double)C[cij],
                       want, tol);
                ok = 0;
                break;
            }
            if (err / tol > worst) worst = err / tol;
        }
        /* padding columns of this row untouched */
        if (ok && !same_bits(C + (size_t)i * (size_t)ldc + (size_t)N,
                             C0 + (size_t)i * (size_t)ldc + (size_t)N,
                             (size_t)(ldc - N) * sizeof(float))) {
            printf("  %s: padding of row %d of C was written (ldc=%d N=%d)\n", name, i, ldc, N);
            ok = 0;
        }
    }
    if (ok && !same_bits(C + csz, C0 + csz, GUARD * sizeof(float))) {
        printf("  %s: wrote past the end of C\n", name);
        ok = 0;
    }
    if (ok && (!same_bits(A, A0, (asz + 1) * sizeof(float)) ||
               !same_bits(B, B0, (bsz + 1) * sizeof(float)))) {
        printf("  %s: modified A or B\n", name);
        ok = 0;
    }
    free(A);
    free(B);
    free(C);
    free(A0);
    free(B0);
    free(C0);
    free(P);
    free(Pabs);
    return ok;
}

static const int SIZES[][3] = {{1, 1, 1},     {1, 7, 3},     {3, 1, 17},    {7, 3, 1},
                               {17, 33, 65},  {33, 17, 7},   {65, 130, 3},  {130, 7, 33},
                               {257, 3, 17},  {3, 257, 33},  {17, 17, 257}, {65, 65, 130},
                               {33, 130, 65}, {130, 33, 17}, {257, 65, 7},  {7, 33, 257}};
#define NSIZES (sizeof(SIZES) / sizeof(SIZES[0]))

static void all_sizes_all_trans(gemm_fn fn, const char *name, float alpha, float beta, int pad) {
    int ok = 1;
    tr_seed(11);
    for (size_t s = 0; s < NSIZES; ++s)
        for (int t = 0; t < 4; ++t)
            ok &= gemm_case(fn, name, t >> 1, t & 1, SIZES[s][0], SIZES[s][1], SIZES[s][2], alpha,
                            beta, pad ? 1 + (int)(s % 3) : 0, pad ? 2 + (int)(s % 5) : 0,
                            pad ? 3 + (int)(s % 2) : 0, 0);
    assert_true(ok);
}

static void test_gemm_plain(void **state) {
    (void)state;
    all_sizes_all_trans(lort_sgemm, "lort_sgemm", 1.0f, 0.0f, 0);
    all_sizes_all_trans(lort_sgemm_builtin, "lort_sgemm_builtin", 1.0f, 0.0f, 0);
}

static void test_gemm_alpha_beta(void **state) {
    (void)state;
    all_sizes_all_trans(lort_sgemm, "lort_sgemm", 0.5f, -1.5f, 0);
    all_sizes_all_trans(lort_sgemm_builtin, "lort_sgemm_builtin", 0.5f, -1.5f, 0);
    all_sizes_all_trans(lort_sgemm, "lort_sgemm", 1.0f, 1.0f, 0);
    all_sizes_all_trans(lort_sgemm_builtin, "lort_sgemm_builtin", 1.0f, 1.0f, 0);
    all_sizes_all_trans(lort_sgemm, "lort_sgemm", -2.0f, 0.25f, 0);
    all_sizes_all_trans(lort_sgemm_builtin, "lort_sgemm_builtin", -2.0f, 0.25f, 0);
}

static void test_gemm_padded_ld(void **state) {
    (void)state;
    all_sizes_all_trans(lort_sgemm, "lort_sgemm", 0.5f, -1.5f, 1);
    all_sizes_all_trans(lort_sgemm_builtin, "lort_sgemm_builtin", 0.5f, -1.5f, 1);
    all_sizes_all_trans(lort_sgemm, "lort_sgemm", 1.0f, 0.0f, 1);
    all_sizes_all_trans(lort_sgemm_builtin, "lort_sgemm_builtin", 1.0f, 0.0f, 1);
}

/* Shapes that reach each path of the built-in GEMM: one or two rows (dot products with
   K < 32 and K >= 32, a strided op(A) row gathered in chunks when K > 768, row updates with
   column strips and a ragged tail), whole and ragged register tiles, panel edges (KC, NC). */
static void test_gemm_builtin_paths(void **state) {
    static const int P[][3] = {{1, 9, 1000},  {1, 300, 31},  {1, 301, 32},  {2, 37, 40},
                               {2, 130, 20},  {1, 16, 4096}, {2, 5, 3},     {6, 16, 128},
                               {12, 256, 256}, {7, 129, 129}, {3, 17, 1},   {13, 47, 300}};
    int ok = 1;
    (void)state;
    tr_seed(14);
    for (size_t s = 0; s < sizeof P / sizeof P[0]; ++s)
        for (int t = 0; t < 4; ++t) {
            ok &= gemm_case(lort_sgemm_builtin, "builtin", t >> 1, t & 1, P[s][0], P[s][1],
                            P[s][2], 0.5f, -1.5f, (int)(s % 2), (int)(s % 3), (int)(s % 2), 0);
            ok &= gemm_case(lort_sgemm, "lort_sgemm", t >> 1, t & 1, P[s][0], P[s][1], P[s][2],
                            1.0f, 0.0f, 0, 1, 0, 0);
        }
    assert_true(ok);
}

/* beta == 0 must overwrite C even when it holds NaN (BLAS semantics). */
static void test_gemm_beta0_nan(void **state) {
    (void)state;
    int ok = 1;
    tr_seed(12);
    for (int t = 0; t < 4; ++t) {
        ok &= gemm_case(lort_sgemm, "lort_sgemm", t >> 1, t & 1, 17, 33, 7, 1.0f, 0.0f, 0, 0, 2, 1);
        ok &= gemm_case(lort_sgemm_builtin, "builtin", t >> 1, t & 1, 17, 33, 7, 1.0f, 0.0f, 0, 0,
                        2, 1);
        ok &=
            gemm_case(lort_sgemm, "lort_sgemm", t >> 1, t & 1, 65, 3, 130, -0.5f, 0.0f, 1, 1, 0, 1);
        ok &= gemm_case(lort_sgemm_builtin, "builtin", t >> 1, t & 1, 65, 3, 130, -0.5f, 0.0f, 1, 1,
                        0, 1);
    }
    assert_true(ok);
}

/* alpha == 0: C = beta C. */
static void test_gemm_alpha0(void **state) {
    (void)state;
    int ok = 1;
    tr_seed(13);
    for (int t = 0; t < 4; ++t) {
        ok &= gemm_case(lort_sgemm, "lort_sgemm", t >> 1, t & 1, 7, 17, 33, 0.0f, 0.5f, 1, 0, 1, 0);
        ok &= gemm_case(lort_sgemm_builtin, "builtin", t >> 1, t & 1, 7, 17, 33, 0.0f, 0.5f, 1, 0,
                        1, 0);
    }
    assert_true(ok);
}

/* M, N or K = 0 behave like BLAS: M or N = 0 touches nothing; K = 0 gives C = beta C. */
static void test_gemm_zero_dims(void **state) {
    (void)state;
    gemm_fn fns[2] = {lort_sgemm, lort_sgemm_builtin};
    for (int f = 0; f < 2; ++f) {
        float A[64], B[64], C[64], C0[64];
        tr_seed(14);
        tr_fill(A, 64);
        tr_fill(B, 64);
        tr_fill(C, 64);
        memcpy(C0, C, sizeof C);
        /* M = 0 */
        assert_int_equal(fns[f](0, 0, 0, 4, 3, 1.0f, A, 3, B, 4, 2.0f, C, 4), LORT_OK);
        assert_true(same_bits(C, C0, sizeof C));
        /* N = 0 */
        assert_int_equal(fns[f](0, 0, 4, 0, 3, 1.0f, A, 3, B, 1, 2.0f, C, 1), LORT_OK);
        assert_true(same_bits(C, C0, sizeof C));
        /* M = N = K = 0 */
        assert_int_equal(fns[f](1, 1, 0, 0, 0, 1.0f, A, 1, B, 1, 0.0f, C, 1), LORT_OK);
        assert_true(same_bits(C, C0, sizeof C));
        /* K = 0, beta = 2: C (3, 5) with ldc 7 -> 2 C in the used part, padding untouched */
        for (int t = 0; t < 4; ++t) {
            int tA = t >> 1, tB = t & 1;
            int lda = tA ? 3 : 1, ldb = tB ? 1 : 5;
            memcpy(C, C0, sizeof C);
            assert_int_equal(fns[f](tA, tB, 3, 5, 0, 1.0f, A, lda, B, ldb, 2.0f, C, 7), LORT_OK);
            for (int i = 0; i < 3; ++i)
                for (int j = 0; j < 7; ++j) {
                    size_t k = (size_t)i * 7u + (size_t)j;
                    if (j < 5)
                        assert_true(fabs((double)C[k] - 2.0 * (double)C0[k]) <=
                                    1e-6 * fabs((double)C0[k]));
                    else
                        assert_true(same_bits(&C[k], &C0[k], sizeof(float)));
                }
            assert_true(same_bits(C + 21, C0 + 21, sizeof(float) * (64 - 21)));
            /* K = 0, beta = 0 -> zeros, even over NaN */
            for (int i = 0; i < 21; ++i) C[i] = (float)NAN;
            assert_int_equal(fns[f](tA, tB, 3, 5, 0, 1.0f, A, lda, B, ldb, 0.0f, C, 7), LORT_OK);
            for (int i = 0; i < 3; ++i)
                for (int j = 0; j < 5; ++j)
                    assert_int_equal(fpclassify(C[(size_t)i * 7u + (size_t)j]), FP_ZERO);
        }
    }
}

/* Bad arguments return a status and leave C untouched. */
static void test_gemm_bad_args(void **state) {
    (void)state;
    gemm_fn fns[2] = {lort_sgemm, lort_sgemm_builtin};
    float A[256], B[256], C[256], C0[256];
    tr_seed(15);
    tr_fill(A, 256);
    tr_fill(B, 256);
    tr_fill(C, 256);
    memcpy(C0, C, sizeof C);
    for (int f = 0; f < 2; ++f) {
        gemm_fn g = fns[f];
        /* negative dims */
        assert_int_equal(g(0, 0, -1, 4, 4, 1.0f, A, 4, B, 4, 0.0f, C, 4), LORT_ERR_INVALID_ARG);
        assert_int_equal(g(0, 0, 4, -1, 4, 1.0f, A, 4, B, 4, 0.0f, C, 4), LORT_ERR_INVALID_ARG);
        assert_int_equal(g(0, 0, 4, 4, -1, 1.0f, A, 4, B, 4, 0.0f, C, 4), LORT_ERR_INVALID_ARG);
        assert_int_equal(g(1, 1, INT_MIN, 4, 4, 1.0f, A, 4, B, 4, 0.0f, C, 4),
                         LORT_ERR_INVALID_ARG);
        assert_true(same_bits(C, C0, sizeof C));
        /* leading dimensions too small: A (M=4,K=6) needs lda >= 6; A^T (K=6,M=4) needs lda >= 4 */
        lort_status s;
        s = g(0, 0, 4, 5, 6, 1.0f, A, 5, B, 5, 0.0f, C, 5);
        assert_int_equal(s, LORT_ERR_SHAPE);
        s = g(1, 0, 4, 5, 6, 1.0f, A, 3, B, 5, 0.0f, C, 5);
        assert_int_equal(s, LORT_ERR_SHAPE);
        /* B (K=6,N=5) needs ldb >= 5; B^T (N=5,K=6) needs ldb >= 6 */
        s = g(0, 0, 4, 5, 6, 1.0f, A, 6, B, 4, 0.0f, C, 5);
        assert_int_equal(s, LORT_ERR_SHAPE);
        s = g(0, 1, 4, 5, 6, 1.0f, A, 6, B, 5, 0.0f, C, 5);
        assert_int_equal(s, LORT_ERR_SHAPE);
        /* C (4,5) needs ldc >= 5 */
        s = g(0, 0, 4, 5, 6, 1.0f, A, 6, B, 5, 0.0f, C, 4);
        assert_int_equal(s, LORT_ERR_SHAPE);
        /* ld 0 is never valid (lda >= max(1, cols)) */
        s = g(0, 0, 4, 5, 0, 1.0f, A, 0, B, 5, 0.0f, C, 5);
        assert_int_equal(s, LORT_ERR_SHAPE);
        s = g(0, 0, 4, 5, 6, 1.0f, A, -6, B, 5, 0.0f, C, 5);
        assert_int_equal(s, LORT_ERR_SHAPE);
        assert_true(same_bits(C, C0, sizeof C));
        /* NULL pointers with non-empty shapes */
        assert_int_equal(g(0, 0, 4, 5, 6, 1.0f, NULL, 6, B, 5, 0.0f, C, 5), LORT_ERR_NULL);
        assert_int_equal(g(0, 0, 4, 5, 6, 1.0f, A, 6, NULL, 5, 0.0f, C, 5), LORT_ERR_NULL);
        assert_int_equal(g(0, 0, 4, 5, 6, 1.0f, A, 6, B, 5, 0.0f, NULL, 5), LORT_ERR_NULL);
        assert_true(same_bits(C, C0, sizeof C));
    }
}

/* The built-in GEMM is bit-deterministic; under LORT_NO_BLAS lort_sgemm is the built-in. */
static void test_gemm_deterministic(void **state) {
    (void)state;
    const int M = 65, N = 33, K = 130;
    float *A = tr_rand((size_t)M * (size_t)K), *B = tr_rand((size_t)K * (size_t)N);
    float *C1 = tr_rand((size_t)M * (size_t)N), *C2 = tr_alloc((size_t)M * (size_t)N);
    float *C3 = tr_alloc((size_t)M * (size_t)N);
    memcpy(C2, C1, (size_t)M * (size_t)N * sizeof(float));
    memcpy(C3, C1, (size_t)M * (size_t)N * sizeof(float));
    assert_int_equal(lort_sgemm_builtin(0, 0, M, N, K, 0.5f, A, K, B, N, 0.75f, C1, N), LORT_OK);
    assert_int_equal(lort_sgemm_builtin(0, 0, M, N, K, 0.5f, A, K, B, N, 0.75f, C2, N), LORT_OK);
    assert_true(same_bits(C1, C2, (size_t)M * (size_t)N * sizeof(float)));
    assert_int_equal(lort_sgemm(0, 0, M, N, K, 0.5f, A, K, B, N, 0.75f, C3, N), LORT_OK);
#ifdef LORT_NO_BLAS
    assert_true(same_bits(C1, C3, (size_t)M * (size_t)N * sizeof(float)));
#else
    assert_true(cmp_ff("blas vs builtin", C3, C1, (size_t)M * (size_t)N, 1e-5, 1e-5));
#endif
    free(A);
    free(B);
    free(C1);
    free(C2);
    free(C3);
}

static void test_gemm_backend(void **state) {
    (void)state;
    const char *b = lort_gemm_backend();
    assert_non_null(b);
#ifdef LORT_NO_BLAS
    assert_string_equal(b, "builtin");
#else
    assert_string_equal(b, "cblas");
#endif
}

/* ---- the base layer: lort_linear_forward / backward against double references ---------- */
static void test_linear(void **state) {
    (void)state;
    static const int dims[][3] = {{1, 1, 1}, {5, 7, 3}, {17, 33, 65}, {64, 130, 17}};
    tr_seed(16);
    for (size_t t = 0; t < sizeof dims / sizeof dims[0]; ++t) {
        int n = dims[t][0], di = dims[t][1], dout = dims[t][2];
        size_t nx = (size_t)n * (size_t)di, ny = (size_t)n * (size_t)dout,
               nw = (size_t)dout * (size_t)di;
        float *x = tr_rand(nx), *W = tr_rand(nw), *b = tr_rand((size_t)dout), *y = tr_rand(ny);
        float *dy = tr_rand(ny), *dx = tr_rand(nx), *dW = tr_rand(nw), *db = tr_rand((size_t)dout);
        float *dx0 = tr_alloc(nx), *dW0 = tr_alloc(nw), *db0 = tr_alloc((size_t)dout);
        memcpy(dx0, dx, nx * sizeof(float));
        memcpy(dW0, dW, nw * sizeof(float));
        memcpy(db0, db, (size_t)dout * sizeof(float));
        double *Wd = td_alloc(nw),
               *want = td_alloc(ny > nw ? (ny > nx ? ny : nx) : (nw > nx ? nw : nx));
        for (size_t i = 0; i < nw; ++i) Wd[i] = (double)W[i];
        double tol = 4.0 * (double)(di + dout + n + 2) * (double)FLT_EPSILON;
        /* y = x W^T + b (y's old contents, even NaN, are overwritten) */
        for (size_t i = 0; i < ny; ++i) y[i] = (float)NAN;
        assert_int_equal(lort_linear_forward(y, x, W, b, n, di, dout), LORT_OK);
        ref_linear(n, di, dout, x, Wd, want);
        for (int i = 0; i < n; ++i)
            for (int o = 0; o < dout; ++o)
                want[(size_t)i * (size_t)dout + (size_t)o] += (double)b[o];
        assert_true(cmp_fd("linear forward + b", y, want, ny, tol * (double)di, tol));
        for (size_t i = 0; i < ny; ++i) y[i] = (float)NAN;
        assert_int_equal(lort_linear_forward(y, x, W, NULL, n, di, dout), LORT_OK);
        ref_linear(n, di, dout, x, Wd, want);
        assert_true(cmp_fd("linear forward", y, want, ny, tol * (double)di, tol));
        /* backward accumulates: dx += dy W, dW += dy^T x, db += colsum dy */
        assert_int_equal(lort_linear_backward(dx, dW, db, dy, x, W, n, di, dout), LORT_OK);
        ref_gemm(0, 0, n, di, dout, dy, dout, W, di, want);
        for (size_t i = 0; i < nx; ++i) want[i] += (double)dx0[i];
        assert_true(cmp_fd("linear dx", dx, want, nx, tol * (double)dout, tol));
        ref_gemm(1, 0, dout, di, n, dy, dout, x, di, want);
        for (size_t i = 0; i < nw; ++i) want[i] += (double)dW0[i];
        assert_true(cmp_fd("linear dW", dW, want, nw, tol * (double)n, tol));
        for (int o = 0; o < dout; ++o) {
            double acc = (double)db0[o];
            for (int i = 0; i < n; ++i) acc += (double)dy[(size_t)i * (size_t)dout + (size_t)o];
            want[o] = acc;
        }
        assert_true(cmp_fd("linear db", db, want, (size_t)dout, tol * (double)n, tol));
        /* NULL gradients are skipped */
        memcpy(dx0, dx, nx * sizeof(float));
        assert_int_equal(lort_linear_backward(dx, NULL, NULL, dy, NULL, W, n, di, dout), LORT_OK);
        assert_int_equal(lort_linear_backward(NULL, NULL, NULL, dy, NULL, NULL, n, di, dout),
                         LORT_OK);
        free(x);
        free(W);
        free(b);
        free(y);
        free(dy);
        free(dx);
        free(dW);
        free(db);
        free(dx0);
        free(dW0);
        free(db0);
        free(Wd);
        free(want);
    }
    /* errors */
    float v[4] = {1, 2, 3, 4}, out[4] = {5, 6, 7, 8}, out0[4];
    memcpy(out0, out, sizeof out);
    assert_int_equal(lort_linear_forward(out, v, v, NULL, 0, 2, 2), LORT_ERR_INVALID_ARG);
    assert_int_equal(lort_linear_forward(out, v, v, NULL, 2, -2, 2), LORT_ERR_INVALID_ARG);
    assert_int_equal(lort_linear_forward(out, v, v, NULL, 2, 2, 0), LORT_ERR_INVALID_ARG);
    assert_int_equal(lort_linear_forward(NULL, v, v, NULL, 2, 2, 2), LORT_ERR_NULL);
    assert_int_equal(lort_linear_forward(out, NULL, v, NULL, 2, 2, 2), LORT_ERR_NULL);
    assert_int_equal(lort_linear_forward(out, v, NULL, v, 2, 2, 2), LORT_ERR_NULL);
    assert_int_equal(lort_linear_forward(out, v, v, NULL, INT_MAX, INT_MAX, 2), LORT_ERR_OVERFLOW);
    assert_int_equal(lort_linear_backward(out, NULL, NULL, NULL, v, v, 2, 2, 2), LORT_ERR_NULL);
    assert_int_equal(lort_linear_backward(out, NULL, NULL, v, v, NULL, 2, 2, 2), LORT_ERR_NULL);
    assert_int_equal(lort_linear_backward(NULL, out, NULL, v, NULL, v, 2, 2, 2), LORT_ERR_NULL);
    assert_int_equal(lort_linear_backward(out, NULL, NULL, v, v, v, -1, 2, 2),
                     LORT_ERR_INVALID_ARG);
    assert_memory_equal(out, out0, sizeof out);
}

/* ---- core API ------------------------------------------------------------------------- */

static void test_status_strings(void **state) {
    (void)state;
    static const struct {
        lort_status s;
        int v;
        const char *msg;
    } codes[] = {
        {LORT_OK, 0, "ok"},
        {LORT_ERR_NULL, -1, "a required pointer is NULL"},
        {LORT_ERR_INVALID_ARG, -2, "invalid argument: a size is <= 0 or an option is out of range"},
        {LORT_ERR_SHAPE, -3, "shapes do not match"},
        {LORT_ERR_OVERFLOW, -4, "a size overflows int or size_t"},
        {LORT_ERR_WORKSPACE, -5, "workspace too small"},
        {LORT_ERR_CACHE, -6, "cache too small"},
        {LORT_ERR_OUT_OF_MEMORY, -7, "out of memory"},
        {LORT_ERR_UNSUPPORTED, -8, "unknown adapter kind or unsupported operation"},
        {LORT_ERR_NO_CONVERGENCE, -9, "iteration did not converge"},
        {LORT_ERR_NONFINITE, -10, "input contains NaN or Inf"},
        {LORT_ERR_NOT_MERGEABLE, -11, "the adapter is not linear: it has no weight delta to merge"},
        {LORT_ERR_NOT_FOUND, -12, "no entry of that name"},
        {LORT_ERR_FORMAT, -13, "malformed file or config: see the message buffer"},
    };
    size_t n = sizeof codes / sizeof codes[0];
    assert_int_equal((int)n, 1 - (int)LORT__STATUS_MIN);
    for (size_t i = 0; i < n; ++i) {
        assert_int_equal((int)codes[i].s, codes[i].v); /* never renumbered */
        const char *m = lort_status_string(codes[i].s);
        assert_non_null(m);
        assert_true(strlen(m) > 0);
        assert_string_equal(m, codes[i].msg);
        assert_null(strstr(m, "unknown status"));
        for (size_t j = 0; j < i; ++j) assert_string_not_equal(m, lort_status_string(codes[j].s));
    }
    static const int bad[] = {1, 2, LORT__STATUS_MIN - 1, -100, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        const char *m = lort_status_string((lort_status)bad[i]);
        assert_non_null(m);
        assert_string_equal(m, "unknown status");
    }
}

static void test_version(void **state) {
    (void)state;
    int a = -1, b = -1, c = -1;
    char buf[64];
    lort_version(&a, &b, &c);
    assert_int_equal(a, LORT_VERSION_MAJOR);
    assert_int_equal(b, LORT_VERSION_MINOR);
    assert_int_equal(c, LORT_VERSION_PATCH);
    assert_non_null(lort_version_string());
    assert_string_equal(lort_version_string(), LORT_VERSION_STRING);
    snprintf(buf, sizeof buf, "%d.%d.%d", LORT_VERSION_MAJOR, LORT_VERSION_MINOR,
             LORT_VERSION_PATCH);
    assert_string_equal(lort_version_string(), buf);
    assert_string_equal(LORT_VERSION_STRING, "0.1.0");
}

static void test_zero(void **state) {
    (void)state;
    float x[20];
    fill_value(x, 20, SENTINEL);
    lort_zero(x + 2, 15);
    for (int i = 0; i < 20; ++i) {
        if (i >= 2 && i < 17)
            assert_int_equal(fpclassify(x[i]), FP_ZERO);
        else
            assert_true(same_bits(&x[i], &SENTINEL, sizeof(float)));
    }
    assert_false(signbit(x[5]));
    lort_zero(x, 0); /* no-op */
    assert_true(same_bits(&x[0], &SENTINEL, sizeof(float)));
}

static void test_rng_determinism(void **state) {
    (void)state;
    enum { N = 1000 };
    static uint64_t s1[N], s2[N], s3[N];
    lort_rng r1, r2, r3;
    lort_rng_seed(&r1, 42);
    lort_rng_seed(&r2, 42);
    lort_rng_seed(&r3, 43);
    for (int i = 0; i < N; ++i) {
        s1[i] = lort_rng_u64(&r1);
        s2[i] = lort_rng_u64(&r2);
        s3[i] = lort_rng_u64(&r3);
    }
    assert_memory_equal(s1, s2, sizeof s1);
    int same = 0;
    for (int i = 0; i < N; ++i) same += s1[i] == s3[i];
    assert_true(same <= 1);
    /* seed 0 is a valid seed: not stuck, not constant */
    lort_rng r0;
    lort_rng_seed(&r0, 0);
    uint64_t first = lort_rng_u64(&r0);
    int distinct = 0;
    for (int i = 0; i < 100; ++i) distinct += lort_rng_u64(&r0) != first;
    assert_true(distinct >= 99);
    /* the stream does not repeat within N draws, and bits are balanced (popcount mean 32) */
    double ones = 0.0;
    for (int i = 0; i < N; ++i) {
        uint64_t v = s1[i];
        int c = 0;
        while (v) {
            c += (int)(v & 1u);
            v >>= 1;
        }
        ones += c;
        for (int j = 0; j < i; ++j) assert_true(s1[i] != s1[j]);
    }
    /* popcount of 64 fair bits: mean 32, sd 4; over N draws sd of the mean is 4/sqrt(N) */
    assert_true(fabs(ones / N - 32.0) <= 5.0 * 4.0 / sqrt((double)N));
    /* the same seed re-seeded restarts the stream; uniform/normal also deterministic */
    lort_rng_seed(&r1, 7);
    lort_rng_seed(&r2, 7);
    for (int i = 0; i < 100; ++i) {
        float u1 = lort_rng_uniform(&r1), u2 = lort_rng_uniform(&r2);
        float g1 = lort_rng_normal(&r1), g2 = lort_rng_normal(&r2);
        assert_true(same_bits(&u1, &u2, sizeof u1));
        assert_true(same_bits(&g1, &g2, sizeof g1));
    }
}

static void test_rng_uniform(void **state) {
    (void)state;
    const int n = 200000;
    lort_rng r;
    lort_rng_seed(&r, 2024);
    double sum = 0.0, sq = 0.0, lo = 1.0, hi = 0.0;
    int low = 0;
    for (int i = 0; i < n; ++i) {
        float u = lort_rng_uniform(&r);
        assert_true(u >= 0.0f && u < 1.0f);
        lo = fmin(lo, (double)u);
        hi = fmax(hi, (double)u);
        sum += (double)u;
        sq += (double)u * (double)u;
        low += u < 0.1f;
    }
    double mean = sum / n, var = sq / n - mean * mean;
    /* U(0,1): mean 1/2 (sd 1/sqrt(12 n)), variance 1/12 (sd of the estimate sqrt(1/180 / n)) */
    assert_true(fabs(mean - 0.5) <= 5.0 * sqrt(1.0 / 12.0 / n));
    assert_true(fabs(var - 1.0 / 12.0) <= 5.0 * sqrt(1.0 / 180.0 / n) + 1e-6);
    /* the whole interval is covered: P(max < 1 - t) = (1 - t)^n = e^-20 for t = 1e-4 */
    assert_true(hi >= 1.0 - 1e-4);
    assert_true(lo <= 1e-4);
    /* fraction below 0.1: binomial(n, 0.1) */
    assert_true(fabs((double)low / n - 0.1) <= 5.0 * sqrt(0.1 * 0.9 / n));
}

static void test_rng_normal(void **state) {
    (void)state;
    const int n = 200000;
    lort_rng r;
    lort_rng_seed(&r, 99);
    double sum = 0.0, sq = 0.0;
    int inside = 0;
    for (int i = 0; i < n; ++i) {
        float z = lort_rng_normal(&r);
        assert_true(isfinite(z));
        sum += (double)z;
        sq += (double)z * (double)z;
        inside += fabsf(z) < 1.0f;
    }
    double mean = sum / n, var = sq / n - mean * mean;
    /* N(0,1): sd of mean 1/sqrt(n); sd of the variance estimate sqrt(2/n) */
    assert_true(fabs(mean) <= 5.0 / sqrt((double)n));
    assert_true(fabs(var - 1.0) <= 5.0 * sqrt(2.0 / n));
    /* P(|z| < 1) = erf(1/sqrt 2) = 0.682689...; a uniform with variance 1 would give 0.577 */
    double p = erf(1.0 / sqrt(2.0));
    assert_true(fabs((double)inside / n - p) <= 5.0 * sqrt(p * (1.0 - p) / n));
}

static void test_hash_uniform(void **state) {
    (void)state;
    const int R = 300, C = 300;
    double sum = 0.0;
    int same_seed_diff = 0, transposed_same = 0;
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < C; ++j) {
            float h = lort_hash_uniform(5, (uint64_t)i, (uint64_t)j);
            float h2 = lort_hash_uniform(5, (uint64_t)i, (uint64_t)j);
            float g = lort_hash_uniform(6, (uint64_t)i, (uint64_t)j);
            float t = lort_hash_uniform(5, (uint64_t)j, (uint64_t)i);
            assert_true(h >= 0.0f && h < 1.0f);
            assert_true(same_bits(&h, &h2, sizeof h)); /* pure */
            same_seed_diff += !same_bits(&h, &g, sizeof h);
            if (i != j) transposed_same += same_bits(&h, &t, sizeof h);
            sum += (double)h;
        }
    double n = (double)R * (double)C;
    assert_true(fabs(sum / n - 0.5) <= 5.0 * sqrt(1.0 / 12.0 / n));
    assert_true(same_seed_diff >= (int)(0.999 * n));
    assert_true(transposed_same <= 10);
    /* far-away counters still work, and do not depend on call order */
    float a = lort_hash_uniform(~0ull, ~0ull, ~0ull);
    float b = lort_hash_uniform(~0ull, ~0ull, ~0ull);
    assert_true(a >= 0.0f && a < 1.0f);
    assert_true(same_bits(&a, &b, sizeof a));
}

static void test_dropout_factor(void **state) {
    (void)state;
    static const float ps[] = {0.1f, 0.3f, 0.5f, 0.9f};
    const int R = 200, C = 500;
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; ++k) {
        float p = ps[k];
        double scale = 1.0 / (1.0 - (double)p);
        long kept = 0;
        for (int i = 0; i < R; ++i)
            for (int j = 0; j < C; ++j) {
                float f = lort_dropout_factor(77, p, (uint64_t)i, (uint64_t)j);
                float f2 = lort_dropout_factor(77, p, (uint64_t)i, (uint64_t)j);
                assert_true(same_bits(&f, &f2, sizeof f));
                if (fpclassify(f) == FP_ZERO) continue;
                assert_true(fabs((double)f - scale) <= 1e-6 * scale);
                ++kept;
            }
        double n = (double)R * (double)C, q = 1.0 - (double)p;
        double frac = (double)kept / n;
        assert_true(fabs(frac - q) <= 5.0 * sqrt(q * (1.0 - q) / n));
    }
    /* p = 0: always exactly 1 */
    for (int i = 0; i < 100; ++i)
        for (int j = 0; j < 100; ++j) {
            float f = lort_dropout_factor((uint64_t)(i * 31 + j), 0.0f, (uint64_t)i, (uint64_t)j);
            float one = 1.0f;
            assert_true(same_bits(&f, &one, sizeof f));
        }
    /* masks of different seeds differ */
    int diff = 0;
    for (int j = 0; j < 1000; ++j) {
        float a = lort_dropout_factor(1, 0.5f, 0, (uint64_t)j),
              b = lort_dropout_factor(2, 0.5f, 0, (uint64_t)j);
        diff += !same_bits(&a, &b, sizeof a);
    }
    /* two independent fair masks differ in half the positions: binomial(1000, 0.5) */
    assert_true(fabs(diff / 1000.0 - 0.5) <= 5.0 * sqrt(0.25 / 1000.0));
}

/* ---- allocation ----------------------------------------------------------------------- */
typedef struct spy_alloc {
    int allocs, frees;
    size_t last_bytes;
    void *last_ptr;
    int fail;
} spy_alloc;
static void *spy_alloc_fn(size_t bytes, void *user) {
    spy_alloc *s = (spy_alloc *)user;
    s->allocs++;
    s->last_bytes = bytes;
    if (s->fail) return NULL;
    s->last_ptr = malloc(bytes);
    return s->last_ptr;
}
static void spy_free_fn(void *ptr, void *user) {
    spy_alloc *s = (spy_alloc *)user;
    s->frees++;
    assert_ptr_equal(ptr, s->last_ptr);
    free(ptr);
}

static void test_alloc(void **state) {
    (void)state;
    void *p = NULL;
    /* default allocator */
    assert_int_equal(lort_alloc(NULL, 1000, &p), LORT_OK);
    assert_non_null(p);
    memset(p, 0xab, 1000);
    lort_free(NULL, p);
    lort_free(NULL, NULL); /* harmless */
    /* bytes = 0 */
    p = (void *)&p;
    assert_int_equal(lort_alloc(NULL, 0, &p), LORT_ERR_INVALID_ARG);
    /* custom allocator: called once per alloc/free with the user pointer */
    spy_alloc s = {0, 0, 0, NULL, 0};
    lort_allocator al = {&s, spy_alloc_fn, spy_free_fn};
    assert_int_equal(lort_alloc(&al, 333, &p), LORT_OK);
    assert_int_equal(s.allocs, 1);
    assert_true(s.last_bytes >= 333);
    assert_ptr_equal(p, s.last_ptr);
    memset(p, 0x5a, 333);
    lort_free(&al, p);
    assert_int_equal(s.frees, 1);
    assert_int_equal(lort_alloc(&al, 0, &p), LORT_ERR_INVALID_ARG);
    assert_int_equal(s.allocs, 1);
    /* failing allocator */
    s.fail = 1;
    p = (void *)&p;
    assert_int_equal(lort_alloc(&al, 64, &p), LORT_ERR_OUT_OF_MEMORY);
    assert_null(p);
    assert_int_equal(s.allocs, 2);
    assert_int_equal(s.frees, 1);
    /* NULL out */
    assert_int_equal(lort_alloc(NULL, 64, NULL), LORT_ERR_NULL);
    /* more than PTRDIFF_MAX bytes is an overflow (CONVENTIONS), *out still NULL */
    p = (void *)&p;
    assert_int_equal(lort_alloc(NULL, SIZE_MAX, &p), LORT_ERR_OVERFLOW);
    assert_null(p);
    p = (void *)&p;
    assert_int_equal(lort_alloc(&al, (size_t)PTRDIFF_MAX + 1u, &p), LORT_ERR_OVERFLOW);
    assert_null(p);
    assert_int_equal(s.allocs, 2); /* refused before calling the allocator */
    /* (a default-allocator OOM is not tested: compilers may elide an unused malloc and assume
       success, and ASan aborts on huge requests; the failing allocator above covers the path) */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm_plain),     cmocka_unit_test(test_gemm_alpha_beta),
        cmocka_unit_test(test_gemm_builtin_paths),
        cmocka_unit_test(test_gemm_padded_ld), cmocka_unit_test(test_gemm_beta0_nan),
        cmocka_unit_test(test_gemm_alpha0),    cmocka_unit_test(test_gemm_zero_dims),
        cmocka_unit_test(test_gemm_bad_args),  cmocka_unit_test(test_gemm_deterministic),
        cmocka_unit_test(test_gemm_backend),   cmocka_unit_test(test_linear),
        cmocka_unit_test(test_status_strings), cmocka_unit_test(test_version),
        cmocka_unit_test(test_zero),           cmocka_unit_test(test_rng_determinism),
        cmocka_unit_test(test_rng_uniform),    cmocka_unit_test(test_rng_normal),
        cmocka_unit_test(test_hash_uniform),   cmocka_unit_test(test_dropout_factor),
        cmocka_unit_test(test_alloc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
