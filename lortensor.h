/* lortensor.h - v0.1.0 - parameter-efficient adapter kernels (LoRA, LoRA-XS, ...) for C - MIT

   One STB-style header: forward and backward kernels of low-rank and tensor adapters over
   cblas_sgemm, or over a built-in blocked GEMM when there is no BLAS. No allocation in any
   kernel, no global state, every error a status value. Full license at the end of this file.

QUICK START
===========
    // in exactly one .c file:
    #define LORTENSOR_IMPLEMENTATION
    #include "lortensor.h"

    cc app.c $(pkg-config --cflags --libs openblas) -lm     // over OpenBLAS
    cc -DLORT_NO_BLAS app.c -lm                              // built-in GEMM, no dependency

    lort_lora_desc d = {0};
    d.d_in = 4096; d.d_out = 4096; d.r = 16; d.alpha = 32.0f;   // s = alpha / r = 2
    size_t np, ws, cs;
    lort_lora_param_count(&d, &np);                 // r*(d_in + d_out) floats: A then B
    lort_lora_workspace_size(&d, n, &ws);           // scratch, dead after each call
    lort_lora_cache_size(&d, n, &cs);               // what forward saves for backward
    lort_rng rng; lort_rng_seed(&rng, 42);
    lort_lora_init(&d, A, B, &rng);                 // A ~ U(+-1/sqrt(d_in)), B = 0 (as PEFT)
    y = x W0^T (your base layer), then:
    lort_lora_forward(&d, y, x, A, B, n, cache, cs, work, ws);          // y += s (x A^T) B^T
    lort_lora_backward(&d, dx, dA, dB, dy, x, A, B, n, cache, cs, work, ws);   // += grads

TABLE OF CONTENTS
=================
    CONFIGURATION   macros
    CONVENTIONS     shapes, argument order, accumulation, aliasing
    MEMORY          params / frozen / cache / workspace
    ERRORS          status codes
    THREADING       reentrancy and BLAS threads
    MATH            lora, loraxs, svd, adamw, dropout
    API             declarations (grep "// >>api")
    IMPLEMENTATION  (grep "// >>impl", "// >>gemm", "// >>svd", "// >>lora", "// >>loraxs")
    HISTORY, LICENSE at the end

CONFIGURATION
=============
    macro                       default            where   purpose
    LORTENSOR_IMPLEMENTATION    -                  one TU  emit the implementation
    LORT_STATIC                 off                global  every function becomes static
    LORT_API                    extern             global  prefix of every declaration
    LORT_NO_BLAS                off                impl    built-in blocked GEMM instead of cblas_sgemm
    LORT_CBLAS_HEADER           <cblas.h>          impl    header that declares cblas_sgemm
    LORT_SGEMM(...)             cblas_sgemm        impl    row-major sgemm override (MKL, BLIS, a spy);
                                                           same arguments as cblas_sgemm without Order
    LORT_ASSERT(x)              assert(x)          impl    internal invariants only, never user input
    LORT_MALLOC(sz,u)/LORT_FREE(p,u)  malloc/free  impl    default allocator; define both or neither
    LORT_DEBUG                  off                impl    O(size) checks: non-finite scans of inputs
    LORT_RESTRICT               restrict           global  C/C++ portable restrict

CONVENTIONS
===========
  - float32, row-major, contiguous. A linear layer is PyTorch nn.Linear: W is (d_out, d_in),
    y = x W^T (+ b), x is (n, d_in) with one token per row. PEFT tensors load without transposes.
  - Shapes are written (rows, cols). n = rows of x (batch x tokens), d_in, d_out, r = rank.
  - Argument order everywhere: desc, outputs, inputs and weights, n, cache, cache_size, work,
    work_size.
  - Adapters ADD: forward does y += dy_adapter; the base layer is yours.
  - Backward ACCUMULATES: dx, dA, dB, ... += (PyTorch .grad semantics). Zero them yourself
    (lort_zero). A NULL gradient pointer skips that gradient.
  - No output may alias an input unless a function says so.
  - Descs are plain structs; a zero field means "default" where a default is documented.
    lort_<family>_desc_resolve() returns the effective values.
  - Dimensions are int (cblas' int); element counts and byte sizes are size_t, computed with
    checked arithmetic; a buffer larger than PTRDIFF_MAX bytes is an overflow.

MEMORY
======
  Nothing in a kernel allocates. Per adapter there are up to four caller-owned buffers:
    params  the trainable values, one flat float vector with a documented layout (its gradient
            uses the same layout, so an optimizer steps one vector and saving is one write);
    frozen  frozen factors (LoRA-XS's A and B), another flat float vector;
    cache   what forward saves for backward, size from lort_<family>_cache_size(desc, n);
            forward may take cache = NULL (inference); backward then recomputes what it needs;
    work    scratch, dead after the call, size from lort_<family>_workspace_size(desc, n): one
            size serves forward, backward, merge and delta of that family at n rows.
  Sizes include 64 bytes of alignment slack, so any base pointer works; a buffer one byte short
  is refused with a status. lort_alloc/lort_free are optional helpers over an allocator struct.

ERRORS
======
  Every public function validates its arguments in O(1) (NULL pointers, sizes <= 0, products
  that overflow, shape mismatches, short workspaces) and returns a negative lort_status; it never
  aborts, exits or prints, and on error writes nothing to the caller's outputs.
  lort_status_string() gives a static message. Under LORT_DEBUG, kernels also scan their inputs
  for NaN/Inf (LORT_ERR_NONFINITE); the SVD routines always do (their cost dwarfs the scan).

THREADING
=========
  No mutable global or static state anywhere: every function is reentrant and can run
  concurrently on disjoint outputs. The library starts no threads; parallelism is BLAS's
  (OPENBLAS_NUM_THREADS, owned by the application). OpenBLAS's FAQ: an application that calls
  BLAS from several threads should run OpenBLAS single-threaded (built with USE_LOCKING since
  0.3.7). The built-in GEMM path is bit-deterministic. Forward kernels are row-separable (split n
  across your threads); parameter gradients of backward are sums over rows and need a reduction.

MATH
====
  lora (Hu et al. 2021, as in HuggingFace PEFT). A: (r, d_in), B: (d_out, r).
      s  = alpha / r, or alpha / sqrt(r) when rslora is set (alpha = 0 means alpha = r)
      Xd = drop(x)                      inverted dropout with probability p (identity if p = 0)
      H  = Xd A^T         (n, r)        saved in the cache
      y += s H B^T        (n, d_out)
      backward: GH = s dy B (n, r); dB += s dy^T H; dA += GH^T Xd; dx += drop(GH A)
      merge: W += weight * s B A        delta: dW = s B A
      init: A ~ U(-1/sqrt(d_in), 1/sqrt(d_in)) (kaiming_uniform(a=sqrt 5)), B = 0; or Gaussian
            A ~ N(0, 1/r^2) (PEFT "gaussian").  FLOPs forward 2 n r (d_in + d_out).
      params layout: A (r*d_in) then B (d_out*r).

  loraxs (Balazy et al. 2024). Frozen A = S_r V_r^T (r, d_in) and B = U_r (d_out, r) from the
  rank-r truncated SVD W0 = U S V^T; trainable R (r, r), init N(0, sigma^2), sigma = 1e-5.
      H1 = Xd A^T (n, r, cached); H2 = H1 R^T; y += s H2 B^T
      backward: dH2 = s dy B; dR += dH2^T H1; dx += drop(dH2 R A)
      merge: W += weight * s B R A      params: R (r*r); frozen layout: A (r*d_in) then B (d_out*r)
      The right singular vectors are signed so that the largest-magnitude entry of each row of
      V^T is positive (sklearn's svd_flip, which LoRA-XS's reference code uses).

  dropout: keep(row, col) is a pure function of (seed, row, col) (a counter-based hash), so
      backward regenerates the mask of forward instead of storing it. Rows are numbered from 0
      within each call: a caller splitting n across calls should vary the seed. Dropout acts
      only on the adapter branch, and only when p > 0: set p = 0 for inference.

  svd: lort_svd_truncated finds the top-r singular triplets of an (m, n) matrix by a randomized
      range finder (Halko, Martinsson, Tropp 2011): l = r + oversample Gaussian probes, q power
      iterations re-orthonormalized by Householder QR, then the exact SVD of the small (l, n)
      projection. The exact SVD (lort_svd_jacobi, or opts.exact) reduces by Householder QR to a
      k x k triangle, k = min(m, n), and runs one-sided Jacobi on it in double precision.
      Results are deterministic given opts.seed; singular values are sorted descending.

  adamw (Loshchilov & Hutter; torch.optim.AdamW): p -= lr*wd*p; m = b1 m + (1-b1) g;
      v = b2 v + (1-b2) g^2; p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps).
*/

