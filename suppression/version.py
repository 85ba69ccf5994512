"""The installed package's version, for --version and the build-info metric."""

from __future__ import annotations

from importlib import metadata

__all__ = ["build_version", "package_version"]


def package_version(name: str) -> str:
    """An installed distribution's version, or ``unknown``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def build_version() -> str:
    """This package's version, or ``unknown`` when run from an uninstalled tree."""
    return package_version("suppression")
