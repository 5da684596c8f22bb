/* libFuzzer target: lort_gguf_read on arbitrary bytes (clang, ASan + UBSan): make fuzz-gguf.
   Every status is fine; a crash, an out-of-bounds read, UB, or a view outside the input is a
   finding. The views the reader returns are touched byte by byte. */
#define LORTENSOR_IMPLEMENTATION
#define LORT_NO_BLAS
#include "lortensor.h"
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void in_range(const uint8_t *data, size_t size, const void *p, size_t n) {
    const uint8_t *q = (const uint8_t *)p;
    if (n == 0) return;
    if (!q || q < data || q > data + size || n > (size_t)(data + size - q)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lort_gguf_info info;
    lort_gguf_kv kv[64];
    lort_gguf_tensor t[64];
    char msg[256];
    volatile unsigned sum = 0;
    size_t i, j;
    /* the size query, then a full read */
    if (lort_gguf_read(&info, NULL, 0, NULL, 0, data, size, msg, sizeof msg) != LORT_OK) return 0;
    if (lort_gguf_read(&info, kv, 64, t, 64, data, size, msg, 1) != LORT_OK) return 0;
    if (msg[0] != '\0') abort();
    if (info.data_offset > size) abort();
    for (i = 0; i < info.n_kv && i < 64; ++i) {
        size_t idx = 0;
        in_range(data, size, kv[i].key, kv[i].key_len);
        in_range(data, size, kv[i].data, kv[i].data_size);
        for (j = 0; j < kv[i].data_size; ++j) sum += ((const uint8_t *)kv[i].data)[j];
        (void)lort_gguf_find_kv(kv, i + 1, "general.alignment", &idx);
    }
    for (i = 0; i < info.n_tensors && i < 64; ++i) {
        in_range(data, size, t[i].name, t[i].name_len);
        in_range(data, size, t[i].data, t[i].bytes);
        if (t[i].bytes) sum += ((const uint8_t *)t[i].data)[0] + ((const uint8_t *)t[i].data)[t[i].bytes - 1];
    }
    (void)sum;
    return 0;
}
