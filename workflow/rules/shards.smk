# Shards (config `shards`, docs/cluster.md): with shards.count = N > 1 each sharded per-image
# step runs as N jobs, `<rule>_shard` (the rule itself with `--shard I/N`, writing
# results/{root}/shards/<its folder>/I-of-N), and one `<rule>_merge` job that builds the folder the
# unsharded rule would have written (`weakloc shards merge`). Files are identical for every N, so
# is everything downstream, for every study root (evaluation sets included). With N = 1 (the
# default) none of this exists. SHARDED, shard_folder, shard_file, shard_folders: common.smk.


wildcard_constraints:
    shard=WILDCARDS["shard"],


if "segment" in SHARDED:

    use rule segment as segment_shard with:
        output:
            temp(directory(shard_folder(rules.segment))),
        log:
            shard_file(rules.segment.log[0]),
        benchmark:
            shard_file(rules.segment.benchmark)
        params:
            shard=shard_option,


if "cams" in SHARDED:

    use rule cams as cams_shard with:
        output:
            temp(directory(shard_folder(rules.cams))),
        log:
            shard_file(rules.cams.log[0]),
        benchmark:
            shard_file(rules.cams.benchmark)
        params:
            shard=shard_option,


if "baseline" in SHARDED:

    use rule baseline as baseline_shard with:
        output:
            temp(directory(shard_folder(rules.baseline))),
        log:
            shard_file(rules.baseline.log[0]),
        benchmark:
            shard_file(rules.baseline.benchmark)
        params:
            shard=shard_option,


if "fuse" in SHARDED:

    use rule fuse as fuse_shard with:
        output:
            temp(directory(shard_folder(rules.fuse))),
        log:
            shard_file(rules.fuse.log[0]),
        benchmark:
            shard_file(rules.fuse.benchmark)
        params:
            shard=shard_option,


if "refine" in SHARDED:

    use rule refine as refine_shard with:
        output:
            temp(directory(shard_folder(rules.refine))),
        log:
            shard_file(rules.refine.log[0]),
        benchmark:
            shard_file(rules.refine.benchmark)
        params:
            shard=shard_option,


for _step in sorted(SHARDED):

    rule:
        name:
            f"{_step}_merge"
        input:
            shard_folders(getattr(rules, _step)),
        output:
            directory(str(getattr(rules, _step).output[0])),
        log:
            shard_file(getattr(rules, _step).log[0], "merge"),
        wildcard_constraints:
            root=WILDCARDS["data_root" if _step in ("segment", "baseline") else "root"],
        conda:
            "../envs/weakloc.yaml"
        shell:
            "weakloc shards merge {input:q} --out {output} > {log} 2>&1"

    workflow.ruleorder(f"{_step}_merge", _step)
