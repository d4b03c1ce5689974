#!/usr/bin/env bash
# Download every wheel of requirements.lock into ./wheels for CPython 3.11 on
# manylinux x86_64, the Python of the Debian base image. The image then installs
# them offline, so the build needs no TLS from inside a container (corporate
# proxies) and an air-gapped site can pre-seed ./wheels instead.
#
# Usage: fetch-wheels.sh PYTHON TORCH_CPU_INDEX_URL
set -euo pipefail
python=$1
torch_index=$2
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
mkdir -p wheels

platform_args=(--only-binary=:all: --python-version 3.11 --implementation cp)
for n in 5 12 17 24 27 28 31 34 35 36; do
  platform_args+=(--platform "manylinux_2_${n}_x86_64")
done
platform_args+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform linux_x86_64)

torch_pin=$(grep -E '^torch==' requirements.lock)
# torch+cpu is not on PyPI. Use whatever pip is configured with first (a local
# mirror or find-links), then PyTorch's own CPU index.
if ! "$python" -m pip download -q --no-deps "${platform_args[@]}" -d wheels "$torch_pin"; then
  "$python" -m pip download -q --no-deps "${platform_args[@]}" -d wheels \
    --index-url "$torch_index" "$torch_pin"
fi
"$python" -m pip download -q --no-deps "${platform_args[@]}" -d wheels \
  --find-links wheels -r requirements.lock
