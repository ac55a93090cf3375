"""Expectation suites: data-quality checks named as Great Expectations names them, run with pandera.

A suite is YAML::

    expectations:
      - expect_column_values_to_be_between: {column: age, min_value: 18, max_value: 90}
      - expect_column_values_to_not_be_null: {column: income, mostly: 0.98}

Each entry is one expectation and its keyword arguments (GX's names and arguments; ``mostly`` is the
fraction of non-null values that must pass). Column-value checks ignore nulls, as GX does. Every check
is a pandera ``Check`` run on the column (or the frame), except the two that need more than one
table: ``expect_column_values_to_be_in_version`` (referential: every value appears in a column of
another version) and ``expect_query_to_return_no_rows`` (custom SQL over ``data`` with DuckDB). The
list with its GX counterpart is docs/expectations.md. A suite that does not parse is refused with its
file:line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlcustody.errors import UsageError

if TYPE_CHECKING:
    import pandas as pd


SAMPLE = 20  # unexpected values kept per expectation


@dataclass(frozen=True)
class Expectation:
    name: str
    kwargs: dict[str, Any]
    line: int


@dataclass(frozen=True)
class Suite:
    file: str
    expectations: list[Expectation]


@dataclass(frozen=True)
class Outcome:
    expectation: str
    kwargs: dict[str, Any]
    success: bool
    element_count: int
    unexpected_count: int
    unexpected_sample: list[Any]
    observed: Any = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    rows: int
    results: list[Outcome] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results)

    def as_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "rows": self.rows,
            "success": self.success,
            "results": [r.as_dict() for r in self.results],
        }


# name → (required arguments, optional arguments)
SIGNATURES: dict[str, tuple[set[str], set[str]]] = {
    "expect_column_to_exist": ({"column"}, set()),
    "expect_table_columns_to_match_set": ({"column_set"}, {"exact_match"}),
    "expect_table_columns_to_match_ordered_list": ({"column_list"}, set()),
    "expect_table_row_count_to_be_between": (set(), {"min_value", "max_value"}),
    "expect_table_row_count_to_equal": ({"value"}, set()),
    "expect_column_values_to_be_of_type": ({"column", "type_"}, set()),
    "expect_column_values_to_not_be_null": ({"column"}, {"mostly"}),
    "expect_column_values_to_be_null": ({"column"}, {"mostly"}),
    "expect_column_values_to_be_between": (
        {"column"},
        {"min_value", "max_value", "mostly", "strict_min", "strict_max"},
    ),
    "expect_column_values_to_be_in_set": ({"column", "value_set"}, {"mostly"}),
    "expect_column_values_to_not_be_in_set": ({"column", "value_set"}, {"mostly"}),
    "expect_column_values_to_be_unique": ({"column"}, set()),
    "expect_compound_columns_to_be_unique": ({"column_list"}, set()),
    "expect_column_values_to_match_regex": ({"column", "regex"}, {"mostly"}),
    "expect_column_values_to_not_match_regex": ({"column", "regex"}, {"mostly"}),
    "expect_column_value_lengths_to_be_between": ({"column"}, {"min_value", "max_value", "mostly"}),
    "expect_column_min_to_be_between": ({"column"}, {"min_value", "max_value"}),
    "expect_column_max_to_be_between": ({"column"}, {"min_value", "max_value"}),
    "expect_column_mean_to_be_between": ({"column"}, {"min_value", "max_value"}),
    "expect_column_median_to_be_between": ({"column"}, {"min_value", "max_value"}),
    "expect_column_stdev_to_be_between": ({"column"}, {"min_value", "max_value"}),
    "expect_column_sum_to_be_between": ({"column"}, {"min_value", "max_value"}),
    "expect_column_unique_value_count_to_be_between": ({"column"}, {"min_value", "max_value"}),
    "expect_column_proportion_of_unique_values_to_be_between": ({"column"}, {"min_value", "max_value"}),
    "expect_column_pair_values_a_to_be_greater_than_b": ({"column_A", "column_B"}, {"or_equal", "mostly"}),
    "expect_column_values_to_be_in_version": ({"column", "ref"}, {"ref_column", "mostly"}),
    "expect_query_to_return_no_rows": ({"query"}, set()),
}


def parse(path: Path) -> Suite:
    """Read a suite; any error names ``file:line``."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read suite {path}: {exc.strerror}", hint="give an existing YAML file") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise UsageError(f"{path}:{line}: {exc.problem or exc}", hint="fix the YAML at that line") from None

    def fail(node: Any, what: str, hint: str) -> UsageError:
        return UsageError(f"{path}:{node.start_mark.line + 1}: {what}", hint=hint)

    if not isinstance(root, yaml.MappingNode):
        raise UsageError(f"{path}:1: a suite is a mapping with a list under 'expectations'", hint=_EXAMPLE)
    top = {key.value: value for key, value in root.value}
    items = top.get("expectations")
    if not isinstance(items, yaml.SequenceNode):
        raise fail(root, "no list under 'expectations'", _EXAMPLE)
    found = []
    for item in items.value:
        if not isinstance(item, yaml.MappingNode) or len(item.value) != 1:
            raise fail(item, "each expectation is one `name: {arguments}` entry", _EXAMPLE)
        key, args = item.value[0]
        name = key.value
        if name not in SIGNATURES:
            import difflib

            close = difflib.get_close_matches(name, list(SIGNATURES), n=1)
            raise fail(
                key,
                f"unknown expectation {name!r}",
                f"did you mean {close[0]}?" if close else "see docs/expectations.md",
            )
        kwargs = yaml.safe_load(yaml.serialize(args)) if args is not None else {}
        if not isinstance(kwargs, dict):
            raise fail(args, f"{name} takes a mapping of arguments", _EXAMPLE)
        required, optional = SIGNATURES[name]
        missing, unknown = required - set(kwargs), set(kwargs) - required - optional
        if missing or unknown:
            what = (f"missing {', '.join(sorted(missing))}" if missing else "") + (
                f"{'; ' if missing else ''}unknown {', '.join(sorted(unknown))}" if unknown else ""
            )
            raise fail(args, f"{name}: {what}", f"it takes {', '.join(sorted(required | optional))}")
        found.append(Expectation(name, kwargs, key.start_mark.line + 1))
    return Suite(path.name, found)


