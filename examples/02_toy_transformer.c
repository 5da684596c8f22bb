/* 02_toy_transformer.c - every adapter family on a tiny pre-LN transformer, trained end to end.

   The network is examples/transformer.h (token + position embeddings, LAYERS pre-LN blocks
   with causal multi-head attention and a GELU MLP, final layernorm, LM head; forward and
   backward written there over lort_linear_* and lort_adapter_*), here with frozen RANDOM
   weights: D = 32, HEADS = 4, FF = 128, VOCAB = 16, SEQS sequences of T random tokens, N rows.
   Its output is the logits (N, VOCAB).

   For each family (lora, loraxs, tt_rep, mpo, cp, tucker: on Wq and Wv of every layer;
   tt_adp: on the MLP-down output of every layer) one run:
     1. attaches one lort_adapter per site through tf_adapters_attach (cp and tucker: ONE
        shared parameter block, group 0, the site is (layer, matrix)); all trainable floats of
        the run are one flat vector, stepped by lort_adamw_step (mpo: DoTA, the frozen residual
        W_res = W0 - MPO(cores) kept beside the cores, so the site computes the whole layer);
     2. plants a teacher: the same network with the same family at parameters
        theta_T = theta_0 + sigma * eps (eps ~ N(0, 1), sigma set so that the teacher's logits
        differ from the student's initial logits by TEACHER_GAP in relative rms). The target is
        realisable, so every family can drive the loss towards zero;
     3. checks the whole network's gradient (transformer.h's backward + the adapter kernels)
        with central differences at theta_0 + sigma eps / 2, on a few entries per site;
     4. trains only the adapter parameters for STEPS full-batch AdamW steps on the mean squared
        error to the teacher's logits, and checks that the loss fell by MIN_LOSS_DROP;
     5. merges every site into a copy of the weights (tf_adapters_merge), runs the plain network
        and compares it with the adapted one, then unmerges (-1) and checks the weights are back
        (a DoTA site's merged weight is the whole layer W_res + M, so unmerging leaves zero);
        tt_adp is not linear: its merge must return LORT_ERR_NOT_MERGEABLE.
   The program exits non-zero if any check fails.

   Build: make examples   (or: cc -std=c99 -O2 -I. examples/02_toy_transformer.c -DLORT_NO_BLAS
   -lm) */
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"
#include "examples/transformer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum {
    LAYERS = 2, D = 32, HEADS = 4, FF = 4 * D, VOCAB = 16,
    SEQS = 8, T = 8, N = SEQS * T, /* N rows, one per token */
    RANK = 4, STEPS = 300, FD_PER_SITE = 2
};

#define TEACHER_GAP 0.3   /* rms(teacher out - initial out) / rms(initial out) */
#define MIN_LOSS_DROP 20.0 /* final loss must be this many times below the initial loss */
#define FD_STEP 1e-2f     /* finite differences: step h = FD_STEP max(1, |p|); the float network's
                             loss is good to ~1e-7 relative, so a smaller h is noisier */
#define FD_TOL 2e-2       /* |analytic - fd| / max(|analytic|, |fd|, 1e-2 max |gradient|) */
#define MERGE_TOL 1e-4    /* merged vs adapted output, relative to max |output| (>= 1) */
#define UNMERGE_TOL 1e-5  /* unmerged weights vs the weights before merging, relative */

static const size_t ND = (size_t)N * VOCAB; /* the output: logits */

/* ---- small helpers ------------------------------------------------------------------------ */

#define check tf_check
static float *floats(size_t count) { return (float *)tf_xmalloc(count * sizeof(float)); }
#define zeros tf_zeros

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
        double d = fabs((double)a[i] - (b ? (double)b[i] : 0.0));
        if (d > m) m = d;
    }
    return m;
}

static double max_abs(const float *a, size_t count) { return max_abs_diff(a, NULL, count); }

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

