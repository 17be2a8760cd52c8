"""Fixtures shared by the test modules: the smoke study, run once per session."""

import pytest

from project import copy_project, snakemake


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """The smoke study (configs/smoke.yaml) run once, end to end, in a copy of a fresh clone."""
    proj = copy_project(tmp_path_factory.mktemp("smoke"))
    snakemake("--cores", "2", "--configfile", "configs/smoke.yaml", cwd=proj)
    return proj

