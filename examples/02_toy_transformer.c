/* 02_toy_transformer.c - every adapter family on a tiny pre-LN transformer, trained end to end.

   The network (frozen random weights; forward AND backward written below, the library only
   supplies the linear layers and the adapters):

       X (N, D)    token embedding + position embedding of SEQS sequences of T tokens
       for each of LAYERS blocks (pre-LN):
           a  = LN1(x)
           q  = a Wq^T [+ adapter],  k = a Wk^T,  v = a Wv^T [+ adapter]
           o  = causal multi-head attention (HEADS heads of DH = D / HEADS columns)
           x1 = x + o Wo^T
           b  = LN2(x1)
           m  = GELU(b W1^T + b1) W2^T + b2  [then tt_adp: m = m + f(m)]
           x  = x1 + m
       out = LNf(x)                                                      (N, D)

   Rows are tokens: row s*T + t is token t of sequence s. Every matrix is in nn.Linear layout,
   W (d_out, d_in), y = x W^T.

   For each family (lora, loraxs, tt_rep, mpo, cp, tucker: on Wq and Wv of every layer;
   tt_adp: on the MLP output of every layer) one run:
     1. attaches one lort_adapter per site through the generic interface (cp and tucker: ONE
        shared parameter block, the site is (layer, matrix)); all trainable floats of the run
        are one flat vector, stepped by lort_adamw_step (mpo: DoTA's init first replaces the
        site's W0 by the frozen residual W_res = W0 - MPO(cores), in place);
     2. plants a teacher: the same network with the same family at parameters
        theta_T = theta_0 + sigma * eps (eps ~ N(0, 1), sigma set so that the teacher's output
        differs from the student's initial output by TEACHER_GAP in relative rms). The target is
        realisable, so every family can drive the loss towards zero;
     3. checks the whole network's gradient (the example's backward + the adapter kernels) with
        central differences at theta_0 + sigma eps / 2, on a few entries per site;
     4. trains only the adapter parameters for STEPS full-batch AdamW steps on the mean squared
        error to the teacher's output, and checks that the loss fell by MIN_LOSS_DROP;
     5. merges every site into the model's own weights (merge verb, +1), runs the plain network
        and compares it with the adapted one, then unmerges (-1) and checks the weights are back;
        tt_adp is not linear: its merge must return LORT_ERR_NOT_MERGEABLE.
   The program exits non-zero if any check fails.

   Build: make examples   (or: cc -std=c99 -O2 -I. examples/02_toy_transformer.c -DLORT_NO_BLAS
   -lm) */
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    LAYERS = 2, D = 32, HEADS = 4, DH = D / HEADS, FF = 4 * D, VOCAB = 16,
    SEQS = 8, T = 8, N = SEQS * T, /* N rows, one per token */
    RANK = 4, STEPS = 300, MAX_SITES = 2 * LAYERS, FD_PER_SITE = 2
};

#define LN_EPS 1e-5f
#define TEACHER_GAP 0.3   /* rms(teacher out - initial out) / rms(initial out) */
#define MIN_LOSS_DROP 20.0 /* final loss must be this many times below the initial loss */
#define FD_STEP 1e-2f     /* finite differences: step h = FD_STEP max(1, |p|); the float network's
                             loss is good to ~1e-7 relative, so a smaller h is noisier */
#define FD_TOL 2e-2       /* |analytic - fd| / max(|analytic|, |fd|, 1e-2 max |gradient|) */
#define MERGE_TOL 1e-4    /* merged vs adapted output, relative to max |output| (>= 1) */
#define UNMERGE_TOL 1e-5  /* unmerged weights vs the weights before merging, relative */

static const size_t ND = (size_t)N * D, NF = (size_t)N * FF;

/* ---- small helpers ------------------------------------------------------------------------ */

static void check(lort_status status, const char *what) {
    if (status != LORT_OK) {
        fprintf(stderr, "FAIL: %s: %s (%d)\n", what, lort_status_string(status), (int)status);
        exit(EXIT_FAILURE);
    }
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "FAIL: out of memory (%zu bytes)\n", bytes);
        exit(EXIT_FAILURE);
    }
    return p;
}

static float *floats(size_t count) { return (float *)xmalloc(count * sizeof(float)); }

static float *zeros(size_t count) {
    float *p = floats(count);
    lort_zero(p, count);
    return p;
}

static float *copy_of(const float *x, size_t count) {
    float *p = floats(count);
    memcpy(p, x, count * sizeof(float));
    return p;
}

static void fill_normal(float *x, size_t count, float std, lort_rng *rng) {
    for (size_t i = 0; i < count; ++i) x[i] = std * lort_rng_normal(rng);
}

static double max_abs_diff(const float *a, const float *b, size_t count) {
    double m = 0.0;
    for (size_t i = 0; i < count; ++i) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m) m = d;
    }
    return m;
}

static double max_abs(const float *a, size_t count) {
    double m = 0.0;
    for (size_t i = 0; i < count; ++i)
        if (fabs((double)a[i]) > m) m = fabs((double)a[i]);
    return m;
}

static double rms_diff(const float *a, const float *b, size_t count) {
    double s = 0.0;
    for (size_t i = 0; i < count; ++i) {
        double d = (double)a[i] - (b ? (double)b[i] : 0.0);
        s += d * d;
    }
    return sqrt(s / (double)count);
}

/* Mean squared error over count values, in double; dy (may be NULL) = d loss / d y. */
static double mse(float *dy, const float *y, const float *target, size_t count) {
    double sum = 0.0;
    for (size_t i = 0; i < count; ++i) {
        double e = (double)y[i] - (double)target[i];
        sum += e * e;
        if (dy) dy[i] = (float)(2.0 * e / (double)count);
    }
    return sum / (double)count;
}

