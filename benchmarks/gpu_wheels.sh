#!/usr/bin/env bash
# Wheels that benchmarks/bench_gpu.py needs on the GPU machine, into .whl/ (git-ignored; never commit them).
#
# The GPU machine (Python 3.12, x86-64, no network) has torch, timm, torchvision, pandas, seaborn, pyyaml, numpy,
# pillow, tqdm and typing-extensions, but not fvcore (ablate.costs counts MACs with it). fvcore needs iopath, yacs,
# termcolor and tabulate; iopath needs portalocker. The machine lists tabulate and portalocker too, but carrying
# known versions costs ~170 KB and guarantees pandas' to_markdown (tabulate >= 0.9). fvcore and iopath are
# published as source only: they are pure Python, so the wheels built here (py3-none-any) install there as they are.
# Ray, Optuna and scikit-learn are not needed: the bench imports none of them (tests/test_bench_gpu.py checks).
#
#   bash benchmarks/gpu_wheels.sh            # fills .whl/ and checks that the wheels install and import offline
#
# Then, on the device (carry .whl), from the repository root, as one command:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
#     .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD && PYTHONUNBUFFERED=1 python3 benchmarks/bench_gpu.py \
#     --out $OUT/bench_gpu.md
set -euo pipefail
cd "$(dirname "$0")/.."

BINARY=(yacs==0.1.8 termcolor==3.3.0 tabulate==0.10.0 portalocker==4.4.2)
SOURCE_ONLY=(fvcore==0.1.5.post20221221 iopath==0.1.10)
PLATFORMS=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64)

grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: "${PLATFORMS[@]}" -d .whl "${BINARY[@]}"
python3 -m pip wheel -q --no-deps -w .whl "${SOURCE_ONLY[@]}"

# one version of each package, or the device's install stops
dupes=$(ls .whl/*.whl | xargs -n1 basename | cut -d- -f1 | tr 'A-Z_' 'a-z-' | sort | uniq -d)
[ -z "$dupes" ] || { echo "error: several versions in .whl/ of: $dupes (remove the old ones)" >&2; exit 1; }
for wheel in .whl/*.whl; do
    case "$wheel" in *-py3-none-any.whl|*-py2.py3-none-any.whl) ;; *) echo "error: $wheel is not pure Python" >&2; exit 1;; esac
done

# the device's install line, offline, into a scratch folder; then fvcore must import from it
site=$(mktemp -d)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
PYTHONPATH="$site" python3 -c "import fvcore.nn, iopath, yacs, termcolor, tabulate, portalocker; print('fvcore.nn imports from', fvcore.nn.__file__)"
rm -rf "$site"
du -ch .whl/*.whl
