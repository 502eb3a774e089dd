"""MAD/PAD CSV lists: columns, labels, paths, video ids, shared bona fides; PAD protocols as data."""

import numpy as np
import pandas as pd
import pytest

from overspec.data.biometric.attack_lists import (
    PAD_DATASETS,
    PAD_PROTOCOLS,
    check_same_bona_fide,
    listed_images,
    mad_subsets,
    read_mad_list,
    read_pad_list,
    video_id_from_path,
    write_sample_list,
)
from overspec.errors import UserError


def test_mad_list_with_madation_header_and_relative_paths(tmp_path):
    (tmp_path / "lists").mkdir()
    csv = tmp_path / "lists" / "opencv.csv"
    csv.write_text("image_path,label\nimgs/a.png,bonafide\n/abs/b.png,attack\nimgs/c.png,Bona Fide\nimgs/d.png,0\n")
    frame = read_mad_list(csv)
    assert frame["id"].tolist() == ["imgs/a.png", "/abs/b.png", "imgs/c.png", "imgs/d.png"]
    assert frame["path"].tolist()[:2] == [str(tmp_path / "lists" / "imgs/a.png"), "/abs/b.png"]
    assert frame["label"].tolist() == [1, 0, 1, 0]


def test_mad_method_column_splits_into_subsets_with_all_bona_fides(tmp_path):
    csv = tmp_path / "all.csv"
    csv.write_text("path,label,method\nb1,bonafide,\nm1,attack,opencv\nb2,bonafide,\nm2,attack,mipgan\nm3,attack,opencv\n")
    subsets = mad_subsets(read_mad_list(csv))
    assert sorted(subsets) == ["mipgan", "opencv"]
    assert subsets["opencv"]["id"].tolist() == ["b1", "b2", "m1", "m3"]
    assert subsets["mipgan"]["id"].tolist() == ["b1", "b2", "m2"]
    assert check_same_bona_fide(subsets) == ["b1", "b2"]


def test_differing_bona_fide_sets_and_duplicates_are_refused(tmp_path):
    a = pd.DataFrame({"id": ["b1", "b2", "m1"], "label": [1, 1, 0]})
    b = pd.DataFrame({"id": ["b1", "m2"], "label": [1, 0]})
    with pytest.raises(UserError, match="different bona fide sets .2 vs 1"):
        check_same_bona_fide({"opencv": a, "mipgan": b})
    csv = tmp_path / "dup.csv"
    csv.write_text("path,label\nb1,bonafide\nb1,bonafide\n")
    with pytest.raises(UserError, match="more than once"):
        read_mad_list(csv)


@pytest.mark.parametrize(
    "content, message",
    [
        ("file,label\na,bonafide\n", "header with 'path'"),
        ("path,label\na,maybe\n", "row 2 has label 'maybe'"),
        ("path,label\n", "no rows"),
    ],
)
def test_bad_lists_are_user_errors(tmp_path, content, message):
    csv = tmp_path / "x.csv"
    csv.write_text(content)
    with pytest.raises(UserError, match=message):
        read_mad_list(csv)
    with pytest.raises(UserError, match="does not exist"):
        read_pad_list(tmp_path / "missing.csv")


def test_pad_list_video_ids_and_attack_types(tmp_path):
    csv = tmp_path / "test.csv"
    csv.write_text(
        "path,label,attack_type,video_id\nf/v1_0.png,bonafide,,v1\nf/v1_1.png,bonafide,,v1\n"
        "f/v2_0.png,attack,print,v2\nf/v3_0.png,spoof,,v3\n"
    )
    frame = read_pad_list(csv)
    assert frame["video_id"].tolist() == ["v1", "v1", "v2", "v3"]
    assert frame["attack_type"].tolist() == ["", "", "print", "attack"]
    assert frame["label"].tolist() == [1, 1, 0, 0]
    # without a video_id column: FoundPAD's rule, the name before the last '_'
    csv.write_text("path,label\nx/client1_sess2_frame7.jpg,real\nx/client1_sess2_frame8.jpg,real\n")
    assert read_pad_list(csv)["video_id"].tolist() == ["client1_sess2", "client1_sess2"]
    assert video_id_from_path("a/b/noframe.png") == "noframe"
    csv.write_text("path,label,video_id\na_0.png,bonafide,v\na_1.png,attack,v\n")
    with pytest.raises(UserError, match="both bona fide and attack"):
        read_pad_list(csv)


