"""The board's host side: the 8N1 UART (:mod:`.uart`) and the framed host link on top of it
(:mod:`.hostlink`, protocol in :mod:`wino_gen.link`)."""