/* y (n, d_out) = x (n, d_in) W^T + b (b may be NULL). */
static void linear(float *y, const float *x, const float *W, const float *b, int n, int d_in,
                   int d_out) {
    check(lort_linear_forward(y, x, W, b, n, d_in, d_out), "lort_linear_forward");
}

/* dx (n, d_in) += dy (n, d_out) W. The base weights are frozen: no dW, no db. */
static void linear_back(float *dx, const float *dy, const float *W, int n, int d_in, int d_out) {
    check(lort_linear_backward(dx, NULL, NULL, dy, NULL, W, n, d_in, d_out),
          "lort_linear_backward");
}

/* ---- the frozen model ------------------------------------------------------------------------ */

typedef struct layer_w {
    float *ln1_g, *ln1_b;     /* (D) */
    float *Wq, *Wk, *Wv, *Wo; /* (D, D) each */
    float *ln2_g, *ln2_b;     /* (D) */
    float *W1, *b1;           /* (FF, D), (FF) */
    float *W2, *b2;           /* (D, FF), (D) */
} layer_w;

typedef struct model {
    float *flat; /* every weight in one block, so that a run can snapshot and restore it */
    size_t count;
    layer_w L[LAYERS];
    float *lnf_g, *lnf_b; /* (D) final layernorm */
} model;

static float *take(float **cursor, size_t count) {
    float *p = *cursor;
    *cursor += count;
    return p;
}

static void model_make(model *M, lort_rng *rng) {
    const size_t DD = (size_t)D * D, FD = (size_t)FF * D;
    M->count = LAYERS * (4 * (size_t)D + 4 * DD + 2 * FD + FF + D) + 2 * (size_t)D;
    M->flat = floats(M->count);
    float *c = M->flat;
    for (int l = 0; l < LAYERS; ++l) {
        layer_w *w = &M->L[l];
        w->ln1_g = take(&c, D), w->ln1_b = take(&c, D);
        w->Wq = take(&c, DD), w->Wk = take(&c, DD), w->Wv = take(&c, DD), w->Wo = take(&c, DD);
        w->ln2_g = take(&c, D), w->ln2_b = take(&c, D);
        w->W1 = take(&c, FD), w->b1 = take(&c, FF), w->W2 = take(&c, FD), w->b2 = take(&c, D);
        /* weights ~ N(0, 1/fan_in); layernorm gains near 1, small biases */
        fill_normal(w->Wq, DD, 1.0f / sqrtf((float)D), rng);
        fill_normal(w->Wk, DD, 1.0f / sqrtf((float)D), rng);
        fill_normal(w->Wv, DD, 1.0f / sqrtf((float)D), rng);
        fill_normal(w->Wo, DD, 1.0f / sqrtf((float)D), rng);
        fill_normal(w->W1, FD, 1.0f / sqrtf((float)D), rng);
        fill_normal(w->W2, FD, 1.0f / sqrtf((float)FF), rng);
        fill_normal(w->b1, FF, 0.1f, rng);
        fill_normal(w->b2, D, 0.1f, rng);
        for (int j = 0; j < D; ++j) {
            w->ln1_g[j] = 1.0f + 0.1f * lort_rng_normal(rng);
            w->ln1_b[j] = 0.1f * lort_rng_normal(rng);
            w->ln2_g[j] = 1.0f + 0.1f * lort_rng_normal(rng);
            w->ln2_b[j] = 0.1f * lort_rng_normal(rng);
        }
    }
    M->lnf_g = take(&c, D), M->lnf_b = take(&c, D);
    for (int j = 0; j < D; ++j) {
        M->lnf_g[j] = 1.0f + 0.1f * lort_rng_normal(rng);
        M->lnf_b[j] = 0.1f * lort_rng_normal(rng);
    }
}

/* ---- adapters: one run of one family ---------------------------------------------------------- */

enum { AT_Q, AT_V, AT_MLP }; /* where a site sits */

typedef struct site {
    lort_adapter ad; /* kind, desc, params/grads pointers into the run's flat vectors, site */
    int layer, where;
    void *cache; /* what forward saves for backward (sizes.cache bytes at N rows) */
    size_t cache_size;
} site;

typedef struct run {
    const char *name;
    lort_kind kind;
    int nsites;
    site s[MAX_SITES];
    float *params, *grads; /* ONE flat vector for the whole run (every site), and its gradient */
    size_t np;
    float *frozen; /* loraxs: the frozen factors of every site */
    void *work;    /* one workspace, large enough for every site */
    size_t work_size;
} run;

static const site *find_site(const run *r, int layer, int where) {
    if (!r) return NULL;
    for (int i = 0; i < r->nsites; ++i)
        if (r->s[i].layer == layer && r->s[i].where == where) return &r->s[i];
    return NULL;
}

/* y += the adapter's contribution at (layer, where), if the run has one there. x is the adapted
   layer's input (n, D); tt_adp on the output reads y itself. */
static void adapter_forward(const run *r, int layer, int where, float *y, const float *x) {
    const site *s = find_site(r, layer, where);
    if (s)
        check(lort_adapter_forward(&s->ad, y, x, N, s->cache, s->cache_size, r->work,
                                   r->work_size),
              "lort_adapter_forward");
}

/* dx += the adapter's input gradient; its parameter gradients accumulate into r->grads. */
static void adapter_backward(const run *r, int layer, int where, float *dx, const float *dy,
                             const float *x) {
    const site *s = find_site(r, layer, where);
    if (s)
        check(lort_adapter_backward(&s->ad, dx, dy, x, N, s->cache, s->cache_size, r->work,
                                    r->work_size),
              "lort_adapter_backward");
}

/* ---- layers: layernorm, attention, GELU ------------------------------------------------------- */

