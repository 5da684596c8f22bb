/* lort_adapter_validate: the status of the family's size queries, and words that name the
   family and the field.

   For representative errors of every family (lora, loraxs, tt_rep, tt_adp, cp, tucker, mpo)
   and an unknown kind: the exact message, and a status equal to lort_adapter_sizes_query's
   on the same adapter (a site out of range: LORT_ERR_INVALID_ARG as the joint kernels).
   Valid descs give LORT_OK and "". A short buffer is truncated and NUL-terminated; the byte
   after it is untouched. Floats print as plain decimals ("dropout = 1.5"). */
#include "lort_test_adapters.h"

/* validate == the size query's status, and the exact words */
static void expect(const lort_adapter *a, lort_status want, const char *words) {
    char msg[160];
    lort_adapter_sizes sz;
    lort_status got, sq;
    memset(msg, 'x', sizeof msg);
    got = lort_adapter_validate(a, msg, sizeof msg);
    if (strcmp(msg, words) != 0) printf("  got \"%s\"\n  want \"%s\"\n", msg, words);
    assert_string_equal(msg, words);
    assert_int_equal(got, want);
    sq = lort_adapter_sizes_query(a, 1, &sz);
    /* a joint site out of range: the size query checks the matrix, the kernels the layer */
    if (strstr(words, "site layer") == NULL) assert_int_equal(sq, want);
}

static void test_lora_loraxs(void **state) {
    (void)state;
    lort_adapter a = ta_lora(8, 6, 2);
    expect(&a, LORT_OK, "");
    a.desc.lora.r = 0;
    expect(&a, LORT_ERR_INVALID_ARG, "lora: r = 0, must be > 0");
    a.desc.lora.r = 2;
    a.desc.lora.d_in = -4;
    expect(&a, LORT_ERR_INVALID_ARG, "lora: d_in = -4, must be > 0");
    a.desc.lora.d_in = 8;
    a.desc.lora.dropout = 1.5f;
    expect(&a, LORT_ERR_INVALID_ARG, "lora: dropout = 1.5, must be in [0, 1)");
    a.desc.lora.dropout = 0.0f;
    a.desc.lora.alpha = (float)INFINITY;
    expect(&a, LORT_ERR_INVALID_ARG, "lora: alpha = inf, must be finite");
    a.desc.lora.alpha = 0.0f;
    a.desc.lora.init = 7;
    expect(&a, LORT_ERR_INVALID_ARG, "lora: init = 7, must be a lort_lora_init_kind");
    a.desc.lora.init = 0;
    a.desc.lora.r = INT32_MAX;
    a.desc.lora.d_in = INT32_MAX;
    a.desc.lora.d_out = INT32_MAX;
    expect(&a, LORT_ERR_OVERFLOW, "lora: r (d_in + d_out) or d_in d_out floats overflow size_t");

    a = ta_loraxs(8, 6, 7);
    expect(&a, LORT_ERR_SHAPE, "loraxs: r = 7 > min(d_in, d_out) = 6");
    a.desc.loraxs.r = 3;
    a.desc.loraxs.init_std = -0.25f;
    expect(&a, LORT_ERR_INVALID_ARG, "loraxs: init_std = -0.25, must be finite and >= 0");
    a.desc.loraxs.init_std = 0.0f;
    a.desc.loraxs.dropout = -0.001f;
    expect(&a, LORT_ERR_INVALID_ARG, "loraxs: dropout = -0.001, must be in [0, 1)");
    a.desc.loraxs.dropout = 0.0f;
    a.desc.loraxs.svd.oversample = -1;
    expect(&a, LORT_ERR_INVALID_ARG, "loraxs: svd.oversample = -1, must be >= 0");
    a.desc.loraxs.svd.oversample = 0;
    expect(&a, LORT_OK, "");
}

