"""Scenario YAML files in, validated `Scenario`s out, with errors that point at a line.

Three things make this more than `yaml.safe_load` + `model_validate`:

- **Exact decimals.** Every YAML float is built as `decimal.Decimal` from the
  scalar's own text (`41.10` stays `Decimal("41.10")`), never via `float`,
  because amounts in a scenario are money. Fields that are genuinely floats
  (rates, multipliers, `scale`) accept the Decimal and pydantic converts it.
- **Line numbers.** The file is first *composed* into a node tree, which keeps
  every node's position; building Python values from it records the line of
  each key path (`tenants[1].behaviour.card_spend.rate_per_day`), and
  pydantic's error locations are mapped back onto those lines.
- **Strictness with help.** Duplicate keys (which YAML silently lets the last
  one win) are errors naming both lines; unknown keys come with a
  "did you mean" suggestion; every failure, from a missing file to a bad
  date, is a `ScenarioError` and never a raw library exception.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, NamedTuple, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from scenarios.schema import OverridesOf, Scenario

__all__ = ["Problem", "ScenarioError", "load_scenario", "parse_scenario", "resolved_yaml"]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"

#: Most nodes one document may expand to through aliases: far above any real
#: scenario, far below what an "alias bomb" (nested repeated aliases) reaches.
_MAX_NODES = 200_000

KeyPath = tuple[str | int, ...]


class Problem(NamedTuple):
    """One thing wrong with a scenario, where it is and what it is."""

    key_path: str | None
    line: int | None
    message: str


def _location(path: str | None, line: int | None, key_path: str | None, message: str) -> str:
    """Render `path:line: key_path: message`, leaving out the parts that are unknown."""
    where = ":".join(str(part) for part in (path, line) if part is not None)
    return ": ".join(part for part in (where, key_path, message) if part)


class ScenarioError(Exception):
    """A scenario that cannot be read or is not valid, located as precisely as known.

    Attributes:
        path: the file (or the `source` given to `parse_scenario`).
        key_path: where in the document, e.g. `tenants[1].behaviour.bpay.cv`.
        line: 1-based line in the file, or None when not tied to a line.
        message: what is wrong. When validation found several problems, the
            first one's text, then one line per further problem, each with its
            own `path:line: key_path:` prefix.
        problems: every problem found, the first being the one above. Unknown
            keys come first, since a misspelt key is why its correct
            spelling is then reported missing.
    """

    def __init__(
        self,
        message: str,
        path: str | None = None,
        key_path: str | None = None,
        line: int | None = None,
        problems: tuple[Problem, ...] = (),
    ) -> None:
        # All fields go to args so the error survives pickling (process pools).
        super().__init__(message, path, key_path, line, problems)
        self.message = message
        self.path = path
        self.key_path = key_path
        self.line = line
        self.problems = problems or (Problem(key_path, line, message),)

    def __str__(self) -> str:
        return _location(self.path, self.line, self.key_path, self.message)

    @classmethod
    def from_problems(cls, problems: Iterable[Problem], path: str | None) -> ScenarioError:
        """Combine problems into one error; `.line`/`.key_path` are the first one's."""
        found = tuple(problems)
        first, rest = found[0], found[1:]
        lines = [first.message]
        lines += [_location(path, p.line, p.key_path, p.message) for p in rest]
        return cls("\n".join(lines), path, first.key_path, first.line, found)


class _NodeProblem(Exception):
    """Internal: something wrong at a node while building values; becomes a ScenarioError."""

    def __init__(self, node: Node, message: str, loc: KeyPath | None = None) -> None:
        super().__init__(message)
        self.line = node.start_mark.line + 1
        self.message = message
        self.loc = loc


def _decimal_from_yaml_float(text: str) -> Decimal:
    """Parse the text of a YAML 1.1 float exactly.

    Handles underscores (`1_000.50`), exponents and base-60 (`1:30.5`), the
    forms PyYAML's resolver accepts. Infinities and NaN are refused: no
    scenario number is meant to be one, and they would poison money sums.

    Raises:
        ValueError: for non-finite or unparseable text.
    """
    clean = text.replace("_", "").strip()
    if clean.lower().lstrip("+-") in {".inf", ".nan", "inf", "nan"}:
        raise ValueError(f"{text!r} is not a finite number")
    sign = -1 if clean.startswith("-") else 1
    if ":" in clean:
        total = Decimal(0)
        for part in clean.lstrip("+-").split(":"):
            total = total * 60 + Decimal(part)
        value = sign * total
    else:
        try:
            value = Decimal(clean)
        except InvalidOperation:
            raise ValueError(f"{text!r} is not a number") from None
    if not value.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    return value


