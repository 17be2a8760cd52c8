# Datasets: download (public sets) and preparation into images/, masks/ and manifest.csv.



rule download:
    output:
        directory("data/raw/{dataset}"),
    params:
        cfg=lambda w: sections(config, "dataset"),
    log:
        "logs/download/{dataset}.log",
    conda:
        "../envs/weakloc.yaml"
    shell:
        "weakloc data download {wildcards.dataset} --config-json {params.cfg:q} --out {output} > {log} 2>&1"


rule prepare:
    input:
        raw=lambda w: f"data/raw/{w.dataset}" if w.dataset in DOWNLOADED else [],
    output:
        directory("data/prepared/{dataset}"),
    params:
        cfg=lambda w: sections(config, "dataset"),
        raw=lambda w, input: f"--raw {input.raw}" if input.raw else "",
    log:
        "logs/prepare/{dataset}.log",
    conda:
        "../envs/weakloc.yaml"
    shell:
        "weakloc data prepare --config-json {params.cfg:q} --out {output} {params.raw} > {log} 2>&1"
