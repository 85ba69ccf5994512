"""Snapshots from peers: stream the newest snapshot file over gRPC, and fetch one into a data dir.

A replica that starts with an empty data directory (a new pod without a shared
volume) fetches the newest snapshot of a running replica with the
``FetchSnapshot`` RPC, then follows the change log from the snapshot's
position. The file travels as it is on disk, in 1 MiB chunks: the snapshot's
own CRC-32 (and signature, with a key) is checked when it is loaded, and the
whole file's SHA-256, sent with every chunk, is checked before it is renamed
into place. A transfer that breaks is resumed from the bytes already
received, from the same peer or another one, and across restarts: the partial
file stays in the data directory as ``.peer-NAME.part``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from suppression.errors import ConfigError, NotReadyError, SnapshotError
from suppression.snapshot import find_newest
from suppression.v1 import suppression_pb2 as pb
from suppression.v1 import suppression_pb2_grpc as pb_grpc

__all__ = [
    "CHUNK_BYTES",
    "FetchResult",
    "PeerFetcher",
    "SnapshotSource",
    "fetch_if_empty",
    "read_token",
]

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
"""Bytes per chunk: well under gRPC's default 4 MiB message limit."""
_PART_PREFIX = ".peer-"
_PART_SUFFIX = ".part"
_NAME = re.compile(r"^snapshot-\d{20}-\d{20}\.snap$")
"""The names :func:`~suppression.snapshot.snapshot_name` gives."""


@dataclass(frozen=True, slots=True)
class _Digest:
    path: Path
    stamp: tuple[int, int, int]
    sha256: str


class SnapshotSource:
    """The serving side: the newest snapshot of a data directory, in chunks. Thread-safe."""

    def __init__(self, data_dir: Path | None) -> None:
        """Serve snapshots from ``data_dir`` (None: this replica has none to give)."""
        self._data_dir = data_dir
        self._lock = threading.Lock()
        self._digest: _Digest | None = None

    def chunks(self, name: str = "", offset: int = 0) -> Iterator[pb.SnapshotChunk]:
        """The chunks of snapshot ``name`` (the newest when empty) from ``offset`` on.

        The file is opened once: a snapshot pruned during the transfer is
        still read to its end.

        Raises:
            NotReadyError: no snapshot here (ask another replica).
            SnapshotError: ``name`` is not a snapshot here any more, or ``offset``
                is past its end.
        """
        path = self._path(name)
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise SnapshotError(
                f"snapshot {path.name} is gone from this replica (a newer one replaced it); "
                "fetch the newest"
            ) from None
        with handle:
            stat = os.fstat(handle.fileno())
            if offset > stat.st_size:
                raise SnapshotError(
                    f"offset {offset:,} is past the end of {path.name} ({stat.st_size:,} bytes)"
                )
            digest = self._sha256(path, handle.fileno(), stat)
            handle.seek(offset)
            while True:  # at least one chunk, so that the caller learns size and digest
                data = handle.read(CHUNK_BYTES)
                yield pb.SnapshotChunk(
                    name=path.name, size=stat.st_size, sha256=digest, offset=offset, data=data
                )
                offset += len(data)
                if offset >= stat.st_size or not data:
                    return

    def _path(self, name: str) -> Path:
        directory = self._data_dir
        if directory is None:
            raise NotReadyError("this replica has no --data-dir, so no snapshot to give")
        if not name:
            newest = find_newest(directory)
            if newest is None:
                raise NotReadyError(f"no snapshot in {directory} yet; ask another replica")
            return newest
        if not _NAME.match(name):
            raise SnapshotError(f"{name[:80]!r} is not a snapshot name")
        return directory / name

    def _sha256(self, path: Path, fd: int, stat: os.stat_result) -> str:
        """The file's SHA-256, computed once per file version (seconds for a registry)."""
        stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            cached = self._digest
            if cached is not None and cached.path == path and cached.stamp == stamp:
                return cached.sha256
            digest = hashlib.sha256()
            offset = 0
            while chunk := os.pread(fd, 8 * CHUNK_BYTES, offset):
                digest.update(chunk)
                offset += len(chunk)
            self._digest = _Digest(path, stamp, digest.hexdigest())
            return self._digest.sha256


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one fetch brought."""

    path: Path
    """The snapshot, in place in the data directory."""
    peer: str
    """The peer the last bytes came from."""
    size: int
    """The file's size."""
    resumed_from: int
    """Bytes already on disk from an earlier, broken transfer (0: from the start)."""
    seconds: float


