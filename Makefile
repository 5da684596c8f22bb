# lortensor: make run | make test | make check | make size | make bench | make bench-quick | make deps | make clean
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

.PHONY: test-gguf fuzz-gguf
.PHONY: all run test test-blas test-noblas test-sanitize test-m32 test-compile examples check bench bench-quick deps \
        deps-bench clean FORCE size size-if-available fuzz test-peft
all: examples

# ---- quick start: the fine-tuning demo, no dependency beyond a C compiler ------------------
# It pretrains a toy model once (checkpoint build/demo/base_model.bin), fine-tunes it with every
# method, prints the table and writes build/demo/finetune_{loss,accuracy}.svg. One BLAS thread:
# its matrices are at most 256 x 128, where threads only add overhead. Built for this machine
# (-O3 -march=native: the built-in GEMM needs the vector ISA, see the header's CONFIGURATION)
# when the compiler accepts it, else with CFLAGS.
NATIVE_OPT := $(shell $(CC) -O3 -march=native -x c -c /dev/null -o /dev/null 2>/dev/null && echo -O3 -march=native)
RUN_OPT    ?= $(if $(NATIVE_OPT),$(NATIVE_OPT) -g,$(CFLAGS))
run: $(B)/run-$(BLAS)/00_finetune_demo
	@mkdir -p $(B)/demo
	OPENBLAS_NUM_THREADS=1 ./$(B)/run-$(BLAS)/00_finetune_demo --out $(B)/demo
$(B)/run-$(BLAS)/%: examples/%.c examples/transformer.h lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c99 $(RUN_OPT) $(WARN) -I. $(RUN_CFLAGS) $< -o $@ $(RUN_LIBS) -lm

# ---- tests ----------------------------------------------------------------------------------
# test: install dependencies, then `make check` in parallel (JOBS = the machine's cores).
# check: every test program in four builds (OpenBLAS; LORT_NO_BLAS; ASan+UBSan with LORT_DEBUG;
# 32-bit i386, gcc -m32, where size_t is 32 bits), strict-warning compile tests (C99, C11,
# C++11, C++17), and every example. `make -j check` runs all of it in parallel.
#
# Each build compiles the implementation once (tests/impl.c -> build/<build>/lort_impl.o) and
# links it into every test program, which includes the header without LORTENSOR_IMPLEMENTATION.
# A test that defines LORTENSOR_IMPLEMENTATION itself (it needs its own configuration macros)
# is linked without that object. Test output goes to build/<build>/<test>.log, printed on failure.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test: deps
	$(MAKE) --no-print-directory -j$(JOBS) check

TEST_HDRS := tests/lort_test.h tests/alloc_spy.h tests/lort_hooks.h lortensor.h
SELF_IMPL := $(basename $(notdir $(shell grep -l '^\#define LORTENSOR_IMPLEMENTATION' tests/test_*.c)))
ASAN      := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
TEST_HDRS += tests/lort_test_adapters.h
# The 32-bit build uses SSE arithmetic (-mfpmath=sse: IEEE single precision as on ARM, not
# x87's extended precision) and runs where gcc -m32 and an i386 libcmocka exist (make deps installs them on
# Debian amd64); elsewhere test-m32 says it is skipped.
HAVE_M32  := $(shell printf '\043include <stdarg.h>\n\043include <stddef.h>\n\043include <setjmp.h>\n\043include <cmocka.h>\nint main(void){return 0;}\n' | \
               $(CC) -m32 -x c - -o /dev/null -lcmocka 2>/dev/null && echo yes)
# the shared double references and test cases (tests/lort_ref.h, tests/lort_cases.h)
TEST_HDRS += tests/lort_ref.h tests/lort_cases.h

# $(call test_build,name,cflags,libs,env): the implementation object, the test programs and
# their runs (build/<name>/<test>.ok holds the number of tests that passed) for one build.
define test_build
$(B)/$(1)/lort_impl.o: tests/impl.c $(TEST_HDRS)
	@mkdir -p $$(@D)
	$$(CC) -std=c99 $(2) $$(WARN) -Werror -I. -c $$< -o $$@
$(B)/$(1)/%: tests/%.c $(TEST_HDRS) $(B)/$(1)/lort_impl.o
	$$(CC) -std=c99 $(2) $$(WARN) -Werror -I. $$< \
	  $$(if $$(filter $$*,$$(SELF_IMPL)),,$(B)/$(1)/lort_impl.o) -o $$@ $(3) -lcmocka -lm
