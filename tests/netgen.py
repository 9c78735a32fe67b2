"""Random small networks as model dirs (manifest, arrays): random op sequences the format allows
on small shapes, with random (uncalibrated) int8 weights and requant parameters, each layer's
reference output computed by ``network.run_layer``. tests/test_compile.py draws them with
hypothesis, tests/test_system_random.py from a seeded numpy generator: both through a
``pick`` with ``int(lo, hi)`` (inclusive), ``choice(seq)`` and ``flag()``."""

from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from wino_gen import format as fmt
from wino_gen import network

#: every op the generator knows; ``gap`` is a global average pool (a square input, kernel = size)
OPS = ("wino", "direct", "add", "maxpool", "avgpool", "gap", "linear")


class Seeded:
    """Picks from a seeded numpy generator."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def int(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def choice(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def flag(self) -> bool:
        return bool(self.rng.integers(2))


class Drawn:
    """Picks drawn by hypothesis (so that failures shrink)."""

    def __init__(self, draw):
        self.draw = draw

    def int(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def choice(self, seq):
        return self.draw(st.sampled_from(list(seq)))

    def flag(self) -> bool:
        return self.draw(st.booleans())


def _i32(v):
    return np.asarray(v, dtype=np.int32)


def random_network(pick, ops, *, tiles=(2, 4), grans=("layer", "tap"), modes=("pow2", "fixed"), max_ops=4,
                   max_k=6, max_pad=2, channels=(1, 4), size=(3, 9), samples=2):
    """``(manifest, arrays)``: up to ``max_ops`` layers drawn from ``ops`` (:data:`OPS`, repeats
    weigh), then maybe a ``linear`` (when ``ops`` has it) that ends the network; an op the
    current shape cannot take is skipped. ``max_pad``: the largest padding of a direct 3x3."""
    tile, gran, mode = pick.choice(tiles), pick.choice(grans), pick.choice(modes)
    n = tile + 2
    rng = np.random.default_rng(pick.int(0, 2**31))
    C0, H0 = pick.int(*channels), pick.int(*size)
    shape = {fmt.INPUT: (C0, H0, pick.choice([H0, pick.int(*size)]))}
    man = {"model": "rand", "tile": tile, "granularity": gran, "requant": mode, "act_bits": 8,
           "weight_bits": 8, "transform_bits": 8, "input": {"shape": list(shape[fmt.INPUT])}, "layers": []}
    arrays, acts = {}, {fmt.INPUT: rng.integers(-128, 128, (samples, *shape[fmt.INPUT]))}
    model = fmt.Model(Path("."), man, [])

    def req(shift):
        size = np.shape(shift) if gran == "tap" else ()
        mult = np.broadcast_to(rng.integers(1 << 14, 1 << 15, size) if mode == "fixed" else 1, np.shape(shift))
        return _i32(mult), _i32(np.asarray(shift) + (15 if mode == "fixed" else 0))

    def taps(lo, hi):
        return rng.integers(lo, hi + 1, (n, n)) if gran == "tap" else np.full((n, n), rng.integers(lo, hi + 1))

    cur, branch_k = [fmt.INPUT], [0]      # the tensor the next layer reads; a branch's channels

    def layer(op: str) -> None:
        """Append ``op`` after the current tensor, unless its shape cannot take it."""
        C, H, W = shape[cur[0]]
        name = f"l{len(man['layers'])}"
        spec = {"name": name, "inputs": [cur[0]]}
        if op == "wino" and min(H, W) >= 3:
            K, p = pick.int(1, max_k), pick.int(0, 1)
            vm, vs = req(taps(0, 3))
            mm, ms = req(taps(5, 8))
            ym, ys = req(np.asarray(pick.int(0, 3)))
            a = {"U": rng.integers(-128, 128, (K, C, n, n)).astype(np.int8), "bias": _i32(rng.integers(-500, 500, K)),
                 "v_mult": vm, "v_shift": vs, "m_mult": mm, "m_shift": ms,
                 "m_align": _i32(taps(0, 2) if gran == "tap" else np.zeros((n, n))), "y_mult": ym, "y_shift": ys}
            spec.update(op="winograd_conv3x3", padding=p, relu=pick.flag())
        elif op in ("direct", "branch"):
            k = 1 if op == "branch" else pick.choice([k for k in (1, 3) if k <= min(H, W)])
            s, p = (1, 0) if op == "branch" else (pick.int(1, 2), pick.int(0, min(k - 1, max_pad)))
            K = branch_k[0] if op == "branch" else pick.int(1, max_k)
            ym, ys = req(np.asarray(pick.int(6, 10)))
            a = {"W": rng.integers(-128, 128, (K, C, k, k)).astype(np.int8), "bias": _i32(rng.integers(-999, 999, K)),
                 "y_mult": ym, "y_shift": ys}
            spec.update(op="direct_conv", stride=s, padding=p, relu=pick.flag())
        elif op == "add":
            others = [t for t in shape if shape[t] == shape[cur[0]] and t != cur[0]]
            if not others and any(shape[t][1:] == (H, W) and t != cur[0] for t in shape):
                # a second branch: a 1x1 convolution of an earlier tensor of the same size
                main, branch_k[0] = cur[0], C
                cur[0] = pick.choice([t for t in shape if shape[t][1:] == (H, W) and t != main])
                layer("branch")
                others, cur[0] = [cur[0]], main
                name = f"l{len(man['layers'])}"
                spec = {"name": name, "inputs": [cur[0]]}
            spec["inputs"] = [cur[0], pick.choice(others or [cur[0]])]
            a = {"a_mult": _i32(rng.integers(0, 1 << 15)), "b_mult": _i32(rng.integers(0, 1 << 15)),
                 "shift": _i32(15)}
            spec.update(op="add", relu=pick.flag())
        elif op == "maxpool" and min(H, W) >= 2:
            k = pick.int(2, min(3, H, W))
            spec.update(op="maxpool", kernel=k, stride=pick.int(1, 2), padding=pick.int(0, k // 2))
            a = {}
        elif op == "avgpool" and min(H, W) >= 2:
            k = pick.int(2, min(H, W))
            spec.update(op="avgpool", kernel=k, stride=pick.int(1, k))
            a = {"mult": _i32(rng.integers(1, 1 << 16)), "shift": _i32(16)}
        elif op == "gap" and H == W >= 2:
            spec.update(op="avgpool", kernel=H, stride=H)
            a = {"mult": _i32(rng.integers(1, 1 << 16)), "shift": _i32(16)}
        elif op == "linear":
            K = pick.int(1, 5)
            a = {"W": rng.integers(-128, 128, (K, C * H * W)).astype(np.int8), "bias": _i32(rng.integers(-99, 99, K)),
                 "y_mult": req(np.asarray(9))[0], "y_shift": req(np.asarray(9))[1]}
            spec.update(op="linear", relu=False)
        else:
            return
        lay = fmt.Layer(name, spec["op"], spec["inputs"], spec, f"{name}.npz", a)
        y = network.run_layer(model, lay, [acts[s] for s in spec["inputs"]])
        a = {**a, "x": acts[spec["inputs"][0]].astype(np.int8), "y": y.astype(np.int8)}
        if spec["op"] == "add":
            a["x2"] = acts[spec["inputs"][1]].astype(np.int8)
        spec.update(in_shape=list(shape[cur[0]]), out_shape=list(y.shape[1:]))
        man["layers"].append(spec)
        arrays[name], acts[name] = a, y
        shape[name] = tuple(y.shape[1:]) if y.ndim == 4 else (y.shape[1], 1, 1)
        cur[0] = name

    for op in [pick.choice([o for o in ops if o != "linear"]) for _ in range(pick.int(1, max_ops))]:
        layer(op)
    if not man["layers"]:
        layer("add")            # every shape takes it
    if "linear" in ops and pick.flag():
        layer("linear")
    return man, arrays
