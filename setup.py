"""Build script for fastnn's compiled kernels.

The Cython modules in ``fastnn/_kernels`` (plus the plain C inner loops in
``src_c``) are compiled with ``-O3 -fno-math-errno``.  OpenMP is chosen after a
test compile *and link* in the ``build_ext`` subclass below (the way pykdtree
does it); ``FASTNN_USE_OPENMP=0`` forces a serial build, and a compiler without
OpenMP gives a serial build with a printed warning.  ``FASTNN_DEBUG=1`` turns
Cython's bounds checking back on.  ``FASTNN_NO_CLONES=1`` builds the C loops for
the baseline x86-64 level only (no AVX2/AVX-512 target_clones).
``FASTNN_ONLY=_conv`` (comma-separated) rebuilds only the named modules.
"""
import glob
import os
import shutil
import sys
import tempfile
import textwrap

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
DEBUG = os.environ.get("FASTNN_DEBUG", "0") == "1"

# Never -ffast-math (breaks NaN checks, and flushes denormals for the whole
# process when linked into a .so) and never -march=native (not portable).
BASE_CFLAGS = ["-O3", "-fno-math-errno", "-std=c99"] if not DEBUG else ["-O0", "-g", "-std=c99"]

OPENMP_TEST = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d %d\\n", n, omp_get_max_threads());
        return 0;
    }
    """
)


def _openmp_flags(compiler):
    """Return (compile_args, link_args) for OpenMP, or None if unavailable."""
    if os.environ.get("FASTNN_USE_OPENMP", "1").strip().lower() in ("0", "false", "no", "off"):
        print("fastnn: FASTNN_USE_OPENMP=0, building serial kernels")
        return None
    candidates = [(["-fopenmp"], ["-fopenmp"]), (["-Xpreprocessor", "-fopenmp"], ["-lomp"])]
    tmp = tempfile.mkdtemp(prefix="fastnn_omp_")
    try:
        src = os.path.join(tmp, "omp_test.c")
        with open(src, "w") as f:
            f.write(OPENMP_TEST)
        for cflags, lflags in candidates:
            try:
                objs = compiler.compile([src], output_dir=tmp, extra_postargs=cflags)
                compiler.link_executable(objs, "omp_test", output_dir=tmp, extra_postargs=lflags)
            except Exception:  # noqa: BLE001 - any compile/link failure means "no"
                continue
            return cflags, lflags
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return None


class BuildExt(build_ext):
    """build_ext that decides OpenMP after cythonize() made the Extension objects."""

    def build_extensions(self):
        flags = _openmp_flags(self.compiler)
        if flags is None:
            if os.environ.get("FASTNN_USE_OPENMP", "1") != "0":
                print(
                    "WARNING: fastnn: the C compiler has no working OpenMP; "
                    "building serial kernels (fastnn will run on one thread).",
                    file=sys.stderr,
                )
        for ext in self.extensions:
            ext.extra_compile_args = list(BASE_CFLAGS)
            ext.extra_link_args = []
            if flags is not None:
                ext.extra_compile_args += flags[0]
                ext.extra_link_args += flags[1]
        super().build_extensions()


KERNELS = {
    # module name: extra plain-C sources
    "_blas": [],
    "_common": ["src_c/fnn_optim.c"],
    "_dense": ["src_c/fnn_dense.c"],
    "_loss": ["src_c/fnn_dense.c"],
    "_optim": ["src_c/fnn_optim.c"],
    "_data": [],
    "_conv": ["src_c/fnn_conv.c", "src_c/fnn_wino.c"],
    "_norm": ["src_c/fnn_norm.c"],
    "_rnn": ["src_c/fnn_rnn.c"],
    "_sgd": [],
}

# FASTNN_ONLY=_norm,_rnn builds just those modules (for quick rebuilds while
# working on one kernel family; a normal build compiles all of them).
_only = [n.strip() for n in os.environ.get("FASTNN_ONLY", "").split(",") if n.strip()]
if _only:
    unknown = sorted(set(_only) - set(KERNELS))
    if unknown:
        sys.exit(f"FASTNN_ONLY names unknown kernel modules {unknown}; known: {sorted(KERNELS)}")
    KERNELS = {k: v for k, v in KERNELS.items() if k in _only}

extensions = [
    Extension(
        f"fastnn._kernels.{name}",
        [f"fastnn/_kernels/{name}.pyx"] + c_sources,
        include_dirs=[np.get_include(), "src_c"],
        depends=sorted(glob.glob(os.path.join("src_c", "*.h"))),  # rebuild when a header changes
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
        + ([("FNN_NO_CLONES", "1")] if os.environ.get("FASTNN_NO_CLONES") == "1" else []),
    )
    for name, c_sources in KERNELS.items()
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": DEBUG,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": DEBUG,
        },
    ),
    cmdclass={"build_ext": BuildExt},
)
