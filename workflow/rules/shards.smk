# Shards (config `shards`, docs/cluster.md): with shards.count = N > 1 each sharded per-image
# step runs as N jobs, `<rule>_shard` (the rule itself with `--shard I/N` and its own output
# folder under .../shards/), and one `<rule>_merge` job that builds the folder the unsharded
# rule would have written (`weakloc shards merge`). Files are identical for every N, so is
# everything downstream. With N = 1 (the default) none of this exists. SHARDED, shard_option
# and shard_folders: common.smk.


wildcard_constraints:
    shard=WILDCARDS["shard"],


MERGE = "weakloc shards merge {input:q} --out {output} > {log} 2>&1"

if "segment" in SHARDED:

    use rule segment as segment_shard with:
        output:
            temp(directory(f"results/{DATASET}/shards/segments/{{segmenter}}/{{key}}/{{shard}}")),
        log:
            f"logs/segment/{DATASET}/{{segmenter}}/{{key}}/{{shard}}.log",
        benchmark:
            f"logs/benchmarks/segment_shard/{DATASET}/{{segmenter}}/{{key}}/{{shard}}.tsv"
        params:
            shard=shard_option,

    rule segment_merge:
        input:
            shard_folders(f"results/{DATASET}/shards/segments/{{segmenter}}/{{key}}/{{shard}}"),
        output:
            directory(f"results/{DATASET}/segments/{{segmenter}}/{{key}}"),
        log:
            f"logs/segment/{DATASET}/{{segmenter}}/{{key}}/merge.log",
        conda:
            "../envs/weakloc.yaml"
        shell:
            MERGE

    ruleorder: segment_merge > segment


if "cams" in SHARDED:

    use rule cams as cams_shard with:
        output:
            temp(directory("results/{root}/seed{seed}/shards/cams/{shard}")),
        log:
            "logs/cams/{root}/seed{seed}/{shard}.log",
        benchmark:
            "logs/benchmarks/cams_shard/{root}/seed{seed}/{shard}.tsv"
        params:
            shard=shard_option,

    rule cams_merge:
        input:
            shard_folders("results/{root}/seed{seed}/shards/cams/{shard}"),
        output:
            directory("results/{root}/seed{seed}/cams"),
        log:
            "logs/cams/{root}/seed{seed}/merge.log",
        conda:
            "../envs/weakloc.yaml"
        shell:
            MERGE

    ruleorder: cams_merge > cams


if "baseline" in SHARDED:

    use rule baseline as baseline_shard with:
        output:
            temp(directory(f"results/{DATASET}/shards/baselines/{{baseline}}/{{shard}}")),
        log:
            f"logs/baseline/{DATASET}/{{baseline}}/{{shard}}.log",
        benchmark:
            f"logs/benchmarks/baseline_shard/{DATASET}/{{baseline}}/{{shard}}.tsv"
        params:
            shard=shard_option,

    rule baseline_merge:
        input:
            shard_folders(f"results/{DATASET}/shards/baselines/{{baseline}}/{{shard}}"),
        output:
            directory(f"results/{DATASET}/baselines/{{baseline}}"),
        log:
            f"logs/baseline/{DATASET}/{{baseline}}/merge.log",
        conda:
            "../envs/weakloc.yaml"
        shell:
            MERGE

    ruleorder: baseline_merge > baseline


if "fuse" in SHARDED:

    use rule fuse as fuse_shard with:
        output:
            temp(directory("results/{root}/seed{seed}/shards/fused/{fusion}/{shard}")),
        log:
            "logs/fuse/{root}/seed{seed}/{fusion}/{shard}.log",
        benchmark:
            "logs/benchmarks/fuse_shard/{root}/seed{seed}/{fusion}/{shard}.tsv"
        params:
            shard=shard_option,

    rule fuse_merge:
        input:
            shard_folders("results/{root}/seed{seed}/shards/fused/{fusion}/{shard}"),
        output:
            directory("results/{root}/seed{seed}/fused/{fusion}"),
        log:
            "logs/fuse/{root}/seed{seed}/{fusion}/merge.log",
        conda:
            "../envs/weakloc.yaml"
        shell:
            MERGE

    ruleorder: fuse_merge > fuse


if "refine" in SHARDED:

    use rule refine as refine_shard with:
        output:
            temp(directory("results/{root}/seed{seed}/shards/refined/{fusion}/{segset}/{refine}/{shard}")),
        log:
            "logs/refine/{root}/seed{seed}/{fusion}/{segset}/{refine}/{shard}.log",
        benchmark:
            "logs/benchmarks/refine_shard/{root}/seed{seed}/{fusion}/{segset}/{refine}/{shard}.tsv"
        params:
            shard=shard_option,

    rule refine_merge:
        input:
            shard_folders("results/{root}/seed{seed}/shards/refined/{fusion}/{segset}/{refine}/{shard}"),
        output:
            directory("results/{root}/seed{seed}/refined/{fusion}/{segset}/{refine}"),
        log:
            "logs/refine/{root}/seed{seed}/{fusion}/{segset}/{refine}/merge.log",
        conda:
            "../envs/weakloc.yaml"
        shell:
            MERGE

    ruleorder: refine_merge > refine
