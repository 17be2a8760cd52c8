"""Variant names and result paths (weakloc.layout): build and parse, folders, registry-derived names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from weakloc import layout
from weakloc.baselines import BASELINES
from weakloc.cams import CAM_METHODS
from weakloc.config import load_schema
from weakloc.datasets import DATASETS
from weakloc.errors import WeaklocError
from weakloc.fusion import FUSION_METHODS
from weakloc.peer_rules import PEER_RULES
from weakloc.perturb import PERTURBATIONS
from weakloc.refinement import EVIDENCE_SOURCES
from weakloc.segmenters import CACHED_SEGMENTERS, MAP_PROMPTED, SEGMENTERS

ROOT = Path(__file__).resolve().parents[1]

#: (built name, kind, fields, maps folder under results/d/seed3) for every kind of variant.
VARIANTS = [
    (layout.block_variant(2), "block", {"block": "2"}, "results/d/seed3/cams/block2"),
    (layout.fused_variant("wavelet"), "fused", {"fusion": "wavelet"}, "results/d/seed3/fused/wavelet"),
    (layout.refined_variant("mean", "all"), "refined", {"fusion": "mean", "segset": "all"},
     "results/d/seed3/refined/mean/all/default"),
    (layout.refined_variant("max", "sam", 0.5), "prior", {"fusion": "max", "segset": "sam", "strength": "0.5"},
     "results/d/seed3/refined/max/sam/prior0.5"),
    (layout.refined_variant("attention", "slic", 10), "prior",
     {"fusion": "attention", "segset": "slic", "strength": "10"}, "results/d/seed3/refined/attention/slic/prior10"),
    (layout.sel_variant([75, 90], "attention"), "sel", {"qualities": "75-90", "fusion": "attention"},
     "results/d/sel-75-90/seed3/fused/attention"),
    (layout.peer_variant("attention", "sepl"), "peer", {"fusion": "attention", "rule": "sepl"},
     "results/d/seed3/peer/attention/sepl"),
    (layout.st_variant(1, "fused-mean"), "st_fused", {"round": "1", "fusion": "mean"},
     "results/d/st1/seed3/fused/mean"),
    (layout.st_variant(12, "refined-mean-all"), "st_refined", {"round": "12", "fusion": "mean", "segset": "all"},
     "results/d/st12/seed3/refined/mean/all/default"),
]


def test_every_kind_round_trips_and_has_its_maps_folder():
    names = [v[0] for v in VARIANTS]
    assert names == ["block2", "fused-wavelet", "refined-mean-all", "refined-max-sam-prior0.5",
                     "refined-attention-slic-prior10", "sel-75-90-fused-attention", "peer-attention-sepl",
                     "st1-fused-mean", "st12-refined-mean-all"]
    assert {kind for _, kind, _, _ in VARIANTS} == set(layout.VARIANT_KINDS)
    for name, kind, fields, folder in VARIANTS:
        assert layout.parse_variant(name) == (kind, fields)
        source, maps = layout.variant_maps("results/d", 3, name)
        assert maps == folder
        assert source == ("results/d/seed3/cams" if kind == "block" else folder)


def test_unknown_names_are_refused():
    for name in ("something-else", "fused-", "Fused-mean", "refined-mean", "peer-attention-other", "block",
                 "sel-fused-mean", "baseline-ela", "fused-mean.json", "refined-mean-slic-priorx", "st0-fused-mean",
                 "st1-refined-mean-sam-prior10", "st1-block1"):
        assert layout.parse_variant(name) is None, name
    with pytest.raises(WeaklocError, match="unknown score variant 'nope'"):
        layout.variant_maps("results/d", 0, "nope")
    # an evaluation set scores no block, prior or SEL-ablation variant
    for name in ("block1", "refined-mean-slic-prior10", "sel-75-90-fused-mean"):
        with pytest.raises(WeaklocError, match="unknown score variant"):
            layout.variant_maps("results/d/cross/x", 0, name, layout.CROSS_KINDS)
    assert layout.variant_maps("results/d/cross/x", 0, "fused-max", layout.CROSS_KINDS)[1] == \
        "results/d/cross/x/seed0/fused/max"


def test_baseline_stems():
    assert layout.baseline_variant("noi1") == "baseline-noi1"
    assert layout.parse_baseline_variant("baseline-noi1") == "noi1"
    assert layout.parse_baseline_variant("baseline-") is None
    assert layout.parse_baseline_variant("fused-mean") is None


def test_result_files_build_and_parse():
    root = layout.results_root("synthetic")
    assert layout.score_file(root, 0, "fused-mean") == "results/synthetic/seed0/scores/fused-mean.json"
    assert layout.detect_file(root, 2) == "results/synthetic/seed2/detect/metrics.json"
    assert layout.baseline_score_file(root, "ela") == "results/synthetic/baselines/scores/baseline-ela.json"
    assert layout.tables_dir(layout.cross_name("synthetic", "casia1")) == "results/synthetic/cross/casia1/tables"
    assert layout.parse_result_file(layout.score_file(root, 0, "fused-mean")) == \
        ("score", {"seed": "0", "variant": "fused-mean"})
    assert layout.parse_result_file("seed2/detect/metrics.json") == ("detect", {"seed": "2"})
    assert layout.parse_result_file(layout.baseline_score_file(root, "ela")) == ("baseline", {"name": "ela"})
    for other in ("results/synthetic/seed0/scores/x.csv", "results/synthetic/notes.json",
                  "results/synthetic/seedx/detect/metrics.json", "results/synthetic/baselines/scores/ela.json"):
        assert layout.parse_result_file(other) is None, other


def test_every_root_tells_its_data_checkpoints_segments_and_variants():
    """The one grammar of the study's trees: each rule is written once over {root}."""
    plain, sel, st, cross = (layout.parse_root(r) for r in (
        "synthetic", "synthetic/" + layout.sel_name([75, 90]), "synthetic/" + layout.st_name(1),
        layout.cross_name("synthetic", "casia1")))
    for model_root in (plain, sel, st):  # trained models share the dataset's images and segment cache
        assert (model_root.dataset, model_root.data, model_root.data_root) == ("synthetic",) * 3
        assert model_root.checkpoint(2) == f"checkpoints/{model_root.name}/seed2/wcbnet.pt"
        assert model_root.segments("slic", "k") == "results/synthetic/segments/slic/k"
        assert model_root.kinds == layout.VARIANT_KINDS
    assert (sel.qualities, plain.qualities, st.qualities) == ((75, 90), None, None)
    # an evaluation set: its own images and segment cache, the dataset's checkpoints, fewer variants
    assert (cross.dataset, cross.data, cross.data_root) == ("synthetic", "casia1", "synthetic/cross/casia1")
    assert cross.checkpoint(0) == "checkpoints/synthetic/seed0/wcbnet.pt"
    assert cross.segments("sam", "k") == "results/synthetic/cross/casia1/segments/sam/k"
    assert layout.prepared_dir(cross.data) == "data/prepared/casia1"
    assert cross.kinds == layout.CROSS_KINDS
    for bad in ("synthetic/other", "synthetic/cross", "synthetic/sel-75/cross/x", "Synthetic", "a/st0"):
        with pytest.raises(WeaklocError, match="not a study root"):
            layout.parse_root(bad)
    patterns = layout.wildcard_patterns(["mean"], ["slic"], ["ela"], ["jpeg"])
    assert _matches(patterns["data_root"], cross.name) and not _matches(patterns["data_root"], sel.name)


