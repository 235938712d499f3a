"""Before/after timing of a change: the same bench rows from two built fastnn checkouts.

    python benchmarks/ab_checkouts.py OLD NEW --only conv_n64_32x64_16_k3p1 [--threads 1,2]
                                      [--rounds 3]

OLD and NEW are source trees with their extensions built in place (``python setup.py
build_ext --inplace``; e.g. ``git worktree add /tmp/old <commit>`` and a build there).
Each round runs ``python -m fastnn bench --only ... --threads ... --json`` once with
OLD and once with NEW first on ``sys.path`` (alternating, so drifts of this shared
machine hit both alike) and prints, per row, fastnn's time in each round and the ratio
OLD / NEW; torch's column is printed beside them as the run's common yardstick.  A
script, not a test: it takes minutes and leaves nothing behind but its printout.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def run_bench(tree, only, threads):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bench.json")
        env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
        subprocess.run([sys.executable, "-m", "fastnn", "bench", "--only", *only,
                        "--threads", threads, "--json", out],
                       env=env, check=True, stdout=subprocess.DEVNULL, cwd=tmp)
        with open(out) as f:
            return {(r["workload"], r["threads"]): r["columns_ms"] for r in json.load(f)["results"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--only", nargs="+", required=True, help="bench workload names")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    for tree in (args.old, args.new):
        if not os.path.isdir(os.path.join(tree, "fastnn")):
            ap.error(f"{tree}: expected a fastnn source tree (with a fastnn/ folder)")
    rows = {}
    for _ in range(args.rounds):
        for side, tree in (("old", args.old), ("new", args.new)):
            for key, cols in run_bench(tree, args.only, args.threads).items():
                rows.setdefault(key, {"old": [], "new": [], "torch": []})
                rows[key][side].append(cols["fastnn"])
                if "torch" in cols:
                    rows[key]["torch"].append(cols["torch"])
    for (name, thr), r in sorted(rows.items()):
        fmt = lambda v: " ".join(f"{t:.2f}" for t in v)
        ratio = [o / n for o, n in zip(r["old"], r["new"])]
        print(f"{name} {thr} thr: old {fmt(r['old'])} ms | new {fmt(r['new'])} ms | "
              f"old/new {fmt(ratio)} | torch {fmt(r['torch'])} ms")


if __name__ == "__main__":
    main()
