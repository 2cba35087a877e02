#!/usr/bin/env bash
# Gather the wheels scripts/device_check.sh installs offline into .whl/ (git-ignored), for the GPU
# machine's Python (default 3.12; PYVERS="3.11 3.12" for several). Run from anywhere, with network or a
# PyPI mirror; carry .whl/ to the GPU machine beside the working tree.
#
#   bash scripts/device_wheels.sh            # then: du -sh .whl   (about 25 MB)
set -eu -o pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
mkdir -p .whl
for v in ${PYVERS:-3.12}; do
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$v" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform any -d .whl -r scripts/device_wheels.txt
done
ls .whl
du -sh .whl
