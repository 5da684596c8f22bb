/* Double-precision references of every adapter family, written from the MATH section of
   lortensor.h and sharing no code with it: ONE reference per family, used by the conformance
   harness (tests/test_conformance.c) and by the per-family tests.

   What the references take from the library: the resolved descs (lort_<family>_desc_resolve:
   the defaults and effective ranks / bonds, themselves checked in the family tests) and
   lort_dropout_factor, which *is* the documented dropout mask (checked in test_lora.c). Sizes
   and offsets of the flat layouts are computed here, from the header's layout comments.

     ref_tt_dense    W (prod n_k) of a tensor train, entry by entry (>>tt)
     ref_mpo_dense   M (prod i_k, prod j_k) of a matrix product operator, entry by entry (>>mpo)
     ref_nf4_decode  an NF4 blob decoded with the published levels (>>nf4)
     ref_act         ReLU, tanh, GELU (erf), GELU (tanh form)
     ref_adapter_*   per lort_adapter: its shape, its dense update dW = the W it adds to W0
                     (DoTA: W_res + M), its forward contribution (drop(x) dW^T, or f(u) for
                     tt_adp), row by row (the forward of every family is row-separable). */
#ifndef LORT_REF_H
#define LORT_REF_H
#include "lort_test.h"

/* ---- tensor train (>>tt): W[i_1..i_d] = G_1[0,i_1,:] ... G_d[:,i_d,0], flat row-major ---- */
TR_FN size_t ref_tt_count(int d, const int *n, const int *t) {
    size_t c = 0;
    for (int k = 0; k < d; ++k) c += zu(t[k]) * zu(n[k]) * zu(t[k + 1]);
    return c;
}
TR_FN void ref_tt_dense(int d, const int *n, const int *t, const double *cores, double *W) {
    double v[256], w[256];
    size_t off[LORT_TT_MAX_CORES + 1], N = 1;
    int idx[LORT_TT_MAX_CORES];
    off[0] = 0;
    for (int k = 0; k < d; ++k) {
        off[k + 1] = off[k] + zu(t[k]) * zu(n[k]) * zu(t[k + 1]);
        N *= zu(n[k]);
        assert_true(t[k + 1] <= 256);
    }
    for (size_t f = 0; f < N; ++f) {
        size_t rest = f;
        for (int k = d - 1; k >= 0; --k) { idx[k] = (int)(rest % zu(n[k])); rest /= zu(n[k]); }
        v[0] = 1.0;
        for (int k = 0; k < d; ++k) {
            const double *G = cores + off[k];
            for (int b = 0; b < t[k + 1]; ++b) {
                double acc = 0.0;
                for (int a = 0; a < t[k]; ++a)
                    acc += v[a] * G[(zu(a) * zu(n[k]) + zu(idx[k])) * zu(t[k + 1]) + zu(b)];
                w[b] = acc;
            }
            memcpy(v, w, zu(t[k + 1]) * sizeof(double));
        }
        W[f] = v[0];
    }
}
/* The tt matrix of a resolved lort_tt_desc (ranks filled in). */
TR_FN void ref_tt_desc_dense(const lort_tt_desc *r, const double *cores, double *W) {
    ref_tt_dense(r->n_cores, r->modes, r->ranks, cores, W);
}
TR_FN size_t ref_tt_desc_count(const lort_tt_desc *r) {
    return ref_tt_count(r->n_cores, r->modes, r->ranks);
}

/* ---- matrix product operator (>>mpo): M[row(a), col(b)] = T_1[0,a_1,b_1,:] .. T_N[:,a_N,b_N,0],
   row(a), col(b) the row-major digits over i_k and j_k ---- */
