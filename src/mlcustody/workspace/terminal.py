"""Asking the person at the terminal: the ``keys.Prompt`` the interfaces pass to the ledger."""

from __future__ import annotations

import getpass
import sys


def ask_secret(question: str) -> str | None:
    """What was typed without echo, or None when standard input is not a terminal (None: closed)."""
    if sys.stdin is None or not sys.stdin.isatty():
        return None
    return getpass.getpass(question)
