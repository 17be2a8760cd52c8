# Datasets: download (public sets) and preparation into images/, masks/ and manifest.csv.


rule download:
    output:
        directory("data/raw/{dataset}"),
    log:
        "logs/download/{dataset}.log",
    conda:
        "../envs/weakloc.yaml"
    params:
        cfg=lambda w: sections({"dataset": dataset_section(w.dataset)}, "dataset"),
    shell:
        "weakloc data download {wildcards.dataset} --config-json {params.cfg:q} --out {output} > {log} 2>&1"


rule prepare:
    input:
        raw=lambda w: f"data/raw/{w.dataset}" if dataset_section(w.dataset)["name"] in DOWNLOADED else [],
        # dataset.synthetic.photos_dir: the user's photographs are an input of the synthetic set
        photos=lambda w: (
            (dataset_section(w.dataset)["synthetic"].get("photos_dir") or [])
            if dataset_section(w.dataset)["name"] == "synthetic"
            else []
        ),
    output:
        directory("data/prepared/{dataset}"),
    log:
        "logs/prepare/{dataset}.log",
    benchmark:
        "logs/benchmarks/prepare/{dataset}.tsv"
    conda:
        "../envs/weakloc.yaml"
    params:
        # the training set's section, or a cross_dataset.datasets entry's (common.smk, dataset_section)
        cfg=lambda w: sections({"dataset": dataset_section(w.dataset)}, "dataset"),
        raw=lambda w, input: f"--raw {input.raw}" if input.raw else "",
    shell:
        "weakloc data prepare --config-json {params.cfg:q} --out {output} {params.raw} > {log} 2>&1"
