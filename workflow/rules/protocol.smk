# The field's comparison protocol (docs/evaluation.md): the peers' refinement rules, the trained
# checkpoints scored on other datasets (cross_dataset.datasets), robustness to perturbations of
# the test images (robustness), and the protocol tables with the quoted literature.
#
# An evaluation set <id> is the study root <d>/cross/<id> (weakloc.layout.parse_root): the
# study's rules write its maps, segment cache, baselines, scores and tables under
# results/<d>/cross/<id>/ from data/prepared/<id> and the dataset's checkpoints.
# Robustness: data/perturbed/<d>/<level> (a prepared-like copy of the masked manipulated test
# images) and results/<d>/robustness/<level>/{seed<s>,baselines}.json.


wildcard_constraints:
    peer=WILDCARDS["peer"],
    level=WILDCARDS["level"],


# ---------------------------------------------------------------------------- peer rules


rule peer_refine:
    input:
        fused="results/{root}/seed{seed}/fused/{fusion}",
        cams="results/{root}/seed{seed}/cams",
        segments=lambda w: segment_dir(w.root, PEER_SEGMENTER[w.peer]),
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


# ---------------------------------------------------------------------------- robustness


rule perturb:
    input:
        data=layout.prepared_dir(DATASET),
    output:
        directory(layout.perturbed_dir(DATASET, "{level}")),
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
        ckpt=layout.checkpoint_file(DATASET, "{seed}"),
    output:
        layout.robustness_file(DATASET, "{level}", "seed{seed}"),
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
        layout.robustness_file(DATASET, "{level}", "baselines"),
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
        scores=[f for _, files in protocol_columns() for f in files],
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
        columns=lambda w: " ".join(f"--dataset {name} {' '.join(files)}" for name, files in protocol_columns()),
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