#ifndef LORTENSOR_H
#define LORTENSOR_H

#include <stddef.h>
#include <stdint.h>

#define LORT_VERSION_MAJOR 0
#define LORT_VERSION_MINOR 1
#define LORT_VERSION_PATCH 0
#define LORT__STR2(x) #x
#define LORT__STR(x) LORT__STR2(x)
#define LORT_VERSION_STRING                                                                   \
    LORT__STR(LORT_VERSION_MAJOR) "." LORT__STR(LORT_VERSION_MINOR) "." LORT__STR(LORT_VERSION_PATCH)

#ifndef LORT_API
#ifdef LORT_STATIC
#define LORT_API static
#else
#define LORT_API extern
#endif
#endif

#ifndef LORT_RESTRICT
#if defined(__cplusplus) || !defined(__STDC_VERSION__) || __STDC_VERSION__ < 199901L
#define LORT_RESTRICT __restrict
#else
#define LORT_RESTRICT restrict
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

// >>api =========================================================================== core

/* Status codes: 0 is success, errors are negative. Never renumbered, only appended. */
#define LORT__STATUS_LIST(X)                                                                  \
    X(LORT_OK, 0, "ok")                                                                       \
    X(LORT_ERR_NULL, -1, "a required pointer is NULL")                                        \
    X(LORT_ERR_INVALID_ARG, -2, "invalid argument: a size is <= 0 or an option is out of range") \
    X(LORT_ERR_SHAPE, -3, "shapes do not match")                                              \
    X(LORT_ERR_OVERFLOW, -4, "a size overflows int or size_t")                                \
    X(LORT_ERR_WORKSPACE, -5, "workspace too small")                                          \
    X(LORT_ERR_CACHE, -6, "cache too small")                                                  \
    X(LORT_ERR_OUT_OF_MEMORY, -7, "out of memory")                                            \
    X(LORT_ERR_UNSUPPORTED, -8, "unknown adapter kind or unsupported operation")              \
    X(LORT_ERR_NO_CONVERGENCE, -9, "iteration did not converge")                              \
    X(LORT_ERR_NONFINITE, -10, "input contains NaN or Inf")

