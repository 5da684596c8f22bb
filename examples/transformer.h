/* transformer.h - a small decoder-only transformer over lortensor's public API (example code).

   Shared by the examples (02_toy_transformer, 00_finetune_demo, 05_data_parallel) and usable by
   any program that includes it AFTER lortensor.h (with LORTENSOR_IMPLEMENTATION defined in one
   file of the program). Everything here is static: one program, one copy.

   The network, rows are tokens (row s*seqlen + t is token t of sequence s):

       x      = tok[token] + pos[t]                                      (n, d)
       for each of `layers` pre-LN blocks:
           a  = LN1(x)
           q, k, v = a Wq^T, a Wk^T, a Wv^T                              (n, d) each
           o  = causal multi-head attention (heads of d_h = d / heads columns)
           x1 = x + o Wo^T
           b  = LN2(x1)
           u  = b W1^T + b1      (n, ff)  "MLP up"
           m  = GELU(u) W2^T + b2 (n, d)  "MLP down"
           x  = x1 + m
       logits = LNf(x) head^T                                            (n, vocab)

   Every matrix is in nn.Linear layout, W (d_out, d_in), y = x W^T. GELU is the tanh form.

   Memory: the weights, their gradients and the activations are each ONE allocation, carved by
   one table of named tensors (tf_weights.t: name, shape, offset), so a checkpoint is one write
   of the table and one of the floats, and an optimizer steps one flat vector.

   Adapters: a tf_adapters holds up to TF_MAX_SITES lort_adapter sites, each on one of the six
   linear layers of a block (TF_Q, TF_K, TF_V, TF_O, TF_UP, TF_DOWN). The model calls only the
   generic lort_adapter verbs and never looks at the family. Three per-site properties steer it:
     - replaces_base (from lort_adapter_sizes, DoTA / QDoTA with a residual): the adapter
       computes the whole layer x (W_res + M)^T, so the base GEMM of that layer is skipped;
     - on_output (set by the caller, e.g. LoRETTA_adp's output placement): the adapter maps the
       layer's output in place, y = y0 + f(y0), and its backward maps dy in place;
     - group (set by the caller): sites with the same group >= 0 share ONE parameter block
       (joint tensors: LoRTA's CP, Tucker / LoTR); group < 0 gives the site its own slice.
   All trainable floats of all sites are one flat vector (params) with its gradient (grads).

   Inference: tf_forward(..., train = 0) passes no caches to the adapters and keeps nothing for
   backward beyond the activations; any nseq * seqlen <= the rows the tf_acts were made for. */
#ifndef TRANSFORMER_EXAMPLE_H
#define TRANSFORMER_EXAMPLE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TF_MAX_LAYERS 8
#define TF_MAX_CTX 64
#define TF_MAX_SITES (6 * TF_MAX_LAYERS)
#define TF_MAX_TENSORS (4 + 12 * TF_MAX_LAYERS + 2)
#define TF_LN_EPS 1e-5f
/* static inline: a program may use a subset without unused-function warnings */
#define TF_DEF static inline

typedef struct tf_config {
    int vocab, ctx;        /* token ids 0..vocab-1; at most ctx positions per sequence */
    int d, heads, layers;  /* d % heads == 0 */
    int ff;                /* MLP hidden width */
} tf_config;

enum { TF_Q, TF_K, TF_V, TF_O, TF_UP, TF_DOWN, TF_NWHERE }; /* the six linear layers */
static const char *const tf_where_name[TF_NWHERE] = {"q", "k", "v", "o", "up", "down"};

/* ---- errors: the examples stop on the first failure -------------------------------------- */

TF_DEF void tf_check(lort_status status, const char *what) {
    if (status != LORT_OK) {
        fprintf(stderr, "FAIL: %s: %s (%d)\n", what, lort_status_string(status), (int)status);
        exit(EXIT_FAILURE);
    }
}

TF_DEF void *tf_xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "FAIL: out of memory (%zu bytes)\n", bytes);
        exit(EXIT_FAILURE);
    }
    return p;
}

TF_DEF float *tf_zeros(size_t count) {
    float *p = (float *)tf_xmalloc(count * sizeof(float));
    lort_zero(p, count);
    return p;
}

/* ---- the table of tensors ------------------------------------------------------------------ */

typedef struct tf_tensor {
    char name[32];
    int rows, cols;  /* cols = 1 for a vector */
    size_t offset;   /* floats from the start of the allocation */
    float **slot;    /* the named pointer it binds */
} tf_tensor;

typedef struct tf_layer {
    float *ln1_g, *ln1_b;  /* (d) */
    float *W[4];           /* Wq, Wk, Wv, Wo (d, d), indexed by TF_Q..TF_O */
    float *ln2_g, *ln2_b;  /* (d) */
    float *W1, *b1;        /* (ff, d), (ff)  MLP up */
    float *W2, *b2;        /* (d, ff), (d)   MLP down */
} tf_layer;

/* The weights (or, with the same table, their gradients). */
typedef struct tf_weights {
    tf_config c;
    float *flat;   /* count floats, owned */
    size_t count;
    int ntensors;
    tf_tensor t[TF_MAX_TENSORS];
    float *tok, *pos;     /* (vocab, d), (ctx, d) */
    tf_layer L[TF_MAX_LAYERS];
    float *lnf_g, *lnf_b; /* (d) */
    float *head;          /* (vocab, d) LM head */
} tf_weights;

