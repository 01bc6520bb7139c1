"""The one YAML reader for every file a user hands builder (image.yaml, fabrics, schedules,
runner specs, CI YAML for `pipeline validate`).

These files come from merge requests and run on root runners, so reading one is bounded: the
file's size, UTF-8 only, nesting depth, and the size of the document once aliases are expanded
(a "billion laughs" file of a few hundred bytes would otherwise expand to gigabytes in whatever
walks it next). Anchors and aliases stay allowed: GitLab CI files use them. Duplicate mapping
keys are refused instead of letting the last one win silently. Every failure is a UserError
naming the file and the line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from .core.errors import UserError

MAX_BYTES = 1 << 20  # 1 MiB: our largest real file is a few KiB
MAX_DEPTH = 100  # nesting levels while composing
MAX_NODES = 200_000  # nodes of a document with every alias expanded


class Loader(yaml.SafeLoader):
    """SafeLoader with bounded composition and no duplicate keys; subclass it to add tags."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        node = super().compose_document()
        if node is not None:
            _expanded_size(node)
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first on line {seen[key]})", key_node.start_mark)
                seen[key] = line
        return super().construct_mapping(node, deep)


def _expanded_size(root: yaml.Node) -> int:
    """Nodes the document would have with every alias copied out; refuses self-reference."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise yaml.composer.ComposerError(None, None, "an alias refers to a node that contains it",
                                              node.start_mark)
        open_.add(key)
        if isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(c) for c in node.value)
        elif isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        else:
            total = 1
        open_.discard(key)
        if total > MAX_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"more than {MAX_NODES} values once aliases are expanded", node.start_mark)
        sizes[key] = total
        return total

    return size(root)


def read_text(path: Path, *, limit: int = MAX_BYTES) -> str:
    """A user's text file: at most `limit` bytes, UTF-8."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError:
        raise UserError("no such file", file=str(path)) from None
    except IsADirectoryError:
        raise UserError("is a directory, not a file", file=str(path)) from None
    except OSError as e:
        raise UserError(f"cannot read: {e.strerror}", file=str(path)) from None
    if len(data) > limit:
        raise UserError(f"larger than {limit} bytes", file=str(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise UserError(f"not UTF-8 text (byte {e.start})", file=str(path), field=f"line {line}") from None


def load_all(text: str, file: str | None = None, *, loader: type[Loader] = Loader) -> Iterator[Any]:
    """Every document of a YAML text; errors name `file` and the line."""
    try:
        yield from yaml.load_all(text, Loader=loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else None
        raise UserError(f"not valid YAML: {getattr(e, 'problem', None) or e}", file=file, field=where) from None
    except (ValueError, OverflowError) as e:  # an int of 5000 digits, a date like 2024-13-45
        raise UserError(f"not valid YAML: {e}", file=file) from None
    except RecursionError:
        raise UserError("not valid YAML: nested too deeply", file=file) from None


def load(path: Path, *, loader: type[Loader] = Loader) -> Any:
    """The single document of a user's YAML file."""
    docs = list(load_all(read_text(path), str(path), loader=loader))
    if len(docs) > 1:
        raise UserError("more than one YAML document", file=str(path))
    return docs[0] if docs else None


def load_mapping(path: Path) -> dict:
    data = load(path)
    if not isinstance(data, dict):
        raise UserError("top level must be a mapping", file=str(path))
    return data
