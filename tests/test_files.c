/* Block layouts (lort_adapter_blocks) and set files (lort_set_save / lort_set_load).

   - The blocks of every family against the layouts the header documents, written out here
     by hand: names, vectors, shapes, offsets that tile params and frozen; mpo core offsets
     equal lort_mpo_core_offset; the NF4 residual is lort_nf4_size bytes.
   - One set holding every family (lora, loraxs with its frozen factors, tt_rep, tt_adp, mpo
     with an fp32 and with an NF4 residual, cp and tucker each shared by several sites, one site
     unnamed) saved and loaded: descs, site lists and every param and frozen byte identical;
     forward, backward (with a gradient buffer) and merge of every site on the loaded set
     give memcmp-identical outputs to the original; saving the loaded set gives the same bytes.
   - Refusals with messages: not a set file, a newer format, a tampered desc, a missing block
     tensor, a short arena; every truncation and many single-byte corruptions are statuses. */
#define LORTENSOR_IMPLEMENTATION
#include "lort_test.h"

enum { NE = 8, NS = 11 };

typedef struct fx {
    lort_adapter e[NE];
    lort_set_site s[NS];
    lort_adapter_set set;
} fx;

static void tt(lort_tt_desc *t, int rows, int cols, int d, const int *modes, int rank) {
    t->rows = rows;
    t->cols = cols;
    t->n_cores = d;
    for (int i = 0; i < d; ++i) t->modes[i] = modes[i];
    t->rank = rank;
}

static void fx_make(fx *f) {
    static const int m444[3] = {4, 4, 4}, m434[3] = {4, 3, 4};
    memset(f, 0, sizeof *f);
    lort_adapter *e = f->e;
    e[0].kind = LORT_KIND_LORA;
    e[0].desc.lora.d_in = 12; e[0].desc.lora.d_out = 10; e[0].desc.lora.r = 3;
    e[0].desc.lora.alpha = 6.5f; e[0].desc.lora.rslora = 1; e[0].desc.lora.dropout = 0.1f;
    e[0].desc.lora.dropout_seed = 0xFEDCBA9876543210ull;
    e[1].kind = LORT_KIND_LORAXS;
    e[1].desc.loraxs.d_in = 12; e[1].desc.loraxs.d_out = 12; e[1].desc.loraxs.r = 4;
    e[1].desc.loraxs.alpha = 5.0f; e[1].desc.loraxs.svd.seed = 77; e[1].desc.loraxs.svd.power_iters = -1;
    e[2].kind = LORT_KIND_TT_REP;
    e[2].desc.tt_rep.d_in = 16; e[2].desc.tt_rep.d_out = 12; e[2].desc.tt_rep.r = 4;
    tt(&e[2].desc.tt_rep.A, 16, 4, 3, m444, 2);
    tt(&e[2].desc.tt_rep.B, 4, 12, 3, m434, 3);
    e[3].kind = LORT_KIND_TT_ADP;
    e[3].desc.tt_adp.hidden = 16; e[3].desc.tt_adp.bottleneck = 4; e[3].desc.tt_adp.act = LORT_ACT_GELU;
    e[3].desc.tt_adp.scale = 0.5f;
    e[3].desc.tt_adp.placement = LORT_TT_ADP_INPUT;
    tt(&e[3].desc.tt_adp.down, 16, 4, 3, m444, 2);
    for (int k = 4; k <= 5; ++k) {
        lort_mpo_desc *m = &e[k].desc.mpo;
        e[k].kind = LORT_KIND_MPO;
        m->n_cores = 2;
        m->row_factors[0] = 3; m->row_factors[1] = 4;
        m->col_factors[0] = 4; m->col_factors[1] = 4;
        m->bond = 3;
        m->residual = k == 4 ? LORT_MPO_RESIDUAL_F32 : LORT_MPO_RESIDUAL_NF4;
    }
    e[6].kind = LORT_KIND_CP;
    e[6].desc.cp.d = 16; e[6].desc.cp.heads = 2; e[6].desc.cp.layers = 3; e[6].desc.cp.r = 3;
    e[6].desc.cp.alpha = 2.0f;
    e[7].kind = LORT_KIND_TUCKER;
    e[7].desc.tucker.d = 16; e[7].desc.tucker.heads = 2; e[7].desc.tucker.layers = 3;
    e[7].desc.tucker.r1 = 3; e[7].desc.tucker.r2 = 2; e[7].desc.tucker.rl = 2;
    for (int i = 0; i < NE; ++i) {
        lort_adapter_sizes sz;
        OK(lort_adapter_sizes_query(&e[i], 1, &sz));
        e[i].params = tr_rand(sz.params);
        e[i].frozen = sz.frozen_bytes ? tr_rand((sz.frozen_bytes + 3) / 4) : NULL;
    }
    static const lort_set_site sites[NS] = {
        {"model.layers.0.self_attn.q_proj", 0, 0, 0}, {"model.layers.0.self_attn.k_proj", 1, 0, 0},
        {"model.layers.0.mlp.up_proj", 2, 0, 0},      {"model.layers.0.adapter", 3, 0, 0},
        {"model.layers.1.self_attn.q_proj", 4, 0, 0}, {"model.layers.1.self_attn.k_proj", 5, 0, 0},
        {"model.layers.2.self_attn.q_proj", 6, 0, LORT_CP_Q}, {"model.layers.2.self_attn.o_proj", 6, 2, LORT_CP_O},
        {NULL, 6, 1, LORT_CP_V},
        {"name with spaces and \"quotes\"", 7, 0, LORT_CP_K}, {"model.layers.3.self_attn.q_proj", 7, 2, LORT_CP_Q},
    };
    memcpy(f->s, sites, sizeof sites);
    f->set.entries = f->e;
    f->set.n_entries = NE;
    f->set.sites = f->s;
    f->set.n_sites = NS;
}
static void fx_free(fx *f) {
    for (int i = 0; i < NE; ++i) {
        free(f->e[i].params);
        free(f->e[i].frozen);
    }
}

