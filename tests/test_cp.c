/* Joint tensor adapters cp (LoRTA) and tucker: what is specific to the families. The generic
   checks (forward, delta, merge of every site against the double reference of
   tests/lort_ref.h, backward against central differences per site and summed over sites,
   cache, accumulation, fewer rows, exact buffers, untouched outputs, the init distributions)
   run on the cases of tests/lort_cases.h in tests/test_conformance.c, both evaluation paths
   (through Bk, and per head stacked) and both head sides, GQA included.
   Here: workspace monotonicity, no allocation at odd addresses, the counts, the head-side and
   GQA conventions against each other, init specifics, error statuses, the generic interface
   bit-exact against the family calls, CP == superdiagonal Tucker, LoTR and FacT-TK against
   their own papers' formulas:
     - LoTR: dY = (s/r) ((X V) G_l^T) U^T and its backward; FacT-TK:
       dY = s (X U^T K_m) V^T, K_m = C x_3 p_m.
   Tolerances are relative to the largest entry of the reference array ("norm tol"):
     forward 2e-5, gradients 1e-4, CP == superdiagonal Tucker 1e-5. */
/* Allocation spies (as tests/test_memory.c): LORT_MALLOC/LORT_FREE count in every build; in
   the LORT_NO_BLAS build on glibc without ASan the malloc family is interposed too, counting
   only inside tm_begin/tm_end, so a kernel calling malloc directly is caught. (With BLAS the
   interposer is left out: OpenBLAS keeps its own buffer pool.) */
#define TM_NO_BLAS_INTERPOSE 1
#include "alloc_spy.h"


#include "lort_cases.h"

typedef struct {
    jcase c;
    lort_cp_desc cd;
    lort_tucker_desc td;
    int dh, M, kv;
    unsigned kvmask;
    double s;
    size_t np, oA, oB, oH, oL, oM;
    float *P;     /* params */
    double *Pd;   /* double copy */
    int nsites;
    float **x, **y0, **G;   /* per site (layer-major: site = l M + m) */
    double **Mk;            /* dropout mask (n, d), same for every site (same seed) */
} jset;

static int site_nh(const jset *S, int m) {
    return (m < 32 && ((S->kvmask >> m) & 1u)) ? S->kv : S->c.H;
}
static int site_dout(const jset *S, int m) { return S->c.heads_in ? S->c.d : site_nh(S, m) * S->dh; }

static void jset_make(jset *S, const jcase *c, uint64_t seed) {
    memset(S, 0, sizeof *S);
    S->c = *c;
    S->dh = c->d / c->H;
    S->M = c->M;
    S->kv = c->kv ? c->kv : c->H;
    S->kvmask = c->kvmask ? c->kvmask : 6u;
    double a = is_zero_f(c->alpha) ? (double)c->r1 : (double)c->alpha;
    S->s = c->rslora ? a / sqrt((double)c->r1) : a / (double)c->r1;
    size_t core = c->tucker ? zu(c->r1) * zu(c->r2) * zu(c->rh) * zu(c->rl) * zu(c->rm) : 0;
    S->oA = core;
    S->oB = S->oA + zu(c->d) * zu(c->r1);
    S->oH = S->oB + zu(c->r2) * zu(S->dh);
    S->oL = S->oH + zu(c->H) * zu(c->rh);
    S->oM = S->oL + zu(c->L) * zu(c->rl);
    S->np = S->oM + zu(c->M) * zu(c->rm);
    if (c->tucker) {
        lort_tucker_desc *t = &S->td;
        t->d = c->d; t->heads = c->H; t->layers = c->L; t->matrices = c->M == 4 ? 0 : c->M;
        t->r1 = c->r1; t->r2 = c->r2; t->rh = c->rh; t->rl = c->rl; t->rm = c->rm;
        t->alpha = c->alpha; t->rslora = c->rslora; t->dropout = c->p;
        t->dropout_seed = 77u + seed; t->head_side = c->heads_in; t->kv_heads = c->kv;
        t->kv_matrices = c->kvmask;
    } else {
        lort_cp_desc *t = &S->cd;
        t->d = c->d; t->heads = c->H; t->layers = c->L; t->matrices = c->M == 4 ? 0 : c->M;
        t->r = c->r1; t->alpha = c->alpha; t->rslora = c->rslora; t->dropout = c->p;
        t->dropout_seed = 77u + seed; t->head_side = c->heads_in; t->kv_heads = c->kv;
        t->kv_matrices = c->kvmask;
    }
    tr_seed(seed * 31u + 5u);
    S->P = tr_rand(S->np);
    S->Pd = td_alloc(S->np);
    for (size_t i = 0; i < S->np; ++i) S->Pd[i] = (double)S->P[i];
    S->nsites = c->L * c->M;
    S->x = (float **)calloc(zu(S->nsites), sizeof(float *));
    S->y0 = (float **)calloc(zu(S->nsites), sizeof(float *));
    S->G = (float **)calloc(zu(S->nsites), sizeof(float *));
    for (int st = 0; st < S->nsites; ++st) {
        int m = st % c->M;
        S->x[st] = tr_rand(zu(c->n) * zu(c->d));
        S->y0[st] = tr_rand(zu(c->n) * zu(site_dout(S, m)));
        S->G[st] = tr_rand(zu(c->n) * zu(site_dout(S, m)));
    }
    S->Mk = (double **)calloc(1, sizeof(double *));
    S->Mk[0] = td_alloc(zu(c->n) * zu(c->d));
    for (int i = 0; i < c->n; ++i)
        for (int j = 0; j < c->d; ++j)
            S->Mk[0][IX(i, c->d, j)] = c->p > 0.0f ? (double)lort_dropout_factor(77u + seed, c->p, (uint64_t)i, (uint64_t)j) : 1.0;
}
static void jset_free(jset *S) {
    for (int st = 0; st < S->nsites; ++st) { free(S->x[st]); free(S->y0[st]); free(S->G[st]); }
    free(S->x); free(S->y0); free(S->G); free(S->Mk[0]); free(S->Mk); free(S->P); free(S->Pd);
}

/* ---- library calls by family -------------------------------------------------------------- */
static lort_status j_ws(const jset *S, int n, size_t *b) {
    return S->c.tucker ? lort_tucker_workspace_size(&S->td, n, b) : lort_cp_workspace_size(&S->cd, n, b);
}
static lort_status j_cs(const jset *S, int n, size_t *b) {
    return S->c.tucker ? lort_tucker_cache_size(&S->td, n, b) : lort_cp_cache_size(&S->cd, n, b);
}
static lort_status j_fwd(const jset *S, float *y, const float *x, const float *P, int l, int m,
                         int n, void *c, size_t cs, void *w, size_t ws) {
    return S->c.tucker ? lort_tucker_forward(&S->td, y, x, P, l, m, n, c, cs, w, ws)
                       : lort_cp_forward(&S->cd, y, x, P, l, m, n, c, cs, w, ws);
}
static lort_status j_bwd(const jset *S, float *dx, float *dP, const float *dy, const float *x,
                         const float *P, int l, int m, int n, const void *c, size_t cs, void *w,
                         size_t ws) {
    return S->c.tucker ? lort_tucker_backward(&S->td, dx, dP, dy, x, P, l, m, n, c, cs, w, ws)
                       : lort_cp_backward(&S->cd, dx, dP, dy, x, P, l, m, n, c, cs, w, ws);
}
static lort_status j_delta(const jset *S, float *dW, const float *P, int l, int m, void *w,
                           size_t ws) {
    return S->c.tucker ? lort_tucker_delta(&S->td, dW, P, l, m, w, ws)
                       : lort_cp_delta(&S->cd, dW, P, l, m, w, ws);
}
static lort_status j_merge(const jset *S, float *W, const float *P, int l, int m, float wt,
                           void *w, size_t ws) {
    return S->c.tucker ? lort_tucker_merge(&S->td, W, P, l, m, wt, w, ws)
                       : lort_cp_merge(&S->cd, W, P, l, m, wt, w, ws);
}

