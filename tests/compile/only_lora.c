/* LORT_ONLY_LORA: the header compiles with one family, lora works through its own kernels and
   through lort_adapter (the same bits), and every other adapter kind is LORT_ERR_UNSUPPORTED
   from every generic call, with the outputs untouched. Built and run by `make test-compile`. */
#define LORT_ONLY_LORA
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"

#include <stdio.h>

#define CHECK(c)                                                                                \
    do {                                                                                        \
        if (!(c)) {                                                                             \
            fprintf(stderr, "only_lora: FAIL %s (line %d)\n", #c, __LINE__);                  \
            return 1;                                                                           \
        }                                                                                       \
    } while (0)

enum { N = 3, DI = 8, DO = 6, R = 2, NP = R * (DI + DO) };

int main(void) {
    static const lort_kind others[] = {LORT_KIND_LORAXS, LORT_KIND_TT_REP, LORT_KIND_MPO,
                                       LORT_KIND_CP, LORT_KIND_TUCKER, LORT_KIND_TT_ADP,
                                       LORT_KIND_NONE};
    float x[N * DI], y1[N * DO], y2[N * DO], p[NP], g[NP], W[DO * DI], W0[DO * DI];
    unsigned char work[4096], cache[1024];
    lort_adapter a;
    lort_adapter_sizes sz;
    lort_rng rng;
    size_t i, k;
    memset(&a, 0, sizeof a);
    a.kind = LORT_KIND_LORA;
    a.desc.lora.d_in = DI;
    a.desc.lora.d_out = DO;
    a.desc.lora.r = R;
    a.params = p;
    a.grads = g;
    CHECK(lort_adapter_sizes_query(&a, N, &sz) == LORT_OK && sz.params == NP);
    CHECK(sz.work <= sizeof work && sz.cache <= sizeof cache);
    lort_rng_seed(&rng, 1);
    CHECK(lort_adapter_init(&a, NULL, &rng, NULL, 0) == LORT_OK);
    for (i = 0; i < NP; ++i) p[i] = lort_rng_uniform(&rng) - 0.5f; /* B != 0 */
    for (i = 0; i < N * DI; ++i) x[i] = lort_rng_uniform(&rng) - 0.5f;
    memset(y1, 0, sizeof y1);
    memset(y2, 0, sizeof y2);
    CHECK(lort_adapter_forward(&a, y1, x, N, cache, sz.cache, work, sz.work) == LORT_OK);
    CHECK(lort_lora_forward(&a.desc.lora, y2, x, p, p + R * DI, N, NULL, 0, work, sz.work) ==
          LORT_OK);
    CHECK(memcmp(y1, y2, sizeof y1) == 0);
    for (i = 0, k = 0; i < N * DO; ++i) k += y1[i] > 1e-6f || y1[i] < -1e-6f;
    CHECK(k > 0); /* the adapter did add something */
    /* every other kind: UNSUPPORTED, outputs untouched */
    for (k = 0; k < sizeof others / sizeof others[0]; ++k) {
        lort_adapter b = a;
        lort_adapter_sizes s2;
        b.kind = others[k];
        memset(&s2, 0x5a, sizeof s2);
        memcpy(y2, y1, sizeof y1);
        for (i = 0; i < DO * DI; ++i) W[i] = W0[i] = (float)i;
        CHECK(lort_adapter_sizes_query(&b, N, &s2) == LORT_ERR_UNSUPPORTED);
        CHECK(lort_adapter_init(&b, W0, &rng, work, sizeof work) == LORT_ERR_UNSUPPORTED);
        CHECK(lort_adapter_forward(&b, y2, x, N, cache, sizeof cache, work, sizeof work) ==
              LORT_ERR_UNSUPPORTED);
        CHECK(lort_adapter_backward(&b, x, y1, x, N, NULL, 0, work, sizeof work) ==
              LORT_ERR_UNSUPPORTED);
        CHECK(lort_adapter_merge(&b, W, 1.0f, work, sizeof work) == LORT_ERR_UNSUPPORTED);
        CHECK(lort_adapter_delta(&b, W, work, sizeof work) == LORT_ERR_UNSUPPORTED);
        CHECK(memcmp(y2, y1, sizeof y1) == 0 && memcmp(W, W0, sizeof W) == 0);
    }
    printf("only_lora: ok (lora through lort_adapter; %u other kinds unsupported)\n",
           (unsigned)(sizeof others / sizeof others[0]));
    return 0;
}
