"""Simple dual-port RAM (one synchronous write port, one synchronous read port with enable).

Elaborates to an ``amaranth.lib.memory.Memory`` (simulation, RTLIL for synthesis), or, built
with ``blackbox=True`` (``BuildOptions.blackbox_ram``: the Verilog export), to an instance of
the behavioural Verilog module :data:`VERILOG`, which the generator appends to its output.
Amaranth writes every bit of a memory's initial contents into RTLIL/Verilog; the default
buffer limits need ~18 Mbit of buffers, which would take minutes to emit, while the instance
costs nothing.

A wide RAM is built from several memories of at most :data:`SLICE_BITS` bits side by side
(same address, same enables), because Amaranth's Python simulator compiles a memory's write
enable into one expression with a term per data bit, which Python cannot compile beyond ~2000
bits (a weight buffer at ``unroll_in`` 3 is 3456 bits wide).
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Instance, Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

MODULE = "wino_sdp_ram"

# A multiple of every block-RAM width (iCE40 16, ECP5 9/18/36): slicing never costs a block RAM.
SLICE_BITS = 576

VERILOG = f"""
// Simple dual-port RAM used by the wino accelerator (write first-port, registered read with
// enable; a read of the address being written returns the old word).
module {MODULE} #(parameter WIDTH = 8, parameter DEPTH = 16, parameter ABITS = 4) (
    input  wire             clk,
    input  wire             we,
    input  wire [ABITS-1:0] waddr,
    input  wire [WIDTH-1:0] wdata,
    input  wire             re,
    input  wire [ABITS-1:0] raddr,
    output reg  [WIDTH-1:0] rdata
);
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    always @(posedge clk) begin
        if (we) mem[waddr] <= wdata;
        if (re) rdata <= mem[raddr];
    end
endmodule
"""


class SDPRam(wiring.Component):
    def __init__(self, width: int, depth: int, *, blackbox: bool = False):
        if width < 1 or depth < 1:
            raise ValueError("width and depth must be positive")
        self.width, self.depth, self.blackbox = width, depth, blackbox
        abits = max(1, ceil_log2(depth))
        super().__init__({
            "we": In(1), "waddr": In(abits), "wdata": In(width),
            "re": In(1), "raddr": In(abits), "rdata": Out(width),
        })

    def elaborate(self, platform):
        m = Module()
        if self.blackbox:
            m.submodules.ram = Instance(
                MODULE, p_WIDTH=self.width, p_DEPTH=self.depth, p_ABITS=len(self.waddr),
                i_clk=ClockSignal(), i_we=self.we, i_waddr=self.waddr, i_wdata=self.wdata,
                i_re=self.re, i_raddr=self.raddr, o_rdata=self.rdata)
            return m
        for i, lo in enumerate(range(0, self.width, SLICE_BITS)):
            hi = min(self.width, lo + SLICE_BITS)
            mem = Memory(shape=hi - lo, depth=self.depth, init=[])
            m.submodules[f"mem{i}" if i else "mem"] = mem
            wr = mem.write_port()
            rd = mem.read_port(transparent_for=())
            m.d.comb += [wr.en.eq(self.we), wr.addr.eq(self.waddr), wr.data.eq(self.wdata[lo:hi]),
                         rd.en.eq(self.re), rd.addr.eq(self.raddr), self.rdata[lo:hi].eq(rd.data)]
        return m

