/* 04_serve.c - serving many users' adapters at once with lortensor.

   A tiny decoder (token + position embeddings, 2 blocks of single-head causal attention and a
   ReLU MLP, an LM head; random weights) generates greedily for 7 users at once. Each user
   brings their own adapters on the q and v projections of every block, of different families:

       user 0: none        user 1: lora          user 2: loraxs (shared basis)
       user 3: loraxs (same basis as user 2)     user 4: cp (one joint block for all sites)
       user 5: mpo         user 6: tt_rep

   It checks that three ways of serving give the same tokens for every user:
     (a) unmerged: each user's sequence alone, adapters applied per site (lort_adapter_forward);
     (b) merged:   each user alone on base weights with their adapters merged out of place
                   (lort_adapter_merge_into: the base weights stay read-only);
     (c) mixed:    all users in ONE batch, every site one lort_mixed_forward call whose rows
                   name their user's adapter (a counting sort groups them; the two loraxs users
                   share one x A^T and one B GEMM);
   and that the logits agree to 1e-4 (relative to their scale). Then it hot-swaps user 1's
   adapter (new values in the same buffers, nothing re-initialised) and checks (a) == (c) again.
   Exit status 0 only if every check passes. */
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { VOCAB = 48, D = 32, FF = 64, LAYERS = 2, CTX = 12, PROMPT = 3, USERS = 7, NSITE = 2 * LAYERS };

static void check(lort_status st, const char *what) {
    if (st != LORT_OK) {
        fprintf(stderr, "FAIL: %s: %s\n", what, lort_status_string(st));
        exit(1);
    }
}
static float *zeros(size_t n) {
    float *p = (float *)calloc(n ? n : 1, sizeof(float));
    if (!p) {
        fprintf(stderr, "FAIL: out of memory\n");
        exit(1);
    }
    return p;
}
static float *randn(lort_rng *rng, size_t n, float sd) {
    float *p = zeros(n);
    for (size_t i = 0; i < n; ++i) p[i] = sd * lort_rng_normal(rng);
    return p;
}

/* ---- the base model ------------------------------------------------------------------------ */
typedef struct model {
    float *tok, *pos, *head;       /* (VOCAB, D), (CTX, D), (VOCAB, D) */
    float *W[LAYERS][4];           /* q, k, v, o (D, D) */
    float *W1[LAYERS], *W2[LAYERS]; /* (FF, D), (D, FF) */
} model;
/* site s adapts W[s / 2][s % 2 ? 2 : 0]: q and v of every block */
static float **site_weight(model *m, int s) { return &m->W[s / 2][s % 2 ? 2 : 0]; }

/* ---- how adapters are applied -------------------------------------------------------------- */
typedef struct serving {
    lort_adapter ad[NSITE][USERS - 1]; /* site s, user u >= 1 at [s][u - 1] */
    void *work;
    size_t work_size;
} serving;
enum { MODE_NONE, MODE_SITE, MODE_MIXED };

/* y (n, D) += the adapters of site s on x; seq_user[row / t] is each row's user */
static void apply_site(serving *sv, int mode, int s, float *y, const float *x, int n, int t,
                       const int *seq_user) {
    if (mode == MODE_SITE) { /* one sequence: its user's adapter on all its rows */
        int u = seq_user[0];
        if (u > 0) check(lort_adapter_forward(&sv->ad[s][u - 1], y, x, n, NULL, 0, sv->work, sv->work_size), "site forward");
    } else if (mode == MODE_MIXED) {
        int ra[USERS * CTX];
        for (int i = 0; i < n; ++i) ra[i] = seq_user[i / t] - 1; /* user 0 -> -1: no adapter */
        check(lort_mixed_forward(sv->ad[s], USERS - 1, y, x, ra, n, sv->work, sv->work_size), "mixed forward");
    }
}

