/* Export to LoRA (lort_adapter_to_lora, lort_set_to_lora) against double-precision references.

   For every linear family (lora with and without rsLoRA, a lora of rank above min(d_in, d_out)
   that takes the dense route, loraxs, tt_rep, cp with heads out / heads in / GQA, tucker, mpo):
   dW in double (from the factors for lora, loraxs and cp; from the family's delta, which the
   family tests check against their own double references, for tt_rep, tucker and mpo), its
   singular values by a one-sided Jacobi SVD in double written here, and then:
   - exact cases (r >= the family's rank): s B A == dW to fp32 rounding, rel_err ~ 0;
   - truncated cases: Eckart-Young, two-sided: the reported rel_err and the actual
     ||dW - B A|| / ||dW|| (in double) both equal sqrt(sum_{i >= r} sigma_i^2) / ||dW|| within
     tolerance; the output desc is {d_in, d_out, min(r, d_in, d_out), alpha = r} (scale 1);
   - a short workspace or params: a status, outputs untouched;
   - a whole set (lora + cp block with three sites + tucker + mpo): per-site results equal the
     single-adapter export bit for bit, names kept, sizes from the query; tt_adp and DoTA mpo
     refused with the site named in the message. */
#include "lort_test.h"

/* singular values of a (m, n) double matrix, descending: one-sided Jacobi on the columns */
static void ref_singular_values(const double *W, int m_, int n_, double *sv) {
    size_t m = (size_t)m_, n = (size_t)n_;
    double *X = td_alloc(m * n);
    memcpy(X, W, m * n * sizeof(double));
    for (int sweep = 0; sweep < 80; ++sweep) {
        double off = 0.0;
        for (size_t p = 0; p < n; ++p)
            for (size_t q = p + 1; q < n; ++q) {
                double a = 0, b = 0, c = 0;
                for (size_t i = 0; i < m; ++i) {
                    double xp = X[i * n + p], xq = X[i * n + q];
                    a += xp * xp; b += xq * xq; c += xp * xq;
                }
                if (fabs(c) <= 1e-300 || fabs(c) <= 1e-15 * sqrt(a * b)) continue;
                off += c * c / (a * b);
                double zeta = (b - a) / (2.0 * c);
                double t = (zeta >= 0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(1.0 + zeta * zeta));
                double cs = 1.0 / sqrt(1.0 + t * t), sn = cs * t;
                for (size_t i = 0; i < m; ++i) {
                    double xp = X[i * n + p], xq = X[i * n + q];
                    X[i * n + p] = cs * xp - sn * xq;
                    X[i * n + q] = sn * xp + cs * xq;
                }
            }
        if (off < 1e-30) break;
    }
    for (size_t j = 0; j < n; ++j) {
        double s = 0;
        for (size_t i = 0; i < m; ++i) s += X[i * n + j] * X[i * n + j];
        sv[j] = sqrt(s);
    }
    for (size_t i = 0; i < n; ++i) /* sort descending */
        for (size_t j = i + 1; j < n; ++j)
            if (sv[j] > sv[i]) { double t = sv[i]; sv[i] = sv[j]; sv[j] = t; }
    free(X);
}

