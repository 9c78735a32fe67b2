"""The accelerator's side of external memory: one burst port (:mod:`.port`), the DMA engines
that move 2-D blocks between it and the scratchpads (:mod:`.dma`) and the arbiter that shares
it between program fetch, loads and stores (:mod:`.arbiter`)."""
