/* Serving: set plans, out-of-place merge and hot swap, mixed-adapter batches, one call for the
   sites that share an input.

   - lort_set_plan_query: params / frozen totals and per-entry offsets against closed forms
     (lora r (d_in + d_out), loraxs r^2 and r (d_in + d_out), cp r (d + d_h + H + L + M); each
     offset the previous end rounded up to 16 floats); cache and work equal to the maxima over
     every site's lort_adapter_sizes_query (init_work included), so exact, not just bounds.
     lort_set_bind points the entries into the blocks.
   - lort_adapter_merge_into, every mergeable family: W_out bit-identical (memcmp) to a copy of
     W_in merged in place; W_in untouched; in place allowed; partial overlap, tt_adp and a short
     workspace refused with W_out untouched.
   - Merge then unmerge (weight +1 then -1), every mergeable family, 1,000 rounds: at every
     round k, every entry satisfies |W_k - W_0| <= ulp(W_0) where |dW| <= |W_0|, and
     <= ulp(max(|W_0|, |W_0 + dW|)) elsewhere (two-sided: an absolute difference; the header's
     claim); and the merged state really differs from W_0 (max |W_merged - W_0| >= max|dW|/2),
     so the round trip is not vacuous.
   - Hot swap: forward of adapter a, then b, then a again on one workspace: a's two outputs are
     bit-identical, with no re-initialisation in between.
   - lort_mixed_forward, for every family alone and for a mix of families, at n = 1, 5, 8, 9
     and 37 with a random row -> adapter assignment (some rows -1): each row equals a double
     reference y0 + x dW^T (dW from the family's delta; tt_adp: the family's own forward on
     that row alone), relative 2e-5 of the largest entry; rows with -1 are bit-untouched. Also
     the in-place paths (every row one adapter; sorted, contiguous rows), shared-basis LoRA-XS
     over two bases interleaved, LoRA at ranks 8 and 16 with groups on both sides of the decode
     threshold (against y0 + s B A x in double), and the statuses: index out of range, short workspace, shape
     mismatch (y untouched each time).
   - lort_multi_forward / lort_multi_backward over q, k, v-like sites (three lora, three cp
     sites of one block, two tucker sites, one loraxs) at n = 1, 8, 9, 33, 70: equal to per-site
     calls (forward outputs, dx, every gradient), relative 2e-5. */
#include "lort_test.h"

enum { D = 16 };

/* ---- one adapter of each family, d_in = d_out = D ---------------------------------------- */
typedef struct fam {
    lort_adapter a;
    lort_adapter_sizes sz;
} fam;

static void tt3(lort_tt_desc *t, int rank) {
    memset(t, 0, sizeof *t);
    t->n_cores = 3;
    t->modes[0] = t->modes[1] = t->modes[2] = 4;
    t->rank = rank;
}

/* kind-specific desc; variant changes sizes/options a little (alpha, placement, residual). */
static void fam_desc(lort_adapter *a, lort_kind kind, int variant) {
    memset(a, 0, sizeof *a);
    a->kind = kind;
    switch (kind) {
    case LORT_KIND_LORA:
        a->desc.lora.d_in = D; a->desc.lora.d_out = D; a->desc.lora.r = 3 + variant % 3;
        a->desc.lora.alpha = 4.0f + (float)variant;
        break;
    case LORT_KIND_LORAXS:
        a->desc.loraxs.d_in = D; a->desc.loraxs.d_out = D; a->desc.loraxs.r = 4;
        a->desc.loraxs.alpha = 2.0f + (float)variant; a->desc.loraxs.svd.exact = 1;
        break;
    case LORT_KIND_TT_REP:
        a->desc.tt_rep.d_in = D; a->desc.tt_rep.d_out = D; a->desc.tt_rep.r = 4;
        tt3(&a->desc.tt_rep.A, 2); tt3(&a->desc.tt_rep.B, 2);
        break;
    case LORT_KIND_TT_ADP:
        a->desc.tt_adp.hidden = D; a->desc.tt_adp.bottleneck = 4;
        a->desc.tt_adp.act = LORT_ACT_TANH;
        a->desc.tt_adp.placement = variant % 2 ? LORT_TT_ADP_OUTPUT : LORT_TT_ADP_INPUT;
        tt3(&a->desc.tt_adp.down, 2);
        break;
    case LORT_KIND_MPO:
        a->desc.mpo.n_cores = 2;
        a->desc.mpo.row_factors[0] = a->desc.mpo.row_factors[1] = 4;
        a->desc.mpo.col_factors[0] = a->desc.mpo.col_factors[1] = 4;
        a->desc.mpo.bond = 3;
        a->desc.mpo.residual = variant % 2 ? LORT_MPO_RESIDUAL_F32 : LORT_MPO_RESIDUAL_NONE;
        break;
    case LORT_KIND_CP:
        a->desc.cp.d = D; a->desc.cp.heads = 2; a->desc.cp.layers = 2; a->desc.cp.r = 3;
        a->layer = variant % 2; a->matrix = variant % 3;
        break;
    case LORT_KIND_TUCKER:
        a->desc.tucker.d = D; a->desc.tucker.heads = 2; a->desc.tucker.layers = 2;
        a->desc.tucker.r1 = 3; a->desc.tucker.r2 = 2;
        a->layer = variant % 2; a->matrix = (variant + 1) % 3;
        break;
    default: break;
    }
}

