/* SVD: lort_svd_jacobi and lort_svd_truncated (randomized and exact) on matrices with KNOWN
   spectra, W = Q1 diag(s) Q2^T with Q1, Q2 orthonormal built here in double by Gram-Schmidt
   (not by the library). Checks: singular values, reconstruction (Eckart-Young residual),
   orthonormality of U and V, agreement of singular vectors with Q1/Q2 for separated values,
   the documented sign convention, determinism, errors and workspace sizes; in the BLAS build
   also singular values against LAPACK sgesdd_. */
#include "lort_test.h"

#include <float.h>
#include <limits.h>

#ifndef LORT_NO_BLAS
/* LAPACK (column-major), from the OpenBLAS library the BLAS build links. */
void sgesdd_(const char *jobz, const int *m, const int *n, float *a, const int *lda, float *s,
             float *u, const int *ldu, float *vt, const int *ldvt, float *work, const int *lwork,
             int *iwork, int *info);
/* sv (min(m, n)) = the singular values of the row-major W (m, n) by LAPACK sgesdd_: row-major
   W is column-major W^T (n, m), which has the same singular values. */
static void lapack_singular_values(const float *W, int m, int n, float *sv) {
    int k = m < n ? m : n, mm = n, nn = m, lda = n, one = 1, lwork = -1, info = 0;
    float *a = tr_alloc((size_t)m * (size_t)n), wq = 0.0f, du = 0.0f;
    int *iwork = (int *)calloc(8u * (size_t)k, sizeof(int));
    memcpy(a, W, (size_t)m * (size_t)n * sizeof(float));
    sgesdd_("N", &mm, &nn, a, &lda, sv, &du, &one, &du, &one, &wq, &lwork, iwork, &info);
    assert_int_equal(info, 0);
    lwork = (int)wq + 1;
    float *wk = tr_alloc((size_t)lwork);
    sgesdd_("N", &mm, &nn, a, &lda, sv, &du, &one, &du, &one, wk, &lwork, iwork, &info);
    assert_int_equal(info, 0);
    free(a); free(iwork); free(wk);
}
#endif

#define IDX(i, j, ld) ((size_t)(i) * (size_t)(ld) + (size_t)(j))

/* ---- test matrices with known spectra ------------------------------------------------- */

/* Q (rows, cols), rows >= cols: orthonormal columns from random entries by modified
   Gram-Schmidt, done twice per column for full double accuracy. */
static void gs_orthonormal(double *Q, int rows, int cols) {
    for (int i = 0; i < rows; ++i)
        for (int j = 0; j < cols; ++j) Q[IDX(i, j, cols)] = 2.0 * tr_uniform() - 1.0;
    tr_orthonormalize(Q, rows, cols);
}

typedef struct known {
    int m, n, k, ldw;
    float *W;   /* (m, ldw), padding columns filled with pad value */
    double *s;  /* (k) known singular values, descending */
    double *Q1; /* (m, k) */
    double *Q2; /* (n, k) */
    double eF;  /* ||W_float - W_double||_F: bounds |sigma_i(W_float) - s_i| (Weyl) */
    double nF;  /* ||W_float||_F */
} known;

static known make_known(int m, int n, const double *s, int ldw, float pad) {
    known K;
    K.m = m;
    K.n = n;
    K.k = m < n ? m : n;
    K.ldw = ldw;
    K.s = td_alloc((size_t)K.k);
    memcpy(K.s, s, (size_t)K.k * sizeof(double));
    K.Q1 = td_alloc((size_t)m * (size_t)K.k);
    K.Q2 = td_alloc((size_t)n * (size_t)K.k);
    gs_orthonormal(K.Q1, m, K.k);
    gs_orthonormal(K.Q2, n, K.k);
    K.W = tr_alloc((size_t)m * (size_t)ldw);
    double e2 = 0.0, n2 = 0.0;
    for (int i = 0; i < m; ++i) {
        for (int j = 0; j < n; ++j) {
            double w = 0.0;
            for (int p = 0; p < K.k; ++p) w += K.Q1[IDX(i, p, K.k)] * s[p] * K.Q2[IDX(j, p, K.k)];
            float f = (float)w;
            K.W[IDX(i, j, ldw)] = f;
            e2 += ((double)f - w) * ((double)f - w);
            n2 += (double)f * (double)f;
        }
        for (int j = n; j < ldw; ++j) K.W[IDX(i, j, ldw)] = pad;
    }
    K.eF = sqrt(e2);
    K.nF = sqrt(n2);
    return K;
}
static void free_known(known *K) {
    free(K->W);
    free(K->s);
    free(K->Q1);
    free(K->Q2);
}

static void geometric(double *s, int k, double top, double ratio) {
    for (int i = 0; i < k; ++i) s[i] = top * pow(ratio, (double)i);
}

/* ---- checks --------------------------------------------------------------------------- */

typedef struct svd_out {
    float *U, *S, *Vt;
} svd_out;
static svd_out out_alloc(int m, int n, int r) {
    svd_out o;
    o.U = tr_alloc((size_t)m * (size_t)r);
    o.S = tr_alloc((size_t)r);
    o.Vt = tr_alloc((size_t)r * (size_t)n);
    return o;
}
static void out_free(svd_out *o) {
    free(o->U);
    free(o->S);
    free(o->Vt);
}

/* max |X X^T - I| over the r rows of X (r, len), row stride ld, or columns when cols != 0 */
static double orth_err(const float *X, int r, int len, int ld, int cols) {
    double worst = 0.0;
    for (int a = 0; a < r; ++a)
        for (int b = 0; b <= a; ++b) {
            double d = 0.0;
            for (int i = 0; i < len; ++i) {
                double xa = cols ? (double)X[IDX(i, a, ld)] : (double)X[IDX(a, i, ld)];
                double xb = cols ? (double)X[IDX(i, b, ld)] : (double)X[IDX(b, i, ld)];
                d += xa * xb;
            }
            double e = fabs(d - (a == b ? 1.0 : 0.0));
            if (!(e <= worst)) worst = e;
        }
    return worst;
}

/* Each row of Vt has its largest-magnitude entry positive (rows with a near tie skipped). */
static int sign_convention_ok(const float *Vt, int r, int n) {
    for (int i = 0; i < r; ++i) {
        int arg = 0;
        double best = -1.0, second = -1.0;
        for (int j = 0; j < n; ++j) {
            double a = fabs((double)Vt[IDX(i, j, n)]);
            if (a > best) {
                second = best;
                best = a;
                arg = j;
            } else if (a > second)
                second = a;
        }
        if (n > 1 && best - second <= 1e-4 * best) continue;
        if (!(Vt[IDX(i, arg, n)] > 0.0f)) {
            printf("  sign convention: row %d of Vt has its largest entry %g at %d negative\n", i,
                   (double)Vt[IDX(i, arg, n)], arg);
            return 0;
        }
    }
    return 1;
}