class PeerFetcher:
    """The fetching side: bring the newest snapshot of one of ``peers`` into a data directory."""

    def __init__(
        self,
        peers: Sequence[str],
        *,
        token: str = "",
        attempts: int = 5,
        timeout: float = 600.0,
    ) -> None:
        """Describe where to fetch from.

        Args:
            peers: ``host:port`` of running replicas, tried in order.
            token: a bearer token with the admin scope, for peers that require one.
            attempts: rounds over all peers before giving up.
            timeout: seconds one transfer may take.
        """
        self._peers = tuple(peers)
        self._token = token
        self._attempts = attempts
        self._timeout = timeout

    @property
    def peers(self) -> tuple[str, ...]:
        """The peers, in the order they are tried."""
        return self._peers

    def fetch(self, data_dir: Path) -> FetchResult:
        """Fetch the newest snapshot of the first peer that has one into ``data_dir``.

        Raises:
            SnapshotError: no peer gave a whole snapshot after every attempt;
                the message names each peer's last error.
        """
        data_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        errors: dict[str, str] = {}
        for attempt in range(self._attempts):
            empty = 0  # peers that answered, and have no snapshot
            for peer in self._peers:
                part = _partial(data_dir)
                name = part.name[len(_PART_PREFIX) : -len(_PART_SUFFIX)] if part else ""
                resumed = part.stat().st_size if part is not None else 0
                try:
                    path = self._transfer(peer, data_dir, name, resumed)
                except _Gone:
                    if part is not None:
                        part.unlink(missing_ok=True)
                    errors[peer] = f"{name} is gone there; fetching the newest"
                    continue
                except (grpc.RpcError, SnapshotError, OSError) as exc:
                    if isinstance(exc, grpc.RpcError):
                        empty += exc.code() == grpc.StatusCode.FAILED_PRECONDITION
                    errors[peer] = _describe(exc)
                    logger.warning("fetching a snapshot from %s failed: %s", peer, errors[peer])
                    continue
                result = FetchResult(
                    path, peer, path.stat().st_size, resumed, time.monotonic() - started
                )
                logger.info(
                    "fetched snapshot %s (%s bytes%s) from %s in %.2f s",
                    path.name,
                    f"{result.size:,}",
                    f", resumed at {resumed:,}" if resumed else "",
                    peer,
                    result.seconds,
                )
                return result
            if empty == len(self._peers):
                break  # every peer is up and has none: waiting will not bring one
            time.sleep(min(5.0, 0.5 * 2**attempt))
        tried = "; ".join(f"{peer}: {error}" for peer, error in errors.items()) or "no peers"
        raise SnapshotError(
            f"no snapshot could be fetched from any peer ({tried}); start a replica with "
            "a snapshot first, or copy one into the data directory"
        )

    def _transfer(self, peer: str, data_dir: Path, name: str, offset: int) -> Path:
        metadata = (("authorization", f"Bearer {self._token}"),) if self._token else None
        with grpc.insecure_channel(peer) as channel:
            stub = pb_grpc.SuppressionStub(channel)  # type: ignore[no-untyped-call]
            request = pb.FetchSnapshotRequest(name=name, offset=offset if name else 0)
            try:
                stream = stub.FetchSnapshot(request, timeout=self._timeout, metadata=metadata)
                return _write(stream, data_dir, name, offset if name else 0)
            except grpc.RpcError as exc:
                if name and exc.code() == grpc.StatusCode.NOT_FOUND:
                    raise _Gone from exc
                raise


class _Gone(SnapshotError):  # noqa: N818 - internal control flow, never leaves this module
    """The file being resumed is no longer on the peer."""


