/* Compile test: the header declarations-only, then with the implementation, then once more
   (every inclusion after the first is harmless). Built by `make test-compile` with the strict
   warning set as C99 and C11 and, via -x c++, as C++11 and C++17, with and without BLAS. */
#include "lortensor.h"
#include "lortensor.h"

#define LORTENSOR_IMPLEMENTATION
#include "lortensor.h"
#include "lortensor.h"

int main(void) {
    int major = -1, minor = -1, patch = -1;
    lort_status st;
    float a[4] = {1.0f, 2.0f, 3.0f, 4.0f}, b[4] = {1.0f, 0.0f, 0.0f, 1.0f}, c[4];
    lort_version(&major, &minor, &patch);
    st = lort_sgemm(0, 0, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
    return (major == LORT_VERSION_MAJOR && minor == LORT_VERSION_MINOR &&
            patch == LORT_VERSION_PATCH && st == LORT_OK && lort_status_string(st) != NULL)
               ? 0
               : 1;
}