typedef enum lort_status {
#define LORT__STATUS_ENUM(name, value, msg) name = value,
    LORT__STATUS_LIST(LORT__STATUS_ENUM)
#undef LORT__STATUS_ENUM
    LORT__STATUS_MIN = -10
} lort_status;

/* Static message for a status; "unknown status" for a value not in the list. */
LORT_API const char *lort_status_string(lort_status status);

/* Version of the compiled implementation (compare with the LORT_VERSION_* macros). */
LORT_API void lort_version(int *major, int *minor, int *patch);
LORT_API const char *lort_version_string(void);

/* Name of the GEMM backend compiled in: "cblas" or "builtin". */
LORT_API const char *lort_gemm_backend(void);

/* Optional allocation helpers (kernels never allocate). NULL allocator = LORT_MALLOC/LORT_FREE.
   alloc(bytes, user) returns NULL on failure; free(ptr, user). */
typedef struct lort_allocator {
    void *user;
    void *(*alloc)(size_t bytes, void *user);
    void (*free)(void *ptr, void *user);
} lort_allocator;
/* *out = a new block of `bytes` (> 0) bytes, or LORT_ERR_OUT_OF_MEMORY with *out = NULL. */
LORT_API lort_status lort_alloc(const lort_allocator *allocator, size_t bytes, void **out);
LORT_API void lort_free(const lort_allocator *allocator, void *ptr);