/* ---- parameter counts (the MATH section of lortensor.h) ------------------------- */
/* the workspace never shrinks as n grows (either path), so a buffer for n rows serves any
   call with fewer rows, and merge/delta with it */
static void test_cp_workspace_monotone(void **state) {
    (void)state;
    static const int rr[] = {8, 64, 235};
    for (int hi = 0; hi < 2; ++hi)
        for (size_t k = 0; k < 3; ++k) {
            lort_cp_desc d;
            memset(&d, 0, sizeof d);
            d.d = 4096; d.heads = 32; d.layers = 32; d.r = rr[k]; d.head_side = hi; d.dropout = 0.1f;
            size_t prev = 0, ws = 0;
            for (int n = 1; n <= 300; ++n) {
                OK(lort_cp_workspace_size(&d, n, &ws));
                assert_true(ws >= prev);
                prev = ws;
            }
        }
    /* a small case where n = 1 takes the stacked path and n = 3 does not */
    jset S;
    jset_make(&S, &CP_CASES[0], 5u);
    size_t ws = 0;
    OK(j_ws(&S, 3, &ws));
    void *w = tr_buf(ws);
    float *y = tr_alloc(3u * 8u), *dP = tr_alloc(S.np), *dW = tr_alloc(64);
    for (int n = 1; n <= 3; ++n) {
        OK(j_fwd(&S, y, S.x[0], S.P, 0, 0, n, NULL, 0, w, ws));
        OK(j_bwd(&S, y, dP, S.G[0], S.x[0], S.P, 0, 0, n, NULL, 0, w, ws));
    }
    OK(j_delta(&S, dW, S.P, 1, 3, w, ws));
    free(w); free(y); free(dP); free(dW);
    jset_free(&S);
}

/* no kernel allocates (every verb of both families, every path); buffers at any alignment
   give bit-identical results */
static void test_cp_no_alloc_unaligned(void **state) {
    (void)state;
    static const int which[] = {0, 1, 2, 7, 8};   /* Bk path out/in, GQA, stacked, stacked+GQA */
    static const int which_t[] = {0, 1, 2, 5, 6};
    for (int f = 0; f < 2; ++f)
        for (size_t w = 0; w < 5u; ++w) {
            const jcase *c = f ? &TK_CASES[which_t[w]] : &CP_CASES[which[w]];
            jset S;
            jset_make(&S, c, 60u + w);
            size_t ws = 0, cs = 0;
            OK(j_ws(&S, c->n, &ws)); OK(j_cs(&S, c->n, &cs));
            int dout = site_dout(&S, 1);
            size_t ny = zu(c->n) * zu(dout), nx = zu(c->n) * zu(c->d), nw = zu(dout) * zu(c->d);
            char *wb = (char *)tr_buf(ws + 64), *cb = (char *)tr_buf(cs + 64);
            float *y[2], *dx[2], *dP[2], *W[2];
            for (int k = 0; k < 2; ++k) {
                y[k] = tr_alloc(ny); dx[k] = tr_alloc(nx); dP[k] = tr_alloc(S.np); W[k] = tr_alloc(nw);
            }
            for (int k = 0; k < 2; ++k) {
                size_t off = k ? 13u : 0u; /* an odd byte offset */
                void *wk = wb + off, *ck = cb + off;
                tm_begin(); tm_end("cp", j_fwd(&S, y[k], S.x[0], S.P, 0, 1, c->n, ck, cs, wk, ws));
                tm_begin(); tm_end("cp", j_bwd(&S, dx[k], dP[k], S.G[0], S.x[0], S.P, 0, 1, c->n, ck, cs, wk, ws));
                tm_begin(); tm_end("cp", j_bwd(&S, dx[k], dP[k], S.G[0], S.x[0], S.P, 0, 1, c->n, NULL, 0, wk, ws));
                tm_begin(); tm_end("cp", j_delta(&S, W[k], S.P, 0, 1, wk, ws));
                tm_begin(); tm_end("cp", j_merge(&S, W[k], S.P, 0, 1, 0.5f, wk, ws));
            }
            assert_int_equal(memcmp(y[0], y[1], ny * sizeof(float)), 0);
            assert_int_equal(memcmp(dx[0], dx[1], nx * sizeof(float)), 0);
            assert_int_equal(memcmp(dP[0], dP[1], S.np * sizeof(float)), 0);
            assert_int_equal(memcmp(W[0], W[1], nw * sizeof(float)), 0);
            lort_rng rng;
            lort_rng_seed(&rng, 1u);
            tm_begin();
            tm_end("cp", f ? lort_tucker_init(&S.td, dP[0], &rng) : lort_cp_init(&S.cd, dP[0], &rng));
            for (int k = 0; k < 2; ++k) { free(y[k]); free(dx[k]); free(dP[k]); free(W[k]); }
            free(wb); free(cb);
            jset_free(&S);
        }
}

static void test_cp_counts(void **state) {
    (void)state;
    lort_cp_desc d;
    size_t np = 0;
    memset(&d, 0, sizeof d);
    d.d = 4096; d.heads = 32; d.layers = 32; d.r = 8;   /* LLaMA-2-7B */
    OK(lort_cp_param_count(&d, &np));
    assert_int_equal(np, 34336);
    d.r = 48; OK(lort_cp_param_count(&d, &np)); assert_int_equal(np, 206016);
    d.r = 235; OK(lort_cp_param_count(&d, &np)); assert_int_equal(np, 1008620);
    d.r = 1; OK(lort_cp_param_count(&d, &np)); assert_int_equal(np, 4292);
    static const int rb[] = {1, 4, 8, 16, 48, 96, 192, 235, 384, 768};
    for (size_t i = 0; i < sizeof rb / sizeof rb[0]; ++i) {
        memset(&d, 0, sizeof d);
        d.d = 768; d.heads = 12; d.layers = 12; d.r = rb[i];   /* RoBERTa-base: 860 r */
        OK(lort_cp_param_count(&d, &np)); assert_int_equal(np, 860u * zu(rb[i]));
        d.d = 1024; d.heads = 16; d.layers = 24;               /* RoBERTa-large: 1132 r */
        OK(lort_cp_param_count(&d, &np)); assert_int_equal(np, 1132u * zu(rb[i]));
        d.d = 5120; d.heads = 40; d.layers = 40;               /* LLaMA-2-13B: 5332 r */
        if (fits_bytes((uint64_t)rb[i] * 5120u * (uint64_t)rb[i], 1)) { /* r^2 d: see below */
            OK(lort_cp_param_count(&d, &np)); assert_int_equal(np, 5332u * zu(rb[i]));
        } else { /* 32-bit size_t: the header requires r1 r2 d (bounding the nh r1 r2 of the
                    tucker core slices) to fit PTRDIFF_MAX for both joint families */
            assert_int_equal(lort_cp_param_count(&d, &np), LORT_ERR_OVERFLOW);
        }
    }
    /* the same LoRA budget: LLaMA-2-7B LoRA r = 1 on q,k,v,o = 1,048,576 (MATH in lortensor.h) */
    assert_int_equal(1u * 8192u * 128u, 1048576u);
    /* more matrix types: M is a desc field */
    memset(&d, 0, sizeof d);
    d.d = 4096; d.heads = 32; d.layers = 32; d.r = 8; d.matrices = 7;
    OK(lort_cp_param_count(&d, &np)); assert_int_equal(np, 8u * (4096u + 128u + 32u + 32u + 7u));
    /* resolve, scale, site dims */
    lort_cp_desc out;
    memset(&d, 0, sizeof d);
    d.d = 4096; d.heads = 32; d.layers = 32; d.r = 16; d.kv_heads = 8;
    OK(lort_cp_desc_resolve(&d, &out));
    assert_int_equal(out.matrices, 4);
    assert_int_equal(out.kv_heads, 8);
    assert_int_equal(out.kv_matrices, 6u);
    assert_true(fabsf(out.alpha - 16.0f) <= 0.0f);
    float s = 0.0f;
    d.alpha = 32.0f; OK(lort_cp_scale(&d, &s)); assert_true(fabsf(s - 2.0f) <= 0.0f);
    d.rslora = 1; OK(lort_cp_scale(&d, &s)); assert_true(fabsf(s - 8.0f) <= 0.0f);
    int di = 0, dout = 0;
    OK(lort_cp_site_dims(&d, LORT_CP_Q, &di, &dout)); assert_int_equal(di, 4096); assert_int_equal(dout, 4096);
    OK(lort_cp_site_dims(&d, LORT_CP_K, &di, &dout)); assert_int_equal(dout, 1024);
    OK(lort_cp_site_dims(&d, LORT_CP_V, &di, &dout)); assert_int_equal(dout, 1024);
    OK(lort_cp_site_dims(&d, LORT_CP_O, &di, &dout)); assert_int_equal(dout, 4096);
    /* cache is (n, r); one workspace size serves every site */
    size_t cs = 0;
    OK(lort_cp_cache_size(&d, 10, &cs));
    assert_true(cs >= 10u * 16u * sizeof(float) && cs < 10u * 16u * sizeof(float) + 128u);
}

