"""Running a sweep's combinations. With Ray (the default): one task per (market, date chunk) builds
markets into Ray's object store; one task per batch of combinations (grouped by strategy family)
evaluates every chunk with the batch kernel and finishes each combination where it ran (a market of a few
combinations is evaluated in its build tasks instead, and the driver finishes it: ``fan_out``); the driver
takes batches as they come back (``ray.wait``) and hands each finished combination to the publisher.
Without Ray (``ray.enabled=false``, ``run_here``): the same batches, one after another, in this process."""
from __future__ import annotations

import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core import RunConfig
from core.engine import build_markets, evaluate_markets, results_from_trades
from core.markets import expiry_dates
from core.health import Health
from core.kernel import load_loops_in_background
from core.finish import FinishedRun, finish_run
from sweep.errors import Terminated, UserError, raise_terminated
from sweep.heap import freeze_what_exists
from sweep.net import connect_problem, host_port
from sweep.progress import Progress
from sweep.plan import Job, family_order, market_key, date_chunks

ROOT = Path(__file__).resolve().parents[1]  # this checkout: on the PYTHONPATH of local Ray workers
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MAX_BATCH = 125  # combinations per batch at most when sweep.batch is not set
# The environment of Ray's workers: core's import then leaves pandas out (core/__init__.py), which a worker of a
# small sweep never needs (``_build_and_evaluate_chunk``) and a batch worker imports where a function needs it.
LEAN_WORKER = {"ATMBURST_LEAN_WORKER": "1"}
FUSE_MAX = 8  # a market with at most this many combinations (sweep.batch unset) is evaluated in its build tasks
POLL_SECS = 0.25  # how long the driver waits on Ray at a time, so that Ctrl-C stops it between calls


