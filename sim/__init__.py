"""sim: cycle-accurate simulation of the generated accelerator against the wino_gen.golden integer model."""
