/* Kernels allocate nothing; workspaces and caches are exactly as large as the size queries say.

   Two independent spies watch every kernel call:
   1. LORT_MALLOC / LORT_FREE are a counting spy in the implementation object the tests link
      (tests/impl.c), so any use of the library's own allocator hook is seen.
   2. The process's malloc, calloc, realloc, free (and the aligned variants) are interposed
      here, forwarding to glibc's __libc_* entry points, with a counter that is switched on only
      around kernel calls (so cmocka's and the test's own allocations are not counted). This
      catches a kernel that calls malloc directly, or through a helper library.
      The interposer is compiled only on glibc and not under AddressSanitizer, whose runtime
      owns malloc itself; the ASan build relies on the LORT_MALLOC spy (and on ASan).

   OpenBLAS may allocate internally on its first call (thread buffers, memory pool); the BLAS
   build therefore warms BLAS up once (a few sgemm calls of every transpose combination)
   before anything is counted. Allocations that OpenBLAS makes inside cblas_sgemm after warm-up
   would be BLAS's, not lortensor's: test_interposer_blas reports them, and if there are any
   the malloc interposer counts only in the LORT_NO_BLAS build (see blas_allocates below). */
#include "alloc_spy.h"
#define COUNTED(what, call)  \
    do {                     \
        lort_status st_;     \
        tm_begin();          \
        st_ = (call);        \
        tm_end((what), st_); \
    } while (0)

/* The interposer sees allocations made inside a counted region (self-test). */
static void test_interposer_works(void **state) {
    (void)state;
#ifdef TM_INTERPOSE
    static void *volatile g_keep; /* keeps the mallocs from being optimised away */
    tm_begin();
    g_keep = malloc(24);
    free(g_keep);
    g_keep = calloc(3, 8);
    g_keep = realloc(g_keep, 100);
    free(g_keep);
    tm_counting = 0;
    assert_int_equal(tm_allocs, 3);
    assert_int_equal(tm_frees, 2);
    /* and nothing outside a counted region */
    g_keep = malloc(24);
    free(g_keep);
    assert_int_equal(tm_allocs, 3);
#else
    skip(); /* ASan build: the LORT_MALLOC spy only */
#endif
}

/* Warm up BLAS, then check whether cblas_sgemm itself still allocates. */
static void test_interposer_blas(void **state) {
    (void)state;
    enum { D = 96 };
    float *A = tr_rand(D * D), *B = tr_rand(D * D), *C = tr_alloc(D * D);
    for (int t = 0; t < 4; ++t) /* warm-up, not counted */
        assert_int_equal(lort_sgemm(t >> 1, t & 1, D, D, D, 1.0f, A, D, B, D, 0.0f, C, D), LORT_OK);
    assert_int_equal(lort_sgemm(0, 0, 3, 5, 7, 1.0f, A, 7, B, 5, 0.0f, C, 5), LORT_OK);
#ifdef TM_INTERPOSE
    tm_begin();
    for (int t = 0; t < 4; ++t) lort_sgemm(t >> 1, t & 1, D, D, D, 1.0f, A, D, B, D, 0.5f, C, D);
    lort_sgemm(0, 0, 3, 5, 7, 1.0f, A, 7, B, 5, 0.0f, C, 5);
    tm_counting = 0;
#ifdef LORT_NO_BLAS
    assert_int_equal(tm_allocs, 0); /* the built-in GEMM never allocates */
#else
    if (tm_allocs) {
        blas_allocates = 1;
        printf(
            "  note: OpenBLAS allocates inside cblas_sgemm after warm-up (%ld calls); the malloc\n"
            "        interposer counts only in the LORT_NO_BLAS build\n",
            tm_allocs);
    }
#endif
#endif
    free(A);
    free(B);
    free(C);
}

/* ---- the kernels -------------------------------------------------------------------------- */

static lort_lora_desc lora_desc(float dropout) {
    lort_lora_desc d;
    memset(&d, 0, sizeof d);
    d.d_in = 24;
    d.d_out = 20;
    d.r = 4;
    d.alpha = 8.0f;
    d.dropout = dropout;
    d.dropout_seed = 17;
    return d;
}
static lort_loraxs_desc loraxs_desc(float dropout, int exact) {
    lort_loraxs_desc d;
    memset(&d, 0, sizeof d);
    d.d_in = 24;
    d.d_out = 20;
    d.r = 4;
    d.alpha = 4.0f;
    d.dropout = dropout;
    d.dropout_seed = 5;
    d.init_std = 0.1f;
    d.svd.exact = exact;
    d.svd.seed = 3;
    return d;
}

static void test_no_alloc_gemm_svd(void **state) {
    (void)state;
    enum { M = 37, N = 29, K = 41 };
    float *A = tr_rand(M * K + K * M), *B = tr_rand(K * N + N * K), *C = tr_rand(M * N);
    for (int t = 0; t < 4; ++t) {
        int tA = t >> 1, tB = t & 1;
        COUNTED("lort_sgemm",
                lort_sgemm(tA, tB, M, N, K, 0.5f, A, tA ? M : K, B, tB ? K : N, 1.0f, C, N));
        COUNTED("lort_sgemm_builtin", lort_sgemm_builtin(tA, tB, M, N, K, 0.5f, A, tA ? M : K, B,
                                                         tB ? K : N, 0.0f, C, N));
    }
    /* SVDs of a 40 x 30 matrix: randomized, exact, jacobi */
    enum { SM = 40, SN = 30, SR = 5 };
    float *W = tr_rand(SM * SN), *U = tr_alloc(SM * SN), *S = tr_alloc(SN), *Vt = tr_alloc(SN * SM);
    for (int exact = 0; exact < 2; ++exact) {
        lort_svd_opts o;
        memset(&o, 0, sizeof o);
        o.exact = exact;
        o.oversample = 5; /* l = 10 < 30: the randomized path runs */
        size_t ws = 0;
        COUNTED("lort_svd_truncated_workspace_size",
                lort_svd_truncated_workspace_size(SM, SN, SR, &o, &ws));
        void *w = tr_buf(ws);
        COUNTED(exact ? "lort_svd_truncated (exact)" : "lort_svd_truncated (randomized)",
                lort_svd_truncated(U, S, Vt, W, SN, SM, SN, SR, &o, w, ws));
        free(w);
    }
    size_t wj = 0;
    COUNTED("lort_svd_jacobi_workspace_size", lort_svd_jacobi_workspace_size(SM, SN, &wj));
    void *w = tr_buf(wj);
    COUNTED("lort_svd_jacobi", lort_svd_jacobi(U, S, Vt, W, SN, SM, SN, 60, w, wj));
    /* wide */
    COUNTED("lort_svd_jacobi (wide)", lort_svd_jacobi(U, S, Vt, W, SM, SN, SM, 60, w, wj));
    free(w);
    /* the base layer */
    float *y = tr_alloc(SM * SN), *dx = tr_alloc(SM * SN), *dW = tr_alloc(SM * SN),
          *db = tr_alloc(SM);
    COUNTED("lort_linear_forward", lort_linear_forward(y, W, W, db, 7, 30, 40));
    COUNTED("lort_linear_backward", lort_linear_backward(dx, dW, db, y, W, W, 7, 30, 40));
    free(y);
    free(dx);
    free(dW);
    free(db);
    free(A);
    free(B);
    free(C);
    free(W);
    free(U);
    free(S);
    free(Vt);
}

