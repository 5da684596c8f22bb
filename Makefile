# lortensor: make run | make test | make check | make size | make bench | make deps | make clean
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
FAMILIES := LORA LORAXS TT TT_REP TT_ADP CP TUCKER MPO NF4 SVD
# clang -Weverything minus: used-but-marked-unused (LORT__PRIVATE marks every private helper
# unused, so a TU that calls few of them stays silent; ~400 hits), padded (struct layout notes),
# switch-enum and covered-switch-default (switches on lort_kind / enums keep a default for
# values from outside the enum), unsafe-buffer-usage (clang >= 16: every pointer index).
WEVERYTHING_OFF := -Wno-used-but-marked-unused -Wno-padded -Wno-switch-enum \
                   -Wno-covered-switch-default -Wno-unsafe-buffer-usage -Wno-unknown-warning-option
EXAMPLES := $(filter-out 05_data_parallel,$(basename $(notdir $(wildcard examples/*.c))))
B := build

.PHONY: all run test test-blas test-noblas test-sanitize test-compile examples check bench deps clean \
        size size-if-available
all: examples

# ---- quick start: the fine-tuning demo, no dependency beyond a C compiler ------------------
# It pretrains a toy model once (checkpoint build/demo/base_model.bin), fine-tunes it with every
# method, prints the table and writes build/demo/finetune_{loss,accuracy}.svg. One BLAS thread:
# its matrices are at most 256 x 128, where threads only add overhead.
run: $(B)/run-$(BLAS)/00_finetune_demo
	@mkdir -p $(B)/demo
	OPENBLAS_NUM_THREADS=1 ./$(B)/run-$(BLAS)/00_finetune_demo --out $(B)/demo
$(B)/run-$(BLAS)/%: examples/%.c examples/transformer.h lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c99 $(CFLAGS) $(WARN) -I. $(RUN_CFLAGS) $< -o $@ $(RUN_LIBS) -lm

# ---- tests ----------------------------------------------------------------------------------
# test: install dependencies, then every test: OpenBLAS and LORT_NO_BLAS builds, ASan+UBSan,
# strict-warning compile tests (C99, C11, C++11, C++17), and every example.
test: deps
	$(MAKE) --no-print-directory check

check: test-compile test-blas test-noblas test-sanitize examples size-if-available \
       $(if $(HAVE_MPICC),test-mpi)
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
	@set -e; for f in $(FAMILIES); do \
	  $(CC) -std=c99 $(WARN) -Werror -I. -DLORT_NO_BLAS -DLORT_STATIC -DLORT_ONLY_$$f \
	    -c tests/compile/impl.c -o $(B)/compile/only_$$f.o; done; echo "LORT_ONLY_<F>: $(FAMILIES) ok"
	$(CC) -std=c99 $(WARN) -Werror -I. -DLORT_NO_BLAS -DLORT_NO_MPO -DLORT_NO_TT -DLORT_NO_CP \
	  -c tests/compile/impl.c -o $(B)/compile/no_some.o
	$(CC) -std=c99 $(WARN) -Werror -I. -DLORT_NO_BLAS tests/compile/only_lora.c -o $(B)/compile/only_lora -lm
	./$(B)/compile/only_lora
	@if command -v clang >/dev/null 2>&1; then \
	  clang -std=c99 -Weverything $(WEVERYTHING_OFF) -Werror -I. -DLORT_NO_BLAS -c tests/compile/impl.c \
	    -o $(B)/compile/weverything.o && echo "clang -Weverything: ok"; \
	else echo "clang -Weverything: skipped (clang not installed)"; fi
	@if command -v tcc >/dev/null 2>&1; then \
	  tcc -I. -DLORT_NO_BLAS tests/compile/impl.c -o $(B)/compile/tcc -lm && ./$(B)/compile/tcc && \
	  tcc -I. -DLORT_NO_BLAS -DLORT_DEBUG -Wall -Werror tests/test_errors.c -o $(B)/compile/tcc_errors \
	    -lcmocka -lm && ./$(B)/compile/tcc_errors >/dev/null 2>&1 && echo "tcc: ok (impl.c, test_errors)"; \
	else echo "tcc: skipped (tcc not installed: apt-get install tcc)"; fi
	@echo "test-compile: ok"

examples: $(addprefix $(B)/examples/,$(EXAMPLES))
	@mkdir -p $(B)/demo
	@set -e; for e in $^; do echo "== $$e"; OPENBLAS_NUM_THREADS=1 ./$$e; done
$(B)/examples/%: examples/%.c examples/transformer.h lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c99 $(CFLAGS) $(WARN) -Werror -I. $(RUN_CFLAGS) $< -o $@ $(RUN_LIBS) -lm

# ---- data-parallel training over MPI (Open MPI's mpicc; make check runs it when present) -----
# Compiled by $(CC) with mpicc's flags, so that mpi.h is a system header under the strict set.
HAVE_MPICC  := $(shell command -v mpicc >/dev/null 2>&1 && echo yes)
MPI_CFLAGS  := $(patsubst -I%,-isystem %,$(shell mpicc --showme:compile 2>/dev/null))
MPI_LIBS    := $(shell mpicc --showme:link 2>/dev/null)
MPIRUN_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo --allow-run-as-root)
MPIRUN      := mpirun --oversubscribe $(MPIRUN_ROOT)
.PHONY: test-mpi
test-mpi: $(B)/mpi/05_data_parallel
	OPENBLAS_NUM_THREADS=1 $(MPIRUN) -np 2 ./$<
$(B)/mpi/%: examples/%.c examples/transformer.h lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c99 $(CFLAGS) $(WARN) -Werror -I. $(MPI_CFLAGS) $(RUN_CFLAGS) $< -o $@ $(MPI_LIBS) $(RUN_LIBS) -lm

# ---- embedded size check: Cortex-M4F, -Os, newlib-nano, --gc-sections --------------------
# Builds tests/embedded/*.c (LoRA forward, LoRA train, cp) for a Cortex-M4F and prints their
# text size and whether any soft-double routine (__aeabi_d*) is linked. Limits: LoRA forward
# <= 6 KiB, LoRA train <= 12 KiB, no soft-double anywhere. Needs gcc-arm-none-eabi and
# libnewlib-arm-none-eabi; `make check` runs it when arm-none-eabi-gcc is installed.
ARM_CC    ?= arm-none-eabi-gcc
ARM_FLAGS := -std=c99 -mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard -Os \
             -ffunction-sections -fdata-sections -Wl,--gc-sections --specs=nano.specs \
             --specs=nosys.specs $(WARN) -Werror
EMBEDDED  := lora_forward lora_train cp
size: $(addprefix $(B)/arm/,$(addsuffix .elf,$(EMBEDDED)))
	@printf '%-14s %8s %8s %8s  %s\n' program text data bss soft-double; fail=0; \
	for p in $(EMBEDDED); do e=$(B)/arm/$$p.elf; \
	  set -- $$(arm-none-eabi-size $$e | tail -1); \
	  d=$$(arm-none-eabi-nm $$e | grep -c ' __aeabi_d' || true); \
	  printf '%-14s %8s %8s %8s  %s\n' $$p $$1 $$2 $$3 $$([ $$d = 0 ] && echo none || echo "$$d symbols"); \
	  [ $$d = 0 ] || fail=1; \
	  [ $$p != lora_forward ] || [ $$1 -le 6144 ] || { echo "  over 6 KiB"; fail=1; }; \
	  [ $$p != lora_train ] || [ $$1 -le 12288 ] || { echo "  over 12 KiB"; fail=1; }; \
	done; [ $$fail = 0 ] && echo "size: ok"
$(B)/arm/%.elf: tests/embedded/%.c lortensor.h
	@mkdir -p $(@D)
	$(ARM_CC) $(ARM_FLAGS) -I. $< -o $@ -lm
size-if-available:
	@if command -v $(ARM_CC) >/dev/null 2>&1; then $(MAKE) --no-print-directory size; \
	else echo "size: skipped ($(ARM_CC) not installed: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)"; fi

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
DEPS := build-essential pkg-config libopenblas-dev libcmocka-dev libopenmpi-dev openmpi-bin
deps:
	@if dpkg -s $(DEPS) >/dev/null 2>&1; then echo "deps: installed"; else \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(DEPS); fi
deps-bench: deps
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-torch

clean:
	rm -rf $(B)