/* Full check of a rank-r result against the known matrix. stol: tolerance of singular values
   relative to s_max (plus eF); vtol: 1 - |cos| allowed between u_i and q1_i (and v_i, q2_i)
   for values separated from their neighbours by more than 5% of s_max (0 = skip). */
static int check_known(const char *label, const known *K, int r, const svd_out *o, double stol,
                       double otol, double vtol) {
    int m = K->m, n = K->n, ok = 1;
    double smax = K->s[0];
    /* singular values */
    for (int i = 0; i < r; ++i) {
        double got = (double)o->S[i], want = K->s[i];
        if (!(fabs(got - want) <= K->eF + stol * smax)) {
            printf("  %s: S[%d] = %.9g want %.9g (tol %.3g)\n", label, i, got, want,
                   K->eF + stol * smax);
            ok = 0;
        }
        if (i > 0 && !(o->S[i] <= o->S[i - 1])) {
            printf("  %s: S not sorted at %d\n", label, i);
            ok = 0;
        }
        if (!(o->S[i] >= 0.0f)) {
            printf("  %s: S[%d] negative\n", label, i);
            ok = 0;
        }
    }
    /* orthonormality */
    double eu = orth_err(o->U, r, m, r, 1), ev = orth_err(o->Vt, r, n, n, 0);
    if (!(eu <= otol) || !(ev <= otol)) {
        printf("  %s: orthonormality |U^T U - I| = %.3g, |Vt Vt^T - I| = %.3g (tol %.3g)\n", label,
               eu, ev, otol);
        ok = 0;
    }
    /* Eckart-Young: ||W - U S Vt||_F = sqrt(sum_{i >= r} s_i^2) for the best rank-r approximation
     */
    double res2 = 0.0, tail2 = 0.0;
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
            double a = 0.0;
            for (int p = 0; p < r; ++p)
                a += (double)o->U[IDX(i, p, r)] * (double)o->S[p] * (double)o->Vt[IDX(p, j, n)];
            double d = (double)K->W[IDX(i, j, K->ldw)] - a;
            res2 += d * d;
        }
    for (int i = r; i < K->k; ++i) tail2 += K->s[i] * K->s[i];
    double res = sqrt(res2), tail = sqrt(tail2);
    double rtol = K->eF + 5.0 * stol * K->nF;
    if (!(fabs(res - tail) <= rtol)) {
        printf("  %s: ||W - U S Vt||_F = %.9g, Eckart-Young residual %.9g (tol %.3g)\n", label, res,
               tail, rtol);
        ok = 0;
    }
    /* singular vectors of separated values match the known ones up to sign */
    if (vtol > 0.0)
        for (int i = 0; i < r; ++i) {
            double gap = 1e300;
            if (i > 0) gap = fmin(gap, K->s[i - 1] - K->s[i]);
            if (i + 1 < K->k) gap = fmin(gap, K->s[i] - K->s[i + 1]);
            if (!(gap > 0.05 * smax) || !(K->s[i] > 0.05 * smax)) continue;
            double cu = 0.0, cv = 0.0;
            for (int a = 0; a < m; ++a) cu += (double)o->U[IDX(a, i, r)] * K->Q1[IDX(a, i, K->k)];
            for (int a = 0; a < n; ++a) cv += (double)o->Vt[IDX(i, a, n)] * K->Q2[IDX(a, i, K->k)];
            if (!(fabs(cu) >= 1.0 - vtol) || !(fabs(cv) >= 1.0 - vtol)) {
                printf("  %s: vector %d: |cos(u, q1)| = %.9g, |cos(v, q2)| = %.9g\n", label, i, cu,
                       cv);
                ok = 0;
            }
            if (!(cu * cv > 0.0)) { /* u_i and v_i signs must agree: W v = s u */
                printf("  %s: vector %d: sign of u and v inconsistent\n", label, i);
                ok = 0;
            }
        }
    if (!sign_convention_ok(o->Vt, r, n)) ok = 0;
    return ok;
}

static lort_status run_jacobi(const known *K, svd_out *o, int sweeps) {
    size_t ws = 0;
    lort_status st = lort_svd_jacobi_workspace_size(K->m, K->n, &ws);
    if (st != LORT_OK) return st;
    void *w = tr_buf(ws);
    st = lort_svd_jacobi(o->U, o->S, o->Vt, K->W, K->ldw, K->m, K->n, sweeps, w, ws);
    free(w);
    return st;
}
static lort_status run_truncated(const known *K, int r, const lort_svd_opts *opts, svd_out *o) {
    size_t ws = 0;
    lort_status st = lort_svd_truncated_workspace_size(K->m, K->n, r, opts, &ws);
    if (st != LORT_OK) return st;
    void *w = tr_buf(ws);
    st = lort_svd_truncated(o->U, o->S, o->Vt, K->W, K->ldw, K->m, K->n, r, opts, w, ws);
    free(w);
    return st;
}

static const double STOL = 2e-5, OTOL = 2e-5, VTOL = 1e-4;

/* All three methods (jacobi, truncated exact, truncated randomized) at several r on one known
   matrix. */
static int check_all_methods(const char *label, const known *K, const int *rs, int nr) {
    int ok = 1;
    char buf[128];
    svd_out o = out_alloc(K->m, K->n, K->k);
    assert_int_equal(run_jacobi(K, &o, 60), LORT_OK);
    snprintf(buf, sizeof buf, "%s jacobi", label);
    ok &= check_known(buf, K, K->k, &o, STOL, OTOL, VTOL);
    out_free(&o);
    for (int t = 0; t < nr; ++t) {
        int r = rs[t];
        for (int exact = 0; exact < 2; ++exact) {
            lort_svd_opts opts;
            memset(&opts, 0, sizeof opts);
            opts.exact = exact;
            opts.seed = 1234;
            o = out_alloc(K->m, K->n, r);
            lort_status st = run_truncated(K, r, &opts, &o);
            snprintf(buf, sizeof buf, "%s truncated %s r=%d", label, exact ? "exact" : "randomized",
                     r);
            if (st != LORT_OK) {
                printf("  %s: status %s\n", buf, lort_status_string(st));
                ok = 0;
            } else {
                ok &= check_known(buf, K, r, &o, STOL, OTOL, VTOL);
            }
            out_free(&o);
        }
    }
    return ok;
}

/* (a) + (b): known spectra on tall, wide, square, row and column matrices */
static void test_known_shapes(void **state) {
    (void)state;
    static const int shapes[][2] = {{40, 12}, {12, 40}, {25, 25}, {1, 17},  {23, 1},
                                    {1, 1},   {64, 33}, {7, 50},  {120, 80}};
    int ok = 1;
    tr_seed(101);
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; ++t) {
        int m = shapes[t][0], n = shapes[t][1], k = m < n ? m : n;
        double s[80];
        geometric(s, k, 10.0, 0.8);
        known K = make_known(m, n, s, n, 0.0f);
        int rs[3] = {1, k, (k + 1) / 2};
        char label[64];
        snprintf(label, sizeof label, "%dx%d", m, n);
        ok &= check_all_methods(label, &K, rs, k > 2 ? 3 : (k > 1 ? 2 : 1));
        free_known(&K);
    }
    assert_true(ok);
}