/* ---- the frozen model: random weights, layernorm gains near 1, small biases ------------------ */

static void model_make(tf_weights *M, lort_rng *rng) {
    const tf_config c = {VOCAB, T, D, HEADS, LAYERS, FF};
    tf_weights_make(M, &c);
    tf_weights_init(M, rng);
    for (int l = 0; l < LAYERS; ++l) {
        tf_layer *w = &M->L[l];
        fill_normal(w->b1, FF, 0.1f, rng);
        fill_normal(w->b2, D, 0.1f, rng);
        for (int j = 0; j < D; ++j) {
            w->ln1_g[j] += 0.1f * lort_rng_normal(rng);
            w->ln1_b[j] = 0.1f * lort_rng_normal(rng);
            w->ln2_g[j] += 0.1f * lort_rng_normal(rng);
            w->ln2_b[j] = 0.1f * lort_rng_normal(rng);
        }
    }
    for (int j = 0; j < D; ++j) {
        M->lnf_g[j] += 0.1f * lort_rng_normal(rng);
        M->lnf_b[j] = 0.1f * lort_rng_normal(rng);
    }
}

/* ---- attaching a family ---------------------------------------------------------------------- */

/* Fills a->desc for a->kind; the shapes are those of a D x D projection. */
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
        d->residual = LORT_MPO_RESIDUAL_F32; /* W_res kept: the site computes the layer */
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
        /* rh = rl = rm = 0: r1 (equal ranks: the default init's core is the superdiagonal,
           a CP). */
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

/* Sites: q and v of every layer (tt_adp: the MLP-down output of every layer). For cp and tucker
   the site is (layer, matrix type); q and v are matrix types LORT_CP_Q and LORT_CP_V, and every
   site is in group 0 (one shared block). */
static const char *run_setup(tf_adapters *r, lort_kind kind, const tf_weights *M, lort_rng *rng) {
    lort_adapter proto;
    const char *name = "?";
    memset(r, 0, sizeof *r);
    memset(&proto, 0, sizeof proto);
    proto.kind = kind;
    family_desc(&proto, &name);
    r->nsites = kind == LORT_KIND_TT_ADP ? LAYERS : 2 * LAYERS;
    for (int i = 0; i < r->nsites; ++i) {
        tf_site *s = &r->s[i];
        s->ad = proto;
        s->layer = kind == LORT_KIND_TT_ADP ? i : i / 2;
        s->where = kind == LORT_KIND_TT_ADP ? TF_DOWN : (i % 2 ? TF_V : TF_Q);
        s->ad.layer = s->layer;
        s->ad.matrix = s->where == TF_V ? LORT_CP_V : LORT_CP_Q;
        s->group = is_joint(kind) ? 0 : -1;
        s->on_output = kind == LORT_KIND_TT_ADP; /* the output placement: m = m0 + f(m0) */
    }
    tf_adapters_attach(r, M, N, rng);
    return name;
}

/* ---- one family, end to end ------------------------------------------------------------- */

typedef struct result {
    const char *name;
    size_t np;
    double loss0, loss1, fd_err, merge_diff, unmerge_diff;
    int mergeable, ok;
} result;

/* loss of the run at its current parameters (forward only); dout may be NULL. */
static double run_loss(const tf_weights *M, const tf_adapters *r, tf_acts *A, const int *tokens,
                       const float *target, float *dout) {
    tf_forward(M, r, A, tokens, SEQS, T, 1);
    return mse(dout, A->logits, target, ND);
}

/* Sets params = theta0 + sigma eps, runs the network (A->logits) and returns
   rms(out - out0) / rms(out0). */
static double teacher_gap(const tf_weights *M, tf_adapters *r, tf_acts *A, const int *tokens,
                          const float *theta0, const float *eps, const float *out0,
                          double sigma) {
    for (size_t i = 0; i < r->np; ++i) r->params[i] = theta0[i] + (float)sigma * eps[i];
    tf_forward(M, r, A, tokens, SEQS, T, 0);
    return rms_diff(A->logits, out0, ND) / rms_diff(out0, NULL, ND);
}

