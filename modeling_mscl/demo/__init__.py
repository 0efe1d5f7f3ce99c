# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""A web demo (Gradio): upload a video, type sentences (one per line), see the moments.

    pip install 'mscl[demo]'
    python -m modeling_mscl.demo --model PATH_OR_REPO

The same code runs a Hugging Face Space (:mod:`modeling_mscl.hub.space` copies ``app``, ``examples``,
``frames`` and ``render`` into it), so those import nothing else from the package: the model comes through
the ``video-temporal-grounding`` pipeline, the package's own or the checkpoint's remote code. The command
line (:mod:`.cli`, with the shapes demo) is the package's only.
"""

from .app import DemoAnswer, DemoInputError, GroundingDemo, build_demo, launch_kwargs, load_pipeline

__all__ = ["DemoAnswer", "DemoInputError", "GroundingDemo", "build_demo", "launch_kwargs", "load_pipeline"]
