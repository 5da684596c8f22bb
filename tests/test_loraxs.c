/* LoRA-XS (family loraxs): what is specific to the family. The generic checks (forward, delta,
   merge against the double reference of tests/lort_ref.h, backward against central
   differences, cache, accumulation, fewer rows, exact buffers, untouched outputs on error, R's
   init distribution) run on this family's cases in tests/test_conformance.c, with the frozen
   factors from lort_adapter_init.

   Init is checked here on weights W0 = Q1 diag(sigma) Q2^T with a known spectrum: Q1, Q2 have
   orthonormal columns from our own double Gram-Schmidt, sigma_j = 4 * 0.85^j (distinct, gap
   15%). The best rank-r approximation is then U_r S_r V_r^T = Q1_r diag(sigma_r) Q2_r^T exactly.
     init, exact SVD:      B^T B vs I (abs 1e-5), A A^T vs diag(sigma^2) norm 2e-5,
                           B A vs the rank-r approximation norm 2e-5
     init, randomized SVD: the same with 1e-4 (only shapes with r + oversample < min(d_in,
                           d_out) run it; the others fall back to the exact SVD)
     init, rank-deficient W0: B^T B vs I abs 1e-5, B A vs W0 abs 1e-5 (1 + max|W0|)
*/
#include "lort_ref.h"


/* Q (rows, k), k <= rows: orthonormal columns from normal draws. */
static void orthonormal(int rows, int k, double *Q) {
    for (size_t i = 0; i < zu(rows) * zu(k); ++i) Q[i] = tg_normal();
    tr_orthonormalize(Q, rows, k);
}

/* A known-spectrum weight: W0 (d_out, d_in) = Q1 diag(sig) Q2^T, k = min(d_in, d_out). */
typedef struct {
    int d_out, d_in, k;
    double *Q1, *Q2, *sig; /* (d_out, k), (d_in, k), (k) */
    float *W0;
} spectrum;
static void make_spectrum(spectrum *P, int d_out, int d_in) {
    P->d_out = d_out; P->d_in = d_in; P->k = d_out < d_in ? d_out : d_in;
    P->Q1 = td_alloc(zu(d_out) * zu(P->k));
    P->Q2 = td_alloc(zu(d_in) * zu(P->k));
    P->sig = td_alloc(zu(P->k));
    orthonormal(d_out, P->k, P->Q1);
    orthonormal(d_in, P->k, P->Q2);
    for (int j = 0; j < P->k; ++j) P->sig[j] = 4.0 * pow(0.85, (double)j);
    P->W0 = tr_alloc(zu(d_out) * zu(d_in));
    for (int o = 0; o < d_out; ++o)
        for (int i = 0; i < d_in; ++i) {
            double acc = 0.0;
            for (int j = 0; j < P->k; ++j)
                acc += P->Q1[IX(o, P->k, j)] * P->sig[j] * P->Q2[IX(i, P->k, j)];
            P->W0[IX(o, d_in, i)] = (float)acc;
        }
}
static void free_spectrum(spectrum *P) { free(P->Q1); free(P->Q2); free(P->sig); free(P->W0); }

/* Runs lort_loraxs_init with exactly-sized workspace. */
static void lib_init(const lort_loraxs_desc *d, float *R, float *A, float *B, const float *W0,
                     uint64_t seed) {
    size_t iws = 0;
    OK(lort_loraxs_init_workspace_size(d, &iws));
    void *work = tr_buf(iws);
    lort_rng rng;
    lort_rng_seed(&rng, seed);
    OK(lort_loraxs_init(d, R, A, B, W0, &rng, work, iws));
    free(work);
}

