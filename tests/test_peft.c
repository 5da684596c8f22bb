/* PEFT LoRA files (lort_peft_load / lort_peft_save) against fixtures written by the real PEFT
   (tests/fixtures/make_peft_fixtures.py; the values below come from its expected.txt, printed
   from PyTorch).

   - Every fixture (plain, rsLoRA, rank_pattern/alpha_pattern, fp16, bf16, GPT-2 Conv1D with
     fan_in_fan_out): each site is found by its module path; r, d_in, d_out, every number of A
     and B (exactly: the file's values widened to float), the scale (PEFT's module.scaling,
     to 1e-6), the adapter's forward output on PyTorch's input (PEFT's module(x) -
     base_layer(x)), a double-precision reference from the expected factors, and the merge delta
     (PEFT's get_delta_weight, transposed for Conv1D) agree.
   - Refusals, each with its status and message: DoRA, lora_bias, bias != none, a rank that
     disagrees with r / rank_pattern, modules outside target_modules, another peft_type, bad JSON,
     magnitude vectors, a lone lora_A, a short arena.
   - PEFT's key matching: the regex subset against answers of Python's re (hard-coded).
   - Saving: every fixture saved by lortensor and loaded again gives the same set bit for bit;
     F16 and BF16 fixtures saved in their dtype give byte-identical tensors.
   - lort_rope_permute_rows against llama.cpp's permute written out index by index. */
#define LORTENSOR_IMPLEMENTATION
#include "lort_test.h"

typedef struct exp_site {
    char name[128];
    int r, d_in, d_out, n;
    double scale;
    float *v[5]; /* A, B, x, y, delta */
    size_t cnt[5];
} exp_site;
typedef struct expected {
    int fan_in_fan_out, n;
    exp_site s[16];
} expected;

static const char *KEYS[5] = {"A", "B", "x", "y", "delta"};

static void read_expected(const char *dir, expected *e) {
    char path[256], word[64];
    snprintf(path, sizeof path, "tests/fixtures/peft/%s/expected.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("  cannot open %s (run from the repository root)\n", path);
        fail();
    }
    memset(e, 0, sizeof *e);
    while (fscanf(f, "%63s", word) == 1) {
        if (word[0] == '#') {
            int c;
            while ((c = fgetc(f)) != '\n' && c != EOF) {}
        } else if (strcmp(word, "fan_in_fan_out") == 0) {
            assert_int_equal(fscanf(f, "%d", &e->fan_in_fan_out), 1);
        } else if (strcmp(word, "site") == 0) {
            exp_site *s = &e->s[e->n++];
            assert_true(e->n <= 16);
            assert_int_equal(fscanf(f, "%127s %d %d %d %lf %d", s->name, &s->r, &s->d_in, &s->d_out, &s->scale, &s->n), 6);
        } else {
            exp_site *s = &e->s[e->n - 1];
            int k = -1;
            for (int q = 0; q < 5; ++q)
                if (strcmp(word, KEYS[q]) == 0) k = q;
            assert_true(k >= 0 && e->n > 0);
            assert_int_equal(fscanf(f, "%zu", &s->cnt[k]), 1);
            s->v[k] = tr_alloc(s->cnt[k]);
            for (size_t i = 0; i < s->cnt[k]; ++i) assert_int_equal(fscanf(f, "%f", &s->v[k][i]), 1);
        }
    }
    fclose(f);
}
static void free_expected(expected *e) {
    for (int i = 0; i < e->n; ++i)
        for (int k = 0; k < 5; ++k) free(e->s[i].v[k]);
}

typedef struct loaded {
    void *st, *arena;
    char *cfg;
    size_t st_size, cfg_size;
    lort_adapter_set set;
    lort_peft_info info;
} loaded;

static void read_files(const char *dir, loaded *l) {
    char path[256];
    memset(l, 0, sizeof *l);
    snprintf(path, sizeof path, "tests/fixtures/peft/%s/adapter_model.safetensors", dir);
    OK(lort_file_read(path, NULL, &l->st, &l->st_size));
    snprintf(path, sizeof path, "tests/fixtures/peft/%s/adapter_config.json", dir);
    void *c;
    OK(lort_file_read(path, NULL, &c, &l->cfg_size));
    l->cfg = (char *)c;
}
static lort_status load(loaded *l, char *msg, size_t msg_size) {
    size_t need;
    lort_status st = lort_peft_load_size(l->st, l->st_size, l->cfg, l->cfg_size, &need, msg, msg_size);
    if (st) return st;
    free(l->arena);
    l->arena = malloc(need);
    assert_non_null(l->arena);
    return lort_peft_load(l->st, l->st_size, l->cfg, l->cfg_size, l->arena, need, &l->set,
                          &l->info, msg, msg_size);
}
static void free_loaded(loaded *l) {
    lort_free(NULL, l->st);
    lort_free(NULL, l->cfg);
    free(l->arena);
}