/* leading dimension larger than n; NaN in the padding must be neither read nor reported */
static void test_padded_ldw(void **state) {
    (void)state;
    tr_seed(102);
    double s[20];
    geometric(s, 20, 3.0, 0.75);
    known K = make_known(30, 20, s, 27, (float)NAN);
    int rs[2] = {5, 20};
    assert_true(check_all_methods("30x20 ldw=27", &K, rs, 2));
    free_known(&K);
}

/* rank-deficient: zero singular values, U and V still orthonormal (full k columns) */
static void test_rank_deficient(void **state) {
    (void)state;
    /* {m, n, rank}; the 40 x 30 zero matrix at r = 3 has l = 13 < 30: the randomized path runs */
    static const int shapes[][3] = {{30, 20, 5}, {20, 30, 7}, {16, 16, 1}, {40, 30, 0}};
    int ok = 1;
    tr_seed(103);
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; ++t) {
        int m = shapes[t][0], n = shapes[t][1], rank = shapes[t][2], k = m < n ? m : n;
        double s[32];
        geometric(s, k, 5.0, 0.7);
        for (int i = rank; i < k; ++i) s[i] = 0.0;
        known K = make_known(m, n, s, n, 0.0f);
        char label[64];
        snprintf(label, sizeof label, "%dx%d rank %d", m, n, rank);
        if (rank == 0) { /* the zero matrix: S = 0, U, V orthonormal */
            svd_out o = out_alloc(m, n, k);
            assert_int_equal(run_jacobi(&K, &o, 60), LORT_OK);
            for (int i = 0; i < k; ++i) assert_true(fabsf(o.S[i]) <= 0.0f);
            ok &= orth_err(o.U, k, m, k, 1) <= OTOL && orth_err(o.Vt, k, n, n, 0) <= OTOL;
            out_free(&o);
            lort_svd_opts opts;
            memset(&opts, 0, sizeof opts);
            o = out_alloc(m, n, 3);
            assert_int_equal(run_truncated(&K, 3, &opts, &o), LORT_OK);
            for (int i = 0; i < 3; ++i) assert_true(fabsf(o.S[i]) <= 0.0f);
            ok &= orth_err(o.U, 3, m, 3, 1) <= OTOL && orth_err(o.Vt, 3, n, n, 0) <= OTOL;
            if (!ok) printf("  %s: U/V not orthonormal\n", label);
            out_free(&o);
        } else {
            int rs[3] = {rank, k, rank + 2 <= k ? rank + 2 : k};
            ok &= check_all_methods(label, &K, rs, 3);
        }
        free_known(&K);
    }
    assert_true(ok);
}

/* clustered and repeated singular values: values right, vectors orthonormal */
static void test_repeated_values(void **state) {
    (void)state;
    tr_seed(104);
    double s[24];
    for (int i = 0; i < 24; ++i) s[i] = i < 6 ? 2.0 : (i < 12 ? 1.0 : 0.5 - 0.01 * i);
    known K = make_known(24, 24, s, 24, 0.0f);
    int rs[2] = {6, 12};
    assert_true(check_all_methods("repeated", &K, rs, 2));
    free_known(&K);
}

/* "U may be NULL" (documented for lort_svd_truncated and lort_svd_jacobi); Vt is required. */
static void test_null_vectors(void **state) {
    (void)state;
    tr_seed(105);
    double s[15];
    geometric(s, 15, 4.0, 0.85);
    known K = make_known(15, 28, s, 28, 0.0f);
    svd_out o = out_alloc(15, 28, 15), full = out_alloc(15, 28, 15);
    size_t ws = 0;
    assert_int_equal(lort_svd_jacobi_workspace_size(15, 28, &ws), LORT_OK);
    void *w = tr_buf(ws);
    assert_int_equal(lort_svd_jacobi(full.U, full.S, full.Vt, K.W, 28, 15, 28, 60, w, ws), LORT_OK);
    assert_int_equal(lort_svd_jacobi(NULL, o.S, o.Vt, K.W, 28, 15, 28, 60, w, ws), LORT_OK);
    for (int i = 0; i < 15; ++i) assert_true(fabs((double)o.S[i] - s[i]) <= K.eF + STOL * s[0]);
    assert_true(orth_err(o.Vt, 15, 28, 28, 0) <= OTOL);
    assert_true(sign_convention_ok(o.Vt, 15, 28));
    /* the same S and Vt as with U */
    assert_memory_equal(o.S, full.S, 15 * sizeof(float));
    assert_memory_equal(o.Vt, full.Vt, 15 * 28 * sizeof(float));
    assert_int_equal(lort_svd_jacobi(full.U, full.S, NULL, K.W, 28, 15, 28, 60, w, ws),
                     LORT_ERR_NULL);
    free(w);
    for (int exact = 0; exact < 2; ++exact) {
        lort_svd_opts opts;
        memset(&opts, 0, sizeof opts);
        opts.exact = exact;
        opts.oversample = 4; /* l = 8 < 15: the randomized path really runs */
        assert_int_equal(lort_svd_truncated_workspace_size(15, 28, 4, &opts, &ws), LORT_OK);
        w = tr_buf(ws);
        assert_int_equal(
            lort_svd_truncated(full.U, full.S, full.Vt, K.W, 28, 15, 28, 4, &opts, w, ws), LORT_OK);
        assert_int_equal(lort_svd_truncated(NULL, o.S, o.Vt, K.W, 28, 15, 28, 4, &opts, w, ws),
                         LORT_OK);
        for (int i = 0; i < 4; ++i) assert_true(fabs((double)o.S[i] - s[i]) <= K.eF + STOL * s[0]);
        assert_true(orth_err(o.Vt, 4, 28, 28, 0) <= OTOL);
        assert_true(sign_convention_ok(o.Vt, 4, 28));
        assert_memory_equal(o.S, full.S, 4 * sizeof(float));
        assert_memory_equal(o.Vt, full.Vt, 4 * 28 * sizeof(float));
        assert_int_equal(lort_svd_truncated(o.U, o.S, NULL, K.W, 28, 15, 28, 4, &opts, w, ws),
                         LORT_ERR_NULL);
        free(w);
    }
    /* opts NULL = defaults */
    assert_int_equal(lort_svd_truncated_workspace_size(15, 28, 4, NULL, &ws), LORT_OK);
    w = tr_buf(ws);
    assert_int_equal(lort_svd_truncated(o.U, o.S, o.Vt, K.W, 28, 15, 28, 4, NULL, w, ws), LORT_OK);
    for (int i = 0; i < 4; ++i) assert_true(fabs((double)o.S[i] - s[i]) <= K.eF + STOL * s[0]);
    free(w);
    out_free(&o);
    out_free(&full);
    free_known(&K);
}