/* The layer buffers of the lora and loraxs runs (d_in 24, d_out 20, n rows). */
typedef struct {
    float *x, *y, *dy, *dx, *W;
    void *work, *cache;
} tm_io;
static tm_io tm_io_make(int n, size_t ws, size_t cs) {
    tm_io io;
    io.x = tr_rand((size_t)n * 24u);
    io.y = tr_rand((size_t)n * 20u);
    io.dy = tr_rand((size_t)n * 20u);
    io.dx = tr_alloc((size_t)n * 24u);
    io.W = tr_rand(20u * 24u);
    io.work = tr_buf(ws);
    io.cache = tr_buf(cs);
    return io;
}
static void tm_io_free(tm_io *io) {
    free(io->x); free(io->y); free(io->dy); free(io->dx); free(io->W); free(io->work);
    free(io->cache);
}

static void test_no_alloc_lora(void **state) {
    (void)state;
    const int n = 7;
    for (int drop = 0; drop < 2; ++drop) {
        lort_lora_desc d = lora_desc(drop ? 0.25f : 0.0f);
        size_t np = 0, ws = 0, cs = 0;
        lort_lora_desc res;
        float scale = 0.0f;
        COUNTED("lort_lora_desc_resolve", lort_lora_desc_resolve(&d, &res));
        COUNTED("lort_lora_scale", lort_lora_scale(&d, &scale));
        COUNTED("lort_lora_param_count", lort_lora_param_count(&d, &np));
        COUNTED("lort_lora_workspace_size", lort_lora_workspace_size(&d, n, &ws));
        COUNTED("lort_lora_cache_size", lort_lora_cache_size(&d, n, &cs));
        float *P = tr_alloc(np), *G = tr_alloc(np);
        float *A = P, *B = P + d.r * d.d_in, *dA = G, *dB = G + d.r * d.d_in;
        tm_io io = tm_io_make(n, ws, cs);
        float *x = io.x, *y = io.y, *dy = io.dy, *dx = io.dx, *W = io.W;
        void *work = io.work, *cache = io.cache;
        lort_rng rng;
        lort_rng_seed(&rng, 1);
        COUNTED("lort_lora_init", lort_lora_init(&d, A, B, &rng));
        d.init = LORT_LORA_INIT_GAUSSIAN;
        COUNTED("lort_lora_init (gaussian)", lort_lora_init(&d, A, B, &rng));
        d.init = LORT_LORA_INIT_DEFAULT;
        tr_fill(B, (size_t)d.d_out * (size_t)d.r);
        COUNTED("lort_lora_forward", lort_lora_forward(&d, y, x, A, B, n, cache, cs, work, ws));
        COUNTED("lort_lora_forward (no cache)",
                lort_lora_forward(&d, y, x, A, B, n, NULL, 0, work, ws));
        COUNTED("lort_lora_backward",
                lort_lora_backward(&d, dx, dA, dB, dy, x, A, B, n, cache, cs, work, ws));
        COUNTED("lort_lora_backward (no cache)",
                lort_lora_backward(&d, dx, dA, dB, dy, x, A, B, n, NULL, 0, work, ws));
        COUNTED("lort_lora_backward (dx only)",
                lort_lora_backward(&d, dx, NULL, NULL, dy, x, A, B, n, NULL, 0, work, ws));
        COUNTED("lort_lora_merge", lort_lora_merge(&d, W, A, B, 1.0f, NULL, 0));
        COUNTED("lort_lora_delta", lort_lora_delta(&d, W, A, B, NULL, 0));
        free(P);
        free(G);
        tm_io_free(&io);
    }
}

static void test_no_alloc_loraxs(void **state) {
    (void)state;
    const int n = 6;
    for (int v = 0; v < 2; ++v) {
        lort_loraxs_desc d = loraxs_desc(v ? 0.3f : 0.0f, v);
        size_t np = 0, nf = 0, ws = 0, cs = 0, iws = 0;
        lort_loraxs_desc res;
        float scale = 0.0f;
        COUNTED("lort_loraxs_desc_resolve", lort_loraxs_desc_resolve(&d, &res));
        COUNTED("lort_loraxs_scale", lort_loraxs_scale(&d, &scale));
        COUNTED("lort_loraxs_param_count", lort_loraxs_param_count(&d, &np));
        COUNTED("lort_loraxs_frozen_count", lort_loraxs_frozen_count(&d, &nf));
        COUNTED("lort_loraxs_workspace_size", lort_loraxs_workspace_size(&d, n, &ws));
        COUNTED("lort_loraxs_cache_size", lort_loraxs_cache_size(&d, n, &cs));
        COUNTED("lort_loraxs_init_workspace_size", lort_loraxs_init_workspace_size(&d, &iws));
        float *R = tr_alloc(np), *dR = tr_alloc(np), *F = tr_alloc(nf);
        float *A = F, *B = F + d.r * d.d_in;
        float *W0 = tr_rand(20u * 24u);
        tm_io io = tm_io_make(n, ws, cs);
        float *x = io.x, *y = io.y, *dy = io.dy, *dx = io.dx, *W = io.W;
        void *work = io.work, *cache = io.cache, *iw = tr_buf(iws);
        lort_rng rng;
        lort_rng_seed(&rng, 2);
        COUNTED("lort_loraxs_init", lort_loraxs_init(&d, R, A, B, W0, &rng, iw, iws));
        COUNTED("lort_loraxs_forward",
                lort_loraxs_forward(&d, y, x, R, A, B, n, cache, cs, work, ws));
        COUNTED("lort_loraxs_forward (no cache)",
                lort_loraxs_forward(&d, y, x, R, A, B, n, NULL, 0, work, ws));
        COUNTED("lort_loraxs_backward",
                lort_loraxs_backward(&d, dx, dR, dy, x, R, A, B, n, cache, cs, work, ws));
        COUNTED("lort_loraxs_backward (no cache)",
                lort_loraxs_backward(&d, dx, dR, dy, x, R, A, B, n, NULL, 0, work, ws));
        COUNTED("lort_loraxs_merge", lort_loraxs_merge(&d, W, R, A, B, -1.0f, work, ws));
        COUNTED("lort_loraxs_delta", lort_loraxs_delta(&d, W, R, A, B, work, ws));
        free(R);
        free(dR);
        free(F);
        free(W0);
        free(iw);
        tm_io_free(&io);
    }
}

