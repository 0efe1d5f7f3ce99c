# ======================================================================================================
# BEGIN fake Hugging Face Hub (server: tests/hub_server.py, tests: tests/test_hub_server.py)
# Keep this block FIRST in conftest.py: it must run before anything imports huggingface_hub, datasets
# or transformers, which read HF_ENDPOINT / HF_HOME / HF_HUB_DISABLE_XET once, at import time.
# ======================================================================================================
import os as _fh_os
import shutil as _fh_shutil
import sys as _fh_sys
import tempfile as _fh_tempfile

import pytest

if _fh_os.path.dirname(_fh_os.path.abspath(__file__)) not in _fh_sys.path:
    _fh_sys.path.insert(0, _fh_os.path.dirname(_fh_os.path.abspath(__file__)))
from hub_server import DEFAULT_TOKEN as _FH_TOKEN, FakeHubServer as _FakeHubServer  # noqa: E402

# Imported already (e.g. by a block above this one)? Then the env vars below come too late for them.
_FH_PRELOADED = sorted(m for m in ("huggingface_hub", "datasets", "transformers") if m in _fh_sys.modules)
# Bind a free loopback port now (listening starts lazily in the `fake_hub` fixture), so the endpoint is
# known before any Hugging Face library is imported.
_FH_SERVER = _FakeHubServer()
_FH_HOME = _fh_tempfile.mkdtemp(prefix="mscl-hf-home-")
for _fh_var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "TRANSFORMERS_CACHE",
                "HF_XET_CACHE", "HF_ASSETS_CACHE", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH"):
    _fh_os.environ.pop(_fh_var, None)
_fh_os.environ.update(
    HF_ENDPOINT=_FH_SERVER.url,
    HF_HOME=_FH_HOME,
    HF_TOKEN=_FH_TOKEN,
    HF_HUB_DISABLE_XET="1",  # with hf_xet installed, uploads would go through Xet, which cannot be faked
    HF_HUB_OFFLINE="0",
    TRANSFORMERS_OFFLINE="0",
    HF_DATASETS_OFFLINE="0",
    HF_HUB_DISABLE_TELEMETRY="1",
    HF_HUB_DISABLE_PROGRESS_BARS="1",
    HF_HUB_DISABLE_UPDATE_CHECK="1",
)


def _fh_cleanup():
    _FH_SERVER.stop()
    _fh_shutil.rmtree(_FH_HOME, ignore_errors=True)


import atexit as _fh_atexit  # noqa: E402

_fh_atexit.register(_fh_cleanup)


@pytest.fixture
def fake_hub():
    """A loopback fake of the Hugging Face Hub, empty at the start of each test; yields its `FakeHub`.

    How the environment is handled (checked with huggingface_hub 2.4 and datasets 5.2): both libraries copy
    ``HF_ENDPOINT`` into module constants when they are imported (``huggingface_hub.constants.ENDPOINT``,
    the module-level ``HfApi`` instance, the auth-forwarding origins of ``utils._http``,
    ``datasets.config.HF_ENDPOINT``...), so patching after import is unreliable. Instead, when pytest
    imports this conftest (before any test module, hence before huggingface_hub/datasets/transformers),
    the server's socket is bound to a free port and these variables are set in ``os.environ`` for the
    whole session: ``HF_ENDPOINT=http://127.0.0.1:<port>``, ``HF_HOME=<session temp dir>`` (its ``hub/``,
    ``datasets/`` and ``modules/`` caches included), ``HF_TOKEN=hub.token``, ``HF_HUB_DISABLE_XET=1``,
    ``HF_HUB_OFFLINE=0`` and telemetry/progress bars/update checks off. The port only accepts connections
    once a test has requested this fixture (the first one starts the server thread; it then serves until
    the session ends, emptied after every test). So nothing ever reaches the real Hub: a test that talks to
    the "Hub" without the fixture gets "connection refused" or an empty hub's 404s.

    Subprocesses inherit ``os.environ``, so ``subprocess.run([sys.executable, ...])`` reaches the same
    server without extra setup (pass ``env=os.environ`` or nothing; building a fresh env dict must copy
    the ``HF_*`` variables above).

    The `FakeHub` object offers ``endpoint``, ``token``, ``head(repo_id, repo_type=..., revision=...)``,
    ``commits(...)`` (newest first), ``files(...)`` (path -> bytes), ``file_info(...)`` (LFS or not),
    ``seed(repo_id, {path: bytes})``, ``fail_next(kind, times=1, status=500)``, ``lfs_threshold`` and the
    logs ``requests`` / ``unhandled``. See tests/hub_server.py for what is validated. The test fails if
    the server crashed while handling one of its requests.
    """
    if _FH_PRELOADED:
        pytest.fail(
            f"{', '.join(_FH_PRELOADED)} was imported before the fake-hub block of tests/conftest.py ran, so"
            " it does not see HF_ENDPOINT; keep that block first in conftest.py"
        )
    _FH_SERVER.start()
    hub = _FH_SERVER.hub
    hub.reset()
    _fh_clear_client_caches()
    yield hub
    errors = list(hub.server_errors)
    hub.reset()
    _fh_clear_client_caches()
    if errors:
        pytest.fail("fake hub crashed while serving this test:\n" + errors[0])


def _fh_clear_client_caches():
    # HfFileSystem instances (fsspec caches them per process) keep directory listings and
    # "repo exists" answers; repos are recreated with the same names from test to test.
    hffs = _fh_sys.modules.get("huggingface_hub.hf_file_system")
    if hffs is not None:
        hffs.HfFileSystem.clear_instance_cache()


# ======================================================================================================
# END fake Hugging Face Hub
# ======================================================================================================


