/* 03_files: adapters in and out of files.

   1. Load a LoRA trained with HuggingFace PEFT (adapter_model.safetensors + adapter_config.json)
      and apply one of its modules to a linear layer; the adapter's output is checked against
      the one PyTorch printed when the fixture was made (tests/fixtures/peft/plain/expected.txt).
   2. Save a cp (LoRTA) adapter set of a small model into one safetensors file, load it back,
      and check it is bit-identical.
   Run from the repository root: make examples, or
       cc -std=c99 -I. -DLORT_NO_BLAS examples/03_files.c -lm && ./a.out */
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define DIR "tests/fixtures/peft/plain/"

static int fail(const char *what, lort_status st, const char *msg) {
    fprintf(stderr, "%s: %s%s%s\n", what, lort_status_string(st), msg[0] ? ": " : "", msg);
    return 1;
}

/* The values after "<key> <count>" on the first such line following "site <name> ...". */
static int expected_values(const char *name, const char *key, float *out, int count) {
    FILE *f = fopen(DIR "expected.txt", "r");
    char word[256];
    int in_site = 0, n, i;
    if (!f) return 0;
    while (fscanf(f, "%255s", word) == 1) {
        if (strcmp(word, "site") == 0) {
            if (fscanf(f, "%255s", word) != 1) break;
            in_site = strcmp(word, name) == 0;
        } else if (in_site && strcmp(word, key) == 0 && fscanf(f, "%d", &n) == 1 && n == count) {
            for (i = 0; i < n; ++i)
                if (fscanf(f, "%f", &out[i]) != 1) break;
            fclose(f);
            return i == n;
        }
    }
    fclose(f);
    return 0;
}

