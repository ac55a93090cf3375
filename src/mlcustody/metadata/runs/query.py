"""The small query language of ``custody runs --where … --sort …``, compiled to one SQL query.

``--where`` is conditions joined by ``and``: ``FIELD OP VALUE`` with FIELD one of ``metrics.KEY``
(the metric's latest value), ``params.KEY``, ``tags.KEY``, ``name``, ``status``, ``id``,
``started_at``, ``ended_at``; OP one of ``= == != < <= > >= like``; VALUE a number, a quoted string
or a bare word. A key with spaces or operators in it is written in backticks: ``metrics.`val auc```.
``--sort`` is a FIELD, prefixed with ``-`` for descending. Values are always bound parameters.
"""

from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from mlcustody._canonical import canonical_json
from mlcustody.errors import UsageError
from mlcustody.metadata.schema import run_ends, run_metric_latest, run_params, run_tags, runs

ATTRIBUTES = ("name", "status", "id", "started_at", "ended_at")
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "like": lambda col, value: col.like(value),
}
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<field>(?:metrics|params|tags)\.(?:`[^`]+`|[A-Za-z0-9_.\-/]+)|[A-Za-z_]+)
      | (?P<op><=|>=|!=|==|=|<|>)
      | (?P<string>'[^']*'|"[^"]*")
      | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    )""",
    re.VERBOSE,
)
_HINT = "write conditions like: metrics.auc > 0.9 and params.model = 'lr' and status = finished"


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: str | float
    text: str  # the value as written (unquoted): what tags and names are compared with


def parse_where(text: str) -> list[Condition]:
    """``FIELD OP VALUE [and …]`` → conditions; anything else is a one-line usage error."""
    tokens = _tokens(text)
    conditions = []
    i = 0
    while i < len(tokens):
        if len(tokens) - i < 3:
            raise UsageError(f"incomplete condition in --where {text!r}", hint=_HINT)
        (kind_f, field), (kind_o, op), (kind_v, value) = tokens[i : i + 3]
        if kind_f != "field" or field.lower() == "and":
            raise UsageError(f"expected a field in --where {text!r}, found {field!r}", hint=_HINT)
        if kind_o == "field" and op.lower() == "like":
            op = "like"
        elif kind_o != "op":
            raise UsageError(f"expected an operator after {field!r} in --where, found {op!r}", hint=_HINT)
        literal = _literal(kind_v, value)
        conditions.append(Condition(_check_field(field), op, literal, value[1:-1] if kind_v == "string" else value))
        i += 3
        if i < len(tokens):
            if tokens[i][0] != "field" or tokens[i][1].lower() != "and":
                raise UsageError(f"expected 'and' in --where {text!r}, found {tokens[i][1]!r}", hint=_HINT)
            i += 1
            if i == len(tokens):
                raise UsageError(f"--where {text!r} ends with 'and'", hint=_HINT)
    return conditions


def parse_sort(text: str) -> tuple[str, bool]:
    descending = text.startswith("-")
    field = text.lstrip("-+")
    tokens = _tokens(field)
    if len(tokens) != 1 or tokens[0][0] != "field":
        raise UsageError(f"cannot sort by {text!r}", hint="sort by a field, e.g. -metrics.auc or started_at")
    return _check_field(field), descending


def search(
    conn: Connection,
    *,
    name: str | None = None,
    where: list[Condition] = (),  # type: ignore[assignment]
    sort: tuple[str, bool] | None = None,
    limit: int | None = None,
) -> list[str]:
    """Ids of the runs that match, in order (newest first unless sorted otherwise).

    A metric, param or tag key that no run has is a usage error naming the closest known keys:
    ``metrics.acuracy > 0.8`` is a typo, not a question with the answer "no runs"."""
    _check_keys(conn, [c.field for c in where] + ([sort[0]] if sort is not None else []))
    query = sa.select(runs.c.id).select_from(runs.outerjoin(run_ends, run_ends.c.run_id == runs.c.id))
    if name is not None:
        query = query.where(runs.c.name == name)
    for condition in where:
        query = query.where(_condition(condition))
    if sort is not None:
        column = _sort_column(sort[0])
        query = query.order_by(sa.nulls_last(column.desc() if sort[1] else column.asc()))
    query = query.order_by(runs.c.started_at.desc(), runs.c.id)
    return list(conn.execute(query.limit(limit)).scalars())


_FAMILIES = {"metrics": (run_metric_latest, "metric"), "params": (run_params, "param"), "tags": (run_tags, "tag")}


def _check_keys(conn: Connection, fields: list[str]) -> None:
    """Refuse a key that no run has (when there are runs at all), suggesting the nearest known ones."""
    for field in fields:
        if "." not in field:
            continue
        family, key = _split(field)
        table, noun = _FAMILIES[family]
        if conn.execute(sa.select(table.c.key).where(table.c.key == key).limit(1)).first() is not None:
            continue
        if conn.execute(sa.select(runs.c.id).limit(1)).first() is None:
            return  # no runs yet: "no runs match" says it better
        known = sorted(conn.execute(sa.select(table.c.key).distinct()).scalars())
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
        if close:
            hint = "did you mean " + " or ".join(f"{family}.{_quoted(k)}" for k in close) + "?"
        elif known:
            hint = f"known {noun}s: " + ", ".join(f"{family}.{_quoted(k)}" for k in known[:10])
            hint += f" (and {len(known) - 10} more)" if len(known) > 10 else ""
        else:
            hint = f"no run has any {noun} yet"
        raise UsageError(f"no run has a {noun} named {key!r}", hint=hint)


def _quoted(key: str) -> str:
    """A key as ``--where`` reads it back: in backticks when it holds spaces or operators."""
    return key if re.fullmatch(r"[A-Za-z0-9_.\-/]+", key) else f"`{key}`"


def _tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    position = 0
    text = text.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise UsageError(f"cannot read --where/--sort at {text[position:]!r}", hint=_HINT)
        kind = match.lastgroup or ""
        found.append((kind, match.group(kind)))
        position = match.end()
    return found


def _check_field(field: str) -> str:
    if "." in field or field in ATTRIBUTES:
        return field
    raise UsageError(
        f"unknown field {field!r}",
        hint=f"use metrics.KEY, params.KEY, tags.KEY or one of {', '.join(ATTRIBUTES)}",
    )


def _literal(kind: str, text: str) -> str | float:
    if kind == "string":
        return text[1:-1]
    if kind == "number":
        return float(text)
    if kind == "field":
        return text  # a bare word: finished, train, …
    raise UsageError(f"expected a value, found {text!r}", hint=_HINT)


def _split(field: str) -> tuple[str, str]:
    family, _, key = field.partition(".")
    return family, key.strip("`")


