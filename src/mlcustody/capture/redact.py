"""Secrets kept out of sealed run records: command lines, child processes' argv and recorded variables.

A sealed record cannot be edited without breaking verification, so a credential must be removed
before it is recorded. Each rule replaces only the secret part of a value by ``[REDACTED:RULE]``;
the marker stays in the sealed record, so ``show RUN`` (``found``) says what was redacted, where and
by which rule, and nothing else is needed to tell a redacted value from a real one. The rules
(docs/runs.md):

``url-password``
    the password (or a lone token) of a URL's user part, in any value: ``postgresql://app:PW@db/x``
    → ``postgresql://app:[REDACTED:url-password]@db/x``.
``secret-option``
    the value of a command-line option whose name looks like a credential — ``--api-key=V``,
    ``--password V``, ``--token V``, ``--client-secret=V``, … (``SECRET_OPTION``) — or matches a
    ``[capture] redact`` pattern.
``secret-assignment``
    the value of a ``NAME=VALUE`` argument (``env API_TOKEN=V cmd``, ``db.password=V`` overrides)
    whose name looks like a credential or matches a ``[capture] redact`` pattern.
``token``
    a value shaped like a well-known credential wherever it appears: GitHub, GitLab, Slack, OpenAI,
    Hugging Face, Stripe-style and AWS access keys, JSON Web Tokens, PEM private keys.
``config``
    the whole value of a recorded environment variable whose name matches a ``[capture] redact``
    pattern.

``[capture] redact`` in ``.custody/config.toml`` is a list of regular expressions, matched
case-insensitively against option names (without dashes), assignment names and variable names:
``redact = ["^db[-_.]", "hf_home"]``. A pattern that does not compile is a config error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

MARK = "[REDACTED:{rule}]"
_MARKED = re.compile(r"\[REDACTED:([a-z-]+)\]")
SECRET_OPTION = re.compile(
    r"(^|[-_.])(api[-_]?key|access[-_]?key|secret[-_]?key|private[-_]?key|secret|token|passw(or)?d|pass|pwd"
    r"|passphrase|credentials?|auth|authorization|cookie|session[-_]?id|client[-_]?secret|dsn)$",
    re.IGNORECASE,
)
_URL_USER = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@:\s]*)(?::(?P<password>[^/@\s]*))?@")
_TOKENS = re.compile(
    r"gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}|sk-[A-Za-z0-9_-]{20,}|hf_[A-Za-z0-9]{30,}|[rs]k_(live|test)_[A-Za-z0-9]{16,}"
    r"|(AKIA|ASIA)[0-9A-Z]{16}|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[^\x00]*?(-----END [A-Z ]*PRIVATE KEY-----|$)"
)
_OPTION = re.compile(r"(?P<dashes>--?)(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)(?P<eq>=(?P<value>.*))?", re.DOTALL)
_ASSIGNMENT = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_.-]*)=(?P<value>.*)", re.DOTALL)


@dataclass(frozen=True)
class Redaction:
    """One secret taken out of a recorded value: where (``command[2]``, ``processes[0][3]``,
    ``environment.variables.DATABASE_URL``) and by which rule."""

    where: str
    rule: str

    def as_dict(self) -> dict[str, str]:
        return {"where": self.where, "rule": self.rule}


class Redactor:
    """The rules above, with the ``[capture] redact`` patterns of a workspace."""

    def __init__(self, patterns: Sequence[str] = ()) -> None:
        self.patterns = [re.compile(p, re.IGNORECASE) for p in patterns]

    def _configured(self, name: str) -> bool:
        return any(p.search(name) for p in self.patterns)

    def _secret_name(self, name: str) -> bool:
        return bool(SECRET_OPTION.search(name)) or self._configured(name)

    def argv(self, args: Sequence[str]) -> list[str]:
        """A command line with secrets replaced: option values, assignments, URL passwords, tokens."""
        out: list[str] = []
        hide_next = False  # the previous argument was a secret option without ``=VALUE``
        for arg in args:
            if hide_next and not arg.startswith("-"):
                out.append(_mark("secret-option"))
                hide_next = False
                continue
            hide_next = False
            option = _OPTION.fullmatch(arg)
            if option is not None and self._secret_name(option.group("name")):
                hide_next = option.group("eq") is None
                named = f"{option.group('dashes')}{option.group('name')}"
                out.append(arg if hide_next else f"{named}={_mark('secret-option')}")
                continue
            assignment = _ASSIGNMENT.fullmatch(arg) if option is None else None
            if assignment is not None and self._secret_name(assignment.group("name")):
                out.append(f"{assignment.group('name')}={_mark('secret-assignment')}")
                continue
            out.append(self.value(arg))
        return out

    def value(self, text: str) -> str:
        """``text`` with URL passwords and token-shaped values replaced."""
        text = _URL_USER.sub(_url_replacement, text)
        return _TOKENS.sub(lambda _: _mark("token"), text)

    def variables(self, values: dict[str, str]) -> dict[str, str]:
        """Recorded environment variables: a configured name hides the whole value, others lose
        URL passwords and token-shaped parts."""
        return {k: _mark("config") if self._configured(k) else self.value(v) for k, v in values.items()}

    def processes(self, commands: Iterable[Sequence[str]]) -> list[list[str]]:
        return [self.argv(command) for command in commands]


def _mark(rule: str) -> str:
    return MARK.format(rule=rule)


def _url_replacement(match: re.Match[str]) -> str:
    scheme, user, password = match.group("scheme"), match.group("user"), match.group("password")
    if "[REDACTED:" in match.group(0):
        return match.group(0)  # redacted already
    if password is not None:
        return f"{scheme}{user}:{_mark('url-password')}@" if password else match.group(0)
    if not user:
        return match.group(0)
    # a lone user part: a user name (ssh://git@host) or a token (https://TOKEN@host); only a long
    # opaque string is a token
    return f"{scheme}{_mark('url-password')}@" if len(user) >= 20 else match.group(0)


def found(run: dict[str, Any]) -> list[Redaction]:
    """Every redaction marker in a run's command, processes and recorded variables."""
    hits: list[Redaction] = []
    for i, arg in enumerate(run.get("command") or []):
        hits += [Redaction(f"command[{i}]", rule) for rule in _MARKED.findall(str(arg))]
    for p, command in enumerate(run.get("processes") or []):
        for i, arg in enumerate(command):
            hits += [Redaction(f"processes[{p}][{i}]", rule) for rule in _MARKED.findall(str(arg))]
    variables = (run.get("environment") or {}).get("variables") or {}
    for name, value in sorted(variables.items()):
        hits += [Redaction(f"environment.variables.{name}", rule) for rule in _MARKED.findall(str(value))]
    return hits
