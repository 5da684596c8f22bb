/* Test hooks defined in tests/impl.c (the implementation object the test programs link). */
#ifndef LORT_HOOKS_H
#define LORT_HOOKS_H
#include "lortensor.h"

/* LORT_MALLOC / LORT_FREE calls made by the library (tests/alloc_spy.h resets and reads them). */
extern long lort_test_spy_mallocs, lort_test_spy_frees;

/* The private tt plan of a desc: d, the sweep split, ranks t[0..d], lo[0..d], hi[0..d-1]. */
typedef struct {
    int d, split;
    int t[LORT_TT_MAX_CORES + 1];
    size_t lo[LORT_TT_MAX_CORES + 1], hi[LORT_TT_MAX_CORES];
} lort_test_plan_info;
lort_status lort_test_tt_plan(const lort_tt_desc *desc, lort_test_plan_info *out);
#endif
