/* Adapter sets (lort_adapter_set): named sites over per-site entries and shared joint blocks.

   - A set of two lora sites and one cp block with three sites: every site's adapter, taken
     with lort_set_site_adapter, gives forward and backward outputs bit-identical (memcmp) to
     the family kernels called directly with that site's factors and (layer, matrix).
   - Backward of the three cp sites through the set accumulates into the one gradient block:
     equal to the sum of the three direct calls (same order, so bit-identical).
   - lort_set_find: exact names only; lort_set_validate refuses an entry index out of range, a
     joint layer or matrix out of range, a duplicate name, a negative count, NULL arrays, and
     says why in the caller's message buffer (exact text; truncated and NUL-terminated when the
     buffer is short; "" on success; bytes past the terminator untouched). */
#include "lort_test.h"

enum { D = 16, HEADS = 2, LAYERS = 3, R = 4, N = 5 };

typedef struct fixture {
    lort_adapter entries[3];
    lort_set_site sites[5];
    lort_adapter_set set;
    float *lora_p[2], *cp_p, *cp_g;
} fixture;

static void fixture_make(fixture *f) {
    lort_rng rng;
    size_t np = 0;
    memset(f, 0, sizeof *f);
    lort_rng_seed(&rng, 7);
    for (int i = 0; i < 2; ++i) {
        lort_adapter *e = &f->entries[i];
        e->kind = LORT_KIND_LORA;
        e->desc.lora.d_in = D;
        e->desc.lora.d_out = D + 2 * i;
        e->desc.lora.r = R;
        e->desc.lora.alpha = 8.0f;
        OK(lort_lora_param_count(&e->desc.lora, &np));
        f->lora_p[i] = tr_rand(np); /* B != 0, so the adapter contributes */
        e->params = f->lora_p[i];
    }
    lort_adapter *c = &f->entries[2];
    c->kind = LORT_KIND_CP;
    c->desc.cp.d = D;
    c->desc.cp.heads = HEADS;
    c->desc.cp.layers = LAYERS;
    c->desc.cp.r = R;
    OK(lort_cp_param_count(&c->desc.cp, &np));
    f->cp_p = tr_rand(np);
    f->cp_g = tr_alloc(np);
    c->params = f->cp_p;
    c->grads = f->cp_g;
    c->layer = 99; /* ignored on entries: the site gives it */
    static const lort_set_site sites[5] = {
        {"model.layers.0.self_attn.q_proj", 0, 0, 0},
        {"model.layers.0.self_attn.v_proj", 1, 0, 0},
        {"model.layers.0.self_attn.k_proj", 2, 0, LORT_CP_K},
        {"model.layers.2.self_attn.o_proj", 2, 2, LORT_CP_O},
        {"model.layers.1.self_attn.q_proj", 2, 1, LORT_CP_Q},
    };
    memcpy(f->sites, sites, sizeof sites);
    f->set.entries = f->entries;
    f->set.n_entries = 3;
    f->set.sites = f->sites;
    f->set.n_sites = 5;
}

static void fixture_free(fixture *f) {
    free(f->lora_p[0]);
    free(f->lora_p[1]);
    free(f->cp_p);
    free(f->cp_g);
}

static void test_set_find(void **state) {
    (void)state;
    fixture f;
    int site = -1;
    fixture_make(&f);
    OK(lort_set_validate(&f.set, NULL, 0));
    for (int i = 0; i < 5; ++i) {
        OK(lort_set_find(&f.set, f.sites[i].name, &site));
        assert_int_equal(site, i);
    }
    site = 42;
    assert_int_equal(lort_set_find(&f.set, "model.layers.0.self_attn", &site), LORT_ERR_NOT_FOUND);
    assert_int_equal(lort_set_find(&f.set, "MODEL.layers.0.self_attn.q_proj", &site),
                     LORT_ERR_NOT_FOUND);
    assert_int_equal(site, 42);
    f.sites[1].name = NULL; /* unnamed sites are skipped by find, allowed by validate */
    OK(lort_set_validate(&f.set, NULL, 0));
    assert_int_equal(lort_set_find(&f.set, "model.layers.0.self_attn.v_proj", &site),
                     LORT_ERR_NOT_FOUND);
    assert_int_equal(lort_set_find(&f.set, NULL, &site), LORT_ERR_NULL);
    assert_int_equal(lort_set_find(NULL, "x", &site), LORT_ERR_NULL);
    fixture_free(&f);
}

