"""The flows that turn a config into hardware and say what it is: ``generate`` (Verilog/RTLIL),
``build`` (YoWASP bitstreams) and ``report``. Only this subpackage of ``wino_gen`` imports
``rtl``; the core beside it (config, winograd, golden, format, limits, schedule, perf, ...)
imports nothing of rtl, sim or train."""
