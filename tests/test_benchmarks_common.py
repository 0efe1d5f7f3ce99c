# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""The benchmarks' shared measurement helpers (``benchmarks/_common.py``): a worker's peak RSS is its own."""

import builtins
import json
import resource
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def common():
    sys.path.insert(0, str(BENCH))
    try:
        import _common

        yield _common
    finally:
        sys.path.remove(str(BENCH))


def _vmhwm_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024.0


def test_worker_reports_its_own_peak_not_its_parents(common, tmp_path):
    """Linux copies the parent's peak into a child's ``ru_maxrss`` across fork + exec: a small worker started by a
    large parent used to report the parent's size as its own peak."""
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux /proc (the carry-over being guarded against is Linux's)")
    script = tmp_path / "tiny_worker.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(BENCH)!r})
        import _common as C
        payload = bytearray(20 * 2**20)  # the worker's own 20 MiB
        C.finish_worker({{"worker": True, "held": len(payload)}}, start_rss_mb=C.current_rss_mb())
    """))
    big = np.ones(800 * 2**20 // 8)  # the parent: 800 MiB, every page touched
    assert _vmhwm_mb() > 800
    result = common.run_worker(str(script), [])
    del big
    assert result["worker"] is True and result["in_process"] is False
    # an interpreter + 20 MiB: tens of MiB; the parent's 800+ MiB must not show up
    assert 20 < result["peak_rss_mb"] < 200, result
    assert result["peak_rss_mb"] >= result["start_rss_mb"] > 0


def test_finish_worker_keeps_a_peak_read_before_work_that_must_not_count(common, capsys):
    # bench_training_step reads its timed steps' peak before a FLOP-counting step that holds more memory
    early = common.peak_rss_mb()
    assert common.finish_worker({"peak_rss_mb": 12.5})["peak_rss_mb"] == 12.5
    assert common.finish_worker({})["peak_rss_mb"] >= early > 12.5
    assert json.loads(capsys.readouterr().out.splitlines()[0]) == {"peak_rss_mb": 12.5}


def test_peak_rss_falls_back_to_ru_maxrss_without_proc(common, monkeypatch):
    real_open = builtins.open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith("/proc/"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_proc)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    expected = peak / 2**20 if sys.platform == "darwin" else peak / 1024.0
    assert common.peak_rss_mb() == pytest.approx(expected, rel=0.05)


def test_scope_ground_parts_sees_every_part_and_undoes_its_patches(common):
    """The benchmarks' instrumentation of ``ground``: every building block runs inside its scope (nested
    patches of one attribute included), the moments are unchanged, and undoing restores every original."""
    from contextlib import contextmanager

    import torch

    import modeling_mscl.modeling_mscl as M
    from modeling_mscl import MSCLForTemporalGrounding

    from conftest import tiny_config

    torch.manual_seed(0)
    model = MSCLForTemporalGrounding(tiny_config()).eval()
    video, queries = torch.randn(60, model.config.video_input_dim), [torch.randn(5, model.config.text_input_dim)]
    plain = model.ground(video, queries)
    originals = (M._EvalFusion.__init__, M._EvalFusion.__call__, M.post_process_grounding, M._depthwise_k3)
    entered = []

    @contextmanager
    def scope(label):
        entered.append(label)
        yield

    labels = {part: part.upper() for part in common.GROUND_PARTS}
    undo = common.scope_ground_parts(model, scope, labels, extra=[(M, "post_process_grounding", "outer decode")])
    try:
        scoped = model.ground(video, queries)
    finally:
        undo()
    assert set(entered) == set(labels.values()) | {"outer decode"}
    assert entered.index("outer decode") < entered.index("DECODE")  # the later patch wraps the earlier one
    assert all(torch.equal(a, b) for a, b in zip(scoped, plain))
    assert (M._EvalFusion.__init__, M._EvalFusion.__call__, M.post_process_grounding, M._depthwise_k3) == originals
    assert not {"encode_video", "encode_text", "fuse_and_predict"} & set(vars(model))


def test_flop_counter_counts_the_gemms_torch_misses(common):
    """torch's FlopCounterMode counts ``mm`` but not the in-place ``addmm_`` nor oneDNN's fused linear; the
    benchmarks' counter counts each as 2·M·K·N, so the fast path's FLOPs (its k=3 convs accumulate with
    ``addmm_``) are not undercounted."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x, w, out = torch.randn(10, 6), torch.randn(6, 4), torch.zeros(10, 4)
    with FlopCounterMode(display=False) as plain:
        out.addmm_(x, w)
    assert plain.get_total_flops() == 0  # why the helper exists (fails loudly if torch starts counting it)
    with common.flop_counter() as counter:
        torch.mm(x, w)
        out.addmm_(x, w)
    assert counter.get_total_flops() == 2 * (2 * 10 * 6 * 4)
    import modeling_mscl.modeling_mscl as M

    if M._fused_linear_available():
        packed = torch.ops.mkldnn._reorder_linear_weight(w.t().contiguous().bfloat16(), None)
        with common.flop_counter() as counter:
            torch.ops.mkldnn._linear_pointwise(x.bfloat16(), packed, None, "none", [], "")
        assert counter.get_total_flops() == 2 * 10 * 6 * 4
