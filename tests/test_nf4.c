/* NF4 (QLoRA / bitsandbytes 4-bit NormalFloat), the NF4 GEMM and QDoTA (mpo with an NF4
   residual), against references written here.

   References: the 16 levels and a blob decoder of tests/lort_ref.h (absmax fp32 per block of
   64, then bytes with element 2i in the high nibble); an independent quantiser (nearest level
   in double, ties down, as bitsandbytes' tree); the expected squared error of NF4 on N(0, 1)
   blocks of 64, integrated numerically from the codebook and the distribution of the block
   absmax; the MPO matrix of tests/lort_ref.h. QDoTA's forward, backward and delta (both paths)
   run in tests/test_conformance.c; its init is checked here.

   Tolerances: dequantisation is exact (level * absmax in float); NF4 GEMM vs double reference
   on the decoded weight: norm 2e-5; Gaussian MSE within 3% of the expectation (262144
   samples: the standard error is ~0.5%). */
#define LORT_NF4_TILE_FLOATS 100 /* tiny tiles: many tiles, rows starting mid-block, mid-byte */
#define LORTENSOR_IMPLEMENTATION
#include "lort_ref.h"
#include <limits.h>


/* the levels, the blob decoder: the NF4 reference of tests/lort_ref.h */
#define LV REF_NF4_LEVELS
/* nearest level, ties to the lower code; -1 when x is within 1e-6 of a midpoint (float ties) */
static int ref_code(double x) {
    int best = 0;
    for (int c = 1; c < 16; ++c)
        if (fabs(x - LV[c]) < fabs(x - LV[best])) best = c;
    for (int c = 0; c < 15; ++c)
        if (fabs(x - 0.5 * (LV[c] + LV[c + 1])) < 1e-6) return -1;
    return best;
}

static void test_nf4_levels_and_layout(void **state) {
    (void)state;
    for (int c = 0; c < 16; ++c) assert_true(fabs((double)lort_nf4_level(c) - LV[c]) < 1e-7);
    assert_true(fabs((double)lort_nf4_level(16)) < 1e-30 && fabs((double)lort_nf4_level(-1)) < 1e-30);
    size_t b;
    OK(lort_nf4_size(37, 7, &b)); /* 259 entries: 5 blocks (last of 3), 130 bytes */
    assert_int_equal(b, 5 * 4 + 130);
    OK(lort_nf4_size(64, 64, &b));
    assert_int_equal(b * 8 * 2, 64u * 64u * 9u); /* 4.5 bits per entry */
    /* block: element e = level[e % 16] * 2 (absmax 2), so codes are e % 16 and nibbles pair
       up as (2i high, 2i+1 low); then a second block of two entries, w = (-3, 0) */
    float W[66];
    for (int e = 0; e < 64; ++e) W[e] = (float)LV[e % 16] * 2.0f;
    W[64] = -3.0f;
    W[65] = 0.0f;
    unsigned char q[2 * 4 + 33];
    OK(lort_nf4_quantize(q, W, 66, 1));
    float a0, a1;
    memcpy(&a0, q, 4);
    memcpy(&a1, q + 4, 4);
    assert_true(fabsf(a0 - 2.0f) < 1e-7f && fabsf(a1 - 3.0f) < 1e-7f);
    assert_int_equal(q[8], 0x01);      /* codes 0 (high) and 1 (low) */
    assert_int_equal(q[8 + 7], 0xEF);  /* elements 14, 15 */
    assert_int_equal(q[8 + 32], 0x07); /* -3/3 = -1 -> 0 high; 0 -> 7 low */
    float D[66];
    OK(lort_nf4_dequantize(D, q, 66, 1));
    for (int e = 0; e < 66; ++e) assert_true(fabsf(D[e] - W[e]) <= 1e-6f * fabsf(W[e]));
}

