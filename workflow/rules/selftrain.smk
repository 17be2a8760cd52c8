# Self-training (weakloc.selftrain, docs/selftrain.md): round r's pseudo-masks of the train split from
# its teacher, then the student fine-tuned on them; the student's maps come from the usual steps under
# the root <dataset>/st<r>.


rule pseudo_masks:
    input:
        data=layout.prepared_dir("{dataset}"),
        ckpt=teacher_checkpoint,
    output:
        directory("checkpoints/{dataset}/st{round}/seed{seed}/pseudo"),
    log:
        "logs/pseudo_masks/{dataset}/st{round}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/pseudo_masks/{dataset}/st{round}/seed{seed}.tsv"
    conda:
        "../envs/weakloc.yaml"
    threads: workflow.cores
    params:
        cfg=lambda w: sections(config, "cams", "fusion", "segmenters", "refine", "localize", "selftrain"),
    shell:
        "OMP_NUM_THREADS={threads} weakloc pseudo-masks --manifest {input.data}/manifest.csv --checkpoint {input.ckpt}"
        " --seed {wildcards.seed} --out {output} --config-json {params.cfg:q} > {log} 2>&1"


rule self_train:
    input:
        data=layout.prepared_dir("{dataset}"),
        ckpt=teacher_checkpoint,
        pseudo=rules.pseudo_masks.output,
    output:
        ckpt=layout.checkpoint_file("{dataset}/st{round}", "{seed}"),
        curve=layout.train_log_file("{dataset}/st{round}", "{seed}"),
    log:
        "logs/self_train/{dataset}/st{round}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/self_train/{dataset}/st{round}/seed{seed}.tsv"
    conda:
        "../envs/weakloc.yaml"
    threads: workflow.cores
    params:
        cfg=lambda w: sections(config, "sel", "model", "train", "selftrain"),
    shell:
        "OMP_NUM_THREADS={threads} weakloc self-train --manifest {input.data}/manifest.csv --teacher {input.ckpt}"
        " --pseudo {input.pseudo} --seed {wildcards.seed} --out {output.ckpt} --log {output.curve}"
        " --config-json {params.cfg:q} > {log} 2>&1"
