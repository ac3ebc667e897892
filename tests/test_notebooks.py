"""The notebooks are committed with the outputs of a medium run, small and free of Kaggle photos, and run
top to bottom in smoke mode (a tiny synthetic set, one epoch, random weights)."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 300
MAX_TOTAL_BYTES = 5_000_000
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/svg+xml")
# A Kaggle photo's name (cat.123.jpg, dog.45.jpg), and the figures made of the split's photos: none is shown.
KAGGLE_NAME = re.compile(r"\b(?:cat|dog)\.\d+\.(?:jpe?g|png)\b", re.IGNORECASE)
FIGURES_OF_THE_SPLIT = {"samples.png", "augmented_batch.png", "wrong.png"}


def _outputs(notebook):
    for cell in notebook.cells:
        if cell.cell_type == "code":
            yield from ((cell, output) for output in cell.outputs)


def _text(output) -> str:
    if output.output_type == "stream":
        return output.text
    if output.output_type == "error":
        return "\n".join(output.traceback)
    return "\n".join(str(value) for key, value in output.get("data", {}).items() if key not in IMAGE_TYPES)


def test_the_four_notebooks_are_there_with_the_outputs_of_a_medium_run():
    assert [path.name for path in NOTEBOOKS] == ["01_data_and_augmentation.ipynb", "02_small_cnn_from_scratch.ipynb",
                                                 "03_transfer_learning.ipynb", "04_what_the_network_sees.ipynb"]
    total = sum(path.stat().st_size for path in NOTEBOOKS)
    assert total < MAX_TOTAL_BYTES, f"the notebooks take {total / 1e6:.1f} MB together (at most 5)"
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        assert notebook.metadata.get("catsdogs", {}).get("mode") == "medium", \
            f"{path.name}: not saved from a medium run (python notebooks/execute.py --mode medium)"
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        # Run once, top to bottom, in one kernel: 1, 2, 3, ...
        assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1)), path.name
        for cell in code:  # every code cell here prints or shows something
            assert cell.outputs, f"{path.name}: no output from the cell {cell.source[:60]!r}"
        errors = [output for _, output in _outputs(notebook) if output.output_type == "error"]
        assert not errors, f"{path.name}: {errors[0].ename}: {errors[0].evalue}"
        images = [output for _, output in _outputs(notebook)
                  if any(kind in output.get("data", {}) for kind in IMAGE_TYPES)]
        assert images, f"{path.name} shows no figure"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_no_kaggle_photo_is_shown(path):
    """Kaggle's terms: no photo of the split, nor a picture made from one, is embedded in a notebook.

    Every embedded image must come through the notebooks' ``show``, which records the file shown; that
    file is never a photo of the split nor a figure made of its photos, no output names a photo of the
    split, and each embedded image is a real, small PNG or JPEG.
    """
    from PIL import Image

    notebook = nbformat.read(path, as_version=4)
    for cell, output in _outputs(notebook):
        where = f"{path.name}, cell {cell.source[:50]!r}"
        assert not KAGGLE_NAME.search(_text(output)), f"{where}: an output names a Kaggle photo"
        kinds = [kind for kind in output.get("data", {}) if kind in IMAGE_TYPES]
        if not kinds:
            continue
        figure = output.get("metadata", {}).get("catsdogs", {}).get("figure")
        assert figure, f"{where}: an image shown without show(), which records its file"
        assert not KAGGLE_NAME.search(figure) and figure not in FIGURES_OF_THE_SPLIT, f"{where}: shows {figure}"
        assert kinds in (["image/png"], ["image/jpeg"]), f"{where}: {kinds}"
        data = base64.b64decode(output.data[kinds[0]])
        with Image.open(io.BytesIO(data)) as picture:
            assert picture.width <= 900, f"{where}: {figure} is {picture.width} px wide"
        assert len(data) < 600_000, f"{where}: {figure} takes {len(data) / 1e3:.0f} kB"


def _setup_cell(path: Path) -> str:
    notebook = nbformat.read(path, as_version=4)
    return next(cell.source for cell in notebook.cells if cell.cell_type == "code")


def test_the_notebooks_share_one_setup_cell():
    assert len({_setup_cell(path) for path in NOTEBOOKS}) == 1


@pytest.mark.parametrize(("mode", "smoke", "expected"), [
    (None, None, "full"), (None, "1", "smoke"), (None, "0", "full"), ("medium", None, "medium"),
    ("Medium", "1", "medium"), ("smoke", None, "smoke"), ("full", "1", "full"), ("fast", None, ValueError)])
def test_the_mode_comes_from_the_environment(mode, smoke, expected, tmp_path, monkeypatch):
    for name, value in (("CATSDOGS_NOTEBOOK_MODE", mode), ("CATSDOGS_NOTEBOOK_SMOKE", smoke)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("CATSDOGS_NOTEBOOK_OUTPUTS", str(tmp_path / "outputs"))
    namespace: dict = {}
    if expected is ValueError:
        with pytest.raises(ValueError, match="smoke, medium or full"):
            exec(_setup_cell(NOTEBOOKS[0]), namespace)
        return
    exec(_setup_cell(NOTEBOOKS[0]), namespace)
    assert (namespace["MODE"], namespace["SMOKE"]) == (expected, expected == "smoke")
    assert namespace["OUTPUTS"] == tmp_path / "outputs" and namespace["OUTPUTS"].is_dir()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_top_to_bottom_in_smoke_mode(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    # The kernel inherits this environment (and with it CATSDOGS_OFFLINE=1 from conftest: no downloads).
    monkeypatch.delenv("CATSDOGS_NOTEBOOK_MODE", raising=False)
    monkeypatch.setenv("CATSDOGS_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("CATSDOGS_NOTEBOOK_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)  # a copy in memory: the committed outputs are replaced
    # "python3" is the interpreter running the tests (jupyter_client swaps the kernel's "python" for
    # sys.executable), so the kernel sees the same installed catsdogs; cwd is a fresh folder.
    client = NotebookClient(notebook, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    outputs = tmp_path / "outputs"
    assert any(outputs.rglob("*.png")), "the notebook wrote no figure"
    assert "smoke run" in next(cell for cell in notebook.cells if cell.cell_type == "code").outputs[0].text
