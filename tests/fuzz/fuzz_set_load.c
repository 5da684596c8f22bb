/* libFuzzer target: the set loader and the PEFT loader on arbitrary bytes; every set that
   loads is validated, and each of its sites runs forward, backward and merge at one row (when
   its sizes are small), so a desc that loads is one the kernels accept. */
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"
#include <stdlib.h>

static void exercise(const lort_adapter_set *set) {
    int i;
    if (lort_set_validate(set, NULL, 0) != LORT_OK) __builtin_trap();
    for (i = 0; i < set->n_sites && i < 8; ++i) {
        lort_adapter a;
        lort_adapter_sizes sz;
        float *x, *y, *W;
        void *work;
        size_t nx, ny;
        if (lort_set_site_adapter(set, i, &a) || lort_adapter_sizes_query(&a, 1, &sz))
            __builtin_trap();
        if (sz.work > ((size_t)16 << 20) || (size_t)sz.d_in * (size_t)sz.d_out > ((size_t)1 << 20))
            continue;
        nx = (size_t)sz.d_in;
        ny = (size_t)sz.d_out;
        x = (float *)calloc(nx + ny, sizeof(float));
        y = (float *)calloc(nx + ny, sizeof(float));
        W = (float *)calloc(nx * ny + 1, sizeof(float));
        work = malloc(sz.work + 1);
        (void)lort_adapter_forward(&a, y, x, 1, NULL, 0, work, sz.work);
        (void)lort_adapter_backward(&a, x, y, x, 1, NULL, 0, work, sz.work);
        (void)lort_adapter_merge(&a, W, 1.0f, work, sz.work);
        free(x);
        free(y);
        free(W);
        free(work);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char cfg[] = "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4, "
                              "\"rank_pattern\": {\"q_proj\": 4, \"layers\\\\.1\\\\..*\": 1}}";
    size_t need;
    void *arena;
    lort_adapter_set set;
    char msg[256];
    if (lort_set_load_size(data, size, &need, msg, sizeof msg) == LORT_OK) {
        if (need > ((size_t)256 << 20)) __builtin_trap();
        arena = malloc(need);
        if (lort_set_load(data, size, arena, need, &set, msg, sizeof msg) == LORT_OK) exercise(&set);
        free(arena);
    }
    if (lort_peft_load_size(data, size, cfg, sizeof cfg - 1, &need, msg, sizeof msg) == LORT_OK) {
        arena = malloc(need);
        if (lort_peft_load(data, size, cfg, sizeof cfg - 1, arena, need, &set, NULL, msg,
                           sizeof msg) == LORT_OK)
            exercise(&set);
        free(arena);
    }
    return 0;
}
