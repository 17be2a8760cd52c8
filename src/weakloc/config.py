"""The study configuration: load, validate against the JSON schema, fill defaults.

The schema (``weakloc/schemas/config.schema.yaml``, linked from ``workflow/schemas/``) gives
every key a type, a default and a description, and forbids unknown keys, so a misspelled key
fails at once with its dotted name. The Snakefile and every ``weakloc`` command go through
:func:`validate_config`, so both see the same defaults.

The schema is the only place defaults are written. Code reads a section through a typed
:class:`Section` (``ModelSettings``, ``RefineSettings``, ``DecisionSettings``,
``SyntheticSettings``: dataclasses without defaults of their own) or as the validated mapping;
a partial mapping (an old checkpoint's section) is completed by :func:`section_defaults`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import typing
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import yaml

from weakloc.errors import WeaklocError

SCHEMA_PATH = Path(str(resources.files("weakloc") / "schemas" / "config.schema.yaml"))


class ConfigError(WeaklocError):
    """A configuration that does not match the schema; the message names the key."""


@functools.cache
def _schema() -> dict:
    """The schema, parsed once per process (read only: every reader here leaves it as it is)."""
    with open(SCHEMA_PATH, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def load_schema() -> dict:
    """The schema as a dict of the caller's own."""
    return copy.deepcopy(_schema())


def _schema_node(path: str, what: str = "section") -> dict:
    """The schema of the section (or, ``what="key"``, the key) at dotted ``path`` (``"refine.decision"``)."""
    node = _schema()
    for part in path.split("."):
        try:
            node = node["properties"][part]
        except KeyError:
            raise ConfigError(f"the schema has no {what} {path}") from None
    return node


def _with_defaults(validator_class):
    """A validator class that writes each property's default into the instance first."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


#: Draft 7 with the schema's defaults filled in, and a Python tuple accepted where the schema says
#: array (typed sections and callers pass ranges as tuples; YAML gives lists).
_Validator = jsonschema.validators.extend(
    _with_defaults(jsonschema.Draft7Validator),
    type_checker=jsonschema.Draft7Validator.TYPE_CHECKER.redefine(
        "array", lambda _checker, instance: isinstance(instance, (list, tuple))))


def _describe(error: jsonschema.ValidationError, prefix: str = "") -> str:
    """One line naming the key (``prefix``: the dotted section the validated mapping is)."""
    path = ".".join([prefix, *(str(p) for p in error.absolute_path)] if prefix else
                    [str(p) for p in error.absolute_path])
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        keys = ", ".join(f"{path + '.' if path else ''}{k}" for k in extra)
        return f"unknown key {keys} (allowed here: {', '.join(allowed)})"
    return f"key {path or '<top level>'}: {error.message}"


#: Keys that were renamed (old dotted path -> the new one, or the new ones that each take its value):
#: a config that uses an old name is an error naming the new; settings stored under an old name in a
#: checkpoint are translated (:func:`translate_renamed`).
RENAMED_KEYS = {
    "refine.gate": ("refine.scale_by_score",),
    "refine.decision.gate": ("refine.decision.mask_min_score",),
    # the pipeline's own down-scale before segmenting: each segmenter (but sam_prompt) has the key
    # itself (defaults 2048)
    "localize.segment_max_side": ("segmenters.slic.max_side", "segmenters.felzenszwalb.max_side",
                                  "segmenters.sam.max_side", "segmenters.deeplab.max_side",
                                  "segmenters.pspnet.max_side"),
}


def _lookup(config: Mapping, dotted: str) -> tuple[Mapping | None, str]:
    """``(the mapping that holds the key at dotted path, the key)``, or ``(None, key)``."""
    *parents, key = dotted.split(".")
    node = config
    for name in parents:
        node = node.get(name) if isinstance(node, Mapping) else None
    return (node if isinstance(node, Mapping) else None), key


def _check_renamed(config: Mapping, prefix: str = "") -> None:
    """A :class:`ConfigError` for the first old key name (:data:`RENAMED_KEYS`) ``config`` uses;
    ``prefix``: the dotted section ``config`` is (``refine`` for a refine section)."""
    for old, new in RENAMED_KEYS.items():
        if prefix and not old.startswith(prefix + "."):
            continue
        node, key = _lookup(config, old[len(prefix) + 1:] if prefix else old)
        if node is not None and key in node:
            raise ConfigError(f"key {old} was renamed {' and '.join(new)} (same meaning): use the new name")


def translate_renamed(config: dict) -> dict:
    """``config`` with every old key name (:data:`RENAMED_KEYS`) moved to its new names, in place:
    how settings a checkpoint stored before a rename are read. A stored null (no value was
    chosen) is dropped: the new keys keep theirs or the schema's defaults."""
    for old, new in RENAMED_KEYS.items():
        node, key = _lookup(config, old)
        if node is None or key not in node:
            continue
        value = node.pop(key)
        for name in new if value is not None else ():
            *parents, new_key = name.split(".")
            new_node = config
            for part in parents:
                new_node = new_node.setdefault(part, {})
            new_node.setdefault(new_key, copy.deepcopy(value))
    return config


