"""Where images come from: an `.npz` of uint8 arrays, torchvision's CIFAR, or the bundled subset.

Every source returns `ImageArrays`: uint8 images [N, C, H, W] and int64 labels, as torch tensors.
The `.npz` layout is that of `../shared/data/cifar10/cifar10.npz`: keys x_train, y_train, x_test,
y_test with HWC uint8 images.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
BUNDLED_SUBSET = Path(__file__).parent / "assets" / "cifar10_subset.npz"
TORCHVISION_SETS = {"cifar10": ("CIFAR10", 10), "cifar100": ("CIFAR100", 100)}


class DataSourceError(ValueError):
    """A data source that cannot be read; the message is one line naming the key."""


@dataclass
class ImageArrays:
    x_train: torch.Tensor  # uint8 [N, C, H, W]
    y_train: torch.Tensor  # int64 [N]
    x_test: torch.Tensor
    y_test: torch.Tensor


def _as_nchw(x: np.ndarray, key: str, where: str) -> torch.Tensor:
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataSourceError(
            f"data.path={where}: {key} must be uint8 images [N, H, W, C], got {x.dtype} {list(x.shape)}"
        )
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def _labels(y: np.ndarray, n: int, num_classes: int, key: str, where: str) -> torch.Tensor:
    if y.ndim != 1 or len(y) != n:
        raise DataSourceError(f"data.path={where}: {key} must have one label per image ({n}), got {list(y.shape)}")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)):
        whole = np.issubdtype(y.dtype, np.floating) and bool(np.all(np.isfinite(y))) and bool(np.all(y == np.round(y)))
        if not whole:
            bad = next((v for v in y.ravel().tolist() if not (isinstance(v, float) and v.is_integer())), None)
            raise DataSourceError(
                f"data.path={where}: {key} holds non-integer labels ({y.dtype}, e.g. {bad!r}); "
                f"labels must be class indices 0..{num_classes - 1}"
            )
    y = y.astype(np.int64)
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DataSourceError(f"data.path={where}: {key} has labels outside 0..{num_classes - 1}")
    return torch.from_numpy(y)


def load_npz(path: str | Path, num_classes: int = 10) -> ImageArrays:
    """Read and check an `.npz` with keys x_train, y_train, x_test, y_test (HWC uint8)."""
    path = Path(path)
    if not path.is_file():
        raise DataSourceError(f"data.path={path}: no such file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic not in (b"PK\x03\x04", b"PK\x05\x06"):  # an npz is a zip (a damaged zip: "not a readable npz" below)
        raise DataSourceError(
            f"data.path={path}: not an npz file (an npz is a zip of .npy arrays {', '.join(NPZ_KEYS)})"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in NPZ_KEYS if k not in f.files]
            if missing:
                raise DataSourceError(f"data.path={path}: missing keys {missing}; an npz needs {list(NPZ_KEYS)}")
            arrays = {k: f[k] for k in NPZ_KEYS}
    except DataSourceError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataSourceError(f"data.path={path}: not a readable npz ({type(e).__name__}: {e})") from None
    x_train = _as_nchw(arrays["x_train"], "x_train", str(path))
    x_test = _as_nchw(arrays["x_test"], "x_test", str(path))
    y_train = _labels(arrays["y_train"], len(x_train), num_classes, "y_train", str(path))
    y_test = _labels(arrays["y_test"], len(x_test), num_classes, "y_test", str(path))
    return ImageArrays(x_train, y_train, x_test, y_test)


def load_torchvision(name: str, root: str | Path, download: bool = True) -> ImageArrays:
    """CIFAR-10/100 through torchvision (downloads into `root` when online and allowed)."""
    if name not in TORCHVISION_SETS:
        raise DataSourceError(f"data.name={name!r}: allowed {sorted(TORCHVISION_SETS)}")
    import torchvision

    cls = getattr(torchvision.datasets, TORCHVISION_SETS[name][0])
    splits = {}
    for train in (True, False):
        try:
            ds = cls(root=str(root), train=train, download=download)
        except Exception as e:  # noqa: BLE001 - any download/IO failure becomes one line
            raise DataSourceError(
                f"data.root={root}: could not get {name} through torchvision ({type(e).__name__}: {e}); "
                "offline? use data=cifar10_npz data.path=<file.npz> or data=cifar10_subset"
            ) from None
        splits[train] = (
            torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2))),
            torch.as_tensor(ds.targets, dtype=torch.int64),
        )
    return ImageArrays(splits[True][0], splits[True][1], splits[False][0], splits[False][1])
