# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Smoke tests of the benchmark scripts (``benchmarks/``): each ``--quick`` mode runs on tiny sizes.

Most run in this process (``--in-process``: one torch import for the whole file); one test goes through
the fresh-subprocess path that the real measurements use. The numbers are meaningless; the tests only
keep the scripts from rotting (arguments, worker protocol, result files, the package-vs-baseline check).
"""

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench():
    import torch

    threads = torch.get_num_threads()  # the scripts' --threads changes the process-wide setting
    sys.path.insert(0, str(BENCH))
    try:
        yield lambda name: importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))
        torch.set_num_threads(threads)


def _files(out, name):
    assert (out / f"{name}.json").is_file() and (out / f"{name}.md").is_file()
    data = json.loads((out / f"{name}.json").read_text())
    assert data["machine"]["torch"] and "load_note" in data
    return data


def test_tacos_test_quick_package_matches_baseline(bench, tmp_path):
    data = bench("bench_tacos_test").main(["--quick", "--in-process", "--threads", "1", "--out", str(tmp_path)])
    saved = _files(tmp_path, "tacos_test_quick")
    assert saved["equivalence"]["mismatching_queries"] == 0
    assert set(data["results"]) == {"package", "bf16", "autocast", "baseline"}
    assert data["valid_flops"]["total"] > 0 and data["gemm_floor_s"]["fp32"] > 0
    assert data["queries"] == sum(v["queries"] for v in data["results"]["package"]["per_video"])
    work = data["valid_flops"]
    assert len(work["per_video"]) == data["videos"] and sum(work["per_video"]) == work["total"]
    # the per-video-rate floor: each video's FLOPs at the GEMM rate its worker measured right before timing it
    for path, precision in (("package", "fp32"), ("bf16", "bf16")):
        per_video = data["results"][path]["per_video"]
        expected = sum(w / (v[f"gemm_gflops_{precision}"] * 1e9) for w, v in zip(work["per_video"], per_video))
        assert data["gemm_floor_per_video_rate_s"][path] == pytest.approx(expected) and expected > 0
    # the bound on any bf16 speed-up over autocast: autocast's time over the fast path's GEMMs at the bf16 rate
    fraction = data["results"]["package"]["flops"]["fast_path_fraction"]
    bound = data["results"]["autocast"]["total_s"] / (fraction * data["gemm_floor_s"]["bf16"])
    assert data["bf16_speedup_bound_over_autocast"] == pytest.approx(bound) and fraction > 0
    assert f"over (b') here: {bound:.2f}×" in (tmp_path / "tacos_test_quick.md").read_text()


def test_tacos_test_quick_shape_bucket_paths(bench, tmp_path):
    """``bf16-exact`` (buckets off) runs beside ``bf16``; every path records its first pass."""
    data = bench("bench_tacos_test").main(["--quick", "--in-process", "--threads", "1", "--paths", "package,bf16,bf16-exact",
                                           "--name", "buckets_quick", "--out", str(tmp_path)])
    _files(tmp_path, "buckets_quick")
    assert set(data["results"]) == {"package", "bf16", "bf16-exact"} and data["equivalence"] is None
    for r in data["results"].values():
        assert r["first_pass_s"] == pytest.approx(sum(v["runs_s"][0] for v in r["per_video"]))
    assert "(b−) vs (a)" in (tmp_path / "buckets_quick.md").read_text()


def test_shape_buckets_quick(bench, tmp_path):
    data = bench("bench_shape_buckets").main(["--quick", "--in-process", "--threads", "1", "--out", str(tmp_path)])
    saved = _files(tmp_path, "shape_buckets_quick")
    assert set(saved["results"]) == {"buckets", "exact"} and saved["lengths"] == [100, 140, 180, 220]
    for r in data["results"].values():
        assert len(r["first_s"]) == len(r["second_s"]) == len(r["rss_mb"]) == 4
        assert r["first_pass_s"] == pytest.approx(sum(r["first_s"]))
    # the same model and inputs: buckets change the shapes, not the moments (random weights: near ties aside)
    assert data["top1_agreement"]["mean_tiou"] > 0.9


def test_profile_quick(bench, tmp_path):
    data = bench("bench_profile").main(["--quick", "--in-process", "--threads", "1", "--out", str(tmp_path)])
    saved = _files(tmp_path, "profile_quick")
    assert set(saved["results"]) == {"fp32", "bf16"}
    for r in data["results"].values():
        cats, phases = r["categories_s"], r["phases_s"]
        assert set(cats) == set(bench("bench_profile").CATEGORIES) and cats["GEMM"] > 0
        assert cats["decode + Soft-NMS"] > 0 and phases["fusion + heads"] > 0 and phases["video encoding"] > 0
    # the class-level instrumentation is undone after an in-process run
    import modeling_mscl.modeling_mscl as M

    assert M._EvalFusion.__call__.__qualname__ == "_EvalFusion.__call__"
    assert M.DepthwiseConv.forward.__qualname__ == "DepthwiseConv.forward"


def test_profile_categories(bench):
    mod = bench("bench_profile")
    assert mod.categorize("aten::addmm", None) == "GEMM" and mod.categorize("aten::addmm_", None) == "GEMM"
    assert mod.categorize("aten::copy_", None) == "casts / copies" and mod.categorize("aten::relu_", None) == "activations"
    assert mod.categorize("aten::_index_put_impl_", None) == "casts / copies"
    assert mod.categorize("aten::native_layer_norm", None) == "normalisation"
    assert mod.categorize("aten::_to_copy", None) == "casts / copies"
    assert mod.categorize("graph_1_cpp_fused_gelu_view_2", None) == "compiled fused kernels"
    assert mod.categorize("aten::mul", "depthwise conv") == "depthwise conv"
    videos = [(f"v{i}", s, [5] * 60) for i, s in enumerate([300, 100, 900, 500, 700, 200])]
    picked = mod.subset_shapes(videos, 3, 10)
    assert [s for _, s, _ in picked] == [100, 300, 900] and all(len(t) == 10 for _, _, t in picked)


def test_long_videos_quick(bench, tmp_path):
    data = bench("bench_long_videos").main(["--quick", "--in-process", "--threads", "1", "--lengths", "200",
                                            "--queries", "1,2", "--out", str(tmp_path)])
    _files(tmp_path, "long_videos_quick")
    assert [r["queries"] for r in data["results"]] == [1, 2]
    assert {"video encoding", "fusion + heads", "decode + Soft-NMS"} <= set(data["results"][0]["phases_s"])


def test_scaling_quick(bench, tmp_path):
    data = bench("bench_scaling").main(["--quick", "--in-process", "--threads", "1", "--factors", "1,2",
                                       "--queries", "2", "--rounds", "2", "--out", str(tmp_path)])
    _files(tmp_path, "scaling_quick")
    assert [r["length"] for r in data["results"]] == [128, 256]
    first, last = data["results"]
    assert len(first["rounds_s"]) == len(last["rounds_s"]) == data["rounds"] == 2  # every length once per round
    # the time ratio is the median (here: the mean of two) of each round's own ratio
    expected = (last["rounds_s"][0] / first["rounds_s"][0] + last["rounds_s"][1] / first["rounds_s"][1]) / 2
    assert data["ratios"]["time"] == pytest.approx(expected) and data["round_time_ratios"] == pytest.approx(
        [b / a for a, b in zip(first["rounds_s"], last["rounds_s"])])


def test_tile_policy_quick(bench, tmp_path):
    import modeling_mscl.modeling_mscl as M

    before = (M._tile_scale, M._run_rows)
    data = bench("bench_tile_policy").main(["--quick", "--in-process", "--threads", "1", "--out", str(tmp_path)])
    saved = _files(tmp_path, "tile_policy_quick")
    assert (M._tile_scale, M._run_rows) == before  # the in-process workers' patches are undone
    assert saved["policies"] == ["cpu", "gpu"] and [r["scale"] for r in data["results"].values()] == [1, 64]
    cpu, gpu = data["results"]["cpu"], data["results"]["gpu"]
    assert cpu["queries"] == gpu["queries"] == 8 and cpu["calls"] >= gpu["calls"] > 0
    for r in (cpu, gpu):  # the totals are the video-by-video counts
        assert [v["queries"] for v in r["per_video"]] == [4, 4] and r["ops"] == sum(v["ops"] for v in r["per_video"])
        assert r["calls"] == sum(v["calls"] for v in r["per_video"])
    assert data["ops_ratio"] == pytest.approx(cpu["ops"] / gpu["ops"])
    assert data["max_moment_difference"] < 1e-4  # the same moments, whatever the tiles


def test_tile_policy_counts_ops_without_views(bench):
    import torch

    mod = bench("bench_tile_policy")
    x = torch.randn(3, 4)
    out, n = mod.count_ops(lambda: (x.view(-1) + 1).view(3, 4).t().sum())  # add, sum: two ops, the rest views
    assert n == 2 and out == pytest.approx(float(x.sum() + 12))
    a = [[[[0.0, 1.0, 0.5]], [[2.0, 3.0, 0.25], [4.0, 5.0, 0.1]]]]
    b = [[[[0.0, 1.5, 0.5]], [[2.0, 3.0, 0.25], [4.0, 5.0, 0.3]]]]
    assert mod.max_moment_difference(a, b) == pytest.approx(0.5)
    assert mod.max_moment_difference(a, [[[[0.0, 1.0, 0.5]], [[2.0, 3.0, 0.25]]]]) == float("inf")


def test_training_step_quick(bench, tmp_path):
    data = bench("bench_training_step").main(["--quick", "--in-process", "--threads", "1", "--profile", "--out",
                                              str(tmp_path)])
    _files(tmp_path, "training_step_quick")
    rate = data["machine"]["gemm_gflops_fp32"]
    for r in data["results"].values():
        assert r["median_s"] > 0 and all(v == v for v in r["losses"].values())  # finite
        assert r["flops"] > 0 and r["gemm_floor_s"] == pytest.approx(r["flops"] / (rate * 1e9))
    assert data["results"]["without contrastive"]["losses"]["loss_within"] == 0.0
    # checkpointing recomputes fusion + heads in the backward pass: more FLOPs than the plain step
    plain, ckpt = data["results"]["with contrastive (default)"], data["results"]["with contrastive, activation checkpointing"]
    assert ckpt["flops"] > plain["flops"]
    # only the default variant is profiled, by bench_profile's op kinds and the training step's own
    assert [name for name, r in data["results"].items() if "profile" in r] == ["with contrastive (default)"]
    kinds = plain["profile"]["kinds"]
    assert kinds["GEMM"] > 0 and set(kinds) <= set(bench("bench_profile").CATEGORIES) | {
        "dropout masks (RNG)", "optimiser + clipping", "autograd engine"}
    assert "Where the default step's time goes" in (tmp_path / "training_step_quick.md").read_text()


def test_training_step_op_kinds(bench):
    from types import SimpleNamespace

    events = [SimpleNamespace(name=n, self_cpu_time_total=us) for n, us in [
        ("aten::mm", 4e6), ("aten::addmm", 1e6), ("aten::bernoulli_", 2e6), ("aten::gelu_backward", 3e5),
        ("aten::threshold_backward", 1e5), ("aten::native_layer_norm_backward", 2e5), ("aten::_softmax_backward_data", 5e4),
        ("Optimizer.step#AdamW.step", 1e4), ("aten::_foreach_mul_", 2e4),
        ("autograd::engine::evaluate_function: MulBackward0", 4e5), ("aten::mul", 7e5), ("aten::as_strided", 3e4)]]
    got = bench("bench_training_step").op_kinds(events)
    assert got["kinds"] == pytest.approx({"GEMM": 5.0, "dropout masks (RNG)": 2.0, "elementwise": 0.7,
                                          "autograd engine": 0.4, "activations": 0.4, "normalisation": 0.2,
                                          "softmax": 0.05, "optimiser + clipping": 0.03, "other": 0.03})
    assert list(got["kinds"])[:2] == ["GEMM", "dropout masks (RNG)"]  # largest first
    assert got["top_ops"][0] == ("aten::mm", 4.0) and len(got["top_ops"]) == 12


def test_streaming_quick_and_training_consumption(bench, tmp_path):
    mod = bench("bench_streaming")
    data = mod.main(["--quick", "--repeats", "1", "--out", str(tmp_path)])
    _files(tmp_path, "streaming_quick")
    assert {r["path"] for r in data["results"]} == {"hf-numpy", "mscl-datasets", "mscl-map"}
    assert all(r["rows_per_s"] > 0 for r in data["results"])
    # the consumption side: rows/s a training process needs, from a (here hand-made) training-step result
    step = {"quick": False, "preset": "mad_clip", "videos": 2, "results": {"with contrastive (default)": {"median_s": 4.0}}}
    (tmp_path / "training_step_mad.json").write_text(json.dumps(step))
    need = mod.training_consumption(str(tmp_path))
    assert need == {"mad-like": {"source": "training_step_mad.json", "preset": "mad_clip", "step_s": 4.0,
                                 "samples_per_step": 2, "worst_rows_per_s": 0.5}}


def test_tacos_compare_orders_ties_and_flags_differences(bench):
    mod = bench("bench_tacos_test")
    a = [[[1.0, 2.0, 0.5], [3.0, 4.0, 0.5]]]
    assert mod.compare(a, [[[3.0, 4.0, 0.5], [1.0, 2.0, 0.5]]])[2:] == ([], [])  # tied scores, either order
    seg, score, loose, bad = mod.compare(a, [[[1.0, 2.0005, 0.5], [3.0, 4.0, 0.50002]]])
    assert loose == [(0, "score diff 2e-05")] and bad == []
    assert mod.compare(a, [[[1.0, 2.01, 0.5], [3.0, 4.0, 0.5]]])[3] == [(0, "different moments")]
    assert mod.compare(a, [[[1.0, 2.0, 0.5]]])[3] == [(0, "2 vs 1 moments")]


def test_bf16_accuracy_quick(bench, tmp_path):
    data = bench("bench_bf16_accuracy").main(["--quick", "--threads", "1", "--max-videos", "3", "--out", str(tmp_path)])
    _files(tmp_path, "bf16_accuracy_quick")
    assert data["queries"] > 0 and set(data["delta_points"]) == {"bf16", "autocast"}
    assert set(data["delta_points"]["bf16"]) >= {"R1@0.5", "R5@0.5"} and data["judged"] == "bf16"


@pytest.mark.slow
def test_fresh_process_worker(tmp_path):
    """The real measurements run each configuration in a fresh process that reports its own peak RSS."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    script = str(BENCH / "bench_long_videos.py")
    out = subprocess.run([sys.executable, script, "--quick", "--threads", "1", "--lengths", "100", "--queries", "1",
                          "--repeats", "1", "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads((tmp_path / "long_videos_quick.json").read_text())
    result = data["results"][0]
    assert result["in_process"] is False and result["peak_rss_mb"] >= result["start_rss_mb"] > 0


@pytest.mark.slow
def test_video_extraction_rows_with_commas_in_their_names(bench):
    mod = bench("bench_video_extraction")
    reserved = f"decode + embed fp32 (PIL resize), {mod.RESERVED}"
    assert "," in reserved and reserved in mod.ROWS
    # a name that is a prefix of a longer one, the longer one, and a plain one, in the order given
    text = f"decode + embed fp32 (PIL resize),{reserved}, decode only"
    assert mod.parse_rows(text) == ["decode + embed fp32 (PIL resize)", reserved, "decode only"]
    assert mod.parse_rows(f"{reserved}") == [reserved]
    with pytest.raises(ValueError, match="unknown row 'decode twice'"):
        mod.parse_rows("decode only,decode twice")


def test_video_extraction_quick(bench, tmp_path):
    pytest.importorskip("av")
    data = bench("bench_video_extraction").main(["--quick", "--in-process", "--threads", "1", "--out", str(tmp_path)])
    saved = _files(tmp_path, "video_extraction_quick")
    rows = saved["results"]
    embed = rows["decode + embed fp32 (PIL resize)"]
    assert embed["features"] == 20 and embed["frames_decoded"] == 120 and embed["x_realtime"] > 0  # 4 s at 30 fps, 5/s
    assert rows["decode + sample (decoder resize)"]["features"] == 20 and rows["decode only"]["frames_decoded"] == 120
    assert saved["limits"]["clip_gflop_per_frame"] > 0 and "decode_x_realtime" in saved["limits"]
    assert saved["limits"]["pipelined_work_bound_x_realtime_bf16"] > 0 and saved["limits"]["gemm_gflops"]["fp32_one_threads"] > 0
    for name, row in rows.items():  # every row ran (bf16 weights, the previous paths, the thread variants)
        assert "skipped" in row or row["wall_s"] > 0, name
    assert rows["decode + embed bf16 (PIL resize)"]["features"] == 20 and rows["decode + sample (PIL resize)"]["fast_preprocessing"]
    from modeling_mscl.video_features_mscl import _usable_cores

    reserved = rows[f"decode + embed fp32 (PIL resize), {bench('bench_video_extraction').RESERVED}"]
    if "skipped" not in reserved:  # the model ran on one core fewer than the machine has
        assert reserved["model_threads"] == [max(1, _usable_cores() - 1)]
    ffmpeg = rows["ffmpeg subprocess"]
    assert ("skipped" in ffmpeg) == (shutil.which("ffmpeg") is None)
    if "skipped" not in ffmpeg:
        assert ffmpeg["features"] == 20
    assert data["video_seconds"] == pytest.approx(4.0)


@pytest.mark.parametrize(
    "name",
    ["bench_tacos_test", "bench_long_videos", "bench_scaling", "bench_training_step", "bench_bf16_accuracy",
     "bench_video_extraction", "bench_profile", "bench_shape_buckets", "bench_tile_policy"],
)
def test_cuda_without_gpu_skips_cleanly(bench, name, tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        bench(name).main(["--device", "cuda", "--quick", "--out", str(tmp_path / "cuda")])
    assert exit_info.value.code == 0
    assert "SKIP" in capsys.readouterr().out
    assert not (tmp_path / "cuda").exists()


def test_tacos_recheck_against_float64_separates_ties_from_differences(bench, monkeypatch):
    """A query whose moments differ is rechecked before decoding: both paths within float32 rounding of the
    float64 reference is a tie; a path off by more is a real difference."""
    import modeling_mscl.modeling_mscl as M

    mod = bench("bench_tacos_test")
    videos = [("v0", 40, [5, 7]), ("v1", 70, [4])]
    close = mod.recheck_against_float64([0, 2], videos, "quickstart", seed=0)
    assert set(close) == {0, 2}
    assert all(0 < d <= mod.FLOAT32_HEAD_TOL for v in close.values() for d in v.values())
    real = M._EvalFusion.__call__

    def off(self, *args):  # a fast path that is wrong by 1e-3 in every logit
        logits, offsets, masks = real(self, *args)
        return [x + 1e-3 for x in logits], offsets, masks

    monkeypatch.setattr(M._EvalFusion, "__call__", off)
    wrong = mod.recheck_against_float64([0], videos, "quickstart", seed=0)[0]
    assert wrong["package"] > mod.FLOAT32_HEAD_TOL >= wrong["baseline"]