static float lr_at(float lr0, int step) {
    return lr0 * (1.0f - 0.9f * (float)step / (float)STEPS);
}

static result run_family(const tf_weights *M, tf_acts *A, const int *tokens, lort_kind kind,
                         lort_rng *rng) {
    tf_adapters r;
    result res;
    memset(&res, 0, sizeof res);
    res.name = run_setup(&r, kind, M, rng);
    res.np = r.np;
    res.mergeable = kind != LORT_KIND_TT_ADP;
    res.ok = 1;
    const size_t np = r.np;
    float *theta0 = copy_of(r.params, np), *eps = floats(np);
    float *out0 = floats(ND), *target = floats(ND), *dout = floats(ND);
    float *m = zeros(np), *v = zeros(np);

    /* 1. The teacher: theta0 + sigma eps, sigma tuned to a TEACHER_GAP relative output change. */
    tf_forward(M, &r, A, tokens, SEQS, T, 0);
    memcpy(out0, A->logits, ND * sizeof(float));
    fill_normal(eps, np, 1.0f, rng);
    /* the gap grows like sigma^k, k = the number of trained factors in a product (lora 2, cp
       up to 4): bracket it by doubling, then bisect on log sigma */
    double s_lo = 0.0, sigma = 1e-2, gap = teacher_gap(M, &r, A, tokens, theta0, eps, out0, sigma);
    for (int it = 0; it < 30 && gap < TEACHER_GAP; ++it) {
        s_lo = sigma;
        sigma *= 2.0;
        gap = teacher_gap(M, &r, A, tokens, theta0, eps, out0, sigma);
    }
    double s_hi = sigma;
    for (int it = 0; it < 40 && fabs(gap / TEACHER_GAP - 1.0) > 0.01; ++it) {
        sigma = s_lo > 0.0 ? sqrt(s_lo * s_hi) : 0.5 * s_hi;
        gap = teacher_gap(M, &r, A, tokens, theta0, eps, out0, sigma);
        if (gap < TEACHER_GAP) s_lo = sigma;
        else s_hi = sigma;
    }
    memcpy(target, A->logits, ND * sizeof(float)); /* the last call ran the teacher at sigma */

    printf("\n%-7s %zu trainable floats on %d sites%s; teacher sigma %.3g (output gap %.2f)\n",
           res.name, np, r.nsites, is_joint(kind) ? " (one shared block)" : "", sigma, gap);

    /* 2. Gradient check halfway to the teacher: every entry has a gradient there (lora's A
       has none at init, where B = 0). Per site the entry of largest |gradient| and a random
       one; central differences of the double loss of the float network. */
    for (size_t i = 0; i < np; ++i) r.params[i] = theta0[i] + 0.5f * (float)sigma * eps[i];
    lort_zero(r.grads, np);
    run_loss(M, &r, A, tokens, target, dout);
    tf_backward(M, NULL, &r, A, tokens, SEQS, T, dout);
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
                double lp = run_loss(M, &r, A, tokens, target, NULL);
                r.params[idx] = pm;
                double lm = run_loss(M, &r, A, tokens, target, NULL);
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
        loss = run_loss(M, &r, A, tokens, target, dout);
        if (step == 0) res.loss0 = loss;
        if (step % 100 == 0) printf("%s %d: %.3e", step ? " |" : "", step, loss);
        if (step == STEPS) break;
        lort_zero(r.grads, np); /* backward accumulates */
        tf_backward(M, NULL, &r, A, tokens, SEQS, T, dout);
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

    /* 4. Merge into a copy of the weights: the plain network must equal the adapted one. */
    tf_forward(M, &r, A, tokens, SEQS, T, 0);
    float *y_adapted = copy_of(A->logits, ND);
    tf_weights W;
    tf_weights_make(&W, &M->c);
    tf_weights_copy(&W, M);
    if (res.mergeable) {
        check(tf_adapters_merge(&r, &W), "tf_adapters_merge");
        tf_forward(&W, NULL, A, tokens, SEQS, T, 0);
        double diff = max_abs_diff(A->logits, y_adapted, ND);
        double tol = MERGE_TOL * (max_abs(y_adapted, ND) > 1.0 ? max_abs(y_adapted, ND) : 1.0);
        int ok = diff <= tol;
        res.merge_diff = diff;
        res.ok &= ok;
        printf("  merged net vs adapted net: max |diff| %.2e (tol %.1e)   %s\n", diff, tol,
               ok ? "OK" : "FAIL");
        /* unmerge: every weight back to the base; a site that replaced its layer (DoTA: the
           merged weight is W_res + M) goes to zero */
        diff = 0.0;
        for (int i = 0; i < r.nsites; ++i) {
            const tf_site *s = &r.s[i];
            float *Wm = tf_site_weight(&W, s->layer, s->where);
            check(lort_adapter_merge(&s->ad, Wm, -1.0f, r.work, r.work_size),
                  "lort_adapter_merge (unmerge)");
            if (s->replaces_base) {
                double e = max_abs(Wm, (size_t)D * D);
                if (e > diff) diff = e;
                memcpy(Wm, tf_site_weight(M, s->layer, s->where), (size_t)D * D * sizeof(float));
            }
        }
        double e = max_abs_diff(W.flat, M->flat, M->count);
        if (e > diff) diff = e;
        tol = UNMERGE_TOL * (1.0 + max_abs(M->flat, M->count));
        ok = diff <= tol;
        res.unmerge_diff = diff;
        res.ok &= ok;
        printf("  unmerge restores the weights: max |diff| %.2e (tol %.1e)   %s\n", diff, tol,
               ok ? "OK" : "FAIL");
    } else { /* tt_adp: a bottleneck with an activation has no weight delta */
        lort_status sm = tf_adapters_merge(&r, &W);
        float *dW = zeros((size_t)D * D);
        lort_status sd = lort_adapter_delta(&r.s[0].ad, dW, r.work, r.work_size);
        int ok = sm == LORT_ERR_NOT_MERGEABLE && sd == LORT_ERR_NOT_MERGEABLE &&
                 max_abs(dW, (size_t)D * D) <= 0.0 &&
                 max_abs_diff(W.flat, M->flat, M->count) <= 0.0;
        res.ok &= ok;
        printf("  merge / delta return \"%s\", weights untouched   %s\n", lort_status_string(sm),
               ok ? "OK" : "FAIL");
        free(dW);
    }

    tf_weights_free(&W);
    free(y_adapted), free(theta0), free(eps), free(out0), free(target), free(dout);
    free(m), free(v);
    tf_adapters_free(&r);
    return res;
}