/* logits (nseq, VOCAB) of the last position of each of nseq sequences of t tokens */
static void forward(model *m, serving *sv, int mode, const int *tokens, int nseq, int t,
                    const int *seq_user, float *logits) {
    int n = nseq * t;
    float *x = zeros((size_t)n * D), *q = zeros((size_t)n * D), *k = zeros((size_t)n * D),
          *v = zeros((size_t)n * D), *o = zeros((size_t)n * D), *h = zeros((size_t)n * FF);
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < D; ++j)
            x[i * D + j] = m->tok[tokens[(i / t) * CTX + i % t] * D + j] + m->pos[(i % t) * D + j];
    for (int l = 0; l < LAYERS; ++l) {
        check(lort_linear_forward(q, x, m->W[l][0], NULL, n, D, D), "q");
        check(lort_linear_forward(k, x, m->W[l][1], NULL, n, D, D), "k");
        check(lort_linear_forward(v, x, m->W[l][2], NULL, n, D, D), "v");
        apply_site(sv, mode, 2 * l, q, x, n, t, seq_user);
        apply_site(sv, mode, 2 * l + 1, v, x, n, t, seq_user);
        for (int i = 0; i < n; ++i) { /* causal attention within each sequence */
            int s0 = (i / t) * t;
            float sc[CTX], mx = -1e30f, sum = 0.0f;
            for (int j = s0; j <= i; ++j) {
                float a = 0.0f;
                for (int c = 0; c < D; ++c) a += q[i * D + c] * k[j * D + c];
                sc[j - s0] = a / sqrtf((float)D);
                if (sc[j - s0] > mx) mx = sc[j - s0];
            }
            for (int j = s0; j <= i; ++j) sum += (sc[j - s0] = expf(sc[j - s0] - mx));
            for (int c = 0; c < D; ++c) {
                float a = 0.0f;
                for (int j = s0; j <= i; ++j) a += sc[j - s0] * v[j * D + c];
                o[i * D + c] = a / sum;
            }
        }
        check(lort_linear_forward(q, o, m->W[l][3], NULL, n, D, D), "o"); /* q reused as o W^T */
        for (int i = 0; i < n * D; ++i) x[i] += q[i];
        check(lort_linear_forward(h, x, m->W1[l], NULL, n, D, FF), "up");
        for (int i = 0; i < n * FF; ++i) h[i] = h[i] > 0.0f ? h[i] : 0.0f;
        check(lort_linear_forward(q, h, m->W2[l], NULL, n, FF, D), "down");
        for (int i = 0; i < n * D; ++i) x[i] += q[i];
    }
    for (int s = 0; s < nseq; ++s)
        check(lort_linear_forward(logits + s * VOCAB, x + ((size_t)s * (size_t)t + (size_t)t - 1u) * (size_t)D, m->head, NULL, 1, D, VOCAB), "head");
    free(x); free(q); free(k); free(v); free(o); free(h);
}
static int argmax(const float *z) {
    int b = 0;
    for (int i = 1; i < VOCAB; ++i)
        if (z[i] > z[b]) b = i;
    return b;
}

/* Greedy decoding of all users: tokens (USERS, CTX) from the prompts; logits of every step kept
   for the comparison. mode MIXED runs one batch; the others run each user alone, on `models[u]`
   (the merged weights of user u, or the base model). */
static void generate(model **models, serving *sv, int mode, int tokens[USERS][CTX],
                     float lg[USERS][CTX][VOCAB]) {
    int users[USERS];
    for (int u = 0; u < USERS; ++u) users[u] = u;
    for (int t = PROMPT; t < CTX; ++t) {
        float logits[USERS * VOCAB];
        if (mode == MODE_MIXED) {
            forward(models[0], sv, mode, &tokens[0][0], USERS, t, users, logits);
        } else {
            for (int u = 0; u < USERS; ++u)
                forward(models[u], sv, mode, &tokens[u][0], 1, t, &users[u], logits + u * VOCAB);
        }
        for (int u = 0; u < USERS; ++u) {
            memcpy(lg[u][t], logits + u * VOCAB, sizeof(float) * VOCAB);
            tokens[u][t] = argmax(logits + u * VOCAB);
        }
    }
}

static int compare(const char *what, int a[USERS][CTX], int b[USERS][CTX], float la[USERS][CTX][VOCAB],
                   float lb[USERS][CTX][VOCAB]) {
    int ok = 1;
    double worst = 0.0, scale = 0.0;
    for (int u = 0; u < USERS; ++u)
        for (int t = PROMPT; t < CTX; ++t) {
            if (a[u][t] != b[u][t]) ok = 0;
            for (int i = 0; i < VOCAB; ++i) {
                worst = fmax(worst, fabs((double)la[u][t][i] - (double)lb[u][t][i]));
                scale = fmax(scale, fabs((double)la[u][t][i]));
            }
        }
    if (!(worst <= 1e-4 * scale)) ok = 0;
    printf("  %-28s tokens %s, max |logit diff| %.2e (logit scale %.2f)  %s\n", what,
           ok ? "equal" : "DIFFER", worst, scale, ok ? "ok" : "FAIL");
    return ok;
}

