"""``python -m wino_gen run``: the host runtime that loads a memory image into a board over the
serial host link (:mod:`wino_gen.link`), runs each input and reads the predictions and the
hardware's cycle counter back (spec in docs/run.md).

- :mod:`.board`: the byte pipes to a board: a serial port (pyserial, imported only when one is
  opened) and :class:`~.board.GoldenBoard`, the golden model speaking the link protocol byte
  for byte (the interpreter :mod:`wino_gen.compile.interp`, not the RTL).
- :mod:`.runtime`: one image on one board: check, load, run a batch, decode.
- :mod:`.data`: the inputs: an ``.npy`` of int8 network inputs, or Fashion-MNIST's IDX files
  quantized with the model's input scale.
- :mod:`.cli`: the command line.

Pure Python like the rest of the core: nothing here imports amaranth, rtl, sim, train or torch.
"""
