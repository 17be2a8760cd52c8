# Evaluation: every map folder scored under one protocol, baselines, tables, figures.


rule score:
    input:
        data=prepared,
        maps=lambda w: variant_maps(w)[0],
    output:
        json="results/{root}/seed{seed}/scores/{variant}.json",
        csv="results/{root}/seed{seed}/scores/{variant}.csv",
    log:
        "logs/score/{root}/seed{seed}/{variant}.log",
    benchmark:
        "logs/benchmarks/score/{root}/seed{seed}/{variant}.tsv"
    conda:
        "../envs/weakloc.yaml"
    params:
        maps=lambda w: variant_maps(w)[1],
        cfg=lambda w: sections(config, "evaluate"),
    shell:
        "weakloc score {params.maps} --manifest {input.data}/manifest.csv --split test --suffix .png"
        " --json {output.json} --csv {output.csv} --quiet --config-json {params.cfg:q} > {log} 2>&1"


rule baseline:
    input:
        data=prepared,
    output:
        directory("results/{root}/baselines/{baseline}"),
    log:
        "logs/baseline/{root}/{baseline}.log",
    benchmark:
        "logs/benchmarks/baseline/{root}/{baseline}.tsv"
    wildcard_constraints:
        root=WILDCARDS["data_root"],
    conda:
        "../envs/weakloc.yaml"
    threads: 1
    params:
        shard="",  # "--shard I/N" in the sharded copy of this rule (shards.smk)
        cfg=lambda w: sections(config, "evaluate"),
    shell:
        "weakloc baseline {wildcards.baseline} --manifest {input.data}/manifest.csv --split test"
        " --out {output} {params.shard} --config-json {params.cfg:q} > {log} 2>&1"


use rule score as score_baseline with:
    input:
        data=prepared,
        maps=rules.baseline.output,
    output:
        json="results/{root}/baselines/scores/baseline-{baseline}.json",
        csv="results/{root}/baselines/scores/baseline-{baseline}.csv",
    log:
        "logs/score/{root}/baselines/{baseline}.log",
    benchmark:
        "logs/benchmarks/score_baseline/{root}/{baseline}.tsv"
    wildcard_constraints:
        root=WILDCARDS["data_root"],
    params:
        maps=lambda w, input: input.maps,
        cfg=lambda w: sections(config, "evaluate"),


rule tables:
    """A data root's localization and detection tables: the study's, or an evaluation set's."""
    input:
        lambda w: root_scores(w.root),
    output:
        report(
            directory(layout.tables_dir("{root}")),
            patterns=["{name}.md"],
            caption="../report/tables.rst",
            category="Tables",
        ),
    log:
        "logs/tables/{root}.log",
    wildcard_constraints:
        root=WILDCARDS["data_root"],
    conda:
        "../envs/weakloc.yaml"
    params:
        cfg=lambda w: sections(config, "evaluate", "fusion", "segmenters", "sel", "selftrain"),
        name=lambda w: w.root if w.root == DATASET else f"{layout.parse_root(w.root).data} (model trained on {DATASET})",
    shell:
        "weakloc tables {input:q} --name {params.name:q} --out {output} --config-json {params.cfg:q} > {log} 2>&1"


rule figure_examples:
    input:
        data=layout.prepared_dir(DATASET),
        cams=f"{FIRST}/cams",
        fused=layout.variant_maps(RESULTS, SEEDS[0], layout.fused_variant(MAIN_FUSION))[1],
        segments=[segment_dir(DATASET, s) for s in SEGMENTERS],
        refined=layout.variant_maps(RESULTS, SEEDS[0], layout.refined_variant(MAIN_FUSION, MAIN_SEGSET))[1],
    output:
        figure_output("examples"),
    log:
        f"logs/figures/{DATASET}/examples.log",
    conda:
        "../envs/weakloc.yaml"
    params:
        cfg=lambda w: sections(config, "evaluate"),
    shell:
        "weakloc figures examples --manifest {input.data}/manifest.csv --split test --cams {input.cams}"
        " --fused {input.fused} --segments {input.segments} --refined {input.refined}"
        " --out {output} --config-json {params.cfg:q} > {log} 2>&1"


rule figure_segmenters:
    input:
        [
            layout.score_file(RESULTS, s, v)
            for s in SEEDS
            for v in score_variants()
            if layout.parse_variant(v)[0] in ("fused", "refined")
        ],
    output:
        figure_output("segmenters"),
    log:
        f"logs/figures/{DATASET}/segmenters.log",
    conda:
        "../envs/weakloc.yaml"
    params:
        cfg=lambda w: sections(config, "evaluate"),
    shell:
        "weakloc figures segmenters --scores {input} --out {output} --config-json {params.cfg:q} > {log} 2>&1"


rule figure_thresholds:
    input:
        [layout.score_file(RESULTS, SEEDS[0], layout.fused_variant(f)) for f in FUSIONS],
        [layout.score_file(RESULTS, SEEDS[0], layout.refined_variant(MAIN_FUSION, s)) for s in SEGSETS],
        [layout.baseline_score_file(RESULTS, b) for b in BASELINES],
    output:
        figure_output("thresholds"),
    log:
        f"logs/figures/{DATASET}/thresholds.log",
    conda:
        "../envs/weakloc.yaml"
    params:
        cfg=lambda w: sections(config, "evaluate"),
    shell:
        "weakloc figures thresholds --scores {input} --out {output} --config-json {params.cfg:q} > {log} 2>&1"


rule figure_training:
    input:
        [layout.train_log_file(DATASET, s) for s in SEEDS],
    output:
        figure_output("training"),
    log:
        f"logs/figures/{DATASET}/training.log",
    conda:
        "../envs/weakloc.yaml"
    params:
        cfg=lambda w: sections(config, "evaluate"),
    shell:
        "weakloc figures training --logs {input} --out {output} --config-json {params.cfg:q} > {log} 2>&1"
