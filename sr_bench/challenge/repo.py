"""Reading a challenge repository laid out like the official NTIRE ESR ones, without running any of its code.

The official repositories (NTIRE 2023–2026 Efficient SR) hold ``test_demo.py`` whose ``select_model(args,
device)`` is one ``if model_id == N: ... elif ...`` chain, a branch per team: it imports
``models.teamXX_Name``, sets ``name, data_range = f"{model_id:02}_Name", 1.0`` and loads a checkpoint from
``model_zoo/``. This module parses that chain with :mod:`ast`, so ``srbench challenge list`` is safe on any
checkout; building a team (``sr_bench.challenge.build``) is what runs the repository's code.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from sr_bench.errors import UsageError

DEMO = "test_demo.py"
_YEAR = re.compile(r"NTIRE[ _-]?(20\d\d)")
KNOWN_YEARS = range(2022, 2027)


@dataclass(frozen=True)
class TeamEntry:
    """One ``select_model`` branch as written (values the source does not spell out literally are None)."""

    team_id: int
    name: str | None
    data_range: float | None
    module: str | None  # e.g. models.team07_Foo
    model_class: str | None
    checkpoint: str | None  # path as written, relative to the repository
    tile: int | None
    line: int

    def to_dict(self) -> dict:
        return {"team_id": self.team_id, "name": self.name, "data_range": self.data_range, "module": self.module,
                "model_class": self.model_class, "checkpoint": self.checkpoint, "tile": self.tile, "line": self.line}


@dataclass(frozen=True)
class ChallengeRepo:
    root: Path
    year: int | None
    teams: tuple[TeamEntry, ...]

    @property
    def label(self) -> str:
        return self.root.name

    def select(self, spec: str | None) -> list[TeamEntry]:
        """``--teams``: ``all`` (default) or ids like ``0,7,8``; an id with no branch is an error naming the ids."""
        if spec is None or spec.strip().lower() in ("", "all"):
            return list(self.teams)
        by_id = {t.team_id: t for t in self.teams}
        chosen = []
        for part in spec.split(","):
            try:
                team_id = int(part.strip())
            except ValueError:
                raise UsageError(f"--teams takes team ids like 0,7,8 or 'all', got {part.strip()!r}") from None
            if team_id not in by_id:
                ids = ", ".join(str(i) for i in sorted(by_id))
                raise UsageError(f"{self.root} has no team {team_id} in select_model (teams: {ids})")
            chosen.append(by_id[team_id])
        return chosen


def read_repo(root: Path, year: int | None = None) -> ChallengeRepo:
    """Parse ``root/test_demo.py``; ``year`` overrides the one found in its logger name (``NTIRE2025-...``)."""
    root = Path(root).expanduser().resolve()
    demo = root / DEMO
    if not demo.is_file():
        raise UsageError(f"{root} is not a challenge repository: no {DEMO} (expected the NTIRE ESR layout: "
                         f"{DEMO} with select_model, models/, model_zoo/)")
    try:
        source = demo.read_text(encoding="utf-8")
        tree = ast.parse(source, filename=str(demo))
    except (OSError, UnicodeDecodeError, SyntaxError) as exc:
        raise UsageError(f"cannot read {demo}: {type(exc).__name__}: {exc}") from None
    select = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "select_model"), None)
    if select is None:
        raise UsageError(f"{demo} defines no select_model(args, device): not an NTIRE ESR repository layout")
    teams = tuple(_entries(select))
    if not teams:
        raise UsageError(f"select_model in {demo} has no 'if model_id == N' branches")
    if year is not None and year not in KNOWN_YEARS:
        raise UsageError(f"--year {year}: srbench knows the NTIRE ESR years {KNOWN_YEARS[0]}–{KNOWN_YEARS[-1]}")
    return ChallengeRepo(root, year if year is not None else detect_year(source), teams)


def detect_year(source: str) -> int | None:
    """The year in the harness's logger name (``utils_logger.logger_info("NTIRE2024-EfficientSR", ...)``)."""
    years = [int(y) for y in _YEAR.findall(source) if int(y) in KNOWN_YEARS]
    return max(set(years), key=years.count) if years else None