TR_FN size_t ref_mpo_count(int N, const int *ii, const int *jj, const int *D) {
    size_t c = 0;
    for (int k = 0; k < N; ++k) c += zu(D[k]) * zu(ii[k]) * zu(jj[k]) * zu(D[k + 1]);
    return c;
}
TR_FN void ref_mpo_dense(int N, const int *ii, const int *jj, const int *D, const double *cores,
                         double *M) {
    double v[256], w[256];
    size_t off[LORT_MPO_MAX_CORES + 1];
    int nr = 1, nc = 1;
    off[0] = 0;
    for (int k = 0; k < N; ++k) {
        off[k + 1] = off[k] + zu(D[k]) * zu(ii[k]) * zu(jj[k]) * zu(D[k + 1]);
        nr *= ii[k];
        nc *= jj[k];
        assert_true(D[k + 1] <= 256);
    }
    for (int r = 0; r < nr; ++r)
        for (int c = 0; c < nc; ++c) {
            int a[LORT_MPO_MAX_CORES], b[LORT_MPO_MAX_CORES], rr = r, cc = c;
            for (int k = N - 1; k >= 0; --k) {
                a[k] = rr % ii[k]; rr /= ii[k];
                b[k] = cc % jj[k]; cc /= jj[k];
            }
            v[0] = 1.0;
            for (int k = 0; k < N; ++k) {
                const double *T = cores + off[k];
                for (int q = 0; q < D[k + 1]; ++q) {
                    double acc = 0.0;
                    for (int p = 0; p < D[k]; ++p)
                        acc += v[p] * T[((zu(p) * zu(ii[k]) + zu(a[k])) * zu(jj[k]) + zu(b[k])) *
                                            zu(D[k + 1]) + zu(q)];
                    w[q] = acc;
                }
                memcpy(v, w, zu(D[k + 1]) * sizeof(double));
            }
            M[IX(r, nc, c)] = v[0];
        }
}

/* ---- NF4 (>>nf4): the published levels (bitsandbytes), blocks of 64 with an fp32 absmax,
   then two codes per byte, element 2i in the high nibble ---- */
static const double REF_NF4_LEVELS[16] __attribute__((unused)) = {
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0};
TR_FN int ref_nf4_code(const unsigned char *q, size_t count, size_t e) {
    size_t nb = (count + 63) / 64;
    unsigned char b = q[nb * 4 + e / 2];
    return (e % 2 == 0) ? (b >> 4) & 15 : b & 15;
}
TR_FN float ref_nf4_absmax(const unsigned char *q, size_t e) {
    float a;
    memcpy(&a, q + (e / 64) * 4, 4);
    return a;
}
/* W[e] = level[code] * absmax, the product rounded to float as the format defines it */
TR_FN void ref_nf4_decode(const unsigned char *q, size_t count, double *W) {
    for (size_t e = 0; e < count; ++e)
        W[e] = (double)((float)REF_NF4_LEVELS[ref_nf4_code(q, count, e)] * ref_nf4_absmax(q, e));
}

/* ---- activations (>>tt_adp) ---- */
TR_FN double ref_act(int kind, double z) {
    switch (kind) {
    case LORT_ACT_TANH: return tanh(z);
    case LORT_ACT_GELU: return 0.5 * z * (1.0 + erf(z / sqrt(2.0)));
    case LORT_ACT_GELU_TANH:
        return 0.5 * z * (1.0 + tanh(sqrt(2.0 / 3.141592653589793) * (z + 0.044715 * z * z * z)));
    default: return z > 0.0 ? z : 0.0;
    }
}