/* Exports a at rank r and checks it against dW (d_out, d_in, double). Returns the rank. */
static int check_export(const char *label, const lort_adapter *a, const double *dW, int d_out,
                        int d_in, int r, int exact) {
    lort_lora_desc ld;
    size_t wb = 0, np = 0;
    OK(lort_adapter_to_lora_size(a, r, NULL, &ld, &wb));
    int re = r < d_in ? r : d_in;
    re = re < d_out ? re : d_out;
    assert_int_equal(ld.d_in, d_in);
    assert_int_equal(ld.d_out, d_out);
    assert_int_equal(ld.r, re);
    assert_true(fabsf(ld.alpha - (float)re) <= 0.0f && ld.rslora == 0);
    float s = 0.0f;
    OK(lort_lora_scale(&ld, &s));
    assert_true(fabsf(s - 1.0f) <= 0.0f);
    OK(lort_lora_param_count(&ld, &np));
    float *p = tr_alloc(np);
    void *work = tr_buf(wb);
    float err = -1.0f;
    lort_lora_desc got;
    /* short workspace: refused, outputs untouched */
    for (size_t i = 0; i < np; ++i) p[i] = 7.0f;
    if (wb > 0) {
        assert_int_equal(lort_adapter_to_lora(a, &got, p, &err, r, NULL, work, wb - 1), LORT_ERR_WORKSPACE);
        for (size_t i = 0; i < np; ++i) assert_true(fabsf(p[i] - 7.0f) <= 0.0f);
        assert_true(fabsf(err + 1.0f) <= 0.0f);
    }
    OK(lort_adapter_to_lora(a, &got, p, &err, r, NULL, work, wb));
    assert_int_equal(got.r, re);
    /* B A in double vs dW */
    size_t n = (size_t)d_out * (size_t)d_in;
    double *BA = td_alloc(n), *sv = td_alloc((size_t)d_in); /* one per column */
    ref_gemm(0, 0, d_out, d_in, re, p + (size_t)re * (size_t)d_in, re, p, d_in, BA);
    double tot = 0, res = 0, mx = 0;
    for (size_t i = 0; i < n; ++i) {
        tot += dW[i] * dW[i];
        res += (dW[i] - BA[i]) * (dW[i] - BA[i]);
        if (fabs(dW[i]) > mx) mx = fabs(dW[i]);
    }
    int k = d_in < d_out ? d_in : d_out;
    ref_singular_values(dW, d_out, d_in, sv);
    double tail = 0;
    for (int i = re; i < k; ++i) tail += sv[i] * sv[i];
    double opt = sqrt(tail / tot), actual = sqrt(res / tot);
    printf("  %-22s r %2d: rel_err %.3e  actual %.3e  optimum %.3e\n", label, re, (double)err,
           actual, opt);
    if (exact) {
        assert_true(opt < 1e-6);   /* the reference agrees that rank r suffices */
        assert_true(err >= 0.0f && err < 2e-6f);
        assert_true(actual < 3e-6);
        double *want = td_alloc(n);
        memcpy(want, dW, n * sizeof(double));
        float *baf = tr_alloc(n);
        for (size_t i = 0; i < n; ++i) baf[i] = (float)BA[i];
        assert_true(cmp_fd(label, baf, want, n, 2e-6 * mx, 0.0));
        free(want);
        free(baf);
    } else {
        assert_true(opt > 1e-3);   /* a real truncation */
        assert_true(fabs((double)err - opt) <= 1e-5 + 1e-3 * opt);
        assert_true(fabs(actual - opt) <= 1e-5 + 1e-3 * opt);
    }
    free(BA);
    free(sv);
    free(p);
    free(work);
    return re;
}

static double *to_d(const float *x, size_t n) { return to_double(x, n); }

static void lowrank_ref(double *dW, const float *B, const float *M, int d_out, int k, int d_in,
                        double s) {
    ref_gemm(0, 0, d_out, d_in, k, B, k, M, d_in, dW);
    for (size_t i = 0; i < (size_t)d_out * (size_t)d_in; ++i) dW[i] *= s;
}

