/* Writes valid GGUF LoRA adapters (F32, F16, caller names, a general.name) into a directory:
   the seed corpus of fuzz_gguf. usage: gguf_seeds DIR */
#define LORTENSOR_IMPLEMENTATION
#define LORT_NO_BLAS
#include "lortensor.h"
#include <stdio.h>

int main(int argc, char **argv) {
    static float p[3][2 * (16 + 8)];
    lort_adapter e[3];
    lort_set_site s[3] = {{"model.layers.0.self_attn.q_proj", 0, 0, 0},
                          {"model.layers.0.mlp.up_proj", 1, 0, 0},
                          {"model.layers.1.self_attn.o_proj", 2, 0, 0}};
    lort_adapter_set set = {e, 3, s, 3};
    static const char *const names[3] = {"token_embd.weight", NULL, "output.weight"};
    char path[1024], msg[200];
    int i, k;
    if (argc < 2) return 2;
    memset(e, 0, sizeof e);
    for (i = 0; i < 3; ++i) {
        for (k = 0; k < 2 * 24; ++k) p[i][k] = (float)(k - 20) * 0.125f * (float)(i + 1);
        e[i].kind = LORT_KIND_LORA;
        e[i].desc.lora.d_in = 16;
        e[i].desc.lora.d_out = 8;
        e[i].desc.lora.r = 2 - (i == 2);
        e[i].desc.lora.alpha = (float)(4 * (i + 1));
        e[i].params = p[i];
    }
    for (i = 0; i < 4; ++i) {
        lort_gguf_lora_opts o;
        memset(&o, 0, sizeof o);
        o.f16 = i & 1;
        if (i & 2) {
            o.base_names = names;
            o.name = "seed";
            o.architecture = "qwen2";
        }
        snprintf(path, sizeof path, "%s/seed_%d.gguf", argv[1], i);
        if (lort_gguf_lora_write_file(path, &set, &o, NULL, msg, sizeof msg) != LORT_OK) {
            fprintf(stderr, "gguf_seeds: %s\n", msg);
            return 1;
        }
    }
    return 0;
}
