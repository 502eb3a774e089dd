# Config validation, the model and dataset tables, target builders and code digests.
# Nothing here runs a step; it only decides which files exist and what they depend on.
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

from overspec.config import check_config, missing_data, model_table
from overspec.data.registry import get_dataset
from overspec.devices import announce_gpu_limit
from overspec.errors import UserError
from overspec.provenance import code_digest

SCHEMA = Path(workflow.basedir) / "schemas" / "config.schema.yaml"

try:
    check_config(config, SCHEMA)  # one-sentence errors for typos, wrong types and unknown names
except UserError as error:
    raise WorkflowError(str(error)) from None
validate(config, "../schemas/config.schema.yaml")  # Snakemake's own check; fills the defaults

MODELS = model_table(config)

for line in missing_data(config):  # the DAG still builds; prepare_dataset stops on these when run
    logger.warning(f"Missing data for {line}")
GENERAL = config["datasets"]["general"]
SEED = config["seed"]
EVAL = config["evaluation"]


def models_where(**wanted):
    return [m for m, row in MODELS.items() if all(row[k] == v for k, v in wanted.items())]


def alternatives(names):
    """A wildcard constraint matching exactly these names (never-matching when empty)."""
    return "|".join(sorted(names)) if names else "(?!x)x"


wildcard_constraints:
    model=alternatives(MODELS),
    dataset=alternatives(set(GENERAL) | {"toy_corpus"}),


def code(rule_name):
    """Content digest of a rule's script and the overspec modules it imports (see DESIGN: a touched
    file reruns nothing, an edited one reruns its rules)."""
    return code_digest(Path(workflow.basedir) / "workflow_scripts" / f"{rule_name}.py")


# Snakemake only counts `gpu`; jobs lease devices themselves and warn when no limit was given.
announce_gpu_limit(workflow.global_resources.get("gpu"))


def model_file(wildcards):
    return f"results/models/{wildcards.model}/model.safetensors"


def model_inputs():
    """Every consumer of a model takes the file as ancient() plus its digest (the digest_model
    checkpoint): identical bytes rewritten recompute nothing, changed bytes recompute everything."""
    return {
        "model": ancient("results/models/{model}/model.safetensors"),
        "digest": "results/models/{model}/model.sha256",
    }


def probe_datasets():
    return [d for d in GENERAL if get_dataset(d).probe_splits]


def general_results():
    zeroshot = expand("results/zeroshot/{model}/{dataset}.json", model=MODELS, dataset=GENERAL)
    probe = expand("results/linear_probe/{model}/{dataset}.json", model=MODELS, dataset=probe_datasets())
    return zeroshot + probe


def study_targets():
    return [
        "results/tables/metrics.csv",
        "results/tables/gelo.csv",
        "results/tables/metrics.md",
        "results/tables/gelo.md",
    ]
