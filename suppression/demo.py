"""Synthetic data: registry-shaped number sets, and the demo data set that ``make run`` serves.

The registry model (documented so benchmark figures can be judged): US
numbers ``+1 NPA NXX XXXX``. Area codes (NPA) are taken in random order;
in each, an exchange (NXX) is in service with probability
``exchange_active``, each thousands-block of an exchange with probability
``block_active``, and a number in an active block is registered with a
probability drawn per block from Beta(2, 3) (mean 0.4). With the defaults an
area code holds about 9-10% of its possible numbers, close to the US
registry's 258 million numbers over about 335 area codes.

Usage: ``python -m suppression.demo DIR``.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pyroaring import BitMap64

from suppression.lists import ListInfo, ListKind, SuppressionLists, Version
from suppression.snapshot import write_snapshot
from suppression.snapshotkey import SnapshotKey

__all__ = ["DEMO_NUMBERS", "build_demo", "check_hints", "registry_shaped"]

logger = logging.getLogger(__name__)

DEMO_NUMBERS = {
    "+8613800138000": "internal (a customer said 'don't call me')",
    "+12125550123": "national registry",
    "+19005550199": "internal, through the premium-rate block +1900xxxxxxx",
    "+8613912345678": "campaign-spring",
    "+12025550147": "allowed",
}


def _area_codes() -> list[int]:
    # N11 codes are service codes; N9X is reserved for expansion.
    return [npa for npa in range(200, 1000) if npa % 100 != 11 and (npa // 10) % 10 != 9]


def registry_shaped(
    size: int,
    seed: int = 0,
    exchange_active: float = 0.7,
    block_active: float = 0.35,
) -> npt.NDArray[np.uint64]:
    """Generate ``size`` distinct US numbers clustered like a do-not-call registry.

    Returns:
        E.164 integers, sorted within each area code.
    """
    rng = np.random.default_rng(seed)
    area_codes = np.array(_area_codes())
    rng.shuffle(area_codes)
    exchanges = np.array([nxx for nxx in range(200, 1000) if nxx % 100 != 11])
    chunks: list[npt.NDArray[np.uint64]] = []
    total = 0
    for npa in area_codes:
        active = exchanges[rng.random(len(exchanges)) < exchange_active]
        blocks = (active[:, None] * 10 + np.arange(10)).ravel()
        blocks = blocks[rng.random(len(blocks)) < block_active]
        fill = rng.beta(2.0, 3.0, len(blocks))
        rows, offsets = np.nonzero(rng.random((len(blocks), 1000)) < fill[:, None])
        numbers = 10_000_000_000 + int(npa) * 10_000_000 + blocks[rows] * 1000 + offsets
        chunks.append(numbers.astype(np.uint64))
        total += len(numbers)
        if total >= size:
            return np.concatenate(chunks)[:size]
    raise ValueError(f"the registry model holds about {total:,} numbers; {size:,} is too many")


def _cn_mobiles(count: int, rng: np.random.Generator) -> npt.NDArray[np.uint64]:
    prefixes = np.array(
        [130, 131, 132, 135, 136, 137, 138, 139, 150, 151, 186, 188], dtype=np.uint64
    )
    chosen = rng.choice(prefixes, count)
    return (
        np.uint64(86 * 10**11)
        + chosen * np.uint64(10**8)
        + rng.integers(0, 10**8, count).astype(np.uint64)
    )


def build_demo(
    directory: Path,
    registry_size: int = 2_000_000,
    seed: int = 7,
    key: SnapshotKey | None = None,
) -> Path:
    """Write a demo snapshot with a registry, an opt-out list and a campaign list.

    Args:
        directory: where the snapshot goes.
        registry_size: numbers on the registry-shaped list.
        seed: the random generator's seed.
        key: sign the snapshot with this key (for a server run with ``--snapshot-key-file``).
    """
    rng = np.random.default_rng(seed)
    national = BitMap64(registry_shaped(registry_size, seed))
    national.add(12125550123)
    national.discard(12025550147)
    internal = BitMap64(_cn_mobiles(50_000, rng))
    internal.add(8613800138000)
    internal.add_range(19000000000, 19010000000)
    campaign = BitMap64(_cn_mobiles(10_000, rng))
    campaign.add(8613912345678)
    for bitmap in (national, internal, campaign):
        bitmap.discard(12025550147)
        bitmap.run_optimize()
    lists = SuppressionLists(
        {"national": national, "internal": internal, "campaign-spring": campaign},
        infos=[
            ListInfo("national", ListKind.REGISTRY),
            ListInfo("internal", ListKind.OPT_OUT),
            ListInfo("campaign-spring", ListKind.CAMPAIGN),
        ],
        version=Version(0, 1),
    )
    path = write_snapshot(directory, lists.view, key)
    (directory / ".complete").touch()
    return path


def check_hints(directory: Path, target: str = "localhost:50051") -> list[str]:
    """Commands that check the demo numbers, runnable as printed from any directory.

    The first asks a server on ``target``; the second reads ``directory`` itself.
    Both exit with code 1, ``check``'s "some numbers may not be dialed": all
    but one of :data:`DEMO_NUMBERS` are suppressed.
    """
    command = _suppression_command()
    numbers = " ".join(DEMO_NUMBERS)
    return [
        f"{command} check --target {target} {numbers}",
        f"{command} check --data-dir {shlex.quote(str(directory.resolve()))} {numbers}",
    ]


def _suppression_command() -> str:
    """The ``suppression`` console script beside this Python, else this Python running it."""
    script = Path(sys.executable).parent / "suppression"
    if script.is_file():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m suppression.cli"


def main(argv: list[str] | None = None) -> int:
    """Write the demo data set into a directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--registry-size", type=int, default=2_000_000)
    parser.add_argument(
        "--target",
        default="localhost:50051",
        help="the server address the printed check command names (default localhost:50051)",
    )
    parser.add_argument(
        "--snapshot-key-file",
        type=Path,
        metavar="PATH",
        help="sign the snapshot with the key in this file (see docs/operations.md)",
    )
    args = parser.parse_args(argv)
    key = SnapshotKey.from_file(args.snapshot_key_file) if args.snapshot_key_file else None
    path = build_demo(args.directory, args.registry_size, key=key)
    remote, local = check_hints(args.directory, args.target)
    print(f"demo data written to {path}")
    print(f"once `suppression serve --data-dir {args.directory}` runs, try:\n  {remote}")
    print(f"or, without a server:\n  {local}")
    print("(exit code 1 from check means some numbers may not be dialed, as here)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
