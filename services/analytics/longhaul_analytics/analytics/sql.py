"""Read-only SQL over one owner's events, in a DuckDB connection that holds nothing else.

Three layers, each enough on its own for the file and network cases:
1. Only the caller's rows are ever loaded: `read_rows` lists `lake/*/owner=<owner>/` alone,
   and the rows go in as the one table `events`. No other owner's data is in the process's
   connection to be reached, whatever the SQL.
2. The SQL is parsed by DuckDB's own parser (`json_serialize_sql`) and its tree walked: one
   SELECT statement; table references only `events` or a common table expression in scope;
   no table function (read_csv, read_parquet, glob, query...); functions only from DuckDB's
   built-in scalar, aggregate, window and macro functions, less `DENIED_FUNCTIONS`; nothing
   schema- or catalog-qualified. Anything else (COPY, ATTACH, INSTALL, LOAD, PRAGMA, SET,
   several statements) is not a SELECT and does not serialize.
3. The connection itself: external access off (no file, no URL), extensions neither
   installed nor loaded automatically, Python replacement scans off, then the configuration
   locked, so the SQL cannot turn any of it back on.
Bounds: the rows returned (`max_rows`, then `truncated`), the time (`con.interrupt()` from
a timer), DuckDB's memory and threads.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import duckdb
import pyarrow as pa

__all__ = ["DENIED_FUNCTIONS", "QueryOutcome", "QueryRefused", "check_sql", "run_query"]

TABLE = "events"
DENIED_FUNCTIONS = frozenset(
    {"current_setting", "getenv", "current_query", "json_serialize_sql", "json_deserialize_sql"}
)
QUERY_NODES = frozenset({"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE"})
TABLE_REFS = frozenset({"BASE_TABLE", "JOIN", "SUBQUERY", "EMPTY", "EXPRESSION_LIST"})
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_DEPTH = 200


class QueryRefused(ValueError):
    """The SQL is not allowed, does not parse, fails or runs too long; the message says why."""


@dataclass(frozen=True)
class QueryOutcome:
    """A query's columns, its rows (at most the bound), and whether more were cut."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool
    elapsed_s: float


@cache
def _allowed_functions() -> frozenset[str]:
    """DuckDB's built-in scalar, aggregate, window and macro functions."""
    con = duckdb.connect(":memory:")
    try:
        rows = con.execute(
            "SELECT DISTINCT lower(function_name) FROM duckdb_functions() "
            "WHERE function_type IN ('scalar', 'aggregate', 'window', 'macro')"
        ).fetchall()
    finally:
        con.close()
    return frozenset(r[0] for r in rows) - DENIED_FUNCTIONS


def _parse(sql: str) -> dict[str, Any]:
    """DuckDB's parse tree of `sql` (QueryRefused if it is not SELECT statements)."""
    con = duckdb.connect(":memory:", config={"enable_external_access": False})
    try:
        text = con.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchone()
    finally:
        con.close()
    assert text is not None
    tree: dict[str, Any] = json.loads(text[0])
    if tree.get("error"):
        message = str(tree.get("error_message", "it does not parse"))
        if "Only SELECT" in message:
            raise QueryRefused("only a single SELECT statement is allowed")
        raise QueryRefused(f"the SQL does not parse: {message}")
    return tree


def _ctes(node: dict[str, Any]) -> set[str]:
    """The names a query node's WITH clause defines."""
    cte_map = node.get("cte_map") or {}
    return {str(entry["key"]).lower() for entry in cte_map.get("map", [])}


def _children(node: dict[str, Any]) -> Iterator[Any]:
    yield from node.values()


def _check_function(node: dict[str, Any]) -> None:
    name = str(node.get("function_name", "")).lower()
    if node.get("schema") or node.get("catalog"):
        raise QueryRefused(f"qualified function names are not allowed ({name})")
    if name not in _allowed_functions():
        raise QueryRefused(f"the function {name}() is not allowed")


