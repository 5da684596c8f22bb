/* bench/bench_util.h - the one timing protocol and CSV format of every bench program.

   Protocol (bu_time): one cold call (first touch, BLAS thread start-up), one timed call that
   calibrates k = the calls per sample so that a sample lasts >= BU.sample_s (k = 1 for anything
   slower), BU.warmup untimed samples, then BU.samples timed samples (--quick: 5, and 1 for a
   call slower than 50 ms; at most 3 for a call slower than 0.5 s); the time of an operation is
   the MEDIAN over samples of (sample time / k), wall clock (CLOCK_MONOTONIC). bu_paired gives the
   median over back-to-back pairs of (sample of a) / (sample of b), so that a change of machine
   load hits both sides of each ratio. --cpu-time times with the process CPU clock instead
   (CLOCK_PROCESS_CPUTIME_ID): for single-threaded runs on a shared machine it leaves out the
   time a neighbour held the core (bench_gemm's default). bu_once times one call and reports the cores it used
   (process CPU time / wall time): on a shared machine that shows when a neighbour took a core.
   bench/peer_torch.py implements the same protocol in Python (calibrate, sample, time_op).

   CSV (bu_csv_row), one row per measurement, the columns bench/peer_torch.py writes too:
       bench,family,op,n,r,d,impl,seconds,note
   impl names who computed it (lortensor, base_gemm, openblas, builtin, lapack, torch_ref,
   torch_best, ...); bench/report.py joins the files of one `make bench` run.

   Options every program accepts (bu_init): --quick (fewer samples), --samples N, --cpu-time,
   --wall-time, --csv FILE
   (append rows to FILE; default: the BENCH_CSV environment variable, else no CSV). */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H
#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200809L
#error "bench_util.h: define _POSIX_C_SOURCE 200809L before any include"
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define BU_MAX_SAMPLES 1000

typedef void (*bu_fn)(void *ctx);

typedef struct bu_timing {
    double median, min; /* seconds per call */
    int inner;          /* calls per sample */
} bu_timing;

typedef struct bu_config {
    int quick;
    int samples;     /* timed samples per operation (median over these) */
    int warmup;      /* untimed samples after the cold and calibration calls */
    double sample_s; /* minimum duration of one sample */
    FILE *csv;       /* NULL: no CSV */
    const char *bench;
    clockid_t clock; /* CLOCK_MONOTONIC; --cpu-time: CLOCK_PROCESS_CPUTIME_ID */
    double last_call; /* seconds of the last calibration call */
} bu_config;

static bu_config BU = {0, 11, 1, 2e-3, NULL, "bench", CLOCK_MONOTONIC, 0.0};

static inline void bu_die(const char *what) {
    fprintf(stderr, "%s: %s\n", BU.bench, what);
    exit(1);
}

#define BU_CHECK(call)                                                                       \
    do {                                                                                     \
        lort_status st_ = (call);                                                            \
        if (st_ != LORT_OK) {                                                                \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call,              \
                    lort_status_string(st_));                                                \
            exit(1);                                                                         \
        }                                                                                    \
    } while (0)

