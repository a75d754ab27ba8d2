"""Every notebook in notebooks/ runs top to bottom (small settings).

The notebooks check their own numbers (log Z within 5 standard errors of the
exact value, energies against Kaufman's), so a notebook that runs is a
notebook whose claims hold at these settings.
"""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 5, [p.name for p in NOTEBOOKS]


def _fashion_mnist_installed() -> bool:
    from hamon_nnx import data

    try:
        data.fashion_mnist()
    except FileNotFoundError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    if path.stem.startswith("05") and not _fashion_mnist_installed():
        pytest.skip("notebook 05 reads Fashion-MNIST: apt-get install dataset-fashion-mnist")
    monkeypatch.setenv("HAMON_NOTEBOOK_QUICK", "1")
    book = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in book.cells if cell.cell_type == "code"), (
        f"{path.name} is committed with outputs; clear them"
    )
    client = nbclient.NotebookClient(
        book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    if os.environ.get("HAMON_NOTEBOOK_OUT"):  # keep executed copies to look at
        nbformat.write(book, Path(os.environ["HAMON_NOTEBOOK_OUT"]) / path.name)
