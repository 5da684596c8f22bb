/* The implementation every test program links (one object per build configuration, compiled
   once by the Makefile: build/<config>/lort_impl.o). Test programs include lort_test.h, i.e. the
   header without LORTENSOR_IMPLEMENTATION; tests/compile/ keeps the STB-way inclusion covered.
   A test that needs its own configuration macros (test_nf4: LORT_NF4_TILE_FLOATS) defines
   LORTENSOR_IMPLEMENTATION itself and is linked without this object (the Makefile greps for it).

   Two test hooks live here because they need the implementation's private parts:
   - LORT_MALLOC / LORT_FREE count their calls into lort_test_spy_mallocs / _frees (the spy of
     tests/alloc_spy.h; every other test ignores the counters);
   - lort_test_tt_plan reports which gradient path the private tt plan takes (coverage). */
#include <stddef.h>
#include <stdlib.h>
#include "lort_hooks.h"

long lort_test_spy_mallocs, lort_test_spy_frees;
static void *spy_malloc(size_t bytes, void *user) {
    (void)user;
    lort_test_spy_mallocs++;
    return malloc(bytes);
}
static void spy_free(void *ptr, void *user) {
    (void)user;
    lort_test_spy_frees++;
    free(ptr);
}
#define LORT_MALLOC(sz, u) spy_malloc((sz), (u))
#define LORT_FREE(p, u) spy_free((p), (u))

#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"

lort_status lort_test_tt_plan(const lort_tt_desc *desc, lort_test_plan_info *out) {
    lort__tt_plan p;
    int k;
    lort_status st = lort__tt_plan_make(desc, &p);
    if (st) return st;
    memset(out, 0, sizeof *out);
    out->d = p.d;
    out->split = p.split;
    for (k = 0; k <= p.d; ++k) out->t[k] = p.t[k];
    for (k = 0; k < p.d; ++k) {
        out->lo[k] = p.lo[k];
        out->hi[k] = p.hi[k];
    }
    out->lo[p.d] = p.lo[p.d];
    return LORT_OK;
}
