"""The bench's outputs: the ratio table, the PNG chart and the environment record."""
import os
import platform
import sys

import numpy as np

from .harness import COLUMNS, require_sklearn, torch_module

__all__ = ["fmt_ms", "format_table", "save_png", "environment"]


def fmt_ms(v):
    if v is None:
        return "-"
    return f"{v:.0f}" if v >= 100 else f"{v:.2f}" if v < 10 else f"{v:.1f}"


def format_table(records):
    head = ["workload", "thr", "fastnn ms", "numpy ms", "torch ms", "sklearn ms",
            "vs numpy", "vs torch", "vs sklearn", "notes"]
    rows = []
    for r in records:
        c, s = r["columns_ms"], r["speedup"]
        notes = r["extra"]
        if r["check"] != "ok":
            notes = "CHECK FAILED; " + notes
        rows.append([r["title"], str(r["threads"])]
                    + [fmt_ms(c.get(k)) for k in COLUMNS]
                    + [f"{s[k]:.2f}x" if k in s else "-" for k in ("numpy", "torch", "sklearn")]
                    + [notes])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h)
              for i, h in enumerate(head)]
    widths[-1] = len(head[-1])

    def line(cells):
        out = []
        for i, (cell, w) in enumerate(zip(cells, widths)):
            out.append(cell.ljust(w) if i in (0, len(cells) - 1) else cell.rjust(w))
        return "  ".join(out).rstrip()
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(head), sep] + [line(row) for row in rows])


def save_png(records, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("--png: matplotlib is not installed; "
              "install it with `pip install matplotlib` (or fastnn-cpu[bench]).", file=sys.stderr)
        return False
    labels = [f"{r['workload']} ({r['threads']} thr)" for r in records]
    vs = [k for k in ("numpy", "torch", "sklearn") if any(k in r["speedup"] for r in records)]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(records) + 2), 4.5))
    width = 0.8 / max(1, len(vs))
    for j, k in enumerate(vs):
        xs = [i + (j - (len(vs) - 1) / 2) * width for i in range(len(records))]
        ax.bar(xs, [r["speedup"].get(k, 0.0) for r in records], width, label=f"vs {k}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(records)))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("fastnn speed-up (x, higher is better)")
    ax.set_title("fastnn speed-up, same process, same thread count")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def environment():
    from fastnn._engine.config import show_config

    env = {"python": sys.version.split()[0], "numpy": np.__version__,
           "machine": platform.machine(), "cpu_count": os.cpu_count(),
           "processor": platform.processor()}
    try:
        cfg = show_config()
        env["fastnn"] = {k: v for k, v in cfg.items() if k != "blas"}
    except Exception as exc:  # noqa: BLE001 - environment info only
        env["fastnn"] = repr(exc)
    torch = torch_module()
    if torch is not None:
        env["torch"] = torch.__version__
    if require_sklearn(required=False):
        import sklearn
        env["sklearn"] = sklearn.__version__
    return env
