"""`notebooks/inference.ipynb` runs top to bottom against the shipped models (nbclient), so it cannot rot
unseen as the API changes."""

from __future__ import annotations

import os
import sys

import pytest
from conftest import REPO_ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def test_inference_notebook_runs_against_the_shipped_models(monkeypatch):
    # the "python3" kernel starts `python` from PATH: this interpreter's, with vihtr installed
    monkeypatch.setenv("PATH", os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]))
    notebook = nbformat.read(REPO_ROOT / "notebooks" / "inference.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(REPO_ROOT / "notebooks")}},
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails
    printed = [
        "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")
        for cell in notebook.cells
        if cell.cell_type == "code"
    ]
    assert printed[1].startswith("method ctc, domain auto")
    verdicts = printed[2].splitlines()
    assert len(verdicts) == 6 and {v.split()[0] for v in verdicts} <= {"accept", "review"}
    assert [line.strip() for line in printed[3].splitlines()][::4] == ["general", "prose", "address", "auto"]
    assert len(printed[4].splitlines()) == 3
    figure = [o for o in notebook.cells[3].outputs if "image/png" in o.get("data", {})]
    assert figure, "the first reading draws its lines"
