/* GGUF LoRA adapters for llama.cpp: writer, strict reader, LLaMA names.

   - lort_gguf_llama_name: every LLaMA projection, the PEFT prefix, refusals, short buffers.
   - A set of three lora sites with different ranks and scales (one rsLoRA): the header bytes
     checked by hand at fixed offsets (magic, version, counts, first key); then through
     lort_gguf_read: KV keys, types and values (alpha F32 = s_0 r_0), tensor names, ne
     ({d_in, r} / {r, d_out}), ggml types, offsets consecutive and 32-aligned, A bit-exact, B
     times s_i r_i / alpha (computed here in double), and alpha / r_i B' A == s_i B A (dW).
   - F16: every value is the nearest half (decoded here, compared with both neighbours).
   - Exported cp set -> GGUF: alpha = r and bit-exact tensors.
   - The reader on every truncated prefix of a valid file and on corrupted bytes: a status and
     a message naming the place, never a crash (ASan build).
   - Independent reader: when python3 with the `gguf` package (llama.cpp's) is installed, the
     file is checked by tests/gguf/gguf_check.py (keys, shapes, values, llama.cpp's pairing
     rules, alpha / r B A == dW); otherwise the check is skipped with a message. LORT_GGUF_
     REQUIRE=1 (make test-gguf) makes a missing package a failure. */
#include "lort_test_adapters.h"

static const char *g_prog = "test_gguf";

static void test_llama_names(void **state) {
    (void)state;
    static const char *const in[8] = {
        "model.layers.0.self_attn.q_proj", "model.layers.31.self_attn.k_proj",
        "base_model.model.model.layers.7.self_attn.v_proj", "model.layers.2.self_attn.o_proj",
        "model.layers.10.mlp.gate_proj", "model.layers.10.mlp.up_proj",
        "model.layers.123.mlp.down_proj", "model.layers.5.self_attn.o_proj"};
    static const char *const out[8] = {
        "blk.0.attn_q.weight", "blk.31.attn_k.weight", "blk.7.attn_v.weight",
        "blk.2.attn_output.weight", "blk.10.ffn_gate.weight", "blk.10.ffn_up.weight",
        "blk.123.ffn_down.weight", "blk.5.attn_output.weight"};
    char b[64];
    for (int i = 0; i < 8; ++i) {
        OK(lort_gguf_llama_name(b, sizeof b, in[i]));
        assert_string_equal(b, out[i]);
    }
    static const char *const bad[6] = {"model.layers.x.self_attn.q_proj", "model.layers.01.mlp.up_proj",
                                       "model.layers.3.self_attn.q_proj.lora_A", "lm_head",
                                       "model.layers.3.attn.q_proj", "model.layers..mlp.up_proj"};
    for (int i = 0; i < 6; ++i)
        assert_int_equal(lort_gguf_llama_name(b, sizeof b, bad[i]), LORT_ERR_NOT_FOUND);
    assert_int_equal(lort_gguf_llama_name(b, 19, in[0]), LORT_ERR_INVALID_ARG); /* needs 20 */
    OK(lort_gguf_llama_name(b, 20, in[0]));
    assert_int_equal(lort_gguf_llama_name(NULL, 20, in[0]), LORT_ERR_NULL);
}

typedef struct fx {
    lort_adapter e[3];
    lort_set_site s[3];
    lort_adapter_set set;
} fx;
static void fx_make(fx *f) {
    static const int din[3] = {32, 32, 48}, dout[3] = {32, 24, 32}, r[3] = {4, 4, 2};
    static const float alpha[3] = {8.0f, 16.0f, 3.0f};
    static const char *const names[3] = {"model.layers.0.self_attn.q_proj",
                                          "model.layers.0.self_attn.v_proj",
                                          "model.layers.1.mlp.down_proj"};
    memset(f, 0, sizeof *f);
    for (int i = 0; i < 3; ++i) {
        f->e[i].kind = LORT_KIND_LORA;
        f->e[i].desc.lora.d_in = din[i];
        f->e[i].desc.lora.d_out = dout[i];
        f->e[i].desc.lora.r = r[i];
        f->e[i].desc.lora.alpha = alpha[i];
        f->e[i].desc.lora.rslora = i == 2;
        f->e[i].params = tr_rand((size_t)r[i] * (size_t)(din[i] + dout[i]));
        f->s[i].name = names[i];
        f->s[i].entry = i;
    }
    f->set.entries = f->e;
    f->set.n_entries = 3;
    f->set.sites = f->s;
    f->set.n_sites = 3;
}
static void fx_free(fx *f) {
    for (int i = 0; i < 3; ++i) free(f->e[i].params);
}

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static unsigned char *write_set(const lort_adapter_set *set, const lort_gguf_lora_opts *o, size_t *n) {
    char msg[200];
    size_t need = 0, wrote = 0;
    OK(lort_gguf_lora_size(set, o, &need, msg, sizeof msg));
    unsigned char *buf = (unsigned char *)tr_buf(need);
    assert_int_equal(lort_gguf_lora_write(buf, need - 1, &wrote, set, o, msg, sizeof msg), LORT_ERR_INVALID_ARG);
    OK(lort_gguf_lora_write(buf, need, &wrote, set, o, msg, sizeof msg));
    assert_int_equal(wrote, need);
    *n = need;
    return buf;
}

