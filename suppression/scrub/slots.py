"""Blocks and their outputs passed to and from the scrub's workers through shared memory.

Through a pipe, a 4 MiB block is copied about five times each way (pickled, into
the kernel, out of it, read, unpickled), each copy into freshly faulted pages:
on the 2-core machine a million rows' blocks and outputs cost about 0.14 s of
CPU that way. A slot of one anonymous shared mapping, made before the workers
fork and so shared with them, takes a copy in and a copy out.

Each slot is an input area (a block) and an output area (the block's outputs).
A slot belongs to one task from :meth:`SharedSlots.acquire` until the parent,
having written the outputs, calls :meth:`SharedSlots.release`; when none is free,
or a block or an output does not fit, the caller sends it through the pipe as
before.
"""

from __future__ import annotations

import mmap
import threading
from typing import NamedTuple

__all__ = ["SharedSlots", "SlotRef"]


class SlotRef(NamedTuple):
    """Where some bytes are: slot, offset in it, length (small, pickled instead of the bytes)."""

    slot: int
    offset: int
    length: int


class SharedSlots:
    """``count`` slots of an input area of ``input_bytes`` and an output area of ``output_bytes``.

    Pages are touched only when written, so unused room costs address space only.
    """

    def __init__(self, count: int, input_bytes: int, output_bytes: int) -> None:
        self.input_bytes = input_bytes
        self.output_bytes = output_bytes
        self._size = input_bytes + output_bytes
        self._map = mmap.mmap(-1, max(1, count) * self._size)  # MAP_SHARED | MAP_ANONYMOUS
        self._free = list(range(count))
        self._lock = threading.Lock()

    def acquire(self) -> int | None:
        """A free slot, now the caller's; None if every slot is in use."""
        with self._lock:
            return self._free.pop() if self._free else None

    def release(self, slot: int) -> None:
        """Give ``slot`` back: nothing may read its outputs any more."""
        with self._lock:
            self._free.append(slot)

    def put_input(self, slot: int, data: bytes) -> SlotRef | None:
        """Copy a block into ``slot``'s input area; None if it does not fit."""
        if len(data) > self.input_bytes:
            return None
        at = slot * self._size
        self._map[at : at + len(data)] = data
        return SlotRef(slot, 0, len(data))

    def put_output(self, slot: int, offset: int, data: bytes | memoryview) -> SlotRef | None:
        """Copy ``data`` to ``slot``'s output area at ``offset``; None if it does not fit."""
        if offset + len(data) > self.output_bytes:
            return None
        at = slot * self._size + self.input_bytes + offset
        self._map[at : at + len(data)] = data
        return SlotRef(slot, self.input_bytes + offset, len(data))

    def read(self, ref: SlotRef) -> bytes:
        """A copy of the bytes at ``ref``."""
        at = ref.slot * self._size + ref.offset
        return self._map[at : at + ref.length]

    def view(self, ref: SlotRef) -> memoryview:
        """The bytes at ``ref``, not copied: valid until the slot is released."""
        at = ref.slot * self._size + ref.offset
        return memoryview(self._map)[at : at + ref.length]

    def close(self) -> None:
        """Unmap the slots (left to the garbage collector while a view is still held)."""
        try:
            self._map.close()
        except BufferError:
            pass
