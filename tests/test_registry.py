"""The registry of real general-vision datasets and the split plans behind their fixed splits."""

import json
import random
import subprocess
import sys

import pytest

from overspec.data.general_datasets import PAPER_DATASETS, SPLIT_SEED, prompt_sets
from overspec.data.readers import ListedSplit
from overspec.data.registry import dataset_names, get_dataset, open_dataset_split
from overspec.data.splits import SplitPlan, carve_indices
from overspec.errors import UserError

REAL = ("food101", "cifar10", "cifar100", "sun397", "cars", "fgvc_aircraft", "dtd", "mnist", "flowers", "stl10",
        "gtsrb", "country211", "renderedsst2", "imagenetv2", "pets", "caltech101", "eurosat", "resisc45", "fer2013",
        "pcam", "svhn", "imagenet1k")

# Classes per CLIP Table 9 (FER2013: 7, Table 9's 8 is its known reporting bug) and the number of
# templates in openai/CLIP data/prompts.md (+ the notebook's 80 for ImageNet); SVHN: CLIP_benchmark's.
COUNTS = {"food101": (101, 1), "cifar10": (10, 18), "cifar100": (100, 18), "sun397": (397, 2), "cars": (196, 8),
          "fgvc_aircraft": (100, 2), "dtd": (47, 8), "mnist": (10, 1), "flowers": (102, 1), "stl10": (10, 2),
          "gtsrb": (43, 3), "country211": (211, 5), "renderedsst2": (2, 1), "imagenetv2": (1000, 80),
          "pets": (37, 1), "caltech101": (102, 34), "eurosat": (10, 3), "resisc45": (45, 18), "fer2013": (7, 6),
          "pcam": (2, 1), "svhn": (10, 6), "imagenet1k": (1000, 80)}


def test_every_real_dataset_is_registered_with_clip_counts():
    assert set(REAL) <= set(dataset_names()) and set(PAPER_DATASETS) <= set(REAL) and len(PAPER_DATASETS) == 14
    for name in REAL:
        spec = get_dataset(name)
        assert (len(spec.classes), len(spec.templates)) == COUNTS[name], name
        # OpenAI's ImageNet names repeat two (657/744 "missile", 836/837 "sunglasses"); kept verbatim
        assert len(spec.classes) - len(set(spec.classes)) == (2 if name.startswith("imagenet") else 0), name


def test_primary_metrics_follow_clip_table_9():
    mean_per_class = {n for n in REAL if get_dataset(n).primary_metric == "mean_per_class_recall"}
    assert mean_per_class == {"fgvc_aircraft", "pets", "caltech101", "flowers"}
    assert all(get_dataset(n).primary_metric == "top1" for n in set(REAL) - mean_per_class)


def test_templates_and_class_names_are_clean():
    for name in REAL:
        spec = get_dataset(name)
        for template in spec.templates:
            assert template.count("{c}") == 1 and "{}" not in template, (name, template)
            assert template.format(c="X")  # no other braces
        if name not in ("fgvc_aircraft", "cars"):  # model codes keep their own spelling
            assert not any("_" in c for c in spec.classes), name
        assert all(len(p) == len(spec.templates) * (len(spec.class_synonyms[i]) if spec.class_synonyms else 1)
                   for i, p in enumerate(spec.class_prompts())), name
        reader_classes = spec.options.get("reader_classes")
        assert reader_classes is None or len(reader_classes) == len(spec.classes), name
        assert spec.source


def test_openai_names_and_known_orders():
    assert get_dataset("cifar10").class_prompts()[0][0] == "a photo of a airplane."
    assert get_dataset("cifar100").classes[:3] == ("apple", "aquarium fish", "baby")
    assert get_dataset("eurosat").classes[0] == "annual crop land"  # torchvision's alphabetical folder order
    assert get_dataset("imagenetv2").classes == get_dataset("imagenet1k").classes
    assert get_dataset("mnist").class_prompts()[7] == ['a photo of the number: "7".']
    assert get_dataset("fer2013").class_synonyms[5] == ("surprised", "shocked", "spooked")
    assert "_about" not in prompt_sets() and set(prompt_sets()) == set(REAL)


def test_every_real_entry_documents_location_layout_and_splits():
    for name in REAL:
        spec = get_dataset(name)
        plan = spec.split_plan
        assert spec.location and spec.layout.startswith(f"<data_root>/{spec.location}/"), name
        assert plan.splits == spec.splits and plan.describe(), name
        assert spec.splits == (("test",) if name == "imagenetv2" else ("train", "val", "test")), name
        assert spec.probe_splits == (name != "imagenetv2")


