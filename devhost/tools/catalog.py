"""Read-side queries the dashboard needs and the Durable HTTP API lacks.

The management API lists instances oldest first and filters by status, creation time and id
prefix. The dashboard also wants: newest first, a search on the orchestrator name, counts per
status for the same search, and purging exactly what a search shows. These are queries over the
store's ``instances`` table (columns named, never ``SELECT *``), kept here so the store keeps its
one job: applying transitions.

Guarantees: paging is keyset paging on ``(created_at, instance_id)`` descending, so pages never
skip or repeat an instance while others are created or purged, whatever the number of instances;
a search never changes state; :func:`purge` deletes through :meth:`Store.purge` (one
transaction).
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from devhost.app.status import RuntimeStatus
from devhost.core import history as h
from devhost.core.store import Store

#: Largest page the dashboard may ask for.
MAX_PAGE = 500
LIST_COLUMNS = ("instance_id", "name", "status", "created_at", "updated_at",
                "parent_instance_id")


@dataclass(frozen=True)
class Search:
    """One instance search: every field narrows it; None/empty means "any"."""

    statuses: tuple[RuntimeStatus, ...] = ()
    name: str | None = None  # case-insensitive substring of the orchestrator name
    prefix: str | None = None  # exact (case-sensitive) instance id prefix
    created_from: float | None = None
    created_to: float | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Search:
        """Read ``runtimeStatus`` (comma separated), ``name``, ``instanceIdPrefix``,
        ``createdTimeFrom`` and ``createdTimeTo`` (ISO 8601).

        Raises: ValueError naming the bad parameter.
        """
        statuses = []
        for s in (query.get("runtimeStatus") or "").split(","):
            if s.strip():
                try:
                    statuses.append(RuntimeStatus(s.strip()))
                except ValueError:
                    raise ValueError(f"runtimeStatus {s.strip()!r} is not one of "
                                     f"{', '.join(r.value for r in RuntimeStatus)}") from None
        times = {}
        for key in ("createdTimeFrom", "createdTimeTo"):
            text = query.get(key)
            try:
                times[key] = h.parse_timestamp(text) if text else None
            except ValueError:
                raise ValueError(f"{key} {text!r} is not an ISO 8601 time") from None
        return cls(tuple(statuses), (query.get("name") or "").strip() or None,
                   query.get("instanceIdPrefix") or None,
                   times["createdTimeFrom"], times["createdTimeTo"])

    def where(self, with_statuses: bool = True) -> tuple[str, list[Any]]:
        sql: list[str] = ["1=1"]
        args: list[Any] = []
        if with_statuses and self.statuses:
            sql.append(f"status IN ({','.join('?' * len(self.statuses))})")
            args += [s.value for s in self.statuses]
        if self.name:
            sql.append("instr(lower(name), ?) > 0")
            args.append(self.name.lower())
        if self.prefix:
            sql.append("substr(instance_id, 1, ?) = ?")
            args += [len(self.prefix), self.prefix]
        if self.created_from is not None:
            sql.append("created_at >= ?")
            args.append(self.created_from)
        if self.created_to is not None:
            sql.append("created_at <= ?")
            args.append(self.created_to)
        return " AND ".join(sql), args


@dataclass(frozen=True)
class Row:
    """One instance as the list shows it."""

    instance_id: str
    name: str
    status: str
    created_at: float
    updated_at: float
    parent_instance_id: str | None

    def as_json(self) -> dict[str, Any]:
        return {"instanceId": self.instance_id, "name": self.name, "runtimeStatus": self.status,
                "createdTime": h.format_timestamp(self.created_at),
                "lastUpdatedTime": h.format_timestamp(self.updated_at),
                "parentInstanceId": self.parent_instance_id}


def _token(row: Row) -> str:
    return base64.urlsafe_b64encode(json.dumps([repr(row.created_at), row.instance_id])
                                    .encode()).decode()


def _untoken(token: str) -> tuple[float, str]:
    try:
        created, iid = json.loads(base64.urlsafe_b64decode(token.encode()))
        return float(created), str(iid)
    except Exception:  # any garbage token is the caller's error
        raise ValueError(f"invalid page token {token!r}") from None


def page(store: Store, search: Search, top: int = 50, after: str | None = None
         ) -> tuple[list[Row], str | None]:
    """The instances matching ``search``, newest first, at most ``top`` after the page token
    ``after``; and the token of the next (older) page, or None at the end.

    Raises: ValueError for a bad ``top`` or token.
    """
    if not 1 <= top <= MAX_PAGE:
        raise ValueError(f"top must be between 1 and {MAX_PAGE}")
    sql, args = search.where()
    if after:
        created, iid = _untoken(after)
        sql += " AND (created_at < ? OR (created_at = ? AND instance_id < ?))"
        args += [created, created, iid]
    rows = [Row(*r) for r in store.db.execute(
        f"SELECT {', '.join(LIST_COLUMNS)} FROM instances WHERE {sql} "
        f"ORDER BY created_at DESC, instance_id DESC LIMIT ?", args + [top + 1])]
    return rows[:top], (_token(rows[top - 1]) if len(rows) > top else None)


def counts(store: Store, search: Search) -> dict[str, int]:
    """How many instances of each status match ``search`` without its status filter (every
    status is present, zero included)."""
    sql, args = search.where(with_statuses=False)
    found = dict(store.db.execute(
        f"SELECT status, COUNT(*) FROM instances WHERE {sql} GROUP BY status", args).fetchall())
    return {s.value: int(found.get(s.value, 0)) for s in RuntimeStatus}


def matching_ids(store: Store, search: Search) -> list[str]:
    sql, args = search.where()
    return [r[0] for r in store.db.execute(f"SELECT instance_id FROM instances WHERE {sql}",
                                           args)]


def purge(store: Store, search: Search,
          forget: Callable[[str], None] | None = None) -> int:
    """Delete every instance matching ``search`` (with history, messages and pending work) in
    one transaction; returns how many. ``forget(instance_id)`` drops cached state of each."""
    ids = matching_ids(store, search)
    deleted = store.purge(ids) if ids else 0
    if forget is not None:
        for iid in ids:
            forget(iid)
    return deleted


def summary(statuses: Sequence[str], found: dict[str, int]) -> int:
    """The total a status filter selects from per-status ``found`` counts (all when empty)."""
    return sum(n for s, n in found.items() if not statuses or s in statuses)
