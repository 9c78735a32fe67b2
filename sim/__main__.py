"""``python -m sim [MODEL_DIR]``: run a model dir layer by layer on the simulated accelerator.

Winograd layers run on the Winograd engine, direct convolutions on the direct engine (same
multipliers), host ops (add, pools, linear) in the golden model (``wino_gen.network``). Each
layer gets its stored reference input and every output byte is compared with the stored
reference output. The last line is ``sim: <L> layers, <N> outputs, <X> mismatches, <C> cycles``;
the exit status is 1 on any mismatch, 2 on bad input.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from wino_gen.errors import ArgumentParser, UsageError, run_cli

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "examples" / "tiny"



def parser():
    p = ArgumentParser(prog="python -m sim", description=__doc__.splitlines()[0])
    p.add_argument("model", nargs="?", default=str(DEFAULT_MODEL),
                   help="model dir (default examples/tiny)")
    p.add_argument("--backend", default="pysim", choices=["pysim", "verilator"],
                   help="simulation backend: pysim (Amaranth, default) or verilator (builds the "
                        "exported Verilog once per engine; much faster for big layers)")
    p.add_argument("--unroll", type=int, default=4, help="output channels in parallel (default 4)")
    p.add_argument("--unroll-in", type=int, default=1, help="input channels in parallel (default 1)")
    p.add_argument("--samples", type=int, default=None, help="samples per layer (default all)")
    p.add_argument("--layer", action="append", default=None, metavar="NAME",
                   help="only this layer (repeatable)")
    p.add_argument("--vcd", metavar="FILE",
                   help="write the waveform of the first accelerator run (first sample of the "
                        "first hardware layer selected) to FILE")
    p.add_argument("--config-out", metavar="FILE", help="write the Winograd engine's config JSON")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    from wino_gen import network, perf
    from wino_gen.format import load_model

    from .backend import BACKENDS
    from .driver import DirectLayer, WinogradLayer, run_layer

    if args.unroll < 1 or args.unroll_in < 1:
        raise UsageError("--unroll and --unroll-in must be >= 1")
    model = load_model(args.model)
    wcfg = network.config_for(model, unroll=args.unroll, unroll_in=args.unroll_in)
    dcfg = network.config_for(model, unroll=args.unroll, unroll_in=args.unroll_in, algo="direct")
    if args.config_out:
        try:
            wcfg.save(args.config_out)
        except OSError as e:
            raise UsageError(f"--config-out: {e.strerror}: {args.config_out}") from None
    names = {layer.name for layer in model.layers}
    for n in args.layer or []:
        if n not in names:
            raise UsageError(f"--layer {n}: no such layer; layers: {', '.join(sorted(names))}")
    print(f"sim: model {model.name} ({args.model}), backend {args.backend}, Winograd engine "
          f"F({wcfg.tile}x{wcfg.tile},3x3) unroll {wcfg.unroll}x{wcfg.unroll_in} "
          f"({wcfg.multipliers} multipliers), direct engine same multipliers", flush=True)
    vcd = args.vcd
    if vcd and args.backend != "pysim":
        raise UsageError("--vcd needs --backend pysim")
    backends = {}

    def backend(**kw):
        if kw:
            return BACKENDS[args.backend](**kw)
        if args.backend not in backends:      # one instance: the Verilator build is reused
            backends[args.backend] = BACKENDS[args.backend]()
        return backends[args.backend]

    total_out = total_bad = total_cyc = n_layers = 0
    bad_layers = []
    t0 = time.perf_counter()
    for layer in model.layers:
        if args.layer and layer.name not in args.layer:
            continue
        a = layer.arrays
        xs = network.stored_inputs(layer)
        if args.samples:
            xs = [x[:args.samples] for x in xs]
        ref = a["y"][:len(xs[0])].astype(np.int64)
        s = layer.spec
        cyc, pc, engine = 0, None, "host"
        if layer.op in ("winograd_conv3x3", "direct_conv"):
            if layer.op == "winograd_conv3x3":
                spec = WinogradLayer(wcfg, a["U"], a["bias"], v=network.requant(layer, "v"),
                                     m=network.requant(layer, "m"), y=network.requant(layer, "y"),
                                     m_align=a["m_align"], padding=s["padding"], relu=s["relu"])
                engine = "winograd"
                C, H, W = layer.in_shape
                pc = perf.winograd_layer(wcfg, C, a["U"].shape[0], H, W, s["padding"])["cycles"]
            else:
                Wt = a["W"]
                spec = DirectLayer(dcfg, Wt, a["bias"], y=network.requant(layer, "y"),
                                   stride=s["stride"], padding=s["padding"], relu=s["relu"])
                engine = "direct"
                C, H, W = layer.in_shape
                pc = perf.direct_layer(dcfg, C, Wt.shape[0], H, W, Wt.shape[-1], s["stride"],
                                       s["padding"])["cycles"]
            x = xs[0].astype(np.int64)
            if vcd:
                r0 = run_layer(spec, x[:1], backend(vcd=vcd))
                rest = run_layer(spec, x[1:], backend()) if len(x) > 1 else None
                y = np.concatenate([r0.y] + ([rest.y] if rest else []))
                cyc = r0.cycles + (rest.cycles if rest else 0)
                vcd = None
            else:
                r = run_layer(spec, x, backend())
                y, cyc = r.y, r.cycles
            pc *= len(x)
        else:
            y = network.run_layer(model, layer, xs)
        y = np.asarray(y, dtype=np.int64).reshape(ref.shape)
        bad = int(np.count_nonzero(y != ref))
        n_layers += 1
        total_out += ref.size
        total_bad += bad
        total_cyc += cyc
        extra = f", {cyc} cycles (perf {pc})" if engine != "host" else ""
        print(f"  {layer.name:<12} {layer.op:<17} on {engine:<8} {ref.size} outputs, "
              f"{bad} mismatches{extra}", flush=True)
        if bad:
            bad_layers.append(layer.name)
            idx = tuple(int(i) for i in np.argwhere(y != ref)[0])
            print(f"sim: layer {layer.name}: {bad} mismatches, first at {idx}: "
                  f"got {int(y[idx])}, reference {int(ref[idx])}", file=sys.stderr)
    print(f"  ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    if bad_layers:
        print(f"sim: mismatches in layer(s) {', '.join(bad_layers)}", file=sys.stderr)
    print(f"sim: {n_layers} layers, {total_out} outputs, {total_bad} mismatches, {total_cyc} cycles")
    return 1 if total_bad else 0


def entry() -> int:
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(entry())
