/* safetensors reader and writer (lort_st_*).

   - Round trip of F32, F16, BF16 and U8 tensors, a scalar, a zero-size tensor and metadata:
     every byte read back; F32 views alias the buffer; F16/BF16 conversions hit hand-checked
     IEEE bit patterns (ties to even, subnormals, overflow to Inf, NaN stays NaN).
   - A file written by HuggingFace's safetensors (a PEFT fixture) reads, with the header fields
     the Python library wrote.
   - Malformed headers, one per rule of the reference implementation, each refused with its
     status and a message naming the problem; the output struct is untouched on error.
   - Every truncation and every single-byte corruption of a valid file: no crash, no read out of
     bounds (ASan build), and a file that still parses is self-consistent. */
#define LORTENSOR_IMPLEMENTATION
#include "lort_test.h"

static int feq(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; } /* bitwise */

static unsigned char *make_file(const char *header, const void *data, size_t data_len,
                                size_t *len) {
    size_t h = strlen(header);
    unsigned char *b = (unsigned char *)calloc(8 + h + data_len + 1, 1);
    assert_non_null(b);
    for (int i = 0; i < 8; ++i) b[i] = (unsigned char)(((uint64_t)h >> (8 * i)) & 255u);
    memcpy(b + 8, header, h);
    if (data_len) memcpy(b + 8 + h, data, data_len);
    *len = 8 + h + data_len;
    return b;
}

static lort_status read_buf(const void *buf, size_t len, lort_st_file *f, void **arena, char *msg,
                            size_t msg_size) {
    size_t need = 0;
    lort_status st = lort_st_read_size(buf, len, &need, msg, msg_size);
    *arena = NULL;
    if (st) return st;
    *arena = malloc(need);
    assert_non_null(*arena);
    return lort_st_read(buf, len, *arena, need, f, msg, msg_size);
}

