/* The tt families at few rows: the factored path (x contracted with one core at a time, W_tt
   never formed) and the dense path (W_tt materialised, then GEMMs) on both sides of the row
   threshold the plan picks by MAC count, for tt, tt_rep and tt_adp, against independent double
   references.

   References (written here, sharing nothing with lortensor.h but lort_dropout_factor, the
   documented dropout mask):
     - W_tt (rows, cols) in double straight from the definition: the row-major multi-index of
       each entry in the modes, and the product of the core slices G_k[:, i_k, :];
     - forward and dx by dense double algebra on W_tt;
     - core gradients as <dL/dW, dW/dG_k[e]> with dW/dG_k[e] = (W(G_k[e] + 1) - W(G_k[e] - 1))/2:
       W_tt is linear in every single core entry, so this difference is exact.
   The threshold itself comes from the private plan (this file defines the implementation), so
   the cases are placed at 1, nf - 1 (factored), nf and nf + 3 (dense). Also: a forward gives
   the same bits with and without a cache, and buffers sized for the larger n serve a smaller
   one (the factored path at fewer rows). Tolerances: 2e-5 (forward), 1e-4 (gradients),
   relative to the largest reference entry. */
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lort_test.h"

/* ---- the double reference of a train ---------------------------------------------------- */
typedef struct {
    int d, rows, cols;
    int m[LORT_TT_MAX_CORES], t[LORT_TT_MAX_CORES + 1];
    size_t off[LORT_TT_MAX_CORES + 1];
} rtrain;

static void rt_make(rtrain *R, const lort_tt_desc *q) {
    memset(R, 0, sizeof *R);
    R->d = q->n_cores;
    R->rows = q->rows;
    R->cols = q->cols;
    for (int k = 0; k <= R->d; ++k)
        R->t[k] = (k == 0 || k == R->d) ? 1 : (q->ranks[k] ? q->ranks[k] : q->rank);
    for (int k = 0; k < R->d; ++k) {
        R->m[k] = q->modes[k];
        R->off[k + 1] = R->off[k] + zu(R->t[k]) * zu(R->m[k]) * zu(R->t[k + 1]);
    }
}
/* W (rows * cols) from the cores c (double) */
static void rt_dense(const rtrain *R, const double *c, double *W) {
    size_t N = zu(R->rows) * zu(R->cols);
    double v[64], w[64];
    for (size_t f = 0; f < N; ++f) {
        size_t rest = f;
        int idx[LORT_TT_MAX_CORES];
        for (int k = R->d - 1; k >= 0; --k) {
            idx[k] = (int)(rest % zu(R->m[k]));
            rest /= zu(R->m[k]);
        }
        v[0] = 1.0;
        for (int k = 0; k < R->d; ++k) {
            int tl = R->t[k], tr = R->t[k + 1];
            const double *G = c + R->off[k];
            for (int b = 0; b < tr; ++b) {
                double acc = 0.0;
                for (int a = 0; a < tl; ++a)
                    acc += v[a] * G[(zu(a) * zu(R->m[k]) + zu(idx[k])) * zu(tr) + zu(b)];
                w[b] = acc;
            }
            memcpy(v, w, zu(tr) * sizeof(double));
        }
        W[f] = v[0];
    }
}
/* dc[e] = <dW, dW/dc[e]> for every core entry (exact: W is linear in each entry) */
static void rt_grad(const rtrain *R, const double *c, const double *dW, double *dc) {
    size_t N = zu(R->rows) * zu(R->cols), P = R->off[R->d];
    double *cc = td_alloc(P), *Wp = td_alloc(N), *Wm = td_alloc(N);
    memcpy(cc, c, P * sizeof(double));
    for (size_t e = 0; e < P; ++e) {
        double old = cc[e], acc = 0.0;
        cc[e] = old + 1.0;
        rt_dense(R, cc, Wp);
        cc[e] = old - 1.0;
        rt_dense(R, cc, Wm);
        cc[e] = old;
        for (size_t f = 0; f < N; ++f) acc += dW[f] * 0.5 * (Wp[f] - Wm[f]);
        dc[e] = acc;
    }
    free(cc); free(Wp); free(Wm);
}
/* C (M, N) = op(A) op(B) in double, row-major, A (M, K) or (K, M) when tA */
static void dmul(int tA, int tB, int M, int N, int K, const double *A, const double *B,
                 double *C) {
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
            double acc = 0.0;
            for (int k = 0; k < K; ++k)
                acc += (tA ? A[IX(k, M, i)] : A[IX(i, K, k)]) * (tB ? B[IX(j, K, k)] : B[IX(k, N, j)]);
            C[IX(i, N, j)] = acc;
        }
}
static int plan_nf(const lort_tt_desc *q) {
    lort__tt_plan p;
    OK(lort__tt_plan_make(q, &p));
    return p.nf;
}
static lort_tt_desc tdesc(int rows, int cols, int d, const int *m, int rank) {
    lort_tt_desc q;
    memset(&q, 0, sizeof q);
    q.rows = rows;
    q.cols = cols;
    q.n_cores = d;
    memcpy(q.modes, m, zu(d) * sizeof(int));
    q.rank = rank;
    return q;
}
/* the row counts to run: both sides of nf when it is finite and small */
static int row_cases(int nf, int *ns) {
    int k = 0;
    ns[k++] = 1;
    if (nf > 2 && nf < 200) ns[k++] = nf - 1;
    if (nf >= 1 && nf < 200) {
        ns[k++] = nf;
        ns[k++] = nf + 3;
    }
    return k;
}