def validate_config(config: dict | None, source: str = "config") -> dict:
    """Validate ``config`` in place (defaults filled) and return it.

    Raises :class:`ConfigError` naming ``source`` and the first offending key (an old key name
    says its new name, :data:`RENAMED_KEYS`).
    """
    config = {} if config is None else config
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: the configuration must be a mapping, got {type(config).__name__}")
    try:
        _check_renamed(config)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    errors = sorted(_Validator(_schema()).iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(f"{source}: {_describe(errors[0])}")
    splits = config["dataset"]["splits"]
    total = sum(splits.values())
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"{source}: key dataset.splits: train + val + test + holdout must be 1, got {total:g}")
    ids = [config["dataset"]["name"]]
    for i, entry in enumerate(config["cross_dataset"]["datasets"]):
        total = sum(entry["dataset"]["splits"].values())
        if abs(total - 1.0) > 1e-6:
            raise ConfigError(f"{source}: key cross_dataset.datasets.{i}.dataset.splits: train + val + test "
                              f"+ holdout must be 1, got {total:g}")
        if entry["id"] in ids:
            raise ConfigError(f"{source}: key cross_dataset.datasets.{i}.id: {entry['id']!r} is already the "
                              f"training set's or another evaluation set's folder name")
        ids.append(entry["id"])
    return config


#: The sections that turn an image into maps, masks and a verdict (what ``weakloc localize`` runs).
#: ``weakloc train`` stores the study's values of them in the checkpoint (``meta["pipeline"]``), so
#: :class:`weakloc.pipeline.Localizer` with no config runs the pipeline of the study that trained it.
PIPELINE_SECTIONS = ("cams", "fusion", "segmenters", "refine", "localize")


