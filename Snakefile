# weakloc: weakly-supervised localization of manipulated image regions (WSWCBnet reconstruction).
#
#   snakemake --cores all                                  the embedded default study (config.yaml)
#   snakemake --cores all --configfile configs/public.yaml configs/casia2.yaml   the paper's dataset
#   snakemake --report report.html                         browsable report of tables and figures
#
# Rules are thin: each calls one `weakloc` command. Paths: docs/architecture.md.

from snakemake.utils import min_version

min_version("8.20")


configfile: "config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/detector.smk"
include: "workflow/rules/selftrain.smk"
include: "workflow/rules/localization.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/shards.smk"
include: "workflow/rules/protocol.smk"


rule all:
    default_target: True
    input:
        final_targets(),
