"""Quick strength check outside the workflow: toy-fr variants on one toy backbone -> FR pair accuracy and zero-shot GELO."""
import json, sys, time
from pathlib import Path
import numpy as np, torch, yaml
torch.set_num_threads(1)
from overspec.train.finetune import finetune
from overspec.train.recipe import FinetuneConfig
from overspec.evaluate.biometric_jobs import eval_pair_sets
from overspec.embed.images import embed_dataset
from overspec.embed.text import embed_classnames
from overspec.evaluate.general import evaluate_zeroshot

R = Path("/work/main/results"); OUT = Path("/tmp/x/probe")
backbone = sys.argv[1]; variants = json.loads(sys.argv[2])
base = R / f"models/clip-toy-{backbone}/model.safetensors"
recipe = yaml.safe_load(open("/work/i19/config.yaml"))["recipes"]["toy-fr"]; recipe.pop("resources"); recipe["task"] = "fr"
DATA = ["toy_colours", "toy_shapes", "toy_textures", "toy_counting", "toy_digits"]

def zs(model_path, tag):
    accs = []
    for d in DATA:
        e, t = OUT / f"{tag}-{d}.h5", OUT / f"{tag}-{d}-text.h5"
        man = R / f"data/{d}/manifest.json"
        if not e.exists():
            embed_dataset(model_path, man, e)
            embed_classnames(model_path, man, t)
        m, _ = evaluate_zeroshot(e, t, "top1", bootstrap_resamples=1)
        accs.append(m["top1"] if "top1" in m else m["primary"])
    return float(np.mean(accs))

def pairs(model_path, tag):
    out = eval_pair_sets(tag, model_path, {"toy_pairs": R / "data/toy_biometrics/pairs/toy_pairs.bin"}, {"toy_pairs": OUT / f"{tag}-pairs.json"})
    return out["toy_pairs"]["accuracy"]

t0 = time.time()
b_zs, b_acc = zs(base, f"base-{backbone}"), pairs(base, f"base-{backbone}")
print(f"{backbone} baseline zs {b_zs:.4f} acc {b_acc:.4f}", flush=True)
for name, change in variants.items():
    tag = f"{backbone}-{name}"; path = OUT / f"{tag}.safetensors"
    card = finetune(FinetuneConfig.from_dict({**recipe, **change}), base, R / "data/toy_biometrics/fr_train", path, OUT / f"{tag}.csv", progress=False)
    z, a = zs(path, tag), pairs(path, tag)
    print(f"{backbone} {name}: gain {100*(a-b_acc):+.2f} pp  zsGELO {z/b_zs:.3f}  dist {card['training'].get('l2sp',{}).get('distance_sq')}  t={time.time()-t0:.0f}s", flush=True)
