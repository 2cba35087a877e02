#!/usr/bin/env bash
# One-shot CUDA check on a rented GPU machine: the core and torch tests with their CPU and CUDA
# params, then the fp32 baseline bench on CUDA. Results go to $OUT.
#
#   OUT=/some/dir bash scripts/device_check.sh
#
# Expects python3 with torch (a CUDA build), numpy, scipy, tqdm, pytest, pytest-timeout,
# hypothesis and matplotlib, and no network: torchao, torch-pruning, tensorly and tensorly-torch
# come as wheels in .whl/ (git-ignored). TensorFlow/Keras are not needed: collecting and running
# tests/core and tests/torch never imports them.
#
# The wheels, prepared from the repository root on a machine with network:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 --platform any -d .whl \
#     torchao==0.18.0 torch-pruning==1.6.1 tensorly==0.10.0 tensorly-torch==0.5.0
# (their own needs, numpy, scipy and torch, are on the GPU machine already).
#
# Variables: OUT (output folder; default a new temp dir), PYTHON (default python3),
# SKIP_WHEELS=1 (use what is importable already, e.g. to try the script on a CPU machine),
# TEST_TIMEOUT (seconds per test, default 120), PYTEST_ARGS (extra pytest arguments).
# Both steps always run; the exit status is non-zero when either failed.
set -u -o pipefail

PYTHON=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d)}
TEST_TIMEOUT=${TEST_TIMEOUT:-120}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.." || exit 2
START=$SECONDS

if [ "${SKIP_WHEELS:-0}" != 1 ]; then
    ls .whl/*.whl >/dev/null 2>&1 || { echo "device_check: no wheels in .whl/ (see the header of $0)" >&2; exit 2; }
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || { echo "device_check: installing the wheels failed" >&2; exit 2; }
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
COMPRESSLIB_CACHE=$(mktemp -d)
export COMPRESSLIB_CACHE CI=1 PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3 MPLBACKEND=Agg

echo "== machine"
nvidia-smi -L 2>&1 || echo "(no nvidia-smi)"
"$PYTHON" - <<'PY' 2>&1 | grep -v "^W[0-9]\|Failed to load\|Could not load" | tee "$OUT/versions.txt"
import sys, torch
print("python", sys.version.split()[0], "| torch", torch.__version__, "| cuda", torch.version.cuda,
      "| available", torch.cuda.is_available(),
      "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
for name in ("torchao", "torch_pruning", "tensorly", "tltorch", "numpy", "scipy"):
    try:
        print(f"  {name} {getattr(__import__(name), '__version__', '?')}")
    except Exception as exc:  # noqa: BLE001
        print(f"  {name} MISSING: {exc}")
PY

echo "== tests: tests/core tests/torch, CPU and CUDA params (log: $OUT/pytest_cuda.log)"
TIMEOUT_ARGS=(--timeout "$TEST_TIMEOUT")
"$PYTHON" -c "import pytest_timeout" 2>/dev/null || { echo "(pytest-timeout missing: no per-test timeout)"; TIMEOUT_ARGS=(); }
# shellcheck disable=SC2086  (PYTEST_ARGS is split on purpose)
"$PYTHON" -m pytest -q -p no:cacheprovider --import-mode=importlib tests/core tests/torch \
    -k "cuda or not cuda" "${TIMEOUT_ARGS[@]}" -rs --durations=15 --junitxml "$OUT/pytest_cuda.xml" \
    ${PYTEST_ARGS:-} 2>&1 | tee "$OUT/pytest_cuda.log"
TESTS_RC=$?
# the CUDA-parametrized tests: how many passed, failed, were skipped (from the JUnit XML)
CUDA_COUNTS=$("$PYTHON" - "$OUT/pytest_cuda.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET
try:
    cases = [c for c in ET.parse(sys.argv[1]).iter("testcase") if "cuda" in c.get("name", "")]
except Exception as exc:  # noqa: BLE001
    print(f"cuda tests: unknown ({exc})")
    raise SystemExit
bad = sum(c.find("failure") is not None or c.find("error") is not None for c in cases)
skipped = sum(c.find("skipped") is not None for c in cases)
print(f"cuda tests: {len(cases) - bad - skipped} passed, {bad} failed, {skipped} skipped")
PY
)

echo "== bench: fp32 baseline of the torch models on cuda"
if "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    "$PYTHON" bench/baseline.py --frameworks torch --device cuda --json "$OUT/baseline_cuda.json" 2>&1 \
        | grep -v "^W[0-9]\|Failed to load\|Could not load" | tee "$OUT/baseline_cuda.log"
    BENCH_RC=${PIPESTATUS[0]}
else
    echo "no CUDA: bench skipped" | tee "$OUT/baseline_cuda.log"
    BENCH_RC=3
fi

SUMMARY=$(grep -E "[0-9]+ (passed|failed|error)" "$OUT/pytest_cuda.log" | tail -1 | tr -d '=' | sed 's/^ *//;s/ *$//')
echo "device_check: tests rc=$TESTS_RC (${SUMMARY:-no pytest summary}; $CUDA_COUNTS); bench rc=$BENCH_RC;" \
     "$((SECONDS - START)) s; outputs in $OUT" | tee "$OUT/summary.txt"
[ "$TESTS_RC" = 0 ] && [ "$BENCH_RC" = 0 ]