/* y (n, D) = gain * (x - mean) / sqrt(var + eps) + bias, per row; keeps mean and 1/std. */
static void layernorm_forward(float *y, float *mu, float *rs, const float *x, const float *gain,
                              const float *bias, int n) {
    for (int i = 0; i < n; ++i) {
        const float *xi = x + i * D;
        double s = 0.0, ss = 0.0;
        for (int j = 0; j < D; ++j) s += (double)xi[j];
        double mean = s / D;
        for (int j = 0; j < D; ++j) ss += ((double)xi[j] - mean) * ((double)xi[j] - mean);
        mu[i] = (float)mean;
        rs[i] = (float)(1.0 / sqrt(ss / D + (double)LN_EPS));
        for (int j = 0; j < D; ++j) y[i * D + j] = gain[j] * (xi[j] - mu[i]) * rs[i] + bias[j];
    }
}

/* dx (n, D) += the layernorm's input gradient: with xh = (x - mean) rs and g = dy * gain,
   dx = rs (g - mean(g) - xh mean(g xh)). */
static void layernorm_backward(float *dx, const float *dy, const float *x, const float *mu,
                               const float *rs, const float *gain, int n) {
    for (int i = 0; i < n; ++i) {
        double mg = 0.0, mgx = 0.0;
        for (int j = 0; j < D; ++j) {
            double xh = ((double)x[i * D + j] - (double)mu[i]) * (double)rs[i];
            double g = (double)dy[i * D + j] * (double)gain[j];
            mg += g;
            mgx += g * xh;
        }
        mg /= D, mgx /= D;
        for (int j = 0; j < D; ++j) {
            double xh = ((double)x[i * D + j] - (double)mu[i]) * (double)rs[i];
            double g = (double)dy[i * D + j] * (double)gain[j];
            dx[i * D + j] += (float)((double)rs[i] * (g - mg - xh * mgx));
        }
    }
}

/* Causal attention, per sequence s and head h: the head's columns h*DH .. h*DH+DH-1 of the
   rows of sequence s are Q_h, K_h, V_h (T, DH); P = softmax(Q_h K_h^T / sqrt(DH)) with key j >
   query i masked out (T, T), stored at P + ((s*HEADS + h)*T)*T; O_h = P V_h. */
static void attention_forward(float *o, float *P, const float *q, const float *k,
                              const float *v) {
    const float scale = 1.0f / sqrtf((float)DH);
    for (int s = 0; s < SEQS; ++s)
        for (int h = 0; h < HEADS; ++h)
            for (int i = 0; i < T; ++i) {
                const float *qi = q + (s * T + i) * D + h * DH;
                float *Pi = P + ((s * HEADS + h) * T + i) * T, mx = -INFINITY, sum = 0.0f;
                for (int j = 0; j <= i; ++j) {
                    const float *kj = k + (s * T + j) * D + h * DH;
                    float dot = 0.0f;
                    for (int c = 0; c < DH; ++c) dot += qi[c] * kj[c];
                    Pi[j] = scale * dot;
                    if (Pi[j] > mx) mx = Pi[j];
                }
                for (int j = 0; j <= i; ++j) sum += (Pi[j] = expf(Pi[j] - mx));
                for (int j = 0; j < T; ++j) Pi[j] = j <= i ? Pi[j] / sum : 0.0f;
                float *oi = o + (s * T + i) * D + h * DH;
                for (int c = 0; c < DH; ++c) oi[c] = 0.0f;
                for (int j = 0; j <= i; ++j)
                    for (int c = 0; c < DH; ++c) oi[c] += Pi[j] * v[(s * T + j) * D + h * DH + c];
            }
}

/* dq, dk, dv (N, D) += the gradients of attention_forward for dO (N, D):
   dP = dO_h V_h^T, dV_h += P^T dO_h, dS = P .* (dP - rowsum(P .* dP)),
   dQ_h += dS K_h / sqrt(DH), dK_h += dS^T Q_h / sqrt(DH). */
static void attention_backward(float *dq, float *dk, float *dv, const float *dO, const float *P,
                               const float *q, const float *k, const float *v) {
    const float scale = 1.0f / sqrtf((float)DH);
    for (int s = 0; s < SEQS; ++s)
        for (int h = 0; h < HEADS; ++h)
            for (int i = 0; i < T; ++i) {
                const float *Pi = P + ((s * HEADS + h) * T + i) * T;
                const float *doi = dO + (s * T + i) * D + h * DH;
                float dP[T], dot = 0.0f;
                for (int j = 0; j <= i; ++j) {
                    const float *vj = v + (s * T + j) * D + h * DH;
                    float *dvj = dv + (s * T + j) * D + h * DH;
                    dP[j] = 0.0f;
                    for (int c = 0; c < DH; ++c) {
                        dP[j] += doi[c] * vj[c];
                        dvj[c] += Pi[j] * doi[c];
                    }
                    dot += Pi[j] * dP[j];
                }
                const float *qi = q + (s * T + i) * D + h * DH;
                float *dqi = dq + (s * T + i) * D + h * DH;
                for (int j = 0; j <= i; ++j) {
                    float dS = scale * Pi[j] * (dP[j] - dot);
                    const float *kj = k + (s * T + j) * D + h * DH;
                    float *dkj = dk + (s * T + j) * D + h * DH;
                    for (int c = 0; c < DH; ++c) {
                        dqi[c] += dS * kj[c];
                        dkj[c] += dS * qi[c];
                    }
                }
            }
}

/* GELU, tanh form (smooth, so finite differences behave): 0.5 u (1 + tanh(c (u + 0.044715 u^3))) */
#define GELU_C 0.7978845608f /* sqrt(2 / pi) */
static float tanh_fast(float z) { /* tanh z = 1 - 2 / (e^2z + 1); glibc's tanhf is slow */
    return 1.0f - 2.0f / (expf(2.0f * z) + 1.0f);
}
static float gelu(float u) {
    return 0.5f * u * (1.0f + tanh_fast(GELU_C * (u + 0.044715f * u * u * u)));
}
static float gelu_grad(float u) {
    float t = tanh_fast(GELU_C * (u + 0.044715f * u * u * u));
    return 0.5f * (1.0f + t) + 0.5f * u * (1.0f - t * t) * GELU_C * (1.0f + 0.134145f * u * u);
}