TF_DEF void tf__add(tf_weights *w, float **slot, int rows, int cols, const char *fmt, int l) {
    tf_tensor *t = &w->t[w->ntensors++];
    snprintf(t->name, sizeof t->name, fmt, l);
    t->rows = rows, t->cols = cols, t->offset = w->count, t->slot = slot;
    w->count += (size_t)rows * (size_t)cols;
}

TF_DEF int tf_config_ok(const tf_config *c) {
    return c->vocab > 0 && c->ctx > 0 && c->ctx <= TF_MAX_CTX && c->d > 0 && c->heads > 0 &&
           c->d % c->heads == 0 && c->layers > 0 && c->layers <= TF_MAX_LAYERS && c->ff > 0;
}

/* Builds the table and allocates the weights (zero). */
TF_DEF void tf_weights_make(tf_weights *w, const tf_config *c) {
    if (!tf_config_ok(c)) {
        fprintf(stderr, "FAIL: bad transformer config\n");
        exit(EXIT_FAILURE);
    }
    memset(w, 0, sizeof *w);
    w->c = *c;
    const int d = c->d, ff = c->ff;
    tf__add(w, &w->tok, c->vocab, d, "tok_emb", 0);
    tf__add(w, &w->pos, c->ctx, d, "pos_emb", 0);
    for (int l = 0; l < c->layers; ++l) {
        tf_layer *L = &w->L[l];
        tf__add(w, &L->ln1_g, d, 1, "blk%d.ln1.weight", l);
        tf__add(w, &L->ln1_b, d, 1, "blk%d.ln1.bias", l);
        tf__add(w, &L->W[TF_Q], d, d, "blk%d.attn.q.weight", l);
        tf__add(w, &L->W[TF_K], d, d, "blk%d.attn.k.weight", l);
        tf__add(w, &L->W[TF_V], d, d, "blk%d.attn.v.weight", l);
        tf__add(w, &L->W[TF_O], d, d, "blk%d.attn.o.weight", l);
        tf__add(w, &L->ln2_g, d, 1, "blk%d.ln2.weight", l);
        tf__add(w, &L->ln2_b, d, 1, "blk%d.ln2.bias", l);
        tf__add(w, &L->W1, ff, d, "blk%d.mlp.up.weight", l);
        tf__add(w, &L->b1, ff, 1, "blk%d.mlp.up.bias", l);
        tf__add(w, &L->W2, d, ff, "blk%d.mlp.down.weight", l);
        tf__add(w, &L->b2, d, 1, "blk%d.mlp.down.bias", l);
    }
    tf__add(w, &w->lnf_g, d, 1, "ln_f.weight", 0);
    tf__add(w, &w->lnf_b, d, 1, "ln_f.bias", 0);
    tf__add(w, &w->head, c->vocab, d, "lm_head.weight", 0);
    w->flat = tf_zeros(w->count);
    for (int i = 0; i < w->ntensors; ++i) *w->t[i].slot = w->flat + w->t[i].offset;
}

TF_DEF void tf_weights_free(tf_weights *w) {
    free(w->flat);
    w->flat = NULL;
}

/* dst = src (same config; dst already made). */
TF_DEF void tf_weights_copy(tf_weights *dst, const tf_weights *src) {
    memcpy(dst->flat, src->flat, src->count * sizeof(float));
}

/* The matrix of linear layer `where` in block l, its bias (NULL for q, k, v, o), its shape. */
TF_DEF float *tf_site_weight(const tf_weights *w, int l, int where) {
    return where < TF_UP ? w->L[l].W[where] : where == TF_UP ? w->L[l].W1 : w->L[l].W2;
}
TF_DEF float *tf_site_bias(const tf_weights *w, int l, int where) {
    return where == TF_UP ? w->L[l].b1 : where == TF_DOWN ? w->L[l].b2 : NULL;
}
TF_DEF void tf_site_dims(const tf_config *c, int where, int *d_in, int *d_out) {
    *d_in = where == TF_DOWN ? c->ff : c->d;
    *d_out = where == TF_UP ? c->ff : c->d;
}

/* Random init: matrices ~ N(0, 1/fan_in), embeddings N(0, 1) (tokens) and N(0, 0.25)
   (positions), layernorm gains 1, biases 0. */
TF_DEF void tf_weights_init(tf_weights *w, lort_rng *rng) {
    const tf_config *c = &w->c;
    lort_zero(w->flat, w->count);
    for (int i = 0; i < w->ntensors; ++i) {
        const tf_tensor *t = &w->t[i];
        float *p = *t->slot;
        size_t cnt = (size_t)t->rows * (size_t)t->cols;
        float std = 0.0f;
        if (p == w->tok) std = 1.0f;
        else if (p == w->pos) std = 0.5f;
        else if (t->cols > 1) std = 1.0f / sqrtf((float)t->cols);
        for (size_t j = 0; j < cnt; ++j) p[j] = std * lort_rng_normal(rng);
    }
    for (int l = 0; l < c->layers; ++l)
        for (int j = 0; j < c->d; ++j) w->L[l].ln1_g[j] = w->L[l].ln2_g[j] = 1.0f;
    for (int j = 0; j < c->d; ++j) w->lnf_g[j] = 1.0f;
}