/* Allocated and filled: params random (scale 0.4), frozen random or from init. */
static void fam_make(fam *f, lort_kind kind, int variant, int n) {
    fam_desc(&f->a, kind, variant);
    OK(lort_adapter_sizes_query(&f->a, n, &f->sz));
    f->a.params = tr_alloc(f->sz.params);
    f->a.frozen = f->sz.frozen_bytes ? tr_alloc(f->sz.frozen_bytes / sizeof(float)) : NULL;
    f->a.grads = tr_alloc(f->sz.params);
    for (size_t i = 0; i < f->sz.params; ++i) f->a.params[i] = 0.4f * tr_sym();
    for (size_t i = 0; i < f->sz.frozen_bytes / sizeof(float); ++i) ((float *)f->a.frozen)[i] = 0.4f * tr_sym();
}
static void fam_free(fam *f) {
    free(f->a.params);
    free(f->a.frozen);
    free(f->a.grads);
}
static int mergeable(lort_kind k) { return k != LORT_KIND_TT_ADP; }

static const lort_kind KINDS[] = {LORT_KIND_LORA, LORT_KIND_LORAXS, LORT_KIND_TT_REP,
                                  LORT_KIND_TT_ADP, LORT_KIND_MPO, LORT_KIND_CP,
                                  LORT_KIND_TUCKER};
enum { NKINDS = (int)(sizeof KINDS / sizeof KINDS[0]) };

/* ---- plan ------------------------------------------------------------------------------- */
static void test_plan(void **state) {
    (void)state;
    lort_adapter e[4];
    lort_set_site sites[6] = {
        {"l0.q", 0, 0, 0}, {"l0.v", 1, 0, 0}, {"l0.o", 2, 0, 0},
        {"cp.q0", 3, 0, LORT_CP_Q}, {"cp.k1", 3, 1, LORT_CP_K}, {"cp.o1", 3, 1, LORT_CP_O}};
    memset(e, 0, sizeof e);
    e[0].kind = LORT_KIND_LORA; e[0].desc.lora.d_in = 24; e[0].desc.lora.d_out = 24; e[0].desc.lora.r = 3;
    e[1].kind = LORT_KIND_LORA; e[1].desc.lora.d_in = 24; e[1].desc.lora.d_out = 8; e[1].desc.lora.r = 5;
    e[2].kind = LORT_KIND_LORAXS; e[2].desc.loraxs.d_in = 24; e[2].desc.loraxs.d_out = 24; e[2].desc.loraxs.r = 7;
    e[3].kind = LORT_KIND_CP; e[3].desc.cp.d = 24; e[3].desc.cp.heads = 4; e[3].desc.cp.layers = 2;
    e[3].desc.cp.r = 6; e[3].desc.cp.kv_heads = 2; e[3].layer = 77;
    lort_adapter_set set = {e, 4, sites, 6};
    const size_t want_p[4] = {3 * 48, 5 * 32, 49, 6 * (24 + 6 + 4 + 2 + 4)};
    const size_t want_f[4] = {0, 0, 7 * 48 * sizeof(float), 0};
    for (int n = 1; n <= 40; n += 13) {
        lort_set_plan p;
        lort_set_plan_entry pe[4];
        lort_adapter_sizes ss[6];
        OK(lort_set_validate(&set, NULL, 0));
        OK(lort_set_plan_query(&set, n, &p, pe, ss));
        size_t po = 0, fo = 0, cache = 0, work = 0;
        for (int i = 0; i < 4; ++i) {
            po = (po + 15u) / 16u * 16u;
            fo = (fo + 63u) / 64u * 64u;
            assert_int_equal(pe[i].params_offset, po);
            assert_int_equal(pe[i].params, want_p[i]);
            assert_int_equal(pe[i].frozen_offset, fo);
            assert_int_equal(pe[i].frozen_bytes, want_f[i]);
            po += want_p[i];
            fo += want_f[i];
        }
        assert_int_equal(p.params, po);
        assert_int_equal(p.frozen_bytes, fo);
        for (int i = 0; i < 6; ++i) {
            lort_adapter a;
            lort_adapter_sizes z;
            OK(lort_set_site_adapter(&set, i, &a));
            OK(lort_adapter_sizes_query(&a, n, &z));
            assert_memory_equal(&z, &ss[i], sizeof z);
            if (z.cache > cache) cache = z.cache;
            if (z.work > work) work = z.work;
            if (z.init_work > work) work = z.init_work;
        }
        assert_int_equal(p.cache, cache);
        assert_int_equal(p.work, work);
        assert_int_equal(p.max_d_in, 24);
        assert_int_equal(p.max_d_out, 24);
        assert_int_equal(ss[4].d_out, 12); /* the GQA K site: kv_heads d_h */
        /* bind */
        float *P = tr_alloc(p.params), *G = tr_alloc(p.params);
        char *F = (char *)tr_buf(p.frozen_bytes);
        OK(lort_set_bind(&set, pe, P, F, G));
        for (int i = 0; i < 4; ++i) {
            assert_ptr_equal(e[i].params, P + pe[i].params_offset);
            assert_ptr_equal(e[i].grads, G + pe[i].params_offset);
            if (want_f[i]) assert_ptr_equal(e[i].frozen, F + pe[i].frozen_offset);
            else assert_null(e[i].frozen);
        }
        ST(LORT_ERR_NULL, lort_set_bind(&set, pe, P, NULL, G)); /* loraxs needs frozen */
        free(P); free(F); free(G);
    }
    lort_set_plan p;
    ST(LORT_ERR_INVALID_ARG, lort_set_plan_query(&set, 0, &p, NULL, NULL));
    ST(LORT_ERR_NULL, lort_set_plan_query(&set, 1, NULL, NULL, NULL));
    sites[4].layer = 2; /* out of range */
    ST(LORT_ERR_INVALID_ARG, lort_set_plan_query(&set, 1, &p, NULL, NULL));
    sites[4].layer = 1;
    sites[2].entry = 4;
    ST(LORT_ERR_INVALID_ARG, lort_set_plan_query(&set, 1, &p, NULL, NULL));
}