static void test_lora(void **state) {
    (void)state;
    enum { DI = 20, DO = 24 };
    for (int rs = 0; rs < 2; ++rs) {
        lort_adapter a;
        memset(&a, 0, sizeof a);
        a.kind = LORT_KIND_LORA;
        a.desc.lora.d_in = DI;
        a.desc.lora.d_out = DO;
        a.desc.lora.r = 6;
        a.desc.lora.alpha = rs ? -3.0f : 12.0f; /* negative: the sign lands in B */
        a.desc.lora.rslora = rs;
        a.params = tr_rand(6 * (DI + DO));
        double *dW = td_alloc(DO * DI);
        lowrank_ref(dW, a.params + 6 * DI, a.params, DO, 6, DI, ref_scale(6, a.desc.lora.alpha, rs));
        check_export(rs ? "lora rslora exact" : "lora exact", &a, dW, DO, DI, 6, 1);
        check_export("lora padded r 30", &a, dW, DO, DI, 30, 1);
        check_export("lora r 3", &a, dW, DO, DI, 3, 0);
        free(dW);
        free(a.params);
    }
    /* r = 25 > min(d_in, d_out): the dense route */
    lort_adapter a;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_LORA;
    a.desc.lora.d_in = DI;
    a.desc.lora.d_out = DO;
    a.desc.lora.r = 25;
    a.params = tr_rand(25 * (DI + DO));
    double *dW = td_alloc(DO * DI);
    lowrank_ref(dW, a.params + 25 * DI, a.params, DO, 25, DI, 1.0);
    check_export("lora dense r 20", &a, dW, DO, DI, 20, 1);
    check_export("lora dense r 7", &a, dW, DO, DI, 7, 0);
    free(dW);
    free(a.params);
}

static void test_loraxs(void **state) {
    (void)state;
    enum { DI = 20, DO = 24, R = 5 };
    lort_adapter a;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_LORAXS;
    a.desc.loraxs.d_in = DI;
    a.desc.loraxs.d_out = DO;
    a.desc.loraxs.r = R;
    a.desc.loraxs.alpha = 10.0f;
    a.params = tr_rand(R * R);
    float *fz = tr_rand(R * (DI + DO));
    a.frozen = fz;
    float *RA = tr_alloc(R * DI);
    double *t = td_alloc(R * DI), *dW = td_alloc(DO * DI);
    ref_gemm(0, 0, R, DI, R, a.params, R, fz, DI, t);
    for (int i = 0; i < R * DI; ++i) RA[i] = (float)t[i]; /* only for the layout of lowrank_ref */
    /* dW = s B (R A) in double throughout */
    for (int o = 0; o < DO; ++o)
        for (int j = 0; j < DI; ++j) {
            double acc = 0;
            for (int k = 0; k < R; ++k) acc += (double)fz[R * DI + o * R + k] * t[k * DI + j];
            dW[o * DI + j] = 2.0 * acc;
        }
    check_export("loraxs exact", &a, dW, DO, DI, R, 1);
    check_export("loraxs r 2", &a, dW, DO, DI, 2, 0);
    free(RA); free(t); free(dW); free(a.params); free(fz);
}

/* dW of a (delta, the family tests' checked path) in double */
static double *delta_d(const lort_adapter *a, int d_out, int d_in) {
    lort_adapter_sizes sz;
    OK(lort_adapter_sizes_query(a, 1, &sz));
    float *dW = tr_alloc((size_t)d_out * (size_t)d_in);
    void *w = tr_buf(sz.work);
    OK(lort_adapter_delta(a, dW, w, sz.work));
    double *d = to_d(dW, (size_t)d_out * (size_t)d_in);
    free(dW);
    free(w);
    return d;
}

static void test_tt_rep(void **state) {
    (void)state;
    lort_adapter a;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_TT_REP;
    a.desc.tt_rep.d_in = 16;
    a.desc.tt_rep.d_out = 12;
    a.desc.tt_rep.r = 4;
    a.desc.tt_rep.alpha = 6.0f;
    lort_tt_desc *A = &a.desc.tt_rep.A, *B = &a.desc.tt_rep.B;
    A->n_cores = 3; A->modes[0] = 4; A->modes[1] = 4; A->modes[2] = 4; A->rank = 3;
    B->n_cores = 2; B->modes[0] = 4; B->modes[1] = 12; B->rank = 4;
    size_t np = 0;
    OK(lort_tt_rep_param_count(&a.desc.tt_rep, &np));
    a.params = tr_rand(np);
    double *dW = delta_d(&a, 12, 16);
    check_export("tt_rep exact", &a, dW, 12, 16, 4, 1);
    check_export("tt_rep r 2", &a, dW, 12, 16, 2, 0);
    free(dW);
    free(a.params);
}

