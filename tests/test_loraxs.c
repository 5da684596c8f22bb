/* LoRA-XS (family loraxs) against independent double-precision references.

   Init is checked on weights W0 = Q1 diag(sigma) Q2^T with a known spectrum: Q1, Q2 have
   orthonormal columns from our own double Gram-Schmidt, sigma_j = 4 * 0.85^j (distinct, gap
   15%). The best rank-r approximation is then U_r S_r V_r^T = Q1_r diag(sigma_r) Q2_r^T exactly.

   Tolerances ("norm tol t": |got - want| <= t * (max|want| + |want|) per element):
     forward y vs double reference                           norm 2e-5
     backward dx, dR vs central differences in double        norm 1e-4
     backward vs the dense chain rule in double              norm 2e-5
     finite differences vs chain rule (both double)          norm 1e-7
     merge / delta vs s B R A in double                      norm 1e-5
     unmerge vs W0                                           4 ulp of max(|W0| + |dW|)
     init, exact SVD:      B^T B vs I (abs 1e-5), A A^T vs diag(sigma^2) norm 2e-5,
                           B A vs the rank-r approximation norm 2e-5
     init, randomized SVD: the same with 1e-4 (only shapes with r + oversample < min(d_in,
                           d_out) run it; the others fall back to the exact SVD)
     init, rank-deficient W0: B^T B vs I abs 1e-5, B A vs W0 abs 1e-5 (1 + max|W0|)
*/
#include "lort_test.h"


