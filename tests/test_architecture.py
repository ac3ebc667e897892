"""The architecture holds: layers as contracts, constants defined once, no backend switching, deferred imports only in commands."""

from __future__ import annotations

import ast
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import catsdogs
from catsdogs import config

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = [ROOT / "catsdogs", ROOT / "data_prep", ROOT / "benchmarks"]
COMMANDS = {"train", "predict", "evaluate", "visualize", "saved", "export", "serve", "experiments", "audit"}  # catsdogs/<name>.py: what users type


def python_files(folders: list[Path]) -> list[Path]:
    return sorted(path for folder in folders for path in folder.rglob("*.py"))


def all_catsdogs_modules() -> list[str]:
    return sorted(module.name for module in pkgutil.walk_packages(catsdogs.__path__, "catsdogs."))


def test_importing_every_module_leaves_the_matplotlib_backend_alone():
    code = ("import importlib, matplotlib\n"
            f"for name in {all_catsdogs_modules()!r}:\n"
            "    importlib.import_module(name)\n"
            "print(matplotlib.get_backend())\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "MPLBACKEND": "svg", "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "svg"


ONCE = {config.DEFAULT_IMAGE_SIZE: "DEFAULT_IMAGE_SIZE", config.DEFAULT_SEED: "DEFAULT_SEED",
        config.SPLITS: "SPLITS", config.DEFAULT_DATA_DIR: "DEFAULT_DATA_DIR"}


def literal_constants(path: Path) -> list[str]:
    """Where ``path`` spells one of the ``ONCE`` values as a literal instead of importing its name."""
    offences = []
    for node in ast.walk(ast.parse(path.read_text())):
        value = None
        if isinstance(node, ast.Constant) and type(node.value) in (int, str):
            value = node.value
        elif isinstance(node, (ast.Tuple, ast.List)) and all(isinstance(e, ast.Constant) for e in node.elts):
            value = tuple(e.value for e in node.elts)
        if value in ONCE:
            offences.append(f"{path.name}:{node.lineno} writes {ONCE[value]} as {value!r}")
    return offences


def test_the_default_image_size_seed_and_split_names_are_written_once():
    """Only catsdogs/config.py may spell them; everything else imports the names."""
    offences = [offence for path in python_files(PRODUCT) if path != ROOT / "catsdogs" / "config.py"
                for offence in literal_constants(path)]
    assert not offences, "\n".join(offences)


def test_the_literal_check_finds_each_kind(tmp_path):
    source = tmp_path / "bad.py"
    source.write_text("SIZE = 150\nSEED = 1337\nNAMES = ('train', 'validation', 'test')\nDATA = 'data/cats_vs_dogs_small'\n"
                      "OTHER = (150.5, 'train', 1338)\n")
    assert [offence.split(" writes ")[1].split(" as ")[0] for offence in literal_constants(source)] == [
        "DEFAULT_IMAGE_SIZE", "DEFAULT_SEED", "SPLITS", "DEFAULT_DATA_DIR"]


def _function_imports(path: Path) -> list[tuple[int, str]]:
    """(line, the comment that explains it) of every import inside a function.

    The explaining comment is on the import's own line or just above the block of imports it belongs to.
    """
    lines = path.read_text().splitlines()
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for child in ast.walk(node):
                if isinstance(child, (ast.Import, ast.ImportFrom)):
                    index = child.lineno - 1
                    comment = lines[index].partition("#")[2]
                    while index > 0 and lines[index - 1].strip().startswith(("from ", "import ")):
                        index -= 1
                    above = lines[index - 1].strip() if index > 0 else ""
                    found.append((child.lineno, comment + (above if above.startswith("#") else "")))
    return found


# The library modules that may defer an import: the prediction interface's one way in to Keras (a .keras file), the
# Keras classifier's TensorFlow graphs (prediction from files also runs on JAX alone), the server's Grad-CAM.
LIBRARY_DEFERRALS = {"catsdogs/runtime/opening.py", "catsdogs/runtime/keras_classifier.py",
                     "catsdogs/server/overlays.py"}


def test_imports_inside_functions_only_defer_tensorflow_in_commands():
    offences = []
    for path in python_files([ROOT / "catsdogs", ROOT / "data_prep"]):
        is_command = path.parent == ROOT / "catsdogs" and path.stem in COMMANDS | {"cli"}
        may_defer = is_command or str(path.relative_to(ROOT)) in LIBRARY_DEFERRALS
        for line, context in _function_imports(path):
            if not may_defer:
                offences.append(f"{path.relative_to(ROOT)}:{line}: an import inside a function in a library module")
            elif "deferred" not in context:
                offences.append(f"{path.relative_to(ROOT)}:{line}: a deferred import needs a '# deferred: why' comment")
    assert not offences, "\n".join(offences)


def test_the_public_api_resolves_every_name_it_lists():
    for name in catsdogs.__all__:
        assert getattr(catsdogs, name) is not None, name
    with pytest.raises(AttributeError):
        catsdogs.no_such_thing  # noqa: B018


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter not installed (pip install -e '.[dev]')")
def test_the_import_contracts_hold():
    result = subprocess.run(["lint-imports", "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout



def imported_test_modules(path: Path) -> list[str]:
    """The test modules and conftest files that ``path`` imports, at any depth of its code."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                   else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        names += [name for name in modules if name.split(".")[0].startswith(("test_", "conftest"))]
    return names


def test_no_test_module_imports_another_shared_helpers_live_in_tests_helpers():
    tests = Path(__file__).resolve().parent
    offences = [f"{path.relative_to(ROOT)} imports {name}" for path in python_files([tests])
                for name in imported_test_modules(path)]
    assert not offences, "\n".join(offences)


def test_the_test_import_check_finds_each_kind(tmp_path):
    source = tmp_path / "test_x.py"
    source.write_text("import conftest\nfrom test_y import z\nfrom helpers.images import write_image\n"
                      "def f():\n    from conftest_data import x\n")
    assert imported_test_modules(source) == ["conftest", "test_y", "conftest_data"]


def listed_modules(docstring: str) -> set[str]:
    """The names a package docstring lists as ``- ``name``: ...`` bullets."""
    return set(re.findall(r"^- ``(\w+)``", docstring, re.M))


@pytest.mark.parametrize("package", sorted(p.name for p in (ROOT / "catsdogs").iterdir() if (p / "__init__.py").is_file()))
def test_each_package_docstring_lists_exactly_its_modules(package):
    folder = ROOT / "catsdogs" / package
    modules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    docstring = ast.get_docstring(ast.parse((folder / "__init__.py").read_text())) or ""
    assert listed_modules(docstring) == modules, f"catsdogs/{package}/__init__.py lists {sorted(listed_modules(docstring))}"


def test_the_top_docstring_names_every_command_package_and_module():
    docstring = catsdogs.__doc__ or ""
    named = set(re.findall(r"``(\w+)``", docstring))
    top = {p.stem for p in (ROOT / "catsdogs").glob("*.py") if p.stem != "__init__"}
    packages = {p.name for p in (ROOT / "catsdogs").iterdir() if (p / "__init__.py").is_file()}
    assert top | packages <= named, sorted((top | packages) - named)


def test_the_readme_names_every_module_with_slow_tests():
    """``pytest -m slow`` is described in the README by what it runs."""
    slow = sorted(path.name for path in python_files([ROOT / "tests"]) if "mark.slow" in path.read_text()
                  and path.name.startswith("test_") and path != Path(__file__).resolve())
    readme = (ROOT / "README.md").read_text()
    sentence = readme[readme.index("`pytest -m slow`"):].split("\n\n")[0]
    assert slow and all(f"tests/{name}" in sentence for name in slow), (slow, sentence)


def test_the_library_logs_and_only_commands_print():
    """``print`` belongs to the commands (and ``cli``); library modules log through ``logging``."""
    commands = {ROOT / "catsdogs" / f"{name}.py" for name in COMMANDS | {"cli"}} | {ROOT / "data_prep" / "cli.py"}
    offences = [f"{path.relative_to(ROOT)}:{node.lineno}" for path in python_files([ROOT / "catsdogs", ROOT / "data_prep"])
                if path not in commands for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"]
    assert not offences, offences