static void check_fixture(const char *dir, int want_dtype) {
    expected e;
    loaded l;
    char msg[256];
    read_expected(dir, &e);
    read_files(dir, &l);
    lort_status st = load(&l, msg, sizeof msg);
    if (st) printf("  %s: %s\n", dir, msg);
    OK(st);
    OK(lort_set_validate(&l.set, NULL, 0));
    assert_int_equal(l.set.n_sites, e.n);
    assert_int_equal(l.info.fan_in_fan_out, e.fan_in_fan_out);
    assert_int_equal(l.info.dtype, want_dtype);
    double worst_y = 0.0, worst_ref = 0.0, worst_d = 0.0;
    for (int i = 0; i < e.n; ++i) {
        exp_site *s = &e.s[i];
        int idx = -1;
        lort_adapter a;
        OK(lort_set_find(&l.set, s->name, &idx));
        OK(lort_set_site_adapter(&l.set, idx, &a));
        assert_int_equal(a.kind, LORT_KIND_LORA);
        assert_int_equal(a.desc.lora.r, s->r);
        assert_int_equal(a.desc.lora.d_in, s->d_in);
        assert_int_equal(a.desc.lora.d_out, s->d_out);
        float scale;
        OK(lort_lora_scale(&a.desc.lora, &scale));
        if (fabs((double)scale - s->scale) > 1e-6 * fabs(s->scale))
            printf("  %s %s: scale %.9g, PEFT %.9g\n", dir, s->name, (double)scale, s->scale);
        assert_true(fabs((double)scale - s->scale) <= 1e-6 * fabs(s->scale));
        size_t ra = (size_t)s->r * (size_t)s->d_in, rb = (size_t)s->d_out * (size_t)s->r;
        assert_int_equal(s->cnt[0], ra);
        assert_int_equal(s->cnt[1], rb);
        assert_memory_equal(a.params, s->v[0], ra * sizeof(float));      /* A, exactly */
        assert_memory_equal(a.params + ra, s->v[1], rb * sizeof(float)); /* B, exactly */
        /* forward on PyTorch's x against PEFT's output and a double reference */
        lort_adapter_sizes sz;
        OK(lort_adapter_sizes_query(&a, s->n, &sz));
        void *work = malloc(sz.work);
        float *y = tr_alloc((size_t)s->n * (size_t)s->d_out);
        OK(lort_adapter_forward(&a, y, s->v[2], s->n, NULL, 0, work, sz.work));
        for (int t = 0; t < s->n; ++t)
            for (int o = 0; o < s->d_out; ++o) {
                double ref = 0.0;
                for (int k = 0; k < s->r; ++k) {
                    double h = 0.0;
                    for (int j = 0; j < s->d_in; ++j)
                        h += (double)s->v[2][(size_t)t * (size_t)s->d_in + (size_t)j] * (double)s->v[0][(size_t)k * (size_t)s->d_in + (size_t)j];
                    ref += h * (double)s->v[1][(size_t)o * (size_t)s->r + (size_t)k];
                }
                ref *= s->scale;
                double got = (double)y[(size_t)t * (size_t)s->d_out + (size_t)o];
                double peft = (double)s->v[3][(size_t)t * (size_t)s->d_out + (size_t)o];
                double ey = fabs(got - peft) / (1.0 + fabs(peft)), er = fabs(got - ref) / (1.0 + fabs(ref));
                if (ey > worst_y) worst_y = ey;
                if (er > worst_ref) worst_ref = er;
            }
        /* merge delta: PEFT's get_delta_weight, (in, out) for Conv1D */
        float *dW = tr_alloc((size_t)s->d_out * (size_t)s->d_in);
        OK(lort_adapter_delta(&a, dW, work, sz.work));
        assert_int_equal(s->cnt[4], (size_t)s->d_out * (size_t)s->d_in);
        for (int o = 0; o < s->d_out; ++o)
            for (int j = 0; j < s->d_in; ++j) {
                size_t pe = e.fan_in_fan_out ? (size_t)j * (size_t)s->d_out + (size_t)o : (size_t)o * (size_t)s->d_in + (size_t)j;
                double p = (double)s->v[4][pe], g = (double)dW[(size_t)o * (size_t)s->d_in + (size_t)j];
                double ed = fabs(g - p) / (1.0 + fabs(p));
                if (ed > worst_d) worst_d = ed;
            }
        free(dW);
        free(y);
        free(work);
    }
    printf("  %-8s %2d sites: max rel. error vs PEFT forward %.2e, vs double ref %.2e, delta %.2e\n",
           dir, e.n, worst_y, worst_ref, worst_d);
    assert_true(worst_y <= 2e-6 && worst_ref <= 2e-6 && worst_d <= 2e-6);
    free_loaded(&l);
    free_expected(&e);
}

