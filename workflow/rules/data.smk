# Datasets: download (public sets), the photo pool, and preparation into images/, masks/ and manifest.csv.


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


rule photo_pool:
    output:
        directory("data/photos/debian"),
    log:
        "logs/photo_pool.log",
    conda:
        "../envs/weakloc.yaml"
    params:
        # the pool is fixed by the pins in weakloc.datasets.photo_pool; only where the .deb files come from varies
        deb_dir=lambda w: (
            f"--deb-dir {config['dataset']['synthetic']['deb_dir']}"
            if config["dataset"]["synthetic"]["deb_dir"]
            else ""
        ),
    shell:
        "weakloc data photos --out {output} {params.deb_dir} > {log} 2>&1"


rule prepare:
    input:
        raw=lambda w: f"data/raw/{w.dataset}" if dataset_section(w.dataset)["name"] in DOWNLOADED else [],
        # dataset.synthetic.photos_dir: the user's photographs are an input of the synthetic set
        photos=lambda w: (
            (dataset_section(w.dataset)["synthetic"].get("photos_dir") or [])
            if dataset_section(w.dataset)["name"] == "synthetic"
            else []
        ),
        # dataset.synthetic.photos: debian builds the forgeries from the photo pool
        pool=lambda w: (
            rules.photo_pool.output[0]
            if dataset_section(w.dataset)["name"] == "synthetic"
            and dataset_section(w.dataset)["synthetic"]["photos"] == "debian"
            and not dataset_section(w.dataset)["synthetic"].get("photos_dir")
            else []
        ),
    output:
        directory(layout.prepared_dir("{dataset}")),
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
        pool=lambda w, input: f"--photo-pool {input.pool}" if input.pool else "",
    shell:
        "weakloc data prepare --config-json {params.cfg:q} --out {output} {params.raw} {params.pool} > {log} 2>&1"