/* ---- the network: forward and backward -------------------------------------------------------- */

typedef struct layer_a { /* what one block's forward keeps for its backward */
    float *x;              /* (N, D) block input */
    float *a, *mu1, *rs1;  /* (N, D) LN1 output; (N) mean and 1/std of each row */
    float *q, *k, *v;      /* (N, D) projections, adapters included */
    float *P;              /* (SEQS, HEADS, T, T) attention probabilities */
    float *o;              /* (N, D) heads side by side, before Wo */
    float *x1;             /* (N, D) x + attention */
    float *b, *mu2, *rs2;  /* LN2 */
    float *u, *g;          /* (N, FF) before and after GELU */
    float *m;              /* (N, D) MLP output (tt_adp included) */
} layer_a;

typedef struct acts {
    float *flat;
    layer_a L[LAYERS];
    float *xf, *muf, *rsf; /* (N, D) last residual stream; final LN statistics */
    float *out;            /* (N, D) the network's output */
    /* backward scratch */
    float *dres, *dx1, *dm, *dO, *dq, *dk, *dv, *da, *dn; /* (N, D) */
    float *dg;                                            /* (N, FF) */
} acts;

static void acts_make(acts *A) {
    const size_t per_layer = 10 * ND + 4 * (size_t)N + (size_t)SEQS * HEADS * T * T + 2 * NF;
    float *c = A->flat = zeros(LAYERS * per_layer + 11 * ND + 2 * (size_t)N + NF);
    for (int l = 0; l < LAYERS; ++l) {
        layer_a *a = &A->L[l];
        a->x = take(&c, ND), a->a = take(&c, ND), a->mu1 = take(&c, N), a->rs1 = take(&c, N);
        a->q = take(&c, ND), a->k = take(&c, ND), a->v = take(&c, ND);
        a->P = take(&c, (size_t)SEQS * HEADS * T * T), a->o = take(&c, ND);
        a->x1 = take(&c, ND), a->b = take(&c, ND), a->mu2 = take(&c, N), a->rs2 = take(&c, N);
        a->u = take(&c, NF), a->g = take(&c, NF), a->m = take(&c, ND);
    }
    A->xf = take(&c, ND), A->muf = take(&c, N), A->rsf = take(&c, N), A->out = take(&c, ND);
    A->dres = take(&c, ND), A->dx1 = take(&c, ND), A->dm = take(&c, ND), A->dO = take(&c, ND);
    A->dq = take(&c, ND), A->dk = take(&c, ND), A->dv = take(&c, ND), A->da = take(&c, ND);
    A->dn = take(&c, ND), A->dg = take(&c, NF);
}

/* One block; writes its output to xo. r == NULL: the plain network (no adapters). */
static void block_forward(const layer_w *w, const run *r, int l, layer_a *a, float *xo) {
    layernorm_forward(a->a, a->mu1, a->rs1, a->x, w->ln1_g, w->ln1_b, N);
    linear(a->q, a->a, w->Wq, NULL, N, D, D);
    adapter_forward(r, l, AT_Q, a->q, a->a);
    linear(a->k, a->a, w->Wk, NULL, N, D, D);
    linear(a->v, a->a, w->Wv, NULL, N, D, D);
    adapter_forward(r, l, AT_V, a->v, a->a);
    attention_forward(a->o, a->P, a->q, a->k, a->v);
    linear(xo, a->o, w->Wo, NULL, N, D, D); /* xo = o Wo^T for now */
    for (size_t i = 0; i < ND; ++i) a->x1[i] = a->x[i] + xo[i];
    layernorm_forward(a->b, a->mu2, a->rs2, a->x1, w->ln2_g, w->ln2_b, N);
    linear(a->u, a->b, w->W1, w->b1, N, D, FF);
    for (size_t i = 0; i < NF; ++i) a->g[i] = gelu(a->u[i]);
    linear(a->m, a->g, w->W2, w->b2, N, FF, D);
    adapter_forward(r, l, AT_MLP, a->m, NULL); /* tt_adp, output placement: m = m + f(m) */
    for (size_t i = 0; i < ND; ++i) xo[i] = a->x1[i] + a->m[i];
}

/* A->out = the network on X (N, D). */
static void forward(const model *M, const run *r, acts *A, const float *X) {
    memcpy(A->L[0].x, X, ND * sizeof(float));
    for (int l = 0; l < LAYERS; ++l)
        block_forward(&M->L[l], r, l, &A->L[l], l + 1 < LAYERS ? A->L[l + 1].x : A->xf);
    layernorm_forward(A->out, A->muf, A->rsf, A->xf, M->lnf_g, M->lnf_b, N);
}

/* In: A->dres = d loss / d(block output). Out: A->dres = d loss / d(block input). The adapters'
   parameter gradients accumulate into r->grads on the way. */
