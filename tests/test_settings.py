"""Typed config sections: their fields are the schema's keys, their values the validated config's."""

import dataclasses

import pytest

from weakloc.config import ConfigError, Section, load_schema, section_defaults, validate_config
from weakloc.datasets.synthetic import PostSettings, SyntheticSettings
from weakloc.decision import DecisionSettings
from weakloc.errors import WeaklocError
from weakloc.intervals import BootstrapSettings
from weakloc.refinement import RefineSettings
from weakloc.sel import SelSettings
from weakloc.training import TrainSettings
from weakloc.wcbnet import ModelSettings

TYPED = [ModelSettings, RefineSettings, DecisionSettings, SyntheticSettings, PostSettings, BootstrapSettings,
         TrainSettings, SelSettings]


def _schema_section(path):
    node = load_schema()
    for part in path.split("."):
        node = node["properties"][part]
    return node


def _config_section(config, path):
    for part in path.split("."):
        config = config[part]
    return config


def test_every_typed_section_is_listed_here():
    def subclasses(cls):
        return {c for s in cls.__subclasses__() for c in {s, *subclasses(s)}}

    assert subclasses(Section) >= set(TYPED)
    assert {c for c in subclasses(Section) if c.__module__.startswith("weakloc.")} == set(TYPED)


@pytest.mark.parametrize("cls", TYPED, ids=lambda c: c.__name__)
def test_fields_are_the_schema_sections_keys_without_defaults_of_their_own(cls):
    fields = dataclasses.fields(cls)
    assert [f.name for f in fields] == list(_schema_section(cls.SECTION)["properties"])
    assert all(f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING for f in fields)


@pytest.mark.parametrize("cls", TYPED, ids=lambda c: c.__name__)
def test_an_empty_section_gets_exactly_what_validation_fills_in(cls):
    validated = _config_section(validate_config({}), cls.SECTION)
    assert section_defaults(cls.SECTION) == validated
    assert cls.from_section({}) == cls.from_section(validated) == cls.from_config(validate_config({}))


def test_values_come_from_the_config_and_missing_keys_from_the_schema():
    config = validate_config({"model": {"stem_stride": 2}, "refine": {"decision": {"mask_min_score": 0.0}},
                              "dataset": {"synthetic": {"size": 96, "region_area": [0.02, 0.2]}}})
    assert ModelSettings.from_config(config).stem_stride == 2
    assert RefineSettings.from_config(config).decision.mask_min_score == 0.0
    syn = SyntheticSettings.from_config(config)
    assert syn.size == 96 and syn.region_area == (0.02, 0.2) and syn.n_images == 600
    # a partial mapping (an old checkpoint's section): the schema's default, not a literal in code
    assert ModelSettings.from_section({"widths": [4]}).stem_stride == 4
    assert ModelSettings.from_section({"widths": [4]}).score_context is True
    assert RefineSettings.from_section({"decision": {"rule": "calibrated"}}).decision.fraction_b == 10.0


def test_unknown_keys_and_bad_ranges_are_one_line_errors():
    with pytest.raises(ConfigError, match="unknown key dataset.synthetic.n_image "):
        SyntheticSettings.from_section({"n_image": 4})
    with pytest.raises(ConfigError, match="unknown key refine.decision.rules "):
        RefineSettings.from_section({"decision": {"rules": "calibrated"}})
    with pytest.raises(WeaklocError, match="key dataset.synthetic.quality_range: minimum 90 is above maximum 60"):
        SyntheticSettings.from_section({"quality_range": [90, 60]})
    with pytest.raises(ConfigError, match="model.widths is not a section"):
        section_defaults("model.widths")
    with pytest.raises(ConfigError, match="no section model.depth"):
        section_defaults("model.depth")
