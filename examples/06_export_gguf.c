/* Export a cp (LoRTA) adapter to LoRA and write it as a llama.cpp GGUF adapter.

   A cp adapter holds every adapted matrix of a model in one small tensor; an engine that only
   reads LoRA (llama.cpp, vLLM, ...) cannot use it as is. Here: a toy LLaMA-shaped cp adapter
   (d 64, 4 heads, 2 layers, q k v o, r 4) with random factors; lort_set_to_lora turns each of
   its 8 sites into a rank-4 LoRA (exact: a cp site has rank <= r) and, for comparison, rank 2
   (the Eckart-Young optimum, with its relative error); the rank-4 set is written as a GGUF
   LoRA adapter (names blk.N.attn_q.weight.lora_a ...), read back with lort_gguf_read, and the
   GGUF's alpha / r * B A checked against the cp site's own delta.
   Run: make examples (writes build/examples/06_export_gguf.gguf; llama.cpp loads it with
   --lora on a LLaMA base of these sizes). The whole flow (PEFT in, a cp set saved and
   reloaded, GGUF out) is examples/03_files.c. */
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                       \
    do {                                                                                  \
        lort_status st_ = (call);                                                         \
        if (st_ != LORT_OK) {                                                             \
            fprintf(stderr, "%s:%d %s: %s %s\n", __FILE__, __LINE__, #call,               \
                    lort_status_string(st_), msg);                                        \
            return 1;                                                                     \
        }                                                                                 \
    } while (0)

enum { D = 64, HEADS = 4, LAYERS = 2, R = 4, SITES = LAYERS * 4 };

int main(int argc, char **argv) {
    static const char *const proj[4] = {"q_proj", "k_proj", "v_proj", "o_proj"};
    char msg[256] = "", names[SITES][64], path[512];
    lort_adapter cp, lora[SITES];
    lort_set_site sites[SITES], lsites[SITES];
    lort_adapter_set set, out;
    lort_rng rng;
    size_t np = 0, pf = 0, wb = 0, fsize = 0, i;
    float err[SITES];
    int s, rank;
    (void)argc;

    memset(&cp, 0, sizeof cp);
    cp.kind = LORT_KIND_CP;
    cp.desc.cp.d = D;
    cp.desc.cp.heads = HEADS;
    cp.desc.cp.layers = LAYERS;
    cp.desc.cp.r = R;
    cp.desc.cp.alpha = 8.0f; /* s = 2 */
    CHECK(lort_cp_param_count(&cp.desc.cp, &np));
    cp.params = (float *)malloc(np * sizeof(float));
    lort_rng_seed(&rng, 3);
    for (i = 0; i < np; ++i) cp.params[i] = 0.1f * lort_rng_normal(&rng); /* a "trained" one */
    for (s = 0; s < SITES; ++s) {
        snprintf(names[s], sizeof names[s], "model.layers.%d.self_attn.%s", s / 4, proj[s % 4]);
        sites[s].name = names[s];
        sites[s].entry = 0;
        sites[s].layer = s / 4;
        sites[s].matrix = s % 4;
    }
    set.entries = &cp;
    set.n_entries = 1;
    set.sites = sites;
    set.n_sites = SITES;

    for (rank = 2; rank <= R; rank += 2) { /* rank 2 truncates; rank 4 is exact */
        float *params;
        void *work;
        CHECK(lort_set_to_lora_size(&set, rank, NULL, &pf, &wb, msg, sizeof msg));
        params = (float *)malloc(pf * sizeof(float));
        work = malloc(wb);
        CHECK(lort_set_to_lora(&set, &out, lora, lsites, params, pf, err, NULL, rank, NULL, work, wb,
                               msg, sizeof msg));
        printf("cp -> LoRA r %d: %zu floats (cp: %zu); relative error per site:", rank, pf, np);
        for (s = 0; s < SITES; ++s) printf(" %.1e", (double)err[s]);
        printf("\n");
        free(work);
        if (rank < R) {
            free(params);
            continue;
        }
        /* the exact set as a GGUF LoRA adapter for llama.cpp */
        snprintf(path, sizeof path, "%s.gguf", argv[0]);
        CHECK(lort_gguf_lora_write_file(path, &out, NULL, NULL, msg, sizeof msg));
        {
            FILE *f = fopen(path, "rb");
            unsigned char *buf;
            lort_gguf_info info;
            lort_gguf_kv kv[8];
            lort_gguf_tensor t[2 * SITES];
            size_t ia = 0, cw = 0;
            float alpha, *dW, *ba, *cw_buf;
            double worst = 0.0;
            if (!f) return 1;
            fseek(f, 0, SEEK_END);
            fsize = (size_t)ftell(f);
            fseek(f, 0, SEEK_SET);
            buf = (unsigned char *)malloc(fsize);
            if (fread(buf, 1, fsize, f) != fsize) return 1;
            fclose(f);
            CHECK(lort_gguf_read(&info, kv, 8, t, 2 * SITES, buf, fsize, msg, sizeof msg));
            CHECK(lort_gguf_find_kv(kv, (size_t)info.n_kv, "adapter.lora.alpha", &ia));
            memcpy(&alpha, kv[ia].data, 4); /* little-endian host */
            printf("wrote %s: %zu bytes, GGUF v%u, %llu KV, %llu tensors, alpha %.1f; %.*s ne {%llu, "
                   "%llu}\n", path, fsize, info.version, (unsigned long long)info.n_kv,
                   (unsigned long long)info.n_tensors, (double)alpha, (int)t[0].name_len, t[0].name,
                   (unsigned long long)t[0].ne[0], (unsigned long long)t[0].ne[1]);
            /* alpha / r * B A from the file == the cp site's delta */
            CHECK(lort_cp_workspace_size(&cp.desc.cp, 1, &cw));
            dW = (float *)malloc((size_t)D * D * sizeof(float));
            ba = (float *)malloc((size_t)D * D * sizeof(float));
            cw_buf = (float *)malloc(cw);
            for (s = 0; s < SITES; ++s) {
                const float *A = (const float *)t[2 * s].data, *B = (const float *)t[2 * s + 1].data;
                double num = 0.0, den = 0.0;
                CHECK(lort_cp_delta(&cp.desc.cp, dW, cp.params, s / 4, s % 4, cw_buf, cw));
                CHECK(lort_sgemm(0, 0, D, D, R, alpha / (float)R, B, R, A, D, 0.0f, ba, D));
                for (i = 0; i < (size_t)D * D; ++i) {
                    num += ((double)ba[i] - (double)dW[i]) * ((double)ba[i] - (double)dW[i]);
                    den += (double)dW[i] * (double)dW[i];
                }
                if (sqrt(num / den) > worst) worst = sqrt(num / den);
            }
            printf("alpha / r * B A from the file vs the cp deltas: max relative error %.1e\n", worst);
            free(dW);
            free(ba);
            free(cw_buf);
            free(buf);
            if (!(worst < 1e-5)) return 1;
        }
        free(params);
    }
    free(cp.params);
    return 0;
}
