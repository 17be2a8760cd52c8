# The field's comparison protocol (docs/evaluation.md): the peers' refinement rules, the trained
# checkpoints scored on other datasets (cross_dataset.datasets), robustness to perturbations of
# the test images (robustness), and the protocol tables with the quoted literature.
#
# Cross-dataset evaluation reuses the study's rules with the evaluation set's paths:
#   data/prepared/<id>                      the `prepare` rule, with the entry's dataset section
#   results/<d>/cross/<id>/seed<s>/...      cams, detect, fused/<main fusion>, refined, peer, scores
#   results/<d>/cross/<id>/segments/...     the evaluation set's segment cache
#   results/<d>/cross/<id>/baselines/...    classic baselines and their scores
#   results/<d>/cross/<id>/tables           its own localization and detection tables
# Robustness: data/perturbed/<d>/<level> (a prepared-like copy of the masked manipulated test
# images) and results/<d>/robustness/<level>/{seed<s>,baselines}.json.


wildcard_constraints:
    peer=WILDCARDS["peer"],
    evalset="|".join(CROSS) if CROSS else r"(?!)",
    level=WILDCARDS["level"],


# ---------------------------------------------------------------------------- peer rules


rule peer_refine:
    input:
        fused="results/{root}/seed{seed}/fused/{fusion}",
        cams="results/{root}/seed{seed}/cams",
        segments=lambda w: segment_dir(PEER_SEGMENTER[w.peer]),
    output:
        directory("results/{root}/seed{seed}/peer/{fusion}/{peer}"),
    log:
        "logs/peer/{root}/seed{seed}/{fusion}/{peer}.log",
    benchmark:
        "logs/benchmarks/peer/{root}/seed{seed}/{fusion}/{peer}.tsv"
    conda:
        "../envs/weakloc.yaml"
    params:
        cfg=lambda w: sections(config, "peer_rules"),
    shell:
        "weakloc peer-refine {wildcards.peer} --fused {input.fused} --segments {input.segments}"
        " --cams {input.cams} --out {output} --config-json {params.cfg:q} > {log} 2>&1"


# ---------------------------------------------------------------------------- cross-dataset


use rule cams as cams_cross with:
    input:
        data="data/prepared/{evalset}",
        ckpt=f"checkpoints/{DATASET}/seed{{seed}}/wcbnet.pt",
    output:
        directory(f"{CROSS_ROOT}/seed{{seed}}/cams"),
    log:
        f"logs/cams/{DATASET}/cross/{{evalset}}/seed{{seed}}.log",
    benchmark:
        f"logs/benchmarks/cams/{DATASET}/cross/{{evalset}}/seed{{seed}}.tsv"
    params:
        cfg=lambda w: sections(config, "cams"),
        shard="",


use rule detect as detect_cross with:
    input:
        data="data/prepared/{evalset}",
        ckpt=f"checkpoints/{DATASET}/seed{{seed}}/wcbnet.pt",
    output:
        scores=f"{CROSS_ROOT}/seed{{seed}}/detect/scores.csv",
        metrics=f"{CROSS_ROOT}/seed{{seed}}/detect/metrics.json",
    log:
        f"logs/detect/{DATASET}/cross/{{evalset}}/seed{{seed}}.log",
    benchmark:
        f"logs/benchmarks/detect/{DATASET}/cross/{{evalset}}/seed{{seed}}.tsv"
    params:
        cfg=lambda w: sections(config, "train", "evaluate"),


use rule fuse as fuse_cross with:
    input:
        cams=f"{CROSS_ROOT}/seed{{seed}}/cams",
    output:
        directory(f"{CROSS_ROOT}/seed{{seed}}/fused/{{fusion}}"),
    log:
        f"logs/fuse/{DATASET}/cross/{{evalset}}/seed{{seed}}/{{fusion}}.log",
    benchmark:
        f"logs/benchmarks/fuse/{DATASET}/cross/{{evalset}}/seed{{seed}}/{{fusion}}.tsv"
    params:
        cfg=lambda w: sections(config, "fusion"),
        shard="",


