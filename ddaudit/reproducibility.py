"""What a run's figures depend on, recorded beside them, and the one knob that fixes it.

On a CPU, torch splits a reduction (a convolution's weight gradient summed over
the batch, a matrix product's inner sum, a mean) into one chunk per intra-op
thread and adds the chunks: two thread counts add the same numbers in a
different order, and float addition is not associative. The difference starts
in the last bit and, through a network's training, can move a prediction or a
pseudo-group assignment. The vectorised kernels torch picks (AMX, AVX512-BF16,
AVX-512, AVX2) change the order too. So the promise is:

* the same seed gives the same figures, bit for bit, when the machine's CPU
  path, the software (Python, torch, numpy, ddaudit) and the **intra-op thread
  count per process** are the same;
* the number of processes does not matter: torchrun's workers train with rank
  0's thread count, so K processes of T threads give the report of one
  process with T threads;
* across thread counts or CPU paths the figures may differ within the
  evaluators' spread, and the report's settings say why (``threads``,
  ``cpu``, ``cpu_path``);
* on a GPU, some kernels are not deterministic at all: only the CPU promise holds.

Every command takes ``--threads N`` (default: torch's own choice, which follows
``OMP_NUM_THREADS``); pass another report's ``settings.threads`` to repeat it.
"""

from __future__ import annotations

import platform
from functools import lru_cache

from ddaudit.errors import ConfigError

BAD_THREADS_MESSAGE = "--threads must be a positive integer, got {value!r}"
THREADS_HELP = (
    "Intra-op CPU threads for torch (default: torch's choice, which follows OMP_NUM_THREADS). "
    "The same seed repeats a report bit for bit only with the same thread count; reports record it."
)


def check_threads(value: object) -> int | None:
    """*value* as a thread count (None keeps torch's default), or a ConfigError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(BAD_THREADS_MESSAGE.format(value=value))
    return value


def use_threads(value: object) -> int:
    """Set torch's intra-op thread count to *value* (None: leave it); returns the count in force."""
    import torch

    count = check_threads(value)
    if count is not None and torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return torch.get_num_threads()


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else the platform's word)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@lru_cache(maxsize=1)
def cpu_path() -> str:
    """The widest kernel family torch uses here: ``amx-bf16``, ``avx512-bf16``, ``avx512``, ``avx2`` or ``default``.

    Read from torch itself (its dispatch capability and its AMX / AVX512-BF16
    probes), so it names what the kernels do rather than what the CPU flags say.
    """
    import torch

    probes = getattr(torch, "cpu", None)

    def has(name: str) -> bool:
        check = getattr(probes, name, None)
        try:
            return bool(check()) if callable(check) else False
        except Exception:  # noqa: BLE001 - a probe torch does not offer on this build
            return False

    if has("_is_amx_tile_supported"):
        return "amx-bf16"
    if has("_is_avx512_bf16_supported"):
        return "avx512-bf16"
    try:
        capability = str(torch.backends.cpu.get_cpu_capability()).lower()
    except Exception:  # noqa: BLE001 - older torch without the query
        capability = ""
    if "avx512" in capability:
        return "avx512"
    if "avx2" in capability:
        return "avx2"
    return capability or "default"


def runtime_settings() -> dict:
    """What the figures depend on besides the seed: threads, CPU, kernels and software versions."""
    import numpy
    import torch

    from ddaudit._version import __version__

    return {
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "cpu_path": cpu_path(),
        "torch": str(torch.__version__),  # a str subclass that weights_only loading refuses
        "numpy": str(numpy.__version__),
        "python": platform.python_version(),
        "ddaudit": __version__,
    }


def numerics_key() -> dict:
    """The part of :func:`runtime_settings` that changes trained weights and predictions, for cache keys:
    an entry is reused only where recomputing it would repeat it."""
    runtime = runtime_settings()
    return {key: runtime[key] for key in ("threads", "cpu_path", "torch")}
