# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""notebooks/video_grounding.ipynb runs headless, grounds sentences in a rendered video file, and shows a model
that really grounds (trained vs untrained recall on fresh videos), with the figure rendered."""

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("av")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "video_grounding.ipynb"
DEMO = REPO / "notebooks" / "shapes_demo"


@pytest.mark.slow
@pytest.mark.usefixtures("python3_kernel")
def test_video_grounding_notebook(tmp_path, monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MSCL_SHAPES_DEMO", str(DEMO))
    figure = tmp_path / "video_grounding.png"
    monkeypatch.setenv("MSCL_NOTEBOOK_FIGURE", str(figure))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError on any error

    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "features from the cache: True" in text
    found = re.search(r"R1@0\.5 on (\d+) sentences of 10 fresh videos: trained ([\d.]+)%, untrained ([\d.]+)%", text)
    assert found, text
    n, trained, untrained = int(found.group(1)), float(found.group(2)), float(found.group(3))
    assert n >= 20
    # a model that reads the sentence: well above an untrained model of the same shape
    assert trained >= 60.0 and trained >= untrained + 30.0, (trained, untrained)
    assert any("image/png" in o.get("data", {}) for o in outputs), "the figure was not rendered"
    assert figure.is_file() and figure.stat().st_size > 10_000
    print(text)
