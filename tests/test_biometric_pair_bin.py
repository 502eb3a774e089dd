"""insightface .bin pair sets: round trip, lazy RGB decoding, structure and known-count checks."""

import pickle

import numpy as np
import pytest

from overspec.data.biometric.pair_bin import KNOWN_PAIR_COUNTS, encode_image, read_pair_set, write_pair_set
from overspec.errors import UserError


def _images(n, size=8, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def test_round_trip_is_lossless_with_png_and_keeps_rgb_order(tmp_path):
    images = _images(6)
    images[0][:] = (255, 0, 0)  # pure red must come back red (not BGR)
    write_pair_set(tmp_path / "toy.bin", images, [True, False, True], fmt="PNG")
    pairs = read_pair_set(tmp_path / "toy.bin")
    assert pairs.name == "toy" and pairs.n_pairs == 3 and len(pairs) == 6
    assert pairs.issame.tolist() == [True, False, True]
    for k in range(6):
        assert np.array_equal(pairs.image(k), images[k])
    assert pairs.image(0)[0, 0].tolist() == [255, 0, 0]
    batches = list(pairs.batches(4))
    assert [b.shape for b in batches] == [(4, 8, 8, 3), (2, 8, 8, 3)]
    assert np.array_equal(np.concatenate(batches), np.stack(images))


def test_images_are_decoded_lazily(tmp_path):
    images = _images(4)
    payload = ([encode_image(images[0], "PNG"), b"not an image", encode_image(images[2], "PNG"), b"junk"], [True, False])
    (tmp_path / "toy.bin").write_bytes(pickle.dumps(payload))
    pairs = read_pair_set(tmp_path / "toy.bin")  # reading does not decode
    assert np.array_equal(pairs.image(2), images[2])
    with pytest.raises(UserError, match="image 1 of"):
        pairs.image(1)


def test_jpeg_as_insightface_writes_it(tmp_path):
    image = np.zeros((16, 16, 3), dtype=np.uint8)
    image[..., 2] = 200  # blue
    write_pair_set(tmp_path / "toy.bin", [image, image], [True])
    decoded = read_pair_set(tmp_path / "toy.bin").image(0)
    assert decoded.shape == (16, 16, 3) and abs(int(decoded[8, 8, 2]) - 200) <= 3 and decoded[8, 8, 0] <= 3


def test_known_benchmarks_must_have_their_pair_counts(tmp_path):
    images = _images(20)
    write_pair_set(tmp_path / "lfw.bin", images, [True] * 5 + [False] * 5, fmt="PNG")
    with pytest.raises(UserError, match="lfw has 6000"):
        read_pair_set(tmp_path / "lfw.bin")
    # the same file under a toy name is accepted; an explicit known name is checked
    write_pair_set(tmp_path / "toy_pairs.bin", images, [True] * 5 + [False] * 5, fmt="PNG")
    assert read_pair_set(tmp_path / "toy_pairs.bin").n_pairs == 10
    with pytest.raises(UserError, match="cfp_fp has 7000"):
        read_pair_set(tmp_path / "toy_pairs.bin", name="cfp_fp")
    assert KNOWN_PAIR_COUNTS == {"lfw": 6000, "cfp_fp": 7000, "cfp_ff": 7000, "agedb_30": 6000, "calfw": 6000, "cplfw": 6000}


def test_known_count_passes_for_a_full_sized_set(tmp_path):
    tiny = encode_image(np.zeros((2, 2, 3), np.uint8), "PNG")
    (tmp_path / "calfw.bin").write_bytes(pickle.dumps(([tiny] * 12000, [True] * 3000 + [False] * 3000)))
    assert read_pair_set(tmp_path / "calfw.bin").n_pairs == 6000
    (tmp_path / "agedb_30.bin").write_bytes(pickle.dumps(([tiny] * 12000, [True] * 3001 + [False] * 2999)))
    with pytest.raises(UserError, match="3001 genuine"):
        read_pair_set(tmp_path / "agedb_30.bin")


@pytest.mark.parametrize(
    "payload, message",
    [
        (([b"a", b"b", b"c"], [True]), "3 images for 1 pairs"),
        (([b"a", b"b"], ["yes"]), "list of booleans"),
        (([b"a", 3], [True]), "list of encoded images"),
        ((b"a", b"b", b"c"), "expected a pickled"),
    ],
)
def test_malformed_sets_are_user_errors(tmp_path, payload, message):
    (tmp_path / "toy.bin").write_bytes(pickle.dumps(payload))
    with pytest.raises(UserError, match=message):
        read_pair_set(tmp_path / "toy.bin")


def test_images_of_different_sizes_cannot_be_batched(tmp_path):
    images = _images(2, size=8) + _images(2, size=9)
    write_pair_set(tmp_path / "toy.bin", images, [True, False], fmt="PNG")
    with pytest.raises(UserError, match="one size"):
        list(read_pair_set(tmp_path / "toy.bin").batches(4))
