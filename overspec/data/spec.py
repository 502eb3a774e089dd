"""`DatasetSpec`: one registry entry (how to read a dataset, its splits, class names, prompts, metric)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    reader: str  # "toy" | "imagefolder" | "torchvision" | "class_folders" | "fer2013_csv" | "pcam_h5" | "wds"
    classes: tuple[str, ...]  # in the reader's label order
    templates: tuple[str, ...]  # python format strings with the placeholder {c}
    splits: tuple[str, ...] = ("train", "val", "test")
    primary_metric: str = "top1"  # or "mean_per_class_recall"
    location: str | None = None  # folder under data_root for real datasets
    layout: str = ""  # one line telling a user what the folder must look like
    options: dict = field(default_factory=dict)  # reader options, plain JSON data; "split_plan": SplitPlan.to_dict()
    class_synonyms: tuple[tuple[str, ...], ...] = ()  # per class, every name a prompt ensemble uses
    source: str = ""  # where the class names and templates come from

    @property
    def is_toy(self) -> bool:
        return self.reader == "toy"

    @property
    def probe_splits(self) -> bool:
        """A linear probe needs a train and a validation split (ImageNet-V2 has a test set only)."""
        return "train" in self.splits and "val" in self.splits

    @property
    def split_plan(self):
        """The `SplitPlan` behind the splits (None for toy and plain image-folder datasets)."""
        from overspec.data.splits import as_split_plan

        return as_split_plan(self.options.get("split_plan"))

    @property
    def split_note(self) -> str:
        plan = self.split_plan
        return plan.describe() if plan is not None else ""

    def class_prompts(self) -> list[list[str]]:
        """Per class, every prompt of the ensemble: each template filled with each of the class's names.

        OpenAI averages over all of them (FER2013 has several names per class, e.g. happy / smiling).
        """
        names = self.class_synonyms or tuple((c,) for c in self.classes)
        return [[t.format(c=n) for n in synonyms for t in self.templates] for synonyms in names]