/* ---- init from a known spectrum -------------------------------------------------------- */
static void test_loraxs_init_svd(void **state) {
    (void)state;
    static const int shapes[][3] = { /* d_out, d_in, r */
        {12, 9, 3}, {13, 7, 1}, {7, 13, 7}, {20, 20, 20}, {17, 33, 17}, {40, 24, 24},
        /* l = r + max(10, r/2) < min(d_in, d_out): these run the randomized range finder */
        {33, 65, 4}, {65, 33, 5}, {30, 50, 1}, {64, 48, 8}, {80, 72, 24}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; ++si)
        for (int exact = 1; exact >= 0; --exact) {
            int dout = shapes[si][0], di = shapes[si][1], r = shapes[si][2];
            tr_seed(1000u + si);
            spectrum P;
            make_spectrum(&P, dout, di);
            lort_loraxs_desc d;
            memset(&d, 0, sizeof d);
            d.d_in = di; d.d_out = dout; d.r = r;
            d.svd.exact = exact;
            d.svd.seed = 5u + si;
            size_t na = zu(r) * zu(di), nb = zu(dout) * zu(r), nr = zu(r) * zu(r);
            float *R = tr_alloc(nr), *A = tr_alloc(na), *B = tr_alloc(nb);
            lib_init(&d, R, A, B, P.W0, 9u);
            const double tol = exact ? 2e-5 : 1e-4;
            char label[96];
            /* B has orthonormal columns */
            double *BtB = td_alloc(nr), *Id = td_alloc(nr);
            ref_gemm(1, 0, r, r, dout, B, r, B, r, BtB);
            for (int i = 0; i < r; ++i) Id[IX(i, r, i)] = 1.0;
            snprintf(label, sizeof label, "%dx%d r=%d exact=%d B^T B", dout, di, r, exact);
            assert_true(cmp_dd(label, BtB, Id, nr, exact ? 1e-5 : 1e-4, 0.0));
            /* A A^T = diag(sigma_1^2 .. sigma_r^2): rows orthogonal, norms sigma, descending */
            double *AAt = td_alloc(nr), *S2 = td_alloc(nr);
            ref_gemm(0, 1, r, r, di, A, di, A, di, AAt);
            for (int i = 0; i < r; ++i) S2[IX(i, r, i)] = P.sig[i] * P.sig[i];
            snprintf(label, sizeof label, "%dx%d r=%d exact=%d A A^T", dout, di, r, exact);
            assert_true(near_dd(label, AAt, S2, nr, tol));
            /* B A = U_r S_r V_r^T (best rank-r approximation), from our construction */
            size_t nw = zu(dout) * zu(di);
            double *BA = td_alloc(nw), *Wr = td_alloc(nw);
            ref_gemm(0, 0, dout, di, r, B, r, A, di, BA);
            for (int o = 0; o < dout; ++o)
                for (int i = 0; i < di; ++i) {
                    double acc = 0.0;
                    for (int j = 0; j < r; ++j)
                        acc += P.Q1[IX(o, P.k, j)] * P.sig[j] * P.Q2[IX(i, P.k, j)];
                    Wr[IX(o, di, i)] = acc;
                }
            snprintf(label, sizeof label, "%dx%d r=%d exact=%d B A", dout, di, r, exact);
            assert_true(near_dd(label, BA, Wr, nw, tol));
            /* each factor matches the construction up to one shared sign per component, and
               that sign follows svd_flip: the largest-|.| entry of each row of A is positive */
            for (int j = 0; j < r; ++j) {
                double da = 0.0, db = 0.0, amax = 0.0, aval = 0.0;
                for (int i = 0; i < di; ++i) {
                    double a = (double)A[IX(j, di, i)];
                    da += a * P.Q2[IX(i, P.k, j)];
                    if (fabs(a) > amax) { amax = fabs(a); aval = a; }
                }
                for (int o = 0; o < dout; ++o)
                    db += (double)B[IX(o, r, j)] * P.Q1[IX(o, P.k, j)];
                assert_true(fabs(fabs(da) - P.sig[j]) <= tol * P.sig[0]);
                assert_true(fabs(fabs(db) - 1.0) <= tol * P.sig[0] / P.sig[j]);
                assert_true(da * db > 0.0);
                if (!(aval > 0.0))
                    printf("  %s: row %d of A has largest entry %g (svd_flip wants > 0)\n", label,
                           j, aval);
                assert_true(aval > 0.0);
            }
            free(BtB); free(Id); free(AAt); free(S2); free(BA); free(Wr);
            free(R); free(A); free(B);
            free_spectrum(&P);
        }
}

