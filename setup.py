# Copyright 2026 The mscl authors. Licensed under the Apache License, Version 2.0.
"""Build hook: ship the model-card templates (``hub_cards/``) inside the package.

Everything else about the distribution is declared in ``pyproject.toml``. The card templates live at the
repository root (``hub_cards/``), where contributors edit them; ``modeling_mscl.hub.cards`` reads them from
there in a source checkout or an editable install. A wheel has no repository root, so ``build_py`` copies
``hub_cards/*.j2`` and ``hub_cards/*.yaml`` into ``modeling_mscl/hub/cards/`` of the build, where the
installed package finds them. (``[tool.setuptools.data-files]`` would put them outside the package, at a
prefix-dependent path, and a ``package-dir`` mapping is ignored by ``packages.find``.) ``MANIFEST.in``
puts ``hub_cards/`` into the sdist, so a wheel built from the sdist has them too.
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
CARDS_SOURCE = os.path.join(HERE, "hub_cards")
CARDS_TARGET = os.path.join("modeling_mscl", "hub", "cards")


class build_py_with_cards(build_py):
    """``build_py`` that also copies the model-card templates into the built package."""

    def run(self):
        super().run()
        if not os.path.isdir(CARDS_SOURCE):
            raise FileNotFoundError(f"model-card templates missing: {CARDS_SOURCE}")
        target = os.path.join(self.build_lib, CARDS_TARGET)
        self.mkpath(target)
        for name in sorted(os.listdir(CARDS_SOURCE)):
            if name.endswith((".j2", ".yaml")):
                self.copy_file(os.path.join(CARDS_SOURCE, name), os.path.join(target, name))


setup(cmdclass={"build_py": build_py_with_cards})
