# lortensor: make run | make test | make check | make bench | make bench-quick | make deps | make clean
# BLAS=openblas (default when pkg-config finds it) or BLAS=none (built-in GEMM).
CC      ?= cc
CXX     ?= c++
OPT     ?= -O2
WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wdouble-promotion \
           -Wvla -Wfloat-equal -Wcast-qual -Wstrict-prototypes -Wmissing-prototypes
CXXWARN := -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wdouble-promotion \
           -Wvla -Wcast-qual
CFLAGS  ?= $(OPT) -g
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

HAVE_OPENBLAS := $(shell pkg-config --exists openblas 2>/dev/null && echo yes)
ifeq ($(origin BLAS),undefined)
  BLAS := $(if $(HAVE_OPENBLAS),openblas,none)
endif
BLAS_CFLAGS := $(patsubst -I%,-isystem %,$(shell pkg-config --cflags openblas 2>/dev/null))
BLAS_LIBS   := $(shell pkg-config --libs openblas 2>/dev/null)
ifeq ($(BLAS),openblas)
  RUN_CFLAGS := $(BLAS_CFLAGS)
  RUN_LIBS   := $(BLAS_LIBS)
else
  RUN_CFLAGS := -DLORT_NO_BLAS
  RUN_LIBS   :=
endif