static void test_plain(void **state) { (void)state; check_fixture("plain", LORT_DTYPE_F32); }
static void test_rslora(void **state) { (void)state; check_fixture("rslora", LORT_DTYPE_F32); }
static void test_pattern(void **state) { (void)state; check_fixture("pattern", LORT_DTYPE_F32); }
static void test_fp16(void **state) { (void)state; check_fixture("fp16", LORT_DTYPE_F16); }
static void test_bf16(void **state) { (void)state; check_fixture("bf16", LORT_DTYPE_BF16); }
static void test_gpt2(void **state) { (void)state; check_fixture("gpt2", LORT_DTYPE_F32); }

/* Replaces the first `from` in l->cfg with `to` (the buffer is reallocated). */
static void cfg_edit(loaded *l, const char *from, const char *to) {
    char *p = strstr(l->cfg, from);
    if (!p) printf("  config has no %s\n", from);
    assert_non_null(p);
    size_t off = (size_t)(p - l->cfg), fl = strlen(from), tl = strlen(to);
    char *n = (char *)malloc(l->cfg_size - fl + tl + 1);
    memcpy(n, l->cfg, off);
    memcpy(n + off, to, tl);
    memcpy(n + off + tl, p + fl, l->cfg_size - off - fl);
    l->cfg_size = l->cfg_size - fl + tl;
    n[l->cfg_size] = '\0';
    lort_free(NULL, l->cfg);
    l->cfg = n;
}

static void expect_refused(const char *from, const char *to, lort_status want, const char *needle) {
    loaded l;
    char msg[256];
    read_files("plain", &l);
    /* make the buffer NUL-terminated for strstr */
    char *c = (char *)malloc(l.cfg_size + 1);
    memcpy(c, l.cfg, l.cfg_size);
    c[l.cfg_size] = '\0';
    lort_free(NULL, l.cfg);
    l.cfg = c;
    cfg_edit(&l, from, to);
    lort_adapter_set sentinel;
    memset(&l.set, 0x5A, sizeof l.set);
    sentinel = l.set;
    lort_status st = load(&l, msg, sizeof msg);
    if (st != want || !strstr(msg, needle))
        printf("  %s -> %s: status %d \"%s\", want %d \"%s\"\n", from, to, (int)st, msg, (int)want, needle);
    assert_int_equal(st, want);
    assert_non_null(strstr(msg, needle));
    assert_memory_equal(&l.set, &sentinel, sizeof sentinel);
    free(l.cfg);
    l.cfg = NULL;
    lort_free(NULL, l.st);
    free(l.arena);
}

