"""A reader for the IDX files MNIST and FashionMNIST ship in (plain or gzip).

Reading them here means a local root is never handed to torchvision, which
would try to download anything it finds missing.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ddaudit.errors import InputError

BAD_IDX = "{path} is not an IDX file ({why}); use the original MNIST/FashionMNIST files"

#: IDX type codes (third magic byte) and the big-endian dtypes they stand for.
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in an IDX file; ``.gz`` files are decompressed on the fly."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise InputError(BAD_IDX.format(path=path, why=f"unreadable: {error}")) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise InputError(BAD_IDX.format(path=path, why="bad magic number"))
    dtype = np.dtype(_DTYPES[raw[2]])
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise InputError(BAD_IDX.format(path=path, why="truncated header"))
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise InputError(BAD_IDX.format(path=path, why=f"{len(raw) - header} data bytes for shape {shape}"))
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def find_idx(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz``, whichever exists."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None
