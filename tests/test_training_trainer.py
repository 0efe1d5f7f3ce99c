# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""MSCLTrainer: accumulation semantics, normaliser/EMA updates, per-term logs; the stock Trainer also trains."""

import pytest
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from modeling_mscl import MSCLForTemporalGrounding
from modeling_mscl.data.synthetic import synthetic_rows
from modeling_mscl.training import MSCLTrainer, TrainingCollator, TrainingSampleDataset
from modeling_mscl.training.ema import EMA_WEIGHTS_NAME

from conftest import tiny_config, tiny_recipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _config(**kw):
    base = dict(hidden_dropout=0.0, drop_path=0.0, max_video_length=128, num_pyramid_levels=4, loss_normalizer_init=40.0)
    base.update(kw)
    return tiny_config(**base)


@pytest.fixture(scope="module")
def rows():
    return list(synthetic_rows("train", num_train_videos=16, num_test_videos=0, min_steps=40, max_steps=120))


def _model(config):
    torch.manual_seed(0)
    return MSCLForTemporalGrounding(config)


def _args(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path), max_steps=1, learning_rate=1e-3, lr_scheduler_type="constant", report_to="none",
                remove_unused_columns=False, use_cpu=True, save_strategy="no", logging_steps=1, disable_tqdm=True,
                max_grad_norm=0.0, seed=0)
    base.update(kw)
    return TrainingArguments(**base)


class GradGrab(TrainerCallback):
    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _run(rows, config, tmp_path, batch, accumulation):
    model = _model(config)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    recipe = tiny_recipe()
    data = TrainingSampleDataset(rows, config, recipe=recipe, samples_per_epoch=4, num_epochs=1, sample_shuffle_buffer=0)
    grab = GradGrab()
    trainer = MSCLTrainer(model=model, args=_args(tmp_path, per_device_train_batch_size=batch,
                                                  gradient_accumulation_steps=accumulation),
                          train_dataset=data, data_collator=TrainingCollator(config), recipe=recipe, callbacks=[grab])
    trainer.train()
    return trainer, grab.grads, start


def test_accumulation_equals_one_big_batch(rows, tmp_path):
    config = _config()
    big, g_big, start = _run(rows, config, tmp_path / "big", batch=4, accumulation=1)
    acc, g_acc, _ = _run(rows, config, tmp_path / "acc", batch=2, accumulation=2)
    assert set(g_big) == set(g_acc)
    scale = max(float(g.abs().max()) for g in g_big.values())
    worst = max(float((g_acc[n] - g_big[n]).abs().max()) for n in g_big)
    print(f"max |grad difference| = {worst:.3g} (largest gradient entry {scale:.3g})")
    assert worst <= 1e-5, (worst, scale)
    # the positive-count normaliser moved once, with the count summed over both micro-batches
    assert float(acc.model.loss_normalizer) == pytest.approx(float(big.model.loss_normalizer), rel=1e-9)
    assert float(big.model.loss_normalizer) != 40.0
    logs = [h for h in acc.state.log_history if "loss" in h]
    assert logs and all(k in logs[0] for k in ("loss_cls", "loss_reg", "loss_within", "loss_cross", "loss_normalizer"))
    assert logs[0]["loss_within"] > 0 and logs[0]["loss_cross"] > 0
    big_logs = [h for h in big.state.log_history if "loss" in h]
    assert logs[0]["loss"] == pytest.approx(big_logs[0]["loss"], rel=1e-4)
    # EMA: a copy of the initial weights moved by (1 - β) towards the new ones, after the optimiser step
    beta = acc.recipe.ema_decay
    assert beta == tiny_recipe().ema_decay
    for n, p in acc.model.named_parameters():
        torch.testing.assert_close(acc.ema.shadow[n], beta * start[n] + (1 - beta) * p.detach(), rtol=1e-5, atol=1e-7)


def test_activation_checkpointing_flag_reaches_the_trainer_and_keeps_gradients(rows, tmp_path):
    from modeling_mscl.training.args import build_parser, build_training_arguments, options_from_args

    options, _ = options_from_args(build_parser().parse_args(["--activation-checkpointing", "--output-dir", str(tmp_path)]))
    assert options.activation_checkpointing

    class Schedule:  # the fields build_training_arguments reads
        per_device_batch_size, gradient_accumulation_steps, max_steps, steps_per_epoch, warmup_steps = 2, 1, 1, 1, 0

    assert build_training_arguments(options, tiny_recipe(), Schedule()).activation_checkpointing
    config = _config()
    _, plain, _ = _run(rows, config, tmp_path / "plain", batch=2, accumulation=1)
    model = _model(config)
    data = TrainingSampleDataset(rows, config, recipe=tiny_recipe(), samples_per_epoch=4, num_epochs=1,
                                 sample_shuffle_buffer=0)
    grab = GradGrab()
    trainer = MSCLTrainer(model=model, args=_args(tmp_path / "ckpt", per_device_train_batch_size=2, activation_checkpointing=True),
                          train_dataset=data, data_collator=TrainingCollator(config), callbacks=[grab])
    trainer.train()
    assert model.is_activation_checkpointing
    for n, g in plain.items():
        torch.testing.assert_close(grab.grads[n], g, rtol=1e-5, atol=1e-7, msg=n)