static void test_no_alloc_adapter_adamw(void **state) {
    (void)state;
    const int n = 5;
    for (int kind = 0; kind < 2; ++kind) {
        lort_adapter a;
        memset(&a, 0, sizeof a);
        if (kind == 0) {
            a.kind = LORT_KIND_LORA;
            a.desc.lora = lora_desc(0.2f);
        } else {
            a.kind = LORT_KIND_LORAXS;
            a.desc.loraxs = loraxs_desc(0.2f, 0);
        }
        lort_adapter_sizes sz;
        COUNTED("lort_adapter_sizes_query", lort_adapter_sizes_query(&a, n, &sz));
        a.params = tr_alloc(sz.params);
        a.grads = tr_alloc(sz.params);
        a.frozen = sz.frozen_bytes ? tr_buf(sz.frozen_bytes) : NULL;
        void *work = tr_buf(sz.work), *cache = tr_buf(sz.cache), *iw = tr_buf(sz.init_work);
        float *W0 = tr_rand((size_t)sz.d_out * (size_t)sz.d_in),
              *W = tr_rand((size_t)sz.d_out * (size_t)sz.d_in);
        float *x = tr_rand((size_t)n * (size_t)sz.d_in),
              *dx = tr_alloc((size_t)n * (size_t)sz.d_in);
        float *y = tr_rand((size_t)n * (size_t)sz.d_out),
              *dy = tr_rand((size_t)n * (size_t)sz.d_out);
        lort_rng rng;
        lort_rng_seed(&rng, 3);
        COUNTED("lort_adapter_init", lort_adapter_init(&a, W0, &rng, iw, sz.init_work));
        tr_fill(a.params, sz.params);
        COUNTED("lort_adapter_forward",
                lort_adapter_forward(&a, y, x, n, cache, sz.cache, work, sz.work));
        COUNTED("lort_adapter_backward",
                lort_adapter_backward(&a, dx, dy, x, n, cache, sz.cache, work, sz.work));
        COUNTED("lort_adapter_backward (no cache)",
                lort_adapter_backward(&a, dx, dy, x, n, NULL, 0, work, sz.work));
        COUNTED("lort_adapter_merge", lort_adapter_merge(&a, W, 1.0f, work, sz.work));
        COUNTED("lort_adapter_delta", lort_adapter_delta(&a, W, work, sz.work));
        /* one optimizer step over the flat parameter vector */
        lort_adamw_desc opt = lort_adamw_default(1e-3f);
        float *m = tr_alloc(sz.params), *v = tr_alloc(sz.params);
        COUNTED("lort_adamw_step", lort_adamw_step(&opt, a.params, m, v, a.grads, sz.params, 1));
        COUNTED("lort_adamw_step (t=2)",
                lort_adamw_step(&opt, a.params, m, v, a.grads, sz.params, 2));
        free(m);
        free(v);
        free(a.params);
        free(a.grads);
        free(a.frozen);
        free(work);
        free(cache);
        free(iw);
        free(W0);
        free(W);
        free(x);
        free(dx);
        free(y);
        free(dy);
    }
}

/* ---- exact sizes: one byte less is refused and nothing is written -------------------------- */

static int same(const void *a, const void *b, size_t bytes) { return memcmp(a, b, bytes) == 0; }
static void *dup_bytes(const void *p, size_t bytes) {
    void *q = tr_buf(bytes);
    memcpy(q, p, bytes);
    return q;
}

/* mpo (every path and residual), DoTA init, TT-SVD, rounding and NF4: no allocation, and
   buffers of exactly the queried size at a misaligned base pointer suffice. */
static void *tm_exact(size_t bytes, unsigned char **raw) { /* base + 1: misaligned */
    *raw = (unsigned char *)tr_buf(bytes + 1);
    return *raw + 1;
}
static void test_no_alloc_mpo(void **state) {
    (void)state;
    const int n = 5;
    for (int res = 0; res < 3; ++res)
        for (int path = 1; path <= 2; ++path) {
            static const int mi[3] = {2, 3, 2}, mj[3] = {4, 1, 5};
            lort_mpo_desc d = tr_mpo_desc(3, mi, mj, 3);
            d.path = path;
            d.residual = res;
            size_t np = 0, fz = 0, ws = 0, cs = 0, iw = 0;
            COUNTED("lort_mpo_param_count", lort_mpo_param_count(&d, &np));
            COUNTED("lort_mpo_residual_size", lort_mpo_residual_size(&d, &fz));
            COUNTED("lort_mpo_workspace_size", lort_mpo_workspace_size(&d, n, &ws));
            COUNTED("lort_mpo_cache_size", lort_mpo_cache_size(&d, n, &cs));
            COUNTED("lort_mpo_init_workspace_size", lort_mpo_init_workspace_size(&d, &iw));
            unsigned char *r1, *r2, *r3;
            float *cores = tr_alloc(np), *dc = tr_alloc(np), *fr = tr_alloc(fz + 1);
            float *W0 = tr_rand(12u * 20u), *W = tr_alloc(12u * 20u), err = 0.0f;
            float *x = tr_rand((size_t)n * 20u), *dy = tr_rand((size_t)n * 12u);
            float *y = tr_alloc((size_t)n * 12u), *dx = tr_alloc((size_t)n * 20u);
            void *work = tm_exact(ws, &r1), *cache = tm_exact(cs, &r2), *iwork = tm_exact(iw, &r3);
            COUNTED("lort_mpo_init", lort_mpo_init(&d, cores, res ? fr : NULL, &err, W0, iwork, iw));
            COUNTED("lort_mpo_from_dense", lort_mpo_from_dense(&d, cores, &err, W0, iwork, iw));
            COUNTED("lort_mpo_forward", lort_mpo_forward(&d, y, x, cores, fr, n, cache, cs, work, ws));
            COUNTED("lort_mpo_forward (no cache)",
                    lort_mpo_forward(&d, y, x, cores, fr, n, NULL, 0, work, ws));
            COUNTED("lort_mpo_backward",
                    lort_mpo_backward(&d, dx, dc, dy, x, cores, fr, n, cache, cs, work, ws));
            COUNTED("lort_mpo_backward (no cache)",
                    lort_mpo_backward(&d, dx, dc, dy, x, cores, fr, n, NULL, 0, work, ws));
            COUNTED("lort_mpo_merge", lort_mpo_merge(&d, W, cores, fr, 1.0f, work, ws));
            COUNTED("lort_mpo_delta", lort_mpo_delta(&d, W, cores, fr, work, ws));
            if (ws > 64) /* one byte short is refused */
                assert_int_equal(lort_mpo_forward(&d, y, x, cores, fr, n, NULL, 0, work, ws - 1),
                                 LORT_ERR_WORKSPACE);
            lort_mpo_desc to = d;
            to.bond = 1;
            size_t rw = 0, np2 = 0;
            COUNTED("lort_mpo_round_workspace_size", lort_mpo_round_workspace_size(&d, &to, &rw));
            COUNTED("lort_mpo_param_count", lort_mpo_param_count(&to, &np2));
            unsigned char *r4;
            void *rwork = tm_exact(rw, &r4);
            float *c2 = tr_alloc(np2);
            COUNTED("lort_mpo_round", lort_mpo_round(&d, &to, c2, &err, cores, rwork, rw));
            free(r1); free(r2); free(r3); free(r4); free(cores); free(dc); free(fr); free(W0);
            free(W); free(x); free(dy); free(y); free(dx); free(c2);
        }
    /* tt form and the NF4 kernels */
    lort_tt_desc t;
    memset(&t, 0, sizeof t);
    t.rows = 6; t.cols = 10; t.n_cores = 3; t.modes[0] = 3; t.modes[1] = 4; t.modes[2] = 5; t.rank = 2;
    size_t ts = 0, tw = 0, b = 0, nw = 0;
    COUNTED("lort_tt_svd_workspace_size", lort_tt_svd_workspace_size(&t, NULL, &ts));
    COUNTED("lort_tt_round_workspace_size", lort_tt_round_workspace_size(&t, &t, &tw));
    unsigned char *r5, *r6, *r7;
    void *tsw = tm_exact(ts, &r5), *trw = tm_exact(tw, &r6);
    float *W = tr_rand(60), *c = tr_alloc(3 * 2 + 2 * 4 * 2 + 2 * 5), *c2 = tr_alloc(40), err = 0.0f;
    COUNTED("lort_tt_svd", lort_tt_svd(&t, c, &err, W, NULL, tsw, ts));
    COUNTED("lort_tt_round", lort_tt_round(&t, &t, c2, &err, c, trw, tw));
    COUNTED("lort_nf4_size", lort_nf4_size(10, 6, &b));
    COUNTED("lort_nf4_linear_workspace_size", lort_nf4_linear_workspace_size(3, 10, 6, &nw));
    void *q = tr_buf(b), *nwk = tm_exact(nw, &r7);
    float *x = tr_rand(30), *y = tr_alloc(18), *D = tr_alloc(60);
    COUNTED("lort_nf4_quantize", lort_nf4_quantize(q, W, 10, 6));
    COUNTED("lort_nf4_dequantize", lort_nf4_dequantize(D, q, 10, 6));
    COUNTED("lort_nf4_linear_forward", lort_nf4_linear_forward(y, x, q, 3, 10, 6, nwk, nw));
    COUNTED("lort_nf4_linear_backward", lort_nf4_linear_backward(x, y, q, 3, 10, 6, nwk, nw));
    free(r5); free(r6); free(r7); free(W); free(c); free(c2); free(q); free(x); free(y); free(D);
}

