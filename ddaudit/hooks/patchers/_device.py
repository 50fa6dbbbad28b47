"""``--device cpu``: run a script that hard-codes CUDA on the CPU, undone on exit.

Forks write ``torch.zeros(..., ).cuda()`` in their metric code and
``device='cuda'`` in places, which fails on a machine without a GPU (smoke runs,
CI). Editing the checkout is not an option, so while the script runs:

- a :class:`torch.overrides.TorchFunctionMode` rewrites every CUDA device a torch
  call asks for (``Tensor.cuda()``, ``.to('cuda')``, ``device='cuda'`` in factory
  functions, ``Module.cuda()`` which goes through ``Tensor.cuda``) to the CPU;
  a tensor already on the CPU comes back as itself, as ``.to()`` does;
- ``torch.cuda.is_available`` answers ``False`` and ``torch.cuda.device_count`` 0,
  so ``args.device = 'cuda' if torch.cuda.is_available() else 'cpu'`` and the
  ``DataParallel`` checks take their CPU branch also on a GPU machine;
- ``torch.cuda.empty_cache``/``synchronize`` become no-ops.

The mode is exited and the functions restored when the patch stack closes.

``--device cuda`` leaves the script's devices alone but refuses to start, before
any work, where torch sees no GPU: a GPU run that would silently fall back to the
CPU (``'cuda' if torch.cuda.is_available() else 'cpu'``) fails in one line instead.
"""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

ERR_DEVICE = "--device must be 'cpu' or 'cuda' (or omitted to leave the script's devices alone); got {device!r}"
ERR_NO_CUDA = "--device cuda: torch sees no CUDA GPU here (torch {version}); use --device cpu to run the script on the CPU"
DEVICES = ("cpu", "cuda")

_CPU = torch.device("cpu")


def _is_cuda(value) -> bool:
    if isinstance(value, torch.device):
        return value.type == "cuda"
    return isinstance(value, str) and value.split(":")[0].strip().lower() == "cuda"


def _to_cpu(value):
    return _CPU if _is_cuda(value) else value


class CpuDeviceMode(TorchFunctionMode):
    """Every CUDA device named in a torch call becomes the CPU."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is torch.Tensor.cuda:
            return args[0]
        if "device" in kwargs:
            kwargs["device"] = _to_cpu(kwargs["device"])
        if func is torch.Tensor.to:
            args = tuple(_to_cpu(a) for a in args)
        return func(*args, **kwargs)


def force_cpu(stack) -> None:
    """Install the CPU device shim on *stack* (a :class:`PatchStack`); it undoes it on close."""
    stack.replace(torch.cuda, "is_available", lambda: False, name="torch.cuda.is_available")
    stack.replace(torch.cuda, "device_count", lambda: 0, name="torch.cuda.device_count")
    stack.replace(torch.cuda, "empty_cache", lambda: None, name="torch.cuda.empty_cache")
    stack.replace(torch.cuda, "synchronize", lambda device=None: None, name="torch.cuda.synchronize")
    mode = CpuDeviceMode()
    mode.__enter__()
    stack.callback(lambda: mode.__exit__(None, None, None))
    stack.names.append("torch device 'cuda' -> 'cpu' (TorchFunctionMode)")


def require_cuda() -> None:
    """Refuse ``--device cuda`` on a machine where torch sees no GPU."""
    from ddaudit.errors import ConfigError

    if not torch.cuda.is_available():
        raise ConfigError(ERR_NO_CUDA.format(version=torch.__version__))