/* ---- the joint tensor (>>cp, >>tucker) ---- */
typedef struct {
    int tucker, d, H, L, M, r1, r2, rh, rl, rm, heads_in, kv;
    unsigned kvmask;
    double s;
    size_t oA, oB, oH, oL, oM, count;
} ref_joint;
TR_FN void ref_joint_of(const lort_adapter *a, ref_joint *J) {
    memset(J, 0, sizeof *J);
    if (a->kind == LORT_KIND_CP) {
        lort_cp_desc r;
        OK(lort_cp_desc_resolve(&a->desc.cp, &r));
        J->d = r.d; J->H = r.heads; J->L = r.layers; J->M = r.matrices;
        J->r1 = J->r2 = J->rh = J->rl = J->rm = r.r;
        J->heads_in = r.head_side == LORT_CP_HEADS_IN; J->kv = r.kv_heads;
        J->kvmask = r.kv_matrices;
        J->s = ref_scale(r.r, r.alpha, r.rslora);
    } else {
        lort_tucker_desc r;
        OK(lort_tucker_desc_resolve(&a->desc.tucker, &r));
        J->tucker = 1;
        J->d = r.d; J->H = r.heads; J->L = r.layers; J->M = r.matrices;
        J->r1 = r.r1; J->r2 = r.r2; J->rh = r.rh; J->rl = r.rl; J->rm = r.rm;
        J->heads_in = r.head_side == LORT_CP_HEADS_IN; J->kv = r.kv_heads;
        J->kvmask = r.kv_matrices;
        J->s = ref_scale(r.r1, r.alpha, r.rslora);
    }
    if (J->kv <= 0) J->kv = J->H;
    int dh = J->d / J->H;
    J->oA = J->tucker ? zu(J->r1) * zu(J->r2) * zu(J->rh) * zu(J->rl) * zu(J->rm) : 0;
    J->oB = J->oA + zu(J->d) * zu(J->r1);
    J->oH = J->oB + zu(J->r2) * zu(dh);
    J->oL = J->oH + zu(J->H) * zu(J->rh);
    J->oM = J->oL + zu(J->L) * zu(J->rl);
    J->count = J->oM + zu(J->M) * zu(J->rm);
}
/* heads of matrix type m: kv_heads for a GQA type (heads out only), else H */
TR_FN int ref_joint_heads(const ref_joint *J, int m) {
    return (!J->heads_in && m < 32 && ((J->kvmask >> m) & 1u)) ? J->kv : J->H;
}
/* The nn.Linear update W (d_out, d) of site (l, m): head block h of D (d, d) is A K_h B with
   K_h (r1, r2) = sum_{e,f,g} C[:, :, e, f, g] C_H[h, e] C_L[l, f] C_M[m, g] (cp: the diagonal
   C_H[h] .* C_L[l] .* C_M[m]); a GQA head g averages the K_h of its q = H / nh query heads;
   heads out W = s D^T, heads in W = s D. */
TR_FN void ref_joint_delta(const ref_joint *J, const double *P, int l, int m, double *W) {
    int dh = J->d / J->H, nh = ref_joint_heads(J, m), q = J->H / nh, ds = nh * dh;
    const double *A = P + J->oA, *B = P + J->oB, *CH = P + J->oH, *CL = P + J->oL,
                 *CM = P + J->oM;
    double *K = td_alloc(zu(J->r1) * zu(J->r2)), *AK = td_alloc(zu(J->d) * zu(J->r2));
    for (int g = 0; g < nh; ++g) {
        memset(K, 0, zu(J->r1) * zu(J->r2) * sizeof(double));
        for (int t = 0; t < q; ++t) {
            int h = g * q + t;
            for (int a = 0; a < J->r1; ++a)
                for (int b = 0; b < J->r2; ++b) {
                    double acc = 0.0;
                    if (!J->tucker) {
                        if (a == b) acc = CH[IX(h, J->r1, a)] * CL[IX(l, J->r1, a)] * CM[IX(m, J->r1, a)];
                    } else {
                        for (int e = 0; e < J->rh; ++e)
                            for (int f = 0; f < J->rl; ++f)
                                for (int gg = 0; gg < J->rm; ++gg) {
                                    size_t ci = ((((zu(a) * zu(J->r2) + zu(b)) * zu(J->rh) + zu(e)) *
                                                  zu(J->rl) + zu(f)) * zu(J->rm)) + zu(gg);
                                    acc += P[ci] * CH[IX(h, J->rh, e)] * CL[IX(l, J->rl, f)] *
                                           CM[IX(m, J->rm, gg)];
                                }
                    }
                    K[IX(a, J->r2, b)] += acc / (double)q;
                }
        }
        for (int i = 0; i < J->d; ++i) /* AK = A K */
            for (int b = 0; b < J->r2; ++b) {
                double acc = 0.0;
                for (int a = 0; a < J->r1; ++a) acc += A[IX(i, J->r1, a)] * K[IX(a, J->r2, b)];
                AK[IX(i, J->r2, b)] = acc;
            }
        for (int i = 0; i < J->d; ++i)
            for (int j = 0; j < dh; ++j) {
                double acc = 0.0;
                for (int b = 0; b < J->r2; ++b) acc += AK[IX(i, J->r2, b)] * B[IX(b, dh, j)];
                acc *= J->s;
                int col = g * dh + j;
                if (J->heads_in) W[IX(i, ds, col)] = acc;
                else W[IX(col, J->d, i)] = acc;
            }
    }
    free(K); free(AK);
}

