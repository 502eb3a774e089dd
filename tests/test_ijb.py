"""IJB meta parsing (typed, cross-checked, counted) and the template protocol on hand-made features."""

import numpy as np
import pytest
from PIL import Image

from overspec.data.biometric.ijb import KNOWN_IJB_COUNTS, IJBMeta, read_ijb_meta, write_ijb_meta
from overspec.errors import UserError
from overspec.evaluate.ijb import evaluate_ijb, evaluate_ijb_features, score_template_pairs, template_features


def _write(root, prefix="toyijb", n=6):
    names = [f"{k + 1}.jpg" for k in range(n)]
    templates = np.array([11, 11, 11, 22, 33, 33])[:n]
    medias = np.array([5, 5, 6, 7, 8, 9])[:n]
    landmarks = np.tile(np.array([[4.0, 5], [10, 5], [7, 8], [5, 11], [9, 11]]), (n, 1, 1))
    faceness = np.linspace(0.5, 1.0, n)
    pairs = np.array([[11, 22], [11, 33], [22, 33]])
    write_ijb_meta(root, prefix, names, templates, medias, landmarks, faceness, pairs, np.array([1, 0, 0]))
    return names


def test_reads_the_three_files_with_types(tmp_path):
    _write(tmp_path)
    meta = read_ijb_meta(tmp_path)
    assert meta.name == "toyijb"
    assert meta.image_names.tolist() == [f"{k}.jpg" for k in range(1, 7)]
    assert meta.templates.dtype == np.int64 and meta.templates.tolist() == [11, 11, 11, 22, 33, 33]
    assert meta.landmarks.shape == (6, 5, 2) and meta.landmarks[0, 2].tolist() == [7.0, 8.0]
    assert np.allclose(meta.faceness, np.linspace(0.5, 1.0, 6))
    assert meta.pair_templates.tolist() == [[11, 22], [11, 33], [22, 33]] and meta.pair_labels.tolist() == [1, 0, 0]
    assert str(meta.image_path(0)).endswith("loose_crop/1.jpg")


def test_landmark_file_in_another_order_is_matched_by_name(tmp_path):
    _write(tmp_path)
    path = tmp_path / "meta" / "toyijb_name_5pts_score.txt"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(reversed(lines)))
    meta = read_ijb_meta(tmp_path)
    assert np.allclose(meta.faceness, np.linspace(0.5, 1.0, 6))


@pytest.mark.parametrize(
    "file, content, message",
    [
        ("face_tid_mid", "1.jpg 11 5\n2.jpg 1x 5\n", "not a valid IJB template/media"),
        ("face_tid_mid", "1.jpg 11 5\n2.jpg 11 5 7\n", "not a valid IJB template/media"),
        ("template_pair_label", "11 22 1\n11 33 2\n", "labels other than 0/1"),
        ("template_pair_label", "11 22 1\n11 99 0\n", "templates"),
        ("name_5pts_score", "1.jpg 1 2 3 4 5 6 7 8 9 10 0.9\n", "list different images"),
    ],
)
def test_malformed_meta_files_are_user_errors(tmp_path, file, content, message):
    _write(tmp_path)
    (tmp_path / "meta" / f"toyijb_{file}.txt").write_text(content)
    with pytest.raises(UserError, match=message):
        read_ijb_meta(tmp_path)


def test_real_ijb_prefixes_must_have_their_documented_counts(tmp_path):
    _write(tmp_path, prefix="ijbc")
    with pytest.raises(UserError, match="ijbc has 469375, 23124, 15658489 .19557."):
        read_ijb_meta(tmp_path)
    assert KNOWN_IJB_COUNTS["ijbb"].pairs == 8_010_270 and KNOWN_IJB_COUNTS["ijbb"].genuine == 10_270
    with pytest.raises(UserError, match="exactly one"):
        read_ijb_meta(tmp_path / "nowhere")


def test_template_features_media_mean_then_sum_then_normalise():
    features = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 5.0]])
    templates = np.array([7, 7, 7, 9])
    medias = np.array([1, 1, 2, 3])  # template 7: media 1 = images 0,1 (mean [2,0]), media 2 = image 2
    ids, feats = template_features(features, templates, medias)
    assert ids.tolist() == [7, 9]
    assert np.allclose(feats[0], np.array([2.0, 2.0]) / np.sqrt(8))  # [2,0] + [0,2]
    assert np.allclose(feats[1], [0.0, 1.0])
    # faceness weighting (D1) happens before pooling; image normalisation (N0) too
    ids, feats = template_features(features, templates, medias, faceness=np.array([1.0, 1.0, 3.0, 1.0]))
    assert np.allclose(feats[0], np.array([2.0, 6.0]) / np.sqrt(40))
    ids, feats = template_features(features, templates, medias, normalise_images=True)
    assert np.allclose(feats[0], np.array([1.0, 1.0]) / np.sqrt(2))


