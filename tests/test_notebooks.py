"""The notebooks run top to bottom (smoke settings: a tiny synthetic set, one epoch, random weights) and are saved clean."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
CELL_TIMEOUT_S = 300


def test_the_four_notebooks_are_there_and_saved_without_outputs():
    assert [path.name for path in NOTEBOOKS] == ["01_data_and_augmentation.ipynb", "02_small_cnn_from_scratch.ipynb",
                                                 "03_transfer_learning.ipynb", "04_what_the_network_sees.ipynb"]
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        nbformat.validate(notebook)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert code and all(not cell.outputs and cell.execution_count is None for cell in code), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_top_to_bottom_in_smoke_mode(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    # The kernel inherits this environment (and with it CATSDOGS_OFFLINE=1 from conftest: no downloads).
    monkeypatch.setenv("CATSDOGS_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("CATSDOGS_NOTEBOOK_OUTPUTS", str(tmp_path / "outputs"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    # "python3" is the interpreter running the tests (jupyter_client swaps the kernel's "python" for
    # sys.executable), so the kernel sees the same installed catsdogs; cwd is a fresh folder.
    client = NotebookClient(notebook, kernel_name="python3", timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any error
    outputs = tmp_path / "outputs"
    assert any(outputs.rglob("*.png")), "the notebook wrote no figure"
