/* 05_data_parallel.c - adapter training over MPI: the batch split across ranks, one
   MPI_Allreduce of the flat gradient per step.

   Every lortensor adapter keeps all of its trainable floats in one flat vector, and so does a
   whole model's set of sites (examples/transformer.h's tf_adapters: params, grads). Data
   parallelism is then one call per step:

       forward + backward on this rank's share of the batch     (local grads, pre-scaled)
       MPI_Allreduce(grads, SUM)                                (the full-batch gradient)
       lort_adamw_step on every rank                            (identical params everywhere)

   The program fine-tunes the toy transformer of example 00 (d 64, 4 heads, 2 blocks; a random
   base here, so that it stands alone) on example 00's subtraction task, once with LoRA on Wq
   and Wv (a per-site family: each site has its own slice) and once with LoRTA's CP tensor (a
   joint family: ONE block for every Q, K, V, O site, every rank adding to it). Each rank runs
   its share of BATCH sequences; the loss is the mean over the whole batch, so each rank scales
   its cross-entropy gradient by its share of the targets. Then rank 0 repeats the same steps in
   one process on the full batch and checks that
     - every rank holds the same parameters (max |difference| across ranks is 0), and
     - they equal the single-process run to fp32 tolerance (sums in a different order),
   and the program exits non-zero otherwise. It also prints the time per step.

   Build and run (Debian: apt-get install libopenmpi-dev openmpi-bin; make check does this):
       mpicc -std=c99 -O2 -I. -DLORT_NO_BLAS examples/05_data_parallel.c -o dp -lm
       mpirun -np 2 ./dp                 (as root: mpirun --allow-run-as-root ...)
       [--steps N] [--batch B] [--time-only]
   Across machines: the same binary at the same path on every host, a hostfile listing them
   (e.g. "node1 slots=2"), and mpirun --hostfile FILE -np P ./dp; Open MPI reaches the other
   hosts over ssh (passwordless) and moves the gradient over TCP or a faster fabric. */
#define _POSIX_C_SOURCE 199309L
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"
#include "examples/transformer.h"

#include <mpi.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { TOK_MINUS = 11, TOK_EQ = 12, VOCAB = 13, T = 8, MAX_BATCH = 256 };

#define PARAM_TOL 1e-5 /* max |p_parallel - p_single| / max(1, max |p|) after the steps */

/* Example 03's subtraction task: a1 a0 - b1 b0 = c0 c1 -> c0 c1 c2, (a - b) mod 1000 with the
   answer's digits reversed; targets -1 except the three answer positions. */
