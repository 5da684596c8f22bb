/* bench_files: loading a 7B-sized PEFT LoRA from a memory buffer.

   LLaMA-2-7B shapes: r = 16 on q, k, v, o of 32 layers, d = 4096: 128 sites, 16.8 M floats.
   The adapter is saved by lort_peft_save into a buffer (F32: 64 MiB; BF16: 32 MiB), then
   lort_peft_load (parse + validate the header, match every key, convert into the arena) is
   timed against a plain memcpy of the same number of bytes the load writes (F32 params), the
   floor of any loader that owns its memory. Self-contained timing: the median of 7 runs of
   clock_gettime(CLOCK_MONOTONIC), after one warm-up run (arena pages touched). */
#define _POSIX_C_SOURCE 199309L
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum { LAYERS = 32, D = 4096, R = 16, RUNS = 7 };

int main(void) {
    static const char *proj[4] = {"q_proj", "k_proj", "v_proj", "o_proj"};
    static char names[LAYERS * 4][64];
    lort_adapter *e = (lort_adapter *)calloc(LAYERS * 4, sizeof *e);
    lort_set_site *s = (lort_set_site *)calloc(LAYERS * 4, sizeof *s);
    size_t per = (size_t)R * 2 * D, total = per * LAYERS * 4, i;
    float *p = (float *)malloc(total * sizeof(float));
    lort_rng rng;
    lort_rng_seed(&rng, 1);
    for (i = 0; i < total; ++i) p[i] = lort_rng_uniform(&rng) - 0.5f;
    for (int k = 0; k < LAYERS * 4; ++k) {
        e[k].kind = LORT_KIND_LORA;
        e[k].desc.lora.d_in = D;
        e[k].desc.lora.d_out = D;
        e[k].desc.lora.r = R;
        e[k].desc.lora.alpha = 32.0f;
        e[k].params = p + (size_t)k * per;
        snprintf(names[k], sizeof names[k], "model.layers.%d.self_attn.%s", k / 4, proj[k % 4]);
        s[k].name = names[k];
        s[k].entry = k;
    }
    lort_adapter_set set = {e, LAYERS * 4, s, LAYERS * 4};
    printf("bench_files: PEFT LoRA of LLaMA-2-7B shape (r = %d, q/k/v/o x %d layers, d = %d): "
           "%zu floats\n", R, LAYERS, D, total);
    printf("  %-34s %10s %10s %9s\n", "operation", "ms", "GB/s", "vs memcpy");
    for (int dt = LORT_DTYPE_F32; dt <= LORT_DTYPE_BF16; dt += 2) {
        size_t sb, cb, need;
        char msg[256];
        if (lort_peft_save_size(&set, dt, 0, &sb, &cb, msg, sizeof msg)) return 1;
        void *st = malloc(sb);
        char *cfg = (char *)malloc(cb);
        if (lort_peft_save(&set, dt, 0, st, sb, cfg, cb, msg, sizeof msg)) return 1;
        if (lort_peft_load_size(st, sb, cfg, cb, &need, msg, sizeof msg)) return 1;
        void *arena = malloc(need);
        float *dst = (float *)malloc(total * sizeof(float));
        double tl[RUNS], tm[RUNS], th[RUNS];
        lort_adapter_set out;
        for (int run = -1; run < RUNS; ++run) {
            double t0 = now();
            if (lort_peft_load(st, sb, cfg, cb, arena, need, &out, NULL, msg, sizeof msg)) {
                printf("load: %s\n", msg);
                return 1;
            }
            double t1 = now();
            memcpy(dst, p, total * sizeof(float));
            double t2 = now();
            size_t sn;
            lort_st_read_size(st, sb, &sn, NULL, 0); /* header parse + validation only */
            double t3 = now();
            if (run >= 0) {
                tl[run] = t1 - t0;
                tm[run] = t2 - t1;
                th[run] = t3 - t2;
            }
        }
        /* the load is right */
        if (memcmp(out.entries[5].params, e[5].params, dt == LORT_DTYPE_F32 ? per * 4 : 0) != 0 ||
            out.n_sites != LAYERS * 4 || memcmp(dst, p, 64) != 0)
            return 1;
        qsort(tl, RUNS, sizeof(double), cmp);
        qsort(tm, RUNS, sizeof(double), cmp);
        qsort(th, RUNS, sizeof(double), cmp);
        double bytes = (double)total * 4.0;
        printf("  %-34s %10.2f %10.2f %9.2f\n", dt == LORT_DTYPE_F32 ? "peft_load, F32 file (64 MiB)" : "peft_load, BF16 file (32 MiB)",
               1e3 * tl[RUNS / 2], bytes / tl[RUNS / 2] * 1e-9, tl[RUNS / 2] / tm[RUNS / 2]);
        printf("  %-34s %10.2f %10.2f %9.2f\n", "memcpy of the 64 MiB it writes", 1e3 * tm[RUNS / 2],
               bytes / tm[RUNS / 2] * 1e-9, 1.0);
        printf("  %-34s %10.3f %10s %9.3f\n", "  of which: header parse + checks", 1e3 * th[RUNS / 2], "-",
               th[RUNS / 2] / tm[RUNS / 2]);
        free(st);
        free(cfg);
        free(arena);
        free(dst);
    }
    free(p);
    free(e);
    free(s);
    return 0;
}
