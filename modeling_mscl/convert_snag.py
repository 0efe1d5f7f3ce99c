# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Convert a SnAG checkpoint (fmu2/snag_release) into a Hugging Face MSCL model folder.

Usage::

    python -m modeling_mscl.convert_snag --checkpoint ckpt/tacos/models/last.pth \\
        --snag-opt opts/video_centric/tacos.yaml --output snag-tacos-mscl
    python -m modeling_mscl.convert_snag --checkpoint last.pth --preset tacos_c3d --output snag-tacos-mscl

The checkpoint is a ``.pth`` / ``.pt`` file holding ``{"model": state_dict, "model_ema": state_dict}``
(as SnAG's trainer writes it; a bare state dict works too), read with ``torch.load(...,
weights_only=True)`` so no arbitrary object is ever unpickled, or a ``.safetensors`` state dict.
SnAG evaluates its EMA weights, so ``model_ema`` is converted by default (``--weights model`` picks
the raw weights). A DataParallel ``module.`` prefix is stripped.

The configuration comes from the SnAG options (``--snag-opt``: the yaml as users keep it, or a JSON
dump of SnAG's merged options) via :func:`modeling_mscl.snag.config_from_snag_opt`, from a preset
(``--preset``), or from both: the preset then supplies what SnAG's options do not say (``fps``, the text
feature source, …) and the SnAG options override everything they determine. Only the model
configuration is written: SnAG's training recipe (optimiser, schedule, sampling, evaluation protocol) is
not part of a model folder (:func:`modeling_mscl.snag.recipe_from_snag_opt` reads it when needed).

Every key is mapped strictly (:mod:`modeling_mscl.snag.mapping`): an unknown or missing key, a shape
mismatch or an unsupported option is an error naming it, and nothing is written. The folder is
assembled in a temporary directory next to ``--output`` and moved into place only once complete.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import shutil
import sys
import tempfile
from typing import Any, Dict, Mapping, Optional

import torch

from .configuration_mscl import PRESET_NAMES, MSCLConfig
from .modeling_mscl import MSCLForTemporalGrounding
from .snag.mapping import snag_to_mscl_state_dict
from .snag.options import config_from_snag_opt, config_kwargs_from_snag_opt, split_snag_kwargs

__all__ = ["build_config", "build_recipe", "convert_snag_checkpoint", "load_snag_opt", "load_snag_state_dict", "main"]


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def load_snag_opt(path: str) -> Dict[str, Any]:
    """Read SnAG options from a ``.yaml``/``.yml`` file (needs PyYAML) or a ``.json`` file."""
    if not os.path.isfile(path):
        raise ValueError(f"SnAG options file not found: {path}")
    ext = os.path.splitext(path)[1].lower()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if ext == ".json":
        try:
            opt = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}") from None
    elif ext in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:  # pragma: no cover - PyYAML is an optional dependency
            raise ValueError(
                f"reading {path} needs PyYAML (`pip install pyyaml`); "
                "alternatively pass the options as JSON"
            ) from None
        try:
            opt = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{path} is not valid YAML: {exc}") from None
    else:
        raise ValueError(f"SnAG options must be a .yaml, .yml or .json file, got {path}")
    if not isinstance(opt, dict):
        raise ValueError(f"{path} does not hold a SnAG options mapping")
    return opt


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def load_snag_state_dict(path: str, weights: str = "ema") -> Dict[str, torch.Tensor]:
    """The SnAG state dict stored in ``path`` (``weights``: ``"ema"`` → ``model_ema``, ``"model"`` → ``model``).

    A ``module.`` prefix (DataParallel / DDP) is removed. Raises ``ValueError`` with the reason when the
    file cannot be read safely or holds no state dict.
    """
    if weights not in ("ema", "model"):
        raise ValueError(f"weights must be 'ema' or 'model', got {weights!r}")
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint not found: {path}")
    if path.lower().endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            state = load_file(path, device="cpu")
        except Exception as exc:  # safetensors raises its own error types
            raise ValueError(f"cannot read {path} as safetensors: {exc}") from None
        source = "the safetensors state dict"
    else:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
            what = f" (it contains {found.group(1)})" if found else ""
            raise ValueError(
                f"{path} holds pickled objects that torch.load(weights_only=True) refuses to load{what}; only "
                "tensors and plain containers are accepted, and arbitrary pickles are never executed. A SnAG "
                "checkpoint is {'model': state_dict, 'model_ema': state_dict}: re-save the state dicts alone, or "
                "as safetensors"
            ) from None
        except Exception as exc:
            raise ValueError(f"cannot read {path} as a PyTorch checkpoint: {exc}") from None
        key = "model_ema" if weights == "ema" else "model"
        if isinstance(ckpt, Mapping) and key in ckpt:
            state, source = ckpt[key], f"checkpoint entry {key!r}"
        elif _is_state_dict(ckpt):
            state, source = ckpt, "the bare state dict"
        elif isinstance(ckpt, Mapping) and ("model" in ckpt or "model_ema" in ckpt):
            have = [k for k in ("model", "model_ema") if k in ckpt]
            raise ValueError(
                f"{path} has no {key!r} entry (it has {have}); choose --weights "
                + ("model" if key == "model_ema" else "ema")
            )
        else:
            keys = list(ckpt)[:10] if isinstance(ckpt, Mapping) else type(ckpt).__name__
            raise ValueError(f"{path} is not a SnAG checkpoint: expected 'model' / 'model_ema' state dicts, found {keys}")
        if not isinstance(state, Mapping):
            raise ValueError(f"{source} of {path} is not a state dict (got {type(state).__name__})")
    out: Dict[str, torch.Tensor] = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{source} of {path}: entry {name!r} is not a tensor (got {type(value).__name__})")
        out[name[len("module."):] if name.startswith("module.") else name] = value
    if not out:
        raise ValueError(f"{source} of {path} is empty")
    return out


