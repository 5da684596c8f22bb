/* 01_lora_linear.c - fit a LoRA and a LoRA-XS adapter to a planted low-rank weight update.

   A frozen 64x64 linear layer W0 (PyTorch nn.Linear layout: W is (d_out, d_in), y = x W^T)
   sees n = 256 random inputs. The target layer is W0 + dW with dW of rank 4. The base output
   y0 = x W0^T is computed once with lort_sgemm; an adapter adds its contribution on top of it,
   is trained on the mean squared error with AdamW, and is then merged into a copy of W0. The
   program checks that
     - the final loss is at least 100x below the initial loss, and
     - the merged layer's output equals base + adapter (and unmerging restores W0),
   and exits non-zero otherwise.

     LoRA     dW = U V^T, any rank-4 matrix; trainable A (r, d_in), B (d_out, r).
     LoRA-XS  trainable R (r, r) only, between frozen factors taken from the top-r SVD of W0,
              so it can only express dW = U_r M S_r V_r^T (inside W0's top singular subspace).
              The target perturbs W0's own top-4 singular directions that way.

   Build: make run   (or: cc -std=c99 -O2 -I. examples/01_lora_linear.c -DLORT_NO_BLAS -lm) */
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { D_IN = 64, D_OUT = 64, N = 256, RANK = 4, STEPS = 300, PRINT_EVERY = 50 };

#define MIN_LOSS_DROP 100.0 /* final loss must be this many times below the initial loss */

/* ---- small helpers ------------------------------------------------------------------------ */

static void check(lort_status status, const char *what) {
    if (status != LORT_OK) {
        fprintf(stderr, "FAIL: %s: %s (%d)\n", what, lort_status_string(status), (int)status);
        exit(EXIT_FAILURE);
    }
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "FAIL: out of memory (%zu bytes)\n", bytes);
        exit(EXIT_FAILURE);
    }
    return p;
}

static float *floats(size_t count) { return (float *)xmalloc(count * sizeof(float)); }

static void fill_normal(float *x, size_t count, float std, lort_rng *rng) {
    for (size_t i = 0; i < count; ++i) x[i] = std * lort_rng_normal(rng);
}

/* y (n, d_out) = x (n, d_in) W^T, W (d_out, d_in): an nn.Linear without bias. */
static void linear(float *y, const float *x, const float *W, int n, int d_in, int d_out) {
    check(lort_sgemm(0, 1, n, d_out, d_in, 1.0f, x, d_in, W, d_in, 0.0f, y, d_out), "lort_sgemm");
}

/* Mean squared error over count values; dy = d loss / d y. */
static double mse(float *dy, const float *y, const float *target, size_t count) {
    double sum = 0.0;
    for (size_t i = 0; i < count; ++i) {
        double e = (double)y[i] - (double)target[i];
        sum += e * e;
        dy[i] = (float)(2.0 * e / (double)count);
    }
    return sum / (double)count;
}

static double max_abs_diff(const float *a, const float *b, size_t count) {
    double m = 0.0;
    for (size_t i = 0; i < count; ++i) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m) m = d;
    }
    return m;
}

static double max_abs(const float *a, size_t count) {
    double m = 0.0;
    for (size_t i = 0; i < count; ++i)
        if (fabs((double)a[i]) > m) m = fabs((double)a[i]);
    return m;
}

/* The learning rate decays linearly to 10% over the run (a full-batch fit). */
static float lr_at(float lr0, int step) {
    return lr0 * (1.0f - 0.9f * (float)step / (float)STEPS);
}

/* The data every fit shares. */
typedef struct problem {
    float *x;      /* (N, D_IN) inputs */
    float *W0;     /* (D_OUT, D_IN) frozen base weight */
    float *y0;     /* (N, D_OUT) = x W0^T */
    float *target; /* (N, D_OUT) = x (W0 + dW)^T, dW depends on the fit */
    float *y;      /* (N, D_OUT) current output */
    float *dy;     /* (N, D_OUT) loss gradient */
    float *W;      /* (D_OUT, D_IN) scratch weight (merged layer) */
    float *ym;     /* (N, D_OUT) output of the merged layer */
} problem;

static const size_t NX = (size_t)N * D_IN, NY = (size_t)N * D_OUT, NW = (size_t)D_OUT * D_IN;

/* target = x (W0 + dW)^T */
static void make_target(problem *p, const float *dW) {
    for (size_t i = 0; i < NW; ++i) p->W[i] = p->W0[i] + dW[i];
    linear(p->target, p->x, p->W, N, D_IN, D_OUT);
}