static void test_short_buffers_lora(void **state) {
    (void)state;
    const int n = 9;
    lort_lora_desc d = lora_desc(0.25f);
    size_t np = 0, ws = 0, cs = 0;
    assert_int_equal(lort_lora_param_count(&d, &np), LORT_OK);
    assert_int_equal(lort_lora_workspace_size(&d, n, &ws), LORT_OK);
    assert_int_equal(lort_lora_cache_size(&d, n, &cs), LORT_OK);
    assert_true(ws > 0 && cs > 0);
    float *P = tr_rand(np), *G = tr_rand(np);
    float *A = P, *B = P + d.r * d.d_in, *dA = G, *dB = G + d.r * d.d_in;
    size_t xb = (size_t)n * 24u * sizeof(float), yb = (size_t)n * 20u * sizeof(float);
    float *x = tr_rand((size_t)n * 24u), *y = tr_rand((size_t)n * 20u),
          *dy = tr_rand((size_t)n * 20u);
    float *dx = tr_rand((size_t)n * 24u);
    float *y0 = (float *)dup_bytes(y, yb), *dx0 = (float *)dup_bytes(dx, xb),
          *G0 = (float *)dup_bytes(G, np * sizeof(float));
    unsigned char *work = (unsigned char *)tr_buf(ws), *cache = (unsigned char *)tr_buf(cs);
    memset(cache, 0x5c, cs);
    unsigned char *cache0 = (unsigned char *)dup_bytes(cache, cs);

    assert_int_equal(lort_lora_forward(&d, y, x, A, B, n, cache, cs, work, ws - 1),
                     LORT_ERR_WORKSPACE);
    assert_true(same(y, y0, yb) && same(cache, cache0, cs));
    assert_int_equal(lort_lora_forward(&d, y, x, A, B, n, cache, cs - 1, work, ws), LORT_ERR_CACHE);
    assert_true(same(y, y0, yb) && same(cache, cache0, cs));
    assert_int_equal(lort_lora_forward(&d, y, x, A, B, n, cache, cs, NULL, ws), LORT_ERR_NULL);
    assert_int_equal(lort_lora_forward(&d, y, x, A, B, n, cache, cs, work, 0), LORT_ERR_WORKSPACE);
    assert_true(same(y, y0, yb) && same(cache, cache0, cs));
    assert_int_equal(lort_lora_forward(&d, y, x, A, B, n, cache, cs, work, ws), LORT_OK);
    assert_false(same(y, y0, yb)); /* it did add something */
    assert_false(same(cache, cache0, cs));

    assert_int_equal(lort_lora_backward(&d, dx, dA, dB, dy, x, A, B, n, cache, cs, work, ws - 1),
                     LORT_ERR_WORKSPACE);
    assert_true(same(dx, dx0, xb) && same(G, G0, np * sizeof(float)));
    assert_int_equal(lort_lora_backward(&d, dx, dA, dB, dy, x, A, B, n, cache, cs - 1, work, ws),
                     LORT_ERR_CACHE);
    assert_true(same(dx, dx0, xb) && same(G, G0, np * sizeof(float)));
    assert_int_equal(lort_lora_backward(&d, dx, dA, dB, dy, x, A, B, n, NULL, 0, work, ws - 1),
                     LORT_ERR_WORKSPACE);
    assert_true(same(dx, dx0, xb) && same(G, G0, np * sizeof(float)));
    assert_int_equal(lort_lora_backward(&d, dx, dA, dB, dy, x, A, B, n, cache, cs, work, ws),
                     LORT_OK);
    assert_false(same(dx, dx0, xb));
    assert_false(same(G, G0, np * sizeof(float)));

    /* the adapter interface forwards the same statuses */
    lort_adapter a;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_LORA;
    a.desc.lora = d;
    a.params = P;
    a.grads = G;
    lort_adapter_sizes sz;
    assert_int_equal(lort_adapter_sizes_query(&a, n, &sz), LORT_OK);
    assert_int_equal((long)sz.work, (long)ws);
    assert_int_equal((long)sz.cache, (long)cs);
    memcpy(y0, y, yb);
    assert_int_equal(lort_adapter_forward(&a, y, x, n, cache, cs, work, ws - 1),
                     LORT_ERR_WORKSPACE);
    assert_int_equal(lort_adapter_forward(&a, y, x, n, cache, cs - 1, work, ws), LORT_ERR_CACHE);
    assert_true(same(y, y0, yb));
    free(P);
    free(G);
    free(x);
    free(y);
    free(dy);
    free(dx);
    free(y0);
    free(dx0);
    free(G0);
    free(work);
    free(cache);
    free(cache0);
}

/* ---- tt family: the tt layer, LoRETTA_rep, LoRETTA_adp ---------------------------------- */
static lort_tt_desc tt_desc_4(int rows, int cols, int m0, int m1, int m2, int m3, int rank) {
    lort_tt_desc d;
    memset(&d, 0, sizeof d);
    d.rows = rows; d.cols = cols; d.n_cores = 4; d.rank = rank;
    d.modes[0] = m0; d.modes[1] = m1; d.modes[2] = m2; d.modes[3] = m3;
    return d;
}
static lort_adapter tt_adapter(int kind, int drop) {
    lort_adapter a;
    memset(&a, 0, sizeof a);
    a.kind = (lort_kind)kind;
    if (kind == LORT_KIND_TT_REP) {
        a.desc.tt_rep.d_in = 24; a.desc.tt_rep.d_out = 20; a.desc.tt_rep.r = 4;
        a.desc.tt_rep.alpha = 8.0f; a.desc.tt_rep.dropout = drop ? 0.25f : 0.0f;
        a.desc.tt_rep.A = tt_desc_4(0, 0, 4, 2, 3, 4, 3);   /* 96 = 24 * 4 */
        a.desc.tt_rep.B = tt_desc_4(0, 0, 2, 5, 4, 2, 2);   /* 80 = 4 * 20 */
    } else {
        a.desc.tt_adp.hidden = 24; a.desc.tt_adp.bottleneck = 4;
        a.desc.tt_adp.act = LORT_ACT_GELU; a.desc.tt_adp.dropout = drop ? 0.25f : 0.0f;
        a.desc.tt_adp.placement = drop ? LORT_TT_ADP_INPUT : LORT_TT_ADP_OUTPUT;
        a.desc.tt_adp.down = tt_desc_4(0, 0, 4, 2, 3, 4, 3);
    }
    return a;
}