/* ---- every family through lort_adapter ---- */
typedef struct {
    lort_kind kind;
    int d_in, d_out, linear;
    size_t params;      /* floats of the flat layout, from the layout comments */
    double s;
    float p;            /* dropout on the adapter's input */
    uint64_t seed;
    int replaces_base;
    /* tt_rep / tt_adp: the two trains; mpo: shape */
    lort_tt_desc t1, t2;
    int mN, mi[LORT_MPO_MAX_CORES], mj[LORT_MPO_MAX_CORES], mD[LORT_MPO_MAX_CORES + 1], mres;
    int act, b;
    ref_joint J;
} ref_shape;

TR_FN void ref_shape_of(const lort_adapter *a, ref_shape *S) {
    memset(S, 0, sizeof *S);
    S->kind = a->kind;
    S->linear = 1;
    switch (a->kind) {
    case LORT_KIND_LORA: {
        const lort_lora_desc *d = &a->desc.lora;
        S->d_in = d->d_in; S->d_out = d->d_out;
        S->params = zu(d->r) * (zu(d->d_in) + zu(d->d_out));
        S->s = ref_scale(d->r, d->alpha, d->rslora);
        S->p = d->dropout; S->seed = d->dropout_seed;
        break;
    }
    case LORT_KIND_LORAXS: {
        const lort_loraxs_desc *d = &a->desc.loraxs;
        S->d_in = d->d_in; S->d_out = d->d_out;
        S->params = zu(d->r) * zu(d->r);
        S->s = ref_scale(d->r, d->alpha, d->rslora);
        S->p = d->dropout; S->seed = d->dropout_seed;
        break;
    }
    case LORT_KIND_TT_REP: {
        lort_tt_rep_desc r;
        OK(lort_tt_rep_desc_resolve(&a->desc.tt_rep, &r));
        S->d_in = r.d_in; S->d_out = r.d_out;
        S->t1 = r.A; S->t2 = r.B;
        assert_int_equal(r.A.rows, r.d_in); assert_int_equal(r.A.cols, r.r);
        assert_int_equal(r.B.rows, r.r); assert_int_equal(r.B.cols, r.d_out);
        S->params = ref_tt_desc_count(&r.A) + ref_tt_desc_count(&r.B);
        S->s = ref_scale(r.r, a->desc.tt_rep.alpha, 0);
        S->p = r.dropout; S->seed = r.dropout_seed;
        break;
    }
    case LORT_KIND_TT_ADP: {
        lort_tt_adp_desc r;
        OK(lort_tt_adp_desc_resolve(&a->desc.tt_adp, &r));
        S->d_in = S->d_out = r.hidden;
        S->b = r.bottleneck;
        S->t1 = r.down; S->t2 = r.up;
        assert_int_equal(r.down.rows, r.hidden); assert_int_equal(r.down.cols, r.bottleneck);
        assert_int_equal(r.up.rows, r.bottleneck); assert_int_equal(r.up.cols, r.hidden);
        S->params = ref_tt_desc_count(&r.down) + ref_tt_desc_count(&r.up) + zu(r.bottleneck) +
                    zu(r.hidden);
        S->s = is_zero_f(a->desc.tt_adp.scale) ? 1.0 : (double)a->desc.tt_adp.scale;
        S->act = a->desc.tt_adp.act;
        S->p = r.dropout; S->seed = r.dropout_seed;
        S->linear = 0;
        break;
    }
    case LORT_KIND_CP:
    case LORT_KIND_TUCKER: {
        ref_joint_of(a, &S->J);
        int dh = S->J.d / S->J.H;
        S->d_in = S->J.d;
        S->d_out = S->J.heads_in ? S->J.d : ref_joint_heads(&S->J, a->matrix) * dh;
        S->params = S->J.count;
        S->s = S->J.s;
        S->p = a->kind == LORT_KIND_CP ? a->desc.cp.dropout : a->desc.tucker.dropout;
        S->seed = a->kind == LORT_KIND_CP ? a->desc.cp.dropout_seed : a->desc.tucker.dropout_seed;
        break;
    }
    case LORT_KIND_MPO: {
        lort_mpo_desc r;
        OK(lort_mpo_desc_resolve(&a->desc.mpo, &r));
        S->mN = r.n_cores;
        S->d_out = S->d_in = 1;
        for (int k = 0; k < r.n_cores; ++k) {
            S->mi[k] = r.row_factors[k]; S->mj[k] = r.col_factors[k];
            S->d_out *= r.row_factors[k]; S->d_in *= r.col_factors[k];
        }
        for (int k = 0; k <= r.n_cores; ++k) S->mD[k] = r.bonds[k];
        S->params = ref_mpo_count(S->mN, S->mi, S->mj, S->mD);
        S->mres = r.residual;
        S->replaces_base = r.residual != LORT_MPO_RESIDUAL_NONE;
        S->s = 1.0;
        break;
    }
    default: fail_msg("ref_shape_of: kind %d", (int)a->kind);
    }
}