def test_written_lists_read_back(tmp_path):
    frame = pd.DataFrame({"path": ["a.png", "b.png"], "label": [1, 0], "attack_type": ["", "replay"], "video_id": ["a", "b"]})
    write_sample_list(tmp_path / "l.csv", frame, ["path", "label", "attack_type", "video_id"])
    assert (tmp_path / "l.csv").read_text() == "path,label,attack_type,video_id\na.png,bonafide,,a\nb.png,attack,replay,b\n"
    back = read_pad_list(tmp_path / "l.csv")
    assert back["label"].tolist() == [1, 0] and back["attack_type"].tolist() == ["", "replay"]


def _fit_to(size):
    from overspec.embed.loader import Preprocess

    return Preprocess.from_preprocessing({"size": [size, size], "mean": [0.5] * 3, "std": [0.5] * 3,
                                          "resize_mode": "shortest", "interpolation": "bicubic"}).geometric


def test_listed_images_of_any_size_stream_in_fitted_batches(tmp_path):
    from PIL import Image

    from overspec.embed.loader import fitted_batches

    for k, size in enumerate([(4, 4), (10, 6), (3, 9)]):
        Image.fromarray(np.full((size[1], size[0], 3), 10 * k, np.uint8)).save(tmp_path / f"{k}.png")
    csv = tmp_path / "l.csv"
    csv.write_text("path,label\n2.png,attack\n0.png,bonafide\n1.png,bonafide\n0.png,bonafide\n")
    frame = pd.read_csv(csv).assign(path=lambda f: [str(tmp_path / p) for p in f["path"]],
                                     origin=[f"{csv} row {i}" for i in range(2, 6)])
    images = listed_images([frame])
    assert images.paths == [str(tmp_path / f"{k}.png") for k in range(3)]  # each path once, sorted
    assert images.origins == [f"{csv} row 3", f"{csv} row 4", f"{csv} row 2"]
    batches = list(fitted_batches(images, _fit_to(8), batch_size=2))
    assert [b.shape for b in batches] == [(2, 8, 8, 3), (1, 8, 8, 3)] and batches[1][0, 0, 0, 0] == 20


def test_missing_and_unreadable_list_images_name_the_list_and_row(tmp_path):
    from overspec.embed.loader import fitted_batches

    csv = tmp_path / "test.csv"
    csv.write_text("path,label,attack_type,video_id\nv1_0.png,bonafide,,v1\nv2_0.png,attack,print,v2\n")
    frame = read_pad_list(csv)
    with pytest.raises(UserError, match=rf"^{csv} row 2 names {tmp_path}/v1_0.png, which does not exist: fix the "
                                        r"path \(relative paths start at the list's folder\) or remove the row\.$"):
        listed_images([frame])
    from PIL import Image

    Image.fromarray(np.zeros((5, 7, 3), np.uint8)).save(tmp_path / "v1_0.png")
    (tmp_path / "v2_0.png").write_bytes(b"not an image")
    images = listed_images([frame])
    for workers in (0, 1):  # the sentence comes back whole from a loader worker too
        with pytest.raises(UserError, match=rf"^Image {tmp_path}/v2_0.png \(named by {csv} row 3\) cannot be "
                                            r"decoded \(UnidentifiedImageError\): replace the file or remove its "
                                            r"row\.$"):
            list(fitted_batches(images, _fit_to(8), batch_size=1, num_workers=workers))


def test_pad_protocols_are_leave_one_out_over_mcio():
    loo = [p for name, p in PAD_PROTOCOLS.items() if name != "OCM-CA"]
    assert sorted(p.target for p in loo) == sorted(PAD_DATASETS[c] for c in "OCIM")
    for p in loo:
        assert p.target not in p.sources and len(p.sources) == 3
        assert set(p.sources) | {p.target} == {PAD_DATASETS[c] for c in "OCIM"}
    assert PAD_PROTOCOLS["OCI-M"].target == "msu_mfsd"
    assert PAD_PROTOCOLS["OCM-CA"].sources == ("oulu_npu", "casia_fasd", "msu_mfsd")
    assert PAD_PROTOCOLS["OCM-CA"].target == "celeba_spoof"