/* ---- merge_into, merge/unmerge, hot swap --------------------------------------------------- */
static void test_merge_into(void **state) {
    (void)state;
    tr_seed(11);
    for (int k = 0; k < NKINDS; ++k)
        for (int v = 0; v < 2; ++v) {
            fam f;
            fam_make(&f, KINDS[k], v, 1);
            size_t nw = zu(D) * zu(D);
            float *Win = tr_rand(nw), *Wout = tr_rand(nw), *Wref = tr_alloc(nw), *keep = tr_alloc(nw);
            void *w = tr_buf(f.sz.work);
            memcpy(keep, Wout, nw * sizeof(float));
            if (!mergeable(KINDS[k])) {
                ST(LORT_ERR_NOT_MERGEABLE, lort_adapter_merge_into(&f.a, Wout, Win, 1.0f, w, f.sz.work));
                assert_memory_equal(Wout, keep, nw * sizeof(float));
            } else {
                float *Win0 = tr_alloc(nw);
                memcpy(Win0, Win, nw * sizeof(float));
                memcpy(Wref, Win, nw * sizeof(float));
                OK(lort_adapter_merge(&f.a, Wref, 0.75f, w, f.sz.work));
                if (f.sz.work) /* short workspace: refused, W_out untouched */
                    ST(LORT_ERR_WORKSPACE, lort_adapter_merge_into(&f.a, Wout, Win, 0.75f, w, f.sz.work - 1));
                assert_memory_equal(Wout, keep, nw * sizeof(float));
                ST(LORT_ERR_INVALID_ARG, lort_adapter_merge_into(&f.a, Win + 1, Win, 0.75f, w, f.sz.work));
                ST(LORT_ERR_INVALID_ARG, lort_adapter_merge_into(&f.a, Wout, Win, NAN, w, f.sz.work));
                ST(LORT_ERR_NULL, lort_adapter_merge_into(&f.a, NULL, Win, 1.0f, w, f.sz.work));
                assert_memory_equal(Win, Win0, nw * sizeof(float));
                OK(lort_adapter_merge_into(&f.a, Wout, Win, 0.75f, w, f.sz.work));
                assert_memory_equal(Wout, Wref, nw * sizeof(float));
                assert_memory_equal(Win, Win0, nw * sizeof(float));
                int differs = 0;
                for (size_t i = 0; i < nw; ++i) differs |= memcmp(&Wout[i], &Win[i], sizeof(float)) != 0;
                assert_true(differs);
                OK(lort_adapter_merge_into(&f.a, Win, Win, 0.75f, w, f.sz.work)); /* in place */
                assert_memory_equal(Win, Wref, nw * sizeof(float));
                free(Win0);
            }
            free(Win); free(Wout); free(Wref); free(keep); free(w);
            fam_free(&f);
        }
}