typedef struct want_block {
    const char *name;
    int vector, ndim, shape[5];
} want_block;

static void check_blocks(const lort_adapter *a, const want_block *w, int n) {
    lort_block b[40];
    int count = -1;
    lort_adapter_sizes sz;
    OK(lort_adapter_sizes_query(a, 1, &sz));
    OK(lort_adapter_blocks(a, NULL, 0, &count));
    assert_int_equal(count, n);
    assert_int_equal(lort_adapter_blocks(a, b, n - 1, &count), LORT_ERR_WORKSPACE);
    OK(lort_adapter_blocks(a, b, 40, &count));
    size_t off[2] = {0, 0};
    for (int i = 0; i < n; ++i) {
        size_t cnt = 1;
        assert_string_equal(b[i].name, w[i].name);
        assert_int_equal(b[i].vector, w[i].vector);
        assert_int_equal(b[i].ndim, w[i].ndim);
        for (int d = 0; d < w[i].ndim; ++d) {
            assert_int_equal(b[i].shape[d], w[i].shape[d]);
            cnt *= (size_t)w[i].shape[d];
        }
        assert_int_equal(b[i].offset * sizeof(float), off[w[i].vector]);
        assert_int_equal(b[i].count, cnt);
        off[w[i].vector] += b[i].bytes_only ? cnt : cnt * sizeof(float);
    }
    assert_int_equal(off[0], sz.params * sizeof(float));
    assert_int_equal(off[1], sz.frozen_bytes);
}

