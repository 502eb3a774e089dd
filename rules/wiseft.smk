# WiSE-FT (analyses.wiseft): models interpolated between a baseline and its fine-tune, each an
# ordinary model of the study (its own digest, embeddings and evaluations), and the trade-off
# curve of each fine-tune's biometric score against its GELO.
from overspec.config import wiseft_curves, wiseft_settings

WISEFT = wiseft_settings(config)
WISEFT_CURVES = wiseft_curves(config)
WISEFT_OUTPUTS = {ext: f"results/analysis/wiseft/curve.{ext}" for ext in ("csv", "md", "png", "svg")}
WISEFT_TARGETS = list(WISEFT_OUTPUTS.values()) if WISEFT_CURVES else []  # in study_targets() (common.smk)


rule interpolate_model:
    input:
        **base_model_inputs(),
        finetuned=lambda w: ancient(f"results/models/{MODELS[w.model]['finetune']}/model.safetensors"),
        finetuned_digest=lambda w: f"results/models/{MODELS[w.model]['finetune']}/model.sha256",
    output:
        model="results/models/{model}/model.safetensors",
    wildcard_constraints:
        model=alternatives(models_where(made_by="interpolate_model")),
    params:
        alpha=lambda w: MODELS[w.model]["alpha"],
        base=lambda w: MODELS[w.model]["base"],
        finetune=lambda w: MODELS[w.model]["finetune"],
        code=code("interpolate_model"),
    log:
        "logs/interpolate_model/{model}.log",
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/interpolate_model.py"


rule wiseft_curve:
    input:
        metrics="results/tables/metrics.csv",
        gelo="results/tables/gelo.csv",
    output:
        **WISEFT_OUTPUTS,
    params:
        curves=WISEFT_CURVES,
        min_gelo=WISEFT["min_gelo"],
        code=code("wiseft_curve"),
    log:
        "logs/wiseft_curve/wiseft_curve.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/wiseft_curve.py"