static void test_nf4_vs_reference(void **state) {
    (void)state;
    int shapes[3][2] = {{7, 37}, {16, 64}, {1, 1}};
    for (int si = 0; si < 3; ++si) {
        int rows = shapes[si][0], cols = shapes[si][1];
        size_t count = (size_t)rows * (size_t)cols, bytes = 0;
        tr_seed(10 + (uint64_t)si);
        float *W = tr_alloc(count);
        for (size_t e = 0; e < count; ++e) W[e] = (float)(tg_normal() * 0.3);
        if (count > 70) memset(W + 64, 0, 64 * sizeof(float) > (count - 64) * sizeof(float) ? (count - 64) * sizeof(float) : 64 * sizeof(float)); /* a zero block */
        OK(lort_nf4_size(cols, rows, &bytes));
        unsigned char *q = (unsigned char *)tr_buf(bytes);
        OK(lort_nf4_quantize(q, W, cols, rows));
        int checked = 0;
        for (size_t e = 0; e < count; ++e) {
            size_t b0 = e / 64 * 64, b1 = b0 + 64 < count ? b0 + 64 : count;
            double a = 0.0;
            for (size_t t = b0; t < b1; ++t) a = fmax(a, fabs((double)W[t]));
            assert_true(fabs((double)ref_nf4_absmax(q, e) - a) <= 0.0 + 1e-300);
            if (a > 0.0) {
                int want = ref_code((double)W[e] / a);
                if (want >= 0) {
                    assert_int_equal(ref_nf4_code(q, count, e), want);
                    ++checked;
                }
            } else {
                assert_int_equal(ref_nf4_code(q, count, e), 0); /* bitsandbytes: NaN -> code 0 */
                ++checked;
            }
        }
        assert_true(checked > (int)count * 9 / 10);
        double *want = td_alloc(count);
        float *D = tr_alloc(count);
        ref_nf4_decode(q, count, want);
        OK(lort_nf4_dequantize(D, q, cols, rows));
        for (size_t e = 0; e < count; ++e) assert_true(!(fabs((double)D[e] - want[e]) > 0.0));
        free(W); free(q); free(want); free(D);
    }
}

/* E[(w - w')^2] for w ~ N(0,1) in blocks of 64, from the codebook:
   (63/64) int_0^inf 128 phi(a) (2 Phi(a) - 1)^62 a^3 int_{-1}^{1} (x - q(x))^2 phi(a x) dx da
   (the absmax a has density 64 * 2 phi(a) (2 Phi(a) - 1)^63; given a, the other 63 entries are
   N(0,1) conditioned on |w| < a, and the absmax entry itself is exact). */
static double phi(double x) { return exp(-0.5 * x * x) / sqrt(2.0 * 3.141592653589793); }
static double inner(double a) {
    double s = 0.0;
    for (int c = 0; c < 16; ++c) { /* cell of level c: between the midpoints around it */
        double lo = c == 0 ? -1.0 : 0.5 * (LV[c - 1] + LV[c]);
        double hi = c == 15 ? 1.0 : 0.5 * (LV[c] + LV[c + 1]);
        int m = 64;
        double h = (hi - lo) / m, acc = 0.0;
        for (int i = 0; i <= m; ++i) {
            double x = lo + h * i, f = (x - LV[c]) * (x - LV[c]) * phi(a * x);
            acc += f * (i == 0 || i == m ? 1.0 : (i % 2 ? 4.0 : 2.0));
        }
        s += acc * h / 3.0;
    }
    return s;
}
static double expected_mse(void) {
    int m = 2000;
    double lo = 0.3, hi = 7.0, h = (hi - lo) / m, acc = 0.0;
    for (int i = 0; i <= m; ++i) {
        double a = lo + h * i, P = erf(a / sqrt(2.0));
        double f = 128.0 * phi(a) * pow(P, 62.0) * a * a * a * inner(a);
        acc += f * (i == 0 || i == m ? 1.0 : (i % 2 ? 4.0 : 2.0));
    }
    return 63.0 / 64.0 * acc * h / 3.0;
}