/* ---- checkpoint: a raw little-endian file ------------------------------------------------
   "LORTTF01", then int32: vocab ctx d heads layers ff ntensors, then per tensor: 32-byte
   NUL-padded name, int32 rows, int32 cols; then every tensor's floats (float32, row-major) in
   table order. Returns 0 on success; loading checks the config and every name and shape. */
TF_DEF int tf_save(const tf_weights *w, const char *path) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int32_t h[7] = {w->c.vocab, w->c.ctx, w->c.d, w->c.heads, w->c.layers, w->c.ff,
                    w->ntensors};
    int ok = fwrite("LORTTF01", 1, 8, f) == 8 && fwrite(h, sizeof h, 1, f) == 1;
    for (int i = 0; ok && i < w->ntensors; ++i) {
        int32_t rc[2] = {w->t[i].rows, w->t[i].cols};
        ok = fwrite(w->t[i].name, 32, 1, f) == 1 && fwrite(rc, sizeof rc, 1, f) == 1;
    }
    ok = ok && fwrite(w->flat, sizeof(float), w->count, f) == w->count;
    ok = (fclose(f) == 0) && ok;
    return ok ? 0 : -1;
}

TF_DEF int tf_load(tf_weights *w, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char magic[8];
    int32_t h[7];
    int ok = fread(magic, 1, 8, f) == 8 && memcmp(magic, "LORTTF01", 8) == 0 &&
             fread(h, sizeof h, 1, f) == 1 && h[0] == w->c.vocab && h[1] == w->c.ctx &&
             h[2] == w->c.d && h[3] == w->c.heads && h[4] == w->c.layers && h[5] == w->c.ff &&
             h[6] == w->ntensors;
    for (int i = 0; ok && i < w->ntensors; ++i) {
        char name[32];
        int32_t rc[2];
        ok = fread(name, 32, 1, f) == 1 && fread(rc, sizeof rc, 1, f) == 1 &&
             strncmp(name, w->t[i].name, 32) == 0 && rc[0] == w->t[i].rows &&
             rc[1] == w->t[i].cols;
    }
    float *tmp = (float *)tf_xmalloc(w->count * sizeof(float));
    ok = ok && fread(tmp, sizeof(float), w->count, f) == w->count && fgetc(f) == EOF;
    for (size_t i = 0; ok && i < w->count; ++i) ok = isfinite(tmp[i]);
    if (ok) memcpy(w->flat, tmp, w->count * sizeof(float)); /* untouched on error */
    free(tmp);
    fclose(f);
    return ok ? 0 : -1;
}

/* ---- adapters ------------------------------------------------------------------------------- */

typedef struct tf_site {
    /* set by the caller before tf_adapters_attach: */
    lort_adapter ad;  /* kind, desc (the shape of the layer), layer / matrix for joint kinds */
    int layer, where; /* the adapted linear layer */
    int group;        /* >= 0: sites of equal group share one parameter block; < 0: own slice */
    int on_output;    /* 1: y = y0 + f(y0) in place on the layer's output (tt_adp OUTPUT) */
    /* set by attach: */
    int replaces_base; /* the adapter computes the whole layer (skip the base GEMM) */
    void *cache;
    size_t cache_size;
} tf_site;

typedef struct tf_adapters {
    int nsites;
    tf_site s[TF_MAX_SITES];
    float *params, *grads; /* ONE flat vector of every trainable float, and its gradient */
    size_t np;
    unsigned char *frozen; /* every site's frozen data (loraxs factors, DoTA's W_res, NF4) */
    size_t nfrozen;        /* bytes; each site's part starts 64-byte aligned */
    void *work;            /* one workspace, large enough for every site */
    size_t work_size;
    size_t cache_bytes;    /* sum of the sites' caches */
} tf_adapters;

/* Sizes, allocates and initialises every site (A->nsites and the caller's fields of A->s[] set;
   the rest of *A is overwritten). Families initialised from the weight (loraxs, mpo) read the
   site's matrix in w. Caches hold max_rows rows. */
