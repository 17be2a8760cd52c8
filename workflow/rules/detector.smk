# WCBnet: training on image-level labels, then image-level detection on the test and holdout splits.


rule train:
    input:
        data=prepared,
    output:
        ckpt=layout.checkpoint_file("{root}", "{seed}"),
        curve=layout.train_log_file("{root}", "{seed}"),
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
        data=prepared,
        ckpt=model_checkpoint,
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
        [layout.checkpoint_file(m, s) for m in [DATASET, *MODEL_ROOTS] for s in SEEDS],
