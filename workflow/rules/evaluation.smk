# Evaluation: every map folder scored under one protocol, baselines, tables, figures.


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
    benchmark:
        "logs/benchmarks/score/{root}/seed{seed}/{variant}.tsv",
    conda:
        "../envs/weakloc.yaml"
    shell:
        "weakloc score {params.maps} --manifest {input.data}/manifest.csv --split test --suffix .png"
        " --json {output.json} --csv {output.csv} --quiet --config-json {params.cfg:q} > {log} 2>&1"


rule baseline:
    input:
        data=f"data/prepared/{DATASET}",
    output:
        directory(f"results/{DATASET}/baselines/{{baseline}}"),
    params:
        shard="",  # "--shard I/N" in the sharded copy of this rule (shards.smk)
        cfg=lambda w: sections(config, "evaluate"),
    threads: 1
    log:
        f"logs/baseline/{DATASET}/{{baseline}}.log",
    benchmark:
        f"logs/benchmarks/baseline/{DATASET}/{{baseline}}.tsv",
    conda:
        "../envs/weakloc.yaml"
    shell:
        "weakloc baseline {wildcards.baseline} --manifest {input.data}/manifest.csv --split test"
        " --out {output} {params.shard} --config-json {params.cfg:q} > {log} 2>&1"


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
    benchmark:
        f"logs/benchmarks/score_baseline/{DATASET}/{{baseline}}.tsv",


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
        name=DATASET,
    log:
        f"logs/tables/{DATASET}.log",
    conda:
        "../envs/weakloc.yaml"
    shell:
        "weakloc tables {input:q} --name {params.name} --out {output} --config-json {params.cfg:q} > {log} 2>&1"




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
    conda:
        "../envs/weakloc.yaml"
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
    conda:
        "../envs/weakloc.yaml"
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
    conda:
        "../envs/weakloc.yaml"
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
    conda:
        "../envs/weakloc.yaml"
    shell:
        "weakloc figures training --logs {input} --out {output} --config-json {params.cfg:q} > {log} 2>&1"