TF_DEF void tf_adapters_attach(tf_adapters *A, const tf_weights *w, int max_rows,
                               lort_rng *rng) {
    lort_adapter_sizes sz[TF_MAX_SITES];
    size_t off[TF_MAX_SITES], foff[TF_MAX_SITES], init_work = 0;
    int owner[TF_MAX_SITES]; /* the first site of each site's group (itself if ungrouped) */
    A->params = A->grads = NULL;
    A->frozen = NULL;
    A->np = A->nfrozen = A->work_size = A->cache_bytes = 0;
    for (int i = 0; i < A->nsites; ++i) {
        tf_site *s = &A->s[i];
        int d_in, d_out;
        tf_site_dims(&w->c, s->where, &d_in, &d_out);
        if (s->on_output) d_in = d_out; /* it maps the layer's output to itself */
        tf_check(lort_adapter_sizes_query(&s->ad, max_rows, &sz[i]), "lort_adapter_sizes_query");
        if (sz[i].d_in != d_in || sz[i].d_out != d_out) {
            fprintf(stderr, "FAIL: site %d (blk%d.%s) adapter is %dx%d, the layer %dx%d\n", i,
                    s->layer, tf_where_name[s->where], sz[i].d_out, sz[i].d_in, d_out, d_in);
            exit(EXIT_FAILURE);
        }
        owner[i] = i;
        for (int j = 0; j < i && s->group >= 0; ++j)
            if (A->s[j].group == s->group) {
                owner[i] = owner[j];
                break;
            }
        off[i] = owner[i] == i ? A->np : off[owner[i]];
        if (owner[i] == i) A->np += sz[i].params;
        foff[i] = A->nfrozen;
        A->nfrozen += (sz[i].frozen_bytes + 63) / 64 * 64;
        s->replaces_base = sz[i].replaces_base;
        if (sz[i].init_work > init_work) init_work = sz[i].init_work;
        if (sz[i].work > A->work_size) A->work_size = sz[i].work;
    }
    A->params = tf_zeros(A->np);
    A->grads = tf_zeros(A->np);
    if (A->nfrozen) {
        A->frozen = (unsigned char *)tf_xmalloc(A->nfrozen + 64);
        memset(A->frozen, 0, A->nfrozen + 64);
    }
    void *iwork = tf_xmalloc(init_work);
    for (int i = 0; i < A->nsites; ++i) {
        tf_site *s = &A->s[i];
        s->ad.params = A->params + off[i];
        s->ad.grads = A->grads + off[i];
        /* 64-byte aligned from a malloc'd (16-aligned) base: skip to the next 64 */
        s->ad.frozen = sz[i].frozen_bytes
                           ? A->frozen + foff[i] + (64 - (uintptr_t)A->frozen % 64) % 64
                           : NULL;
        if (owner[i] == i) /* a shared block is initialised once */
            tf_check(lort_adapter_init(&s->ad, tf_site_weight(w, s->layer, s->where), rng, iwork,
                                       init_work),
                     "lort_adapter_init");
        s->cache_size = sz[i].cache;
        s->cache = sz[i].cache ? tf_xmalloc(sz[i].cache) : NULL;
        A->cache_bytes += sz[i].cache;
    }
    free(iwork);
    A->work = tf_xmalloc(A->work_size);
}

TF_DEF void tf_adapters_free(tf_adapters *A) {
    for (int i = 0; i < A->nsites; ++i) free(A->s[i].cache);
    free(A->params), free(A->grads), free(A->frozen), free(A->work);
    A->params = A->grads = NULL;
    A->frozen = NULL;
    A->work = NULL;
}

TF_DEF const tf_site *tf_find_site(const tf_adapters *A, int l, int where) {
    if (!A) return NULL;
    for (int i = 0; i < A->nsites; ++i)
        if (A->s[i].layer == l && A->s[i].where == where) return &A->s[i];
    return NULL;
}

/* Merges every site into dst (a copy of the base weights): W += dW, or, for a site that
   replaces the base layer, W = W_res + M. Returns the first non-OK status (tt_adp:
   LORT_ERR_NOT_MERGEABLE), leaving the rest of dst as merged so far. */
TF_DEF lort_status tf_adapters_merge(const tf_adapters *A, tf_weights *dst) {
    for (int i = 0; i < A->nsites; ++i) {
        const tf_site *s = &A->s[i];
        float *W = tf_site_weight(dst, s->layer, s->where);
        int d_in, d_out;
        tf_site_dims(&dst->c, s->where, &d_in, &d_out);
        if (s->replaces_base) lort_zero(W, (size_t)d_in * (size_t)d_out);
        lort_status st = lort_adapter_merge(&s->ad, W, 1.0f, A->work, A->work_size);
        if (st != LORT_OK) return st;
    }
    return LORT_OK;
}

/* ---- activations ------------------------------------------------------------------------- */

typedef struct tf_layer_acts { /* what one block's forward keeps for its backward */
    float *x;             /* (n, d) block input */
    float *a, *mu1, *rs1; /* (n, d) LN1 output; (n) mean and 1/std of each row */
    float *q, *k, *v;     /* (n, d) projections, adapters included */
    float *P;             /* (nseq, heads, seqlen, seqlen) attention probabilities */
    float *o;             /* (n, d) heads side by side, before Wo */
    float *x1;            /* (n, d) x + attention */
    float *b, *mu2, *rs2; /* LN2 */
    float *u, *g;         /* (n, ff) MLP up (adapters included), GELU(u) */
    float *m;             /* (n, d) MLP down output, adapters included */
} tf_layer_acts;

typedef struct tf_acts {
    int rows; /* capacity */
    float *flat;
    size_t count;
    tf_layer_acts L[TF_MAX_LAYERS];
    float *xf, *muf, *rsf, *hf; /* (n, d) last residual stream; LNf statistics; LNf output */
    float *logits;              /* (n, vocab) */
    /* backward scratch */
    float *dres, *dx1, *dm, *dO, *dq, *dk, *dv, *da, *dn, *dhf; /* (n, d) */
    float *du;                                                 /* (n, ff) */
} tf_acts;