static int str_is(const char *p, size_t n, const char *s) { return strlen(s) == n && memcmp(p, s, n) == 0; }

/* the value of a STRING kv */
static void expect_kv_str(const lort_gguf_kv *kv, size_t n, const char *key, const char *val) {
    size_t i = 99;
    OK(lort_gguf_find_kv(kv, n, key, &i));
    assert_int_equal(kv[i].type, LORT_GGUF_STRING);
    assert_true(str_is((const char *)kv[i].data, kv[i].data_size, val));
}

static double half_to_double(uint16_t h) { /* independent decode */
    int e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp((double)m, -24) : e == 31 ? (m ? (double)NAN : (double)INFINITY) : ldexp(1024.0 + m, e - 25);
    return (h & 0x8000) ? -v : v;
}

static void check_file(const fx *f, const unsigned char *buf, size_t n, int f16) {
    char msg[200];
    /* by hand: magic, version 3, n_tensors 6, n_kv 4, first key */
    assert_memory_equal(buf, "GGUF", 4);
    assert_int_equal(rd32(buf + 4), 3);
    assert_int_equal(rd64(buf + 8), 6);
    assert_int_equal(rd64(buf + 16), 4);
    assert_int_equal(rd64(buf + 24), 20);
    assert_memory_equal(buf + 32, "general.architecture", 20);
    lort_gguf_info info;
    lort_gguf_kv kv[8];
    lort_gguf_tensor t[8];
    OK(lort_gguf_read(&info, NULL, 0, NULL, 0, buf, n, msg, sizeof msg));
    assert_int_equal(info.n_kv, 4);
    assert_int_equal(info.n_tensors, 6);
    OK(lort_gguf_read(&info, kv, 8, t, 8, buf, n, msg, sizeof msg));
    assert_string_equal(msg, "");
    assert_int_equal(info.version, 3);
    assert_int_equal(info.alignment, 32);
    assert_int_equal(info.data_offset % 32, 0);
    expect_kv_str(kv, 4, "general.architecture", "llama");
    expect_kv_str(kv, 4, "general.type", "adapter");
    expect_kv_str(kv, 4, "adapter.type", "lora");
    size_t ia = 99;
    OK(lort_gguf_find_kv(kv, 4, "adapter.lora.alpha", &ia));
    assert_int_equal(kv[ia].type, LORT_GGUF_FLOAT32);
    uint32_t ab = rd32((const unsigned char *)kv[ia].data);
    float alpha;
    memcpy(&alpha, &ab, 4);
    double s0r0 = ref_scale(4, 8.0f, 0) * 4.0;
    assert_true(fabs((double)alpha - s0r0) <= 0.0);
    static const char *const base[3] = {"blk.0.attn_q.weight", "blk.0.attn_v.weight", "blk.1.ffn_down.weight"};
    uint64_t off = 0;
    for (int i = 0; i < 3; ++i) {
        const lort_lora_desc *d = &f->e[i].desc.lora;
        double fi = ref_scale(d->r, d->alpha, d->rslora) * d->r / (double)alpha;
        for (int ab2 = 0; ab2 < 2; ++ab2) {
            const lort_gguf_tensor *x = &t[2 * i + ab2];
            char want[80];
            snprintf(want, sizeof want, "%s.%s", base[i], ab2 ? "lora_b" : "lora_a");
            assert_true(str_is(x->name, x->name_len, want));
            assert_int_equal(x->n_dims, 2);
            assert_int_equal(x->ne[0], ab2 ? (uint64_t)d->r : (uint64_t)d->d_in);
            assert_int_equal(x->ne[1], ab2 ? (uint64_t)d->d_out : (uint64_t)d->r);
            assert_int_equal(x->type, f16 ? LORT_GGML_F16 : LORT_GGML_F32);
            assert_int_equal(x->offset, off);
            assert_int_equal(x->offset % 32, 0);
            size_t cnt = (size_t)x->ne[0] * (size_t)x->ne[1];
            assert_int_equal(x->bytes, cnt * (f16 ? 2u : 4u));
            assert_ptr_equal(x->data, buf + info.data_offset + x->offset);
            off += (x->bytes + 31) / 32 * 32;
            const float *src = f->e[i].params + (ab2 ? (size_t)d->r * (size_t)d->d_in : 0);
            for (size_t k = 0; k < cnt; ++k) {
                double want_v = ab2 ? (double)src[k] * fi : (double)src[k];
                const unsigned char *p = (const unsigned char *)x->data;
                if (f16) {
                    uint16_t h = (uint16_t)(p[2 * k] | p[2 * k + 1] << 8);
                    double got = half_to_double(h), lo = half_to_double((uint16_t)(h - 1)),
                           hi = half_to_double((uint16_t)(h + 1));
                    /* the nearest half: no closer neighbour (same sign region) */
                    assert_true(fabs(got - want_v) <= fabs(lo - want_v) || (h & 0x7fff) == 0);
                    assert_true(fabs(got - want_v) <= fabs(hi - want_v));
                } else {
                    uint32_t u = rd32(p + 4 * k);
                    float got;
                    memcpy(&got, &u, 4);
                    if (ab2 && fabs(fi - 1.0) > 0.0)
                        assert_true(fabs((double)got - want_v) <= 1.3e-7 * fabs(want_v)); /* two roundings */
                    else assert_memory_equal(&got, &src[k], 4); /* bit-exact */
                }
            }
        }
    }
    assert_int_equal(info.data_offset + off, n);
}

