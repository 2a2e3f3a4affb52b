"""Derived views saved to files: one framing, one durable atomic write.

A view file is ``magic``, the header's length (8 bytes, little endian), a JSON header
(which names the body's SHA-256) and the body. It is written to a temporary file,
fsynced, renamed over the old one, and the directory fsynced, so a crash leaves the old
file or the new one, never a torn one.
"""

from __future__ import annotations

import os
import struct

__all__ = ["write_view_file"]


def write_view_file(path: str, magic: bytes, header: bytes, body: bytes) -> None:
    """Replace ``path`` atomically and durably with the framed ``header`` and ``body``."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(magic + struct.pack("<Q", len(header)) + header)
        fh.write(body)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dirfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)