/* W0 of rank 2 < r = 4, and W0 = 0: B still has orthonormal columns, B A = W0, no NaN. */
static void test_loraxs_init_rank_deficient(void **state) {
    (void)state;
    enum { DO = 20, DI = 30, RK = 4 };
    for (int rank = 2; rank >= 0; rank -= 2)
        for (int exact = 1; exact >= 0; --exact) {
            float *W0 = tr_alloc(DO * DI), *R = tr_alloc(RK * RK), *A = tr_alloc(RK * DI),
                  *B = tr_alloc(DO * RK);
            tr_seed(60u + (uint64_t)rank);
            for (int k = 0; k < rank; ++k) {
                double u[DO], v[DI];
                for (int i = 0; i < DO; ++i) u[i] = tg_normal();
                for (int j = 0; j < DI; ++j) v[j] = tg_normal();
                for (int i = 0; i < DO; ++i)
                    for (int j = 0; j < DI; ++j) W0[IX(i, DI, j)] += (float)(u[i] * v[j]);
            }
            lort_loraxs_desc d;
            memset(&d, 0, sizeof d);
            d.d_in = DI; d.d_out = DO; d.r = RK; d.svd.exact = exact;
            lib_init(&d, R, A, B, W0, 3u);
            double BtB[RK * RK], Id[RK * RK] = {0};
            double *BA = td_alloc(DO * DI), *Wd = to_double(W0, DO * DI);
            ref_gemm(1, 0, RK, RK, DO, B, RK, B, RK, BtB);
            for (int i = 0; i < RK; ++i) Id[i * RK + i] = 1.0;
            assert_true(cmp_dd("rank-deficient B^T B", BtB, Id, RK * RK, 1e-5, 0.0));
            ref_gemm(0, 0, DO, DI, RK, B, RK, A, DI, BA);
            double atol = 1e-5 * (1.0 + max_abs_d(Wd, DO * DI));
            assert_true(cmp_dd("rank-deficient B A", BA, Wd, DO * DI, atol, 0.0));
            free(W0); free(R); free(A); free(B); free(BA); free(Wd);
        }
}

/* R ~ N(0, std^2): std 1e-5 by default, init_std overrides; deterministic given the seeds. */
static void test_loraxs_init_R(void **state) {
    (void)state;
    tr_seed(2024u);
    spectrum P;
    make_spectrum(&P, 40, 48);
    lort_loraxs_desc d;
    memset(&d, 0, sizeof d);
    d.d_in = 48; d.d_out = 40; d.r = 32;
    size_t na = 32u * 48u, nb = 40u * 32u, nr = 32u * 32u;
    float *R = tr_alloc(nr), *A = tr_alloc(na), *B = tr_alloc(nb);
    float *R2 = tr_alloc(nr), *A2 = tr_alloc(na), *B2 = tr_alloc(nb);
    const float stds[2] = {0.0f, 0.1f};
    for (int k = 0; k < 2; ++k) {
        d.init_std = stds[k];
        lib_init(&d, R, A, B, P.W0, 31u); /* R's distribution: test_conformance.c */
        /* same seeds -> identical factors */
        lib_init(&d, R2, A2, B2, P.W0, 31u);
        assert_memory_equal(R, R2, nr * sizeof(float));
        assert_memory_equal(A, A2, na * sizeof(float));
        assert_memory_equal(B, B2, nb * sizeof(float));
        /* another rng seed -> another R */
        lib_init(&d, R2, A2, B2, P.W0, 32u);
        size_t same = 0;
        for (size_t i = 0; i < nr; ++i)
            if (!memcmp(&R[i], &R2[i], sizeof(float))) ++same;
        assert_true(same < nr / 100);
    }
    /* after the default init the adapter adds almost nothing: per row,
       |dy_i| <= s |x_i| sigma_1 |R|_F (float slack 1%) */
    d.init_std = 0.0f;
    lib_init(&d, R, A, B, P.W0, 31u);
    int n = 4;
    size_t nx = zu(n) * 48u, ny = zu(n) * 40u, ws = 0;
    float *x = tr_rand(nx), *y = tr_alloc(ny);
    OK(lort_loraxs_workspace_size(&d, n, &ws));
    void *work = tr_buf(ws);
    OK(lort_loraxs_forward(&d, y, x, R, A, B, n, NULL, 0, work, ws));
    double rf = 0.0;
    for (size_t i = 0; i < nr; ++i) rf += (double)R[i] * (double)R[i];
    rf = sqrt(rf);
    for (int i = 0; i < n; ++i) {
        double xn = 0.0, yn = 0.0;
        for (int j = 0; j < 48; ++j) xn += (double)x[IX(i, 48, j)] * (double)x[IX(i, 48, j)];
        for (int o = 0; o < 40; ++o) yn += (double)y[IX(i, 40, o)] * (double)y[IX(i, 40, o)];
        assert_true(sqrt(yn) <= 1.01 * sqrt(xn) * P.sig[0] * rf);
        assert_true(sqrt(yn) > 0.0);
    }
    free(x); free(y); free(work);
    free(R); free(A); free(B); free(R2); free(A2); free(B2);
    free_spectrum(&P);
}

