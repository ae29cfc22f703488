"""Settings mistakes caught before TorchTitan parses the config, as one-line errors.

TorchTitan reads ``--job.config_file`` with ``tomllib`` and builds its JobConfig without
checking types, so a missing file, a TOML syntax error, a string where a number belongs or
a config without this repo's config extension surface as long tracebacks, some of them
only deep inside the trainer. ``check_settings`` reads the file the same way first and
checks every key and type against TorchTitan's JobConfig dataclasses merged with
``gpa_titan.titan.job_config``'s (exactly as TorchTitan merges them), raising
``SettingsError`` with a message that names the file, the line and key, and the fix.
``gpa_titan.titan.main`` prints it as ``error: <message>`` and exits with code 2.

Command-line overrides (``--section.key value``) are checked by TorchTitan's parser
(tyro), which already reports a wrong type or an unknown key in a few lines.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import json
import os
import re
import tomllib
import types
import typing
from typing import Any

OUR_MODULE = "gpa_titan.titan.job_config"
EXAMPLE_CONFIG = "configs/debug_cpu.toml"
ADD_MODULE = f'custom_config_module = "{OUR_MODULE}"'


class SettingsError(ValueError):
    """A settings file or key is unusable; the message names the file/key and the fix."""


def _arg_value(args: list[str], keys: set[str]) -> str | None:
    """The value of the first of ``keys`` in ``args`` (``--k v`` or ``--k=v``), as TorchTitan's
    ConfigManager finds it."""
    for i, arg in enumerate(args):
        key, eq, value = arg.partition("=")
        if key in keys:
            if eq:
                return value
            if i < len(args) - 1:
                return args[i + 1]
    return None


def config_file_arg(args: list[str]) -> str | None:
    return _arg_value(args, {"--job.config_file", "--job.config-file"})


def custom_module_arg(args: list[str]) -> str | None:
    return _arg_value(args, {"--job.custom_config_module", "--job.custom-config-module"})


def load_toml(path: str) -> tuple[dict[str, Any], str]:
    """(values, text) of the TOML at ``path``, or ``SettingsError`` for a missing, unreadable,
    empty or invalid file."""
    if not os.path.exists(path):
        where = "" if os.path.isabs(path) else f" (looked in {os.getcwd()})"
        raise SettingsError(
            f"--job.config_file {path}: no such file{where}. Check the path; the shipped configs are in "
            f"configs/, e.g. --job.config_file {EXAMPLE_CONFIG}"
        )
    if os.path.isdir(path):
        raise SettingsError(f"--job.config_file {path} is a folder; give a TOML file in it, e.g. {EXAMPLE_CONFIG}")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise SettingsError(
            f"--job.config_file {path} cannot be read ({e.strerror or e}); check its permissions"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SettingsError(f"{path}: not UTF-8 text (byte {e.start}); a TOML config file is UTF-8 text") from None
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        found = re.search(r"at line (\d+), column (\d+)", message)
        if found:
            line = int(found.group(1))
            lines = text.splitlines()
            shown = lines[line - 1].strip() if 0 < line <= len(lines) else ""
            what = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
            if "Cannot declare" in what or "Cannot overwrite" in what:
                fix = "a table or key is set twice: keep one (merge the two)"
            else:
                fix = ("fix that line: strings need quotes (name = \"AdamW\"), numbers and true/false do not, and "
                       "a value ends its line (comments start with #)")
            raise SettingsError(
                f"{path}, line {line}: TOML syntax error at column {found.group(2)}: {what} (the line reads: "
                f"{shown!r}); {fix}"
            ) from None
        raise SettingsError(f"{path}: TOML syntax error: {message}") from None
    if not values:
        raise SettingsError(
            f"{path} is empty (no tables or keys, only comments or nothing). Give a complete config: start "
            f"from a shipped one, e.g. copy {EXAMPLE_CONFIG}"
        )
    return values, text


def job_config_class(module: str | None, path: str):
    """TorchTitan's JobConfig merged with ``module``'s (as ``ConfigManager`` merges them)."""
    from torchtitan.config import JobConfig
    from torchtitan.config.manager import ConfigManager

    if not module:
        return JobConfig
    try:
        extension = importlib.import_module(module).JobConfig
    except (ImportError, AttributeError) as e:
        raise SettingsError(
            f"{path}: [job] custom_config_module = {module!r} cannot be used ({e}); for this repo write "
            f"{ADD_MODULE} under [job]"
        ) from None
    return ConfigManager._merge_configs(JobConfig, extension)


def _dataclass_fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def _keys(values: dict, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    """(table, key) of every leaf key in ``values``."""
    out = []
    for key, value in values.items():
        if isinstance(value, dict):
            out += _keys(value, (*prefix, key))
        else:
            out.append((prefix, key))
    return out


def _known(cls, table: tuple[str, ...], key: str) -> bool:
    for name in table:
        f = _dataclass_fields(cls).get(name)
        if f is None or not dataclasses.is_dataclass(f.type):
            return False
        cls = f.type
    return key in _dataclass_fields(cls)


def _where(table: tuple[str, ...], key: str | None = None) -> str:
    head = f"[{'.'.join(table)}]" if table else "(top level)"
    return f"{head} {key}" if key is not None else head


def _key_line(text: str, table: tuple[str, ...], key: str | None) -> int | None:
    """The line (1-based) where ``key`` of ``[table]`` is set (key None: the ``[table]`` header),
    found by a plain scan (None if written in another way, e.g. dotted keys or inline tables)."""
    current: tuple[str, ...] = ()
    pattern = re.compile(rf"""\s*(?:{re.escape(key or "")}|"{re.escape(key or "")}"|'{re.escape(key or "")}')\s*=""")
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$", line)
        if header:
            current = tuple(part.strip().strip("\"'") for part in header.group(1).split("."))
            if key is None and current == table:
                return number
        elif key is not None and current == table and pattern.match(line):
            return number
    return None


def _toml(value: Any) -> str:
    """``value`` as TOML writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _toml_kind(value: Any) -> str:
    for kind, name in ((bool, "true/false"), (str, "a string"), (int, "an integer"), (float, "a number"),
                       (list, "a list"), (dict, "a table")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _without_none(tp) -> list:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(tp) if a is not type(None)]
    return [tp]


