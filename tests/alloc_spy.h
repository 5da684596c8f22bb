/* Allocation spies shared by the tests that prove kernels allocate nothing (see the comment at
   the top of tests/test_memory.c). Include in place of lort_test.h, once per test program:
   the implementation object counts LORT_MALLOC / LORT_FREE calls (tests/impl.c), and on glibc
   without ASan this file interposes the malloc family, counting only between tm_begin() and
   tm_end(what, status). Define TM_NO_BLAS_INTERPOSE first to interpose only in the
   LORT_NO_BLAS build (OpenBLAS keeps its own buffer pool and needs a warm-up otherwise). */
#ifndef LORT_ALLOC_SPY_H
#define LORT_ALLOC_SPY_H
#include <stddef.h>
#include <stdlib.h>

#include "lort_test.h"

#if defined(__SANITIZE_ADDRESS__)
#define TM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TM_ASAN 1
#endif
#endif

/* ---- malloc interposer -------------------------------------------------------------------- */
static volatile int tm_counting;
static volatile long tm_allocs, tm_frees;

#if defined(__GLIBC__) && !defined(TM_ASAN) && (defined(LORT_NO_BLAS) || !defined(TM_NO_BLAS_INTERPOSE))
#define TM_INTERPOSE 1
extern void *__libc_malloc(size_t bytes);
extern void *__libc_calloc(size_t count, size_t bytes);
extern void *__libc_realloc(void *ptr, size_t bytes);
extern void __libc_free(void *ptr);
extern void *__libc_memalign(size_t alignment, size_t bytes);
void *memalign(size_t alignment, size_t bytes);
int posix_memalign(void **out, size_t alignment, size_t bytes);
void *aligned_alloc(size_t alignment, size_t bytes);

void *malloc(size_t bytes) {
    if (tm_counting) tm_allocs++;
    return __libc_malloc(bytes);
}
void *calloc(size_t count, size_t bytes) {
    if (tm_counting) tm_allocs++;
    return __libc_calloc(count, bytes);
}
void *realloc(void *ptr, size_t bytes) {
    if (tm_counting) tm_allocs++;
    return __libc_realloc(ptr, bytes);
}
void free(void *ptr) {
    if (tm_counting && ptr) tm_frees++;
    __libc_free(ptr);
}
void *memalign(size_t alignment, size_t bytes) {
    if (tm_counting) tm_allocs++;
    return __libc_memalign(alignment, bytes);
}
void *aligned_alloc(size_t alignment, size_t bytes) {
    if (tm_counting) tm_allocs++;
    return __libc_memalign(alignment, bytes);
}
int posix_memalign(void **out, size_t alignment, size_t bytes) {
    void *p;
    if (tm_counting) tm_allocs++;
    p = __libc_memalign(alignment, bytes);
    if (!p) return 12; /* ENOMEM */
    *out = p;
    return 0;
}
#endif

#ifdef TM_INTERPOSE
/* Set by test_interposer_blas: OpenBLAS allocates inside cblas_sgemm even after warm-up. */
static int blas_allocates;
#endif

static void tm_begin(void) {
    tm_allocs = 0;
    tm_frees = 0;
    lort_test_spy_mallocs = 0;
    lort_test_spy_frees = 0;
    tm_counting = 1;
}
/* Ends a counted region: the call succeeded and allocated nothing. */
static void tm_end(const char *what, lort_status st) {
    long a, f;
    tm_counting = 0;
    a = tm_allocs;
    f = tm_frees;
    if (st != LORT_OK) printf("  %s: status %s\n", what, lort_status_string(st));
    assert_int_equal(st, LORT_OK);
    if (lort_test_spy_mallocs || lort_test_spy_frees)
        printf("  %s: LORT_MALLOC %ld, LORT_FREE %ld calls\n", what, lort_test_spy_mallocs,
               lort_test_spy_frees);
    assert_int_equal(lort_test_spy_mallocs, 0);
    assert_int_equal(lort_test_spy_frees, 0);
#ifdef TM_INTERPOSE
    if (!blas_allocates) {
        if (a || f) printf("  %s: %ld malloc-family calls, %ld frees\n", what, a, f);
        assert_int_equal(a, 0);
        assert_int_equal(f, 0);
    }
#else
    (void)a;
    (void)f;
#endif
}
#endif
