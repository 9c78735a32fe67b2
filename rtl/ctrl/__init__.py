"""The system's control: the instruction sequencer (:mod:`.sequencer`), the LOAD/STORE
executors that turn transfers into DMA blocks (:mod:`.transfer`), and a control system that
joins them to one memory port and the scratchpads, the compute unit outside (:mod:`.system`)."""
