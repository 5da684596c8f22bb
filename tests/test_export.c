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
   - mpo with a residual (DoTA fp32, QDoTA NF4), whose export is dW = M + W_res - W0: the
     reference is M contracted from the cores in double (the header's index formula), plus
     the residual (an NF4 blob decoded here by its documented layout), minus W0; after
     lort_mpo_init and a "training" step on the cores, exact at full rank and Eckart-Young
     below it; at init, fp32: dW is rounding noise (|dW| <= 1e-6 max|W0|), NF4: dW is the
     quantisation error, full rank, so a rank-4 export is not exact (rel_err = the optimum's);
     without W0: LORT_ERR_NULL, outputs untouched;
   - a whole set (lora + cp block with three sites + tucker + mpo + QDoTA mpo): per-site results
     equal the single-adapter export bit for bit, names kept, sizes from the query; tt_adp
     refused and a QDoTA site without its W0 refused with the site named in the message, the
     outputs untouched. */
#include "lort_test_adapters.h"

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

/* Exports a (with base weight W0, NULL unless an mpo with residual) at rank r and checks it
   against dW (d_out, d_in, double). Returns the rank. */
static int check_export(const char *label, const lort_adapter *a, const float *W0,
                        const double *dW, int d_out, int d_in, int r, int exact) {
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
        assert_int_equal(lort_adapter_to_lora(a, &got, p, &err, W0, r, NULL, work, wb - 1), LORT_ERR_WORKSPACE);
        for (size_t i = 0; i < np; ++i) assert_true(fabsf(p[i] - 7.0f) <= 0.0f);
        assert_true(fabsf(err + 1.0f) <= 0.0f);
    }
    if (W0) { /* without the base weight: refused, outputs untouched */
        assert_int_equal(lort_adapter_to_lora(a, &got, p, &err, NULL, r, NULL, work, wb), LORT_ERR_NULL);
        for (size_t i = 0; i < np; ++i) assert_true(fabsf(p[i] - 7.0f) <= 0.0f);
        assert_true(fabsf(err + 1.0f) <= 0.0f);
    }
    OK(lort_adapter_to_lora(a, &got, p, &err, W0, r, NULL, work, wb));
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
        lort_adapter a = ta_lora(DI, DO, 6);
        a.desc.lora.alpha = rs ? -3.0f : 12.0f; /* negative: the sign lands in B */
        a.desc.lora.rslora = rs;
        a.params = tr_rand(6 * (DI + DO));
        double *dW = td_alloc(DO * DI);
        lowrank_ref(dW, a.params + 6 * DI, a.params, DO, 6, DI, ref_scale(6, a.desc.lora.alpha, rs));
        check_export(rs ? "lora rslora exact" : "lora exact", &a, NULL, dW, DO, DI, 6, 1);
        check_export("lora padded r 30", &a, NULL, dW, DO, DI, 30, 1);
        check_export("lora r 3", &a, NULL, dW, DO, DI, 3, 0);
        free(dW);
        free(a.params);
    }
    /* r = 25 > min(d_in, d_out): the dense route */
    lort_adapter a = ta_lora(DI, DO, 25);
    a.params = tr_rand(25 * (DI + DO));
    double *dW = td_alloc(DO * DI);
    lowrank_ref(dW, a.params + 25 * DI, a.params, DO, 25, DI, 1.0);
    check_export("lora dense r 20", &a, NULL, dW, DO, DI, 20, 1);
    check_export("lora dense r 7", &a, NULL, dW, DO, DI, 7, 0);
    free(dW);
    free(a.params);
}

