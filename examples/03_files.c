/* 03_files: adapters in and out of files, the whole way an engine takes them, every step
   checked (the program exits non-zero when a number is off).

   1. PEFT in: load a LoRA trained with HuggingFace PEFT (tests/fixtures/peft/plain, written by
      the real PEFT: adapter_model.safetensors + adapter_config.json) and apply the q_proj of
      layer 0 to a linear layer, y = x W^T + s x A^T B^T; checked against a dense reference in
      double, x (W + s B A)^T from the loaded factors, and against the adapter output PyTorch
      printed when the fixture was made (expected.txt).
   2. Every family in one file: a cp (LoRTA) adapter set of a small LLaMA-shaped model (one
      shared block for q, k, v, o of 2 layers) saved as one safetensors file, read back from
      disk, loaded, and checked bit-identical (params, sites, names).
   3. To llama.cpp: the reloaded cp set exported to LoRA at its rank (exact) and written as a
      GGUF LoRA adapter; the file read back with lort_gguf_read: its type, alpha, tensor names
      and shapes, and for every site the LoRA taken from the file gives the cp adapter's output
      on the same input.
   (examples/06_export_gguf.c is the focused llama.cpp export: truncated ranks, alpha.)
   Run from the repository root: make examples (writes build/03_cp_set.safetensors and
   build/03_files.gguf), or
       cc -std=c99 -I. -DLORT_NO_BLAS examples/03_files.c -lm && ./a.out */
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIR "tests/fixtures/peft/plain/"
#define SET_FILE "build/03_cp_set.safetensors"
#define GGUF_FILE "build/03_files.gguf"

static char msg[256];

/* a failed call: its status and message, and exit code 1 */
#define CHECK(call)                                                                       \
    do {                                                                                  \
        lort_status st_ = (call);                                                         \
        if (st_ != LORT_OK) {                                                             \
            fprintf(stderr, "%s:%d %s: %s %s\n", __FILE__, __LINE__, #call,               \
                    lort_status_string(st_), msg);                                        \
            return 1;                                                                     \
        }                                                                                 \
    } while (0)
/* a failed check: what and by how much */
#define EXPECT(cond, what, value)                                                         \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s: %.3g\n", what, (double)(value));                         \
            return 1;                                                                     \
        }                                                                                 \
    } while (0)

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

/* max_i |got_i - want_i| / (1 + |want_i|) */
static double max_rel(const float *got, const double *want, int count) {
    double e = 0.0;
    for (int i = 0; i < count; ++i) {
        double d = fabs((double)got[i] - want[i]) / (1.0 + fabs(want[i]));
        if (!(d <= e)) e = d;
    }
    return e;
}

