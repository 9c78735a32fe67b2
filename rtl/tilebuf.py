"""Input tile buffer (banked n-row line buffer) and the layer controller that walks tiles and
channel blocks.

Line buffer: padded image row ``ys`` lives in row bank ``ys mod n``, slot ``(ys // n) mod 2``;
padded column ``xs`` in column bank ``xs mod n`` at word ``xs // n``. Any n consecutive rows
and columns hit every bank once, so one n x n tile (``unroll_in`` channels) is read per cycle.
Two slots per row bank hold 2n rows: the next band loads while the current one is read.
Zero padding (top/left ``pad``, bottom/right up to the tile grid) is applied by masking
on read; nothing outside the image is ever loaded.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from wino_gen.config import AcceleratorConfig
from wino_gen.limits import PAD_FIELD_BITS
from wino_gen.schedule import LineBuffer, latencies, line_buffer

from .pe import step_tag_layout
from .pipeline import beat_layout, delay, stage_enable
from .ram import SDPRam


def _lb_addr(lb: LineBuffer, sub, cg, xd):
    """Line-buffer word address ``{xd, sub, cg}`` as a concatenation, ``cg`` in the low
    ``cg_field`` bits (``wino_gen.schedule.LineBuffer``): no multiplier in the address paths."""
    return Cat(cg[:lb.cg_field], sub, xd)


def shape_layout(cfg: AcceleratorConfig) -> data.StructLayout:
    """Layer shape fields of the config port (computed by the host, ``wino_gen.flow.host``)."""
    lb = line_buffer(cfg)
    return data.StructLayout({
        "h": unsigned(lb.coord_bits), "w": unsigned(lb.coord_bits), "pad": unsigned(PAD_FIELD_BITS),
        "n_cg": unsigned(lb.cg_bits),   # channel groups (C / unroll_in) = steps per tile
        "n_kb": unsigned(lb.n_kb_bits),   # output channel blocks
        "th": unsigned(lb.coord_bits), "tw": unsigned(lb.coord_bits),      # tile rows / columns
        "nxb": unsigned(lb.xb_bits),   # input beats per row and channel group
    })


def cmd_layout(cfg: AcceleratorConfig) -> data.StructLayout:
    lb = line_buffer(cfg)
    c = unsigned(lb.coord_bits)
    return data.StructLayout({
        "y0": c, "y0mod": unsigned(ceil_log2(cfg.n)), "y0div": c,
        "x0": c, "x0mod": unsigned(ceil_log2(cfg.n)), "x0div": c,
        "cg": unsigned(lb.cg_bits), "tag": step_tag_layout(cfg),
    })


def input_beat_layout(cfg):
    """n consecutive padded columns of one row, ``unroll_in`` channels each."""
    return data.ArrayLayout(data.ArrayLayout(signed(cfg.act_bits), cfg.unroll_in), cfg.n)


class LayerController(wiring.Component):
    """Walks a layer: for tile row ``ty``, output-channel block ``kb``, tile column ``tx``,
    channel group ``cg`` it issues one step command (tile origin, weight word and bank,
    first/last/end-of-block tags). ``start`` begins a layer; ``busy`` while commands remain."""

    def __init__(self, cfg: AcceleratorConfig):
        self.cfg = cfg
        super().__init__({
            "geom": In(shape_layout(cfg)),
            "start": In(1),
            "busy": Out(1),
            "cmd": Out(stream.Signature(cmd_layout(cfg))),
        })

    def elaborate(self, platform):
        m = Module()
        n, mt = self.cfg.n, self.cfg.tile
        sh, c = self.geom, self.cmd.payload
        ty, tx = Signal.like(sh.th), Signal.like(sh.tw)
        kb = Signal.like(sh.n_kb)
        cg = Signal.like(sh.n_cg)
        bank = Signal()
        y0, y0mod, y0div = Signal.like(c.y0), Signal.like(c.y0mod), Signal.like(c.y0div)
        x0, x0mod, x0div = Signal.like(c.x0), Signal.like(c.x0mod), Signal.like(c.x0div)
        last_cg, last_tx = cg + 1 == sh.n_cg, tx + 1 == sh.tw
        last_kb, last_ty = kb + 1 == sh.n_kb, ty + 1 == sh.th
        m.d.comb += [
            self.cmd.valid.eq(self.busy),
            c.y0.eq(y0), c.y0mod.eq(y0mod), c.y0div.eq(y0div),
            c.x0.eq(x0), c.x0mod.eq(x0mod), c.x0div.eq(x0div),
            c.cg.eq(cg),
            c.tag.addr.eq(cg), c.tag.bank.eq(bank),
            c.tag.first.eq(cg == 0), c.tag.last.eq(last_cg), c.tag.eob.eq(last_cg & last_tx),
        ]
        reset_x = [tx.eq(0), x0.eq(0), x0mod.eq(0), x0div.eq(0)]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += cg.eq(cg + 1)
            with m.If(last_cg):
                m.d.sync += [cg.eq(0), tx.eq(tx + 1), x0.eq(x0 + mt)]
                with m.If(x0mod + mt >= n):
                    m.d.sync += [x0mod.eq(x0mod + mt - n), x0div.eq(x0div + 1)]
                with m.Else():
                    m.d.sync += x0mod.eq(x0mod + mt)
                with m.If(last_tx):
                    m.d.sync += reset_x + [kb.eq(kb + 1), bank.eq(~bank)]
                    with m.If(last_kb):
                        m.d.sync += [kb.eq(0), ty.eq(ty + 1), y0.eq(y0 + mt)]
                        with m.If(y0mod + mt >= n):
                            m.d.sync += [y0mod.eq(y0mod + mt - n), y0div.eq(y0div + 1)]
                        with m.Else():
                            m.d.sync += y0mod.eq(y0mod + mt)
                        with m.If(last_ty):
                            m.d.sync += self.busy.eq(0)
        with m.If(self.start):
            m.d.sync += reset_x + [self.busy.eq(1), ty.eq(0), kb.eq(0), cg.eq(0), bank.eq(0),
                                   y0.eq(0), y0mod.eq(0), y0div.eq(0)]
        return m


class TileBuffer(wiring.Component):
    """Banked line buffer: ``x`` beats (row by row: for each padded row ``ys`` from ``pad``
    to ``h + pad - 1``, each channel group, ``nxb`` beats of n columns) in; one n x n tile of
    ``unroll_in`` channels per ``cmd`` out, zero outside the image, with the command's tag.
    ``blackbox_ram``: the banks as instances (:class:`rtl.ram.SDPRam`). Latency
    ``schedule.latencies(cfg).tile_buffer`` (asserted): RAM read, two read-data registers,
    the rotated and masked tile."""

    def __init__(self, cfg: AcceleratorConfig, *, blackbox_ram: bool = False):
        self.cfg = cfg
        self.lb = line_buffer(cfg)
        self.blackbox_ram = blackbox_ram
        n = cfg.n
        super().__init__({
            "geom": In(shape_layout(cfg)),
            "start": In(1),
            "x": In(stream.Signature(input_beat_layout(cfg))),
            "cmd": In(stream.Signature(cmd_layout(cfg))),
            "o": Out(stream.Signature(beat_layout(cfg.act_bits, cfg.unroll_in, n * n, step_tag_layout(cfg)))),
        })

    def elaborate(self, platform):
        m = Module()
        word = data.ArrayLayout(signed(self.cfg.act_bits), self.cfg.unroll_in)
        mems = self._banks(m, word)
        ys, y0_cur, restart = self._write_side(m, mems)
        en = stage_enable(m, self.o)
        fields1 = self._read_command(m, mems, en, ys, y0_cur)
        # stages 2a, 2b: the block RAMs' read data registered twice: their clock-to-out is
        # slow (~6 ns on the ECP5) and the banks are spread over the die, so the first
        # register has one load and can sit next to its RAM; the command's fields alongside
        n = self.cfg.n
        rd0 = [[Signal(word, name=f"rd0_{k}_{j}") for j in range(n)] for k in range(n)]
        rd = [[Signal(word, name=f"rd{k}_{j}") for j in range(n)] for k in range(n)]
        fields2 = delay(m, en, fields1, 2, "fields")
        with m.If(en):
            for k in range(n):
                for j in range(n):
                    m.d.sync += [rd0[k][j].eq(mems[k][j].rdata), rd[k][j].eq(rd0[k][j])]
        self._output(m, en, rd, fields2, word)
        assert 1 + 2 + 1 == latencies(self.cfg).tile_buffer
        with m.If(self.start):
            m.d.sync += restart
        return m

    def _banks(self, m, word):
        """The n x n bank RAMs: ``mems[row bank][column bank]``."""
        n = self.cfg.n
        mems = [[SDPRam(word.size, self.lb.depth, blackbox=self.blackbox_ram) for j in range(n)]
                for k in range(n)]
        for k in range(n):
            for j in range(n):
                m.submodules[f"bank{k}_{j}"] = mems[k][j]
        return mems

    def _write_side(self, m, mems):
        """Writes ``x`` beats row by row into row bank ``ys mod n``, slot ``(ys // n) mod 2``;
        takes a row only while its slot is free (``ys < y0 + 2n``, ``y0`` the tile row being
        read). Returns ``ys``, ``y0_cur`` and the statements that restart a layer."""
        n, lb, sh = self.cfg.n, self.lb, self.geom
        ys = Signal(lb.coord_bits)
        wk = Signal(ceil_log2(n))
        wsub = Signal()
        wcg = Signal.like(sh.n_cg)
        wxb = Signal.like(sh.nxb)
        y0_cur = Signal(lb.coord_bits)
        waddr = Signal(range(lb.depth))
        m.d.comb += [
            self.x.ready.eq((ys < y0_cur + 2 * n) & (ys < sh.h + sh.pad)),
            waddr.eq(_lb_addr(lb, wsub, wcg, wxb)),
        ]
        wen = self.x.valid & self.x.ready
        for k in range(n):
            for j in range(n):
                m.d.comb += [mems[k][j].waddr.eq(waddr), mems[k][j].wdata.eq(self.x.payload[j]),
                             mems[k][j].we.eq(wen & (wk == k))]
        with m.If(wen):
            m.d.sync += wxb.eq(wxb + 1)
            with m.If(wxb + 1 == sh.nxb):
                m.d.sync += [wxb.eq(0), wcg.eq(wcg + 1)]
                with m.If(wcg + 1 == sh.n_cg):
                    m.d.sync += [wcg.eq(0), ys.eq(ys + 1)]
                    with m.If(wk == n - 1):
                        m.d.sync += [wk.eq(0), wsub.eq(~wsub)]
                    with m.Else():
                        m.d.sync += wk.eq(wk + 1)
        restart = [ys.eq(sh.pad), wk.eq(sh.pad), wsub.eq(0), wcg.eq(0), wxb.eq(0), y0_cur.eq(0)]
        return ys, y0_cur, restart

    def _read_command(self, m, mems, en, ys, y0_cur):
        """Stage 1: takes a command once its rows are loaded (``ys >= y0 + n``, or the image's
        last row), reads bank (k, j) at word ``{col[j], sub[k], cg}`` (n row slots, n column
        words) and registers the fields the later stages need. Returns them as one value."""
        n, lb, sh, c = self.cfg.n, self.lb, self.geom, self.cmd.payload
        band_ok = Signal()
        m.d.comb += [
            band_ok.eq((ys >= c.y0 + n) | (ys >= sh.h + sh.pad)),
            self.cmd.ready.eq(en & band_ok),
        ]
        accept = self.cmd.valid & self.cmd.ready
        with m.If(accept):
            m.d.sync += y0_cur.eq(c.y0)
        row_sub, col = [], []
        for k in range(n):
            # row bank k holds the tile row whose index wrapped past n iff k < y0mod
            wrapped = (c.y0mod > k) if k < (1 << len(c.y0mod)) - 1 else 0
            rs = Signal(name=f"row_sub{k}")
            m.d.comb += rs.eq(c.y0div[0] ^ wrapped)    # == (y0div + wrapped)[0]
            row_sub.append(rs)
        for j in range(n):
            xw = (c.x0mod > j) if j < (1 << len(c.x0mod)) - 1 else 0
            xd = Signal(lb.coord_bits, name=f"rxdiv{j}")
            m.d.comb += xd.eq(c.x0div + xw)
            col.append(xd)
        for k in range(n):
            for j in range(n):
                m.d.comb += [mems[k][j].raddr.eq(_lb_addr(lb, row_sub[k], c.cg, col[j])),
                             mems[k][j].re.eq(en)]
        v1 = Signal()
        tag1 = Signal.like(c.tag)
        ymod1, xmod1 = Signal.like(c.y0mod), Signal.like(c.x0mod)
        rowv = Signal(n)
        colv = Signal(n)
        with m.If(en):
            m.d.sync += [v1.eq(accept), tag1.eq(c.tag), ymod1.eq(c.y0mod), xmod1.eq(c.x0mod)]
            for i in range(n):
                m.d.sync += [
                    rowv[i].eq((c.y0 + i >= sh.pad) & (c.y0 + i < sh.h + sh.pad)),
                    colv[i].eq((c.x0 + i >= sh.pad) & (c.x0 + i < sh.w + sh.pad)),
                ]
        return Cat(v1, tag1, ymod1, xmod1, rowv, colv)

    def _output(self, m, en, rd, fields, word):
        """Stage 3: rotates the banks' rows, then columns, into tile order, zeroes what lies
        outside the image and registers the tile with the command's tag."""
        n, ui, c = self.cfg.n, self.cfg.unroll_in, self.cmd.payload
        v2 = Signal()
        tag2 = Signal.like(c.tag)
        ymod2, xmod2 = Signal.like(c.y0mod), Signal.like(c.x0mod)
        rowv2, colv2 = Signal(n), Signal(n)
        m.d.comb += Cat(v2, tag2, ymod2, xmod2, rowv2, colv2).eq(fields)
        rows = [[Signal(word, name=f"rot_r{i}_{j}") for j in range(n)] for i in range(n)]
        with m.Switch(ymod2):
            for r in range(n):
                with (m.Case(r) if r < n - 1 else m.Default()):
                    for i in range(n):
                        for j in range(n):
                            m.d.comb += rows[i][j].eq(rd[(r + i) % n][j])
        cols = [[Signal(word, name=f"rot_c{i}_{j}") for j in range(n)] for i in range(n)]
        with m.Switch(xmod2):
            for r in range(n):
                with (m.Case(r) if r < n - 1 else m.Default()):
                    for i in range(n):
                        for j in range(n):
                            m.d.comb += cols[i][j].eq(rows[i][(r + j) % n])
        v3 = Signal()
        with m.If(en):
            m.d.sync += [v3.eq(v2), self.o.payload.tag.eq(tag2)]
            for i in range(n):
                for j in range(n):
                    for ch in range(ui):
                        m.d.sync += self.o.payload.data[ch][i * n + j].eq(cols[i][j][ch])
                    with m.If(~(rowv2[i] & colv2[j])):
                        for ch in range(ui):
                            m.d.sync += self.o.payload.data[ch][i * n + j].eq(0)
        m.d.comb += self.o.valid.eq(v3)