static void test_loraxs(void **state) {
    (void)state;
    enum { DI = 20, DO = 24, R = 5 };
    lort_adapter a = ta_loraxs(DI, DO, R);
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
    check_export("loraxs exact", &a, NULL, dW, DO, DI, R, 1);
    check_export("loraxs r 2", &a, NULL, dW, DO, DI, 2, 0);
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
    lort_adapter a = ta_tt_rep(3, 4);
    a.desc.tt_rep.alpha = 6.0f;
    ta_params(&a);
    double *dW = delta_d(&a, 12, 16);
    check_export("tt_rep exact", &a, NULL, dW, 12, 16, 4, 1);
    check_export("tt_rep r 2", &a, NULL, dW, 12, 16, 2, 0);
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
        lort_adapter a = ta_cp(16, 2, 3, 4);
        a.desc.cp.alpha = 2.0f;
        a.desc.cp.head_side = side;
        a.layer = 1;
        a.matrix = 2;
        ta_params(&a);
        double *dW = cp_ref(&a.desc.cp, a.params, 1, 2);
        check_export(side ? "cp heads in exact" : "cp heads out exact", &a, NULL, dW, 16, 16, 4, 1);
        check_export(side ? "cp heads in r 2" : "cp heads out r 2", &a, NULL, dW, 16, 16, 2, 0);
        free(dW);
        free(a.params);
    }
    /* GQA: V has kv_heads = 2 of 4 heads: d_out = 2 d_h = 8 */
    lort_adapter a = ta_cp(16, 4, 2, 3);
    a.desc.cp.kv_heads = 2;
    a.layer = 1;
    a.matrix = LORT_CP_V;
    ta_params(&a);
    double *dW = delta_d(&a, 8, 16);
    check_export("cp gqa exact", &a, NULL, dW, 8, 16, 3, 1);
    check_export("cp gqa r 1", &a, NULL, dW, 8, 16, 1, 0);
    free(dW);
    free(a.params);

    a = ta_tucker(16, 2, 2, 3, 4);
    a.layer = 1;
    a.matrix = 3;
    ta_params(&a);
    dW = delta_d(&a, 16, 16);
    check_export("tucker exact", &a, NULL, dW, 16, 16, 3, 1);
    check_export("tucker r 2", &a, NULL, dW, 16, 16, 2, 0);
    free(dW);
    free(a.params);
}

/* mpo (20 -> 24): rows 4 2 3, cols 2 5 2, bond 3; random cores */
static lort_adapter mpo_adapter(void) {
    static const int rows[3] = {4, 2, 3}, cols[3] = {2, 5, 2};
    lort_adapter a = ta_mpo3(rows, cols, 3);
    ta_params(&a);
    return a;
}

static void test_mpo(void **state) {
    (void)state;
    lort_adapter a = mpo_adapter();
    double *dW = delta_d(&a, 24, 20);
    check_export("mpo full r 20", &a, NULL, dW, 24, 20, 20, 1);
    check_export("mpo r 4", &a, NULL, dW, 24, 20, 4, 0);
    free(dW);
    /* without a residual W0 is ignored: the same bits with and without it */
    lort_lora_desc ld;
    size_t wb = 0, np = 4 * (20 + 24);
    OK(lort_adapter_to_lora_size(&a, 4, NULL, &ld, &wb));
    float *p0 = tr_alloc(np), *p1 = tr_alloc(np), *W0 = tr_rand(24 * 20), e0, e1;
    void *work = tr_buf(wb);
    OK(lort_adapter_to_lora(&a, &ld, p0, &e0, NULL, 4, NULL, work, wb));
    OK(lort_adapter_to_lora(&a, &ld, p1, &e1, W0, 4, NULL, work, wb));
    assert_memory_equal(p0, p1, np * sizeof(float));
    assert_memory_equal(&e0, &e1, sizeof e0);
    free(p0); free(p1); free(W0); free(work);
    free(a.params);
}

/* M (d_out, d_in) of an mpo in double from its cores, by the header's definition:
   M[row(a), col(b)] = T_1[0,a_1,b_1,:] T_2[:,a_2,b_2,:] ... T_N[:,a_N,b_N,0] with T_k
   (D_{k-1}, i_k, j_k, D_k) row-major and stored one after the other, row(a) = (..(a_1 i_2 +
   a_2) i_3 ..) + a_N, col(b) likewise. */
