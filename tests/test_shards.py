"""Shards of the per-image steps: the selection, the merge, and the commands' --shard option.

The end-to-end check (the smoke study with 4 shards gives the same tables as with 1) is
tests/test_workflow.py::test_three_shards_on_a_loaded_machine_give_the_idle_one_job_bytes.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage import data

from weakloc.cli import main
from weakloc.errors import WeaklocError
from weakloc.manifest import write_manifest
from weakloc.shards import Shard, merge_shards, parse_shard, shard_items


def test_parse_shard_accepts_i_of_n_and_names_the_problem():
    assert parse_shard("2/4") == Shard(2, 4)
    assert parse_shard(" 1 / 1 ") == Shard(1, 1)
    assert parse_shard(None) is None
    for bad in ("0/4", "5/4", "2", "a/b", "2/0", "-1/3"):
        with pytest.raises(WeaklocError, match=r"--shard .*I/N"):
            parse_shard(bad)


@pytest.mark.parametrize("n_items, count", [(10, 4), (3, 4), (8, 1), (0, 3)])
def test_shards_partition_the_list_round_robin_in_order(n_items, count):
    items = [f"id{k:02d}" for k in range(n_items)]
    parts = [list(shard_items(items, Shard(i, count))) for i in range(1, count + 1)]
    assert sorted(sum(parts, [])) == sorted(items)  # every item once
    for i, part in enumerate(parts):
        assert part == items[i::count]  # positions i, i+N, ... in the original order
    sizes = [len(p) for p in parts]
    assert max(sizes, default=0) - min(sizes, default=0) <= 1
    assert list(shard_items(items, None)) == items


def test_shards_of_a_dataframe_keep_rows_and_columns():
    df = pd.DataFrame({"id": list("abcdefg"), "label": [0, 1, 0, 1, 0, 1, 0]})
    second = shard_items(df, Shard(2, 3))
    assert list(second["id"]) == ["b", "e"] and list(second.columns) == ["id", "label"]


def _write_blocks(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=["id", "label", "score", "w1"]).to_csv(folder / "blocks.csv", index=False)


def test_merge_restores_the_unsharded_folder_byte_for_byte(tmp_path):
    rows = [{"id": f"im{k}", "label": k % 2, "score": round(0.1 * k + 0.013, 6), "w1": 1.0} for k in range(7)]
    whole = tmp_path / "whole"
    _write_blocks(whole, rows)
    shards = []
    for i in range(1, 4):
        d = tmp_path / f"shard{i}"
        _write_blocks(d, shard_items(rows, Shard(i, 3)))
        for r in shard_items(rows, Shard(i, 3)):
            (d / "block1").mkdir(exist_ok=True)
            (d / "block1" / f"{r['id']}.png").write_bytes(r["id"].encode())
            (whole / "block1").mkdir(exist_ok=True)
            (whole / "block1" / f"{r['id']}.png").write_bytes(r["id"].encode())
        (d / "settings.json").write_text('{"key": "abc"}\n')
        shards.append(d)
    (whole / "settings.json").write_text('{"key": "abc"}\n')

    out = tmp_path / "merged"
    assert merge_shards(shards, out) == 7 + 2
    assert (out / "blocks.csv").read_bytes() == (whole / "blocks.csv").read_bytes()
    files = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert files == sorted(p.relative_to(whole) for p in whole.rglob("*"))
    for rel in files:
        if (out / rel).is_file():
            assert (out / rel).read_bytes() == (whole / rel).read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no work folder left


def test_merge_refuses_disagreeing_or_incomplete_shards_and_writes_nothing(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d, key in ((a, "abc"), (b, "xyz")):
        d.mkdir()
        (d / "settings.json").write_text(key)
    with pytest.raises(WeaklocError, match=r"b/settings.json: differs from .*a/settings.json"):
        merge_shards([a, b], tmp_path / "out")
    assert not (tmp_path / "out").exists()

    rows = [{"id": f"im{k}", "label": 0, "score": 0.5, "w1": 1.0} for k in range(5)]
    _write_blocks(tmp_path / "c", rows[0:2])  # shard 1/2 of 5 rows has 3
    _write_blocks(tmp_path / "d", rows[2:5])
    with pytest.raises(WeaklocError, match=r"c/blocks.csv: 2 rows, but shard 1/2 of 5 rows has 3"):
        merge_shards([tmp_path / "c", tmp_path / "d"], tmp_path / "out")
    with pytest.raises(WeaklocError, match="missing.*shard folder not found"):
        merge_shards([tmp_path / "c", tmp_path / "missing"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.fixture()
def photos_manifest(tmp_path):
    root = tmp_path / "prepared"
    (root / "images").mkdir(parents=True)
    rows = []
    for i, name in enumerate(["astronaut", "chelsea", "coffee", "rocket", "astronaut"]):
        rgb = np.asarray(Image.fromarray(getattr(data, name)()).resize((48, 40)))
        if i == 4:
            rgb = rgb[::-1].copy()
        path = root / "images" / f"img{i}.png"
        Image.fromarray(rgb).save(path)
        rows.append({"id": f"img{i}", "split": "test", "label": i % 2, "image": str(path),
                     "mask": "", "width": 48, "height": 40, "source": name})
    write_manifest(pd.DataFrame(rows), root / "manifest.csv")
    return root / "manifest.csv"


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("step", ["segment", "baseline"])
def test_sharded_command_then_merge_equals_one_job(step, photos_manifest, tmp_path):
    if step == "segment":
        cfg = json.dumps({"segmenters": {"use": ["slic"], "slic": {"n_segments": 12}}})
        base = ["segment", "--manifest", str(photos_manifest), "--segmenter", "slic", "--config-json", cfg]
    else:
        pytest.importorskip("pyIFD")
        base = ["baseline", "ela", "--manifest", str(photos_manifest)]
    assert main(base + ["--out", str(tmp_path / "whole")]) == 0
    shard_dirs = [tmp_path / f"s{i}" for i in (1, 2, 3)]
    for i, d in enumerate(shard_dirs, 1):
        assert main(base + ["--out", str(d), "--shard", f"{i}/3"]) == 0
    assert {p.stem for p in shard_dirs[1].glob("img*")} == {"img1", "img4"}  # positions 1 and 4 of 5
    assert main(["shards", "merge", *map(str, shard_dirs), "--out", str(tmp_path / "merged")]) == 0
    whole, merged = _tree(tmp_path / "whole"), _tree(tmp_path / "merged")
    assert sorted(whole) == sorted(merged) and len(whole) >= 5
    if step == "baseline":
        assert whole == merged
    else:  # npz archives hold a time stamp: compare the partitions
        from weakloc.segmenters import load_partition

        for name in whole:
            if name.endswith(".npz"):
                assert np.array_equal(load_partition(tmp_path / "whole" / name),
                                      load_partition(tmp_path / "merged" / name))
            else:
                assert whole[name] == merged[name]


def test_bad_shard_option_is_one_line_error(photos_manifest, tmp_path, capsys):
    assert main(["segment", "--manifest", str(photos_manifest), "--segmenter", "slic",
                 "--out", str(tmp_path / "x"), "--shard", "4/3"]) == 2
    assert "--shard '4/3': expected I/N" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