class _ScenarioLoader(yaml.SafeLoader):
    """SafeLoader whose floats are exact Decimals; used to compose and build scalars."""


def _construct_decimal(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Decimal:
    text = loader.construct_scalar(node)
    try:
        return _decimal_from_yaml_float(str(text))
    except ValueError as exc:
        raise yaml.constructor.ConstructorError(None, None, str(exc), node.start_mark) from None


_ScenarioLoader.add_constructor(_FLOAT_TAG, _construct_decimal)


class _Builder:
    """Builds plain Python values from a composed node tree, recording each key path's line."""

    def __init__(self, loader: _ScenarioLoader) -> None:
        self._loader = loader
        self._active: set[int] = set()
        self._count = 0
        self.lines: dict[KeyPath, int] = {}

    def build(self, node: Node, path: KeyPath = ()) -> Any:
        """Build the value of `node`, found at `path` in the document."""
        self._count += 1
        if self._count > _MAX_NODES:
            raise _NodeProblem(node, f"document expands to over {_MAX_NODES} values via aliases")
        if id(node) in self._active:
            raise _NodeProblem(node, "recursive alias: a value contains itself")
        self._active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
            if isinstance(node, SequenceNode):
                return self._sequence(node, path)
            return self._scalar(node)
        finally:
            self._active.discard(id(node))

    def _scalar(self, node: Node) -> Any:
        try:
            return self._loader.construct_object(node)
        except (ValueError, TypeError, OverflowError) as exc:
            # e.g. a timestamp-shaped scalar that is not a real date: 2025-13-01
            raise _NodeProblem(node, f"cannot read {node.value!r}: {exc}") from None

    def _sequence(self, node: SequenceNode, path: KeyPath) -> list[Any]:
        if node.tag != _SEQ_TAG:
            raise _NodeProblem(node, f"unsupported tag {node.tag!r} on a list")
        items = []
        for index, item in enumerate(node.value):
            self.lines[(*path, index)] = item.start_mark.line + 1
            items.append(self.build(item, (*path, index)))
        return items

    def _mapping(self, node: MappingNode, path: KeyPath) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, (key_node, value_node) in self._entries(node, path).items():
            self.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = self.build(value_node, (*path, key))
        return result

    def _entries(self, node: Node, path: KeyPath) -> dict[str, tuple[Node, Node]]:
        """A mapping's keys with their key and value nodes, merge keys (`<<`) applied.

        Explicit keys win over merged ones and earlier merge sources over
        later ones (the YAML merge-key rules); an explicit key written twice
        is an error naming both lines.
        """
        if not isinstance(node, MappingNode):
            raise _NodeProblem(node, "a merge key (<<) must refer to a mapping")
        if node.tag != _MAP_TAG:
            raise _NodeProblem(node, f"unsupported tag {node.tag!r} on a mapping")
        explicit: dict[str, tuple[Node, Node]] = {}
        merged: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in reversed(sources):
                    merged.update(self._merge_source(source, path))
                continue
            key = self._key(key_node)
            if key in explicit:
                first_line = explicit[key][0].start_mark.line + 1
                raise _NodeProblem(
                    key_node,
                    f"duplicate key {key!r} (first on line {first_line}, again on line "
                    f"{key_node.start_mark.line + 1})",
                    (*path, key),
                )
            explicit[key] = (key_node, value_node)
        return {**merged, **explicit}

    def _merge_source(self, source: Node, path: KeyPath) -> dict[str, tuple[Node, Node]]:
        if id(source) in self._active:
            raise _NodeProblem(source, "recursive alias: a mapping merges itself")
        self._active.add(id(source))
        try:
            return self._entries(source, path)
        finally:
            self._active.discard(id(source))

    def _key(self, node: Node) -> str:
        """A mapping key as text; anything else is refused with a hint.

        YAML 1.1 reads `yes:`, `no:`, `on:` or `1:` as booleans and numbers;
        no scenario key is meant that way, so ask for quotes instead of
        guessing.
        """
        if not isinstance(node, ScalarNode):
            raise _NodeProblem(node, "a mapping key must be a plain name, not a list or mapping")
        key = self._scalar(node)
        if not isinstance(key, str):
            raise _NodeProblem(
                node,
                f"key {node.value!r} is read as {type(key).__name__}, not text; "
                "quote it if it is meant as a name",
            )
        return key


def _format_key_path(loc: KeyPath) -> str | None:
    """`("tenants", 1, "behaviour")` -> `"tenants[1].behaviour"`; None for the root."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None


def _unwrap_optional(annotation: Any) -> Any:
    """`X | None` -> `X`; anything else unchanged."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _child_type(parent: Any, part: str | int) -> Any:
    """The declared type one step below `parent` in the schema, or None if unknown."""
    if isinstance(parent, type) and issubclass(parent, BaseModel) and isinstance(part, str):
        field = parent.model_fields.get(part)
        if field is None:
            return None
        for marker in field.metadata:
            if isinstance(marker, OverridesOf):
                return marker.model
        return _unwrap_optional(field.annotation)
    if get_origin(parent) in (list, tuple) and isinstance(part, int):
        args = get_args(parent)
        return _unwrap_optional(args[0]) if args else None
    return None


def _valid_keys(parent_loc: KeyPath) -> list[str]:
    """The keys the schema allows in the mapping at `parent_loc` (empty if not a model)."""
    current: Any = Scenario
    for part in parent_loc:
        current = _child_type(current, part)
        if current is None:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _show(value: Any) -> str:
    """An offending input as the user wrote it, not as Python's repr of a Decimal."""
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return repr(value)


def _describe(error: dict[str, Any]) -> str:
    """One pydantic error as a sentence for a person editing the YAML file."""
    loc: KeyPath = tuple(error["loc"])
    kind = error["type"]
    if kind == "missing":
        return f"required key {loc[-1]!r} is missing" if loc else "required key is missing"
    if kind == "extra_forbidden" and loc:
        key = str(loc[-1])
        valid = _valid_keys(loc[:-1])
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        if close:
            return f"unknown key {key!r}; did you mean {close[0]!r}?"
        if valid:
            return f"unknown key {key!r} (valid keys: {', '.join(valid)})"
        return f"unknown key {key!r}"
    message = str(error["msg"]).removeprefix("Value error, ")
    given = error.get("input")
    if given is not None and not isinstance(given, dict | list | tuple):
        message += f" (got {_show(given)})"
    return message


def _line_for(loc: KeyPath, lines: dict[KeyPath, int]) -> int | None:
    """Line of the deepest part of `loc` present in the file (parent for a missing key)."""
    for end in range(len(loc), -1, -1):
        line = lines.get(loc[:end])
        if line is not None:
            return line
    return None


def _yaml_problem(exc: yaml.YAMLError, text: str) -> tuple[str, int | None]:
    """Message and 1-based line for a PyYAML syntax or reader error."""
    if isinstance(exc, yaml.MarkedYAMLError):
        message = str(exc.problem or exc.context or "invalid YAML")
        if exc.context and exc.problem:
            message = f"{exc.problem} ({exc.context})"
        mark = exc.problem_mark or exc.context_mark
        return message, (mark.line + 1 if mark is not None else None)
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        return f"unacceptable character #x{exc.character:04x}: {exc.reason}", line
    return str(exc), None


def parse_scenario(text: str, source: str = "<string>") -> Scenario:
    """Parse scenario YAML text into a validated `Scenario`.

    Args:
        text: the YAML document.
        source: how to name the text in errors, usually its file path.

    Raises:
        ScenarioError: for invalid YAML, an empty document, a top level that is
            not a mapping, duplicate or unknown keys, and every validation
            failure, each with its key path and line where there is one.
    """
    try:
        loader = _ScenarioLoader(text)  # the reader already refuses control characters
    except yaml.YAMLError as exc:
        message, line = _yaml_problem(exc, text)
        raise ScenarioError(f"invalid YAML: {message}", source, None, line) from None
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as exc:
            message, line = _yaml_problem(exc, text)
            raise ScenarioError(f"invalid YAML: {message}", source, None, line) from None
        if root is None:
            raise ScenarioError("the file is empty; expected a scenario mapping", source)
        if not isinstance(root, MappingNode):
            kind = "a list" if isinstance(root, SequenceNode) else "a single value"
            raise ScenarioError(
                f"the top level must be a mapping of scenario keys (name, start, tenants, ...), "
                f"not {kind}",
                source,
                None,
                root.start_mark.line + 1,
            )
        builder = _Builder(loader)
        builder.lines[()] = root.start_mark.line + 1
        try:
            data = builder.build(root)
        except _NodeProblem as exc:
            if exc.loc is not None:
                where = _format_key_path(exc.loc)
            else:
                where = _path_of_line(builder.lines, exc.line)
            raise ScenarioError(exc.message, source, where, exc.line) from None
        except yaml.YAMLError as exc:
            message, line = _yaml_problem(exc, text)
            raise ScenarioError(message, source, _path_of_line(builder.lines, line), line) from None
    finally:
        loader.dispose()
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        # Unknown keys first: a misspelt key also makes pydantic report the
        # real key as missing, and "did you mean 'members'?" is the cause.
        errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
        problems = []
        for error in errors:
            loc: KeyPath = tuple(error["loc"])
            problems.append(
                Problem(_format_key_path(loc), _line_for(loc, builder.lines), _describe(error))
            )
        raise ScenarioError.from_problems(problems, source) from None


def _path_of_line(lines: dict[KeyPath, int], line: int | None) -> str | None:
    """The deepest key path recorded so far on `line`, to name where a node error is."""
    if line is None:
        return None
    on_line = [loc for loc, at in lines.items() if at == line and loc]
    if not on_line:
        return None
    return _format_key_path(max(on_line, key=len))


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file.

    Raises:
        ScenarioError: if the file is missing, a directory, unreadable, not
            UTF-8, or not a valid scenario (see `parse_scenario`).
    """
    file = Path(path)
    name = str(path)
    if file.is_dir():
        raise ScenarioError("is a directory, not a scenario file", name)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise ScenarioError("no such scenario file", name) from None
    except OSError as exc:
        raise ScenarioError(f"cannot read the file: {exc.strerror or exc}", name) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ScenarioError(f"not UTF-8 text (byte {exc.start})", name, None, line) from None
    return parse_scenario(text, name)


class _ResolvedDumper(yaml.SafeDumper):
    """SafeDumper that writes Decimals exactly, tuples as lists, and no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        """Never emit &id001 anchors: the file is for people, values may repeat."""
        return True


def _represent_decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.ScalarNode:
    # Plain decimal notation with a point, so the scalar resolves as a YAML
    # float and the loader reads it back as the same Decimal: `41.00` stays
    # `41.00`; an integral `1800` is written `1800.0` (equal value, and
    # pydantic's digit limits count normalised digits, so it validates alike).
    text = format(value, "f")
    if "." not in text:
        text += ".0"
    return dumper.represent_scalar(_FLOAT_TAG, text)


def _represent_sequence(dumper: yaml.SafeDumper, value: list[Any] | tuple[Any, ...]) -> Node:
    # Short lists of numbers (the multipliers) read best on one line.
    flat = all(not isinstance(item, dict | list | tuple) for item in value)
    return dumper.represent_sequence(_SEQ_TAG, list(value), flow_style=flat)


_ResolvedDumper.add_representer(Decimal, _represent_decimal)
_ResolvedDumper.add_representer(tuple, _represent_sequence)
_ResolvedDumper.add_representer(list, _represent_sequence)


def resolved_yaml(scenario: Scenario) -> str:
    """The scenario as YAML with every default written out, for run folders and review.

    Decimals are written exactly (`41.00`), the length is explicit, and the
    scenario-level `behaviour` is complete; tenants keep their partial
    overrides so the file still shows how they differ. `parse_scenario` of
    the result gives a `Scenario` equal to the input, with the same
    fingerprint.
    """
    data = scenario.model_dump()
    for key in ("years", "days"):
        if data.get(key) is None:
            data.pop(key, None)
    body = yaml.dump(
        data,
        Dumper=_ResolvedDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    header = (
        f"# Scenario {scenario.name!r}, resolved: every default written out.\n"
        f"# fingerprint: {scenario.fingerprint()}\n"
    )
    return header + body