def test_refinements_seeds_blocks_and_shards():
    assert layout.refine_strength("default") is None
    assert layout.refine_strength("prior2.5") == 2.5
    assert layout.parse_seed_folder("seed12") == 12 and layout.parse_seed_folder("seeds") is None
    assert layout.parse_block_folder("block3") == 3 and layout.parse_block_folder("block3x") is None
    assert layout.is_sel_folder("sel-75-90") and not layout.is_sel_folder("seed0")
    assert [layout.shard_name(i, 3) for i in (1, 3)] == ["1-of-3", "3-of-3"]
    assert layout.parse_shard_name(layout.shard_name(2, 5)) == (2, 5)
    with pytest.raises(WeaklocError, match="not a shard name"):
        layout.parse_shard_name("2of5")


def _matches(pattern: str, text: str) -> bool:
    return re.fullmatch(pattern, text) is not None


def test_wildcard_constraints_come_from_the_registries():
    w = layout.wildcard_patterns(FUSION_METHODS, CACHED_SEGMENTERS, BASELINES, PERTURBATIONS)
    assert w["fusion"] == "|".join(FUSION_METHODS)
    assert w["baseline"] == "|".join(BASELINES)
    assert w["peer"] == "|".join(PEER_RULES)
    assert w["segmenter"] == "|".join(CACHED_SEGMENTERS)
    assert not MAP_PROMPTED & set(w["segmenter"].split("|")) and "sam_prompt" in MAP_PROMPTED
    assert w["segset"].split("|") == [*CACHED_SEGMENTERS, "all"]
    for name in FUSION_METHODS:
        assert _matches(w["fusion"], name)
    for name in BASELINES:
        assert _matches(w["baseline"], name)
    for kind in PERTURBATIONS:
        assert _matches(w["level"], f"{kind}-70") and _matches(w["level"], f"{kind}-0.5")
    assert _matches(w["level"], "none") and not _matches(w["level"], "sharpen-3")
    assert not _matches(w["fusion"], "median") and not _matches(w["segmenter"], "all")
    assert _matches(w["root"], "synthetic/sel-75-90") and not _matches(w["root"], "synthetic/cross")
    assert _matches(w["refine"], "prior10") and _matches(w["refine"], "default")
    assert _matches(w["shard"], layout.shard_name(2, 4))