/* heads in (HF PEFT): W = s D; heads out (lit-gpt): W = s D^T; the same tensor, so for MHA
   delta_in == delta_out^T exactly (the same float products in the same order). */
static void test_cp_head_conventions(void **state) {
    (void)state;
    for (int tk = 0; tk < 2; ++tk) {
        jcase c = tk ? TK_CASES[0] : CP_CASES[0];
        jset So, Si;
        jset_make(&So, &c, 7u);
        c.heads_in = 1;
        jset_make(&Si, &c, 7u);
        size_t ws = 0;
        OK(j_ws(&So, 1, &ws));
        void *work = tr_buf(ws);
        int d = c.d;
        float *Do = tr_alloc(zu(d) * zu(d)), *Di = tr_alloc(zu(d) * zu(d));
        for (int st = 0; st < So.nsites; ++st) {
            OK(j_delta(&So, Do, So.P, st / c.M, st % c.M, work, ws));
            OK(j_delta(&Si, Di, Si.P, st / c.M, st % c.M, work, ws));
            for (int a = 0; a < d; ++a)
                for (int b = 0; b < d; ++b)
                    assert_true(fabsf(Do[IX(a, d, b)] - Di[IX(b, d, a)]) <= 1e-6f * (1.0f + fabsf(Di[IX(b, d, a)])));
        }
        free(work); free(Do); free(Di);
        jset_free(&So); jset_free(&Si);
    }
}

/* GQA (our definition): a K/V site with G heads is the MHA site's update mean-pooled over each
   group of q = H/G query heads (the MHA -> GQA checkpoint conversion of Ainslie et al. 2023),
   so kv_heads = H is MHA, Q and O are unchanged, and row block g of the GQA delta equals the
   mean of row blocks g q .. g q + q - 1 of the MHA delta. */
static void test_cp_gqa_definition(void **state) {
    (void)state;
    for (int tk = 0; tk < 2; ++tk) {
        jcase c = tk ? TK_CASES[2] : CP_CASES[2]; /* H = 4, kv = 2 */
        jset Sg, Sm, Sk;
        jset_make(&Sg, &c, 9u);
        c.kv = 0;
        jset_make(&Sm, &c, 9u);
        c.kv = 4; /* kv_heads = H: exactly MHA */
        jset_make(&Sk, &c, 9u);
        size_t ws = 0;
        OK(j_ws(&Sg, 1, &ws));
        void *work = tr_buf(ws);
        int d = c.d, dh = d / c.H, q = 2;
        float *Dg = tr_alloc(zu(d) * zu(d)), *Dm = tr_alloc(zu(d) * zu(d)), *Dk = tr_alloc(zu(d) * zu(d));
        for (int st = 0; st < Sg.nsites; ++st) {
            int l = st / c.M, m = st % c.M, dout = 0, din = 0;
            OK(j_delta(&Sg, Dg, Sg.P, l, m, work, ws));
            OK(j_delta(&Sm, Dm, Sm.P, l, m, work, ws));
            OK(j_delta(&Sk, Dk, Sk.P, l, m, work, ws));
            assert_int_equal(memcmp(Dm, Dk, zu(d) * zu(d) * sizeof(float)), 0);
            if (tk) OK(lort_tucker_site_dims(&Sg.td, m, &din, &dout));
            else OK(lort_cp_site_dims(&Sg.cd, m, &din, &dout));
            if (m == LORT_CP_K || m == LORT_CP_V) {
                assert_int_equal(dout, 2 * dh);
                for (int g = 0; g < 2; ++g)
                    for (int j = 0; j < dh; ++j)
                        for (int i = 0; i < d; ++i) {
                            double want = 0.0;
                            for (int t = 0; t < q; ++t) want += (double)Dm[IX((g * q + t) * dh + j, d, i)];
                            want /= q;
                            assert_true(fabs((double)Dg[IX(g * dh + j, d, i)] - want) <= 1e-6 * (1.0 + fabs(want)));
                        }
            } else {
                assert_int_equal(dout, d);
                for (size_t k = 0; k < zu(d) * zu(d); ++k)
                    assert_true(fabsf(Dg[k] - Dm[k]) <= 1e-6f * (1.0f + fabsf(Dm[k])));
            }
        }
        free(work); free(Dg); free(Dm); free(Dk);
        jset_free(&Sg); jset_free(&Sm); jset_free(&Sk);
    }
}

/* init (MATH in lortensor.h): B = 0, so every site adds exactly 0 (the distributions of every
   block, both init scales: test_conformance.c). */
static void test_cp_init(void **state) {
    (void)state;
    for (int sc = 0; sc < 2; ++sc) {
        lort_cp_desc d;
        memset(&d, 0, sizeof d);
        d.d = 64; d.heads = 4; d.layers = 6; d.r = 16; d.matrices = 5; d.init_scale = (float)sc;
        size_t np = 0;
        OK(lort_cp_param_count(&d, &np));
        float *P = tr_alloc(np);
        lort_rng rng;
        lort_rng_seed(&rng, 3u);
        OK(lort_cp_init(&d, P, &rng));
        /* dy = 0 at every site */
        size_t ws = 0;
        OK(lort_cp_workspace_size(&d, 3, &ws));
        void *work = tr_buf(ws);
        float *x = tr_rand(3u * 64u), *y = tr_rand(3u * 64u), *y0 = tr_alloc(3u * 64u);
        memcpy(y0, y, 3u * 64u * sizeof(float));
        for (int l = 0; l < 6; ++l)
            for (int m = 0; m < 5; ++m) OK(lort_cp_forward(&d, y, x, P, l, m, 3, NULL, 0, work, ws));
        assert_int_equal(memcmp(y, y0, 3u * 64u * sizeof(float)), 0);
        free(P); free(work); free(x); free(y); free(y0);
    }
}