static void test_no_alloc_tt(void **state) {
    (void)state;
    const int n = 5;
    {   /* the tt layer */
        lort_tt_desc d = tt_desc_4(6, 8, 2, 3, 4, 2, 3), res;
        size_t np = 0, ws = 0, cs = 0;
        COUNTED("lort_tt_desc_resolve", lort_tt_desc_resolve(&d, &res));
        COUNTED("lort_tt_param_count", lort_tt_param_count(&d, &np));
        COUNTED("lort_tt_workspace_size", lort_tt_workspace_size(&d, n, &ws));
        COUNTED("lort_tt_cache_size", lort_tt_cache_size(&d, n, &cs));
        float *c = tr_alloc(np), *dc = tr_alloc(np), *x = tr_rand((size_t)n * 6u),
              *y = tr_rand((size_t)n * 8u), *dx = tr_alloc((size_t)n * 6u), *b = tr_rand(8u),
              *db = tr_alloc(8u), *W = tr_alloc(48u);
        void *work = tr_buf(ws), *cache = tr_buf(cs);
        lort_rng rng;
        lort_rng_seed(&rng, 1);
        COUNTED("lort_tt_init", lort_tt_init(&d, c, &rng));
        COUNTED("lort_tt_to_dense", lort_tt_to_dense(&d, W, c, work, ws));
        COUNTED("lort_tt_grad_dense", lort_tt_grad_dense(&d, dc, W, c, work, ws));
        COUNTED("lort_tt_forward", lort_tt_forward(&d, y, x, c, b, n, cache, cs, work, ws));
        COUNTED("lort_tt_forward (no cache)", lort_tt_forward(&d, y, x, c, NULL, n, NULL, 0, work, ws));
        COUNTED("lort_tt_backward", lort_tt_backward(&d, dx, dc, db, y, x, c, n, cache, cs, work, ws));
        COUNTED("lort_tt_backward (no cache)",
                lort_tt_backward(&d, dx, dc, db, y, x, c, n, NULL, 0, work, ws));
        free(c); free(dc); free(x); free(y); free(dx); free(b); free(db); free(W);
        free(work); free(cache);
    }
    for (int ki = 0; ki < 2; ++ki)
        for (int drop = 0; drop < 2; ++drop) {
            int kind = ki ? LORT_KIND_TT_ADP : LORT_KIND_TT_REP;
            lort_adapter a = tt_adapter(kind, drop);
            lort_adapter_sizes sz;
            COUNTED("lort_adapter_sizes_query (tt)", lort_adapter_sizes_query(&a, n, &sz));
            a.params = tr_alloc(sz.params);
            a.grads = tr_alloc(sz.params);
            float *x = tr_rand((size_t)n * 24u), *y = tr_rand((size_t)n * 24u),
                  *dy = tr_rand((size_t)n * 24u), *dx = tr_alloc((size_t)n * 24u),
                  *W = tr_rand(24u * 24u);
            void *work = tr_buf(sz.work), *cache = tr_buf(sz.cache);
            lort_rng rng;
            lort_rng_seed(&rng, 2);
            COUNTED("lort_adapter_init (tt)", lort_adapter_init(&a, NULL, &rng, NULL, 0));
            const float *u = ki && !drop ? y : x; /* tt_adp output placement: the input is y */
            COUNTED("lort_adapter_forward (tt)",
                    lort_adapter_forward(&a, y, u, n, cache, sz.cache, work, sz.work));
            COUNTED("lort_adapter_backward (tt)",
                    lort_adapter_backward(&a, dx, dy, x, n, cache, sz.cache, work, sz.work));
            COUNTED("lort_adapter_backward (tt, no cache)",
                    lort_adapter_backward(&a, dx, dy, x, n, NULL, 0, work, sz.work));
            COUNTED("lort_adapter_forward (tt, no cache)",
                    lort_adapter_forward(&a, y, u, n, NULL, 0, work, sz.work));
            if (kind == LORT_KIND_TT_REP) {
                COUNTED("lort_tt_rep_merge", lort_adapter_merge(&a, W, 1.0f, work, sz.work));
                COUNTED("lort_tt_rep_delta", lort_adapter_delta(&a, W, work, sz.work));
            }
            free(a.params); free(a.grads); free(x); free(y); free(dy); free(dx); free(W);
            free(work); free(cache);
        }
}

/* Exact sizes work from a misaligned base; one byte short is refused and writes nothing. */
static void test_short_buffers_tt(void **state) {
    (void)state;
    const int n = 6;
    for (int ki = 0; ki < 2; ++ki)
        for (int drop = 0; drop < 2; ++drop) {
            int kind = ki ? LORT_KIND_TT_ADP : LORT_KIND_TT_REP;
            lort_adapter a = tt_adapter(kind, drop);
            lort_adapter_sizes sz;
            assert_int_equal(lort_adapter_sizes_query(&a, n, &sz), LORT_OK);
            assert_true(sz.work > 0 && sz.cache > 0);
            a.params = tr_rand(sz.params);
            a.grads = tr_rand(sz.params);
            size_t nb = (size_t)n * 24u * sizeof(float), gb = sz.params * sizeof(float);
            float *x = tr_rand((size_t)n * 24u), *y = tr_rand((size_t)n * 24u),
                  *dy = tr_rand((size_t)n * 24u), *dx = tr_rand((size_t)n * 24u);
            float *y0 = (float *)dup_bytes(y, nb), *dx0 = (float *)dup_bytes(dx, nb),
                  *g0 = (float *)dup_bytes(a.grads, gb);
            unsigned char *wb = (unsigned char *)tr_buf(sz.work + 1),
                          *cb = (unsigned char *)tr_buf(sz.cache + 1);
            unsigned char *work = wb + 1, *cache = cb + 1; /* misaligned */
            memset(cache, 0x5c, sz.cache);
            unsigned char *cache0 = (unsigned char *)dup_bytes(cache, sz.cache);
            const float *u = ki && !drop ? y : x; /* tt_adp output placement: the input is y */
            assert_int_equal(lort_adapter_forward(&a, y, u, n, cache, sz.cache, work, sz.work - 1),
                             LORT_ERR_WORKSPACE);
            assert_int_equal(lort_adapter_forward(&a, y, u, n, cache, sz.cache - 1, work, sz.work),
                             LORT_ERR_CACHE);
            assert_true(same(y, y0, nb) && same(cache, cache0, sz.cache));
            assert_int_equal(lort_adapter_forward(&a, y, u, n, cache, sz.cache, work, sz.work),
                             LORT_OK);
            assert_false(same(y, y0, nb));
            assert_int_equal(lort_adapter_backward(&a, dx, dy, x, n, cache, sz.cache, work,
                                                   sz.work - 1), LORT_ERR_WORKSPACE);
            assert_int_equal(lort_adapter_backward(&a, dx, dy, x, n, cache, sz.cache - 1, work,
                                                   sz.work), LORT_ERR_CACHE);
            assert_true(same(dx, dx0, nb) && same(a.grads, g0, gb));
            assert_int_equal(lort_adapter_backward(&a, dx, dy, x, n, cache, sz.cache, work,
                                                   sz.work), LORT_OK);
            assert_false(same(dx, dx0, nb));
            assert_false(same(a.grads, g0, gb));
            if (kind == LORT_KIND_TT_REP) {
                float *W = tr_rand(24u * 20u), *W0 = (float *)dup_bytes(W, 480u * sizeof(float));
                size_t ws1 = 0;
                assert_int_equal(lort_tt_rep_workspace_size(&a.desc.tt_rep, 1, &ws1), LORT_OK);
                assert_int_equal(lort_adapter_merge(&a, W, 1.0f, work, ws1 - 1), LORT_ERR_WORKSPACE);
                assert_true(same(W, W0, 480u * sizeof(float)));
                assert_int_equal(lort_adapter_merge(&a, W, 1.0f, work, ws1), LORT_OK);
                free(W); free(W0);
            }
            free(a.params); free(a.grads); free(x); free(y); free(dy); free(dx); free(y0);
            free(dx0); free(g0); free(wb); free(cb); free(cache0);
        }
}

