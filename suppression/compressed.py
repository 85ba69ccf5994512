"""Input files as bytes, stored plain, gzip-compressed (``.gz``) or zipped (``.zip``).

The one reader of possibly compressed input for every command: the loader's
registry, list and change files, ``serve --list`` number files and scrub's
lead files.
"""

from __future__ import annotations

import gzip
import zipfile
import zlib
from pathlib import Path

from suppression.errors import ConfigError, SuppressionError

__all__ = ["read_bytes"]


def read_bytes(path: Path, error: type[SuppressionError] = ConfigError) -> bytes:
    """The file's content: plain, gunzipped, or every zip member in name order.

    Zip members are joined with one line break between them, so each member's
    last line stays a line of its own.

    Args:
        path: the file; ``.gz`` and ``.zip`` (any case) are decompressed.
        error: the error to raise, so that each command reports it as its own.

    Raises:
        SuppressionError: (of type ``error``) the file is missing, a directory,
            not readable, or a broken archive; the message says which.
    """
    suffix = path.suffix.lower()
    try:
        if suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                return stream.read()
        if suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                names = sorted(n for n in archive.namelist() if not n.endswith("/"))
                return b"\n".join(archive.read(name).rstrip(b"\r\n") for name in names)
        return path.read_bytes()
    except FileNotFoundError:
        raise error(f"cannot read {path}: no such file") from None
    except IsADirectoryError:
        raise error(f"cannot read {path}: it is a directory") from None
    except PermissionError:
        raise error(f"cannot read {path}: permission denied") from None
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise error(f"cannot read {path}: {exc}; check that it is a whole, valid file") from None