_EXAMPLE = "e.g.\nexpectations:\n  - expect_column_to_exist: {column: age}"


def run(suite: Suite, data: pd.DataFrame, other: Callable[[str], pd.DataFrame]) -> SuiteResult:
    """Run every expectation of ``suite`` on ``data``; ``other`` loads a version a referential check names."""
    return SuiteResult(suite.file, len(data), [_one(e, data, other) for e in suite.expectations])


def _one(e: Expectation, data: pd.DataFrame, other: Callable[[str], pd.DataFrame]) -> Outcome:
    k = e.kwargs
    column = k.get("column")
    if column is not None and column not in data.columns:
        return Outcome(e.name, k, False, len(data), 0, [], f"no column {column!r}")
    table = _TABLE.get(e.name)
    if table is not None:
        ok, observed = table(data, k, other)
        return Outcome(e.name, k, bool(ok), len(data), 0, [], observed)
    aggregate = _AGGREGATES.get(e.name)
    if aggregate is not None:
        value = aggregate(data[column])
        return Outcome(e.name, k, _between(value, k), len(data), 0, [], _plain(value))
    return _elementwise(e, data, other)


def _between(value: Any, k: dict[str, Any]) -> bool:
    low, high = k.get("min_value"), k.get("max_value")
    return (low is None or value >= low) and (high is None or value <= high)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _elementwise(e: Expectation, data: pd.DataFrame, other: Callable[[str], pd.DataFrame]) -> Outcome:
    """A pandera Check on one column (or the frame); ``mostly`` applies to the values checked."""
    import pandas as pd
    import pandera.pandas as pa

    k = e.kwargs
    target: Any = data[k["column"]] if "column" in k else data
    check = _check(e, data, other, pa)
    result = check(target)
    output = result.check_output
    if isinstance(output, pd.DataFrame):
        output = output.all(axis=1)
    checked = len(output)
    failed = int((~output.astype(bool)).sum())
    mostly = float(k.get("mostly", 1.0))
    success = checked == 0 or (checked - failed) / checked >= mostly
    cases = result.failure_cases
    sample = (
        cases.head(SAMPLE).to_dict("records")
        if isinstance(cases, pd.DataFrame)
        else list(pd.Series(cases).head(SAMPLE))
    )
    return Outcome(e.name, k, success, checked, failed, [_plain(v) if not isinstance(v, dict) else v for v in sample])


_TYPES = {
    "int": "integer",
    "int64": "integer",
    "integer": "integer",
    "float": "floating",
    "float64": "floating",
    "str": "string",
    "string": "string",
    "object": "string",
    "bool": "boolean",
    "boolean": "boolean",
    "datetime": "datetime64",
    "datetime64": "datetime64",
}


def _check(e: Expectation, data: pd.DataFrame, other: Callable[[str], pd.DataFrame], pa: Any) -> Any:
    """The pandera Check of a column-value or row expectation."""
    k = e.kwargs
    simple = _SIMPLE.get(e.name)
    if simple is not None:
        return simple(k, pa)
    if e.name == "expect_column_values_to_be_of_type":
        return _type_check(e, pa)
    if e.name == "expect_column_values_to_be_in_version":
        ref_frame = other(str(k["ref"]))
        ref_column = k.get("ref_column", k["column"])
        if ref_column not in ref_frame.columns:
            raise UsageError(f"{k['ref']} has no column {ref_column!r}", hint="name it with ref_column")
        allowed = set(ref_frame[ref_column].dropna().tolist())
        return pa.Check(lambda s: s.isin(allowed))
    raise AssertionError(e.name)  # pragma: no cover - SIGNATURES and the checks are kept together


