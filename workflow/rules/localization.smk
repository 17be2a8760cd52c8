# Localization: per-block maps, their fusion, the segmentation cache and Bayesian refinement.


rule cams:
    input:
        data=prepared,
        ckpt=model_checkpoint,
    output:
        directory("results/{root}/seed{seed}/cams"),
    log:
        "logs/cams/{root}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/cams/{root}/seed{seed}.tsv"
    conda:
        "../envs/weakloc.yaml"
    threads: workflow.cores
    params:
        cfg=lambda w: sections(config, "cams"),
        shard="",  # "--shard I/N" in the sharded copy of this rule (shards.smk)
    shell:
        "OMP_NUM_THREADS={threads} weakloc cams --manifest {input.data}/manifest.csv --split test"
        " --checkpoint {input.ckpt} --out {output} --config-json {params.cfg:q} {params.shard} > {log} 2>&1"


rule fuse:
    input:
        cams=rules.cams.output,
    output:
        directory("results/{root}/seed{seed}/fused/{fusion}"),
    log:
        "logs/fuse/{root}/seed{seed}/{fusion}.log",
    benchmark:
        "logs/benchmarks/fuse/{root}/seed{seed}/{fusion}.tsv"
    conda:
        "../envs/weakloc.yaml"
    params:
        cfg=lambda w: sections(config, "fusion"),
        shard="",  # "--shard I/N" in the sharded copy of this rule (shards.smk)
    shell:
        "weakloc fuse --cams {input.cams} --method {wildcards.fusion} --out {output}"
        " --config-json {params.cfg:q} {params.shard} > {log} 2>&1"


rule fetch_mobile_sam:
    output:
        str(DEFAULT_MOBILE_SAM),  # where the sam segmenter looks when segmenters.sam.checkpoint is null
    log:
        "logs/weights/mobile_sam.log",
    conda:
        "../envs/weakloc.yaml"
    shell:
        "weakloc weights mobile-sam --out {output} > {log} 2>&1"


rule segment:
    input:
        data=prepared,
        weights=segmenter_weights,
    output:
        directory(layout.segments_dir("{root}", "{segmenter}", "{key}")),
    log:
        "logs/segment/{root}/{segmenter}/{key}.log",
    benchmark:
        "logs/benchmarks/segment/{root}/{segmenter}/{key}.tsv"
    wildcard_constraints:
        root=WILDCARDS["data_root"],
    conda:
        "../envs/weakloc.yaml"
    # network segmenters use every core; superpixels are single-threaded and run side by side
    threads: lambda w: workflow.cores if w.segmenter in ("sam", "deeplab", "pspnet") else 1
    params:
        cfg=lambda w: sections(config, "segmenters"),
        shard="",  # "--shard I/N" in the sharded copy of this rule (shards.smk)
    shell:
        "OMP_NUM_THREADS={threads} weakloc segment --manifest {input.data}/manifest.csv --split test"
        " --segmenter {wildcards.segmenter} --out {output} --config-json {params.cfg:q} {params.shard} > {log} 2>&1"


rule refine:
    input:
        fused=rules.fuse.output,
        cams=rules.cams.output,
        segments=lambda w: [segment_dir(w.root, s) for s in segsets_members(w.segset)],
    output:
        directory("results/{root}/seed{seed}/refined/{fusion}/{segset}/{refine}"),
    log:
        "logs/refine/{root}/seed{seed}/{fusion}/{segset}/{refine}.log",
    benchmark:
        "logs/benchmarks/refine/{root}/seed{seed}/{fusion}/{segset}/{refine}.tsv"
    conda:
        "../envs/weakloc.yaml"
    params:
        cfg=refine_config,
        shard="",  # "--shard I/N" in the sharded copy of this rule (shards.smk)
    shell:
        "weakloc refine --fused {input.fused} --cams {input.cams} --segments {input.segments}"
        " --out {output} --config-json {params.cfg:q} {params.shard} > {log} 2>&1"