/* ---- tt --------------------------------------------------------------------------------- */
static void tt_case(const char *name, const lort_tt_desc *q, int expect_both) {
    rtrain R;
    int ns[4], nc, nf = plan_nf(q), nmax;
    size_t P, N, ws = 0, cs = 0;
    rt_make(&R, q);
    P = R.off[R.d];
    N = zu(R.rows) * zu(R.cols);
    nc = row_cases(nf, ns);
    printf("  %-36s factored below n = %d\n", name, nf);
    if (expect_both) assert_true(nf >= 2 && nf < 200);
    nmax = ns[nc - 1];
    OK(lort_tt_workspace_size(q, nmax, &ws));
    OK(lort_tt_cache_size(q, nmax, &cs));
    void *work = tr_buf(ws), *cache = tr_buf(cs);
    float *cores = tr_rand(P), *bias = tr_rand(zu(R.cols));
    double *cd = to_double(cores, P), *W = td_alloc(N);
    rt_dense(&R, cd, W);
    for (int ci = 0; ci < nc; ++ci) {
        int n = ns[ci];
        size_t nx = zu(n) * zu(R.rows), ny = zu(n) * zu(R.cols);
        float *x = tr_rand(nx), *y0 = tr_rand(ny), *dy = tr_rand(ny), *dx0 = tr_rand(nx);
        float *y = tr_alloc(ny), *y2 = tr_alloc(ny), *dx = tr_alloc(nx);
        float *dc = tr_alloc(P), *db = tr_alloc(zu(R.cols)), *dx2 = tr_alloc(nx), *dc2 = tr_alloc(P);
        double *xd = to_double(x, nx), *dyd = to_double(dy, ny), *want = td_alloc(ny);
        double *wdx = td_alloc(nx), *dW = td_alloc(N), *wdc = td_alloc(P), *wdb = td_alloc(zu(R.cols));
        char label[96];
        dmul(0, 0, n, R.cols, R.rows, xd, W, want);
        for (size_t i = 0; i < ny; ++i) want[i] += (double)y0[i] + (double)bias[i % zu(R.cols)];
        memcpy(y, y0, ny * sizeof(float));
        memcpy(y2, y0, ny * sizeof(float));
        OK(lort_tt_forward(q, y, x, cores, bias, n, cache, cs, work, ws));
        OK(lort_tt_forward(q, y2, x, cores, bias, n, NULL, 0, work, ws));
        snprintf(label, sizeof label, "%s n %d forward", name, n);
        assert_true(near_fd(label, y, want, ny, 2e-5));
        assert_memory_equal(y, y2, ny * sizeof(float));
        /* backward: dx = dx0 + dy W^T, dcores = pullback of x^T dy, dbias = colsum dy */
        dmul(0, 1, n, R.rows, R.cols, dyd, W, wdx);
        for (size_t i = 0; i < nx; ++i) wdx[i] += (double)dx0[i];
        dmul(1, 0, R.rows, R.cols, n, xd, dyd, dW);
        rt_grad(&R, cd, dW, wdc);
        for (int j = 0; j < R.cols; ++j) {
            wdb[j] = 0.0;
            for (int i = 0; i < n; ++i) wdb[j] += dyd[IX(i, R.cols, j)];
        }
        memcpy(dx, dx0, nx * sizeof(float));
        memset(dc, 0, P * sizeof(float));
        memset(db, 0, zu(R.cols) * sizeof(float));
        OK(lort_tt_backward(q, dx, dc, db, dy, x, cores, n, cache, cs, work, ws));
        snprintf(label, sizeof label, "%s n %d dx", name, n);
        assert_true(near_fd(label, dx, wdx, nx, 1e-4));
        snprintf(label, sizeof label, "%s n %d dcores", name, n);
        assert_true(near_fd(label, dc, wdc, P, 1e-4));
        snprintf(label, sizeof label, "%s n %d dbias", name, n);
        assert_true(near_fd(label, db, wdb, zu(R.cols), 1e-5));
        /* without the cache: the same gradients (recomputed states) */
        memcpy(dx2, dx0, nx * sizeof(float));
        memset(dc2, 0, P * sizeof(float));
        OK(lort_tt_backward(q, dx2, dc2, NULL, dy, x, cores, n, NULL, 0, work, ws));
        snprintf(label, sizeof label, "%s n %d no cache dx", name, n);
        assert_true(near_fd(label, dx2, wdx, nx, 1e-4));
        snprintf(label, sizeof label, "%s n %d no cache dcores", name, n);
        assert_true(near_fd(label, dc2, wdc, P, 1e-4));
        free(x); free(y0); free(dy); free(dx0); free(y); free(y2); free(dx); free(dc); free(db);
        free(dx2); free(dc2); free(xd); free(dyd); free(want); free(wdx); free(dW); free(wdc);
        free(wdb);
    }
    free(work); free(cache); free(cores); free(bias); free(cd); free(W);
}