static void block_backward(const layer_w *w, const run *r, int l, acts *A) {
    const layer_a *a = &A->L[l];
    /* xo = x1 + m: both branches receive dres */
    memcpy(A->dx1, A->dres, ND * sizeof(float));
    memcpy(A->dm, A->dres, ND * sizeof(float));
    /* m = m0 + f(m0) (tt_adp): dm0 = dm + J_f^T dm, in place (dx == dy); the cache holds m0 */
    adapter_backward(r, l, AT_MLP, A->dm, A->dm, NULL);
    /* m0 = g W2^T + b2, g = GELU(u), u = b W1^T + b1 */
    lort_zero(A->dg, NF);
    linear_back(A->dg, A->dm, w->W2, N, FF, D);
    for (size_t i = 0; i < NF; ++i) A->dg[i] *= gelu_grad(a->u[i]);
    lort_zero(A->dn, ND);
    linear_back(A->dn, A->dg, w->W1, N, D, FF);
    layernorm_backward(A->dx1, A->dn, a->x1, a->mu2, a->rs2, w->ln2_g, N); /* dx1 += LN2' */
    /* x1 = x + o Wo^T */
    lort_zero(A->dO, ND);
    linear_back(A->dO, A->dx1, w->Wo, N, D, D);
    lort_zero(A->dq, ND), lort_zero(A->dk, ND), lort_zero(A->dv, ND);
    attention_backward(A->dq, A->dk, A->dv, A->dO, a->P, a->q, a->k, a->v);
    /* q, k, v = a W^T [+ adapter(a)]: everything flows back into da */
    lort_zero(A->da, ND);
    linear_back(A->da, A->dq, w->Wq, N, D, D);
    adapter_backward(r, l, AT_Q, A->da, A->dq, a->a);
    linear_back(A->da, A->dk, w->Wk, N, D, D);
    linear_back(A->da, A->dv, w->Wv, N, D, D);
    adapter_backward(r, l, AT_V, A->da, A->dv, a->a);
    /* a = LN1(x); x also feeds x1 directly */
    memcpy(A->dres, A->dx1, ND * sizeof(float));
    layernorm_backward(A->dres, A->da, a->x, a->mu1, a->rs1, w->ln1_g, N);
}

/* r->grads += d loss / d params, for dout = d loss / d out, after forward(M, r, A, X). */
static void backward(const model *M, const run *r, acts *A, const float *dout) {
    lort_zero(A->dres, ND);
    layernorm_backward(A->dres, dout, A->xf, A->muf, A->rsf, M->lnf_g, N);
    for (int l = LAYERS - 1; l >= 0; --l) block_backward(&M->L[l], r, l, A);
}

/* ---- attaching a family ---------------------------------------------------------------------- */

static float *site_weight(const model *M, int layer, int where) {
    return where == AT_Q ? M->L[layer].Wq : M->L[layer].Wv;
}

/* Fills r->s[*].ad.desc for kind; the shapes are those of a D x D projection. */
static void family_desc(lort_adapter *a, const char **name) {
    switch (a->kind) {
    case LORT_KIND_LORA: { /* A (RANK, D), B (D, RANK), B = 0 at init: dW = s B A */
        lort_lora_desc *d = &a->desc.lora;
        *name = "lora";
        d->d_in = D, d->d_out = D, d->r = RANK, d->alpha = 2.0f * RANK; /* s = 2 */
        break;
    }
    case LORT_KIND_LORAXS: { /* R (RANK, RANK) between frozen S_r V_r^T and U_r of W0 */
        lort_loraxs_desc *d = &a->desc.loraxs;
        *name = "loraxs";
        d->d_in = D, d->d_out = D, d->r = RANK;
        break;
    }
    case LORT_KIND_TT_REP: { /* a LoRA whose W_A (D, RANK) and W_B (RANK, D) are tensor trains */
        lort_tt_rep_desc *d = &a->desc.tt_rep;
        *name = "tt_rep";
        d->d_in = D, d->d_out = D, d->r = RANK;
        d->A.n_cores = 3, d->A.modes[0] = 8, d->A.modes[1] = 4, d->A.modes[2] = 4, d->A.rank = 4;
        d->B.n_cores = 3, d->B.modes[0] = 4, d->B.modes[1] = 4, d->B.modes[2] = 8, d->B.rank = 4;
        break;
    }
    case LORT_KIND_MPO: { /* DoTA: 3 cores, 32 = 4*2*4 on both sides, bond 4 */
        lort_mpo_desc *d = &a->desc.mpo;
        *name = "mpo";
        d->n_cores = 3, d->bond = 4;
        d->row_factors[0] = 4, d->row_factors[1] = 2, d->row_factors[2] = 4;
        d->col_factors[0] = 4, d->col_factors[1] = 2, d->col_factors[2] = 4;
        d->residual = LORT_MPO_RESIDUAL_F32; /* for init; see run_setup */
        break;
    }
    case LORT_KIND_CP: { /* LoRTA: one rank-8 CP tensor over (D, DH, HEADS, LAYERS, 4 types) */
        lort_cp_desc *d = &a->desc.cp;
        *name = "cp";
        d->d = D, d->heads = HEADS, d->layers = LAYERS, d->r = 2 * RANK;
        break;
    }
    case LORT_KIND_TUCKER: { /* the same joint tensor, Tucker core (3, 3, 3, 3, 3) */
        lort_tucker_desc *d = &a->desc.tucker;
        *name = "tucker";
        d->d = D, d->heads = HEADS, d->layers = LAYERS, d->r1 = 3, d->r2 = 3;
        /* rh = rl = rm = 0: r1. Keep them >= r1, r2 with the default init: it starts from a
           superdiagonal core and B = 0, so with k = min(rh, rl, rm) < r2 the rows k.. of B and
           the core slices [:, k.., ...] are zero with zero gradient, for ever (r2 = 4 with
           rh = rl = rm = 2 stalls at a 10x loss drop). */
        break;
    }
    case LORT_KIND_TT_ADP: { /* bottleneck D -> 8 -> D with tt down/up, on the MLP output */
        lort_tt_adp_desc *d = &a->desc.tt_adp;
        *name = "tt_adp";
        d->hidden = D, d->bottleneck = 8, d->scale = 0.5f, d->act = LORT_ACT_GELU_TANH;
        d->placement = LORT_TT_ADP_OUTPUT;
        d->down.n_cores = 3, d->down.modes[0] = 4, d->down.modes[1] = 8, d->down.modes[2] = 8;
        d->down.rank = 4; /* up: d = 0, the modes and ranks of down */
        break;
    }
    default:
        break;
    }
}

static int is_joint(lort_kind kind) { return kind == LORT_KIND_CP || kind == LORT_KIND_TUCKER; }

/* Attaches one adapter of `kind` per site and initialises it. May rewrite the model's weights
   (mpo: W0 -> W_res, see below). */
