from __future__ import annotations

import subprocess
import sys

import suppression


def test_public_api_is_pinned() -> None:
    assert suppression.__all__ == sorted(suppression.__all__)
    assert suppression.__all__ == [
        "Change",
        "ChangeLogError",
        "ChangeLogOptions",
        "CheckOutcome",
        "ConfigError",
        "ConsentRequiredError",
        "DataSource",
        "EmbeddedReplica",
        "Entry",
        "Freshness",
        "InvalidEntryError",
        "InvalidInputError",
        "InvalidReason",
        "InvalidRequestError",
        "ListFileSpec",
        "ListInfo",
        "ListKind",
        "ListView",
        "LoadedData",
        "Normalizer",
        "NotReadyError",
        "NumberBlock",
        "NumberFileError",
        "Op",
        "Replica",
        "Settings",
        "Snapshot",
        "SnapshotError",
        "SnapshotOptions",
        "SuppressionError",
        "SuppressionLists",
        "UnknownListError",
        "Verdict",
        "Version",
        "VersionError",
        "check_batch",
        "mask_number",
        "parse_block",
        "read_snapshot",
        "write_snapshot",
    ]
    for name in suppression.__all__:
        assert getattr(suppression, name) is not None


def _modules_after(statement: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``statement``."""
    code = f"import sys\n{statement}\nprint('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    return set(out.split())


def test_the_core_loads_no_redis_grpc_or_follower() -> None:
    for statement in (
        "import suppression.e164",
        "import suppression",
        "from suppression import Normalizer, SuppressionLists, check_batch",
    ):
        loaded = _modules_after(statement)
        assert "redis" not in loaded, statement
        assert "grpc" not in loaded, statement
        assert "suppression.changelog.follower" not in loaded, statement


def test_the_loader_loads_no_follower() -> None:
    loaded = _modules_after("import loader.cli")
    assert "suppression.changelog.follower" not in loaded
    assert "suppression.replica" not in loaded


def test_every_error_derives_from_the_root() -> None:
    import importlib
    import pkgutil

    import loader

    for package in (suppression, loader):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".v1" in info.name:
                continue
            module = importlib.import_module(info.name)
            for value in vars(module).values():
                if (
                    isinstance(value, type)
                    and issubclass(value, BaseException)
                    and value.__module__.startswith(("suppression", "loader"))
                ):
                    assert issubclass(value, suppression.SuppressionError), value
