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
        if len(std) != len(mean):
            raise DataSourceError(f"data.std: {len(std)} values for {len(mean)} in data.mean (one per channel)")
        if not all(isinstance(v, (int, float)) and v > 0 for v in std):
            raise DataSourceError(f"data.std={list(std)}: every value must be > 0 (inputs are divided by it)")
        self.save_hyperparameters(logger=False)
        self.arrays: ImageArrays | None = None
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._train_loader: TensorBatchLoader | None = None
        self._train_state: dict[str, int] | None = None

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
            self._split_sizes(arrays)
            self.arrays = arrays
        return self.arrays

    def _split_sizes(self, a: ImageArrays) -> tuple[int, int]:
        """(validation images, training images), checked: an epoch trains at least one batch, the
        test set is not empty (one line naming the key, before training)."""
        hp = self.hparams
        n = len(a.x_train)
        if len(a.x_test) == 0:
            raise DataSourceError(f"data.source={hp.source}: the test set is empty (x_test has 0 images)")
        if isinstance(hp.val_size, bool) or not isinstance(hp.val_size, (int, float)) or hp.val_size < 0:
            raise DataSourceError(f"data.val_size={hp.val_size!r}: must be >= 0 (images, or a fraction < 1)")
        n_val = int(round(hp.val_size * n)) if hp.val_size < 1 else int(hp.val_size)
        if n_val >= n:
            raise DataSourceError(
                f"data.val_size={hp.val_size}: holds out {n_val} of the {n} training-set images, leaving none "
                "to train on; use fewer, or a fraction < 1"
            )
        n_train = n - n_val
        if hp.train_subset is not None:
            if isinstance(hp.train_subset, bool) or not isinstance(hp.train_subset, int) or hp.train_subset < 1:
                raise DataSourceError(f"data.train_subset={hp.train_subset!r}: must be null or an integer >= 1")
            n_train = min(n_train, hp.train_subset)
        if hp.drop_last and hp.batch_size > n_train:
            raise DataSourceError(
                f"data.batch_size={hp.batch_size}: larger than the {n_train} training images, so every epoch "
                "would train 0 steps (data.drop_last=true); use a smaller batch"
            )
        return n_val, n_train

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
        n_val, _ = self._split_sizes(a)
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
        loader = TensorBatchLoader(x, y, bs, shuffle=train, drop_last=train and hp.drop_last, seed=hp.seed,
                                   batches_per_epoch=self._training_batches if train else None)
        if train:
            if self._train_state is not None:
                loader.load_state_dict(self._train_state)
            self._train_loader = loader
        return loader

    # -- checkpoint state: where the training data order resumes ---------------------------------
    # Lightning restores a loader's own state only when resuming mid-epoch; the datamodule's state
    # is restored from every checkpoint, so a resume after an epoch end continues with the next
    # epoch's permutation instead of repeating the first.
    def state_dict(self) -> dict[str, Any]:
        return {"train_loader": self._train_loader.state_dict()} if self._train_loader is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._train_state = state.get("train_loader")

    def _training_batches(self) -> float:
        """Batches the trainer runs per epoch (trainer.limit_train_batches may cut an epoch short)."""
        trainer = self.trainer
        return trainer.num_training_batches if trainer is not None else float("inf")

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
