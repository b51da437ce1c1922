"""The data section of labs whose inputs are images."""

from __future__ import annotations

from pydantic import Field

from robustlab.core.config import DataConfig


class ImageDataConfig(DataConfig):
    """Image data: optional channel conversion and resizing, and a training augmentation preset."""

    channels: int | None = Field(None, ge=1, le=4, description="convert images to this many channels")
    image_size: int | None = Field(None, ge=4, description="resize images to this size")
    augmentation: str = "none"
