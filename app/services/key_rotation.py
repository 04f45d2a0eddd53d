"""Re-encrypting every sealed column under the active (first) `ENCRYPTION_KEYS` key (`rotate-encryption-key`).

Rotation procedure: put the new key first in `ENCRYPTION_KEYS` (keep the old ones after it), restart the
processes, run `python -m app.cli rotate-encryption-key`, then drop the old keys once the summary shows no
value left under them. Safe to run again at any time: values already under the active key are skipped,
and each value is replaced compare-and-set, so a secret written meanwhile (a new token) is never lost.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db.repositories.sealed import SEALED_COLUMNS, SealedColumn, replace_sealed, sealed_batch
from app.security.secrets import SecretBox, SecretDecryptionError, binding

log = logging.getLogger(__name__)

BATCH_SIZE = 500


@dataclass
class ColumnSummary:
    scanned: int = 0
    rotated: int = 0
    already_current: int = 0
    changed_meanwhile: int = 0  # replaced by a concurrent writer (already under the active key)
    unreadable: int = 0  # cannot be opened with any configured key: left alone, reported


@dataclass
class RotationSummary:
    active_key: str
    columns: dict[str, ColumnSummary] = field(default_factory=dict)

    @property
    def rotated(self) -> int:
        return sum(c.rotated for c in self.columns.values())

    @property
    def unreadable(self) -> int:
        return sum(c.unreadable for c in self.columns.values())

    def as_json(self) -> dict[str, object]:
        return {
            "active_key": self.active_key,
            "rotated": self.rotated,
            "already_current": sum(c.already_current for c in self.columns.values()),
            "unreadable": self.unreadable,
            "columns": {name: asdict(c) for name, c in self.columns.items()},
        }


async def _rotate_column(
    sessionmaker: async_sessionmaker[AsyncSession], box: SecretBox, sealed: SealedColumn, batch_size: int,
) -> ColumnSummary:
    summary = ColumnSummary()
    after = None
    while True:
        async with sessionmaker() as session:
            batch = await sealed_batch(session, sealed, after=after, limit=batch_size)
            if not batch:
                return summary
            for row_id, value in batch:
                summary.scanned += 1
                aad = binding(sealed.table, sealed.binding_column, row_id)
                try:
                    if not box.needs_rotation(value):
                        summary.already_current += 1
                        continue
                    fresh = box.seal(box.open_bytes(value, aad), aad)
                except SecretDecryptionError as exc:
                    summary.unreadable += 1
                    log.warning("%s of row %s cannot be opened: %s", sealed.label, row_id, exc)
                    continue
                if await replace_sealed(session, sealed, row_id, old=value, new=fresh):
                    summary.rotated += 1
                else:
                    summary.changed_meanwhile += 1
            await session.commit()
            after = batch[-1][0]


async def rotate_encryption_key(
    sessionmaker: async_sessionmaker[AsyncSession], box: SecretBox, *, batch_size: int = BATCH_SIZE,
) -> RotationSummary:
    """Re-seal every value not under the active key, one committed batch at a time."""
    summary = RotationSummary(box.active_kid)
    for sealed in SEALED_COLUMNS:
        summary.columns[sealed.label] = await _rotate_column(sessionmaker, box, sealed, batch_size)
    return summary
