"""One audit across processes, GPUs and machines, launched by ``torchrun``.

An audit is many independent evaluator trainings, so scale-out needs no
gradient synchronisation: the evaluators of each training call are divided
over the ranks by index, each rank trains its share on its own device (the
batched engine still trains a GPU rank's share together), and rank 0 gathers
the predictions in evaluator order. An evaluator's seed comes from its index
(:func:`ddaudit.auditing.derive_seeds`), never from the rank that trains it,
so the report equals a single-process run's.

Rank 0 is the only rank that runs the command: it parses the options, reads
the data, computes the metrics, runs the gates and writes every output. The
other ranks serve training tasks that rank 0 sends them (the task, then the
tensors it needs, each tensor sent once per run) until rank 0 sends its exit
code, which they exit with. Workers therefore need no access to the data
files, print nothing but errors, and write nothing. Commands without
evaluator training (``weights``, the distillation in ``demo``) simply run on
rank 0 while the others wait.

A rank that fails during its share reports the error in the status it sends
with its predictions; rank 0 then raises one :class:`~ddaudit.errors.RankFailedError`
line (after every rank has finished its share, so the collectives stay
matched), writes nothing, and every process exits with that error's code. A
rank that dies outright (killed, out of host memory) is seen by ``torchrun``,
which stops the others. Collectives time out after ``DDAUDIT_DIST_TIMEOUT``
seconds (default 24 h: a worker legitimately waits while rank 0 distils or
loads data).

Only the standard library is imported at module level, so the CLI entry point
stays fast when nothing is launched.
"""

from __future__ import annotations

import datetime
import os
import socket
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ddaudit.errors import EXIT_INTERNAL, ConfigError, DDAuditError, RankFailedError

if TYPE_CHECKING:
    import torch


TIMEOUT_ENV = "DDAUDIT_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 24 * 3600

BAD_ENV = "{name}={value!r} is not a non-negative integer: launch with torchrun, or unset WORLD_SIZE/RANK/LOCAL_RANK"
BAD_RANK = "RANK={rank} is outside 0..{last} for WORLD_SIZE={world}: launch with torchrun"
BAD_TIMEOUT = f"{TIMEOUT_ENV} must be a positive number of seconds, got {{value!r}}"
INIT_FAILED = "could not start the process group ({detail}); launch with torchrun (e.g. torchrun --standalone --nproc_per_node=2 -m ddaudit ...)"
RANK_FAILED = "rank {rank} of {world} ({host}, {device}) failed while training evaluators {which}: {detail}"


# ---------------------------------------------------------------- who am I


