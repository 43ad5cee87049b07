"""`TypeStorage`: names of the storage kinds."""

from __future__ import annotations

__all__ = ["TypeStorage"]


class TypeStorage:
    DEFAULT = "default"
    FILE = "file"
    S3 = "s3"
    GCS = "gcs"