/* every status the cp and tucker entry points return, and nothing written on error */
static void test_cp_errors(void **state) {
    (void)state;
    lort_cp_desc d, b;
    memset(&d, 0, sizeof d);
    d.d = 8; d.heads = 2; d.layers = 2; d.r = 3;
    size_t np = 0, ws = 0, cs = 0;
    OK(lort_cp_param_count(&d, &np));
    OK(lort_cp_workspace_size(&d, 2, &ws));
    OK(lort_cp_cache_size(&d, 2, &cs));
    float *P = tr_rand(np), *dP = tr_alloc(np), *x = tr_rand(16), *y = tr_rand(16), *W = tr_rand(64);
    float *ycopy = tr_alloc(16);
    memcpy(ycopy, y, 16 * sizeof(float));
    void *work = tr_buf(ws), *cache = tr_buf(cs);
    int di, dout;
    /* NULL */
    ST(LORT_ERR_NULL, lort_cp_param_count(NULL, &np));
    ST(LORT_ERR_NULL, lort_cp_param_count(&d, NULL));
    ST(LORT_ERR_NULL, lort_cp_forward(&d, NULL, x, P, 0, 0, 2, NULL, 0, work, ws));
    ST(LORT_ERR_NULL, lort_cp_forward(&d, y, x, NULL, 0, 0, 2, NULL, 0, work, ws));
    ST(LORT_ERR_NULL, lort_cp_forward(&d, y, x, P, 0, 0, 2, NULL, 0, NULL, ws));
    ST(LORT_ERR_NULL, lort_cp_backward(&d, y, dP, NULL, x, P, 0, 0, 2, NULL, 0, work, ws));
    ST(LORT_ERR_NULL, lort_cp_merge(&d, NULL, P, 0, 0, 1.0f, work, ws));
    ST(LORT_ERR_NULL, lort_cp_init(&d, P, NULL));
    ST(LORT_ERR_NULL, lort_cp_site_dims(&d, 0, NULL, &dout));
    ST(LORT_ERR_NULL, lort_cp_desc_resolve(&d, NULL));
    /* invalid arguments */
    b = d; b.d = 0; ST(LORT_ERR_INVALID_ARG, lort_cp_param_count(&b, &np));
    b = d; b.heads = -1; ST(LORT_ERR_INVALID_ARG, lort_cp_param_count(&b, &np));
    b = d; b.layers = 0; ST(LORT_ERR_INVALID_ARG, lort_cp_param_count(&b, &np));
    b = d; b.r = 0; ST(LORT_ERR_INVALID_ARG, lort_cp_param_count(&b, &np));
    b = d; b.matrices = -2; ST(LORT_ERR_INVALID_ARG, lort_cp_param_count(&b, &np));
    b = d; b.kv_heads = -1; ST(LORT_ERR_INVALID_ARG, lort_cp_param_count(&b, &np));
    b = d; b.dropout = 1.0f; ST(LORT_ERR_INVALID_ARG, lort_cp_param_count(&b, &np));
    b = d; b.alpha = NAN; ST(LORT_ERR_INVALID_ARG, lort_cp_scale(&b, &b.alpha));
    b = d; b.head_side = 2; ST(LORT_ERR_INVALID_ARG, lort_cp_param_count(&b, &np));
    b = d; b.init_scale = INFINITY; ST(LORT_ERR_INVALID_ARG, lort_cp_param_count(&b, &np));
    ST(LORT_ERR_INVALID_ARG, lort_cp_forward(&d, y, x, P, 0, 0, 0, NULL, 0, work, ws)); /* n = 0 */
    ST(LORT_ERR_INVALID_ARG, lort_cp_merge(&d, W, P, 0, 0, NAN, work, ws));
    /* bad sites */
    ST(LORT_ERR_INVALID_ARG, lort_cp_forward(&d, y, x, P, 2, 0, 2, NULL, 0, work, ws));
    ST(LORT_ERR_INVALID_ARG, lort_cp_forward(&d, y, x, P, -1, 0, 2, NULL, 0, work, ws));
    ST(LORT_ERR_INVALID_ARG, lort_cp_forward(&d, y, x, P, 0, 4, 2, NULL, 0, work, ws));
    ST(LORT_ERR_INVALID_ARG, lort_cp_backward(&d, x, dP, y, x, P, 0, -1, 2, NULL, 0, work, ws));
    ST(LORT_ERR_INVALID_ARG, lort_cp_delta(&d, W, P, 5, 0, work, ws));
    ST(LORT_ERR_INVALID_ARG, lort_cp_merge(&d, W, P, 0, 9, 1.0f, work, ws));
    ST(LORT_ERR_INVALID_ARG, lort_cp_site_dims(&d, 4, &di, &dout));
    /* shapes: d not divisible by H, kv_heads not dividing H */
    b = d; b.heads = 3; ST(LORT_ERR_SHAPE, lort_cp_param_count(&b, &np));
    ST(LORT_ERR_SHAPE, lort_cp_forward(&b, y, x, P, 0, 0, 2, NULL, 0, work, ws));
    b = d; b.d = 12; b.heads = 4; b.kv_heads = 3; ST(LORT_ERR_SHAPE, lort_cp_param_count(&b, &np));
    b.kv_heads = 8; ST(LORT_ERR_SHAPE, lort_cp_param_count(&b, &np));
    /* GQA is defined with heads on the output side only */
    b.kv_heads = 2; b.head_side = LORT_CP_HEADS_IN; ST(LORT_ERR_UNSUPPORTED, lort_cp_param_count(&b, &np));
    /* overflow: d r > INT_MAX */
    b = d; b.d = 1 << 16; b.heads = 1; b.r = 1 << 15; ST(LORT_ERR_OVERFLOW, lort_cp_param_count(&b, &np));
    /* short buffers */
    ST(LORT_ERR_WORKSPACE, lort_cp_forward(&d, y, x, P, 0, 0, 2, NULL, 0, work, ws - 1));
    ST(LORT_ERR_CACHE, lort_cp_forward(&d, y, x, P, 0, 0, 2, cache, cs - 1, work, ws));
    ST(LORT_ERR_WORKSPACE, lort_cp_backward(&d, x, dP, y, x, P, 0, 0, 2, NULL, 0, work, ws - 1));
    ST(LORT_ERR_CACHE, lort_cp_backward(&d, x, dP, y, x, P, 0, 0, 2, cache, cs - 1, work, ws));
    ST(LORT_ERR_WORKSPACE, lort_cp_delta(&d, W, P, 0, 0, work, 0));
    assert_int_equal(memcmp(y, ycopy, 16 * sizeof(float)), 0);
    for (size_t i = 0; i < np; ++i) assert_true(is_zero_f(dP[i]));
#ifdef LORT_DEBUG
    x[3] = NAN;
    ST(LORT_ERR_NONFINITE, lort_cp_forward(&d, y, x, P, 0, 0, 2, NULL, 0, work, ws));
    x[3] = 0.5f;
    P[np - 1] = INFINITY;
    ST(LORT_ERR_NONFINITE, lort_cp_backward(&d, x, dP, y, x, P, 0, 0, 2, NULL, 0, work, ws));
    P[np - 1] = 0.5f;
#endif
    /* tucker */
    lort_tucker_desc t, u;
    memset(&t, 0, sizeof t);
    t.d = 8; t.heads = 2; t.layers = 2; t.r1 = 2; t.r2 = 3;
    lort_rng rng;
    lort_rng_seed(&rng, 1u);
    OK(lort_tucker_param_count(&t, &np));
    assert_int_equal(np, 2u * 3u * 2u * 2u * 2u + 8u * 2u + 3u * 4u + 2u * 2u + 2u * 2u + 4u * 2u);
    ST(LORT_ERR_NULL, lort_tucker_param_count(NULL, &np));
    u = t; u.r2 = 0; ST(LORT_ERR_INVALID_ARG, lort_tucker_param_count(&u, &np));
    u = t; u.rh = -1; ST(LORT_ERR_INVALID_ARG, lort_tucker_param_count(&u, &np));
    u = t; u.init = 3; ST(LORT_ERR_INVALID_ARG, lort_tucker_param_count(&u, &np));
    u = t; u.heads = 3; ST(LORT_ERR_SHAPE, lort_tucker_param_count(&u, &np));
    u = t; u.r1 = u.r2 = u.rh = u.rl = u.rm = 100; ST(LORT_ERR_OVERFLOW, lort_tucker_param_count(&u, &np));
    u = t; u.init = LORT_TUCKER_INIT_LOTR; ST(LORT_ERR_SHAPE, lort_tucker_init(&u, P, &rng));
    u = t; u.init = LORT_TUCKER_INIT_FACT_TK; ST(LORT_ERR_SHAPE, lort_tucker_init(&u, P, &rng));
    OK(lort_tucker_workspace_size(&t, 2, &ws));
    ST(LORT_ERR_INVALID_ARG, lort_tucker_forward(&t, y, x, P, 0, 4, 2, NULL, 0, work, ws));
    ST(LORT_ERR_INVALID_ARG, lort_tucker_forward(&t, y, x, P, 2, 0, 2, NULL, 0, work, ws));
    free(work);
    work = tr_buf(ws);
    ST(LORT_ERR_WORKSPACE, lort_tucker_backward(&t, x, dP, y, x, P, 0, 0, 2, NULL, 0, work, ws - 1));
    /* generic interface */
    lort_adapter a;
    lort_adapter_sizes sz;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_CP; a.desc.cp = d; a.matrix = 4;
    ST(LORT_ERR_INVALID_ARG, lort_adapter_sizes_query(&a, 2, &sz));
    a.matrix = 0;
    ST(LORT_ERR_NULL, lort_adapter_forward(&a, y, x, 2, NULL, 0, work, ws));
    a.kind = LORT_KIND_TUCKER; a.desc.tucker = t; a.layer = 7;
    ST(LORT_ERR_INVALID_ARG, lort_adapter_sizes_query(&a, 2, &sz)); /* the site is checked */
    a.layer = -1;
    ST(LORT_ERR_INVALID_ARG, lort_adapter_sizes_query(&a, 2, &sz));
    a.layer = t.layers - 1;
    OK(lort_adapter_sizes_query(&a, 2, &sz));
    a.layer = 7;
    a.params = P;
    ST(LORT_ERR_INVALID_ARG, lort_adapter_delta(&a, W, work, ws));
    ST(LORT_ERR_INVALID_ARG, lort_adapter_backward(&a, x, y, x, 2, NULL, 0, work, ws));
    free(P); free(dP); free(x); free(y); free(W); free(ycopy); free(work); free(cache);
}

