#!/usr/bin/env bash
# One-shot check on a rented GPU machine without network, in under 9 minutes (at most ~8.5 with the defaults):
#   1. the wheels of scripts/device_wheels.txt installed from .whl/ (torchao, Keras 3 and what it imports, …);
#   2. the CUDA test parameters of both frameworks: tests/core and tests/torch (torch on CUDA) and
#      tests/keras/test_torch_backend.py (Keras 3 on the torch backend on CUDA; no TensorFlow anywhere),
#      each test under a per-test timeout, the whole step under TESTS_BUDGET seconds;
#   3. bench/gpu.py (every GPU config against bf16, chosen by Auto; eager, then torch.compile while
#      BENCH_BUDGET seconds last), its JSON written to $OUT/gpu.json after every group.
#
#   bash scripts/device_wheels.sh                  # once, where there is network: fills .whl/ (~21 MB)
#   OUT=/some/dir bash scripts/device_check.sh     # on the GPU machine (carry .whl beside the tree)
#
# Then, back here: cp $OUT/gpu.json book/data/gpu.json && python bench/gpu.py --update-page (the book's
# GPU page is generated from that JSON) and commit both.
#
# Expects python3 with a CUDA build of torch, numpy, scipy, tqdm, pytest, hypothesis and matplotlib.
# Variables: OUT (output folder; default a new temp dir), PYTHON (default python3), SITE (where the wheels are
# installed, default /tmp/site), SKIP_WHEELS=1 (use what
# is importable already, e.g. to try the script on a CPU machine), TEST_TIMEOUT (seconds per test, default
# 120), TESTS_BUDGET (seconds for all tests, default 240), TEST_SELECT (pytest -k expression, default "cuda":
# the CUDA parameters; "cuda or not cuda" runs the CPU ones too), BENCH_BUDGET (seconds after which the
# bench starts no new group, default 120; it is stopped at BENCH_BUDGET + 90), BENCH_ARGS (extra
# bench/gpu.py arguments), PYTEST_ARGS (extra pytest arguments).
# Every step runs; the exit status is non-zero when the tests or the bench failed.
set -u -o pipefail

PYTHON=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d)}
TEST_TIMEOUT=${TEST_TIMEOUT:-120}
TESTS_BUDGET=${TESTS_BUDGET:-240}
TEST_SELECT=${TEST_SELECT:-cuda}
BENCH_BUDGET=${BENCH_BUDGET:-120}
SITE=${SITE:-/tmp/site}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.." || exit 2
START=$SECONDS
FILTER='^W[0-9]\|Failed to load\|Could not load\|Enum subclass'

if [ "${SKIP_WHEELS:-0}" != 1 ]; then
    ls .whl/*.whl >/dev/null 2>&1 || { echo "device_check: no wheels in .whl/ (run scripts/device_wheels.sh)" >&2; exit 2; }
    # pip picks, per requirement, the wheel that fits this Python; nothing is fetched
    PIP=("$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --find-links .whl
         --target "$SITE")
    if ! "${PIP[@]}" -r scripts/device_wheels.txt; then  # e.g. another Python than the wheels': what fits
        echo "device_check: not every wheel fits this Python; installing them one by one" >&2
        grep -v '^ *#' scripts/device_wheels.txt | grep . | while read -r req; do
            "${PIP[@]}" "$req" 2>/dev/null || echo "device_check: no wheel for $req (its tests will fail)" >&2
        done
    fi
    export PYTHONPATH=$SITE:$PWD
else
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
COMPRESSLIB_CACHE=$(mktemp -d)
export COMPRESSLIB_CACHE CI=1 PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3 MPLBACKEND=Agg KERAS_BACKEND=torch

echo "== machine"
nvidia-smi -L 2>&1 || echo "(no nvidia-smi)"
"$PYTHON" - <<'PY' 2>&1 | grep -v "$FILTER" | tee "$OUT/versions.txt"
import sys, torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
cap = ".".join(map(str, torch.cuda.get_device_capability(0))) if torch.cuda.is_available() else "-"
print("python", sys.version.split()[0], "| torch", torch.__version__, "| cuda", torch.version.cuda,
      "| available", torch.cuda.is_available(), "|", gpu, "| capability", cap)
for name in ("torchao", "keras", "torch_pruning", "tensorly", "tltorch", "numpy", "scipy", "pytest_timeout"):
    try:
        print(f"  {name} {getattr(__import__(name), '__version__', '?')}")
    except Exception as exc:  # noqa: BLE001
        print(f"  {name} MISSING: {exc}")
try:
    import tensorflow  # noqa: F401
    print("  tensorflow present (not used: Keras runs on the torch backend here)")
except ImportError:
    print("  tensorflow absent (as expected)")
PY

echo "== tests: -k '$TEST_SELECT' of tests/core tests/torch tests/keras/test_torch_backend.py (log: $OUT/pytest_cuda.log)"
TIMEOUT_ARGS=(--timeout "$TEST_TIMEOUT")
"$PYTHON" -c "import pytest_timeout" 2>/dev/null || { echo "(pytest-timeout missing: no per-test timeout)"; TIMEOUT_ARGS=(); }
# shellcheck disable=SC2086  (PYTEST_ARGS is split on purpose)
timeout --signal=INT --kill-after=20 "$TESTS_BUDGET" \
    "$PYTHON" -m pytest -q -p no:cacheprovider --import-mode=importlib tests/core tests/torch \
    tests/keras/test_torch_backend.py -k "$TEST_SELECT" "${TIMEOUT_ARGS[@]}" -rs --durations=15 \
    --junitxml "$OUT/pytest_cuda.xml" ${PYTEST_ARGS:-} 2>&1 | grep -v "$FILTER" | tee "$OUT/pytest_cuda.log"
TESTS_RC=${PIPESTATUS[0]}
[ "$TESTS_RC" = 124 ] && echo "device_check: tests stopped after TESTS_BUDGET=$TESTS_BUDGET s" | tee -a "$OUT/pytest_cuda.log"
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
keras = sum("torch_backend" in (c.get("classname", "") + c.get("file", "")) for c in cases)
print(f"cuda tests: {len(cases) - bad - skipped} passed, {bad} failed, {skipped} skipped ({keras} Keras-on-torch)")
PY
)

echo "== bench: bench/gpu.py (JSON: $OUT/gpu.json)"
if "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    # shellcheck disable=SC2086
    timeout --signal=INT --kill-after=20 "$((BENCH_BUDGET + 90))" \
        "$PYTHON" bench/gpu.py --json "$OUT/gpu.json" --time-budget-s "$BENCH_BUDGET" ${BENCH_ARGS:-} 2>&1 \
        | grep -v "$FILTER" | tee "$OUT/gpu_bench.log"
    BENCH_RC=${PIPESTATUS[0]}
else
    echo "no CUDA: bench skipped" | tee "$OUT/gpu_bench.log"
    BENCH_RC=3
fi

SUMMARY=$(grep -E "[0-9]+ (passed|failed|error)" "$OUT/pytest_cuda.log" | tail -1 | tr -d '=' | sed 's/^ *//;s/ *$//')
echo "device_check: tests rc=$TESTS_RC (${SUMMARY:-no pytest summary}; $CUDA_COUNTS); bench rc=$BENCH_RC" \
     "($([ -f "$OUT/gpu.json" ] && echo "gpu.json written" || echo "no gpu.json")); $((SECONDS - START)) s;" \
     "outputs in $OUT" | tee "$OUT/summary.txt"
[ "$TESTS_RC" = 0 ] && [ "$BENCH_RC" = 0 ]
