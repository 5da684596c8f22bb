/* libFuzzer target: the safetensors reader on arbitrary bytes, then every tensor converted. */
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t need = 0;
    char msg[256];
    lort_st_file f;
    void *arena;
    if (lort_st_read_size(data, size, &need, msg, sizeof msg) != LORT_OK) return 0;
    if (need > ((size_t)64 << 20)) __builtin_trap(); /* the arena grows with the header only */
    arena = malloc(need);
    if (lort_st_read(data, size, arena, need, &f, msg, sizeof msg) == LORT_OK) {
        int i;
        for (i = 0; i < f.n_tensors; ++i) {
            const lort_st_tensor *t = &f.tensors[i];
            const unsigned char *d = (const unsigned char *)t->data;
            if (d < data || d + t->nbytes > data + size) __builtin_trap();
            if (t->count <= 4096 && t->dtype <= LORT_DTYPE_BF16) {
                float *out = (float *)malloc(t->count * sizeof(float) + 1);
                if (lort_st_get_f32(t, out, t->count) != LORT_OK) __builtin_trap();
                free(out);
            }
            (void)lort_st_view_f32(t);
        }
    }
    free(arena);
    return 0;
}