use rule segment as segment_cross with:
    input:
        data="data/prepared/{evalset}",
        weights=segmenter_weights,
    output:
        directory(f"{CROSS_ROOT}/segments/{{segmenter}}/{{key}}"),
    log:
        f"logs/segment/{DATASET}/cross/{{evalset}}/{{segmenter}}/{{key}}.log",
    benchmark:
        f"logs/benchmarks/segment/{DATASET}/cross/{{evalset}}/{{segmenter}}/{{key}}.tsv"
    params:
        cfg=lambda w: sections(config, "segmenters"),
        shard="",


use rule refine as refine_cross with:
    input:
        fused=f"{CROSS_ROOT}/seed{{seed}}/fused/{{fusion}}",
        cams=f"{CROSS_ROOT}/seed{{seed}}/cams",
        segments=lambda w: [cross_segment_dir(s, w.evalset) for s in segsets_members(w.segset)],
    output:
        directory(f"{CROSS_ROOT}/seed{{seed}}/refined/{{fusion}}/{{segset}}/{{refine}}"),
    log:
        f"logs/refine/{DATASET}/cross/{{evalset}}/seed{{seed}}/{{fusion}}/{{segset}}/{{refine}}.log",
    benchmark:
        f"logs/benchmarks/refine/{DATASET}/cross/{{evalset}}/seed{{seed}}/{{fusion}}/{{segset}}/{{refine}}.tsv"
    params:
        cfg=refine_config,
        shard="",


use rule peer_refine as peer_refine_cross with:
    input:
        fused=f"{CROSS_ROOT}/seed{{seed}}/fused/{{fusion}}",
        cams=f"{CROSS_ROOT}/seed{{seed}}/cams",
        segments=lambda w: cross_segment_dir(PEER_SEGMENTER[w.peer], w.evalset),
    output:
        directory(f"{CROSS_ROOT}/seed{{seed}}/peer/{{fusion}}/{{peer}}"),
    log:
        f"logs/peer/{DATASET}/cross/{{evalset}}/seed{{seed}}/{{fusion}}/{{peer}}.log",
    benchmark:
        f"logs/benchmarks/peer/{DATASET}/cross/{{evalset}}/seed{{seed}}/{{fusion}}/{{peer}}.tsv"


use rule score as score_cross with:
    input:
        data="data/prepared/{evalset}",
        maps=lambda w: cross_variant_maps(w)[0],
    output:
        json=f"{CROSS_ROOT}/seed{{seed}}/scores/{{variant}}.json",
        csv=f"{CROSS_ROOT}/seed{{seed}}/scores/{{variant}}.csv",
    log:
        f"logs/score/{DATASET}/cross/{{evalset}}/seed{{seed}}/{{variant}}.log",
    benchmark:
        f"logs/benchmarks/score/{DATASET}/cross/{{evalset}}/seed{{seed}}/{{variant}}.tsv"
    params:
        maps=lambda w: cross_variant_maps(w)[1],
        cfg=lambda w: sections(config, "evaluate"),


use rule baseline as baseline_cross with:
    input:
        data="data/prepared/{evalset}",
    output:
        directory(f"{CROSS_ROOT}/baselines/{{baseline}}"),
    log:
        f"logs/baseline/{DATASET}/cross/{{evalset}}/{{baseline}}.log",
    benchmark:
        f"logs/benchmarks/baseline/{DATASET}/cross/{{evalset}}/{{baseline}}.tsv"
    params:
        shard="",


use rule score as score_baseline_cross with:
    input:
        data="data/prepared/{evalset}",
        maps=f"{CROSS_ROOT}/baselines/{{baseline}}",
    output:
        json=f"{CROSS_ROOT}/baselines/scores/baseline-{{baseline}}.json",
        csv=f"{CROSS_ROOT}/baselines/scores/baseline-{{baseline}}.csv",
    log:
        f"logs/score/{DATASET}/cross/{{evalset}}/baselines/{{baseline}}.log",
    benchmark:
        f"logs/benchmarks/score_baseline/{DATASET}/cross/{{evalset}}/{{baseline}}.tsv"
    params:
        maps=lambda w, input: input.maps,
        cfg=lambda w: sections(config, "evaluate"),


rule tables_cross:
    """An evaluation set's own localization and detection tables."""
    input:
        lambda w: cross_scores(w.evalset),
    output:
        directory(f"{CROSS_ROOT}/tables"),
    log:
        f"logs/tables/{DATASET}/cross/{{evalset}}.log",
    conda:
        "../envs/weakloc.yaml"
    params:
        name=lambda w: f"{w.evalset} (model trained on {DATASET})",
        cfg=lambda w: sections(config, "evaluate", "fusion", "segmenters", "sel", "selftrain"),
    shell:
        "weakloc tables {input:q} --name {params.name:q} --out {output} --config-json {params.cfg:q} > {log} 2>&1"