/* x[0..count) = 0. */
LORT_API void lort_zero(float *x, size_t count);

/* ---- random numbers: explicit state, no rand() ---------------------------------------- */
typedef struct lort_rng {
    uint64_t state;
} lort_rng;
LORT_API void lort_rng_seed(lort_rng *rng, uint64_t seed);
LORT_API uint64_t lort_rng_u64(lort_rng *rng);
LORT_API float lort_rng_uniform(lort_rng *rng);   /* [0, 1) */
LORT_API float lort_rng_normal(lort_rng *rng);    /* N(0, 1), Box-Muller in double */
/* Counter-based: a pure function of its arguments, uniform in [0, 1). Used for dropout. */
LORT_API float lort_hash_uniform(uint64_t seed, uint64_t row, uint64_t col);
/* Inverted-dropout factor of element (row, col): 0 with probability p, else 1/(1-p). */
LORT_API float lort_dropout_factor(uint64_t seed, float p, uint64_t row, uint64_t col);

/* ---- GEMM ----------------------------------------------------------------------------- */
/* Row-major C (M, N) = alpha op(A) op(B) + beta C, op(X) = X or X^T (trans != 0), exactly
   cblas_sgemm(CblasRowMajor, ...). M, N, K >= 0; lda >= max(1, cols of A as stored), etc.
   beta == 0 overwrites C (NaN in C does not propagate). lort_sgemm uses the compiled backend;
   lort_sgemm_builtin is always the built-in blocked GEMM (the test reference). */
LORT_API lort_status lort_sgemm(int transA, int transB, int M, int N, int K, float alpha,
                                const float *A, int lda, const float *B, int ldb, float beta,
                                float *C, int ldc);
LORT_API lort_status lort_sgemm_builtin(int transA, int transB, int M, int N, int K,
                                        float alpha, const float *A, int lda, const float *B,
                                        int ldb, float beta, float *C, int ldc);

/* ---- SVD ------------------------------------------------------------------------------ */
typedef struct lort_svd_opts {
    int exact;         /* nonzero: exact SVD (QR + Jacobi) instead of the randomized one */
    int oversample;    /* extra probes l - r; 0 = default max(10, r/2) (capped by min(m, n)) */
    int power_iters;   /* 0 = default 6 (a value < 0 means none) */
    int max_sweeps;    /* Jacobi sweep limit; 0 = default 60 */
    uint64_t seed;     /* probe seed; 0 is a valid seed */
} lort_svd_opts;

/* Truncated SVD of W (m, n), leading dimension ldw >= n: W ~= U diag(S) Vt, U (m, r),
   S (r), Vt (r, n), 1 <= r <= min(m, n). opts NULL = defaults. U or Vt may be NULL. */
LORT_API lort_status lort_svd_truncated_workspace_size(int m, int n, int r,
                                                       const lort_svd_opts *opts, size_t *bytes);
LORT_API lort_status lort_svd_truncated(float *U, float *S, float *Vt, const float *W, int ldw,
                                        int m, int n, int r, const lort_svd_opts *opts,
                                        void *work, size_t work_size);
/* Full thin exact SVD, k = min(m, n): U (m, k), S (k), Vt (k, n). */
LORT_API lort_status lort_svd_jacobi_workspace_size(int m, int n, size_t *bytes);
LORT_API lort_status lort_svd_jacobi(float *U, float *S, float *Vt, const float *W, int ldw,
                                     int m, int n, int max_sweeps, void *work, size_t work_size);

// >>api =========================================================================== lora

typedef enum lort_lora_init_kind {
    LORT_LORA_INIT_DEFAULT = 0,    /* A ~ kaiming_uniform(a = sqrt 5) = U(+-1/sqrt(d_in)), B = 0 */
    LORT_LORA_INIT_GAUSSIAN = 1    /* A ~ N(0, 1/r^2), B = 0 */
} lort_lora_init_kind;