static void test_write_read(void **state) {
    (void)state;
    fx f;
    fx_make(&f);
    size_t n;
    unsigned char *buf = write_set(&f.set, NULL, &n);
    check_file(&f, buf, n, 0);
    free(buf);
    lort_gguf_lora_opts o = {0};
    o.f16 = 1;
    buf = write_set(&f.set, &o, &n);
    check_file(&f, buf, n, 1);
    free(buf);
    /* caller names, architecture and general.name */
    static const char *const names[3] = {"a.weight", NULL, "c.weight"};
    char msg[200];
    lort_gguf_info info;
    lort_gguf_kv kv[8];
    lort_gguf_tensor t[8];
    o.f16 = 0;
    o.architecture = "qwen2";
    o.name = "exported";
    o.base_names = names;
    buf = write_set(&f.set, &o, &n);
    OK(lort_gguf_read(&info, kv, 8, t, 8, buf, n, msg, sizeof msg));
    assert_int_equal(info.n_kv, 5);
    expect_kv_str(kv, 5, "general.architecture", "qwen2");
    expect_kv_str(kv, 5, "general.name", "exported");
    assert_true(str_is(t[0].name, t[0].name_len, "a.weight.lora_a"));
    assert_true(str_is(t[3].name, t[3].name_len, "blk.0.attn_v.weight.lora_b"));
    assert_true(str_is(t[5].name, t[5].name_len, "c.weight.lora_b"));
    free(buf);
    /* refusals */
    size_t need;
    static const char *const dup[3] = {"x.weight", "x.weight", NULL};
    o.base_names = dup;
    assert_int_equal(lort_gguf_lora_size(&f.set, &o, &need, msg, sizeof msg), LORT_ERR_INVALID_ARG);
    assert_string_equal(msg, "site 1 (model.layers.0.self_attn.v_proj): same GGUF tensor x.weight as site 0");
    o.base_names = NULL;
    f.s[2].name = "lm_head";
    assert_int_equal(lort_gguf_lora_size(&f.set, &o, &need, msg, sizeof msg), LORT_ERR_NOT_FOUND);
    assert_string_equal(msg, "site 2 (lm_head): not a LLaMA module path: give its GGUF name in opts.base_names");
    f.s[2].name = "model.layers.1.mlp.down_proj";
    f.e[1].kind = LORT_KIND_LORAXS;
    f.e[1].desc.loraxs.d_in = 8;
    f.e[1].desc.loraxs.d_out = 8;
    f.e[1].desc.loraxs.r = 2;
    assert_int_equal(lort_gguf_lora_size(&f.set, &o, &need, msg, sizeof msg), LORT_ERR_UNSUPPORTED);
    assert_string_equal(msg, "site 1 (model.layers.0.self_attn.v_proj): loraxs: GGUF holds lora entries; "
                             "export with lort_set_to_lora first");
    fx_free(&f);
}