/* the generic verbs are the family kernels on the documented flat layout, bit for bit */
static void test_cp_generic(void **state) {
    (void)state;
    for (int tk = 0; tk < 2; ++tk) {
        const jcase *c = tk ? &TK_CASES[2] : &CP_CASES[2];
        jset S;
        jset_make(&S, c, 21u);
        lort_adapter a;
        lort_adapter_sizes sz;
        memset(&a, 0, sizeof a);
        a.kind = tk ? LORT_KIND_TUCKER : LORT_KIND_CP;
        if (tk) a.desc.tucker = S.td; else a.desc.cp = S.cd;
        float *Pa = tr_alloc(S.np), *Pb = tr_alloc(S.np), *ga = tr_alloc(S.np), *gb = tr_alloc(S.np);
        a.params = Pa; a.grads = ga;
        lort_rng r1, r2;
        lort_rng_seed(&r1, 5u); lort_rng_seed(&r2, 5u);
        OK(lort_adapter_init(&a, NULL, &r1, NULL, 0));
        if (tk) OK(lort_tucker_init(&S.td, Pb, &r2)); else OK(lort_cp_init(&S.cd, Pb, &r2));
        assert_int_equal(memcmp(Pa, Pb, S.np * sizeof(float)), 0);
        memcpy(Pa, S.P, S.np * sizeof(float)); /* nonzero B */
        memcpy(Pb, S.P, S.np * sizeof(float));
        for (int st = 0; st < S.nsites; ++st) {
            a.layer = st / c->M; a.matrix = st % c->M;
            OK(lort_adapter_sizes_query(&a, c->n, &sz));
            size_t ws = 0, cs = 0;
            OK(j_ws(&S, c->n, &ws)); OK(j_cs(&S, c->n, &cs));
            assert_int_equal(sz.work, ws); assert_int_equal(sz.cache, cs);
            assert_int_equal(sz.params, S.np); assert_int_equal(sz.frozen_bytes, 0);
            assert_int_equal(sz.d_in, c->d); assert_int_equal(sz.d_out, site_dout(&S, a.matrix));
            void *w = tr_buf(ws), *ca = tr_buf(cs), *cb = tr_buf(cs);
            size_t ny = zu(c->n) * zu(sz.d_out), nx = zu(c->n) * zu(c->d);
            float *ya = tr_alloc(ny), *yb = tr_alloc(ny), *xa = tr_alloc(nx), *xb = tr_alloc(nx);
            OK(lort_adapter_forward(&a, ya, S.x[st], c->n, ca, cs, w, ws));
            OK(j_fwd(&S, yb, S.x[st], Pb, a.layer, a.matrix, c->n, cb, cs, w, ws));
            assert_int_equal(memcmp(ya, yb, ny * sizeof(float)), 0);
            OK(lort_adapter_backward(&a, xa, S.G[st], S.x[st], c->n, ca, cs, w, ws));
            OK(j_bwd(&S, xb, gb, S.G[st], S.x[st], Pb, a.layer, a.matrix, c->n, cb, cs, w, ws));
            assert_int_equal(memcmp(xa, xb, nx * sizeof(float)), 0);
            assert_int_equal(memcmp(ga, gb, S.np * sizeof(float)), 0);
            float *Wa = tr_alloc(zu(sz.d_out) * zu(c->d)), *Wb = tr_alloc(zu(sz.d_out) * zu(c->d));
            OK(lort_adapter_delta(&a, Wa, w, ws));
            OK(j_delta(&S, Wb, Pb, a.layer, a.matrix, w, ws));
            assert_int_equal(memcmp(Wa, Wb, zu(sz.d_out) * zu(c->d) * sizeof(float)), 0);
            OK(lort_adapter_merge(&a, Wa, -1.0f, w, ws));
            OK(j_merge(&S, Wb, Pb, a.layer, a.matrix, -1.0f, w, ws));
            assert_int_equal(memcmp(Wa, Wb, zu(sz.d_out) * zu(c->d) * sizeof(float)), 0);
            free(w); free(ca); free(cb); free(ya); free(yb); free(xa); free(xb); free(Wa); free(Wb);
        }
        free(Pa); free(Pb); free(ga); free(gb);
        jset_free(&S);
    }
}