/* Activations for up to `rows` = nseq * seqlen rows, carved from one allocation by one table. */
TF_DEF void tf_acts_make(tf_acts *a, const tf_config *c, int rows) {
    const size_t n = (size_t)rows, nd = n * (size_t)c->d, nf = n * (size_t)c->ff;
    const size_t np = n * (size_t)c->heads * (size_t)c->ctx; /* >= nseq heads seqlen^2 */
    struct {
        float **slot;
        size_t count;
    } table[TF_MAX_LAYERS * 16 + 20];
    int nt = 0;
#define TF__A(p, cnt) (table[nt].slot = &(p), table[nt].count = (cnt), ++nt)
    memset(a, 0, sizeof *a);
    a->rows = rows;
    for (int l = 0; l < c->layers; ++l) {
        tf_layer_acts *L = &a->L[l];
        TF__A(L->x, nd), TF__A(L->a, nd), TF__A(L->mu1, n), TF__A(L->rs1, n);
        TF__A(L->q, nd), TF__A(L->k, nd), TF__A(L->v, nd), TF__A(L->P, np), TF__A(L->o, nd);
        TF__A(L->x1, nd), TF__A(L->b, nd), TF__A(L->mu2, n), TF__A(L->rs2, n);
        TF__A(L->u, nf), TF__A(L->g, nf), TF__A(L->m, nd);
    }
    TF__A(a->xf, nd), TF__A(a->muf, n), TF__A(a->rsf, n), TF__A(a->hf, nd);
    TF__A(a->logits, n * (size_t)c->vocab);
    TF__A(a->dres, nd), TF__A(a->dx1, nd), TF__A(a->dm, nd), TF__A(a->dO, nd);
    TF__A(a->dq, nd), TF__A(a->dk, nd), TF__A(a->dv, nd), TF__A(a->da, nd);
    TF__A(a->dn, nd), TF__A(a->dhf, nd), TF__A(a->du, nf);
#undef TF__A
    for (int i = 0; i < nt; ++i) a->count += table[i].count;
    a->flat = tf_zeros(a->count);
    size_t o = 0;
    for (int i = 0; i < nt; ++i) {
        *table[i].slot = a->flat + o;
        o += table[i].count;
    }
}

TF_DEF void tf_acts_free(tf_acts *a) {
    free(a->flat);
    a->flat = NULL;
}

/* ---- layers -------------------------------------------------------------------------------- */

TF_DEF void tf__linear(float *y, const float *x, const float *W, const float *b, int n, int d_in,
                       int d_out) {
    tf_check(lort_linear_forward(y, x, W, b, n, d_in, d_out), "lort_linear_forward");
}

/* y (n, d) = gain * (x - mean) / sqrt(var + eps) + bias, per row; keeps mean and 1/std. */
TF_DEF void tf__ln_forward(float *y, float *mu, float *rs, const float *x, const float *gain,
                           const float *bias, int n, int d) {
    for (int i = 0; i < n; ++i) {
        const float *xi = x + (size_t)i * (size_t)d;
        double s = 0.0, ss = 0.0;
        for (int j = 0; j < d; ++j) s += (double)xi[j];
        double mean = s / d;
        for (int j = 0; j < d; ++j) ss += ((double)xi[j] - mean) * ((double)xi[j] - mean);
        mu[i] = (float)mean;
        rs[i] = (float)(1.0 / sqrt(ss / d + (double)TF_LN_EPS));
        float *yi = y + (size_t)i * (size_t)d;
        for (int j = 0; j < d; ++j) yi[j] = gain[j] * (xi[j] - mu[i]) * rs[i] + bias[j];
    }
}

/* dx (n, d) += the layernorm's input gradient: with xh = (x - mean) rs and g = dy * gain,
   dx = rs (g - mean(g) - xh mean(g xh)). dgain += sum dy xh, dbias += sum dy (may be NULL). */
TF_DEF void tf__ln_backward(float *dx, float *dgain, float *dbias, const float *dy,
                            const float *x, const float *mu, const float *rs, const float *gain,
                            int n, int d) {
    for (int i = 0; i < n; ++i) {
        const float *xi = x + (size_t)i * (size_t)d, *dyi = dy + (size_t)i * (size_t)d;
        double mg = 0.0, mgx = 0.0;
        for (int j = 0; j < d; ++j) {
            double xh = ((double)xi[j] - (double)mu[i]) * (double)rs[i];
            double g = (double)dyi[j] * (double)gain[j];
            mg += g;
            mgx += g * xh;
            if (dgain) dgain[j] += (float)((double)dyi[j] * xh);
            if (dbias) dbias[j] += dyi[j];
        }
        mg /= d, mgx /= d;
        float *dxi = dx + (size_t)i * (size_t)d;
        for (int j = 0; j < d; ++j) {
            double xh = ((double)xi[j] - (double)mu[i]) * (double)rs[i];
            double g = (double)dyi[j] * (double)gain[j];
            dxi[j] += (float)((double)rs[i] * (g - mg - xh * mgx));
        }
    }
}

/* Causal attention, per sequence s and head h: the head's columns h*dh .. of the rows of
   sequence s are Q_h, K_h, V_h (T, dh); P = softmax(Q_h K_h^T / sqrt(dh)) with key j > query i
   masked (T, T), kept at P + ((s*heads + h)*T + i)*T; O_h = P V_h. */