def merge_config(base: dict, override: Mapping) -> dict:
    """``base`` with ``override``'s keys set recursively (nested mappings merged, anything else
    replaced), as Snakemake merges several ``--configfile`` files; ``base`` is changed and returned."""
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            merge_config(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def load_config(path: str | Path | Sequence[str | Path] | None = None, json_text: str | None = None) -> dict:
    """Load a YAML file, or several (each later file's keys override the earlier ones', merged
    recursively as by Snakemake's ``--configfile a.yaml b.yaml``), or a JSON string, as the
    workflow passes it, and validate the result.

    Both may be given: the JSON object's top-level sections replace the files'.
    """
    paths = [] if path is None else [path] if isinstance(path, (str, Path)) else list(path)
    config: dict[str, Any] = {}
    for p in paths:
        try:
            with open(p, encoding="utf-8") as fh:
                merge_config(config, yaml.safe_load(fh) or {})
        except FileNotFoundError:
            raise ConfigError(f"{p}: config file not found") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML ({exc.__class__.__name__}: {exc})") from None
    source = " + ".join(str(p) for p in paths) or "config"
    if json_text:
        try:
            config.update(json.loads(json_text))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--config-json: not valid JSON ({exc})") from None
        source = source if paths else "--config-json"
    return validate_config(config, source)


@functools.cache
def _section_validator(path: str):
    """The validator (defaults filled as it goes) of the schema's section at dotted ``path``."""
    schema = _schema_node(path)
    if schema.get("type") != "object":
        raise ConfigError(f"the schema's {path} is not a section (type {schema.get('type')})")
    return _Validator(schema)


@functools.cache
def _section_defaults(path: str) -> dict:
    filled: dict = {}
    _section_validator(path).validate(filled)
    return filled


def schema_choices(path: str) -> tuple:
    """The values the schema allows for the key at dotted ``path`` (its ``enum``): what a CLI
    option for that key offers, so the choices are written in the schema only."""
    return tuple(_schema_node(path, "key")["enum"])


def validate_section(path: str, section: Mapping) -> dict:
    """``section``, the mapping of the schema's section at dotted ``path``, checked against its part
    of the schema with the defaults filled (a fresh copy): a value outside the schema's types,
    bounds or choices, or an unknown key, is a :class:`ConfigError` naming the key. The schema is
    the only place those rules are written."""
    given = copy.deepcopy(dict(section))
    error = next(iter(_section_validator(path).iter_errors(given)), None)  # also fills the defaults
    if error is not None:
        raise ConfigError(_describe(error, path))
    return given


def section_defaults(path: str) -> dict:
    """The schema's defaults of the section at dotted ``path`` (``"model"``, ``"refine.decision"``),
    nested sections filled: what :func:`validate_config` writes there for an empty config (a fresh copy)."""
    return copy.deepcopy(_section_defaults(path))


class Section:
    """Base of the typed config sections: a frozen dataclass whose fields are the keys of the
    schema section :attr:`SECTION` (dotted path), with no defaults of its own.

    Build one with :meth:`from_config` (a validated config) or :meth:`from_section` (one
    section's mapping). A field annotated with another :class:`Section` holds that nested section.
    """

    SECTION: ClassVar[str]

    @classmethod
    def from_section(cls, section: Mapping | None = None):
        """The typed section from its mapping, checked against its part of the schema: keys it
        lacks (a partial dict, e.g. an old checkpoint's) take the schema's defaults, and a value
        outside the schema's types, bounds or choices, or an unknown key, is a :class:`ConfigError`
        naming the key (:func:`validate_section`)."""
        given = {k: dataclasses.asdict(v) if isinstance(v, Section) else v for k, v in dict(section or {}).items()}
        _check_renamed(given, cls.SECTION)
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ConfigError(f"unknown key {cls.SECTION}.{unknown[0]} (allowed here: {', '.join(sorted(names))})")
        given = validate_section(cls.SECTION, given)
        for name, nested in _nested_sections(cls).items():
            given[name] = nested.from_section(given[name])
        return cls(**given)

    @classmethod
    def from_config(cls, config: Mapping):
        """The typed section :attr:`SECTION` of a validated config."""
        section = config
        for part in cls.SECTION.split("."):
            section = section[part]
        return cls.from_section(section)


@functools.cache
def _nested_sections(cls: type) -> dict[str, type]:
    """The fields of a :class:`Section` subclass that hold a nested section: name -> its class."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)
            if isinstance(hints[f.name], type) and issubclass(hints[f.name], Section)}


def sections(config: dict, *names: str) -> str:
    """The named top-level sections as compact JSON: what a workflow rule passes to a command.

    Passing only the sections a step reads means editing another section does not rerun it.
    """
    return json.dumps({name: config[name] for name in names}, sort_keys=True, separators=(",", ":"))
