/* One conformance harness over the generic adapter interface (lort_adapter), in the spirit of
   ggml's test-backend-ops: a table of (kind, desc) rows, and the same list of checks for every
   row. A new family gets every check by adding rows to make_cases (and its reference to
   tests/lort_ref.h).

   The reference is tests/lort_ref.h: each family's forward and dense update dW written in
   double from the header's MATH section, sharing no code with the library. For every row and
   every site of it (all (layer, matrix) sites of a joint family: cp, tucker), with buffers
   sized by lort_adapter_sizes_query at the row's n and malloc'ed at exactly that size (ASan
   sees any byte beyond; cache and workspace start at odd addresses):
     1. forward == y0 + the reference forward (drop(x) dW^T; tt_adp: f(u))     norm 2e-5,
        with the cache and without
     2. linear families: lort_adapter_delta == the reference dW                norm 1e-5;
        merge with weight 1 and 0.5 == W0 + weight dW (norm 1e-5); without dropout the merged
        layer x W^T == x W0^T + forward (norm 2e-5); merge with weight -1 after +1 restores W0
        to 4 ulp of max(|W0| + |dW|); tt_adp: merge and delta refuse (LORT_ERR_NOT_MERGEABLE)
     3. backward: every entry of every parameter block and of x against central differences
        in double of L = sum(G .* reference forward). The linear families are linear in each
        single entry, so the differences are exact; tt_adp uses a step of 1e-5.   norm 1e-4
     4. backward with the cache forward filled == without                     norm 1e-6
     5. gradients accumulate: onto prefilled dx and grads, the result is prefill + gradient;
        dx NULL or grads NULL skips that one and leaves the other as before    norm 1e-6
     6. fewer rows than the buffers were sized for: forward at n - 2 (or n - 1) rows equals
        the first rows of the forward at n (same float operations per row)    norm 1e-6
     7. exact sizes: a workspace or cache one byte short is LORT_ERR_WORKSPACE / LORT_ERR_CACHE
     8. every error path tried here (short buffers, NULL x or dy, n = 0, n < 0, a NaN merge
        weight) leaves y, dx, the gradients, the cache and W byte for byte untouched
     9. joint families: the gradient of every site accumulated into one block (prefilled) ==
        the sum over sites of the central differences                         norm 1e-4
    10. from the default init (lort_adapter_init with a random W0), after one AdamW step on the
        gradient summed over every site, every parameter has a non-zero gradient: no part of
        an adapter starts frozen
    11. under LORT_DEBUG, a NaN in the parameters is LORT_ERR_NONFINITE in forward and backward
   and, per family, the init (test_init_distributions): every random block against its
   documented distribution by a two-sided Kolmogorov-Smirnov test at a fixed seed (a spread too
   small fails as well as one too large), every block documented as zero or one exactly so.
   The per-family test files keep what is specific to the family: its identities, special
   modes, error messages, the raw kernels the generic interface does not reach. */
#include "lort_ref.h"
#include "lort_cases.h"

typedef struct {
    char name[72];
    lort_adapter a;  /* kind, desc, layer, matrix (pointers set by the harness) */
    int n;           /* rows */
    int all_sites;   /* joint families: check every (layer, matrix) site */
    double fd_step;  /* central differences of the double reference */
} ccase;

enum { MAXCASES = 128 };
static ccase CASES[MAXCASES];
static int ncases;