static void test_config_refusals(void **state) {
    (void)state;
    expect_refused("\"use_dora\": false", "\"use_dora\": true", LORT_ERR_UNSUPPORTED, "use_dora: DoRA magnitude vectors are not supported");
    expect_refused("\"lora_bias\": false", "\"lora_bias\": true", LORT_ERR_UNSUPPORTED, "lora_bias");
    expect_refused("\"bias\": \"none\"", "\"bias\": \"all\"", LORT_ERR_UNSUPPORTED, "bias is not \"none\"");
    expect_refused("\"peft_type\": \"LORA\"", "\"peft_type\": \"LOHA\"", LORT_ERR_UNSUPPORTED, "peft_type is not \"LORA\"");
    expect_refused("\"r\": 4", "\"r\": 5", LORT_ERR_SHAPE,
                   "model.layers.0.self_attn.q_proj.lora_A.weight: shape [4, 8] but r = 5 (config r)");
    expect_refused("\"rank_pattern\": {}", "\"rank_pattern\": {\"layers\\\\.1\\\\..*v_proj\": 3}", LORT_ERR_SHAPE,
                   "model.layers.1.self_attn.v_proj.lora_A.weight: shape [4, 8] but r = 3 (rank_pattern)");
    expect_refused("\"rank_pattern\": {}", "\"rank_pattern\": {\"(?=x)\": 3}", LORT_ERR_UNSUPPORTED,
                   "pattern key (?=x): regex feature not supported");
    expect_refused("\"rank_pattern\": {}", "\"rank_pattern\": {\"a)\": 3}", LORT_ERR_FORMAT, "not a valid regex");
    expect_refused("\"rank_pattern\": {}", "\"rank_pattern\": {\"q_proj\": 0}", LORT_ERR_FORMAT, "not a positive integer");
    expect_refused("\"v_proj\"", "\"k_proj\"", LORT_ERR_FORMAT, "model.layers.0.self_attn.v_proj: not in target_modules");
    expect_refused("\"lora_alpha\": 8", "\"lora_alpha\": 0", LORT_ERR_UNSUPPORTED, "lora_alpha = 0");
    expect_refused("\"modules_to_save\": null", "\"modules_to_save\": [\"lm_head\"]", LORT_ERR_UNSUPPORTED, "modules_to_save");
    expect_refused("\"lora_dropout\": 0.0,", "\"lora_dropout\": 0.0,,", LORT_ERR_FORMAT, "adapter_config.json: expected a JSON string");
    expect_refused("{", "[", LORT_ERR_FORMAT, "adapter_config.json: expected a JSON object");
}

/* A synthetic PEFT file from (name, rows, cols) tensors. */
static void synth(const char *const *names, const int (*shapes)[2], int n, void **buf, size_t *len) {
    static float z[64];
    lort_st_write_tensor t[8];
    memset(t, 0, sizeof t);
    for (int i = 0; i < n; ++i) {
        t[i].name = names[i];
        t[i].ndim = shapes[i][1] ? 2 : 1;
        t[i].shape[0] = shapes[i][0];
        t[i].shape[1] = shapes[i][1];
        t[i].data = z;
    }
    OK(lort_st_write_size(t, n, NULL, 0, len, NULL, 0));
    *buf = malloc(*len);
    OK(lort_st_write(*buf, *len, t, n, NULL, 0, NULL, NULL, 0));
}
static void expect_file_refused(const char *const *names, const int (*shapes)[2], int n,
                                lort_status want, const char *needle) {
    static const char cfg[] = "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4}";
    void *buf, *arena;
    size_t len, need;
    char msg[256] = "";
    lort_adapter_set set;
    lort_status st;
    synth(names, shapes, n, &buf, &len);
    OK(lort_peft_load_size(buf, len, cfg, sizeof cfg - 1, &need, msg, sizeof msg));
    arena = malloc(need);
    st = lort_peft_load(buf, len, cfg, sizeof cfg - 1, arena, need, &set, NULL, msg, sizeof msg);
    if (st != want || !strstr(msg, needle)) printf("  status %d \"%s\", want %d \"%s\"\n", (int)st, msg, (int)want, needle);
    assert_int_equal(st, want);
    assert_non_null(strstr(msg, needle));
    if (want == LORT_OK) {
        assert_int_equal(set.n_sites, 1);
        assert_string_equal(set.sites[0].name, "blk.q");
        assert_int_equal(lort_peft_load(buf, len, cfg, sizeof cfg - 1, arena, need - 1, &set, NULL, msg, sizeof msg),
                         LORT_ERR_WORKSPACE);
    }
    free(arena);
    free(buf);
}
static void test_file_refusals(void **state) {
    (void)state;
    const char *ok[2] = {"blk.q.lora_A.weight", "blk.q.lora_B.weight"};
    const int okshape[2][2] = {{2, 3}, {4, 2}};
    expect_file_refused(ok, okshape, 2, LORT_OK, ""); /* no prefix: names as they are */
    const char *dora[3] = {"base_model.model.blk.q.lora_A.weight", "base_model.model.blk.q.lora_B.weight",
                           "base_model.model.blk.q.lora_magnitude_vector"};
    const int dshape[3][2] = {{2, 3}, {4, 2}, {4, 0}};
    expect_file_refused(dora, dshape, 3, LORT_ERR_UNSUPPORTED,
                        "base_model.model.blk.q.lora_magnitude_vector: a DoRA magnitude vector (use_dora) is not supported");
    const char *bias[3] = {"blk.q.lora_A.weight", "blk.q.lora_B.weight", "blk.q.lora_B.bias"};
    expect_file_refused(bias, dshape, 3, LORT_ERR_UNSUPPORTED, "blk.q.lora_B.bias: a bias on lora_B");
    const char *full[3] = {"blk.q.lora_A.weight", "blk.q.lora_B.weight", "lm_head.weight"};
    expect_file_refused(full, dshape, 3, LORT_ERR_UNSUPPORTED, "lm_head.weight: not a LoRA tensor");
    const char *lone[1] = {"blk.q.lora_A.weight"};
    expect_file_refused(lone, okshape, 1, LORT_ERR_FORMAT, "blk.q.lora_A.weight: no matching lora_B.weight");
    const char *loneb[1] = {"blk.q.lora_B.weight"};
    const int bshape[1][2] = {{4, 2}};
    expect_file_refused(loneb, bshape, 1, LORT_ERR_FORMAT, "a lora_B.weight without its lora_A.weight");
    const int badr[2][2] = {{2, 3}, {4, 3}};
    expect_file_refused(ok, badr, 2, LORT_ERR_SHAPE, "blk.q: lora_A must be [r, in] and lora_B [out, r] in F32, F16 or BF16; got [2, 3] and [4, 3]");
}

