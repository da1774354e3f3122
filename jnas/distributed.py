"""Multi-process (multi-host) one-shot searches on JAX's own distributed runtime.

JAX runs one Python process per host ("multi-controller"): every process runs the same program,
:func:`jax.distributed.initialize` connects them through a coordinator (process 0's
``HOST:PORT``), and a jitted program over a mesh of *every* process's devices runs as one SPMD
program, XLA inserting the cross-process all-reduces (gloo on CPU, NCCL on GPU). See the JAX
guide "Multi-process environments" (docs.jax.dev, ``multi_process``) and
:func:`jax.make_array_from_process_local_data`.

What jnas builds on it (the one-shot searches share :func:`jnas.oneshot.run_epochs`):

* :func:`cluster_spec` reads the coordinator address, process count and id from the
  ``jnas search`` flags (``--coordinator HOST:PORT --num-processes N --process-id I``) or the
  environment (``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``; SLURM /
  Open MPI jobs of several tasks are left to JAX's auto-detection) and checks them;
  :func:`initialize` starts the runtime, with a reachability check so an unreachable
  coordinator is an error message after the timeout instead of JAX's process abort.
* :func:`jnas.train.data_mesh` then spans every process's devices (the same number on each),
  :func:`local_rows` says which rows of each global batch this process feeds, and
  :func:`jnas.train.shard_batch` turns those rows into the global batch
  (:func:`jax.make_array_from_process_local_data`). The global batch order is a function of
  the run key and the epoch only, so the search sees the same batches on any process count.
* Only process 0 (:func:`is_primary`) writes results, logs and checkpoints;
  :func:`resume_search` reads a checkpoint on process 0 and broadcasts it, so a run resumes on
  any process count (started on 2 hosts, resumed on 1) without a shared filesystem.
"""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jnas import train

__all__ = ["ENV_VARS", "ClusterSpec", "cluster_spec", "initialize", "process_count",
           "is_primary", "local_rows", "host_to_global", "replicated_outputs",
           "broadcast_json", "on_primary", "resume_search"]

ENV_VARS = {"coordinator": "JAX_COORDINATOR_ADDRESS", "num_processes": "JAX_NUM_PROCESSES",
            "process_id": "JAX_PROCESS_ID"}
"""The environment variables read when the flags are not given (JAX itself reads only
``JAX_COORDINATOR_ADDRESS``)."""

_AUTO_ENV = (("SLURM_NTASKS", "SLURM_PROCID", "slurm"),
             ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "ompi"))


@dataclasses.dataclass(frozen=True)
class ClusterSpec:
    """How this process joins a multi-process run (see :func:`cluster_spec`).

    ``coordinator``: process 0's ``HOST:PORT``; ``num_processes`` / ``process_id``: the count
    and this process's id (0..N-1); ``timeout_s``: how long to wait for the coordinator and
    the other processes; ``detect``: a JAX cluster detection method (``'slurm'``, ``'ompi'``)
    filling what is ``None``, or ``None`` when everything is given.
    """
    coordinator: str | None
    num_processes: int | None
    process_id: int | None
    timeout_s: int = 300
    detect: str | None = None