static void test_round_trip(void **state) {
    (void)state;
    float a[6] = {1.0f, -2.5f, 3.25f, 1e-8f, -0.0f, 65504.0f};
    float s = 7.0f;
    unsigned char bytes[5] = {1, 2, 3, 250, 255};
    lort_st_write_tensor t[5];
    lort_st_meta meta[2] = {{"format", "pt"}, {"note", "quote \" back\\slash \n newline"}};
    memset(t, 0, sizeof t);
    t[0].name = "a.f32"; t[0].dtype = LORT_DTYPE_F32; t[0].ndim = 2; t[0].shape[0] = 2; t[0].shape[1] = 3; t[0].data = a;
    t[1].name = "a.f16"; t[1].dtype = LORT_DTYPE_F16; t[1].ndim = 1; t[1].shape[0] = 6; t[1].data = a;
    t[2].name = "a.bf16"; t[2].dtype = LORT_DTYPE_BF16; t[2].ndim = 1; t[2].shape[0] = 6; t[2].data = a;
    t[3].name = "scalar \"q\""; t[3].dtype = LORT_DTYPE_F32; t[3].ndim = 0; t[3].data = &s;
    t[4].name = "bytes"; t[4].dtype = LORT_DTYPE_U8; t[4].ndim = 1; t[4].shape[0] = 5; t[4].data = bytes;
    size_t need = 0, written = 0;
    char msg[128];
    OK(lort_st_write_size(t, 5, meta, 2, &need, msg, sizeof msg));
    unsigned char *buf = (unsigned char *)malloc(need + 16);
    assert_non_null(buf);
    memset(buf, 0xAB, need + 16);
    assert_int_equal(lort_st_write(buf, need - 1, t, 5, meta, 2, &written, msg, sizeof msg),
                     LORT_ERR_WORKSPACE);
    OK(lort_st_write(buf, need, t, 5, meta, 2, &written, msg, sizeof msg));
    assert_int_equal(written, need);
    assert_int_equal(buf[need], 0xAB); /* nothing past the end */
    /* the data section starts 8-byte aligned; the header is padded with spaces */
    uint64_t h = 0;
    for (int i = 7; i >= 0; --i) h = (h << 8) | buf[i];
    assert_int_equal((8 + h) % 8, 0);
    lort_st_file f;
    void *arena;
    OK(read_buf(buf, need, &f, &arena, msg, sizeof msg));
    assert_string_equal(msg, "");
    assert_int_equal(f.n_tensors, 5);
    assert_int_equal(f.n_meta, 2);
    assert_string_equal(f.meta[1].key, "note");
    assert_string_equal(f.meta[1].value, "quote \" back\\slash \n newline");
    const lort_st_tensor *x;
    float out[6];
    OK(lort_st_find(&f, "a.f32", &x));
    assert_int_equal(x->ndim, 2);
    assert_int_equal(x->shape[1], 3);
    const float *view = lort_st_view_f32(x);
    assert_non_null(view);
    assert_ptr_equal((const void *)view, x->data);
    assert_true((const unsigned char *)view >= buf && (const unsigned char *)view < buf + need);
    assert_memory_equal(view, a, sizeof a);
    OK(lort_st_find(&f, "a.f16", &x));
    assert_null(lort_st_view_f32(x));
    assert_int_equal(x->dtype, LORT_DTYPE_F16);
    assert_int_equal(lort_st_get_f32(x, out, 5), LORT_ERR_SHAPE);
    OK(lort_st_get_f32(x, out, 6));
    /* every value is exact in half precision except 1e-8 (subnormal: 2^-24 * round(1e-8 * 2^24)
       = 0) */
    assert_true(feq(out[0], 1.0f) && feq(out[1], -2.5f) && feq(out[2], 3.25f) && feq(out[3], 0.0f));
    assert_true(feq(out[4], -0.0f) && feq(out[5], 65504.0f));
    OK(lort_st_find(&f, "a.bf16", &x));
    OK(lort_st_get_f32(x, out, 6));
    assert_true(feq(out[0], 1.0f) && feq(out[1], -2.5f) && feq(out[2], 3.25f) && feq(out[5], 65536.0f));
    assert_true(fabsf(out[3] - 1e-8f) <= 1e-8f / 128.0f);
    OK(lort_st_find(&f, "scalar \"q\"", &x));
    assert_int_equal(x->ndim, 0);
    assert_int_equal(x->count, 1);
    OK(lort_st_get_f32(x, out, 1));
    assert_true(feq(out[0], 7.0f));
    OK(lort_st_find(&f, "bytes", &x));
    assert_int_equal(x->dtype, LORT_DTYPE_U8);
    assert_memory_equal(x->data, bytes, 5);
    assert_int_equal(lort_st_get_f32(x, out, 5), LORT_ERR_UNSUPPORTED);
    assert_int_equal(lort_st_find(&f, "nope", &x), LORT_ERR_NOT_FOUND);
    free(arena);
    free(buf);
}

