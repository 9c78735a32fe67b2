"""Command-line flags for an :class:`AcceleratorConfig`: one flag per field, ``--config FILE``
and ``--model MODEL_DIR``, shared by every CLI that takes a config (generate, report, build)."""

from __future__ import annotations

import argparse
import dataclasses

from .config import WEIGHT_FORMATS, AcceleratorConfig
from .errors import UsageError

# With --model, these fields are the model's arithmetic: a flag may only repeat them.
MODEL_FIXED = ("tile", "granularity", "balance", "requant", "act_bits", "transform_bits")
# ... these are the hardware's parallelism, engine and weight format, the user's choice; every
# other field is a limit the model sets a minimum for (buffers, widths), which a flag may raise.
MODEL_CHOSEN = ("unroll", "unroll_in", "algo", "weights")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """One flag per AcceleratorConfig field (default: the dataclass default), ``--config`` and
    ``--model``."""
    g = p.add_argument_group("accelerator configuration (wino_gen.config.AcceleratorConfig)")
    for f in dataclasses.fields(AcceleratorConfig):
        kind = int if f.type == "int" else str
        # weights: the choices also spell out the formats the planner's reports compare
        choices = WEIGHT_FORMATS if f.name == "weights" else None
        g.add_argument(_flag(f.name), dest=f.name, type=kind, default=None, choices=choices,
                       metavar=f.name.upper(), help=f"default {f.default!r}")
    g.add_argument("--config", metavar="FILE", help="start from this JSON config; flags override it")
    g.add_argument("--model", metavar="MODEL_DIR",
                   help="size the config to run this model dir: its tile, granularity, balance, "
                        "requant, bit widths, channels and image width; flags may widen the "
                        "limits, never contradict the model")


def given_settings(args) -> dict[str, tuple[object, str]]:
    """The config fields the user set (``--config`` file, then flags), each with the words that
    name where it came from in an error message."""
    given = {}
    if args.config:
        for k, v in AcceleratorConfig.load(args.config).to_dict().items():
            given[k] = (v, f"--config {args.config}: {k} {v}")
    for f in dataclasses.fields(AcceleratorConfig):
        v = getattr(args, f.name)
        if v is not None:
            given[f.name] = (v, f"{_flag(f.name)} {v}")
    return given


def make_config(given: dict[str, tuple[object, str]], model: str | None = None,
                defaults: dict | None = None) -> AcceleratorConfig:
    """The config from ``given`` settings over ``defaults``, or, with a ``model`` dir, the
    smallest config that runs it with ``given`` limits widening it (:func:`model_config`)."""
    if model:
        return model_config(model, given)
    values = dict(defaults or {})
    values.update({k: v for k, (v, _) in given.items()})
    return AcceleratorConfig.from_dict(values)


def config_from_args(args) -> AcceleratorConfig:
    return make_config(given_settings(args), args.model)


def model_config(path: str, given: dict[str, tuple[object, str]]) -> AcceleratorConfig:
    """``network.config_for`` the model dir at ``path``, with the user's unroll and engine (the
    dataclass defaults otherwise). A given field of
    :data:`MODEL_FIXED` must equal the model's; any other may only raise the model's minimum,
    so the hardware always runs the model bit for bit."""
    from .format import load_model
    from .network import config_for

    m = load_model(path)
    chosen = {k: given[k][0] if k in given else getattr(AcceleratorConfig, k) for k in MODEL_CHOSEN}
    need = config_for(m, **chosen)
    widened = {}
    for k, (v, src) in given.items():
        want = getattr(need, k)
        if k in MODEL_CHOSEN or v == want:
            continue
        if k in MODEL_FIXED or not isinstance(want, int):
            raise UsageError(f"{src} contradicts the model {path}, which needs {k} {want}")
        if v < want:
            raise UsageError(f"{src} is below what the model {path} needs: {k} {want} or more")
        widened[k] = v
    return dataclasses.replace(need, **widened)