def matches(value: Any, tp) -> bool:
    """Whether a TOML value fits the field type ``tp`` (TOML has no null, so Optional is the
    type itself; an integer fits a float)."""
    if tp is Any or isinstance(tp, (str, typing.TypeVar)):
        return True
    options = _without_none(tp)
    if len(options) > 1:
        return any(matches(value, option) for option in options)
    tp = options[0]
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return any(type(value) is type(choice) and value == choice for choice in typing.get_args(tp))
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if tp is list or origin is list:
        args = typing.get_args(tp)
        return isinstance(value, list) and (not args or all(matches(v, args[0]) for v in value))
    if tp is dict or origin is dict:
        return isinstance(value, dict)
    if dataclasses.is_dataclass(tp):
        return isinstance(value, dict)
    return True  # a type TOML cannot express directly: leave it to TorchTitan


def describe(tp) -> str:
    """The expected TOML value of a field type, in words."""
    options = _without_none(tp)
    if len(options) > 1:
        return " or ".join(describe(option) for option in options)
    tp = options[0]
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(_toml(choice) for choice in typing.get_args(tp))
    if origin is list or tp is list:
        args = typing.get_args(tp)
        return f"a list of ({describe(args[0])})" if args else "a list"
    names = {bool: "true or false (no quotes)", int: "a whole number (no quotes)", float: "a number (no quotes)",
             str: "a string in quotes", dict: "a table"}
    if dataclasses.is_dataclass(tp):
        return "a table"
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _unquoted(value: Any) -> Any:
    """What a string would be without its quotes in TOML (None if not a TOML value)."""
    if not isinstance(value, str):
        return None
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return None