static void test_tt_families(void **state) {
    (void)state;
    lort_adapter a = ta_tt_rep(2, 2); /* W_A (16, 4) = 64 = 4 4 4, W_B (4, 12) = 48 = 4 12 */
    expect(&a, LORT_OK, "");
    a.desc.tt_rep.A.modes[1] = 0;
    expect(&a, LORT_ERR_INVALID_ARG, "tt_rep: A: modes[1] = 0, must be > 0");
    a.desc.tt_rep.A.modes[1] = 5;
    expect(&a, LORT_ERR_SHAPE, "tt_rep: A: prod of modes 80 != rows cols 64");
    a.desc.tt_rep.A.modes[1] = 4;
    a.desc.tt_rep.B.rows = 5;
    expect(&a, LORT_ERR_SHAPE, "tt_rep: B: (rows, cols) = (5, 0), must be (4, 12) or 0");
    a.desc.tt_rep.B.rows = 0;
    a.desc.tt_rep.B.ranks[2] = 3;
    expect(&a, LORT_ERR_INVALID_ARG, "tt_rep: B: ranks[2] = 3, must be 0 or 1");
    a.desc.tt_rep.B.ranks[2] = 0;
    a.desc.tt_rep.B.rank = 0;
    expect(&a, LORT_ERR_INVALID_ARG, "tt_rep: B: ranks[1] = 0 takes rank = 0, must be > 0");
    a.desc.tt_rep.B.rank = 2;
    a.desc.tt_rep.A.n_cores = 17;
    expect(&a, LORT_ERR_INVALID_ARG, "tt_rep: A: n_cores = 17 out of range [1, 17)");

    static const int md[2] = {8, 8};
    a = ta_kind(LORT_KIND_TT_ADP);
    a.desc.tt_adp.hidden = 16;
    a.desc.tt_adp.bottleneck = 4;
    ta_tt_modes(&a.desc.tt_adp.down, 2, md, 3);
    expect(&a, LORT_OK, "");
    a.desc.tt_adp.act = 9;
    expect(&a, LORT_ERR_INVALID_ARG, "tt_adp: act = 9, must be a lort_act");
    a.desc.tt_adp.act = 0;
    a.desc.tt_adp.bottleneck = 5;
    expect(&a, LORT_ERR_SHAPE, "tt_adp: down: prod of modes 64 != rows cols 80");
    a.desc.tt_adp.bottleneck = 4;
    a.desc.tt_adp.up.cols = 15;
    expect(&a, LORT_ERR_SHAPE, "tt_adp: up: (rows, cols) = (0, 15), must be (4, 16) or 0");
}

static void test_joint(void **state) {
    (void)state;
    lort_adapter a = ta_cp(64, 4, 6, 8);
    expect(&a, LORT_OK, "");
    a.layer = 6;
    expect(&a, LORT_ERR_INVALID_ARG, "cp: site layer 6 out of range [0, 6)");
    a.layer = 5;
    a.matrix = 4;
    expect(&a, LORT_ERR_INVALID_ARG, "cp: site matrix 4 out of range [0, 4)");
    a.matrix = 3;
    a.desc.cp.heads = 5;
    expect(&a, LORT_ERR_SHAPE, "cp: d = 64 not divisible by heads = 5");
    a.desc.cp.heads = 4;
    a.desc.cp.kv_heads = 3;
    expect(&a, LORT_ERR_SHAPE, "cp: kv_heads = 3 does not divide heads = 4");
    a.desc.cp.kv_heads = 2;
    a.desc.cp.head_side = LORT_CP_HEADS_IN;
    expect(&a, LORT_ERR_UNSUPPORTED, "cp: GQA (kv_heads != heads) needs head_side LORT_CP_HEADS_OUT");
    a.desc.cp.head_side = 2;
    expect(&a, LORT_ERR_INVALID_ARG, "cp: head_side = 2, must be LORT_CP_HEADS_OUT or _IN");
    a.desc.cp.head_side = 0;
    a.desc.cp.r = -1;
    expect(&a, LORT_ERR_INVALID_ARG, "cp: r = -1, must be > 0");
    a.desc.cp.r = 8;
    a.desc.cp.init_scale = (float)NAN;
    expect(&a, LORT_ERR_INVALID_ARG, "cp: init_scale = nan, must be finite");

    a = ta_tucker(64, 4, 2, 4, 4);
    a.desc.tucker.matrices = 3;
    expect(&a, LORT_OK, "");
    a.desc.tucker.r2 = 0;
    expect(&a, LORT_ERR_INVALID_ARG, "tucker: r2 = 0, must be > 0");
    a.desc.tucker.r2 = 4;
    a.desc.tucker.rl = -2;
    expect(&a, LORT_ERR_INVALID_ARG, "tucker: rl = -2, must be >= 0 (0 = r1)");
    a.desc.tucker.rl = 0;
    a.desc.tucker.alpha = -(float)INFINITY;
    expect(&a, LORT_ERR_INVALID_ARG, "tucker: alpha = -inf, must be finite");
    a.desc.tucker.alpha = 0.0f;
    a.matrix = 3;
    expect(&a, LORT_ERR_INVALID_ARG, "tucker: site matrix 3 out of range [0, 3)");
    a.matrix = 0;
    a.desc.tucker.layers = 0;
    expect(&a, LORT_ERR_INVALID_ARG, "tucker: layers = 0, must be > 0");
}