/* Hand-checked IEEE half and bfloat16 encodings through the writer. */
static void test_half_bits(void **state) {
    (void)state;
    static const struct { float v; unsigned f16, bf16; } cases[] = {
        {1.0f, 0x3C00, 0x3F80},
        {-2.0f, 0xC000, 0xC000},
        {65504.0f, 0x7BFF, 0x4780},          /* bf16: 1.999 x 2^15 rounds up to 2^16 */
        {65520.0f, 0x7C00, 0x4780},          /* halfway to 2^16: rounds to Inf in f16 */
        {65519.0f, 0x7BFF, 0x4780},
        {5.9604644775390625e-8f, 0x0001, 0x3380},   /* 2^-24: smallest subnormal half */
        {2.98023223876953125e-8f, 0x0000, 0x3300},  /* 2^-25: tie, to even (0) */
        {8.94069671630859375e-8f, 0x0002, 0x33C0},  /* 3 * 2^-25: tie, to even (2) */
        {6.103515625e-5f, 0x0400, 0x3880},          /* 2^-14: smallest normal half */
        {0.1f, 0x2E66, 0x3DCD},
        {1.0009765625f, 0x3C01, 0x3F80},            /* 1 + 2^-10 */
        {1.00048828125f, 0x3C00, 0x3F80},           /* 1 + 2^-11: tie, to even */
        {1.00146484375f, 0x3C02, 0x3F80},           /* 1 + 3 * 2^-11: tie, to even (up) */
        {0.333333343f, 0x3555, 0x3EAB},
    };
    const size_t n = sizeof cases / sizeof cases[0];
    float v[16];
    for (size_t i = 0; i < n; ++i) v[i] = cases[i].v;
    v[n] = INFINITY;
    v[n + 1] = NAN;
    for (int dt = LORT_DTYPE_F16; dt <= LORT_DTYPE_BF16; ++dt) {
        lort_st_write_tensor t;
        memset(&t, 0, sizeof t);
        t.name = "t"; t.dtype = dt; t.ndim = 1; t.shape[0] = (int64_t)(n + 2); t.data = v;
        size_t need;
        OK(lort_st_write_size(&t, 1, NULL, 0, &need, NULL, 0));
        unsigned char *buf = (unsigned char *)malloc(need);
        assert_non_null(buf);
        OK(lort_st_write(buf, need, &t, 1, NULL, 0, NULL, NULL, 0));
        const unsigned char *d = buf + need - 2 * (n + 2);
        for (size_t i = 0; i < n; ++i) {
            unsigned got = d[2 * i] | (unsigned)d[2 * i + 1] << 8;
            unsigned want = dt == LORT_DTYPE_F16 ? cases[i].f16 : cases[i].bf16;
            if (got != want) printf("  %s of %.9g: 0x%04X, want 0x%04X\n", dt == LORT_DTYPE_F16 ? "f16" : "bf16", (double)cases[i].v, got, want);
            assert_int_equal(got, want);
        }
        unsigned inf = d[2 * n] | (unsigned)d[2 * n + 1] << 8;
        unsigned nan = d[2 * n + 2] | (unsigned)d[2 * n + 3] << 8;
        assert_int_equal(inf, dt == LORT_DTYPE_F16 ? 0x7C00u : 0x7F80u);
        if (dt == LORT_DTYPE_F16) assert_true((nan & 0x7C00u) == 0x7C00u && (nan & 0x3FFu));
        else assert_true((nan & 0x7F80u) == 0x7F80u && (nan & 0x7Fu));
        /* and back: every half decodes to the float it encodes */
        lort_st_file f;
        void *arena;
        float back[16];
        OK(read_buf(buf, need, &f, &arena, NULL, 0));
        OK(lort_st_get_f32(&f.tensors[0], back, n + 2));
        assert_true(feq(back[0], 1.0f) && feq(back[1], -2.0f));
        if (dt == LORT_DTYPE_F16) {
            assert_true(feq(back[5], 5.9604644775390625e-8f) && feq(back[7], 1.1920928955078125e-7f));
            assert_true(isinf(back[3]) && isnan(back[n + 1]));
        }
        free(arena);
        free(buf);
    }
}

static char *fixture_path(const char *rel) {
    static char p[512];
    snprintf(p, sizeof p, "tests/fixtures/%s", rel);
    return p;
}