/* Documented defaults: oversample 0 = max(10, 5r/4), power_iters 0 = 4, max_sweeps 0 = 60.
   A zero field and its documented value must give bit-identical results. */
static void test_documented_defaults(void **state) {
    (void)state;
    const int m = 150, n = 100;
    tr_seed(112);
    float *W = tr_rand((size_t)m * (size_t)n);
    static const int rs[] = {4, 30};
    int ok = 1;
    for (size_t t = 0; t < sizeof rs / sizeof rs[0]; ++t) {
        int r = rs[t];
        lort_svd_opts z, e;
        memset(&z, 0, sizeof z);
        memset(&e, 0, sizeof e);
        z.seed = e.seed = 5;
        e.oversample = r / 2 > 10 ? r / 2 : 10;
        e.power_iters = 5;
        e.max_sweeps = 60;
        size_t wz = 0, we = 0;
        assert_int_equal(lort_svd_truncated_workspace_size(m, n, r, &z, &wz), LORT_OK);
        assert_int_equal(lort_svd_truncated_workspace_size(m, n, r, &e, &we), LORT_OK);
        assert_int_equal((long)wz, (long)we);
        svd_out a = out_alloc(m, n, r), b = out_alloc(m, n, r);
        void *w = tr_buf(wz);
        assert_int_equal(lort_svd_truncated(a.U, a.S, a.Vt, W, n, m, n, r, &z, w, wz), LORT_OK);
        assert_int_equal(lort_svd_truncated(b.U, b.S, b.Vt, W, n, m, n, r, &e, w, wz), LORT_OK);
        if (memcmp(a.S, b.S, (size_t)r * sizeof(float)) ||
            memcmp(a.U, b.U, (size_t)m * (size_t)r * sizeof(float)) ||
            memcmp(a.Vt, b.Vt, (size_t)r * (size_t)n * sizeof(float))) {
            printf("  r=%d: zero opts differ from the documented defaults (oversample %d, "
                   "power_iters 5, max_sweeps 60)\n",
                   r, e.oversample);
            /* which one? */
            for (int f = 0; f < 3; ++f) {
                lort_svd_opts x = z;
                if (f == 0) x.oversample = e.oversample;
                if (f == 1) x.power_iters = 5;
                if (f == 2) x.max_sweeps = 60;
                assert_int_equal(lort_svd_truncated(b.U, b.S, b.Vt, W, n, m, n, r, &x, w, wz),
                                 LORT_OK);
                if (memcmp(a.S, b.S, (size_t)r * sizeof(float)))
                    printf("    %s explicit != 0 (default)\n",
                           f == 0 ? "oversample" : (f == 1 ? "power_iters 5" : "max_sweeps 60"));
            }
            ok = 0;
        }
        free(w);
        out_free(&a);
        out_free(&b);
    }
    free(W);
    assert_true(ok);
}

/* (d) randomized path, 300 x 200, sigma_i = i^-1/2 (slow decay), r = 16 */
static void test_randomized_slow_decay(void **state) {
    (void)state;
    const int m = 300, n = 200, r = 16;
    double s[200];
    for (int i = 0; i < n; ++i) s[i] = 1.0 / sqrt((double)(i + 1));
    tr_seed(106);
    known K = make_known(m, n, s, n, 0.0f);
    lort_svd_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.seed = 7;
    svd_out o = out_alloc(m, n, r);
    assert_int_equal(run_truncated(&K, r, &opts, &o), LORT_OK);
    /* exact reference: the known spectrum (perturbed by the float rounding of W, eF) */
    int ok = 1;
    double worst_rel = 0.0;
    for (int i = 0; i < r; ++i) {
        double rel = fabs((double)o.S[i] - s[i]) / s[i];
        if (rel > worst_rel) worst_rel = rel;
        if (!(rel <= 1e-3 + K.eF / s[i])) {
            printf("  randomized S[%d] = %.7g, exact %.7g (rel %.3g)\n", i, (double)o.S[i], s[i],
                   rel);
            ok = 0;
        }
    }
    printf("  randomized 300x200 r=16: max relative error of S = %.3g (bound 1e-3)\n", worst_rel);
    /* leading, well-separated vectors: |cos| to the exact ones near 1 */
    for (int i = 0; i < 4; ++i) {
        double cu = 0.0, cv = 0.0;
        for (int a = 0; a < m; ++a) cu += (double)o.U[IDX(a, i, r)] * K.Q1[IDX(a, i, n)];
        for (int a = 0; a < n; ++a) cv += (double)o.Vt[IDX(i, a, n)] * K.Q2[IDX(a, i, n)];
        if (!(fabs(cu) >= 0.999) || !(fabs(cv) >= 0.999)) {
            printf("  randomized vector %d: |cos u| %.6f |cos v| %.6f\n", i, fabs(cu), fabs(cv));
            ok = 0;
        }
    }
    /* subspace: the leading 8 exact left vectors lie in span(U_16): ||Q1_8^T U_16||_F^2 = sum of
       squared cosines of the principal angles, ~8 */
    double c2 = 0.0;
    for (int p = 0; p < 8; ++p)
        for (int q = 0; q < r; ++q) {
            double d = 0.0;
            for (int a = 0; a < m; ++a) d += K.Q1[IDX(a, p, n)] * (double)o.U[IDX(a, q, r)];
            c2 += d * d;
        }
    if (!(c2 >= 8.0 * (1.0 - 1e-4))) {
        printf("  randomized subspace: sum cos^2 = %.8f of 8\n", c2);
        ok = 0;
    }
    if (!(orth_err(o.U, r, m, r, 1) <= OTOL) || !(orth_err(o.Vt, r, n, n, 0) <= OTOL)) {
        printf("  randomized: U/V not orthonormal\n");
        ok = 0;
    }
    ok &= sign_convention_ok(o.Vt, r, n);

    /* the exact paths on the same matrix agree with the known spectrum to float accuracy */
    svd_out e = out_alloc(m, n, n);
    assert_int_equal(run_jacobi(&K, &e, 60), LORT_OK);
    for (int i = 0; i < n; ++i)
        if (!(fabs((double)e.S[i] - s[i]) <= K.eF + STOL * s[0])) {
            printf("  jacobi 300x200: S[%d] = %.9g want %.9g\n", i, (double)e.S[i], s[i]);
            ok = 0;
            break;
        }
    /* randomized vs jacobi directly */
    for (int i = 0; i < r; ++i)
        if (!(fabs((double)o.S[i] - (double)e.S[i]) <= 1e-3 * (double)e.S[i] + 2.0 * K.eF)) {
            printf("  randomized vs jacobi S[%d]: %.7g vs %.7g\n", i, (double)o.S[i],
                   (double)e.S[i]);
            ok = 0;
        }
    out_free(&e);
#ifndef LORT_NO_BLAS
    {
        /* LAPACK on the same matrix */
        float *sv = tr_alloc((size_t)(m < n ? m : n));
        lapack_singular_values(K.W, m, n, sv);
        for (int i = 0; i < r; ++i)
            if (!(fabs((double)o.S[i] - (double)sv[i]) <= 1e-3 * (double)sv[i])) {
                printf("  randomized vs LAPACK S[%d]: %.7g vs %.7g\n", i, (double)o.S[i],
                       (double)sv[i]);
                ok = 0;
            }
        free(sv);
    }
#endif
    out_free(&o);
    free_known(&K);
    assert_true(ok);
}