def check_values(path: str, text: str, values: dict, cls, table: tuple[str, ...] = ()) -> None:
    """Every key of ``values`` is a field of ``cls`` and every value fits its type."""
    known = _dataclass_fields(cls)
    for key, value in values.items():
        where = _where(table, key)
        f = known.get(key)
        line = _key_line(text, table, key)
        at = f"{path}, line {line}" if line else path
        if f is None:
            if isinstance(value, dict):  # an unknown table
                line = _key_line(text, (*table, key), None)
                at = f"{path}, line {line}" if line else path
                tables = [name for name, g in known.items() if dataclasses.is_dataclass(g.type)]
                close = difflib.get_close_matches(key, tables)
                hint = f"did you mean [{'.'.join((*table, close[0]))}]?" if close else "remove it or fix its name"
                raise SettingsError(f"{at}: unknown table [{'.'.join((*table, key))}]: {hint}")
            close = difflib.get_close_matches(key, list(known))
            hint = f"did you mean {close[0]}?" if close else f"the keys of {_where(table)} are: {', '.join(known)}"
            raise SettingsError(f"{at}: unknown key {where}: {hint} (fix its name, or remove it)")
        if dataclasses.is_dataclass(f.type):
            if not isinstance(value, dict):
                raise SettingsError(
                    f"{at}: {where} = {_toml(value)} is {_toml_kind(value)}, but {key} is a table of settings; "
                    f"write them under [{'.'.join((*table, key))}]"
                )
            check_values(path, text, value, f.type, (*table, key))
            continue
        if not matches(value, f.type):
            fix = ""
            if f.default is not dataclasses.MISSING and f.default is not None and matches(f.default, f.type):
                fix = f", e.g. {key} = {_toml(f.default)} (the default)"
            unquoted = _unquoted(value)
            if unquoted is not None and matches(unquoted, f.type):
                fix = f": remove the quotes, {key} = {_toml(unquoted)}"
            raise SettingsError(
                f"{at}: {where} = {_toml(value)} is {_toml_kind(value)}, but {where} must be {describe(f.type)}{fix}"
            )


def check_settings(args: list[str]) -> None:
    """Check ``--job.config_file`` (and the config extension) before TorchTitan reads them;
    raise ``SettingsError`` naming the file, line, key and fix. Returns quietly when there is
    nothing to check (``--help``) or everything is in order."""
    if any(arg in ("-h", "--help") for arg in args):
        return
    path = config_file_arg(args)
    cli_module = custom_module_arg(args)
    if path is None:
        if cli_module is None:
            raise SettingsError(
                f"no --job.config_file given: gpa_titan.train needs a config, e.g. "
                f"python -m gpa_titan.train --job.config_file {EXAMPLE_CONFIG}"
            )
        return  # everything on the command line: TorchTitan's parser checks it
    values, text = load_toml(path)
    job = values.get("job", {})
    module = cli_module or (job.get("custom_config_module") if isinstance(job, dict) else None)
    if not module:
        ours = job_config_class(OUR_MODULE, path)
        base = job_config_class(None, path)
        used = [_where(t, k) for t, k in _keys(values) if _known(ours, t, k) and not _known(base, t, k)]
        uses = f" It sets this repo's keys ({', '.join(used)}), which TorchTitan alone does not know." if used else ""
        raise SettingsError(
            f"{path} lacks [job] {ADD_MODULE}, which gpa_titan.train needs for this repo's settings.{uses} "
            f"Add that line under [job] (or pass --job.custom_config_module {OUR_MODULE})"
        )
    cls = job_config_class(module, path)
    missing = [_where(t, k) for t, k in _keys(_our_fields()) if not _known(cls, t, k)]
    if missing:
        raise SettingsError(
            f"{path}: [job] custom_config_module = {module!r} lacks this repo's settings ({', '.join(missing[:5])}); "
            f"gpa_titan.train needs {ADD_MODULE} (or a module whose JobConfig extends it)"
        )
    check_values(path, text, values, cls)


def _our_fields() -> dict:
    """The fields this repo adds, as a nested dict of tables and keys."""
    from gpa_titan.titan.job_config import JobConfig as Ours

    return {f.name: {g.name: None for g in dataclasses.fields(f.type)} for f in dataclasses.fields(Ours)}