/* The regex subset against Python 3's re (answers computed there and written down):
   re.match(r"(.*\.)?(KEY)$", NAME) for PEFT patterns, re.fullmatch(KEY, NAME) for a string
   target_modules. */
static void test_pattern_matching(void **state) {
    (void)state;
    static const struct { const char *key, *name; int whole, want; } cases[] = {
        {"q_proj", "model.layers.0.self_attn.q_proj", 0, 1},
        {"q_proj", "model.layers.0.self_attn.qq_proj", 0, 0},
        {"self_attn.q_proj", "model.layers.0.self_attn.q_proj", 0, 1},
        {"layers.0.self_attn.q_proj", "model.layers.10.self_attn.q_proj", 0, 0},
        {"layers.1.self_attn.q_proj", "model.layers.11.self_attn.q_proj", 0, 0},
        {"model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.q_proj", 0, 1},
        {"layers\\.[0-3]\\..*proj", "model.layers.2.mlp.up_proj", 0, 1},
        {"layers\\.[0-3]\\..*proj", "model.layers.4.mlp.up_proj", 0, 0},
        {"layers\\.\\d+\\.self_attn\\.(q|k)_proj", "model.layers.17.self_attn.k_proj", 0, 1},
        {"layers\\.\\d+\\.self_attn\\.(q|k)_proj", "model.layers.17.self_attn.v_proj", 0, 0},
        {"^model.*q_proj", "model.layers.0.self_attn.q_proj", 0, 1},
        {"^layers.*q_proj", "model.layers.0.self_attn.q_proj", 0, 0},
        {"(?:q|v)_proj", "a.v_proj", 0, 1},
        {"[^q]_proj", "a.q_proj", 0, 0},
        {"[^q]_proj", "a.k_proj", 0, 1},
        {"l\\w{2}ers\\.0", "model.layers.0", 0, 1},
        {"x{2,3}", "a.xxxx", 0, 0},
        {"x{2,3}", "a.xxx", 0, 1},
        {"x{2,}", "xxxxx", 0, 1},
        {"ab?c+", "a.acc", 0, 1},
        {"ab?c+", "a.abbc", 0, 0},
        {"a|b", "x.b", 0, 1},
        {"proj", "model.layers.0.mlp.up_proj", 0, 0},
        {".*proj", "model.layers.0.mlp.up_proj", 1, 1},
        {".*\\.(q_proj|v_proj)", "model.layers.0.self_attn.v_proj", 1, 1},
        {".*\\.(q_proj|v_proj)", "model.layers.0.self_attn.o_proj", 1, 0},
        {"q_proj", "model.q_proj", 1, 0},
        {"(a*)*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac", 1, 0}, /* no blow-up */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        char json[300];
        lort__span sp;
        lort__json j;
        lort__msg none;
        int m = -1;
        lort__msg_init(&none, NULL, 0);
        /* the key as a JSON string (escape backslashes) */
        size_t k = 0;
        json[k++] = '"';
        for (const char *p = cases[i].key; *p; ++p) {
            if (*p == '\\') json[k++] = '\\';
            json[k++] = *p;
        }
        json[k++] = '"';
        j.p = (const unsigned char *)json;
        j.end = j.p + k;
        j.m = &none;
        j.depth = 0;
        OK(lort__js_string(&j, &sp));
        OK(lort__re_peft(&sp, cases[i].name, cases[i].whole, &m));
        if (m != cases[i].want)
            printf("  key %s name %s whole %d: %d, Python says %d\n", cases[i].key, cases[i].name, cases[i].whole, m, cases[i].want);
        assert_int_equal(m, cases[i].want);
    }
}

