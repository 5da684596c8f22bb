/* Shared test cases of the joint families (cp, tucker): the conformance harness runs every
   site of each (tests/test_conformance.c), and tests/test_cp.c uses them for the families'
   own identities. */
#ifndef LORT_CASES_H
#define LORT_CASES_H
typedef struct {
    int tucker, n, d, H, L, M, kv;
    unsigned kvmask;
    int heads_in, r1, r2, rh, rl, rm;
    float alpha;
    int rslora;
    float p;
} jcase;

/* ---- configurations ------------------------------------------------------------------------- */
/*  tucker n  d  H  L  M kv mask in r1 r2 rh rl rm alpha rs  p */
static const jcase __attribute__((unused)) CP_CASES[] = {
    {0, 3, 8, 2, 2, 4, 0, 0, 0, 3, 3, 3, 3, 3, 2.5f, 0, 0.0f},  /* heads out, MHA */
    {0, 3, 8, 2, 2, 4, 0, 0, 1, 3, 3, 3, 3, 3, 2.0f, 1, 0.3f},  /* heads in, dropout, rslora */
    {0, 2, 12, 4, 2, 4, 2, 0, 0, 2, 2, 2, 2, 2, 0.0f, 0, 0.25f}, /* GQA 4 -> 2 on K, V */
    {0, 1, 6, 3, 1, 5, 1, 0, 0, 1, 1, 1, 1, 1, 3.0f, 0, 0.0f},  /* MQA, M = 5, r = 1, n = 1 */
    {0, 4, 5, 1, 3, 2, 0, 0, 1, 4, 4, 4, 4, 4, 1.0f, 0, 0.0f},  /* one head (d_h = d), heads in */
    {0, 2, 6, 3, 1, 1, 0, 0, 0, 9, 9, 9, 9, 9, 4.0f, 0, 0.0f},  /* r > d */
    {0, 3, 8, 4, 2, 3, 2, 5u, 0, 2, 2, 2, 2, 2, 1.5f, 0, 0.2f}, /* GQA on matrix types 0 and 2 */
    /* heads out with n (r + d_h) < r d_h: the stacked-heads path */
    {0, 2, 16, 2, 2, 4, 0, 0, 0, 12, 12, 12, 12, 12, 2.0f, 0, 0.0f},
    {0, 1, 12, 4, 2, 4, 2, 0, 0, 6, 6, 6, 6, 6, 0.0f, 0, 0.3f},  /* + GQA, dropout, n = 1 */
    {0, 3, 16, 2, 1, 3, 0, 0, 0, 16, 16, 16, 16, 16, 4.0f, 1, 0.2f}, /* + rslora, dropout */
    {0, 2, 16, 2, 2, 4, 0, 0, 1, 12, 12, 12, 12, 12, 2.0f, 0, 0.0f}, /* same shape, heads in */
};
static const jcase __attribute__((unused)) TK_CASES[] = {
    {1, 3, 8, 2, 2, 4, 0, 0, 0, 3, 2, 2, 2, 2, 2.5f, 0, 0.0f},
    {1, 3, 8, 2, 2, 3, 0, 0, 1, 2, 3, 1, 2, 3, 2.0f, 1, 0.3f},
    {1, 2, 12, 4, 2, 4, 2, 0, 0, 2, 3, 2, 1, 2, 0.0f, 0, 0.25f},
    {1, 2, 6, 3, 3, 2, 1, 0, 0, 1, 2, 3, 2, 1, 3.0f, 0, 0.0f},
    {1, 4, 5, 1, 2, 2, 0, 0, 1, 4, 1, 1, 2, 2, 1.0f, 0, 0.0f},
    /* heads out with n (r2 + d_h) < r1 d_h and n < d_h: the stacked-heads path */
    {1, 2, 16, 2, 2, 2, 0, 0, 0, 8, 3, 2, 2, 2, 2.0f, 0, 0.0f},
    {1, 1, 12, 4, 2, 4, 2, 0, 0, 6, 2, 2, 1, 2, 0.0f, 0, 0.3f},   /* + GQA, dropout */
    {1, 3, 16, 2, 1, 3, 0, 0, 0, 10, 4, 1, 1, 3, 4.0f, 1, 0.2f},  /* + rslora, dropout */
    {1, 3, 8, 2, 2, 3, 0, 0, 0, 4, 3, 2, 2, 1, 0.0f, 0, 0.0f},    /* min(rh, rl, rm) < r2 */
    {1, 3, 8, 1, 3, 1, 0, 0, 0, 4, 4, 1, 3, 1, 2.0f, 0, 0.0f},    /* LoTR's shape: rl = L */
    {1, 2, 8, 1, 1, 3, 0, 0, 0, 4, 4, 1, 1, 3, 0.0f, 0, 0.1f},    /* FacT-TK's: layers 1 */
};
/* which path a case takes (lortensor's rule, restated so that the harness can check that its
   rows cover both): heads out with n (r2 + d_h) < r1 d_h (tucker also n < d_h and 2 n r2 <=
   r1 d_h) evaluates per head, stacked; otherwise through Bk */
static __attribute__((unused)) int case_stacked(const jcase *c) {
    int dh = c->d / c->H;
    return !c->heads_in && c->n * (c->r2 + dh) < c->r1 * dh &&
           (!c->tucker || (c->n < dh && 2 * c->n * c->r2 <= c->r1 * dh));
}
#endif