def test_block_matrix_scoring_equals_pairwise_dot_products():
    rng = np.random.default_rng(0)
    ids = np.array([3, 5, 8, 13, 21, 34])
    feats = rng.normal(size=(6, 4))
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    pairs = ids[rng.integers(0, 6, (50, 2))]
    scores = score_template_pairs(ids, feats, pairs, block_rows=2)
    index = {t: k for k, t in enumerate(ids)}
    expected = [feats[index[a]] @ feats[index[b]] for a, b in pairs]
    assert scores.dtype == np.float32 and np.allclose(scores, expected, atol=1e-6)
    # ids too large for the lookup table take the searchsorted path, with the same result
    big = ids * 10**9
    assert np.array_equal(score_template_pairs(big, feats, pairs * 10**9, block_rows=4), scores)
    with pytest.raises(UserError, match="no images"):
        score_template_pairs(ids, feats, np.array([[3, 4]]))
    with pytest.raises(UserError, match="no images"):
        score_template_pairs(big, feats, np.array([[3 * 10**9, 4]]))


def _meta(templates, medias, pairs, labels, faceness=None):
    n = len(templates)
    return IJBMeta(
        name="toyijb", root=".", image_names=np.array([f"{k}.jpg" for k in range(n)]),
        templates=np.array(templates), medias=np.array(medias), landmarks=np.zeros((n, 5, 2), np.float32),
        faceness=np.ones(n, np.float32) if faceness is None else np.asarray(faceness, np.float32),
        pair_templates=np.array(pairs), pair_labels=np.array(labels, np.int8),
    )


def test_tar_at_far_on_a_hand_made_protocol():
    # 4 subjects, 2 templates each (one image per template); genuine templates identical,
    # impostors orthogonal except one impostor pair that matches perfectly.
    features = np.repeat(np.eye(4), 2, axis=0)
    features[7] = features[0]  # template 8 (subject 3) looks like subject 0
    templates = list(range(1, 9))
    genuine = [[1, 2], [3, 4], [5, 6], [7, 8]]
    impostor = [[a, b] for a in (1, 3, 5) for b in (4, 6, 8) if (a + 1) != b]
    meta = _meta(templates, templates, genuine + impostor, [1] * 4 + [0] * len(impostor))
    result, table = evaluate_ijb_features(meta, features, far_targets=(0.0, 0.2, 0.5))
    assert result["n_genuine"] == 4 and result["n_impostor"] == len(impostor) == 7
    by_far = {p["far"]: p for p in result["tar_at_far"]}
    # the impostor pair (1, 8) scores 1.0; at FAR 0 nothing at or above it is accepted -> genuine pairs 1,2,3 (score 1) rejected too
    assert by_far[0.0]["tar"] == 0.0 and by_far[0.0]["false_accepts"] == 0
    # FAR 0.2 allows one false accept (1/7): the 1.0 scores pass, pair (7, 8) (score 0) does not
    assert by_far[0.2]["tar"] == 0.75 and by_far[0.2]["false_accepts"] == 1
    assert result["test_mode"] == "N1D1F1"
    assert table.columns.tolist() == ["template1", "template2", "label", "score"] and len(table) == 11


def test_evaluate_ijb_aligns_and_embeds_images(tmp_path):
    names = _write(tmp_path)
    for k, name in enumerate(names):
        image = np.zeros((16, 16, 3), dtype=np.uint8)
        image[..., k % 3] = 200  # templates 11: R,G,B; 22: R; 33: G,B
        (tmp_path / "loose_crop").mkdir(exist_ok=True)
        Image.fromarray(image).save(tmp_path / "loose_crop" / name)

    def colour(batch):
        return batch.astype(np.float64).mean(axis=(1, 2))

    meta = read_ijb_meta(tmp_path)
    # the landmarks as template: an identity warp, so each image keeps its uniform colour
    result, table = evaluate_ijb(meta, colour, batch_size=4, output_size=16, template=meta.landmarks[0], use_faceness=False)
    assert result["n_images"] == 6 and result["n_templates"] == 3 and result["n_media"] == 5
    scores = dict(zip(zip(table["template1"], table["template2"]), table["score"]))
    # template 11 = mean(image 1, image 2) (one media) + image 3; 22 = image 4; 33 = image 5 + image 6
    c = [colour(np.asarray(Image.open(tmp_path / "loose_crop" / n).convert("RGB"))[None])[0] for n in names]
    t11, t22, t33 = (c[0] + c[1]) / 2 + c[2], c[3], c[4] + c[5]
    cos = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    assert scores[(11, 22)] == pytest.approx(cos(t11, t22), abs=1e-5)
    assert scores[(11, 33)] == pytest.approx(cos(t11, t33), abs=1e-5)
    assert scores[(22, 33)] == pytest.approx(cos(t22, t33), abs=1e-5) and scores[(22, 33)] < 0.05