static void test_blocks(void **state) {
    (void)state;
    fx f;
    fx_make(&f);
    const want_block lora[] = {{"A", 0, 2, {3, 12}}, {"B", 0, 2, {10, 3}}};
    check_blocks(&f.e[0], lora, 2);
    const want_block xs[] = {{"R", 0, 2, {4, 4}}, {"A", 1, 2, {4, 12}}, {"B", 1, 2, {12, 4}}};
    check_blocks(&f.e[1], xs, 3);
    /* W_A (16, 4) modes 4,4,4 rank 2: t = 1,2,2,1; W_B (4, 12) modes 4,3,4 rank 3 */
    const want_block rep[] = {{"A.core0", 0, 3, {1, 4, 2}}, {"A.core1", 0, 3, {2, 4, 2}}, {"A.core2", 0, 3, {2, 4, 1}},
                              {"B.core0", 0, 3, {1, 4, 3}}, {"B.core1", 0, 3, {3, 3, 3}}, {"B.core2", 0, 3, {3, 4, 1}}};
    check_blocks(&f.e[2], rep, 6);
    const want_block adp[] = {{"down.core0", 0, 3, {1, 4, 2}}, {"down.core1", 0, 3, {2, 4, 2}}, {"down.core2", 0, 3, {2, 4, 1}},
                              {"up.core0", 0, 3, {1, 4, 2}}, {"up.core1", 0, 3, {2, 4, 2}}, {"up.core2", 0, 3, {2, 4, 1}},
                              {"beta_d", 0, 1, {4}}, {"beta_u", 0, 1, {16}}};
    check_blocks(&f.e[3], adp, 8);
    const want_block mpo[] = {{"core0", 0, 4, {1, 3, 4, 3}}, {"core1", 0, 4, {3, 4, 4, 1}}, {"W_res", 1, 2, {12, 16}}};
    check_blocks(&f.e[4], mpo, 3);
    size_t nf4;
    OK(lort_nf4_size(12, 16, &nf4));
    const want_block q[] = {{"core0", 0, 4, {1, 3, 4, 3}}, {"core1", 0, 4, {3, 4, 4, 1}}, {"W_res_nf4", 1, 1, {(int)nf4}}};
    check_blocks(&f.e[5], q, 3);
    lort_block b[4];
    int cnt;
    OK(lort_adapter_blocks(&f.e[5], b, 4, &cnt));
    assert_int_equal(b[2].bytes_only, 1);
    for (int k = 0; k < 2; ++k) {
        size_t o;
        OK(lort_mpo_core_offset(&f.e[4].desc.mpo, k, &o));
        assert_int_equal(b[k].offset, o);
    }
    const want_block cp[] = {{"A", 0, 2, {16, 3}}, {"B", 0, 2, {3, 8}}, {"C_H", 0, 2, {2, 3}},
                             {"C_L", 0, 2, {3, 3}}, {"C_M", 0, 2, {4, 3}}};
    check_blocks(&f.e[6], cp, 5);
    /* tucker r1 3, r2 2, rh = rm = r1 = 3, rl 2 */
    const want_block tk[] = {{"core", 0, 5, {3, 2, 3, 2, 3}}, {"A", 0, 2, {16, 3}}, {"B", 0, 2, {2, 8}},
                             {"C_H", 0, 2, {2, 3}}, {"C_L", 0, 2, {3, 2}}, {"C_M", 0, 2, {4, 3}}};
    check_blocks(&f.e[7], tk, 6);
    lort_adapter bad = f.e[0];
    bad.desc.lora.r = 0;
    assert_int_equal(lort_adapter_blocks(&bad, b, 4, &cnt), LORT_ERR_INVALID_ARG);
    bad.kind = LORT_KIND_NONE;
    assert_int_equal(lort_adapter_blocks(&bad, b, 4, &cnt), LORT_ERR_UNSUPPORTED);
    fx_free(&f);
}

