/* Every status code is reachable from the public API, every documented validation fires, and a
   failing call writes nothing: all output buffers live in one arena filled with a sentinel
   pattern, and after every failing call the arena is compared byte for byte with its snapshot.
   The last test checks, table-driven, that each status code was produced by some real call. */
#include "lort_test.h"

#include <limits.h>

/* ---- which statuses were produced ---------------------------------------------------------- */
static const struct {
    lort_status code;
    const char *name;
} ALL_CODES[] = {
    {LORT_OK, "LORT_OK"},
    {LORT_ERR_NULL, "LORT_ERR_NULL"},
    {LORT_ERR_INVALID_ARG, "LORT_ERR_INVALID_ARG"},
    {LORT_ERR_SHAPE, "LORT_ERR_SHAPE"},
    {LORT_ERR_OVERFLOW, "LORT_ERR_OVERFLOW"},
    {LORT_ERR_WORKSPACE, "LORT_ERR_WORKSPACE"},
    {LORT_ERR_CACHE, "LORT_ERR_CACHE"},
    {LORT_ERR_OUT_OF_MEMORY, "LORT_ERR_OUT_OF_MEMORY"},
    {LORT_ERR_UNSUPPORTED, "LORT_ERR_UNSUPPORTED"},
    {LORT_ERR_NO_CONVERGENCE, "LORT_ERR_NO_CONVERGENCE"},
    {LORT_ERR_NONFINITE, "LORT_ERR_NONFINITE"},
    {LORT_ERR_NOT_MERGEABLE, "LORT_ERR_NOT_MERGEABLE"},
    {LORT_ERR_NOT_FOUND, "LORT_ERR_NOT_FOUND"},
    {LORT_ERR_FORMAT, "LORT_ERR_FORMAT"},
};
#define NCODES (sizeof ALL_CODES / sizeof ALL_CODES[0])
static int seen[NCODES];
static void note(lort_status st) {
    for (size_t i = 0; i < NCODES; ++i)
        if (ALL_CODES[i].code == st) seen[i]++;
}
static const char *code_name(lort_status st) {
    for (size_t i = 0; i < NCODES; ++i)
        if (ALL_CODES[i].code == st) return ALL_CODES[i].name;
    return "(not a status)";
}

/* ---- fixture: small dims, every output in one sentinel-filled arena ------------------------ */
enum { DI = 12, DO = 10, RK = 3, NR = 5, BIG = 1 << 16 };
typedef struct outs {
    float y[NR * DO], dx[NR * DI], dA[RK * DI], dB[DO * RK], dR[RK * RK], W[DO * DI];
    float A[RK * DI], B[DO * RK], R[RK * RK];         /* init outputs */
    float Ax[RK * DI], Bx[DO * RK];                   /* loraxs init outputs (frozen) */
    float S[DI], U[DO * DI], Vt[DI * DI], C[DO * DI]; /* svd / gemm outputs */
    float m[64], v[64], p[64];                        /* adamw state */
    unsigned char cache[BIG];
} outs;
static outs O, O_snap;
/* inputs (never written by the library) */
static float X[NR * DI], DY[NR * DO], IA[RK * DI], IB[DO * RK], IR[RK * RK], W0[DO * DI];
static float G64[64];
static unsigned char WORK[BIG];

static void arena_fill(void) {
    unsigned char *b = (unsigned char *)&O;
    for (size_t i = 0; i < sizeof O; ++i) b[i] = (unsigned char)(0x3c ^ (i * 131u));
    memcpy(&O_snap, &O, sizeof O);
}
static void arena_check(const char *what) {
    if (memcmp(&O, &O_snap, sizeof O) != 0) {
        const unsigned char *a = (const unsigned char *)&O, *b = (const unsigned char *)&O_snap;
        size_t i = 0;
        while (a[i] == b[i]) ++i;
        printf("  %s: failed but wrote output byte %zu of the arena\n", what, i);
        fail();
    }
}

static int setup(void **state) {
    (void)state;
    tr_seed(2718);
    tr_fill(X, NR * DI);
    tr_fill(DY, NR * DO);
    tr_fill(IA, RK * DI);
    tr_fill(IB, DO * RK);
    tr_fill(IR, RK * RK);
    tr_fill(W0, DO * DI);
    tr_fill(G64, 64);
    arena_fill();
    return 0;
}

/* The call must return `code`; on failure the arena must be unchanged, on success it is
   re-snapshotted. */
