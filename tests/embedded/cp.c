/* Embedded size probe: one LoRTA (cp) site, forward and backward, d = 32, 4 heads, 2 layers,
   rank 4, for Cortex-M4F (see lora_forward.c). */
#define LORT_ONLY_CP
#define LORT_NO_BLAS
#define LORT_GEMM_KC 16
#define LORT_GEMM_NC 64
#define LORT_STATIC
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"

enum { N = 4, D = 32 };
static float x[N * D], y[N * D], dx[N * D], p[4 * 64], g[4 * 64];
static unsigned char work[8192], cache[1024];

int main(void) {
    lort_cp_desc d;
    lort_rng rng;
    size_t np = 0, i;
    memset(&d, 0, sizeof d);
    d.d = D;
    d.heads = 4;
    d.layers = 2;
    d.r = 4;
    if (lort_cp_param_count(&d, &np) || np > sizeof p / sizeof p[0]) return 2;
    lort_rng_seed(&rng, 3);
    if (lort_cp_init(&d, p, &rng)) return 3;
    for (i = 0; i < N * D; ++i) x[i] = lort_rng_uniform(&rng) - 0.5f;
    if (lort_cp_forward(&d, y, x, p, 1, LORT_CP_V, N, cache, sizeof cache, work, sizeof work))
        return 4;
    if (lort_cp_backward(&d, dx, g, y, x, p, 1, LORT_CP_V, N, cache, sizeof cache, work,
                         sizeof work))
        return 5;
    return 0;
}
