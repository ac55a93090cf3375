"""What ``--help`` calls each argument and option value: ``PATH…``, ``REF``, ``N``, not Python types.

Typer labels values by their annotations (``<list[Path]>``, ``<str>``) and arguments by their
parameter names (``{ref_a}``). Users read a help page as a usage line, so each value is named by
what it is instead. This runs once over the built click command tree, for the help pages and for
docs/cli.md alike, and changes nothing about parsing.
"""

from __future__ import annotations

from pathlib import Path
from types import MethodType
from typing import Any

# An argument is named by what it holds; parameter names that differ only by position (ref_a,
# ref_b) name the same kind of thing.
_ARGUMENTS = {"ref_a": "REF", "ref_b": "REF", "paths": "PATH", "path": "PATH", "command": "CMD"}
_OPTIONS = {"fmt": "FORMAT", "param": "KEY=VALUE", "directory": "DIR"}


def apply(command: Any) -> Any:
    """Give every argument and option of ``command`` (a click command built by typer, which vendors
    its own click) and of its sub-commands a readable metavar."""
    for param in command.params:
        if param.param_type_name == "argument":
            _argument(param)
        elif not getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = _option_metavar(param)
    for sub in getattr(command, "commands", {}).values():
        apply(sub)
    return command


def argument_label(param: Any) -> str:
    """``REF``, ``PATH…`` (repeatable) — how usage lines and docs/cli.md write an argument."""
    name = param.metavar or _ARGUMENTS.get(param.name or "", (param.name or "").upper())
    return name + ("…" if param.nargs != 1 else "")


def _argument(param: Any) -> None:
    param.metavar = param.metavar or _ARGUMENTS.get(param.name or "", (param.name or "").upper())
    label = argument_label(param)
    usage = label if param.required else f"[{label}]"
    # Typer's help adds the annotation after the name and braces around it in the usage line.
    param.display_type_rich = MethodType(lambda _self, ctx: None, param)
    param._rich_display_name = MethodType(lambda _self: label, param)
    param._usage_display_name = MethodType(lambda _self: usage, param)


def _option_metavar(param: Any) -> str:
    inner = _element(getattr(getattr(param, "type_descriptor", None), "annotation", None))
    if param.name in _OPTIONS:
        return _OPTIONS[param.name]
    if inner in (int, float):
        return "N"
    if inner is Path:
        return "PATH"
    return (param.name or "value").upper()


def _element(annotation: Any) -> Any:
    """``int`` for ``int``, ``int | None`` and ``list[int] | None``: the type of one value."""
    args = [arg for arg in getattr(annotation, "__args__", ()) if arg is not type(None)]
    return _element(args[0]) if args else annotation