static unsigned char *save(const lort_adapter_set *set, size_t *len) {
    char msg[200];
    lort_status st = lort_set_save_size(set, len, msg, sizeof msg);
    if (st) printf("  save: %s\n", msg);
    OK(st);
    unsigned char *buf = (unsigned char *)malloc(*len);
    assert_int_equal(lort_set_save(set, buf, *len - 1, NULL, msg, sizeof msg), LORT_ERR_WORKSPACE);
    size_t written = 0;
    OK(lort_set_save(set, buf, *len, &written, msg, sizeof msg));
    assert_int_equal(written, *len);
    return buf;
}
static lort_status load(const void *buf, size_t len, void **arena, lort_adapter_set *set,
                        char *msg, size_t msg_size) {
    size_t need;
    lort_status st = lort_set_load_size(buf, len, &need, msg, msg_size);
    *arena = NULL;
    if (st) return st;
    *arena = malloc(need);
    return lort_set_load(buf, len, *arena, need, set, msg, msg_size);
}

static void test_round_trip(void **state) {
    (void)state;
    fx f;
    fx_make(&f);
    size_t len;
    unsigned char *buf = save(&f.set, &len);
    lort_adapter_set g;
    void *arena;
    char msg[200];
    lort_status st = load(buf, len, &arena, &g, msg, sizeof msg);
    if (st) printf("  load: %s\n", msg);
    OK(st);
    assert_int_equal(g.n_entries, NE);
    assert_int_equal(g.n_sites, NS);
    for (int i = 0; i < NS; ++i) {
        if (f.s[i].name) assert_string_equal(g.sites[i].name, f.s[i].name);
        else assert_null(g.sites[i].name);
        assert_int_equal(g.sites[i].entry, f.s[i].entry);
        assert_int_equal(g.sites[i].layer, f.s[i].layer);
        assert_int_equal(g.sites[i].matrix, f.s[i].matrix);
    }
    for (int i = 0; i < NE; ++i) {
        lort_adapter_sizes sz;
        assert_int_equal(g.entries[i].kind, f.e[i].kind);
        assert_memory_equal(&g.entries[i].desc, &f.e[i].desc, sizeof f.e[i].desc);
        assert_null(g.entries[i].grads);
        OK(lort_adapter_sizes_query(&f.e[i], 1, &sz));
        assert_memory_equal(g.entries[i].params, f.e[i].params, sz.params * sizeof(float));
        if (sz.frozen_bytes) assert_memory_equal(g.entries[i].frozen, f.e[i].frozen, sz.frozen_bytes);
    }
    /* every verb on every site: identical outputs */
    const int n = 3;
    for (int i = 0; i < NS; ++i) {
        lort_adapter a, b;
        lort_adapter_sizes sz;
        OK(lort_set_site_adapter(&f.set, i, &a));
        OK(lort_set_site_adapter(&g, i, &b));
        OK(lort_adapter_sizes_query(&a, n, &sz));
        size_t nx = (size_t)n * (size_t)sz.d_in, ny = (size_t)n * (size_t)sz.d_out;
        float *x = tr_rand(nx), *dy = tr_rand(ny), *y1 = tr_rand(ny), *y2 = tr_alloc(ny);
        float *dx1 = tr_alloc(nx), *dx2 = tr_alloc(nx), *g1 = tr_alloc(sz.params), *g2 = tr_alloc(sz.params);
        float *W1 = tr_rand((size_t)sz.d_out * (size_t)sz.d_in), *W2 = tr_alloc((size_t)sz.d_out * (size_t)sz.d_in);
        void *w = malloc(sz.work), *c1 = malloc(sz.cache + 1), *c2 = malloc(sz.cache + 1);
        memcpy(y2, y1, ny * sizeof(float));
        memcpy(W2, W1, (size_t)sz.d_out * (size_t)sz.d_in * sizeof(float));
        a.grads = g1;
        b.grads = g2;
        OK(lort_adapter_forward(&a, y1, x, n, c1, sz.cache, w, sz.work));
        OK(lort_adapter_forward(&b, y2, x, n, c2, sz.cache, w, sz.work));
        assert_memory_equal(y1, y2, ny * sizeof(float));
        OK(lort_adapter_backward(&a, dx1, dy, x, n, c1, sz.cache, w, sz.work));
        OK(lort_adapter_backward(&b, dx2, dy, x, n, c2, sz.cache, w, sz.work));
        assert_memory_equal(dx1, dx2, nx * sizeof(float));
        assert_memory_equal(g1, g2, sz.params * sizeof(float));
        lort_status m1 = lort_adapter_merge(&a, W1, 1.0f, w, sz.work);
        assert_int_equal(lort_adapter_merge(&b, W2, 1.0f, w, sz.work), m1);
        assert_memory_equal(W1, W2, (size_t)sz.d_out * (size_t)sz.d_in * sizeof(float));
        free(x); free(dy); free(y1); free(y2); free(dx1); free(dx2); free(g1); free(g2);
        free(W1); free(W2); free(w); free(c1); free(c2);
    }
    /* the loaded set saves to the same bytes */
    size_t len2;
    unsigned char *buf2 = save(&g, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(buf2, buf, len);
    printf("  %d entries, %d sites: %zu bytes\n", NE, NS, len);
    free(buf2);
    free(arena);
    free(buf);
    fx_free(&f);
}

static void test_refusals(void **state) {
    (void)state;
    fx f;
    fx_make(&f);
    size_t len;
    unsigned char *buf = save(&f.set, &len);
    lort_adapter_set g, sentinel;
    void *arena;
    char msg[200];
    memset(&g, 0x5A, sizeof g);
    sentinel = g;
    /* a short arena */
    size_t need;
    OK(lort_set_load_size(buf, len, &need, NULL, 0));
    arena = malloc(need);
    assert_int_equal(lort_set_load(buf, len, arena, need - 1, &g, msg, sizeof msg), LORT_ERR_WORKSPACE);
    assert_memory_equal(&g, &sentinel, sizeof g);
    free(arena);
    /* a plain safetensors file */
    float v = 1.0f;
    lort_st_write_tensor t;
    memset(&t, 0, sizeof t);
    t.name = "w"; t.ndim = 1; t.shape[0] = 1; t.data = &v;
    size_t pl;
    OK(lort_st_write_size(&t, 1, NULL, 0, &pl, NULL, 0));
    unsigned char *plain = (unsigned char *)malloc(pl);
    OK(lort_st_write(plain, pl, &t, 1, NULL, 0, NULL, NULL, 0));
    assert_int_equal(load(plain, pl, &arena, &g, msg, sizeof msg), LORT_ERR_FORMAT);
    assert_string_equal(msg, "not a lortensor set file: no lortensor.format in __metadata__");
    free(arena);
    free(plain);
    /* edits of the header text that keep the JSON valid and the length unchanged */
    struct { const char *from, *to; lort_status want; const char *msg; } edits[] = {
        {"\"lortensor.format\":\"1\"", "\"lortensor.format\":\"2\"", LORT_ERR_UNSUPPORTED, "lortensor.format 2 is newer than this reader (1)"},
        {"kind=lora d_in=12", "kind=lora d_in=1x", LORT_ERR_FORMAT, "lortensor.entry.0: bad value of desc field d_in"},
        {"kind=lora d_in=12", "kind=lora q_in=12", LORT_ERR_FORMAT, "lortensor.entry.0: unknown desc field"},
        {"kind=lora d_in=12", "kind=lora d_in=13", LORT_ERR_FORMAT, "lortensor.entry.0: tensor 0.A has the wrong dtype or shape for its desc"},
        {"kind=lora d_in=12", "kind=lora d_in=-1", LORT_ERR_FORMAT, "lortensor.entry.0: invalid desc: invalid argument: a size is <= 0 or an option is out of range"},
        {"kind=lora d_in=12", "kind=lorb d_in=12", LORT_ERR_UNSUPPORTED, "lortensor.entry.0: unknown kind"},
        {"\"0.A\"", "\"0.Z\"", LORT_ERR_FORMAT, "lortensor.entry.0: no tensor 0.A"},
        {"6 2 3 model", "6 9 3 model", LORT_ERR_FORMAT, "site 7 (model.layers.2.self_attn.o_proj): layer 9 out of range [0, 3)"},
        {"6 2 3 model", "6 2 3-model", LORT_ERR_FORMAT, "lortensor.sites line 7 is not \"entry layer matrix [name]\""},
        {"\"lortensor.entries\":\"8\"", "\"lortensor.entries\":\"9\"", LORT_ERR_FORMAT, "lortensor.entry.8: missing"},
        {"\"lortensor.entries\":\"8\"", "\"lortensor.entries\":\"7\"", LORT_ERR_FORMAT, "tensors that belong to no entry's block"},
    };
    for (size_t k = 0; k < sizeof edits / sizeof edits[0]; ++k) {
        unsigned char *b = (unsigned char *)malloc(len);
        memcpy(b, buf, len);
        size_t fl = strlen(edits[k].from);
        assert_int_equal(fl, strlen(edits[k].to));
        unsigned char *p = NULL;
        for (size_t i = 0; i + fl <= len && !p; ++i)
            if (memcmp(b + i, edits[k].from, fl) == 0) p = b + i;
        if (!p) printf("  no %s in the file\n", edits[k].from);
        assert_non_null(p);
        memcpy(p, edits[k].to, fl);
        memset(&g, 0x5A, sizeof g);
        lort_status st = load(b, len, &arena, &g, msg, sizeof msg);
        if (st != edits[k].want || strcmp(msg, edits[k].msg) != 0)
            printf("  %s: status %d \"%s\"; want %d \"%s\"\n", edits[k].to, (int)st, msg, (int)edits[k].want, edits[k].msg);
        assert_int_equal(st, edits[k].want);
        assert_string_equal(msg, edits[k].msg);
        assert_memory_equal(&g, &sentinel, sizeof g);
        free(arena);
        free(b);
    }
    /* a site name with a newline cannot be saved */
    f.s[0].name = "a\nb";
    assert_int_equal(lort_set_save_size(&f.set, &need, msg, sizeof msg), LORT_ERR_INVALID_ARG);
    assert_string_equal(msg, "site 0: a newline in the name");
    free(buf);
    fx_free(&f);
}

/* Truncations and byte changes: statuses, never a crash (the ASan build checks reads). */
static void test_mutations(void **state) {
    (void)state;
    fx f;
    fx_make(&f);
    size_t len;
    unsigned char *buf = save(&f.set, &len);
    int ok = 0, bad = 0;
    for (size_t l = 0; l < len; l += 7) {
        unsigned char *b = (unsigned char *)malloc(l ? l : 1);
        memcpy(b, buf, l);
        lort_adapter_set g;
        void *arena;
        assert_int_not_equal(load(b, l, &arena, &g, NULL, 0), LORT_OK);
        free(arena);
        free(b);
    }
    uint64_t h = 0;
    for (int i = 7; i >= 0; --i) h = (h << 8) | buf[i];
    static const unsigned char vals[] = {'0', '9', ' ', '-', '"', 'x', '\n'};
    for (size_t pos = 8; pos < 8 + h; ++pos)
        for (size_t v = 0; v < sizeof vals; ++v) {
            unsigned char *b = (unsigned char *)malloc(len);
            memcpy(b, buf, len);
            b[pos] = vals[v];
            lort_adapter_set g;
            void *arena;
            lort_status st = load(b, len, &arena, &g, NULL, 0);
            if (st == LORT_OK) {
                ++ok;
                char msg[100];
                OK(lort_set_validate(&g, msg, sizeof msg));
            } else {
                ++bad;
                assert_true(st == LORT_ERR_FORMAT || st == LORT_ERR_UNSUPPORTED);
            }
            free(arena);
            free(b);
        }
    printf("  header of %zu bytes x %zu values: %d loaded, %d refused\n", (size_t)h, sizeof vals, ok, bad);
    free(buf);
    fx_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