/* ---- the base model's own gradient (pretraining, full fine-tuning) ----------------------------
   tf_backward with a gradient struct fills d loss / d every weight. Checked here by central
   differences of the cross-entropy to random targets: per tensor of the table, the entry of
   largest |gradient| and a random one. */
static int check_full_gradient(tf_weights *M, tf_acts *A, const int *tokens, lort_rng *rng) {
    int target[N];
    for (int i = 0; i < N; ++i) target[i] = (int)(lort_rng_u64(rng) % VOCAB);
    float *dlogits = zeros((size_t)N * VOCAB);
    tf_weights G;
    tf_weights_make(&G, &M->c);
    tf_forward(M, NULL, A, tokens, SEQS, T, 1);
    tf_xent(dlogits, A->logits, target, N, VOCAB);
    tf_backward(M, &G, NULL, A, tokens, SEQS, T, dlogits);
    double gmax = max_abs(G.flat, G.count), worst = 0.0;
    int nchecked = 0;
    for (int ti = 0; ti < M->ntensors; ++ti) {
        const size_t lo = M->t[ti].offset, cnt = (size_t)M->t[ti].rows * (size_t)M->t[ti].cols;
        for (int k = 0; k < 2; ++k) {
            size_t idx = lo;
            if (k == 0) {
                for (size_t i = lo; i < lo + cnt; ++i)
                    if (fabsf(G.flat[i]) > fabsf(G.flat[idx])) idx = i;
            } else {
                idx = lo + (size_t)(lort_rng_u64(rng) % cnt);
            }
            float p = M->flat[idx], h = FD_STEP * (fabsf(p) > 1.0f ? fabsf(p) : 1.0f);
            float pp = p + h, pm = p - h;
            M->flat[idx] = pp;
            tf_forward(M, NULL, A, tokens, SEQS, T, 0);
            double lp = tf_xent(NULL, A->logits, target, N, VOCAB);
            M->flat[idx] = pm;
            tf_forward(M, NULL, A, tokens, SEQS, T, 0);
            double lm = tf_xent(NULL, A->logits, target, N, VOCAB);
            M->flat[idx] = p;
            double fd = (lp - lm) / ((double)pp - (double)pm), an = (double)G.flat[idx];
            double scale = fabs(fd) > fabs(an) ? fabs(fd) : fabs(an);
            if (scale < 1e-2 * gmax) scale = 1e-2 * gmax;
            double err = fabs(an - fd) / scale;
            if (err > worst) worst = err;
            ++nchecked;
        }
    }
    int ok = worst <= FD_TOL;
    printf("\nbase weights (full fine-tuning): gradient check of cross-entropy, %d entries over "
           "%d tensors, max rel err %.2e (tol %.0e)   %s\n", nchecked, M->ntensors, worst,
           FD_TOL, ok ? "OK" : "FAIL");
    tf_weights_free(&G);
    free(dlogits);
    return ok;
}

