/* LORT_STATIC in a second translation unit: its own private copy of the library, linked with
   static_a.c without symbol clashes. */
#define LORT_STATIC
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"

int static_b_lora(float *y, const float *x, const float *A, const float *B, int n);

/* y (n, 6) += lora forward of x (n, 5) with d_in 5, d_out 6, r 2, alpha 4 (scale 2), using this
   TU's copy of the library. Returns the status. */
int static_b_lora(float *y, const float *x, const float *A, const float *B, int n) {
    lort_lora_desc d;
    unsigned char work[4096];
    size_t ws = 0;
    lort_status st;
    memset(&d, 0, sizeof d);
    d.d_in = 5;
    d.d_out = 6;
    d.r = 2;
    d.alpha = 4.0f;
    st = lort_lora_workspace_size(&d, n, &ws);
    if (st != LORT_OK) return (int)st;
    if (ws > sizeof work) return -100;
    return (int)lort_lora_forward(&d, y, x, A, B, n, NULL, 0, work, ws);
}