/* max relative error of the top r singular values of a randomized run against the known ones */
static double top_rel_err(const known *K, int r, const lort_svd_opts *opts) {
    svd_out o = out_alloc(K->m, K->n, r);
    double worst = 0.0;
    assert_int_equal(run_truncated(K, r, opts, &o), LORT_OK);
    for (int i = 0; i < r; ++i) {
        double rel = fabs((double)o.S[i] - K->s[i]) / K->s[i];
        if (!(rel <= worst)) worst = rel; /* NaN propagates */
    }
    out_free(&o);
    return worst;
}

/* (e) the dynamic shift of the power iterations. On a slowly decaying spectrum it must make
   the same number of passes markedly more accurate than plain power iterations; on a spectrum
   with a gap right after the l = r + oversample probes, where plain iterations converge at once,
   it must not cost that accuracy (a shift that chased t_l^2 there would lose about 3 digits). */
static void test_dynamic_shift(void **state) {
    (void)state;
    const int m = 400, n = 300, r = 16; /* defaults: l = 26, q = 5 */
    double s[300];
    int ok = 1;
    lort_svd_opts dflt, plain;
    memset(&dflt, 0, sizeof dflt);
    dflt.seed = 3;
    plain = dflt;
    plain.no_shift = 1;

    for (int i = 0; i < n; ++i) s[i] = 1.0 / sqrt((double)(i + 1));
    tr_seed(120);
    known K = make_known(m, n, s, n, 0.0f);
    double e_shift = top_rel_err(&K, r, &dflt), e_plain = top_rel_err(&K, r, &plain);
    printf("  sigma_i = i^-1/2, r=%d: max rel. error %.3g shifted, %.3g plain\n", r, e_shift,
           e_plain);
    if (!(e_shift <= e_plain / 4.0) || !(e_shift <= 1e-4)) ok = 0;
    free_known(&K);

    /* flat-ish top l = 26 values, then a drop by 1000x */
    for (int i = 0; i < n; ++i) s[i] = i < 26 ? 1.0 - 0.01 * (double)i : 1e-3 / (1.0 + 0.01 * i);
    tr_seed(121);
    K = make_known(m, n, s, n, 0.0f);
    e_shift = top_rel_err(&K, r, &dflt);
    e_plain = top_rel_err(&K, r, &plain);
    printf("  gap past l: max rel. error %.3g shifted, %.3g plain (float rounding of W %.2g)\n",
           e_shift, e_plain, K.eF);
    if (!(e_plain <= 1e-5 + 2.0 * K.eF) || !(e_shift <= 1e-5 + 2.0 * K.eF)) ok = 0;
    free_known(&K);

    /* a sweep of spectra: decays of every speed, gaps before, at and after l, a flat top, and
       exact low rank. The shift may help a lot or nothing, but never cost more than a factor 2
       (or float rounding) against plain power iterations. */
    for (int c = 0; c < 9; ++c) {
        static const char *name[9] = {"i^-0.3", "i^-1",       "0.97^i",   "gap at r", "gap at l-5",
                                      "gap at l+5", "flat top", "rank 20", "rank 40"};
        for (int i = 0; i < n; ++i) {
            double x = (double)(i + 1), top = 1.0 - 0.01 * (double)i, low = 1e-3 / x;
            switch (c) {
            case 0: s[i] = pow(x, -0.3); break;
            case 1: s[i] = 1.0 / x; break;
            case 2: s[i] = pow(0.97, x); break;
            case 3: s[i] = i < r ? top : low; break;
            case 4: s[i] = i < 21 ? top : low; break;
            case 5: s[i] = i < 31 ? top : low; break;
            case 6: s[i] = i < 60 ? 1.0 - 0.001 * (double)i : 0.5 / x; break;
            case 7: s[i] = i < 20 ? top : 0.0; break;
            default: s[i] = i < 40 ? top : 0.0; break;
            }
        }
        tr_seed(130 + (unsigned)c);
        K = make_known(m, n, s, n, 0.0f);
        e_shift = top_rel_err(&K, r, &dflt);
        e_plain = top_rel_err(&K, r, &plain);
        printf("  %-10s max rel. error %.3g shifted, %.3g plain\n", name[c], e_shift, e_plain);
        if (!(e_shift <= 2.0 * e_plain + 1e-6 + 2.0 * K.eF / s[r - 1])) ok = 0;
        free_known(&K);
    }
    assert_true(ok);
}

/* (c) singular values against LAPACK sgesdd_ on generic random matrices (BLAS build only) */
static void test_vs_lapack(void **state) {
    (void)state;
#ifdef LORT_NO_BLAS
    skip();
#else
    static const int shapes[][2] = {{50, 30}, {30, 50}, {40, 40}, {1, 9}, {9, 1}, {65, 17}};
    tr_seed(107);
    int ok = 1;
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; ++t) {
        int m = shapes[t][0], n = shapes[t][1], k = m < n ? m : n;
        float *W = tr_rand((size_t)m * (size_t)n);
        /* grade the columns to spread the spectrum */
        for (int i = 0; i < m; ++i)
            for (int j = 0; j < n; ++j) W[IDX(i, j, n)] *= (float)pow(0.9, (double)j);
        float *sv = tr_alloc((size_t)k);
        lapack_singular_values(W, m, n, sv);

        svd_out o = out_alloc(m, n, k);
        size_t ws = 0;
        assert_int_equal(lort_svd_jacobi_workspace_size(m, n, &ws), LORT_OK);
        void *w = tr_buf(ws);
        assert_int_equal(lort_svd_jacobi(o.U, o.S, o.Vt, W, n, m, n, 60, w, ws), LORT_OK);
        for (int i = 0; i < k; ++i)
            if (!(fabs((double)o.S[i] - (double)sv[i]) <= 2e-5 * (double)sv[0])) {
                printf("  %dx%d jacobi vs LAPACK S[%d]: %.9g vs %.9g\n", m, n, i, (double)o.S[i],
                       (double)sv[i]);
                ok = 0;
            }
        free(w);
        int r = k > 4 ? 4 : k;
        lort_svd_opts opts;
        memset(&opts, 0, sizeof opts);
        assert_int_equal(lort_svd_truncated_workspace_size(m, n, r, &opts, &ws), LORT_OK);
        w = tr_buf(ws);
        assert_int_equal(lort_svd_truncated(o.U, o.S, o.Vt, W, n, m, n, r, &opts, w, ws), LORT_OK);
        for (int i = 0; i < r; ++i)
            if (!(fabs((double)o.S[i] - (double)sv[i]) <= 1e-4 * (double)sv[0])) {
                printf("  %dx%d randomized vs LAPACK S[%d]: %.9g vs %.9g\n", m, n, i,
                       (double)o.S[i], (double)sv[i]);
                ok = 0;
            }
        free(w);
        out_free(&o);
        free(W);
        free(sv);
    }
    assert_true(ok);