@dataclass(frozen=True)
class RankInfo:
    """This process's place in the job, from the variables torchrun sets."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def launched(self) -> bool:
        """More than one process: a process group is needed."""
        return self.world_size > 1


def rank_info(environ: Mapping[str, str] | None = None) -> RankInfo:
    """Read ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` (all absent: one process)."""
    env = os.environ if environ is None else environ

    def read(name: str, default: int) -> int:
        text = env.get(name)
        if text is None or text.strip() == "":
            return default
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(BAD_ENV.format(name=name, value=text)) from None
        if value < 0:
            raise ConfigError(BAD_ENV.format(name=name, value=text))
        return value

    world = read("WORLD_SIZE", 1)
    rank = read("RANK", 0)
    local_rank = read("LOCAL_RANK", 0)
    if world < 1 or rank >= world:
        raise ConfigError(BAD_RANK.format(rank=rank, last=max(world - 1, 0), world=world))
    return RankInfo(rank=rank, world_size=world, local_rank=local_rank)


def shard(count: int, world_size: int, rank: int, rotation: int = 0) -> range:
    """The evaluator indices *rank* trains: one contiguous block of a near-even split.

    Blocks differ in size by at most one; the larger blocks go to the first
    ``count % world_size`` ranks after *rotation*, so successive training calls
    (evaluators, then references) can rotate who carries the extra evaluator.
    Placement never changes a result: each evaluator's seed is fixed by its index.
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside a world of {world_size}")
    block = (rank - rotation) % world_size
    base, extra = divmod(count, world_size)
    start = block * base + min(block, extra)
    return range(start, start + base + (1 if block < extra else 0))


def rank_device(device: str, info: RankInfo) -> str:
    """The device a rank trains on: a bare ``cuda`` becomes ``cuda:LOCAL_RANK``."""
    if device == "cuda" and info.launched:
        return f"cuda:{info.local_rank}"
    return device


def collective_timeout(environ: Mapping[str, str] | None = None) -> datetime.timedelta:
    """How long a collective may wait (``DDAUDIT_DIST_TIMEOUT`` seconds)."""
    env = os.environ if environ is None else environ
    text = env.get(TIMEOUT_ENV)
    if text is None or text.strip() == "":
        return datetime.timedelta(seconds=DEFAULT_TIMEOUT_S)
    try:
        seconds = float(text)
    except ValueError:
        raise ConfigError(BAD_TIMEOUT.format(value=text)) from None
    if not seconds > 0:
        raise ConfigError(BAD_TIMEOUT.format(value=text))
    return datetime.timedelta(seconds=seconds)


def honour_thread_setting(environ: Mapping[str, str] | None = None) -> int | None:
    """Apply ``OMP_NUM_THREADS`` to torch's intra-op pool (torchrun sets 1 per process by default)."""
    env = os.environ if environ is None else environ
    text = env.get("OMP_NUM_THREADS", "")
    if not text.strip().isdigit() or int(text) < 1:
        return None
    import torch

    torch.set_num_threads(int(text))
    return int(text)


# ---------------------------------------------------------------- the session

_ACTIVE: "Session | None" = None


def active() -> "Session | None":
    """The running multi-process session, or None in a single process."""
    return _ACTIVE


def world_size() -> int:
    """How many processes this run uses (1 without a launcher)."""
    return 1 if _ACTIVE is None else _ACTIVE.info.world_size


class Session:
    """The messages rank 0 and the workers exchange over the process group."""

    def __init__(self, info: RankInfo) -> None:
        self.info = info
        self.tasks = 0
        # Tensors the workers hold, so the test set crosses the wire once per run:
        # rank 0 keeps id(tensor) -> (tensor, version, token), workers token -> tensor.
        # Both sides keep only what the latest training call used.
        self._sent: dict[int, tuple[Any, int, int]] = {}
        self._received: dict[int, Any] = {}
        self._next_token = 0
        self.tensors_sent = 0

    # -- plumbing

    def _broadcast(self, message: object) -> object:
        import torch
        import torch.distributed as dist

        box = [message]
        dist.broadcast_object_list(box, src=0, device=torch.device("cpu"))
        return box[0]

    def _tensor_header(self, tensor: "torch.Tensor") -> dict:
        """Rank 0: describe a tensor, with a token; ``new`` when workers do not hold it yet."""
        held = self._sent.get(id(tensor))
        if held is not None and held[0] is tensor and held[1] == tensor._version:
            return {"token": held[2], "new": False}
        self._next_token += 1
        token = self._next_token
        self._sent[id(tensor)] = (tensor, tensor._version, token)
        return {"token": token, "new": True, "shape": tuple(tensor.shape), "dtype": tensor.dtype}

    def _exchange_tensor(self, header: dict, tensor: "torch.Tensor | None") -> "torch.Tensor":
        """Send (rank 0) or receive (workers) the bytes of a tensor announced as new."""
        import torch
        import torch.distributed as dist

        if self.info.is_main:
            assert tensor is not None
            if header["new"]:
                payload = tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
                dist.broadcast(payload, src=0)
                self.tensors_sent += 1
            return tensor
        if not header["new"]:
            return self._received[header["token"]]
        numel = 1
        for size in header["shape"]:
            numel *= size
        itemsize = torch.empty((), dtype=header["dtype"]).element_size()
        payload = torch.empty(numel * itemsize, dtype=torch.uint8)
        dist.broadcast(payload, src=0)
        received = payload.view(header["dtype"]).reshape(header["shape"])
        self._received[header["token"]] = received
        return received

    # -- one training call, on every rank

    def run_training(
        self,
        spec: dict,
        tensors: dict[str, "torch.Tensor | None"],
        progress: Callable[[int, int], None] | None = None,
    ) -> "torch.Tensor | None":
        """Train this rank's share of one call; rank 0 returns all predictions in evaluator order."""
        import numpy as np
        import torch
        import torch.distributed as dist

        info = self.info
        data = {name: self._exchange_tensor(spec["tensors"][name], tensors.get(name)) for name in ("x", "y", "test_x")}
        seeds = spec["seeds"]
        mine = shard(len(seeds), info.world_size, info.rank, rotation=spec["task"] % info.world_size)
        options = dict(spec["options"])
        device = rank_device(options.pop("device"), info)
        if not info.is_main and spec.get("threads"):
            torch.set_num_threads(int(spec["threads"]))
        status: dict = {"rank": info.rank, "indices": list(mine), "host": socket.gethostname(), "device": device}
        local_error: BaseException | None = None
        try:
            if len(mine):
                preds = _train_share(
                    data["x"], data["y"], data["test_x"], seeds=[seeds[i] for i in mine], total=len(seeds),
                    device=device, progress=progress if info.is_main else None, options=options,
                )
                status["preds"] = preds.numpy()
            else:
                status["preds"] = np.zeros((0, data["test_x"].shape[0]), dtype=np.int64)
            status["ok"] = True
        except Exception as error:  # noqa: BLE001 - reported to rank 0, which decides
            local_error = error
            status.update(ok=False, error=_describe(error), exit_code=_exit_code_for(error))
        gathered: list | None = [None] * info.world_size if info.is_main else None
        dist.gather_object(status, gathered, dst=0)
        if not info.is_main:
            return None
        if local_error is not None:
            raise local_error
        failed = [entry for entry in gathered if not entry["ok"]]
        if failed:
            raise _rank_failure(failed, info.world_size)
        rows: list = [None] * len(seeds)
        for entry in gathered:
            for row, index in zip(entry["preds"], entry["indices"]):
                rows[index] = row
        return torch.as_tensor(np.stack(rows)).long()

    # -- rank 0 drives, the others serve

    def train_and_predict(self, x, y, test_x, *, seeds: list[int], options: dict, progress=None) -> "torch.Tensor":
        """Rank 0: announce a training call to every rank, train the own share, gather."""
        headers = {name: self._tensor_header(t) for name, t in (("x", x), ("y", y), ("test_x", test_x))}
        used = {header["token"] for header in headers.values()}
        self._sent = {key: entry for key, entry in self._sent.items() if entry[2] in used}
        import torch

        # Workers train with rank 0's thread count, so the report is the single-process one at that count.
        spec = {"seeds": seeds, "options": options, "task": self.tasks, "tensors": headers,
                "threads": torch.get_num_threads()}
        self.tasks += 1
        self._broadcast(("train", spec))
        return self.run_training(spec, {"x": x, "y": y, "test_x": test_x}, progress=progress)

    def finish(self, code: int) -> None:
        """Rank 0: tell the workers the run is over and the code to exit with."""
        try:
            self._broadcast(("stop", int(code)))
        except Exception:  # noqa: BLE001 - a worker already gone: torchrun reports it
            pass

    def serve(self) -> int:
        """Workers: run rank 0's training calls until it sends its exit code."""
        while True:
            kind, payload = self._broadcast(None)
            if kind == "stop":
                return int(payload)
            self.tasks += 1
            self.run_training(payload, {})
            used = {header["token"] for header in payload["tensors"].values()}
            self._received = {token: t for token, t in self._received.items() if token in used}


@contextmanager
def process_group(info: RankInfo) -> Iterator[Session]:
    """Start the process group for *info* (gloo; plus NCCL for CUDA tensors on a GPU node) and tear it down.

    On a GPU node each rank is bound to ``cuda:LOCAL_RANK`` first, so a bare
    ``cuda`` anywhere in the run means the rank's own GPU. The messages this
    module sends are CPU tensors and travel over gloo.
    """
    global _ACTIVE
    import torch
    import torch.distributed as dist

    timeout = collective_timeout()
    backend = "gloo"
    if torch.cuda.is_available() and info.local_rank < torch.cuda.device_count():
        torch.cuda.set_device(info.local_rank)
        backend = "cpu:gloo,cuda:nccl"
    try:
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size, timeout=timeout)
    except Exception as error:  # noqa: BLE001 - any rendezvous failure is a launch problem
        raise ConfigError(INIT_FAILED.format(detail=_describe(error))) from None
    session = Session(info)
    _ACTIVE = session
    try:
        yield session
        # Every rank leaves together: a rank that tore down gloo while its peer was still in the
        # last collective made that peer abort at exit (SIGABRT, 'terminate called').
        dist.barrier()
    finally:
        _ACTIVE = None
        try:
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001 - tearing down after a failure
            pass


# ---------------------------------------------------------------- entry points


def train_and_predict(
    train_x: "torch.Tensor",
    train_y: "torch.Tensor",
    test_x: "torch.Tensor",
    *,
    seeds: Sequence[int],
    progress: Callable[[int, int], None] | None = None,
    **options: Any,
) -> "torch.Tensor":
    """:func:`ddaudit.evaluate.train_and_predict`, divided over the ranks when launched.

    Same arguments (``options`` are passed on: protocol, num_classes, device,
    engine, precision, ...) and same result: an int64 CPU tensor (E, N_test),
    row ``e`` for ``seeds[e]``. In a single process it is the plain call;
    under torchrun rank 0 calls it, the other ranks join from
    :meth:`Session.serve`, and each rank trains on :func:`rank_device`.
    ``progress`` follows rank 0's own share.
    """
    from ddaudit.evaluate.engine import train_and_predict as train_locally
    from ddaudit.evaluate.protocol import get_protocol

    session = _ACTIVE
    if session is None or not session.info.is_main:
        return train_locally(train_x, train_y, test_x, seeds=seeds, progress=progress, **options)
    if isinstance(options.get("protocol"), str):
        options["protocol"] = get_protocol(options["protocol"])
    options["device"] = str(options.get("device", "cpu"))
    return session.train_and_predict(
        train_x, train_y, test_x, seeds=[int(s) for s in seeds], options=options, progress=progress
    )


def launch(main: Callable[[], object]) -> int:
    """Run a command in this process, or as one rank of a torchrun job; returns the exit code.

    *main* runs the command (the typer app) and signals its code with
    ``SystemExit``. Without a launcher it just runs. Under torchrun rank 0 runs
    it and then broadcasts its code; every other rank serves training calls and
    returns that code.
    """
    try:
        info = rank_info()
    except DDAuditError as error:
        _print_error(str(error))
        return error.exit_code
    if not info.launched:
        return _exit_code_of(main)  # torch reads OMP_NUM_THREADS itself; fast commands need no torch import
    honour_thread_setting()
    if not info.is_main:
        warnings.simplefilter("ignore")  # rank 0 shows the same warnings once
    try:
        with process_group(info) as session:
            if info.is_main:
                code = _exit_code_of(main)
                session.finish(code)
                return code
            return session.serve()
    except DDAuditError as error:
        _print_error(f"rank {info.rank}: {error}")
        return error.exit_code
    except Exception as error:  # noqa: BLE001 - a broken process group or peer
        _print_error(f"rank {info.rank}: {_describe(error)}", internal=True)
        return EXIT_INTERNAL


def _train_share(x, y, test_x, *, seeds: list[int], total: int, device: str, progress, options: dict) -> "torch.Tensor":
    """Train and predict one rank's share, with the engine's choices made as for the whole call.

    ``compile="auto"`` weighs the compile time against the number of test
    predictions; a share has fewer, so the engine is told the test size that
    gives the whole call's count, and a rank compiles exactly when one
    process would have (a compiled forward pass may round differently).
    """
    from ddaudit.evaluate._shared import PREDICT_BATCH, check_inputs
    from ddaudit.evaluate.engine import train_evaluators

    options = dict(options)
    test_batch_size = options.pop("test_batch_size", PREDICT_BATCH)
    check_inputs(x, y, test_x, options["num_classes"], seeds)
    whole_call_size = -(-test_x.shape[0] * total // len(seeds))
    ensemble = train_evaluators(x, y, seeds=seeds, device=device, progress=progress, test_size=whole_call_size, **options)
    return ensemble.predict(test_x.detach().float(), batch_size=test_batch_size)


# ---------------------------------------------------------------- helpers


def _exit_code_of(main: Callable[[], object]) -> int:
    try:
        main()
    except SystemExit as done:
        code = done.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    return 0


def _describe(error: BaseException) -> str:
    """One line: the message of a user error, ``Type: message`` for anything else."""
    text = " ".join(str(error).split()) or "(no message)"
    if isinstance(error, DDAuditError):
        return text
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(error).__name__}: {text}"


def _exit_code_for(error: BaseException) -> int:
    return error.exit_code if isinstance(error, DDAuditError) else EXIT_INTERNAL


def _indices_text(indices: list[int]) -> str:
    if not indices:
        return "(none)"
    if indices == list(range(indices[0], indices[-1] + 1)) and len(indices) > 1:
        return f"{indices[0]}-{indices[-1]}"
    return ", ".join(str(i) for i in indices)


def _rank_failure(failed: list[dict], world: int) -> RankFailedError:
    first = failed[0]
    message = RANK_FAILED.format(
        rank=first["rank"], world=world, host=first["host"], device=first["device"],
        which=_indices_text(first["indices"]), detail=first["error"],
    )
    if len(failed) > 1:
        others = ", ".join(str(entry["rank"]) for entry in failed[1:])
        message += f" (ranks {others} failed too)"
    return RankFailedError(message, exit_code=first["exit_code"])


def _print_error(message: str, internal: bool = False) -> None:
    label = "internal error" if internal else "error"
    print(f"{label}: {message}", file=sys.stderr, flush=True)
