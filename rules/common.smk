# Config validation, the model and dataset tables, target builders and code digests.
# Nothing here runs a step; it only decides which files exist and what they depend on.
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

from overspec.config import (
    IMPORT_FILES,
    biometric_table,
    check_config,
    finetune_recipe,
    import_settings,
    missing_biometric_data,
    missing_data,
    model_lineage,
    model_table,
    recipe_resources,
)
from overspec.data.biometric.benchmarks import TOY_WORLD_DIR, TOY_WORLD_JSON, benchmark_files, benchmarks_of
from overspec.data.registry import get_dataset
from overspec.devices import announce_gpu_limit
from overspec.errors import UserError
from overspec.models.architectures import TRANSFORMERS_PREFIX
from overspec.provenance import code_digest

SCHEMA = Path(workflow.basedir) / "schemas" / "config.schema.yaml"

try:
    check_config(config, SCHEMA)  # one-sentence errors for typos, wrong types and unknown names
except UserError as error:
    raise WorkflowError(str(error)) from None
validate(config, "../schemas/config.schema.yaml")  # Snakemake's own check; fills the defaults

MODELS = model_table(config)
BIO = biometric_table(config)  # biometric benchmarks and training data: the toy world or real files

for line in missing_data(config):  # the DAG still builds; prepare_dataset stops on these when run
    logger.warning(f"Missing data for {line}")
for line in missing_biometric_data(config):  # the DAG still builds; the job that reads it stops
    logger.warning(f"Missing biometric data for {line}")
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
        "upstream": upstream_digests,  # see model_digests()
    }


def model_digests():
    """Every model's digest file.

    snakemake 9.27.1 cuts off only the *direct* dependants of a checkpoint whose output bytes did
    not change; jobs further down keep the "updated by another job" reason of the first plan and run
    anyway (tests/test_recompute.py pins it). So every job below a model lists the digest files of
    all models it is made from: model consumers their model's (model_inputs), evaluations theirs
    (lineage_digests), the tables, the audit and `all` every model's.
    """
    return expand("results/models/{model}/model.sha256", model=MODELS)


def upstream_digests(wildcards):
    """Digest files of the models a model is made from (a fine-tune's base; a WiSE-FT model's
    baseline and fine-tune), nearest first (overspec.config.model_lineage)."""
    return [f"results/models/{model}/model.sha256" for model in model_lineage(MODELS, wildcards.model)]


def lineage_digests(wildcards):
    """A model's digest file and those of the models it is made from."""
    return [f"results/models/{wildcards.model}/model.sha256"] + upstream_digests(wildcards)


def data_threads(wildcards):
    """Threads for a job that reads a dataset: image decoding workers for real data; one thread for
    toy data, whose jobs are start-up bound (two such jobs side by side beat one with two threads)."""
    return 1 if get_dataset(wildcards.dataset).is_toy else 8


def attack_list_threads(wildcards):
    """Threads for a MAD/PAD job: image-loading workers (threads - 1) for real lists, whose images are
    decoded and resized one by one; one thread for the toy world's small lists."""
    return 1 if BIO["source"] == "toy" else 8


def probe_datasets():
    return [d for d in GENERAL if get_dataset(d).probe_splits]


def general_results():
    zeroshot = expand("results/zeroshot/{model}/{dataset}.json", model=MODELS, dataset=GENERAL)
    probe = expand("results/linear_probe/{model}/{dataset}.json", model=MODELS, dataset=probe_datasets())
    return zeroshot + probe


def base_model_inputs():
    """A fine-tune's base (the baseline model of its backbone), as ancient() file plus digest."""
    return {
        "base": lambda w: ancient(f"results/models/{MODELS[w.model]['base']}/model.safetensors"),
        "base_digest": lambda w: f"results/models/{MODELS[w.model]['base']}/model.sha256",
    }


def present_or_toy(paths):
    """Input files of a biometric job: the toy world's world.json (made by prepare_biometric_world)
    stands for every toy file; real files count only once they exist, so the DAG builds without
    the data and the job that reads a missing file stops with its path."""
    toy = [TOY_WORLD_JSON] if any(str(p).startswith(f"{TOY_WORLD_DIR}/") for p in paths) else []
    real = [p for p in paths if not str(p).startswith(f"{TOY_WORLD_DIR}/") and Path(p).exists()]
    return toy + real


def train_inputs(wildcards):
    return present_or_toy([MODELS[wildcards.model]["train_data"]])


def import_inputs(wildcards):
    """An import's own files and folders (not a transformers:<id> from the Hugging Face cache)."""
    given = config["models"][wildcards.model]["import"]
    settings = import_settings(config, wildcards.model)
    return present_or_toy([settings[k] for k in IMPORT_FILES if k in given and not settings[k].startswith(TRANSFORMERS_PREFIX)])


def import_base_inputs(wildcards):
    """The baseline an adapter without a checkpoint is merged into: ancient() file plus digest."""
    base = MODELS[wildcards.model]["base"]
    return [] if base is None else [ancient(f"results/models/{base}/model.safetensors"), f"results/models/{base}/model.sha256"]


def biometric_inputs(wildcards):
    """The files one IJB or attack-detection job reads (see benchmark_files)."""
    task = wildcards.get("task", "fr")
    return present_or_toy(benchmark_files(BIO, task, wildcards.benchmark))


def pair_set_inputs():
    return present_or_toy([BIO["fr"]["pairs"][name] for name in sorted(BIO["fr"]["pairs"])])


def attack_settings(wildcards):
    """Train list, test lists (MAD: one per morphing method; PAD: this benchmark's) and dev list."""
    if wildcards.task == "mad":
        return {"train": BIO["mad"]["train"], "tests": BIO["mad"]["tests"], "dev": None}
    return {"train": BIO["pad"]["train"], "tests": {wildcards.benchmark: BIO["pad"]["tests"][wildcards.benchmark]},
            "dev": BIO["pad"]["dev"]}


def biometric_results():
    """Every model on every benchmark of every evaluated biometric task."""
    return [f"results/biometrics/{model}/{task}/{benchmark}.json"
            for model in MODELS for task in BIO["tasks"] for benchmark in benchmarks_of(BIO, task)]


def study_results():
    return general_results() + biometric_results()


def study_targets():
    """The long tables, the report's tables, figures and summary (report_outputs() in
    rules/report.smk, included before anything calls this) and the audit manifest."""
    return [
        "results/tables/metrics.csv",
        "results/tables/gelo.csv",
        "results/tables/metrics.md",
        "results/tables/gelo.md",
        *report_outputs(),
        *analysis_targets(),  # rules/analysis.smk: the analyses switched on in `analyses`
        *WISEFT_TARGETS,  # rules/wiseft.smk: the WiSE-FT curves when analyses.wiseft is on
        *MITIGATION_TARGETS,  # rules/mitigation.smk: the remedies' table when analyses.mitigation is on
        "results/audit/manifest.json",
    ]
