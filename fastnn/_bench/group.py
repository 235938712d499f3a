"""Implementations that run as a group of ranks (data-parallel workloads).

:class:`GroupImpl` starts ``ranks`` processes, 1 thread each: MPI ranks under the
``mpiexec`` of this environment (backend "mpi"), or torch.distributed ranks on the
gloo backend over 127.0.0.1 (backend "gloo").  Rank 0 reads one JSON command per
line on stdin, broadcasts it to the others, and answers on stdout; the time of a
``run`` is measured on rank 0 between a barrier and the end of the calls.

``python -m fastnn._bench.group FACTORY NAME BACKEND`` is the rank side.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from .harness import Impl, Unavailable

__all__ = ["GroupImpl", "mpiexec"]

_RANK_ENV = {"FASTNN_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
             "MKL_NUM_THREADS": "1"}


def mpiexec():
    """The mpiexec beside this Python (the mpich wheel's), else the one on PATH, else None."""
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GroupImpl(Impl):
    """One implementation run by ``ranks`` processes of 1 thread each (see the module doc)."""

    def __init__(self, factory, name, ranks, backend):
        import importlib.util

        env = dict(os.environ, **_RANK_ENV, PYTHONUNBUFFERED="1")
        args = [sys.executable, "-m", "fastnn._bench.group", json.dumps(list(factory)), name, backend]
        self._procs = []
        if backend == "mpi":
            if importlib.util.find_spec("mpi4py") is None or mpiexec() is None:
                raise Unavailable('mpi4py and mpiexec are not installed (pip install "fastnn-cpu[mpi]")')
            self._procs.append(subprocess.Popen([mpiexec(), "-n", str(ranks), *args], stdin=subprocess.PIPE,
                                                stdout=subprocess.PIPE, text=True, env=env,
                                                start_new_session=True))
        elif backend == "gloo":
            if importlib.util.find_spec("torch") is None:
                raise Unavailable("PyTorch is not installed")
            env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE=str(ranks))
            for r in range(ranks):
                pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE} if r == 0 else {
                    "stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL}
                self._procs.append(subprocess.Popen(args, text=True, env=dict(env, RANK=str(r)),
                                                    start_new_session=True, **pipes))
        else:
            raise ValueError(f"backend must be 'mpi' or 'gloo'. Received: {backend!r}")
        self._lead = self._procs[0]
        status, payload = self._reply()
        if status != "ok":
            self.close()
            if status == "unavailable":
                raise Unavailable(payload)
            raise RuntimeError(f"{name} ({ranks} ranks, {backend}) could not start: {payload}")
        super().__init__(lambda: self._call("run", 1, 0), lambda: self._call("result"), label=name)

    def _reply(self):
        line = self._lead.stdout.readline()
        if not line:
            return "error", f"the ranks exited (code {self._lead.poll()})"
        return json.loads(line)

    def _call(self, *msg):
        self._lead.stdin.write(json.dumps(msg) + "\n")
        self._lead.stdin.flush()
        status, payload = self._reply()
        if status != "ok":
            raise RuntimeError(f"{self.label} (ranks): {payload}")
        return payload

    def run_timed(self, times=1, warm=0):
        self.calls += warm + times
        return self._call("run", times, warm)

    def close(self):
        procs, self._procs = getattr(self, "_procs", []), []
        for p in procs:
            try:
                if p.stdin:
                    p.stdin.close()
            except OSError:
                pass
        deadline = time.monotonic() + 10
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, 9)
                p.wait()

    def __del__(self):
        self.close()


class _MPI:
    def __init__(self):
        from fastnn import distributed

        self.comm = distributed.init()
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def bcast(self, obj):
        # Point-to-point with a sleeping poll: a blocked MPI collective busy-waits and
        # would take a core from what the parent times between two commands.
        if self.rank == 0:
            for r in range(1, self.size):
                self.comm.send(obj, dest=r, tag=7)
            return obj
        req = self.comm.irecv(source=0, tag=7)
        while True:
            done, msg = req.test()
            if done:
                return msg
            time.sleep(0.002)

    def barrier(self):
        self.comm.Barrier()


class _Gloo:
    def __init__(self):
        from datetime import timedelta

        import torch
        import torch.distributed as td

        torch.set_num_threads(1)
        td.init_process_group("gloo", timeout=timedelta(seconds=120))
        self.td = td
        self.rank, self.size = td.get_rank(), td.get_world_size()

    def bcast(self, obj):
        box = [obj]
        self.td.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self):
        self.td.barrier()


def _serve(factory, name, backend):
    from .registry import make_workload

    group = _MPI() if backend == "mpi" else _Gloo()
    lead = group.rank == 0

    def answer(status, payload):
        if lead:
            sys.stdout.write(json.dumps([status, payload]) + "\n")
            sys.stdout.flush()
    try:
        impl = make_workload(*factory).make_rank(name, group)
    except Unavailable as exc:
        answer("unavailable", str(exc))
        return
    answer("ok", None)
    while True:
        line = sys.stdin.readline() if lead else None
        msg = group.bcast(json.loads(line) if line else ["close"])
        if msg[0] == "close":
            return
        if msg[0] == "run":
            for _ in range(msg[2]):
                impl.run()
            group.barrier()
            t0 = time.perf_counter()
            for _ in range(msg[1]):
                impl.run()
            answer("ok", time.perf_counter() - t0)
        elif msg[0] == "result":
            answer("ok", impl.result())


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]), sys.argv[2], sys.argv[3])