static int report_fit(double loss0, double loss) {
    int ok = loss * MIN_LOSS_DROP <= loss0;
    printf("  final loss %.3e = %.1e x initial (need <= %.0e)   %s\n", loss, loss / loss0,
           1.0 / MIN_LOSS_DROP, ok ? "OK" : "FAIL");
    return ok;
}

/* Merged layer vs base + adapter, on the same inputs; tolerance relative to the output size. */
static int report_merge(const problem *p) {
    double diff = max_abs_diff(p->ym, p->y, NY), tol = 1e-5 * (1.0 + max_abs(p->y, NY));
    int ok = diff <= tol;
    printf("  merged vs unmerged output: max |diff| %.2e (tol %.1e)   %s\n", diff, tol,
           ok ? "OK" : "FAIL");
    return ok;
}

static int report_unmerge(const problem *p) {
    double diff = max_abs_diff(p->W, p->W0, NW), tol = 1e-5 * (1.0 + max_abs(p->W0, NW));
    int ok = diff <= tol;
    printf("  unmerge restores W0:       max |diff| %.2e (tol %.1e)   %s\n", diff, tol,
           ok ? "OK" : "FAIL");
    return ok;
}

/* ---- LoRA ----------------------------------------------------------------------------------- */

static int fit_lora(problem *p, lort_rng *rng) {
    /* The planted update: dW = U V^T, U (D_OUT, RANK), V (D_IN, RANK). */
    float *U = floats((size_t)D_OUT * RANK), *V = floats((size_t)D_IN * RANK), *dW = floats(NW);
    fill_normal(U, (size_t)D_OUT * RANK, 0.25f, rng);
    fill_normal(V, (size_t)D_IN * RANK, 0.25f, rng);
    check(lort_sgemm(0, 1, D_OUT, D_IN, RANK, 1.0f, U, RANK, V, RANK, 0.0f, dW, D_IN), "dW");
    make_target(p, dW);

    lort_lora_desc d;
    memset(&d, 0, sizeof d);
    d.d_in = D_IN;
    d.d_out = D_OUT;
    d.r = RANK;
    d.alpha = 2.0f * RANK; /* s = alpha / r = 2 */

    size_t np, cs, ws;
    float s;
    check(lort_lora_param_count(&d, &np), "lort_lora_param_count");
    check(lort_lora_cache_size(&d, N, &cs), "lort_lora_cache_size");
    check(lort_lora_workspace_size(&d, N, &ws), "lort_lora_workspace_size");
    check(lort_lora_scale(&d, &s), "lort_lora_scale");

    /* One flat parameter vector (A then B), its gradient and the AdamW moments. */
    float *params = floats(np), *grads = floats(np), *m = floats(np), *v = floats(np);
    float *A = params, *B = params + (size_t)RANK * D_IN;
    float *dA = grads, *dB = grads + (size_t)RANK * D_IN;
    void *cache = xmalloc(cs), *work = xmalloc(ws);
    lort_zero(m, np);
    lort_zero(v, np);
    check(lort_lora_init(&d, A, B, rng), "lort_lora_init"); /* A random, B = 0 */

    const float lr0 = 1e-2f;
    lort_adamw_desc opt = lort_adamw_default(lr0);
    opt.weight_decay = 0.0f; /* an exact fit is wanted: no pull towards zero */

    printf("\nLoRA r=%d, s=alpha/r=%g: %zu trainable floats (A %dx%d, B %dx%d; the dense layer "
           "has %zu)\n", RANK, (double)s, np, RANK, D_IN, D_OUT, RANK, NW);
    printf("  target dW = U V^T, a random rank-%d matrix; AdamW lr %g -> %g, %d steps\n", RANK,
           (double)lr0, (double)lr_at(lr0, STEPS), STEPS);

    double loss0 = 0.0, loss = 0.0;
    for (int step = 0; step <= STEPS; ++step) {
        memcpy(p->y, p->y0, NY * sizeof(float)); /* y = x W0^T, then the adapter adds */
        check(lort_lora_forward(&d, p->y, p->x, A, B, N, cache, cs, work, ws), "lora_forward");
        loss = mse(p->dy, p->y, p->target, NY);
        if (step == 0) loss0 = loss;
        if (step % PRINT_EVERY == 0) printf("  step %4d  loss %.3e\n", step, loss);
        if (step == STEPS) break;
        lort_zero(grads, np); /* backward accumulates */
        check(lort_lora_backward(&d, NULL, dA, dB, p->dy, p->x, A, B, N, cache, cs, work, ws),
              "lora_backward");
        opt.lr = lr_at(lr0, step);
        check(lort_adamw_step(&opt, params, m, v, grads, np, (long)step + 1), "adamw_step");
    }
    int ok = report_fit(loss0, loss);

    /* Merge: W = W0 + s B A. The merged layer alone must give base + adapter. */
    memcpy(p->y, p->y0, NY * sizeof(float));
    check(lort_lora_forward(&d, p->y, p->x, A, B, N, NULL, 0, work, ws), "lora_forward");
    memcpy(p->W, p->W0, NW * sizeof(float));
    check(lort_lora_merge(&d, p->W, A, B, 1.0f, NULL, 0), "lort_lora_merge");
    linear(p->ym, p->x, p->W, N, D_IN, D_OUT);
    ok &= report_merge(p);
    check(lort_lora_merge(&d, p->W, A, B, -1.0f, NULL, 0), "lort_lora_merge (unmerge)");
    ok &= report_unmerge(p);

    free(U), free(V), free(dW), free(params), free(grads), free(m), free(v), free(cache);
    free(work);
    return ok;
}

