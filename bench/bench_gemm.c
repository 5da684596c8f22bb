/* bench/bench_gemm.c - the built-in GEMM (what LORT_NO_BLAS builds run) against OpenBLAS, on
   one thread, at 512^3 and at the adapter shapes: n x r x d (x A^T: the LoRA down-projection)
   and n x d x r (H B^T: the up-projection), n in {1, 16, 512}, r in {8, 16, 64}, d = 4096,
   with the transposes the LoRA kernels pass, plus the backward's r x d x n (G^T x). Both sides
   go through the library's entry points: lort_sgemm_builtin, and lort_sgemm over OpenBLAS
   (which is cblas_sgemv for a single row or column, as every kernel gets it).

   Per shape: the median time of each (bench/bench_util.h protocol) and the median over
   back-to-back pairs of (OpenBLAS sample / built-in sample) = the built-in's share of OpenBLAS
   speed; target >= 50% of OpenBLAS, both built -O3 -march=native. Set OPENBLAS_NUM_THREADS=1
   (make bench does). Timed with the process CPU clock (--cpu-time, this program's default;
   --wall-time for wall clock): on a shared machine it leaves out the time a neighbour held
   the core, which wall time cannot.

   usage: bench_gemm [--quick] [--samples N] [--csv FILE] */
#define _POSIX_C_SOURCE 200809L
#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"

#include "bench_util.h"

typedef struct gemm_job {
    int builtin, tA, tB, M, N, K;
    const float *A, *B;
    float *C;
} gemm_job;

static void op_gemm(void *p) {
    gemm_job *g = (gemm_job *)p;
    int lda = g->tA ? g->M : g->K, ldb = g->tB ? g->K : g->N;
    if (g->builtin)
        BU_CHECK(lort_sgemm_builtin(g->tA, g->tB, g->M, g->N, g->K, 1.0f, g->A, lda, g->B, ldb,
                                    1.0f, g->C, g->N));
    else
        BU_CHECK(lort_sgemm(g->tA, g->tB, g->M, g->N, g->K, 1.0f, g->A, lda, g->B, ldb, 1.0f,
                            g->C, g->N));
}

int main(int argc, char **argv) {
    /* M, N, K, tA, tB, role, in --quick */
    static const struct {
        int M, N, K, tA, tB, quick;
        const char *role;
    } S[] = {
        {512, 512, 512, 0, 0, 1, "square"},   {512, 512, 512, 0, 1, 0, "square"},
        {1, 8, 4096, 0, 1, 0, "n r d"},       {1, 16, 4096, 0, 1, 1, "n r d"},
        {1, 64, 4096, 0, 1, 0, "n r d"},      {16, 8, 4096, 0, 1, 0, "n r d"},
        {16, 16, 4096, 0, 1, 1, "n r d"},     {16, 64, 4096, 0, 1, 0, "n r d"},
        {512, 8, 4096, 0, 1, 0, "n r d"},     {512, 16, 4096, 0, 1, 1, "n r d"},
        {512, 64, 4096, 0, 1, 0, "n r d"},    {1, 4096, 8, 0, 1, 0, "n d r"},
        {1, 4096, 16, 0, 1, 1, "n d r"},      {1, 4096, 64, 0, 1, 0, "n d r"},
        {16, 4096, 8, 0, 1, 0, "n d r"},      {16, 4096, 16, 0, 1, 1, "n d r"},
        {16, 4096, 64, 0, 1, 0, "n d r"},     {512, 4096, 8, 0, 1, 0, "n d r"},
        {512, 4096, 16, 0, 1, 1, "n d r"},    {512, 4096, 64, 0, 1, 0, "n d r"},
        {16, 4096, 16, 1, 0, 0, "r d n (dA)"}, {64, 4096, 512, 1, 0, 1, "r d n (dA)"},
    };
    const int count = (int)(sizeof S / sizeof S[0]);
    float *A, *B, *C;
    double logsum = 0.0;
    int i, rows = 0, pass = 0;
    bu_init("gemm", argc, argv);
    A = bu_frand((size_t)4096 * 4096, 1, 1.0f);
    B = bu_frand((size_t)4096 * 4096, 2, 1.0f);
    C = bu_falloc((size_t)4096 * 4096);
    printf("## Built-in GEMM vs %s, 1 thread (OPENBLAS_NUM_THREADS=%s), %s clock\n\n",
           lort_gemm_backend(),
           getenv("OPENBLAS_NUM_THREADS") ? getenv("OPENBLAS_NUM_THREADS") : "(unset)",
           BU.clock == CLOCK_MONOTONIC ? "wall" : "process CPU");
    printf("| M x N x K | op | role | OpenBLAS GFLOP/s | built-in GFLOP/s | built-in / OpenBLAS "
           "speed (paired) | >= 50%% |\n|---|---|---|---:|---:|---:|---|\n");
    for (i = 0; i < count; ++i) {
        gemm_job gb, gl;
        bu_timing tb, tl;
        double flops = 2.0 * S[i].M * (double)S[i].N * (double)S[i].K, share;
        char note[64], note2[64];
        if (BU.quick && !S[i].quick) continue;
        gb.builtin = 0, gb.tA = S[i].tA, gb.tB = S[i].tB, gb.M = S[i].M, gb.N = S[i].N,
        gb.K = S[i].K, gb.A = A, gb.B = B, gb.C = C;
        gl = gb;
        gl.builtin = 1;
        fprintf(stderr, "  gemm %d x %d x %d ...\n", S[i].M, S[i].N, S[i].K);
        tb = bu_time(op_gemm, &gb);
        tl = bu_time(op_gemm, &gl);
        share = 1.0 / bu_paired(op_gemm, &gl, op_gemm, &gb);
        printf("| %d x %d x %d | %s%s | %s | %.1f | %.1f | %.0f%% | %s |\n", S[i].M, S[i].N,
               S[i].K, S[i].tA ? "T" : "N", S[i].tB ? "T" : "N", S[i].role, flops / tb.median * 1e-9,
               flops / tl.median * 1e-9, 100.0 * share, share >= 0.5 ? "PASS" : "MISS");
        fflush(stdout);
        snprintf(note, sizeof note, "%s%s %dx%dx%d", S[i].tA ? "T" : "N", S[i].tB ? "T" : "N",
                 S[i].M, S[i].N, S[i].K);
        bu_csv_row("gemm", note, S[i].M, S[i].N, S[i].K, "openblas", tb.median, "");
        snprintf(note2, sizeof note2, "paired share %.4f", share);
        bu_csv_row("gemm", note, S[i].M, S[i].N, S[i].K, "builtin", tl.median, note2);
        logsum += log(share);
        rows++;
        pass += share >= 0.5;
    }
    printf("\nGeometric mean of the built-in's share: %.0f%%; %d of %d shapes >= 50%%.\n\n",
           100.0 * exp(logsum / (rows ? rows : 1)), pass, rows);
    free(A), free(B), free(C);
    return 0;
}
