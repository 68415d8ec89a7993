"""The accuracy study on Dask (``python -m lstm_numba accuracy --scheduler ADDR`` or ``--workers N``).

One task per unit (shape x seed) runs ``study.run_unit``, the function the local path runs, so both
paths compute the same rows; the driver writes each finished unit through the study's own writer
(resume, de-duplication and the progress bar are the local path's). Each row records the process and
machine that trained it (``study.where``). A task whose worker dies is rescheduled by the scheduler
(up to its ``allowed-failures``); a task that raises is retried ``RETRIES`` times; a unit finished
twice is written once. The study times nothing, so nothing measured depends on where a unit ran.

Dask (``pip install 'mathbench[dask]'``) is imported only here, and this module only by a cluster
run: the local study does not need it.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Iterator

from mathbench import UsageError, threads

CONNECT_TIMEOUT = 5.0  # seconds: a scheduler that does not answer by then is reported, not waited for
RETRIES = 2  # re-runs of a task that raised (worker deaths are the scheduler's allowed-failures)
INSTALL = "pip install 'mathbench[dask]'"


class OtherCode(RuntimeError):
    """A worker runs other code than the driver: its rows could not be mixed with the driver's."""


def _distributed():
    try:
        import distributed
    except ImportError:
        raise UsageError(f"--scheduler/--workers need Dask: {INSTALL}") from None
    return distributed


async def _handshake(address: str, timeout: float) -> None:
    from distributed.comm import connect

    comm = await connect(address, timeout=timeout)
    await comm.close()


def _check_reachable(address: str, timeout: float) -> None:
    """One bounded connect-and-handshake: Dask's own client waits for a handshake without a time
    limit (a port that accepts and stays silent would hang the run), and misreads a port that
    answers with something else."""
    try:
        asyncio.run(asyncio.wait_for(_handshake(address, timeout), timeout))
    except ValueError as e:  # malformed address or unknown scheme
        raise UsageError(f"--scheduler {address}: {e}") from None
    except (asyncio.TimeoutError, OSError) as e:
        why = str(e).splitlines()[0] if str(e) else f"no answer within {timeout:g} s"
        raise UsageError(f"--scheduler {address}: no Dask scheduler reachable ({why})") from None
    except Exception as e:  # something answered, but not Dask's protocol
        raise UsageError(f"--scheduler {address}: not a Dask scheduler ({type(e).__name__})") from None


@contextlib.contextmanager
def connect(s) -> Iterator:
    """A Dask client for the study's settings: connected to ``s.scheduler``, or to a LocalCluster
    of ``s.workers`` processes with one thread each (as ``--jobs``). Closed (the LocalCluster
    stopped) on the way out, whatever happened."""
    distributed = _distributed()
    if s.scheduler is not None:
        _check_reachable(s.scheduler, CONNECT_TIMEOUT)
        try:
            client = distributed.Client(s.scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, ValueError) as e:
            raise UsageError(f"--scheduler {s.scheduler}: {str(e).splitlines()[0]}") from None
        cluster = None
        if not client.scheduler_info().get("workers"):  # tasks would wait for a worker forever
            client.close()
            raise UsageError(f"--scheduler {s.scheduler}: the scheduler has no workers; start some "
                             f"(dask worker {s.scheduler}) and run again")
    else:
        # the scheduler's HTTP server on a free local port (the default, 8787, may be taken: a
        # warning); the nannies' restart warnings stay quiet
        cluster = distributed.LocalCluster(n_workers=s.workers, threads_per_worker=1, processes=True,
                                           dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)
        client = None
    try:
        if cluster is not None:  # inside the try: a failing Client must not leave the cluster running
            client = distributed.Client(cluster, set_as_default=False)
            client.register_plugin(_ctrl_c_to_the_driver(distributed))
        yield client
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def _ctrl_c_to_the_driver(distributed):
    """A plugin for the workers of our own LocalCluster (never a user's scheduler): they share the
    terminal's process group, so Ctrl-C reaches them too; they ignore it and the driver stops them,
    instead of each printing a traceback. New workers (a restarted one) get it too."""
    class IgnoreCtrlC(distributed.WorkerPlugin):
        name = "lstm-numba-ignore-ctrl-c"

        def setup(self, worker) -> None:
            import signal
            import threading

            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreCtrlC()


def describe(client) -> dict:
    """Where this session's units go, for the session's metadata (workers can join or leave later;
    each row names its own machine)."""
    info = client.scheduler_info()
    workers = info.get("workers", {})
    return {"scheduler": client.scheduler.address, "workers": len(workers),
            "threads": sum(w.get("nthreads", 0) for w in workers.values()),
            "hosts": sorted({w.get("host", "") for w in workers.values()})}


def _unit_task(s, u, uid: str, code: str, ds) -> list[dict]:
    """On a worker: refuse other code, then ``study.run_unit`` as the local path runs it (one
    thread: Numba and BLAS)."""
    from distributed import get_worker

    from . import study

    mine = study.code_version(s)
    if mine != code:
        raise OtherCode(f"the worker at {get_worker().address} runs other code ({mine}; the driver runs {code}): "
                        "install the same version of this project on every worker")
    with threads.limit(1, blas=1):
        rows = study.run_unit(s, u, ds, uid, code)
    at_once = get_worker().state.nthreads  # units this worker process trains concurrently
    for row in rows:
        row["worker_threads"] = at_once
    return rows


def run_units(client, s, todo: list, datasets: dict, code: str, write) -> None:
    """Every (unit, unit id) of ``todo`` as one task; ``write(unit, rows)`` as each finishes, in the
    order they finish. On any exception (Ctrl-C included) the remaining tasks are cancelled; the
    rows written stay."""
    distributed = _distributed()
    # the data once per worker (not once per task), so workers need no data files of their own
    data = {task: client.scatter(ds, broadcast=True, hash=False) for task, ds in datasets.items()
            if any(u.task == task for u, _ in todo)}
    futures = {}
    try:
        for u, uid in todo:
            futures[client.submit(_unit_task, s, u, uid, code, data[u.task], retries=RETRIES, pure=False)] = u
        for f in distributed.as_completed(list(futures), loop=client.loop):
            try:
                rows = f.result()
            except OtherCode as e:
                raise UsageError(str(e)) from None
            except distributed.KilledWorker:
                u = futures[f]
                raise UsageError(f"the workers training unit {u.task} L{u.layers} H{u.hidden} seed {u.seed} kept "
                                 "dying (killed, or out of memory?); the finished seeds are kept: run the same "
                                 "command with the same --out to resume") from None
            except ModuleNotFoundError as e:
                raise UsageError(f"a Dask worker cannot import {e.name}: install this project on every worker "
                                 "(pip install -e .)") from None
            write(futures[f], rows)
    except BaseException:
        client.cancel(list(futures), force=True)
        raise