/* cp set -> lora set -> GGUF: alpha = r, tensors are the exported factors bit for bit */
static void test_export_to_gguf(void **state) {
    (void)state;
    lort_adapter cp = ta_cp(32, 4, 2, 4);
    ta_params(&cp);
    lort_set_site s[4] = {{"model.layers.0.self_attn.q_proj", 0, 0, 0},
                          {"model.layers.0.self_attn.k_proj", 0, 0, 1},
                          {"model.layers.1.self_attn.v_proj", 0, 1, 2},
                          {"model.layers.1.self_attn.o_proj", 0, 1, 3}};
    lort_adapter_set set = {&cp, 1, s, 4}, out;
    char msg[200];
    size_t pf, wb;
    OK(lort_set_to_lora_size(&set, 4, NULL, &pf, &wb, msg, sizeof msg));
    float *p = tr_alloc(pf);
    void *w = tr_buf(wb);
    lort_adapter oe[4];
    lort_set_site os[4];
    OK(lort_set_to_lora(&set, &out, oe, os, p, pf, NULL, NULL, 4, NULL, w, wb, msg, sizeof msg));
    size_t n;
    unsigned char *buf = write_set(&out, NULL, &n);
    lort_gguf_info info;
    lort_gguf_kv kv[8];
    lort_gguf_tensor t[8];
    OK(lort_gguf_read(&info, kv, 8, t, 8, buf, n, msg, sizeof msg));
    size_t ia = 0;
    OK(lort_gguf_find_kv(kv, 4, "adapter.lora.alpha", &ia));
    float alpha;
    uint32_t u = rd32((const unsigned char *)kv[ia].data);
    memcpy(&alpha, &u, 4);
    assert_true(fabsf(alpha - 4.0f) <= 0.0f);
    assert_true(str_is(t[6].name, t[6].name_len, "blk.1.attn_output.weight.lora_a"));
    for (int i = 0; i < 8; ++i) {
        const float *src = oe[i / 2].params + (i % 2 ? 4 * 32 : 0);
        assert_memory_equal(t[i].data, src, t[i].bytes);
    }
    free(buf); free(p); free(w); free(cp.params);
}

static void test_reader_malformed(void **state) {
    (void)state;
    fx f;
    fx_make(&f);
    size_t n;
    unsigned char *buf = write_set(&f.set, NULL, &n);
    char msg[200];
    lort_gguf_info info;
    lort_gguf_kv kv[8];
    lort_gguf_tensor t[8];
    /* every truncated prefix (in its own exact-size allocation, so ASan sees any over-read) */
    for (size_t k = 0; k < n; ++k) {
        unsigned char *c = (unsigned char *)tr_buf(k);
        memcpy(c, buf, k);
        lort_status st = lort_gguf_read(&info, kv, 8, t, 8, c, k, msg, sizeof msg);
        assert_int_equal(st, LORT_ERR_FORMAT);
        assert_true(strncmp(msg, "gguf: ", 6) == 0);
        free(c);
    }
    unsigned char *c = (unsigned char *)tr_buf(n);
#define RESET() memcpy(c, buf, n)
    RESET();
    c[0] = 'X';
    assert_int_equal(lort_gguf_read(&info, kv, 8, t, 8, c, n, msg, sizeof msg), LORT_ERR_FORMAT);
    assert_string_equal(msg, "gguf: no GGUF magic");
    RESET();
    c[4] = 4;
    assert_int_equal(lort_gguf_read(&info, kv, 8, t, 8, c, n, msg, sizeof msg), LORT_ERR_FORMAT);
    assert_string_equal(msg, "gguf: version 4, must be 2 or 3 (little-endian)");
    RESET();
    c[23] = 0x10; /* n_kv huge */
    assert_int_equal(lort_gguf_read(&info, kv, 8, t, 8, c, n, msg, sizeof msg), LORT_ERR_FORMAT);
    assert_true(strstr(msg, "KV pairs and 6 tensors cannot fit in") != NULL);
    RESET();
    /* KV 2's key "adapter.type" (at byte 116, KV 2 at 108) -> "general.type", KV 1's */
    assert_memory_equal(c + 116, "adapter.type", 12);
    memcpy(c + 116, "general.type", 12);
    assert_int_equal(lort_gguf_read(&info, kv, 8, t, 8, c, n, msg, sizeof msg), LORT_ERR_FORMAT);
    assert_string_equal(msg, "gguf: KV 2 at byte 108: duplicate key");
    RESET();
    /* the type of KV 0 */
    c[52] = 13;
    assert_int_equal(lort_gguf_read(&info, kv, 8, t, 8, c, n, msg, sizeof msg), LORT_ERR_FORMAT);
    assert_string_equal(msg, "gguf: KV 0 at byte 24: value type 13 out of range [0, 13)");
    RESET();
    /* tensor 1's offset: find it as the u64 just before tensor 2's name length */
    OK(lort_gguf_read(&info, kv, 8, t, 8, c, n, msg, sizeof msg));
    size_t t2 = (size_t)((const unsigned char *)t[2].name - c) - 8;
    c[t2 - 8] ^= 0x20;
    assert_int_equal(lort_gguf_read(&info, kv, 8, t, 8, c, n, msg, sizeof msg), LORT_ERR_FORMAT);
    assert_true(strstr(msg, ": offset 544, expected 512") != NULL); /* A of site 0: 4 x 32 floats */
    RESET();
    c[t2 - 12] = 99; /* tensor 1's ggml type */
    assert_int_equal(lort_gguf_read(&info, kv, 8, t, 8, c, n, msg, sizeof msg), LORT_ERR_UNSUPPORTED);
    assert_true(strstr(msg, "ggml type 99 not known to this reader") != NULL);
    free(c);
    free(buf);
    fx_free(&f);
}

