"""The argparse ``type=`` factories and checks of ``ntkx``'s options: every value is checked
before any data load or kernel work, and a bad one exits 2 with one ``argument --x: ...`` line
that echoes what was typed.

Each ``type=`` takes the word typed on the command line and returns it (or its value);
its `argparse.ArgumentTypeError` becomes argparse's ``argument --x: ...`` line.
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Callable, List, Optional, Tuple


def integer(lo: int, hi: Optional[int] = None) -> Callable[[str], int]:
    """An argparse ``type=``: an integer in ``lo..hi`` (``>= lo`` without `hi`); the error echoes what was typed.

    Args:
      lo: the smallest value allowed.
      hi: the largest, or None for no bound.

    Returns:
      The parser of one word, named after what it wants (argparse shows the name).
    """
    want = f"an integer in {lo}..{hi}" if hi is not None else f"an integer >= {lo}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}") from None
        if value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}")
        return value

    parse.__name__ = want
    return parse


def number(positive: bool = False) -> Callable[[str], float]:
    """An argparse ``type=``: a finite float >= 0 (> 0 with `positive`); the error echoes what was typed.

    Args:
      positive: refuse 0 too.

    Returns:
      The parser of one word, named after what it wants.
    """
    want = f"a finite number {'>' if positive else '>='} 0"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}") from None
        if not math.isfinite(value) or (value <= 0 if positive else value < 0):
            raise argparse.ArgumentTypeError(f"must be {want}, got {text!r}")
        return value

    parse.__name__ = want
    return parse


def check_name(text: str) -> str:
    """An argparse ``type=``: a registered check's name; the error echoes it and lists the valid ones.

    Returns `text`; raises `argparse.ArgumentTypeError` if no check has that name.
    """
    from ntkx._src.theory import report

    names = list(report._default_registry())
    if text not in names:
        raise argparse.ArgumentTypeError(f"unknown check {text!r}; valid names: {', '.join(names)}")
    return text


def architecture(text: str) -> str:
    """An argparse ``type=``: an architecture string (`parse_architecture`); the error echoes it.

    Returns `text`; raises `argparse.ArgumentTypeError` with `parse_architecture`'s message if it is refused.
    """
    from ntkx._src.precompute.kernel import parse_architecture

    try:
        parse_architecture(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def input_path(text: str) -> str:
    """An argparse ``type=``: an existing ``.npy`` / ``.npz`` file or Zarr array directory.

    Returns `text`; raises `argparse.ArgumentTypeError` if the path is missing or of another kind.
    """
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"no such file or directory {text!r}")
    if not (text.endswith((".npy", ".npz")) or os.path.isdir(text)):
        raise argparse.ArgumentTypeError(f"expected a .npy or .npz file or a Zarr array directory, got {text!r}")
    return text


def kernel_names(text: str) -> Tuple[str, ...]:
    """An argparse ``type=``: ``ntk``, ``nngp`` or a comma-separated list of them, each once.

    Returns the names in the order given; raises `argparse.ArgumentTypeError` on another name or a repeat.
    """
    names = tuple(w.strip() for w in text.split(","))
    if not names or any(n not in ("nngp", "ntk") for n in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected ntk, nngp or nngp,ntk, got {text!r}")
    return names


def scheduler_address(text: str) -> str:
    """An argparse ``type=``: a Dask scheduler address ``[tcp://]host:port``.

    Returns `text`; raises `argparse.ArgumentTypeError` without a host or a numeric port.
    """
    rest = text.split("://", 1)[-1]
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected a scheduler address such as tcp://host:8786, got {text!r}")
    return text


def store_dir(text: str) -> str:
    """An argparse ``type=``: an existing kernel store (a directory with zarr.json).

    Returns `text`; raises `argparse.ArgumentTypeError` if the directory has no ``zarr.json``.
    """
    if not os.path.isfile(os.path.join(text, "zarr.json")):
        raise argparse.ArgumentTypeError(f"not a kernel store (no zarr.json): {text!r}")
    return text


def check_device(parser: argparse.ArgumentParser, device: str) -> None:
    """``--device cuda`` needs a CUDA build and a visible device: parser.error (exit 2) before any work.

    Args:
      parser: the subcommand's parser (its prog names the command in the error).
      device: the ``--device`` value; only ``'cuda'`` is checked.
    """
    if device != "cuda":
        return
    from ntkx._src import backend

    why = backend.cuda_unavailable()
    if why:
        parser.error(f"argument --device: 'cuda' was given but {why}; use --device cpu or auto")


def attach_negative_values(argv: List[str]) -> List[str]:
    """``--ridge -1e-3`` as ``--ridge=-1e-3``.

    argparse takes only ``-1`` / ``-.5``-shaped words for negative numbers and
    reads ``-1e-3`` or ``-inf`` as an unknown option ("expected one argument");
    attached to its option, the value reaches the option's type check, whose error
    echoes it.

    Args:
      argv: the command line's words, without the program name.

    Returns:
      The words, with each negative number after a ``--option`` attached to it.
    """
    out: List[str] = []
    for word in argv:
        if out and word.startswith("-") and out[-1].startswith("--") and "=" not in out[-1]:
            try:
                float(word)
            except ValueError:
                pass
            else:
                out[-1] += "=" + word
                continue
        out.append(word)
    return out
