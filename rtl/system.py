"""The full system: a network from external memory (docs/image.md) on one memory port.

::

    mem ◄── Arbiter ◄─┬─ Sequencer.fetch        (master 0)
                      ├─ LoadExecutor.mem       (master 1) ──► act / wgt / param Scratchpads (DMA write)
                      └─ StoreExecutor.mem      (master 2) ◄── act Scratchpad (DMA read)
    Sequencer.compute ──► ComputeUnit ──► Core (x, w, o) ; feeder windows on the scratchpads

The scratchpads are :class:`rtl.mem.scratchpad.Scratchpad` s (byte windows for the feeders,
DMA ports for the executors): ``act`` has ``2 * unroll_in`` read windows (the activation
readers, for an add's two operands) and one write window (the writer's: with the DMA's load
it is the block RAMs' one write port, the writer first); ``wgt``
``weight_ports`` read windows; ``param`` (32-bit words) one window for the compute unit's
parameter reads and ``weight_ports`` for the biases. ``start`` (the sequencer's: program
byte address and instruction count) also makes the compute unit forget its cached parameter
block. ``busy``/``done``/``status``/``index``/``cycles``: the sequencer's. ``load_lo``/
``load_hi``, ``store_lo``/``store_hi``: the external windows the transfers may touch
(:mod:`rtl.ctrl.transfer`).
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from wino_gen import schedule
from wino_gen.config import AcceleratorConfig

from .compute import ComputeUnit
from .core import DEFAULT_MAX_POOL, Core
from .ctrl.sequencer import Sequencer
from .ctrl.transfer import LoadExecutor, StoreExecutor
from .mem.arbiter import POLICIES, Arbiter
from .mem.port import PortSignature
from .mem.scratchpad import Scratchpad

_STATUS = ("busy", "done", "status", "index", "cycles")
#: the parameter memory's window: an int32 word
PARAM_WIDTH = 32


def _pow2(n: int) -> int:
    return 1 << ceil_log2(max(n, 2))


class System(wiring.Component):
    """``cfg``: the core's config; ``port``: the memory port (at most 32 bits: the parameter
    memory's word); ``act_bytes``/``wgt_bytes``/``param_bytes``: scratchpad sizes (rounded up
    to powers of two); ``act_width``/``wgt_width``: their window bits (``rtl.feed``'s rules);
    ``weight_ports``: the weight reader's windows; ``mem_bytes``: the external memory;
    ``burst``: the DMA engines' longest burst in words; ``max_kernel``/``max_pool``/
    ``direct_only``: the core's build; the rest as :class:`rtl.ctrl.sequencer.Sequencer` and
    :class:`rtl.mem.arbiter.Arbiter` take them. The defaults of ``burst``, ``fetch_depth`` and
    ``queue_depth`` are the system's build in :mod:`wino_gen.schedule`, which
    :class:`wino_gen.plan.SystemBuild` describes to the program's timing model."""

    def __init__(self, cfg: AcceleratorConfig, port: PortSignature, *, act_bytes: int, wgt_bytes: int,
                 param_bytes: int, mem_bytes: int, act_width: int = 64, wgt_width: int = 64, weight_ports: int = 1,
                 burst: int = schedule.MAX_BURST, max_kernel: int = 3,
                 max_pool: int = DEFAULT_MAX_POOL, direct_only: bool = False, policy: str = "round-robin",
                 max_instrs: int = 4095, fetch_depth: int = schedule.FETCH_DEPTH,
                 queue_depth: int = schedule.QUEUE_DEPTH, token_bits: int = 8):
        if not isinstance(port, PortSignature):
            raise ValueError(f"port {port!r}: must be a PortSignature")
        if port.data_width > PARAM_WIDTH:
            raise ValueError(f"port data_width {port.data_width}: at most {PARAM_WIDTH} (the parameter word)")
        if policy not in POLICIES:
            raise ValueError(f"policy {policy!r}: must be one of {', '.join(POLICIES)}")
        sizes = {"act": _pow2(act_bytes), "wgt": _pow2(wgt_bytes), "param": _pow2(param_bytes)}
        dw = port.data_width
        self.sp = {
            "act": Scratchpad(sizes["act"], act_width, dma_width=dw, reads=2 * cfg.unroll_in, writes=1),
            "wgt": Scratchpad(sizes["wgt"], wgt_width, dma_width=dw, reads=weight_ports),
            "param": Scratchpad(sizes["param"], PARAM_WIDTH, dma_width=dw, reads=weight_ports + 1),
        }
        self.core = Core(cfg, max_kernel=max_kernel, max_pool=max_pool, direct_only=direct_only)
        self.cu = ComputeUnit(cfg, max_kernel=max_kernel, act_bytes=sizes["act"], act_width=act_width,
                              wgt_bytes=sizes["wgt"], wgt_width=wgt_width, param_bytes=sizes["param"],
                              weight_ports=weight_ports, direct_only=direct_only,
                              max_pool=max_pool, max_instrs=max_instrs)
        kw = dict(mem_bytes=mem_bytes, burst=burst, max_instrs=max_instrs)
        self.seq = Sequencer(port, max_instrs=max_instrs, fetch_depth=fetch_depth, queue_depth=queue_depth,
                             token_bits=token_bits)
        self.loader = LoadExecutor(port, sp_bytes=sizes, **kw)
        self.storer = StoreExecutor(port, sp_bytes=sizes["act"], **kw)
        self.arb = Arbiter(port, 3, policy=policy)
        self.sizes = sizes
        seq = self.seq.signature.members
        ext = self.loader.signature.members["lo"].shape
        super().__init__({
            "start": In(stream.Signature(self.seq.start_layout)),
            "mem": Out(port),
            **{k: Out(seq[k].shape) for k in _STATUS},
            "load_lo": In(ext), "load_hi": In(ext, init=mem_bytes),
            "store_lo": In(ext), "store_hi": In(ext, init=mem_bytes),
        })

    def elaborate(self, platform):
        m = Module()
        seq, ld, st, arb, cu, core = self.seq, self.loader, self.storer, self.arb, self.cu, self.core
        m.submodules.seq, m.submodules.loader, m.submodules.storer, m.submodules.arb = seq, ld, st, arb
        m.submodules.cu, m.submodules.core = cu, core
        for b, sp in self.sp.items():
            m.submodules[f"sp_{b}"] = sp
            wiring.connect(m, getattr(ld, f"sp_{b}"), sp.dma_w)
        wiring.connect(m, st.sp_act, self.sp["act"].dma_r)
        m.d.comb += ld.sp_act_ready.eq(self.sp["act"].dma_w_ready)
        for k, master in enumerate((seq.fetch, ld.mem, st.mem)):
            wiring.connect(m, master, arb.req[k])
        wiring.connect(m, wiring.flipped(self.mem), arb.mem)
        wiring.connect(m, seq.load, ld.instr)
        wiring.connect(m, seq.store, st.instr)
        wiring.connect(m, seq.compute, cu.instr)
        wiring.connect(m, ld.done, seq.load_done)
        wiring.connect(m, st.done, seq.store_done)
        wiring.connect(m, cu.done, seq.compute_done)
        wiring.connect(m, wiring.flipped(self.start), seq.start)
        m.d.comb += cu.flush.eq(self.start.valid & self.start.ready)
        self._compute_ports(m)
        m.d.comb += [getattr(self, k).eq(getattr(seq, k)) for k in _STATUS]
        m.d.comb += [ld.lo.eq(self.load_lo), ld.hi.eq(self.load_hi), st.lo.eq(self.store_lo), st.hi.eq(self.store_hi)]
        return m

    def _compute_ports(self, m):
        """The compute unit's windows on the scratchpads, its streams to the core."""
        cu, core, sp = self.cu, self.core, self.sp
        for i, port in enumerate([*cu.act_rd, *cu.act2_rd]):
            wiring.connect(m, port, sp["act"].rd[i])
        for i, port in enumerate(cu.out_wr):
            wiring.connect(m, port, sp["act"].wr[i])
        for i, port in enumerate(cu.wgt_rd):
            wiring.connect(m, port, sp["wgt"].rd[i])
        wiring.connect(m, cu.prm, sp["param"].rd[0])
        for i, port in enumerate(cu.bias):
            wiring.connect(m, port, sp["param"].rd[i + 1])
        wiring.connect(m, cu.x, core.x)
        wiring.connect(m, cu.x2, core.x2)
        wiring.connect(m, cu.w, core.w)
        wiring.connect(m, core.o, cu.o)
        m.d.comb += [core.layer.eq(cu.core_layer), core.start.eq(cu.core_start), cu.core_busy.eq(core.busy)]


def window_bits(nbytes: int) -> int:
    """A feeder window's bits: ``nbytes`` rounded up to a power of two (``rtl.feed``'s rule)."""
    return 8 * (1 << (nbytes - 1).bit_length())


def system_for(cfg: AcceleratorConfig, port: PortSignature, *, act_bytes: int, wgt_bytes: int, param_bytes: int,
               mem_bytes: int, max_pool: int, max_kernel: int = 3, max_instrs: int = 4095) -> System:
    """The system of ``cfg`` on ``port`` (a direct-only core for a ``direct`` config; a
    ``weights='spatial'`` config's core transforms its Winograd layers' 3x3 kernels), its feeders
    at the core's rate: a weight word a cycle (``unroll`` weight windows of a word's row, ``L``
    bytes, the widest the reader makes: a spatial row is ``9 * unroll_in``), one output window
    (the core paces its beats to it), DMA bursts of the port's ``max_burst``; the one sizing
    that the simulations and the board's build share."""
    wino = cfg.algo == "winograd"
    return System(cfg, port, act_bytes=act_bytes, wgt_bytes=wgt_bytes, param_bytes=param_bytes, mem_bytes=mem_bytes,
                  act_width=window_bits(cfg.n), wgt_width=window_bits(schedule.pe_geometry(cfg).lanes),
                  weight_ports=cfg.unroll, burst=port.max_burst, max_kernel=max_kernel, max_pool=max_pool,
                  direct_only=not wino, max_instrs=max_instrs)