class DeferredInterrupt:
    """Notes the first Ctrl-C or SIGTERM instead of acting on it (see ``deferred_interrupt``)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, active: bool):
        self.active = active
        self.noted = 0  # the number of the first signal noted, 0 for none
        self.previous = {signum: signal.getsignal(signum) for signum in self.SIGNALS} if active else {}

    def install(self) -> None:
        """Note signals from now on (again after Ray's start, which puts its own SIGTERM handler in place)."""
        if self.active and not self.noted:
            for signum in self.SIGNALS:
                signal.signal(signum, self._note)

    def _note(self, signum, frame) -> None:
        self.noted = self.noted or signum
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second one acts at once
        signal.signal(signal.SIGTERM, raise_terminated)

    def stop(self) -> None:
        """Raise what the noted signal asks for: Terminated for SIGTERM, KeyboardInterrupt for Ctrl-C."""
        raise Terminated if self.noted == signal.SIGTERM else KeyboardInterrupt

    def check(self) -> None:
        """``stop`` if a signal was noted."""
        if self.noted:
            self.stop()

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            if handler is not None:  # None: a handler not set from Python, which cannot be put back
                signal.signal(signum, handler)


@contextmanager
def deferred_interrupt() -> Iterator[DeferredInterrupt]:
    """Within: the first Ctrl-C or SIGTERM is noted, not raised; the caller polls ``noted`` and stops
    between Ray calls (or calls ``check`` after a database query). A second one acts at once. A
    KeyboardInterrupt or exit raised inside a Ray call that is waiting on its gRPC channel, followed by
    ``ray.shutdown``, can abort the whole process (an assertion in gRPC: one of two tries with Ray 2.60),
    losing the lines that say what the sweep kept; one raised inside an MLflow query makes SQLAlchemy
    log a traceback. Outside the main thread, where signals cannot be handled, nothing changes."""
    deferred = DeferredInterrupt(threading.current_thread() is threading.main_thread())
    deferred.install()
    try:
        yield deferred
    finally:
        deferred.restore()


def on_this_machine(job: Job) -> bool:
    """Whether ``ray.address`` leaves Ray on this machine: no address (a private local Ray) or a loopback one."""
    address = job.setting("ray", "address")
    if not address:
        return True
    target = host_port(address)
    return target is not None and target[0] in LOOPBACK


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Raise UserError at once when nothing accepts a TCP connection at ``address`` (``HOST:PORT`` or
    ``ray://HOST:PORT``; other forms, such as ``auto``, are left to Ray): Ray itself retries an
    unreachable address for minutes before it gives up."""
    problem = connect_problem(address, timeout)
    if problem:
        raise UserError(f"nothing answers at ray.address={address} ({problem}): start the cluster first (ray start "
                        "--head; docs/sweeps.md), fix the address, or leave ray.address unset for a private Ray on "
                        "this machine")


def init_ray(job: Job):
    """(the ray module, whether this call started Ray): a private local Ray on loopback, or the cluster
    of ``ray.address``; an already running Ray of this process is reused (and not owned)."""
    address = job.setting("ray", "address")
    if on_this_machine(job):
        # One machine: keep Ray on the loopback interface (Ray otherwise picks the host's network
        # address even for a local cluster); must be set before ray is imported.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Token authentication is Ray's own setting (RAY_AUTH_MODE in the environment, the same for the
    # cluster and this driver); a guess from a token file on this machine would break clusters
    # started without it (their nodes then cannot reach this driver: OwnerDiedError).
    import ray

    if ray.is_initialized():
        return ray, False
    kwargs = dict(include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    if address:
        # Ship this checkout's engine to the cluster's workers (they need its dependencies installed).
        import core
        import sweep

        modules = [str(Path(core.__file__).parent), str(Path(sweep.__file__).parent)]
        check_reachable(address)
        try:
            ray.init(address=address, runtime_env={"py_modules": modules, "env_vars": dict(LEAN_WORKER)}, **kwargs)
        except (ConnectionError, TimeoutError, ValueError) as exc:  # unreachable, or an address Ray cannot parse
            reason = " ".join(str(exc).split())[:300]
            raise UserError(
                f"cannot connect to the Ray cluster of ray.address={address} ({type(exc).__name__}: {reason}). "
                f"Check that it runs (ray status --address {address}) and that RAY_AUTH_MODE in this "
                "environment matches how it was started (token authentication: docs/sweeps.md), or leave "
                "ray.address unset for a private Ray on this machine") from None
    else:
        # This checkout on the workers' import path through the environment they inherit from the raylet,
        # not a runtime_env: a job with one does not use the workers Ray prestarts and waits for new ones
        # (measured: first tasks 2.1-2.5 s instead of 0.9-1.1 s).
        before = {name: os.environ.get(name) for name in ("PYTHONPATH", *LEAN_WORKER)}
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), before["PYTHONPATH"]] if p)
        os.environ.update(LEAN_WORKER)
        try:
            # address="local": always a private Ray of this process, never a cluster that happens to run
            # on this machine (Ray would otherwise join the one named in its address file).
            ray.init(address="local", num_cpus=job.setting("ray", "num_cpus"), **kwargs)
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
    return ray, True


def _cache_sessions(cfgs: list[RunConfig]) -> None:
    """core.holidays' cached sessions of each distinct (date range, cache folder) of ``cfgs``."""
    from core.holidays import nse_trading_days_cached

    for start, end, cache_dir in sorted({(c.start, c.end, c.cache_dir) for c in cfgs if c.cache_dir is not None}):
        nse_trading_days_cached(start, end, cache_dir)


def _prepare_local_workers(cfgs: list[RunConfig]) -> None:
    """What the driver does while a Ray on this machine starts, so that its workers do not each do it:
    the sessions of every date range into the shared cache folder (``_cache_sessions``), and numba's
    compiled loops loaded, which in a fresh checkout compiles them into numba's on-disk cache once instead
    of in every worker at the same time. Once a command has done that for this checkout
    (core.compiled.loops_compiled_before), or when core.aot's module of the loops is built (then no
    process starts numba), the driver skips it: loading them here only took CPU from
    Ray's start (about 0.9 s of CPU; Ray's start 0.6-0.9 s shorter on two cores), since each worker
    loads them for itself anyway."""
    from core import aot
    from core.compiled import loops_compiled_before, mark_loops_compiled
    from core.ticks import load_loops as load_normalisation_loops

    _cache_sessions(cfgs)
    cache_dir = cfgs[0].cache_dir if cfgs else None
    if aot.loops() is not None or loops_compiled_before(cache_dir):
        return
    load_loops_in_background().join()
    load_normalisation_loops()
    mark_loops_compiled(cache_dir)


def _build_chunk(cfg: RunConfig):
    """``build_markets`` of one date chunk as a Ray task: (its day markets, their health, the Ray node it
    ran on)."""
    # numba's start (about 0.4 s) overlaps building, instead of following it in the batch task that
    # evaluates the built markets (on a cold sweep the last step, run on one worker alone)
    load_loops_in_background()
    markets, health = build_markets(cfg, threads=1)  # one core per Ray task: Ray does the parallelism
    import ray

    return markets, health, ray.get_runtime_context().get_node_id()


def _build_and_evaluate_chunk(cfg: RunConfig, strategies: list):
    """``build_markets`` of one date chunk and, in the same task, the batch kernel over its markets for
    ``strategies`` (a market with few combinations: its markets never pass through the object store):
    ((each strategy's trades as Arrow IPC bytes and evaluation health, the evaluation's seconds), the
    build's health, the Ray node it ran on). The bytes, not the tables, because Ray's pickling of a table
    with text columns calls arrow's compute functions, whose first call imports pandas (0.13-0.2 s): the
    build and the kernel do not need it, and the driver, which finishes these chunks, has it already."""
    markets, health, node = _build_chunk(cfg)
    _freeze_worker()
    started = time.perf_counter()
    evaluated = [(ipc_bytes(trades), own) for trades, own in evaluate_markets(markets, strategies, cfg.symbol)]
    return (evaluated, time.perf_counter() - started), health, node


def ipc_bytes(table):
    """A table as Arrow IPC stream bytes (``from_ipc_bytes`` reads it back, the same table)."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_ipc_bytes(data: bytes):
    """The table of ``ipc_bytes``."""
    import pyarrow as pa

    return pa.ipc.open_stream(data).read_all()


def finish_chunks(cfgs: list[RunConfig], labels: list[str], synthetic: bool, results: list) -> list[FinishedRun]:
    """``finish_batch`` over the chunks of ``_build_and_evaluate_chunk`` (``results``: each chunk's
    (evaluation, build health, node), in date order), in this process."""
    chunks = [([(from_ipc_bytes(data), own) for data, own in parts], health)
              for (parts, _), health, _ in results]
    return finish_batch(cfgs, labels, synthetic, chunks, sum(seconds for (_, seconds), _, _ in results))


def evaluate_batch(cfgs: list[RunConfig], labels: list[str], synthetic: bool,
                   chunks: list[tuple[list, Health]]) -> list[FinishedRun]:
    """A batch of combinations on one market: every date chunk's markets (``chunks``: each chunk's day
    markets and the health of building them) through one pass of the batch kernel per chunk, then each
    combination's trades, costs, summary, statistics and file contents (core.finish)."""
    started = time.perf_counter()
    strategies = [c.strategy for c in cfgs]
    evaluated = [(evaluate_markets(markets, strategies, cfgs[0].symbol), health) for markets, health in chunks]
    return finish_batch(cfgs, labels, synthetic, evaluated, time.perf_counter() - started)


def finish_batch(cfgs: list[RunConfig], labels: list[str], synthetic: bool, evaluated: list[tuple[list, Health]],
                 seconds: float) -> list[FinishedRun]:
    """Each combination of a batch finished (core.finish) from its evaluated date chunks, in date order
    (``evaluated``: per chunk, each combination's trades and evaluation health, and the health of building
    the chunk's markets); ``seconds``: the batch's evaluation time, shared equally by its combinations."""
    trades: list[list] = [[] for _ in cfgs]
    health = [Health() for _ in cfgs]
    for parts, market_health in evaluated:
        for j, (part, own) in enumerate(parts):
            trades[j].append(part)
            health[j].merge(market_health)
            health[j].merge(own)
    share = seconds / max(1, len(cfgs))  # each combination's own evaluation time
    return [finish_run(results_from_trades(trades[j], health[j], cfg, share, synthetic=synthetic),
                       label=labels[j], time_label="evaluation") for j, cfg in enumerate(cfgs)]


_worker_frozen = False


def _freeze_worker() -> None:
    """Once per Ray worker: its imports (numba's registries the largest) out of its full collections
    (sweep.heap): they cost 0.5-0.9 s per worker in a 36-combination sweep of a year."""
    global _worker_frozen
    if not _worker_frozen:
        load_loops_in_background().join()
        freeze_what_exists()
        _worker_frozen = True


def _run_batch(cfgs: list[RunConfig], labels: list[str], synthetic: bool, n_chunks: int, *built
               ) -> tuple[str, list[FinishedRun]]:
    """``evaluate_batch`` as a Ray task (``built``: the chunks' markets, then their health); returns
    (the Ray node it ran on, the finished runs)."""
    _freeze_worker()
    runs = evaluate_batch(cfgs, labels, synthetic, list(zip(built[:n_chunks], built[n_chunks:])))
    import ray

    return ray.get_runtime_context().get_node_id(), runs


def run_here(jobs, cfgs, pending, fingerprints, keys, finisher, results, markets: dict | None = None) -> dict:
    """Run the pending combinations in this process, without Ray (``ray.enabled=false``), and publish
    each batch as it finishes; returns timings {tasks} in seconds. Per market: its day markets built
    once over the whole date range (the engine's file threads), then batches of combinations (grouped
    by strategy family, ``sweep.batch`` or 125 each) through ``evaluate_batch``, as a Ray batch task
    would run them. ``markets`` (market key -> its chunks) keeps built markets for later calls."""
    from core.engine import is_synthetic

    started = time.perf_counter()
    load_loops_in_background()  # numba's start overlaps the reading of the first markets
    bar = Progress(len(pending), "combinations", quiet=finisher.quiet)
    done = 0
    for mk, members in by_market(cfgs, pending).items():
        members = family_order(cfgs, members)
        first = cfgs[members[0]]
        chunks = (markets or {}).get(mk)
        if chunks is None:
            chunks = [build_markets(first)]
            if markets is not None:
                markets[mk] = chunks
            freeze_what_exists()  # imports and the market out of the full collections (sweep.heap)
        size = jobs[0].setting("sweep", "batch") or MAX_BATCH
        synthetic = is_synthetic(first)
        for k in range(0, len(members), size):
            batch = members[k:k + size]
            runs = evaluate_batch([cfgs[i] for i in batch], [_label(jobs[i], finisher) for i in batch], synthetic,
                                  chunks)
            done = _publish(batch, runs, jobs, fingerprints[mk], keys, finisher, results, bar, done)
        del chunks  # the finished market is released before the next one is built
    bar.close()
    return {"tasks": time.perf_counter() - started}


def _publish(batch: list[int], runs: list[FinishedRun], jobs, fingerprint: str, keys, finisher, results,
             bar: Progress, done: int) -> int:
    """Hand the finished runs of ``batch`` (indices into ``jobs``, one market of data fingerprint
    ``fingerprint``) to the publisher, the progress bar cleared for each one's lines; returns the number
    of combinations done."""
    for i, run in zip(batch, runs):
        bar.close()
        results[i] = finisher.finish(jobs[i], run, fingerprint, keys[i])
        done += 1
        bar.update(done)
    return done


def _label(job: Job, finisher) -> str:
    return f"#{job.index} {finisher.label(job)}: "


def by_market(cfgs: list[RunConfig], members) -> dict[str, list[int]]:
    """``members`` (indices into ``cfgs``) grouped by their market (sweep.plan.market_key), in order."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i in members:
        groups[market_key(cfgs[i])].append(i)
    return groups


def stop_in_background(ray) -> threading.Thread:
    """Shut down this process's Ray on a thread: most of ``ray.shutdown`` is waiting for Ray's processes
    to exit (about 1.4 s), which the comparison and report overlap. Join the thread before the process
    relies on Ray being gone (SweepSession.close does)."""
    thread = threading.Thread(target=ray.shutdown, name="atmburst-ray-shutdown")
    thread.start()
    return thread


def fan_out(jobs, cfgs, pending, fingerprints, keys, finisher, results, markets: dict | None = None,
            stopping: list | None = None) -> dict:
    """Run the pending combinations with Ray and publish each batch as it finishes; returns timings
    {ray_start, compiling (when it waited 0.5 s or more for the compiled loops), tasks} in seconds, and the
    Ray nodes that ran its tasks (builds and batches) and the CPUs Ray offered ({nodes, workers}). A
    Ray this call started is shut down before it returns, or, when ``stopping`` is given and the tasks
    succeeded, on a thread appended to ``stopping``.

    Per market (symbol and data settings): one build task per date chunk puts its day markets in
    Ray's object store; one task per batch of combinations (grouped by strategy family) evaluates
    every chunk and returns the finished runs. A market of at most FUSE_MAX combinations (``sweep.batch``
    unset, ``markets`` not kept) is instead evaluated in its build tasks, each returning its chunk's trades,
    and this process finishes the combinations from their trades: its markets never pass through the object
    store, its workers never import pandas (``_build_and_evaluate_chunk``), and no batch
    waits for the last chunk before the kernel starts. At most two markets are in the store at a time, unless
    ``markets`` (market key -> its chunks' object refs) keeps them for later calls of the same sweep
    (the batches of a guided search, on one Ray kept running between them).
    """
    from core.engine import is_synthetic

    t0 = time.perf_counter()
    # While Ray starts (its start is mostly waiting here), what each worker would otherwise do itself: the
    # XNSE sessions of every date range (the calendar library's import) and, when Ray's workers share this
    # checkout (Ray on this machine), numba's compiled loops.
    local = on_this_machine(jobs[0])
    preparing = threading.Thread(target=_prepare_local_workers if local else _cache_sessions,
                                 args=([cfgs[i] for i in pending],), daemon=True)
    preparing.start()
    with deferred_interrupt() as interrupt:  # from before Ray's start: Ctrl-C while it starts is noted too
        ray, owned = init_ray(jobs[0])
        interrupt.install()
        t1 = time.perf_counter()
        preparing.join()
        t2 = time.perf_counter()  # later than t1 when numba compiles the loops (a fresh checkout)
        freeze_what_exists()  # the command's imports, Ray's among them, out of its full collections (sweep.heap)
        try:
            build = ray.remote(_build_chunk).options(num_returns=3)
            run_batch = ray.remote(_run_batch)
            build_and_evaluate = ray.remote(_build_and_evaluate_chunk).options(num_returns=3)
            how = jobs[0].setting("sweep", "chunk")
            groups = by_market(cfgs, pending)
            cpus = max(1, int(ray.available_resources().get("CPU", 1)))
            in_flight: dict = {}  # batch ref -> (market key, members, the market's chunks)
            fused: dict = {}  # chunk evaluation ref -> (market key, members, the market's chunks, synthetic)
            open_markets: dict[str, int] = {}  # market key -> batches not yet back
            bar = Progress(len(pending), "combinations", quiet=finisher.quiet)
            done = 0
            nodes: set[str] = set()

            def submit(mk: str) -> None:
                members = family_order(cfgs, groups[mk])
                first = cfgs[members[0]]
                built = (markets or {}).get(mk)
                synthetic = is_synthetic(first)
                if built is None:
                    chunks = date_chunks(first.start, first.end, how, expiry_dates(first))
                    if markets is None and not jobs[0].setting("sweep", "batch") and len(members) <= FUSE_MAX:
                        # few combinations: each chunk evaluated where it is built; this process finishes them
                        strategies = [cfgs[i].strategy for i in members]
                        built = [build_and_evaluate.remote(first.with_range(a, b), strategies) for a, b in chunks]
                        fused.update({evaluation: (mk, members, built, synthetic) for evaluation, _, _ in built})
                        open_markets[mk] = 1
                        return
                    built = [build.remote(first.with_range(a, b)) for a, b in chunks]
                    if markets is not None:
                        markets[mk] = built
                # about two batches per CPU, at most 125 combinations each: a batch pays the signal sums of
                # its families once (about 1 s per family and symbol-year), and results stream back batch by
                # batch while the rest computes
                size = jobs[0].setting("sweep", "batch") or min(MAX_BATCH, max(1, -(-len(members) // (2 * cpus))))
                for k in range(0, len(members), size):
                    batch = members[k:k + size]
                    ref = run_batch.remote([cfgs[i] for i in batch], [_label(jobs[i], finisher) for i in batch],
                                           synthetic, len(built), *[m for m, _, _ in built], *[h for _, h, _ in built])
                    in_flight[ref] = (mk, batch, built)
                    open_markets[mk] = open_markets.get(mk, 0) + 1

            queue = list(groups)
            while (queue or in_flight or fused) and not interrupt.noted:
                while queue and len(open_markets) < 2:
                    submit(queue.pop(0))
                ready, _ = ray.wait([*in_flight, *fused], num_returns=1, timeout=POLL_SECS)
                if not ready:
                    continue
                if ready[0] in fused:  # a chunk of a market of few combinations: finished here with its last
                    mk, batch, built, synthetic = fused.pop(ready[0])
                    if any(evaluation in fused for evaluation, _, _ in built):
                        continue
                    flat = ray.get([ref for chunk in built for ref in chunk])  # (evaluation, health, node) each
                    results_of_chunks = [tuple(flat[k:k + 3]) for k in range(0, len(flat), 3)]
                    runs = finish_chunks([cfgs[i] for i in batch], [_label(jobs[i], finisher) for i in batch],
                                         synthetic, results_of_chunks)
                    del open_markets[mk]
                    nodes.update(node for _, _, node in results_of_chunks)
                else:
                    mk, batch, built = in_flight.pop(ready[0])
                    open_markets[mk] -= 1
                    if not open_markets[mk]:
                        del open_markets[mk]
                        nodes.update(ray.get([node for _, _, node in built]))  # where its chunks were built
                    node, runs = ray.get(ready[0])
                    nodes.add(node)
                done = _publish(batch, runs, jobs, fingerprints[mk], keys, finisher, results, bar, done)
            bar.close()
            if interrupt.noted:
                for ref in [*in_flight, *fused]:
                    ray.cancel(ref, force=True)
                interrupt.stop()
            if owned and stopping is not None:
                stopping.append(stop_in_background(ray))
                owned = False
            compiling = {"compiling": t2 - t1} if t2 - t1 >= 0.5 else {}
            return {"ray_start": t1 - t0, **compiling, "tasks": time.perf_counter() - t2, "nodes": len(nodes),
                    "workers": cpus}
        finally:
            if owned:
                ray.shutdown()
