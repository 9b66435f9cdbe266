"""The package's top level: lazily loaded public names and submodules."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import sem_models


def test_import_is_light():
    # numpy and pandas are loaded only when a public name is first used
    code = ("import sys, sem_models; heavy = [m for m in ('numpy', 'pandas', 'scipy') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    code = "import sys, sem_models; sem_models.cfa; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize("name", [n for n in sem_models.__all__ if n != "__version__"])
def test_public_names_resolve(name):
    value = getattr(sem_models, name)
    assert getattr(value, "__name__", name) == name
    assert name in dir(sem_models)


def test_submodule_list_is_complete():
    root = Path(sem_models.__file__).parent
    modules = {p.stem for p in root.glob("*.py")} - {"__init__"}
    subpackages = {p.parent.name for p in root.glob("*/__init__.py")}
    assert modules | subpackages == sem_models._SUBMODULES
    assert sem_models.datasets.load("PoliticalDemocracy").shape == (75, 11)


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        sem_models.nothing  # noqa: B018


def test_public_names_are_not_shadowed_by_submodules():
    assert not set(sem_models._PUBLIC) & sem_models._SUBMODULES
    code = ("import importlib, sem_models; "
            "[importlib.import_module('sem_models.' + m) for m in sorted(sem_models._SUBMODULES)]; "
            "from sem_models import compare, response_surface; "
            "print(callable(compare), callable(response_surface))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True True"