/* A file written by HuggingFace's safetensors (via PEFT's save_pretrained). */
static void test_reads_hf_file(void **state) {
    (void)state;
    void *data;
    size_t size;
    lort_status st = lort_file_read(fixture_path("peft/fp16/adapter_model.safetensors"), NULL, &data, &size);
    if (st == LORT_ERR_NOT_FOUND) {
        printf("  (fixture not found: run from the repository root)\n");
        fail();
    }
    OK(st);
    lort_st_file f;
    void *arena;
    char msg[128];
    OK(read_buf(data, size, &f, &arena, msg, sizeof msg));
    assert_int_equal(f.n_tensors, 8); /* 4 sites x (A, B) */
    const lort_st_tensor *t;
    OK(lort_st_find(&f, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", &t));
    assert_int_equal(t->dtype, LORT_DTYPE_F16);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 2);
    assert_int_equal(t->shape[1], 8);
    assert_int_equal(t->nbytes, 32);
    assert_non_null(lort__st_meta_get(&f, "format"));
    assert_string_equal(lort__st_meta_get(&f, "format"), "pt");
    free(arena);
    lort_free(NULL, data);
}

static void expect_bad(const char *header, const void *data, size_t dlen, lort_status want,
                       const char *needle) {
    size_t len;
    unsigned char *b = make_file(header, data, dlen, &len);
    lort_st_file f, sentinel;
    char msg[200];
    void *arena = NULL;
    memset(&f, 0x5A, sizeof f);
    sentinel = f;
    lort_status st = read_buf(b, len, &f, &arena, msg, sizeof msg);
    if (st != want || !strstr(msg, needle))
        printf("  header %s\n    status %d, message \"%s\"; want %d and \"%s\"\n", header,
               (int)st, msg, (int)want, needle);
    assert_int_equal(st, want);
    assert_non_null(strstr(msg, needle));
    if (want != LORT_OK) assert_memory_equal(&f, &sentinel, sizeof f);
    free(arena);
    free(b);
}

static void test_malformed(void **state) {
    (void)state;
    static const unsigned char z[64] = {0};
    const char *T = "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":";
    char h[512];
    expect_bad("{}", NULL, 0, LORT_OK, "");
    expect_bad("", NULL, 0, LORT_ERR_FORMAT, "expected a JSON object");
    expect_bad("[]", NULL, 0, LORT_ERR_FORMAT, "expected a JSON object");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}x", z, 8, LORT_ERR_FORMAT, "trailing characters");
    snprintf(h, sizeof h, "{\"a\":{%s[0,8]},\"a\":{%s[8,16]}}", T, T);
    expect_bad(h, z, 16, LORT_ERR_FORMAT, "a: tensor name appears twice");
    snprintf(h, sizeof h, "{\"a\":{%s[0,8]},\"b\":{%s[4,12]}}", T, T);
    expect_bad(h, z, 12, LORT_ERR_FORMAT, "overlaps");
    snprintf(h, sizeof h, "{\"a\":{%s[0,8]},\"b\":{%s[12,20]}}", T, T);
    expect_bad(h, z, 20, LORT_ERR_FORMAT, "b: gap in the data");
    snprintf(h, sizeof h, "{\"a\":{%s[0,8]}}", T);
    expect_bad(h, z, 12, LORT_ERR_FORMAT, "file not fully covered: 4 bytes");
    expect_bad(h, z, 4, LORT_ERR_FORMAT, "a: data past the end");
    snprintf(h, sizeof h, "{\"a\":{%s[0,12]}}", T);
    expect_bad(h, z, 12, LORT_ERR_FORMAT, "a: data_offsets [0, 12) hold 12 bytes but dtype x shape needs 8");
    snprintf(h, sizeof h, "{\"a\":{%s[8,0]}}", T);
    expect_bad(h, z, 8, LORT_ERR_FORMAT, "data_offsets [8, 0)");
    expect_bad("{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", z, 8, LORT_ERR_FORMAT, "a: unknown dtype");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", z, 8, LORT_ERR_FORMAT, "shape is not a list of non-negative integers");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", z, 8, LORT_ERR_FORMAT, "shape is not");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", z, 4, LORT_ERR_FORMAT, "more than 8 entries");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", z, 8, LORT_ERR_FORMAT, "overflows");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", z, 8, LORT_ERR_FORMAT, "a: needs dtype, shape and data_offsets");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", z, 8, LORT_ERR_FORMAT, "a field appears twice");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", z, 8, LORT_ERR_FORMAT, "data_offsets is not [begin, end]");
    expect_bad("{\"__metadata__\":{\"k\":1}}", NULL, 0, LORT_ERR_FORMAT, "__metadata__ values are strings only");
    expect_bad("{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", NULL, 0, LORT_ERR_FORMAT, "__metadata__ key appears twice: k");
    expect_bad("{\"__metadata__\":null}", NULL, 0, LORT_OK, "");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],}}", z, 8, LORT_ERR_FORMAT, "expected a JSON string");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", z, 8, LORT_ERR_FORMAT, "expected a JSON string");
    expect_bad("{\"a\\q\":{}}", NULL, 0, LORT_ERR_FORMAT, "bad escape");
    expect_bad("{\"a\xff\":{}}", NULL, 0, LORT_ERR_FORMAT, "invalid UTF-8");
    expect_bad("{\"a\xc0\x80\":{}}", NULL, 0, LORT_ERR_FORMAT, "invalid UTF-8"); /* overlong */
    expect_bad("{\"\\ud800\":{}}", NULL, 0, LORT_ERR_FORMAT, "unpaired surrogate");
    expect_bad("{\"a\n\":{}}", NULL, 0, LORT_ERR_FORMAT, "control character");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,08]}}", z, 8, LORT_ERR_FORMAT, "leading zero");
    /* unknown fields are ignored, as the reference does; other dtypes are size-checked */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":[1,{}]}}", z, 8, LORT_OK, "");
    expect_bad("{\"a\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},\"b\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[16,16]}}", z, 16, LORT_ERR_FORMAT, "b: sub-byte tensor does not end on a byte");
    expect_bad("{\"a\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]},\"b\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[16,16]}}", z, 16, LORT_OK, "");
    {   /* nesting deeper than 64 inside an ignored field */
        char deep[400];
        size_t k = 0;
        k += (size_t)snprintf(deep, sizeof deep, "{\"a\":{\"x\":");
        for (int i = 0; i < 70; ++i) deep[k++] = '[';
        for (int i = 0; i < 70; ++i) deep[k++] = ']';
        snprintf(deep + k, sizeof deep - k, "}}");
        expect_bad(deep, NULL, 0, LORT_ERR_FORMAT, "nested deeper than 64");
    }
    /* header length checks */
    unsigned char b[16] = {0};
    size_t need;
    char msg[128];
    assert_int_equal(lort_st_read_size(b, 7, &need, msg, sizeof msg), LORT_ERR_FORMAT);
    assert_string_equal(msg, "shorter than the 8-byte header length");
    b[0] = 9;
    assert_int_equal(lort_st_read_size(b, 16, &need, msg, sizeof msg), LORT_ERR_FORMAT);
    assert_string_equal(msg, "header length 9 past the end of the buffer");
    b[0] = 0;
    b[4] = 1; /* 2^32 */
    assert_int_equal(lort_st_read_size(b, 16, &need, msg, sizeof msg), LORT_ERR_FORMAT);
    assert_string_equal(msg, "header length 4294967296 above the cap of 100000000");
    b[4] = 0;
    b[7] = 0x80;
    assert_int_equal(lort_st_read_size(b, 16, &need, msg, sizeof msg), LORT_ERR_FORMAT);
    /* short arena, NULLs */
    size_t len;
    unsigned char *file = make_file("{}", NULL, 0, &len);
    lort_st_file f;
    OK(lort_st_read_size(file, len, &need, NULL, 0));
    void *arena = malloc(need);
    assert_int_equal(lort_st_read(file, len, arena, need - 1, &f, NULL, 0), LORT_ERR_WORKSPACE);
    assert_int_equal(lort_st_read(file, len, NULL, need, &f, NULL, 0), LORT_ERR_NULL);
    assert_int_equal(lort_st_read_size(NULL, 8, &need, NULL, 0), LORT_ERR_NULL);
    free(arena);
    free(file);
}

