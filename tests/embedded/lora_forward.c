/* Embedded size probe: LoRA inference only (one lort_lora_forward on a 32 -> 32 layer, rank 4),
   built by `make size` for Cortex-M4F with -Os, newlib-nano and --gc-sections. No stdio: the
   result is the exit status. Buffers are static; the built-in GEMM's panel is shrunk to
   16 x 64 floats (4 KiB of stack). */
#define LORT_ONLY_LORA
#define LORT_NO_BLAS
#define LORT_GEMM_KC 16
#define LORT_GEMM_NC 64
#define LORT_STATIC
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"

enum { N = 4, DI = 32, DO = 32, R = 4 };
static float x[N * DI], y[N * DO], A[R * DI], B[DO * R];
static unsigned char work[4096];

int main(void) {
    lort_lora_desc d;
    size_t i;
    float sum = 0.0f;
    memset(&d, 0, sizeof d);
    d.d_in = DI;
    d.d_out = DO;
    d.r = R;
    d.alpha = 8.0f;
    for (i = 0; i < sizeof x / sizeof x[0]; ++i) x[i] = (float)(i % 7) * 0.25f - 0.75f;
    for (i = 0; i < sizeof A / sizeof A[0]; ++i) A[i] = (float)(i % 5) * 0.1f - 0.2f;
    for (i = 0; i < sizeof B / sizeof B[0]; ++i) B[i] = (float)(i % 3) * 0.1f - 0.1f;
    if (lort_lora_forward(&d, y, x, A, B, N, NULL, 0, work, sizeof work) != LORT_OK) return 2;
    for (i = 0; i < sizeof y / sizeof y[0]; ++i) sum += y[i];
    return sum > -1e30f && sum < 1e30f ? 0 : 3; /* finite (NaN fails both) */
}