static void test_short_buffers_loraxs(void **state) {
    (void)state;
    const int n = 8;
    lort_loraxs_desc d = loraxs_desc(0.1f, 0);
    size_t np = 0, nf = 0, ws = 0, cs = 0, iws = 0;
    assert_int_equal(lort_loraxs_param_count(&d, &np), LORT_OK);
    assert_int_equal(lort_loraxs_frozen_count(&d, &nf), LORT_OK);
    assert_int_equal(lort_loraxs_workspace_size(&d, n, &ws), LORT_OK);
    assert_int_equal(lort_loraxs_cache_size(&d, n, &cs), LORT_OK);
    assert_int_equal(lort_loraxs_init_workspace_size(&d, &iws), LORT_OK);
    float *R = tr_rand(np), *F = tr_rand(nf), *W0 = tr_rand(20u * 24u);
    float *A = F, *B = F + d.r * d.d_in;
    float *R0 = (float *)dup_bytes(R, np * sizeof(float)),
          *F0 = (float *)dup_bytes(F, nf * sizeof(float));
    unsigned char *iw = (unsigned char *)tr_buf(iws);
    lort_rng rng;
    lort_rng_seed(&rng, 4);
    assert_int_equal(lort_loraxs_init(&d, R, A, B, W0, &rng, iw, iws - 1), LORT_ERR_WORKSPACE);
    assert_true(same(R, R0, np * sizeof(float)) && same(F, F0, nf * sizeof(float)));
    assert_int_equal(lort_loraxs_init(&d, R, A, B, W0, &rng, iw, iws), LORT_OK);
    assert_false(same(F, F0, nf * sizeof(float)));
    tr_fill(R, np);

    size_t xb = (size_t)n * 24u * sizeof(float), yb = (size_t)n * 20u * sizeof(float),
           wb = 20u * 24u * sizeof(float);
    float *x = tr_rand((size_t)n * 24u), *y = tr_rand((size_t)n * 20u),
          *dy = tr_rand((size_t)n * 20u);
    float *dx = tr_rand((size_t)n * 24u), *dR = tr_rand(np), *W = tr_rand(20u * 24u);
    float *y0 = (float *)dup_bytes(y, yb), *dx0 = (float *)dup_bytes(dx, xb),
          *dR0 = (float *)dup_bytes(dR, np * sizeof(float));
    float *Wc = (float *)dup_bytes(W, wb);
    unsigned char *work = (unsigned char *)tr_buf(ws), *cache = (unsigned char *)tr_buf(cs);
    assert_int_equal(lort_loraxs_forward(&d, y, x, R, A, B, n, cache, cs, work, ws - 1),
                     LORT_ERR_WORKSPACE);
    assert_int_equal(lort_loraxs_forward(&d, y, x, R, A, B, n, cache, cs - 1, work, ws),
                     LORT_ERR_CACHE);
    assert_true(same(y, y0, yb));
    assert_int_equal(lort_loraxs_forward(&d, y, x, R, A, B, n, cache, cs, work, ws), LORT_OK);
    assert_false(same(y, y0, yb));
    assert_int_equal(lort_loraxs_backward(&d, dx, dR, dy, x, R, A, B, n, cache, cs, work, ws - 1),
                     LORT_ERR_WORKSPACE);
    assert_int_equal(lort_loraxs_backward(&d, dx, dR, dy, x, R, A, B, n, cache, cs - 1, work, ws),
                     LORT_ERR_CACHE);
    assert_true(same(dx, dx0, xb) && same(dR, dR0, np * sizeof(float)));
    assert_int_equal(lort_loraxs_backward(&d, dx, dR, dy, x, R, A, B, n, cache, cs, work, ws),
                     LORT_OK);
    assert_false(same(dx, dx0, xb));
    /* merge and delta take a workspace "of that family at n rows" for any n >= 1: the least
       is the size at n = 1, and one byte less is refused */
    size_t ws1 = 0;
    assert_int_equal(lort_loraxs_workspace_size(&d, 1, &ws1), LORT_OK);
    assert_true(ws1 <= ws);
    assert_int_equal(lort_loraxs_merge(&d, W, R, A, B, 1.0f, work, ws1 - 1), LORT_ERR_WORKSPACE);
    assert_int_equal(lort_loraxs_delta(&d, W, R, A, B, work, ws1 - 1), LORT_ERR_WORKSPACE);
    assert_true(same(W, Wc, wb));
    assert_int_equal(lort_loraxs_merge(&d, W, R, A, B, 1.0f, work, ws1), LORT_OK);
    assert_false(same(W, Wc, wb));
    memcpy(Wc, W, wb);
    assert_int_equal(lort_loraxs_delta(&d, W, R, A, B, work, ws1), LORT_OK);
    assert_false(same(W, Wc, wb));
    /* adapter interface: init workspace too */
    lort_adapter a;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_LORAXS;
    a.desc.loraxs = d;
    a.params = R;
    a.frozen = F;
    lort_adapter_sizes sz;
    assert_int_equal(lort_adapter_sizes_query(&a, n, &sz), LORT_OK);
    assert_int_equal((long)sz.init_work, (long)iws);
    memcpy(F0, F, nf * sizeof(float));
    memcpy(R0, R, np * sizeof(float));
    assert_int_equal(lort_adapter_init(&a, W0, &rng, iw, iws - 1), LORT_ERR_WORKSPACE);
    assert_true(same(R, R0, np * sizeof(float)) && same(F, F0, nf * sizeof(float)));
    memcpy(Wc, W, wb);
    assert_int_equal(lort_adapter_merge(&a, W, 1.0f, work, ws1 - 1), LORT_ERR_WORKSPACE);
    assert_int_equal(lort_adapter_delta(&a, W, work, ws1 - 1), LORT_ERR_WORKSPACE);
    assert_true(same(W, Wc, wb));
    free(R);
    free(F);
    free(W0);
    free(R0);
    free(F0);
    free(iw);
    free(x);
    free(y);
    free(dy);
    free(dx);
    free(dR);
    free(W);
    free(y0);
    free(dx0);
    free(dR0);
    free(Wc);
    free(work);
    free(cache);
}

