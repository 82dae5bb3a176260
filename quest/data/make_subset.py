"""Cut the bundled CIFAR-10 subset from the full arrays (how quest/data/assets was made).

    python -m quest.data.make_subset ../shared/data/cifar10/cifar10.npz

Takes the first `per_class_train` training images of each class and the first `per_class_test`
test images of each class, in the original order, and writes them LZMA-compressed into an `.npz`
that `numpy.load` reads as usual.
"""
from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np

from quest.data.sources import BUNDLED_SUBSET


def first_per_class(y: np.ndarray, per_class: int) -> np.ndarray:
    """Indices of the first `per_class` examples of each class, in original order."""
    keep = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in np.unique(y)])
    return np.sort(keep)


def write_npz_lzma(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An `.npz` (a zip of `.npy` members) compressed with LZMA, readable by numpy.load."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_LZMA) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.save(buf, arr, allow_pickle=False)
            zf.writestr(f"{key}.npy", buf.getvalue())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", type=Path)
    p.add_argument("--out", type=Path, default=BUNDLED_SUBSET)
    p.add_argument("--per-class-train", type=int, default=250)
    p.add_argument("--per-class-test", type=int, default=50)
    args = p.parse_args()
    with np.load(args.source) as f:
        tr = first_per_class(f["y_train"], args.per_class_train)
        te = first_per_class(f["y_test"], args.per_class_test)
        arrays = {
            "x_train": f["x_train"][tr],
            "y_train": f["y_train"][tr],
            "x_test": f["x_test"][te],
            "y_test": f["y_test"][te],
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_npz_lzma(args.out, arrays)
    print(f"wrote {args.out}: {len(tr)} train, {len(te)} test images, {args.out.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