def _check_table(node: dict[str, Any], scope: frozenset[str]) -> None:
    kind = node["type"]
    if kind == "TABLE_FUNCTION":
        function = node.get("function") or {}
        name = function.get("function_name", "a table function")
        raise QueryRefused(f"table functions are not allowed ({name}); query the table events")
    if kind not in TABLE_REFS:
        raise QueryRefused(f"{kind.lower().replace('_', ' ')} is not allowed")
    if kind == "BASE_TABLE":
        name = str(node.get("table_name", ""))
        if node.get("schema_name") or node.get("catalog_name"):
            raise QueryRefused(f"only the table events may be read, not {name!r} of a schema")
        if not IDENTIFIER.match(name) or name.lower() not in scope | {TABLE}:
            raise QueryRefused(f"only the table events may be read, not {name!r}")


def _walk(node: Any, scope: frozenset[str], depth: int) -> None:
    """Refuse anything in the tree outside the allowlist (see the module's docstring)."""
    if depth > MAX_DEPTH:
        raise QueryRefused("the query is nested too deeply")
    if isinstance(node, list):
        for item in node:
            _walk(item, scope, depth + 1)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if "class" in node:  # an expression
        if node["class"] in ("FUNCTION", "WINDOW") and "function_name" in node:
            _check_function(node)
    elif isinstance(kind, str) and kind.endswith("_NODE"):
        if kind not in QUERY_NODES:
            raise QueryRefused(f"{kind.lower().replace('_', ' ')} is not allowed")
        names = _ctes(node)
        for name in names:
            if not IDENTIFIER.match(name):
                raise QueryRefused(f"a WITH name must be a plain identifier, not {name!r}")
        scope = scope | names
    elif isinstance(kind, str) and "sample" in node:  # a table reference
        _check_table(node, scope)
    for child in _children(node):
        _walk(child, scope, depth + 1)


def check_sql(sql: str) -> None:
    """Refuse `sql` (QueryRefused, with the reason) unless it is one allowed SELECT."""
    tree = _parse(sql)
    statements = tree.get("statements") or []
    if len(statements) != 1:
        raise QueryRefused("only a single SELECT statement is allowed")
    _walk(statements[0], frozenset(), 0)


def _connect(table: pa.Table, memory_mib: int) -> duckdb.DuckDBPyConnection:
    """A connection holding `table` as `events` and nothing else, locked down."""
    con = duckdb.connect(
        ":memory:",
        config={
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
            "python_enable_replacements": False,
            "memory_limit": f"{memory_mib}MB",
            "threads": 2,
        },
    )
    con.execute("SET TimeZone = 'UTC'")
    con.register(TABLE, table)
    con.execute("SET lock_configuration = true")
    return con


def run_query(
    table: pa.Table, sql: str, *, max_rows: int, timeout_s: float, memory_mib: int = 512
) -> QueryOutcome:
    """Check `sql`, then run it over `table` as `events`: at most `max_rows` rows back, and
    interrupted after `timeout_s` (QueryRefused either way it fails). Blocking: call it off
    the event loop."""
    check_sql(sql)
    started = time.monotonic()
    con = _connect(table, memory_mib)
    timer = threading.Timer(timeout_s, con.interrupt)
    timer.start()
    try:
        cursor = con.execute(sql)
        columns = [d[0] for d in cursor.description or []]
        rows = cursor.fetchmany(max_rows + 1)
    except duckdb.InterruptException:
        raise QueryRefused(f"the query ran past its time limit of {timeout_s:g} s") from None
    except duckdb.Error as exc:
        if time.monotonic() - started >= timeout_s:
            raise QueryRefused(f"the query ran past its time limit of {timeout_s:g} s") from None
        raise QueryRefused(f"the query failed: {exc}") from None
    finally:
        timer.cancel()
        con.close()
    truncated = len(rows) > max_rows
    return QueryOutcome(columns, rows[:max_rows], truncated, time.monotonic() - started)