/* ---- 1. a PEFT LoRA from disk, applied to a linear layer --------------------------------- */
static int peft_in(void) {
    enum { N = 3, D = 8 };
    const char *name = "model.layers.0.self_attn.q_proj";
    void *st_file, *cfg_file, *arena;
    size_t st_size, cfg_size, arena_size;
    lort_adapter_set set;
    lort_peft_info info;
    lort_adapter a;
    lort_adapter_sizes sz;
    float x[N * D], y[N * D], y0[N * D], torch[N * D], W[D * D], s;
    double want[N * D], dtorch[N * D];
    int site;
    if (lort_file_read(DIR "adapter_model.safetensors", NULL, &st_file, &st_size) ||
        lort_file_read(DIR "adapter_config.json", NULL, &cfg_file, &cfg_size)) {
        fprintf(stderr, "cannot read " DIR " (run from the repository root)\n");
        return 1;
    }
    CHECK(lort_peft_load_size(st_file, st_size, (const char *)cfg_file, cfg_size, &arena_size,
                              msg, sizeof msg));
    arena = malloc(arena_size);
    CHECK(lort_peft_load(st_file, st_size, (const char *)cfg_file, cfg_size, arena, arena_size,
                         &set, &info, msg, sizeof msg));
    printf("1. PEFT adapter: %d sites, r = %d, lora_alpha = %g\n", set.n_sites, info.r,
           (double)info.lora_alpha);

    CHECK(lort_set_find(&set, name, &site));
    CHECK(lort_set_site_adapter(&set, site, &a));
    CHECK(lort_adapter_sizes_query(&a, N, &sz));
    EXPECT(sz.d_in == D && sz.d_out == D, "q_proj shape", sz.d_in);
    EXPECT(expected_values(name, "x", x, N * D) && expected_values(name, "y", torch, N * D),
           DIR "expected.txt: no x or y for q_proj, sites", set.n_sites);
    for (int i = 0; i < D * D; ++i) W[i] = 0.1f * (float)sin(1.0 + i); /* the base layer */
    CHECK(lort_linear_forward(y, x, W, NULL, N, D, D));                 /* y = x W^T */
    memcpy(y0, y, sizeof y);
    void *work = malloc(sz.work ? sz.work : 1);
    CHECK(lort_adapter_forward(&a, y, x, N, NULL, 0, work, sz.work));   /* y += adapter */
    free(work);

    /* the dense reference: x (W + s B A)^T in double, A (r, D) then B (D, r) in params */
    const int r = a.desc.lora.r;
    const float *A = a.params, *B = a.params + r * D;
    CHECK(lort_lora_scale(&a.desc.lora, &s));
    for (int i = 0; i < N; ++i)
        for (int o = 0; o < D; ++o) {
            double acc = 0.0;
            for (int k = 0; k < D; ++k) {
                double w = (double)W[o * D + k];
                for (int j = 0; j < r; ++j) w += (double)s * (double)B[o * r + j] * (double)A[j * D + k];
                acc += (double)x[i * D + k] * w;
            }
            want[i * D + o] = acc;
            dtorch[i * D + o] = (double)y0[i * D + o] + (double)torch[i * D + o];
        }
    double e_ref = max_rel(y, want, N * D), e_torch = max_rel(y, dtorch, N * D);
    printf("   %s applied to a layer: max rel. error %.1e vs the dense reference, %.1e vs "
           "PyTorch's adapter output\n", name, e_ref, e_torch);
    EXPECT(e_ref < 1e-6, "layer output vs dense reference", e_ref);
    EXPECT(e_torch < 1e-5, "adapter output vs PyTorch", e_torch);
    free(arena);
    lort_free(NULL, st_file);
    lort_free(NULL, cfg_file);
    return 0;
}

/* ---- 2. a cp adapter set saved as one file and loaded back ---------------------------------
   On success *back is the loaded set (its memory: *arena, the caller frees it). */
enum { D = 32, HEADS = 4, LAYERS = 2, M = 4, R = 4, SITES = LAYERS * M };
static const char *const proj[M] = {"q_proj", "k_proj", "v_proj", "o_proj"};