TF_DEF void tf__attn_forward(const tf_config *c, float *o, float *P, const float *q,
                             const float *k, const float *v, int nseq, int T) {
    const int d = c->d, H = c->heads, dh = d / H;
    const float scale = 1.0f / sqrtf((float)dh);
    for (int s = 0; s < nseq; ++s)
        for (int h = 0; h < H; ++h)
            for (int i = 0; i < T; ++i) {
                const float *qi = q + (size_t)(s * T + i) * (size_t)d + h * dh;
                float *Pi = P + ((size_t)(s * H + h) * (size_t)T + (size_t)i) * (size_t)T;
                float mx = -INFINITY, sum = 0.0f;
                for (int j = 0; j <= i; ++j) {
                    const float *kj = k + (size_t)(s * T + j) * (size_t)d + h * dh;
                    float dot = 0.0f;
                    for (int e = 0; e < dh; ++e) dot += qi[e] * kj[e];
                    Pi[j] = scale * dot;
                    if (Pi[j] > mx) mx = Pi[j];
                }
                for (int j = 0; j <= i; ++j) sum += (Pi[j] = expf(Pi[j] - mx));
                for (int j = 0; j < T; ++j) Pi[j] = j <= i ? Pi[j] / sum : 0.0f;
                float *oi = o + (size_t)(s * T + i) * (size_t)d + h * dh;
                for (int e = 0; e < dh; ++e) oi[e] = 0.0f;
                for (int j = 0; j <= i; ++j) {
                    const float *vj = v + (size_t)(s * T + j) * (size_t)d + h * dh;
                    for (int e = 0; e < dh; ++e) oi[e] += Pi[j] * vj[e];
                }
            }
}

/* dq, dk, dv (n, d) += the gradients of tf__attn_forward for dO: dP = dO_h V_h^T,
   dV_h += P^T dO_h, dS = P .* (dP - rowsum(P .* dP)), dQ_h += dS K_h / sqrt(dh),
   dK_h += dS^T Q_h / sqrt(dh). */
TF_DEF void tf__attn_backward(const tf_config *c, float *dq, float *dk, float *dv,
                              const float *dO, const float *P, const float *q, const float *k,
                              const float *v, int nseq, int T) {
    const int d = c->d, H = c->heads, dh = d / H;
    const float scale = 1.0f / sqrtf((float)dh);
    float dP[TF_MAX_CTX];
    for (int s = 0; s < nseq; ++s)
        for (int h = 0; h < H; ++h)
            for (int i = 0; i < T; ++i) {
                const float *Pi = P + ((size_t)(s * H + h) * (size_t)T + (size_t)i) * (size_t)T;
                const float *doi = dO + (size_t)(s * T + i) * (size_t)d + h * dh;
                float dot = 0.0f;
                for (int j = 0; j <= i; ++j) {
                    const float *vj = v + (size_t)(s * T + j) * (size_t)d + h * dh;
                    float *dvj = dv + (size_t)(s * T + j) * (size_t)d + h * dh;
                    dP[j] = 0.0f;
                    for (int e = 0; e < dh; ++e) {
                        dP[j] += doi[e] * vj[e];
                        dvj[e] += Pi[j] * doi[e];
                    }
                    dot += Pi[j] * dP[j];
                }
                const float *qi = q + (size_t)(s * T + i) * (size_t)d + h * dh;
                float *dqi = dq + (size_t)(s * T + i) * (size_t)d + h * dh;
                for (int j = 0; j <= i; ++j) {
                    float dS = scale * Pi[j] * (dP[j] - dot);
                    const float *kj = k + (size_t)(s * T + j) * (size_t)d + h * dh;
                    float *dkj = dk + (size_t)(s * T + j) * (size_t)d + h * dh;
                    for (int e = 0; e < dh; ++e) {
                        dqi[e] += dS * kj[e];
                        dkj[e] += dS * qi[e];
                    }
                }
            }
}

/* GELU, tanh form: 0.5 u (1 + tanh(c (u + 0.044715 u^3))), c = sqrt(2 / pi) */
#define TF_GELU_C 0.7978845608f
TF_DEF float tf__tanh(float z) { return 1.0f - 2.0f / (expf(2.0f * z) + 1.0f); }
TF_DEF float tf__gelu(float u) {
    return 0.5f * u * (1.0f + tf__tanh(TF_GELU_C * (u + 0.044715f * u * u * u)));
}
TF_DEF float tf__gelu_grad(float u) {
    float t = tf__tanh(TF_GELU_C * (u + 0.044715f * u * u * u));
    return 0.5f * (1.0f + t) + 0.5f * u * (1.0f - t * t) * TF_GELU_C * (1.0f + 0.134145f * u * u);
}

/* ---- one linear layer with its (optional) adapter ------------------------------------------
   forward: y (n, d_out) = x W^T + b, then the adapter: y += dy(x), or y = y + f(y) (on_output);
   a site that replaces the base layer gets y = b and adds x (W_res + M)^T itself. */
TF_DEF void tf__site_forward(const tf_weights *w, const tf_adapters *A, int l, int where,
                             float *y, const float *x, int n, int train) {
    int d_in, d_out;
    tf_site_dims(&w->c, where, &d_in, &d_out);
    const tf_site *s = tf_find_site(A, l, where);
    const float *W = tf_site_weight(w, l, where), *b = tf_site_bias(w, l, where);
    if (s && s->replaces_base) {
        for (int i = 0; i < n; ++i)
            for (int j = 0; j < d_out; ++j)
                y[(size_t)i * (size_t)d_out + (size_t)j] = b ? b[j] : 0.0f;
    } else {
        tf__linear(y, x, W, b, n, d_in, d_out);
    }
    if (s)
        tf_check(lort_adapter_forward(&s->ad, y, s->on_output ? NULL : x, n,
                                      train ? s->cache : NULL, train ? s->cache_size : 0,
                                      A->work, A->work_size),
                 "lort_adapter_forward");
}

