"""Code digests (params.code of every rule) depend on content only, never on location."""

import shutil
from pathlib import Path

from overspec.provenance import code_digest

SCRIPT = Path(__file__).resolve().parents[1] / "workflow_scripts" / "eval_zeroshot.py"


def copy_script(root: Path) -> Path:
    target = root / "workflow_scripts" / SCRIPT.name
    target.parent.mkdir(parents=True)
    shutil.copy2(SCRIPT, target)
    return target


def test_the_same_script_in_two_places_has_one_digest(tmp_path):
    # "a..." sorts before and "zz..." after the package's own path: the order of hashing must not follow
    first, second = copy_script(tmp_path / "a"), copy_script(tmp_path / "zz")
    assert code_digest(first) == code_digest(second) == code_digest(SCRIPT)


def test_a_touched_script_keeps_its_digest_and_an_edited_one_changes_it(tmp_path):
    script = copy_script(tmp_path)
    before = code_digest(script)
    script.touch()
    assert code_digest(script) == before
    script.write_text(script.read_text() + "\n# an edit\n")
    assert code_digest(script) != before
