"""What importing the package costs: ``import batch_llm`` loads no other module of ours and none
of the heavy ones (asyncio, the SDKs, tenacity, importlib.metadata); each public name loads its
own module when first used. Timing lives in ``benchmarks/import_time.py``; these tests say what
is loaded, which does not depend on the machine."""

from __future__ import annotations

import ast
import email.utils
import functools
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

import batch_llm
import batch_llm.providers
from batch_llm._retry import retry_after

SOURCE = Path(batch_llm.__file__).resolve().parent
HEAVY = (
    "asyncio",
    "openai",
    "anthropic",
    "google.genai",
    "tenacity",
    "tornado",
    "importlib.metadata",
    "email",
    "sqlite3",
)


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter loads to run ``code`` (beyond those it starts with), this
    tree's batch_llm first on its path."""
    path = os.pathsep.join(p for p in (str(SOURCE.parent), os.environ.get("PYTHONPATH")) if p)
    result = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        check=True,
    )
    return set(result.stdout.split()) - _startup()


@functools.cache
def _startup() -> frozenset[str]:
    result = subprocess.run(
        [sys.executable, "-c", "import sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return frozenset(result.stdout.split())


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.startswith(HEAVY) and m.partition(".")[0] in HEAVY)


def test_importing_the_package_loads_nothing_else_of_ours_and_nothing_heavy() -> None:
    # Not even typing, which costs more than the package's own file.
    assert loaded_after("import batch_llm") == {"batch_llm"}


def test_an_error_class_or_the_price_table_loads_no_scheduler_and_no_adapter() -> None:
    modules = loaded_after(
        "from batch_llm import BatchLLMError, cost_report, get_prices\n"
        "assert get_prices().data\n"
        "assert cost_report().rows == ()"
    )
    assert heavy(modules) == []
    assert "batch_llm._scheduler" not in modules
    assert "batch_llm.providers" not in modules


def test_the_scheduler_loads_no_sdk_no_tenacity_and_only_the_adapter_it_is_given() -> None:
    modules = loaded_after(
        "import batch_llm\n"
        "scheduler = batch_llm.Scheduler(journal='off')\n"
        "batch_llm.resolve_provider('openai', api_key='sk-test')\n"
        "scheduler.close()"
    )
    assert "batch_llm.providers._openai" in modules
    assert not {"batch_llm.providers._anthropic", "batch_llm.providers._gemini"} & modules
    assert not {"openai", "anthropic", "tenacity", "importlib.metadata"} & modules


def test_the_providers_subpackage_is_reachable_as_an_attribute() -> None:
    modules = loaded_after(
        "import batch_llm\nassert batch_llm.providers.known_providers()\n"
        "assert 'OpenAIProvider' in dir(batch_llm.providers)"
    )
    assert "batch_llm.providers._openai" not in modules


def test_every_public_name_resolves_to_the_object_its_module_defines() -> None:
    for name in batch_llm.__all__:
        value = getattr(batch_llm, name)
        if name != "__version__":
            module = sys.modules[batch_llm._MODULES[name].replace(".", "batch_llm.", 1)]
            assert value is getattr(module, name), name
        assert name in dir(batch_llm), name
    namespace: dict[str, object] = {}
    exec("from batch_llm import *", namespace)
    assert set(batch_llm.__all__) <= set(namespace)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'Schedular'"):
        batch_llm.Schedular  # type: ignore[attr-defined]  # noqa: B018
    assert not hasattr(batch_llm, "__wrapped__")
    with pytest.raises(ImportError):
        exec("from batch_llm import Schedular", {})
    with pytest.raises(AttributeError):
        batch_llm.providers.NoSuchProvider  # type: ignore[attr-defined]  # noqa: B018


def test_what_type_checkers_see_is_what_is_exported() -> None:
    # The TYPE_CHECKING imports, the lazy table and __all__ name the same things.
    for package, table in ((batch_llm, batch_llm._MODULES), (batch_llm.providers, None)):
        assert package.__file__ is not None
        tree = ast.parse(Path(package.__file__).read_text())
        checked: dict[str, str] = {}
        for node in tree.body:
            if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
                for imp in node.body:
                    assert isinstance(imp, ast.ImportFrom)
                    for alias in imp.names:
                        checked[alias.name] = "." * imp.level + (imp.module or "")
        if table is not None:
            assert checked == table
            assert sorted(batch_llm.__all__) == sorted([*checked, "__version__"])
        else:
            assert checked == batch_llm.providers._ADAPTERS
            assert set(checked) <= set(batch_llm.providers.__all__)


def test_the_preset_names_are_the_presets() -> None:
    assert sorted(batch_llm.providers._PRESET_NAMES) == sorted(batch_llm.providers.PRESETS)


def test_the_version_is_the_one_pyproject_declares() -> None:
    pyproject = tomllib.loads((SOURCE.parent / "pyproject.toml").read_text())
    assert batch_llm.__version__ == pyproject["project"]["version"]


def test_retry_after_still_reads_an_http_date() -> None:
    # The email package that parses it loads only for this form.
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    failure = Exception()
    failure.response = SimpleNamespace(headers={"retry-after": date})  # type: ignore[attr-defined]
    wait = retry_after(failure)
    assert wait is not None
    assert 25 < wait <= 30
