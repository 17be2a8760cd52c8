# Localization: per-block maps, their fusion, the segmentation cache and Bayesian refinement.


rule cams:
    input:
        data=lambda w: f"data/prepared/{root_dataset(w.root)}",
        ckpt=rules.train.output.ckpt,
    output:
        directory("results/{root}/seed{seed}/cams"),
    params:
        cfg=lambda w: sections(config, "cams"),
    threads: workflow.cores
    log:
        "logs/cams/{root}/seed{seed}.log",
    shell:
        "OMP_NUM_THREADS={threads} weakloc cams --manifest {input.data}/manifest.csv --split test"
        " --checkpoint {input.ckpt} --out {output} --config-json {params.cfg:q} > {log} 2>&1"


rule fuse:
    input:
        cams=rules.cams.output,
    output:
        directory("results/{root}/seed{seed}/fused/{fusion}"),
    params:
        cfg=lambda w: sections(config, "fusion"),
    log:
        "logs/fuse/{root}/seed{seed}/{fusion}.log",
    shell:
        "weakloc fuse --cams {input.cams} --method {wildcards.fusion} --out {output}"
        " --config-json {params.cfg:q} > {log} 2>&1"


rule fetch_mobile_sam:
    output:
        "weights/mobile_sam.pt",
    log:
        "logs/weights/mobile_sam.log",
    shell:
        "weakloc weights mobile-sam --out {output} > {log} 2>&1"


def segmenter_weights(w):
    sam = config["segmenters"]["sam"]
    if w.segmenter == "sam" and sam["checkpoint"] is None and sam["model_type"] == "vit_t":
        return rules.fetch_mobile_sam.output
    return []


rule segment:
    input:
        data=f"data/prepared/{DATASET}",
        weights=segmenter_weights,
    output:
        directory(f"results/{DATASET}/segments/{{segmenter}}/{{key}}"),
    params:
        cfg=lambda w: sections(config, "segmenters"),
    threads: 1
    log:
        f"logs/segment/{DATASET}/{{segmenter}}/{{key}}.log",
    shell:
        "OMP_NUM_THREADS={threads} weakloc segment --manifest {input.data}/manifest.csv --split test"
        " --segmenter {wildcards.segmenter} --out {output} --config-json {params.cfg:q} > {log} 2>&1"


def refine_config(w):
    """The refine section; a prior-strength variant sets a = b = strength."""
    cfg = dict(config["refine"])
    if w.refine.startswith("prior"):
        strength = float(w.refine[len("prior"):])
        cfg.update(prior_a=strength, prior_b=strength)
    return sections({"refine": cfg}, "refine")


rule refine:
    input:
        fused=rules.fuse.output,
        cams=rules.cams.output,
        segments=lambda w: [segment_dir(s) for s in segsets_members(w.segset)],
    output:
        directory("results/{root}/seed{seed}/refined/{fusion}/{segset}/{refine}"),
    params:
        cfg=refine_config,
    log:
        "logs/refine/{root}/seed{seed}/{fusion}/{segset}/{refine}.log",
    shell:
        "weakloc refine --fused {input.fused} --cams {input.cams} --segments {input.segments}"
        " --out {output} --config-json {params.cfg:q} > {log} 2>&1"
