/* Embedded size probe: LoRA training (init, forward with cache, backward, AdamW, merge) on a
   32 -> 32 layer at rank 4, for Cortex-M4F (see lora_forward.c). The exit status is 0 when
   the loss 0.5 |y - t|^2 against a fixed target falls over 20 steps. */
#define LORT_ONLY_LORA
#define LORT_NO_BLAS
#define LORT_GEMM_KC 16
#define LORT_GEMM_NC 64
#define LORT_STATIC
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"

enum { N = 4, DI = 32, DO = 32, R = 4, NP = R * (DI + DO) };
static float x[N * DI], y[N * DO], t[N * DO], dy[N * DO], p[NP], g[NP], m[NP], v[NP];
static float W[DO * DI];
static unsigned char work[4096], cache[1024];

static float loss(const lort_lora_desc *d) {
    size_t i;
    float l = 0.0f;
    memset(y, 0, sizeof y);
    if (lort_lora_forward(d, y, x, p, p + R * DI, N, cache, sizeof cache, work, sizeof work))
        return -1.0f;
    for (i = 0; i < N * DO; ++i) {
        dy[i] = y[i] - t[i];
        l += 0.5f * dy[i] * dy[i];
    }
    return l;
}

int main(void) {
    lort_lora_desc d;
    lort_adamw_desc opt = lort_adamw_default(0.02f);
    lort_rng rng;
    size_t i;
    long step;
    float l0, l = 0.0f;
    memset(&d, 0, sizeof d);
    d.d_in = DI;
    d.d_out = DO;
    d.r = R;
    d.alpha = 8.0f;
    d.dropout = 0.1f;
    lort_rng_seed(&rng, 7);
    for (i = 0; i < N * DI; ++i) x[i] = lort_rng_uniform(&rng) - 0.5f;
    for (i = 0; i < N * DO; ++i) t[i] = 0.1f * (lort_rng_uniform(&rng) - 0.5f);
    if (lort_lora_init(&d, p, p + R * DI, &rng)) return 2;
    l0 = loss(&d);
    for (step = 1; step <= 20; ++step) {
        d.dropout_seed = (uint64_t)step;
        l = loss(&d);
        lort_zero(g, NP);
        if (lort_lora_backward(&d, NULL, g, g + R * DI, dy, x, p, p + R * DI, N, cache,
                               sizeof cache, work, sizeof work))
            return 3;
        if (lort_adamw_step(&opt, p, m, v, g, NP, step)) return 4;
    }
    if (lort_lora_merge(&d, W, p, p + R * DI, 1.0f, work, sizeof work)) return 5;
    return l < l0 ? 0 : 1;
}