/* The documented input dropout mask, 1 where there is none. */
TR_FN double ref_mask(const ref_shape *S, int row, int col) {
    return S->p > 0.0f ? (double)lort_dropout_factor(S->seed, S->p, (uint64_t)row, (uint64_t)col)
                       : 1.0;
}

/* dW (d_out, d_in) of a linear family from the double params P and a->frozen: what merge adds
   to W0 with weight 1 (lora s B A; loraxs s B R A; tt_rep s (W_A W_B)^T; cp, tucker the site's
   W; mpo M, plus W_res with a residual). Returns 0 for tt_adp (not linear). */
TR_FN int ref_adapter_delta(const lort_adapter *a, const ref_shape *S, const double *P,
                            double *dW) {
    const int di = S->d_in, dout = S->d_out;
    switch (a->kind) {
    case LORT_KIND_LORA: {
        int r = a->desc.lora.r;
        const double *A = P, *B = P + zu(r) * zu(di);
        for (int o = 0; o < dout; ++o)
            for (int j = 0; j < di; ++j) {
                double acc = 0.0;
                for (int k = 0; k < r; ++k) acc += B[IX(o, r, k)] * A[IX(k, di, j)];
                dW[IX(o, di, j)] = S->s * acc;
            }
        return 1;
    }
    case LORT_KIND_LORAXS: {
        int r = a->desc.loraxs.r;
        const float *A = (const float *)a->frozen, *B = A + zu(r) * zu(di);
        double *RA = td_alloc(zu(r) * zu(di));
        for (int k = 0; k < r; ++k)
            for (int j = 0; j < di; ++j) {
                double acc = 0.0;
                for (int t = 0; t < r; ++t) acc += P[IX(k, r, t)] * (double)A[IX(t, di, j)];
                RA[IX(k, di, j)] = acc;
            }
        for (int o = 0; o < dout; ++o)
            for (int j = 0; j < di; ++j) {
                double acc = 0.0;
                for (int k = 0; k < r; ++k) acc += (double)B[IX(o, r, k)] * RA[IX(k, di, j)];
                dW[IX(o, di, j)] = S->s * acc;
            }
        free(RA);
        return 1;
    }
    case LORT_KIND_TT_REP: {
        int r = S->t1.cols;
        double *WA = td_alloc(zu(di) * zu(r)), *WB = td_alloc(zu(r) * zu(dout));
        ref_tt_desc_dense(&S->t1, P, WA);
        ref_tt_desc_dense(&S->t2, P + ref_tt_desc_count(&S->t1), WB);
        for (int o = 0; o < dout; ++o)
            for (int j = 0; j < di; ++j) {
                double acc = 0.0;
                for (int k = 0; k < r; ++k) acc += WA[IX(j, r, k)] * WB[IX(k, dout, o)];
                dW[IX(o, di, j)] = S->s * acc;
            }
        free(WA); free(WB);
        return 1;
    }
    case LORT_KIND_CP:
    case LORT_KIND_TUCKER: ref_joint_delta(&S->J, P, a->layer, a->matrix, dW); return 1;
    case LORT_KIND_MPO: {
        size_t nw = zu(dout) * zu(di);
        ref_mpo_dense(S->mN, S->mi, S->mj, S->mD, P, dW);
        if (S->mres == LORT_MPO_RESIDUAL_F32) {
            const float *Wr = (const float *)a->frozen;
            for (size_t i = 0; i < nw; ++i) dW[i] += (double)Wr[i];
        } else if (S->mres == LORT_MPO_RESIDUAL_NF4) {
            double *Wr = td_alloc(nw);
            ref_nf4_decode((const unsigned char *)a->frozen, nw, Wr);
            for (size_t i = 0; i < nw; ++i) dW[i] += Wr[i];
            free(Wr);
        }
        return 1;
    }
    default: return 0;
    }
}