static void test_loraxs_counts_resolve(void **state) {
    (void)state;
    static const int shapes[][3] = {{5, 4, 2}, {7, 13, 1}, {65, 33, 33}, {1024, 1024, 25}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; ++i) {
        lort_loraxs_desc d, out;
        memset(&d, 0, sizeof d);
        d.d_in = shapes[i][0]; d.d_out = shapes[i][1]; d.r = shapes[i][2];
        size_t count = 0;
        OK(lort_loraxs_param_count(&d, &count));
        assert_int_equal(count, zu(d.r) * zu(d.r));
        OK(lort_loraxs_frozen_count(&d, &count));
        assert_int_equal(count, zu(d.r) * (zu(d.d_in) + zu(d.d_out)));
        memset(&out, 0x5a, sizeof out);
        OK(lort_loraxs_desc_resolve(&d, &out));
        assert_int_equal(out.d_in, d.d_in);
        assert_int_equal(out.d_out, d.d_out);
        assert_int_equal(out.r, d.r);
        assert_true(fabs((double)out.alpha - (double)d.r) <= 0.0);
        assert_true(fabs((double)out.init_std - 1e-5) <= 1e-12);
        assert_int_equal(out.rslora, 0);
        assert_true(is_zero_f(out.dropout));
        float s = 0.0f;
        OK(lort_loraxs_scale(&d, &s));
        assert_true(fabs((double)s - 1.0) <= 1e-7);
        d.alpha = 16.0f; d.rslora = 1; d.init_std = 0.5f; d.dropout = 0.1f;
        OK(lort_loraxs_desc_resolve(&d, &out));
        assert_true(fabs((double)out.alpha - 16.0) <= 0.0);
        assert_true(fabs((double)out.init_std - 0.5) <= 0.0);
        assert_true(fabs((double)out.dropout - (double)0.1f) <= 0.0);
        assert_int_equal(out.rslora, 1);
        OK(lort_loraxs_scale(&d, &s));
        assert_true(fabs((double)s - 16.0 / sqrt((double)d.r)) <= 1e-6 * (double)s);
        d.rslora = 0;
        OK(lort_loraxs_scale(&d, &s));
        assert_true(fabs((double)s - 16.0 / (double)d.r) <= 1e-6 * (double)s);
    }
    /* the GLUE / RoBERTa-large count of the MATH section of lortensor.h: 96 modules, r = 16 -> 24,576 */
    {
        lort_loraxs_desc d;
        memset(&d, 0, sizeof d);
        d.d_in = 1024; d.d_out = 1024; d.r = 16;
        size_t c = 0;
        OK(lort_loraxs_param_count(&d, &c));
        assert_int_equal(96u * c, 24576u);
        /* r > min(d_in, d_out) is refused */
        d.d_in = 8; d.d_out = 6; d.r = 7;
        assert_true((int)lort_loraxs_param_count(&d, &c) < 0);
    }
}

/* Port of the LoRA-XS case of the reference gradient check: din=5, dout=4, r=2, s=1.7, n=3, Gaussian
   data, no dropout, base included: L = sum((x W0^T + s x A^T R^T B^T) .* G); fd over R and X
   of the reference of tests/lort_ref.h. Metric of the script: |fd - g| / max(1, |fd|) <= 1e-5
   (float kernel vs double fd). */