/* ---- LoRA-XS -------------------------------------------------------------------------------- */

static int fit_loraxs(problem *p, lort_rng *rng) {
    lort_loraxs_desc d;
    memset(&d, 0, sizeof d);
    d.d_in = D_IN;
    d.d_out = D_OUT;
    d.r = RANK; /* alpha = 0: s = 1; R ~ N(0, 1e-5^2); randomized truncated SVD of W0 */

    size_t np, nf, cs, ws, iws, jws;
    float s;
    check(lort_loraxs_param_count(&d, &np), "lort_loraxs_param_count");
    check(lort_loraxs_frozen_count(&d, &nf), "lort_loraxs_frozen_count");
    check(lort_loraxs_cache_size(&d, N, &cs), "lort_loraxs_cache_size");
    check(lort_loraxs_workspace_size(&d, N, &ws), "lort_loraxs_workspace_size");
    check(lort_loraxs_init_workspace_size(&d, &iws), "lort_loraxs_init_workspace_size");
    check(lort_loraxs_scale(&d, &s), "lort_loraxs_scale");

    /* The target: dW = U_r M S_r V_r^T from an exact SVD of W0 (independent of the adapter's
       own randomized one), M a random (r, r) matrix. */
    const int K = D_OUT < D_IN ? D_OUT : D_IN;
    float *U = floats((size_t)D_OUT * (size_t)K), *S = floats((size_t)K);
    float *Vt = floats((size_t)K * D_IN), *M = floats((size_t)RANK * RANK);
    float *US = floats((size_t)D_OUT * RANK), *dW = floats(NW);
    check(lort_svd_jacobi_workspace_size(D_OUT, D_IN, &jws), "lort_svd_jacobi_workspace_size");
    void *jwork = xmalloc(jws);
    check(lort_svd_jacobi(U, S, Vt, p->W0, D_IN, D_OUT, D_IN, 0, jwork, jws), "lort_svd_jacobi");
    fill_normal(M, (size_t)RANK * RANK, 0.3f, rng);
    /* US (D_OUT, RANK) = U_r M S_r; dW = US V_r^T (the first RANK rows of Vt). */
    check(lort_sgemm(0, 0, D_OUT, RANK, RANK, 1.0f, U, K, M, RANK, 0.0f, US, RANK), "U M");
    for (int i = 0; i < D_OUT; ++i)
        for (int j = 0; j < RANK; ++j) US[(size_t)i * RANK + (size_t)j] *= S[j];
    check(lort_sgemm(0, 0, D_OUT, D_IN, RANK, 1.0f, US, RANK, Vt, D_IN, 0.0f, dW, D_IN), "dW");
    make_target(p, dW);

    float *params = floats(np), *grads = floats(np), *m = floats(np), *v = floats(np);
    float *frozen = floats(nf);
    float *R = params, *dR = grads, *A = frozen, *B = frozen + (size_t)RANK * D_IN;
    void *cache = xmalloc(cs), *work = xmalloc(ws > iws ? ws : iws);
    lort_zero(m, np);
    lort_zero(v, np);
    check(lort_loraxs_init(&d, R, A, B, p->W0, rng, work, iws), "lort_loraxs_init");

    const float lr0 = 2e-2f;
    lort_adamw_desc opt = lort_adamw_default(lr0);
    opt.weight_decay = 0.0f;

    printf("\nLoRA-XS r=%d, s=%g: %zu trainable floats (R %dx%d) between frozen A = S_r V_r^T and "
           "B = U_r\n", RANK, (double)s, np, RANK, RANK);
    printf("  W0's top singular values %.3f %.3f %.3f %.3f | next %.3f\n", (double)S[0],
           (double)S[1], (double)S[2], (double)S[3], (double)S[RANK]);
    printf("  target dW = U_r M S_r V_r^T (M random %dx%d); AdamW lr %g -> %g, %d steps\n", RANK,
           RANK, (double)lr0, (double)lr_at(lr0, STEPS), STEPS);

    double loss0 = 0.0, loss = 0.0;
    for (int step = 0; step <= STEPS; ++step) {
        memcpy(p->y, p->y0, NY * sizeof(float));
        check(lort_loraxs_forward(&d, p->y, p->x, R, A, B, N, cache, cs, work, ws),
              "loraxs_forward");
        loss = mse(p->dy, p->y, p->target, NY);
        if (step == 0) loss0 = loss;
        if (step % PRINT_EVERY == 0) printf("  step %4d  loss %.3e\n", step, loss);
        if (step == STEPS) break;
        lort_zero(grads, np);
        check(lort_loraxs_backward(&d, NULL, dR, p->dy, p->x, R, A, B, N, cache, cs, work, ws),
              "loraxs_backward");
        opt.lr = lr_at(lr0, step);
        check(lort_adamw_step(&opt, params, m, v, grads, np, (long)step + 1), "adamw_step");
    }
    int ok = report_fit(loss0, loss);

    memcpy(p->y, p->y0, NY * sizeof(float));
    check(lort_loraxs_forward(&d, p->y, p->x, R, A, B, N, NULL, 0, work, ws), "loraxs_forward");
    memcpy(p->W, p->W0, NW * sizeof(float));
    check(lort_loraxs_merge(&d, p->W, R, A, B, 1.0f, work, ws), "lort_loraxs_merge");
    linear(p->ym, p->x, p->W, N, D_IN, D_OUT);
    ok &= report_merge(p);
    check(lort_loraxs_merge(&d, p->W, R, A, B, -1.0f, work, ws), "lort_loraxs_merge (unmerge)");
    ok &= report_unmerge(p);

    free(U), free(S), free(Vt), free(M), free(US), free(dW), free(jwork);
    free(params), free(grads), free(m), free(v), free(frozen), free(cache), free(work);
    return ok;
}

