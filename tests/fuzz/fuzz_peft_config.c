/* libFuzzer target: adapter_config.json parsing, PEFT's pattern matching (the regex) and
   target_modules, against a fixed small adapter of three modules. */
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"
#include <stdlib.h>

static unsigned char *st_file;
static size_t st_len;

static void make_file(void) {
    static float z[64];
    static const char *names[6] = {
        "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
        "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
        "base_model.model.model.layers.1.mlp.up_proj.lora_A.weight",
        "base_model.model.model.layers.1.mlp.up_proj.lora_B.weight",
        "base_model.model.h.0.c_attn.lora_A.weight", "base_model.model.h.0.c_attn.lora_B.weight"};
    static const int shapes[6][2] = {{8, 4}, {4, 8}, {2, 4}, {6, 2}, {4, 3}, {9, 4}};
    lort_st_write_tensor t[6];
    int i;
    memset(t, 0, sizeof t);
    for (i = 0; i < 6; ++i) {
        t[i].name = names[i];
        t[i].ndim = 2;
        t[i].shape[0] = shapes[i][0];
        t[i].shape[1] = shapes[i][1];
        t[i].dtype = i % 3;
        t[i].data = z;
    }
    if (lort_st_write_size(t, 6, NULL, 0, &st_len, NULL, 0)) __builtin_trap();
    st_file = (unsigned char *)malloc(st_len);
    if (lort_st_write(st_file, st_len, t, 6, NULL, 0, NULL, NULL, 0)) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t need;
    char msg[256];
    void *arena;
    lort_adapter_set set;
    lort_peft_info info;
    if (!st_file) make_file();
    if (lort_peft_load_size(st_file, st_len, (const char *)data, size, &need, msg, sizeof msg))
        return 0;
    arena = malloc(need);
    if (lort_peft_load(st_file, st_len, (const char *)data, size, arena, need, &set, &info, msg,
                       sizeof msg) == LORT_OK) {
        if (set.n_sites != 3 || lort_set_validate(&set, NULL, 0) != LORT_OK) __builtin_trap();
    }
    free(arena);
    return 0;
}
