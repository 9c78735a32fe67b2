"""rtl: Amaranth components of the accelerator (transform units, PE array, requantizers,
buffers, control, top), driven by wino_gen.config.AcceleratorConfig.

``rtl.top.build_top(cfg)`` is the accelerator; ``python -m wino_gen`` writes its Verilog.
"""