$(B)/$(1)/%.ok: $(B)/$(1)/% FORCE
	@if $(4) ./$$< >$$(@:.ok=.log) 2>&1; then \
	  n=$$$$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' $$(@:.ok=.log) | awk '{s+=$$$$1} END {print s+0}'); \
	  echo "$$$$n" >$$@; echo "== $$<: $$$$n passed"; \
	else cat $$(@:.ok=.log); echo "== $$<: FAILED (log: $$(@:.ok=.log))"; rm -f $$@; exit 1; fi
endef
$(eval $(call test_build,blas,$(CFLAGS) $(BLAS_CFLAGS),$(BLAS_LIBS),OPENBLAS_NUM_THREADS=1))
$(eval $(call test_build,noblas,$(CFLAGS) -DLORT_NO_BLAS,,))
$(eval $(call test_build,asan,-O1 -g $(ASAN) -DLORT_NO_BLAS -DLORT_DEBUG,,))
$(eval $(call test_build,m32,-m32 -msse2 -mfpmath=sse $(CFLAGS) -DLORT_NO_BLAS,,))
# the built-in GEMM's plain-C fallback (no vector extension) with a small-stack blocking
$(eval $(call test_build,portable,$(CFLAGS) -DLORT_NO_BLAS -DLORT_GEMM_PORTABLE -DLORT_GEMM_KC=16 \
  -DLORT_GEMM_NC=32 -DLORT_GEMM_MR=4 -DLORT_GEMM_NR=8,,))
# the decode path's vector loops as this machine compiles them (-O3 -march=native: AVX where
# there is AVX), for the tests that run them; the plain-C form runs in the portable build
DECODE_TESTS := test_lora test_loraxs test_serve test_cp test_tt
$(eval $(call test_build,native,$(if $(NATIVE_OPT),$(NATIVE_OPT) -g,$(CFLAGS)) -DLORT_NO_BLAS,,))
.PRECIOUS: $(addprefix $(B)/native/,$(DECODE_TESTS)) $(B)/portable/test_lora
.PRECIOUS: $(B)/%/lort_impl.o $(addprefix $(B)/blas/,$(TESTS)) $(addprefix $(B)/noblas/,$(TESTS)) \
           $(addprefix $(B)/asan/,$(TESTS)) $(addprefix $(B)/m32/,$(TESTS)) $(B)/portable/test_gemm
FORCE:

# A summary line per build: how many test programs and cmocka tests passed.
define test_summary
	@cat $(1) | awk '{s+=$$1} END {printf "%s: %d programs, %d tests passed\n", "$(2)", NR, s}'
endef
test-blas: $(addprefix $(B)/blas/,$(addsuffix .ok,$(TESTS)))
	$(call test_summary,$^,test-blas)
test-noblas: $(addprefix $(B)/noblas/,$(addsuffix .ok,$(TESTS))) $(B)/portable/test_gemm.ok \
             $(B)/portable/test_lora.ok $(addprefix $(B)/native/,$(addsuffix .ok,$(DECODE_TESTS)))
	$(call test_summary,$^,test-noblas)
test-sanitize: $(addprefix $(B)/asan/,$(addsuffix .ok,$(TESTS)))
	$(call test_summary,$^,test-sanitize)
ifeq ($(HAVE_M32),yes)
test-m32: $(addprefix $(B)/m32/,$(addsuffix .ok,$(TESTS)))
	$(call test_summary,$^,test-m32)
else
test-m32:
	@echo "test-m32: SKIPPED (no gcc -m32 with an i386 libcmocka; make deps installs them on Debian amd64)"
endif

# Open MPI's mpicc, for the data-parallel example (examples/05_data_parallel.c, test-mpi below):
# defined here because check's prerequisites are expanded when this line is read.
HAVE_MPICC := $(shell command -v mpicc >/dev/null 2>&1 && echo yes)
check: test-compile test-blas test-noblas test-sanitize test-m32 examples size-if-available \
       $(if $(HAVE_MPICC),test-mpi)
	@echo "make check: all passed"

# The header alone under the strict warning set, as C and C++, with and without BLAS, plus
# double inclusion and LORT_STATIC in two translation units (the STB way of including it).
# Also each family alone (LORT_ONLY_<F>), three left out, and a LoRA-only program. Every
# compile is its own target, so `make -j` runs them in parallel.
COMPILE_OBJS := $(addprefix $(B)/compile/,c99.o c11.o cxx11.o cxx17.o no_some.o) \
                $(patsubst %,$(B)/compile/only_%.o,$(FAMILIES))