static void test_short_buffers_svd(void **state) {
    (void)state;
    enum { M = 30, N = 22, R = 4 };
    float *W = tr_rand(M * N), *U = tr_rand(M * N), *S = tr_rand(N), *Vt = tr_rand(N * N);
    float *U0 = (float *)dup_bytes(U, sizeof(float) * M * N),
          *S0 = (float *)dup_bytes(S, sizeof(float) * N);
    float *Vt0 = (float *)dup_bytes(Vt, sizeof(float) * N * N);
    for (int v = 0; v < 3; ++v) {
        lort_svd_opts o;
        memset(&o, 0, sizeof o);
        o.exact = v == 1;
        o.oversample = 4;
        size_t ws = 0;
        if (v < 2)
            assert_int_equal(lort_svd_truncated_workspace_size(M, N, R, &o, &ws), LORT_OK);
        else
            assert_int_equal(lort_svd_jacobi_workspace_size(M, N, &ws), LORT_OK);
        void *w = tr_buf(ws);
        lort_status st = v < 2 ? lort_svd_truncated(U, S, Vt, W, N, M, N, R, &o, w, ws - 1)
                               : lort_svd_jacobi(U, S, Vt, W, N, M, N, 60, w, ws - 1);
        assert_int_equal(st, LORT_ERR_WORKSPACE);
        assert_true(same(U, U0, sizeof(float) * M * N) && same(S, S0, sizeof(float) * N) &&
                    same(Vt, Vt0, sizeof(float) * N * N));
        st = v < 2 ? lort_svd_truncated(U, S, Vt, W, N, M, N, R, &o, w, ws)
                   : lort_svd_jacobi(U, S, Vt, W, N, M, N, 60, w, ws);
        assert_int_equal(st, LORT_OK);
        memcpy(U, U0, sizeof(float) * M * N);
        memcpy(S, S0, sizeof(float) * N);
        memcpy(Vt, Vt0, sizeof(float) * N * N);
        free(w);
    }
    free(W);
    free(U);
    free(S);
    free(Vt);
    free(U0);
    free(S0);
    free(Vt0);
}

/* ---- misaligned base pointers with exactly the queried size ---------------------------------- */

/* A buffer of `size` usable bytes. tail == 0: an exact allocation starting `off` bytes into
   it (ASan sees any overrun). tail > 0: placed so that its address is `off` modulo 64 (so an
   offset of 1 needs the full 63 bytes of alignment slack), with guard bytes before and `tail`
   guard bytes after it that must stay untouched. */
typedef struct mbuf {
    unsigned char *raw, *p;
    size_t size, front, tail;
} mbuf;
static mbuf mb_make(size_t size, size_t off, size_t tail) {
    mbuf b;
    size_t total = tail ? 64 + size + tail : off + size;
    b.raw = (unsigned char *)tr_buf(total);
    memset(b.raw, 0xa5, total);
    if (tail) {
        size_t mis = (size_t)((uintptr_t)b.raw % 64u);
        b.front = (off + 64u - mis) % 64u;
    } else {
        b.front = off;
    }
    b.p = b.raw + b.front;
    b.size = size;
    b.tail = tail;
    if (tail) assert_int_equal((int)((uintptr_t)b.p % 64u), (int)(off % 64u));
    return b;
}
static int mb_guards_ok(const mbuf *b) {
    for (size_t i = 0; i < b->front; ++i)
        if (b->raw[i] != 0xa5) return 0;
    for (size_t i = 0; i < b->tail; ++i)
        if (b->p[b->size + i] != 0xa5) return 0;
    return 1;
}

static int close_or_same(const char *label, const float *got, const float *want, size_t count) {
#ifdef LORT_NO_BLAS
    if (memcmp(got, want, count * sizeof(float)) != 0) {
        printf("  %s: results depend on the buffer alignment\n", label);
        return 0;
    }
    return 1;
#else
    return cmp_ff(label, got, want, count, 1e-6, 1e-5);
#endif
}