/* Saved by lortensor, read again: the same set bit for bit. Half-precision fixtures saved in
   their dtype give the original tensors' bytes. */
static void resave(const char *dir, int dtype) {
    loaded l;
    char msg[256];
    read_files(dir, &l);
    OK(load(&l, msg, sizeof msg));
    size_t sb, cb;
    OK(lort_peft_save_size(&l.set, dtype, l.info.fan_in_fan_out, &sb, &cb, msg, sizeof msg));
    void *st = malloc(sb);
    char *cfg = (char *)malloc(cb);
    assert_int_equal(lort_peft_save(&l.set, dtype, l.info.fan_in_fan_out, st, sb, cfg, cb - 1, msg, sizeof msg), LORT_ERR_WORKSPACE);
    OK(lort_peft_save(&l.set, dtype, l.info.fan_in_fan_out, st, sb, cfg, cb, msg, sizeof msg));
    loaded r;
    memset(&r, 0, sizeof r);
    r.st = st;
    r.st_size = sb;
    r.cfg = cfg;
    r.cfg_size = cb;
    lort_status s = load(&r, msg, sizeof msg);
    if (s) printf("  %s: %s\n%.*s\n", dir, msg, (int)cb, cfg);
    OK(s);
    assert_int_equal(r.set.n_sites, l.set.n_sites);
    assert_int_equal(r.info.fan_in_fan_out, l.info.fan_in_fan_out);
    for (int i = 0; i < l.set.n_sites; ++i) {
        int q;
        OK(lort_set_find(&r.set, l.set.sites[i].name, &q));
        const lort_adapter *a = &l.set.entries[l.set.sites[i].entry], *b = &r.set.entries[r.set.sites[q].entry];
        float sa, sb2;
        assert_int_equal(a->desc.lora.r, b->desc.lora.r);
        assert_int_equal(a->desc.lora.d_in, b->desc.lora.d_in);
        assert_int_equal(a->desc.lora.d_out, b->desc.lora.d_out);
        assert_int_equal(a->desc.lora.rslora, b->desc.lora.rslora);
        assert_memory_equal(&a->desc.lora.alpha, &b->desc.lora.alpha, sizeof(float));
        OK(lort_lora_scale(&a->desc.lora, &sa));
        OK(lort_lora_scale(&b->desc.lora, &sb2));
        assert_memory_equal(&sa, &sb2, sizeof sa);
        size_t np = (size_t)a->desc.lora.r * (size_t)(a->desc.lora.d_in + a->desc.lora.d_out);
        assert_memory_equal(a->params, b->params, np * sizeof(float));
    }
    if (dtype != LORT_DTYPE_F32) { /* the same bytes as PEFT wrote */
        size_t n1, n2;
        OK(lort_st_read_size(l.st, l.st_size, &n1, NULL, 0));
        OK(lort_st_read_size(st, sb, &n2, NULL, 0));
        void *a1 = malloc(n1), *a2 = malloc(n2);
        lort_st_file f1, f2;
        OK(lort_st_read(l.st, l.st_size, a1, n1, &f1, NULL, 0));
        OK(lort_st_read(st, sb, a2, n2, &f2, NULL, 0));
        assert_int_equal(f1.n_tensors, f2.n_tensors);
        for (int i = 0; i < f1.n_tensors; ++i) {
            const lort_st_tensor *t;
            OK(lort_st_find(&f2, f1.tensors[i].name, &t));
            assert_int_equal(t->dtype, f1.tensors[i].dtype);
            assert_int_equal(t->nbytes, f1.tensors[i].nbytes);
            assert_memory_equal(t->data, f1.tensors[i].data, t->nbytes);
        }
        free(a1);
        free(a2);
    }
    free(st);
    free(cfg);
    free(r.arena);
    free_loaded(&l);
}
static void test_save_round_trip(void **state) {
    (void)state;
    static const char *const dirs[6] = {"plain", "rslora", "pattern", "fp16", "bf16", "gpt2"};
    for (int i = 0; i < 6; ++i) resave(dirs[i], LORT_DTYPE_F32);
    resave("fp16", LORT_DTYPE_F16);
    resave("bf16", LORT_DTYPE_BF16);
}