static int cp_set_roundtrip(lort_adapter *cp, lort_adapter_set *back, void **arena) {
    static char names[SITES][64];
    lort_set_site sites[SITES];
    lort_adapter_sizes sz;
    lort_rng rng;
    memset(cp, 0, sizeof *cp);
    cp->kind = LORT_KIND_CP;
    cp->desc.cp.d = D;
    cp->desc.cp.heads = HEADS;
    cp->desc.cp.layers = LAYERS;
    cp->desc.cp.r = R;
    cp->desc.cp.alpha = 8.0f; /* s = 2 */
    CHECK(lort_adapter_sizes_query(cp, 1, &sz));
    cp->params = (float *)malloc(sz.params * sizeof(float));
    lort_rng_seed(&rng, 3);
    CHECK(lort_adapter_init(cp, NULL, &rng, NULL, 0));
    for (size_t i = 0; i < sz.params; ++i) cp->params[i] += 0.05f * lort_rng_normal(&rng); /* "trained" */
    for (int l = 0; l < LAYERS; ++l)
        for (int m = 0; m < M; ++m) {
            snprintf(names[l * M + m], sizeof names[0], "model.layers.%d.self_attn.%s", l, proj[m]);
            sites[l * M + m].name = names[l * M + m];
            sites[l * M + m].entry = 0; /* one shared block for every site */
            sites[l * M + m].layer = l;
            sites[l * M + m].matrix = m;
        }
    lort_adapter_set cps = {cp, 1, sites, SITES};
    size_t bytes, got_size, arena_size;
    void *file, *got;
    CHECK(lort_set_save_size(&cps, &bytes, msg, sizeof msg));
    file = malloc(bytes);
    CHECK(lort_set_save(&cps, file, bytes, NULL, msg, sizeof msg));
    CHECK(lort_file_write(SET_FILE, file, bytes));
    free(file);
    CHECK(lort_file_read(SET_FILE, NULL, &got, &got_size));
    CHECK(lort_set_load_size(got, got_size, &arena_size, msg, sizeof msg));
    *arena = malloc(arena_size);
    CHECK(lort_set_load(got, got_size, *arena, arena_size, back, msg, sizeof msg));
    lort_free(NULL, got); /* the set is a copy in the arena */
    int same = back->n_sites == SITES && back->n_entries == 1 &&
               back->entries[0].kind == LORT_KIND_CP &&
               memcmp(back->entries[0].params, cp->params, sz.params * sizeof(float)) == 0;
    for (int i = 0; same && i < back->n_sites; ++i)
        same = strcmp(back->sites[i].name, names[i]) == 0 && back->sites[i].layer == sites[i].layer &&
               back->sites[i].matrix == sites[i].matrix;
    printf("2. cp set: %d sites on one block of %zu floats, %s: %zu bytes, reloaded %s\n",
           back->n_sites, sz.params, SET_FILE, bytes, same ? "bit-identical" : "DIFFERENT");
    return same ? 0 : 1;
}

/* ---- 3. the reloaded cp set as a GGUF LoRA adapter for llama.cpp --------------------------- */
static const lort_gguf_tensor *find_tensor(const lort_gguf_tensor *t, size_t n, const char *name) {
    for (size_t i = 0; i < n; ++i)
        if (t[i].name_len == strlen(name) && memcmp(t[i].name, name, t[i].name_len) == 0) return &t[i];
    return NULL;
}

