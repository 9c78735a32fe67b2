"""wino_gen: the core of wino — accelerator config, exact Winograd math, the bit-exact integer
model (wino-int8), the model-dir format, performance estimates, Verilog generation and synthesis."""

__version__ = "0.1.0"