/* Q (rows, k), k <= rows: orthonormal columns by modified Gram-Schmidt, applied twice. */
static void orthonormal(int rows, int k, double *Q) {
    for (size_t i = 0; i < zu(rows) * zu(k); ++i) Q[i] = tg_normal();
    for (int pass = 0; pass < 2; ++pass)
        for (int j = 0; j < k; ++j) {
            for (int p = 0; p < j; ++p) {
                double dot = 0.0;
                for (int i = 0; i < rows; ++i) dot += Q[IX(i, k, p)] * Q[IX(i, k, j)];
                for (int i = 0; i < rows; ++i) Q[IX(i, k, j)] -= dot * Q[IX(i, k, p)];
            }
            double nrm = 0.0;
            for (int i = 0; i < rows; ++i) nrm += Q[IX(i, k, j)] * Q[IX(i, k, j)];
            nrm = sqrt(nrm);
            for (int i = 0; i < rows; ++i) Q[IX(i, k, j)] /= nrm;
        }
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
        double want = k == 0 ? 1e-5 : 0.1;
        lib_init(&d, R, A, B, P.W0, 31u);
        double sum = 0.0, sq = 0.0, N = (double)nr;
        size_t tails = 0;
        for (size_t i = 0; i < nr; ++i) {
            double v = (double)R[i];
            sum += v; sq += v * v;
            if (fabs(v) > 2.5 * want) ++tails;
        }
        double mean = sum / N, msq = sq / N;
        printf("  R init: mean %.3g std %.4g (want %.4g), %zu beyond 2.5 sd\n", mean, sqrt(msq),
               want, tails);
        /* 5-sigma bounds: mean sd/sqrt(N); E[v^2] = sd^2 with sd sqrt(2/N) sd^2 */
        assert_true(fabs(mean) < 5.0 * want / sqrt(N));
        assert_true(fabs(msq - want * want) < 5.0 * sqrt(2.0 / N) * want * want);
        /* Gaussian tails: expected 1024 * 0.0124 = 12.7 beyond 2.5 sd (a uniform has none) */
        assert_true(tails >= 2 && tails < 40);
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

/* ---- forward / backward ---------------------------------------------------------------- */
typedef struct {
    int n, d_in, d_out, r;
    float alpha;
    int rslora;
    float p;
    int fd;
} xcase;
static const xcase CASES[] = {
    {3, 5, 4, 2, 3.4f, 0, 0.0f, 1},     /* the reference gradient check LoRA-XS shapes, s = 1.7 */
    {1, 7, 13, 1, 0.0f, 0, 0.3f, 1},    /* n = 1, r = 1 */
    {5, 13, 7, 7, 16.0f, 0, 0.3f, 1},   /* r = min(d_in, d_out) */
    {4, 65, 33, 33, 0.0f, 1, 0.3f, 1},  /* r = min, rslora */
    {9, 33, 17, 4, 8.0f, 1, 0.0f, 1},
    {6, 16, 16, 16, 32.0f, 0, 0.3f, 1}, /* square, r = d */
    {17, 20, 65, 3, 0.5f, 0, 0.3f, 1},  /* d_out > d_in */
    {70, 65, 33, 8, 12.0f, 0, 0.3f, 0}, /* larger n: chain rule only */
};
#define NCASES (sizeof(CASES) / sizeof(CASES[0]))

typedef struct {
    int n, d_in, d_out, r;
    lort_loraxs_desc desc;
    double s;
    float *x, *R, *A, *B, *y0, *G;
    double *xd, *Rd, *Ad, *Bd, *Gd, *M, *H1, *H2;
} xsetup;

static void setup_case(xsetup *S, const xcase *c, uint64_t seed) {
    memset(S, 0, sizeof *S);
    S->n = c->n; S->d_in = c->d_in; S->d_out = c->d_out; S->r = c->r;
    S->desc.d_in = c->d_in; S->desc.d_out = c->d_out; S->desc.r = c->r;
    S->desc.alpha = c->alpha; S->desc.rslora = c->rslora; S->desc.dropout = c->p;
    S->desc.dropout_seed = 0xABCDull + seed * 104729ull;
    S->s = ref_scale(c->r, c->alpha, c->rslora);
    tr_seed(seed + 3u);
    size_t nx = zu(c->n) * zu(c->d_in), na = zu(c->r) * zu(c->d_in), nb = zu(c->d_out) * zu(c->r),
           nr = zu(c->r) * zu(c->r), ny = zu(c->n) * zu(c->d_out);
    S->x = tr_rand(nx); S->R = tr_rand(nr); S->A = tr_rand(na); S->B = tr_rand(nb);
    S->y0 = tr_rand(ny); S->G = tr_rand(ny);
    S->xd = to_double(S->x, nx); S->Rd = to_double(S->R, nr); S->Ad = to_double(S->A, na);
    S->Bd = to_double(S->B, nb); S->Gd = to_double(S->G, ny);
    S->M = td_alloc(nx);
    S->H1 = td_alloc(zu(c->n) * zu(c->r));
    S->H2 = td_alloc(zu(c->n) * zu(c->r));
    for (int i = 0; i < c->n; ++i)
        for (int k = 0; k < c->d_in; ++k)
            S->M[IX(i, c->d_in, k)] =
                c->p > 0.0f ? (double)lort_dropout_factor(S->desc.dropout_seed, c->p,
                                                          (uint64_t)i, (uint64_t)k)
                            : 1.0;
}
static void teardown_case(xsetup *S) {
    free(S->x); free(S->R); free(S->A); free(S->B); free(S->y0); free(S->G);
    free(S->xd); free(S->Rd); free(S->Ad); free(S->Bd); free(S->Gd); free(S->M);
    free(S->H1); free(S->H2);
}

/* Z = s (x .* M) A^T R^T B^T in double from S's double arrays; returns sum(Z .* G). */
static double xs_ref(const xsetup *S, double *Z) {
    int n = S->n, di = S->d_in, dout = S->d_out, r = S->r;
    for (int i = 0; i < n; ++i)
        for (int k = 0; k < r; ++k) {
            double acc = 0.0;
            for (int j = 0; j < di; ++j)
                acc += S->xd[IX(i, di, j)] * S->M[IX(i, di, j)] * S->Ad[IX(k, di, j)];
            S->H1[IX(i, r, k)] = acc;
        }
    for (int i = 0; i < n; ++i)
        for (int a = 0; a < r; ++a) {
            double acc = 0.0;
            for (int k = 0; k < r; ++k) acc += S->H1[IX(i, r, k)] * S->Rd[IX(a, r, k)];
            S->H2[IX(i, r, a)] = acc;
        }
    double L = 0.0;
    for (int i = 0; i < n; ++i)
        for (int o = 0; o < dout; ++o) {
            double acc = 0.0;
            for (int a = 0; a < r; ++a) acc += S->H2[IX(i, r, a)] * S->Bd[IX(o, r, a)];
            acc *= S->s;
            if (Z) Z[IX(i, dout, o)] = acc;
            L += acc * S->Gd[IX(i, dout, o)];
        }
    return L;
}
/* dW = s B (R A) (d_out, d_in) in double. */
static void xs_dense(const xsetup *S, double *D) {
    int di = S->d_in, dout = S->d_out, r = S->r;
    double *RA = td_alloc(zu(r) * zu(di));
    for (int a = 0; a < r; ++a)
        for (int j = 0; j < di; ++j) {
            double acc = 0.0;
            for (int k = 0; k < r; ++k) acc += S->Rd[IX(a, r, k)] * S->Ad[IX(k, di, j)];
            RA[IX(a, di, j)] = acc;
        }
    for (int o = 0; o < dout; ++o)
        for (int j = 0; j < di; ++j) {
            double acc = 0.0;
            for (int a = 0; a < r; ++a) acc += S->Bd[IX(o, r, a)] * RA[IX(a, di, j)];
            D[IX(o, di, j)] = S->s * acc;
        }
    free(RA);
}
static void fd_grad(const xsetup *S, double *p, size_t count, double *out) {
    const double eps = 1e-5;
    for (size_t i = 0; i < count; ++i) {
        double old = p[i];
        p[i] = old + eps;
        double lp = xs_ref(S, NULL);
        p[i] = old - eps;
        double lm = xs_ref(S, NULL);
        p[i] = old;
        out[i] = (lp - lm) / (2.0 * eps);
    }
}
/* Chain rule (the MATH section of lortensor.h): dH2 = s G B, dR = dH2^T H1, dx = (dH2 R A) .* M */
static void xs_chain(const xsetup *S, double *dx, double *dR) {
    int n = S->n, di = S->d_in, dout = S->d_out, r = S->r;
    (void)xs_ref(S, NULL);
    double *dH2 = td_alloc(zu(n) * zu(r)), *dH1 = td_alloc(zu(n) * zu(r));
    for (int i = 0; i < n; ++i)
        for (int a = 0; a < r; ++a) {
            double acc = 0.0;
            for (int o = 0; o < dout; ++o) acc += S->Gd[IX(i, dout, o)] * S->Bd[IX(o, r, a)];
            dH2[IX(i, r, a)] = S->s * acc;
        }
    for (int a = 0; a < r; ++a)
        for (int k = 0; k < r; ++k) {
            double acc = 0.0;
            for (int i = 0; i < n; ++i) acc += dH2[IX(i, r, a)] * S->H1[IX(i, r, k)];
            dR[IX(a, r, k)] = acc;
        }
    for (int i = 0; i < n; ++i)
        for (int k = 0; k < r; ++k) {
            double acc = 0.0;
            for (int a = 0; a < r; ++a) acc += dH2[IX(i, r, a)] * S->Rd[IX(a, r, k)];
            dH1[IX(i, r, k)] = acc;
        }
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < di; ++j) {
            double acc = 0.0;
            for (int k = 0; k < r; ++k) acc += dH1[IX(i, r, k)] * S->Ad[IX(k, di, j)];
            dx[IX(i, di, j)] = acc * S->M[IX(i, di, j)];
        }
    free(dH2); free(dH1);
}