static void test_writer_refuses(void **state) {
    (void)state;
    float v = 1.0f;
    lort_st_write_tensor t[2];
    size_t need;
    char msg[128];
    memset(t, 0, sizeof t);
    t[0].name = "x"; t[0].ndim = 1; t[0].shape[0] = 1; t[0].data = &v;
    t[1] = t[0];
    assert_int_equal(lort_st_write_size(t, 2, NULL, 0, &need, msg, sizeof msg), LORT_ERR_INVALID_ARG);
    assert_string_equal(msg, "x: name appears twice");
    t[1].name = "__metadata__";
    assert_int_equal(lort_st_write_size(t, 2, NULL, 0, &need, msg, sizeof msg), LORT_ERR_INVALID_ARG);
    t[1].name = "y";
    t[1].shape[0] = -1;
    assert_int_equal(lort_st_write_size(t, 2, NULL, 0, &need, msg, sizeof msg), LORT_ERR_INVALID_ARG);
    assert_string_equal(msg, "y: bad dtype, ndim or shape");
    t[1].shape[0] = 1;
    t[1].dtype = 9;
    assert_int_equal(lort_st_write_size(t, 2, NULL, 0, &need, msg, sizeof msg), LORT_ERR_INVALID_ARG);
    t[1].dtype = 0;
    t[1].data = NULL;
    assert_int_equal(lort_st_write_size(t, 2, NULL, 0, &need, msg, sizeof msg), LORT_ERR_NULL);
}