static double ulp_of(double v) {
    float a = (float)fabs(v);
    return (double)nextafterf(a, INFINITY) - (double)a;
}

static void test_merge_unmerge_rounds(void **state) {
    (void)state;
    tr_seed(12);
    for (int k = 0; k < NKINDS; ++k) {
        if (!mergeable(KINDS[k])) continue;
        fam f;
        fam_make(&f, KINDS[k], 0, 1);
        size_t nw = zu(D) * zu(D);
        float *W0 = tr_rand(nw), *W = tr_alloc(nw), *dW = tr_alloc(nw);
        double *bound = td_alloc(nw);
        void *w = tr_buf(f.sz.work);
        OK(lort_adapter_delta(&f.a, dW, w, f.sz.work));
        double dmax = 0.0;
        int small = 0, large = 0;
        for (size_t i = 0; i < nw; ++i) {
            double a = fabs((double)W0[i]), s = fabs((double)W0[i] + (double)dW[i]);
            dmax = fmax(dmax, fabs((double)dW[i]));
            if (fabs((double)dW[i]) <= a) { bound[i] = ulp_of(a); small++; }
            else { bound[i] = ulp_of(fmax(a, s)); large++; }
        }
        assert_true(dmax > 0.0);
        assert_true(small > 0);
        memcpy(W, W0, nw * sizeof(float));
        for (int round = 0; round < 1000; ++round) {
            OK(lort_adapter_merge(&f.a, W, 1.0f, w, f.sz.work));
            if (round == 0) {
                double moved = 0.0;
                for (size_t i = 0; i < nw; ++i) moved = fmax(moved, fabs((double)W[i] - (double)W0[i]));
                assert_true(moved >= 0.5 * dmax);
            }
            OK(lort_adapter_merge(&f.a, W, -1.0f, w, f.sz.work));
            for (size_t i = 0; i < nw; ++i) {
                double e = fabs((double)W[i] - (double)W0[i]);
                if (!(e <= bound[i])) {
                    printf("  kind %d round %d entry %zu: |W - W0| = %.3g > bound %.3g (W0 %.9g, dW %.3g)\n",
                           (int)KINDS[k], round, i, e, bound[i], (double)W0[i], (double)dW[i]);
                    fail();
                }
            }
        }
        (void)large;
        free(W0); free(W); free(dW); free(bound); free(w);
        fam_free(&f);
    }
}

static void test_hot_swap(void **state) {
    (void)state;
    tr_seed(13);
    enum { N = 6 };
    fam a, b;
    fam_make(&a, LORT_KIND_LORA, 0, N);
    fam_make(&b, LORT_KIND_CP, 1, N);
    size_t ws = a.sz.work > b.sz.work ? a.sz.work : b.sz.work;
    void *w = tr_buf(ws);
    float *x = tr_rand(N * D), *y1 = tr_alloc(N * D), *y2 = tr_alloc(N * D), *y3 = tr_alloc(N * D);
    OK(lort_adapter_forward(&a.a, y1, x, N, NULL, 0, w, ws));
    OK(lort_adapter_forward(&b.a, y2, x, N, NULL, 0, w, ws));
    OK(lort_adapter_forward(&a.a, y3, x, N, NULL, 0, w, ws));
    assert_memory_equal(y1, y3, sizeof(float) * N * D);
    /* new values in the same params buffer: the next call uses them, nothing to reset */
    for (size_t i = 0; i < a.sz.params; ++i) a.a.params[i] *= 2.0f;
    memset(y3, 0, sizeof(float) * N * D);
    OK(lort_adapter_forward(&a.a, y3, x, N, NULL, 0, w, ws));
    for (int i = 0; i < N * D; ++i) assert_true(fabsf(y3[i] - 4.0f * y1[i]) <= 1e-5f * (1.0f + fabsf(y3[i])));
    free(x); free(y1); free(y2); free(y3); free(w);
    fam_free(&a); fam_free(&b);
}

/* ---- mixed batches ----------------------------------------------------------------------- */
/* want[i] = y0[i] + adapter_{ra[i]}(x[i]) in double where the family has a delta; tt_adp rows
   (no delta) from the family's own forward on that row alone. */