# ======================================================================================================
# BEGIN tiny configurations: the tests' own model and recipe (never a user-facing preset)
# ======================================================================================================
#: A tiny model (64-d video width, one text layer) for fast tests: what the former `debug` preset held.
TINY_MODEL = {
    "video_input_dim": 32, "hidden_size": 64, "video_input_stride": 1, "max_video_length": 256,
    "num_embedding_convs": 2, "num_stem_blocks": 0, "num_pyramid_levels": 5, "attention_window": 5,
    "video_use_abs_pe": True, "text_input_dim": 32, "text_hidden_size": 32, "text_encoder_type": "transformer",
    "text_num_layers": 1, "max_text_length": 16, "text_use_abs_pe": True, "fusion_mode": "affine",
    "regression_range": 4, "regression_loss_type": "diou", "regression_loss_weight": 1.0, "loss_normalizer_init": 20,
    "pre_nms_topk": 2000, "max_segments": 5, "fps": 1.0, "clip_size": 1, "clip_stride": 1, "downsample_rate": 1,
    "fixed_length": None,
    "text_feature_source": {"type": "precomputed", "note": "synthetic token features of the bundled benchmark"},
    "video_feature_source": {
        "type": "precomputed", "dim": 32,
        "features": "synthetic 32-d features of the package's semi-synthetic benchmark (one per second)",
        "how_to_extract": "they are generated by modeling_mscl.data.synthetic; no video file corresponds to them.",
    },
}
#: The recipe that goes with it (short runs on the semi-synthetic benchmark).
TINY_RECIPE = {
    "learning_rate": 0.002, "module_learning_rates": {}, "weight_decay": 0.05, "batch_size": 8,
    "gradient_accumulation_steps": 1, "num_epochs": 4, "warmup_epochs": 1, "ema_decay": 0.99,
    "max_queries_per_video": 4, "query_grouping": "greedy", "crop_ratio": [0.9, 1.0], "eval_split": "test",
    "eval_ranks": [1, 5], "eval_thresholds": [0.3, 0.5, 0.7],
}


def tiny_config(**overrides):
    """The tests' tiny :class:`MSCLConfig` (:data:`TINY_MODEL` + ``overrides``), built explicitly."""
    from modeling_mscl import MSCLConfig

    return MSCLConfig(**{**TINY_MODEL, **overrides})


def tiny_recipe(**overrides):
    """The tests' :class:`TrainingRecipe` (:data:`TINY_RECIPE` + ``overrides``)."""
    from modeling_mscl.training.recipe import TrainingRecipe

    return TrainingRecipe(**{**TINY_RECIPE, **overrides})


# ======================================================================================================
# END tiny configurations
# ======================================================================================================


# ======================================================================================================
# BEGIN training: one default run per test session (tests/test_training_run.py)
# ======================================================================================================
@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny-tensor tests (use with ``pytestmark``): faster, and much
    faster when other jobs share the cores; the previous setting is restored afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def python3_kernel():
    """A registered ``python3`` Jupyter kernel for the notebook tests (registered with ipykernel if missing)."""
    import subprocess
    import sys

    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" in KernelSpecManager().find_kernel_specs():
        return
    pytest.importorskip("ipykernel")
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--user"], check=True, capture_output=True)
    if "python3" not in KernelSpecManager().find_kernel_specs():
        pytest.skip("no python3 Jupyter kernel could be registered")


@pytest.fixture(scope="session")
def trained_quickstart_run(tmp_path_factory):
    """``python train_scripts/run.py`` with no training arguments — the ``quickstart`` preset on the bundled
    semi-synthetic benchmark, exactly the README's Quickstart run — trained ONCE per test session.

    Yields ``{"output_dir", "dataset", "metrics" (metrics.json), "stdout", "seconds"}``. The run folder
    holds the final EMA model (``AutoModel.from_pretrained``-loadable), ``metrics.json``,
    ``predictions.jsonl`` and ``training_config.json``. Only ``--output-dir`` and ``--no-progress`` are
    passed. Share it: the whole suite must stay within its time budget.
    """
    import json
    import subprocess
    import sys
    import time
    from pathlib import Path

    from modeling_mscl.training.args import TrainingOptions
    from modeling_mscl.training.experiment import resolve_dataset

    repo = Path(__file__).resolve().parents[1]
    dataset = resolve_dataset(TrainingOptions())  # generates and caches the benchmark on first use
    out = tmp_path_factory.mktemp("default-run") / "run"
    start = time.time()
    done = subprocess.run(
        [sys.executable, str(repo / "train_scripts" / "run.py"), "--output-dir", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=1800,
    )
    if done.returncode != 0:
        pytest.fail(f"the default training run failed:\n{done.stderr[-4000:]}")
    metrics = json.loads((out / "metrics.json").read_text())
    yield {"output_dir": str(out), "dataset": dataset, "metrics": metrics, "stdout": done.stdout,
           "seconds": time.time() - start}


# ======================================================================================================
# END training
# ======================================================================================================


# ======================================================================================================
# BEGIN fast tier: `python -m pytest -m "not slow"` (docs/contributing.md)
# ======================================================================================================
# Fixtures that train: a test that requests one (directly or through another fixture) must carry the
# `slow` mark, or the fast tier would silently spend minutes training in its setup.
TRAINING_FIXTURES = ("trained_quickstart_run",)


def pytest_collection_modifyitems(config, items):
    unmarked = [item.nodeid for item in items
                if set(TRAINING_FIXTURES) & set(getattr(item, "fixturenames", ())) and item.get_closest_marker("slow") is None]
    if unmarked:
        raise pytest.UsageError(
            f"these tests use a training fixture ({', '.join(TRAINING_FIXTURES)}) but are not marked "
            "@pytest.mark.slow: " + ", ".join(unmarked)
        )


# ======================================================================================================
# END fast tier
# ======================================================================================================