/* CP is Tucker with a superdiagonal core: equal outputs and factor gradients at every site,
   both head conventions and GQA. */
static void test_tucker_superdiagonal_is_cp(void **state) {
    (void)state;
    for (int v = 0; v < 3; ++v) {
        jcase c = CP_CASES[v]; /* heads out; heads in + dropout; GQA */
        jset Sc, St;
        jset_make(&Sc, &c, 50u + (uint64_t)v);
        c.tucker = 1;
        jset_make(&St, &c, 50u + (uint64_t)v);
        St.td.dropout_seed = Sc.cd.dropout_seed;
        int r = c.r1;
        size_t core = zu(r) * zu(r) * zu(r) * zu(r) * zu(r);
        assert_int_equal(St.np, core + Sc.np);
        memset(St.P, 0, core * sizeof(float));
        for (int k = 0; k < r; ++k) St.P[(size_t)k * (1u + zu(r) * (1u + zu(r) * (1u + zu(r) * (1u + zu(r)))))] = 1.0f;
        memcpy(St.P + core, Sc.P, Sc.np * sizeof(float));
        size_t wc = 0, wt = 0;
        OK(j_ws(&Sc, c.n, &wc)); OK(j_ws(&St, c.n, &wt));
        void *w1 = tr_buf(wc), *w2 = tr_buf(wt);
        float *gc = tr_alloc(Sc.np), *gt = tr_alloc(St.np);
        for (int st = 0; st < Sc.nsites; ++st) {
            int l = st / c.M, m = st % c.M, dout = site_dout(&Sc, m);
            size_t ny = zu(c.n) * zu(dout), nx = zu(c.n) * zu(c.d);
            float *y1 = tr_alloc(ny), *y2 = tr_alloc(ny), *x1 = tr_alloc(nx), *x2 = tr_alloc(nx);
            OK(j_fwd(&Sc, y1, Sc.x[st], Sc.P, l, m, c.n, NULL, 0, w1, wc));
            OK(j_fwd(&St, y2, Sc.x[st], St.P, l, m, c.n, NULL, 0, w2, wt));
            assert_true(cmp_ff("cp vs tucker y", y2, y1, ny, 1e-5, 1e-5));
            OK(j_bwd(&Sc, x1, gc, Sc.G[st], Sc.x[st], Sc.P, l, m, c.n, NULL, 0, w1, wc));
            OK(j_bwd(&St, x2, gt, Sc.G[st], Sc.x[st], St.P, l, m, c.n, NULL, 0, w2, wt));
            assert_true(cmp_ff("cp vs tucker dx", x2, x1, nx, 1e-5, 1e-5));
            free(y1); free(y2); free(x1); free(x2);
        }
        assert_true(cmp_ff("cp vs tucker dfactors", gt + core, gc, Sc.np, 1e-5, 1e-5));
        free(w1); free(w2); free(gc); free(gt);
        jset_free(&Sc); jset_free(&St);
    }
}

/* LoTR (MATH in lortensor.h): per layer dW_l = (s/r) U G_l V^T with U (d, r), V (d, r) shared and a
   core G_l (r, r) per layer. As tucker: heads 1, M 1, r1 = r2 = r, rH = rM = 1, rL = L,
   A = V, B = U^T, C_L = I, C_H = C_M = 1, core[a, b, 0, l, 0] = G_l[b, a], alpha = scale.
   Checked against LoTR's forward (X V) G_l^T U^T and its backward formulas. */