static void test_nf4_gaussian_error(void **state) {
    (void)state;
    const int rows = 512, cols = 512;
    size_t count = (size_t)rows * (size_t)cols, bytes = 0;
    tr_seed(2024);
    float *W = tr_alloc(count), *D = tr_alloc(count);
    for (size_t e = 0; e < count; ++e) W[e] = (float)tg_normal();
    OK(lort_nf4_size(cols, rows, &bytes));
    unsigned char *q = (unsigned char *)tr_buf(bytes);
    OK(lort_nf4_quantize(q, W, cols, rows));
    OK(lort_nf4_dequantize(D, q, cols, rows));
    double halfgap = 0.0, mse = 0.0;
    for (int c = 0; c < 15; ++c) halfgap = fmax(halfgap, 0.5 * (LV[c + 1] - LV[c]));
    for (size_t e = 0; e < count; ++e) {
        double err = (double)W[e] - (double)D[e];
        assert_true(fabs(err) <= (double)ref_nf4_absmax(q, e) * halfgap * (1.0 + 1e-6));
        mse += err * err;
    }
    mse /= (double)count;
    double want = expected_mse();
    printf("  NF4 on N(0,1): MSE %.6g, codebook expectation %.6g (ratio %.4f)\n", mse, want,
           mse / want);
    assert_true(want > 0.005 && want < 0.02); /* sanity of the integral itself */
    assert_true(fabs(mse / want - 1.0) < 0.03);
    free(W); free(D); free(q);
}

static void test_nf4_linear(void **state) {
    (void)state;
    int shapes[3][3] = {{5, 37, 11}, {3, 150, 4}, {1, 1, 1}}; /* n, d_in, d_out */
    for (int si = 0; si < 3; ++si) {
        int n = shapes[si][0], din = shapes[si][1], dout = shapes[si][2];
        size_t cw = (size_t)din * (size_t)dout, bytes = 0, ws = 0;
        tr_seed(77 + (uint64_t)si);
        float *W = tr_rand(cw), *x = tr_rand((size_t)n * (size_t)din), *dy = tr_rand((size_t)n * (size_t)dout);
        float *y = tr_rand((size_t)n * (size_t)dout), *dx = tr_rand((size_t)n * (size_t)din);
        OK(lort_nf4_size(din, dout, &bytes));
        unsigned char *q = (unsigned char *)tr_buf(bytes);
        OK(lort_nf4_quantize(q, W, din, dout));
        double *Wd = td_alloc(cw);
        ref_nf4_decode(q, cw, Wd);
        double *wy = td_alloc((size_t)n * (size_t)dout), *wdx = td_alloc((size_t)n * (size_t)din);
        ref_linear(n, din, dout, x, Wd, wy);
        for (size_t t = 0; t < (size_t)n * (size_t)dout; ++t) wy[t] += (double)y[t];
        for (int i = 0; i < n; ++i)
            for (int k = 0; k < din; ++k) {
                double s = (double)dx[(size_t)i * (size_t)din + (size_t)k];
                for (int o = 0; o < dout; ++o) s += (double)dy[(size_t)i * (size_t)dout + (size_t)o] * Wd[(size_t)o * (size_t)din + (size_t)k];
                wdx[(size_t)i * (size_t)din + (size_t)k] = s;
            }
        OK(lort_nf4_linear_workspace_size(n, din, dout, &ws));
        assert_true(ws < 64 + (size_t)(din > 100 ? din : 100) * 4 + 64); /* one tile, not W */
        void *work = tr_buf(ws);
        OK(lort_nf4_linear_forward(y, x, q, n, din, dout, work, ws));
        OK(lort_nf4_linear_backward(dx, dy, q, n, din, dout, work, ws));
        assert_true(near_fd("nf4 forward", y, wy, (size_t)n * (size_t)dout, 2e-5));
        assert_true(near_fd("nf4 backward", dx, wdx, (size_t)n * (size_t)din, 2e-5));
        free(W); free(x); free(dy); free(y); free(dx); free(q); free(Wd); free(wy); free(wdx);
        free(work);
    }
}

