#!/usr/bin/env python3
"""GPS encoder goldens: geoclip's own LocationEncoder on its pretrained weights.

Writes g3-align/tests/fixtures/gps_encoder/:

- coordinates.csv             LAT,LON of 72 points (poles, antimeridian, (0,0), gallery points,
                              random), rounded to float32 so every pipeline sees the same input
- equal_earth_input_f32.npy   [n, 2] GeoCLIP's equal_earth_projection in float32 (as shipped)
- mercator_input_f64.npy      [n, 2] G3's encoder input in float64: pyproj EPSG:4326 -> 3857,
                              [northing, easting] / 20037508.3427892
- mercator_input_f32.npy      [n, 2] the same as G3 computes it (pyproj, then float32)
- equal_earth_f64.npy         [n, 512] geoclip LocationEncoder in float64 (model and input)
- equal_earth_f32.npy         [n, 512] the same in float32, as geoclip runs it
- mercator_f64.npy            [n, 512] the pretrained capsules fed G3's Mercator input, float64
- mercator_f32.npy            [n, 512] the same in float32, as G3 runs it
- tiny_g3.pth / tiny_g3.safetensors
                              a G3-structured state_dict with a tiny random location encoder
                              (sigmas 2^0, 2^4, 2^8; encoded 8; hidden 16 x 3; output 12), the
                              location_projection_else head (12 -> 12 -> 20) and a few unrelated
                              CLIP-like keys, saved with torch.save and safetensors
- tiny_g3_mercator_f64.npy    [n, 20] head(encoder(mercator input)) of that model, float64
- tiny_g3_broken.pth          the tiny checkpoint with one key missing, one unexpected and one
                              mis-shaped, for error reporting tests

G3's reference does not clamp latitudes: at the poles pyproj returns an infinite northing and
G3 a NaN embedding. g3-rs clamps to +-85.05112878 degrees (the edge of the Web Mercator
square); this script applies the same clamp before pyproj so the poles can be compared.

    python3 -m venv /tmp/g3-goldens && /tmp/g3-goldens/bin/pip install -r tools/goldens/requirements.txt
    /tmp/g3-goldens/bin/python tools/goldens/gps_encoder.py
"""

import csv
import random
from pathlib import Path

import geoclip
import numpy as np
import pyproj
import safetensors
import torch
from geoclip.model.location_encoder import LocationEncoder, equal_earth_projection
from geoclip.model.misc import file_dir
from safetensors.torch import save_file

assert torch.__version__.split("+")[0] == "2.15.0", torch.__version__
assert pyproj.__version__ == "3.7.2", pyproj.__version__
assert np.__version__ == "2.4.6", np.__version__
assert safetensors.__version__ == "0.8.0", safetensors.__version__
assert (Path(geoclip.__file__).parent.parent / "geoclip-1.3.0.dist-info").is_dir(), "geoclip 1.3.0 is required"

OUT = Path(__file__).resolve().parents[2] / "g3-align/tests/fixtures/gps_encoder"
MERCATOR_SCALE = 20037508.3427892
MAX_MERCATOR_LAT = 85.05112877980659


def coordinates():
    fixed = [
        (90.0, 0.0), (-90.0, 0.0), (89.9999, 45.0), (-89.9999, -135.0),
        (85.0, 10.0), (-85.0, -10.0), (0.0, 0.0), (0.0, 180.0), (0.0, -180.0),
        (0.0, 179.9999), (0.0, -179.9999), (10.0, 179.5), (-10.0, -179.5),
        (48.8566, 2.3522), (-33.8688, 151.2093), (40.7128, -74.006), (35.6762, 139.6503),
        (-22.9068, -43.1729), (64.1466, -21.9426), (-77.846, 166.676),
    ]
    with open(Path(file_dir) / "gps_gallery/coordinates_100K.csv") as file:
        gallery = [(float(row["LAT"]), float(row["LON"])) for row in csv.DictReader(file)]
    rng = random.Random(3)
    picked = rng.sample(gallery, 32)
    uniform = [(float(np.degrees(np.arcsin(rng.uniform(-1, 1)))), rng.uniform(-180, 180)) for _ in range(20)]
    points = np.array(fixed + picked + uniform, dtype=np.float32)
    # 180 is -180 after g3-core's longitude normalisation; keep the input in [-180, 180).
    points[:, 1] = np.where(points[:, 1] >= 180.0, points[:, 1] - 360.0, points[:, 1])
    return points


