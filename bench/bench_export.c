/* make bench row: export to LoRA (lort_set_to_lora) of a cp (LoRTA) adapter at LLaMA-2-7B
   sizes: d = 4096, 32 heads, 32 layers, q, k, v, o (128 sites), r = 8 -> LoRA r = 8 (exact:
   a rank-8 site). The thin route (Bk, two Householder QRs of 8 x 4096 blocks, an 8 x 8
   Jacobi SVD, two skinny GEMMs) never forms a d x d matrix; for scale, one site the dense way
   (lort_cp_delta: the 4096 x 4096 dW, then lort_svd_truncated at r = 8, default options).
   Wall time per site and total, median of repeated whole-set runs (CLOCK_MONOTONIC).
   Self-contained: links only lortensor.h. */
#define _POSIX_C_SOURCE 199309L
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static void *balloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    return p;
}
static void check(lort_status st, const char *what, const char *msg) {
    if (st != LORT_OK) {
        fprintf(stderr, "%s: %s %s\n", what, lort_status_string(st), msg ? msg : "");
        exit(1);
    }
}

enum { D = 4096, H = 32, L = 32, M = 4, R = 8, SITES = L * M, REPS = 7 };

int main(void) {
    static const char *const proj[M] = {"q_proj", "k_proj", "v_proj", "o_proj"};
    lort_adapter cp;
    lort_set_site *sites = (lort_set_site *)balloc(SITES * sizeof(lort_set_site));
    char *names = (char *)balloc((size_t)SITES * 64);
    lort_rng rng;
    size_t np = 0, pf = 0, wb = 0;
    char msg[256];
    double t[REPS], maxerr = 0.0;
    int l, m, i, rep;
    memset(&cp, 0, sizeof cp);
    cp.kind = LORT_KIND_CP;
    cp.desc.cp.d = D;
    cp.desc.cp.heads = H;
    cp.desc.cp.layers = L;
    cp.desc.cp.r = R;
    check(lort_cp_param_count(&cp.desc.cp, &np), "param_count", NULL);
    cp.params = (float *)balloc(np * sizeof(float));
    lort_rng_seed(&rng, 1);
    for (size_t k = 0; k < np; ++k) cp.params[k] = lort_rng_normal(&rng) * 0.05f; /* B != 0 */
    for (l = 0; l < L; ++l)
        for (m = 0; m < M; ++m) {
            i = l * M + m;
            snprintf(names + (size_t)i * 64, 64, "model.layers.%d.self_attn.%s", l, proj[m]);
            sites[i].name = names + (size_t)i * 64;
            sites[i].entry = 0;
            sites[i].layer = l;
            sites[i].matrix = m;
        }
    lort_adapter_set set = {&cp, 1, sites, SITES}, out;
    check(lort_set_to_lora_size(&set, R, NULL, &pf, &wb, msg, sizeof msg), "size", msg);
    float *params = (float *)balloc(pf * sizeof(float)), *err = (float *)balloc(SITES * sizeof(float));
    void *work = balloc(wb);
    lort_adapter *oe = (lort_adapter *)balloc(SITES * sizeof(lort_adapter));
    lort_set_site *os = (lort_set_site *)balloc(SITES * sizeof(lort_set_site));
    for (rep = 0; rep < REPS; ++rep) {
        double t0 = now_s();
        check(lort_set_to_lora(&set, &out, oe, os, params, pf, err, NULL, R, NULL, work, wb, msg, sizeof msg),
              "set_to_lora", msg);
        t[rep] = now_s() - t0;
    }
    qsort(t, REPS, sizeof(double), cmp_d);
    for (i = 0; i < SITES; ++i)
        if ((double)err[i] > maxerr) maxerr = (double)err[i];

    /* one site the dense way: dW (d x d) by lort_cp_delta, then lort_svd_truncated at r */
    size_t cw = 0, sw = 0;
    check(lort_cp_workspace_size(&cp.desc.cp, 1, &cw), "cp work", NULL);
    check(lort_svd_truncated_workspace_size(D, D, R, NULL, &sw), "svd work", NULL);
    float *dW = (float *)balloc((size_t)D * D * sizeof(float)), *U = (float *)balloc((size_t)D * R * sizeof(float));
    float *S = (float *)balloc(R * sizeof(float)), *Vt = (float *)balloc((size_t)R * D * sizeof(float));
    void *w2 = balloc(cw > sw ? cw : sw);
    double td0 = now_s();
    check(lort_cp_delta(&cp.desc.cp, dW, cp.params, 3, 2, w2, cw), "cp_delta", NULL);
    double td1 = now_s();
    check(lort_svd_truncated(U, S, Vt, dW, D, D, D, R, NULL, w2, sw), "svd", NULL);
    double td2 = now_s();

    printf("export to LoRA (lort_set_to_lora), cp d %d, H %d, L %d, q k v o (%d sites), r %d -> r %d "
           "[%s GEMM]\n", D, H, L, SITES, R, R, lort_gemm_backend());
    printf("  thin route   total %8.2f ms   per site %7.1f us   (median of %d; min %.2f ms)   "
           "max rel_err %.2e (exact rank)\n",
           1e3 * t[REPS / 2], 1e6 * t[REPS / 2] / SITES, REPS, 1e3 * t[0], maxerr);
    printf("  dense route  one site %8.1f ms  (delta %.1f ms + randomized SVD %.1f ms): %.0fx the "
           "thin route per site\n",
           1e3 * (td2 - td0), 1e3 * (td1 - td0), 1e3 * (td2 - td1),
           (td2 - td0) / (t[REPS / 2] / SITES));
    printf("  output: %zu floats (%.1f MiB of LoRA), workspace %.1f KiB\n", pf,
           (double)pf * 4.0 / 1048576.0, (double)wb / 1024.0);
    free(dW); free(U); free(S); free(Vt); free(w2);
    free(params); free(err); free(work); free(oe); free(os);
    free(cp.params); free(sites); free(names);
    return 0;
}
