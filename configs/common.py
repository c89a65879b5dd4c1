"""Shared pieces of the configs: the config-string parser."""

import ast

import ml_collections

from alexnet_jax.errors import InputError


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
    """ "smoke" or "smoke,key=value" (the part after `file.py:`) -> typed fields over `defaults`.

    A bare name sets a boolean flag; values are Python literals. An unknown key is an error
    that lists the known ones.
    """
    out = ml_collections.ConfigDict(defaults)
    for item in filter(None, (arg or "").split(",")):
        key, _, value = item.partition("=")
        if key not in defaults:
            raise InputError(f"unknown config argument {key!r}; known: {sorted(defaults)}")
        try:
            out[key] = ast.literal_eval(value) if value else True
        except (ValueError, SyntaxError, TypeError):  # not a literal, or of another type
            kind = type(defaults[key]).__name__
            raise InputError(
                f"config argument {item!r}: {key} takes a {kind} literal, e.g. "
                f"{key}={defaults[key]!r}, or a bare {key} for True"
            ) from None
    return out
