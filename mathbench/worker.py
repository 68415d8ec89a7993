"""``python -m mathbench.worker``: one timing process of a kernel run (started by ``bench.run``).

Reads a plan as JSON on stdin, with the parent's sources_version (it refuses to time code that
changed since), loads its kernels (from the disk cache the parent filled), times every (dtype, size)
group in run order and writes one JSON line per group on stdout: the group, how many kernels it
had to compile (none if the cache served), and per kernel its key, repeats and per-round samples
(seconds per call). Timing in several fresh processes is what lets the parent's intervals include
the spread between runs.
"""
from __future__ import annotations

import json
import sys


def main() -> int:
    from . import bench

    out, sys.stdout = sys.stdout, sys.stderr  # stray prints must not corrupt the protocol
    job = json.load(sys.stdin)
    if job["sources"] != bench.sources_version():
        sys.exit("the mathbench sources changed since this run started (an edit or a checkout); "
                 "run it again")
    plan = bench.Plan(**job["plan"])
    ks = bench.compile_all(plan)
    compiled = sum(1 for k in ks if k.backend == "numba" and not k.cache_hit)  # 0 when the parent's cache served
    for dtype, size, ms in bench.time_groups(plan, ks):
        timings = [[list(key), m.repeats, m.samples.tolist()] for key, m in ms.items()]
        out.write(json.dumps({"dtype": dtype, "size": size, "compiled": compiled, "timings": timings}) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
