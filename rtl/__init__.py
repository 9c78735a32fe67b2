"""rtl: Amaranth components of the accelerator (transform units, PE array, requantizers, buffers, control, top), driven by wino_gen.config.AcceleratorConfig."""