static inline double bu_now(void) {
    struct timespec ts;
    clock_gettime(BU.clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Process CPU time (all threads, user + system), seconds. */
static inline double bu_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static inline void *bu_alloc(size_t bytes) {
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    if (posix_memalign(&p, 64, bytes) != 0 || p == NULL) bu_die("out of memory");
    memset(p, 0, bytes);
    return p;
}

static inline float *bu_falloc(size_t count) { return (float *)bu_alloc(count * sizeof(float)); }

/* count values uniform in [-scale, scale) from a 64-bit LCG (no library dependency) */
static inline float *bu_frand(size_t count, unsigned seed, float scale) {
    float *p = bu_falloc(count);
    unsigned long long s = 0x9e3779b97f4a7c15ull * (seed + 1u);
    size_t i;
    for (i = 0; i < count; ++i) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = scale * ((float)(s >> 40) * (2.0f / 16777216.0f) - 1.0f);
    }
    return p;
}

static inline int bu_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline double bu_median(double *t, int count) {
    qsort(t, (size_t)count, sizeof t[0], bu_cmp_double);
    return (count % 2) ? t[count / 2] : 0.5 * (t[count / 2 - 1] + t[count / 2]);
}

/* One cold call, one timed call; returns k, the calls per sample, then runs the warmups. */
static inline int bu_calibrate(bu_fn fn, void *ctx) {
    double t0, t1;
    int i, s, inner = 1;
    fn(ctx);
    t0 = bu_now();
    fn(ctx);
    t1 = bu_now() - t0;
    BU.last_call = t1;
    if (t1 < BU.sample_s) {
        double k = ceil(BU.sample_s / (t1 > 1e-8 ? t1 : 1e-8));
        inner = k > 100000.0 ? 100000 : (int)k;
    }
    for (s = 0; s < BU.warmup; s++)
        for (i = 0; i < inner; i++) fn(ctx);
    return inner;
}

/* Seconds per call over one sample of k calls. */
static inline double bu_sample(bu_fn fn, void *ctx, int inner) {
    double t0 = bu_now();
    int i;
    for (i = 0; i < inner; i++) fn(ctx);
    return (bu_now() - t0) / (double)inner;
}

static inline bu_timing bu_time(bu_fn fn, void *ctx) {
    double t[BU_MAX_SAMPLES];
    bu_timing res;
    int s, inner = bu_calibrate(fn, ctx), samples = BU.samples;
    if (BU.quick && BU.last_call > 0.05) samples = 1; /* --quick: one sample of a slow call */
    if (BU.last_call > 0.5 && samples > 3) samples = 3; /* seconds-long calls: 3 samples */
    for (s = 0; s < samples; s++) t[s] = bu_sample(fn, ctx, inner);
    res.median = bu_median(t, samples);
    res.min = t[0];
    res.inner = inner;
    return res;
}

/* The same protocol for several operations at once, interleaved: every op is calibrated, then
   each round takes one sample of every op, so that a change of machine load hits all of them
   alike and their ratios stay meaningful. med[i] = median seconds per call of op i. */
static inline void bu_time_many(bu_fn fn, void **ctx, int count, double *med) {
    static double t[64][BU_MAX_SAMPLES];
    int inner[64], i, s, samples = BU.samples;
    double slowest = 0.0;
    if (count > 64) bu_die("bu_time_many: more than 64 operations");
    for (i = 0; i < count; ++i) {
        inner[i] = bu_calibrate(fn, ctx[i]);
        if (BU.last_call > slowest) slowest = BU.last_call;
    }
    if (BU.quick && slowest > 0.05) samples = 1;
    if (slowest > 0.5 && samples > 3) samples = 3;
    for (s = 0; s < samples; ++s)
        for (i = 0; i < count; ++i) t[i][s] = bu_sample(fn, ctx[i], inner[i]);
    for (i = 0; i < count; ++i) med[i] = bu_median(t[i], samples);
}

/* Median over back-to-back pairs of (a sample of fa) / (a sample of fb). */
static inline double bu_paired(bu_fn fa, void *ca, bu_fn fb, void *cb) {
    double q[BU_MAX_SAMPLES];
    int s, ka = bu_calibrate(fa, ca), kb = bu_calibrate(fb, cb);
    for (s = 0; s < BU.samples; s++) {
        double ta = bu_sample(fa, ca, ka);
        q[s] = ta / bu_sample(fb, cb, kb);
    }
    return bu_median(q, BU.samples);
}

/* One timed call; *cores (optional) = CPU seconds / wall seconds. */
static inline double bu_once(bu_fn fn, void *ctx, double *cores) {
    double c0 = bu_cpu(), t0 = bu_now(), t;
    fn(ctx);
    t = bu_now() - t0;
    if (cores) *cores = (bu_cpu() - c0) / (t > 0.0 ? t : 1e-9);
    return t;
}

static inline void bu_csv_row(const char *family, const char *op, int n, int r, int d,
                              const char *impl, double seconds, const char *note) {
    if (!BU.csv) return;
    fprintf(BU.csv, "%s,%s,%s,%d,%d,%d,%s,%.9g,%s\n", BU.bench, family, op, n, r, d, impl,
            seconds, note ? note : "");
    fflush(BU.csv);
}

/* Parses and removes the options above from argv; returns the new argc. */
static inline int bu_init(const char *bench, int argc, char **argv) {
    const char *csv = getenv("BENCH_CSV");
    int i, o = 1;
    BU.bench = bench;
    if (!strcmp(bench, "gemm")) BU.clock = CLOCK_PROCESS_CPUTIME_ID;
    for (i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--quick")) {
            BU.quick = 1;
            BU.samples = 5;
            BU.warmup = 0;
        } else if (!strcmp(argv[i], "--samples") && i + 1 < argc) {
            BU.samples = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--cpu-time")) {
            BU.clock = CLOCK_PROCESS_CPUTIME_ID;
        } else if (!strcmp(argv[i], "--wall-time")) {
            BU.clock = CLOCK_MONOTONIC;
        } else if (!strcmp(argv[i], "--csv") && i + 1 < argc) {
            csv = argv[++i];
        } else {
            argv[o++] = argv[i];
        }
    }
    if (BU.samples < 1 || BU.samples > BU_MAX_SAMPLES) bu_die("--samples out of range");
    if (csv && *csv) {
        int fresh;
        FILE *f = fopen(csv, "r");
        fresh = f == NULL;
        if (f) {
            fresh = fgetc(f) == EOF;
            fclose(f);
        }
        BU.csv = fopen(csv, "a");
        if (!BU.csv) bu_die("cannot open the CSV file");
        if (fresh) fprintf(BU.csv, "bench,family,op,n,r,d,impl,seconds,note\n");
    }
    argv[o] = NULL;
    return o;
}

#endif /* BENCH_UTIL_H */
