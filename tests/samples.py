"""Sample values shared by several test modules."""

from __future__ import annotations

import contextlib
import gzip
import json
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pyroaring import BitMap64

from suppression import lists as lists_module
from suppression import membership
from suppression.lists import ListInfo, ListKind, SuppressionLists, Version
from suppression.scrub.options import ScrubOptions

DEFAULT_VERSION = Version(1700000000000, 3)


def make_lists(version: Version = DEFAULT_VERSION) -> SuppressionLists:
    national = BitMap64(range(12125550000, 12125560000, 3))
    national.add_range(19000000000, 19010000000)
    return SuppressionLists(
        {"national": national, "internal": BitMap64([8613800138000]), "empty": BitMap64()},
        infos=[ListInfo("national", ListKind.REGISTRY), ListInfo("empty", ListKind.CAMPAIGN)],
        version=version,
    )


LOOKUP_WAYS = ("compiled", "sorted", "per-number")
"""How a batch lookup can search a list (``membership`` and ``ListView.lookup``)."""


@contextlib.contextmanager
def lookup_way(way: str) -> Iterator[None]:
    """Search lists one way: the compiled loop, or without it, a small list's sorted
    array or pyroaring's call per number."""
    saved = (membership._compiled, membership.COMPILED, lists_module._SORTED_LOOKUP_MAX)
    if way != "compiled":
        membership._compiled, membership.COMPILED = None, False
    if way == "per-number":
        lists_module._SORTED_LOOKUP_MAX = 0
    try:
        yield
    finally:
        membership._compiled, membership.COMPILED, lists_module._SORTED_LOOKUP_MAX = saved


def random_campaign_lists(
    names: Sequence[str], pool: Sequence[int], seed: int, share: float, version: Version
) -> SuppressionLists:
    """Campaign lists, each holding about ``share`` of ``pool``, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    bitmaps = {
        name: BitMap64([number for number in pool if rng.random() < share]) for name in names
    }
    return SuppressionLists(
        bitmaps, infos=[ListInfo(name, ListKind.CAMPAIGN) for name in names], version=version
    )


@dataclass(frozen=True, slots=True)
class State:
    """A value shaped like changelog.FollowerState."""

    connected: bool = True
    last_applied_id: str = "1700000000000-7"
    lag_entries: int = 0
    lag_seconds: float = 0.0
    staleness_seconds: float = 0.5
    stale: bool = False
    needs_resync: bool = False
    applied_by_op: Mapping[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    snapshot_age_seconds: float | None = None
    losses: Mapping[str, int] = field(default_factory=dict)
    attempts_complete: bool = True


KEY = b"0123456789abcdef0123456789abcdef-first"
OTHER_KEY = b"fedcba9876543210fedcba9876543210-other"


def write_key_file(path: Path, *keys: bytes) -> Path:
    """A key file holding ``keys``, one per line, readable by its owner only."""
    path.write_bytes(b"\n".join(keys) + b"\n")
    path.chmod(0o600)
    return path


def craft(path: Path, version: Version = DEFAULT_VERSION) -> None:
    """Tamper with a snapshot as an attacker would: add a number, then fix the CRC-32.

    The new number goes into the "internal" list's payload (rewritten whole,
    so the bitmap stays well-formed); the header's count and size are fixed
    to match, and the trailer is recomputed. Only a signature can tell.
    """
    data = path.read_bytes()
    _, format_version, header_length = struct.unpack_from("<8sII", data)
    header = json.loads(data[16 : 16 + header_length])
    body = data[16 + header_length : len(data) - 4]
    signature = body[len(body) - 32 :] if format_version == 2 else b""
    payloads = body[: len(body) - len(signature)]
    rebuilt = b""
    for entry in header["lists"]:
        payload = payloads[entry["offset"] : entry["offset"] + entry["length"]]
        if entry["name"] == "internal":
            bitmap = BitMap64.deserialize(payload)
            bitmap.add(12025550147)
            payload = bitmap.serialize()
            entry["count"] = len(bitmap)
        entry["offset"] = len(rebuilt)
        entry["length"] = len(payload)
        rebuilt += payload
    for _ in range(3):
        encoded = json.dumps(header, sort_keys=True).encode()
        header["file_size"] = 16 + len(encoded) + len(rebuilt) + len(signature) + 4
    encoded = json.dumps(header, sort_keys=True).encode()
    out = struct.pack("<8sII", b"SUPPSNAP", format_version, len(encoded)) + encoded
    out += rebuilt + signature
    path.write_bytes(out + struct.pack("<I", zlib.crc32(out)))


DAY_AND_NIGHT_POLICIES = """\
version = "{version}"
default = "day"

[lists]
registry = "registry"
mine = "opt_out"
consent = "exemption"

[policies.day]
suppress = ["registry", "mine"]

[[policies.day.exemptions]]
list = "consent"
lifts = ["registry"]

[policies.day.window]
start = "{start}"
end = "21:00"

[policies.night]
suppress = ["registry", "mine"]
"""
"""A policy file: ``day`` (the default: registry and opt-outs, consent lifting the registry,
08:00-21:00 or from ``{start}``) and ``night`` (no window); fill in ``version`` and ``start``."""


def scrub_outputs(folder: Path, kinds: Iterable[str], stem: str = "leads") -> dict[str, bytes]:
    """The bytes of a scrub's row files by kind, gzip or not, uncompressed."""
    found = {}
    for kind in kinds:
        plain = folder / f"{stem}.{kind}.csv"
        packed = plain.with_name(plain.name + ".gz")
        found[kind] = (
            gzip.decompress(packed.read_bytes()) if packed.exists() else plain.read_bytes()
        )
    return found


WINDOW_AND_REASSIGNED_POLICIES = """\
version = "{version}"
default = "only"

[lists]
registry = "registry"
consent = "exemption"
fcc = "reassigned"

[policies.only]
suppress = ["registry"]

[[policies.only.exemptions]]
list = "consent"
lifts = ["registry"]

[policies.only.window]
start = "08:00"
end = "21:00"

[policies.rnd]
suppress = ["registry"]

[policies.rnd.reassigned]
list = "fcc"
data_begins = 2020-01-01
"""
"""A policy file: ``only`` (the default: the registry, consent lifting it, 08:00-21:00) and
``rnd`` (the registry and an FCC-style reassigned-numbers list); fill in ``version``."""


CAPPED_POLICIES = """\
version = "caps-1"

[lists]
registry = "registry"

[policies.capped]
suppress = ["registry"]

[[policies.capped.caps]]
per = "number"
max = 2
hours = 1

[[policies.capped.caps]]
per = "line"
max = 3
hours = 1
"""
"""A policy file whose one policy, ``capped``, allows 2 calls a number and 3 a line per hour."""


def scrub_with_two_lists(
    folder: Path, internal: Iterable[str], national: Iterable[str]
) -> ScrubOptions:
    """Local scrub options over two number files written in ``folder``: an opt-out list
    ``internal`` and a registry ``national``, region US, one process."""
    (folder / "internal.txt").write_text("".join(f"{number}\n" for number in internal))
    (folder / "national.txt").write_text("".join(f"{number}\n" for number in national))
    return ScrubOptions(
        list_files=(
            f"internal={folder / 'internal.txt'}",
            f"national:registry={folder / 'national.txt'}",
        ),
        region="US",
        processes=1,
    )
