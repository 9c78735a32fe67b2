"""A calibrated ``WinogradConv2d`` on a random batch, the starting point of the training tests
that compare the fake-quant layer with golden's integer one."""

import torch

from train.winograd_conv import WinogradConv2d


def calibrated_layer(seed: int, **kw):
    """``WinogradConv2d(12, 7, **kw)`` with a random bias, calibrated on the random batch it
    returns (``[2, 12, 9, 10]``): the scales are the observers', as after ``--calib``."""
    torch.manual_seed(seed)
    w = WinogradConv2d(12, 7, **kw)
    with torch.no_grad():
        w.bias.normal_()
    x = torch.randn(2, 12, 9, 10)
    w.observers = {}
    w.forward_real(x)
    w.apply_calibration()
    w.observers = None
    return w, x