static void test_tt_small_n(void **state) {
    (void)state;
    static const int m1[] = {2, 3, 4, 5}, m2[] = {8, 4, 2, 4, 4}, m3[] = {6, 4}, m4[] = {4, 4, 8};
    tr_seed(31);
    lort_tt_desc q;
    q = tdesc(12, 10, 4, m1, 3); /* split inside mode 2 (2 x 2) */
    tt_case("split inside mode 2, rank 3", &q, 0);
    q = tdesc(64, 16, 5, m2, 4); /* split at a mode boundary; both sides of nf */
    tt_case("long modes first, rank 4", &q, 1);
    q = tdesc(8, 16, 3, m4, 3); /* split inside mode 1 */
    tt_case("split inside mode 1", &q, 0);
    q = tdesc(8, 3, 2, m3, 2); /* 8 rows do not split (6, 4): dense only */
    assert_true(plan_nf(&q) == 0);
    tt_case("rows that do not split a mode", &q, 0);
}

/* ---- tt_rep ------------------------------------------------------------------------------ */
static void rep_case(const char *name, lort_tt_rep_desc *D) {
    lort_tt_rep_desc r;
    rtrain RA, RB;
    int ns[4], nc, nfa, nfb, nmax;
    size_t PA, PB, ws = 0, cs = 0, np = 0;
    double s;
    OK(lort_tt_rep_desc_resolve(D, &r));
    rt_make(&RA, &r.A);
    rt_make(&RB, &r.B);
    nfa = plan_nf(&r.A);
    nfb = plan_nf(&r.B);
    printf("  %-36s factored below n = %d (A), %d (B)\n", name, nfa, nfb);
    nc = row_cases(nfa > nfb ? nfa : nfb, ns);
    if (nfa < 200 && nfb < 200 && nfa != nfb && nfa > 1 && nfb > 1) /* the mixed case too */
        ns[nc - 1] = (nfa < nfb ? nfa : nfb);
    PA = RA.off[RA.d];
    PB = RB.off[RB.d];
    OK(lort_tt_rep_param_count(D, &np));
    assert_int_equal(np, PA + PB);
    s = (double)r.alpha / (double)r.r;
    nmax = 0;
    for (int i = 0; i < nc; ++i) nmax = ns[i] > nmax ? ns[i] : nmax;
    OK(lort_tt_rep_workspace_size(D, nmax, &ws));
    OK(lort_tt_rep_cache_size(D, nmax, &cs));
    void *work = tr_buf(ws), *cache = tr_buf(cs);
    float *params = tr_rand(np);
    double *ca = to_double(params, PA), *cb = to_double(params + PA, PB);
    double *WA = td_alloc(zu(D->d_in) * zu(D->r)), *WB = td_alloc(zu(D->r) * zu(D->d_out));
    rt_dense(&RA, ca, WA);
    rt_dense(&RB, cb, WB);
    for (int ci = 0; ci < nc; ++ci) {
        int n = ns[ci], di = D->d_in, dd = D->d_out, rr = D->r;
        size_t nx = zu(n) * zu(di), ny = zu(n) * zu(dd), nr = zu(n) * zu(rr);
        float *x = tr_rand(nx), *y0 = tr_rand(ny), *dy = tr_rand(ny), *dx0 = tr_rand(nx);
        float *y = tr_alloc(ny), *y2 = tr_alloc(ny), *dx = tr_alloc(nx), *dp = tr_alloc(np);
        float *dx2 = tr_alloc(nx), *dp2 = tr_alloc(np);
        double *U = td_alloc(nx), *H = td_alloc(nr), *want = td_alloc(ny), *dyd = to_double(dy, ny);
        double *dH = td_alloc(nr), *wdx = td_alloc(nx), *dWA = td_alloc(zu(di) * zu(rr));
        double *dWB = td_alloc(zu(rr) * zu(dd)), *wdp = td_alloc(np);
        char label[96];
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < di; ++j)
                U[IX(i, di, j)] = (double)x[IX(i, di, j)] *
                                  (double)lort_dropout_factor(D->dropout_seed, D->dropout,
                                                              (uint64_t)i, (uint64_t)j);
        dmul(0, 0, n, rr, di, U, WA, H);
        dmul(0, 0, n, dd, rr, H, WB, want);
        for (size_t i = 0; i < ny; ++i) want[i] = (double)y0[i] + s * want[i];
        memcpy(y, y0, ny * sizeof(float));
        memcpy(y2, y0, ny * sizeof(float));
        OK(lort_tt_rep_forward(D, y, x, params, n, cache, cs, work, ws));
        OK(lort_tt_rep_forward(D, y2, x, params, n, NULL, 0, work, ws));
        snprintf(label, sizeof label, "%s n %d forward", name, n);
        assert_true(near_fd(label, y, want, ny, 2e-5));
        assert_memory_equal(y, y2, ny * sizeof(float));
        /* dH = s dy W_B^T; dW_B = s H^T dy; dW_A = U^T dH; dx = dx0 + mask (dH W_A^T) */
        dmul(0, 1, n, rr, dd, dyd, WB, dH);
        for (size_t i = 0; i < nr; ++i) dH[i] *= s;
        dmul(1, 0, rr, dd, n, H, dyd, dWB);
        for (size_t i = 0; i < zu(rr) * zu(dd); ++i) dWB[i] *= s;
        dmul(1, 0, di, rr, n, U, dH, dWA);
        dmul(0, 1, n, di, rr, dH, WA, wdx);
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < di; ++j)
                wdx[IX(i, di, j)] = (double)dx0[IX(i, di, j)] +
                                    wdx[IX(i, di, j)] *
                                        (double)lort_dropout_factor(D->dropout_seed, D->dropout,
                                                                    (uint64_t)i, (uint64_t)j);
        rt_grad(&RA, ca, dWA, wdp);
        rt_grad(&RB, cb, dWB, wdp + PA);
        memcpy(dx, dx0, nx * sizeof(float));
        memset(dp, 0, np * sizeof(float));
        OK(lort_tt_rep_backward(D, dx, dp, dy, x, params, n, cache, cs, work, ws));
        snprintf(label, sizeof label, "%s n %d dx", name, n);
        assert_true(near_fd(label, dx, wdx, nx, 1e-4));
        snprintf(label, sizeof label, "%s n %d dparams", name, n);
        assert_true(near_fd(label, dp, wdp, np, 1e-4));
        memcpy(dx2, dx0, nx * sizeof(float));
        memset(dp2, 0, np * sizeof(float));
        OK(lort_tt_rep_backward(D, dx2, dp2, dy, x, params, n, NULL, 0, work, ws));
        snprintf(label, sizeof label, "%s n %d no cache dx", name, n);
        assert_true(near_fd(label, dx2, wdx, nx, 1e-4));
        snprintf(label, sizeof label, "%s n %d no cache dparams", name, n);
        assert_true(near_fd(label, dp2, wdp, np, 1e-4));
        free(x); free(y0); free(dy); free(dx0); free(y); free(y2); free(dx); free(dp); free(dx2);
        free(dp2); free(U); free(H); free(want); free(dyd); free(dH); free(wdx); free(dWA);
        free(dWB); free(wdp);
    }
    free(work); free(cache); free(params); free(ca); free(cb); free(WA); free(WB);
}