/* backward of tf__site_forward: dx (n, d_in) += d loss / dx; adapter gradients accumulate in
   A->grads; g (may be NULL): the base weight and bias gradients accumulate there. dy is
   scratch (an on_output adapter rewrites it in place to the gradient of its input y0). */
TF_DEF void tf__site_backward(const tf_weights *w, tf_weights *g, const tf_adapters *A, int l,
                              int where, float *dx, float *dy, const float *x, int n) {
    int d_in, d_out;
    tf_site_dims(&w->c, where, &d_in, &d_out);
    const tf_site *s = tf_find_site(A, l, where);
    if (s && s->on_output)
        tf_check(lort_adapter_backward(&s->ad, dy, dy, NULL, n, s->cache, s->cache_size,
                                       A->work, A->work_size),
                 "lort_adapter_backward");
    float *dW = g ? tf_site_weight(g, l, where) : NULL, *db = g ? tf_site_bias(g, l, where) : NULL;
    if (s && s->replaces_base) {
        if (db)
            for (int i = 0; i < n; ++i)
                for (int j = 0; j < d_out; ++j) db[j] += dy[(size_t)i * (size_t)d_out + (size_t)j];
    } else {
        tf_check(lort_linear_backward(dx, dW, db, dy, x, tf_site_weight(w, l, where), n, d_in,
                                      d_out),
                 "lort_linear_backward");
    }
    if (s && !s->on_output)
        tf_check(lort_adapter_backward(&s->ad, dx, dy, x, n, s->cache, s->cache_size, A->work,
                                       A->work_size),
                 "lort_adapter_backward");
}

/* ---- the network ----------------------------------------------------------------------------- */

/* a->logits (nseq*seqlen, vocab) = the network on tokens (nseq*seqlen ids, row-major by
   sequence). A may be NULL (no adapters). train != 0 fills the adapter caches for tf_backward. */
TF_DEF void tf_forward(const tf_weights *w, const tf_adapters *A, tf_acts *a, const int *tokens,
                       int nseq, int seqlen, int train) {
    const tf_config *c = &w->c;
    const int n = nseq * seqlen, d = c->d;
    const size_t nd = (size_t)n * (size_t)d, nf = (size_t)n * (size_t)c->ff;
    if (seqlen < 1 || seqlen > c->ctx || nseq < 1 || n > a->rows) {
        fprintf(stderr, "FAIL: tf_forward: %d x %d rows (capacity %d, ctx %d)\n", nseq, seqlen,
                a->rows, c->ctx);
        exit(EXIT_FAILURE);
    }
    for (int i = 0; i < n; ++i) {
        const int tok = tokens[i], t = i % seqlen;
        float *xi = a->L[0].x + (size_t)i * (size_t)d;
        if (tok < 0 || tok >= c->vocab) {
            fprintf(stderr, "FAIL: tf_forward: token %d at row %d is outside 0..%d\n", tok, i,
                    c->vocab - 1);
            exit(EXIT_FAILURE);
        }
        for (int j = 0; j < d; ++j)
            xi[j] = w->tok[(size_t)tok * (size_t)d + (size_t)j] +
                    w->pos[(size_t)t * (size_t)d + (size_t)j];
    }
    for (int l = 0; l < c->layers; ++l) {
        const tf_layer *W = &w->L[l];
        tf_layer_acts *L = &a->L[l];
        float *xo = l + 1 < c->layers ? a->L[l + 1].x : a->xf;
        tf__ln_forward(L->a, L->mu1, L->rs1, L->x, W->ln1_g, W->ln1_b, n, d);
        tf__site_forward(w, A, l, TF_Q, L->q, L->a, n, train);
        tf__site_forward(w, A, l, TF_K, L->k, L->a, n, train);
        tf__site_forward(w, A, l, TF_V, L->v, L->a, n, train);
        tf__attn_forward(c, L->o, L->P, L->q, L->k, L->v, nseq, seqlen);
        tf__site_forward(w, A, l, TF_O, xo, L->o, n, train); /* xo = o Wo^T for now */
        for (size_t i = 0; i < nd; ++i) L->x1[i] = L->x[i] + xo[i];
        tf__ln_forward(L->b, L->mu2, L->rs2, L->x1, W->ln2_g, W->ln2_b, n, d);
        tf__site_forward(w, A, l, TF_UP, L->u, L->b, n, train);
        for (size_t i = 0; i < nf; ++i) L->g[i] = tf__gelu(L->u[i]);
        tf__site_forward(w, A, l, TF_DOWN, L->m, L->g, n, train);
        for (size_t i = 0; i < nd; ++i) xo[i] = L->x1[i] + L->m[i];
    }
    tf__ln_forward(a->hf, a->muf, a->rsf, a->xf, w->lnf_g, w->lnf_b, n, d);
    tf__linear(a->logits, a->hf, w->head, NULL, n, d, c->vocab);
}