/* ---- main ------------------------------------------------------------------------------- */

int main(void) {
    clock_t t0 = clock();
    lort_rng rng;
    lort_rng_seed(&rng, 2026);

    tf_weights M;
    model_make(&M, &rng);
    tf_acts A;
    tf_acts_make(&A, &M.c, N);

    /* The input: SEQS sequences of T random tokens. */
    int tokens[N];
    for (int i = 0; i < N; ++i) tokens[i] = (int)(lort_rng_u64(&rng) % VOCAB);

    printf("lortensor %s (GEMM backend: %s) - example 02: every family on a toy transformer\n",
           lort_version_string(), lort_gemm_backend());
    printf("  examples/transformer.h: %d pre-LN blocks, d_model %d, %d heads, MLP %d (GELU), "
           "causal attention over %d sequences of %d tokens (N = %d rows), logits over %d\n",
           LAYERS, D, HEADS, FF, SEQS, T, N, VOCAB);
    printf("  %zu frozen floats; adapters on Wq, Wv of every layer (tt_adp: on the MLP-down "
           "output); teacher = the same family at random parameters; %d AdamW steps\n", M.count,
           STEPS);

    static const lort_kind kinds[] = {LORT_KIND_LORA, LORT_KIND_LORAXS, LORT_KIND_TT_REP,
                                      LORT_KIND_MPO,  LORT_KIND_CP,     LORT_KIND_TUCKER,
                                      LORT_KIND_TT_ADP};
    enum { NK = sizeof kinds / sizeof kinds[0] };
    result res[NK];
    int ok = 1;
    for (int i = 0; i < NK; ++i) {
        res[i] = run_family(&M, &A, tokens, kinds[i], &rng);
        ok &= res[i].ok;
    }

    ok &= check_full_gradient(&M, &A, tokens, &rng);

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

    tf_weights_free(&M);
    tf_acts_free(&A);
    return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
