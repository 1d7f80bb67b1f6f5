"""Each package re-exports its public names once, with a sorted and complete `__all__`."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

ROOTS = ["rxkube.streams", "rxkube.controllers", "rxkube.proxy", "rxkube.fakes"]


def _with_subpackages(roots: list[str]) -> list[str]:
    """The four packages and every public subpackage in them (e.g. rxkube.streams.operators)."""
    found = []
    for root in roots:
        found.append(root)
        package = importlib.import_module(root)
        for info in pkgutil.walk_packages(package.__path__, prefix=root + "."):
            if info.ispkg and not any(part.startswith("_") for part in info.name.split(".")):
                found.append(info.name)
    return found


PACKAGES = _with_subpackages(ROOTS)


def test_subpackages_are_discovered() -> None:
    assert "rxkube.streams.operators" in PACKAGES


def _private_modules(package: types.ModuleType) -> list[types.ModuleType]:
    modules = []
    for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
        leaf = info.name.rsplit(".", 1)[-1]
        if leaf.startswith("_") and leaf != "__main__":
            modules.append(importlib.import_module(info.name))
    return modules


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_names_exist(name: str) -> None:
    package = importlib.import_module(name)
    exported = list(package.__all__)
    assert exported == sorted(exported), f"{name}.__all__ is not sorted"
    assert len(exported) == len(set(exported)), f"{name}.__all__ has duplicates"
    missing = [n for n in exported if not hasattr(package, n)]
    assert not missing, f"{name}.__all__ names what the package does not define: {missing}"


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_complete(name: str) -> None:
    package = importlib.import_module(name)
    public = {
        n
        for n, value in vars(package).items()
        if not n.startswith("_") and not isinstance(value, types.ModuleType)
    }
    # `from __future__ import annotations` leaves a feature object named `annotations` behind.
    public.discard("annotations")
    assert public <= set(package.__all__), (
        f"{name} has public names missing from __all__: {sorted(public - set(package.__all__))}"
    )


@pytest.mark.parametrize("name", PACKAGES)
def test_private_modules_public_names_are_reexported(name: str) -> None:
    """What a private module declares public in its `__all__` is reachable from the package."""
    package = importlib.import_module(name)
    for module in _private_modules(package):
        if module.__name__.count(".") > name.count(".") + 1:
            continue  # subpackages curate their own names
        for exported in getattr(module, "__all__", []):
            assert exported in package.__all__, (
                f"{module.__name__}.{exported} is public but {name} does not re-export it"
            )
            assert getattr(package, exported) is getattr(module, exported)