test-compile: $(COMPILE_OBJS) $(B)/compile/static $(B)/compile/only_lora
	./$(B)/compile/static
	@echo "LORT_ONLY_<F>: $(FAMILIES) ok"
	./$(B)/compile/only_lora
	@if command -v clang >/dev/null 2>&1; then \
	  clang -std=c99 -Weverything $(WEVERYTHING_OFF) -Werror -I. -DLORT_NO_BLAS -c tests/compile/impl.c \
	    -o $(B)/compile/weverything.o && echo "clang -Weverything: ok"; \
	else echo "clang -Weverything: skipped (clang not installed)"; fi
	@if command -v tcc >/dev/null 2>&1; then \
	  tcc -I. -DLORT_NO_BLAS tests/compile/impl.c -o $(B)/compile/tcc -lm && ./$(B)/compile/tcc && \
	  tcc -I. -DLORT_NO_BLAS -DLORT_DEBUG -Wall -Werror tests/test_errors.c tests/impl.c -o $(B)/compile/tcc_errors \
	    -lcmocka -lm && ./$(B)/compile/tcc_errors >/dev/null 2>&1 && echo "tcc: ok (impl.c, test_errors)"; \
	else echo "tcc: skipped (tcc not installed: apt-get install tcc)"; fi
	@echo "test-compile: ok"
$(B)/compile/c99.o: tests/compile/impl.c lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c99 $(WARN) -Werror -I. $(BLAS_CFLAGS) -c $< -o $@
$(B)/compile/c11.o: tests/compile/impl.c lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c11 $(WARN) -Werror -I. -DLORT_NO_BLAS -c $< -o $@
$(B)/compile/cxx11.o: tests/compile/impl.c lortensor.h
	@mkdir -p $(@D)
	$(CXX) -std=c++11 $(CXXWARN) -Werror -I. $(BLAS_CFLAGS) -x c++ -c $< -o $@
$(B)/compile/cxx17.o: tests/compile/impl.c lortensor.h
	@mkdir -p $(@D)
	$(CXX) -std=c++17 $(CXXWARN) -Werror -I. -DLORT_NO_BLAS -x c++ -c $< -o $@
$(B)/compile/only_%.o: tests/compile/impl.c lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c99 $(WARN) -Werror -I. -DLORT_NO_BLAS -DLORT_STATIC -DLORT_ONLY_$* -c $< -o $@
$(B)/compile/no_some.o: tests/compile/impl.c lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c99 $(WARN) -Werror -I. -DLORT_NO_BLAS -DLORT_NO_MPO -DLORT_NO_TT -DLORT_NO_CP \
	  -c $< -o $@
$(B)/compile/only_lora: tests/compile/only_lora.c lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c99 $(WARN) -Werror -I. -DLORT_NO_BLAS $< -o $@ -lm
$(B)/compile/static: tests/compile/static_a.c tests/compile/static_b.c lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c99 $(WARN) -Werror -I. -DLORT_NO_BLAS tests/compile/static_a.c tests/compile/static_b.c -o $@ -lm

examples: $(addprefix $(B)/examples/,$(addsuffix .ok,$(EXAMPLES)))
$(B)/examples/%.ok: $(B)/examples/% FORCE
	@mkdir -p $(B)/demo
	@if OPENBLAS_NUM_THREADS=1 ./$< >$(@:.ok=.log) 2>&1; then touch $@; echo "== $<: ok"; \
	else cat $(@:.ok=.log); echo "== $<: FAILED"; exit 1; fi
$(B)/examples/%: examples/%.c examples/transformer.h lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c99 $(CFLAGS) $(WARN) -Werror -I. $(RUN_CFLAGS) $< -o $@ $(RUN_LIBS) -lm
.PRECIOUS: $(addprefix $(B)/examples/,$(EXAMPLES))

# ---- data-parallel training over MPI (Open MPI's mpicc; make check runs it when present) -----
# Compiled by $(CC) with mpicc's flags, so that mpi.h is a system header under the strict set.
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