typedef struct lort_lora_desc {
    int d_in, d_out, r;     /* required, > 0 */
    float alpha;            /* 0 = r (scale 1) */
    int rslora;             /* nonzero: s = alpha / sqrt(r) instead of alpha / r */
    float dropout;          /* p in [0, 1); 0 = none */
    uint64_t dropout_seed;  /* key of the counter-based mask; change it every step */
    int init;               /* lort_lora_init_kind */
} lort_lora_desc;

LORT_API lort_status lort_lora_desc_resolve(const lort_lora_desc *desc, lort_lora_desc *out);
LORT_API lort_status lort_lora_scale(const lort_lora_desc *desc, float *scale);
LORT_API lort_status lort_lora_param_count(const lort_lora_desc *desc, size_t *count);
LORT_API lort_status lort_lora_cache_size(const lort_lora_desc *desc, int n, size_t *bytes);
LORT_API lort_status lort_lora_workspace_size(const lort_lora_desc *desc, int n, size_t *bytes);
/* A: (r, d_in), B: (d_out, r) */
LORT_API lort_status lort_lora_init(const lort_lora_desc *desc, float *A, float *B, lort_rng *rng);
/* y: (n, d_out) += s drop(x) A^T B^T.  x: (n, d_in). cache (optional): H (n, r). */
LORT_API lort_status lort_lora_forward(const lort_lora_desc *desc, float *y, const float *x,
                                       const float *A, const float *B, int n, void *cache,
                                       size_t cache_size, void *work, size_t work_size);
/* dx (n, d_in), dA (r, d_in), dB (d_out, r) accumulate; each may be NULL. dy: (n, d_out).
   cache: the one forward filled for the same x, or NULL to recompute it. */
LORT_API lort_status lort_lora_backward(const lort_lora_desc *desc, float *dx, float *dA,
                                        float *dB, const float *dy, const float *x,
                                        const float *A, const float *B, int n,
                                        const void *cache, size_t cache_size, void *work,
                                        size_t work_size);
/* W: (d_out, d_in) += weight * s B A (weight +1 merges, -1 unmerges). */
LORT_API lort_status lort_lora_merge(const lort_lora_desc *desc, float *W, const float *A,
                                     const float *B, float weight);
/* dW: (d_out, d_in) = s B A. */
LORT_API lort_status lort_lora_delta(const lort_lora_desc *desc, float *dW, const float *A,
                                     const float *B);

// >>api ========================================================================= loraxs

typedef struct lort_loraxs_desc {
    int d_in, d_out, r;     /* required, > 0, r <= min(d_in, d_out) */
    float alpha;            /* 0 = r (scale 1) */
    int rslora;             /* nonzero: s = alpha / sqrt(r) */
    float dropout;          /* p in [0, 1) */
    uint64_t dropout_seed;
    float init_std;         /* std of R at init; 0 = 1e-5 */
    lort_svd_opts svd;      /* how init factors W0 (default: randomized) */
} lort_loraxs_desc;

LORT_API lort_status lort_loraxs_desc_resolve(const lort_loraxs_desc *desc,
                                              lort_loraxs_desc *out);
LORT_API lort_status lort_loraxs_scale(const lort_loraxs_desc *desc, float *scale);
LORT_API lort_status lort_loraxs_param_count(const lort_loraxs_desc *desc, size_t *count);
LORT_API lort_status lort_loraxs_frozen_count(const lort_loraxs_desc *desc, size_t *count);
LORT_API lort_status lort_loraxs_cache_size(const lort_loraxs_desc *desc, int n, size_t *bytes);
LORT_API lort_status lort_loraxs_workspace_size(const lort_loraxs_desc *desc, int n,
                                                size_t *bytes);
LORT_API lort_status lort_loraxs_init_workspace_size(const lort_loraxs_desc *desc,
                                                     size_t *bytes);
/* From W0 (d_out, d_in): A (r, d_in) = S_r V_r^T, B (d_out, r) = U_r, R (r, r) ~ N(0, std^2). */
LORT_API lort_status lort_loraxs_init(const lort_loraxs_desc *desc, float *R, float *A, float *B,
                                      const float *W0, lort_rng *rng, void *work,
                                      size_t work_size);