static void mixed_reference(const lort_adapter *ad, int na, const float *x, const float *y0,
                            const int *ra, int n, double *want) {
    size_t nw = zu(D) * zu(D);
    float *dW = tr_alloc(nw), *row = tr_alloc(D);
    for (int i = 0; i < n; ++i)
        for (int o = 0; o < D; ++o) want[IX(i, D, o)] = (double)y0[IX(i, D, o)];
    for (int a = 0; a < na; ++a) {
        lort_adapter_sizes z;
        OK(lort_adapter_sizes_query(&ad[a], 1, &z));
        void *w = tr_buf(z.work);
        int delta = ad[a].kind != LORT_KIND_TT_ADP;
        if (delta) OK(lort_adapter_delta(&ad[a], dW, w, z.work));
        for (int i = 0; i < n; ++i) {
            if (ra[i] != a) continue;
            if (delta) {
                for (int o = 0; o < D; ++o) {
                    double acc = 0.0;
                    for (int j = 0; j < D; ++j) acc += (double)x[IX(i, D, j)] * (double)dW[IX(o, D, j)];
                    want[IX(i, D, o)] += acc;
                }
            } else {
                memcpy(row, y0 + IX(i, D, 0), sizeof(float) * D);
                int outp = ad[a].desc.tt_adp.placement == LORT_TT_ADP_OUTPUT;
                OK(lort_adapter_forward(&ad[a], row, outp ? NULL : x + IX(i, D, 0), 1, NULL, 0, w, z.work));
                for (int o = 0; o < D; ++o) want[IX(i, D, o)] = (double)row[o];
            }
        }
        free(w);
    }
    free(dW); free(row);
}

static void mixed_check(const lort_adapter *ad, int na, const int *ra, int n, const char *label) {
    size_t ws = 0;
    OK(lort_mixed_workspace_size(ad, na, n, &ws));
    void *w = tr_buf(ws);
    float *x = tr_rand(zu(n) * D), *y0 = tr_rand(zu(n) * D), *y = tr_alloc(zu(n) * D);
    double *want = td_alloc(zu(n) * D);
    memcpy(y, y0, sizeof(float) * zu(n) * D);
    OK(lort_mixed_forward(ad, na, y, x, ra, n, w, ws));
    mixed_reference(ad, na, x, y0, ra, n, want);
    if (!near_fd(label, y, want, zu(n) * D, 2e-5)) fail();
    for (int i = 0; i < n; ++i)
        if (ra[i] < 0) assert_memory_equal(y + IX(i, D, 0), y0 + IX(i, D, 0), sizeof(float) * D);
    free(w); free(x); free(y0); free(y); free(want);
}

static void test_mixed_families(void **state) {
    (void)state;
    tr_seed(14);
    enum { NA = 4 };
    static const int ns[] = {1, 5, 8, 9, 37};
    for (int k = 0; k < NKINDS; ++k) {
        fam f[NA];
        lort_adapter ad[NA];
        for (int a = 0; a < NA; ++a) {
            fam_make(&f[a], KINDS[k], a, 1);
            ad[a] = f[a].a;
        }
        for (size_t t = 0; t < sizeof ns / sizeof ns[0]; ++t) {
            int n = ns[t], ra[37];
            char label[64];
            for (int i = 0; i < n; ++i) ra[i] = (int)(tr_uniform() * (NA + 1)) - 1;
            snprintf(label, sizeof label, "kind %d n %d random", (int)KINDS[k], n);
            mixed_check(ad, NA, ra, n, label);
            for (int i = 0; i < n; ++i) ra[i] = 2; /* one adapter for all: in place */
            snprintf(label, sizeof label, "kind %d n %d one", (int)KINDS[k], n);
            mixed_check(ad, NA, ra, n, label);
            for (int i = 0; i < n; ++i) ra[i] = (i * NA) / n; /* sorted: contiguous segments */
            snprintf(label, sizeof label, "kind %d n %d sorted", (int)KINDS[k], n);
            mixed_check(ad, NA, ra, n, label);
        }
        for (int a = 0; a < NA; ++a) fam_free(&f[a]);
    }
}

static void test_mixed_mix(void **state) {
    (void)state;
    tr_seed(15);
    fam f[2 * NKINDS];
    lort_adapter ad[2 * NKINDS];
    for (int k = 0; k < NKINDS; ++k)
        for (int v = 0; v < 2; ++v) {
            fam_make(&f[2 * k + v], KINDS[k], v, 1);
            ad[2 * k + v] = f[2 * k + v].a;
        }
    for (int rep = 0; rep < 6; ++rep) {
        int n = 1 + (int)(tr_uniform() * 60), ra[64];
        char label[64];
        for (int i = 0; i < n; ++i) ra[i] = (int)(tr_uniform() * (2 * NKINDS + 1)) - 1;
        snprintf(label, sizeof label, "mix rep %d n %d", rep, n);
        mixed_check(ad, 2 * NKINDS, ra, n, label);
    }
    for (int i = 0; i < 2 * NKINDS; ++i) fam_free(&f[i]);
}

/* Shared-basis LoRA-XS: 12 users over 2 bases, interleaved in index order (0-5 basis 0, 6-8
   basis 1, 9-11 basis 0 again), with alpha differing per user. */