/* ---- QDoTA ---------------------------------------------------------------------------------- */
typedef struct {
    int N, ii[8], jj[8], D[9], nr, nc;
    size_t off[9];
} qshape;
static void qshape_of(const lort_mpo_desc *d, qshape *s) {
    lort_mpo_desc r;
    OK(lort_mpo_desc_resolve(d, &r));
    memset(s, 0, sizeof *s);
    s->N = r.n_cores; s->nr = r.d_out; s->nc = r.d_in;
    for (int k = 0; k <= s->N; ++k) s->D[k] = r.bonds[k];
    for (int k = 0; k < s->N; ++k) {
        s->ii[k] = r.row_factors[k]; s->jj[k] = r.col_factors[k];
        s->off[k + 1] = s->off[k] + (size_t)s->D[k] * (size_t)s->ii[k] * (size_t)s->jj[k] * (size_t)s->D[k + 1];
    }
}

/* QDoTA init: the layer at init is W0 up to the NF4 error of W_res, and err = ||W0 - MPO||.
   (Forward, backward and delta with an NF4 residual, on both paths: test_conformance.c.) */
static void test_qdota(void **state) {
    (void)state;
    int ii[3] = {2, 3, 4}, jj[3] = {4, 4, 4};
    for (int path = 1; path <= 2; ++path) {
        lort_mpo_desc d;
        memset(&d, 0, sizeof d);
        d.n_cores = 3;
        for (int k = 0; k < 3; ++k) { d.row_factors[k] = ii[k]; d.col_factors[k] = jj[k]; }
        d.bond = 3;
        d.path = path;
        d.residual = LORT_MPO_RESIDUAL_NF4;
        qshape s;
        qshape_of(&d, &s);
        size_t IJ = (size_t)s.nr * (size_t)s.nc, np = s.off[3], fz = 0, iw = 0, bytes = 0;
        assert_int_equal(s.nr, 24);
        assert_int_equal(s.nc, 64);
        OK(lort_mpo_residual_size(&d, &fz));
        OK(lort_nf4_size(64, 24, &bytes));
        assert_int_equal(fz, bytes);
        assert_true(fabs((double)fz * 8.0 / (double)IJ - 4.5) < 1e-12); /* 4.5 bits per entry */
        tr_seed(5150 + (uint64_t)path);
        float *W0 = tr_rand(IJ), *cores = tr_alloc(np), *res = (float *)tr_buf(fz), err = -1.0f;
        OK(lort_mpo_init_workspace_size(&d, &iw));
        void *iwork = tr_buf(iw);
        OK(lort_mpo_init(&d, cores, res, &err, W0, iwork, iw));
        double *cd = to_double(cores, np), *Wq = td_alloc(IJ), *M = td_alloc(IJ);
        ref_nf4_decode((const unsigned char *)res, IJ, Wq);
        ref_mpo_dense(s.N, s.ii, s.jj, s.D, cd, M);
        /* the layer at init is W0 up to the NF4 error of W_res: |W_res - deq| <= 0.152 absmax */
        double rmax = 0.0, e2 = 0.0, worst = 0.0;
        for (size_t t = 0; t < IJ; ++t) {
            double wr = (double)W0[t] - M[t];
            rmax = fmax(rmax, fabs(wr));
            e2 += wr * wr;
            worst = fmax(worst, fabs(Wq[t] + M[t] - (double)W0[t]));
        }
        assert_true(worst <= 0.1520 * rmax);
        assert_true(fabs((double)err - sqrt(e2)) <= 1e-4 * sqrt(e2));
        free(W0); free(cores); free(res); free(iwork); free(cd); free(Wq); free(M);
    }
}

