# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Data-parallel correctness: 2 processes × batch b give the gradients of 1 process × batch 2b.

Runs real ``torch.distributed`` (gloo, 2 ranks spawned here) with ``DistributedDataParallel`` and the
trainer's loss logic (:func:`step_contrastive_normalizer` for the contrastive terms, the positive count
summed over processes for the normaliser update). All four loss terms are on; dropout is off.
"""

import os
import time

import pytest
import torch

from modeling_mscl import MSCLForTemporalGrounding
from modeling_mscl.data.synthetic import synthetic_rows
from modeling_mscl.training.data import TrainingCollator, TrainingSampleDataset
from modeling_mscl.training.trainer import all_reduce_sum, step_contrastive_normalizer
from conftest import tiny_config, tiny_recipe

B = 2  # videos per process


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config():
    return tiny_config(
        hidden_dropout=0.0, drop_path=0.0, attention_dropout=0.0, max_video_length=128, num_pyramid_levels=4,
        loss_normalizer_init=50.0,
    )


def _samples(config):
    rows = list(synthetic_rows("train", num_train_videos=10, num_test_videos=0, min_steps=40, max_steps=120))
    ds = TrainingSampleDataset(rows, config, recipe=tiny_recipe(), samples_per_epoch=2 * B, num_epochs=1,
                               sample_shuffle_buffer=0)
    return list(ds)


def _model(config):
    torch.manual_seed(0)
    return MSCLForTemporalGrounding(config).train()


def _grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _worker(rank, world, init_file, out_dir):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        config = _config()
        samples = _samples(config)
        model = _model(config)
        ddp = DDP(model)
        batch = TrainingCollator(config)(samples[rank * B : (rank + 1) * B])
        batch["contrastive_normalizer"] = step_contrastive_normalizer(model, [batch])
        out = ddp(**batch)
        out.loss.backward()
        positives = all_reduce_sum(out.num_positives.detach().double())
        model.update_loss_normalizer(float(positives))
        if rank == 0:
            torch.save({"grads": _grads(model), "normalizer": float(model.loss_normalizer),
                        "terms": [float(getattr(out, k).detach()) for k in ("loss_cls", "loss_reg", "loss_within", "loss_cross")]},
                       os.path.join(out_dir, "rank0.pt"))
        # tear DDP down while both ranks are still connected: destroying its reducer after the peer has
        # exited can block in gloo
        dist.barrier()
        del ddp, out
    finally:
        dist.destroy_process_group()


def test_two_processes_match_one_process_with_double_batch(tmp_path):
    import torch.multiprocessing as mp

    config = _config()
    samples = _samples(config)
    model = _model(config)
    batch = TrainingCollator(config)(samples)
    batch["contrastive_normalizer"] = step_contrastive_normalizer(model, [batch])
    out = model(**batch)
    assert all(float(getattr(out, k).detach()) > 0 for k in ("loss_cls", "loss_reg", "loss_within", "loss_cross"))
    # the pair count the trainer computes up front is the one the model sees
    assert torch.equal(model.count_contrastive_pairs(batch["labels"], batch["video_mask"], batch["contrastive_query_index"]),
                       out.num_contrastive_pairs)
    out.loss.backward()
    reference = _grads(model)
    model.update_loss_normalizer(float(out.num_positives))

    context = mp.spawn(_worker, args=(2, str(tmp_path / "pg_init"), str(tmp_path)), nprocs=2, join=False)
    deadline = time.time() + 300
    while not context.join(timeout=5):  # raises if a worker failed
        if time.time() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("the DDP workers did not finish within 300 s")
    result = torch.load(tmp_path / "rank0.pt")
    grads = result["grads"]
    assert set(grads) == set(reference)
    scale = max(float(g.abs().max()) for g in reference.values())
    worst = max(float((grads[n] - reference[n]).abs().max()) for n in reference)
    print(f"max |grad difference| = {worst:.3g} (largest gradient entry {scale:.3g})")
    assert worst <= 1e-5, (worst, scale)
    assert result["normalizer"] == pytest.approx(float(model.loss_normalizer), rel=1e-12)