static void run_setup(run *r, lort_kind kind, model *M, lort_rng *rng) {
    lort_adapter proto;
    lort_adapter_sizes sz[MAX_SITES];
    size_t offset[MAX_SITES], nfrozen = 0, init_work = 0, fo = 0;
    memset(r, 0, sizeof *r);
    memset(&proto, 0, sizeof proto);
    proto.kind = r->kind = kind;
    family_desc(&proto, &r->name);

    /* Sites: q and v of every layer (tt_adp: the MLP output of every layer). For cp and tucker
       the site is (layer, matrix type); q and v are matrix types LORT_CP_Q and LORT_CP_V. */
    r->nsites = kind == LORT_KIND_TT_ADP ? LAYERS : 2 * LAYERS;
    for (int i = 0; i < r->nsites; ++i) {
        site *s = &r->s[i];
        s->ad = proto;
        s->layer = kind == LORT_KIND_TT_ADP ? i : i / 2;
        s->where = kind == LORT_KIND_TT_ADP ? AT_MLP : (i % 2 ? AT_V : AT_Q);
        s->ad.layer = s->layer;
        s->ad.matrix = s->where == AT_V ? LORT_CP_V : LORT_CP_Q;
        check(lort_adapter_sizes_query(&s->ad, N, &sz[i]), "lort_adapter_sizes_query");
        if (sz[i].d_in != D || sz[i].d_out != D) {
            fprintf(stderr, "FAIL: %s site is %dx%d, not %dx%d\n", r->name, sz[i].d_out,
                    sz[i].d_in, D, D);
            exit(EXIT_FAILURE);
        }
        /* one flat vector: every site its own slice, except the joint families, whose sites all
           share the one block */
        offset[i] = is_joint(kind) ? 0 : r->np;
        r->np = is_joint(kind) ? sz[i].params : r->np + sz[i].params;
        if (kind == LORT_KIND_LORAXS) nfrozen += sz[i].frozen_bytes / sizeof(float);
        if (sz[i].init_work > init_work) init_work = sz[i].init_work;
    }
    r->params = zeros(r->np);
    r->grads = zeros(r->np);
    r->frozen = nfrozen ? zeros(nfrozen) : NULL;

    void *iwork = xmalloc(init_work);
    for (int i = 0; i < r->nsites; ++i) {
        site *s = &r->s[i];
        float *W0 = s->where == AT_MLP ? NULL : site_weight(M, s->layer, s->where);
        s->ad.params = r->params + offset[i];
        s->ad.grads = r->grads + offset[i];
        if (kind == LORT_KIND_LORAXS) { /* frozen A, B from the SVD of this site's W0 */
            s->ad.frozen = r->frozen + fo;
            fo += sz[i].frozen_bytes / sizeof(float);
        }
        if (kind == LORT_KIND_MPO) {
            /* DoTA keeps W_res = W0 - MPO(cores) frozen in place of W0. We let init write W_res
               over the model's own copy of W0 (documented in-place use), then drive the cores
               as a plain additive MPO (residual NONE): the model's base GEMM x W_res^T stays
               the model's, and merge / unmerge work on the model's weights as for every other
               family. (The alternative keeps residual F32: forward then computes the whole
               layer, sizes.replaces_base = 1, and the caller skips its own base GEMM.) */
            s->ad.frozen = W0;
            check(lort_adapter_init(&s->ad, W0, rng, iwork, init_work), "lort_adapter_init");
            s->ad.desc.mpo.residual = LORT_MPO_RESIDUAL_NONE;
            s->ad.frozen = NULL;
            check(lort_adapter_sizes_query(&s->ad, N, &sz[i]), "lort_adapter_sizes_query");
        } else if (!is_joint(kind) || i == 0) { /* a joint block is initialised once */
            check(lort_adapter_init(&s->ad, W0, rng, iwork, init_work), "lort_adapter_init");
        }
        if (sz[i].work > r->work_size) r->work_size = sz[i].work;
        s->cache_size = sz[i].cache;
        s->cache = sz[i].cache ? xmalloc(sz[i].cache) : NULL;
    }
    free(iwork);
    r->work = xmalloc(r->work_size);
}

static void run_free(run *r) {
    for (int i = 0; i < r->nsites; ++i) free(r->s[i].cache);
    free(r->params), free(r->grads), free(r->frozen), free(r->work);
}

/* ---- one family, end to end ------------------------------------------------------------------- */

typedef struct result {
    const char *name;
    size_t np;
    double loss0, loss1, fd_err, merge_diff, unmerge_diff;
    int mergeable, ok;
} result;

/* loss of the run at its current parameters (forward only); dout may be NULL. */
static double run_loss(const model *M, const run *r, acts *A, const float *X,
                       const float *target, float *dout) {
    forward(M, r, A, X);
    return mse(dout, A->out, target, ND);
}

/* Sets params = theta0 + sigma eps, runs the network (A->out) and returns
   rms(out - out0) / rms(out0). */
static double teacher_gap(const model *M, run *r, acts *A, const float *X, const float *theta0,
                          const float *eps, const float *out0, double sigma) {
    for (size_t i = 0; i < r->np; ++i) r->params[i] = theta0[i] + (float)sigma * eps[i];
    forward(M, r, A, X);
    return rms_diff(A->out, out0, ND) / rms_diff(out0, NULL, ND);
}

static float lr_at(float lr0, int step) {
    return lr0 * (1.0f - 0.9f * (float)step / (float)STEPS);
}

