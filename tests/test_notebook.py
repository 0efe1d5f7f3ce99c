# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""notebooks/quickstart.ipynb runs headless from top to bottom without an error."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def _ensure_python3_kernel():
    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" in KernelSpecManager().find_kernel_specs():
        return
    pytest.importorskip("ipykernel")
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--user"], check=True, capture_output=True)
    if "python3" not in KernelSpecManager().find_kernel_specs():
        pytest.skip("no python3 Jupyter kernel could be registered")


def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    _ensure_python3_kernel()
    # the in-notebook training path (no checkpoint); HF caches in the test's temp dir. The kernel plots with
    # its headless inline backend (MPLBACKEND=Agg would suppress the figure output checked below)
    monkeypatch.delenv("MSCL_CHECKPOINT", raising=False)
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(tmp_path)}}
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