static void test_mixed_shared_basis(void **state) {
    (void)state;
    tr_seed(16);
    enum { NA = 12 };
    fam f[2];
    lort_adapter ad[NA];
    float *R[NA];
    fam_make(&f[0], LORT_KIND_LORAXS, 0, 1);
    fam_make(&f[1], LORT_KIND_LORAXS, 0, 1);
    for (int a = 0; a < NA; ++a) {
        ad[a] = f[(a >= 6 && a < 9) ? 1 : 0].a;
        ad[a].desc.loraxs.alpha = 1.0f + 0.5f * (float)a;
        ad[a].desc.loraxs.rslora = a % 2;
        R[a] = tr_rand(16);
        ad[a].params = R[a];
        ad[a].grads = NULL;
    }
    static const int ns[] = {1, 7, 8, 40, 100};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; ++t) {
        int n = ns[t], ra[100];
        char label[64];
        for (int i = 0; i < n; ++i) ra[i] = (int)(tr_uniform() * (NA + 1)) - 1;
        snprintf(label, sizeof label, "shared n %d", n);
        mixed_check(ad, NA, ra, n, label);
        for (int i = 0; i < n; ++i) ra[i] = (int)(tr_uniform() * 6); /* all rows, basis 0 */
        snprintf(label, sizeof label, "shared all n %d", n);
        mixed_check(ad, NA, ra, n, label);
    }
    { /* a user of a basis already checked is still checked: NULL params, bad alpha */
        int n = 8, ra[8] = {0, 3, 0, 3, 1, 1, 3, 0};
        size_t ws = 0;
        OK(lort_mixed_workspace_size(ad, NA, n, &ws));
        void *w = tr_buf(ws);
        float *x = tr_rand(zu(n) * D), *y = tr_rand(zu(n) * D), *keep = tr_alloc(zu(n) * D);
        memcpy(keep, y, sizeof(float) * zu(n) * D);
        ad[3].params = NULL;
        assert_int_equal(lort_mixed_forward(ad, NA, y, x, ra, n, w, ws), LORT_ERR_NULL);
        ad[3].params = R[3];
        ad[3].desc.loraxs.alpha = NAN;
        assert_int_equal(lort_mixed_forward(ad, NA, y, x, ra, n, w, ws), LORT_ERR_INVALID_ARG);
        assert_memory_equal(y, keep, sizeof(float) * zu(n) * D);
        free(w); free(x); free(y); free(keep);
    }
    for (int a = 0; a < NA; ++a) free(R[a]);
    fam_free(&f[0]); fam_free(&f[1]);
}

/* Mixed LoRA at the decode loops' sizes: ranks 8 and 16 (eight outputs at a time and a tail:
   d_out 37), d_in 40 (not a multiple of 16), 6 adapters, random rows at n = 3, 12, 40, 64 (groups
   of a few rows run the decode loops on scattered rows in place, larger groups gather and run
   GEMMs); y against y0 + s B (A x) in double, per row. */
static void test_mixed_lora_decode(void **state) {
    (void)state;
    tr_seed(18);
    enum { NA = 6, DI = 40, DO = 37 };
    lort_adapter ad[NA];
    float *P[NA];
    for (int a = 0; a < NA; ++a) {
        memset(&ad[a], 0, sizeof ad[a]);
        ad[a].kind = LORT_KIND_LORA;
        ad[a].desc.lora.d_in = DI; ad[a].desc.lora.d_out = DO;
        ad[a].desc.lora.r = a % 2 ? 16 : 8;
        ad[a].desc.lora.alpha = 3.0f + (float)a;
        P[a] = tr_rand(zu(ad[a].desc.lora.r) * (DI + DO));
        ad[a].params = P[a];
    }
    static const int ns[] = {3, 12, 40, 64};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; ++t) {
        int n = ns[t], ra[64];
        size_t ws = 0;
        for (int i = 0; i < n; ++i) ra[i] = (int)(tr_uniform() * (NA + 1)) - 1;
        OK(lort_mixed_workspace_size(ad, NA, n, &ws));
        void *w = tr_buf(ws);
        float *x = tr_rand(zu(n) * DI), *y0 = tr_rand(zu(n) * DO), *y = tr_alloc(zu(n) * DO);
        double *want = td_alloc(zu(n) * DO);
        memcpy(y, y0, sizeof(float) * zu(n) * DO);
        OK(lort_mixed_forward(ad, NA, y, x, ra, n, w, ws));
        for (int i = 0; i < n; ++i) {
            for (int o = 0; o < DO; ++o) want[IX(i, DO, o)] = (double)y0[IX(i, DO, o)];
            if (ra[i] < 0) continue;
            int r = ad[ra[i]].desc.lora.r;
            const float *A = P[ra[i]], *B = P[ra[i]] + r * DI;
            double s = (double)ad[ra[i]].desc.lora.alpha / (double)r, h[16];
            for (int k = 0; k < r; ++k) {
                h[k] = 0.0;
                for (int j = 0; j < DI; ++j) h[k] += (double)A[IX(k, DI, j)] * (double)x[IX(i, DI, j)];
            }
            for (int o = 0; o < DO; ++o)
                for (int k = 0; k < r; ++k) want[IX(i, DO, o)] += s * (double)B[IX(o, r, k)] * h[k];
        }
        char label[48];
        snprintf(label, sizeof label, "mixed lora decode n %d", n);
        assert_true(near_fd(label, y, want, zu(n) * DO, 2e-5));
        for (int i = 0; i < n; ++i)
            if (ra[i] < 0) assert_memory_equal(y + IX(i, DO, 0), y0 + IX(i, DO, 0), sizeof(float) * DO);
        free(w); free(x); free(y0); free(y); free(want);
    }
    for (int a = 0; a < NA; ++a) free(P[a]);
}