static void test_set_validate_refuses(void **state) {
    (void)state;
    fixture f;
    lort_adapter a;
    fixture_make(&f);
    f.sites[3].entry = 3;
    assert_int_equal(lort_set_validate(&f.set, NULL, 0), LORT_ERR_INVALID_ARG);
    assert_int_equal(lort_set_site_adapter(&f.set, 3, &a), LORT_ERR_INVALID_ARG);
    f.sites[3].entry = -1;
    assert_int_equal(lort_set_validate(&f.set, NULL, 0), LORT_ERR_INVALID_ARG);
    f.sites[3].entry = 2;
    f.sites[3].layer = LAYERS;
    assert_int_equal(lort_set_validate(&f.set, NULL, 0), LORT_ERR_INVALID_ARG);
    f.sites[3].layer = -1;
    assert_int_equal(lort_set_validate(&f.set, NULL, 0), LORT_ERR_INVALID_ARG);
    f.sites[3].layer = 2;
    f.sites[3].matrix = 4;
    assert_int_equal(lort_set_validate(&f.set, NULL, 0), LORT_ERR_INVALID_ARG);
    f.sites[3].matrix = LORT_CP_O;
    OK(lort_set_validate(&f.set, NULL, 0));
    f.sites[4].name = f.sites[0].name;
    assert_int_equal(lort_set_validate(&f.set, NULL, 0), LORT_ERR_INVALID_ARG);
    f.sites[4].name = "model.layers.1.self_attn.q_proj";
    f.entries[0].desc.lora.r = 0;
    assert_int_equal(lort_set_validate(&f.set, NULL, 0), LORT_ERR_INVALID_ARG);
    f.entries[0].desc.lora.r = R;
    assert_int_equal(lort_set_site_adapter(&f.set, 5, &a), LORT_ERR_INVALID_ARG);
    assert_int_equal(lort_set_site_adapter(&f.set, -1, &a), LORT_ERR_INVALID_ARG);
    assert_int_equal(lort_set_site_adapter(&f.set, 0, NULL), LORT_ERR_NULL);
    f.set.n_sites = -1;
    assert_int_equal(lort_set_validate(&f.set, NULL, 0), LORT_ERR_INVALID_ARG);
    f.set.n_sites = 5;
    f.set.sites = NULL;
    assert_int_equal(lort_set_validate(&f.set, NULL, 0), LORT_ERR_NULL);
    f.set.sites = f.sites;
    f.set.n_entries = 0;
    assert_int_equal(lort_set_validate(&f.set, NULL, 0), LORT_ERR_INVALID_ARG);
    f.set.n_entries = 3;
    OK(lort_set_validate(&f.set, NULL, 0));
    lort_adapter_set empty = {NULL, 0, NULL, 0};
    OK(lort_set_validate(&empty, NULL, 0));
    assert_int_equal(lort_set_validate(NULL, NULL, 0), LORT_ERR_NULL);
    fixture_free(&f);
}

static void test_set_validate_messages(void **state) {
    (void)state;
    fixture f;
    char msg[128];
    fixture_make(&f);
    f.sites[3].layer = 6;
    memset(msg, 'x', sizeof msg);
    assert_int_equal(lort_set_validate(&f.set, msg, sizeof msg), LORT_ERR_INVALID_ARG);
    assert_string_equal(msg, "site 3 (model.layers.2.self_attn.o_proj): layer 6 out of range [0, 3)");
    f.sites[3].layer = 2;
    f.sites[3].matrix = -4;
    assert_int_equal(lort_set_validate(&f.set, msg, sizeof msg), LORT_ERR_INVALID_ARG);
    assert_string_equal(msg, "site 3 (model.layers.2.self_attn.o_proj): matrix -4 out of range [0, 4)");
    f.sites[3].matrix = LORT_CP_O;
    f.sites[1].entry = 3;
    f.sites[1].name = NULL;
    assert_int_equal(lort_set_validate(&f.set, msg, sizeof msg), LORT_ERR_INVALID_ARG);
    assert_string_equal(msg, "site 1: entry 3 out of range [0, 3)");
    f.sites[1].entry = 1;
    f.sites[1].name = "model.layers.0.self_attn.v_proj";
    f.sites[4].name = "model.layers.0.self_attn.q_proj";
    assert_int_equal(lort_set_validate(&f.set, msg, sizeof msg), LORT_ERR_INVALID_ARG);
    assert_string_equal(msg, "site 4 (model.layers.0.self_attn.q_proj): same name as site 0");
    /* a short buffer: truncated to 9 chars + NUL, the byte after it untouched */
    memset(msg, 'x', sizeof msg);
    assert_int_equal(lort_set_validate(&f.set, msg, 10), LORT_ERR_INVALID_ARG);
    assert_string_equal(msg, "site 4 (m");
    assert_int_equal(msg[10], 'x');
    f.sites[4].name = "model.layers.1.self_attn.q_proj";
    f.entries[1].desc.lora.d_out = -3;
    assert_int_equal(lort_set_validate(&f.set, msg, sizeof msg), LORT_ERR_INVALID_ARG);
    assert_string_equal(msg, "site 1 (model.layers.0.self_attn.v_proj): entry 1: invalid argument: "
                             "a size is <= 0 or an option is out of range");
    f.entries[1].desc.lora.d_out = D;
    OK(lort_set_validate(&f.set, msg, sizeof msg));
    assert_string_equal(msg, "");
    OK(lort_set_validate(&f.set, msg, 0)); /* size 0: nothing written */
    fixture_free(&f);
}