def _type_check(e: Expectation, pa: Any) -> Any:
    import pandas as pd

    wanted = _TYPES.get(str(e.kwargs["type_"]).lower())
    if wanted is None:
        raise UsageError(
            f"line {e.line}: unknown type {e.kwargs['type_']!r}", hint=f"use one of {', '.join(sorted(_TYPES))}"
        )
    return pa.Check(lambda s: pd.Series(pd.api.types.infer_dtype(s, skipna=True) == wanted, index=s.index))


def _pair(k: dict[str, Any]) -> Callable[[pd.DataFrame], pd.Series]:
    a, b = k["column_A"], k["column_B"]
    return lambda df: df[a] >= df[b] if k.get("or_equal") else df[a] > df[b]


_SIMPLE: dict[str, Callable[[dict[str, Any], Any], Any]] = {
    "expect_column_values_to_not_be_null": lambda k, pa: pa.Check(lambda s: s.notna(), ignore_na=False),
    "expect_column_values_to_be_null": lambda k, pa: pa.Check(lambda s: s.isna(), ignore_na=False),
    "expect_column_values_to_be_between": lambda k, pa: pa.Check(lambda s: _in_range(s, k)),
    "expect_column_values_to_be_in_set": lambda k, pa: pa.Check.isin(list(k["value_set"])),
    "expect_column_values_to_not_be_in_set": lambda k, pa: pa.Check.notin(list(k["value_set"])),
    "expect_column_values_to_be_unique": lambda k, pa: pa.Check(lambda s: ~s.duplicated(keep=False)),
    "expect_compound_columns_to_be_unique": lambda k, pa: pa.Check(
        lambda df: ~df.duplicated(subset=list(k["column_list"]), keep=False), ignore_na=False
    ),
    "expect_column_values_to_match_regex": lambda k, pa: pa.Check.str_contains(k["regex"]),
    "expect_column_values_to_not_match_regex": lambda k, pa: pa.Check(
        lambda s: ~s.astype(str).str.contains(re.compile(k["regex"]))
    ),
    "expect_column_value_lengths_to_be_between": lambda k, pa: pa.Check.str_length(
        k.get("min_value"), k.get("max_value")
    ),
    "expect_column_pair_values_a_to_be_greater_than_b": lambda k, pa: pa.Check(_pair(k), ignore_na=False),
}


def _in_range(s: pd.Series, k: dict[str, Any]) -> pd.Series:
    low, high = k.get("min_value"), k.get("max_value")
    ok = s == s  # noqa: PLR0124 - all True on the non-null values pandera passes
    if low is not None:
        ok &= s > low if k.get("strict_min") else s >= low
    if high is not None:
        ok &= s < high if k.get("strict_max") else s <= high
    return ok


def _columns_match(data: pd.DataFrame, k: dict[str, Any], _: Any) -> tuple[bool, Any]:
    have, want = set(data.columns), set(k["column_set"])
    return (have == want if k.get("exact_match", True) else want <= have), sorted(have)


def _query(data: pd.DataFrame, k: dict[str, Any], _: Any) -> tuple[bool, Any]:
    import duckdb

    with duckdb.connect() as duck:
        duck.register("data", data)
        try:
            rows = duck.execute(f"SELECT count(*) FROM ({k['query']})").fetchone()
        except duckdb.Error as exc:
            raise UsageError(
                f"expect_query_to_return_no_rows: {exc}", hint="the query reads the table `data`"
            ) from None
    count = int(rows[0]) if rows else 0
    return count == 0, {"rows": count}


_TABLE: dict[str, Callable[[pd.DataFrame, dict[str, Any], Any], tuple[bool, Any]]] = {
    "expect_column_to_exist": lambda d, k, _: (k["column"] in d.columns, None),
    "expect_table_columns_to_match_set": _columns_match,
    "expect_table_columns_to_match_ordered_list": lambda d, k, _: (
        list(d.columns) == list(k["column_list"]),
        list(d.columns),
    ),
    "expect_table_row_count_to_be_between": lambda d, k, _: (_between(len(d), k), len(d)),
    "expect_table_row_count_to_equal": lambda d, k, _: (len(d) == k["value"], len(d)),
    "expect_query_to_return_no_rows": _query,
}
_AGGREGATES: dict[str, Callable[[Any], Any]] = {
    "expect_column_min_to_be_between": lambda s: s.min(),
    "expect_column_max_to_be_between": lambda s: s.max(),
    "expect_column_mean_to_be_between": lambda s: s.mean(),
    "expect_column_median_to_be_between": lambda s: s.median(),
    "expect_column_stdev_to_be_between": lambda s: s.std(),
    "expect_column_sum_to_be_between": lambda s: s.sum(),
    "expect_column_unique_value_count_to_be_between": lambda s: s.nunique(),
    "expect_column_proportion_of_unique_values_to_be_between": lambda s: s.nunique() / max(len(s.dropna()), 1),
}