#endif
}

/* (e) determinism: same seed, bit-identical output; the exact path ignores the seed */
static void test_determinism(void **state) {
    (void)state;
    tr_seed(108);
    double s[30];
    for (int i = 0; i < 30; ++i) s[i] = 1.0 / (1.0 + i);
    known K = make_known(45, 30, s, 30, 0.0f);
    const int r = 6;
    for (int exact = 0; exact < 2; ++exact) {
        lort_svd_opts opts;
        memset(&opts, 0, sizeof opts);
        opts.exact = exact;
        opts.seed = 99;
        svd_out a = out_alloc(45, 30, r), b = out_alloc(45, 30, r);
        assert_int_equal(run_truncated(&K, r, &opts, &a), LORT_OK);
        assert_int_equal(run_truncated(&K, r, &opts, &b), LORT_OK);
        assert_memory_equal(a.U, b.U, (size_t)45 * (size_t)r * sizeof(float));
        assert_memory_equal(a.S, b.S, (size_t)r * sizeof(float));
        assert_memory_equal(a.Vt, b.Vt, (size_t)r * 30u * sizeof(float));
        /* another seed: still a correct answer */
        opts.seed = 100;
        assert_int_equal(run_truncated(&K, r, &opts, &b), LORT_OK);
        assert_true(check_known(exact ? "exact seed 100" : "randomized seed 100", &K, r, &b, STOL,
                                OTOL, 0.0));
        out_free(&a);
        out_free(&b);
    }
    svd_out a = out_alloc(45, 30, 30), b = out_alloc(45, 30, 30);
    assert_int_equal(run_jacobi(&K, &a, 60), LORT_OK);
    assert_int_equal(run_jacobi(&K, &b, 60), LORT_OK);
    assert_memory_equal(a.U, b.U, 45u * 30u * sizeof(float));
    assert_memory_equal(a.S, b.S, 30u * sizeof(float));
    assert_memory_equal(a.Vt, b.Vt, 30u * 30u * sizeof(float));
    out_free(&a);
    out_free(&b);
    free_known(&K);
}

/* Scale invariance: SVD(c W) = c SVD(W) for c = 2^e (exact in float), as long as W and its
   singular values are normal floats. Catches squared norms formed in float (overflow to Inf or
   underflow to 0 for large or tiny matrices) and a status of LORT_OK with non-finite output. */
static int all_finite(const float *x, size_t count) {
    for (size_t i = 0; i < count; ++i)
        if (!isfinite(x[i])) return 0;
    return 1;
}
static void test_scale_invariance(void **state) {
    (void)state;
    enum { M = 60, N = 40, R = 3 };
    static const int exps[] = {-70, -40, 40, 70}; /* c ~ 8e-22, 9e-13, 1.1e12, 1.2e21 */
    tr_seed(113);
    float *W = tr_rand(M * N), *Wc = tr_alloc(M * N);
    svd_out ref[3], o = out_alloc(M, N, N);
    lort_svd_opts opts[3];
    size_t ws[3];
    for (int v = 0; v < 3; ++v) { /* 0 jacobi, 1 truncated exact, 2 truncated randomized */
        memset(&opts[v], 0, sizeof opts[v]);
        opts[v].exact = v == 1;
        opts[v].oversample = 5; /* l = 8 < 40: the randomized path runs */
        ref[v] = out_alloc(M, N, N);
        if (v == 0)
            assert_int_equal(lort_svd_jacobi_workspace_size(M, N, &ws[v]), LORT_OK);
        else
            assert_int_equal(lort_svd_truncated_workspace_size(M, N, R, &opts[v], &ws[v]), LORT_OK);
    }
    void *w =
        tr_buf(ws[0] > ws[2] ? (ws[0] > ws[1] ? ws[0] : ws[1]) : (ws[2] > ws[1] ? ws[2] : ws[1]));
    assert_int_equal(lort_svd_jacobi(ref[0].U, ref[0].S, ref[0].Vt, W, N, M, N, 0, w, ws[0]),
                     LORT_OK);
    for (int v = 1; v < 3; ++v)
        assert_int_equal(
            lort_svd_truncated(ref[v].U, ref[v].S, ref[v].Vt, W, N, M, N, R, &opts[v], w, ws[v]),
            LORT_OK);
    static const char *names[3] = {"jacobi", "truncated exact", "truncated randomized"};
    int ok = 1;
    for (size_t e = 0; e < sizeof exps / sizeof exps[0]; ++e) {
        double c = ldexp(1.0, exps[e]);
        for (int i = 0; i < M * N; ++i) Wc[i] = (float)((double)W[i] * c);
        for (int v = 0; v < 3; ++v) {
            int r = v == 0 ? N : R;
            lort_status st =
                v == 0 ? lort_svd_jacobi(o.U, o.S, o.Vt, Wc, N, M, N, 0, w, ws[0])
                       : lort_svd_truncated(o.U, o.S, o.Vt, Wc, N, M, N, R, &opts[v], w, ws[v]);
            if (st != LORT_OK) {
                printf("  %s at scale 2^%d: status %s\n", names[v], exps[e],
                       lort_status_string(st));
                ok = 0;
                continue;
            }
            if (!all_finite(o.S, (size_t)r) || !all_finite(o.U, (size_t)M * (size_t)r) ||
                !all_finite(o.Vt, (size_t)r * (size_t)N)) {
                printf("  %s at scale 2^%d: LORT_OK but non-finite output (S[0] = %g)\n", names[v],
                       exps[e], (double)o.S[0]);
                ok = 0;
                continue;
            }
            double worst = 0.0;
            for (int i = 0; i < r; ++i) {
                double d = fabs((double)o.S[i] / c - (double)ref[v].S[i]) / (double)ref[v].S[0];
                if (!(d <= worst)) worst = d;
            }
            if (!(worst <= 1e-5)) {
                printf("  %s at scale 2^%d: S / c differs from S of the unscaled matrix by %.3g of "
                       "S[0]\n",
                       names[v], exps[e], worst);
                ok = 0;
            }
        }
    }
    for (int v = 0; v < 3; ++v) out_free(&ref[v]);
    out_free(&o);
    free(w);
    free(W);
    free(Wc);
    assert_true(ok);
}

