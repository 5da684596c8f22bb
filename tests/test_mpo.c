/* MPO (family mpo, DoTA), TT-SVD and TT rounding against independent double references.

   The generic checks (forward, delta, merge against the double reference, backward against
   central differences, cache, accumulation, fewer rows, exact buffers, untouched outputs) run
   on this family's cases, on every path and with no / fp32 / NF4 residual, in
   tests/test_conformance.c. Here: counts, the two paths against each other, AUTO's choice and
   its sizes at fewer rows, DoTA init, TT-SVD, rounding, errors, no partial writes.
   References (tests/lort_ref.h, nothing shared with the header): the MPO matrix entry by entry
   (a product of core slices over the digits of the row and column indices: no reshapes, no
   permutations) and the tt tensor entry by entry.

   Tolerances ("norm tol t": |got - want| <= t * (max|want| + |want|) per element):
     factored vs dense, cache vs no cache        norm 2e-5
     DoTA: ||W_res + MPO - W0|| <= 1e-5 ||W0||
     TT-SVD of an exactly low-rank train         relative Frobenius 1e-5
     rounding: actual error <= bound (1 + 1e-3) + 2e-6 ||A||
*/
#include "lort_ref.h"
#include <limits.h>

#define MAXC LORT_MPO_MAX_CORES

static double fro_diff(const double *a, const double *b, size_t count) {
    double s = 0.0;
    for (size_t i = 0; i < count; ++i) s += (a[i] - b[i]) * (a[i] - b[i]);
    return sqrt(s);
}
static double fro(const double *a, size_t count) {
    double s = 0.0;
    for (size_t i = 0; i < count; ++i) s += a[i] * a[i];
    return sqrt(s);
}

/* ---- shapes ------------------------------------------------------------------------------- */
typedef struct {
    int N, ii[MAXC], jj[MAXC], D[MAXC + 1], nr, nc;
    size_t off[MAXC + 1];
} mshape;

#define mk_desc tr_mpo_desc
static void shape_of(const lort_mpo_desc *d, mshape *s) {
    lort_mpo_desc r;
    OK(lort_mpo_desc_resolve(d, &r));
    memset(s, 0, sizeof *s);
    s->N = r.n_cores;
    s->nr = r.d_out;
    s->nc = r.d_in;
    for (int k = 0; k <= s->N; ++k) s->D[k] = r.bonds[k];
    for (int k = 0; k < s->N; ++k) {
        s->ii[k] = r.row_factors[k];
        s->jj[k] = r.col_factors[k];
        s->off[k + 1] = s->off[k] + (size_t)s->D[k] * (size_t)s->ii[k] * (size_t)s->jj[k] * (size_t)s->D[k + 1];
    }
    size_t np = 0;
    OK(lort_mpo_param_count(d, &np));
    assert_int_equal(np, s->off[s->N]);
}

/* M (I, J) entry by entry: the mpo reference of tests/lort_ref.h (the one mpo reference). */
static void ref_mpo(const mshape *s, const double *cores, double *M) {
    ref_mpo_dense(s->N, s->ii, s->jj, s->D, cores, M);
}

/* ---- cases ---------------------------------------------------------------------------------- */
typedef struct {
    int N, ii[6], jj[6], bond, bonds[7], n, res;
} mcase;
static const mcase CASES[] = {
    {3, {2, 3, 2}, {2, 2, 3}, 0, {1, 3, 2, 1}, 3, 1},  /* the reference gradient check DoTA case */
    {1, {5}, {3}, 0, {0}, 4, 1},                       /* one core: a dense matrix */
    {2, {3, 2}, {2, 5}, 1, {0}, 2, 0},                 /* bond 1 */
    {4, {1, 4, 1, 3}, {2, 1, 3, 1}, 2, {0}, 5, 1},     /* factors of size 1 */
    {4, {2, 2, 2, 2}, {3, 1, 2, 2}, 3, {0}, 1, 0},     /* n = 1, mixed */
    {2, {2, 3}, {2, 2}, 100, {0}, 3, 1},               /* bond above the exact rank: clamped */
    {3, {3, 1, 2}, {1, 2, 3}, 0, {0, 1, 4, 0}, 6, 0},  /* explicit bonds 1 and 4 */
    {5, {2, 1, 2, 1, 2}, {1, 2, 1, 2, 2}, 2, {0}, 2, 1},
};
#define NCASES (sizeof CASES / sizeof CASES[0])

static lort_mpo_desc case_desc(const mcase *c, int path) {
    lort_mpo_desc d = mk_desc(c->N, c->ii, c->jj, c->bond);
    for (int k = 0; k <= c->N; ++k) d.bonds[k] = c->bonds[k];
    d.path = path;
    d.residual = c->res;
    return d;
}