/* tt_adp: F (n, hidden) = s (act(drop(u) W_down + beta_d) W_up + beta_u); the rows of u are
   rows row0.. of the call (the dropout mask is per row of the call). */
TR_FN void ref_tt_adp_forward(const ref_shape *S, const double *P, const double *u, int row0,
                              int n, double *F) {
    int h = S->d_in, b = S->b;
    size_t nd = ref_tt_desc_count(&S->t1), nu = ref_tt_desc_count(&S->t2);
    double *WD = td_alloc(zu(h) * zu(b)), *WU = td_alloc(zu(b) * zu(h)), *H = td_alloc(zu(b));
    ref_tt_desc_dense(&S->t1, P, WD);
    ref_tt_desc_dense(&S->t2, P + nd, WU);
    const double *bd = P + nd + nu, *bu = bd + b;
    for (int i = 0; i < n; ++i) {
        for (int q = 0; q < b; ++q) {
            double acc = bd[q];
            for (int j = 0; j < h; ++j)
                acc += u[IX(i, h, j)] * ref_mask(S, row0 + i, j) * WD[IX(j, b, q)];
            H[q] = ref_act(S->act, acc);
        }
        for (int j = 0; j < h; ++j) {
            double acc = bu[j];
            for (int q = 0; q < b; ++q) acc += H[q] * WU[IX(q, h, j)];
            F[IX(i, h, j)] = S->s * acc;
        }
    }
    free(WD); free(WU); free(H);
}

/* y (n, d_out) = drop(x) dW^T, x the rows row0.. of the call. */
TR_FN void ref_apply(const ref_shape *S, const double *dW, const double *x, int row0, int n,
                     double *y) {
    for (int i = 0; i < n; ++i)
        for (int o = 0; o < S->d_out; ++o) {
            double acc = 0.0;
            for (int k = 0; k < S->d_in; ++k)
                acc += x[IX(i, S->d_in, k)] * ref_mask(S, row0 + i, k) * dW[IX(o, S->d_in, k)];
            y[IX(i, S->d_out, o)] = acc;
        }
}

/* y (n, d_out) = the adapter's contribution at inputs x (double): drop(x) dW^T for a linear
   family (DoTA: x (W_res + M)^T, the whole layer), f(x) for tt_adp. */
TR_FN void ref_adapter_forward(const lort_adapter *a, const ref_shape *S, const double *P,
                               const double *x, int row0, int n, double *y) {
    if (!S->linear) {
        ref_tt_adp_forward(S, P, x, row0, n, y);
        return;
    }
    double *dW = td_alloc(zu(S->d_out) * zu(S->d_in));
    ref_adapter_delta(a, S, P, dW);
    ref_apply(S, dW, x, row0, n, y);
    free(dW);
}
#endif