static int to_gguf(const lort_adapter_set *set) {
    enum { N = 5 };
    lort_adapter le[SITES];
    lort_set_site ls[SITES];
    lort_adapter_set lora;
    size_t pf, wb, fsize, ia, it;
    float err[SITES], worst_err = 0.0f, alpha;
    CHECK(lort_set_to_lora_size(set, R, NULL, &pf, &wb, msg, sizeof msg));
    float *params = (float *)malloc(pf * sizeof(float));
    void *work = malloc(wb);
    CHECK(lort_set_to_lora(set, &lora, le, ls, params, pf, err, NULL, R, NULL, work, wb, msg,
                           sizeof msg));
    free(work);
    for (int s = 0; s < SITES; ++s) worst_err = err[s] > worst_err ? err[s] : worst_err;
    EXPECT(worst_err < 1e-5f, "export at the cp rank: relative error", worst_err);
    CHECK(lort_gguf_lora_write_file(GGUF_FILE, &lora, NULL, NULL, msg, sizeof msg));

    /* the file, read back as an engine would */
    void *buf;
    lort_gguf_info info;
    lort_gguf_kv kv[8];
    lort_gguf_tensor t[2 * SITES];
    CHECK(lort_file_read(GGUF_FILE, NULL, &buf, &fsize));
    CHECK(lort_gguf_read(&info, kv, 8, t, 2 * SITES, buf, fsize, msg, sizeof msg));
    EXPECT(info.n_tensors == 2 * SITES && info.n_kv <= 8, "GGUF tensors", info.n_tensors);
    CHECK(lort_gguf_find_kv(kv, (size_t)info.n_kv, "general.type", &it));
    EXPECT(kv[it].type == LORT_GGUF_STRING && kv[it].data_size == 7 &&
           memcmp(kv[it].data, "adapter", 7) == 0, "general.type is not \"adapter\", size", kv[it].data_size);
    CHECK(lort_gguf_find_kv(kv, (size_t)info.n_kv, "adapter.lora.alpha", &ia));
    memcpy(&alpha, kv[ia].data, sizeof alpha); /* F32, little-endian file and host */
    EXPECT(kv[ia].type == LORT_GGUF_FLOAT32 && fabsf(alpha - (float)R) <= 0.0f, "alpha", alpha);

    /* per site: the LoRA from the file (scale alpha / r, as llama.cpp) vs the cp adapter */
    lort_lora_desc ld = {D, D, R, 0.0f, 0, 0.0f, 0, 0};
    ld.alpha = alpha;
    double worst = 0.0;
    float x[N * D], y_cp[N * D], y_gguf[N * D];
    lort_rng rng;
    lort_rng_seed(&rng, 11);
    for (int i = 0; i < N * D; ++i) x[i] = lort_rng_normal(&rng);
    for (int s = 0; s < SITES; ++s) {
        char a_name[64], b_name[64], base[48];
        lort_adapter site;
        lort_adapter_sizes sz;
        CHECK(lort_gguf_llama_name(base, sizeof base, set->sites[s].name));
        snprintf(a_name, sizeof a_name, "%s.lora_a", base);
        snprintf(b_name, sizeof b_name, "%s.lora_b", base);
        const lort_gguf_tensor *ta = find_tensor(t, 2 * SITES, a_name), *tb = find_tensor(t, 2 * SITES, b_name);
        EXPECT(ta && tb && ta->type == LORT_GGML_F32 && ta->ne[0] == D && ta->ne[1] == R &&
               tb->ne[0] == R && tb->ne[1] == D, "missing or misshapen lora_a / lora_b of site", s);
        memset(y_cp, 0, sizeof y_cp);
        memset(y_gguf, 0, sizeof y_gguf);
        CHECK(lort_set_site_adapter(set, s, &site));
        CHECK(lort_adapter_sizes_query(&site, N, &sz));
        work = malloc(sz.work ? sz.work : 1);
        CHECK(lort_adapter_forward(&site, y_cp, x, N, NULL, 0, work, sz.work));
        free(work);
        size_t lw;
        CHECK(lort_lora_workspace_size(&ld, N, &lw));
        work = malloc(lw ? lw : 1);
        CHECK(lort_lora_forward(&ld, y_gguf, x, (const float *)ta->data, (const float *)tb->data,
                                N, NULL, 0, work, lw));
        free(work);
        double num = 0.0, den = 0.0; /* ||y_gguf - y_cp|| / ||y_cp|| */
        for (int i = 0; i < N * D; ++i) {
            num += ((double)y_gguf[i] - (double)y_cp[i]) * ((double)y_gguf[i] - (double)y_cp[i]);
            den += (double)y_cp[i] * (double)y_cp[i];
        }
        EXPECT(den > 0.0, "cp output is zero at site", s);
        if (!(sqrt(num / den) <= worst)) worst = sqrt(num / den);
    }
    printf("3. %s: %zu bytes, GGUF v%u, %llu KV, %llu tensors (%.*s ...), alpha %g; export "
           "rel. error <= %.1e; LoRA from the file vs the cp adapter: rel. error <= %.1e\n",
           GGUF_FILE, fsize, info.version, (unsigned long long)info.n_kv,
           (unsigned long long)info.n_tensors, (int)t[0].name_len, t[0].name, (double)alpha,
           (double)worst_err, worst);
    EXPECT(worst < 1e-5, "GGUF LoRA output vs cp output", worst);
    lort_free(NULL, buf);
    free(params);
    return 0;
}

int main(void) {
    lort_adapter cp;
    lort_adapter_set back;
    void *arena = NULL;
    memset(&cp, 0, sizeof cp);
    int rc = peft_in();
    if (!rc) rc = cp_set_roundtrip(&cp, &back, &arena);
    if (!rc) rc = to_gguf(&back);
    free(arena);
    free(cp.params);
    return rc;
}