static void test_save_refusals(void **state) {
    (void)state;
    float p[64];
    lort_adapter e[2];
    lort_set_site s[2] = {{"a.q", 0, 0, 0}, {"a.k", 1, 0, 0}};
    lort_adapter_set set = {e, 2, s, 2};
    size_t sb, cb;
    char msg[200];
    memset(e, 0, sizeof e);
    memset(p, 0, sizeof p);
    for (int i = 0; i < 2; ++i) {
        e[i].kind = LORT_KIND_LORA;
        e[i].desc.lora.d_in = 4; e[i].desc.lora.d_out = 4; e[i].desc.lora.r = 2;
        e[i].params = p;
    }
    OK(lort_peft_save_size(&set, LORT_DTYPE_F32, 0, &sb, &cb, msg, sizeof msg));
    e[1].desc.lora.rslora = 1;
    assert_int_equal(lort_peft_save_size(&set, LORT_DTYPE_F32, 0, &sb, &cb, msg, sizeof msg), LORT_ERR_INVALID_ARG);
    assert_string_equal(msg, "site 1: rslora differs from site 0 (PEFT has one use_rslora)");
    e[1].desc.lora.rslora = 0;
    s[1].name = NULL;
    assert_int_equal(lort_peft_save_size(&set, LORT_DTYPE_F32, 0, &sb, &cb, msg, sizeof msg), LORT_ERR_INVALID_ARG);
    assert_string_equal(msg, "site 1: PEFT needs a module name");
    s[1].name = "a.k";
    e[1].kind = LORT_KIND_CP;
    e[1].desc.cp.d = 4; e[1].desc.cp.heads = 1; e[1].desc.cp.layers = 1; e[1].desc.cp.r = 2;
    assert_int_equal(lort_peft_save_size(&set, LORT_DTYPE_F32, 0, &sb, &cb, msg, sizeof msg), LORT_ERR_UNSUPPORTED);
    assert_string_equal(msg, "site 1: not a lora entry (export it to LoRA first)");
    assert_int_equal(lort_peft_save_size(&set, LORT_DTYPE_U8, 0, &sb, &cb, msg, sizeof msg), LORT_ERR_INVALID_ARG);
}

/* llama.cpp's permute(w, n_head): reshape (heads, 2, head_dim/2, cols), swap axes 1 and 2. */
static void test_rope_permute(void **state) {
    (void)state;
    enum { H = 3, HD = 8, C = 5 };
    float B[H * HD * C], P[H * HD * C], work[HD * C];
    tr_fill(B, H * HD * C);
    memcpy(P, B, sizeof B);
    OK(lort_rope_permute_rows(P, H, HD, C, 0, work, HD * C));
    for (int h = 0; h < H; ++h)
        for (int i = 0; i < HD / 2; ++i)
            for (int s = 0; s < 2; ++s)
                for (int c = 0; c < C; ++c) {
                    /* new[h][i][s] = old[h][s][i] */
                    float want = B[((h * 2 + s) * (HD / 2) + i) * C + c];
                    float got = P[((h * (HD / 2) + i) * 2 + s) * C + c];
                    assert_memory_equal(&got, &want, sizeof got);
                }
    OK(lort_rope_permute_rows(P, H, HD, C, 1, work, HD * C));
    assert_memory_equal(P, B, sizeof B);
    assert_int_equal(lort_rope_permute_rows(P, H, 7, C, 0, work, HD * C), LORT_ERR_SHAPE);
    assert_int_equal(lort_rope_permute_rows(P, H, HD, C, 0, work, HD * C - 1), LORT_ERR_WORKSPACE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_rslora),
        cmocka_unit_test(test_pattern),
        cmocka_unit_test(test_fp16),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_gpt2),
        cmocka_unit_test(test_config_refusals),
        cmocka_unit_test(test_file_refusals),
        cmocka_unit_test(test_pattern_matching),
        cmocka_unit_test(test_save_round_trip),
        cmocka_unit_test(test_save_refusals),
        cmocka_unit_test(test_rope_permute),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
