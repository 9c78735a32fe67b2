"""On-chip window generator for direct convolutions: a line buffer that turns activations read
once per output-channel block into the im2col chunks :class:`rtl.top.DirectAccel` consumes,
so that it sits in front of that engine unchanged (:class:`WindowedDirectAccel`).

Input ``x`` (:func:`wino_gen.schedule.window_x_order`): for each output-channel block (pass),
each image row, each channel group, ``nxb = ceil(w / n)`` beats of n image columns (column
``xb*n + j``; columns >= w are ignored), ``unroll_in`` channels each (channels >= C are
ignored): the Winograd tile buffer's beat (:func:`rtl.tilebuf.input_beat_layout`) and loop order, without
the padding columns. Output ``o``: the chunks of :func:`wino_gen.schedule.direct_steps`, beat
for beat those of ``wino_gen.flow.host.DirectLayer.x_beats``.

Structure (all sizes from the constructor: ``max_width``, ``max_channels``, ``max_kernel``,
``sets``)::

    x ─► line buffer: P x R x Q banks ─► windows k x k ─► read: par groups ─► FIFO ─► gearbox ─► o
         (group cg: set cg mod P;        of par sets,     x unroll_in          (credits)  L = unroll_in*n²
          padded row ys: bank ys mod R,  rotated,         channels x k², the              elements a chunk
          slot ys//R mod 2; column xs:   masked           next ones of the
          bank xs mod Q)                                  (c,ky,kx) order

One read of all banks yields the k x k windows (``k <= R, Q``) of ``par`` adjacent channel
groups (``wino_gen.schedule.window_par``: as many as fill a chunk, up to P), which are
``par * unroll_in * k²`` consecutive patch elements (channels ``cg*unroll_in ..`` are adjacent
in the ``(c, ky, kx)`` order). So the gearbox, which packs reads into chunks of L, zero-fills
a pixel's last chunk and drops what lies past its ``n_step`` chunks (only zero channels), can
emit a chunk every cycle for 3x3 and larger kernels; where a pixel's patch is shorter than
its reads (1x1: ``par * unroll_in`` elements a read) it waits for them. Zero padding is
masking on read: nothing outside the image is stored. The read pipeline runs free (no stall
enable): a credit counter keeps at most ``schedule.FIFO_DEPTH`` reads issued and not yet
taken, which is exactly enough that the gearbox never waits on a read that could be issued.

What bounds the rate where it is not a chunk a cycle: the ``x`` stream (a beat of n columns
of ``unroll_in`` channels a cycle, the image once per output-channel block, every row, also
those of a stride-2 layer that no window needs), so 3x3 s2 and 1x1 layers are input-bound;
a 1x1 s1 layer also by its reads (P groups a cycle against the n a beat brings, when P < n).

A row is overwritten only once the gearbox has started a window row that no longer needs it;
the passes' rows follow each other round the ring of 2R rows, so the next pass's first rows
load while the gearbox finishes this one (as far as their slots are free). The geometry
(``WindowBuffer``, ``WindowGeometry``), the input order, the pipeline constants and the timing
recurrence ``window_cycles`` are ``wino_gen.schedule``'s; the generator asserts at elaboration
that its read pipeline has the schedule's stage counts.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from wino_gen.config import AcceleratorConfig
from wino_gen.limits import WINDOW_STRIDES
from wino_gen.schedule import (
    FIFO_DEPTH,
    READ_LATENCY,
    WindowBuffer,
    WindowGeometry,
    ceil_log2,
    pe_geometry,
    window_buffer,
    window_par,
    window_x_order,
)

from .ram import SDPRam
from .tilebuf import input_beat_layout
from .top import DirectAccel, direct_layer_layout, direct_x_layout

# -- host-side words and beats ----------------------------------------------------------------

def window_fields(g: WindowGeometry) -> dict:
    """The config port's fields (:func:`window_layer_layout`) of a layer."""
    d = g.d
    return {"h": d.H, "w": d.W, "pad": d.pad, "k": d.kh, "stride": d.stride, "n_cg": g.n_cg,
            "c_last": g.c_last, "nxb": g.nxb, "ho": d.Ho, "wo": d.Wo, "n_step": d.n_step,
            "n_kb": d.n_kb, "par": g.par, "group": g.group}