def _enum(schema: dict, path: str) -> list:
    """The ``enum`` (without null) at a ``/``-separated path of ``properties`` (``items`` where it says)."""
    node = schema
    for key in path.split("/"):
        node = node["items"] if key == "[]" else node["properties"][key]
    return [v for v in node["enum"] if v is not None]


def test_schema_enums_equal_the_registries():
    """The schema (the user-facing contract) repeats the registries' names: they must agree."""
    schema = load_schema()
    assert _enum(schema, "fusion/methods/[]") == list(FUSION_METHODS)
    for path in ("segmenters/use/[]", "robustness/segmenters/[]", "peer_rules/edgecam/segmenter",
                 "peer_rules/sepl/segmenter", "selftrain/segmenter"):
        assert _enum(schema, path) == list(CACHED_SEGMENTERS), path
    assert _enum(schema, "evaluate/baselines/[]") == list(BASELINES)
    assert _enum(schema, "dataset/name") == list(DATASETS)
    assert _enum(schema, "cams/method") == list(CAM_METHODS)
    assert _enum(schema, "refine/evidence") == list(EVIDENCE_SOURCES)
    props = schema["properties"]
    assert list(props["peer_rules"]["properties"]) == list(PEER_RULES)
    assert set(PERTURBATIONS) <= set(props["robustness"]["properties"])
    assert set(props["segmenters"]["properties"]) - {"use"} == set(SEGMENTERS)


#: The readers and the workflow: they build and parse variant names only through weakloc.layout.
GRAMMAR_USERS = ["src/weakloc/tables.py", "src/weakloc/figures.py", "src/weakloc/protocol.py", "Snakefile",
                 *(p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "workflow/rules").glob("*.smk")))]


def test_the_variant_grammar_is_written_only_in_layout():
    """No reader or rule file builds a variant name by hand or parses one with a regex."""
    built = re.compile(r"f[\"'](?:fused|refined|peer|block|baseline)-?\{|[\"']sel-[\"'] *\+|[\"']-of-|"
                       r"re\.(?:fullmatch|match|compile)\(")
    offenders = []
    assert len(GRAMMAR_USERS) > 4
    for path in (ROOT / p for p in GRAMMAR_USERS):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if built.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


# --------------------------------------------------------------------------- the module map

def _import_graph() -> dict[str, set[str]]:
    """Every module of the package -> the package modules it imports anywhere in its body
    (function-level imports included: a lazy import is still an edge of the module map)."""
    import ast

    src = ROOT / "src"
    files = {}
    for path in (src / "weakloc").rglob("*.py"):
        parts = path.relative_to(src).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            else:
                continue
            deps.update(t for t in targets if t in files and t != name)
        graph[name] = deps
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_module_map_has_no_import_cycle_and_layout_is_a_leaf():
    graph = _import_graph()
    assert {"weakloc.layout", "weakloc.cams", "weakloc.datasets.folder"} <= set(graph)
    assert _cycles(graph) == []
    assert graph["weakloc.layout"] == {"weakloc.errors"}
    # the steps that only read block maps do not reach torch's modules (fast start-up per job)
    assert "weakloc.cams" not in graph["weakloc.fusion"] | graph["weakloc.refinement"] | graph["weakloc.peer_rules"]


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
