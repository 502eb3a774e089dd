"""The previous run's PAD models (results/ of commit 45ffc41's study) scored on the 400 + 400-video
toy PAD test set (a superset of the old 100 + 100): the same models, only more test videos."""
import sys, json, torch
from pathlib import Path
torch.set_num_threads(2)
from overspec.evaluate.biometric_jobs import eval_attack_detection
from overspec.analysis.task_gain import task_gain_table
old, world, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
pad = world / "pad"
paths = []
for model in ["clip-toy-s", "clip-toy-m", "clip-toy-s-pad", "clip-toy-m-pad"]:
    adaptation = "pad" if model.endswith("pad") else "none"
    p = out / model / "pad" / "toy_pad.json"; p.parent.mkdir(parents=True, exist_ok=True)
    r = eval_attack_detection(model, old / "models" / model / "model.safetensors", "pad", adaptation, "toy_pad",
                              pad / "train.csv", {"toy_pad": pad / "test.csv"}, p, dev_list=pad / "dev.csv")
    print(model, "HTER", r["hter"], "AUC", r["auc"], "videos", r["n_videos"])
    paths.append(p)
models = {"clip-toy-s-pad": {"backbone_label": "toy-S", "adaptation": "pad"}, "clip-toy-m-pad": {"backbone_label": "toy-M", "adaptation": "pad"},
          "clip-toy-s": {"backbone_label": "toy-S", "adaptation": "none"}, "clip-toy-m": {"backbone_label": "toy-M", "adaptation": "none"}}
t = task_gain_table(paths, {"clip-toy-s-pad": "clip-toy-s", "clip-toy-m-pad": "clip-toy-m"}, models, resamples=1000, seed=0)
print(t.to_string())
t.to_csv(out / "task_gain.csv", index=False)
