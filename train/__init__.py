"""train: PyTorch Winograd-aware full-8-bit QAT, PTQ baselines, model conversion and export to the
wino-int8 model dir."""