def _entries(select: ast.FunctionDef) -> list[TeamEntry]:
    id_names = _model_id_names(select)
    entries: list[TeamEntry] = []
    for node in ast.walk(select):
        if isinstance(node, ast.If) and (team_id := _branch_id(node.test, id_names)) is not None:
            entries.append(_entry(team_id, node))
    seen: dict[int, TeamEntry] = {}
    for entry in entries:
        seen.setdefault(entry.team_id, entry)  # the first branch wins, as at run time
    return sorted(seen.values(), key=lambda e: e.team_id)


def _model_id_names(select: ast.FunctionDef) -> set[str]:
    """Names bound to ``args.model_id`` (usually ``model_id``), plus ``args.model_id`` itself."""
    names = {"args.model_id"}
    for node in ast.walk(select):
        if isinstance(node, ast.Assign) and _dotted(node.value) == "args.model_id":
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def _branch_id(test: ast.expr, id_names: set[str]) -> int | None:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return None
    left, right = test.left, test.comparators[0]
    for a, b in ((left, right), (right, left)):
        if _dotted(a) in id_names and isinstance(b, ast.Constant) and type(b.value) is int:
            return b.value
    return None


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and (base := _dotted(node.value)):
        return f"{base}.{node.attr}"
    return None


def _entry(team_id: int, branch: ast.If) -> TeamEntry:
    """Literal facts of one branch body (not its ``elif`` continuation)."""
    values: dict[str, object] = {}
    module = model_class = checkpoint = None
    for stmt in branch.body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.ImportFrom) and node.module and module is None:
                module, model_class = node.module, node.names[0].name if node.names else None
            elif isinstance(node, ast.Assign):
                _bind(node, team_id, values)
            elif isinstance(node, ast.Call) and checkpoint is None:
                checkpoint = _join_call(node)
    name = values.get("name") or values.get("model_name")
    data_range = values.get("data_range")
    tile = values.get("tile")
    return TeamEntry(
        team_id=team_id,
        name=name if isinstance(name, str) else None,
        data_range=float(data_range) if isinstance(data_range, (int, float)) else None,
        module=module,
        model_class=model_class,
        checkpoint=checkpoint or (values.get("model_path") if isinstance(values.get("model_path"), str) else None),
        tile=tile if type(tile) is int else None,
        line=branch.lineno,
    )


def _bind(node: ast.Assign, team_id: int, values: dict[str, object]) -> None:
    for target in node.targets:
        if isinstance(target, ast.Name):
            values.setdefault(target.id, _literal(node.value, team_id))
        elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
            for t, v in zip(target.elts, node.value.elts):
                if isinstance(t, ast.Name):
                    values.setdefault(t.id, _literal(v, team_id))


def _literal(node: ast.expr, team_id: int) -> object:
    """A constant, or an f-string over ``model_id`` (``f"{model_id:02}_RLFN"``) rendered for this team."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue) and _dotted(value.value) in ("model_id", "args.model_id"):
                spec = value.format_spec
                fmt = "".join(str(c.value) for c in spec.values if isinstance(c, ast.Constant)) if spec else ""
                parts.append(format(team_id, fmt))
            else:
                return None
        return "".join(parts)
    if isinstance(node, ast.Call):
        return _join_call(node)
    return None


def _join_call(node: ast.Call) -> str | None:
    """``os.path.join('model_zoo', 'team00_rlfn.pth')`` as the path it builds; None for anything else."""
    if _dotted(node.func) not in ("os.path.join", "path.join", "join"):
        return None
    parts = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    if len(parts) != len(node.args) or not parts:
        return None
    return "/".join(parts)