def test_datasets_without_official_test_split_are_partitioned():
    for name in ("sun397", "eurosat", "caltech101", "resisc45"):
        plan = get_dataset(name).split_plan
        assert not plan.official and plan.carve_from == "all" and plan.seed == SPLIT_SEED
        assert {part for part, _ in plan.carve} == {"train", "val", "test"}, name


def test_a_plan_cannot_read_one_official_split_twice():
    with pytest.raises(ValueError, match="reads one official split for two splits"):
        SplitPlan(official={"train": "all", "test": "all"})
    with pytest.raises(ValueError, match="reads one official split for two splits"):
        SplitPlan(official={"test": "train"}, carve_from="train", carve=(("val", 0.1), ("train", None)))
    with pytest.raises(ValueError, match="names a split twice"):
        SplitPlan(official={"val": "val"}, carve_from="train", carve=(("val", 0.1), ("train", None)))


def _listing(per_class: dict[int, int]) -> tuple[list[str], list[int]]:
    ids, labels = [], []
    for label, n in per_class.items():
        ids += [f"c{label}/img{i:03d}.jpg" for i in range(n)]
        labels += [label] * n
    return ids, labels


def _parts_as_ids(ids, labels, carve, seed=0, pattern=None):
    parts = carve_indices(ids, labels, carve, seed, pattern)
    return {name: {ids[i] for i in idx} for name, idx in parts.items()}


def test_carving_is_stratified_disjoint_and_deterministic():
    ids, labels = _listing({0: 100, 1: 7, 2: 1})
    carve = (("test", 0.2), ("val", 3), ("train", None))
    parts = _parts_as_ids(ids, labels, carve)
    assert [sum(i.startswith("c0/") for i in parts[p]) for p in ("test", "val", "train")] == [20, 3, 77]
    assert [sum(i.startswith("c1/") for i in parts[p]) for p in ("test", "val", "train")] == [1, 3, 3]  # 1.4 -> 1
    assert [sum(i.startswith("c2/") for i in parts[p]) for p in ("test", "val", "train")] == [0, 1, 0]
    assert not (parts["test"] & parts["val"]) and not (parts["test"] & parts["train"])
    assert len(parts["test"] | parts["val"] | parts["train"]) == 108
    assert _parts_as_ids(ids, labels, carve) == parts
    assert _parts_as_ids(ids, labels, carve, seed=1) != parts


def test_carving_ignores_listing_order_and_other_classes():
    ids, labels = _listing({0: 50, 1: 30})
    parts = _parts_as_ids(ids, labels, (("val", 0.1), ("train", None)))
    order = list(range(len(ids)))
    random.Random(3).shuffle(order)
    shuffled = _parts_as_ids([ids[i] for i in order], [labels[i] for i in order], (("val", 0.1), ("train", None)))
    assert shuffled == parts
    more_ids, more_labels = _listing({0: 50, 1: 30, 2: 40})
    more = _parts_as_ids(more_ids, more_labels, (("val", 0.1), ("train", None)))
    assert {i for i in more["val"] if not i.startswith("c2/")} == parts["val"]


def test_groups_move_together():
    ids = [f"track{t}_{f}" for t in range(10) for f in range(3)]
    labels = [0] * 30
    parts = _parts_as_ids(ids, labels, (("val", 0.1), ("train", None)), pattern=r"^track\d+_")
    tracks = lambda names: {n.split("_")[0] for n in names}
    assert len(parts["val"]) == 3 and len(tracks(parts["val"])) == 1
    assert tracks(parts["val"]).isdisjoint(tracks(parts["train"]))


class _FakeOfficial(ListedSplit):
    def __init__(self, ids, labels):
        self._ids, self._labels = ids, labels


def test_resolve_takes_official_splits_whole_and_carves_the_rest():
    ids, labels = _listing({0: 20, 1: 20})
    opened = []

    def open_official(name):
        opened.append(name)
        return _FakeOfficial([f"{name}/{i}" for i in ids], labels)

    plan = get_dataset("cifar10").split_plan
    test = plan.resolve("test", open_official)
    val, train = plan.resolve("val", open_official), plan.resolve("train", open_official)
    assert opened == ["test", "train", "train"] and len(test) == 40 and len(val) == 4 and len(train) == 36
    assert set(val.ids()).isdisjoint(train.ids()) and all(i.startswith("train/") for i in val.ids())
    with pytest.raises(UserError, match="Split 'dev' does not exist"):
        plan.resolve("dev", open_official)


