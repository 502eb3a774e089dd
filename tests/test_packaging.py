"""The README's `pip install -e ".[test]"` installs every package the tests import.

A test whose package only another extra (or CI) installs fails or skips for a new user; this
catches it when the import is written, wherever the suite runs.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

from packaging.requirements import Requirement

TESTS = Path(__file__).resolve().parent
PYPROJECT = TESTS.parent / "pyproject.toml"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_top_level_modules() -> dict[str, str]:
    """Third-party top-level module -> one test file importing it (function-level imports included)."""
    local = {path.stem for path in TESTS.glob("*.py")} | {"overspec"}
    found: dict[str, str] = {}
    for path in sorted(TESTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.setdefault(top, path.name)
    return found


def installed_by_test_extra(project: dict) -> set[str]:
    """Distributions `pip install -e ".[test]"` installs: pyproject's own lists, then their requirements."""
    pending = [Requirement(text) for text in project["dependencies"] + project["optional-dependencies"]["test"]]
    closure: set[str] = set()
    seen: set[tuple[str, frozenset]] = set()
    while pending:
        requirement = pending.pop()
        name, extras = canonical(requirement.name), frozenset(requirement.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        if name == canonical(project["name"]):  # a self-reference such as overspec[slurm]
            pending += [Requirement(t) for extra in extras for t in project["optional-dependencies"][extra]]
            continue
        closure.add(name)
        try:
            texts = requires(requirement.name) or []
        except PackageNotFoundError:
            continue  # reported by the test as a missing install, with the module that needs it
        for text in texts:
            child = Requirement(text)
            environments = [{"extra": extra} for extra in extras] or [{"extra": ""}]
            if child.marker is None or any(child.marker.evaluate(env) for env in environments):
                pending.append(child)
    return closure


def project() -> dict:
    return tomllib.loads(PYPROJECT.read_text())["project"]


def test_every_package_the_tests_import_is_in_the_test_extra():
    installs = installed_by_test_extra(project())
    distributions = packages_distributions()
    problems = []
    for module, test_file in sorted(imported_top_level_modules().items()):
        names = {canonical(d) for d in distributions.get(module, [])}
        if not names:
            problems.append(f"{test_file} imports {module}, which is not installed here: run "
                            'pip install -e ".[test]", and if that does not install it, add its package to the test extra')
        elif not names & installs:
            problems.append(f"{test_file} imports {module} ({', '.join(sorted(names))}), which the test extra "
                            "does not install: add that package to the test extra in pyproject.toml")
    assert not problems, "; ".join(problems)


def test_the_closure_follows_self_references_and_requirements():
    installs = installed_by_test_extra(project())
    # overspec[slurm] brings the plugin; scikit-learn brings scipy.
    assert {"pytest", "pyeer", "snakemake-executor-plugin-slurm", "scikit-learn", "scipy"} <= installs
    assert "overspec" not in installs
    without_pyeer = project()
    without_pyeer["optional-dependencies"]["test"] = [
        t for t in without_pyeer["optional-dependencies"]["test"] if not t.startswith("pyeer")
    ]
    assert "pyeer" not in installed_by_test_extra(without_pyeer)


def test_the_check_sees_function_level_imports():
    modules = imported_top_level_modules()
    assert modules["pyeer"] == "test_metrics_roc.py"  # imported inside a test function
    assert modules["snakemake_executor_plugin_slurm"] == "test_slurm_profile.py"
    assert {"numpy", "pytest", "torch"} <= modules.keys() and "overspec" not in modules and "json" not in modules