def _write(stream: Iterator[pb.SnapshotChunk], data_dir: Path, name: str, offset: int) -> Path:
    """Append the stream to the partial file, check the SHA-256, rename into place."""
    part: Path | None = data_dir / f"{_PART_PREFIX}{name}{_PART_SUFFIX}" if name else None
    size = -1
    sha256 = ""
    handle = part.open("ab") if part is not None else None
    try:
        for chunk in stream:
            if handle is None or part is None:
                _check_name(chunk.name)
                name = chunk.name
                part = data_dir / f"{_PART_PREFIX}{name}{_PART_SUFFIX}"
                for stale in data_dir.glob(f"{_PART_PREFIX}*{_PART_SUFFIX}"):
                    stale.unlink(missing_ok=True)
                handle = part.open("wb")
            if chunk.name != name or chunk.offset != offset:
                raise SnapshotError(
                    f"peer sent {chunk.name} at byte {chunk.offset:,}, expected {name} at "
                    f"{offset:,}"
                )
            size, sha256 = chunk.size, chunk.sha256
            handle.write(chunk.data)
            offset += len(chunk.data)
        if handle is None or part is None:
            raise SnapshotError("the peer sent no data")
        handle.flush()
        os.fsync(handle.fileno())
    finally:
        if handle is not None:
            handle.close()
    if offset != size:
        raise SnapshotError(f"transfer of {name} stopped at {offset:,} of {size:,} bytes")
    if _sha256_of(part) != sha256:
        part.unlink(missing_ok=True)
        raise SnapshotError(f"{name} does not match the peer's SHA-256; fetching it again")
    target = data_dir / name
    part.rename(target)
    _fsync_dir(data_dir)
    return target


def _check_name(name: str) -> None:
    """Refuse a name that is not one :func:`~suppression.snapshot.snapshot_name` gives."""
    if not _NAME.match(name):
        raise SnapshotError(f"the peer named its snapshot {name[:80]!r}, not snapshot-MS-SEQ.snap")


def _partial(data_dir: Path) -> Path | None:
    """The partial file an earlier, broken transfer left, if any."""
    parts = sorted(data_dir.glob(f"{_PART_PREFIX}*{_PART_SUFFIX}"))
    return parts[-1] if parts else None


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(8 * CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _describe(exc: Exception) -> str:
    if isinstance(exc, grpc.RpcError):
        code = exc.code()
        return f"{code.name}: {exc.details()}"
    return str(exc)


def fetch_if_empty(fetcher: PeerFetcher, data_dir: Path) -> FetchResult | None:
    """Fetch a snapshot into ``data_dir`` if it holds none; in a child process.

    A process that forks workers must hold no gRPC object when it forks, so
    the channel lives and dies in a child. Returns None when a snapshot was
    already there (the child's result is the file it leaves).

    Raises:
        SnapshotError: no peer gave a snapshot.
    """
    if find_newest(data_dir) is not None:
        return None
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: fetch, report by exit code, never return into the caller
        code = 1
        try:
            fetcher.fetch(data_dir)
            code = 0
        except SnapshotError as exc:
            logger.error("%s", exc)
        except BaseException:
            logger.exception("cannot fetch a snapshot from a peer")
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    newest = find_newest(data_dir)
    if os.waitstatus_to_exitcode(status) != 0 or newest is None:
        raise SnapshotError(
            f"{data_dir} holds no snapshot and none could be fetched from --peer "
            f"{', '.join(fetcher.peers)} (see the log above); start a replica with a snapshot "
            "first, or copy one into the data directory"
        )
    size = newest.stat().st_size
    return FetchResult(newest, "", size, 0, time.monotonic() - started)


def read_token(path: Path | None) -> str:
    """The bearer token in ``--peer-token-file`` ("" without one).

    Raises:
        ConfigError: the file cannot be read or is empty.
    """
    if path is None:
        return ""
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"--peer-token-file {path}: {exc}") from exc
    if not token:
        raise ConfigError(f"--peer-token-file {path} is empty: put the admin token in it")
    return token
