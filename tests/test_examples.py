"""Every script in examples/ runs to completion (in a subprocess) and prints its result.

Each example is run with the interpreter running the tests and the repository
root on PYTHONPATH.  An example that needs an optional package declares it with a
comment line ``# requires: sklearn`` (comma-separated import names); it is skipped
when one of them is missing.  For some examples a key line of the output is checked.
"""
import glob
import importlib.util
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "*.py")))
TIMEOUT_S = 120

# example file name -> regular expressions its output must match
EXPECTED = {
    "one_hot_table.py": [
        r"encoded shape: \(10, 6\)",
        r"feature names: \['Home Owner_No', 'Home Owner_Yes', 'Marital Status_Divorced', "
        r"'Marital Status_Married', 'Marital Status_Single', 'Annual Income'\]",
        r"\['Yes', 'Widowed', 150\.0\] -> \[0\.0, 1\.0, 0\.0, 0\.0, 0\.0, 150\.0\]",
        r"training accuracy: (0\.[7-9]\d|1\.00)",
    ],
    "bias_variance.py": [
        r"degree 1 underfits: bias\^2 is \d+x that of degree 9",
        r"degree 9 overfits: variance is \d+x that of degree 1",
        r"lowest expected error: degree 3",
    ],
    "sklearn_dropin.py": [
        r"scikit-learn: test accuracy 0\.9\d+",
        r"fastnn: test accuracy 0\.9\d+",
        r"fastnn fit is \d+\.\dx (faster|slower)",
    ],
    "save_resume.py": [
        r"interrupted in epoch 4; the checkpoint holds 3 finished epochs",
        r"resumed to epoch 8: weights bit-identical to an uninterrupted run: True, history identical: True",
        r"log\.csv has 8 rows",
        r"saved and reloaded: same predictions: True",
        r"exported to ONNX|ONNX export skipped",
    ],
    "saddle_point.py": [
        r"kind: saddle; eigenvalues: \[-2\.0, 2\.0\]",
        r"escape direction: \[0\.707107, 0\.707107\]",
        r"model_hessian of the fastnn model agrees: True \(kind: saddle\)",
        r"gradient descent from \(0, 0\): w = \[0\.0, 0\.0\], L = 1\.0000 \(stuck\)",
        r"gradient descent from 0\.01 \* escape direction: w = \[1\.0, 1\.0\]",
    ],
}


def _requirements(path):
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    reqs = []
    for m in re.finditer(r"^\s*#\s*requires:\s*(.+)$", text, flags=re.MULTILINE):
        reqs += [r.strip() for r in m.group(1).split(",") if r.strip()]
    return reqs


def test_examples_exist():
    names = {os.path.basename(p) for p in EXAMPLES}
    assert set(EXPECTED) <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[os.path.basename(p) for p in EXAMPLES])
def test_example_runs(path):
    for mod in _requirements(path):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{os.path.basename(path)} requires {mod}, which is not installed")
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("FASTNN_NUM_THREADS", "1")
    proc = subprocess.run([sys.executable, path], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)
    assert proc.returncode == 0, f"{path} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert proc.stdout.strip(), f"{path} printed nothing"
    for pattern in EXPECTED.get(os.path.basename(path), []):
        assert re.search(pattern, proc.stdout), f"{pattern!r} not in the output of {path}:\n{proc.stdout}"