static void encode(int *tok, int *tgt, int p) {
    const int a = p / 100, b = p % 100, c = (a - b + 1000) % 1000;
    const int cd[3] = {c % 10, c / 10 % 10, c / 100};
    tok[0] = a / 10, tok[1] = a % 10, tok[2] = TOK_MINUS;
    tok[3] = b / 10, tok[4] = b % 10, tok[5] = TOK_EQ, tok[6] = cd[0], tok[7] = cd[1];
    for (int t = 0; t < T; ++t) tgt[t] = t >= 5 ? cd[t - 5] : -1;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { FAM_LORA, FAM_CP };

static void sites(tf_adapters *A, const tf_config *c, int fam) {
    memset(A, 0, sizeof *A);
    int n = 0;
    for (int l = 0; l < c->layers; ++l)
        for (int where = TF_Q; where <= TF_O; ++where) {
            if (fam == FAM_LORA && where != TF_Q && where != TF_V) continue;
            tf_site *s = &A->s[n++];
            s->layer = l, s->where = where, s->group = -1;
            s->ad.layer = l;
            if (fam == FAM_LORA) {
                s->ad.kind = LORT_KIND_LORA;
                s->ad.desc.lora.d_in = s->ad.desc.lora.d_out = c->d;
                s->ad.desc.lora.r = 8, s->ad.desc.lora.alpha = 16.0f;
            } else {
                s->ad.kind = LORT_KIND_CP;
                s->ad.desc.cp.d = c->d, s->ad.desc.cp.heads = c->heads;
                s->ad.desc.cp.layers = c->layers, s->ad.desc.cp.r = 8;
                s->ad.matrix = where; /* TF_Q..TF_O = LORT_CP_Q..LORT_CP_O */
                s->group = 0;         /* one block for all sites */
            }
        }
    A->nsites = n;
}

/* `steps` AdamW steps on sequences [lo, hi) of each step's batch of `batch` sequences (the
   batch is drawn from the same seed on every rank). comm == MPI_COMM_NULL: no reduction.
   Returns the seconds per step; the trained params are A->params. */
static double run(const tf_weights *base, tf_adapters *A, int fam, int steps, int batch,
                  int lo, int hi, MPI_Comm comm, double *comm_per_step) {
    const tf_config *c = &base->c;
    const int ns = hi - lo, n = ns * T;
    tf_acts acts;
    tf_acts_make(&acts, c, n > 0 ? n : T);
    lort_rng rng;
    lort_rng_seed(&rng, 77); /* the same adapter init on every rank */
    sites(A, c, fam);
    tf_adapters_attach(A, base, n > 0 ? n : T, &rng);
    float *m = tf_zeros(A->np), *v = tf_zeros(A->np);
    float *dlogits = tf_zeros((size_t)MAX_BATCH * T * VOCAB);
    int tok[MAX_BATCH * T], tgt[MAX_BATCH * T];
    lort_adamw_desc opt = lort_adamw_default(1e-2f);
    lort_rng data_rng;
    lort_rng_seed(&data_rng, 99); /* the same batches on every rank */
    double t0 = 0.0, t_comm = 0.0;
    for (int step = 0; step < steps; ++step) {
        if (step == 1) t0 = now(), t_comm = 0.0; /* the first step warms up */
        for (int s = 0; s < batch; ++s) {
            int p = (int)(lort_rng_u64(&data_rng) % 10000);
            if (s >= lo && s < hi) encode(tok + (s - lo) * T, tgt + (s - lo) * T, p);
        }
        lort_zero(A->grads, A->np);
        if (ns > 0) {
            tf_forward(base, A, &acts, tok, ns, T, 1);
            tf_xent(dlogits, acts.logits, tgt, n, VOCAB); /* mean over this rank's targets */
            /* the loss is the mean over the batch's targets (3 per sequence): scale */
            const float share = (float)ns / (float)batch;
            for (size_t i = 0; i < (size_t)n * VOCAB; ++i) dlogits[i] *= share;
            tf_backward(base, NULL, A, &acts, tok, ns, T, dlogits);
        }
        if (comm != MPI_COMM_NULL) {
            const double tc = now();
            MPI_Allreduce(MPI_IN_PLACE, A->grads, (int)A->np, MPI_FLOAT, MPI_SUM, comm);
            t_comm += now() - tc;
        }
        tf_check(lort_adamw_step(&opt, A->params, m, v, A->grads, A->np, (long)step + 1),
                 "lort_adamw_step");
    }
    double per_step = steps > 1 ? (now() - t0) / (steps - 1) : 0.0;
    if (comm_per_step) *comm_per_step = steps > 1 ? t_comm / (steps - 1) : 0.0;
    free(m), free(v), free(dlogits);
    tf_acts_free(&acts);
    return per_step;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size, steps = 20, batch = 32, time_only = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--time-only")) time_only = 1;
    }
    if (steps < 1 || batch < size || batch > MAX_BATCH) {
        if (rank == 0) fprintf(stderr, "need steps >= 1 and ranks <= batch <= %d\n", MAX_BATCH);
        MPI_Finalize();
        return 2;
    }
    const tf_config cfg = {VOCAB, T, 64, 4, 2, 128};
    tf_weights base;
    tf_weights_make(&base, &cfg);
    lort_rng rng;
    lort_rng_seed(&rng, 5);
    tf_weights_init(&base, &rng); /* the same base on every rank */
    const int lo = rank * batch / size, hi = (rank + 1) * batch / size;
    if (rank == 0)
        printf("lortensor %s (GEMM backend: %s) - example 05: data-parallel adapter training, "
               "%d ranks, batch %d sequences x %d tokens, %d steps\n", lort_version_string(),
               lort_gemm_backend(), size, batch, T, steps);

    int ok = 1;
    for (int fam = FAM_LORA; fam <= FAM_CP; ++fam) {
        const char *name =
            fam == FAM_LORA ? "lora (per-site, Wq Wv)" : "cp (one joint block, Q K V O)";
        tf_adapters A;
        MPI_Barrier(MPI_COMM_WORLD);
        double cps, cps_max, sps_max;
        double sps = run(&base, &A, fam, steps, batch, lo, hi, MPI_COMM_WORLD, &cps);
        MPI_Reduce(&sps, &sps_max, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
        MPI_Reduce(&cps, &cps_max, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
        /* every rank must hold rank 0's parameters */
        float *p0 = tf_zeros(A.np);
        if (rank == 0) memcpy(p0, A.params, A.np * sizeof(float));
        MPI_Bcast(p0, (int)A.np, MPI_FLOAT, 0, MPI_COMM_WORLD);
        double spread = 0.0, spread_max;
        for (size_t i = 0; i < A.np; ++i)
            spread = fmax(spread, fabs((double)A.params[i] - (double)p0[i]));
        MPI_Reduce(&spread, &spread_max, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
        if (rank == 0) {
            printf("%-30s %6zu params  %7.2f ms/step on %d rank%s (in MPI_Allreduce of %zu bytes, "
                   "waits included: %.2f ms)", name, A.np, 1e3 * sps_max, size, size > 1 ? "s" : "",
                   A.np * sizeof(float), 1e3 * cps_max);
            if (time_only) {
                printf("\n");
            } else {
                tf_adapters S; /* the single-process reference on the full batch */
                run(&base, &S, fam, steps, batch, 0, batch, MPI_COMM_NULL, NULL);
                double diff = 0.0, mx = 1.0, moved = 0.0;
                float *init = NULL;
                {   /* how far training moved the parameters, to show the check is not idle */
                    tf_adapters I0;
                    lort_rng r0;
                    lort_rng_seed(&r0, 77);
                    sites(&I0, &cfg, fam);
                    tf_adapters_attach(&I0, &base, T, &r0);
                    init = I0.params;
                    for (size_t i = 0; i < A.np; ++i)
                        moved = fmax(moved, fabs((double)S.params[i] - (double)init[i]));
                    tf_adapters_free(&I0);
                }
                for (size_t i = 0; i < A.np; ++i) {
                    diff = fmax(diff, fabs((double)A.params[i] - (double)S.params[i]));
                    mx = fmax(mx, fabs((double)S.params[i]));
                }
                int good = diff <= PARAM_TOL * mx && spread_max <= 0.0 && moved > 1e3 * diff;
                ok &= good;
                printf("\n  vs one process on the full batch: max |diff| %.2e (tol %.1e; training "
                       "moved them by up to %.2e); ranks agree to %.1e   %s\n", diff,
                       PARAM_TOL * mx, moved, spread_max, good ? "OK" : "FAIL");
                tf_adapters_free(&S);
            }
        }
        free(p0);
        tf_adapters_free(&A);
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rank == 0) printf("%s\n", ok ? "all checks passed" : "SOME CHECKS FAILED");
    tf_weights_free(&base);
    MPI_Finalize();
    return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