def window_x_beats(g: WindowGeometry, buf: WindowBuffer, x) -> list:
    """``x[C, H, W]`` as input beats in :func:`wino_gen.schedule.window_x_order` (nested lists ``[column][channel]``;
    zeros past the image and past C, which the generator ignores anyway)."""
    n, ui = buf.n, buf.unroll_in
    C, H, W = x.shape
    xp = np.zeros((g.n_cg * ui, H, g.nxb * n), dtype=np.int64)
    xp[:C, :, :W] = x
    return [xp[cg * ui:(cg + 1) * ui, y, xb * n:(xb + 1) * n].T.tolist()
            for _, y, cg, xb in window_x_order(g)]


# -- hardware ---------------------------------------------------------------------------------

def window_layer_layout(buf: WindowBuffer, cfg: AcceleratorConfig) -> data.StructLayout:
    """The generator's config port: one layer's shape (``window_fields``)."""
    c = unsigned(buf.coord_bits)
    return data.StructLayout({
        "h": c, "w": c, "pad": unsigned(ceil_log2(buf.max_kernel)), "k": unsigned(ceil_log2(buf.max_kernel + 1)),
        "stride": unsigned(max(WINDOW_STRIDES).bit_length()), "n_cg": unsigned(ceil_log2(buf.cg_max + 1)),
        "c_last": unsigned(ceil_log2(buf.unroll_in + 1)), "nxb": c, "ho": c, "wo": c,
        "n_step": unsigned(ceil_log2(pe_geometry(cfg).depth + 1)),
        "n_kb": unsigned(ceil_log2(cfg.max_channels + 1)),
        "par": unsigned(ceil_log2(buf.sets + 1)),
        "group": unsigned(ceil_log2(buf.group_max + 1)),
    })