# ---------------------------------------------------------------------------- robustness


rule perturb:
    input:
        data=f"data/prepared/{DATASET}",
    output:
        directory(f"data/perturbed/{DATASET}/{{level}}"),
    log:
        f"logs/perturb/{DATASET}/{{level}}.log",
    conda:
        "../envs/weakloc.yaml"
    params:
        cfg=lambda w: sections(config, "robustness"),
    shell:
        "weakloc perturb {wildcards.level} --manifest {input.data}/manifest.csv --split test --out {output}"
        " --config-json {params.cfg:q} > {log} 2>&1"


rule robustness:
    """Pixel F1 of the default pipeline (as `weakloc localize`) on one perturbation level."""
    input:
        data=level_data,
        ckpt=f"checkpoints/{DATASET}/seed{{seed}}/wcbnet.pt",
    output:
        f"results/{DATASET}/robustness/{{level}}/seed{{seed}}.json",
    log:
        f"logs/robustness/{DATASET}/{{level}}/seed{{seed}}.log",
    benchmark:
        f"logs/benchmarks/robustness/{DATASET}/{{level}}/seed{{seed}}.tsv"
    conda:
        "../envs/weakloc.yaml"
    threads: workflow.cores
    params:
        cfg=lambda w: sections(config, "cams", "fusion", "segmenters", "refine", "localize", "evaluate", "robustness"),
    shell:
        "OMP_NUM_THREADS={threads} weakloc robustness {wildcards.level} --manifest {input.data}/manifest.csv"
        " --split test --checkpoint {input.ckpt} --out {output} --config-json {params.cfg:q} > {log} 2>&1"


rule robustness_baselines:
    """Pixel F1 of the classic baselines on one perturbation level."""
    input:
        data=level_data,
    output:
        f"results/{DATASET}/robustness/{{level}}/baselines.json",
    log:
        f"logs/robustness/{DATASET}/{{level}}/baselines.log",
    benchmark:
        f"logs/benchmarks/robustness/{DATASET}/{{level}}/baselines.tsv"
    conda:
        "../envs/weakloc.yaml"
    threads: 1
    params:
        cfg=lambda w: sections(config, "evaluate"),
        names=" ".join(BASELINES),
    shell:
        "weakloc robustness-baselines {wildcards.level} --manifest {input.data}/manifest.csv --split test"
        " --baselines {params.names} --out {output} --config-json {params.cfg:q} > {log} 2>&1"


# ---------------------------------------------------------------------------- protocol tables, figure


rule protocol_tables:
    input:
        own=own_protocol_scores(),
        cross=[f for e in CROSS for f in cross_scores(e)],
        robustness=robustness_files(),
        literature=config["cross_dataset"]["literature"] or [],
    output:
        report(
            directory(PROTOCOL),
            patterns=["{name}.md"],
            caption="../report/protocol.rst",
            category="Protocol",
        ),
    log:
        f"logs/protocol/{DATASET}.log",
    conda:
        "../envs/weakloc.yaml"
    params:
        columns=lambda w: " ".join(
            f"--dataset {name} " + " ".join(files)
            for name, files in [(DATASET, own_protocol_scores()), *((e, cross_scores(e)) for e in CROSS)]
        ),
        robustness=lambda w, input: f"--robustness {' '.join(input.robustness)}" if input.robustness else "",
        literature=lambda w, input: f"--literature {input.literature}" if input.literature else "",
        cfg=lambda w: sections(config, "evaluate", "fusion", "refine", "segmenters", "robustness"),
    shell:
        "weakloc protocol-tables {params.columns} {params.robustness} {params.literature} --out {output}"
        " --config-json {params.cfg:q} > {log} 2>&1"


rule figure_robustness:
    input:
        robustness_files(),
    output:
        figure_output("robustness"),
    log:
        f"logs/figures/{DATASET}/robustness.log",
    conda:
        "../envs/weakloc.yaml"
    params:
        cfg=lambda w: sections(config, "evaluate"),
    shell:
        "weakloc figures robustness --levels {input} --out {output} --config-json {params.cfg:q} > {log} 2>&1"
