"""The command line: ``python -m fastnn`` [config | demo | bench]."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, timeout=300):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "fastnn", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def test_config_prints_build_facts():
    r = _run()
    assert r.returncode == 0, r.stderr
    assert "OpenMP" in r.stdout and "threads" in r.stdout and "BLAS" in r.stdout


def test_demo_short_run_reports_accuracy_time_and_speedup():
    pytest.importorskip("sklearn")
    r = _run("demo", "--epochs", "3", "--threads", "1")
    assert r.returncode == 0, r.stderr
    out = r.stdout.lower()
    assert "accuracy" in out and "speed-up" in out
    # the reported fastnn accuracy is a real number in (0, 1]
    line = next(l for l in r.stdout.splitlines() if "fastnn" in l and "accuracy" in l)
    acc = float(line.split("accuracy")[1].split()[0])
    assert 0.5 < acc <= 1.0


def test_demo_cnn_short_run():
    pytest.importorskip("sklearn")
    r = _run("demo", "--model", "cnn", "--epochs", "2", "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert "CNN conv3x3" in r.stdout and "speed-up" in r.stdout
    line = next(l for l in r.stdout.splitlines() if "fastnn" in l and "accuracy" in l)
    assert 0.5 < float(line.split("accuracy")[1].split()[0]) <= 1.0


def test_bench_quick_conv_and_lenet_check_against_numpy():
    r = _run("bench", "--quick", "--threads", "1", "--only", "conv_n8_3x8", "lenet")
    assert r.returncode == 0, r.stderr
    assert "FAILED" not in r.stdout
    assert "Conv2d fwd+bwd" in r.stdout and "LeNet-5 training step" in r.stdout


def test_bench_quick_writes_json(tmp_path):
    path = tmp_path / "bench.json"
    r = _run("bench", "--quick", "--threads", "1", "--only", "adam", "--json", str(path))
    assert r.returncode == 0, r.stderr
    data = json.loads(path.read_text())
    assert data, "bench wrote an empty JSON"
    assert "adam" in r.stdout.lower()


def test_unknown_subcommand_fails_cleanly():
    r = _run("nonsense")
    assert r.returncode != 0
    assert "usage" in (r.stdout + r.stderr).lower()