def group_layout(buf: WindowBuffer) -> data.StructLayout:
    """A read of the line buffer: its patch elements (zero beyond them), the pixel's and the pass's
    last group, a window row's first group with its top row ``y0`` (which frees row slots)."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(buf.act_bits), buf.group_max),
        "last_pix": unsigned(1), "first_row": unsigned(1), "last_pass": unsigned(1),
        "y0": unsigned(buf.coord_bits),
    })


class WindowGenerator(wiring.Component):
    """The window generator (module doc). Set ``layer`` (:func:`window_fields`), pulse
    ``start``, stream ``x`` (:func:`wino_gen.schedule.window_x_order`); ``o`` carries the direct engine's chunks
    in :func:`wino_gen.schedule.direct_steps` order. ``max_width``/``max_channels``/
    ``max_kernel`` size the buffers and ``sets`` (channel groups a read can take; None: the
    schedule's choice) their banking (:func:`wino_gen.schedule.window_buffer`); ``blackbox_ram``
    as in :class:`rtl.ram.SDPRam`."""

    def __init__(self, cfg: AcceleratorConfig, *, max_width: int, max_channels: int, max_kernel: int,
                 sets: int | None = None, blackbox_ram: bool = False):
        self.buf = window_buffer(cfg, max_width, max_channels, max_kernel, sets)
        self.cfg, self.blackbox_ram = cfg, blackbox_ram
        super().__init__({
            "layer": In(window_layer_layout(self.buf, cfg)),
            "start": In(1),
            "x": In(stream.Signature(input_beat_layout(cfg))),
            "o": Out(stream.Signature(direct_x_layout(cfg))),
        })

    def elaborate(self, platform):
        m = Module()
        buf = self.buf
        word = data.ArrayLayout(signed(buf.act_bits), buf.unroll_in)
        mems = [[[SDPRam(word.size, buf.depth, blackbox=self.blackbox_ram) for _ in range(buf.cols)]
                 for _ in range(buf.rows)] for _ in range(buf.sets)]
        for p, rows in enumerate(mems):
            for r, row in enumerate(rows):
                for q, mem in enumerate(row):
                    m.submodules[f"bank{p}_{r}_{q}"] = mem
        gkb = Signal.like(self.layer.n_kb)          # passes whose last group the gearbox took
        y0_gb = Signal(buf.coord_bits)              # the gearbox's window row (its top row)
        ys, wkb, bases = self._write_side(m, mems, word, gkb, y0_gb)
        take = Signal()
        fields = self._issue(m, mems, ys, wkb, bases, take)
        group = self._group(m, mems, word, fields)
        # the read pipeline (_issue, _group): the read issued, RAM data, the group register; then
        # the FIFO's write-to-read cycle. A credit per group in flight there keeps it full.
        read_stages = 1 + 1 + 1
        assert read_stages + 1 == READ_LATENCY
        assert read_stages + 1 == FIFO_DEPTH
        fifo = m.submodules.fifo = SyncFIFO(width=group.shape().size, depth=FIFO_DEPTH)
        m.d.comb += [fifo.w_en.eq(fields["v"]), fifo.w_data.eq(group.as_value())]
        g = Signal(group_layout(buf))
        m.d.comb += g.as_value().eq(fifo.r_data)
        in_done = Signal()      # the last pass's rows are all in: no x beat left
        m.d.comb += in_done.eq((wkb + 1 == self.layer.n_kb) & (ys == self.layer.h + self.layer.pad))
        self._gearbox(m, fifo, g, take, gkb, y0_gb, in_done)
        return m

    def _addr(self, xd, slot, cg):
        """Bank word ``{xd, slot, cg // P}``, the group in the low bits: no multiplier in the
        address (``cg mod P`` is the set)."""
        buf = self.buf
        lo = ceil_log2(buf.sets)
        return Cat(cg[lo:lo + buf.cg_field], slot, xd[:ceil_log2(buf.xd_max)])

    def _write_side(self, m, mems, word, gkb, y0_gb):
        """Writes ``x`` beats: channel group ``cg`` into set ``cg mod P``, the padded row ``ys``
        of pass ``kb`` at ring position ``v = kb * h + ys`` (row bank ``v mod R``, slot
        ``v//R mod 2``: the passes' rows follow each other round the 2R rows), column ``xs``
        into column bank ``xs mod Q`` (a beat's n columns rotated onto the banks).
        A row is taken once its slot is free: ``ys < y0_gb + 2R`` in the gearbox's pass,
        ``ys + h < y0_gb + 2R`` one pass ahead of it; rows of a pass whose reads are done are
        taken and dropped. The next pass starts once this one's rows are in and the gearbox has
        reached this pass. Returns ``ys`` (rows ``pad .. ys-1`` loaded), the pass ``wkb`` and
        each pass parity's ring base (``kb * h`` as row bank and slot parity)."""
        buf, lay, x = self.buf, self.layer, self.x
        P, R, Q, n = buf.sets, buf.rows, buf.cols, buf.n
        ys, wx, fdiv = Signal(buf.coord_bits), Signal(buf.coord_bits), Signal(buf.coord_bits)
        wk, fmod, wsub = Signal(range(R)), Signal(range(Q)), Signal()
        wcg, wxb, wkb = Signal.like(lay.n_cg), Signal.like(lay.nxb), Signal.like(lay.n_kb)
        same, ahead, behind = Signal(), Signal(), Signal()
        m.d.comb += [same.eq(wkb == gkb), ahead.eq(wkb == gkb + 1), behind.eq(wkb + 1 == gkb),
                     x.ready.eq((ys < lay.h + lay.pad) & (behind | (same & (ys < y0_gb + 2 * R)) |
                                                          (ahead & (ys + lay.h < y0_gb + 2 * R))))]
        wen = x.valid & x.ready & ~behind
        for q in range(Q):
            j = Signal(range(Q), name=f"wcol{q}")     # the beat column that lands in bank q
            with m.Switch(fmod):
                for r in range(Q):
                    with m.Case(r):
                        m.d.comb += j.eq((q - r) % Q)
            wdata = Signal(word, name=f"wdata{q}")
            with m.Switch(j):
                for c in range(n):
                    with m.Case(c):
                        m.d.comb += wdata.eq(x.payload[c])
            ok = (j < n) & (wx + j < lay.w)
            addr = self._addr(fdiv + (q < fmod), wsub, wcg)
            for p in range(P):
                for r in range(R):
                    mem = mems[p][r][q]
                    sel = (wk == r) & (wcg[:ceil_log2(P)] == p) if P > 1 else wk == r
                    m.d.comb += [mem.waddr.eq(addr), mem.wdata.eq(wdata), mem.we.eq(wen & ok & sel)]
        with m.If(x.valid & x.ready):
            m.d.sync += [wxb.eq(wxb + 1), wx.eq(wx + n)]
            with m.If(fmod + n >= Q):
                m.d.sync += [fmod.eq(fmod + n - Q), fdiv.eq(fdiv + 1)]
            with m.Else():
                m.d.sync += fmod.eq(fmod + n)
            with m.If(wxb + 1 == lay.nxb):
                m.d.sync += [wxb.eq(0), wx.eq(0), fmod.eq(lay.pad), fdiv.eq(0), wcg.eq(wcg + 1)]
                with m.If(wcg + 1 == lay.n_cg):
                    m.d.sync += [wcg.eq(0), ys.eq(ys + 1)]
                    with m.If(wk == R - 1):
                        m.d.sync += [wk.eq(0), wsub.eq(~wsub)]
                    with m.Else():
                        m.d.sync += wk.eq(wk + 1)
        bases = [(Signal(range(R), name=f"bmod{i}"), Signal(name=f"bpar{i}")) for i in range(2)]
        restart = [ys.eq(lay.pad), wcg.eq(0), wxb.eq(0), wx.eq(0), fmod.eq(lay.pad), fdiv.eq(0)]
        with m.If((ys == lay.h + lay.pad) & (same | behind) & (wkb + 1 != lay.n_kb)):
            m.d.sync += restart + [wkb.eq(wkb + 1)]
            for i, (bmod, bpar) in enumerate(bases):    # the ring position of ys = 0: v - pad
                with m.If(wkb[0] != i):
                    with m.If(wk >= lay.pad):
                        m.d.sync += [bmod.eq(wk - lay.pad), bpar.eq(wsub)]
                    with m.Else():
                        m.d.sync += [bmod.eq(wk + R - lay.pad), bpar.eq(~wsub)]
        with m.If(self.start):
            m.d.sync += restart + [wkb.eq(0), wk.eq(lay.pad), wsub.eq(0), bases[0][0].eq(0), bases[0][1].eq(0)]
        return ys, wkb, bases

    def _issue(self, m, mems, ys, wkb, bases, take):
        """Stage 1: for pass, window row, column, ``par`` channel groups one read of every
        bank, once the window's rows are loaded and a credit is free; registers what the later
        stages need (rotations, the first group's set, row/column/channel masks, tags).
        Returns those registers."""
        buf, lay = self.buf, self.layer
        P, R, Q, ui = buf.sets, buf.rows, buf.cols, buf.unroll_in
        ikb, oy, ox, cg = (Signal.like(lay.n_kb), Signal.like(lay.ho), Signal.like(lay.wo),
                           Signal.like(lay.n_cg))
        y0, y0div, x0, x0div = (Signal(buf.coord_bits) for _ in range(4))
        y0mod, x0mod = Signal(range(R)), Signal(range(Q))
        busy, issue = Signal(), Signal()
        inflight = Signal(range(FIFO_DEPTH + 1))
        band_ok = ((wkb == ikb) & ((ys >= y0 + lay.k) | (ys >= lay.h + lay.pad))) | (wkb == ikb + 1)
        m.d.comb += issue.eq(busy & band_ok & (inflight < FIFO_DEPTH))
        m.d.sync += inflight.eq(inflight + issue - take)
        # the window's top row on the ring: the pass's base plus y0
        bmod, bpar = (Mux(ikb[0], bases[1][k], bases[0][k]) for k in range(2))
        vsum, vmod, vpar = Signal(range(2 * R)), Signal(range(R)), Signal()
        m.d.comb += [vsum.eq(y0mod + bmod), vmod.eq(Mux(vsum >= R, vsum - R, vsum)),
                     vpar.eq(y0div[0] ^ bpar ^ (vsum >= R))]
        for r in range(R):
            slot = vpar ^ (vmod > r)                # row bank r wrapped past R: the next slot
            for q in range(Q):
                for p in range(P):
                    m.d.comb += [mems[p][r][q].raddr.eq(self._addr(x0div + (x0mod > q), slot, cg)),
                                 mems[p][r][q].re.eq(issue)]
        last_cg, last_ox, last_oy = cg + lay.par >= lay.n_cg, ox + 1 == lay.wo, oy + 1 == lay.ho
        f = {"v": Signal(name="v1"), "ymod": Signal.like(y0mod, name="ymod1"),
             "xmod": Signal.like(x0mod, name="xmod1"), "rowv": Signal(R, name="rowv1"),
             "colv": Signal(Q, name="colv1"), "chv": Signal(P * ui, name="chv1"),
             "set": Signal(range(P), name="set1"),
             "last_pix": Signal(name="last_pix1"), "first_row": Signal(name="first_row1"),
             "last_pass": Signal(name="last_pass1"), "y0": Signal.like(y0, name="y01")}
        m.d.sync += [f["set"].eq(cg[:ceil_log2(P)] if P > 1 else 0),
                     f["v"].eq(issue), f["ymod"].eq(vmod), f["xmod"].eq(x0mod), f["y0"].eq(y0),
                     f["last_pix"].eq(last_cg), f["first_row"].eq((ox == 0) & (cg == 0)),
                     f["last_pass"].eq(last_cg & last_ox & last_oy)]
        for i in range(R):
            m.d.sync += f["rowv"][i].eq((i < lay.k) & (y0 + i >= lay.pad) & (y0 + i < lay.h + lay.pad))
        for i in range(Q):
            m.d.sync += f["colv"][i].eq((i < lay.k) & (x0 + i >= lay.pad) & (x0 + i < lay.w + lay.pad))
        for j in range(P):        # group cg + j: whole before the last, c_last channels in it
            g_last = cg + j + 1 == lay.n_cg
            for c in range(ui):
                m.d.sync += f["chv"][j * ui + c].eq((cg + j + 1 < lay.n_cg) | (g_last & (c < lay.c_last)))

        def step(pos, mod, div, size):
            with m.If(mod + lay.stride >= size):
                m.d.sync += [mod.eq(mod + lay.stride - size), div.eq(div + 1)]
            with m.Else():
                m.d.sync += mod.eq(mod + lay.stride)
            m.d.sync += pos.eq(pos + lay.stride)

        with m.If(issue):
            m.d.sync += cg.eq(cg + lay.par)
            with m.If(last_cg):
                m.d.sync += [cg.eq(0), ox.eq(ox + 1)]
                step(x0, x0mod, x0div, Q)
                with m.If(last_ox):
                    m.d.sync += [ox.eq(0), x0.eq(0), x0mod.eq(0), x0div.eq(0), oy.eq(oy + 1)]
                    step(y0, y0mod, y0div, R)
                    with m.If(last_oy):
                        m.d.sync += [oy.eq(0), y0.eq(0), y0mod.eq(0), y0div.eq(0), ikb.eq(ikb + 1)]
                        with m.If(ikb + 1 == lay.n_kb):
                            m.d.sync += busy.eq(0)
        with m.If(self.start):
            m.d.sync += [busy.eq(1), inflight.eq(0), ikb.eq(0), oy.eq(0), ox.eq(0), cg.eq(0),
                         y0.eq(0), y0mod.eq(0), y0div.eq(0), x0.eq(0), x0mod.eq(0), x0div.eq(0)]
        return f

    def _group(self, m, mems, word, f):
        """Stage 2: the banks' words rotated into window order (sets from the first group's,
        rows, columns), masked outside the image and past the channels, flattened into the
        ``(c, ky, kx)`` order of the layer's k (the read's groups one after the other: their
        channels are adjacent) and registered with the tags (``f["v"]`` becomes the read's
        valid)."""
        buf, lay = self.buf, self.layer
        P, R, Q, ui = buf.sets, buf.rows, buf.cols, buf.unroll_in
        sets = [[[Signal(word, name=f"set{p}_{i}_{j}") for j in range(Q)] for i in range(R)] for p in range(P)]
        with m.Switch(f["set"]):
            for s in range(P):
                with m.Case(s):
                    for p in range(P):
                        for i in range(R):
                            for j in range(Q):
                                m.d.comb += sets[p][i][j].eq(mems[(s + p) % P][i][j].rdata)
        rows = [[[Signal(word, name=f"rot{p}_r{i}_{j}") for j in range(Q)] for i in range(R)] for p in range(P)]
        with m.Switch(f["ymod"]):
            for r in range(R):
                with m.Case(r):
                    for p in range(P):
                        for i in range(R):
                            for j in range(Q):
                                m.d.comb += rows[p][i][j].eq(sets[p][(r + i) % R][j])
        win = [[[Signal(word, name=f"win{p}_{i}_{j}") for j in range(Q)] for i in range(R)] for p in range(P)]
        with m.Switch(f["xmod"]):
            for r in range(Q):
                with m.Case(r):
                    for p in range(P):
                        for i in range(R):
                            for j in range(Q):
                                m.d.comb += win[p][i][j].eq(rows[p][i][(r + j) % Q])
        g = Signal(group_layout(buf))
        with m.Switch(lay.k):
            for k in range(1, buf.max_kernel + 1):
                with m.Case(k):
                    size = window_par(ui, buf.lanes, P, buf.max_kernel, k) * ui * k * k
                    for lane in range(size):
                        c, q = divmod(lane, k * k)
                        i, j = divmod(q, k)
                        ok = f["rowv"][i] & f["colv"][j] & f["chv"][c]
                        m.d.sync += g.data[lane].eq(Mux(ok, win[c // ui][i][j][c % ui], 0))
                    for lane in range(size, buf.group_max):
                        m.d.sync += g.data[lane].eq(0)
        m.d.sync += [g.last_pix.eq(f["last_pix"]), g.first_row.eq(f["first_row"]),
                     g.last_pass.eq(f["last_pass"]), g.y0.eq(f["y0"])]
        v2 = Signal(name="v2")
        m.d.sync += v2.eq(f["v"])
        f["v"] = v2
        return g

    def _gearbox(self, m, fifo, g, take, gkb, y0_gb, in_done):
        """Packs reads into chunks of L: appends a read at the fill count while that is below
        L, emits the first L elements once there are L (or the pixel's reads are all in: the
        last, zero-filled chunk, and zero chunks after it up to a paced ``n_step``,
        :func:`wino_gen.schedule.window_geometry`'s ``min_steps``) and clears after a pixel's
        ``n_step`` chunks. Elements past
        the fill count are always zero, so an append is an OR. The layer's last chunk waits
        for ``in_done``: rows no window needs (the last of an even image at stride 2) are
        still taken from ``x`` before the command ends, so the next one finds ``x`` at its
        first beat."""
        buf, lay, o = self.buf, self.layer, self.o
        L, B, ebits = buf.lanes, buf.gear, buf.act_bits
        arr = data.ArrayLayout(signed(ebits), B)
        gb, base, sh = Signal(arr), Signal(arr), Signal(arr)
        cnt, cnt_e = Signal(range(B + 1)), Signal(range(B + 1))
        pend, pend_e = Signal(), Signal()
        chunk = Signal.like(lay.n_step)
        S = L // buf.unroll_in
        for i in range(buf.unroll_in):
            for t in range(S):
                m.d.comb += o.payload[i][t].eq(gb[i * S + t])
        emit, last = Signal(), Signal()
        final = (gkb == lay.n_kb) & (chunk + 1 == lay.n_step)
        m.d.comb += [o.valid.eq(((cnt >= L) | pend) & (in_done | ~final)), emit.eq(o.valid & o.ready),
                     last.eq(emit & (chunk + 1 == lay.n_step)), pend_e.eq(pend & ~last)]
        with m.If(last):
            m.d.comb += [base.as_value().eq(0), cnt_e.eq(0)]
        with m.Elif(emit):     # a pixel's chunks past its reads' (its least chunks) are zeros
            m.d.comb += [base.as_value().eq(gb.as_value() >> (L * ebits)), cnt_e.eq(Mux(cnt > L, cnt - L, 0))]
        with m.Else():
            m.d.comb += [base.eq(gb), cnt_e.eq(cnt)]
        m.d.comb += [take.eq(fifo.r_rdy & ~pend_e & (cnt_e < L)), fifo.r_en.eq(take)]
        with m.Switch(cnt_e):
            for c in range(L):
                with m.Case(c):
                    for q in range(buf.group_max):
                        m.d.comb += sh[c + q].eq(g.data[q])
        m.d.sync += [gb.as_value().eq(base.as_value() | Mux(take, sh.as_value(), 0)),
                     cnt.eq(cnt_e + Mux(take, lay.group, 0)), pend.eq(pend_e | (take & g.last_pix)),
                     chunk.eq(Mux(last, 0, chunk + emit))]
        with m.If(take & g.first_row):
            m.d.sync += y0_gb.eq(g.y0)
        with m.If(take & g.last_pass):
            m.d.sync += [y0_gb.eq(0), gkb.eq(gkb + 1)]
        with m.If(self.start):
            m.d.sync += [gb.as_value().eq(0), cnt.eq(0), pend.eq(0), chunk.eq(0), y0_gb.eq(0), gkb.eq(0)]


def windowed_direct_layout(buf: WindowBuffer, cfg: AcceleratorConfig) -> data.StructLayout:
    return data.StructLayout({"win": window_layer_layout(buf, cfg), "eng": direct_layer_layout(cfg)})


class WindowedDirectAccel(wiring.Component):
    """The window generator in front of the unchanged :class:`rtl.top.DirectAccel`: ``x``
    carries activations (:func:`wino_gen.schedule.window_x_order`) instead of im2col chunks; ``layer`` holds
    both config words; ``w`` and ``o`` are the engine's."""

    def __init__(self, cfg: AcceleratorConfig, *, max_width: int, max_channels: int, max_kernel: int):
        self.gen = WindowGenerator(cfg, max_width=max_width, max_channels=max_channels, max_kernel=max_kernel)
        self.eng = DirectAccel(cfg)
        super().__init__({
            "layer": In(windowed_direct_layout(self.gen.buf, cfg)),
            "start": In(1),
            "x": In(stream.Signature(input_beat_layout(cfg))),
            "w": In(self.eng.w.signature.flip()),
            "o": Out(self.eng.o.signature),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.gen, m.submodules.eng = gen, eng = self.gen, self.eng
        m.d.comb += [gen.layer.eq(self.layer.win), eng.layer.eq(self.layer.eng),
                     gen.start.eq(self.start), eng.start.eq(self.start)]
        wiring.connect(m, wiring.flipped(self.x), gen.x)
        wiring.connect(m, gen.o, eng.x)
        wiring.connect(m, wiring.flipped(self.w), eng.w)
        wiring.connect(m, eng.o, wiring.flipped(self.o))
        return m