static void test_mixed_errors(void **state) {
    (void)state;
    tr_seed(17);
    enum { N = 9 };
    fam f[2];
    fam_make(&f[0], LORT_KIND_LORA, 0, 1);
    fam_make(&f[1], LORT_KIND_LORA, 1, 1);
    lort_adapter ad[2] = {f[0].a, f[1].a};
    size_t ws = 0;
    OK(lort_mixed_workspace_size(ad, 2, N, &ws));
    void *w = tr_buf(ws);
    float *x = tr_rand(N * D), *y = tr_rand(N * D), *y0 = tr_alloc(N * D);
    memcpy(y0, y, sizeof(float) * N * D);
    int ra[N] = {0, 1, 0, -1, 1, 1, 0, 0, 1};
    ST(LORT_ERR_WORKSPACE, lort_mixed_forward(ad, 2, y, x, ra, N, w, ws - 1));
    ra[4] = 2;
    ST(LORT_ERR_INVALID_ARG, lort_mixed_forward(ad, 2, y, x, ra, N, w, ws));
    ra[4] = -2;
    ST(LORT_ERR_INVALID_ARG, lort_mixed_forward(ad, 2, y, x, ra, N, w, ws));
    ra[4] = 1;
    ST(LORT_ERR_NULL, lort_mixed_forward(ad, 2, y, x, NULL, N, w, ws));
    ST(LORT_ERR_INVALID_ARG, lort_mixed_forward(ad, 2, y, x, ra, 0, w, ws));
    ad[1].desc.lora.d_out = D + 1;
    ST(LORT_ERR_SHAPE, lort_mixed_forward(ad, 2, y, x, ra, N, w, ws));
    ST(LORT_ERR_SHAPE, lort_mixed_workspace_size(ad, 2, N, &ws));
    ad[1].desc.lora.d_out = D;
    ad[1].params = NULL;
    ST(LORT_ERR_NULL, lort_mixed_forward(ad, 2, y, x, ra, N, w, ws));
    assert_memory_equal(y, y0, sizeof(float) * N * D);
    /* no row uses an adapter: y untouched, OK */
    for (int i = 0; i < N; ++i) ra[i] = -1;
    OK(lort_mixed_forward(ad, 2, y, x, ra, N, w, ws));
    assert_memory_equal(y, y0, sizeof(float) * N * D);
    free(w); free(x); free(y); free(y0);
    fam_free(&f[0]); fam_free(&f[1]);
}

