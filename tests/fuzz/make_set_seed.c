/* Writes tests/fuzz/seeds/fuzz_set_load/set.safetensors: a small set of every family (the
   fuzzers' seed). cc -I. -DLORT_NO_BLAS tests/fuzz/make_set_seed.c -lm && ./a.out */
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    lort_adapter e[4];
    lort_set_site s[5] = {{"model.layers.0.self_attn.q_proj", 0, 0, 0},
                          {"model.layers.0.self_attn.k_proj", 1, 0, 0},
                          {"model.layers.1.self_attn.q_proj", 2, 1, LORT_CP_Q},
                          {"model.layers.0.self_attn.v_proj", 2, 0, LORT_CP_V},
                          {"model.layers.1.self_attn.v_proj", 3, 0, 0}};
    lort_adapter_set set;
    lort_rng rng;
    size_t len;
    void *buf;
    int i;
    memset(e, 0, sizeof e);
    e[0].kind = LORT_KIND_LORA;
    e[0].desc.lora.d_in = 4; e[0].desc.lora.d_out = 4; e[0].desc.lora.r = 2;
    e[1].kind = LORT_KIND_LORAXS;
    e[1].desc.loraxs.d_in = 4; e[1].desc.loraxs.d_out = 4; e[1].desc.loraxs.r = 2;
    e[2].kind = LORT_KIND_CP;
    e[2].desc.cp.d = 4; e[2].desc.cp.heads = 2; e[2].desc.cp.layers = 2; e[2].desc.cp.r = 2;
    e[3].kind = LORT_KIND_MPO;
    e[3].desc.mpo.n_cores = 2;
    e[3].desc.mpo.row_factors[0] = 2; e[3].desc.mpo.row_factors[1] = 2;
    e[3].desc.mpo.col_factors[0] = 2; e[3].desc.mpo.col_factors[1] = 2;
    e[3].desc.mpo.bond = 2;
    e[3].desc.mpo.residual = LORT_MPO_RESIDUAL_NF4;
    lort_rng_seed(&rng, 1);
    for (i = 0; i < 4; ++i) {
        lort_adapter_sizes sz;
        size_t k;
        if (lort_adapter_sizes_query(&e[i], 1, &sz)) return 1;
        e[i].params = (float *)malloc(sz.params * 4 + 4);
        e[i].frozen = calloc(sz.frozen_bytes / 4 + 1, 4);
        for (k = 0; k < sz.params; ++k) e[i].params[k] = lort_rng_normal(&rng);
        for (k = 0; k < sz.frozen_bytes / 4 && i != 3; ++k) ((float *)e[i].frozen)[k] = lort_rng_normal(&rng);
    }
    set.entries = e; set.n_entries = 4; set.sites = s; set.n_sites = 5;
    if (lort_set_save_size(&set, &len, NULL, 0)) return 1;
    buf = malloc(len);
    if (lort_set_save(&set, buf, len, NULL, NULL, 0)) return 1;
    return lort_file_write("tests/fuzz/seeds/fuzz_set_load/set.safetensors", buf, len) ? 1 : 0;
}