def test_unknown_dataset_and_missing_folder_messages(tmp_path):
    with pytest.raises(UserError, match="Unknown dataset 'cifar-10': use one of .*cifar10"):
        get_dataset("cifar-10")
    with pytest.raises(UserError, match=rf"Dataset folder {tmp_path}/SUN397 does not exist .*expected "
                                        r"<data_root>/SUN397/ with ClassName.txt"):
        open_dataset_split(get_dataset("sun397"), tmp_path, "test")
    with pytest.raises(UserError, match="set data_root in the config"):
        open_dataset_split(get_dataset("sun397"), None, "test")
    with pytest.raises(UserError, match="has no split 'valid': use one of train, val, test"):
        open_dataset_split(get_dataset("country211"), tmp_path, "valid")


def test_carving_is_pinned_to_sha256_ranks():
    """Changing how splits are carved would silently change every result: pin it to the documented rule."""
    import hashlib

    ids = [f"c0/img{i:03d}.jpg" for i in range(20)]
    by_hash = sorted(ids, key=lambda i: hashlib.sha256(f"0/{i}".encode()).hexdigest())
    parts = _parts_as_ids(ids, [0] * 20, (("val", 0.1), ("train", None)))
    assert parts["val"] == set(by_hash[:2]) == {"c0/img005.jpg", "c0/img018.jpg"}


def test_options_are_plain_json_and_round_trip(tmp_path):
    """prepare_dataset writes spec.options into the manifest; embedding reopens splits from that JSON."""
    import json

    for name in REAL:
        spec = get_dataset(name)
        options = json.loads(json.dumps(spec.options))
        assert SplitPlan.from_dict(options["split_plan"]) == spec.split_plan, name
        assert options["layout"] == spec.layout


def test_architecture_names_are_open_clips_without_importing_it():
    """The Snakefile validates model names without importing torch or open_clip (seconds in every
    controller, dry run and SLURM job); the names are still exactly open_clip's. Both are listed
    in a fresh process: tests in this one register test architectures with open_clip."""
    code = ("import json, sys; from overspec.models.architectures import known_architectures; "
            "names = list(known_architectures()); light = not ({'torch', 'open_clip'} & set(sys.modules)); "
            "import open_clip, overspec.models.factory; "
            "print(json.dumps([light, names, sorted(open_clip.list_models())]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    light, names, open_clips = json.loads(done.stdout)
    assert light and names == open_clips and {"ViT-B-16", "ViT-L-14", "toy-clip-s", "toy-clip-m"} <= set(names)


def test_reader_class_identifiers_are_named_by_identity():
    from _general_fixtures import sun397_class_lines

    sun = get_dataset("sun397")
    assert sun.options["reader_classes"] == [line[3:] for line in sun397_class_lines()]  # ClassName.txt order
    named = dict(zip(sun.options["reader_classes"], sun.classes))
    assert (named["jail/indoor"], named["jail_cell"]) == ("jail indoor", "jail cell")
    assert sorted(sun.classes) == sorted(prompt_sets()["sun397"]["classes"])  # OpenAI's names, each once
    assert dict(zip(get_dataset("eurosat").options["reader_classes"], get_dataset("eurosat").classes))[
        "SeaLake"] == "lake or sea"
    assert dict(zip(get_dataset("gtsrb").options["reader_classes"], get_dataset("gtsrb").classes))[
        "00014"] == "stop"
    for name in REAL:
        data = prompt_sets()[name]
        if "reader_classes" in data:
            assert sorted(get_dataset(name).classes) == sorted(data["classes"]), name


def test_an_identifier_with_no_name_is_one_sentence():
    from overspec.data.class_names import names_in_identifier_order

    assert names_in_identifier_order("x", ["b_c", "a/d"], ["a d", "b c"]) == ("b c", "a d")
    with pytest.raises(UserError, match=r"^Class identifier 'jail/outdoor' \(number 2 of sun397's reader_classes in "
                                        r"overspec/data/prompts/general.json\) has no name in its classes"):
        names_in_identifier_order("sun397", ["jail_cell", "jail/outdoor"], ["jail cell", "jail indoor"])
    with pytest.raises(UserError, match="each name must belong to exactly one identifier"):
        names_in_identifier_order("x", ["a", "A"], ["a", "b"])