/* cp dW of site (l, m) in double from the factors: heads out dW = s D^T, in dW = s D,
   D[:, h dh + j] = sum_k A[:, k] c_h[k] B[k, j], c_h = C_H[h] .* C_L[l] .* C_M[m] */
static double *cp_ref(const lort_cp_desc *d, const float *P, int l, int m) {
    size_t D = (size_t)d->d, H = (size_t)d->heads, dh = D / H, r = (size_t)d->r;
    size_t L = (size_t)d->layers, lu = (size_t)l, mu = (size_t)m;
    const float *A = P, *B = A + D * r, *CH = B + r * dh, *CL = CH + H * r, *CM = CL + L * r;
    double s = ref_scale(d->r, d->alpha, d->rslora);
    double *dW = td_alloc(D * D);
    for (size_t i = 0; i < D; ++i)
        for (size_t h = 0; h < H; ++h)
            for (size_t j = 0; j < dh; ++j) {
                double acc = 0;
                for (size_t k = 0; k < r; ++k)
                    acc += (double)A[i * r + k] * (double)CH[h * r + k] * (double)CL[lu * r + k] *
                           (double)CM[mu * r + k] * (double)B[k * dh + j];
                size_t col = h * dh + j;
                if (d->head_side == LORT_CP_HEADS_OUT) dW[col * D + i] = s * acc;
                else dW[i * D + col] = s * acc;
            }
    return dW;
}

static void test_cp_tucker(void **state) {
    (void)state;
    for (int side = 0; side < 2; ++side) {
        lort_adapter a;
        memset(&a, 0, sizeof a);
        a.kind = LORT_KIND_CP;
        a.desc.cp.d = 16;
        a.desc.cp.heads = 2;
        a.desc.cp.layers = 3;
        a.desc.cp.r = 4;
        a.desc.cp.alpha = 2.0f;
        a.desc.cp.head_side = side;
        a.layer = 1;
        a.matrix = 2;
        size_t np = 0;
        OK(lort_cp_param_count(&a.desc.cp, &np));
        a.params = tr_rand(np);
        double *dW = cp_ref(&a.desc.cp, a.params, 1, 2);
        check_export(side ? "cp heads in exact" : "cp heads out exact", &a, dW, 16, 16, 4, 1);
        check_export(side ? "cp heads in r 2" : "cp heads out r 2", &a, dW, 16, 16, 2, 0);
        free(dW);
        free(a.params);
    }
    /* GQA: V has kv_heads = 2 of 4 heads: d_out = 2 d_h = 8 */
    lort_adapter a;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_CP;
    a.desc.cp.d = 16;
    a.desc.cp.heads = 4;
    a.desc.cp.kv_heads = 2;
    a.desc.cp.layers = 2;
    a.desc.cp.r = 3;
    a.layer = 1;
    a.matrix = LORT_CP_V;
    size_t np = 0;
    OK(lort_cp_param_count(&a.desc.cp, &np));
    a.params = tr_rand(np);
    double *dW = delta_d(&a, 8, 16);
    check_export("cp gqa exact", &a, dW, 8, 16, 3, 1);
    check_export("cp gqa r 1", &a, dW, 8, 16, 1, 0);
    free(dW);
    free(a.params);

    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_TUCKER;
    a.desc.tucker.d = 16;
    a.desc.tucker.heads = 2;
    a.desc.tucker.layers = 2;
    a.desc.tucker.r1 = 3;
    a.desc.tucker.r2 = 4;
    a.layer = 1;
    a.matrix = 3;
    OK(lort_tucker_param_count(&a.desc.tucker, &np));
    a.params = tr_rand(np);
    dW = delta_d(&a, 16, 16);
    check_export("tucker exact", &a, dW, 16, 16, 3, 1);
    check_export("tucker r 2", &a, dW, 16, 16, 2, 0);
    free(dW);
    free(a.params);
}