static void test_tucker_lotr(void **state) {
    (void)state;
    const int d = 7, r = 3, L = 3, n = 4;
    const float scale = 2.0f;
    lort_tucker_desc t;
    memset(&t, 0, sizeof t);
    t.d = d; t.heads = 1; t.layers = L; t.matrices = 1; t.r1 = r; t.r2 = r; t.rh = 1; t.rl = L;
    t.rm = 1; t.alpha = scale; t.init = LORT_TUCKER_INIT_LOTR;
    size_t np = 0, ws = 0, core = zu(r) * zu(r) * zu(L);
    OK(lort_tucker_param_count(&t, &np));
    assert_int_equal(np, zu(r) * zu(2 * d) + zu(L) * zu(r) * zu(r) + zu(L) * zu(L) + 2u);
    float *P = tr_alloc(np), *dP = tr_alloc(np);
    lort_rng rng;
    lort_rng_seed(&rng, 8u);
    OK(lort_tucker_init(&t, P, &rng));
    size_t oA = core, oB = oA + zu(d) * zu(r), oH = oB + zu(r) * zu(d), oL = oH + 1u, oM = oL + zu(L) * zu(L);
    for (size_t i = 0; i < core; ++i) assert_true(is_zero_f(P[i]));       /* G_l = 0 */
    assert_true(fabsf(P[oH] - 1.0f) <= 0.0f && fabsf(P[oM] - 1.0f) <= 0.0f);
    for (int a = 0; a < L; ++a)
        for (int b = 0; b < L; ++b) assert_true(fabsf(P[oL + IX(a, L, b)] - (a == b ? 1.0f : 0.0f)) <= 0.0f);
    double var = 0.0;
    for (size_t i = oA; i < oH; ++i) var += (double)P[i] * (double)P[i];
    var /= (double)(oH - oA);
    assert_true(var > 0.5 && var < 1.6); /* N(0, 1) over 42 draws */
    /* random cores G_l (LoTR trains them from 0) */
    tr_seed(99u);
    double *G = td_alloc(zu(L) * zu(r) * zu(r));
    for (int l = 0; l < L; ++l)
        for (int a = 0; a < r; ++a)
            for (int b = 0; b < r; ++b) {
                float g = tr_sym();
                G[IX(l, r * r, IX(b, r, a))] = (double)g;          /* G_l[b][a] */
                P[(IX(a, r, b) * zu(L) + zu(l))] = g;              /* core[a, b, 0, l, 0] */
            }
    OK(lort_tucker_workspace_size(&t, n, &ws));
    void *work = tr_buf(ws);
    double sp = (double)scale / r;
    for (int l = 0; l < L; ++l) {
        float *x = tr_rand(zu(n) * zu(d)), *gy = tr_rand(zu(n) * zu(d)), *y = tr_alloc(zu(n) * zu(d));
        float *dx = tr_alloc(zu(n) * zu(d));
        const double *Gl = G + zu(l) * zu(r) * zu(r);
        /* LoTR: V = A (d, r), U = B^T (d, r) */
        double *Pm = td_alloc(zu(n) * zu(r)), *Q = td_alloc(zu(n) * zu(r)), *want = td_alloc(zu(n) * zu(d));
        double *dU = td_alloc(zu(d) * zu(r)), *dQ = td_alloc(zu(n) * zu(r)), *dG = td_alloc(zu(r) * zu(r));
        double *dPm = td_alloc(zu(n) * zu(r)), *dV = td_alloc(zu(d) * zu(r)), *dX = td_alloc(zu(n) * zu(d));
#define V_(i, k) ((double)P[oA + IX(i, r, k)])
#define U_(o, k) ((double)P[oB + IX(k, d, o)])
        for (int i = 0; i < n; ++i)
            for (int k = 0; k < r; ++k) {
                double a = 0.0;
                for (int j = 0; j < d; ++j) a += (double)x[IX(i, d, j)] * V_(j, k);
                Pm[IX(i, r, k)] = a;
            }
        for (int i = 0; i < n; ++i)
            for (int k = 0; k < r; ++k) {
                double a = 0.0;
                for (int j = 0; j < r; ++j) a += Pm[IX(i, r, j)] * Gl[IX(k, r, j)]; /* P G_l^T */
                Q[IX(i, r, k)] = a;
            }
        for (int i = 0; i < n; ++i)
            for (int o = 0; o < d; ++o) {
                double a = 0.0;
                for (int k = 0; k < r; ++k) a += Q[IX(i, r, k)] * U_(o, k);
                want[IX(i, d, o)] = sp * a;
            }
        OK(lort_tucker_forward(&t, y, x, P, l, 0, n, NULL, 0, work, ws));
        assert_true(near_fd("lotr forward", y, want, zu(n) * zu(d), 2e-5));
        /* backward (MATH in lortensor.h): dU = s' G^T Q, dQ = s' G U, dG_l = dQ^T P, dP = dQ G_l,
           dV = X^T dP, dX = dP V^T */
        for (int o = 0; o < d; ++o)
            for (int k = 0; k < r; ++k) {
                double a = 0.0;
                for (int i = 0; i < n; ++i) a += (double)gy[IX(i, d, o)] * Q[IX(i, r, k)];
                dU[IX(o, r, k)] = sp * a;
            }
        for (int i = 0; i < n; ++i)
            for (int k = 0; k < r; ++k) {
                double a = 0.0;
                for (int o = 0; o < d; ++o) a += (double)gy[IX(i, d, o)] * U_(o, k);
                dQ[IX(i, r, k)] = sp * a;
            }
        for (int a = 0; a < r; ++a)
            for (int b = 0; b < r; ++b) {
                double acc = 0.0;
                for (int i = 0; i < n; ++i) acc += dQ[IX(i, r, a)] * Pm[IX(i, r, b)];
                dG[IX(a, r, b)] = acc;
            }
        for (int i = 0; i < n; ++i)
            for (int b = 0; b < r; ++b) {
                double acc = 0.0;
                for (int a = 0; a < r; ++a) acc += dQ[IX(i, r, a)] * Gl[IX(a, r, b)];
                dPm[IX(i, r, b)] = acc;
            }
        for (int j = 0; j < d; ++j)
            for (int k = 0; k < r; ++k) {
                double acc = 0.0;
                for (int i = 0; i < n; ++i) acc += (double)x[IX(i, d, j)] * dPm[IX(i, r, k)];
                dV[IX(j, r, k)] = acc;
            }
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < d; ++j) {
                double acc = 0.0;
                for (int k = 0; k < r; ++k) acc += dPm[IX(i, r, k)] * V_(j, k);
                dX[IX(i, d, j)] = acc;
            }
#undef V_
#undef U_
        memset(dP, 0, np * sizeof(float));
        OK(lort_tucker_backward(&t, dx, dP, gy, x, P, l, 0, n, NULL, 0, work, ws));
        assert_true(near_fd("lotr dX", dx, dX, zu(n) * zu(d), 1e-4));
        assert_true(near_fd("lotr dV", dP + oA, dV, zu(d) * zu(r), 1e-4));
        double *dUt = td_alloc(zu(r) * zu(d)), *dGc = td_alloc(zu(r) * zu(r));
        float *dGf = tr_alloc(zu(r) * zu(r));
        for (int o = 0; o < d; ++o)
            for (int k = 0; k < r; ++k) dUt[IX(k, d, o)] = dU[IX(o, r, k)];
        assert_true(near_fd("lotr dU", dP + oB, dUt, zu(r) * zu(d), 1e-4));
        for (int a = 0; a < r; ++a)
            for (int b = 0; b < r; ++b) {
                dGf[IX(b, r, a)] = dP[IX(a, r, b) * zu(L) + zu(l)];   /* dcore[a, b, 0, l, 0] = dG_l[b][a] */
                dGc[IX(a, r, b)] = dG[IX(a, r, b)];
            }
        assert_true(near_fd("lotr dG_l", dGf, dGc, zu(r) * zu(r), 1e-4));
        for (int l2 = 0; l2 < L; ++l2)   /* other layers' cores untouched */
            if (l2 != l)
                for (int ab = 0; ab < r * r; ++ab) assert_true(is_zero_f(dP[zu(ab) * zu(L) + zu(l2)]));
        free(x); free(gy); free(y); free(dx); free(Pm); free(Q); free(want); free(dU); free(dQ);
        free(dG); free(dPm); free(dV); free(dX); free(dUt); free(dGc); free(dGf);
    }
    free(P); free(dP); free(work); free(G);
}

/* FacT-TK (MATH in lortensor.h): dY = s (X U^T K_m) V^T, K_m = C x_3 p_m, U = FacTu (r, d), V = FacTv
   (d, r), core C (r, r, r), P (r, S) over S stacked slices. As tucker: heads 1, layers 1,
   M = S, r1 = r2 = rM = r, rH = rL = 1, A = U^T, B = V^T, core[a, b, 0, 0, c] = C[a, b, c],
   C_M = P^T, alpha = s r. Forward and every gradient vs central differences of FacT-TK's own
   formula in double; params 2 d r + S r + r^3 (+ the two unit entries C_H, C_L). */