static void *make_cache(const xsetup *S, size_t *cs) {
    OK(lort_loraxs_cache_size(&S->desc, S->n, cs));
    return tr_buf(*cs);
}
static void lib_forward(const xsetup *S, float *y, void *cache, size_t cs) {
    size_t ws = 0;
    OK(lort_loraxs_workspace_size(&S->desc, S->n, &ws));
    void *work = tr_buf(ws);
    OK(lort_loraxs_forward(&S->desc, y, S->x, S->R, S->A, S->B, S->n, cache, cs, work, ws));
    free(work);
}
static void lib_backward(const xsetup *S, float *dx, float *dR, const void *cache, size_t cs) {
    size_t ws = 0;
    OK(lort_loraxs_workspace_size(&S->desc, S->n, &ws));
    void *work = tr_buf(ws);
    OK(lort_loraxs_backward(&S->desc, dx, dR, S->G, S->x, S->R, S->A, S->B, S->n, cache, cs,
                            work, ws));
    free(work);
}

static void test_loraxs_forward(void **state) {
    (void)state;
    for (size_t ci = 0; ci < NCASES; ++ci) {
        xsetup S;
        setup_case(&S, &CASES[ci], ci);
        char label[96];
        size_t ny = zu(S.n) * zu(S.d_out);
        float s_lib = 0.0f;
        OK(lort_loraxs_scale(&S.desc, &s_lib));
        assert_true(fabs((double)s_lib - S.s) <= 1e-6 * S.s);
        if (CASES[ci].p > 0.0f) { /* the mask drops something, so the test can fail */
            size_t zeros = 0, nx = zu(S.n) * zu(S.d_in);
            for (size_t i = 0; i < nx; ++i)
                if (S.M[i] < 0.5) ++zeros;
            assert_true(zeros > 0 && zeros < nx);
        }
        double *want = td_alloc(ny), *D = td_alloc(zu(S.d_out) * zu(S.d_in)), *Z = td_alloc(ny);
        xs_dense(&S, D);
        ref_dense_adapter(S.n, S.d_in, S.d_out, S.xd, S.M, S.y0, D, want);
        /* the factored reference (used by the finite differences) agrees with the dense one */
        (void)xs_ref(&S, Z);
        for (size_t i = 0; i < ny; ++i) Z[i] += (double)S.y0[i];
        assert_true(near_dd("factored vs dense reference", Z, want, ny, 1e-12));
        free(D); free(Z);
        size_t cs = 0;
        void *cache = make_cache(&S, &cs);
        float *y = tr_alloc(ny), *y2 = tr_alloc(ny);
        memcpy(y, S.y0, ny * sizeof(float));
        memcpy(y2, S.y0, ny * sizeof(float));
        lib_forward(&S, y, cache, cs);
        snprintf(label, sizeof label, "case %zu forward", ci);
        assert_true(near_fd(label, y, want, ny, 2e-5));
        lib_forward(&S, y2, NULL, 0);
        snprintf(label, sizeof label, "case %zu forward cache=NULL", ci);
        assert_true(near_fd(label, y2, want, ny, 2e-5));
        free(want); free(cache); free(y); free(y2);
        teardown_case(&S);
    }
}