/* QDoTA through the generic interface: sizes, init, forward, backward, delta == direct calls */
static void test_qdota_adapter(void **state) {
    (void)state;
    lort_adapter a;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_MPO;
    a.desc.mpo.n_cores = 2;
    a.desc.mpo.row_factors[0] = 4; a.desc.mpo.row_factors[1] = 5;
    a.desc.mpo.col_factors[0] = 8; a.desc.mpo.col_factors[1] = 8;
    a.desc.mpo.bond = 3;
    a.desc.mpo.residual = LORT_MPO_RESIDUAL_NF4;
    const int n = 6;
    lort_adapter_sizes sz;
    OK(lort_adapter_sizes_query(&a, n, &sz));
    size_t bytes = 0, np = 0;
    OK(lort_nf4_size(64, 20, &bytes));
    OK(lort_mpo_param_count(&a.desc.mpo, &np));
    assert_int_equal(sz.frozen_bytes, bytes);
    assert_int_equal(sz.params, np);
    assert_int_equal(sz.replaces_base, 1);
    assert_int_equal(sz.d_in, 64);
    assert_int_equal(sz.d_out, 20);
    tr_seed(321);
    float *W0 = tr_rand(1280), *x = tr_rand((size_t)n * 64), *dy = tr_rand((size_t)n * 20);
    a.params = tr_alloc(sz.params);
    a.frozen = tr_buf(sz.frozen_bytes);
    a.grads = tr_alloc(sz.params);
    float *c2 = tr_alloc(sz.params), *f2 = (float *)tr_buf(sz.frozen_bytes), *g2 = tr_alloc(sz.params);
    void *iw = tr_buf(sz.init_work), *w = tr_buf(sz.work), *cache = tr_buf(sz.cache);
    OK(lort_adapter_init(&a, W0, NULL, iw, sz.init_work));
    OK(lort_mpo_init(&a.desc.mpo, c2, f2, NULL, W0, iw, sz.init_work));
    assert_true(memcmp(a.params, c2, sz.params * sizeof(float)) == 0);
    assert_true(memcmp(a.frozen, f2, bytes) == 0);
    float *y = tr_alloc((size_t)n * 20), *y2 = tr_alloc((size_t)n * 20);
    float *dx = tr_alloc((size_t)n * 64), *dx2 = tr_alloc((size_t)n * 64);
    OK(lort_adapter_forward(&a, y, x, n, cache, sz.cache, w, sz.work));
    OK(lort_mpo_forward(&a.desc.mpo, y2, x, c2, f2, n, NULL, 0, w, sz.work));
    assert_true(cmp_ff("adapter y", y, y2, (size_t)n * 20, 1e-6, 1e-6));
    OK(lort_adapter_backward(&a, dx, dy, x, n, cache, sz.cache, w, sz.work));
    OK(lort_mpo_backward(&a.desc.mpo, dx2, g2, dy, x, c2, f2, n, NULL, 0, w, sz.work));
    assert_true(cmp_ff("adapter dx", dx, dx2, (size_t)n * 64, 1e-6, 1e-6));
    assert_true(cmp_ff("adapter dcores", a.grads, g2, sz.params, 1e-6, 1e-6));
    /* the QDoTA layer approximates x W0^T (NF4 error of W_res only) */
    double *W0d = to_double(W0, 1280), *want = td_alloc((size_t)n * 20);
    ref_linear(n, 64, 20, x, W0d, want);
    double m = max_abs_d(want, (size_t)n * 20), e = 0.0;
    for (size_t t = 0; t < (size_t)n * 20; ++t) e = fmax(e, fabs((double)y[t] - want[t]));
    assert_true(e < 0.25 * m);
    free(W0); free(x); free(dy); free(a.params); free(a.frozen); free(a.grads); free(c2);
    free(f2); free(g2); free(iw); free(w); free(cache); free(y); free(y2); free(dx); free(dx2);
    free(W0d); free(want);
}