static void test_tucker_fact_tk(void **state) {
    (void)state;
    lort_tucker_desc t;
    size_t np = 0;
    memset(&t, 0, sizeof t);
    t.d = 768; t.heads = 1; t.layers = 1; t.matrices = 144; t.r1 = t.r2 = t.rm = 8; t.rh = t.rl = 1;
    OK(lort_tucker_param_count(&t, &np));
    assert_int_equal(np, 2u * 768u * 8u + 144u * 8u + 512u + 2u);   /* FacT-TK 13,952 + 2 */
    const int d = 6, r = 3, S = 5, n = 3;
    const double s = 1.7;
    memset(&t, 0, sizeof t);
    t.d = d; t.heads = 1; t.layers = 1; t.matrices = S; t.r1 = t.r2 = t.rm = r; t.rh = t.rl = 1;
    t.alpha = (float)(s * r); t.init = LORT_TUCKER_INIT_FACT_TK;
    OK(lort_tucker_param_count(&t, &np));
    size_t core = zu(r) * zu(r) * zu(r), oA = core, oB = oA + zu(d) * zu(r), oH = oB + zu(r) * zu(d),
           oM = oH + 2u;
    assert_int_equal(np, oM + zu(S) * zu(r));
    float *P = tr_alloc(np), *dP = tr_alloc(np);
    lort_rng rng;
    lort_rng_seed(&rng, 4u);
    OK(lort_tucker_init(&t, P, &rng));
    for (size_t i = oB; i < oH; ++i) assert_true(is_zero_f(P[i]));          /* FacTv = 0 */
    assert_true(fabsf(P[oH] - 1.0f) <= 0.0f && fabsf(P[oH + 1] - 1.0f) <= 0.0f);
    for (size_t i = 0; i < core; ++i) assert_true(fabs((double)P[i]) <= sqrt(3.0) / r);
    for (size_t i = oA; i < oB; ++i) assert_true(fabs((double)P[i]) <= 1.0 / sqrt((double)d));
    for (size_t i = oM; i < np; ++i) assert_true(fabs((double)P[i]) <= sqrt(6.0 / (S + r)));
    tr_seed(17u);
    tr_fill(P + oB, zu(r) * zu(d));                                          /* nonzero FacTv */
    /* FacT-TK's own parameters in double: Uf (r, d), Vf (d, r), C (r, r, r), Pm (r, S) */
    size_t nU = zu(r) * zu(d), nC = core, nP = zu(r) * zu(S), nth = nU + nU + nC + nP;
    double *th = td_alloc(nth);
    double *Uf = th, *Vf = th + nU, *C = th + 2 * nU, *Pm = th + 2 * nU + nC;
    for (int a = 0; a < r; ++a)
        for (int j = 0; j < d; ++j) {
            Uf[IX(a, d, j)] = (double)P[oA + IX(j, r, a)];
            Vf[IX(j, r, a)] = (double)P[oB + IX(a, d, j)];
        }
    for (size_t i = 0; i < core; ++i) C[i] = (double)P[i];
    for (int c = 0; c < r; ++c)
        for (int m = 0; m < S; ++m) Pm[IX(c, S, m)] = (double)P[oM + IX(m, r, c)];
    size_t ws = 0;
    OK(lort_tucker_workspace_size(&t, n, &ws));
    void *work = tr_buf(ws);
    for (int m = 0; m < S; ++m) {
        float *x = tr_rand(zu(n) * zu(d)), *gy = tr_rand(zu(n) * zu(d)), *y = tr_alloc(zu(n) * zu(d));
        float *dx = tr_alloc(zu(n) * zu(d));
        double *xd = td_alloc(zu(n) * zu(d)), *want = td_alloc(zu(n) * zu(d)), *fd = td_alloc(nth);
        double *fdx = td_alloc(zu(n) * zu(d));
        for (size_t i = 0; i < zu(n) * zu(d); ++i) xd[i] = (double)x[i];
        /* L(theta, x) = <gy, s (X U^T K_m) V^T>; out (optional) = dY */
#define FACT_EVAL(out, Lval)                                                                    \
        do {                                                                                   \
            double Km[9], Lacc = 0.0;                                                          \
            for (int a = 0; a < r; ++a)                                                        \
                for (int b = 0; b < r; ++b) {                                                  \
                    double acc = 0.0;                                                          \
                    for (int c = 0; c < r; ++c) acc += C[(IX(a, r, b)) * zu(r) + zu(c)] * Pm[IX(c, S, m)]; \
                    Km[a * r + b] = acc;                                                       \
                }                                                                              \
            for (int i = 0; i < n; ++i) {                                                      \
                double h1[3], h2[3];                                                           \
                for (int a = 0; a < r; ++a) {                                                  \
                    double acc = 0.0;                                                          \
                    for (int j = 0; j < d; ++j) acc += xd[IX(i, d, j)] * Uf[IX(a, d, j)];      \
                    h1[a] = acc;                                                               \
                }                                                                              \
                for (int b = 0; b < r; ++b) {                                                  \
                    double acc = 0.0;                                                          \
                    for (int a = 0; a < r; ++a) acc += h1[a] * Km[a * r + b];                  \
                    h2[b] = acc;                                                               \
                }                                                                              \
                for (int o = 0; o < d; ++o) {                                                  \
                    double acc = 0.0;                                                          \
                    for (int b = 0; b < r; ++b) acc += h2[b] * Vf[IX(o, r, b)];                \
                    if (out) ((double *)(out))[IX(i, d, o)] = s * acc;                         \
                    Lacc += (double)gy[IX(i, d, o)] * s * acc;                                 \
                }                                                                              \
            }                                                                                  \
            Lval = Lacc;                                                                       \
        } while (0)
        double L0, Lp, Lm;
        FACT_EVAL(want, L0);
        (void)L0;
        OK(lort_tucker_forward(&t, y, x, P, 0, m, n, NULL, 0, work, ws));
        assert_true(near_fd("fact-tk forward", y, want, zu(n) * zu(d), 2e-5));
        for (size_t e = 0; e < nth; ++e) {
            double old = th[e];
            th[e] = old + 1e-4; FACT_EVAL((double *)NULL, Lp);
            th[e] = old - 1e-4; FACT_EVAL((double *)NULL, Lm);
            th[e] = old;
            fd[e] = (Lp - Lm) / 2e-4;
        }
        for (size_t e = 0; e < zu(n) * zu(d); ++e) {
            double old = xd[e];
            xd[e] = old + 1e-4; FACT_EVAL((double *)NULL, Lp);
            xd[e] = old - 1e-4; FACT_EVAL((double *)NULL, Lm);
            xd[e] = old;
            fdx[e] = (Lp - Lm) / 2e-4;
        }
#undef FACT_EVAL
        memset(dP, 0, np * sizeof(float));
        OK(lort_tucker_backward(&t, dx, dP, gy, x, P, 0, m, n, NULL, 0, work, ws));
        assert_true(near_fd("fact-tk dx", dx, fdx, zu(n) * zu(d), 1e-4));
        float *map = tr_alloc(nth);   /* our gradients in FacT-TK's layout */
        for (int a = 0; a < r; ++a)
            for (int j = 0; j < d; ++j) {
                map[IX(a, d, j)] = dP[oA + IX(j, r, a)];
                map[nU + IX(j, r, a)] = dP[oB + IX(a, d, j)];
            }
        for (size_t i = 0; i < core; ++i) map[2 * nU + i] = dP[i];
        for (int c = 0; c < r; ++c)
            for (int mm = 0; mm < S; ++mm) map[2 * nU + nC + IX(c, S, mm)] = dP[oM + IX(mm, r, c)];
        assert_true(near_fd("fact-tk dU", map, fd, nU, 1e-4));
        assert_true(near_fd("fact-tk dV", map + nU, fd + nU, nU, 1e-4));
        assert_true(near_fd("fact-tk dcore", map + 2 * nU, fd + 2 * nU, nC, 1e-4));
        assert_true(near_fd("fact-tk dP", map + 2 * nU + nC, fd + 2 * nU + nC, nP, 1e-4));
        free(x); free(gy); free(y); free(dx); free(xd); free(want); free(fd); free(fdx); free(map);
    }
    free(P); free(dP); free(work); free(th);
}

/* tucker default init: the CP init, B = 0, and a core of ones on the wrapped diagonal
   (k mod r1, .., k mod rM), k < max rank = 4: a one in every slice of every mode (with
   unequal ranks the plain superdiagonal would leave rows of B with a zero gradient forever) */
/* tucker's defaults (the default init's core, B = 0 and distributions: test_conformance.c) */
static void test_tucker_init_default(void **state) {
    (void)state;
    lort_tucker_desc t;
    memset(&t, 0, sizeof t);
    t.d = 16; t.heads = 2; t.layers = 3; t.r1 = 4; t.r2 = 3; t.rh = 2; t.rl = 3; t.rm = 4;
    lort_tucker_desc out;
    OK(lort_tucker_desc_resolve(&t, &out));
    assert_true(fabsf(out.alpha - 4.0f) <= 0.0f);
    t.rh = t.rl = t.rm = 0;
    OK(lort_tucker_desc_resolve(&t, &out));
    assert_int_equal(out.rh, 4); assert_int_equal(out.rl, 4); assert_int_equal(out.rm, 4);
    assert_int_equal(out.matrices, 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cp_workspace_monotone),
        cmocka_unit_test(test_cp_no_alloc_unaligned),
        cmocka_unit_test(test_cp_counts),
        cmocka_unit_test(test_cp_head_conventions),
        cmocka_unit_test(test_cp_gqa_definition),
        cmocka_unit_test(test_cp_init),
        cmocka_unit_test(test_cp_errors),
        cmocka_unit_test(test_cp_generic),
        cmocka_unit_test(test_tucker_superdiagonal_is_cp),
        cmocka_unit_test(test_tucker_lotr),
        cmocka_unit_test(test_tucker_fact_tk),
        cmocka_unit_test(test_tucker_init_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