static void test_loraxs_backward(void **state) {
    (void)state;
    for (size_t ci = 0; ci < NCASES; ++ci) {
        xsetup S;
        setup_case(&S, &CASES[ci], 50u + ci);
        char label[96];
        size_t nx = zu(S.n) * zu(S.d_in), nr = zu(S.r) * zu(S.r), ny = zu(S.n) * zu(S.d_out);
        size_t cs = 0;
        void *cache = make_cache(&S, &cs);
        float *y = tr_alloc(ny), *dx = tr_alloc(nx), *dR = tr_alloc(nr);
        lib_forward(&S, y, cache, cs);
        lib_backward(&S, dx, dR, cache, cs);
        double *cx = td_alloc(nx), *cR = td_alloc(nr);
        xs_chain(&S, cx, cR);
        snprintf(label, sizeof label, "case %zu dx vs chain", ci);
        assert_true(near_fd(label, dx, cx, nx, 2e-5));
        snprintf(label, sizeof label, "case %zu dR vs chain", ci);
        assert_true(near_fd(label, dR, cR, nr, 2e-5));
        if (CASES[ci].fd) {
            double *fx = td_alloc(nx), *fR = td_alloc(nr);
            fd_grad(&S, S.xd, nx, fx);
            fd_grad(&S, S.Rd, nr, fR);
            snprintf(label, sizeof label, "case %zu dx vs fd", ci);
            assert_true(near_fd(label, dx, fx, nx, 1e-4));
            snprintf(label, sizeof label, "case %zu dR vs fd", ci);
            assert_true(near_fd(label, dR, fR, nr, 1e-4));
            assert_true(near_dd("fd vs chain dx", fx, cx, nx, 1e-7));
            assert_true(near_dd("fd vs chain dR", fR, cR, nr, 1e-7));
            free(fx); free(fR);
        }
        /* += onto known values, cache = NULL recomputes, NULL dx / NULL dR skip */
        float *px = tr_rand(nx), *pR = tr_rand(nr), *ex = tr_alloc(nx), *eR = tr_alloc(nr);
        double *w = td_alloc(nx + nr);
        for (size_t i = 0; i < nx; ++i) w[i] = (double)px[i] + cx[i];
        for (size_t i = 0; i < nr; ++i) w[nx + i] = (double)pR[i] + cR[i];
        memcpy(ex, px, nx * sizeof(float)); memcpy(eR, pR, nr * sizeof(float));
        lib_backward(&S, ex, eR, cache, cs);
        snprintf(label, sizeof label, "case %zu dx +=", ci);
        assert_true(near_fd(label, ex, w, nx, 2e-5));
        snprintf(label, sizeof label, "case %zu dR +=", ci);
        assert_true(near_fd(label, eR, w + nx, nr, 2e-5));
        memcpy(ex, px, nx * sizeof(float)); memcpy(eR, pR, nr * sizeof(float));
        lib_backward(&S, ex, eR, NULL, 0);
        snprintf(label, sizeof label, "case %zu cache=NULL", ci);
        assert_true(near_fd(label, ex, w, nx, 2e-5));
        assert_true(near_fd(label, eR, w + nx, nr, 2e-5));
        for (int use_cache = 1; use_cache >= 0; --use_cache) {
            float *gx = tr_alloc(nx), *gR = tr_alloc(nr);
            lib_backward(&S, NULL, gR, use_cache ? cache : NULL, use_cache ? cs : 0);
            snprintf(label, sizeof label, "case %zu dx=NULL cache %d", ci, use_cache);
            assert_true(near_fd(label, gR, cR, nr, 2e-5));
            lib_backward(&S, gx, NULL, use_cache ? cache : NULL, use_cache ? cs : 0);
            snprintf(label, sizeof label, "case %zu dR=NULL cache %d", ci, use_cache);
            assert_true(near_fd(label, gx, cx, nx, 2e-5));
            assert_true(near_fd(label, gR, cR, nr, 2e-5)); /* dR untouched by the second call */
            free(gx); free(gR);
        }
        free(px); free(pR); free(ex); free(eR); free(w);
        free(cx); free(cR); free(y); free(dx); free(dR); free(cache);
        teardown_case(&S);
    }
}