def build_config(snag_opt: Optional[Mapping[str, Any]] = None, preset: Optional[str] = None) -> MSCLConfig:
    """Model configuration from SnAG options, a preset, or both (SnAG options override the preset)."""
    if snag_opt is None and preset is None:
        raise ValueError("give the SnAG options (--snag-opt) and/or a preset (--preset) to describe the model")
    if preset is None:
        return config_from_snag_opt(dict(snag_opt))
    values = MSCLConfig.load_preset_dict(preset)
    if snag_opt is not None:
        values.update(split_snag_kwargs(config_kwargs_from_snag_opt(dict(snag_opt)))[0])
    values["preset"] = preset
    return MSCLConfig(**values)


def build_recipe(snag_opt: Optional[Mapping[str, Any]] = None, preset: Optional[str] = None):
    """The training recipe that goes with :func:`build_config`: the preset's ``training`` section, with
    everything SnAG's options determine (optimiser, schedule, EMA, sampling, evaluation) taken from them."""
    from .training.recipe import TrainingRecipe

    if snag_opt is None and preset is None:
        raise ValueError("give the SnAG options (--snag-opt) and/or a preset (--preset) to describe the recipe")
    values = TrainingRecipe.from_preset(preset).to_dict() if preset is not None else {}
    if snag_opt is not None:
        values.update(split_snag_kwargs(config_kwargs_from_snag_opt(dict(snag_opt)))[1])
    return TrainingRecipe.from_dict(values)


# --------------------------------------------------------------------------------------------
# conversion
# --------------------------------------------------------------------------------------------


def convert_snag_checkpoint(
    checkpoint: str,
    output: str,
    *,
    snag_opt: Optional[Mapping[str, Any]] = None,
    preset: Optional[str] = None,
    weights: str = "ema",
    overwrite: bool = False,
) -> MSCLForTemporalGrounding:
    """Convert ``checkpoint`` and write a ``save_pretrained`` folder to ``output``; returns the model.

    Nothing is written unless the configuration, every key and every shape validate.
    """
    output = os.path.abspath(output)
    if os.path.exists(output) and not overwrite:
        if not os.path.isdir(output) or os.listdir(output):
            raise ValueError(f"output {output} already exists; choose a new folder (or pass --overwrite)")
    config = build_config(snag_opt, preset)
    snag_state = load_snag_state_dict(checkpoint, weights)
    model = MSCLForTemporalGrounding(config)
    model.load_state_dict(snag_to_mscl_state_dict(snag_state, model.state_dict()), strict=True)
    model.eval()

    parent = os.path.dirname(output)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.tmp-", dir=parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
        model.save_pretrained(tmp)
        if os.path.isdir(output):  # empty folder, or --overwrite
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(output)}.old-", dir=parent)
            os.rmdir(old)
            os.replace(output, old)
            os.replace(tmp, output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return model


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m modeling_mscl.convert_snag",
        description="Convert a SnAG checkpoint into a Hugging Face MSCL model folder (save_pretrained).",
    )
    p.add_argument("--checkpoint", required=True, help="SnAG .pth/.pt ({'model', 'model_ema'}) or .safetensors state dict")
    p.add_argument("--output", required=True, help="folder to create (must not exist or be empty)")
    p.add_argument("--snag-opt", help="SnAG options: the run's .yaml (needs PyYAML) or a .json dump of them")
    p.add_argument("--preset", choices=PRESET_NAMES,
                   help="MSCL preset; with --snag-opt it only supplies what SnAG's options do not say (fps, text features)")
    p.add_argument("--weights", choices=("ema", "model"), default="ema",
                   help="which weights of a .pth checkpoint to convert (default: ema, as SnAG evaluates)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder (after validation)")
    return p


def main(argv: Optional[list] = None) -> int:
    args = _parser().parse_args(argv)
    try:
        opt = load_snag_opt(args.snag_opt) if args.snag_opt else None
        model = convert_snag_checkpoint(
            args.checkpoint, args.output, snag_opt=opt, preset=args.preset, weights=args.weights,
            overwrite=args.overwrite,
        )
    except ValueError as exc:
        print(f"convert_snag: error: {exc}", file=sys.stderr)
        return 2
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.output} ({n / 1e6:.2f} M parameters, {args.weights} weights of {args.checkpoint})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
