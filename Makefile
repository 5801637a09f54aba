# rhd: one Makefile for the whole suite.
#
#   make              CPU build: build/librhd.a and build/bin/rhd-*
#   make CUDA=1       adds the CUDA backend (nvcc, sm_90 + PTX, cuBLAS, cuDNN): build-cuda/
#   make CUDA=emu     the CUDA backend compiled for the CPU against the emulation of tests/emu/ (no
#                     GPU, no CUDA toolkit): build-emu/; `make CUDA=emu test-emu` runs the tests
#                     that compare the CUDA backend with the CPU one (tests/emu/README.md)
#   make test         builds, creates the test venv (build/venv), runs every test; last line
#                     "N passed, N failed, N skipped"
#   make SAN=1 test   the same under AddressSanitizer + UndefinedBehaviorSanitizer: build-san/
#   make DEBUG=1      -O0 -g3: build-debug/
#   make MPI=1        data-parallel rhd-train over MPI ranks (mpicc, -DRHD_MPI): build-mpi/
#   make fuzz         libFuzzer targets (clang), each run for FUZZ_SECONDS (default 60)
#   make bench        CPU benchmarks against PyTorch on the same machine
#   make deps         install the Debian packages the build and tests need (as root)
#   make demo         the README's main job on bundled data
#   make forgetting   the forgetting experiment on the dev set; rewrites its table in tools/rhd-fit.md
#   make quality      stage 2's held-out quality against its cost; rewrites its table in tools/rhd-fit.md
#   make pred-compare the base model's --pred eps/xstart/v on the demo's data; rewrites its table in tools/rhd-train.md
#
# Variants build into separate folders so that switching flags never mixes objects.
#
# Building against a private prefix (tests/gpu/run.sh does, on a GPU machine without Debian's
# -dev packages; see the README's "GPU check"):
#   EXTRA_CPPFLAGS   include flags searched before the system's folders, for cc, c++ and nvcc:
#                    -I<prefix>/usr/include ...
#   EXTRA_LDFLAGS    link flags searched before the system's folders, with their rpath:
#                    -L<prefix>/usr/lib/x86_64-linux-gnu -Wl,-rpath,<prefix>/usr/lib/...
#   CUDA_HOME        the folder whose include/ and lib64/ hold the CUDA runtime, cuBLAS and
#                    cuDNN headers and libraries (rpath'd too)
#   BUILD, DEPS_OK   the output folder, and the stamp whose rule checks the Debian packages

CUDA ?= 0
MPI ?= 0
SAN ?= 0
DEBUG ?= 0
CC ?= cc
NVCC ?= nvcc
CUDA_HOME ?= /usr/local/cuda
EXTRA_CPPFLAGS ?=
EXTRA_LDFLAGS ?=
PYTHON_SYS ?= /usr/bin/python3
FUZZ_SECONDS ?= 60
FUZZ_BUILD := build-fuzz

BUILD := build
ifeq ($(CUDA),1)
BUILD := $(BUILD)-cuda
endif
ifeq ($(CUDA),emu)
BUILD := $(BUILD)-emu
endif
ifeq ($(SAN),1)
BUILD := $(BUILD)-san
endif
ifeq ($(DEBUG),1)
BUILD := $(BUILD)-debug
endif
ifeq ($(BUILD),build-cuda-san)
BUILD := build-cuda-san
endif
ifeq ($(MPI),1)
BUILD := $(BUILD)-mpi
CC := mpicc
endif

OPT := -O2 -g
ifeq ($(DEBUG),1)
OPT := -O0 -g3
endif
CPPFLAGS := -I. $(EXTRA_CPPFLAGS) -D_GNU_SOURCE
ifeq ($(MPI),1)
CPPFLAGS += -DRHD_MPI
endif
CFLAGS := -std=c11 $(OPT) -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -fopenmp -fPIC
LDLIBS := -lpng -lcjson -lopenblas -lm
LDFLAGS := $(EXTRA_LDFLAGS) -fopenmp
ifeq ($(SAN),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(CUDA),1)
CPPFLAGS += -DRHD_CUDA -I$(CUDA_HOME)/include
NVFLAGS := -O2 -g -std=c++17 -I. $(EXTRA_CPPFLAGS) -DRHD_CUDA -D_GNU_SOURCE \
	-gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90 \
	-Xcompiler -fPIC,-fopenmp,-Wall,-Wno-unused-parameter
LDFLAGS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64
NVLDFLAGS := -L$(CUDA_HOME)/lib64 -Xlinker -rpath -Xlinker $(CUDA_HOME)/lib64
LDLIBS += -lcudnn -lcublas -lcudart -lstdc++
ifeq ($(MPI),1)
# NCCL for rhd-train's gradient sums on CUDA ranks (common/dist.c); libnccl is under lib/ or lib64/
CPPFLAGS += -DRHD_NCCL
LDFLAGS += -L$(CUDA_HOME)/lib -Wl,-rpath,$(CUDA_HOME)/lib
LDLIBS += -lnccl
endif
endif