static void test_loraxs_merge(void **state) {
    (void)state;
    for (size_t ci = 0; ci < NCASES; ++ci) {
        xsetup S;
        xcase c = CASES[ci];
        c.p = 0.0f;
        setup_case(&S, &c, 80u + ci);
        char label[96];
        int di = S.d_in, dout = S.d_out, n = S.n;
        size_t nw = zu(dout) * zu(di), ny = zu(n) * zu(dout), ws = 0;
        OK(lort_loraxs_workspace_size(&S.desc, 1, &ws)); /* one size serves merge and delta */
        void *work = tr_buf(ws);
        float *W0 = tr_rand(nw), *W = tr_alloc(nw), *dW = tr_alloc(nw);
        double *D = td_alloc(nw), *want = td_alloc(nw);
        xs_dense(&S, D);
        double dmax = max_abs_d(D, nw);
        memset(dW, 0xff, nw * sizeof(float));
        OK(lort_loraxs_delta(&S.desc, dW, S.R, S.A, S.B, work, ws));
        snprintf(label, sizeof label, "case %zu delta", ci);
        assert_true(near_fd(label, dW, D, nw, 1e-5));
        memcpy(W, W0, nw * sizeof(float));
        OK(lort_loraxs_merge(&S.desc, W, S.R, S.A, S.B, 1.0f, work, ws));
        for (size_t i = 0; i < nw; ++i) want[i] = (double)W0[i] + D[i];
        snprintf(label, sizeof label, "case %zu merge", ci);
        assert_true(near_fd(label, W, want, nw, 1e-5));
        double *Wd = to_double(W, nw), *W0d = to_double(W0, nw);
        double *ym = td_alloc(ny), *yb = td_alloc(ny);
        ref_linear(n, di, dout, S.x, Wd, ym);
        ref_linear(n, di, dout, S.x, W0d, yb);
        float *y = tr_alloc(ny);
        for (size_t i = 0; i < ny; ++i) y[i] = (float)yb[i];
        lib_forward(&S, y, NULL, 0);
        snprintf(label, sizeof label, "case %zu merged == unmerged", ci);
        assert_true(near_fd(label, y, ym, ny, 2e-5));
        OK(lort_loraxs_merge(&S.desc, W, S.R, S.A, S.B, -1.0f, work, ws));
        double wmax = 0.0;
        for (size_t i = 0; i < nw; ++i) wmax = fmax(wmax, fabs((double)W0[i]) + dmax);
        snprintf(label, sizeof label, "case %zu unmerge", ci);
        assert_true(cmp_ff(label, W, W0, nw, 4.0 * 1.2e-7 * wmax, 0.0));
        memcpy(W, W0, nw * sizeof(float));
        OK(lort_loraxs_merge(&S.desc, W, S.R, S.A, S.B, 0.5f, work, ws));
        for (size_t i = 0; i < nw; ++i) want[i] = (double)W0[i] + 0.5 * D[i];
        snprintf(label, sizeof label, "case %zu merge 0.5", ci);
        assert_true(near_fd(label, W, want, nw, 1e-5));
        free(work); free(W0); free(W); free(dW); free(D); free(want); free(Wd);
        free(W0d); free(ym); free(yb); free(y);
        teardown_case(&S);
    }
}