static void test_mpo_and_kind(void **state) {
    (void)state;
    static const int rows[3] = {4, 5, 3}, cols[3] = {2, 4, 2};
    lort_adapter a = ta_mpo3(rows, cols, 4);
    a.desc.mpo.d_out = 64;
    expect(&a, LORT_ERR_SHAPE, "mpo: prod of out modes 60 != d_out 64");
    a.desc.mpo.row_factors[1] = 4;
    a.desc.mpo.row_factors[2] = 4;
    expect(&a, LORT_OK, "");
    a.desc.mpo.d_in = 20;
    expect(&a, LORT_ERR_SHAPE, "mpo: prod of in modes 16 != d_in 20");
    a.desc.mpo.d_in = 0;
    a.desc.mpo.col_factors[2] = 0;
    expect(&a, LORT_ERR_INVALID_ARG, "mpo: col_factors[2] = 0, must be > 0");
    a.desc.mpo.col_factors[2] = 2;
    a.desc.mpo.bond = 0;
    expect(&a, LORT_ERR_INVALID_ARG, "mpo: bonds[1] = 0 takes bond = 0, must be > 0");
    a.desc.mpo.bond = 4;
    a.desc.mpo.bonds[3] = 2;
    expect(&a, LORT_ERR_INVALID_ARG, "mpo: bonds[3] = 2, must be 0 or 1");
    a.desc.mpo.bonds[3] = 0;
    a.desc.mpo.n_cores = 0;
    expect(&a, LORT_ERR_INVALID_ARG, "mpo: n_cores = 0 out of range [1, 17)");
    a.desc.mpo.n_cores = 3;
    a.desc.mpo.residual = 3;
    expect(&a, LORT_ERR_INVALID_ARG, "mpo: residual = 3, must be a lort_mpo_residual");

    a.kind = (lort_kind)42;
    expect(&a, LORT_ERR_UNSUPPORTED, "adapter: kind 42 is not a lort_kind");
    assert_int_equal(lort_adapter_validate(NULL, NULL, 0), LORT_ERR_NULL);
}

static void test_buffer_and_floats(void **state) {
    (void)state;
    char msg[64];
    lort_adapter a = ta_lora(8, 6, 2);
    a.desc.lora.r = -12345;
    memset(msg, 'x', sizeof msg);
    assert_int_equal(lort_adapter_validate(&a, msg, 12), LORT_ERR_INVALID_ARG);
    assert_string_equal(msg, "lora: r = -");
    assert_int_equal(msg[12], 'x');
    assert_int_equal(lort_adapter_validate(&a, NULL, 0), LORT_ERR_INVALID_ARG);
    a.desc.lora.r = 2;
    static const struct { float v; const char *s; } fl[] = {
        {1.0f, "lora: dropout = 1, must be in [0, 1)"},
        {1234567.0f, "lora: dropout = 1234570, must be in [0, 1)"},
        {3e12f, "lora: dropout = 3e+12, must be in [0, 1)"},
        {-2.5e-7f, "lora: dropout = -2.5e-7, must be in [0, 1)"},
        {-0.0125f, "lora: dropout = -0.0125, must be in [0, 1)"},
    };
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; ++i) {
        a.desc.lora.dropout = fl[i].v;
        expect(&a, LORT_ERR_INVALID_ARG, fl[i].s);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lora_loraxs),
        cmocka_unit_test(test_tt_families),
        cmocka_unit_test(test_joint),
        cmocka_unit_test(test_mpo_and_kind),
        cmocka_unit_test(test_buffer_and_floats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