/* After tf_forward(..., train = 1) on the same arguments, for dlogits = d loss / d logits:
   A->grads += d loss / d adapter params (A may be NULL); g (may be NULL: a frozen base)
   += d loss / d weights. */
TF_DEF void tf_backward(const tf_weights *w, tf_weights *g, const tf_adapters *A, tf_acts *a,
                        const int *tokens, int nseq, int seqlen, const float *dlogits) {
    const tf_config *c = &w->c;
    const int n = nseq * seqlen, d = c->d;
    const size_t nd = (size_t)n * (size_t)d, nf = (size_t)n * (size_t)c->ff;
    lort_zero(a->dhf, nd);
    tf_check(lort_linear_backward(a->dhf, g ? g->head : NULL, NULL, dlogits, a->hf, w->head, n, d,
                                  c->vocab),
             "lort_linear_backward");
    lort_zero(a->dres, nd);
    tf__ln_backward(a->dres, g ? g->lnf_g : NULL, g ? g->lnf_b : NULL, a->dhf, a->xf, a->muf,
                    a->rsf, w->lnf_g, n, d);
    for (int l = c->layers - 1; l >= 0; --l) {
        const tf_layer *W = &w->L[l];
        tf_layer *G = g ? &g->L[l] : NULL;
        const tf_layer_acts *L = &a->L[l];
        /* xo = x1 + m: both branches receive dres */
        memcpy(a->dx1, a->dres, nd * sizeof(float));
        memcpy(a->dm, a->dres, nd * sizeof(float));
        lort_zero(a->du, nf);
        tf__site_backward(w, g, A, l, TF_DOWN, a->du, a->dm, L->g, n); /* du = dg for now */
        for (size_t i = 0; i < nf; ++i) a->du[i] *= tf__gelu_grad(L->u[i]);
        lort_zero(a->dn, nd);
        tf__site_backward(w, g, A, l, TF_UP, a->dn, a->du, L->b, n);
        tf__ln_backward(a->dx1, G ? G->ln2_g : NULL, G ? G->ln2_b : NULL, a->dn, L->x1, L->mu2,
                        L->rs2, W->ln2_g, n, d);
        /* x1 = x + o Wo^T */
        lort_zero(a->dO, nd);
        memcpy(a->dm, a->dx1, nd * sizeof(float)); /* scratch copy: an on_output site rewrites */
        tf__site_backward(w, g, A, l, TF_O, a->dO, a->dm, L->o, n);
        lort_zero(a->dq, nd), lort_zero(a->dk, nd), lort_zero(a->dv, nd);
        tf__attn_backward(c, a->dq, a->dk, a->dv, a->dO, L->P, L->q, L->k, L->v, nseq, seqlen);
        lort_zero(a->da, nd);
        tf__site_backward(w, g, A, l, TF_Q, a->da, a->dq, L->a, n);
        tf__site_backward(w, g, A, l, TF_K, a->da, a->dk, L->a, n);
        tf__site_backward(w, g, A, l, TF_V, a->da, a->dv, L->a, n);
        /* a = LN1(x); x also feeds x1 directly */
        memcpy(a->dres, a->dx1, nd * sizeof(float));
        tf__ln_backward(a->dres, G ? G->ln1_g : NULL, G ? G->ln1_b : NULL, a->da, L->x, L->mu1,
                        L->rs1, W->ln1_g, n, d);
    }
    if (g)
        for (int i = 0; i < n; ++i) {
            const int tok = tokens[i], t = i % seqlen;
            const float *di = a->dres + (size_t)i * (size_t)d;
            for (int j = 0; j < d; ++j) {
                g->tok[(size_t)tok * (size_t)d + (size_t)j] += di[j];
                g->pos[(size_t)t * (size_t)d + (size_t)j] += di[j];
            }
        }
}

/* Mean cross-entropy over the rows with target >= 0 (target < 0: ignored); dlogits (may be
   NULL) = its gradient. Returns the mean loss (0 if no row counts). */
TF_DEF double tf_xent(float *dlogits, const float *logits, const int *target, int n, int vocab) {
    int count = 0;
    double sum = 0.0;
    for (int i = 0; i < n; ++i) {
        if (target[i] >= vocab) {
            fprintf(stderr, "FAIL: tf_xent: target %d at row %d is outside 0..%d\n", target[i], i,
                    vocab - 1);
            exit(EXIT_FAILURE);
        }
        count += target[i] >= 0;
    }
    for (int i = 0; i < n; ++i) {
        const float *z = logits + (size_t)i * (size_t)vocab;
        float *dz = dlogits ? dlogits + (size_t)i * (size_t)vocab : NULL;
        if (target[i] < 0) {
            if (dz) lort_zero(dz, (size_t)vocab);
            continue;
        }
        double mx = (double)z[0], se = 0.0;
        for (int j = 1; j < vocab; ++j)
            if ((double)z[j] > mx) mx = (double)z[j];
        for (int j = 0; j < vocab; ++j) se += exp((double)z[j] - mx);
        sum += mx + log(se) - (double)z[target[i]];
        if (dz)
            for (int j = 0; j < vocab; ++j)
                dz[j] = (float)((exp((double)z[j] - mx) / se - (j == target[i])) / count);
    }
    return count ? sum / count : 0.0;
}

#endif /* TRANSFORMER_EXAMPLE_H */
