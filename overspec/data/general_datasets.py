"""The real general-vision datasets: the paper's 14 and the other common CLIP benchmarks.

Class names and templates come from package data (`prompts/general.json`, OpenAI's published prompt
sets). Splits are fixed: official splits where a dataset has them; otherwise carved per class with
seed `SPLIT_SEED` by `overspec.data.splits` (the plan of each entry says how, and `overspec
datasets` prints it). A linear probe picks C on val, refits on train + val and scores test.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from overspec.data.class_names import names_in_identifier_order
from overspec.data.spec import DatasetSpec
from overspec.data.splits import SplitPlan

SPLIT_SEED = 0
MEAN_PER_CLASS = "mean_per_class_recall"  # CLIP Table 9's "mean per class" metric

VAL_NOTE = ("val is 10% of each class of the official training split (VTAB's 90/10 convention; CLIP tuned C on a "
            "held-out part of train where a dataset has no validation split)")


@lru_cache(maxsize=1)
def prompt_sets() -> dict[str, dict]:
    """Class names, templates, reader class identifiers and aliases per dataset, from `prompts/general.json`."""
    text = resources.files("overspec.data").joinpath("prompts/general.json").read_text(encoding="utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def carve_val(source: str = "train", test: str = "test", val: int | float = 0.1, note: str = VAL_NOTE,
              group_pattern: str | None = None) -> SplitPlan:
    return SplitPlan(official={"test": test}, carve_from=source, carve=(("val", val), ("train", None)),
                     seed=SPLIT_SEED, group_pattern=group_pattern, note=note)


def official(**mapping: str) -> SplitPlan:
    return SplitPlan(official=dict(mapping), note="the dataset's official splits")


def _entry(name: str, reader: str, location: str, layout: str, plan: SplitPlan, metric: str = "top1",
           **options) -> DatasetSpec:
    data = prompt_sets()[name]
    opts = {"split_plan": plan.to_dict(), "layout": layout, **options}  # plain data: manifests record it
    classes = tuple(data["classes"])
    if "reader_classes" in data:  # labels index the identifiers: name each one by identity, not position
        if "class_synonyms" in data:
            raise ValueError(f"{name}: class_synonyms follow the order of classes, so they cannot go with reader_classes")
        opts["reader_classes"] = list(data["reader_classes"])
        classes = names_in_identifier_order(name, data["reader_classes"], classes, data.get("class_aliases"))
    return DatasetSpec(
        name=name, reader=reader, classes=classes, templates=tuple(data["templates"]),
        splits=plan.splits, primary_metric=metric, location=location, layout=layout, options=opts,
        class_synonyms=tuple(tuple(s) for s in data.get("class_synonyms", ())), source=data["source"],
    )


def _tv(name: str, tv_class: str, location: str, layout: str, plan: SplitPlan, metric: str = "top1",
        **options) -> DatasetSpec:
    return _entry(name, "torchvision", location, f"<data_root>/{location}/ {layout} [torchvision {tv_class}]",
                  plan, metric, torchvision=tv_class, **options)


GENERAL_DATASETS: tuple[DatasetSpec, ...] = (
    # --- the paper's 14 ---
    _tv("food101", "Food101", "food-101", "with images/<class>/<id>.jpg and meta/{train,test}.json", carve_val()),
    _tv("cifar10", "CIFAR10", "cifar-10-batches-py", "with data_batch_1..5, test_batch, batches.meta "
        "(the official python pickles, md5-checked)", carve_val()),
    _tv("cifar100", "CIFAR100", "cifar-100-python", "with train, test, meta (the official python pickles, "
        "md5-checked)", carve_val()),
    _tv("sun397", "SUN397", "SUN397", "with ClassName.txt and <letter>/<class>/sun_*.jpg (extracted SUN397.tar.gz)",
        SplitPlan(carve_from="all", carve=(("test", 50), ("val", 5), ("train", 45)), seed=SPLIT_SEED,
                  note="SUN397's ten official partitions are not in torchvision's download; this is one fixed "
                       "partition of the same size (50 train incl. 5 val + 50 test per class: 19,850 / 19,850 "
                       "as in CLIP Table 9); the remaining images are unused")),
    _tv("cars", "StanfordCars", "stanford_cars", "with cars_train/, cars_test/, devkit/cars_meta.mat, "
        "devkit/cars_train_annos.mat and cars_test_annos_withlabels.mat", carve_val()),
    _tv("fgvc_aircraft", "FGVCAircraft", "fgvc-aircraft-2013b", "with data/images/*.jpg, data/variants.txt and "
        "data/images_variant_{train,val,test}.txt (variant level, 100 classes)",
        official(train="train", val="val", test="test"), MEAN_PER_CLASS),
    _tv("dtd", "DTD", "dtd", "with dtd/images/<class>/*.jpg and dtd/labels/{train,val,test}1.txt (partition 1)",
        official(train="train", val="val", test="test")),
    _tv("mnist", "MNIST", "MNIST", "with raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte (uncompressed)",
        carve_val()),
    _tv("flowers", "Flowers102", "flowers-102", "with jpg/image_#####.jpg, imagelabels.mat and setid.mat "
        "(the .mat files md5-checked)", official(train="train", val="val", test="test"), MEAN_PER_CLASS),
    _tv("stl10", "STL10", "stl10_binary", "with {train,test}_{X,y}.bin, unlabeled_X.bin and class_names.txt "
        "(md5-checked)", carve_val(note=VAL_NOTE + "; CLIP instead averaged over the ten official 1,000-image "
                                    "training folds")),
    _tv("gtsrb", "GTSRB", "gtsrb", "with GTSRB/Training/<00000..00042>/*.ppm, GTSRB/Final_Test/Images/*.ppm and "
        "GT-final_test.csv", carve_val(group_pattern=r"Training/\d+/\d+_", note=VAL_NOTE + "; whole tracks "
                                       "(~30 frames of one physical sign) move together, so val has no "
                                       "near-duplicates of train"),
        label_in_path=r"^GTSRB/Training/(\d+)/"),
    _tv("country211", "Country211", "country211", "with {train,valid,test}/<ISO country code>/*.jpg",
        official(train="train", val="valid", test="test")),
    _tv("renderedsst2", "RenderedSST2", "rendered-sst2", "with {train,valid,test}/{negative,positive}/*.png",
        official(train="train", val="val", test="test"), label_in_path=r"^\w+/(negative|positive)/"),
    _entry("imagenetv2", "class_folders", "imagenetv2",
           "<data_root>/imagenetv2/imagenetv2-matched-frequency-format-val/<class index 0..999>/*.jpeg "
           "(extracted imagenetv2-matched-frequency.tar.gz)",
           SplitPlan(official={"test": "test"}, note="matched-frequency test set only (no train or val)"),
           split_dirs={"test": "imagenetv2-matched-frequency-format-val"}, folders="numeric"),
    # --- other common CLIP benchmarks ---
    _tv("pets", "OxfordIIITPet", "oxford-iiit-pet", "with images/*.jpg and annotations/{trainval,test}.txt",
        carve_val(source="trainval", note=VAL_NOTE.replace("training split", "trainval split")), MEAN_PER_CLASS),
    _entry("caltech101", "class_folders", "caltech101",
           "<data_root>/caltech101/101_ObjectCategories/<category, incl. BACKGROUND_Google>/image_####.jpg",
           SplitPlan(carve_from="all", carve=(("train", 27), ("val", 3), ("test", None)), seed=SPLIT_SEED,
                     note="Caltech101 has no official split: 30 images per class for training (27 train + 3 val) "
                          "and the rest for test, as CLIP Table 9 (3,060 / 6,085) and VTAB; the background class "
                          "is kept (102 classes, as CLIP)"),
           MEAN_PER_CLASS, split_dirs={"all": "101_ObjectCategories"}, folders="reader_classes"),
    _tv("eurosat", "EuroSAT", "eurosat", "with 2750/<class e.g. AnnualCrop>/*.jpg (the RGB release)",
        SplitPlan(carve_from="all", carve=(("test", 0.2), ("val", 0.2), ("train", None)), seed=SPLIT_SEED,
                  note="EuroSAT has no official split: VTAB's 60/20/20 train/val/test, stratified by class")),
    _entry("resisc45", "class_folders", "resisc45",
           "<data_root>/resisc45/NWPU-RESISC45/<class e.g. baseball_diamond>/*.jpg",
           SplitPlan(carve_from="all", carve=(("test", 0.2), ("val", 0.2), ("train", None)), seed=SPLIT_SEED,
                     note="RESISC45 has no official split: VTAB's 60/20/20 train/val/test, stratified by class"),
           split_dirs={"all": "NWPU-RESISC45"}, folders="reader_classes"),
    _entry("fer2013", "fer2013_csv", "fer2013",
           "<data_root>/fer2013/fer2013.csv (emotion,pixels,Usage) or icml_face_data.csv from the Kaggle challenge",
           official(train="Training", val="PublicTest", test="PrivateTest")),
    _entry("pcam", "pcam_h5", "pcam", "<data_root>/pcam/camelyonpatch_level_2_split_{train,valid,test}_{x,y}.h5 "
           "(decompressed)", official(train="train", val="valid", test="test")),
    _tv("svhn", "SVHN", "svhn", "with train_32x32.mat and test_32x32.mat (md5-checked)", carve_val()),
    _entry("imagenet1k", "class_folders", "imagenet",
           "<data_root>/imagenet/{train,val}/<wnid>/*.JPEG (val sorted into wnid folders, as torchvision's "
           "ImageNet leaves it)",
           carve_val(val=10, note="test is the official 50,000-image val set; val is 10 training images per class "
                                  "(10,000)"),
           split_dirs={"train": "train", "test": "val"}, folders="sorted", folder_pattern=r"n\d{8}"),
)

# Paper order of the 14 datasets in its tables.
PAPER_DATASETS = ("food101", "cifar10", "cifar100", "sun397", "cars", "fgvc_aircraft", "dtd", "mnist", "flowers",
                  "stl10", "gtsrb", "country211", "renderedsst2", "imagenetv2")


def default_wds_plan(spec: DatasetSpec) -> SplitPlan:
    """CLIP_benchmark's shards have train and test folders; val is carved from train like elsewhere."""
    if "train" not in spec.splits:
        return SplitPlan(official={"test": "test"}, note="WebDataset test shards")
    return carve_val(note=VAL_NOTE + " (of the WebDataset train shards)")
