"""``wino_gen.network.config_for``: the config a model dir needs, sized over every layer the
compute core runs (the classifier included: it is a 1x1 direct layer there)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wino_gen import format as fmt
from wino_gen import network

TINY = Path(__file__).resolve().parent.parent / "examples" / "tiny"


def test_the_classifier_bias_sizes_the_bias_registers():
    """A network whose convolutions have zero biases (BN folded at init) and whose classifier's
    does not: the build's bias width holds the classifier's, so the core does not refuse it."""
    model = fmt.load_model(TINY)
    fc = next(la for la in model.layers if la.op == "linear")
    for la in model.layers:
        if la.op in ("winograd_conv3x3", "direct_conv"):
            la.arrays["bias"] = np.zeros_like(la.arrays["bias"])
    assert network.config_for(model).bias_bits == 8
    fc.arrays["bias"] = np.full_like(fc.arrays["bias"], -3000)
    assert network.config_for(model).bias_bits == 13       # -3000 needs 13 signed bits
