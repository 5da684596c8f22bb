/* Small adapters of every family, shared by the tests of validation, export and files: each
   returns a lort_adapter with its desc filled in (everything else zero, params NULL), so a test
   states only the shapes and then changes the fields it is about. ta_params gives it random
   params of its size. Include after lort_test.h. */
#ifndef LORT_TEST_ADAPTERS_H
#define LORT_TEST_ADAPTERS_H
#include "lort_test.h"

TR_FN lort_adapter ta_kind(lort_kind kind) {
    lort_adapter a;
    memset(&a, 0, sizeof a);
    a.kind = kind;
    return a;
}
TR_FN lort_adapter ta_lora(int d_in, int d_out, int r) {
    lort_adapter a = ta_kind(LORT_KIND_LORA);
    a.desc.lora.d_in = d_in;
    a.desc.lora.d_out = d_out;
    a.desc.lora.r = r;
    return a;
}
TR_FN lort_adapter ta_loraxs(int d_in, int d_out, int r) {
    lort_adapter a = ta_kind(LORT_KIND_LORAXS);
    a.desc.loraxs.d_in = d_in;
    a.desc.loraxs.d_out = d_out;
    a.desc.loraxs.r = r;
    return a;
}
/* a TT of d cores with these modes and one inner rank */
TR_FN void ta_tt_modes(lort_tt_desc *t, int d, const int *modes, int rank) {
    memset(t, 0, sizeof *t);
    t->n_cores = d;
    for (int k = 0; k < d; ++k) t->modes[k] = modes[k];
    t->rank = rank;
}
/* tt_rep (16 -> 12, r 4): W_A (16, 4) as 3 cores 4 x 4 x 4 of rank rank_a, W_B (4, 12) as
   2 cores 4 x 12 of rank rank_b */
TR_FN lort_adapter ta_tt_rep(int rank_a, int rank_b) {
    static const int ma[3] = {4, 4, 4}, mb[2] = {4, 12};
    lort_adapter a = ta_kind(LORT_KIND_TT_REP);
    a.desc.tt_rep.d_in = 16;
    a.desc.tt_rep.d_out = 12;
    a.desc.tt_rep.r = 4;
    ta_tt_modes(&a.desc.tt_rep.A, 3, ma, rank_a);
    ta_tt_modes(&a.desc.tt_rep.B, 2, mb, rank_b);
    return a;
}
TR_FN lort_adapter ta_cp(int d, int heads, int layers, int r) {
    lort_adapter a = ta_kind(LORT_KIND_CP);
    a.desc.cp.d = d;
    a.desc.cp.heads = heads;
    a.desc.cp.layers = layers;
    a.desc.cp.r = r;
    return a;
}
TR_FN lort_adapter ta_tucker(int d, int heads, int layers, int r1, int r2) {
    lort_adapter a = ta_kind(LORT_KIND_TUCKER);
    a.desc.tucker.d = d;
    a.desc.tucker.heads = heads;
    a.desc.tucker.layers = layers;
    a.desc.tucker.r1 = r1;
    a.desc.tucker.r2 = r2;
    return a;
}
/* a 3-core mpo: d_out = prod rows, d_in = prod cols (left 0 in the desc), inner bonds `bond` */
TR_FN lort_adapter ta_mpo3(const int rows[3], const int cols[3], int bond) {
    lort_adapter a = ta_kind(LORT_KIND_MPO);
    a.desc.mpo.n_cores = 3;
    for (int k = 0; k < 3; ++k) {
        a.desc.mpo.row_factors[k] = rows[k];
        a.desc.mpo.col_factors[k] = cols[k];
    }
    a.desc.mpo.bond = bond;
    return a;
}
/* a->params = random floats, as many as a's family takes */
TR_FN void ta_params(lort_adapter *a) {
    lort_adapter_sizes sz;
    OK(lort_adapter_sizes_query(a, 1, &sz));
    a->params = tr_rand(sz.params);
}
#endif