static void add(const lort_adapter *a, int n, int all_sites, double step, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void add(const lort_adapter *a, int n, int all_sites, double step, const char *fmt, ...) {
    va_list ap;
    assert_true(ncases < MAXCASES);
    ccase *c = &CASES[ncases++];
    memset(c, 0, sizeof *c);
    va_start(ap, fmt);
    vsnprintf(c->name, sizeof c->name, fmt, ap);
    va_end(ap);
    c->a = *a;
    c->n = n;
    c->all_sites = all_sites;
    c->fd_step = step;
}

static lort_tt_desc ttd(int d, const int *modes, const int *ranks, int rank) {
    lort_tt_desc t;
    memset(&t, 0, sizeof t);
    t.n_cores = d;
    for (int k = 0; k < d; ++k) t.modes[k] = modes[k];
    if (ranks)
        for (int k = 0; k <= d; ++k) t.ranks[k] = ranks[k];
    t.rank = rank;
    return t;
}

/* ---- the table ----------------------------------------------------------------------------- */
/* lora or loraxs (the same desc fields) */
static void lowrank_row(lort_kind kind, int n, int di, int dout, int r, float alpha, int rslora,
                        float p) {
    lort_adapter a;
    memset(&a, 0, sizeof a);
    a.kind = kind;
    if (kind == LORT_KIND_LORA) {
        lort_lora_desc *d = &a.desc.lora;
        d->d_in = di; d->d_out = dout; d->r = r; d->alpha = alpha; d->rslora = rslora;
        d->dropout = p; d->dropout_seed = 0xD0D0u + (uint64_t)ncases;
    } else {
        lort_loraxs_desc *d = &a.desc.loraxs;
        d->d_in = di; d->d_out = dout; d->r = r; d->alpha = alpha; d->rslora = rslora;
        d->dropout = p; d->dropout_seed = 0xA5A5u + (uint64_t)ncases;
    }
    add(&a, n, 0, 0.5, "%s n%d %d->%d r%d a%g%s p%g", kind == LORT_KIND_LORA ? "lora" : "loraxs",
        n, di, dout, r, (double)alpha, rslora ? " rs" : "", (double)p);
}
/* joint rows: the cases of tests/lort_cases.h, every site checked */
static void joint_row(const jcase *j) {
    lort_adapter a;
    memset(&a, 0, sizeof a);
    if (j->tucker) {
        lort_tucker_desc *t = &a.desc.tucker;
        a.kind = LORT_KIND_TUCKER;
        t->d = j->d; t->heads = j->H; t->layers = j->L; t->matrices = j->M;
        t->r1 = j->r1; t->r2 = j->r2; t->rh = j->rh; t->rl = j->rl; t->rm = j->rm;
        t->alpha = j->alpha; t->rslora = j->rslora; t->dropout = j->p;
        t->dropout_seed = 77u + (uint64_t)ncases; t->head_side = j->heads_in;
        t->kv_heads = j->kv; t->kv_matrices = j->kvmask;
    } else {
        lort_cp_desc *t = &a.desc.cp;
        a.kind = LORT_KIND_CP;
        t->d = j->d; t->heads = j->H; t->layers = j->L; t->matrices = j->M; t->r = j->r1;
        t->alpha = j->alpha; t->rslora = j->rslora; t->dropout = j->p;
        t->dropout_seed = 77u + (uint64_t)ncases; t->head_side = j->heads_in;
        t->kv_heads = j->kv; t->kv_matrices = j->kvmask;
    }
    add(&a, j->n, 1, 0.5, "%s n%d d%d H%d L%d M%d kv%d/%x %s r(%d,%d,%d,%d,%d) p%g%s",
        j->tucker ? "tucker" : "cp", j->n, j->d, j->H, j->L, j->M, j->kv, j->kvmask,
        j->heads_in ? "in" : "out", j->r1, j->r2, j->rh, j->rl, j->rm, (double)j->p,
        j->rslora ? " rs" : "");
}
static void mpo_row(int n, int N, const int *ii, const int *jj, int bond, const int *bonds,
                    int residual, int path) {
    lort_adapter a;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_MPO;
    a.desc.mpo.n_cores = N;
    for (int k = 0; k < N; ++k) {
        a.desc.mpo.row_factors[k] = ii[k];
        a.desc.mpo.col_factors[k] = jj[k];
    }
    if (bonds)
        for (int k = 0; k <= N; ++k) a.desc.mpo.bonds[k] = bonds[k];
    a.desc.mpo.bond = bond;
    a.desc.mpo.residual = residual;
    a.desc.mpo.path = path;
    static const char *const res[3] = {"none", "f32", "nf4"}, *const paths[3] = {"auto", "factored", "dense"};
    add(&a, n, 0, 0.5, "mpo n%d N%d (%dx%d..) bond %d res %s %s", n, N, ii[0], jj[0], bond,
        res[residual], paths[path]);
}

static void make_cases(void) {
    ncases = 0;
    /* lora and loraxs: n, d_in, d_out, r, alpha, rslora, dropout */
    static const struct {
        int n, di, dout, r;
        float alpha;
        int rslora;
        float p;
        int loraxs;
    } L[] = {
        {3, 5, 4, 2, 3.4f, 0, 0.5f, 1},     /* the reference gradient check shapes, s = 1.7 */
        {1, 7, 13, 1, 0.0f, 0, 0.0f, 1},    /* n = 1, r = 1, alpha default */
        {1, 7, 13, 1, 2.0f, 1, 0.3f, 1},    /* n = 1, rslora, dropout */
        {5, 13, 7, 7, 16.0f, 0, 0.3f, 1},   /* r = min(d_in, d_out) */
        {5, 13, 7, 7, 0.0f, 1, 0.0f, 0},    /* rslora with default alpha: s = sqrt(r) */
        {9, 33, 17, 4, 8.0f, 1, 0.3f, 1},
        {4, 65, 33, 33, 0.0f, 0, 0.3f, 1},  /* r = min = d_out, odd sizes */
        {4, 65, 33, 33, 0.0f, 1, 0.3f, 1},
        {6, 16, 16, 16, 32.0f, 0, 0.0f, 1}, /* square, r = d */
        {17, 20, 65, 3, 0.5f, 0, 0.3f, 1},  /* d_out > d_in */
        {2, 64, 8, 8, 3.5f, 1, 0.3f, 0},
        {70, 65, 33, 8, 12.0f, 0, 0.3f, 1}, /* larger n */
        /* lora's few-row path (n <= 8) on both sides of its threshold: r a multiple of 8, a
           tail of d_out % 8, d_in not a multiple of 16, many rows of B (d_out r > 4096), r 6 */
        {1, 200, 37, 8, 8.0f, 0, 0.0f, 0},
        {3, 77, 40, 16, 16.0f, 0, 0.0f, 0},
        {8, 129, 65, 24, 4.0f, 0, 0.3f, 0},
        {9, 129, 65, 24, 4.0f, 0, 0.0f, 0},
        {2, 96, 600, 16, 0.0f, 1, 0.0f, 0},
        {1, 48, 300, 32, 2.0f, 0, 0.0f, 0},
        {4, 50, 30, 6, 3.0f, 0, 0.0f, 0},
    };
    for (size_t i = 0; i < sizeof L / sizeof L[0]; ++i)
        for (int x = 0; x <= L[i].loraxs; ++x)
            lowrank_row(x ? LORT_KIND_LORAXS : LORT_KIND_LORA, L[i].n, L[i].di, L[i].dout, L[i].r,
                        L[i].alpha, L[i].rslora, L[i].p);
    /* tt_rep: the cases of test_loretta.c */
    {
        static const struct {
            int di, dout, r;
            float alpha, p;
            int da, ma[5], ra[6], rka, db, mb[4], rb[5], rkb, n, set_shape;
        } R[] = {
            {12, 10, 4, 8.0f, 0.0f, 3, {3, 4, 4}, {0}, 2, 3, {4, 5, 2}, {0}, 3, 3, 1},
            {12, 6, 2, 0.0f, 0.3f, 5, {2, 2, 3, 1, 2}, {1, 2, 1, 3, 2, 1}, 0, 2, {3, 4}, {0}, 2, 4, 0},
            {5, 7, 1, 3.0f, 0.2f, 1, {5}, {0}, 0, 1, {7}, {0}, 0, 2, 1},
            {8, 8, 2, 4.0f, 0.1f, 4, {2, 2, 2, 2}, {0}, 1, 4, {2, 2, 2, 2}, {0}, 1, 3, 0},
            {8, 6, 4, 2.0f, 0.2f, 3, {2, 4, 4}, {0}, 2, 2, {4, 6}, {0}, 3, 5, 0},
        };
        for (size_t i = 0; i < sizeof R / sizeof R[0]; ++i) {
            lort_adapter a;
            memset(&a, 0, sizeof a);
            a.kind = LORT_KIND_TT_REP;
            lort_tt_rep_desc *t = &a.desc.tt_rep;
            t->d_in = R[i].di; t->d_out = R[i].dout; t->r = R[i].r; t->alpha = R[i].alpha;
            t->dropout = R[i].p; t->dropout_seed = 5u + i;
            t->A = ttd(R[i].da, R[i].ma, R[i].ra[0] ? R[i].ra : NULL, R[i].rka);
            t->B = ttd(R[i].db, R[i].mb, R[i].rb[0] ? R[i].rb : NULL, R[i].rkb);
            if (R[i].set_shape) { /* rows/cols 0 = the default half the time */
                t->A.rows = R[i].di; t->A.cols = R[i].r; t->B.rows = R[i].r; t->B.cols = R[i].dout;
            }
            add(&a, R[i].n, 0, 0.5, "tt_rep %d->%d r%d, %d + %d cores, p%g", R[i].di, R[i].dout,
                R[i].r, R[i].da, R[i].db, (double)R[i].p);
        }
    }
    /* tt_adp: every activation, both placements, dropout, own up modes, non-uniform ranks */
    {
        static const struct {
            int h, b, dd, md[4], rd[5], rkd, du, mu[2], rku, act, place;
            float scale, p;
            int n;
        } T[] = {
            {12, 4, 3, {4, 3, 4}, {0}, 2, 0, {0}, 0, LORT_ACT_RELU, LORT_TT_ADP_OUTPUT, 0.0f, 0.0f, 3},
            {12, 4, 3, {2, 6, 4}, {0}, 3, 0, {0}, 0, LORT_ACT_TANH, LORT_TT_ADP_INPUT, 0.7f, 0.25f, 4},
            {10, 3, 3, {5, 2, 3}, {0}, 2, 2, {3, 10}, 4, LORT_ACT_GELU, LORT_TT_ADP_OUTPUT, 1.5f, 0.2f, 2},
            {8, 2, 4, {2, 2, 2, 2}, {0}, 1, 0, {0}, 0, LORT_ACT_GELU_TANH, LORT_TT_ADP_INPUT, 0.0f, 0.0f, 3},
            {6, 6, 1, {36}, {0}, 0, 0, {0}, 0, LORT_ACT_RELU, LORT_TT_ADP_INPUT, 2.0f, 0.1f, 2},
            {8, 4, 3, {4, 4, 2}, {1, 3, 2, 1}, 0, 0, {0}, 0, LORT_ACT_TANH, LORT_TT_ADP_OUTPUT, 1.0f, 0.0f, 5},
            {8, 4, 2, {4, 8}, {0}, 2, 0, {0}, 0, LORT_ACT_GELU, LORT_TT_ADP_INPUT, 0.7f, 0.0f, 5},
        };
        static const char *const acts[4] = {"relu", "tanh", "gelu", "gelu_tanh"};
        for (size_t i = 0; i < sizeof T / sizeof T[0]; ++i) {
            lort_adapter a;
            memset(&a, 0, sizeof a);
            a.kind = LORT_KIND_TT_ADP;
            lort_tt_adp_desc *t = &a.desc.tt_adp;
            t->hidden = T[i].h; t->bottleneck = T[i].b; t->scale = T[i].scale;
            t->act = T[i].act; t->placement = T[i].place; t->dropout = T[i].p;
            t->dropout_seed = 900u + i;
            t->down = ttd(T[i].dd, T[i].md, T[i].rd[0] ? T[i].rd : NULL, T[i].rkd);
            if (T[i].du) t->up = ttd(T[i].du, T[i].mu, NULL, T[i].rku);
            add(&a, T[i].n, 0, 1e-5, "tt_adp h%d b%d %s %s s%g p%g", T[i].h, T[i].b,
                acts[T[i].act], T[i].place == LORT_TT_ADP_INPUT ? "input" : "output",
                (double)T[i].scale, (double)T[i].p);
        }
    }
    /* cp and tucker, every site: both head sides, GQA, both evaluation paths */
    {
        int stacked[2][2] = {{0, 0}, {0, 0}};
        for (size_t i = 0; i < sizeof CP_CASES / sizeof CP_CASES[0]; ++i) {
            joint_row(&CP_CASES[i]);
            ++stacked[0][case_stacked(&CP_CASES[i])];
        }
        for (size_t i = 0; i < sizeof TK_CASES / sizeof TK_CASES[0]; ++i) {
            joint_row(&TK_CASES[i]);
            ++stacked[1][case_stacked(&TK_CASES[i])];
        }
        assert_true(stacked[0][0] >= 5 && stacked[0][1] >= 3 && stacked[1][0] >= 5 &&
                    stacked[1][1] >= 3);
    }
    /* mpo: the cases of test_mpo.c on both paths, residual none / f32 / nf4 */
    {
        static const struct {
            int N, ii[5], jj[5], bond, bonds[6], n, res;
        } M[] = {
            {3, {2, 3, 2}, {2, 2, 3}, 0, {1, 3, 2, 1}, 3, 1},  /* the reference DoTA case */
            {1, {5}, {3}, 0, {0}, 4, 1},                       /* one core: a dense matrix */
            {2, {3, 2}, {2, 5}, 1, {0}, 2, 0},                 /* bond 1 */
            {4, {1, 4, 1, 3}, {2, 1, 3, 1}, 2, {0}, 5, 1},     /* factors of size 1 */
            {4, {2, 2, 2, 2}, {3, 1, 2, 2}, 3, {0}, 1, 0},     /* n = 1 */
            {2, {2, 3}, {2, 2}, 100, {0}, 3, 1},               /* bond above the exact rank */
            {3, {3, 1, 2}, {1, 2, 3}, 0, {0, 1, 4, 0}, 6, 0},  /* explicit bonds 1 and 4 */
            {5, {2, 1, 2, 1, 2}, {1, 2, 1, 2, 2}, 2, {0}, 2, 1},
            {2, {2, 3}, {2, 4}, 3, {0}, 5, 0},
            {2, {4, 4}, {4, 4}, 3, {0}, 3, 2},                 /* QDoTA: NF4 residual */
            {3, {2, 4, 2}, {4, 2, 3}, 2, {0}, 2, 2},
        };
        for (size_t i = 0; i < sizeof M / sizeof M[0]; ++i)
            for (int path = LORT_MPO_AUTO; path <= LORT_MPO_DENSE; ++path)
                mpo_row(M[i].n, M[i].N, M[i].ii, M[i].jj, M[i].bond,
                        M[i].bonds[0] || M[i].bonds[1] ? M[i].bonds : NULL, M[i].res, path);
    }
}

/* ---- one row: the parameters shared by its sites ---------------------------------------- */
typedef struct {
    const ccase *c;
    lort_adapter a;            /* pointers set; layer, matrix = the current site */
    lort_adapter_sizes sz;     /* of the current site */
    ref_shape S;               /* of the current site */
    int n, di, dout, out_place;
    size_t np;
    float *params, *grads, *acc; /* acc: every site's gradient accumulated (check 9) */
    void *frozen;
    double *Pd, *fd_sum;       /* double params; the sum over sites of the differences */
} row;

static void *xalloc(size_t bytes) { /* exactly `bytes` (1 for 0), so ASan sees an overrun */
    void *p = malloc(bytes ? bytes : 1);
    assert_non_null(p);
    memset(p, 0xa5, bytes ? bytes : 1);
    return p;
}

static void row_make(row *R, const ccase *c, uint64_t seed) {
    memset(R, 0, sizeof *R);
    R->c = c;
    R->a = c->a;
    R->n = c->n;
    R->out_place = c->a.kind == LORT_KIND_TT_ADP && c->a.desc.tt_adp.placement == LORT_TT_ADP_OUTPUT;
    lort_adapter_sizes sz;
    assert_int_equal(lort_adapter_sizes_query(&R->a, R->n, &sz), LORT_OK);
    R->np = sz.params;
    tr_seed(seed);
    R->params = tr_rand(R->np);
    R->grads = tr_alloc(R->np);
    R->acc = tr_alloc(R->np);
    for (size_t i = 0; i < R->np; ++i) R->acc[i] = 0.5f;
    R->fd_sum = td_alloc(R->np);
    R->frozen = sz.frozen_bytes ? xalloc(sz.frozen_bytes) : NULL;
    R->a.params = R->params;
    R->a.frozen = R->frozen;
    R->a.grads = R->grads;
    if (c->a.kind == LORT_KIND_LORAXS) { /* frozen factors from the SVD of a random W0 */
        float *W0 = tr_rand(zu(sz.d_out) * zu(sz.d_in));
        void *w = xalloc(sz.init_work);
        lort_rng rng;
        lort_rng_seed(&rng, seed);
        assert_int_equal(lort_adapter_init(&R->a, W0, &rng, w, sz.init_work), LORT_OK);
        tr_fill(R->params, R->np); /* a non-zero R */
        free(W0); free(w);
    } else if (c->a.kind == LORT_KIND_MPO && c->a.desc.mpo.residual == LORT_MPO_RESIDUAL_NF4) {
        float *Wr = tr_rand(zu(sz.d_out) * zu(sz.d_in)); /* a valid blob; decoded independently */
        assert_int_equal(lort_nf4_quantize(R->frozen, Wr, sz.d_in, sz.d_out), LORT_OK);
        free(Wr);
    } else if (R->frozen) {
        tr_fill((float *)R->frozen, sz.frozen_bytes / sizeof(float));
    }
    R->Pd = to_double(R->params, R->np);
}
static void row_free(row *R) {
    free(R->params); free(R->grads); free(R->acc); free(R->frozen); free(R->Pd); free(R->fd_sum);
}

/* ---- one site's buffers ------------------------------------------------------------------ */
typedef struct {
    float *W0, *x, *y0, *G;
    double *xd, *Gd;
    void *cache, *work;           /* at odd addresses: size queries include the slack */
    unsigned char *cache_raw, *work_raw;
} sbuf;

static void site_make(row *R, sbuf *B, int layer, int matrix, uint64_t seed) {
    R->a.layer = layer;
    R->a.matrix = matrix;
    assert_int_equal(lort_adapter_sizes_query(&R->a, R->n, &R->sz), LORT_OK);
    assert_int_equal(R->sz.params, R->np);
    ref_shape_of(&R->a, &R->S);
    R->di = R->sz.d_in;
    R->dout = R->sz.d_out;
    /* the layout and shape the header documents */
    assert_int_equal(R->S.params, R->np);
    assert_int_equal(R->S.d_in, R->di);
    assert_int_equal(R->S.d_out, R->dout);
    assert_int_equal(R->S.replaces_base, R->sz.replaces_base);
    tr_seed(seed);
    B->W0 = tr_rand(zu(R->dout) * zu(R->di));
    B->x = tr_rand(zu(R->n) * zu(R->di));
    B->y0 = R->out_place ? B->x : tr_rand(zu(R->n) * zu(R->dout)); /* f(y0) acts on y0 */
    B->G = tr_rand(zu(R->n) * zu(R->dout));
    B->xd = to_double(B->x, zu(R->n) * zu(R->di));
    B->Gd = to_double(B->G, zu(R->n) * zu(R->dout));
    /* exactly the queried bytes, ending where the allocation ends, starting 1..7 bytes past
       an aligned address */
    size_t off = 1u + (size_t)(seed % 7u);
    B->cache_raw = (unsigned char *)xalloc(R->sz.cache + off);
    B->work_raw = (unsigned char *)xalloc(R->sz.work + off);
    B->cache = B->cache_raw + off;
    B->work = B->work_raw + off;
}
static void site_free(const row *R, sbuf *B) {
    if (B->y0 != B->x) free(B->y0);
    free(B->W0); free(B->x); free(B->G); free(B->xd); free(B->Gd); free(B->cache_raw); free(B->work_raw);
    (void)R;
}

/* y = y0 + forward(x) at n rows; the output placement of tt_adp takes its input from y. */
static lort_status fwd_st(const row *R, const sbuf *B, float *y, const float *x, int n,
                          void *cache, size_t cs, size_t ws) {
    memcpy(y, R->out_place ? x : B->y0, zu(n > 0 ? n : 0) * zu(R->dout) * sizeof(float));
    return lort_adapter_forward(&R->a, y, R->out_place ? (x ? y : NULL) : x, n, cache, cs,
                                B->work, ws);
}
static void fwd(const row *R, const sbuf *B, float *y, int n, void *cache, size_t cs) {
    assert_int_equal(fwd_st(R, B, y, B->x, n, cache, cs, R->sz.work), LORT_OK);
}
static lort_status bwd(const row *R, const sbuf *B, float *dx, float *grads, const void *cache,
                       size_t cs) {
    lort_adapter a = R->a;
    a.grads = grads;
    return lort_adapter_backward(&a, dx, B->G, B->x, R->n, cache, cs, B->work, R->sz.work);
}

/* The parameter entries differentiated: all of them, unless a row is so large that the
   differences (one dense dW per entry) would cost more than ~1e8 multiply-adds; then one entry
   in every `stride`, at an offset that moves from window to window (every block is sampled).
   Joint rows are always complete (their sum over sites is compared as a whole). */
static size_t fd_stride(const row *R) {
    size_t nw = zu(R->dout) * zu(R->di), budget = (size_t)1e8 / (16u * nw) + 1u;
    if (R->c->all_sites || !R->S.linear || R->np <= budget || budget >= R->np) return 1;
    return R->np / (budget > 100u ? budget : 100u) + 1u;
}
static int fd_checked(size_t e, size_t stride) { return e % stride == (e / stride) % stride; }
/* got and want restricted to the differentiated entries (want NaN: skipped) */
static int near_fd_sampled(const char *label, const float *got, const double *want, size_t count,
                           double tol) {
    float *g = tr_alloc(count);
    double *w = td_alloc(count);
    size_t m = 0;
    for (size_t i = 0; i < count; ++i)
        if (!isnan(want[i])) { g[m] = got[i]; w[m] = want[i]; ++m; }
    int ok = m > 0 && near_fd(label, g, w, m, tol);
    free(g); free(w);
    return ok;
}

/* Central differences of L = sum(G .* reference forward) for every parameter and every entry
   of x. Linear families: L = <G^T drop(x), dW(P)>, so a parameter step costs one dW; every
   forward is row-separable, so an x step costs one row. */
static void ref_grads(const row *R, const sbuf *B, double *gP, double *gx) {
    const ref_shape *S = &R->S;
    const int n = R->n, di = R->di, dout = R->dout;
    const double h = R->c->fd_step;
    double *P = td_alloc(R->np), *dW = td_alloc(zu(dout) * zu(di)), *GX = td_alloc(zu(dout) * zu(di));
    double *yr = td_alloc(zu(dout)), *xr = td_alloc(zu(di));
    memcpy(P, R->Pd, R->np * sizeof(double));
    for (int o = 0; o < dout; ++o)
        for (int k = 0; k < di; ++k) {
            double acc = 0.0;
            for (int i = 0; i < n; ++i) acc += B->Gd[IX(i, dout, o)] * B->xd[IX(i, di, k)] * ref_mask(S, i, k);
            GX[IX(o, di, k)] = acc;
        }
    const size_t stride = fd_stride(R);
    for (size_t e = 0; e < R->np; ++e) {
        if (!fd_checked(e, stride)) {
            gP[e] = NAN; /* not differentiated (see fd_stride) */
            continue;
        }
        double keep = P[e], L[2];
        for (int t = 0; t < 2; ++t) {
            P[e] = keep + (t ? -h : h);
            L[t] = 0.0;
            if (S->linear) {
                ref_adapter_delta(&R->a, S, P, dW);
                for (size_t k = 0; k < zu(dout) * zu(di); ++k) L[t] += GX[k] * dW[k];
            } else {
                double *y = td_alloc(zu(n) * zu(dout));
                ref_adapter_forward(&R->a, S, P, B->xd, 0, n, y);
                for (size_t k = 0; k < zu(n) * zu(dout); ++k) L[t] += B->Gd[k] * y[k];
                free(y);
            }
        }
        P[e] = keep;
        gP[e] = (L[0] - L[1]) / (2.0 * h);
    }
    if (S->linear) ref_adapter_delta(&R->a, S, P, dW);
    for (int i = 0; i < n; ++i)
        for (int k = 0; k < di; ++k) {
            double L[2];
            memcpy(xr, B->xd + IX(i, di, 0), zu(di) * sizeof(double));
            for (int t = 0; t < 2; ++t) {
                xr[k] = B->xd[IX(i, di, k)] + (t ? -h : h);
                if (S->linear) ref_apply(S, dW, xr, i, 1, yr);
                else ref_adapter_forward(&R->a, S, P, xr, i, 1, yr);
                L[t] = 0.0;
                for (int o = 0; o < dout; ++o) L[t] += B->Gd[IX(i, dout, o)] * yr[o];
            }
            gx[IX(i, di, k)] = (L[0] - L[1]) / (2.0 * h);
        }
    free(P); free(dW); free(GX); free(yr); free(xr);
}

/* ---- the checks of one site --------------------------------------------------------------- */
static void check_site(row *R, int layer, int matrix, uint64_t seed) {
    sbuf B;
    site_make(R, &B, layer, matrix, seed);
    const int n = R->n;
    const size_t ny = zu(n) * zu(R->dout), nx = zu(n) * zu(R->di), nw = zu(R->dout) * zu(R->di);
    const size_t np = R->np;
    float *y = tr_alloc(ny), *y2 = tr_alloc(ny), *dx = tr_alloc(nx), *dx2 = tr_alloc(nx);
    float *g2 = tr_alloc(np), *dW = tr_alloc(nw), *W = tr_alloc(nw);
    double *want = td_alloc(ny + nx + nw + np), *D = td_alloc(nw), *gP = td_alloc(np), *gx = td_alloc(nx);

    /* 1: forward vs the reference, with and without the cache */
    ref_adapter_forward(&R->a, &R->S, R->Pd, B.xd, 0, n, want);
    for (size_t i = 0; i < ny; ++i) want[i] += (double)(R->out_place ? B.x[i] : B.y0[i]);
    fwd(R, &B, y, n, B.cache, R->sz.cache);
    assert_true(near_fd("forward (cache) vs reference", y, want, ny, 2e-5));
    fwd(R, &B, y2, n, NULL, 0);
    assert_true(near_fd("forward (no cache) vs reference", y2, want, ny, 2e-5));

    /* 2: delta, merge, unmerge */
    if (R->S.linear) {
        ref_adapter_delta(&R->a, &R->S, R->Pd, D);
        memset(dW, 0xff, nw * sizeof(float)); /* NaN garbage: delta overwrites */
        assert_int_equal(lort_adapter_delta(&R->a, dW, B.work, R->sz.work), LORT_OK);
        assert_true(near_fd("delta vs reference dW", dW, D, nw, 1e-5));
        const float weights[2] = {1.0f, 0.5f};
        for (int t = 1; t >= 0; --t) {
            memcpy(W, B.W0, nw * sizeof(float));
            assert_int_equal(lort_adapter_merge(&R->a, W, weights[t], B.work, R->sz.work), LORT_OK);
            for (size_t i = 0; i < nw; ++i) want[i] = (double)B.W0[i] + (double)weights[t] * D[i];
            assert_true(near_fd("merge vs W0 + weight dW", W, want, nw, 1e-5));
        }
        if (!(R->S.p > 0.0f)) { /* merged layer == base + forward (dropout: eval mode only) */
            double *ym = td_alloc(ny), *Wd = to_double(W, nw), *W0d = to_double(B.W0, nw);
            double *yb = td_alloc(ny);
            ref_linear(n, R->di, R->dout, B.x, Wd, ym);
            ref_linear(n, R->di, R->dout, B.x, W0d, yb);
            for (size_t i = 0; i < ny; ++i) y2[i] = (float)(yb[i] + (double)y[i] - (double)B.y0[i]);
            assert_true(near_fd("merged layer vs base + forward", y2, ym, ny, 2e-5));
            free(ym); free(Wd); free(W0d); free(yb);
        }
        assert_int_equal(lort_adapter_merge(&R->a, W, -1.0f, B.work, R->sz.work), LORT_OK);
        double big = 0.0;
        for (size_t i = 0; i < nw; ++i) big = fmax(big, fabs((double)B.W0[i]) + fabs(D[i]));
        assert_true(cmp_ff("unmerge restores W0", W, B.W0, nw, 4.0 * 1.1920929e-7 * big, 0.0));
    } else {
        memcpy(W, B.W0, nw * sizeof(float));
        assert_int_equal(lort_adapter_merge(&R->a, W, 1.0f, B.work, R->sz.work),
                         LORT_ERR_NOT_MERGEABLE);
        assert_int_equal(lort_adapter_delta(&R->a, W, B.work, R->sz.work), LORT_ERR_NOT_MERGEABLE);
        assert_memory_equal(W, B.W0, nw * sizeof(float));
    }

    /* 3: backward vs central differences of the reference */
    memset(R->grads, 0, np * sizeof(float));
    memset(dx, 0, nx * sizeof(float));
    fwd(R, &B, y, n, B.cache, R->sz.cache);
    assert_int_equal(bwd(R, &B, dx, R->grads, B.cache, R->sz.cache), LORT_OK);
    ref_grads(R, &B, gP, gx);
    assert_true(near_fd_sampled("dparams vs central differences", R->grads, gP, np, 1e-4));
    assert_true(near_fd("dx vs central differences", dx, gx, nx, 1e-4));
    for (size_t i = 0; i < np; ++i) R->fd_sum[i] += gP[i];
    /* 9 (per site): every site into one block */
    assert_int_equal(bwd(R, &B, NULL, R->acc, B.cache, R->sz.cache), LORT_OK);

    /* 4: without the cache == with */
    memset(g2, 0, np * sizeof(float));
    memset(dx2, 0, nx * sizeof(float));
    assert_int_equal(bwd(R, &B, dx2, g2, NULL, 0), LORT_OK);
    assert_true(near_ff("dparams without cache vs with", g2, R->grads, np, 1e-6));
    assert_true(near_ff("dx without cache vs with", dx2, dx, nx, 1e-6));

    /* 5: accumulation, and NULL gradients skip */
    for (size_t i = 0; i < np; ++i) g2[i] = 0.25f + (float)(i % 7);
    for (size_t i = 0; i < nx; ++i) dx2[i] = -0.5f + (float)(i % 5);
    assert_int_equal(bwd(R, &B, dx2, NULL, B.cache, R->sz.cache), LORT_OK);
    assert_int_equal(bwd(R, &B, NULL, g2, B.cache, R->sz.cache), LORT_OK);
    for (size_t i = 0; i < np; ++i) want[i] = (double)(0.25f + (float)(i % 7)) + (double)R->grads[i];
    assert_true(near_fd("dparams accumulate", g2, want, np, 1e-6));
    for (size_t i = 0; i < nx; ++i) want[i] = (double)(-0.5f + (float)(i % 5)) + (double)dx[i];
    assert_true(near_fd("dx accumulates", dx2, want, nx, 1e-6));

    /* 6: fewer rows than sized for */
    if (n > 1) {
        int nf = n > 2 ? n - 2 : 1;
        memset(y2, 0, ny * sizeof(float));
        fwd(R, &B, y2, nf, B.cache, R->sz.cache);
        for (size_t i = 0; i < zu(nf) * zu(R->dout); ++i) want[i] = (double)y[i];
        assert_true(near_fd("fewer rows than sized for", y2, want, zu(nf) * zu(R->dout), 1e-6));
        memset(dx2, 0, nx * sizeof(float));
        lort_adapter a = R->a;
        a.grads = NULL;
        assert_int_equal(lort_adapter_backward(&a, dx2, B.G, B.x, nf, B.cache, R->sz.cache,
                                               B.work, R->sz.work), LORT_OK);
    }

    /* 7, 8: one byte short, NULL inputs, n <= 0, NaN weight: the status, and nothing written */
    {
        unsigned char *snap_c = (unsigned char *)xalloc(R->sz.cache);
        float *snap_y = tr_alloc(ny), *snap_dx = tr_alloc(nx), *snap_g = tr_alloc(np);
        fwd(R, &B, y, n, B.cache, R->sz.cache); /* a valid cache to keep */
        for (size_t i = 0; i < ny; ++i) y2[i] = (float)i;
        memcpy(snap_y, y2, ny * sizeof(float));
        memcpy(snap_dx, dx, nx * sizeof(float));
        memcpy(snap_g, R->grads, np * sizeof(float));
        memcpy(snap_c, B.cache, R->sz.cache);
        memcpy(W, B.W0, nw * sizeof(float));
        const lort_adapter *a = &R->a;
        void *wk = B.work;
        const size_t ws = R->sz.work, cs = R->sz.cache;
        struct { const char *what; lort_status got, want; } e[16];
        int ne = 0;
#define TRY(label, call, code) do { e[ne].what = label; e[ne].got = (call); e[ne].want = code; ++ne; } while (0)
        /* forward errors on a copy of y2: the output placement reads y2 as its input */
        if (ws) {
            TRY("forward, work - 1", lort_adapter_forward(a, y2, R->out_place ? y2 : B.x, n, NULL, 0, wk, ws - 1), LORT_ERR_WORKSPACE);
            TRY("backward, work - 1", lort_adapter_backward(a, dx, B.G, B.x, n, NULL, 0, wk, ws - 1), LORT_ERR_WORKSPACE);
        }
        if (cs) {
            TRY("forward, cache - 1", lort_adapter_forward(a, y2, R->out_place ? y2 : B.x, n, B.cache, cs - 1, wk, ws), LORT_ERR_CACHE);
            TRY("backward, cache - 1", lort_adapter_backward(a, dx, B.G, B.x, n, B.cache, cs - 1, wk, ws), LORT_ERR_CACHE);
        }
        if (!R->out_place) /* the output placement takes x = NULL: its input is y */
            TRY("forward, x NULL", lort_adapter_forward(a, y2, NULL, n, NULL, 0, wk, ws), LORT_ERR_NULL);
        else
            TRY("forward, x not y", lort_adapter_forward(a, y2, B.x, n, NULL, 0, wk, ws), LORT_ERR_INVALID_ARG);
        TRY("forward, y NULL", lort_adapter_forward(a, NULL, B.x, n, NULL, 0, wk, ws), LORT_ERR_NULL);
        TRY("backward, dy NULL", lort_adapter_backward(a, dx, NULL, B.x, n, NULL, 0, wk, ws), LORT_ERR_NULL);
        TRY("backward, x NULL, no cache", lort_adapter_backward(a, dx, B.G, NULL, n, NULL, 0, wk, ws), LORT_ERR_NULL);
        TRY("forward, n = 0", lort_adapter_forward(a, y2, R->out_place ? y2 : B.x, 0, NULL, 0, wk, ws), LORT_ERR_INVALID_ARG);
        TRY("backward, n = 0", lort_adapter_backward(a, dx, B.G, B.x, 0, NULL, 0, wk, ws), LORT_ERR_INVALID_ARG);
        TRY("forward, n = -1", lort_adapter_forward(a, y2, R->out_place ? y2 : B.x, -1, NULL, 0, wk, ws), LORT_ERR_INVALID_ARG);
        TRY("backward, n = -1", lort_adapter_backward(a, dx, B.G, B.x, -1, NULL, 0, wk, ws), LORT_ERR_INVALID_ARG);
        {
            lort_adapter_sizes s2 = R->sz;
            TRY("sizes, n = 0", lort_adapter_sizes_query(a, 0, &s2), LORT_ERR_INVALID_ARG);
            assert_memory_equal(&s2, &R->sz, sizeof s2);
        }
        if (R->S.linear) {
            TRY("merge, weight NaN", lort_adapter_merge(a, W, (float)NAN, wk, ws), LORT_ERR_INVALID_ARG);
        }
#undef TRY
        for (int i = 0; i < ne; ++i) {
            if (e[i].got != e[i].want)
                printf("    %s: %s, want %s\n", e[i].what, lort_status_string(e[i].got),
                       lort_status_string(e[i].want));
            assert_int_equal(e[i].got, e[i].want);
        }
        assert_memory_equal(y2, snap_y, ny * sizeof(float));
        assert_memory_equal(dx, snap_dx, nx * sizeof(float));
        assert_memory_equal(R->grads, snap_g, np * sizeof(float));
        if (cs) assert_memory_equal(B.cache, snap_c, cs);
        assert_memory_equal(W, B.W0, nw * sizeof(float));
        free(snap_c); free(snap_y); free(snap_dx); free(snap_g);
    }

#ifdef LORT_DEBUG
    /* 11: NaN in the parameters */
    {
        float keep = R->params[np / 2];
        R->params[np / 2] = (float)NAN;
        assert_int_equal(fwd_st(R, &B, y2, B.x, n, NULL, 0, R->sz.work), LORT_ERR_NONFINITE);
        assert_int_equal(bwd(R, &B, dx, R->grads, NULL, 0), LORT_ERR_NONFINITE);
        R->params[np / 2] = keep;
    }
#endif
    free(y); free(y2); free(dx); free(dx2); free(g2); free(dW); free(W); free(want); free(D);
    free(gP); free(gx);
    site_free(R, &B);
}

/* the sites a row checks: every (layer, matrix) of a joint family, else the row's one */
static void sites_of(const ccase *c, int *nl, int *nm) {
    *nl = *nm = 1;
    if (c->all_sites) {
        ref_joint J;
        ref_joint_of(&c->a, &J);
        *nl = J.L;
        *nm = J.M;
    }
}

static void check_row(const ccase *c, uint64_t seed) {
    row R;
    row_make(&R, c, seed);
    int nl, nm;
    sites_of(c, &nl, &nm);
    for (int l = 0; l < nl; ++l)
        for (int m = 0; m < nm; ++m)
            check_site(&R, c->all_sites ? l : c->a.layer, c->all_sites ? m : c->a.matrix,
                       seed * 1000u + (uint64_t)(l * nm + m));
    /* 9: the block accumulated over every site == the sum of the differences */
    for (size_t i = 0; i < R.np; ++i) R.acc[i] -= 0.5f;
    assert_true(near_fd_sampled("gradient summed over sites", R.acc, R.fd_sum, R.np, 1e-4));
    printf("  %-58s %2d site%s, %5zu params\n", c->name, nl * nm, nl * nm > 1 ? "s" : "", R.np);
    row_free(&R);
}

/* 10: no parameter starts frozen. Default init, the gradient summed over every site, one AdamW
   step, then the summed gradient again: every entry non-zero. */
static void grad_sum(row *R, int nl, int nm, void *work, size_t ws, float *gsum) {
    enum { MAXD = 1024 }; /* the sites of a joint family differ in d_out (GQA) */
    float *dx = tr_alloc(zu(R->n) * MAXD), *x = tr_alloc(zu(R->n) * MAXD), *dy = tr_alloc(zu(R->n) * MAXD);
    tr_seed(5u);
    tr_fill(x, zu(R->n) * MAXD);
    tr_fill(dy, zu(R->n) * MAXD);
    memset(gsum, 0, R->np * sizeof(float));
    for (int l = 0; l < nl; ++l)
        for (int m = 0; m < nm; ++m) {
            lort_adapter a = R->a;
            if (R->c->all_sites) { a.layer = l; a.matrix = m; }
            a.grads = gsum; /* gradients accumulate */
            lort_adapter_sizes sz;
            assert_int_equal(lort_adapter_sizes_query(&a, R->n, &sz), LORT_OK);
            assert_true(sz.d_in <= MAXD && sz.d_out <= MAXD && sz.work <= ws);
            assert_int_equal(lort_adapter_backward(&a, dx, dy, x, R->n, NULL, 0, work, ws), LORT_OK);
        }
    free(dx); free(x); free(dy);
}
static void check_no_frozen_start(const ccase *c0, uint64_t seed) {
    /* 32 rows and no dropout (a ReLU unit dead on every row, or a column dropped in every row,
       has no gradient for a reason other than the init) */
    ccase cc = *c0, *c = &cc;
    cc.n = 32;
    switch (cc.a.kind) {
    case LORT_KIND_LORA: cc.a.desc.lora.dropout = 0.0f; break;
    case LORT_KIND_LORAXS: cc.a.desc.loraxs.dropout = 0.0f; break;
    case LORT_KIND_TT_REP: cc.a.desc.tt_rep.dropout = 0.0f; break;
    case LORT_KIND_TT_ADP: cc.a.desc.tt_adp.dropout = 0.0f; break;
    case LORT_KIND_CP: cc.a.desc.cp.dropout = 0.0f; break;
    case LORT_KIND_TUCKER: cc.a.desc.tucker.dropout = 0.0f; break;
    default: break;
    }
    row R;
    row_make(&R, c, seed);
    int nl, nm;
    sites_of(c, &nl, &nm);
    size_t ws = 0;
    for (int l = 0; l < nl; ++l) /* one workspace for every site */
        for (int m = 0; m < nm; ++m) {
            lort_adapter a = R.a;
            lort_adapter_sizes sz;
            if (c->all_sites) { a.layer = l; a.matrix = m; }
            assert_int_equal(lort_adapter_sizes_query(&a, R.n, &sz), LORT_OK);
            ws = sz.work > ws ? sz.work : ws;
            ws = sz.init_work > ws ? sz.init_work : ws;
            R.sz = sz;
        }
    void *work = xalloc(ws);
    float *W0 = tr_rand(zu(R.sz.d_out) * zu(R.sz.d_in));
    lort_rng rng;
    lort_rng_seed(&rng, 77u);
    assert_int_equal(lort_adapter_init(&R.a, W0, &rng, work, ws), LORT_OK);
    float *g = tr_alloc(R.np), *m = tr_alloc(R.np), *v = tr_alloc(R.np);
    grad_sum(&R, nl, nm, work, ws, g);
    lort_adamw_desc o = lort_adamw_default(1e-2f);
    assert_int_equal(lort_adamw_step(&o, R.params, m, v, g, R.np, 1), LORT_OK);
    grad_sum(&R, nl, nm, work, ws, g);
    size_t zeros = 0, first = 0;
    for (size_t i = 0; i < R.np; ++i)
        if (!(fabs((double)g[i]) > 0.0)) {
            if (!zeros) first = i;
            ++zeros;
        }
    if (zeros)
        printf("  %-58s %zu of %zu parameters with a zero gradient after one step (first %zu)\n",
               c->name, zeros, R.np, first);
    assert_int_equal(zeros, 0);
    free(g); free(m); free(v); free(W0); free(work);
    row_free(&R);
}

/* ---- init distributions: one table, every family ------------------------------------------ */
/* What the header documents for block b of a's default init (MATH init lines, the init kind
   comments): exactly zero, exactly one, exactly the identity, uniform U(-p, p), normal
   N(0, p^2), or the wrapped-diagonal ones of tucker's default core. */
enum { D_ZERO, D_ONE, D_EYE, D_UNIFORM, D_NORMAL, D_DIAG_ONES };
static int init_expect(const lort_adapter *a, const lort_block *b, double *p) {
    const char *nm = b->name;
    *p = 0.0;
    switch (a->kind) {
    case LORT_KIND_LORA: {
        const lort_lora_desc *d = &a->desc.lora;
        if (!strcmp(nm, "B")) return D_ZERO;
        if (d->init == LORT_LORA_INIT_GAUSSIAN) { *p = 1.0 / (double)d->r; return D_NORMAL; }
        *p = 1.0 / sqrt((double)d->d_in); /* kaiming_uniform(a = sqrt 5) on fan_in d_in */
        return D_UNIFORM;
    }
    case LORT_KIND_LORAXS: /* R ~ N(0, init_std^2), init_std 0 = 1e-5 */
        *p = is_zero_f(a->desc.loraxs.init_std) ? 1e-5 : (double)a->desc.loraxs.init_std;
        return D_NORMAL;
    case LORT_KIND_TT_REP:
    case LORT_KIND_TT_ADP: {
        /* a train core k (t_{k-1}, n_k, t_k) ~ N(0, sigma^(2/d) / t_k), sigma^2 = 1 / (rows +
           cols) of its train; tt_adp's biases U(+-1/sqrt(b)), U(+-1/sqrt(hidden)) */
        int rows, cols, dcores;
        if (a->kind == LORT_KIND_TT_ADP) {
            const lort_tt_adp_desc *d = &a->desc.tt_adp;
            if (!strcmp(nm, "beta_d")) { *p = 1.0 / sqrt((double)d->bottleneck); return D_UNIFORM; }
            if (!strcmp(nm, "beta_u")) { *p = 1.0 / sqrt((double)d->hidden); return D_UNIFORM; }
            rows = d->hidden; cols = d->bottleneck;
            dcores = !strncmp(nm, "up.", 3) && d->up.n_cores ? d->up.n_cores : d->down.n_cores;
        } else {
            const lort_tt_rep_desc *d = &a->desc.tt_rep;
            int isA = nm[0] == 'A';
            rows = isA ? d->d_in : d->r; cols = isA ? d->r : d->d_out;
            dcores = isA ? d->A.n_cores : d->B.n_cores;
        }
        assert_int_equal(b->ndim, 3);
        *p = sqrt(pow(1.0 / (double)(rows + cols), 1.0 / (double)dcores) / (double)b->shape[2]);
        return D_NORMAL;
    }
    case LORT_KIND_CP: { /* A ~ U(+-1/sqrt r), B = 0, C_* ~ U(+-sqrt(6 / ((1 + 5 s^2) r))) */
        const lort_cp_desc *d = &a->desc.cp;
        double s = (double)d->init_scale;
        if (!strcmp(nm, "B")) return D_ZERO;
        *p = !strcmp(nm, "A") ? 1.0 / sqrt((double)d->r)
                              : sqrt(6.0 / ((1.0 + 5.0 * s * s) * (double)d->r));
        return D_UNIFORM;
    }
    case LORT_KIND_TUCKER: {
        lort_tucker_desc r;
        OK(lort_tucker_desc_resolve(&a->desc.tucker, &r));
        int is_core = !strcmp(nm, "core"), isA = !strcmp(nm, "A"), isB = !strcmp(nm, "B");
        int isH = !strcmp(nm, "C_H"), isL = !strcmp(nm, "C_L");
        switch (r.init) {
        case LORT_TUCKER_INIT_LOTR: /* A, B ~ N(0, 1), core 0, C_L = I, C_H = C_M = 1 */
            if (is_core) return D_ZERO;
            if (isA || isB) { *p = 1.0; return D_NORMAL; }
            return isL ? D_EYE : D_ONE;
        case LORT_TUCKER_INIT_FACT_TK: /* A ~ U(+-1/sqrt d), B = 0, core Xavier, C_M Xavier */
            if (is_core) { *p = sqrt(6.0 / ((double)(r.r1 + r.r2) * (double)r.rm)); return D_UNIFORM; }
            if (isA) { *p = 1.0 / sqrt((double)r.d); return D_UNIFORM; }
            if (isB) return D_ZERO;
            if (isH || isL) return D_ONE;
            *p = sqrt(6.0 / (double)(r.matrices + r.rm));
            return D_UNIFORM;
        default: /* as cp: A ~ U(+-1/sqrt r1), B = 0, C_X ~ U(+-sqrt(6 / r_X)); core ones */
            if (is_core) return D_DIAG_ONES;
            if (isA) { *p = 1.0 / sqrt((double)r.r1); return D_UNIFORM; }
            if (isB) return D_ZERO;
            *p = sqrt(6.0 / (double)(isH ? r.rh : isL ? r.rl : r.rm));
            return D_UNIFORM;
        }
    }
    default: fail_msg("init_expect: kind %d", (int)a->kind);
    }
    return D_ZERO;
}

/* Samples of one block over several inits (one rng stream), so that every random block has
   at least MIN_SAMPLES entries: the KS test at level 0.001 then fails a bound halved or
   doubled (uniform: D = 0.25; normal sd halved: D = 0.16) with certainty at a fixed seed. */
enum { MIN_SAMPLES = 2000, MAX_BLOCKS = 2 * LORT_TT_MAX_CORES + 2 };
static int check_init(const lort_adapter *a0, const char *name) {
    lort_adapter a = *a0;
    lort_adapter_sizes sz;
    assert_int_equal(lort_adapter_sizes_query(&a, 1, &sz), LORT_OK);
    lort_block bl[MAX_BLOCKS];
    int nb = 0, ok = 1;
    assert_int_equal(lort_adapter_blocks(&a, bl, MAX_BLOCKS, &nb), LORT_OK);
    size_t smallest = sz.params;
    for (int i = 0; i < nb; ++i) { /* the smallest random block */
        double p;
        int dist = bl[i].vector == LORT_BLOCK_PARAMS ? init_expect(&a, &bl[i], &p) : D_ZERO;
        if ((dist == D_UNIFORM || dist == D_NORMAL) && bl[i].count < smallest) smallest = bl[i].count;
    }
    int reps = (int)((MIN_SAMPLES + smallest - 1) / smallest);
    float *P = tr_alloc(sz.params * zu(reps)), *W0 = tr_rand(zu(sz.d_out) * zu(sz.d_in));
    void *frozen = sz.frozen_bytes ? xalloc(sz.frozen_bytes) : NULL, *work = xalloc(sz.init_work);
    lort_rng rng;
    lort_rng_seed(&rng, 4242u);
    a.frozen = frozen;
    for (int t = 0; t < reps; ++t) {
        a.params = P + zu(t) * sz.params;
        assert_int_equal(lort_adapter_init(&a, W0, &rng, work, sz.init_work), LORT_OK);
    }
    for (int i = 0; i < nb; ++i) {
        if (bl[i].vector != LORT_BLOCK_PARAMS) continue;
        double p;
        int dist = init_expect(&a, &bl[i], &p);
        size_t cnt = bl[i].count, ns = cnt * zu(reps);
        float *v = tr_alloc(ns);
        for (int t = 0; t < reps; ++t)
            memcpy(v + zu(t) * cnt, P + zu(t) * sz.params + bl[i].offset, cnt * sizeof(float));
        char label[96];
        snprintf(label, sizeof label, "%s %s", name, bl[i].name);
        if (dist == D_UNIFORM || dist == D_NORMAL) {
            int good = ks_ok(label, v, ns, dist == D_UNIFORM ? cdf_uniform_sym : cdf_normal, p);
            if (dist == D_UNIFORM) /* and inside the bound */
                for (size_t k = 0; k < ns; ++k) good &= fabs((double)v[k]) <= p * (1.0 + 1e-6);
            /* every entry drawn: an exact zero has probability ~2^-24 per draw (a block left
               partly unfilled, or filled at a shifted offset, has them in every init) */
            size_t zeros = 0;
            for (size_t k = 0; k < ns; ++k) zeros += (size_t)is_zero_f(v[k]);
            if (zeros > 1) printf("    %zu exact zeros in %zu draws  FAILED\n", zeros, ns);
            ok &= good && zeros <= 1;
        } else {
            /* exact values: zero, one, the identity (C_L of LoTR, square), or ones on the
               wrapped diagonal (k mod r1, .., k mod rM), k < the largest rank, zero elsewhere */
            size_t bad = 0;
            for (size_t k = 0; k < cnt; ++k) {
                double want = dist == D_ONE ? 1.0 : 0.0;
                if (dist == D_EYE) want = k / zu(bl[i].shape[1]) == k % zu(bl[i].shape[1]) ? 1.0 : 0.0;
                if (dist == D_DIAG_ONES) {
                    const int *r = bl[i].shape;
                    int kmax = 0;
                    for (int m = 0; m < 5; ++m) kmax = r[m] > kmax ? r[m] : kmax;
                    for (int q = 0; q < kmax; ++q) {
                        size_t at = ((((zu(q % r[0]) * zu(r[1]) + zu(q % r[1])) * zu(r[2]) +
                                       zu(q % r[2])) * zu(r[3]) + zu(q % r[3])) * zu(r[4])) + zu(q % r[4]);
                        if (at == k) want = 1.0;
                    }
                }
                for (int t = 0; t < reps; ++t)
                    bad += fabs((double)P[zu(t) * sz.params + bl[i].offset + k] - want) > 0.0;
            }
            printf("  %-40s exact (%s): %zu of %zu wrong%s\n", label,
                   dist == D_ZERO ? "zero" : dist == D_ONE ? "one" : dist == D_EYE ? "identity"
                                                                            : "diagonal ones",
                   bad, cnt * zu(reps), bad ? "  FAILED" : "");
            ok &= bad == 0;
        }
        free(v);
    }
    free(P); free(W0); free(frozen); free(work);
    return ok;
}

static void test_init_distributions(void **state) {
    (void)state;
    int ok = 1;
    lort_adapter a;
    memset(&a, 0, sizeof a); /* lora, default: A ~ U(+-1/sqrt(d_in)), B = 0 */
    a.kind = LORT_KIND_LORA;
    a.desc.lora.d_in = 64; a.desc.lora.d_out = 40; a.desc.lora.r = 8;
    ok &= check_init(&a, "lora");
    a.desc.lora.init = LORT_LORA_INIT_GAUSSIAN;
    ok &= check_init(&a, "lora gaussian");
    memset(&a, 0, sizeof a); /* loraxs: R ~ N(0, 1e-10) by default, or init_std^2 */
    a.kind = LORT_KIND_LORAXS;
    a.desc.loraxs.d_in = 48; a.desc.loraxs.d_out = 40; a.desc.loraxs.r = 16;
    ok &= check_init(&a, "loraxs");
    a.desc.loraxs.init_std = 0.1f;
    ok &= check_init(&a, "loraxs std 0.1");
    memset(&a, 0, sizeof a); /* tt_rep: both trains as tt */
    a.kind = LORT_KIND_TT_REP;
    {
        lort_tt_rep_desc *t = &a.desc.tt_rep;
        static const int ma[3] = {8, 8, 8}, mb[3] = {8, 6, 8}, ranks[4] = {1, 4, 3, 1};
        t->d_in = 64; t->d_out = 48; t->r = 8;
        t->A = ttd(3, ma, ranks, 0);
        t->B = ttd(3, mb, NULL, 5);
    }
    ok &= check_init(&a, "tt_rep");
    memset(&a, 0, sizeof a); /* tt_adp: cores as tt, biases uniform */
    a.kind = LORT_KIND_TT_ADP;
    {
        lort_tt_adp_desc *t = &a.desc.tt_adp;
        static const int md[3] = {16, 8, 16}, mu[2] = {32, 64};
        t->hidden = 256; t->bottleneck = 8;
        t->down = ttd(3, md, NULL, 4);
        t->up = ttd(2, mu, NULL, 3);
    }
    ok &= check_init(&a, "tt_adp");
    memset(&a, 0, sizeof a); /* cp: init_scale 0 and 0.5 */
    a.kind = LORT_KIND_CP;
    a.desc.cp.d = 64; a.desc.cp.heads = 4; a.desc.cp.layers = 12; a.desc.cp.r = 8;
    a.desc.cp.matrices = 6;
    ok &= check_init(&a, "cp");
    a.desc.cp.init_scale = 0.5f;
    ok &= check_init(&a, "cp init_scale 0.5");
    memset(&a, 0, sizeof a); /* tucker: default (unequal ranks), LoTR, FacT-TK */
    a.kind = LORT_KIND_TUCKER;
    {
        lort_tucker_desc *t = &a.desc.tucker;
        t->d = 32; t->heads = 2; t->layers = 6; t->matrices = 4;
        t->r1 = 4; t->r2 = 3; t->rh = 2; t->rl = 3; t->rm = 4;
        ok &= check_init(&a, "tucker");
        t->heads = 1; t->layers = 4; t->matrices = 1; t->r1 = t->r2 = 8; t->rh = 1; t->rl = 4;
        t->rm = 1; t->init = LORT_TUCKER_INIT_LOTR;
        ok &= check_init(&a, "tucker LoTR");
        t->layers = 1; t->matrices = 12; t->r1 = t->r2 = 6; t->rh = t->rl = 1; t->rm = 6;
        t->init = LORT_TUCKER_INIT_FACT_TK;
        ok &= check_init(&a, "tucker FacT-TK");
        t->r2 = 4; t->rm = 3; /* unequal ranks: the Xavier bound sqrt(6 / ((r1 + r2) rM)) */
        ok &= check_init(&a, "tucker FacT-TK r (6,4,1,1,3)");
    }
    /* mpo's init is the deterministic TT-SVD of W0 (no distribution): test_mpo.c checks it */
    assert_true(ok);
}

static void test_conformance(void **state) {
    (void)state;
    make_cases();
    for (int i = 0; i < ncases; ++i) check_row(&CASES[i], 1000u + (uint64_t)i);
}
static void test_no_frozen_start(void **state) {
    (void)state;
    make_cases();
    for (int i = 0; i < ncases; ++i) check_no_frozen_start(&CASES[i], 2000u + (uint64_t)i);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conformance),
        cmocka_unit_test(test_no_frozen_start),
        cmocka_unit_test(test_init_distributions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
