# Biometric benchmarks: the toy world's files, and every model on every FR, MAD and PAD benchmark
# (one job per model for the pair sets, per model and benchmark otherwise).


rule prepare_biometric_world:
    output:
        world="results/data/toy_biometrics/world.json",
    params:
        seed=SEED,
        image_size=config["toy"]["image_size"],
        sizes=config["biometrics"]["toy_sizes"],
        code=code("prepare_biometric_world"),
    log:
        "logs/prepare_biometric_world/toy_biometrics.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/prepare_biometric_world.py"


if "fr" in BIO["tasks"] and BIO["fr"]["pairs"]:

    rule eval_face_verification:
        input:
            **model_inputs(),
            data=pair_set_inputs(),
        output:
            json=expand("results/biometrics/{{model}}/fr/{benchmark}.json", benchmark=sorted(BIO["fr"]["pairs"])),
            scores=expand(
                "results/biometrics/{{model}}/fr/{benchmark}.scores.csv", benchmark=sorted(BIO["fr"]["pairs"])
            ),
        params:
            pair_sets=BIO["fr"]["pairs"],
            batch_size=config["biometrics"]["batch_size"],
            code=code("eval_face_verification"),
        log:
            "logs/eval_face_verification/{model}.log",
        benchmark:
            "results/benchmarks/eval_face_verification/{model}.tsv"
        threads: 1
        resources:
            gpu=1,
            mem_mb=8000,
            runtime=120,
        conda:
            "../envs/overspec.yaml"
        script:
            "../workflow_scripts/eval_face_verification.py"


rule eval_ijb:
    input:
        **model_inputs(),
        data=biometric_inputs,
    output:
        json="results/biometrics/{model}/fr/{benchmark}.json",
        scores="results/biometrics/{model}/fr/{benchmark}.scores.csv.gz",
    wildcard_constraints:
        benchmark=alternatives(BIO["fr"]["ijb"]),
    params:
        ijb=lambda w: BIO["fr"]["ijb"][w.benchmark],
        world=BIO["world"],
        batch_size=config["biometrics"]["batch_size"],
        code=code("eval_ijb"),
    log:
        "logs/eval_ijb/{model}/{benchmark}.log",
    benchmark:
        "results/benchmarks/eval_ijb/{model}/{benchmark}.tsv"
    threads: 1
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=720,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/eval_ijb.py"


rule eval_attack_detection:
    input:
        **model_inputs(),
        data=biometric_inputs,
    output:
        json="results/biometrics/{model}/{task}/{benchmark}.json",
        scores="results/biometrics/{model}/{task}/{benchmark}.scores.csv",
    wildcard_constraints:
        task="mad|pad",
        benchmark=alternatives(benchmarks_of(BIO, "mad") + benchmarks_of(BIO, "pad")),
    params:
        lists=attack_settings,
        adaptation=lambda w: MODELS[w.model]["adaptation"],
        batch_size=config["biometrics"]["batch_size"],
        probe_c=config["biometrics"]["probe_c"],
        code=code("eval_attack_detection"),
    log:
        "logs/eval_attack_detection/{model}/{task}/{benchmark}.log",
    benchmark:
        "results/benchmarks/eval_attack_detection/{model}/{task}/{benchmark}.tsv"
    threads: attack_list_threads
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=120,
    conda:
        "../envs/overspec.yaml"
    script:
        "../workflow_scripts/eval_attack_detection.py"