/* Every prefix and every single-byte change of a valid file: a status, never a crash. */
static void test_mutations(void **state) {
    (void)state;
    float a[4] = {1, 2, 3, 4};
    lort_st_write_tensor t[2];
    lort_st_meta meta[1] = {{"k", "v"}};
    memset(t, 0, sizeof t);
    t[0].name = "w"; t[0].ndim = 2; t[0].shape[0] = 2; t[0].shape[1] = 2; t[0].data = a;
    t[1].name = "h"; t[1].dtype = LORT_DTYPE_F16; t[1].ndim = 1; t[1].shape[0] = 3; t[1].data = a;
    size_t need;
    OK(lort_st_write_size(t, 2, meta, 1, &need, NULL, 0));
    unsigned char *good = (unsigned char *)malloc(need), *b;
    OK(lort_st_write(good, need, t, 2, meta, 1, NULL, NULL, 0));
    int ok = 0, bad = 0;
    for (size_t len = 0; len < need; ++len) {
        lort_st_file f;
        void *arena;
        b = (unsigned char *)malloc(len ? len : 1); /* exact size: ASan sees any overread */
        memcpy(b, good, len);
        lort_status st = read_buf(b, len, &f, &arena, NULL, 0);
        assert_int_not_equal(st, LORT_OK);
        free(arena);
        free(b);
    }
    static const unsigned char vals[] = {0, '"', '{', '}', '[', ']', ',', ':', '0', '9', ' ', 0x80, 0xff, '\\'};
    for (size_t pos = 0; pos < need; ++pos)
        for (size_t v = 0; v < sizeof vals; ++v) {
            lort_st_file f;
            void *arena;
            b = (unsigned char *)malloc(need);
            memcpy(b, good, need);
            b[pos] = vals[v];
            lort_status st = read_buf(b, need, &f, &arena, NULL, 0);
            if (st == LORT_OK) {
                ++ok;
                size_t total = 0;
                for (int i = 0; i < f.n_tensors; ++i) {
                    const unsigned char *d = (const unsigned char *)f.tensors[i].data;
                    assert_true(d >= b && d + f.tensors[i].nbytes <= b + need);
                    total += f.tensors[i].nbytes;
                }
                uint64_t h = 0;
                for (int i = 7; i >= 0; --i) h = (h << 8) | b[i];
                assert_int_equal(total, need - 8 - h);
            } else {
                ++bad;
                assert_true(st == LORT_ERR_FORMAT || st == LORT_ERR_UNSUPPORTED);
            }
            free(arena);
            free(b);
        }
    printf("  %zu bytes x %zu values: %d still valid, %d refused\n", need, sizeof vals, ok, bad);
    assert_true(bad > 0 && ok > 0);
    free(good);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_half_bits),
        cmocka_unit_test(test_reads_hf_file),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_writer_refuses),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