/* (f) sign convention on a matrix whose natural vectors have mostly negative entries */
static void test_sign_convention(void **state) {
    (void)state;
    const int m = 12, n = 9;
    float W[12 * 9];
    /* W = -(u v^T) + small: largest |entry| of v is at column 4 */
    for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j)
            W[IDX(i, j, n)] = -(float)(1.0 + 0.1 * i) * (float)(j == 4 ? 2.0 : 0.5 + 0.05 * j);
    tr_seed(109);
    for (int i = 0; i < m * n; ++i) W[i] += 0.01f * tr_sym();
    svd_out o = out_alloc(m, n, n);
    size_t ws = 0;
    assert_int_equal(lort_svd_jacobi_workspace_size(m, n, &ws), LORT_OK);
    void *w = tr_buf(ws);
    assert_int_equal(lort_svd_jacobi(o.U, o.S, o.Vt, W, n, m, n, 60, w, ws), LORT_OK);
    assert_true(sign_convention_ok(o.Vt, n, n));
    assert_true(o.Vt[4] > 0.0f);
    /* then U's first column is negative (W ~ -|u| |v|^T) */
    for (int i = 0; i < m; ++i) assert_true(o.U[IDX(i, 0, n)] < 0.0f);
    free(w);
    lort_svd_opts opts;
    memset(&opts, 0, sizeof opts);
    assert_int_equal(lort_svd_truncated_workspace_size(m, n, 3, &opts, &ws), LORT_OK);
    w = tr_buf(ws);
    assert_int_equal(lort_svd_truncated(o.U, o.S, o.Vt, W, n, m, n, 3, &opts, w, ws), LORT_OK);
    assert_true(sign_convention_ok(o.Vt, 3, n));
    assert_true(o.Vt[4] > 0.0f);
    for (int i = 0; i < m; ++i) assert_true(o.U[IDX(i, 0, 3)] < 0.0f);
    free(w);
    out_free(&o);
}

/* (g) errors: status, and no output written */
static void test_errors(void **state) {
    (void)state;
    enum { M = 20, N = 20 };
    float W[M * N];
    float U[M * N], S[N], Vt[N * N], U0[M * N], S0[N], Vt0[N * N];
    tr_seed(110);
    tr_fill(W, M * N);
    for (int i = 0; i < M * N; ++i) U0[i] = -777.0f;
    for (int i = 0; i < N; ++i) S0[i] = -777.0f;
    for (int i = 0; i < N * N; ++i) Vt0[i] = -777.0f;
#define RESET()                     \
    do {                            \
        memcpy(U, U0, sizeof U);    \
        memcpy(S, S0, sizeof S);    \
        memcpy(Vt, Vt0, sizeof Vt); \
    } while (0)
#define UNTOUCHED()                              \
    do {                                         \
        assert_memory_equal(U, U0, sizeof U);    \
        assert_memory_equal(S, S0, sizeof S);    \
        assert_memory_equal(Vt, Vt0, sizeof Vt); \
    } while (0)
    lort_svd_opts opts;
    memset(&opts, 0, sizeof opts);
    size_t ws = 0, wj = 0;
    lort_status st;
    /* size queries */
    assert_int_equal(lort_svd_truncated_workspace_size(M, N, 0, &opts, &ws), LORT_ERR_INVALID_ARG);
    assert_int_equal(lort_svd_truncated_workspace_size(M, N, -3, &opts, &ws), LORT_ERR_INVALID_ARG);
    assert_int_equal(lort_svd_truncated_workspace_size(0, N, 1, &opts, &ws), LORT_ERR_INVALID_ARG);
    assert_int_equal(lort_svd_truncated_workspace_size(M, -1, 1, &opts, &ws), LORT_ERR_INVALID_ARG);
    st = lort_svd_truncated_workspace_size(M, 10, 11, &opts, &ws);
    assert_int_equal(st, LORT_ERR_SHAPE);
    assert_int_equal(lort_svd_truncated_workspace_size(M, N, 4, &opts, NULL), LORT_ERR_NULL);
    assert_int_equal(lort_svd_jacobi_workspace_size(0, N, &wj), LORT_ERR_INVALID_ARG);
    assert_int_equal(lort_svd_jacobi_workspace_size(M, N, NULL), LORT_ERR_NULL);
    assert_int_equal(lort_svd_jacobi_workspace_size(INT_MAX, INT_MAX, &wj), LORT_ERR_OVERFLOW);

    assert_int_equal(lort_svd_truncated_workspace_size(M, N, 4, &opts, &ws), LORT_OK);
    assert_int_equal(lort_svd_jacobi_workspace_size(M, N, &wj), LORT_OK);
    assert_true(ws > 0 && wj > 0);
    unsigned char *w = (unsigned char *)tr_buf(ws > wj ? ws : wj);
    RESET();
    assert_int_equal(lort_svd_truncated(U, S, Vt, W, N, M, N, 0, &opts, w, ws),
                     LORT_ERR_INVALID_ARG);
    UNTOUCHED();
    st = lort_svd_truncated(U, S, Vt, W, N, M, N, N + 1, &opts, w, ws);
    assert_int_equal(st, LORT_ERR_SHAPE);
    UNTOUCHED();
    st = lort_svd_truncated(U, S, Vt, W, N - 1, M, N, 4, &opts, w, ws); /* ldw < n */
    assert_int_equal(st, LORT_ERR_SHAPE);
    UNTOUCHED();
    assert_int_equal(lort_svd_truncated(U, S, Vt, NULL, N, M, N, 4, &opts, w, ws), LORT_ERR_NULL);
    assert_int_equal(lort_svd_truncated(U, NULL, Vt, W, N, M, N, 4, &opts, w, ws), LORT_ERR_NULL);
    assert_int_equal(lort_svd_truncated(U, S, Vt, W, N, M, N, 4, &opts, NULL, ws), LORT_ERR_NULL);
    UNTOUCHED();
    /* workspace one byte short, then exact */
    assert_int_equal(lort_svd_truncated(U, S, Vt, W, N, M, N, 4, &opts, w, ws - 1),
                     LORT_ERR_WORKSPACE);
    UNTOUCHED();
    assert_int_equal(lort_svd_truncated(U, S, Vt, W, N, M, N, 4, &opts, w, ws), LORT_OK);
    RESET();
    opts.exact = 1;
    size_t wse = 0;
    assert_int_equal(lort_svd_truncated_workspace_size(M, N, 4, &opts, &wse), LORT_OK);
    unsigned char *we = (unsigned char *)tr_buf(wse);
    assert_int_equal(lort_svd_truncated(U, S, Vt, W, N, M, N, 4, &opts, we, wse - 1),
                     LORT_ERR_WORKSPACE);
    UNTOUCHED();
    assert_int_equal(lort_svd_truncated(U, S, Vt, W, N, M, N, 4, &opts, we, wse), LORT_OK);
    RESET();
    opts.exact = 0;
    /* jacobi */
    assert_int_equal(lort_svd_jacobi(U, S, Vt, W, N, M, N, 60, w, wj - 1), LORT_ERR_WORKSPACE);
    UNTOUCHED();
    assert_int_equal(lort_svd_jacobi(U, NULL, Vt, W, N, M, N, 60, w, wj), LORT_ERR_NULL);
    assert_int_equal(lort_svd_jacobi(U, S, Vt, NULL, N, M, N, 60, w, wj), LORT_ERR_NULL);
    st = lort_svd_jacobi(U, S, Vt, W, N - 1, M, N, 60, w, wj);
    assert_int_equal(st, LORT_ERR_SHAPE);
    assert_int_equal(lort_svd_jacobi(U, S, Vt, W, N, -1, N, 60, w, wj), LORT_ERR_INVALID_ARG);
    assert_int_equal(lort_svd_jacobi(U, S, Vt, W, N, M, N, -1, w, wj), LORT_ERR_INVALID_ARG);
    UNTOUCHED();
    /* one sweep does not converge on a generic 20 x 20 matrix */
    assert_int_equal(lort_svd_jacobi(U, S, Vt, W, N, M, N, 1, w, wj), LORT_ERR_NO_CONVERGENCE);
    UNTOUCHED();
    opts.exact = 1;
    opts.max_sweeps = 1;
    RESET();
    assert_int_equal(lort_svd_truncated(U, S, Vt, W, N, M, N, 4, &opts, we, wse),
                     LORT_ERR_NO_CONVERGENCE);
    UNTOUCHED();
    opts.max_sweeps = 0;
    opts.exact = 0;
    /* ... while max_sweeps 0 means the default */
    assert_int_equal(lort_svd_jacobi(U, S, Vt, W, N, M, N, 0, w, wj), LORT_OK);
    RESET();
    /* non-finite input, always scanned */
    float Wn[M * N];
    memcpy(Wn, W, sizeof W);
    Wn[7 * N + 13] = (float)NAN;
    assert_int_equal(lort_svd_truncated(U, S, Vt, Wn, N, M, N, 4, &opts, w, ws),
                     LORT_ERR_NONFINITE);
    UNTOUCHED();
    assert_int_equal(lort_svd_jacobi(U, S, Vt, Wn, N, M, N, 60, w, wj), LORT_ERR_NONFINITE);
    UNTOUCHED();
    Wn[7 * N + 13] = (float)INFINITY;
    assert_int_equal(lort_svd_jacobi(U, S, Vt, Wn, N, M, N, 60, w, wj), LORT_ERR_NONFINITE);
    Wn[7 * N + 13] = -(float)INFINITY;
    assert_int_equal(lort_svd_truncated(U, S, Vt, Wn, N, M, N, 4, &opts, w, ws),
                     LORT_ERR_NONFINITE);
    UNTOUCHED();
    /* bad options */
    opts.oversample = -1;
    st = lort_svd_truncated_workspace_size(M, N, 4, &opts, &ws);
    assert_int_equal(st, LORT_ERR_INVALID_ARG); /* an out-of-range option */
    opts.oversample = 0;
    opts.max_sweeps = -5;
    assert_int_equal(lort_svd_truncated(U, S, Vt, W, N, M, N, 4, &opts, w, ws),
                     LORT_ERR_INVALID_ARG);
    UNTOUCHED();
    free(w);
    free(we);
#undef RESET
#undef UNTOUCHED
}