def _status() -> ColumnElement[Any]:
    return sa.func.coalesce(run_ends.c.status, "running")


def _attribute(field: str) -> ColumnElement[Any]:
    if field == "status":
        return _status()
    if field == "ended_at":
        return run_ends.c.ended_at
    return runs.c[field]


def _condition(condition: Condition) -> ColumnElement[bool]:
    compare = _OPS[condition.op]
    value = condition.value
    if "." not in condition.field:
        return sa.and_(compare(_attribute(condition.field), condition.text))
    family, key = _split(condition.field)
    if family == "metrics":
        if not isinstance(value, float):
            raise UsageError(f"{condition.field} is compared with a number, not {value!r}", hint=_HINT)
        latest = run_metric_latest.c
        return sa.exists().where(latest.run_id == runs.c.id, latest.key == key, compare(latest.value, value))
    if family == "params":
        param = run_params.c
        column, bound = (
            (param.number, value) if isinstance(value, float) else (param.value, canonical_json(value).decode())
        )
        return sa.exists().where(param.run_id == runs.c.id, param.key == key, compare(column, bound))
    tag = run_tags.c
    return sa.exists().where(tag.run_id == runs.c.id, tag.key == key, compare(tag.value, condition.text))


def _sort_column(field: str) -> ColumnElement[Any]:
    if "." not in field:
        return _attribute(field)
    family, key = _split(field)
    table, column = {
        "metrics": (run_metric_latest, "value"),
        "params": (run_params, "number"),
        "tags": (run_tags, "value"),
    }[family]
    inner = sa.select(table.c[column]).where(table.c.run_id == runs.c.id, table.c.key == key)
    return inner.scalar_subquery()
