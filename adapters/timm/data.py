"""torch datasets, transforms and loaders for the timm adapter (child env only)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from adapters.datasets import ImageRecord, open_image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageDataset(Dataset):
    def __init__(self, samples: Sequence[ImageRecord], transform) -> None:
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        sample = self.samples[i]
        return self.transform(open_image(sample)), sample.label


def build_transform(
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    train: bool = False,
    random_flip: bool = False,
    random_crop: bool = False,
):
    """Resize to a square (or RandomResizedCrop for training), optional flip, normalise."""
    steps = []
    if train and random_crop:
        steps.append(T.RandomResizedCrop((image_size, image_size), scale=(0.8, 1.0)))
    else:
        steps.append(T.Resize((image_size, image_size)))
    if train and random_flip:
        steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(mean=list(mean), std=list(std))]
    return T.Compose(steps)


def build_loader(
    dataset: ImageDataset,
    batch_size: int,
    num_workers: int,
    device: torch.device,
    train: bool,
    seed: int,
) -> DataLoader:
    generator = torch.Generator()
    generator.manual_seed(seed)
    # BatchNorm cannot train on a final batch of one image: drop that single leftover.
    drop_last = train and len(dataset) > batch_size and len(dataset) % batch_size == 1
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=num_workers > 0,
        drop_last=drop_last,
        generator=generator,
    )