/* ---- multi-site ---------------------------------------------------------------------------- */
static void test_multi(void **state) {
    (void)state;
    tr_seed(18);
    enum { NS = 9 };
    fam lo[3], cpf, tk, xs;
    lort_adapter ad[NS];
    for (int i = 0; i < 3; ++i) fam_make(&lo[i], LORT_KIND_LORA, i, 1);
    lo[1].a.desc.lora.d_out = D / 2; /* a GQA-like narrow k/v */
    free(lo[1].a.params); free(lo[1].a.grads);
    {
        size_t np = 0;
        OK(lort_lora_param_count(&lo[1].a.desc.lora, &np));
        lo[1].a.params = tr_rand(np);
        lo[1].a.grads = tr_alloc(np);
    }
    fam_make(&cpf, LORT_KIND_CP, 0, 1);
    fam_make(&tk, LORT_KIND_TUCKER, 0, 1);
    fam_make(&xs, LORT_KIND_LORAXS, 0, 1);
    ad[0] = lo[0].a; ad[1] = cpf.a; ad[2] = lo[1].a;
    ad[3] = cpf.a; ad[3].layer = 1; ad[3].matrix = LORT_CP_K;
    ad[4] = tk.a; ad[5] = lo[2].a;
    ad[6] = cpf.a; ad[6].layer = 1; ad[6].matrix = LORT_CP_O;
    ad[7] = tk.a; ad[7].matrix = LORT_CP_V; ad[8] = xs.a;
    static const int ns[] = {1, 8, 9, 33, 70}; /* lora stacked from n = 64 */
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; ++t) {
        int n = ns[t];
        size_t ws = 0, maxw = 0;
        OK(lort_multi_workspace_size(ad, NS, n, &ws));
        for (int i = 0; i < NS; ++i) {
            lort_adapter_sizes z;
            OK(lort_adapter_sizes_query(&ad[i], n, &z));
            if (z.work > maxw) maxw = z.work;
        }
        void *w = tr_buf(ws), *w1 = tr_buf(maxw);
        float *x = tr_rand(zu(n) * D), *y[NS], *yr[NS], *dy[NS];
        float *dx = tr_rand(zu(n) * D), *dxr = tr_alloc(zu(n) * D);
        memcpy(dxr, dx, sizeof(float) * zu(n) * D);
        for (int i = 0; i < NS; ++i) {
            lort_adapter_sizes z;
            OK(lort_adapter_sizes_query(&ad[i], n, &z));
            y[i] = tr_rand(zu(n) * zu(z.d_out));
            yr[i] = tr_alloc(zu(n) * zu(z.d_out));
            memcpy(yr[i], y[i], sizeof(float) * zu(n) * zu(z.d_out));
            dy[i] = tr_rand(zu(n) * zu(z.d_out));
        }
        OK(lort_multi_forward(ad, NS, y, x, n, w, ws));
        for (int i = 0; i < NS; ++i) {
            lort_adapter_sizes z;
            char label[48];
            OK(lort_adapter_sizes_query(&ad[i], n, &z));
            OK(lort_adapter_forward(&ad[i], yr[i], x, n, NULL, 0, w1, maxw));
            double *want = to_double(yr[i], zu(n) * zu(z.d_out));
            snprintf(label, sizeof label, "multi forward n %d site %d", n, i);
            if (!near_fd(label, y[i], want, zu(n) * zu(z.d_out), 2e-5)) fail();
            free(want);
        }
        /* backward: grads of the multi call, then of the per-site calls, compared */
        fam *owners[6] = {&lo[0], &lo[1], &lo[2], &cpf, &tk, &xs};
        float *gm[6];
        for (int o = 0; o < 6; ++o) {
            lort_adapter_sizes z;
            OK(lort_adapter_sizes_query(&owners[o]->a, 1, &z));
            lort_zero(owners[o]->a.grads, z.params);
        }
        OK(lort_multi_backward(ad, NS, dx, (const float *const *)dy, x, n, w, ws));
        for (int o = 0; o < 6; ++o) {
            size_t np = 0;
            lort_adapter_sizes z;
            OK(lort_adapter_sizes_query(&owners[o]->a, 1, &z));
            np = z.params;
            gm[o] = tr_alloc(np);
            memcpy(gm[o], owners[o]->a.grads, np * sizeof(float));
            lort_zero(owners[o]->a.grads, np);
        }
        for (int i = 0; i < NS; ++i) OK(lort_adapter_backward(&ad[i], dxr, dy[i], x, n, NULL, 0, w1, maxw));
        {
            double *want = to_double(dxr, zu(n) * D);
            if (!near_fd("multi dx", dx, want, zu(n) * D, 2e-5)) fail();
            free(want);
        }
        for (int o = 0; o < 6; ++o) {
            lort_adapter_sizes z;
            char label[48];
            OK(lort_adapter_sizes_query(&owners[o]->a, 1, &z));
            double *want = to_double(owners[o]->a.grads, z.params);
            snprintf(label, sizeof label, "multi grads n %d owner %d", n, o);
            if (!near_fd(label, gm[o], want, z.params, 2e-5)) fail();
            free(want);
            free(gm[o]);
        }
        for (int i = 0; i < NS; ++i) { free(y[i]); free(yr[i]); free(dy[i]); }
        free(w); free(w1); free(x); free(dx); free(dxr);
    }
    /* a site with another d_in is refused */
    ad[5].desc.lora.d_in = D + 1;
    size_t ws = 0;
    ST(LORT_ERR_SHAPE, lort_multi_workspace_size(ad, NS, 4, &ws));
    for (int i = 0; i < 3; ++i) fam_free(&lo[i]);
    fam_free(&cpf); fam_free(&tk); fam_free(&xs);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan),
        cmocka_unit_test(test_merge_into),
        cmocka_unit_test(test_merge_unmerge_rounds),
        cmocka_unit_test(test_hot_swap),
        cmocka_unit_test(test_mixed_families),
        cmocka_unit_test(test_mixed_mix),
        cmocka_unit_test(test_mixed_shared_basis),
        cmocka_unit_test(test_mixed_lora_decode),
        cmocka_unit_test(test_mixed_errors),
        cmocka_unit_test(test_multi),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