def test_checkpoint_carries_ema_and_normalizer(rows, tmp_path):
    from safetensors.torch import load_file

    config = _config()
    model = _model(config)
    data = TrainingSampleDataset(rows, config, recipe=tiny_recipe(), samples_per_epoch=8, num_epochs=1)
    trainer = MSCLTrainer(model=model, args=_args(tmp_path, max_steps=2, per_device_train_batch_size=4,
                                                  save_strategy="steps", save_steps=2),
                          train_dataset=data, data_collator=TrainingCollator(config))
    trainer.train()
    ckpt = tmp_path / "checkpoint-2"
    ema = load_file(str(ckpt / EMA_WEIGHTS_NAME))
    assert set(ema) == {n for n, _ in model.named_parameters()}
    weights = load_file(str(ckpt / "model.safetensors"))
    assert float(weights["loss_normalizer"]) == pytest.approx(float(model.loss_normalizer))
    out = tmp_path / "final"
    trainer.save_ema_model(str(out))
    saved = load_file(str(out / "model.safetensors"))
    assert torch.equal(saved["cls_head.out.conv.weight"], ema["cls_head.out.conv.weight"])


def test_stock_trainer_lowers_the_loss(rows, tmp_path):
    config = _config()
    model = _model(config)
    collate = TrainingCollator(config)
    probe = collate(list(TrainingSampleDataset(rows, config, recipe=tiny_recipe(), samples_per_epoch=8, num_epochs=1, seed=7)))

    def loss_on_probe():
        model.train()
        with torch.no_grad():
            return float(model(**probe).loss)

    before = loss_on_probe()
    data = TrainingSampleDataset(rows, config, recipe=tiny_recipe(), samples_per_epoch=24, num_epochs=1)
    trainer = Trainer(model=model, args=_args(tmp_path, max_steps=6, per_device_train_batch_size=4, max_grad_norm=1.0),
                      train_dataset=data, data_collator=collate)
    trainer.train()
    after = loss_on_probe()
    assert after < 0.7 * before, (before, after)


def test_find_last_checkpoint_skips_incomplete_ones(tmp_path):
    from modeling_mscl.training.trainer import find_last_checkpoint

    assert find_last_checkpoint(str(tmp_path)) is None
    for step, complete in ((4, True), (8, True), (12, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "trainer_state.json").write_text('{"global_step": %d}' % step)
        if complete:
            (folder / EMA_WEIGHTS_NAME).write_bytes(b"x")
    (tmp_path / "checkpoint-16").mkdir()  # killed before anything was written
    assert find_last_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-8")


def test_train_dataloader_pins_memory_for_gpus_only(rows, tmp_path, monkeypatch):
    config = _config()
    data = TrainingSampleDataset(rows, config, recipe=tiny_recipe(), samples_per_epoch=4, num_epochs=1)
    trainer = MSCLTrainer(model=_model(config), args=_args(tmp_path), train_dataset=data,
                          data_collator=TrainingCollator(config), recipe=tiny_recipe())
    # TrainingArguments turns the flag off with use_cpu; set it as a GPU run has it (its default)
    monkeypatch.setattr(trainer.args, "dataloader_pin_memory", True)
    assert trainer.get_train_dataloader().pin_memory is False  # CPU: nothing to copy to
    monkeypatch.setattr(TrainingArguments, "device", property(lambda self: torch.device("cuda")))
    assert trainer.get_train_dataloader().pin_memory is True  # page-locked batches: asynchronous copies
    monkeypatch.setattr(trainer.args, "dataloader_pin_memory", False)
    assert trainer.get_train_dataloader().pin_memory is False  # the argument is honoured


def test_compute_loss_copies_its_log_terms_to_the_host_once(rows, tmp_path, monkeypatch):
    """The loss terms and the positive count of a micro-batch reach the host in one copy (on a GPU each
    copy is a host sync), with the values the model returned."""
    config = _config()
    recipe = tiny_recipe()
    data = TrainingSampleDataset(rows, config, recipe=recipe, samples_per_epoch=4, num_epochs=1, sample_shuffle_buffer=0)
    model = _model(config)
    trainer = MSCLTrainer(model=model, args=_args(tmp_path), train_dataset=data, data_collator=TrainingCollator(config),
                          recipe=recipe)
    batch = next(iter(trainer.get_train_dataloader()))
    batch.pop("meta", None)
    torch.manual_seed(1)
    want = model(**batch)
    copies = []
    real = torch.Tensor.cpu
    monkeypatch.setattr(torch.Tensor, "cpu", lambda self, *a, **k: copies.append(self.shape) or real(self, *a, **k))
    torch.manual_seed(1)
    trainer.compute_loss(model, batch)
    assert copies == [torch.Size([5])]
    names = ("loss_cls", "loss_reg", "loss_within", "loss_cross")
    expected = [float(getattr(want, n)) for n in names] + [float(want.num_positives)]
    assert trainer._log_terms.tolist() == pytest.approx(expected, rel=0, abs=0)
    assert float(trainer._step_positives) == float(want.num_positives) > 0
