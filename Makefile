# The two commands of the README, and a few helpers around the CMake build.
#
#   make run       dependencies, build, PostgreSQL under var/pg, migrate, rpcqd serve (Ctrl-C stops)
#   make test      dependencies, build (warnings are errors), the whole test suite
#   make build     configure and build into $(BUILD)
#   make format    clang-format -i on every C file; make format-check only checks
#   make ci        what CI runs (.ci/run): test, sanitizers, fuzzing, format check
#   make clean     remove $(BUILD) and the CI build trees; make distclean also var/
#
# Variables: BUILD (build directory, default build), JOBS (default: all cores),
# CMAKE_ARGS (extra cmake -D options), CTEST_ARGS (e.g. CTEST_ARGS='-L unit'),
# RUN_ARGS (extra rpcqd serve flags for make run).
BUILD ?= build
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=
CTEST_ARGS ?=
RUN_ARGS ?=
CLANG_FORMAT ?= clang-format-14
FORMAT_DIRS := client server include tests tools bench

.PHONY: all setup configure build test run format format-check ci clean distclean

all: build

setup:
	scripts/setup

configure: setup
	cmake -S . -B $(BUILD) -DRPCQ_WERROR=ON $(CMAKE_ARGS)

build: configure
	cmake --build $(BUILD) -j$(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j2 $(CTEST_ARGS)

run: build
	scripts/run $(BUILD) $(RUN_ARGS)

# Every .c and .h of ours; build trees (build/, build-*/) are skipped wherever they are.
FIND_C = find $(FORMAT_DIRS) -type d \( -name build -o -name 'build-*' \) -prune -o -name '*.[ch]' -type f -print0

format:
	$(FIND_C) | xargs -0 -r $(CLANG_FORMAT) -i

format-check:
	$(FIND_C) | xargs -0 -r $(CLANG_FORMAT) --dry-run --Werror

ci:
	.ci/run

clean:
	rm -rf $(BUILD) build-asan build-tsan build-fuzz

distclean: clean
	@if [ -d var/pg ]; then scripts/pg destroy var/pg; fi
	rm -rf var