/* Factors from init (known spectrum) through forward, backward and merge, with dropout. */
static void test_loraxs_from_init(void **state) {
    (void)state;
    xcase c = {6, 21, 11, 5, 10.0f, 0, 0.3f, 1};
    xsetup S;
    setup_case(&S, &c, 900u);
    spectrum P;
    make_spectrum(&P, 11, 21);
    S.desc.init_std = 0.05f; /* a visible R */
    lib_init(&S.desc, S.R, S.A, S.B, P.W0, 4u);
    for (size_t i = 0; i < 25u; ++i) S.Rd[i] = (double)S.R[i];
    for (size_t i = 0; i < 5u * 21u; ++i) S.Ad[i] = (double)S.A[i];
    for (size_t i = 0; i < 11u * 5u; ++i) S.Bd[i] = (double)S.B[i];
    size_t nx = 6u * 21u, ny = 6u * 11u, cs = 0;
    void *cache = make_cache(&S, &cs);
    float *y = tr_alloc(ny), *dx = tr_alloc(nx), *dR = tr_alloc(25u);
    double *want = td_alloc(ny), *fx = td_alloc(nx), *fR = td_alloc(25u);
    memcpy(y, S.y0, ny * sizeof(float));
    lib_forward(&S, y, cache, cs);
    (void)xs_ref(&S, want);
    for (size_t i = 0; i < ny; ++i) want[i] += (double)S.y0[i];
    assert_true(near_fd("from-init forward", y, want, ny, 2e-5));
    lib_backward(&S, dx, dR, cache, cs);
    fd_grad(&S, S.xd, nx, fx);
    fd_grad(&S, S.Rd, 25u, fR);
    assert_true(near_fd("from-init dx vs fd", dx, fx, nx, 1e-4));
    assert_true(near_fd("from-init dR vs fd", dR, fR, 25u, 1e-4));
    free(cache); free(y); free(dx); free(dR); free(want); free(fx); free(fR);
    free_spectrum(&P);
    teardown_case(&S);
}

