"""``python -m fastnn bench``: the ratio table of the harness's workloads."""
import argparse
import gc
import json
import os
import sys
import time

from .harness import Unavailable, build_impls, close_impls, run_workload
from .registry import (FAMILIES, all_workload_names, extra_workload_names, make_workload,
                       select, workload_names)
from .report import environment, fmt_ms, format_table, save_png

__all__ = ["main"]


def _parse_threads(text):
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of positive integers. Received: {text!r}")
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of positive integers. Received: {text!r}")
    return list(dict.fromkeys(out))


def main(argv=None):
    cpus = os.cpu_count() or 1
    default_threads = ",".join(str(t) for t in dict.fromkeys([1, cpus]))
    parser = argparse.ArgumentParser(
        prog="python -m fastnn bench",
        description="Time fastnn against NumPy baselines (and PyTorch / scikit-learn "
                    "when installed) in one process, interleaved, at fixed thread counts, "
                    "and print the ratio table.")
    parser.add_argument("--threads", type=_parse_threads, default=_parse_threads(default_threads),
                        help=f"comma-separated thread counts (default {default_threads})")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few repeats (a smoke run of a few seconds)")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="workloads to run: names, prefixes or families ("
                             + ", ".join(FAMILIES) + "); default: "
                             + ", ".join(workload_names()))
    parser.add_argument("--all", action="store_true",
                        help="also run the extra workloads: " + ", ".join(extra_workload_names()))
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed rounds per workload (default: per workload)")
    parser.add_argument("--png", metavar="PATH", help="save a bar chart of the speed-ups")
    parser.add_argument("--json", metavar="PATH", help="save all timings as JSON")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be a positive integer. Received: {args.repeats}")

    names = all_workload_names(args.quick) if args.all else workload_names(args.quick)
    if args.only:
        # "--only norm,rnn" works like "--only norm rnn", as --threads takes "1,2"
        names, unknown = select([p for a in args.only for p in a.split(",") if p], args.quick)
        if unknown:
            parser.error(f"unknown workload(s) {unknown}; expected names, prefixes or families "
                         f"({', '.join(FAMILIES)}) of {all_workload_names(args.quick)}")

    def log(msg):
        print(msg, flush=True)

    env = environment()
    log(f"fastnn bench: {len(names)} workload(s), threads {args.threads}, "
        f"{'quick' if args.quick else 'full'} sizes; numpy {env['numpy']}"
        + (f", torch {env['torch']}" if "torch" in env else ", torch not installed")
        + (f", scikit-learn {env['sklearn']}" if "sklearn" in env
           else ", scikit-learn not installed"))
    records = []
    t_start = time.perf_counter()
    for i, name in enumerate(names, 1):
        t0 = time.perf_counter()
        try:
            wl = make_workload(name, args.quick)
        except Unavailable as exc:
            log(f"[{i}/{len(names)}] {name}: skipped ({exc})")
            continue
        impls, _ = build_impls(wl, log)
        try:
            for n in args.threads:
                rec = run_workload(wl, impls, n, repeats=args.repeats)
                records.append(rec)
                cols = rec["columns_ms"]
                log(f"[{i}/{len(names)}] {wl.title}, {n} thread(s): "
                    + ", ".join(f"{k} {fmt_ms(v)} ms" for k, v in cols.items())
                    + ("" if rec["check"] == "ok" else "  << " + rec["check"]))
        finally:
            close_impls(impls.values())
        del impls, wl
        gc.collect()
        log(f"    ({time.perf_counter() - t0:.1f} s)")
    log(f"\nfastnn speed-ups (median of repeats; higher is better), "
        f"total {time.perf_counter() - t_start:.0f} s:\n")
    print(format_table(records))
    failed = [r for r in records if r["check"] != "ok"]
    for r in failed:
        print(f"\n{r['title']} ({r['threads']} thr): {r['check']}", file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "quick": args.quick, "results": records}, f,
                      indent=1, default=float)
        print(f"\nwrote {args.json}")
    if args.png and save_png(records, args.png):
        print(f"wrote {args.png}")
    return 1 if failed else 0