static result run_family(model *M, const float *pristine, acts *A, const float *X,
                         lort_kind kind, lort_rng *rng) {
    run r;
    result res;
    memset(&res, 0, sizeof res);
    memcpy(M->flat, pristine, M->count * sizeof(float)); /* every run starts from the same net */
    run_setup(&r, kind, M, rng);
    res.name = r.name;
    res.np = r.np;
    res.mergeable = kind != LORT_KIND_TT_ADP;
    res.ok = 1;
    const size_t np = r.np;
    float *base = copy_of(M->flat, M->count); /* the weights under the adapters (mpo: W_res) */
    float *theta0 = copy_of(r.params, np), *eps = floats(np);
    float *out0 = floats(ND), *target = floats(ND), *dout = floats(ND);
    float *m = zeros(np), *v = zeros(np);

    /* 1. The teacher: theta0 + sigma eps, sigma tuned to a TEACHER_GAP relative output change. */
    forward(M, &r, A, X);
    memcpy(out0, A->out, ND * sizeof(float));
    fill_normal(eps, np, 1.0f, rng);
    /* the gap grows like sigma^k, k = the number of trained factors in a product (lora 2, cp
       up to 4): bracket it by doubling, then bisect on log sigma */
    double s_lo = 0.0, sigma = 1e-2, gap = teacher_gap(M, &r, A, X, theta0, eps, out0, sigma);
    for (int it = 0; it < 30 && gap < TEACHER_GAP; ++it) {
        s_lo = sigma;
        sigma *= 2.0;
        gap = teacher_gap(M, &r, A, X, theta0, eps, out0, sigma);
    }
    double s_hi = sigma;
    for (int it = 0; it < 40 && fabs(gap / TEACHER_GAP - 1.0) > 0.01; ++it) {
        sigma = s_lo > 0.0 ? sqrt(s_lo * s_hi) : 0.5 * s_hi;
        gap = teacher_gap(M, &r, A, X, theta0, eps, out0, sigma);
        if (gap < TEACHER_GAP) s_lo = sigma;
        else s_hi = sigma;
    }
    memcpy(target, A->out, ND * sizeof(float)); /* the last call ran the teacher at sigma */

    printf("\n%-7s %zu trainable floats on %d sites%s; teacher sigma %.3g (output gap %.2f)\n",
           r.name, np, r.nsites, is_joint(kind) ? " (one shared block)" : "", sigma, gap);

    /* 2. Gradient check halfway to the teacher: every entry has a gradient there (lora's A
       has none at init, where B = 0). Per site the entry of largest |gradient| and a random
       one; central differences of the double loss of the float network. */
    for (size_t i = 0; i < np; ++i) r.params[i] = theta0[i] + 0.5f * (float)sigma * eps[i];
    lort_zero(r.grads, np);
    run_loss(M, &r, A, X, target, dout);
    backward(M, &r, A, dout);
    {
        double gmax = max_abs(r.grads, np), worst = 0.0;
        int nchecked = 0;
        for (int si = 0; si < r.nsites; ++si) {
            /* the site's slice of the flat vector (cp / tucker: the shared block cut into
               nsites chunks, so that the entries differ) */
            size_t lo, cnt;
            if (is_joint(kind)) {
                lo = (size_t)si * np / (size_t)r.nsites;
                cnt = (size_t)(si + 1) * np / (size_t)r.nsites - lo;
            } else {
                lo = (size_t)(r.s[si].ad.params - r.params);
                cnt = (si + 1 < r.nsites ? (size_t)(r.s[si + 1].ad.params - r.params) : np) - lo;
            }
            for (int t = 0; t < FD_PER_SITE; ++t) {
                size_t idx = lo;
                if (t == 0) {
                    for (size_t i = lo; i < lo + cnt; ++i)
                        if (fabsf(r.grads[i]) > fabsf(r.grads[idx])) idx = i;
                } else {
                    idx = lo + (size_t)(lort_rng_u64(rng) % cnt);
                }
                float p = r.params[idx], h = FD_STEP * (fabsf(p) > 1.0f ? fabsf(p) : 1.0f);
                float pp = p + h, pm = p - h;
                r.params[idx] = pp;
                double lp = run_loss(M, &r, A, X, target, NULL);
                r.params[idx] = pm;
                double lm = run_loss(M, &r, A, X, target, NULL);
                r.params[idx] = p;
                double fd = (lp - lm) / ((double)pp - (double)pm), an = (double)r.grads[idx];
                double scale = fabs(fd) > fabs(an) ? fabs(fd) : fabs(an);
                if (scale < 1e-2 * gmax) scale = 1e-2 * gmax; /* floor: near-zero entries */
                double err = fabs(an - fd) / scale;
                if (err > worst) worst = err;
                ++nchecked;
            }
        }
        res.fd_err = worst;
        int ok = worst <= FD_TOL;
        res.ok &= ok;
        printf("  gradient check: %d entries, max rel err %.2e (tol %.0e)   %s\n", nchecked,
               worst, FD_TOL, ok ? "OK" : "FAIL");
    }

    /* 3. Train from theta0: only the adapter parameters move. */
    memcpy(r.params, theta0, np * sizeof(float));
    /* cp: every update is a product of four trained factors (A, B and the C_H .* C_L .* C_M
       weights), whose gradients are small: a larger step fits it ~3x further here */
    const float lr0 = kind == LORT_KIND_CP ? 3e-2f : 1e-2f;
    lort_adamw_desc opt = lort_adamw_default(lr0);
    opt.weight_decay = 0.0f; /* an exact fit is wanted: no pull towards zero */
    double loss = 0.0;
    printf("  loss");
    for (int step = 0; step <= STEPS; ++step) {
        loss = run_loss(M, &r, A, X, target, dout);
        if (step == 0) res.loss0 = loss;
        if (step % 100 == 0) printf("%s %d: %.3e", step ? " |" : "", step, loss);
        if (step == STEPS) break;
        lort_zero(r.grads, np); /* backward accumulates */
        backward(M, &r, A, dout);
        opt.lr = lr_at(lr0, step);
        check(lort_adamw_step(&opt, r.params, m, v, r.grads, np, (long)step + 1),
              "lort_adamw_step");
    }
    res.loss1 = loss;
    {
        int ok = loss * MIN_LOSS_DROP <= res.loss0;
        res.ok &= ok;
        printf("\n  loss fell %.0fx (need >= %.0fx)   %s\n", res.loss0 / loss, MIN_LOSS_DROP,
               ok ? "OK" : "FAIL");
    }

    /* 4. Merge into the model's weights: the plain network must equal the adapted one. */
    forward(M, &r, A, X);
    float *y_adapted = copy_of(A->out, ND);
    if (res.mergeable) {
        for (int i = 0; i < r.nsites; ++i)
            check(lort_adapter_merge(&r.s[i].ad, site_weight(M, r.s[i].layer, r.s[i].where), 1.0f,
                                     r.work, r.work_size),
                  "lort_adapter_merge");
        forward(M, NULL, A, X);
        double diff = max_abs_diff(A->out, y_adapted, ND);
        double tol = MERGE_TOL * (max_abs(y_adapted, ND) > 1.0 ? max_abs(y_adapted, ND) : 1.0);
        int ok = diff <= tol;
        res.merge_diff = diff;
        res.ok &= ok;
        printf("  merged net vs adapted net: max |diff| %.2e (tol %.1e)   %s\n", diff, tol,
               ok ? "OK" : "FAIL");
        for (int i = 0; i < r.nsites; ++i)
            check(lort_adapter_merge(&r.s[i].ad, site_weight(M, r.s[i].layer, r.s[i].where),
                                     -1.0f, r.work, r.work_size),
                  "lort_adapter_merge (unmerge)");
        diff = max_abs_diff(M->flat, base, M->count);
        tol = UNMERGE_TOL * (1.0 + max_abs(base, M->count));
        ok = diff <= tol;
        res.unmerge_diff = diff;
        res.ok &= ok;
        printf("  unmerge restores the weights: max |diff| %.2e (tol %.1e)   %s\n", diff, tol,
               ok ? "OK" : "FAIL");
    } else { /* tt_adp: a bottleneck with an activation has no weight delta */
        float *W = zeros((size_t)D * D);
        lort_status sm = lort_adapter_merge(&r.s[0].ad, W, 1.0f, r.work, r.work_size);
        lort_status sd = lort_adapter_delta(&r.s[0].ad, W, r.work, r.work_size);
        int ok = sm == LORT_ERR_NOT_MERGEABLE && sd == LORT_ERR_NOT_MERGEABLE &&
                 max_abs(W, (size_t)D * D) <= 0.0;
        res.ok &= ok;
        printf("  merge / delta return \"%s\", W untouched   %s\n", lort_status_string(sm),
               ok ? "OK" : "FAIL");
        free(W);
    }

    free(y_adapted), free(base), free(theta0), free(eps), free(out0), free(target), free(dout);
    free(m), free(v);
    run_free(&r);
    return res;
}

