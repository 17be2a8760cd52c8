# WCBnet: training on image-level labels, then image-level detection on the test and holdout splits.


rule train:
    input:
        data=lambda w: f"data/prepared/{root_dataset(w.root)}",
    output:
        ckpt="checkpoints/{root}/seed{seed}/wcbnet.pt",
        curve="checkpoints/{root}/seed{seed}/train_log.csv",
    log:
        "logs/train/{root}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/train/{root}/seed{seed}.tsv"
    wildcard_constraints:
        root=WILDCARDS["trained_root"],  # a student's root (dataset/st<r>): rule self_train
    conda:
        "../envs/weakloc.yaml"
    threads: workflow.cores
    params:
        # the localization sections are stored in the checkpoint (weakloc localize's defaults); a change
        # of them reruns this job, which resumes the finished run and rewrites only the checkpoint
        cfg=lambda w: root_config(w.root, "sel", "model", "train", *PIPELINE_SECTIONS),
    shell:
        "OMP_NUM_THREADS={threads} weakloc train --manifest {input.data}/manifest.csv --seed {wildcards.seed}"
        " --out {output.ckpt} --log {output.curve} --config-json {params.cfg:q} > {log} 2>&1"


rule detect:
    input:
        data=lambda w: f"data/prepared/{root_dataset(w.root)}",
        ckpt=rules.train.output.ckpt,
    output:
        scores="results/{root}/seed{seed}/detect/scores.csv",
        metrics="results/{root}/seed{seed}/detect/metrics.json",
    log:
        "logs/detect/{root}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/detect/{root}/seed{seed}.tsv"
    conda:
        "../envs/weakloc.yaml"
    threads: workflow.cores
    params:
        cfg=lambda w: sections(config, "train", "evaluate"),
    shell:
        "OMP_NUM_THREADS={threads} weakloc detect --manifest {input.data}/manifest.csv --split test holdout"
        " --checkpoint {input.ckpt} --scores {output.scores} --metrics {output.metrics}"
        " --config-json {params.cfg:q} > {log} 2>&1"


rule models:
    """Every checkpoint of the study (all seeds, SEL-ablation models and students too): the DVC `train` stage."""
    input:
        [f"checkpoints/{DATASET}/seed{s}/wcbnet.pt" for s in SEEDS],
        [f"checkpoints/{DATASET}/{sel}/seed{s}/wcbnet.pt" for s in SEEDS for sel in SEL_ABLATION],
        [f"checkpoints/{DATASET}/{st}/seed{s}/wcbnet.pt" for s in SEEDS for st in STUDENTS],
