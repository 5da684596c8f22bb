/* LORT_STATIC in two translation units (this one and static_b.c), each with its own copy of the
   implementation. Exits 0 only if both copies compute the same LoRA forward and it matches a
   plain double computation. */
#define LORT_STATIC
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"

#include <math.h>
#include <stdio.h>

int static_b_lora(float *y, const float *x, const float *A, const float *B, int n);

int main(void) {
    enum { N = 3, DI = 5, DO = 6, R = 2 };
    float x[N * DI], A[R * DI], B[DO * R], ya[N * DO], yb[N * DO];
    unsigned char work[4096];
    lort_lora_desc d;
    lort_rng rng;
    size_t ws = 0;
    int i, j, k, st;
    double worst = 0.0;
    lort_rng_seed(&rng, 7);
    for (i = 0; i < N * DI; ++i) x[i] = lort_rng_uniform(&rng) - 0.5f;
    for (i = 0; i < R * DI; ++i) A[i] = lort_rng_uniform(&rng) - 0.5f;
    for (i = 0; i < DO * R; ++i) B[i] = lort_rng_uniform(&rng) - 0.5f;
    for (i = 0; i < N * DO; ++i) ya[i] = yb[i] = (float)i * 0.25f;
    memset(&d, 0, sizeof d);
    d.d_in = DI;
    d.d_out = DO;
    d.r = R;
    d.alpha = 4.0f;
    if (lort_lora_workspace_size(&d, N, &ws) != LORT_OK || ws > sizeof work) return 2;
    if (lort_lora_forward(&d, ya, x, A, B, N, NULL, 0, work, ws) != LORT_OK) return 3;
    st = static_b_lora(yb, x, A, B, N);
    if (st != 0) {
        printf("static_b: status %d\n", st);
        return 4;
    }
    for (i = 0; i < N; ++i)
        for (j = 0; j < DO; ++j) {
            double want = (double)i * DO * 0.25 + (double)j * 0.25, e;
            for (k = 0; k < R; ++k) {
                double h = 0.0;
                int t;
                for (t = 0; t < DI; ++t) h += (double)x[i * DI + t] * (double)A[k * DI + t];
                want += 2.0 * h * (double)B[j * R + k];
            }
            e = fabs((double)ya[i * DO + j] - want);
            if (e > worst) worst = e;
            if (memcmp(&ya[i * DO + j], &yb[i * DO + j], sizeof(float)) != 0) {
                printf("static: the two copies disagree at (%d, %d)\n", i, j);
                return 5;
            }
        }
    if (!(worst <= 1e-5)) {
        printf("static: forward differs from the double reference by %g\n", worst);
        return 6;
    }
    printf("static: ok (%s, two LORT_STATIC copies agree)\n", lort_version_string());
    return 0;
}