static void test_loraxs_check_grads_port(void **state) {
    (void)state;
    enum { n = 3, di = 5, dout = 4, r = 2 };
    lort_adapter a;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_LORAXS;
    a.desc.loraxs.d_in = di; a.desc.loraxs.d_out = dout; a.desc.loraxs.r = r;
    a.desc.loraxs.alpha = 3.4f;
    ref_shape S;
    ref_shape_of(&a, &S);
    assert_true(fabs(S.s - 1.7) < 1e-6);
    float x[n * di], W0[dout * di], AB[r * di + dout * r], G[n * dout], R[r * r];
    tr_seed(0);
    for (size_t i = 0; i < 15u; ++i) x[i] = (float)tg_normal();
    for (size_t i = 0; i < 20u; ++i) W0[i] = (float)tg_normal();
    for (size_t i = 0; i < 18u; ++i) AB[i] = (float)tg_normal(); /* A (2, 5) then B (4, 2) */
    for (size_t i = 0; i < 12u; ++i) G[i] = (float)tg_normal();
    for (size_t i = 0; i < 4u; ++i) R[i] = (float)tg_normal();
    a.frozen = AB;
    double xd[15], Rd[4], Gd[12], W0d[20], yr[12];
    for (size_t i = 0; i < 15u; ++i) xd[i] = (double)x[i];
    for (size_t i = 0; i < 4u; ++i) Rd[i] = (double)R[i];
    for (size_t i = 0; i < 12u; ++i) Gd[i] = (double)G[i];
    for (size_t i = 0; i < 20u; ++i) W0d[i] = (double)W0[i];
    float dx[15], dR[4] = {0};
    for (size_t i = 0; i < 3u; ++i) /* dx starts at the base gradient G W0 */
        for (size_t j = 0; j < 5u; ++j) {
            double acc = 0.0;
            for (size_t o = 0; o < 4u; ++o) acc += Gd[i * 4u + o] * W0d[o * 5u + j];
            dx[i * 5u + j] = (float)acc;
        }
    size_t ws = 0;
    OK(lort_loraxs_workspace_size(&a.desc.loraxs, n, &ws));
    void *work = tr_buf(ws);
    OK(lort_loraxs_backward(&a.desc.loraxs, dx, dR, G, x, R, AB, AB + r * di, n, NULL, 0, work, ws));
    double *params[2] = {Rd, xd};
    const float *grads[2] = {dR, dx};
    size_t counts[2] = {4u, 15u};
    const double eps = 1e-6;
    double worst = 0.0;
    for (int pi = 0; pi < 2; ++pi)
        for (size_t i = 0; i < counts[pi]; ++i) {
            double old = params[pi][i], l[2];
            for (int sgn = 0; sgn < 2; ++sgn) {
                params[pi][i] = old + (sgn ? -eps : eps);
                ref_adapter_forward(&a, &S, Rd, xd, 0, n, yr);
                l[sgn] = 0.0;
                for (size_t b = 0; b < 3u; ++b)
                    for (size_t o = 0; o < 4u; ++o) {
                        double acc = yr[b * 4u + o];
                        for (size_t j = 0; j < 5u; ++j) acc += xd[b * 5u + j] * W0d[o * 5u + j];
                        l[sgn] += acc * Gd[b * 4u + o];
                    }
            }
            params[pi][i] = old;
            double num = (l[0] - l[1]) / (2.0 * eps);
            worst = fmax(worst, fabs(num - (double)grads[pi][i]) / fmax(1.0, fabs(num)));
        }
    printf("  check_grads LoRA-XS port: max rel err %.2e\n", worst);
    assert_true(worst < 1e-5);
    free(work);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loraxs_counts_resolve),
        cmocka_unit_test(test_loraxs_init_svd),
        cmocka_unit_test(test_loraxs_init_rank_deficient),
        cmocka_unit_test(test_loraxs_init_R),
        cmocka_unit_test(test_loraxs_check_grads_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
