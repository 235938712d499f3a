"""``python -m fastnn``: show the build configuration; ``demo`` and ``bench`` subcommands.

    python -m fastnn                 # fastnn.show_config(), readable
    python -m fastnn demo [...]      # train on the digits, compare with NumPy (fastnn._demo)
    python -m fastnn bench [...]     # benchmark ratio table (fastnn._bench.cli)
"""
import sys

USAGE = """\
usage: python -m fastnn [config | demo [options] | bench [options]]

  (no argument), config   print fastnn's build and runtime configuration
  demo                    train an MLP on scikit-learn's handwritten digits and compare
                          with a NumPy implementation of the same run (--help for options)
  bench                   run the benchmarks and print the ratio table (--help for options)
"""


def _format_blas(blas):
    if not blas:
        return ["none found"]
    if isinstance(blas, dict):
        blas = [blas]
    if not isinstance(blas, (list, tuple)):
        return [str(blas)]
    lines = []
    for info in blas:
        if not isinstance(info, dict):
            lines.append(str(info))
            continue
        name = info.get("internal_api") or info.get("user_api") or "?"
        parts = [f"{name} {info.get('version') or ''}".strip()]
        if info.get("threading_layer"):
            parts.append(f"{info['threading_layer']} threading")
        if info.get("num_threads") is not None:
            parts.append(f"{info['num_threads']} threads")
        line = ", ".join(parts)
        if info.get("filepath"):
            line += f"  ({info['filepath']})"
        lines.append(line)
    return lines


def show_config():
    from fastnn._engine.config import show_config as config
    from fastnn._version import __version__

    cfg = config()
    if not isinstance(cfg, dict):      # show_config printed it itself
        return 0
    lines = [f"fastnn {cfg.get('version', __version__)}"]
    known = {"version", "openmp", "num_threads", "simd", "blas"}
    openmp = cfg.get("openmp")
    lines.append(f"  OpenMP       {'yes' if openmp else 'no (serial kernels)'}")
    lines.append(f"  threads      {cfg.get('num_threads')}")
    lines.append(f"  SIMD         {cfg.get('simd')}")
    blas = _format_blas(cfg.get("blas"))
    lines.append(f"  BLAS         {blas[0]}")
    lines.extend(f"               {b}" for b in blas[1:])
    for key, value in cfg.items():
        if key not in known:
            lines.append(f"  {key:<12} {value}")
    print("\n".join(lines))
    return 0


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] == "config":
        return show_config()
    cmd, rest = argv[0], argv[1:]
    if cmd == "demo":
        from fastnn._demo import main as demo_main
        return demo_main(rest)
    if cmd == "bench":
        from fastnn._bench.cli import main as bench_main
        return bench_main(rest)
    if cmd in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    print(USAGE, end="", file=sys.stderr)
    print(f"python -m fastnn: unknown command {cmd!r}; expected config, demo or bench",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