def mercator_input(points, dtype):
    """G3's CustomLocationEncoder input: float32 degrees -> pyproj (float64) -> [y, x] / scale."""
    lat = np.clip(points[:, 0].astype(np.float32).astype(np.float64), -MAX_MERCATOR_LAT, MAX_MERCATOR_LAT)
    lon = points[:, 1].astype(np.float32).astype(np.float64)
    transformer = pyproj.Transformer.from_proj(pyproj.Proj("epsg:4326"), pyproj.Proj("epsg:3857"), always_xy=True)
    x, y = transformer.transform(lon, lat)
    projected = np.stack([y, x], axis=1)
    if dtype == torch.float32:
        # torch.Tensor(list) makes float32, then the division happens in float32.
        return torch.tensor(projected, dtype=torch.float32) / MERCATOR_SCALE
    return torch.tensor(projected, dtype=torch.float64) / MERCATOR_SCALE


def capsule_sum(model, projected):
    return sum(model._modules[f"LocEnc{i}"](projected) for i in range(model.n))


def tiny_g3(points):
    torch.manual_seed(5)
    encoder = LocationEncoder(from_pretrained=False)
    for i, sigma in enumerate(encoder.sigma):
        capsule = encoder._modules[f"LocEnc{i}"]
        capsule.capsule[0].b.data = torch.randn(8, 2) * sigma
        capsule.capsule[1] = torch.nn.Linear(16, 16)
        capsule.capsule[3] = torch.nn.Linear(16, 16)
        capsule.capsule[5] = torch.nn.Linear(16, 16)
        capsule.head[0] = torch.nn.Linear(16, 12)
    head = torch.nn.Sequential(torch.nn.Linear(12, 12), torch.nn.ReLU(), torch.nn.Linear(12, 20))
    state = {f"location_encoder.{k}": v.clone() for k, v in encoder.state_dict().items()}
    state.update({f"location_projection_else.{k}": v.clone() for k, v in head.state_dict().items()})
    # Unrelated keys of a G3 checkpoint that a GPS loader must ignore.
    state["vision_model.embeddings.class_embedding"] = torch.randn(4)
    state["logit_scale1"] = torch.tensor(3.99)
    encoder_f64, head_f64 = encoder.double(), head.double()
    with torch.no_grad():
        output = head_f64(capsule_sum(encoder_f64, mercator_input(points, torch.float64)))
    broken = dict(state)
    del broken["location_encoder.LocEnc1.head.0.bias"]
    broken["location_encoder.LocEnc0.capsule.7.weight"] = torch.zeros(16, 16)
    broken["location_projection_else.2.weight"] = torch.zeros(21, 12)
    return state, output.numpy(), broken


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    points = coordinates()
    with open(OUT / "coordinates.csv", "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["LAT", "LON"])
        writer.writerows([(repr(float(lat)), repr(float(lon))) for lat, lon in points])

    model32 = LocationEncoder(from_pretrained=True).eval()
    model64 = LocationEncoder(from_pretrained=True).eval().double()
    with torch.no_grad():
        gps32 = torch.tensor(points, dtype=torch.float32)
        gps64 = torch.tensor(points, dtype=torch.float64)
        np.save(OUT / "equal_earth_input_f32.npy", equal_earth_projection(gps32).numpy())
        np.save(OUT / "equal_earth_f32.npy", model32(gps32).numpy())
        # model64(gps64) would sum the capsules into a float32 buffer (torch.zeros' default
        # dtype); project and sum in float64 with geoclip's own functions instead.
        np.save(OUT / "equal_earth_f64.npy", capsule_sum(model64, equal_earth_projection(gps64)).numpy())
        mercator32 = mercator_input(points, torch.float32)
        mercator64 = mercator_input(points, torch.float64)
        np.save(OUT / "mercator_input_f32.npy", mercator32.numpy())
        np.save(OUT / "mercator_input_f64.npy", mercator64.numpy())
        np.save(OUT / "mercator_f32.npy", capsule_sum(model32, mercator32).numpy())
        np.save(OUT / "mercator_f64.npy", capsule_sum(model64, mercator64).numpy())

    state, tiny_output, broken = tiny_g3(points)
    torch.save(state, OUT / "tiny_g3.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, OUT / "tiny_g3.safetensors")
    np.save(OUT / "tiny_g3_mercator_f64.npy", tiny_output)
    torch.save(broken, OUT / "tiny_g3_broken.pth")
    print(f"wrote {len(points)} points to {OUT}")


if __name__ == "__main__":
    main()