/* ---- main ------------------------------------------------------------------------------------ */

int main(void) {
    lort_rng rng;
    lort_rng_seed(&rng, 2026);

    problem p;
    p.x = floats(NX);
    p.W0 = floats(NW);
    p.y0 = floats(NY);
    p.target = floats(NY);
    p.y = floats(NY);
    p.dy = floats(NY);
    p.W = floats(NW);
    p.ym = floats(NY);

    /* W0: like a trained weight, a few strong directions over a weak bulk: a rank-8 part with
       singular values of order 1 (the top RANK clearly above the other four) plus small noise,
       so that its top-RANK singular subspace is well separated and LoRA-XS's randomized SVD
       finds the same subspace as the exact SVD used to build the target. */
    {
        enum { K0 = 8 };
        float *P = floats((size_t)D_OUT * K0), *Q = floats((size_t)D_IN * K0);
        fill_normal(P, (size_t)D_OUT * K0, 1.0f / sqrtf((float)D_OUT), &rng);
        fill_normal(Q, (size_t)D_IN * K0, 1.0f / sqrtf((float)D_IN), &rng);
        fill_normal(p.W0, NW, 0.05f / sqrtf((float)D_IN), &rng);
        for (int k = 0; k < K0; ++k) { /* strengths 1, 0.8, 0.64, 0.51 | 0.16, 0.13, ... */
            float strength = powf(0.8f, (float)k) * (k < RANK ? 1.0f : 0.4f);
            for (int i = 0; i < D_OUT; ++i) P[(size_t)i * K0 + (size_t)k] *= strength;
        }
        check(lort_sgemm(0, 1, D_OUT, D_IN, K0, 1.0f, P, K0, Q, K0, 1.0f, p.W0, D_IN), "W0");
        free(P), free(Q);
    }
    fill_normal(p.x, NX, 1.0f, &rng);
    linear(p.y0, p.x, p.W0, N, D_IN, D_OUT); /* the base layer, computed once */

    printf("lortensor %s (GEMM backend: %s) - example 01: adapters on one linear layer\n",
           lort_version_string(), lort_gemm_backend());
    printf("  frozen W0 %dx%d, n = %d random inputs x ~ N(0, 1), target layer W0 + dW with "
           "rank(dW) = %d, MSE loss\n", D_OUT, D_IN, N, RANK);

    int ok = fit_lora(&p, &rng);
    ok &= fit_loraxs(&p, &rng);

    printf("\n%s\n", ok ? "OK" : "FAIL");
    free(p.x), free(p.W0), free(p.y0), free(p.target), free(p.y), free(p.dy), free(p.W);
    free(p.ym);
    return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
