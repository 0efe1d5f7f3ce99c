# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""mscl: multi-scale contrastive learning for video temporal grounding (SnAG backbone).

Where things are: the model in :mod:`.modeling_mscl`, its loss (:class:`MSCLLoss`) in :mod:`.losses_mscl`,
its post-processing (:func:`post_process_grounding`), time mapping and input checks in
:mod:`.processing_mscl`, Soft-NMS in :mod:`.nms_mscl`, its configuration in :mod:`.configuration_mscl`, the
pipeline in :mod:`.pipeline_mscl`. These flat ``*_mscl.py`` files travel with every checkpoint and import
only each other; data, training, metrics and publishing live in the sub-packages.

Importing the package registers ``MSCLConfig`` / ``MSCLForTemporalGrounding`` with ``AutoConfig`` /
``AutoModel`` (model type ``"mscl"``) and marks both for ``register_for_auto_class`` so that a saved
folder carries its code and loads elsewhere with ``trust_remote_code=True``.
"""

from transformers import AutoConfig, AutoModel
from transformers.pipelines import PIPELINE_REGISTRY

from .configuration_mscl import PRESET_NAMES, MSCLConfig
from .losses_mscl import MSCLLoss
from .modeling_mscl import MSCLForTemporalGrounding, MSCLOutput, MSCLPreTrainedModel
from .pipeline_mscl import TASK_NAME as _PIPELINE_TASK, MSCLGroundingPipeline
from .processing_mscl import TimeMapping, post_process_grounding, resample_to_fixed_length
from .video_features_mscl import clear_video_feature_cache, extract_video_features

AutoConfig.register("mscl", MSCLConfig, exist_ok=True)
AutoModel.register(MSCLConfig, MSCLForTemporalGrounding, exist_ok=True)
MSCLConfig.register_for_auto_class()
MSCLForTemporalGrounding.register_for_auto_class("AutoModel")
# `pipeline("video-temporal-grounding", model=...)`; `pipe.save_pretrained` then records the pipeline
# under `custom_pipelines` and copies pipeline_mscl.py, so `pipeline(model=folder, trust_remote_code=True)`
# works where the package is not installed.
PIPELINE_REGISTRY.register_pipeline(
    _PIPELINE_TASK, pipeline_class=MSCLGroundingPipeline, pt_model=AutoModel, type="multimodal"
)

__version__ = "0.1.0"
__all__ = [
    "MSCLConfig",
    "MSCLForTemporalGrounding",
    "MSCLGroundingPipeline",
    "MSCLLoss",
    "MSCLOutput",
    "MSCLPreTrainedModel",
    "PRESET_NAMES",
    "TimeMapping",
    "clear_video_feature_cache",
    "extract_video_features",
    "post_process_grounding",
    "resample_to_fixed_length",
]
