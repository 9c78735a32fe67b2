"""The memory port: one stream signature for read and write bursts, the only way the
accelerator reaches external memory (a simulation model, an SDRAM controller, SPRAM).

Three valid/ready streams, seen from the master (the side that issues bursts):

- ``cmd`` (out): ``addr`` (a word address: word ``a`` holds bytes ``a*W .. a*W+W-1`` of the
  memory, ``W = data_width // 8``), ``length`` (words, ``1..max_burst``), ``write``;
- ``w`` (out): the words of write bursts, ``data`` and ``strb`` (one enable per byte, byte ``j``
  in ``data[8j:8j+8]``; a byte whose enable is low is left unchanged in memory);
- ``r`` (in): the words of read bursts, ``data``.

The contract every master and every memory keeps:

- bursts take effect in command order, reads and writes alike: a read sees every write whose
  command was accepted before its own (so a master needs no write response: once a write's
  last word is accepted, every later command sees it);
- read words return in command order, ``length`` words per read burst, in address order;
- a write burst's ``length`` words follow on ``w`` in command order; a memory may hold ``w``
  until the burst's command was accepted, so a master must not wait for ``w`` to be taken
  before it offers the command;
- ``length`` is never 0; a burst may cross any boundary (a memory splits it where it must,
  the DMA engines avoid page crossings when asked).
"""

from __future__ import annotations

from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for


def cmd_layout(addr_width: int, max_burst: int) -> data.StructLayout:
    return data.StructLayout({"addr": addr_width, "length": bits_for(max_burst), "write": 1})


def w_layout(data_width: int) -> data.StructLayout:
    return data.StructLayout({"data": data_width, "strb": data_width // 8})


def r_layout(data_width: int) -> data.StructLayout:
    return data.StructLayout({"data": data_width})


class PortSignature(wiring.Signature):
    """The memory port of ``data_width`` bits (8 x a power of two), ``addr_width``-bit word
    addresses and bursts of at most ``max_burst`` words (the master's view)."""

    def __init__(self, *, data_width: int, addr_width: int, max_burst: int):
        if data_width < 8 or data_width % 8 or (data_width // 8) & (data_width // 8 - 1):
            raise ValueError(f"data_width {data_width}: must be 8 times a power of two")
        if addr_width < 1:
            raise ValueError(f"addr_width {addr_width}: must be positive")
        if max_burst < 1:
            raise ValueError(f"max_burst {max_burst}: must be positive")
        self.data_width, self.addr_width, self.max_burst = data_width, addr_width, max_burst
        super().__init__({
            "cmd": Out(stream.Signature(cmd_layout(addr_width, max_burst))),
            "w": Out(stream.Signature(w_layout(data_width))),
            "r": In(stream.Signature(r_layout(data_width))),
        })

    @property
    def word_bytes(self) -> int:
        return self.data_width // 8

    def __eq__(self, other):
        return (isinstance(other, PortSignature) and (self.data_width, self.addr_width, self.max_burst)
                == (other.data_width, other.addr_width, other.max_burst))

    def __hash__(self):
        return hash((self.data_width, self.addr_width, self.max_burst))

    def __repr__(self):
        return f"PortSignature(data_width={self.data_width}, addr_width={self.addr_width}, max_burst={self.max_burst})"
