"""docs/architecture.md names every module of the project, and only modules that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("suppression", "loader")
GENERATED = ROOT / "suppression" / "v1"


def project_modules() -> list[str]:
    """Every hand-written module, as a path from the repository root."""
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "__init__.py" or GENERATED in path.parents:
                continue
            found.append(path.relative_to(ROOT).as_posix())
    return sorted(found)


def names(module: str, text: str) -> bool:
    """Whether ``text`` names ``module`` by its full path or, in suppression/, by its path there.

    ``cli.py`` must not count as named because ``loader/cli.py`` is, so a short
    path only counts where no path component or word precedes it.
    """
    package, _, rest = module.partition("/")
    forms = [module] if package == "loader" else [module, rest]
    return any(re.search(rf"(?<![\w/.-]){re.escape(form)}\b", text) for form in forms)


def test_the_walk_finds_the_modules() -> None:
    modules = project_modules()
    assert "suppression/changelog/follower.py" in modules
    assert "loader/cli.py" in modules
    assert not any(module.startswith("suppression/v1/") for module in modules)


def test_every_module_is_described() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [module for module in project_modules() if not names(module, text)]
    assert missing == [], f"docs/architecture.md does not describe {missing}"


def test_a_short_path_does_not_stand_for_another_package() -> None:
    assert names("suppression/cli.py", "`cli.py`: the command")
    assert not names("suppression/cli.py", "`loader/cli.py`: the loader's command")
    assert names("suppression/changelog/follower.py", "see `changelog/follower.py`")
    assert not names("loader/cli.py", "`cli.py`")


def test_every_module_it_names_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    named = set(re.findall(r"(?<![\w/.-])((?:suppression|loader)/[\w/]+\.py)\b", text))
    stale = sorted(path for path in named if not (ROOT / path).is_file())
    assert stale == [], f"docs/architecture.md names modules that do not exist: {stale}"


def test_it_stands_alone() -> None:
    """Every link resolves to a file of the repository; nothing points outside it."""
    text = DOC.read_text(encoding="utf-8")
    assert "shared/DESIGN" not in text
    outside = []
    for target in re.findall(r"\]\(([^)#\s]+)", text):
        if "://" in target:
            continue
        path = (DOC.parent / target).resolve()
        if ROOT not in path.parents or not path.exists():
            outside.append(target)
    assert outside == [], f"docs/architecture.md links outside the repository: {outside}"