static void test_nf4_errors(void **state) {
    (void)state;
    size_t b;
    float W[8] = {1, 2, 3, 4, 5, 6, 7, 8}, y[8], work[64];
    unsigned char q[64];
    ST(LORT_ERR_NULL, lort_nf4_size(4, 2, NULL));
    ST(LORT_ERR_INVALID_ARG, lort_nf4_size(4, 0, &b));
    ST(LORT_ERR_INVALID_ARG, lort_nf4_size(-1, 2, &b));
    ST(LORT_ERR_OVERFLOW, lort_nf4_size(INT_MAX, INT_MAX, &b)); /* 4 bytes per entry > PTRDIFF_MAX */
    ST(LORT_ERR_NULL, lort_nf4_quantize(NULL, W, 4, 2));
    ST(LORT_ERR_NULL, lort_nf4_dequantize(y, NULL, 4, 2));
    W[3] = NAN;
    ST(LORT_ERR_NONFINITE, lort_nf4_quantize(q, W, 4, 2));
    W[3] = 4.0f;
    OK(lort_nf4_quantize(q, W, 4, 2));
    size_t ws = 0;
    OK(lort_nf4_linear_workspace_size(1, 4, 2, &ws));
    ST(LORT_ERR_WORKSPACE, lort_nf4_linear_forward(y, W, q, 1, 4, 2, work, ws - 1));
    ST(LORT_ERR_NULL, lort_nf4_linear_forward(y, W, q, 1, 4, 2, NULL, ws));
    ST(LORT_ERR_INVALID_ARG, lort_nf4_linear_backward(y, W, q, 0, 4, 2, work, ws));
    ST(LORT_ERR_NULL, lort_nf4_linear_backward(y, W, NULL, 1, 4, 2, work, ws));
}

/* Exact ties. bitsandbytes' NF4 quantiser is a comparison tree over 15 float thresholds, the
   midpoints of neighbouring levels as float literals (typed here from its dQuantizeNF4; the
   real midpoint of two float levels is often not a float, so the literal fixes which float
   goes where). A code counts the thresholds strictly below x, so x == T_k is a tie that takes
   the lower level l_k, the next float above T_k takes l_{k+1}, the one below l_k. Block
   absmax 1, so x = w exactly. Ties rounded up, or a threshold one float off, fail. */
static const float BNB_T[15] = {
    -0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
    -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
    0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
    0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f};
static void test_nf4_ties(void **state) {
    (void)state;
    enum { C = 64 };
    float w[C], back[C];
    unsigned char q[4 + C / 2];
    for (int k = 0; k < 15; ++k) /* each threshold lies strictly between its two levels */
        assert_true((double)BNB_T[k] > LV[k] && (double)BNB_T[k] < LV[k + 1]);
    for (int side = -1; side <= 1; ++side) { /* below, at (the tie), above */
        for (int i = 0; i < C; ++i) w[i] = 0.0f;
        w[0] = 1.0f; /* absmax */
        for (int k = 0; k < 15; ++k)
            w[1 + k] = side == 0 ? BNB_T[k] : nextafterf(BNB_T[k], side < 0 ? -2.0f : 2.0f);
        OK(lort_nf4_quantize(q, w, 1, C));
        OK(lort_nf4_dequantize(back, q, 1, C));
        for (int k = 0; k < 15; ++k) {
            float want = (float)(side > 0 ? LV[k + 1] : LV[k]);
            int ok = fabs((double)back[1 + k] - (double)want) <= 0.0;
            if (!ok)
                printf("  threshold %d, x = %a (%s): got %.9g want %.9g\n", k, (double)w[1 + k],
                       side < 0 ? "below" : (side > 0 ? "above" : "tie"), (double)back[1 + k],
                       (double)want);
            assert_true(ok);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nf4_levels_and_layout),
        cmocka_unit_test(test_nf4_vs_reference),
        cmocka_unit_test(test_nf4_ties),
        cmocka_unit_test(test_nf4_gaussian_error),
        cmocka_unit_test(test_nf4_linear),
        cmocka_unit_test(test_qdota),
        cmocka_unit_test(test_qdota_adapter),
        cmocka_unit_test(test_nf4_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
