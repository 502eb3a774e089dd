"""Class identifiers and class names, matched by identity, never by position.

A dataset's files call each class by an identifier (SUN397's 'jail/indoor', Country211's 'AD', a
folder name); prompts use a name ('jail indoor', 'Andorra'). Labels index the identifiers in the
order the files give them, which need not be the order of a published name list: SUN397's
ClassName.txt sorts '/j/jail/indoor' before '/j/jail_cell', OpenAI's list has 'jail cell' first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from overspec.errors import UserError


def normalise_class_name(name: str) -> str:
    """Compare class names up to case, underscores, slashes and spacing ("aquarium_fish" = "aquarium fish")."""
    return " ".join(re.split(r"[\s_/]+", name.lower())).strip()


def names_in_identifier_order(dataset: str, identifiers: Sequence[str], names: Sequence[str],
                              aliases: dict[str, str] | None = None) -> tuple[str, ...]:
    """The name of each identifier, in the identifiers' order.

    An identifier's name is the one spelled the same up to `normalise_class_name`, or `aliases[identifier]`
    where the dataset spells it another way (EuroSAT's 'AnnualCrop' is 'annual crop land'). Every name
    must be used exactly once.
    """
    aliases = aliases or {}
    by_spelling = {normalise_class_name(n): n for n in names}
    ordered = []
    for line, identifier in enumerate(identifiers, 1):
        name = aliases.get(identifier) or by_spelling.get(normalise_class_name(identifier))
        if name is None or name not in names:
            raise UserError(f"Class identifier '{identifier}' (number {line} of {dataset}'s reader_classes in "
                            f"overspec/data/prompts/general.json) has no name in its classes: add the name, or an "
                            f"entry in its class_aliases.")
        ordered.append(name)
    if sorted(ordered) != sorted(names):
        unused = sorted(set(names) - set(ordered))[:3]
        raise UserError(f"{dataset}'s reader_classes in overspec/data/prompts/general.json give {len(ordered)} "
                        f"identifiers for {len(names)} names (unmatched names: {', '.join(unused) or 'none'}; a "
                        f"name used twice otherwise): each name must belong to exactly one identifier.")
    return tuple(ordered)


def registry_labels(found: Sequence[str], identifiers: Sequence[str], where: Callable[[int], str]) -> list[int]:
    """For each class the files list (in their label order), the registry label of the same identifier.

    `where(i)` says where the files name their class i (e.g. '<root>/ClassName.txt line 197'), for the
    one-sentence error when an identifier is not one of the registry's.
    """
    index = {normalise_class_name(c): i for i, c in enumerate(identifiers)}
    labels, seen = [], {}
    for i, identifier in enumerate(found):
        key = normalise_class_name(str(identifier))
        if key not in index:
            raise UserError(f"{where(i)} names class '{identifier}', which has no name in overspec's list of "
                            f"{len(identifiers)} classes for this dataset: the files are from another version of "
                            f"it, or that line is damaged.")
        if key in seen:
            raise UserError(f"{where(i)} names class '{identifier}' again ({where(seen[key])} already does): "
                            f"each class must be listed once.")
        seen[key] = i
        labels.append(index[key])
    return labels