TESTS    := $(basename $(notdir $(wildcard tests/test_*.c)))
EXAMPLES := $(basename $(notdir $(wildcard examples/*.c)))
B := build

.PHONY: all run test test-blas test-noblas test-sanitize test-compile examples check bench bench-quick deps deps-bench clean
all: examples

# ---- quick start: the first example, no dependency beyond a C compiler --------------------
# Built for this machine (-O3 -march=native: the built-in GEMM needs the vector ISA, see the
# header's CONFIGURATION) when the compiler accepts it, else with CFLAGS.
NATIVE_OPT := $(shell $(CC) -O3 -march=native -x c -c /dev/null -o /dev/null 2>/dev/null && echo -O3 -march=native)
RUN_OPT    ?= $(if $(NATIVE_OPT),$(NATIVE_OPT) -g,$(CFLAGS))
run: $(B)/run-$(BLAS)/01_lora_linear
	./$(B)/run-$(BLAS)/01_lora_linear
$(B)/run-$(BLAS)/%: examples/%.c lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c99 $(RUN_OPT) $(WARN) -I. $(RUN_CFLAGS) $< -o $@ $(RUN_LIBS) -lm

# ---- tests ----------------------------------------------------------------------------------
# test: install dependencies, then every test: OpenBLAS and LORT_NO_BLAS builds, ASan+UBSan,
# strict-warning compile tests (C99, C11, C++11, C++17), and every example.
test: deps
	$(MAKE) --no-print-directory check

check: test-compile test-blas test-noblas test-sanitize examples
	@echo "make check: all passed"

$(B)/blas/%: tests/%.c tests/lort_test.h tests/alloc_spy.h lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c99 $(CFLAGS) $(WARN) -Werror -I. $(BLAS_CFLAGS) $< -o $@ $(BLAS_LIBS) -lcmocka -lm
$(B)/noblas/%: tests/%.c tests/lort_test.h tests/alloc_spy.h lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c99 $(CFLAGS) $(WARN) -Werror -I. -DLORT_NO_BLAS $< -o $@ -lcmocka -lm
$(B)/asan/%: tests/%.c tests/lort_test.h tests/alloc_spy.h lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c99 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
	  -fno-omit-frame-pointer $(WARN) -Werror -I. -DLORT_NO_BLAS -DLORT_DEBUG $< -o $@ -lcmocka -lm

test-blas: $(addprefix $(B)/blas/,$(TESTS))
	@set -e; for t in $^; do echo "== $$t"; OPENBLAS_NUM_THREADS=1 ./$$t; done
test-noblas: $(addprefix $(B)/noblas/,$(TESTS)) $(B)/portable/test_gemm
	@set -e; for t in $^; do echo "== $$t"; ./$$t; done
# the built-in GEMM's plain-C fallback (no vector extension) with a small-stack blocking
$(B)/portable/test_gemm: tests/test_gemm.c tests/lort_test.h tests/alloc_spy.h lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c99 $(CFLAGS) $(WARN) -Werror -I. -DLORT_NO_BLAS -DLORT_GEMM_PORTABLE \
	  -DLORT_GEMM_KC=16 -DLORT_GEMM_NC=32 -DLORT_GEMM_MR=4 -DLORT_GEMM_NR=8 $< -o $@ -lcmocka -lm
test-sanitize: $(addprefix $(B)/asan/,$(TESTS))
	@set -e; for t in $^; do echo "== $$t"; ./$$t; done

# The header alone under the strict warning set, as C and C++, with and without BLAS, plus
# double inclusion and LORT_STATIC in two translation units.
test-compile:
	@mkdir -p $(B)/compile
	$(CC) -std=c99 $(WARN) -Werror -I. $(BLAS_CFLAGS) -c tests/compile/impl.c -o $(B)/compile/c99.o
	$(CC) -std=c11 $(WARN) -Werror -I. -DLORT_NO_BLAS -c tests/compile/impl.c -o $(B)/compile/c11.o
	$(CXX) -std=c++11 $(CXXWARN) -Werror -I. $(BLAS_CFLAGS) -x c++ -c tests/compile/impl.c -o $(B)/compile/cxx11.o
	$(CXX) -std=c++17 $(CXXWARN) -Werror -I. -DLORT_NO_BLAS -x c++ -c tests/compile/impl.c -o $(B)/compile/cxx17.o
	$(CC) -std=c99 $(WARN) -Werror -I. -DLORT_NO_BLAS tests/compile/static_a.c tests/compile/static_b.c -o $(B)/compile/static -lm
	./$(B)/compile/static
	@echo "test-compile: ok"

examples: $(addprefix $(B)/examples/,$(EXAMPLES))
	@set -e; for e in $^; do echo "== $$e"; OPENBLAS_NUM_THREADS=1 ./$$e; done
$(B)/examples/%: examples/%.c lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c99 $(CFLAGS) $(WARN) -Werror -I. $(RUN_CFLAGS) $< -o $@ $(RUN_LIBS) -lm

# ---- benchmarks (not part of test) -----------------------------------------------------------
# make bench: every bench program, then the PyTorch peer (the first of python3, /usr/bin/python3
# that imports torch), the GEMM, every-family and peer rows appended to $(B)/bench/results.csv;
# bench/report.py joins them into $(B)/bench/results.md and the plot $(B)/bench/overhead.svg.
# make bench-quick: a subset (the GEMM shapes marked quick, every family at n = 16, fewer
# samples) in about a minute. One thread (BENCH_THREADS), and the process CPU clock for the
# GEMM and every-family rows, so that neighbours on a shared machine do not skew one side.
BENCHES := $(basename $(notdir $(wildcard bench/bench*.c)))
PYTHON  ?= $(shell for p in python3 /usr/bin/python3; do $$p -c 'import torch' 2>/dev/null && { command -v $$p; break; }; done)
BENCH_CSV := $(B)/bench/results.csv
BENCH_THREADS ?= 1
bench: $(addprefix $(B)/bench/,$(BENCHES))
	@rm -f $(BENCH_CSV)
	@set -e; export OPENBLAS_NUM_THREADS=$(BENCH_THREADS); for b in $^; do case $$b in \
	  */bench_gemm|*/bench_families) ./$$b --cpu-time --csv $(BENCH_CSV);; *) ./$$b;; esac; done
	@if [ -n "$(PYTHON)" ]; then OPENBLAS_NUM_THREADS=$(BENCH_THREADS) $(PYTHON) bench/peer_torch.py \
	  --cpu-time --csv $(BENCH_CSV); \
	  else echo "(PyTorch peer skipped: no python3 with torch; pip install torch, or make deps-bench)"; fi
	@python3 bench/report.py $(BENCH_CSV) --md $(B)/bench/results.md --svg $(B)/bench/overhead.svg
bench-quick: $(B)/bench/bench_gemm $(B)/bench/bench_families
	@rm -f $(BENCH_CSV)
	OPENBLAS_NUM_THREADS=1 ./$(B)/bench/bench_gemm --quick --csv $(BENCH_CSV)
	OPENBLAS_NUM_THREADS=1 ./$(B)/bench/bench_families --quick --cpu-time --n 16 --csv $(BENCH_CSV)
	@if [ -n "$(PYTHON)" ]; then OPENBLAS_NUM_THREADS=1 $(PYTHON) bench/peer_torch.py --families-only \
	  --quick --cpu-time --n 16 --csv $(BENCH_CSV); else echo "(PyTorch peer skipped: no python3 with torch)"; fi
	@python3 bench/report.py $(BENCH_CSV) --md $(B)/bench/results.md --svg $(B)/bench/overhead.svg
$(B)/bench/%: bench/%.c bench/bench_util.h lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c99 -O3 -march=native -g $(WARN) -I. $(BLAS_CFLAGS) $< -o $@ $(BLAS_LIBS) -lm

# ---- dependencies (Debian) -------------------------------------------------------------------
DEPS := build-essential pkg-config libopenblas-dev libcmocka-dev
deps:
	@if dpkg -s $(DEPS) >/dev/null 2>&1; then echo "deps: installed"; else \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(DEPS); fi
deps-bench: deps
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-torch

clean:
	rm -rf $(B)