static void test_misaligned(void **state) {
    (void)state;
    static const size_t offs[] = {0, 1, 3, 17, 63};
    /* n = 8, d_in = 24: the masked-x slot (the last one of lora's workspace) is 768 bytes, a
       multiple of 64, so at offset 1 the kernel uses every byte up to base + size */
    const int n = 8;
    lort_lora_desc d = lora_desc(0.25f);
    lort_loraxs_desc dx_ = loraxs_desc(0.25f, 0);
    size_t np = 0, ws = 0, cs = 0, xws = 0, xcs = 0, xiws = 0;
    assert_int_equal(lort_lora_param_count(&d, &np), LORT_OK);
    assert_int_equal(lort_lora_workspace_size(&d, n, &ws), LORT_OK);
    assert_int_equal(lort_lora_cache_size(&d, n, &cs), LORT_OK);
    assert_int_equal(lort_loraxs_workspace_size(&dx_, n, &xws), LORT_OK);
    assert_int_equal(lort_loraxs_cache_size(&dx_, n, &xcs), LORT_OK);
    assert_int_equal(lort_loraxs_init_workspace_size(&dx_, &xiws), LORT_OK);
    tr_seed(77);
    float *P = tr_rand(np), *x = tr_rand((size_t)n * 24u), *y0 = tr_rand((size_t)n * 20u);
    float *dy = tr_rand((size_t)n * 20u), *W0 = tr_rand(20u * 24u);
    float *A = P, *B = P + d.r * d.d_in;
    size_t ny = (size_t)n * 20u, nx = (size_t)n * 24u;
    float *yr = tr_alloc(ny), *dxr = tr_alloc(nx), *Gr = tr_alloc(np), *Ar = tr_alloc(4u * 24u);
    float *Br = tr_alloc(20u * 4u), *Rr = tr_alloc(16), *yxr = tr_alloc(ny), *Sr = tr_alloc(4);
    float *y = tr_alloc(ny), *dxx = tr_alloc(nx), *G = tr_alloc(np), *Ax = tr_alloc(4u * 24u);
    float *Bx = tr_alloc(20u * 4u), *Rx = tr_alloc(16), *S = tr_alloc(4), *U = tr_alloc(20u * 4u);
    float *Vt = tr_alloc(4u * 24u), *Ur = tr_alloc(20u * 4u), *Vtr = tr_alloc(4u * 24u);
    lort_svd_opts so;
    memset(&so, 0, sizeof so);
    so.oversample = 3;
    size_t sws = 0;
    assert_int_equal(lort_svd_truncated_workspace_size(20, 24, 4, &so, &sws), LORT_OK);
    int ok = 1;
    for (size_t oi = 0; oi < sizeof offs / sizeof offs[0]; ++oi)
        for (size_t tail = 0; tail <= 64; tail += 64) {
            size_t off = offs[oi];
            char label[64];
            snprintf(label, sizeof label, "offset %zu tail %zu", off, tail);
            mbuf w = mb_make(ws, off, tail), xw = mb_make(xws, (off * 5u) % 64u, tail);
            mbuf c = mb_make(cs, (off * 7u) % 64u, tail), xc = mb_make(xcs, off, tail);
            mbuf iw = mb_make(xiws, off, tail), sw = mb_make(sws, off, tail);
            /* lora forward + backward with cache */
            memcpy(y, y0, ny * sizeof(float));
            memset(dxx, 0, nx * sizeof(float));
            memset(G, 0, np * sizeof(float));
            assert_int_equal(lort_lora_forward(&d, y, x, A, B, n, c.p, cs, w.p, ws), LORT_OK);
            assert_int_equal(
                lort_lora_backward(&d, dxx, G, G + d.r * d.d_in, dy, x, A, B, n, c.p, cs, w.p, ws),
                LORT_OK);
            /* loraxs init, forward */
            lort_rng rng;
            lort_rng_seed(&rng, 9);
            assert_int_equal(lort_loraxs_init(&dx_, Rx, Ax, Bx, W0, &rng, iw.p, xiws), LORT_OK);
            float *yx = tr_alloc(ny);
            memcpy(yx, y0, ny * sizeof(float));
            assert_int_equal(lort_loraxs_forward(&dx_, yx, x, Rx, Ax, Bx, n, xc.p, xcs, xw.p, xws),
                             LORT_OK);
            /* SVD */
            assert_int_equal(lort_svd_truncated(U, S, Vt, W0, 24, 20, 24, 4, &so, sw.p, sws),
                             LORT_OK);
            if (oi == 0 && tail == 0) { /* reference run */
                memcpy(yr, y, ny * sizeof(float));
                memcpy(dxr, dxx, nx * sizeof(float));
                memcpy(Gr, G, np * sizeof(float));
                memcpy(Ar, Ax, 96 * sizeof(float));
                memcpy(Br, Bx, 80 * sizeof(float));
                memcpy(Rr, Rx, 16 * sizeof(float));
                memcpy(yxr, yx, ny * sizeof(float));
                memcpy(Sr, S, 4 * sizeof(float));
                memcpy(Ur, U, 80 * sizeof(float));
                memcpy(Vtr, Vt, 96 * sizeof(float));
            } else {
                ok &= close_or_same(label, y, yr, ny) && close_or_same(label, dxx, dxr, nx) &&
                      close_or_same(label, G, Gr, np) && close_or_same(label, Ax, Ar, 96) &&
                      close_or_same(label, Bx, Br, 80) && close_or_same(label, Rx, Rr, 16) &&
                      close_or_same(label, yx, yxr, ny) && close_or_same(label, S, Sr, 4) &&
                      close_or_same(label, U, Ur, 80) && close_or_same(label, Vt, Vtr, 96);
            }
            if (!mb_guards_ok(&w) || !mb_guards_ok(&c) || !mb_guards_ok(&xw) ||
                !mb_guards_ok(&xc) || !mb_guards_ok(&iw) || !mb_guards_ok(&sw)) {
                printf("  %s: a kernel wrote outside its [base, base + size) buffer\n", label);
                ok = 0;
            }
            free(yx);
            free(w.raw);
            free(c.raw);
            free(xw.raw);
            free(xc.raw);
            free(iw.raw);
            free(sw.raw);
        }
    assert_true(ok);
    /* sanity: without dropout, the exact-size forward equals the double reference
       y0 + s x A^T B^T, s = alpha / r = 2 */
    lort_lora_desc d0 = lora_desc(0.0f);
    size_t ws0 = 0;
    assert_int_equal(lort_lora_workspace_size(&d0, n, &ws0), LORT_OK);
    mbuf w0 = mb_make(ws0, 5, 0);
    memcpy(y, y0, ny * sizeof(float));
    assert_int_equal(lort_lora_forward(&d0, y, x, A, B, n, NULL, 0, w0.p, ws0), LORT_OK);
    double *H = td_alloc((size_t)n * 4u), *want = td_alloc(ny);
    ref_gemm(0, 1, n, 4, 24, x, 24, A, 24, H);
    for (int i = 0; i < n; ++i)
        for (int o = 0; o < 20; ++o) {
            double acc = (double)y0[(size_t)i * 20u + (size_t)o];
            for (int k = 0; k < 4; ++k)
                acc += 2.0 * H[(size_t)i * 4u + (size_t)k] * (double)B[(size_t)o * 4u + (size_t)k];
            want[(size_t)i * 20u + (size_t)o] = acc;
        }
    assert_true(cmp_fd("lora forward (exact workspace, offset 5)", y, want, ny, 1e-5, 1e-5));
    free(H);
    free(want);
    free(w0.raw);
    free(P);
    free(x);
    free(y0);
    free(dy);
    free(W0);
    free(yr);
    free(dxr);
    free(Gr);
    free(Ar);
    free(Br);
    free(Rr);
    free(yxr);
    free(Sr);
    free(y);
    free(dxx);
    free(G);
    free(Ax);
    free(Bx);
    free(Rx);
    free(S);
    free(U);
    free(Vt);
    free(Ur);
    free(Vtr);
}

/* ---- lort_alloc goes through LORT_MALLOC / LORT_FREE (or the given allocator) ---------------- */
static int custom_allocs, custom_frees;
static void *custom_alloc(size_t bytes, void *user) {
    (void)user;
    custom_allocs++;
    return malloc(bytes);
}
static void custom_free(void *p, void *user) {
    (void)user;
    custom_frees++;
    free(p);
}
static void *failing_alloc(size_t bytes, void *user) {
    (void)bytes;
    (void)user;
    custom_allocs++;
    return NULL;
}

static void test_alloc_spy(void **state) {
    (void)state;
    void *p = NULL;
    lort_test_spy_mallocs = lort_test_spy_frees = 0;
    assert_int_equal(lort_alloc(NULL, 128, &p), LORT_OK);
    assert_non_null(p);
    assert_int_equal(lort_test_spy_mallocs, 1);
    assert_int_equal(lort_test_spy_frees, 0);
    memset(p, 1, 128);
    lort_free(NULL, p);
    assert_int_equal(lort_test_spy_frees, 1);
    lort_free(NULL, NULL);
    assert_int_equal(lort_test_spy_frees, 1);
    /* a custom allocator replaces LORT_MALLOC entirely */
    lort_allocator al = {NULL, custom_alloc, custom_free};
    assert_int_equal(lort_alloc(&al, 64, &p), LORT_OK);
    lort_free(&al, p);
    assert_int_equal(custom_allocs, 1);
    assert_int_equal(custom_frees, 1);
    assert_int_equal(lort_test_spy_mallocs, 1);
    assert_int_equal(lort_test_spy_frees, 1);
    lort_allocator bad = {NULL, failing_alloc, custom_free};
    p = &p;
    assert_int_equal(lort_alloc(&bad, 64, &p), LORT_ERR_OUT_OF_MEMORY);
    assert_null(p);
    assert_int_equal(custom_allocs, 2);
    assert_int_equal(lort_test_spy_mallocs, 1);
    /* bytes = 0 never reaches an allocator */
    assert_int_equal(lort_alloc(NULL, 0, &p), LORT_ERR_INVALID_ARG);
    assert_int_equal(lort_test_spy_mallocs, 1);
#ifdef TM_INTERPOSE
    /* with LORT_MALLOC defined, lort_alloc does not call malloc itself beyond the spy's one */
    tm_begin();
    assert_int_equal(lort_alloc(NULL, 32, &p), LORT_OK);
    tm_counting = 0;
    assert_int_equal(tm_allocs, 1);
    assert_int_equal(lort_test_spy_mallocs, 1);
    lort_free(NULL, p);
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interposer_works),   cmocka_unit_test(test_interposer_blas),
        cmocka_unit_test(test_no_alloc_tt),        cmocka_unit_test(test_short_buffers_tt),
        cmocka_unit_test(test_no_alloc_gemm_svd),  cmocka_unit_test(test_no_alloc_lora),
        cmocka_unit_test(test_no_alloc_loraxs),    cmocka_unit_test(test_no_alloc_adapter_adamw),
        cmocka_unit_test(test_short_buffers_lora), cmocka_unit_test(test_short_buffers_loraxs),
        cmocka_unit_test(test_short_buffers_svd),  cmocka_unit_test(test_misaligned),
        cmocka_unit_test(test_alloc_spy),          cmocka_unit_test(test_no_alloc_mpo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