/* y (n, d_out) += s drop(x) A^T R^T B^T. cache (optional): H1 (n, r). */
LORT_API lort_status lort_loraxs_forward(const lort_loraxs_desc *desc, float *y, const float *x,
                                         const float *R, const float *A, const float *B, int n,
                                         void *cache, size_t cache_size, void *work,
                                         size_t work_size);
/* dx (n, d_in) and dR (r, r) accumulate; either may be NULL. */
LORT_API lort_status lort_loraxs_backward(const lort_loraxs_desc *desc, float *dx, float *dR,
                                          const float *dy, const float *x, const float *R,
                                          const float *A, const float *B, int n,
                                          const void *cache, size_t cache_size, void *work,
                                          size_t work_size);
/* W (d_out, d_in) += weight * s B R A. */
LORT_API lort_status lort_loraxs_merge(const lort_loraxs_desc *desc, float *W, const float *R,
                                       const float *A, const float *B, float weight,
                                       void *work, size_t work_size);
LORT_API lort_status lort_loraxs_delta(const lort_loraxs_desc *desc, float *dW, const float *R,
                                       const float *A, const float *B, void *work,
                                       size_t work_size);

// >>api ======================================================================== adapter

typedef enum lort_kind {
    LORT_KIND_NONE = 0,
    LORT_KIND_LORA = 1,
    LORT_KIND_LORAXS = 2
} lort_kind;

/* One adapted matrix of any family. params/grads share the family's flat layout; frozen holds
   frozen factors (NULL for families without). grads NULL = no parameter gradients. layer and
   matrix name the site of joint families (ignored by lora and loraxs). */
typedef struct lort_adapter {
    lort_kind kind;
    union {
        lort_lora_desc lora;
        lort_loraxs_desc loraxs;
    } desc;
    float *params;
    float *frozen;
    float *grads;
    int layer, matrix;
} lort_adapter;

typedef struct lort_adapter_sizes {
    size_t params;      /* floats in params (and grads) */
    size_t frozen;      /* floats in frozen */
    size_t cache;       /* bytes of cache for n rows */
    size_t work;        /* bytes of workspace for forward/backward/merge/delta at n rows */
    size_t init_work;   /* bytes of workspace for init */
    int d_in, d_out;    /* the adapted matrix */
} lort_adapter_sizes;

LORT_API lort_status lort_adapter_sizes_query(const lort_adapter *a, int n,
                                              lort_adapter_sizes *sizes);
/* W0 (d_out, d_in) is needed by families initialised from the weight (loraxs); may be NULL
   for the others. */
LORT_API lort_status lort_adapter_init(const lort_adapter *a, const float *W0, lort_rng *rng,
                                       void *work, size_t work_size);
LORT_API lort_status lort_adapter_forward(const lort_adapter *a, float *y, const float *x, int n,
                                          void *cache, size_t cache_size, void *work,
                                          size_t work_size);
/* dx may be NULL; parameter gradients go to a->grads (NULL skips). */
LORT_API lort_status lort_adapter_backward(const lort_adapter *a, float *dx, const float *dy,
                                           const float *x, int n, const void *cache,
                                           size_t cache_size, void *work, size_t work_size);
LORT_API lort_status lort_adapter_merge(const lort_adapter *a, float *W, float weight,
                                        void *work, size_t work_size);
LORT_API lort_status lort_adapter_delta(const lort_adapter *a, float *dW, void *work,
                                        size_t work_size);

// >>api ========================================================================== adamw

typedef struct lort_adamw_desc {
    float lr, beta1, beta2, eps, weight_decay;   /* all literal; see lort_adamw_default */
} lort_adamw_desc;
/* torch.optim.AdamW defaults: beta1 0.9, beta2 0.999, eps 1e-8, weight_decay 0.01. */
LORT_API lort_adamw_desc lort_adamw_default(float lr);
/* One step t >= 1 (1 on the first call) over count values; m and v (zero at t = 1) are the
   caller's state, same length. */
LORT_API lort_status lort_adamw_step(const lort_adamw_desc *opt, float *params, float *m,
                                     float *v, const float *grads, size_t count, long t);

#ifdef __cplusplus
}
#endif
#endif /* LORTENSOR_H */