# ---- GGUF: the independent check with llama.cpp's gguf Python package (pip install gguf numpy),
# which test_gguf otherwise skips when the package is missing; and the reader's fuzzer
test-gguf: $(B)/blas/test_gguf
	LORT_GGUF_REQUIRE=1 OPENBLAS_NUM_THREADS=1 ./$(B)/blas/test_gguf

# libFuzzer (clang, ASan + UBSan) on lort_gguf_read, seeded with files from the writer (fresh
# ones in the corpus, committed ones in tests/fuzz/seeds/fuzz_gguf, one from the gguf package).
$(B)/fuzz/gguf_seeds: tests/fuzz/gguf_seeds.c lortensor.h
	@mkdir -p $(@D)
	$(CC) -std=c99 -O1 $(WARN) -Werror -I. $< -o $@ -lm
fuzz-gguf: $(B)/fuzz/fuzz_gguf $(B)/fuzz/gguf_seeds
	@mkdir -p $(B)/fuzz/corpus_gguf
	./$(B)/fuzz/gguf_seeds $(B)/fuzz/corpus_gguf
	-python3 tests/fuzz/gguf_seed.py $(B)/fuzz/corpus_gguf
	./$(B)/fuzz/fuzz_gguf -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 \
	  -print_final_stats=1 $(B)/fuzz/corpus_gguf tests/fuzz/seeds/fuzz_gguf

# ---- benchmarks (not part of test) -----------------------------------------------------------
# make bench: every bench program, then the PyTorch peer (the first of python3, /usr/bin/python3
# that imports torch), the GEMM, every-family and peer rows appended to $(B)/bench/results.csv;
# bench/report.py joins them into $(B)/bench/results.md and the plot $(B)/bench/overhead.svg.
# make bench-quick: a subset (the GEMM shapes marked quick, every family at n = 16, fewer
# samples) in about a minute. One thread (BENCH_THREADS), and the process CPU clock for the
# GEMM, every-family and SVD rows (bench.c), so that neighbours on a shared machine do not skew
# one side. The peer's dense torch.linalg.svd (no target; minutes at one thread) is left out:
# bench/peer_torch.py alone runs it.
BENCHES := $(basename $(notdir $(wildcard bench/bench*.c)))
PYTHON  ?= $(shell for p in python3 /usr/bin/python3; do $$p -c 'import torch' 2>/dev/null && { command -v $$p; break; }; done)
BENCH_CSV := $(B)/bench/results.csv
BENCH_THREADS ?= 1
bench: $(addprefix $(B)/bench/,$(BENCHES))
	@rm -f $(BENCH_CSV) $(B)/bench/failed
	@export OPENBLAS_NUM_THREADS=$(BENCH_THREADS); for b in $^; do case $$b in \
	  */bench_gemm|*/bench_families|*/bench_serve|*/bench) ./$$b --cpu-time --csv $(BENCH_CSV);; *) ./$$b;; esac \
	  || echo "$$b" >> $(B)/bench/failed; done
	@if [ -n "$(PYTHON)" ]; then OPENBLAS_NUM_THREADS=$(BENCH_THREADS) $(PYTHON) bench/peer_torch.py \
	  --cpu-time --no-dense-svd --csv $(BENCH_CSV) || echo bench/peer_torch.py >> $(B)/bench/failed; \
	  else echo "(PyTorch peer skipped: no python3 with torch; pip install torch, or make deps-bench)"; fi
	@python3 bench/report.py $(BENCH_CSV) --md $(B)/bench/results.md --svg $(B)/bench/overhead.svg
	@if [ -s $(B)/bench/failed ]; then echo "make bench: these failed (the rest ran):"; \
	  cat $(B)/bench/failed; exit 1; fi
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
# On amd64 also the 32-bit toolchain of test-m32: gcc-multilib and the i386 libcmocka (the
# i386 architecture is added to dpkg for it).
DEPS := build-essential pkg-config libopenblas-dev libcmocka-dev libopenmpi-dev openmpi-bin
ifeq ($(shell dpkg --print-architecture 2>/dev/null),amd64)
  DEPS += gcc-multilib libcmocka-dev:i386
endif
deps:
	@if dpkg -s $(DEPS) >/dev/null 2>&1; then echo "deps: installed"; else \
	  case "$(DEPS)" in *:i386*) dpkg --print-foreign-architectures | grep -qx i386 || \
	    $(SUDO) dpkg --add-architecture i386;; esac; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(DEPS); fi
deps-bench: deps
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq python3-torch

clean:
	rm -rf $(B)