/* ---- main ------------------------------------------------------------------------------------- */

int main(void) {
    clock_t t0 = clock();
    lort_rng rng;
    lort_rng_seed(&rng, 2026);

    model M;
    model_make(&M, &rng);
    float *pristine = copy_of(M.flat, M.count);
    acts A;
    acts_make(&A);

    /* The input: SEQS sequences of T random tokens, X = E[token] + Pos[t] (frozen, random). */
    float *E = floats((size_t)VOCAB * D), *Pos = floats((size_t)T * D), *X = floats(ND);
    fill_normal(E, (size_t)VOCAB * D, 1.0f, &rng);
    fill_normal(Pos, (size_t)T * D, 0.5f, &rng);
    for (int s = 0; s < SEQS; ++s)
        for (int t = 0; t < T; ++t) {
            int tok = (int)(lort_rng_u64(&rng) % VOCAB);
            for (int j = 0; j < D; ++j)
                X[(s * T + t) * D + j] = E[tok * D + j] + Pos[t * D + j];
        }

    printf("lortensor %s (GEMM backend: %s) - example 02: every family on a toy transformer\n",
           lort_version_string(), lort_gemm_backend());
    printf("  %d pre-LN blocks, d_model %d, %d heads of %d, MLP %d (GELU), causal attention over "
           "%d sequences of %d tokens (N = %d rows)\n", LAYERS, D, HEADS, DH, FF, SEQS, T, N);
    printf("  %zu frozen floats; adapters on Wq, Wv of every layer (tt_adp: on the MLP output); "
           "teacher = the same family at random parameters; %d AdamW steps\n", M.count, STEPS);

    static const lort_kind kinds[] = {LORT_KIND_LORA, LORT_KIND_LORAXS, LORT_KIND_TT_REP,
                                      LORT_KIND_MPO,  LORT_KIND_CP,     LORT_KIND_TUCKER,
                                      LORT_KIND_TT_ADP};
    enum { NK = sizeof kinds / sizeof kinds[0] };
    result res[NK];
    int ok = 1;
    for (int i = 0; i < NK; ++i) {
        res[i] = run_family(&M, pristine, &A, X, kinds[i], &rng);
        ok &= res[i].ok;
    }

    printf("\nfamily   trainable  loss start  loss end   drop    grad err  merge diff  unmerge\n");
    for (int i = 0; i < NK; ++i) {
        printf("%-7s  %9zu  %10.3e  %9.3e  %6.0fx  %8.1e", res[i].name, res[i].np, res[i].loss0,
               res[i].loss1, res[i].loss0 / res[i].loss1, res[i].fd_err);
        if (res[i].mergeable)
            printf("  %10.1e  %7.1e", res[i].merge_diff, res[i].unmerge_diff);
        else
            printf("  not mergeable (checked)");
        printf("  %s\n", res[i].ok ? "OK" : "FAIL");
    }
    printf("%s (%.2f s)\n", ok ? "all checks passed" : "SOME CHECKS FAILED",
           (double)(clock() - t0) / CLOCKS_PER_SEC);

    free(pristine), free(M.flat), free(A.flat), free(E), free(Pos), free(X);
    return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