static void test_tt_rep_small_n(void **state) {
    (void)state;
    static const int ma[] = {8, 4, 2, 4}, mb[] = {2, 2, 8, 8};
    lort_tt_rep_desc D;
    tr_seed(47);
    memset(&D, 0, sizeof D);
    D.d_in = 64, D.d_out = 64, D.r = 4, D.alpha = 8.0f;
    D.A = tdesc(0, 0, 4, ma, 4);
    D.B = tdesc(0, 0, 4, mb, 4);
    rep_case("rep 64 x 4 x 64", &D);
    D.dropout = 0.25f, D.dropout_seed = 99;
    rep_case("rep with dropout", &D);
}

/* ---- tt_adp ------------------------------------------------------------------------------ */
static double act_d(double z) { return tanh(z); }
static double act_dd(double z) { double t = tanh(z); return 1.0 - t * t; }

static void adp_case(const char *name, int d, const int *md, int rank, int expect_both) {
    lort_tt_adp_desc D, r;
    rtrain RD, RU;
    int ns[4], nc, nfd, nfu, nmax = 0;
    size_t PD, PU, np = 0, ws = 0, cs = 0;
    memset(&D, 0, sizeof D);
    D.hidden = 64, D.bottleneck = 16, D.scale = 0.5f, D.act = LORT_ACT_TANH;
    D.placement = LORT_TT_ADP_INPUT, D.dropout = 0.2f, D.dropout_seed = 5;
    D.down = tdesc(0, 0, d, md, rank);
    OK(lort_tt_adp_desc_resolve(&D, &r));
    rt_make(&RD, &r.down);
    rt_make(&RU, &r.up);
    nfd = plan_nf(&r.down);
    nfu = plan_nf(&r.up);
    printf("  %-36s factored below n = %d (down), %d (up)\n", name, nfd, nfu);
    if (expect_both) assert_true(nfd < 200 && nfu < 200);
    nc = row_cases(nfd > nfu ? nfd : nfu, ns);
    for (int i = 0; i < nc; ++i) nmax = ns[i] > nmax ? ns[i] : nmax;
    PD = RD.off[RD.d];
    PU = RU.off[RU.d];
    OK(lort_tt_adp_param_count(&D, &np));
    assert_int_equal(np, PD + PU + 16 + 64);
    OK(lort_tt_adp_workspace_size(&D, nmax, &ws));
    OK(lort_tt_adp_cache_size(&D, nmax, &cs));
    void *work = tr_buf(ws), *cache = tr_buf(cs);
    float *params = tr_rand(np);
    for (size_t i = 0; i < PD + PU; ++i) params[i] *= 0.7f;
    double *cdn = to_double(params, PD), *cup = to_double(params + PD, PU);
    double *Wd = td_alloc(64 * 16), *Wu = td_alloc(16 * 64);
    const float *bd = params + PD + PU, *bu = bd + 16;
    rt_dense(&RD, cdn, Wd);
    rt_dense(&RU, cup, Wu);
    for (int ci = 0; ci < nc; ++ci) {
        int n = ns[ci], h = 64, b = 16;
        size_t nh = zu(n) * 64, nb = zu(n) * 16;
        float *x = tr_rand(nh), *y0 = tr_rand(nh), *dy = tr_rand(nh), *dx0 = tr_rand(nh);
        float *y = tr_alloc(nh), *y2 = tr_alloc(nh), *dx = tr_alloc(nh), *dp = tr_alloc(np);
        double *U = td_alloc(nh), *Z = td_alloc(nb), *A = td_alloc(nb), *F = td_alloc(nh);
        double *dyd = to_double(dy, nh), *dA = td_alloc(nb), *wdx = td_alloc(nh);
        double *dWu = td_alloc(16 * 64), *dWd = td_alloc(64 * 16), *wdp = td_alloc(np);
        char label[96];
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < h; ++j)
                U[IX(i, h, j)] = (double)x[IX(i, h, j)] *
                                 (double)lort_dropout_factor(5, 0.2f, (uint64_t)i, (uint64_t)j);
        dmul(0, 0, n, b, h, U, Wd, Z);
        for (size_t i = 0; i < nb; ++i) {
            Z[i] += (double)bd[i % 16];
            A[i] = act_d(Z[i]);
        }
        dmul(0, 0, n, h, b, A, Wu, F);
        for (size_t i = 0; i < nh; ++i) F[i] = (double)y0[i] + 0.5 * (F[i] + (double)bu[i % 64]);
        memcpy(y, y0, nh * sizeof(float));
        memcpy(y2, y0, nh * sizeof(float));
        OK(lort_tt_adp_forward(&D, y, x, params, n, cache, cs, work, ws));
        OK(lort_tt_adp_forward(&D, y2, x, params, n, NULL, 0, work, ws));
        snprintf(label, sizeof label, "adp n %d forward", n);
        assert_true(near_fd(label, y, F, nh, 2e-5));
        assert_memory_equal(y, y2, nh * sizeof(float));
        /* dA = s dy W_up^T, dZ = dA act'(Z); dW_up = s A^T dy; dbu = s colsum dy;
           dW_down = U^T dZ; dbd = colsum dZ; dx = dx0 + mask (dZ W_down^T) */
        dmul(0, 1, n, b, h, dyd, Wu, dA);
        for (size_t i = 0; i < nb; ++i) dA[i] *= 0.5 * act_dd(Z[i]);
        dmul(1, 0, b, h, n, A, dyd, dWu);
        for (size_t i = 0; i < 16 * 64; ++i) dWu[i] *= 0.5;
        dmul(1, 0, h, b, n, U, dA, dWd);
        rt_grad(&RD, cdn, dWd, wdp);
        rt_grad(&RU, cup, dWu, wdp + PD);
        for (int j = 0; j < b; ++j) {
            wdp[PD + PU + zu(j)] = 0.0;
            for (int i = 0; i < n; ++i) wdp[PD + PU + zu(j)] += dA[IX(i, b, j)];
        }
        for (int j = 0; j < h; ++j) {
            wdp[PD + PU + 16 + zu(j)] = 0.0;
            for (int i = 0; i < n; ++i) wdp[PD + PU + 16 + zu(j)] += 0.5 * dyd[IX(i, h, j)];
        }
        dmul(0, 1, n, h, b, dA, Wd, wdx);
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < h; ++j)
                wdx[IX(i, h, j)] = (double)dx0[IX(i, h, j)] +
                                   wdx[IX(i, h, j)] *
                                       (double)lort_dropout_factor(5, 0.2f, (uint64_t)i, (uint64_t)j);
        memcpy(dx, dx0, nh * sizeof(float));
        memset(dp, 0, np * sizeof(float));
        OK(lort_tt_adp_backward(&D, dx, dp, dy, x, params, n, cache, cs, work, ws));
        snprintf(label, sizeof label, "adp n %d dx", n);
        assert_true(near_fd(label, dx, wdx, nh, 1e-4));
        snprintf(label, sizeof label, "adp n %d dparams", n);
        assert_true(near_fd(label, dp, wdp, np, 1e-4));
        memcpy(dx, dx0, nh * sizeof(float));
        memset(dp, 0, np * sizeof(float));
        OK(lort_tt_adp_backward(&D, dx, dp, dy, x, params, n, NULL, 0, work, ws));
        snprintf(label, sizeof label, "adp n %d no cache dx", n);
        assert_true(near_fd(label, dx, wdx, nh, 1e-4));
        snprintf(label, sizeof label, "adp n %d no cache dparams", n);
        assert_true(near_fd(label, dp, wdp, np, 1e-4));
        free(x); free(y0); free(dy); free(dx0); free(y); free(y2); free(dx); free(dp); free(U);
        free(Z); free(A); free(F); free(dyd); free(dA); free(wdx); free(dWu); free(dWd);
        free(wdp);
    }
    free(work); free(cache); free(params); free(cdn); free(cup); free(Wd); free(Wu);
}

static void test_tt_adp_small_n(void **state) {
    (void)state;
    static const int m1[] = {8, 4, 4, 2, 4}, m2[] = {4, 16, 16};
    tr_seed(59);
    adp_case("adp rank 3 (always factored)", 5, m1, 3, 0);
    adp_case("adp rank 12 over 3 cores", 3, m2, 12, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tt_small_n),
        cmocka_unit_test(test_tt_rep_small_n),
        cmocka_unit_test(test_tt_adp_small_n),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