/* dW of every site in double: s B A from the entries' own factors */
static void dump_expect(const fx *f, const char *gg, const char *ex, const char *raw, int f16) {
    FILE *e = fopen(ex, "w"), *r = fopen(raw, "wb");
    assert_non_null(e);
    assert_non_null(r);
    float s0 = 0.0f;
    OK(lort_lora_scale(&f->e[0].desc.lora, &s0));
    fprintf(e, "llama %.9g 3\n", (double)(s0 * 4.0f));
    static const char *const base[3] = {"blk.0.attn_q.weight", "blk.0.attn_v.weight", "blk.1.ffn_down.weight"};
    for (int i = 0; i < 3; ++i) {
        const lort_lora_desc *d = &f->e[i].desc.lora;
        fprintf(e, "%s %d %d %d %s\n", base[i], d->d_in, d->d_out, d->r, f16 ? "F16" : "F32");
        size_t cnt = (size_t)d->d_out * (size_t)d->d_in;
        double *dW = td_alloc(cnt), s = ref_scale(d->r, d->alpha, d->rslora);
        ref_gemm(0, 0, d->d_out, d->d_in, d->r, f->e[i].params + (size_t)d->r * (size_t)d->d_in, d->r,
                 f->e[i].params, d->d_in, dW);
        for (size_t k = 0; k < cnt; ++k) dW[k] *= s;
        assert_int_equal(fwrite(dW, sizeof(double), cnt, r), cnt);
        free(dW);
    }
    fclose(e);
    fclose(r);
    (void)gg;
}

static void test_python_gguf(void **state) {
    (void)state;
    const char *req = getenv("LORT_GGUF_REQUIRE");
    if (system("python3 -c 'import gguf, numpy' >/dev/null 2>&1") != 0) {
        printf("  SKIPPED: python3 with the gguf package not found (pip install gguf numpy; "
               "make test-gguf requires it)\n");
        if (req && req[0] == '1') fail_msg("LORT_GGUF_REQUIRE=1 but the gguf package is missing");
        skip();
    }
    for (int f16 = 0; f16 < 2; ++f16) {
        fx f;
        fx_make(&f);
        lort_gguf_lora_opts o = {0};
        o.f16 = f16;
        char gg[512], ex[512], raw[512], cmd[2048], msg[200];
        snprintf(gg, sizeof gg, "%s.%d.gguf", g_prog, f16);
        snprintf(ex, sizeof ex, "%s.%d.expect", g_prog, f16);
        snprintf(raw, sizeof raw, "%s.%d.f64", g_prog, f16);
        OK(lort_gguf_lora_write_file(gg, &f.set, &o, NULL, msg, sizeof msg));
        dump_expect(&f, gg, ex, raw, f16);
        snprintf(cmd, sizeof cmd, "python3 tests/gguf/gguf_check.py '%s' '%s' '%s'", gg, ex, raw);
        assert_int_equal(system(cmd), 0);
        remove(gg);
        remove(ex);
        remove(raw);
        fx_free(&f);
    }
}

int main(int argc, char **argv) {
    (void)argc;
    g_prog = argv[0];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_names),
        cmocka_unit_test(test_write_read),
        cmocka_unit_test(test_export_to_gguf),
        cmocka_unit_test(test_reader_malformed),
        cmocka_unit_test(test_python_gguf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