typedef struct {
    lort_mpo_desc d;
    mshape s;
    int n;
    size_t np, nx, ny, IJ;
    float *cores, *x, *G, *Wres, *y0;
    double *cd, *xd, *Gd, *Wd;
} msetup;
static void setup(msetup *S, const mcase *c, int path, uint64_t seed) {
    memset(S, 0, sizeof *S);
    S->d = case_desc(c, path);
    shape_of(&S->d, &S->s);
    S->n = c->n;
    S->np = S->s.off[S->s.N];
    S->nx = (size_t)c->n * (size_t)S->s.nc;
    S->ny = (size_t)c->n * (size_t)S->s.nr;
    S->IJ = (size_t)S->s.nr * (size_t)S->s.nc;
    tr_seed(seed);
    S->cores = tr_rand(S->np); S->x = tr_rand(S->nx); S->G = tr_rand(S->ny);
    S->Wres = tr_rand(S->IJ); S->y0 = tr_rand(S->ny);
    S->cd = to_double(S->cores, S->np); S->xd = to_double(S->x, S->nx);
    S->Gd = to_double(S->G, S->ny); S->Wd = to_double(S->Wres, S->IJ);
}
static void teardown(msetup *S) {
    free(S->cores); free(S->x); free(S->G); free(S->Wres); free(S->y0);
    free(S->cd); free(S->xd); free(S->Gd); free(S->Wd);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_mpo_counts_resolve(void **state) {
    (void)state;
    lort_mpo_desc d = case_desc(&CASES[0], 0), r;
    size_t np, off, fz;
    OK(lort_mpo_param_count(&d, &np));
    assert_int_equal(np, 1 * 4 * 3 + 3 * 6 * 2 + 2 * 6 * 1); /* sum D_{k-1} i_k j_k D_k = 60 */
    OK(lort_mpo_core_offset(&d, 2, &off));
    assert_int_equal(off, 48);
    OK(lort_mpo_residual_size(&d, &fz));
    assert_int_equal(fz, 12 * 12 * sizeof(float));
    OK(lort_mpo_desc_resolve(&d, &r));
    assert_int_equal(r.d_out, 12);
    assert_int_equal(r.d_in, 12);
    /* bond 100 on factors (2,3)x(2,2): D_1 <= min(2*2, 3*2) = 4 */
    d = case_desc(&CASES[5], 0);
    OK(lort_mpo_desc_resolve(&d, &r));
    assert_int_equal(r.bonds[1], 4);
    /* explicit bonds (1, 1, 4, 1) on (3,1)(1,2)(2,3): D_2 <= min(D_1 * 2, 2 * 3) = 2 */
    d = case_desc(&CASES[6], 0);
    OK(lort_mpo_desc_resolve(&d, &r));
    assert_int_equal(r.bonds[0], 1);
    assert_int_equal(r.bonds[1], 1);
    assert_int_equal(r.bonds[2], 2);
    assert_int_equal(r.bonds[3], 1);
    /* 4096 = (8,8,8,8) x (8,8,8,8) at D = 8: 64*8 + 8*64*8*2 + 8*64 = 9216 */
    int e8[4] = {8, 8, 8, 8};
    d = mk_desc(4, e8, e8, 8);
    OK(lort_mpo_param_count(&d, &np));
    assert_int_equal(np, 9216);
    d.residual = LORT_MPO_RESIDUAL_NF4; /* 4.5 bits per entry */
    OK(lort_mpo_residual_size(&d, &fz));
    assert_int_equal(fz, 4096u * 4096u / 64u * 4u + 4096u * 4096u / 2u);
}

static void test_mpo_paths_agree(void **state) {
    (void)state;
    static const mcase big[] = {
        {3, {4, 4, 4}, {4, 4, 4}, 5, {0}, 7, 1},
        {4, {2, 4, 4, 2}, {3, 3, 2, 4}, 6, {0}, 9, 2 - 2},
        {6, {2, 2, 2, 2, 2, 2}, {2, 2, 2, 2, 2, 2}, 3, {0}, 33, 0},
    };
    for (size_t ci = 0; ci < sizeof big / sizeof big[0]; ++ci) {
        float *y[2], *dx[2], *dc[2];
        msetup S;
        for (int p = 0; p < 2; ++p) {
            setup(&S, &big[ci], p ? LORT_MPO_DENSE : LORT_MPO_FACTORED, 77 + ci);
            size_t ws = 0, cs = 0;
            OK(lort_mpo_workspace_size(&S.d, S.n, &ws));
            OK(lort_mpo_cache_size(&S.d, S.n, &cs));
            if (p) assert_int_equal(cs, 0); /* the dense path keeps nothing */
            void *work = tr_buf(ws), *cache = tr_buf(cs);
            y[p] = tr_alloc(S.ny); dx[p] = tr_alloc(S.nx); dc[p] = tr_alloc(S.np);
            OK(lort_mpo_forward(&S.d, y[p], S.x, S.cores, S.Wres, S.n, cache, cs, work, ws));
            OK(lort_mpo_backward(&S.d, dx[p], dc[p], S.G, S.x, S.cores, S.Wres, S.n, cache, cs,
                                 work, ws));
            free(work); free(cache);
            if (p == 0) teardown(&S);
        }
        double *yd = to_double(y[1], S.ny), *dxd = to_double(dx[1], S.nx), *dcd = to_double(dc[1], S.np);
        assert_true(near_fd("y factored vs dense", y[0], yd, S.ny, 2e-5));
        assert_true(near_fd("dx factored vs dense", dx[0], dxd, S.nx, 2e-5));
        assert_true(near_fd("dcores factored vs dense", dc[0], dcd, S.np, 2e-5));
        free(yd); free(dxd); free(dcd);
        for (int p = 0; p < 2; ++p) { free(y[p]); free(dx[p]); free(dc[p]); }
        teardown(&S);
    }
}

/* auto picks factored for small bonds and dense for large ones (4096 = 4^6), at 64 rows */
static void test_mpo_auto_path(void **state) {
    (void)state;
    int f[6] = {4, 4, 4, 4, 4, 4}, path;
    lort_mpo_desc d = mk_desc(6, f, f, 2);
    OK(lort_mpo_path_used(&d, 64, &path));
    assert_int_equal(path, LORT_MPO_FACTORED);
    d.bond = 64;
    OK(lort_mpo_path_used(&d, 64, &path));
    assert_int_equal(path, LORT_MPO_DENSE);
    d.path = LORT_MPO_FACTORED;
    OK(lort_mpo_path_used(&d, 64, &path));
    assert_int_equal(path, LORT_MPO_FACTORED);
}

/* With AUTO the path depends on n; buffers sized at n rows serve every call with fewer rows,
   and each result equals the forced path's. */
static void test_mpo_sizes_serve_fewer_rows(void **state) {
    (void)state;
    int f[6] = {2, 2, 2, 2, 2, 2}, found = 0;
    const int nmax = 64;
    for (int D = 2; D <= 8 && !found; ++D) {
        lort_mpo_desc d = mk_desc(6, f, f, D);
        int p1, pn;
        OK(lort_mpo_path_used(&d, 1, &p1));
        OK(lort_mpo_path_used(&d, nmax, &pn));
        if (p1 == pn) continue;
        found = 1;
        assert_int_equal(p1, LORT_MPO_FACTORED);
        assert_int_equal(pn, LORT_MPO_DENSE);
        size_t ws = 0, cs = 0, np = 0;
        OK(lort_mpo_workspace_size(&d, nmax, &ws));
        OK(lort_mpo_cache_size(&d, nmax, &cs));
        OK(lort_mpo_param_count(&d, &np));
        assert_true(cs > 0);
        void *work = tr_buf(ws), *cache = tr_buf(cs);
        tr_seed(61);
        float *cores = tr_rand(np), *x = tr_rand((size_t)nmax * 64), *dy = tr_rand((size_t)nmax * 64);
        for (int n = 1; n <= nmax; n *= 2) {
            float *y = tr_alloc((size_t)n * 64), *yf = tr_alloc((size_t)n * 64);
            float *dx = tr_alloc((size_t)n * 64), *dc = tr_alloc(np);
            OK(lort_mpo_forward(&d, y, x, cores, NULL, n, cache, cs, work, ws));
            OK(lort_mpo_backward(&d, dx, dc, dy, x, cores, NULL, n, cache, cs, work, ws));
            lort_mpo_desc e = d;
            e.path = LORT_MPO_DENSE;
            size_t we = 0;
            OK(lort_mpo_workspace_size(&e, n, &we));
            void *w2 = tr_buf(we);
            OK(lort_mpo_forward(&e, yf, x, cores, NULL, n, NULL, 0, w2, we));
            double *yd = to_double(yf, (size_t)n * 64);
            assert_true(near_fd("auto vs dense", y, yd, (size_t)n * 64, 2e-5));
            free(y); free(yf); free(dx); free(dc); free(w2); free(yd);
        }
        free(work); free(cache); free(cores); free(x); free(dy);
    }
    assert_true(found);
}

static void test_dota_init(void **state) {
    (void)state;
    int ii[3] = {2, 3, 4}, jj[3] = {3, 2, 5};
    for (int exact = 0; exact < 2; ++exact) {
        lort_mpo_desc d = mk_desc(3, ii, jj, 3);
        d.residual = LORT_MPO_RESIDUAL_F32;
        d.svd.exact = exact;
        mshape s;
        shape_of(&d, &s);
        size_t IJ = 24 * 30, np = s.off[3], ws = 0;
        tr_seed(31 + (uint64_t)exact);
        float *W0 = tr_rand(IJ), *cores = tr_alloc(np), *Wres = tr_alloc(IJ), err = -1.0f;
        OK(lort_mpo_init_workspace_size(&d, &ws));
        void *work = tr_buf(ws);
        OK(lort_mpo_init(&d, cores, Wres, &err, W0, work, ws));
        double *cd = to_double(cores, np), *M = td_alloc(IJ), *W0d = to_double(W0, IJ), *sum = td_alloc(IJ);
        ref_mpo(&s, cd, M);
        for (size_t t = 0; t < IJ; ++t) sum[t] = (double)Wres[t] + M[t];
        assert_true(fro_diff(sum, W0d, IJ) <= 1e-5 * fro(W0d, IJ));
        double e = fro_diff(M, W0d, IJ);
        assert_true(e > 0.1 * fro(W0d, IJ)); /* a random matrix: truncation is not free */
        assert_true(fabs((double)err - e) <= 1e-4 * e);
        /* in place: W0 overwritten by W_res gives the same cores and residual */
        float *Wi = tr_alloc(IJ), *ci = tr_alloc(np), erri = -1.0f;
        memcpy(Wi, W0, IJ * sizeof(float));
        OK(lort_mpo_init(&d, ci, Wi, &erri, Wi, work, ws));
        assert_true(cmp_ff("in-place residual", Wi, Wres, IJ, 1e-30, 0.0));
        assert_true(cmp_ff("in-place cores", ci, cores, np, 1e-30, 0.0));
        free(Wi); free(ci);
        /* left-canonical: core 1 (i1 j1, D1) has orthonormal columns */
        for (int p = 0; p < s.D[1]; ++p)
            for (int q = 0; q < s.D[1]; ++q) {
                double g = 0.0;
                for (int r = 0; r < 6; ++r) g += cd[r * s.D[1] + p] * cd[r * s.D[1] + q];
                assert_true(fabs(g - (p == q ? 1.0 : 0.0)) < 1e-5);
            }
        /* exact SVD: the TT-SVD error is at most sqrt(N-1) times the best error of the first
           unfolding alone (a lower bound), here checked against the first unfolding's tail */
        free(W0); free(cores); free(Wres); free(work); free(cd); free(M); free(W0d); free(sum);
    }
}

/* random train with ranks (1, r1, ..., 1) over modes; double contraction entry by entry */
/* the tt tensor entry by entry: the tt reference of tests/lort_ref.h (size = prod modes) */
static void ref_tt(int N, const int *modes, const int *ranks, const double *cores, double *out,
                   size_t size) {
    size_t prod = 1;
    for (int k = 0; k < N; ++k) prod *= (size_t)modes[k];
    assert_int_equal(prod, size);
    ref_tt_dense(N, modes, ranks, cores, out);
}
static size_t tt_params(int N, const int *modes, const int *ranks) {
    size_t p = 0;
    for (int k = 0; k < N; ++k) p += (size_t)ranks[k] * (size_t)modes[k] * (size_t)ranks[k + 1];
    return p;
}
static lort_tt_desc mk_tt(int rows, int cols, int N, const int *modes, const int *ranks) {
    lort_tt_desc d;
    memset(&d, 0, sizeof d);
    d.rows = rows; d.cols = cols; d.n_cores = N;
    for (int k = 0; k < N; ++k) d.modes[k] = modes[k];
    for (int k = 0; k <= N; ++k) d.ranks[k] = ranks[k];
    return d;
}

static void test_tt_svd_lowrank(void **state) {
    (void)state;
    /* 8 x 15 over modes (4, 3, 5, 2): the row/column split falls inside mode 2 */
    int modes[4] = {4, 3, 5, 2}, ranks[5] = {1, 2, 3, 2, 1}, big[5] = {1, 3, 9, 5, 1};
    size_t size = 120, np = tt_params(4, modes, ranks);
    for (int exact = 0; exact < 2; ++exact)
        for (int pad = 0; pad < 2; ++pad) {
            tr_seed(5 + (uint64_t)(exact * 2 + pad));
            double *c = td_alloc(np), *A = td_alloc(size), *B = td_alloc(size);
            for (size_t t = 0; t < np; ++t) c[t] = tg_normal();
            ref_tt(4, modes, ranks, c, A, size);
            float *W = tr_alloc(size);
            for (size_t t = 0; t < size; ++t) W[t] = (float)A[t];
            const int *rk = pad ? big : ranks; /* pad: ranks above what the data has */
            lort_tt_desc d = mk_tt(8, 15, 4, modes, rk);
            lort_svd_opts o;
            memset(&o, 0, sizeof o);
            o.exact = exact;
            size_t ws = 0, npo = tt_params(4, modes, rk);
            OK(lort_tt_svd_workspace_size(&d, &o, &ws));
            void *work = tr_buf(ws);
            float *out = tr_alloc(npo), err = -1.0f;
            OK(lort_tt_svd(&d, out, &err, W, &o, work, ws));
            double *od = to_double(out, npo);
            ref_tt(4, modes, rk, od, B, size);
            double nA = fro(A, size);
            assert_true(fro_diff(A, B, size) <= 1e-5 * nA);
            assert_true((double)err <= 1e-5 * nA);
            free(c); free(A); free(B); free(W); free(work); free(out); free(od);
        }
}

static void test_mpo_from_dense_lowrank(void **state) {
    (void)state;
    int ii[3] = {2, 3, 2}, jj[3] = {2, 2, 3};
    lort_mpo_desc d = mk_desc(3, ii, jj, 0);
    d.bonds[1] = 3; d.bonds[2] = 2;
    mshape s;
    shape_of(&d, &s);
    size_t IJ = 144, np = s.off[3], ws = 0;
    tr_seed(99);
    double *c = td_alloc(np), *A = td_alloc(IJ), *B = td_alloc(IJ);
    for (size_t t = 0; t < np; ++t) c[t] = tg_normal();
    ref_mpo(&s, c, A);
    float *W = tr_alloc(IJ), *out = tr_alloc(np), err = -1.0f;
    for (size_t t = 0; t < IJ; ++t) W[t] = (float)A[t];
    OK(lort_mpo_init_workspace_size(&d, &ws));
    void *work = tr_buf(ws);
    OK(lort_mpo_from_dense(&d, out, &err, W, work, ws));
    double *od = to_double(out, np);
    ref_mpo(&s, od, B);
    assert_true(fro_diff(A, B, IJ) <= 1e-5 * fro(A, IJ));
    assert_true((double)err <= 1e-5 * fro(A, IJ));
    free(c); free(A); free(B); free(W); free(out); free(od); free(work);
}

static void test_tt_round(void **state) {
    (void)state;
    int modes[4] = {3, 4, 5, 3}, from[5] = {1, 3, 6, 3, 1};
    int tos[3][5] = {{1, 2, 2, 2, 1}, {1, 1, 1, 1, 1}, {1, 3, 6, 3, 1}};
    size_t size = 180, np = tt_params(4, modes, from);
    for (int lowrank = 0; lowrank < 2; ++lowrank)
        for (int ti = 0; ti < 3; ++ti) {
            tr_seed(1000 + (uint64_t)(lowrank * 3 + ti));
            double *c = td_alloc(np), *A = td_alloc(size), *B = td_alloc(size);
            if (lowrank) { /* rank-(2,2,2) content inside the rank-(3,6,3) train */
                int r2[5] = {1, 2, 2, 2, 1};
                size_t off = 0, off2 = 0;
                for (int k = 0; k < 4; ++k) {
                    for (int p = 0; p < r2[k]; ++p)
                        for (int a = 0; a < modes[k]; ++a)
                            for (int q = 0; q < r2[k + 1]; ++q)
                                c[off + ((size_t)p * (size_t)modes[k] + (size_t)a) * (size_t)from[k + 1] + (size_t)q] = tg_normal();
                    off += (size_t)from[k] * (size_t)modes[k] * (size_t)from[k + 1];
                    off2 += 0;
                }
            } else {
                for (size_t t = 0; t < np; ++t) c[t] = tg_normal();
            }
            ref_tt(4, modes, from, c, A, size);
            float *cf = tr_alloc(np);
            for (size_t t = 0; t < np; ++t) cf[t] = (float)c[t];
            lort_tt_desc fd = mk_tt(12, 15, 4, modes, from), td = mk_tt(12, 15, 4, modes, tos[ti]);
            size_t ws = 0, npo = tt_params(4, modes, tos[ti]);
            OK(lort_tt_round_workspace_size(&fd, &td, &ws));
            void *work = tr_buf(ws);
            float *out = tr_alloc(npo), bound = -1.0f;
            OK(lort_tt_round(&fd, &td, out, &bound, cf, work, ws));
            double *od = to_double(out, npo);
            ref_tt(4, modes, tos[ti], od, B, size);
            double e = fro_diff(A, B, size), nA = fro(A, size);
            assert_true(e <= (double)bound * (1.0 + 1e-3) + 2e-6 * nA);
            if (ti == 2 || (lowrank && ti == 0)) assert_true(e <= 1e-5 * nA); /* lossless */
            if (!lowrank && ti < 2) assert_true((double)bound > 1e-3 * nA && e >= 0.99 * (double)bound);
            free(c); free(A); free(B); free(cf); free(work); free(out); free(od);
        }
}

static void test_mpo_round(void **state) {
    (void)state;
    int ii[3] = {2, 3, 2}, jj[3] = {3, 2, 2};
    lort_mpo_desc fd = mk_desc(3, ii, jj, 5), td = mk_desc(3, ii, jj, 2);
    mshape sf, st;
    shape_of(&fd, &sf);
    shape_of(&td, &st);
    size_t IJ = 144, ws = 0;
    tr_seed(4242);
    float *c = tr_rand(sf.off[3]), *out = tr_alloc(st.off[3]), bound = -1.0f;
    double *cd = to_double(c, sf.off[3]), *A = td_alloc(IJ), *B = td_alloc(IJ);
    ref_mpo(&sf, cd, A);
    OK(lort_mpo_round_workspace_size(&fd, &td, &ws));
    void *work = tr_buf(ws);
    OK(lort_mpo_round(&fd, &td, out, &bound, c, work, ws));
    double *od = to_double(out, st.off[3]);
    ref_mpo(&st, od, B);
    double e = fro_diff(A, B, IJ);
    assert_true(e <= (double)bound * (1.0 + 1e-3) + 2e-6 * fro(A, IJ));
    assert_true(e >= 0.99 * (double)bound && bound > 0.0f);
    free(c); free(out); free(cd); free(A); free(B); free(od); free(work);
}

/* the generic interface: sizes, DoTA init (exact layer), forward, backward, merge, delta */
static void test_mpo_adapter(void **state) {
    (void)state;
    int ii[3] = {2, 3, 2}, jj[3] = {2, 2, 3};
    lort_adapter a;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_MPO;
    a.desc.mpo = mk_desc(3, ii, jj, 2);
    a.desc.mpo.residual = LORT_MPO_RESIDUAL_F32;
    int n = 4;
    lort_adapter_sizes sz;
    OK(lort_adapter_sizes_query(&a, n, &sz));
    assert_int_equal(sz.d_in, 12);
    assert_int_equal(sz.d_out, 12);
    assert_int_equal(sz.frozen_bytes, 144 * sizeof(float));
    assert_int_equal(sz.replaces_base, 1);
    size_t np;
    OK(lort_mpo_param_count(&a.desc.mpo, &np));
    assert_int_equal(sz.params, np);
    tr_seed(8);
    float *W0 = tr_rand(144), *x = tr_rand(48), *dy = tr_rand(48);
    a.params = tr_alloc(sz.params);
    a.frozen = tr_buf(sz.frozen_bytes);
    a.grads = tr_alloc(sz.params);
    void *iw = tr_buf(sz.init_work), *w = tr_buf(sz.work), *c = tr_buf(sz.cache);
    OK(lort_adapter_init(&a, W0, NULL, iw, sz.init_work));
    float *y = tr_alloc(48), *dx = tr_alloc(48), *dx2 = tr_alloc(48), *g2 = tr_alloc(sz.params);
    OK(lort_adapter_forward(&a, y, x, n, c, sz.cache, w, sz.work));
    double *want = td_alloc(48), *W0d = to_double(W0, 144);
    ref_linear(n, 12, 12, x, W0d, want);
    assert_true(near_fd("DoTA layer at init == x W0^T", y, want, 48, 2e-5));
    OK(lort_adapter_backward(&a, dx, dy, x, n, c, sz.cache, w, sz.work));
    OK(lort_mpo_backward(&a.desc.mpo, dx2, g2, dy, x, a.params, a.frozen, n, NULL, 0, w, sz.work));
    assert_true(cmp_ff("adapter dx", dx, dx2, 48, 1e-6, 1e-6));
    assert_true(cmp_ff("adapter dcores", a.grads, g2, sz.params, 1e-6, 1e-6));
    float *W = tr_alloc(144);
    OK(lort_adapter_merge(&a, W, 1.0f, w, sz.work)); /* into zero: the layer's weight = W0 */
    assert_true(near_fd("merge into zero == W0", W, W0d, 144, 1e-5));
    OK(lort_adapter_delta(&a, W, w, sz.work));
    assert_true(near_fd("delta == W0", W, W0d, 144, 1e-5));
    free(W0); free(x); free(dy); free(a.params); free(a.frozen); free(a.grads); free(iw);
    free(w); free(c); free(y); free(dx); free(dx2); free(g2); free(want); free(W0d); free(W);
}

/* bad factor lists and arguments get a status, never a crash */
static void test_mpo_errors(void **state) {
    (void)state;
    int ii[3] = {2, 3, 2}, jj[3] = {2, 2, 3};
    lort_mpo_desc d = mk_desc(3, ii, jj, 2), b;
    size_t sz;
    int path;
    float buf[4096];
    ST(LORT_ERR_NULL, lort_mpo_param_count(NULL, &sz));
    ST(LORT_ERR_NULL, lort_mpo_param_count(&d, NULL));
    b = d; b.d_out = 13;                     /* product mismatch */
    ST(LORT_ERR_SHAPE, lort_mpo_param_count(&b, &sz));
    b = d; b.d_in = 11;
    ST(LORT_ERR_SHAPE, lort_mpo_workspace_size(&b, 2, &sz));
    b = d; b.bond = 0;                       /* rank 0 */
    ST(LORT_ERR_INVALID_ARG, lort_mpo_param_count(&b, &sz));
    b = d; b.bonds[1] = -1;
    ST(LORT_ERR_INVALID_ARG, lort_mpo_param_count(&b, &sz));
    b = d; b.bonds[3] = 2;                   /* D_N must be 1 */
    ST(LORT_ERR_INVALID_ARG, lort_mpo_param_count(&b, &sz));
    b = d; b.n_cores = LORT_MPO_MAX_CORES + 1; /* too many cores */
    ST(LORT_ERR_INVALID_ARG, lort_mpo_param_count(&b, &sz));
    b = d; b.n_cores = 0;
    ST(LORT_ERR_INVALID_ARG, lort_mpo_param_count(&b, &sz));
    b = d; b.row_factors[1] = 0;
    ST(LORT_ERR_INVALID_ARG, lort_mpo_param_count(&b, &sz));
    b = d; b.path = 3;
    ST(LORT_ERR_INVALID_ARG, lort_mpo_param_count(&b, &sz));
    b = d; b.residual = -1;
    ST(LORT_ERR_INVALID_ARG, lort_mpo_param_count(&b, &sz));
    int big[2] = {65536, 65536}, one[2] = {1, 1};
    b = mk_desc(2, big, one, 1);             /* int overflow in the product of factors */
    ST(LORT_ERR_OVERFLOW, lort_mpo_param_count(&b, &sz));
    int hf[2] = {46341, 46341};              /* i_k j_k overflows int */
    b = mk_desc(1, hf, hf, 1);
    ST(LORT_ERR_OVERFLOW, lort_mpo_param_count(&b, &sz));
    int wide[2] = {8, 8192}, wj[2] = {8192, 8};
    b = mk_desc(2, wide, wj, 1 << 20);       /* D_1 = 65536: a core of 2^32 entries */
    ST(LORT_ERR_OVERFLOW, lort_mpo_param_count(&b, &sz));
    b = d; b.path = LORT_MPO_FACTORED;       /* a GEMM dimension n * prod(...) > INT_MAX */
    ST(LORT_ERR_OVERFLOW, lort_mpo_workspace_size(&b, INT_MAX, &sz));
    ST(LORT_ERR_INVALID_ARG, lort_mpo_workspace_size(&d, 0, &sz));
    ST(LORT_ERR_INVALID_ARG, lort_mpo_path_used(&d, -1, &path));
    ST(LORT_ERR_INVALID_ARG, lort_mpo_core_offset(&d, 3, &sz));
    /* kernels: NULL, short workspace, short cache, missing residual */
    size_t ws = 0, cs = 0;
    d.path = LORT_MPO_FACTORED;
    OK(lort_mpo_workspace_size(&d, 2, &ws));
    OK(lort_mpo_cache_size(&d, 2, &cs));
    assert_true(ws <= sizeof buf && cs > 0);
    float x[24] = {0}, y[24] = {0}, cores[200] = {0};
    ST(LORT_ERR_NULL, lort_mpo_forward(&d, NULL, x, cores, NULL, 2, NULL, 0, buf, ws));
    ST(LORT_ERR_NULL, lort_mpo_forward(&d, y, x, cores, NULL, 2, NULL, 0, NULL, ws));
    ST(LORT_ERR_WORKSPACE, lort_mpo_forward(&d, y, x, cores, NULL, 2, NULL, 0, buf, ws - 1));
    ST(LORT_ERR_CACHE, lort_mpo_forward(&d, y, x, cores, NULL, 2, buf, cs - 1, buf, ws));
    ST(LORT_ERR_WORKSPACE, lort_mpo_backward(&d, x, cores, y, x, cores, NULL, 2, NULL, 0, buf, 1));
    d.residual = LORT_MPO_RESIDUAL_F32;
    ST(LORT_ERR_NULL, lort_mpo_forward(&d, y, x, cores, NULL, 2, NULL, 0, buf, ws));
    ST(LORT_ERR_NULL, lort_mpo_merge(&d, y, cores, NULL, 1.0f, buf, ws));
    ST(LORT_ERR_INVALID_ARG, lort_mpo_merge(&d, y, cores, buf, NAN, buf, ws));
    OK(lort_mpo_init_workspace_size(&d, &ws));
    ST(LORT_ERR_WORKSPACE, lort_mpo_init(&d, cores, buf, NULL, x, buf, ws - 1));
    ST(LORT_ERR_NULL, lort_mpo_init(&d, cores, NULL, NULL, x, buf, ws));
    /* tt form: product mismatch, rank 0, too many cores, mismatched round, NaN input */
    int modes[3] = {2, 3, 4}, ranks[4] = {1, 2, 2, 1};
    lort_tt_desc t = mk_tt(4, 6, 3, modes, ranks), u;
    u = t; u.cols = 7;
    ST(LORT_ERR_SHAPE, lort_tt_svd_workspace_size(&u, NULL, &sz));
    u = t; u.ranks[1] = 0; u.rank = 0;
    ST(LORT_ERR_INVALID_ARG, lort_tt_svd_workspace_size(&u, NULL, &sz));
    u = t; u.n_cores = LORT_TT_MAX_CORES + 1;
    ST(LORT_ERR_INVALID_ARG, lort_tt_svd_workspace_size(&u, NULL, &sz));
    u = t; u.modes[2] = 8; u.rows = 8;
    ST(LORT_ERR_SHAPE, lort_tt_round_workspace_size(&t, &u, &sz));
    u = t; u.rows = 1 << 20; u.cols = 1 << 20; /* 2^40 entries: not addressable on 32 bits */
    ST(fits_bytes(1ull << 40, sizeof(float)) ? LORT_ERR_SHAPE : LORT_ERR_OVERFLOW,
       lort_tt_svd_workspace_size(&u, NULL, &sz));
    OK(lort_tt_svd_workspace_size(&t, NULL, &ws));
    assert_true(ws <= sizeof buf);
    float W[24];
    for (int i = 0; i < 24; ++i) W[i] = (float)i;
    W[5] = NAN;
    for (int i = 0; i < 200; ++i) cores[i] = 7.0f;
    ST(LORT_ERR_NONFINITE, lort_tt_svd(&t, cores, NULL, W, NULL, buf, ws));
    for (int i = 0; i < 200; ++i) assert_true(fabsf(cores[i] - 7.0f) < 1e-30f); /* untouched */
    float cin[32], cout[32];
    for (int i = 0; i < 32; ++i) { cin[i] = 1.0f; cout[i] = 7.0f; }
    cin[20] = NAN;
    OK(lort_tt_round_workspace_size(&t, &t, &ws));
    assert_true(ws <= sizeof buf);
    ST(LORT_ERR_NONFINITE, lort_tt_round(&t, &t, cout, NULL, cin, buf, ws));
    for (int i = 0; i < 32; ++i) assert_true(fabsf(cout[i] - 7.0f) < 1e-30f);
    ST(LORT_ERR_WORKSPACE, lort_tt_svd(&t, cores, NULL, W, NULL, buf, ws - 1));
    ST(LORT_ERR_NULL, lort_tt_round(&t, &t, cores, NULL, NULL, buf, sizeof buf));
}

/* No partial writes: every error path of lort_tt_svd, lort_mpo_from_dense,
   lort_tt_round, lort_mpo_round and lort_mpo_init leaves cores, err and residual byte for byte
   as they were (canary-filled). Paths: no convergence (max_sweeps = 1 on a matrix Jacobi needs
   more sweeps for), a NaN in the input, a matrix with ||W||_F > FLT_MAX (entries 1e38), a train
   whose cores hold 1e13 (rounding overflows float), one byte of workspace short. */
static int canary_ok(const float *x, size_t count) {
    for (size_t i = 0; i < count; ++i)
        if (memcmp(&x[i], &(float){-3.25f}, sizeof(float)) != 0) return 0;
    return 1;
}
static void canary(float *x, size_t count) {
    for (size_t i = 0; i < count; ++i) x[i] = -3.25f;
}
static void test_no_partial_writes(void **state) {
    (void)state;
    enum { R = 24, C = 20 };
    int modes[4] = {4, 6, 4, 5}, ranks[5] = {1, 4, 8, 4, 1};
    lort_tt_desc t = mk_tt(R, C, 4, modes, ranks);
    static float W[R * C], Wn[R * C], Wh[R * C], cores[4096], err[1], resid[R * C];
    tr_seed(61u);
    for (int i = 0; i < R * C; ++i) {
        W[i] = tr_sym();
        Wn[i] = W[i];
        Wh[i] = (i & 1) ? 1e38f : -1e38f;
    }
    Wn[R * C / 2] = (float)NAN;
    size_t np = 0, ws = 0;
    OK(lort_tt_param_count(&t, &np));
    assert_true(np <= 4096);
    lort_svd_opts o1;
    memset(&o1, 0, sizeof o1);
    o1.exact = 1;
    o1.max_sweeps = 1;
    OK(lort_tt_svd_workspace_size(&t, &o1, &ws));
    {
        size_t wd = 0;
        OK(lort_tt_svd_workspace_size(&t, NULL, &wd));
        if (wd > ws) ws = wd;
    }
    void *work = tr_buf(ws);
    struct {
        const char *what;
        const float *W;
        const lort_svd_opts *o;
        lort_status want;
    } tc[] = {
        {"no convergence", W, &o1, LORT_ERR_NO_CONVERGENCE},
        {"NaN input", Wn, NULL, LORT_ERR_NONFINITE},
        {"||W||_F > FLT_MAX", Wh, NULL, LORT_ERR_NONFINITE},
        {"workspace - 1", W, &o1, LORT_ERR_WORKSPACE},
    };
    for (size_t i = 0; i < sizeof tc / sizeof tc[0]; ++i) {
        size_t need = 0;
        OK(lort_tt_svd_workspace_size(&t, tc[i].o, &need));
        assert_true(need <= ws);
        canary(cores, 4096); canary(err, 1);
        lort_status st = lort_tt_svd(&t, cores, err, tc[i].W, tc[i].o, work,
                                     tc[i].want == LORT_ERR_WORKSPACE ? need - 1 : need);
        printf("  tt_svd, %-20s -> %s\n", tc[i].what, lort_status_string(st));
        assert_int_equal(st, tc[i].want);
        assert_true(canary_ok(cores, 4096) && canary_ok(err, 1));
    }
    /* the same matrix as an mpo (24 = 4 * 6, 20 = 4 * 5), DoTA init (f32 and NF4 residual) */
    static const int ii[2] = {4, 6}, jj[2] = {4, 5};
    for (int res = 0; res < 3; ++res) {
        lort_mpo_desc m = mk_desc(2, ii, jj, 6);
        m.residual = res;
        size_t mw = 0, mwa = 0;
        m.svd = o1;
        OK(lort_mpo_init_workspace_size(&m, &mw));
        m.svd.max_sweeps = 0;
        m.svd.exact = 0;
        OK(lort_mpo_init_workspace_size(&m, &mwa));
        if (mwa > mw) mw = mwa;
        void *mwk = tr_buf(mw);
        for (size_t i = 0; i < sizeof tc / sizeof tc[0]; ++i) {
            m.svd = tc[i].o ? *tc[i].o : (lort_svd_opts){0};
            size_t need = 0;
            OK(lort_mpo_init_workspace_size(&m, &need));
            size_t give = i == 3 ? need - 1 : need;
            canary(cores, 4096); canary(err, 1); canary(resid, R * C);
            lort_status st = res == 0 ? lort_mpo_from_dense(&m, cores, err, tc[i].W, mwk, give)
                                      : lort_mpo_init(&m, cores, resid, err, tc[i].W, mwk, give);
            printf("  mpo %s, %-20s -> %s\n",
                   res == 0 ? "from_dense" : (res == 1 ? "init f32" : "init nf4"), tc[i].what,
                   lort_status_string(st));
            assert_int_equal(st, tc[i].want);
            assert_true(canary_ok(cores, 4096) && canary_ok(err, 1) && canary_ok(resid, R * C));
        }
        free(mwk);
    }
    /* rounding a train with 1e13 cores to lower ranks: the products overflow float */
    {
        int lo[5] = {1, 2, 3, 2, 1};
        lort_tt_desc u = mk_tt(R, C, 4, modes, lo);
        static float big[4096];
        size_t rw = 0;
        for (size_t i = 0; i < np; ++i) big[i] = (i & 1) ? 1e13f : -1e13f;
        OK(lort_tt_round_workspace_size(&t, &u, &rw));
        void *rwk = tr_buf(rw);
        canary(cores, 4096); canary(err, 1);
        lort_status st = lort_tt_round(&t, &u, cores, err, big, rwk, rw);
        printf("  tt_round, cores of 1e13     -> %s\n", lort_status_string(st));
        assert_int_equal(st, LORT_ERR_NONFINITE);
        assert_true(canary_ok(cores, 4096) && canary_ok(err, 1));
        assert_int_equal(lort_tt_round(&t, &u, cores, err, big, rwk, rw - 1), LORT_ERR_WORKSPACE);
        assert_true(canary_ok(cores, 4096) && canary_ok(err, 1));
        free(rwk);
    }
    free(work);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mpo_counts_resolve),
        cmocka_unit_test(test_mpo_paths_agree),
        cmocka_unit_test(test_mpo_auto_path),
        cmocka_unit_test(test_mpo_sizes_serve_fewer_rows),
        cmocka_unit_test(test_dota_init),
        cmocka_unit_test(test_tt_svd_lowrank),
        cmocka_unit_test(test_mpo_from_dense_lowrank),
        cmocka_unit_test(test_tt_round),
        cmocka_unit_test(test_mpo_round),
        cmocka_unit_test(test_mpo_adapter),
        cmocka_unit_test(test_mpo_errors),
        cmocka_unit_test(test_no_partial_writes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
