"""Model dir -> memory image (:mod:`.compiler`, format in :mod:`.image`, spec docs/image.md)
and the interpreter that runs an image with the golden model alone (:mod:`.interp`); the
``python -m wino_gen compile`` command is :mod:`.cli`."""