def _int(value: Any, what: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be an integer, got {value!r}") from None


def _check_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--coordinator {address!r} is not HOST:PORT (e.g. 10.0.0.1:1234, "
                         "process 0's address and a free port)")
    return host, int(port)


def cluster_spec(coordinator: str | None = None, num_processes: int | None = None,
                 process_id: int | None = None, *, timeout_s: int = 300,
                 environ: Mapping[str, str] | None = None) -> ClusterSpec | None:
    """The multi-process settings of this run, or ``None`` for a single-process run.

    Each flag value (``--coordinator``, ``--num-processes``, ``--process-id``) wins over its
    environment variable in :data:`ENV_VARS`; with neither, a SLURM or Open MPI job of several
    tasks is left to :func:`jax.distributed.initialize`'s auto-detection (``detect``). One
    process (count 1, or nothing given) is a single-process run.

    Raises:
      ValueError: a count below 1, an id outside ``0..count-1``, a count above 1 without a
        coordinator or an id, a coordinator that is not ``HOST:PORT``, a timeout below 1 s.
    """
    env = os.environ if environ is None else environ
    addr = coordinator or env.get(ENV_VARS["coordinator"]) or None
    n = _int(num_processes if num_processes is not None else env.get(ENV_VARS["num_processes"]),
             "--num-processes")
    pid = _int(process_id if process_id is not None else env.get(ENV_VARS["process_id"]),
               "--process-id")
    if timeout_s is None or int(timeout_s) < 1:
        raise ValueError(f"--coordinator-timeout must be at least 1 s, got {timeout_s!r}")
    if n is not None and n < 1:
        raise ValueError(f"--num-processes must be at least 1, got {n}")
    if addr is not None:
        _check_address(addr)
    if n is None and pid is None and addr is None:
        for size_var, rank_var, method in _AUTO_ENV:
            size = _int(env.get(size_var), size_var)
            if size is not None and size > 1 and env.get(rank_var) is not None:
                return ClusterSpec(None, None, None, int(timeout_s), method)
        return None
    if n is None:
        raise ValueError("--coordinator/--process-id need --num-processes N (or "
                         f"{ENV_VARS['num_processes']})")
    if pid is not None and not 0 <= pid < n:
        raise ValueError(f"--process-id {pid} is outside 0..{n - 1} (the ids of "
                         f"--num-processes {n} processes)")
    if n == 1:
        return None
    if addr is None:
        raise ValueError(f"--num-processes {n} needs --coordinator HOST:PORT (process 0's "
                         f"address and a free port; or {ENV_VARS['coordinator']})")
    if pid is None:
        raise ValueError(f"--num-processes {n} needs --process-id I (0..{n - 1}; or "
                         f"{ENV_VARS['process_id']})")
    return ClusterSpec(addr, n, pid, int(timeout_s))


def _wait_reachable(address: str, timeout_s: float) -> None:
    """Retries a TCP connection to ``address`` until it succeeds or ``timeout_s`` passes."""
    host, port = _check_address(address)
    deadline = time.monotonic() + timeout_s
    last: OSError | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=min(2.0, timeout_s)):
                return
        except OSError as e:
            last = e
            time.sleep(0.2)
    raise ConnectionError(f"the coordinator {address} was not reachable within {timeout_s:g} s "
                          f"({last}); start process 0 with the same --coordinator, or check "
                          "the address and port (--coordinator-timeout sets the wait)")


def _check_free(address: str) -> None:
    """Process 0 serves the coordinator on ``address``'s port: refuse a port already in use."""
    _, port = _check_address(address)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError as e:
            raise ConnectionError(f"process 0 cannot serve the coordinator on port {port} ({e});"
                                  " choose a free port in --coordinator HOST:PORT") from None


def initialize(spec: ClusterSpec | None) -> bool:
    """Starts JAX's distributed runtime for ``spec`` (:func:`jax.distributed.initialize`);
    returns whether this is a multi-process run. ``None`` (one process) does nothing; a runtime
    already started is kept.

    Must run before anything touches a JAX device. Process 0 first checks that its port is
    free, the others that the coordinator answers within ``spec.timeout_s``: JAX aborts the
    process when the coordinator cannot be reached, so these checks turn the common mistakes
    into a ``ConnectionError`` (an ``OSError``). A peer that never joins still ends the run
    after ``timeout_s`` with JAX's own message. CPU runs use gloo collectives.

    Raises:
      ConnectionError: port in use (process 0) or coordinator unreachable (the others).
      RuntimeError: JAX devices were already used in this process.
    """
    if spec is None:
        return False
    if jax.distributed.is_initialized():
        return jax.process_count() > 1
    if spec.coordinator is not None and spec.process_id is not None:
        if spec.process_id == 0:
            _check_free(spec.coordinator)
        else:
            _wait_reachable(spec.coordinator, spec.timeout_s)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            spec.coordinator, spec.num_processes, spec.process_id,
            cluster_detection_method=spec.detect or "deactivate",
            initialization_timeout=int(spec.timeout_s))
    except RuntimeError as e:
        raise RuntimeError(f"cannot start the distributed runtime: {e} (jnas starts it "
                           "before anything uses a JAX device)") from None
    return jax.process_count() > 1


def process_count() -> int:
    """The number of processes of this run (1 without :func:`initialize`)."""
    return jax.process_count()


def is_primary() -> bool:
    """Whether this is process 0, the one that writes results, logs and checkpoints."""
    return jax.process_index() == 0


