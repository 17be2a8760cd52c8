"""The configuration: schema defaults, errors that name the key, and every shipped config valid."""

import json
from pathlib import Path

import pytest
import yaml

from weakloc.config import SCHEMA_PATH, ConfigError, load_config, sections, validate_config

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [ROOT / "config.yaml", *sorted((ROOT / "configs").glob("*.yaml"))]


def test_defaults_fill_every_section():
    cfg = validate_config({})
    assert cfg["dataset"]["name"] == "synthetic"
    assert cfg["train"]["epochs"] >= 1
    assert cfg["refine"]["base_rate"] == 0.5
    assert cfg["segmenters"]["sam"]["model_type"] == "vit_t"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    # A named config is layered over config.yaml, as `snakemake --configfile` does.
    base = yaml.safe_load((ROOT / "config.yaml").read_text())
    layer = yaml.safe_load(path.read_text())
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    validate_config(base, str(path))


def test_misspelled_key_is_named():
    with pytest.raises(ConfigError, match=r"unknown key train\.epcohs"):
        validate_config({"train": {"epcohs": 3}}, "my.yaml")


def test_wrong_type_is_named_with_the_source():
    with pytest.raises(ConfigError, match=r"^my\.yaml: key train\.epochs: 'ten' is not of type 'integer'"):
        validate_config({"train": {"epochs": "ten"}}, "my.yaml")


def test_unknown_choice_is_named():
    with pytest.raises(ConfigError, match=r"key fusion\.methods\.0"):
        validate_config({"fusion": {"methods": ["median"]}})


def test_splits_must_sum_to_one():
    with pytest.raises(ConfigError, match="dataset.splits"):
        validate_config({"dataset": {"splits": {"train": 0.9, "val": 0.2, "test": 0.1}}})


def test_missing_and_malformed_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)


def test_json_sections_override_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 3\nsel:\n  qualities: [80]\n")
    cfg = load_config(path, json.dumps({"train": {"epochs": 5}}))
    assert cfg["train"]["epochs"] == 5
    assert cfg["sel"]["qualities"] == [80]


def test_several_files_merge_like_snakemake_configfiles(tmp_path, capsys):
    """`--config config.yaml --config configs/release.yaml`: the later file's keys win, nested
    sections merge key by key (the release config overrides a few dataset keys only)."""
    from weakloc.cli import main

    base, over = tmp_path / "a.yaml", tmp_path / "b.yaml"
    base.write_text("dataset:\n  seed: 4\n  synthetic: {n_images: 50, size: 64}\ntrain: {epochs: 3}\n")
    over.write_text("dataset:\n  synthetic: {n_images: 80}\ntrain: {epochs: 7}\n")
    cfg = load_config([base, over])
    assert cfg["dataset"]["synthetic"]["n_images"] == 80 and cfg["dataset"]["synthetic"]["size"] == 64
    assert cfg["dataset"]["seed"] == 4 and cfg["train"]["epochs"] == 7
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config([base, tmp_path / "nope.yaml"])
    assert main(["data", "prepare", "--config", str(base), "--config", str(over), "--out", str(tmp_path / "d")]) == 0
    assert "synthetic: 80 images" in capsys.readouterr().err


def test_sections_is_stable_json():
    cfg = validate_config({})
    text = sections(cfg, "refine", "sel")
    assert json.loads(text) == {"refine": cfg["refine"], "sel": cfg["sel"]}
    # the same values written in another key order, asked for in another order, and a config
    # that differs only in a section not asked for: the same text (rules pass it to commands,
    # so any difference would rerun the step)
    shuffled = {name: dict(reversed(list(value.items()))) if isinstance(value, dict) else value
                for name, value in reversed(list(cfg.items()))}
    shuffled["train"] = dict(shuffled["train"], epochs=cfg["train"]["epochs"] + 1)
    assert sections(shuffled, "sel", "refine") == text
    assert sections(dict(cfg, refine=dict(cfg["refine"], clip=0.01)), "refine", "sel") != text


def test_workflow_schema_is_the_package_schema():
    assert (ROOT / "workflow/schemas/config.schema.yaml").resolve() == SCHEMA_PATH.resolve()


def test_every_key_has_a_description_and_a_default():
    schema = yaml.safe_load(SCHEMA_PATH.read_text())

    def walk(node, path):
        for name, sub in node.get("properties", {}).items():
            where = f"{path}.{name}".lstrip(".")
            assert "description" in sub, f"{where} has no description"
            assert "default" in sub, f"{where} has no default"
            walk(sub, where)

    walk(schema, "")


def test_cross_datasets_are_checked_like_the_dataset():
    entry = {"id": "shift", "dataset": {"name": "synthetic", "splits": {"train": 0, "val": 0, "test": 1}}}
    cfg = validate_config({"cross_dataset": {"datasets": [entry]}})
    ds = cfg["cross_dataset"]["datasets"][0]["dataset"]
    assert ds["seed"] == 0 and ds["synthetic"]["n_images"] == 600  # the dataset section's defaults
    with pytest.raises(ConfigError, match=r"cross_dataset.datasets.0.dataset.splits: train \+ val \+ test"):
        validate_config({"cross_dataset": {"datasets": [{"id": "a", "dataset": {"splits": {"test": 0.5}}}]}})
    with pytest.raises(ConfigError, match="cross_dataset.datasets.0.id: 'synthetic' is already"):
        validate_config({"cross_dataset": {"datasets": [{"id": "synthetic", "dataset": {}}]}})
    with pytest.raises(ConfigError, match="cross_dataset.datasets.0.dataset.name"):
        validate_config({"cross_dataset": {"datasets": [{"id": "a", "dataset": {"name": "imagenet"}}]}})