int main(void) {
    char msg[256] = "";
    lort_status st;

    /* ---- 1. a PEFT LoRA from disk, applied to a layer ------------------------------------ */
    void *st_file, *cfg_file, *arena;
    size_t st_size, cfg_size, arena_size;
    lort_adapter_set set;
    lort_peft_info info;
    if ((st = lort_file_read(DIR "adapter_model.safetensors", NULL, &st_file, &st_size)) ||
        (st = lort_file_read(DIR "adapter_config.json", NULL, &cfg_file, &cfg_size)))
        return fail("read " DIR " (run from the repository root)", st, msg);
    if ((st = lort_peft_load_size(st_file, st_size, (const char *)cfg_file, cfg_size, &arena_size,
                                  msg, sizeof msg)))
        return fail("peft_load_size", st, msg);
    arena = malloc(arena_size);
    if ((st = lort_peft_load(st_file, st_size, (const char *)cfg_file, cfg_size, arena, arena_size,
                             &set, &info, msg, sizeof msg)))
        return fail("peft_load", st, msg);
    printf("PEFT adapter: %d sites, r = %d, lora_alpha = %g\n", set.n_sites, info.r,
           (double)info.lora_alpha);

    const char *name = "model.layers.0.self_attn.q_proj";
    int site;
    lort_adapter a;
    lort_adapter_sizes sz;
    if ((st = lort_set_find(&set, name, &site)) || (st = lort_set_site_adapter(&set, site, &a)) ||
        (st = lort_adapter_sizes_query(&a, 3, &sz)))
        return fail(name, st, "");
    enum { N = 3, D = 8 };
    float x[N * D], y[N * D], y0[N * D], want[N * D], W[D * D];
    if (sz.d_in != D || sz.d_out != D || !expected_values(name, "x", x, N * D) ||
        !expected_values(name, "y", want, N * D))
        return fail("expected.txt", LORT_ERR_FORMAT, name);
    for (int i = 0; i < D * D; ++i) W[i] = 0.1f * (float)sin(1.0 + i); /* the base layer */
    lort_linear_forward(y, x, W, NULL, N, D, D);                      /* y = x W^T */
    memcpy(y0, y, sizeof y);
    void *work = malloc(sz.work);
    if ((st = lort_adapter_forward(&a, y, x, N, NULL, 0, work, sz.work)))  /* y += adapter */
        return fail("forward", st, "");
    double err = 0.0;
    for (int i = 0; i < N * D; ++i) {
        double e = fabs((double)(y[i] - y0[i]) - (double)want[i]) / (1.0 + fabs((double)want[i]));
        if (e > err) err = e;
    }
    printf("  %s: adapter output vs PyTorch's: max rel. error %.2e\n", name, err);
    if (err > 1e-5) return fail("PEFT output mismatch", LORT_ERR_SHAPE, "");
    free(work);

    /* ---- 2. a cp adapter set of a whole model, saved and loaded ---------------------------- */
    enum { LAYERS = 2, M = 4 };
    lort_adapter cp;
    lort_set_site sites[LAYERS * M];
    static char names[LAYERS * M][64];
    static const char *proj[M] = {"q_proj", "k_proj", "v_proj", "o_proj"};
    lort_rng rng;
    memset(&cp, 0, sizeof cp);
    cp.kind = LORT_KIND_CP;
    cp.desc.cp.d = 16;
    cp.desc.cp.heads = 2;
    cp.desc.cp.layers = LAYERS;
    cp.desc.cp.r = 4;
    lort_adapter_sizes_query(&cp, 1, &sz);
    cp.params = (float *)malloc(sz.params * sizeof(float));
    lort_rng_seed(&rng, 3);
    lort_adapter_init(&cp, NULL, &rng, NULL, 0);
    for (size_t i = 0; i < sz.params; ++i) cp.params[i] += 0.01f * lort_rng_normal(&rng); /* "trained" */
    for (int l = 0; l < LAYERS; ++l)
        for (int m = 0; m < M; ++m) {
            snprintf(names[l * M + m], sizeof names[0], "model.layers.%d.self_attn.%s", l, proj[m]);
            sites[l * M + m].name = names[l * M + m];
            sites[l * M + m].entry = 0; /* one shared block for every site */
            sites[l * M + m].layer = l;
            sites[l * M + m].matrix = m;
        }
    lort_adapter_set cps = {&cp, 1, sites, LAYERS * M};
    size_t bytes, got_size;
    void *file, *got, *arena2;
    if ((st = lort_set_save_size(&cps, &bytes, msg, sizeof msg))) return fail("save_size", st, msg);
    file = malloc(bytes);
    if ((st = lort_set_save(&cps, file, bytes, NULL, msg, sizeof msg))) return fail("save", st, msg);
    if ((st = lort_file_write("build/03_cp_set.safetensors", file, bytes)))
        return fail("write build/03_cp_set.safetensors", st, "");
    if ((st = lort_file_read("build/03_cp_set.safetensors", NULL, &got, &got_size)))
        return fail("read back", st, "");
    lort_adapter_set back;
    if ((st = lort_set_load_size(got, got_size, &arena_size, msg, sizeof msg)))
        return fail("load_size", st, msg);
    arena2 = malloc(arena_size);
    if ((st = lort_set_load(got, got_size, arena2, arena_size, &back, msg, sizeof msg)))
        return fail("load", st, msg);
    int same = back.n_sites == LAYERS * M && back.n_entries == 1 &&
               memcmp(back.entries[0].params, cp.params, sz.params * sizeof(float)) == 0;
    for (int i = 0; same && i < back.n_sites; ++i)
        same = strcmp(back.sites[i].name, names[i]) == 0 && back.sites[i].layer == sites[i].layer &&
               back.sites[i].matrix == sites[i].matrix;
    printf("cp set: %d sites on one block of %zu floats, %zu bytes on disk, reloaded %s\n",
           back.n_sites, sz.params, bytes, same ? "bit-identical" : "DIFFERENT");
    if (!same) return 1;

    /* ---- 3. export to LoRA / GGUF: appended here by the export step ---------------------- */

    free(arena2);
    lort_free(NULL, got);
    free(file);
    free(cp.params);
    free(arena);
    lort_free(NULL, st_file);
    lort_free(NULL, cfg_file);
    return 0;
}
