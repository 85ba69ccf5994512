"""Dependency ranges and pins: pyproject.toml's floors, and constraints.txt's pins.

pyproject.toml's floors must not allow runtimes the generated code refuses.

The generated code in suppression/v1/ checks its runtime at import:
``suppression_pb2_grpc.py`` raises below ``GRPC_GENERATED_VERSION`` of grpcio, and
``suppression_pb2.py`` calls protobuf's ``ValidateProtobufRuntimeVersion`` with the
version of protoc that wrote it, which refuses any older runtime. A floor below
those lets ``pip install`` succeed and then every command crash. These tests read
the guards from the generated files themselves, so regenerating with a newer
``grpcio-tools`` fails here until the floors follow.

constraints.txt pins what the container installs: every runtime dependency, direct
or transitive (as installed here, the same Python minor version as the image), at
one exact version inside the ranges that pyproject.toml and the dependencies
themselves declare.
"""

from __future__ import annotations

import ast
import importlib.metadata
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
GENERATED = REPO / "suppression" / "v1"
CONSTRAINTS = REPO / "constraints.txt"
# Pinned too, though no package depends on it: the image upgrades pip before installing.
INSTALLER = {"pip"}
# Released in lockstep with grpcio; their own generated code carries the same guard.
GRPC_FAMILY = ("grpcio", "grpcio-health-checking", "grpcio-reflection")


def project() -> dict[str, Any]:
    with (REPO / "pyproject.toml").open("rb") as file:
        data: dict[str, Any] = tomllib.load(file)["project"]
    return data


def runtime_requirements() -> dict[str, Requirement]:
    requirements = [Requirement(text) for text in project()["dependencies"]]
    return {canonicalize_name(requirement.name): requirement for requirement in requirements}


def grpc_generated_version() -> Version:
    """``GRPC_GENERATED_VERSION = '...'`` in the generated service module."""
    tree = ast.parse((GENERATED / "suppression_pb2_grpc.py").read_text())
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(
                isinstance(t, ast.Name) and t.id == "GRPC_GENERATED_VERSION" for t in node.targets
            )
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return Version(node.value.value)
    raise AssertionError("suppression_pb2_grpc.py has no GRPC_GENERATED_VERSION assignment")


def protobuf_generated_versions() -> dict[str, Version]:
    """The gencode version each ``*_pb2.py`` passes to ``ValidateProtobufRuntimeVersion``."""
    found: dict[str, Version] = {}
    for path in sorted(GENERATED.glob("*_pb2.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "ValidateProtobufRuntimeVersion"
            ):
                # (domain, major, minor, patch, suffix, location)
                major, minor, patch, suffix = (ast.literal_eval(arg) for arg in node.args[1:5])
                found[path.name] = Version(f"{major}.{minor}.{patch}{suffix}")
    assert found, "no *_pb2.py in suppression/v1 validates its protobuf runtime"
    return found


def lowest_allowed(specifier: SpecifierSet) -> Version | None:
    """The floor a specifier set puts on versions, or None when it has none.

    A ``>`` bound is exclusive; taking it as the floor is still safe, since every
    version it allows lies above it.
    """
    floors = [
        Version(spec.version)
        for spec in specifier
        if spec.operator in (">=", ">", "==", "~=", "===") and "*" not in spec.version
    ]
    return max(floors) if floors else None


def assert_floor(name: str, required: Version) -> None:
    requirement = runtime_requirements().get(canonicalize_name(name))
    assert requirement is not None, f"{name} is not a runtime dependency in pyproject.toml"
    floor = lowest_allowed(requirement.specifier)
    assert floor is not None and floor >= required, (
        f"pyproject.toml allows {requirement}, but the generated code in suppression/v1 "
        f"refuses {name} below {required}: raise the floor to >={required}"
    )
    assert requirement.specifier.contains(required, prereleases=True), (
        f"pyproject.toml's {requirement} excludes {name} {required}, the version the "
        "generated code was made for"
    )


@pytest.mark.parametrize("name", GRPC_FAMILY)
def test_grpc_floors_cover_the_generated_service_guard(name: str) -> None:
    assert_floor(name, grpc_generated_version())


def test_protobuf_floor_covers_every_generated_message_guard() -> None:
    assert_floor("protobuf", max(protobuf_generated_versions().values()))


def test_grpcio_tools_pin_is_no_newer_than_the_lowest_supported_grpcio() -> None:
    # Code generated by a newer grpcio-tools would refuse the lowest grpcio allowed.
    dev = project()["optional-dependencies"]["dev"]
    (tools,) = [Requirement(text) for text in dev if Requirement(text).name == "grpcio-tools"]
    (pin,) = [Version(spec.version) for spec in tools.specifier if spec.operator == "=="]
    floor = lowest_allowed(runtime_requirements()["grpcio"].specifier)
    assert floor is not None and pin <= floor


def test_lowest_allowed_reads_the_floor_of_a_range() -> None:
    assert lowest_allowed(SpecifierSet(">=1.66,<2")) == Version("1.66")
    assert lowest_allowed(SpecifierSet("~=7.35.1")) == Version("7.35.1")
    assert lowest_allowed(SpecifierSet("<8")) is None


def constraint_pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for number, line in enumerate(CONSTRAINTS.read_text().splitlines(), 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        requirement = Requirement(text)
        specs = list(requirement.specifier)
        assert len(specs) == 1 and specs[0].operator == "==" and "*" not in specs[0].version, (
            f"constraints.txt:{number}: {text!r} is not an exact pin (name==version)"
        )
        assert not requirement.marker and not requirement.extras, f"constraints.txt:{number}"
        name = canonicalize_name(requirement.name)
        assert name not in pins, f"constraints.txt:{number}: {name} is pinned twice"
        pins[name] = Version(specs[0].version)
    return pins


def runtime_closure() -> dict[str, list[Requirement]]:
    """Every runtime dependency, direct or transitive, with the requirements naming it."""
    wanted: dict[str, list[Requirement]] = {}
    queue = list(runtime_requirements().values())
    while queue:
        requirement = queue.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(requirement.name)
        seen = name in wanted
        wanted.setdefault(name, []).append(requirement)
        if seen:
            continue
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            pytest.fail(f"{name} is a runtime dependency but is not installed: run `make test`")
        queue += [Requirement(text) for text in requires]
    return wanted


def test_constraints_pin_every_runtime_dependency_inside_its_range() -> None:
    pins = constraint_pins()
    for name, requirement in runtime_requirements().items():
        assert name in pins, f"{name} is a runtime dependency but constraints.txt does not pin it"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject.toml's {requirement}"
        )


def test_constraints_pin_every_transitive_dependency_and_nothing_else() -> None:
    pins = constraint_pins()
    closure = runtime_closure()
    missing = sorted(set(closure) - set(pins))
    assert not missing, f"constraints.txt does not pin these runtime dependencies: {missing}"
    for name, requirements in closure.items():
        for requirement in requirements:
            assert requirement.specifier.contains(pins[name], prereleases=True), (
                f"constraints.txt pins {name}=={pins[name]}, but a dependency requires "
                f"{requirement}"
            )
    extra = sorted(set(pins) - set(closure) - INSTALLER)
    assert not extra, f"constraints.txt pins packages nothing at runtime needs: {extra}"
