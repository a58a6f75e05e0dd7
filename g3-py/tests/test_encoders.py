"""The encoders from Python against PyTorch's goldens (tools/goldens/clip.py, gps_encoder.py)."""

import numpy as np
import pytest

import g3rs
from conftest import CLIP, DATABASE_IMAGES, photo, read_npy

# The Rust parity tests' bound (g3-align/tests/clip_parity.rs).
MAX_ABS_DIFF = 1e-4


def normalized(values):
    return values / np.linalg.norm(values, axis=1, keepdims=True)


def test_g3_gps_embeddings_match_pytorch(g3_checkpoint):
    encoder = g3rs.GpsEncoder(g3_checkpoint)
    lines = (CLIP / "g3_coordinates.csv").read_text().splitlines()[1:]
    points = np.array([[float(v) for v in line.split(",")] for line in lines])
    embeddings = encoder.embed(points)
    assert embeddings.dtype == np.float32 and embeddings.shape == (len(points), encoder.dimension)
    np.testing.assert_allclose(normalized(embeddings), read_npy("g3_location.npy"), atol=MAX_ABS_DIFF)


def test_geoclip_location_encoder_loads_from_the_asset_cache():
    encoder = g3rs.GpsEncoder.geoclip()
    embeddings = encoder.embed([[48.8566, 2.3522], [40.7128, -74.006]])
    assert embeddings.shape == (2, 512)
    assert np.isfinite(embeddings).all()


def test_image_embeddings_match_pytorch(database_encoder, clip_directory):
    # The reference's pixel values: the fixture's uint8 crops, normalised as the processor does.
    import json

    config = json.loads((clip_directory / "preprocessor_config.json").read_text())
    pixels = read_npy("pixels_u8.npy").astype(np.float32) / 255.0
    pixels = (pixels - np.array(config["image_mean"], dtype=np.float32)) / np.array(
        config["image_std"], dtype=np.float32
    )
    pixels = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))
    embeddings = database_encoder.embed_pixels(pixels)
    np.testing.assert_allclose(embeddings, read_npy("g3_database.npy"), atol=MAX_ABS_DIFF)


def test_decoded_arrays_are_preprocessed_as_the_processor_does(database_encoder):
    # The reference's 224 x 224 crops: resizing and cropping keep them as they are.
    crops = list(read_npy("pixels_u8.npy"))
    embeddings = database_encoder.embed_arrays(crops)
    np.testing.assert_allclose(embeddings, read_npy("g3_database.npy"), atol=MAX_ABS_DIFF)
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        database_encoder.embed_arrays([np.zeros((4, 4), dtype=np.uint8)])


def test_photos_as_paths_bytes_and_pairs_give_the_same_embeddings(database_encoder):
    names = [name for name, _, _ in DATABASE_IMAGES[:3]]
    from_paths = database_encoder.embed([photo(name) for name in names])
    from_bytes = database_encoder.embed([photo(name).read_bytes() for name in names])
    from_pairs = database_encoder.embed([(name, photo(name).read_bytes()) for name in names])
    assert from_paths.shape == (3, database_encoder.dimension)
    np.testing.assert_array_equal(from_paths, from_bytes)
    np.testing.assert_array_equal(from_paths, from_pairs)


def test_encoder_errors_name_what_is_wrong(tmp_path, g3_checkpoint, clip_directory, database_encoder):
    with pytest.raises(g3rs.G3Error, match="nowhere.pth"):
        g3rs.ImageEncoder(tmp_path / "nowhere.pth")
    with pytest.raises(ValueError, match="kind"):
        g3rs.ImageEncoder(g3_checkpoint, kind="sideways", clip=clip_directory)
    with pytest.raises(g3rs.G3Error, match="missing.jpg"):
        database_encoder.embed([tmp_path / "missing.jpg"])
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(g3rs.G3Error, match="broken.jpg"):
        database_encoder.embed([tmp_path / "broken.jpg"])
    with pytest.raises(g3rs.G3Error, match="latitude"):
        g3rs.GpsEncoder(g3_checkpoint).embed([[100.0, 0.0]])
