"""benchmarks/finetune_throughput.py at its smallest: the three paths run through the real loop and
report consistent figures (speed itself is measured by the benchmark, never asserted here)."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from _finetune_fixtures import _one_torch_thread, register_tiny_arch  # noqa: F401

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "finetune_throughput.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("finetune_throughput", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_reports_the_loop_against_both_references(bench, tmp_path, capsys):
    arch = register_tiny_arch()
    saved = tmp_path / "results" / "ft.json"
    result = bench.main(["--quick", "--arch", arch, "--identities", "40", "--images", "64", "--distinct", "4",
                         "--batch-size", "8", "--warmup", "1", "--steps", "2", "--data-images", "3",
                         "--save", str(saved)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert json.loads(lines[-1]) == json.loads(saved.read_text()) == json.loads(json.dumps(result))
    assert result["command"].endswith(f"--save {saved}") and result["versions"]["torch"] == torch.__version__
    (case,) = result["cases"]
    # the paper config's FR recipe, as read from configs/paper.yaml: LoRA r16 on q,v and CosFace
    assert (case["model"], case["recipe"], case["lora_r"], case["head"]) == ("clip-vit-b16-fr", "froundation", 16, "cosface")
    assert case["classes"] == 40 and case["records"] == 64 and case["batch_per_device"] == 8 and case["workers"] == 1
    for path in ("ceiling", "device_loop", "loop"):
        assert case[path]["images_per_s"] > 0
        assert case[path]["images_per_s"] == pytest.approx(8e3 / case[path]["ms_per_step"])
    assert 0 <= case["loop"]["data_wait_share"] < 1 and case["device_loop"]["data_wait_ms_per_step"] < 50
    assert case["loop_vs_ceiling"] == pytest.approx(case["loop"]["images_per_s"] / case["ceiling"]["images_per_s"])
    stages = case["data_path_ms_per_image"]
    assert {"read", "decode", "RandAugment", "pil_to_hwc"} <= set(stages)  # the recipe's RandAugment is on
    assert stages["total"] == pytest.approx(sum(v for k, v in stages.items() if k != "total"))
    assert any(line.startswith("  loop ") for line in lines)


def test_timed_batches_count_the_window_after_warm_up(bench):
    timed = bench.TimedBatches(lambda plan: iter([(torch.zeros(2), torch.zeros(2))] * 4), torch.device("cpu"), warmup=1)
    assert len(list(timed(None))) == 4
    assert len(timed.asked) == 5 and len(timed.waits) == 4  # one request per step, plus the one that ends it
    figures = timed.figures(batch_size=2)
    wall, cpu = timed.asked[-1] - timed.asked[1]
    assert figures["images_per_s"] == pytest.approx(3 * 2 / wall)
    assert figures["host_cpu_ms_per_step"] == pytest.approx(1e3 * cpu / 3)
    assert figures["data_wait_share"] == pytest.approx(sum(timed.waits[1:]) / wall)


def test_models_not_in_the_config_are_named(bench):
    config = {"backbones": {"B": {"arch": "ViT-B-16"}}, "recipes": {"r": {"task": "fr"}},
              "models": {"base": {"backbone": "B"}, "tuned": {"backbone": "B", "adaptation": "fr", "recipe": "r"}}}
    assert [c["model"] for c in bench.cases_of(config, None)] == ["tuned"]
    with pytest.raises(SystemExit, match=r"\['base'\] are not fine-tuned models"):
        bench.cases_of(config, ["base"])



def test_a_case_out_of_gpu_memory_is_reported_and_the_rest_still_run(bench, monkeypatch, tmp_path, capsys):
    def runs_out(case, *args):
        if case["model"] == "clip-vit-l14-fr":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return {"model": case["model"]}

    monkeypatch.setattr(bench, "run_case", runs_out)
    monkeypatch.setattr(bench, "describe", lambda outcome: [f"{outcome['model']} measured"])
    result = bench.main(["--models", "clip-vit-l14-fr", "clip-vit-b16-fr", "--save", str(tmp_path / "r.json")])
    assert [c["model"] for c in result["cases"]] == ["clip-vit-l14-fr", "clip-vit-b16-fr"]
    assert result["cases"][0]["error"].startswith("out of memory") and "error" not in result["cases"][1]
    out = capsys.readouterr().out
    assert "clip-vit-l14-fr: out of memory at this batch size" in out and "clip-vit-b16-fr measured" in out
    assert json.loads((tmp_path / "r.json").read_text()) == result
