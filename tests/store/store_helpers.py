"""Shared helpers for tests/store."""

from __future__ import annotations

from collections.abc import Sequence

from callstream.store.backends.embedded import EmbeddedBackend
from callstream.store.base import (
    FragmentAppend,
    FragmentRecord,
    StoreBackend,
    StoreError,
    StreamRecord,
)


class CountingBackend(EmbeddedBackend):
    """The embedded backend, noting the size of every batch of appends it is given."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.batches: list[int] = []

    def append_fragments(
        self, items: Sequence[FragmentAppend]
    ) -> list[FragmentRecord | StoreError]:
        self.batches.append(len(items))
        return super().append_fragments(items)


async def create(
    b: StoreBackend,
    name: str = "cam",
    *,
    retention: int = 24,
    tags: dict[str, str] | None = None,
) -> StreamRecord:
    """A new stream through the async seam (no device name, media type or KMS key)."""
    return await b.catalog.create_stream(
        name,
        device_name=None,
        media_type=None,
        kms_key_id=None,
        data_retention_hours=retention,
        tags=tags or {},
    )