static double *mpo_ref(const lort_mpo_desc *desc, const float *cores, int d_out, int d_in) {
    enum { MAXB = 64 };
    lort_mpo_desc o;
    OK(lort_mpo_desc_resolve(desc, &o));
    int N = o.n_cores, D[LORT_MPO_MAX_CORES + 1];
    size_t off[LORT_MPO_MAX_CORES + 1];
    off[0] = 0;
    for (int k = 0; k <= N; ++k) {
        D[k] = o.bonds[k] > 0 ? o.bonds[k] : 1;
        assert_true(D[k] <= MAXB);
    }
    for (int k = 0; k < N; ++k)
        off[k + 1] = off[k] + zu(D[k]) * zu(o.row_factors[k]) * zu(o.col_factors[k]) * zu(D[k + 1]);
    double *M = td_alloc((size_t)d_out * (size_t)d_in);
    for (int row = 0; row < d_out; ++row)
        for (int col = 0; col < d_in; ++col) {
            int ai[LORT_MPO_MAX_CORES], bi[LORT_MPO_MAX_CORES], rr = row, cc = col;
            for (int k = N - 1; k >= 0; --k) {
                ai[k] = rr % o.row_factors[k];
                rr /= o.row_factors[k];
                bi[k] = cc % o.col_factors[k];
                cc /= o.col_factors[k];
            }
            double v[MAXB] = {1.0}, t[MAXB];
            for (int k = 0; k < N; ++k) {
                const float *T = cores + off[k];
                int ik = o.row_factors[k], jk = o.col_factors[k];
                for (int q = 0; q < D[k + 1]; ++q) {
                    double acc = 0.0;
                    for (int p = 0; p < D[k]; ++p)
                        acc += v[p] * (double)T[((zu(p) * zu(ik) + zu(ai[k])) * zu(jk) + zu(bi[k])) *
                                                zu(D[k + 1]) + zu(q)];
                    t[q] = acc;
                }
                memcpy(v, t, zu(D[k + 1]) * sizeof(double));
            }
            M[IX(row, d_in, col)] = v[0];
        }
    return M;
}

/* Element e of an NF4 blob of count elements, decoded by the header's layout: the fp32
   absmax of each block of 64, then the codes two per byte, element 2i in the high nibble;
   level[code] * absmax in float (the levels are checked against the paper's in test_nf4). */
static double nf4_elem(const unsigned char *q, size_t count, size_t e) {
    size_t nb = (count + 63) / 64;
    float amax;
    memcpy(&amax, q + (e / 64) * sizeof(float), sizeof amax);
    unsigned c = q[nb * sizeof(float) + e / 2];
    c = (e & 1u) ? (c & 15u) : (c >> 4);
    return (double)(lort_nf4_level((int)c) * amax);
}

/* dW = M + W_res - W0 in double: what an mpo with a residual adds to the base layer */
static double *dota_ref(const lort_adapter *a, const float *W0, int d_out, int d_in) {
    size_t n = (size_t)d_out * (size_t)d_in;
    double *dW = mpo_ref(&a->desc.mpo, a->params, d_out, d_in);
    for (size_t i = 0; i < n; ++i) {
        double res = a->desc.mpo.residual == LORT_MPO_RESIDUAL_F32
                         ? (double)((const float *)a->frozen)[i]
                         : nf4_elem((const unsigned char *)a->frozen, n, i);
        dW[i] += res - (double)W0[i];
    }
    return dW;
}

/* A DoTA / QDoTA adapter initialised from a random W0 (lort_mpo_init): cores by TT-SVD, the
   residual W0 - MPO(W0) in fp32 or NF4. *W0 is the caller's to free, as are params and frozen. */
static lort_adapter dota_adapter(int residual, float **W0) {
    lort_adapter a = mpo_adapter();
    lort_adapter_sizes sz;
    a.desc.mpo.residual = residual;
    OK(lort_adapter_sizes_query(&a, 1, &sz));
    a.frozen = tr_buf(sz.frozen_bytes);
    *W0 = tr_rand((size_t)sz.d_out * (size_t)sz.d_in);
    size_t iw = 0;
    OK(lort_mpo_init_workspace_size(&a.desc.mpo, &iw));
    void *w = tr_buf(iw);
    OK(lort_mpo_init(&a.desc.mpo, a.params, a.frozen, NULL, *W0, w, iw));
    free(w);
    return a;
}

