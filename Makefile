# lortensor: make run | make test | make check | make bench | make deps | make clean
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

.PHONY: all run test test-blas test-noblas test-sanitize test-compile examples check bench deps clean \
        fuzz test-peft
all: examples

# ---- quick start: the first example, no dependency beyond a C compiler --------------------
run: $(B)/run-$(BLAS)/01_lora_linear
	./$(B)/run-$(BLAS)/01_lora_linear
$(B)/run-$(BLAS)/%: examples/%.c lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c99 $(CFLAGS) $(WARN) -I. $(RUN_CFLAGS) $< -o $@ $(RUN_LIBS) -lm

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
test-noblas: $(addprefix $(B)/noblas/,$(TESTS))
	@set -e; for t in $^; do echo "== $$t"; ./$$t; done
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

# ---- fuzzing (not part of test): libFuzzer + ASan + UBSan, FUZZ_SECONDS per target ----------
# Needs clang with the libFuzzer runtime (Debian: clang, libclang-rt-dev or llvm's compiler-rt).
# New inputs go to build/fuzz/corpus-<target>; the committed seeds are tests/fuzz/seeds/<target>.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZERS := $(basename $(notdir $(wildcard tests/fuzz/fuzz_*.c)))
fuzz: $(addprefix $(B)/fuzz/,$(FUZZERS))
	@set -e; for f in $(FUZZERS); do mkdir -p $(B)/fuzz/corpus-$$f; echo "== $$f ($(FUZZ_SECONDS) s)"; \
	  ./$(B)/fuzz/$$f -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -print_final_stats=1 \
	    $(B)/fuzz/corpus-$$f tests/fuzz/seeds/$$f; done
$(B)/fuzz/%: tests/fuzz/%.c lortensor.h
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c99 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  -I. -DLORT_NO_BLAS $< -o $@ -lm

# ---- PEFT round trip (not part of test; needs python3 with torch, peft, transformers) --------
# lortensor loads every fixture of tests/fixtures/peft, saves it back in PEFT's format (plus an
# edited copy with new per-module ranks and alphas), and the real PEFT loads those files and
# must reproduce every factor, scale and forward output. Output: tests/fixtures/peft_roundtrip.txt
test-peft: $(B)/tools/peft_resave
	@if /usr/bin/env python3 -c 'import torch, peft, transformers' 2>/dev/null; then \
	  ./$(B)/tools/peft_resave $(B)/peft_saved && \
	  python3 tests/fixtures/check_peft_roundtrip.py $(B)/peft_saved | tee $(B)/peft_roundtrip.txt; echo "(committed copy: tests/fixtures/peft_roundtrip.txt)"; \
	else echo "test-peft skipped: python3 with torch, peft and transformers is not installed"; fi
$(B)/tools/peft_resave: tests/fixtures/peft_resave.c lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c99 $(CFLAGS) $(WARN) -Werror -I. -DLORT_NO_BLAS $< -o $@ -lm

# ---- benchmarks (not part of test) -----------------------------------------------------------
BENCHES := $(basename $(notdir $(wildcard bench/bench*.c)))
bench: $(addprefix $(B)/bench/,$(BENCHES))
	@set -e; for b in $^; do ./$$b; done
	@if command -v /usr/bin/python3 >/dev/null && /usr/bin/python3 -c 'import torch' 2>/dev/null; then \
	  /usr/bin/python3 bench/peer_torch.py; else echo "(PyTorch peer skipped: python3-torch not installed; make deps-bench)"; fi
$(B)/bench/%: bench/%.c lortensor.h
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