#define EXPECT(code, call)                                                                       \
    do {                                                                                         \
        lort_status st_ = (call);                                                                \
        note(st_);                                                                               \
        if (st_ != (code))                                                                       \
            printf("  line %d: %s\n    returned %s, want %s\n", __LINE__, #call, code_name(st_), \
                   code_name(code));                                                             \
        assert_int_equal(st_, (code));                                                           \
        if ((code) != LORT_OK)                                                                   \
            arena_check(#call);                                                                  \
        else                                                                                     \
            memcpy(&O_snap, &O, sizeof O);                                                       \
    } while (0)

static lort_lora_desc good_lora(void) {
    lort_lora_desc d;
    memset(&d, 0, sizeof d);
    d.d_in = DI;
    d.d_out = DO;
    d.r = RK;
    d.alpha = 6.0f;
    d.dropout = 0.1f;
    d.dropout_seed = 1;
    return d;
}
static lort_loraxs_desc good_loraxs(void) {
    lort_loraxs_desc d;
    memset(&d, 0, sizeof d);
    d.d_in = DI;
    d.d_out = DO;
    d.r = RK;
    d.dropout = 0.1f;
    return d;
}

/* Every lora entry point with one desc, expecting `code` from each. */
static void lora_all(const lort_lora_desc *d, int n, lort_status code) {
    size_t cnt = 0, bytes = 0;
    float scale = 0.0f;
    lort_lora_desc res;
    lort_rng rng;
    lort_rng_seed(&rng, 1);
    EXPECT(code, lort_lora_param_count(d, &cnt));
    EXPECT(code, lort_lora_cache_size(d, n, &bytes));
    EXPECT(code, lort_lora_workspace_size(d, n, &bytes));
    EXPECT(code, lort_lora_scale(d, &scale));
    EXPECT(code, lort_lora_desc_resolve(d, &res));
    EXPECT(code, lort_lora_init(d, O.A, O.B, &rng));
    EXPECT(code, lort_lora_forward(d, O.y, X, IA, IB, n, O.cache, BIG, WORK, BIG));
    EXPECT(code, lort_lora_forward(d, O.y, X, IA, IB, n, NULL, 0, WORK, BIG));
    EXPECT(code,
           lort_lora_backward(d, O.dx, O.dA, O.dB, DY, X, IA, IB, n, O.cache, BIG, WORK, BIG));
    EXPECT(code, lort_lora_merge(d, O.W, IA, IB, 1.0f, NULL, 0));
    EXPECT(code, lort_lora_delta(d, O.W, IA, IB, NULL, 0));
    if (!d) return;
    lort_adapter a;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_LORA;
    a.desc.lora = *d;
    a.params = O.A; /* params (A then B) and grads live in the arena too */
    a.grads = O.dA;
    lort_adapter_sizes sz;
    EXPECT(code, lort_adapter_sizes_query(&a, n, &sz));
    (void)scale;
}

static void loraxs_all(const lort_loraxs_desc *d, int n, lort_status code) {
    size_t cnt = 0, bytes = 0;
    float scale = 0.0f;
    lort_loraxs_desc res;
    lort_rng rng;
    lort_rng_seed(&rng, 1);
    EXPECT(code, lort_loraxs_param_count(d, &cnt));
    EXPECT(code, lort_loraxs_frozen_count(d, &cnt));
    EXPECT(code, lort_loraxs_cache_size(d, n, &bytes));
    EXPECT(code, lort_loraxs_workspace_size(d, n, &bytes));
    EXPECT(code, lort_loraxs_init_workspace_size(d, &bytes));
    EXPECT(code, lort_loraxs_scale(d, &scale));
    EXPECT(code, lort_loraxs_desc_resolve(d, &res));
    EXPECT(code, lort_loraxs_init(d, O.R, O.Ax, O.Bx, W0, &rng, WORK, BIG));
    EXPECT(code, lort_loraxs_forward(d, O.y, X, IR, IA, IB, n, O.cache, BIG, WORK, BIG));
    EXPECT(code,
           lort_loraxs_backward(d, O.dx, O.dR, DY, X, IR, IA, IB, n, O.cache, BIG, WORK, BIG));
    EXPECT(code, lort_loraxs_merge(d, O.W, IR, IA, IB, 1.0f, WORK, BIG));
    EXPECT(code, lort_loraxs_delta(d, O.W, IR, IA, IB, WORK, BIG));
    (void)scale;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_good_calls_work(void **state) {
    (void)state;
    lort_lora_desc d = good_lora();
    lort_loraxs_desc x = good_loraxs();
    /* the baseline is valid (so the failures below are caused by the one bad field) */
    size_t c = 0;
    EXPECT(LORT_OK, lort_lora_param_count(&d, &c));
    assert_int_equal((long)c, (long)(RK * (DI + DO)));
    EXPECT(LORT_OK, lort_lora_forward(&d, O.y, X, IA, IB, NR, O.cache, BIG, WORK, BIG));
    EXPECT(LORT_OK, lort_loraxs_param_count(&x, &c));
    assert_int_equal((long)c, (long)(RK * RK));
    EXPECT(LORT_OK, lort_loraxs_forward(&x, O.y, X, IR, IA, IB, NR, O.cache, BIG, WORK, BIG));
    arena_fill();
}

static void test_null_pointers(void **state) {
    (void)state;
    lort_lora_desc d = good_lora();
    lort_loraxs_desc x = good_loraxs();
    size_t c = 0;
    float s = 0.0f;
    lort_rng rng;
    lort_rng_seed(&rng, 1);
    lora_all(NULL, NR, LORT_ERR_NULL); /* NULL desc everywhere */
    loraxs_all(NULL, NR, LORT_ERR_NULL);
    /* NULL outputs of queries */
    EXPECT(LORT_ERR_NULL, lort_lora_param_count(&d, NULL));
    EXPECT(LORT_ERR_NULL, lort_lora_cache_size(&d, NR, NULL));
    EXPECT(LORT_ERR_NULL, lort_lora_workspace_size(&d, NR, NULL));
    EXPECT(LORT_ERR_NULL, lort_lora_scale(&d, NULL));
    EXPECT(LORT_ERR_NULL, lort_lora_desc_resolve(&d, NULL));
    EXPECT(LORT_ERR_NULL, lort_loraxs_param_count(&x, NULL));
    EXPECT(LORT_ERR_NULL, lort_loraxs_frozen_count(&x, NULL));
    EXPECT(LORT_ERR_NULL, lort_loraxs_cache_size(&x, NR, NULL));
    EXPECT(LORT_ERR_NULL, lort_loraxs_workspace_size(&x, NR, NULL));
    EXPECT(LORT_ERR_NULL, lort_loraxs_init_workspace_size(&x, NULL));
    EXPECT(LORT_ERR_NULL, lort_loraxs_scale(&x, NULL));
    EXPECT(LORT_ERR_NULL, lort_loraxs_desc_resolve(&x, NULL));
    /* lora kernels: NULL x, y, A, B, dy, W, rng, work */
    EXPECT(LORT_ERR_NULL, lort_lora_forward(&d, NULL, X, IA, IB, NR, O.cache, BIG, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_lora_forward(&d, O.y, NULL, IA, IB, NR, O.cache, BIG, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_lora_forward(&d, O.y, X, NULL, IB, NR, O.cache, BIG, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_lora_forward(&d, O.y, X, IA, NULL, NR, O.cache, BIG, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_lora_forward(&d, O.y, X, IA, IB, NR, O.cache, BIG, NULL, BIG));
    EXPECT(LORT_ERR_NULL,
           lort_lora_backward(&d, O.dx, O.dA, O.dB, NULL, X, IA, IB, NR, NULL, 0, WORK, BIG));
    EXPECT(LORT_ERR_NULL,
           lort_lora_backward(&d, O.dx, O.dA, O.dB, DY, NULL, IA, IB, NR, NULL, 0, WORK, BIG));
    EXPECT(LORT_ERR_NULL,
           lort_lora_backward(&d, O.dx, O.dA, O.dB, DY, X, NULL, IB, NR, NULL, 0, WORK, BIG));
    EXPECT(LORT_ERR_NULL,
           lort_lora_backward(&d, O.dx, O.dA, O.dB, DY, X, IA, NULL, NR, NULL, 0, WORK, BIG));
    EXPECT(LORT_ERR_NULL,
           lort_lora_backward(&d, O.dx, O.dA, O.dB, DY, X, IA, IB, NR, NULL, 0, NULL, BIG));
    EXPECT(LORT_ERR_NULL, lort_lora_merge(&d, NULL, IA, IB, 1.0f, NULL, 0));
    EXPECT(LORT_ERR_NULL, lort_lora_merge(&d, O.W, NULL, IB, 1.0f, NULL, 0));
    EXPECT(LORT_ERR_NULL, lort_lora_merge(&d, O.W, IA, NULL, 1.0f, NULL, 0));
    EXPECT(LORT_ERR_NULL, lort_lora_delta(&d, NULL, IA, IB, NULL, 0));
    EXPECT(LORT_ERR_NULL, lort_lora_delta(&d, O.W, NULL, IB, NULL, 0));
    EXPECT(LORT_ERR_NULL, lort_lora_init(&d, NULL, O.B, &rng));
    EXPECT(LORT_ERR_NULL, lort_lora_init(&d, O.A, NULL, &rng));
    EXPECT(LORT_ERR_NULL, lort_lora_init(&d, O.A, O.B, NULL));
    /* loraxs kernels */
    EXPECT(LORT_ERR_NULL, lort_loraxs_init(&x, NULL, O.Ax, O.Bx, W0, &rng, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_loraxs_init(&x, O.R, NULL, O.Bx, W0, &rng, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_loraxs_init(&x, O.R, O.Ax, NULL, W0, &rng, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_loraxs_init(&x, O.R, O.Ax, O.Bx, NULL, &rng, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_loraxs_init(&x, O.R, O.Ax, O.Bx, W0, NULL, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_loraxs_init(&x, O.R, O.Ax, O.Bx, W0, &rng, NULL, BIG));
    EXPECT(LORT_ERR_NULL, lort_loraxs_forward(&x, NULL, X, IR, IA, IB, NR, NULL, 0, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_loraxs_forward(&x, O.y, NULL, IR, IA, IB, NR, NULL, 0, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_loraxs_forward(&x, O.y, X, NULL, IA, IB, NR, NULL, 0, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_loraxs_forward(&x, O.y, X, IR, NULL, IB, NR, NULL, 0, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_loraxs_forward(&x, O.y, X, IR, IA, NULL, NR, NULL, 0, WORK, BIG));
    EXPECT(LORT_ERR_NULL,
           lort_loraxs_backward(&x, O.dx, O.dR, NULL, X, IR, IA, IB, NR, NULL, 0, WORK, BIG));
    EXPECT(LORT_ERR_NULL,
           lort_loraxs_backward(&x, O.dx, O.dR, DY, NULL, IR, IA, IB, NR, NULL, 0, WORK, BIG));
    EXPECT(LORT_ERR_NULL,
           lort_loraxs_backward(&x, O.dx, O.dR, DY, X, NULL, IA, IB, NR, NULL, 0, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_loraxs_merge(&x, NULL, IR, IA, IB, 1.0f, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_loraxs_merge(&x, O.W, NULL, IA, IB, 1.0f, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_loraxs_delta(&x, NULL, IR, IA, IB, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_loraxs_delta(&x, O.W, IR, IA, IB, NULL, BIG));
    /* adapter */
    lort_adapter a;
    lort_adapter_sizes sz;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_LORA;
    a.desc.lora = d;
    EXPECT(LORT_ERR_NULL, lort_adapter_sizes_query(NULL, NR, &sz));
    EXPECT(LORT_ERR_NULL, lort_adapter_sizes_query(&a, NR, NULL));
    EXPECT(LORT_ERR_NULL, lort_adapter_forward(NULL, O.y, X, NR, NULL, 0, WORK, BIG));
    EXPECT(LORT_ERR_NULL,
           lort_adapter_forward(&a, O.y, X, NR, NULL, 0, WORK, BIG)); /* params NULL */
    a.params = O.A;
    EXPECT(LORT_ERR_NULL, lort_adapter_forward(&a, NULL, X, NR, NULL, 0, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_adapter_backward(&a, O.dx, NULL, X, NR, NULL, 0, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_adapter_merge(&a, NULL, 1.0f, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_adapter_delta(&a, NULL, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_adapter_init(&a, NULL, NULL, WORK, BIG)); /* rng NULL */
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_LORAXS;
    a.desc.loraxs = x;
    a.params = O.R; /* frozen NULL */
    EXPECT(LORT_ERR_NULL, lort_adapter_forward(&a, O.y, X, NR, NULL, 0, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_adapter_init(&a, W0, &rng, WORK, BIG));
    a.frozen = O.Ax;
    EXPECT(LORT_ERR_NULL, lort_adapter_init(&a, NULL, &rng, WORK, BIG)); /* loraxs needs W0 */
    /* gemm, svd, adamw, alloc */
    EXPECT(LORT_ERR_NULL, lort_sgemm(0, 0, 2, 2, 2, 1.0f, NULL, 2, IA, 2, 0.0f, O.C, 2));
    EXPECT(LORT_ERR_NULL, lort_svd_jacobi(O.U, O.S, O.Vt, NULL, DI, DO, DI, 0, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_svd_truncated(O.U, NULL, O.Vt, W0, DI, DO, DI, 2, NULL, WORK, BIG));
    lort_adamw_desc opt = lort_adamw_default(1e-3f);
    EXPECT(LORT_ERR_NULL, lort_adamw_step(NULL, O.p, O.m, O.v, G64, 64, 1));
    EXPECT(LORT_ERR_NULL, lort_adamw_step(&opt, NULL, O.m, O.v, G64, 64, 1));
    EXPECT(LORT_ERR_NULL, lort_adamw_step(&opt, O.p, NULL, O.v, G64, 64, 1));
    EXPECT(LORT_ERR_NULL, lort_adamw_step(&opt, O.p, O.m, NULL, G64, 64, 1));
    EXPECT(LORT_ERR_NULL, lort_adamw_step(&opt, O.p, O.m, O.v, NULL, 64, 1));
    EXPECT(LORT_ERR_NULL, lort_alloc(NULL, 16, NULL));
    EXPECT(LORT_ERR_NULL, lort_linear_forward(NULL, X, W0, NULL, NR, DI, DO));
    EXPECT(LORT_ERR_NULL, lort_linear_forward(O.y, NULL, W0, NULL, NR, DI, DO));
    EXPECT(LORT_ERR_NULL, lort_linear_forward(O.y, X, NULL, NULL, NR, DI, DO));
    EXPECT(LORT_ERR_NULL, lort_linear_backward(O.dx, O.W, NULL, NULL, X, W0, NR, DI, DO));
    EXPECT(LORT_ERR_NULL, lort_linear_backward(O.dx, NULL, NULL, DY, X, NULL, NR, DI, DO));
    EXPECT(LORT_ERR_NULL, lort_linear_backward(NULL, O.W, NULL, DY, NULL, W0, NR, DI, DO));
    (void)c;
    (void)s;
}

static void test_invalid_dims(void **state) {
    (void)state;
    static const int bad[] = {0, -1, INT_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; ++i) {
        lort_lora_desc d;
        lort_loraxs_desc x;
        for (int f = 0; f < 3; ++f) { /* d_in, d_out, r in turn */
            d = good_lora();
            x = good_loraxs();
            *(f == 0 ? &d.d_in : f == 1 ? &d.d_out : &d.r) = bad[i];
            *(f == 0 ? &x.d_in : f == 1 ? &x.d_out : &x.r) = bad[i];
            lora_all(&d, NR, LORT_ERR_INVALID_ARG);
            loraxs_all(&x, NR, LORT_ERR_INVALID_ARG);
        }
        /* n <= 0 */
        size_t b = 0;
        d = good_lora();
        x = good_loraxs();
        EXPECT(LORT_ERR_INVALID_ARG, lort_lora_cache_size(&d, bad[i], &b));
        EXPECT(LORT_ERR_INVALID_ARG, lort_lora_workspace_size(&d, bad[i], &b));
        EXPECT(LORT_ERR_INVALID_ARG,
               lort_lora_forward(&d, O.y, X, IA, IB, bad[i], O.cache, BIG, WORK, BIG));
        EXPECT(LORT_ERR_INVALID_ARG,
               lort_lora_backward(&d, O.dx, O.dA, O.dB, DY, X, IA, IB, bad[i], NULL, 0, WORK, BIG));
        EXPECT(LORT_ERR_INVALID_ARG, lort_loraxs_cache_size(&x, bad[i], &b));
        EXPECT(LORT_ERR_INVALID_ARG, lort_loraxs_workspace_size(&x, bad[i], &b));
        EXPECT(LORT_ERR_INVALID_ARG,
               lort_loraxs_forward(&x, O.y, X, IR, IA, IB, bad[i], NULL, 0, WORK, BIG));
        EXPECT(LORT_ERR_INVALID_ARG,
               lort_loraxs_backward(&x, O.dx, O.dR, DY, X, IR, IA, IB, bad[i], NULL, 0, WORK, BIG));
        lort_adapter a;
        lort_adapter_sizes sz;
        memset(&a, 0, sizeof a);
        a.kind = LORT_KIND_LORA;
        a.desc.lora = d;
        a.params = O.A;
        EXPECT(LORT_ERR_INVALID_ARG, lort_adapter_sizes_query(&a, bad[i], &sz));
        EXPECT(LORT_ERR_INVALID_ARG, lort_adapter_forward(&a, O.y, X, bad[i], NULL, 0, WORK, BIG));
        /* gemm */
        EXPECT(LORT_ERR_INVALID_ARG,
               lort_sgemm(0, 0, bad[i] ? bad[i] : -2, 2, 2, 1.0f, IA, 2, IB, 2, 0.0f, O.C, 2));
        /* svd dims and rank */
        EXPECT(LORT_ERR_INVALID_ARG,
               lort_svd_truncated(O.U, O.S, O.Vt, W0, DI, DO, DI, bad[i], NULL, WORK, BIG));
        EXPECT(LORT_ERR_INVALID_ARG,
               lort_svd_truncated(O.U, O.S, O.Vt, W0, DI, bad[i], DI, 1, NULL, WORK, BIG));
        EXPECT(LORT_ERR_INVALID_ARG,
               lort_svd_jacobi(O.U, O.S, O.Vt, W0, DI, DO, bad[i], 0, WORK, BIG));
        EXPECT(LORT_ERR_INVALID_ARG, lort_svd_jacobi_workspace_size(bad[i], DI, &b));
        /* the base layer */
        EXPECT(LORT_ERR_INVALID_ARG, lort_linear_forward(O.y, X, W0, NULL, bad[i], DI, DO));
        EXPECT(LORT_ERR_INVALID_ARG, lort_linear_forward(O.y, X, W0, NULL, NR, bad[i], DO));
        EXPECT(LORT_ERR_INVALID_ARG, lort_linear_forward(O.y, X, W0, NULL, NR, DI, bad[i]));
        EXPECT(LORT_ERR_INVALID_ARG,
               lort_linear_backward(O.dx, O.W, O.S, DY, X, W0, bad[i], DI, DO));
        EXPECT(LORT_ERR_INVALID_ARG,
               lort_linear_backward(O.dx, O.W, O.S, DY, X, W0, NR, DI, bad[i]));
    }
}

static void test_invalid_options(void **state) {
    (void)state;
    /* dropout outside [0, 1), including NaN */
    const float bad_p[] = {-0.1f, 1.0f, 1.5f, (float)NAN, (float)INFINITY, -(float)INFINITY};
    for (size_t i = 0; i < sizeof bad_p / sizeof bad_p[0]; ++i) {
        lort_lora_desc d = good_lora();
        d.dropout = bad_p[i];
        lora_all(&d, NR, LORT_ERR_INVALID_ARG);
        lort_loraxs_desc x = good_loraxs();
        x.dropout = bad_p[i];
        loraxs_all(&x, NR, LORT_ERR_INVALID_ARG);
    }
    /* alpha non-finite, unknown init kind, negative or non-finite init_std */
    lort_lora_desc d = good_lora();
    d.alpha = (float)NAN;
    lora_all(&d, NR, LORT_ERR_INVALID_ARG);
    d = good_lora();
    d.alpha = (float)INFINITY;
    lora_all(&d, NR, LORT_ERR_INVALID_ARG);
    d = good_lora();
    d.init = 7;
    lora_all(&d, NR, LORT_ERR_INVALID_ARG);
    lort_loraxs_desc x = good_loraxs();
    x.init_std = -1.0f;
    loraxs_all(&x, NR, LORT_ERR_INVALID_ARG);
    x = good_loraxs();
    x.svd.oversample = -1;
    loraxs_all(&x, NR, LORT_ERR_INVALID_ARG);
    /* merge weight non-finite */
    const float bad_w[] = {(float)NAN, (float)INFINITY, -(float)INFINITY};
    d = good_lora();
    x = good_loraxs();
    for (size_t i = 0; i < 3; ++i) {
        EXPECT(LORT_ERR_INVALID_ARG, lort_lora_merge(&d, O.W, IA, IB, bad_w[i], NULL, 0));
        EXPECT(LORT_ERR_INVALID_ARG, lort_loraxs_merge(&x, O.W, IR, IA, IB, bad_w[i], WORK, BIG));
        lort_adapter a;
        memset(&a, 0, sizeof a);
        a.kind = LORT_KIND_LORA;
        a.desc.lora = d;
        a.params = O.A;
        EXPECT(LORT_ERR_INVALID_ARG, lort_adapter_merge(&a, O.W, bad_w[i], WORK, BIG));
    }
    /* adamw hyperparameters */
    lort_adamw_desc o = lort_adamw_default(1e-3f);
    for (int i = 0; i < 64; ++i) { /* a finite state (the arena's pattern need not be) */
        O.p[i] = 0.25f * (float)(i % 7) - 0.5f;
        O.m[i] = 0.0f;
        O.v[i] = 0.0f;
    }
    memcpy(&O_snap, &O, sizeof O);
    EXPECT(LORT_OK, lort_adamw_step(&o, O.p, O.m, O.v, G64, 64, 1)); /* baseline valid */
    /* each bad hyper-parameter alone: lr < 0 or NaN, beta1 = 1, > 1, < 0, beta2 = 1, eps <= 0,
       weight_decay < 0 */
    static const struct { int field; float v; } badh[] = {
        {0, -1e-3f}, {0, (float)NAN}, {1, 1.0f}, {1, 1.5f}, {1, -0.1f}, {2, 1.0f}, {3, 0.0f},
        {3, -1e-8f}, {4, -0.01f}};
    for (size_t i = 0; i < sizeof badh / sizeof badh[0]; ++i) {
        lort_adamw_desc b = o;
        float *f[5] = {&b.lr, &b.beta1, &b.beta2, &b.eps, &b.weight_decay};
        *f[badh[i].field] = badh[i].v;
        EXPECT(LORT_ERR_INVALID_ARG, lort_adamw_step(&b, O.p, O.m, O.v, G64, 64, 1));
    }
    EXPECT(LORT_ERR_INVALID_ARG, lort_adamw_step(&o, O.p, O.m, O.v, G64, 64, 0));
    EXPECT(LORT_ERR_INVALID_ARG, lort_adamw_step(&o, O.p, O.m, O.v, G64, 64, -1));
    EXPECT(LORT_ERR_INVALID_ARG, lort_adamw_step(&o, O.p, O.m, O.v, G64, 0, 1));
    /* allocation of 0 bytes; negative sweeps */
    void *p = NULL;
    EXPECT(LORT_ERR_INVALID_ARG, lort_alloc(NULL, 0, &p));
    EXPECT(LORT_ERR_INVALID_ARG, lort_svd_jacobi(O.U, O.S, O.Vt, W0, DI, DO, DI, -1, WORK, BIG));
}

static void test_shape(void **state) {
    (void)state;
    /* loraxs: r > min(d_in, d_out) */
    lort_loraxs_desc x = good_loraxs();
    x.r = DO + 1; /* <= d_in = 12, > d_out = 10 */
    loraxs_all(&x, NR, LORT_ERR_SHAPE);
    x = good_loraxs();
    x.d_in = 4;
    x.r = 5;
    loraxs_all(&x, NR, LORT_ERR_SHAPE);
    lort_adapter a;
    lort_adapter_sizes sz;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_LORAXS;
    a.desc.loraxs = x;
    EXPECT(LORT_ERR_SHAPE, lort_adapter_sizes_query(&a, NR, &sz));
    /* gemm leading dimensions */
    EXPECT(LORT_ERR_SHAPE, lort_sgemm(0, 0, 2, 3, 4, 1.0f, IA, 3, IB, 3, 0.0f, O.C, 3));
    EXPECT(LORT_ERR_SHAPE, lort_sgemm(0, 0, 2, 3, 4, 1.0f, IA, 4, IB, 2, 0.0f, O.C, 3));
    EXPECT(LORT_ERR_SHAPE, lort_sgemm(0, 0, 2, 3, 4, 1.0f, IA, 4, IB, 3, 0.0f, O.C, 2));
    EXPECT(LORT_ERR_SHAPE, lort_sgemm_builtin(1, 1, 2, 3, 4, 1.0f, IA, 1, IB, 4, 0.0f, O.C, 3));
    /* svd: r > min(m, n), ldw < n */
    size_t b = 0;
    EXPECT(LORT_ERR_SHAPE, lort_svd_truncated_workspace_size(DO, DI, DO + 1, NULL, &b));
    EXPECT(LORT_ERR_SHAPE,
           lort_svd_truncated(O.U, O.S, O.Vt, W0, DI, DO, DI, DO + 1, NULL, WORK, BIG));
    EXPECT(LORT_ERR_SHAPE,
           lort_svd_truncated(O.U, O.S, O.Vt, W0, DI - 1, DO, DI, 2, NULL, WORK, BIG));
    EXPECT(LORT_ERR_SHAPE, lort_svd_jacobi(O.U, O.S, O.Vt, W0, DI - 1, DO, DI, 0, WORK, BIG));
}

static void test_overflow(void **state) {
    (void)state;
    size_t bytes = 0, cnt = 0;
    /* n * d_in floats overflow size_t: n = d_in = INT_MAX with dropout (x is masked into work) */
    lort_lora_desc d = good_lora();
    d.d_in = INT_MAX;
    d.dropout = 0.5f;
    EXPECT(LORT_ERR_OVERFLOW, lort_lora_workspace_size(&d, INT_MAX, &bytes));
    EXPECT(LORT_ERR_OVERFLOW, lort_lora_cache_size(&d, INT_MAX, &bytes));
    EXPECT(LORT_ERR_OVERFLOW, lort_lora_forward(&d, O.y, X, IA, IB, INT_MAX, NULL, 0, WORK, BIG));
    /* r (d_in + d_out) floats: d_in + d_out overflows int, r (d_in + d_out) * 4 overflows */
    d = good_lora();
    d.r = INT_MAX;
    d.d_in = INT_MAX;
    d.d_out = 1;
    EXPECT(LORT_ERR_OVERFLOW, lort_lora_param_count(&d, &cnt));
    d.d_in = INT_MAX;
    d.d_out = INT_MAX;
    EXPECT(LORT_ERR_OVERFLOW, lort_lora_param_count(&d, &cnt));
    /* ... but a large valid count is not an overflow: r = INT_MAX, d_in = d_out = 1 (with a
       32-bit size_t, 2 INT_MAX floats are not addressable: an overflow there) */
    d.d_in = 1;
    d.d_out = 1;
    if (fits_bytes(2u * (uint64_t)INT_MAX, sizeof(float))) {
        EXPECT(LORT_OK, lort_lora_param_count(&d, &cnt));
        assert_true(cnt == 2u * (size_t)INT_MAX);
    } else {
        EXPECT(LORT_ERR_OVERFLOW, lort_lora_param_count(&d, &cnt));
    }
    /* loraxs frozen factors r (d_in + d_out) */
    lort_loraxs_desc x = good_loraxs();
    x.r = INT_MAX;
    x.d_in = INT_MAX;
    x.d_out = INT_MAX;
    EXPECT(LORT_ERR_OVERFLOW, lort_loraxs_frozen_count(&x, &cnt));
    /* gemm: M * ldc floats */
    EXPECT(LORT_ERR_OVERFLOW,
           lort_sgemm(0, 0, INT_MAX, 1, 1, 1.0f, IA, 1, IB, 1, 0.0f, O.C, INT_MAX));
    /* linear: n * d_in, and d_in * d_out */
    EXPECT(LORT_ERR_OVERFLOW, lort_linear_forward(O.y, X, W0, NULL, INT_MAX, INT_MAX, DO));
    EXPECT(LORT_ERR_OVERFLOW,
           lort_linear_backward(O.dx, O.W, NULL, DY, X, W0, 1, INT_MAX, INT_MAX));
    /* svd workspace */
    EXPECT(LORT_ERR_OVERFLOW, lort_svd_jacobi_workspace_size(INT_MAX, INT_MAX, &bytes));
    /* l = r + r/2 probes of length INT_MAX: more than PTRDIFF_MAX bytes */
    EXPECT(LORT_ERR_OVERFLOW,
           lort_svd_truncated_workspace_size(INT_MAX, INT_MAX, INT_MAX / 2, NULL, &bytes));
    /* alloc of more than PTRDIFF_MAX bytes */
    void *p = NULL;
    EXPECT(LORT_ERR_OVERFLOW, lort_alloc(NULL, SIZE_MAX, &p));
    assert_null(p);
}

static void test_short_buffers(void **state) {
    (void)state;
    lort_lora_desc d = good_lora();
    size_t ws = 0, cs = 0;
    EXPECT(LORT_OK, lort_lora_workspace_size(&d, NR, &ws));
    EXPECT(LORT_OK, lort_lora_cache_size(&d, NR, &cs));
    EXPECT(LORT_ERR_WORKSPACE,
           lort_lora_forward(&d, O.y, X, IA, IB, NR, O.cache, cs, WORK, ws - 1));
    EXPECT(LORT_ERR_CACHE, lort_lora_forward(&d, O.y, X, IA, IB, NR, O.cache, cs - 1, WORK, ws));
    EXPECT(LORT_ERR_CACHE,
           lort_lora_backward(&d, O.dx, O.dA, O.dB, DY, X, IA, IB, NR, O.cache, cs - 1, WORK, ws));
    EXPECT(LORT_ERR_WORKSPACE, lort_svd_jacobi(O.U, O.S, O.Vt, W0, DI, DO, DI, 0, WORK, 1));
}

/* A failing allocator for LORT_ERR_OUT_OF_MEMORY. */
static void *fail_alloc(size_t bytes, void *user) {
    (void)bytes;
    ++*(int *)user;
    return NULL;
}
static void fail_free(void *p, void *user) {
    (void)p;
    (void)user;
}

static void test_out_of_memory(void **state) {
    (void)state;
    int calls = 0;
    lort_allocator al = {&calls, fail_alloc, fail_free};
    void *p = &p;
    EXPECT(LORT_ERR_OUT_OF_MEMORY, lort_alloc(&al, 100, &p));
    assert_null(p);
    assert_int_equal(calls, 1);
}

static void test_unsupported_kind(void **state) {
    (void)state;
    static const int kinds[] = {99, -1, (int)LORT_KIND_NONE};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; ++i) {
        lort_adapter a;
        lort_adapter_sizes sz;
        lort_rng rng;
        lort_rng_seed(&rng, 1);
        memset(&a, 0, sizeof a);
        a.kind = (lort_kind)kinds[i];
        a.desc.lora = good_lora();
        a.params = O.A;
        a.frozen = O.Ax;
        a.grads = O.dA;
        EXPECT(LORT_ERR_UNSUPPORTED, lort_adapter_sizes_query(&a, NR, &sz));
        EXPECT(LORT_ERR_UNSUPPORTED, lort_adapter_init(&a, W0, &rng, WORK, BIG));
        EXPECT(LORT_ERR_UNSUPPORTED, lort_adapter_forward(&a, O.y, X, NR, O.cache, BIG, WORK, BIG));
        EXPECT(LORT_ERR_UNSUPPORTED,
               lort_adapter_backward(&a, O.dx, DY, X, NR, NULL, 0, WORK, BIG));
        EXPECT(LORT_ERR_UNSUPPORTED, lort_adapter_merge(&a, O.W, 1.0f, WORK, BIG));
        EXPECT(LORT_ERR_UNSUPPORTED, lort_adapter_delta(&a, O.W, WORK, BIG));
    }
}

/* LoRETTA_adp is a bottleneck with an activation: it has no weight delta. A valid adapter gets
   LORT_ERR_NOT_MERGEABLE from merge and delta (W untouched); an invalid desc still gets its own
   status first. */
static void test_not_mergeable(void **state) {
    (void)state;
    static float P[512];
    lort_adapter a;
    lort_adapter_sizes sz;
    lort_rng rng;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_TT_ADP;
    a.desc.tt_adp.hidden = DI;
    a.desc.tt_adp.bottleneck = 4;
    a.desc.tt_adp.down.n_cores = 3;
    a.desc.tt_adp.down.modes[0] = 4;
    a.desc.tt_adp.down.modes[1] = 3;
    a.desc.tt_adp.down.modes[2] = 4;
    a.desc.tt_adp.down.rank = 2;
    a.params = P;
    lort_rng_seed(&rng, 1);
    EXPECT(LORT_OK, lort_adapter_sizes_query(&a, NR, &sz));
    assert_true(sz.params <= 512);
    EXPECT(LORT_OK, lort_adapter_init(&a, NULL, &rng, NULL, 0));
    EXPECT(LORT_ERR_NOT_MERGEABLE, lort_adapter_merge(&a, O.W, 1.0f, WORK, BIG));
    EXPECT(LORT_ERR_NOT_MERGEABLE, lort_adapter_delta(&a, O.W, WORK, BIG));
    EXPECT(LORT_ERR_NULL, lort_adapter_delta(&a, NULL, WORK, BIG));
    a.desc.tt_adp.down.modes[2] = 5; /* product 60 != 12 * 4 */
    EXPECT(LORT_ERR_SHAPE, lort_adapter_merge(&a, O.W, 1.0f, WORK, BIG));
}

static void test_no_convergence(void **state) {
    (void)state;
    enum { M = 20 };
    static float Wg[M * M];
    static float U[M * M], S[M], Vt[M * M];
    tr_seed(5);
    tr_fill(Wg, M * M);
    size_t ws = 0;
    EXPECT(LORT_OK, lort_svd_jacobi_workspace_size(M, M, &ws));
    void *w = tr_buf(ws);
    EXPECT(LORT_ERR_NO_CONVERGENCE, lort_svd_jacobi(U, S, Vt, Wg, M, M, M, 1, w, ws));
    EXPECT(LORT_OK, lort_svd_jacobi(U, S, Vt, Wg, M, M, M, 60, w, ws));
    free(w);
    /* the same through opts.max_sweeps, and through loraxs init */
    lort_svd_opts o;
    memset(&o, 0, sizeof o);
    o.exact = 1;
    o.max_sweeps = 1;
    EXPECT(LORT_OK, lort_svd_truncated_workspace_size(M, M, 3, &o, &ws));
    w = tr_buf(ws);
    EXPECT(LORT_ERR_NO_CONVERGENCE, lort_svd_truncated(U, S, Vt, Wg, M, M, M, 3, &o, w, ws));
    free(w);
    lort_loraxs_desc x = good_loraxs();
    x.svd.exact = 1;
    x.svd.max_sweeps = 1;
    lort_rng rng;
    lort_rng_seed(&rng, 1);
    EXPECT(LORT_ERR_NO_CONVERGENCE, lort_loraxs_init(&x, O.R, O.Ax, O.Bx, W0, &rng, WORK, BIG));
}

static void test_nonfinite(void **state) {
    (void)state;
    static float Wn[DO * DI];
    memcpy(Wn, W0, sizeof Wn);
    Wn[17] = (float)NAN;
    /* SVDs always scan */
    EXPECT(LORT_ERR_NONFINITE, lort_svd_jacobi(O.U, O.S, O.Vt, Wn, DI, DO, DI, 0, WORK, BIG));
    EXPECT(LORT_ERR_NONFINITE,
           lort_svd_truncated(O.U, O.S, O.Vt, Wn, DI, DO, DI, 2, NULL, WORK, BIG));
    Wn[17] = (float)INFINITY;
    EXPECT(LORT_ERR_NONFINITE, lort_svd_jacobi(O.U, O.S, O.Vt, Wn, DI, DO, DI, 0, WORK, BIG));
    /* so does loraxs init, through the SVD of W0 */
    lort_loraxs_desc x = good_loraxs();
    lort_rng rng;
    lort_rng_seed(&rng, 1);
    EXPECT(LORT_ERR_NONFINITE, lort_loraxs_init(&x, O.R, O.Ax, O.Bx, Wn, &rng, WORK, BIG));
#ifdef LORT_DEBUG
    /* kernels scan their inputs under LORT_DEBUG */
    static float Xn[NR * DI], DYn[NR * DO], An[RK * DI];
    lort_lora_desc d = good_lora();
    memcpy(Xn, X, sizeof Xn);
    Xn[NR * DI - 1] = (float)NAN;
    EXPECT(LORT_ERR_NONFINITE, lort_lora_forward(&d, O.y, Xn, IA, IB, NR, O.cache, BIG, WORK, BIG));
    EXPECT(LORT_ERR_NONFINITE, lort_lora_forward(&d, O.y, Xn, IA, IB, NR, NULL, 0, WORK, BIG));
    EXPECT(LORT_ERR_NONFINITE,
           lort_lora_backward(&d, O.dx, O.dA, O.dB, DY, Xn, IA, IB, NR, NULL, 0, WORK, BIG));
    memcpy(DYn, DY, sizeof DYn);
    DYn[3] = -(float)INFINITY;
    EXPECT(LORT_ERR_NONFINITE,
           lort_lora_backward(&d, O.dx, O.dA, O.dB, DYn, X, IA, IB, NR, NULL, 0, WORK, BIG));
    memcpy(An, IA, sizeof An);
    An[0] = (float)NAN;
    EXPECT(LORT_ERR_NONFINITE, lort_lora_forward(&d, O.y, X, An, IB, NR, NULL, 0, WORK, BIG));
    lort_loraxs_desc xd = good_loraxs();
    EXPECT(LORT_ERR_NONFINITE,
           lort_loraxs_forward(&xd, O.y, Xn, IR, IA, IB, NR, NULL, 0, WORK, BIG));
    EXPECT(LORT_ERR_NONFINITE,
           lort_loraxs_backward(&xd, O.dx, O.dR, DYn, X, IR, IA, IB, NR, NULL, 0, WORK, BIG));
#endif
}

static void test_not_found(void **state) {
    (void)state;
    static float P[RK * (DI + DO)];
    lort_adapter e;
    lort_set_site site = {"model.layers.0.self_attn.q_proj", 0, 0, 0};
    lort_adapter_set set;
    int idx = 77;
    memset(&e, 0, sizeof e);
    e.kind = LORT_KIND_LORA;
    e.desc.lora.d_in = DI; e.desc.lora.d_out = DO; e.desc.lora.r = RK;
    e.params = P;
    set.entries = &e; set.n_entries = 1; set.sites = &site; set.n_sites = 1;
    EXPECT(LORT_OK, lort_set_validate(&set, NULL, 0));
    EXPECT(LORT_ERR_NOT_FOUND, lort_set_find(&set, "model.layers.0.self_attn.k_proj", &idx));
    assert_int_equal(idx, 77);
    EXPECT(LORT_ERR_NOT_FOUND, lort_set_find(&set, "model.layers.0.self_attn.q_pro", &idx));
    EXPECT(LORT_OK, lort_set_find(&set, "model.layers.0.self_attn.q_proj", &idx));
    assert_int_equal(idx, 0);
}

/* Malformed files and configs: LORT_ERR_FORMAT with a message (a safetensors header, and bytes
   that are not GGUF). */
static void test_format(void **state) {
    (void)state;
    static const unsigned char bad[12] = {4, 0, 0, 0, 0, 0, 0, 0, '{', '"', 'a', '}'};
    static const unsigned char not_gguf[32] = {'G', 'G', 'U', 'F', 9};
    lort_gguf_info info;
    size_t need = 77;
    char msg[80];
    EXPECT(LORT_ERR_FORMAT, lort_st_read_size(bad, sizeof bad, &need, msg, sizeof msg));
    assert_int_equal(need, 77);
    assert_string_equal(msg, "unterminated JSON string");
    EXPECT(LORT_ERR_FORMAT, lort_gguf_read(&info, NULL, 0, NULL, 0, not_gguf, sizeof not_gguf,
                                           msg, sizeof msg));
}

/* Runs last: each status code was produced by at least one real call above. */
static void test_every_status_reached(void **state) {
    (void)state;
    int ok = 1;
    assert_int_equal((int)NCODES, 1 - (int)LORT__STATUS_MIN);
    for (size_t i = 0; i < NCODES; ++i) {
        printf("  %-24s produced %d time(s)\n", ALL_CODES[i].name, seen[i]);
        if (seen[i] == 0) ok = 0;
    }
    assert_true(ok);
}


/* ---- an OK never hides a NaN ---------------------------------------------------------------- */
/* SVD of a matrix whose blocks overflow float: positive entries ~1.3e36 in (16, 1000)
   (||W||_F ~ 1.7e38 < FLT_MAX, but a normalised block times W^T reaches ~n 1.3e36 ~ 1e39;
   16 > r + 10 probes: the randomized path): OK with finite U, S, Vt, and
   S equal to 2^120 times the singular values of W 2^-120 (scaling by a power of two is exact,
   so the two problems have the same singular values up to that factor). A matrix with
   ||W||_F > FLT_MAX: LORT_ERR_NONFINITE and the outputs untouched. */
static void test_svd_huge_norm(void **state) {
    (void)state;
    arena_fill();
    enum { M = 16, N = 1000, R = 3 };
    static float Wb[M * N], Ws[M * N], U[M * R], S[R], Vt[R * N], U2[M * R], S2[R], Vt2[R * N];
    size_t ws = 0;
    tr_seed(91);
    for (int i = 0; i < M * N; ++i) {
        Ws[i] = 1.0f + 0.3f * tr_sym();
        Wb[i] = ldexpf(Ws[i], 120); /* 2^120 ~ 1.3e36 */
    }
    for (int pass = 0; pass < 2; ++pass) { /* randomized, then exact */
        lort_svd_opts o;
        memset(&o, 0, sizeof o);
        o.exact = pass;
        OK(lort_svd_truncated_workspace_size(M, N, R, &o, &ws));
        void *wk = tr_buf(ws);
        OK(lort_svd_truncated(U, S, Vt, Wb, N, M, N, R, &o, wk, ws));
        OK(lort_svd_truncated(U2, S2, Vt2, Ws, N, M, N, R, &o, wk, ws));
        free(wk);
        for (int i = 0; i < M * R; ++i) assert_true(isfinite(U[i]));
        for (int i = 0; i < R * N; ++i) assert_true(isfinite(Vt[i]));
        for (int k = 0; k < R; ++k) {
            double want = ldexp((double)S2[k], 120);
            printf("  %s: S[%d] = %.6g, 2^120 S(W 2^-120) = %.6g\n", pass ? "exact" : "randomized",
                   k, (double)S[k], want);
            assert_true(isfinite(S[k]) && fabs((double)S[k] - want) <= 1e-4 * want);
        }
    }
    /* ||W||_F > FLT_MAX: refused, nothing written */
    for (int i = 0; i < M * N; ++i) Wb[i] = (i & 1) ? 1e38f : -1e38f;
    for (int i = 0; i < R; ++i) S[i] = -7.0f;
    for (int i = 0; i < M * R; ++i) U[i] = -7.0f;
    for (int i = 0; i < R * N; ++i) Vt[i] = -7.0f;
    OK(lort_svd_truncated_workspace_size(M, N, R, NULL, &ws));
    void *wk = tr_buf(ws);
    EXPECT(LORT_ERR_NONFINITE, lort_svd_truncated(U, S, Vt, Wb, N, M, N, R, NULL, wk, ws));
    free(wk);
    EXPECT(LORT_ERR_NONFINITE, lort_svd_jacobi(U, S, Vt, Wb, N, R, N, 0, WORK, BIG));
    for (int i = 0; i < R; ++i) assert_true(!(S[i] < -7.0f) && !(S[i] > -7.0f));
    for (int i = 0; i < M * R; ++i) assert_true(!(U[i] < -7.0f) && !(U[i] > -7.0f));
    for (int i = 0; i < R * N; ++i) assert_true(!(Vt[i] < -7.0f) && !(Vt[i] > -7.0f));
}

/* NF4 with a denormal block absmax: 1/absmax is Inf in float; every entry must still land
   within the documented 0.152 absmax of its value, and 0 must dequantise to 0. */
static void test_nf4_denormal_absmax(void **state) {
    (void)state;
    arena_fill();
    enum { C = 64 };
    float w[C], back[C];
    unsigned char q[4 + C / 2];
    size_t bytes = 0;
    const float a = 1e-39f; /* denormal (FLT_MIN ~ 1.18e-38), 1/a = Inf */
    assert_true(isinf(1.0f / a));
    OK(lort_nf4_size(C, 1, &bytes));
    assert_int_equal(bytes, sizeof q);
    for (int i = 0; i < C; ++i) w[i] = a * (float)(i - 32) / 32.0f; /* -a .. a(31/32), 0 at 32 */
    w[C - 1] = a;
    OK(lort_nf4_quantize(q, w, C, 1));
    OK(lort_nf4_dequantize(back, q, C, 1));
    int bad = 0;
    for (int i = 0; i < C; ++i)
        if (!(fabs((double)back[i] - (double)w[i]) <= 0.152 * (double)a + 2e-45)) ++bad;
    printf("  denormal absmax %.3g: %d of %d entries beyond 0.152 absmax; deq(0) = %g\n",
           (double)a, bad, C, (double)back[32]);
    assert_int_equal(bad, 0);
    assert_true(fabs((double)back[32]) <= 0.0);
}

/* AdamW: finite hyper-parameters whose products overflow are refused; a step that would make a
   parameter, m or v non-finite returns NONFINITE and writes nothing. */
static void test_adamw_overflow(void **state) {
    (void)state;
    arena_fill();
    float p[4] = {1.0f, -2.0f, 0.5f, 3.0f}, m[4] = {0}, v[4] = {0}, g[4] = {0.1f, 0.2f, -0.3f, 0.4f};
    float p0[4], m0[4], v0[4];
    memcpy(p0, p, sizeof p); memcpy(m0, m, sizeof m); memcpy(v0, v, sizeof v);
    lort_adamw_desc o = lort_adamw_default(1e20f);
    o.weight_decay = 1e20f; /* 1 - lr wd = -Inf */
    EXPECT(LORT_ERR_INVALID_ARG, lort_adamw_step(&o, p, m, v, g, 4, 1));
    o = lort_adamw_default(1e38f);
    o.beta1 = 0.999999f; /* lr / (1 - beta1) overflows */
    EXPECT(LORT_ERR_INVALID_ARG, lort_adamw_step(&o, p, m, v, g, 4, 1));
    o = lort_adamw_default(1e-3f);
    g[2] = 1e30f; /* g^2 overflows v */
    EXPECT(LORT_ERR_NONFINITE, lort_adamw_step(&o, p, m, v, g, 4, 1));
    g[2] = (float)NAN;
    EXPECT(LORT_ERR_NONFINITE, lort_adamw_step(&o, p, m, v, g, 4, 1));
    assert_memory_equal(p, p0, sizeof p);
    assert_memory_equal(m, m0, sizeof m);
    assert_memory_equal(v, v0, sizeof v);
    g[2] = -0.3f;
    OK(lort_adamw_step(&o, p, m, v, g, 4, 1));
    for (int i = 0; i < 4; ++i) assert_true(isfinite(p[i]) && fabs((double)p[i] - (double)p0[i]) > 0.0);
}

/* Contract gaps: the generic verbs validate the desc before forming factor
   pointers (r = d_in = INT_MAX would make params + r d_in overflow: UBSan in the asan build);
   iteration counts are bounded. */
static void test_contract_gaps(void **state) {
    (void)state;
    arena_fill();
    lort_adapter a;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_LORA;
    a.desc.lora.d_in = INT_MAX; a.desc.lora.d_out = 4; a.desc.lora.r = INT_MAX;
    a.params = G64;
    a.grads = O.p;
    EXPECT(LORT_ERR_OVERFLOW, lort_adapter_forward(&a, O.y, X, 1, NULL, 0, WORK, BIG));
    EXPECT(LORT_ERR_OVERFLOW, lort_adapter_backward(&a, O.dx, DY, X, 1, NULL, 0, WORK, BIG));
    EXPECT(LORT_ERR_OVERFLOW, lort_adapter_merge(&a, O.W, 1.0f, WORK, BIG));
    a.kind = LORT_KIND_LORAXS;
    a.desc.loraxs.d_in = INT_MAX; a.desc.loraxs.d_out = INT_MAX; a.desc.loraxs.r = INT_MAX;
    a.frozen = O.m;
    EXPECT(LORT_ERR_OVERFLOW, lort_adapter_forward(&a, O.y, X, 1, NULL, 0, WORK, BIG));
    /* bounded iteration counts */
    lort_svd_opts o;
    memset(&o, 0, sizeof o);
    size_t b = 0;
    OK(lort_svd_truncated_workspace_size(DO, DI, 2, &o, &b));
    o.power_iters = LORT_SVD_MAX_POWER_ITERS;
    OK(lort_svd_truncated_workspace_size(DO, DI, 2, &o, &b));
    o.power_iters = LORT_SVD_MAX_POWER_ITERS + 1;
    EXPECT(LORT_ERR_INVALID_ARG, lort_svd_truncated_workspace_size(DO, DI, 2, &o, &b));
    o.power_iters = INT_MAX;
    EXPECT(LORT_ERR_INVALID_ARG,
           lort_svd_truncated(O.U, O.S, O.Vt, W0, DI, DO, DI, 2, &o, WORK, BIG));
    o.power_iters = 0;
    o.max_sweeps = LORT_SVD_MAX_SWEEPS + 1;
    EXPECT(LORT_ERR_INVALID_ARG,
           lort_svd_truncated(O.U, O.S, O.Vt, W0, DI, DO, DI, 2, &o, WORK, BIG));
    EXPECT(LORT_ERR_INVALID_ARG,
           lort_svd_jacobi(O.U, O.S, O.Vt, W0, DI, DO, DI, INT_MAX, WORK, BIG));
    lort_loraxs_desc x = good_loraxs();
    x.svd.power_iters = INT_MAX;
    EXPECT(LORT_ERR_INVALID_ARG, lort_loraxs_init_workspace_size(&x, &b));
    lort_mpo_desc m;
    memset(&m, 0, sizeof m);
    m.n_cores = 2; m.row_factors[0] = 2; m.row_factors[1] = 5; m.col_factors[0] = 3;
    m.col_factors[1] = 4; m.bond = 2;
    OK(lort_mpo_init_workspace_size(&m, &b));
    m.svd.max_sweeps = INT_MAX;
    EXPECT(LORT_ERR_INVALID_ARG, lort_mpo_init_workspace_size(&m, &b));
}

/* ---- sizes that wrap a 32-bit size_t ---------------------------------------------------------
   Each size case found under gcc -m32: a size query either refuses with
   LORT_ERR_OVERFLOW, or returns at least the bytes computed here in 64-bit arithmetic from the
   documented buffers. In the m32 build the first three must overflow; in the 64-bit builds
   they fit (except the mpo and layout-wrap cases, which overflow everywhere). */
static void expect_size(const char *what, lort_status st, size_t got, uint64_t need) {
    int want_ok = fits_bytes(need, 1);
    printf("  %-44s need %.3g B: %s", what, (double)need, lort_status_string(st));
    if (st == LORT_OK) printf(" (%.3g B)", (double)got);
    printf("\n");
    if (want_ok) {
        assert_int_equal(st, LORT_OK);
        assert_true((uint64_t)got >= need);
    } else {
        assert_int_equal(st, LORT_ERR_OVERFLOW);
    }
}
static void test_sizes_wrap_32bit(void **state) {
    (void)state;
    size_t b = 0, cnt = 0;
    lort_status st;
    /* lora, d = 1, r = n = 65536: H = x A^T (n, r) in the cache and twice in the work */
    lort_lora_desc d = good_lora();
    d.d_in = d.d_out = 1;
    d.r = 65536;
    d.dropout = 0.0f;
    st = lort_lora_cache_size(&d, 65536, &b);
    expect_size("lora cache, d 1, r = n = 65536", st, b, 65536ull * 65536ull * 4u);
    st = lort_lora_workspace_size(&d, 65536, &b);
    expect_size("lora work, d 1, r = n = 65536", st, b, 2u * 65536ull * 65536ull * 4u);
    /* cp, d = 1, r = 32768, n = 131072: the low-rank intermediate (n, r) */
    lort_cp_desc c;
    memset(&c, 0, sizeof c);
    c.d = 1; c.heads = 1; c.layers = 1; c.r = 32768; c.matrices = 1;
    st = lort_cp_workspace_size(&c, 131072, &b);
    expect_size("cp work, d 1, r 32768, n 131072", st, b, 131072ull * 32768ull * 4u);
    st = lort_cp_cache_size(&c, 131072, &b);
    expect_size("cp cache, d 1, r 32768, n 131072", st, b, 131072ull * 32768ull * 4u);
    /* mpo, a 16384^2 matrix as (1,16384)(1,1)(16384,1) at n = 16: the factored step over the
       middle core has R = i_3 n j_1 = 2^32 rows (beyond int everywhere) */
    static const int mi[3] = {1, 1, 16384}, mj[3] = {16384, 1, 1};
    lort_mpo_desc m = tr_mpo_desc(3, mi, mj, 2);
    m.path = LORT_MPO_FACTORED;
    assert_int_equal(lort_mpo_workspace_size(&m, 16, &b), LORT_ERR_OVERFLOW);
    assert_int_equal(lort_mpo_cache_size(&m, 16, &b), LORT_ERR_OVERFLOW);
    m.path = LORT_MPO_AUTO;
    assert_int_equal(lort_mpo_workspace_size(&m, 16, &b), LORT_ERR_OVERFLOW);
    /* tt: rows cols = 2^32 and modes multiplying to 2^32 wrap to 0 on 32 bits (the param count
       then divided by zero) */
    lort_tt_desc t;
    memset(&t, 0, sizeof t);
    t.rows = 65536; t.cols = 65536; t.n_cores = 2; t.modes[0] = 65536; t.modes[1] = 65536; t.rank = 1;
    assert_int_equal(lort_tt_param_count(&t, &cnt), LORT_ERR_OVERFLOW);
    t.rows = 4; t.cols = 1; t.n_cores = 4;
    t.modes[0] = 65536; t.modes[1] = 65536; t.modes[2] = 1; t.modes[3] = 4;
    assert_int_equal(lort_tt_param_count(&t, &cnt), LORT_ERR_OVERFLOW);
    /* the layout guard: a slot ending just below PTRDIFF_MAX must not let
       later slots through. tt_adp, hidden 1780567235 (prime modes: d = 1), bottleneck 1,
       dropout 0.5, n 1295004738: three (n, hidden) slots of ~9.2e18 bytes each */
    lort_tt_adp_desc a;
    memset(&a, 0, sizeof a);
    a.hidden = 1780567235; a.bottleneck = 1; a.dropout = 0.5f;
    a.down.n_cores = 1; a.down.modes[0] = 1780567235; a.down.rank = 1;
    st = lort_tt_adp_workspace_size(&a, 1295004738, &b);
    expect_size("tt_adp work, hidden 1.8e9, n 1.3e9", st, b,
                2u * 1295004738ull * 1780567235ull * 4u);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_calls_work),
        cmocka_unit_test(test_null_pointers),
        cmocka_unit_test(test_invalid_dims),
        cmocka_unit_test(test_invalid_options),
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_sizes_wrap_32bit),
        cmocka_unit_test(test_contract_gaps),
        cmocka_unit_test(test_short_buffers),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_unsupported_kind),
        cmocka_unit_test(test_not_mergeable),
        cmocka_unit_test(test_no_convergence),
        cmocka_unit_test(test_nonfinite),
        cmocka_unit_test(test_svd_huge_norm),
        cmocka_unit_test(test_nf4_denormal_absmax),
        cmocka_unit_test(test_adamw_overflow),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_every_status_reached),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
