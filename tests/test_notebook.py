# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""notebooks/quickstart.ipynb runs headless from top to bottom without an error: with the Quickstart run's
checkpoint when there is one, else training a short model itself and saying so."""

import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("python3_kernel")]  # a Jupyter kernel is a subprocess


def _execute(workdir, monkeypatch):
    """Run the notebook with ``workdir`` as its working directory; returns (stream text, outputs)."""
    # HF caches in the test's temp dir. The kernel plots with its headless inline backend (MPLBACKEND=Agg would
    # suppress the figure output checked below)
    monkeypatch.delenv("MSCL_CHECKPOINT", raising=False)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.setenv("HF_HOME", str(workdir / "hf_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(workdir)}}
    )
    started = time.time()
    client.execute()  # raises CellExecutionError on any error
    elapsed = time.time() - started

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "reloaded pipeline gives the same moments: True" in text
    assert any("image/png" in o.get("data", {}) for o in outputs), "the timeline plot was not rendered"
    print(f"notebook executed in {elapsed:.1f} s")
    print(text)
    return text, outputs


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    # no checkpoint anywhere: the notebook trains a short model itself, and says so in its output
    text, _ = _execute(tmp_path, monkeypatch)
    assert "No Quickstart checkpoint found" in text
    assert "this model has trained for only 3 steps" in text and "close to random" in text
    assert "loaded the" not in text


def test_quickstart_notebook_uses_the_quickstart_run(trained_quickstart_run, tmp_path, monkeypatch):
    """With the Quickstart run's folder at outputs/mscl-quickstart (as `python train_scripts/run.py` leaves it),
    the notebook grounds with that checkpoint and reports its training steps and recall."""
    import os

    (tmp_path / "outputs").mkdir()
    os.symlink(trained_quickstart_run["output_dir"], tmp_path / "outputs" / "mscl-quickstart")
    work = tmp_path / "notebooks"  # opened from notebooks/: the checkpoint is one folder up
    work.mkdir()
    text, _ = _execute(work, monkeypatch)
    metrics = trained_quickstart_run["metrics"]
    assert (f"loaded the Quickstart run's checkpoint {tmp_path / 'outputs' / 'mscl-quickstart'}: trained for "
            f"{metrics['global_step']} optimiser steps, R1@0.5 = {metrics['R1@0.5']:.1f}") in text
    assert "trained for only" not in text and "No Quickstart checkpoint" not in text