def local_rows(mesh: Mesh | None, batch_size: int) -> slice:
    """The rows of a global batch of ``batch_size`` that this process feeds to ``mesh``
    (split along ``"data"``): all of them on one process; a contiguous block per process
    otherwise (:func:`jnas.train.data_mesh` orders the devices by process).

    Raises:
      ValueError: the batch does not split evenly, or this process's rows are not contiguous.
    """
    if mesh is None or jax.process_count() == 1:
        return slice(0, batch_size)
    n = mesh.devices.size
    if batch_size % n:
        raise ValueError(f"batch_size={batch_size} is not a multiple of the {n} devices of the "
                         f"{jax.process_count()} processes")
    idx = NamedSharding(mesh, P("data")).addressable_devices_indices_map((batch_size,))
    starts = sorted(s[0].start or 0 for s in idx.values())
    lo, hi = starts[0], starts[-1] + batch_size // n
    if hi - lo != len(starts) * (batch_size // n):
        raise ValueError("this process's devices are not contiguous on the data mesh; build it "
                         "with jnas.train.data_mesh")
    return slice(lo, hi)


def host_to_global(tree: Any, sharding: NamedSharding) -> Any:
    """Each array of ``tree`` (the same values on every process, e.g. a replicated state)
    as a global array of ``sharding``, each process filling only its own devices
    (:func:`jax.make_array_from_callback`: no cross-process transfer)."""
    def put(x: Any) -> jax.Array:
        v = np.asarray(x)
        return jax.make_array_from_callback(v.shape, sharding, lambda i: v[i])
    return jax.tree_util.tree_map(put, jax.device_get(tree))


def replicated_outputs(fn: Callable, mesh: Mesh) -> Callable:
    """``fn`` with every output constrained to be replicated over ``mesh``, so each process
    can read the whole state (metrics, α, checkpoints) after a multi-process step."""
    rep = NamedSharding(mesh, P())

    def wrapped(*args: Any) -> Any:
        out = fn(*args)
        return jax.tree_util.tree_map(lambda x: jax.lax.with_sharding_constraint(x, rep), out)
    return wrapped


def broadcast_json(obj: Any) -> Any:
    """Process 0's ``obj`` (JSON-able; ignored elsewhere) on every process
    (:func:`jax.experimental.multihost_utils.broadcast_one_to_all` of its bytes)."""
    if jax.process_count() == 1:
        return obj
    from jax.experimental import multihost_utils
    raw = json.dumps(obj).encode() if is_primary() else b""
    n = int(multihost_utils.broadcast_one_to_all(np.int64(len(raw))))
    size = 1 << max(n - 1, 1).bit_length()  # few distinct shapes: few compiles
    buf = np.zeros(size, np.uint8)
    buf[:len(raw)] = np.frombuffer(raw, np.uint8)
    out = np.asarray(multihost_utils.broadcast_one_to_all(buf))
    return json.loads(out[:n].tobytes().decode())


def on_primary(fn: Callable[[], Any]) -> Any:
    """``fn()`` run on process 0 only, its JSON-able value broadcast to every process. An
    exception it raises is re-raised on process 0 and raised on the others as a
    ``ValueError`` with its message, so the processes agree and none waits for a collective
    the others skip."""
    if jax.process_count() == 1:
        return fn()
    payload: dict[str, Any] = {}
    error: Exception | None = None
    if is_primary():
        try:
            payload = {"ok": fn()}
        except Exception as e:  # noqa: BLE001 - re-raised below, after the broadcast
            error, payload = e, {"error": " ".join(str(e).split()) or type(e).__name__}
    payload = broadcast_json(payload)
    if error is not None:
        raise error
    if "error" in payload:
        raise ValueError(f"process 0: {payload['error']}")
    return payload["ok"]


def resume_search(out_dir: str | Path, state: Any, config: dict[str, Any],
                  defaults: dict[str, Any]) -> tuple[Any, list[dict[str, Any]], int]:
    """:func:`jnas.train.resume_search` on any process count: ``(state, history, epoch)``.

    On several processes only process 0 reads ``out_dir`` (its checkpoint and
    ``search_progress.json``); the epoch, history and restored state are broadcast, and the
    state is placed on ``state``'s shardings, so a run started on 2 processes resumes on 1 (or
    the reverse) and the other hosts need no copy of the folder.
    """
    if jax.process_count() == 1:
        return train.resume_search(out_dir, state, config, defaults)
    host = jax.device_get(state)
    found: dict[str, Any] = {}

    def read() -> dict[str, Any]:
        tree, history, epoch = train.resume_search(out_dir, host, config, defaults)
        found["tree"] = tree
        return {"history": history, "epoch": epoch}

    meta = on_primary(read)
    if meta["epoch"] == 0:
        return state, [], 0
    from jax.experimental import multihost_utils
    tree = multihost_utils.broadcast_one_to_all(found.get("tree", host))
    state = jax.tree_util.tree_map(
        lambda t, x: host_to_global(x, t.sharding) if hasattr(t, "sharding") else x, state,
        tree)
    return state, meta["history"], meta["epoch"]