/* Each site through the set == the family kernel called directly, bit for bit. */
static void test_set_sites_match_family_kernels(void **state) {
    (void)state;
    fixture f;
    fixture_make(&f);
    size_t np = 0;
    OK(lort_cp_param_count(&f.entries[2].desc.cp, &np));
    float *gsum = tr_alloc(np);
    for (int i = 0; i < 5; ++i) {
        lort_adapter a;
        lort_adapter_sizes sz;
        OK(lort_set_site_adapter(&f.set, i, &a));
        assert_int_equal(a.layer, f.sites[i].layer);
        assert_int_equal(a.matrix, f.sites[i].matrix);
        OK(lort_adapter_sizes_query(&a, N, &sz));
        float *x = tr_rand((size_t)N * (size_t)sz.d_in);
        float *dy = tr_rand((size_t)N * (size_t)sz.d_out);
        float *y1 = tr_rand((size_t)N * (size_t)sz.d_out);
        float *y2 = tr_alloc((size_t)N * (size_t)sz.d_out);
        float *dx1 = tr_alloc((size_t)N * (size_t)sz.d_in);
        float *dx2 = tr_alloc((size_t)N * (size_t)sz.d_in);
        void *work = malloc(sz.work), *cache = malloc(sz.cache ? sz.cache : 1);
        memcpy(y2, y1, (size_t)N * (size_t)sz.d_out * sizeof(float));
        OK(lort_adapter_forward(&a, y1, x, N, cache, sz.cache, work, sz.work));
        OK(lort_adapter_backward(&a, dx1, dy, x, N, cache, sz.cache, work, sz.work));
        if (a.kind == LORT_KIND_LORA) {
            const lort_lora_desc *d = &a.desc.lora;
            const float *A = a.params, *B = a.params + (size_t)d->r * (size_t)d->d_in;
            OK(lort_lora_forward(d, y2, x, A, B, N, NULL, 0, work, sz.work));
            OK(lort_lora_backward(d, dx2, NULL, NULL, dy, x, A, B, N, NULL, 0, work, sz.work));
        } else {
            const lort_cp_desc *d = &a.desc.cp;
            OK(lort_cp_forward(d, y2, x, a.params, f.sites[i].layer, f.sites[i].matrix, N, NULL,
                               0, work, sz.work));
            OK(lort_cp_backward(d, dx2, gsum, dy, x, a.params, f.sites[i].layer,
                                f.sites[i].matrix, N, NULL, 0, work, sz.work));
        }
        assert_memory_equal(y1, y2, (size_t)N * (size_t)sz.d_out * sizeof(float));
        assert_memory_equal(dx1, dx2, (size_t)N * (size_t)sz.d_in * sizeof(float));
        free(x); free(dy); free(y1); free(y2); free(dx1); free(dx2); free(work); free(cache);
    }
    /* the three cp sites accumulated into the one gradient block, in the same order */
    assert_memory_equal(f.cp_g, gsum, np * sizeof(float));
    double norm = 0.0;
    for (size_t k = 0; k < np; ++k) norm += (double)gsum[k] * (double)gsum[k];
    assert_true(norm > 0.0);
    free(gsum);
    fixture_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_find),
        cmocka_unit_test(test_set_validate_refuses),
        cmocka_unit_test(test_set_validate_messages),
        cmocka_unit_test(test_set_sites_match_family_kernels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