/* misaligned workspace of the exact size works and gives the same bits */
static void test_workspace_alignment(void **state) {
    (void)state;
    tr_seed(111);
    double s[16];
    geometric(s, 16, 2.0, 0.8);
    known K = make_known(24, 16, s, 16, 0.0f);
    lort_svd_opts opts;
    memset(&opts, 0, sizeof opts);
    size_t ws = 0;
    assert_int_equal(lort_svd_truncated_workspace_size(24, 16, 5, &opts, &ws), LORT_OK);
    svd_out ref = out_alloc(24, 16, 5), o = out_alloc(24, 16, 5);
    unsigned char *base = (unsigned char *)tr_buf(ws);
    assert_int_equal(lort_svd_truncated(ref.U, ref.S, ref.Vt, K.W, 16, 24, 16, 5, &opts, base, ws),
                     LORT_OK);
    free(base);
    for (size_t off = 1; off < 64; off += 7) {
        /* exactly ws bytes after the misaligned start (ASan catches any overrun) */
        base = (unsigned char *)tr_buf(ws + off);
        assert_int_equal(
            lort_svd_truncated(o.U, o.S, o.Vt, K.W, 16, 24, 16, 5, &opts, base + off, ws), LORT_OK);
        free(base);
        assert_true(check_known("misaligned", &K, 5, &o, STOL, OTOL, VTOL));
#ifdef LORT_NO_BLAS
        assert_memory_equal(o.S, ref.S, 5 * sizeof(float));
        assert_memory_equal(o.U, ref.U, 24 * 5 * sizeof(float));
        assert_memory_equal(o.Vt, ref.Vt, 5 * 16 * sizeof(float));
#endif
    }
    out_free(&ref);
    out_free(&o);
    free_known(&K);
}

/* Regression: a column that QR leaves at ~1e-155 (a matrix with a zero row) used to make one-
   sided Jacobi rotate it forever (a denormal squared norm) and report NO_CONVERGENCE. */
static void test_jacobi_negligible_column(void **state) {
    (void)state;
    float M[9] = {0.32415f, -0.648488f, -0.0474058f, -1.05624f, -0.119965f, 1.02908f, 0, 0, 0};
    float U[9], S[3], Vt[9];
    size_t ws = 0;
    assert_int_equal(lort_svd_jacobi_workspace_size(3, 3, &ws), LORT_OK);
    void *w = tr_buf(ws);
    assert_int_equal(lort_svd_jacobi(U, S, Vt, M, 3, 3, 3, 0, w, ws), LORT_OK);
    assert_true(S[2] < 1e-6f * S[0]);
    for (int i = 0; i < 3; ++i) /* U S Vt reproduces M */
        for (int j = 0; j < 3; ++j) {
            double s = 0.0;
            for (int k = 0; k < 3; ++k) s += (double)U[i * 3 + k] * (double)S[k] * (double)Vt[k * 3 + j];
            assert_true(fabs(s - (double)M[i * 3 + j]) < 1e-5);
        }
    free(w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_shapes),          cmocka_unit_test(test_padded_ldw),
        cmocka_unit_test(test_rank_deficient),        cmocka_unit_test(test_repeated_values),
        cmocka_unit_test(test_null_vectors),          cmocka_unit_test(test_documented_defaults),
        cmocka_unit_test(test_randomized_slow_decay), cmocka_unit_test(test_vs_lapack),
        cmocka_unit_test(test_determinism),           cmocka_unit_test(test_scale_invariance),
        cmocka_unit_test(test_sign_convention),       cmocka_unit_test(test_errors),
        cmocka_unit_test(test_workspace_alignment),   cmocka_unit_test(test_jacobi_negligible_column),
        cmocka_unit_test(test_dynamic_shift),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
