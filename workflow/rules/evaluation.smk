# Evaluation: every map folder scored under one protocol, baselines, tables, figures.
import re


def variant_maps(w):
    """(input folder, folder of maps to score) for a variant name of results/<root>/seed<s>/scores/."""
    base = f"results/{w.root}/seed{w.seed}"
    if m := re.fullmatch(r"block(\d+)", w.variant):
        return f"{base}/cams", f"{base}/cams/block{m[1]}"
    if m := re.fullmatch(r"fused-(\w+)", w.variant):
        folder = f"{base}/fused/{m[1]}"
    elif m := re.fullmatch(r"refined-(\w+)-(\w+)-(prior[0-9.]+)", w.variant):
        folder = f"{base}/refined/{m[1]}/{m[2]}/{m[3]}"
    elif m := re.fullmatch(r"refined-(\w+)-(\w+)", w.variant):
        folder = f"{base}/refined/{m[1]}/{m[2]}/default"
    elif m := re.fullmatch(r"(sel-[0-9-]+)-fused-(\w+)", w.variant):
        folder = f"results/{w.root}/{m[1]}/seed{w.seed}/fused/{m[2]}"
    else:
        raise ValueError(f"unknown score variant {w.variant!r}")
    return folder, folder


rule score:
    input:
        data=lambda w: f"data/prepared/{root_dataset(w.root)}",
        maps=lambda w: variant_maps(w)[0],
    output:
        json="results/{root}/seed{seed}/scores/{variant}.json",
        csv="results/{root}/seed{seed}/scores/{variant}.csv",
    params:
        maps=lambda w: variant_maps(w)[1],
        cfg=lambda w: sections(config, "evaluate"),
    log:
        "logs/score/{root}/seed{seed}/{variant}.log",
    shell:
        "weakloc score {params.maps} --manifest {input.data}/manifest.csv --split test --suffix .png"
        " --json {output.json} --csv {output.csv} --quiet --config-json {params.cfg:q} > {log} 2>&1"


rule baseline:
    input:
        data=f"data/prepared/{DATASET}",
    output:
        directory(f"results/{DATASET}/baselines/{{baseline}}"),
    threads: 1
    log:
        f"logs/baseline/{DATASET}/{{baseline}}.log",
    shell:
        "weakloc baseline {wildcards.baseline} --manifest {input.data}/manifest.csv --split test"
        " --out {output} > {log} 2>&1"


use rule score as score_baseline with:
    input:
        data=f"data/prepared/{DATASET}",
        maps=rules.baseline.output,
    output:
        json=f"results/{DATASET}/baselines/scores/baseline-{{baseline}}.json",
        csv=f"results/{DATASET}/baselines/scores/baseline-{{baseline}}.csv",
    params:
        maps=rules.baseline.output,
        cfg=lambda w: sections(config, "evaluate"),
    log:
        f"logs/score/{DATASET}/baselines/{{baseline}}.log",


def score_variants():
    variants = [f"block{b}" for b in BLOCKS]
    variants += [f"fused-{f}" for f in FUSIONS]
    variants += [f"refined-{f}-{s}" for f in FUSIONS for s in SEGSETS]
    variants += [f"refined-{MAIN_FUSION}-{MAIN_SEGSET}-prior{p:g}" for p in PRIOR_STRENGTHS]
    variants += [f"{sel}-fused-{MAIN_FUSION}" for sel in SEL_ABLATION]
    return variants


def all_scores():
    root = f"results/{DATASET}"
    files = [f"{root}/seed{s}/scores/{v}.json" for s in SEEDS for v in score_variants()]
    files += [f"{root}/seed{s}/detect/metrics.json" for s in SEEDS]
    files += [f"{root}/{sel}/seed{s}/detect/metrics.json" for s in SEEDS for sel in SEL_ABLATION]
    files += [f"{root}/baselines/scores/baseline-{b}.json" for b in BASELINES]
    return files


rule tables:
    input:
        all_scores(),
    output:
        report(
            directory(f"results/{DATASET}/tables"),
            patterns=["{name}.md"],
            caption="../report/tables.rst",
            category="Tables",
        ),
    params:
        cfg=lambda w: sections(config, "evaluate", "fusion", "segmenters", "sel"),
    log:
        f"logs/tables/{DATASET}.log",
    shell:
        "weakloc tables --results results/{DATASET} --out {output} --config-json {params.cfg:q} > {log} 2>&1"


FIRST = f"results/{DATASET}/seed{SEEDS[0]}"
FIGURES = f"results/{DATASET}/figures"


def figure_output(name):
    return report(f"{FIGURES}/{name}.png", caption=f"../report/figure_{name}.rst", category="Figures")


rule figure_examples:
    input:
        data=f"data/prepared/{DATASET}",
        cams=f"{FIRST}/cams",
        fused=f"{FIRST}/fused/{MAIN_FUSION}",
        segments=[segment_dir(s) for s in SEGMENTERS],
        refined=f"{FIRST}/refined/{MAIN_FUSION}/{MAIN_SEGSET}/default",
    output:
        figure_output("examples"),
    params:
        cfg=lambda w: sections(config, "evaluate"),
    log:
        f"logs/figures/{DATASET}/examples.log",
    shell:
        "weakloc figures examples --manifest {input.data}/manifest.csv --split test --cams {input.cams}"
        " --fused {input.fused} --segments {input.segments} --refined {input.refined}"
        " --out {output} --config-json {params.cfg:q} > {log} 2>&1"


rule figure_segmenters:
    input:
        [f"results/{DATASET}/seed{s}/scores/{v}.json" for s in SEEDS for v in score_variants() if v.startswith(("fused-", "refined-")) and "-prior" not in v],
    output:
        figure_output("segmenters"),
    params:
        cfg=lambda w: sections(config, "evaluate"),
    log:
        f"logs/figures/{DATASET}/segmenters.log",
    shell:
        "weakloc figures segmenters --scores {input} --out {output} --config-json {params.cfg:q} > {log} 2>&1"


rule figure_thresholds:
    input:
        [f"{FIRST}/scores/fused-{f}.json" for f in FUSIONS],
        [f"{FIRST}/scores/refined-{MAIN_FUSION}-{s}.json" for s in SEGSETS],
        [f"results/{DATASET}/baselines/scores/baseline-{b}.json" for b in BASELINES],
    output:
        figure_output("thresholds"),
    params:
        cfg=lambda w: sections(config, "evaluate"),
    log:
        f"logs/figures/{DATASET}/thresholds.log",
    shell:
        "weakloc figures thresholds --scores {input} --out {output} --config-json {params.cfg:q} > {log} 2>&1"


rule figure_training:
    input:
        [f"checkpoints/{DATASET}/seed{s}/train_log.csv" for s in SEEDS],
    output:
        figure_output("training"),
    params:
        cfg=lambda w: sections(config, "evaluate"),
    log:
        f"logs/figures/{DATASET}/training.log",
    shell:
        "weakloc figures training --logs {input} --out {output} --config-json {params.cfg:q} > {log} 2>&1"