/* Port of the LoRA-XS case of the reference gradient check: din=5, dout=4, r=2, s=1.7, n=3, Gaussian
   data, no dropout, base included: L = sum((x W0^T + s x A^T R^T B^T) .* G); fd over R and X.
   Metric of the script: |fd - g| / max(1, |fd|) <= 1e-5 (float kernel vs double fd). */
static void test_loraxs_check_grads_port(void **state) {
    (void)state;
    xsetup S;
    xcase c = {3, 5, 4, 2, 3.4f, 0, 0.0f, 1};
    setup_case(&S, &c, 7u);
    assert_true(fabs(S.s - 1.7) < 1e-6);
    tr_seed(0);
    float W0[20];
    for (size_t i = 0; i < 15u; ++i) S.x[i] = (float)tg_normal();
    for (size_t i = 0; i < 20u; ++i) W0[i] = (float)tg_normal();
    for (size_t i = 0; i < 10u; ++i) S.A[i] = (float)tg_normal();
    for (size_t i = 0; i < 8u; ++i) S.B[i] = (float)tg_normal();
    for (size_t i = 0; i < 12u; ++i) S.G[i] = (float)tg_normal();
    for (size_t i = 0; i < 4u; ++i) S.R[i] = (float)tg_normal();
    for (size_t i = 0; i < 15u; ++i) S.xd[i] = (double)S.x[i];
    for (size_t i = 0; i < 10u; ++i) S.Ad[i] = (double)S.A[i];
    for (size_t i = 0; i < 8u; ++i) S.Bd[i] = (double)S.B[i];
    for (size_t i = 0; i < 12u; ++i) S.Gd[i] = (double)S.G[i];
    for (size_t i = 0; i < 4u; ++i) S.Rd[i] = (double)S.R[i];
    double W0d[20];
    for (size_t i = 0; i < 20u; ++i) W0d[i] = (double)W0[i];
    float dx[15], dR[4] = {0};
    for (size_t i = 0; i < 3u; ++i) /* dx starts at the base gradient G W0 */
        for (size_t j = 0; j < 5u; ++j) {
            double acc = 0.0;
            for (size_t o = 0; o < 4u; ++o) acc += S.Gd[i * 4u + o] * W0d[o * 5u + j];
            dx[i * 5u + j] = (float)acc;
        }
    lib_backward(&S, dx, dR, NULL, 0);
    double *params[2] = {S.Rd, S.xd};
    const float *grads[2] = {dR, dx};
    size_t counts[2] = {4u, 15u};
    const double eps = 1e-6;
    double worst = 0.0;
    for (int pi = 0; pi < 2; ++pi)
        for (size_t i = 0; i < counts[pi]; ++i) {
            double old = params[pi][i], l[2];
            for (int sgn = 0; sgn < 2; ++sgn) {
                params[pi][i] = old + (sgn ? -eps : eps);
                double base = 0.0;
                for (size_t a = 0; a < 3u; ++a)
                    for (size_t o = 0; o < 4u; ++o) {
                        double acc = 0.0;
                        for (size_t j = 0; j < 5u; ++j) acc += S.xd[a * 5u + j] * W0d[o * 5u + j];
                        base += acc * S.Gd[a * 4u + o];
                    }
                l[sgn] = base + xs_ref(&S, NULL);
            }
            params[pi][i] = old;
            double num = (l[0] - l[1]) / (2.0 * eps);
            worst = fmax(worst, fabs(num - (double)grads[pi][i]) / fmax(1.0, fabs(num)));
        }
    printf("  check_grads LoRA-XS port: max rel err %.2e\n", worst);
    assert_true(worst < 1e-5);
    teardown_case(&S);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loraxs_counts_resolve),
        cmocka_unit_test(test_loraxs_init_svd),
        cmocka_unit_test(test_loraxs_init_rank_deficient),
        cmocka_unit_test(test_loraxs_init_R),
        cmocka_unit_test(test_loraxs_forward),
        cmocka_unit_test(test_loraxs_backward),
        cmocka_unit_test(test_loraxs_merge),
        cmocka_unit_test(test_loraxs_from_init),
        cmocka_unit_test(test_loraxs_check_grads_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