int main(void) {
    lort_rng rng;
    model base;
    serving sv;
    lort_rng_seed(&rng, 2024);
    base.tok = randn(&rng, VOCAB * D, 1.0f);
    base.pos = randn(&rng, CTX * D, 0.5f);
    base.head = randn(&rng, VOCAB * D, 0.3f);
    for (int l = 0; l < LAYERS; ++l) {
        for (int w = 0; w < 4; ++w) base.W[l][w] = randn(&rng, D * D, 0.25f);
        base.W1[l] = randn(&rng, FF * D, 0.2f);
        base.W2[l] = randn(&rng, D * FF, 0.15f);
    }

    /* ---- every user's adapters (params random: as if trained) ---- */
    memset(&sv, 0, sizeof sv);
    lort_adapter cp_block, proto[USERS - 1];
    memset(&cp_block, 0, sizeof cp_block);
    memset(proto, 0, sizeof proto);
    proto[0].kind = LORT_KIND_LORA;
    proto[0].desc.lora.d_in = D; proto[0].desc.lora.d_out = D; proto[0].desc.lora.r = 4;
    proto[1].kind = proto[2].kind = LORT_KIND_LORAXS;
    proto[1].desc.loraxs.d_in = D; proto[1].desc.loraxs.d_out = D; proto[1].desc.loraxs.r = 6;
    proto[2].desc.loraxs = proto[1].desc.loraxs;
    proto[3].kind = LORT_KIND_CP;
    proto[3].desc.cp.d = D; proto[3].desc.cp.heads = 2; proto[3].desc.cp.layers = LAYERS; proto[3].desc.cp.r = 4;
    proto[4].kind = LORT_KIND_MPO;
    proto[4].desc.mpo.n_cores = 2;
    proto[4].desc.mpo.row_factors[0] = proto[4].desc.mpo.col_factors[0] = 4;
    proto[4].desc.mpo.row_factors[1] = proto[4].desc.mpo.col_factors[1] = 8;
    proto[4].desc.mpo.bond = 4;
    proto[5].kind = LORT_KIND_TT_REP;
    proto[5].desc.tt_rep.d_in = D; proto[5].desc.tt_rep.d_out = D; proto[5].desc.tt_rep.r = 4;
    for (int w = 0; w < 2; ++w) {
        lort_tt_desc *tt = w ? &proto[5].desc.tt_rep.B : &proto[5].desc.tt_rep.A;
        tt->n_cores = 3; tt->modes[0] = 4; tt->modes[1] = 8; tt->modes[2] = 4; tt->rank = 2;
    }
    size_t work = 0;
    lort_adapter_sizes z;
    float *cp_params = NULL, *xs_frozen[NSITE];
    for (int s = 0; s < NSITE; ++s)
        for (int u = 1; u < USERS; ++u) {
            lort_adapter *a = &sv.ad[s][u - 1];
            *a = proto[u - 1];
            check(lort_adapter_sizes_query(a, USERS * CTX, &z), "sizes");
            if (z.work > work) work = z.work;
            if (z.init_work > work) work = z.init_work;
            if (a->kind == LORT_KIND_CP) { /* one joint block for all of user 4's sites */
                if (!cp_params) cp_params = randn(&rng, z.params, 0.5f);
                a->params = cp_params;
                a->layer = s / 2;
                a->matrix = s % 2 ? LORT_CP_V : LORT_CP_Q;
                continue;
            }
            a->params = randn(&rng, z.params, a->kind == LORT_KIND_LORAXS ? 0.3f : 0.15f);
            if (a->kind == LORT_KIND_LORAXS) { /* users 2 and 3: one SVD of the site's weight */
                if (u == 2) {
                    float *R = zeros(z.params);
                    void *iw = malloc(z.init_work);
                    xs_frozen[s] = zeros(z.frozen_bytes / sizeof(float));
                    a->frozen = xs_frozen[s];
                    check(lort_adapter_init(a, *site_weight(&base, s), &rng, iw, z.init_work), "loraxs init");
                    free(iw);
                    free(R);
                    for (size_t i = 0; i < z.params; ++i) a->params[i] = 0.3f * lort_rng_normal(&rng);
                }
                a->frozen = xs_frozen[s];
            }
        }
    for (int s = 0; s < NSITE; ++s) {
        size_t mw = 0;
        check(lort_mixed_workspace_size(sv.ad[s], USERS - 1, USERS * CTX, &mw), "mixed workspace");
        if (mw > work) work = mw;
    }
    sv.work = malloc(work);
    sv.work_size = work;

    /* ---- (b)'s weights: every user's adapters merged out of place into copies ---- */
    model merged[USERS], *per_user[USERS], *base_for_all[USERS];
    for (int u = 0; u < USERS; ++u) {
        merged[u] = base;
        for (int s = 0; s < NSITE && u > 0; ++s) {
            float **W = site_weight(&merged[u], s);
            float *Wm = zeros(D * D);
            check(lort_adapter_merge_into(&sv.ad[s][u - 1], Wm, *site_weight(&base, s), 1.0f, sv.work, sv.work_size), "merge_into");
            *W = Wm;
        }
        per_user[u] = &merged[u];
        base_for_all[u] = &base;
    }

    static int ta[USERS][CTX], tb[USERS][CTX], tc[USERS][CTX];
    static float la[USERS][CTX][VOCAB], lb[USERS][CTX][VOCAB], lc[USERS][CTX][VOCAB];
    for (int u = 0; u < USERS; ++u)
        for (int t = 0; t < PROMPT; ++t) ta[u][t] = tb[u][t] = tc[u][t] = (7 * t + 3) % VOCAB;

    int ok = 1;
    generate(base_for_all, &sv, MODE_SITE, ta, la);
    generate(per_user, &sv, MODE_NONE, tb, lb);
    generate(base_for_all, &sv, MODE_MIXED, tc, lc);
    printf("04_serve: %d users, greedy decoding of %d tokens from a %d-token prompt\n", USERS, CTX - PROMPT, PROMPT);
    for (int u = 0; u < USERS; ++u) {
        static const char *const fam[USERS] = {"none", "lora", "loraxs", "loraxs", "cp", "mpo", "tt_rep"};
        printf("  user %d %-7s:", u, fam[u]);
        for (int t = 0; t < CTX; ++t) printf(" %2d", tc[u][t]);
        printf("\n");
    }
    ok &= compare("(a) unmerged vs (b) merged", ta, tb, la, lb);
    ok &= compare("(a) unmerged vs (c) mixed", ta, tc, la, lc);
    /* the users must not all generate the same text, or the comparison proves little */
    int distinct = 0;
    for (int u = 1; u < USERS; ++u) distinct += memcmp(tc[u], tc[0], sizeof tc[0]) != 0;
    printf("  users whose tokens differ from user 0's: %d of %d  %s\n", distinct, USERS - 1, distinct >= 3 ? "ok" : "FAIL");
    ok &= distinct >= 3;

    /* ---- hot swap: user 1 gets another adapter: new values in the same buffers ---- */
    for (int s = 0; s < NSITE; ++s) {
        lort_adapter *a = &sv.ad[s][0];
        check(lort_adapter_sizes_query(a, 1, &z), "sizes");
        for (size_t i = 0; i < z.params; ++i) a->params[i] = 0.3f * lort_rng_normal(&rng);
    }
    static int sa[USERS][CTX], sc[USERS][CTX];
    static float lsa[USERS][CTX][VOCAB], lsc[USERS][CTX][VOCAB];
    memcpy(sa, ta, sizeof sa);
    memcpy(sc, ta, sizeof sc);
    generate(base_for_all, &sv, MODE_SITE, sa, lsa);
    generate(base_for_all, &sv, MODE_MIXED, sc, lsc);
    ok &= compare("hot swap: (a) vs (c)", sa, sc, lsa, lsc);
    int changed = memcmp(sc[1], tc[1], sizeof tc[1]) != 0, others = 1;
    for (int u = 0; u < USERS; ++u)
        if (u != 1) others &= memcmp(sc[u], tc[u], sizeof tc[u]) == 0;
    printf("  hot swap: user 1's tokens %s, every other user's unchanged: %s  %s\n",
           changed ? "changed" : "UNCHANGED", others ? "yes" : "NO", changed && others ? "ok" : "FAIL");
    ok &= changed && others;

    printf("04_serve: %s\n", ok ? "all checks passed" : "FAILED");
    /* cleanup */
    for (int u = 1; u < USERS; ++u)
        for (int s = 0; s < NSITE; ++s) free(*site_weight(&merged[u], s));
    for (int s = 0; s < NSITE; ++s) {
        for (int u = 1; u < USERS; ++u)
            if (sv.ad[s][u - 1].kind != LORT_KIND_CP) free(sv.ad[s][u - 1].params);
        free(xs_frozen[s]);
    }
    free(cp_params);
    free(base.tok); free(base.pos); free(base.head);
    for (int l = 0; l < LAYERS; ++l) {
        for (int w = 0; w < 4; ++w) free(base.W[l][w]);
        free(base.W1[l]); free(base.W2[l]);
    }
    free(sv.work);
    return ok ? 0 : 1;
}