static void test_mpo_residual(void **state) {
    (void)state;
    enum { DO = 24, DI = 20 };
    const size_t n = DO * DI;
    for (int res = LORT_MPO_RESIDUAL_F32; res <= LORT_MPO_RESIDUAL_NF4; ++res) {
        const char *nm = res == LORT_MPO_RESIDUAL_F32 ? "dota" : "qdota";
        char label[64];
        float *W0;
        lort_adapter a = dota_adapter(res, &W0);
        size_t np = 0;
        OK(lort_mpo_param_count(&a.desc.mpo, &np));
        double w0max = 0.0;
        for (size_t i = 0; i < n; ++i) w0max = fmax(w0max, fabs((double)W0[i]));
        /* at init: fp32, M + W_res = W0 up to rounding (the reference agrees), and so is the
           export; NF4, dW is the quantisation error: full rank, so rank 4 is not exact */
        double *dW = dota_ref(&a, W0, DO, DI);
        if (res == LORT_MPO_RESIDUAL_F32) {
            assert_true(max_abs_d(dW, n) <= 1e-6 * w0max);
            lort_lora_desc ld;
            size_t wb = 0;
            OK(lort_adapter_to_lora_size(&a, DI, NULL, &ld, &wb));
            float *p = tr_alloc((size_t)DI * (DI + DO)), err = -1.0f;
            void *work = tr_buf(wb);
            OK(lort_adapter_to_lora(&a, &ld, p, &err, W0, DI, NULL, work, wb));
            double *BA = td_alloc(n);
            ref_gemm(0, 0, DO, DI, DI, p + DI * DI, DI, p, DI, BA);
            printf("  dota at init: max |dW| %.2e, max |B A| %.2e, max |W0| %.2f\n",
                   max_abs_d(dW, n), max_abs_d(BA, n), w0max);
            assert_true(max_abs_d(BA, n) <= 1e-6 * w0max);
            free(BA);
            free(p);
            free(work);
        } else {
            double ss = 0.0;
            for (size_t i = 0; i < n; ++i) ss += dW[i] * dW[i];
            double q = sqrt(ss / (double)n);
            printf("  qdota at init: rms dW (quantisation error) %.3e, max |W0| %.2f\n", q, w0max);
            assert_true(q > 1e-3 * w0max && q < 0.2 * w0max);
            check_export("qdota init r 20", &a, W0, dW, DO, DI, DI, 1);
            check_export("qdota init r 4", &a, W0, dW, DO, DI, 4, 0);
        }
        free(dW);
        /* "trained": the cores move; exact at full rank, Eckart-Young below it */
        for (size_t i = 0; i < np; ++i) a.params[i] += 0.5f * tr_sym();
        dW = dota_ref(&a, W0, DO, DI);
        snprintf(label, sizeof label, "%s trained r 20", nm);
        check_export(label, &a, W0, dW, DO, DI, DI, 1);
        snprintf(label, sizeof label, "%s trained r 4", nm);
        check_export(label, &a, W0, dW, DO, DI, 4, 0);
        free(dW);
        free(W0);
        free(a.frozen);
        free(a.params);
    }
}

