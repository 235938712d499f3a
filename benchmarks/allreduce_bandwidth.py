"""Allreduce latency and bandwidth of this machine's MPI, for the scaling model of
data-parallel fit: ``mpiexec -n 2 python benchmarks/allreduce_bandwidth.py``.

Prints, per message size, the median time of an in-place float32 Allreduce(SUM)
(the call fit makes per step) and the bus bandwidth 2 (p - 1) / p * bytes / time.
"""
import statistics
import time

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
p = comm.Get_size()
if comm.Get_rank() == 0:
    print(f"{p} ranks; bytes, median us, bus GB/s")
for n in (256, 4096, 65536, 235146, 1 << 20, 1 << 22):
    buf = np.ones(n, np.float32)
    times = []
    for i in range(60):
        comm.Barrier()
        t0 = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        if i >= 10:
            times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    if comm.Get_rank() == 0:
        print(f"{buf.nbytes:>10d}  {t * 1e6:9.1f}  {2 * (p - 1) / p * buf.nbytes / t / 1e9:6.2f}")
