"""Request priority: user actions go ahead of batch work (CONTRACT 10.9)."""

from enum import IntEnum


class Priority(IntEnum):
    USER = 0
    BATCH = 1
