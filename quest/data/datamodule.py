"""CIFAR data as a LightningDataModule: tensors held whole (on the accelerator when there is one),
batches gathered by index, augmentation and normalisation applied to whole batches after transfer.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch

from quest.data.augment import normalize, random_crop, random_flip
from quest.data.loader import TensorBatchLoader
from quest.data.sources import BUNDLED_SUBSET, DataSourceError, ImageArrays, load_npz, load_torchvision

SOURCES = ("bundled", "npz", "torchvision")


class CIFARDataModule(L.LightningDataModule):
    """CIFAR-10/100 from `source`: "bundled" (the packaged subset), "npz" (`path`) or "torchvision".

    val_size: images held out of the training set for validation (an int, or a fraction < 1);
    0 validates on the test set (the paper's protocol).
    """

    def __init__(
        self,
        source: str = "bundled",
        name: str = "cifar10",
        path: str | None = None,
        root: str = "data",
        download: bool = True,
        num_classes: int = 10,
        batch_size: int = 256,
        eval_batch_size: int | None = None,
        val_size: float = 0.1,
        drop_last: bool = True,
        augment: bool = True,
        crop_padding: int = 4,
        flip: bool = True,
        mean: Sequence[float] = (0.4914, 0.4822, 0.4465),
        std: Sequence[float] = (0.2023, 0.1994, 0.2010),
        train_subset: int | None = None,
        on_device: str = "auto",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if source not in SOURCES:
            raise DataSourceError(f"data.source={source!r}: allowed {list(SOURCES)}")
        if source == "npz" and not path:
            raise DataSourceError("data.path: required when data.source=npz (a file with x_train, y_train, x_test, y_test)")
        if on_device not in ("auto", "always", "never"):
            raise DataSourceError(f"data.on_device={on_device!r}: allowed ['auto', 'always', 'never']")
        self.save_hyperparameters(logger=False)
        self.arrays: ImageArrays | None = None
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # -- loading -------------------------------------------------------------------------------
    def load(self) -> ImageArrays:
        """Read and check the source once (also called by train.py before any training)."""
        if self.arrays is None:
            hp = self.hparams
            if hp.source == "bundled":
                arrays = load_npz(BUNDLED_SUBSET, hp.num_classes)
            elif hp.source == "npz":
                arrays = load_npz(Path(hp.path).expanduser(), hp.num_classes)
            else:
                arrays = load_torchvision(hp.name, hp.root, hp.download)
            if arrays.x_train.shape[1] != len(hp.mean):
                raise DataSourceError(
                    f"data.mean: {len(hp.mean)} values for images of {arrays.x_train.shape[1]} channels"
                )
            self.arrays = arrays
        return self.arrays

    def prepare_data(self) -> None:
        if self.hparams.source == "torchvision":
            load_torchvision(self.hparams.name, self.hparams.root, self.hparams.download)

    def _target_device(self) -> torch.device:
        mode = self.hparams.on_device
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        if mode == "never" or (mode == "auto" and device.type == "cpu"):
            return torch.device("cpu")
        return device

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        hp = self.hparams
        a = self.load()
        n = len(a.x_train)
        n_val = int(round(hp.val_size * n)) if hp.val_size < 1 else int(hp.val_size)
        if not 0 <= n_val < n:
            raise DataSourceError(f"data.val_size={hp.val_size}: must leave training images (have {n})")
        order = torch.randperm(n, generator=torch.Generator().manual_seed(hp.seed))
        train_idx, val_idx = order[n_val:], order[:n_val]
        if hp.train_subset:
            train_idx = train_idx[: hp.train_subset]
        device = self._target_device()
        test = (a.x_test.to(device), a.y_test.to(device))
        self.splits = {
            "train": (a.x_train[train_idx].to(device), a.y_train[train_idx].to(device)),
            "val": (a.x_train[val_idx].to(device), a.y_train[val_idx].to(device)) if n_val else test,
            "test": test,
        }

    # -- loaders -------------------------------------------------------------------------------
    def _loader(self, split: str, train: bool) -> TensorBatchLoader:
        x, y = self.splits[split]
        hp = self.hparams
        bs = hp.batch_size if train else (hp.eval_batch_size or hp.batch_size)
        return TensorBatchLoader(x, y, bs, shuffle=train, drop_last=train and hp.drop_last, seed=hp.seed)

    def train_dataloader(self) -> TensorBatchLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> TensorBatchLoader:
        return self._loader("val", False)

    def test_dataloader(self) -> TensorBatchLoader:
        return self._loader("test", False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """uint8 batch -> (augmented when training) normalised float batch."""
        x, y = batch
        hp = self.hparams
        if hp.augment and self.trainer is not None and self.trainer.training:
            x = random_crop(x, hp.crop_padding)
            if hp.flip:
                x = random_flip(x)
        return normalize(x, hp.mean, hp.std), y