ifeq ($(CUDA),emu)
# The emulated CUDA backend: every .cu file compiled as C++ with its `k<<<cfg>>>(` launches
# rewritten to `emu_cfg(cfg)("k", k, ` (tests/emu/emu_device.hpp), against the CUDA, cuBLAS,
# cuDNN, cub and NCCL headers of tests/emu/include and their host implementation emu_api.cpp.
CPPFLAGS += -DRHD_CUDA -DRHD_CUDA_EMU -Itests/emu/include
ifeq ($(SAN),1)
CPPFLAGS += -DRHD_SAN
endif
LDLIBS += -lstdc++
endif

LIB_SRC := $(wildcard common/*.c common/models/*.c formats/*.c kernels/*.c)
CU_SRC := $(if $(filter 1 emu,$(CUDA)),$(wildcard common/*.cu common/models/*.cu kernels/*.cu))
TOOL_SRC := $(wildcard tools/rhd-*.c)
TEST_SRC := $(wildcard tests/unit/test_*.c tests/kernels/test_*.c tests/models/test_*.c)
TEST_CXX_SRC := $(wildcard tests/kernels/test_*.cpp tests/models/test_*.cpp)
BENCH_SRC := $(wildcard tests/bench/bench_*.c)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(CU_SRC:%.cu=$(BUILD)/obj/%.cu.o)
ifeq ($(CUDA),emu)
LIB_OBJ += $(BUILD)/obj/tests/emu/emu_api.o
endif
LIB := $(BUILD)/librhd.a
TOOLS := $(TOOL_SRC:tools/%.c=$(BUILD)/bin/%)
TESTS := $(patsubst %.c,$(BUILD)/tests/%,$(notdir $(TEST_SRC))) $(patsubst %.cpp,$(BUILD)/tests/%,$(notdir $(TEST_CXX_SRC)))
BENCHES := $(patsubst %.c,$(BUILD)/bench/%,$(notdir $(BENCH_SRC)))
DEPS_OK := build/.deps-ok

.PHONY: test-emu emu-official all test fuzz bench benches deps demo forgetting quality pred-compare clean venv tests-build
.DELETE_ON_ERROR:

all: $(LIB) $(TOOLS)

$(DEPS_OK): tests/deps.sh
	@bash tests/deps.sh build
	@mkdir -p $(@D) && touch $@

$(BUILD)/obj/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

ifeq ($(CUDA),emu)
# __CUDA_ARCH__: the device branches of the RHD_HD helpers, as nvcc's device pass compiles them;
# -mfma -ffp-contract=fast: a*b+c fused as nvcc fuses it by default (-fmad=true)
EMU_CXXFLAGS = $(filter-out -std=c11,$(CFLAGS)) -std=c++20 -Wno-unknown-pragmas -include cuda_runtime.h \
	-D__CUDA_ARCH__=900 -mfma -ffp-contract=fast
$(BUILD)/obj/%.cu.o: %.cu | $(DEPS_OK)
	@mkdir -p $(@D)
	{ echo '#line 1 "$<"'; sed -E 's/([A-Za-z_][A-Za-z0-9_]*(<[^<>]*>)?)<<<(.*)>>>\(/emu_cfg(\3)("\1", \1, /' $<; } > $(@:.o=.cpp)
	$(CXX) $(CPPFLAGS) $(EMU_CXXFLAGS) -MMD -MP -MF $(@:.o=.d) -MT $@ -c $(@:.o=.cpp) -o $@
$(BUILD)/obj/tests/emu/%.o: tests/emu/%.cpp | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CXX) $(CPPFLAGS) $(filter-out -std=c11,$(CFLAGS)) -std=c++20 -MMD -MP -c $< -o $@
else
$(BUILD)/obj/%.cu.o: %.cu | $(DEPS_OK)
	@mkdir -p $(@D)
	$(NVCC) $(NVFLAGS) -MMD -MP -c $< -o $@
endif

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/%: tools/%.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -MF $(BUILD)/obj/$*.d $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@

TEST_HDR := $(wildcard tests/*.h tests/kernels/*.h tests/bench/*.h)
$(BUILD)/tests/%: tests/unit/%.c $(TEST_HDR) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Itests $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@
$(BUILD)/tests/%: tests/kernels/%.c $(TEST_HDR) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Itests $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@
$(BUILD)/tests/%: tests/models/%.c $(TEST_HDR) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Itests $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@
# C++20 tests: the CUDA kernels' device code emulated on the CPU (tests/emu/emu_device.hpp)
CXXFLAGS := $(filter-out -std=c11,$(CFLAGS)) -std=c++20 -pthread -Wno-unknown-pragmas
EMU_DEPS := $(TEST_HDR) tests/emu/emu_device.hpp $(LIB) $(wildcard common/models/*.cuh kernels/*.cuh)
$(BUILD)/tests/%: tests/kernels/%.cpp $(EMU_DEPS)
	@mkdir -p $(@D)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -Itests $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@
$(BUILD)/tests/%: tests/models/%.cpp $(EMU_DEPS)
	@mkdir -p $(@D)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -Itests $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@
$(BUILD)/bench/%: tests/bench/%.c $(TEST_HDR) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Itests $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@

$(BUILD)/bench/%: tests/gpu/%.cu
	@mkdir -p $(@D)
	$(NVCC) $(NVFLAGS) $< -o $@ $(NVLDFLAGS) -lcublas
benches: $(BENCHES)

-include $(LIB_OBJ:.o=.d)

# The test venv: Debian's python3-numpy/python3-torch through --system-site-packages, plus the
# pinned PyPI packages of tests/requirements.txt.
VENV := build/venv
$(VENV)/.ok: tests/requirements.txt | $(DEPS_OK)
	@bash tests/deps.sh test
	rm -rf $(VENV)
	$(PYTHON_SYS) -m venv --system-site-packages $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r tests/requirements.txt
	touch $@
venv: $(VENV)/.ok

tests-build: $(LIB) $(TOOLS) $(TESTS)

FUZZERS := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
test: tests-build $(VENV)/.ok $(FUZZERS)
	@RHD_BUILD=$(BUILD) RHD_PY=$(abspath $(VENV))/bin/python CUDA=$(CUDA) SAN=$(SAN) FUZZ_BUILD=$(FUZZ_BUILD) bash tests/run.sh

# The CUDA backend on the CPU (make CUDA=emu test-emu; tests/emu/README.md): every test program
# (their CUDA-vs-CPU comparisons run on the emulated device) and the tool tests that use
# --device cuda; no fuzzing (the fuzz targets do not touch the CUDA backend).
ifneq ($(filter test-emu,$(MAKECMDGOALS)),)
ifneq ($(CUDA),emu)
$(error test-emu: run it as make CUDA=emu test-emu)
endif
endif
test-emu: tests-build $(VENV)/.ok
	@RHD_BUILD=$(BUILD) RHD_PY=$(abspath $(VENV))/bin/python CUDA=emu SAN=$(SAN) FUZZ_BUILD=none \
		RHD_TOOL_TESTS='t06[5-9]*-cuda*.sh' bash tests/run.sh

# The CUDA backend at the official UNet size on the emulation, against the CPU (~20 min, 15 GB;
# tests/emu/check_official.c; its figures are in common/models/unet.md)
emu-official: $(BUILD)/tests/emu/check_official
	$(BUILD)/tests/emu/check_official
$(BUILD)/tests/emu/check_official: tests/emu/check_official.c $(TEST_HDR) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -Itests $< $(LIB) $(LDFLAGS) $(LDLIBS) -o $@

# libFuzzer targets (clang): the library compiled once with the fuzzer instrumentation
# (build-fuzz/librhd-fuzz.a), each target linked against it.
FUZZ_CFLAGS := -std=c11 -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -I. -D_GNU_SOURCE -fopenmp=libgomp
FUZZ_OBJ := $(LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
$(FUZZ_BUILD)/obj/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@
-include $(FUZZ_OBJ:.o=.d)
$(FUZZ_BUILD)/librhd-fuzz.a: $(FUZZ_OBJ)
	rm -f $@ && ar rcs $@ $^
$(FUZZ_BUILD)/%: tests/fuzz/%.c $(FUZZ_BUILD)/librhd-fuzz.a
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -MMD -MP -MF $@.d -fsanitize=fuzzer $< $(FUZZ_BUILD)/librhd-fuzz.a -lpng -lcjson -lopenblas -lm -o $@
-include $(FUZZERS:=.d)
fuzz: $(FUZZERS)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_BUILD=$(FUZZ_BUILD) bash tests/fuzz/run.sh

bench: $(TOOLS) $(BENCHES) $(VENV)/.ok
	@RHD_BUILD=$(BUILD) RHD_PY=$(abspath $(VENV))/bin/python bash tests/bench/run.sh

deps:
	@bash tests/deps.sh all

demo: $(TOOLS)
	@RHD_BUILD=$(BUILD) bash pipelines/demo.sh

forgetting: $(TOOLS)
	@RHD_BUILD=$(BUILD) nice -n 10 bash pipelines/forgetting.sh --update-doc tools/rhd-fit.md

quality: $(TOOLS) $(VENV)/.ok
	@RHD_BUILD=$(BUILD) RHD_PY=$(VENV)/bin/python nice -n 10 bash pipelines/quality.sh --update-doc tools/rhd-fit.md

pred-compare: $(TOOLS)
	@RHD_BUILD=$(BUILD) bash pipelines/pred_compare.sh --update-doc tools/rhd-train.md

clean:
	rm -rf build build-cuda build-san build-debug build-cuda-san build-fuzz build-mpi build-cuda-mpi