static void test_set(void **state) {
    (void)state;
    lort_adapter e[6];
    e[0] = ta_lora(16, 16, 6);
    ta_params(&e[0]);
    e[1] = ta_cp(16, 2, 2, 4);
    ta_params(&e[1]);
    e[2] = ta_tucker(16, 2, 2, 3, 2);
    ta_params(&e[2]);
    e[3] = mpo_adapter();
    float *W0q;
    e[4] = dota_adapter(LORT_MPO_RESIDUAL_NF4, &W0q);
    size_t npq = 0;
    OK(lort_mpo_param_count(&e[4].desc.mpo, &npq));
    for (size_t i = 0; i < npq; ++i) e[4].params[i] += 0.5f * tr_sym(); /* "trained" */
    lort_set_site sites[7] = {
        {"model.layers.0.self_attn.q_proj", 0, 0, 0},
        {"model.layers.0.self_attn.k_proj", 1, 0, LORT_CP_K},
        {"model.layers.1.self_attn.v_proj", 1, 1, LORT_CP_V},
        {"model.layers.1.self_attn.o_proj", 1, 1, LORT_CP_O},
        {"model.layers.1.self_attn.q_proj", 2, 1, LORT_CP_Q},
        {"model.layers.0.mlp.up_proj", 3, 0, 0},
        {"model.layers.1.mlp.up_proj", 4, 0, 0},
    };
    const float *w0s[7] = {NULL, NULL, NULL, NULL, NULL, NULL, W0q};
    lort_adapter_set set = {e, 5, sites, 7}, out;
    char msg[200];
    size_t pf = 0, wb = 0;
    OK(lort_set_to_lora_size(&set, 3, NULL, &pf, &wb, msg, sizeof msg));
    assert_int_equal(pf, 5 * 3 * 32 + 2 * 3 * (20 + 24));
    float *params = tr_alloc(pf), *err = tr_alloc(7);
    void *work = tr_buf(wb);
    lort_adapter oe[7];
    lort_set_site os[7];
    assert_int_equal(lort_set_to_lora(&set, &out, oe, os, params, pf - 1, err, w0s, 3, NULL, work,
                                      wb, msg, sizeof msg), LORT_ERR_INVALID_ARG);
    assert_string_equal(msg, "params holds 743 floats, the export needs 744");
    /* the QDoTA site without its base weight: refused by name, nothing written */
    memset(&out, 0x5a, sizeof out);
    memset(oe, 0x5a, sizeof oe);
    for (size_t i = 0; i < pf; ++i) params[i] = 7.0f;
    lort_adapter_set out0 = out;
    const float *w0_missing[7] = {NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    for (int t = 0; t < 2; ++t) {
        assert_int_equal(lort_set_to_lora(&set, &out, oe, os, params, pf, err, t ? w0_missing : NULL,
                                          3, NULL, work, wb, msg, sizeof msg), LORT_ERR_NULL);
        assert_string_equal(msg, "site 6 (model.layers.1.mlp.up_proj): mpo: with a residual the "
                                 "adapter replaces the base layer; its export is M + W_res - W0 "
                                 "and needs W0[6], the base weight");
        assert_memory_equal(&out, &out0, sizeof out);
        for (size_t i = 0; i < sizeof oe; ++i) assert_int_equal(((unsigned char *)oe)[i], 0x5a);
        for (size_t i = 0; i < pf; ++i) assert_true(fabsf(params[i] - 7.0f) <= 0.0f);
    }
    OK(lort_set_to_lora(&set, &out, oe, os, params, pf, err, w0s, 3, NULL, work, wb, msg, sizeof msg));
    assert_string_equal(msg, "");
    assert_int_equal(out.n_sites, 7);
    assert_int_equal(out.n_entries, 7);
    OK(lort_set_validate(&out, msg, sizeof msg));
    for (int i = 0; i < 7; ++i) {
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
        OK(lort_adapter_to_lora(&a, &ld, p, &e1, w0s[i], 3, NULL, w, w1));
        assert_memory_equal(p, out.entries[i].params, (size_t)3 * (size_t)(ld.d_in + ld.d_out) * sizeof(float));
        assert_memory_equal(&e1, &err[i], sizeof e1);
        printf("  site %d: rel_err %.3e\n", i, (double)err[i]);
        /* tucker (site 4) has r1 = 3: exact at 3; the others are truncated */
        if (i == 4) assert_true(err[i] >= 0.0f && err[i] < 2e-6f);
        else assert_true(err[i] > 1e-5f && err[i] < 1.0f); /* well above fp32 rounding */
        free(p);
        free(w);
    }
    /* refusals name the site */
    e[5] = ta_kind(LORT_KIND_TT_ADP);
    e[5].desc.tt_adp.hidden = 16;
    e[5].desc.tt_adp.bottleneck = 4;
    e[5].desc.tt_adp.down.n_cores = 1;
    e[5].desc.tt_adp.down.modes[0] = 64;
    sites[3].entry = 5;
    sites[3].name = "h.1.adp";
    set.n_entries = 6;
    assert_int_equal(lort_set_to_lora_size(&set, 3, NULL, &pf, &wb, msg, sizeof msg), LORT_ERR_NOT_MERGEABLE);
    assert_string_equal(msg, "site 3 (h.1.adp): tt_adp: not linear, no weight delta to export");
    sites[3].entry = 1;
    assert_int_equal(lort_set_to_lora_size(&set, 0, NULL, &pf, &wb, msg, sizeof msg), LORT_ERR_INVALID_ARG);
    assert_string_equal(msg, "site 0 (model.layers.0.self_attn.q_proj): lora: export r = 0, must be > 0");
    free(params); free(err); free(work); free(W0q); free(e[4].frozen);
    for (int i = 0; i < 5; ++i) free(e[i].params);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lora),
        cmocka_unit_test(test_loraxs),
        cmocka_unit_test(test_tt_rep),
        cmocka_unit_test(test_cp_tucker),
        cmocka_unit_test(test_mpo),
        cmocka_unit_test(test_mpo_residual),
        cmocka_unit_test(test_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
