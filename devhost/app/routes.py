"""ASP.NET-style route templates as Azure Functions HTTP triggers declare them.

Supported: literal segments (case-insensitive), ``{name}``, optional ``{name?}``, defaults
``{name=value}``, catch-all ``{*name}``, parameters inside a segment (``{file}.{ext}``) and the
common inline constraints: ``int long bool alpha guid float double decimal datetime
minlength(n) maxlength(n) length(n) length(a,b) min(n) max(n) range(a,b) regex(expr)``.
Route values are percent-decoded per segment, so ``%2F`` stays inside one value as ``/``.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Callable
from urllib.parse import unquote

_PARAM = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)((?::[^{}=?]+(?:\([^)]*\))?)*)(\?)?(?:=([^}]*))?\}")
_CONSTRAINT = re.compile(r":([A-Za-z]+)(?:\(([^)]*)\))?")
_INT32 = (-2**31, 2**31 - 1)
_INT64 = (-2**63, 2**63 - 1)


def _is_int(value: str, bounds: tuple[int, int]) -> bool:
    return re.fullmatch(r"-?\d+", value) is not None and bounds[0] <= int(value) <= bounds[1]


def _is_float(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _constraint(name: str, arg: str | None) -> Callable[[str], bool]:
    name = name.lower()
    simple: dict[str, Callable[[str], bool]] = {
        "int": lambda v: _is_int(v, _INT32),
        "long": lambda v: _is_int(v, _INT64),
        "bool": lambda v: v.lower() in ("true", "false"),
        "alpha": lambda v: re.fullmatch(r"[A-Za-z]+", v) is not None,
        "guid": _is_guid,
        "float": _is_float, "double": _is_float, "decimal": _is_float,
        "datetime": _is_datetime,
    }
    if name in simple:
        return simple[name]
    args = [a.strip() for a in (arg or "").split(",")]
    if name == "minlength":
        return lambda v: len(v) >= int(args[0])
    if name == "maxlength":
        return lambda v: len(v) <= int(args[0])
    if name == "length":
        lo, hi = (int(args[0]), int(args[-1]))
        return lambda v: lo <= len(v) <= hi
    if name in ("min", "max", "range"):
        lo = int(args[0]) if name in ("min", "range") else _INT64[0]
        hi = int(args[-1]) if name in ("max", "range") else _INT64[1]
        return lambda v: _is_int(v, _INT64) and lo <= int(v) <= hi
    if name == "regex":
        pattern = re.compile(arg or "")
        return lambda v: pattern.search(v) is not None
    raise ValueError(f"unsupported route constraint '{name}'")


@dataclass(frozen=True)
class _Param:
    name: str
    optional: bool
    default: str | None
    catch_all: bool
    checks: tuple[Callable[[str], bool], ...]


class RouteTemplate:
    """A compiled route template; :meth:`match` maps a raw (still percent-encoded) path.

    Raises (constructor): ValueError for a template it cannot parse.
    """

    def __init__(self, template: str) -> None:
        self.template = template.strip("/")
        self.params: dict[str, _Param] = {}
        pattern = ""
        rank: list[int] = []
        segments = self.template.split("/") if self.template else []
        for i, segment in enumerate(segments):
            pieces, pos, seg_rank = "", 0, 0
            for m in _PARAM.finditer(segment):
                pieces += re.escape(segment[pos:m.start()])
                star, name, constraints, optional, default = m.groups()
                checks = tuple(_constraint(c.group(1), c.group(2))
                               for c in _CONSTRAINT.finditer(constraints or ""))
                param = _Param(name, bool(optional) or default is not None, default, bool(star),
                               checks)
                self.params[name] = param
                pieces += f"(?P<{name}>.+)" if star else f"(?P<{name}>[^/]+)"
                if star:
                    seg_rank = max(seg_rank, 4)
                else:
                    seg_rank = max(seg_rank, 3 if param.optional else (1 if checks else 2))
                pos = m.end()
            pieces += re.escape(segment[pos:])
            rank.append(seg_rank)
            only_param = pos and segment.startswith("{") and segment.endswith("}") \
                and len(list(_PARAM.finditer(segment))) == 1
            param_name = next(iter(_PARAM.finditer(segment))).group(2) if only_param else None
            sep = "/" if i else ""
            if param_name and (self.params[param_name].optional or self.params[param_name].catch_all):
                pattern += f"(?:{sep}{pieces})?"
            else:
                pattern += sep + pieces
        self._regex = re.compile(pattern + "/?", re.IGNORECASE)
        #: Sort key: literal segments beat constrained parameters beat parameters beat optional
        #: ones beat catch-alls, position by position (the ASP.NET precedence order). A missing
        #: segment counts as the best rank (ASP.NET's precedence decimal has a 0 digit there), so
        #: ``orders/{id}`` beats ``orders/{id}/{part?}`` and ``orders`` beats
        #: ``orders/{*rest}``: a tuple that is a prefix of another sorts first.
        self.precedence = tuple(rank)

    def match(self, raw_path: str) -> dict[str, str] | None:
        """Route values for ``raw_path`` (relative to the route prefix), or None."""
        m = self._regex.fullmatch(raw_path.strip("/") if raw_path != "/" else "")
        if m is None:
            return None
        values: dict[str, str] = {}
        for name, param in self.params.items():
            raw = m.group(name)
            if raw is None:
                if param.default is not None:
                    values[name] = param.default
                elif not param.optional and not param.catch_all:
                    return None
                continue
            value = unquote(raw)
            if param.catch_all is False and "/" in raw:
                return None
            if not all(check(value) for check in param.checks):
                return None
            values[name] = value
        return values