static lort_adapter mpo_adapter(void) {
    lort_adapter a;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_MPO;
    a.desc.mpo.n_cores = 3;
    a.desc.mpo.row_factors[0] = 4; a.desc.mpo.row_factors[1] = 2; a.desc.mpo.row_factors[2] = 3;
    a.desc.mpo.col_factors[0] = 2; a.desc.mpo.col_factors[1] = 5; a.desc.mpo.col_factors[2] = 2;
    a.desc.mpo.bond = 3;
    size_t np = 0;
    OK(lort_mpo_param_count(&a.desc.mpo, &np));
    a.params = tr_rand(np);
    return a;
}

static void test_mpo(void **state) {
    (void)state;
    lort_adapter a = mpo_adapter();
    double *dW = delta_d(&a, 24, 20);
    check_export("mpo full r 20", &a, dW, 24, 20, 20, 1);
    check_export("mpo r 4", &a, dW, 24, 20, 4, 0);
    free(dW);
    a.desc.mpo.residual = LORT_MPO_RESIDUAL_F32;
    lort_lora_desc ld;
    size_t wb;
    assert_int_equal(lort_adapter_to_lora_size(&a, 4, NULL, &ld, &wb), LORT_ERR_UNSUPPORTED);
    free(a.params);
}

static void test_set(void **state) {
    (void)state;
    lort_adapter e[5];
    memset(e, 0, sizeof e);
    e[0].kind = LORT_KIND_LORA;
    e[0].desc.lora.d_in = 16;
    e[0].desc.lora.d_out = 16;
    e[0].desc.lora.r = 6;
    e[0].params = tr_rand(6 * 32);
    e[1].kind = LORT_KIND_CP;
    e[1].desc.cp.d = 16;
    e[1].desc.cp.heads = 2;
    e[1].desc.cp.layers = 2;
    e[1].desc.cp.r = 4;
    size_t np = 0;
    OK(lort_cp_param_count(&e[1].desc.cp, &np));
    e[1].params = tr_rand(np);
    e[2].kind = LORT_KIND_TUCKER;
    e[2].desc.tucker.d = 16;
    e[2].desc.tucker.heads = 2;
    e[2].desc.tucker.layers = 2;
    e[2].desc.tucker.r1 = 3;
    e[2].desc.tucker.r2 = 2;
    OK(lort_tucker_param_count(&e[2].desc.tucker, &np));
    e[2].params = tr_rand(np);
    e[3] = mpo_adapter();
    lort_set_site sites[6] = {
        {"model.layers.0.self_attn.q_proj", 0, 0, 0},
        {"model.layers.0.self_attn.k_proj", 1, 0, LORT_CP_K},
        {"model.layers.1.self_attn.v_proj", 1, 1, LORT_CP_V},
        {"model.layers.1.self_attn.o_proj", 1, 1, LORT_CP_O},
        {"model.layers.1.self_attn.q_proj", 2, 1, LORT_CP_Q},
        {"model.layers.0.mlp.up_proj", 3, 0, 0},
    };
    lort_adapter_set set = {e, 4, sites, 6}, out;
    char msg[200];
    size_t pf = 0, wb = 0;
    OK(lort_set_to_lora_size(&set, 3, NULL, &pf, &wb, msg, sizeof msg));
    assert_int_equal(pf, 5 * 3 * 32 + 3 * (20 + 24));
    float *params = tr_alloc(pf), *err = tr_alloc(6);
    void *work = tr_buf(wb);
    lort_adapter oe[6];
    lort_set_site os[6];
    assert_int_equal(lort_set_to_lora(&set, &out, oe, os, params, pf - 1, err, 3, NULL, work, wb,
                                      msg, sizeof msg), LORT_ERR_INVALID_ARG);
    assert_string_equal(msg, "params holds 611 floats, the export needs 612");
    OK(lort_set_to_lora(&set, &out, oe, os, params, pf, err, 3, NULL, work, wb, msg, sizeof msg));
    assert_string_equal(msg, "");
    assert_int_equal(out.n_sites, 6);
    assert_int_equal(out.n_entries, 6);
    OK(lort_set_validate(&out, msg, sizeof msg));
    for (int i = 0; i < 6; ++i) {
        lort_adapter a;
        lort_lora_desc ld;
        size_t w1;
        assert_string_equal(out.sites[i].name, sites[i].name);
        assert_int_equal(out.sites[i].entry, i);
        assert_int_equal(out.entries[i].kind, LORT_KIND_LORA);
        OK(lort_set_site_adapter(&set, i, &a));
        OK(lort_adapter_to_lora_size(&a, 3, NULL, &ld, &w1));
        float *p = tr_alloc((size_t)3 * (size_t)(ld.d_in + ld.d_out)), e1;
        void *w = tr_buf(w1);
        OK(lort_adapter_to_lora(&a, &ld, p, &e1, 3, NULL, w, w1));
        assert_memory_equal(p, out.entries[i].params, (size_t)3 * (size_t)(ld.d_in + ld.d_out) * sizeof(float));
        assert_memory_equal(&e1, &err[i], sizeof e1);
        /* tucker (site 4) has r1 = 3: exact at 3; the others are truncated */
        if (i == 4) assert_true(err[i] >= 0.0f && err[i] < 2e-6f);
        else assert_true(err[i] > 1e-3f && err[i] < 1.0f);
        free(p);
        free(w);
    }
    /* refusals name the site */
    e[4].kind = LORT_KIND_TT_ADP;
    e[4].desc.tt_adp.hidden = 16;
    e[4].desc.tt_adp.bottleneck = 4;
    e[4].desc.tt_adp.down.n_cores = 1;
    e[4].desc.tt_adp.down.modes[0] = 64;
    sites[3].entry = 4;
    sites[3].name = "h.1.adp";
    set.n_entries = 5;
    assert_int_equal(lort_set_to_lora_size(&set, 3, NULL, &pf, &wb, msg, sizeof msg), LORT_ERR_NOT_MERGEABLE);
    assert_string_equal(msg, "site 3 (h.1.adp): tt_adp: not linear, no weight delta to export");
    sites[3].entry = 1;
    e[3].desc.mpo.residual = LORT_MPO_RESIDUAL_F32;
    e[3].frozen = params;
    assert_int_equal(lort_set_to_lora_size(&set, 3, NULL, &pf, &wb, msg, sizeof msg), LORT_ERR_UNSUPPORTED);
    assert_string_equal(msg, "site 5 (model.layers.0.mlp.up_proj): mpo: with a residual the adapter "
                             "replaces the base layer; export the plain (residual NONE) cores");
    e[3].desc.mpo.residual = 0;
    assert_int_equal(lort_set_to_lora_size(&set, 0, NULL, &pf, &wb, msg, sizeof msg), LORT_ERR_INVALID_ARG);
    assert_string_equal(msg, "site 0 (model.layers.0.self_attn.q_proj): lora: export r = 0, must be > 0");
    free(params); free(err); free(work);
    for (int i = 0; i < 4; ++i) free(e[i].params);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lora),
        cmocka_unit_test(test_loraxs),
        cmocka_unit_test(test_tt_rep),
        cmocka_unit_test(test_cp_tucker),
        cmocka_unit_test(test_mpo),
        cmocka_unit_test(test_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
