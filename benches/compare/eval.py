#!/usr/bin/env python3
"""`g3 eval` against the reference evaluation (pandas + geopy), same file, same machine.

The reference scores predictions with
    df['geodesic'] = df.apply(lambda x: geodesic((x.LAT, x.LON), (x.LAT_pred, x.LON_pred)).km, axis=1)
then prints (df.geodesic < t).mean() for each threshold. This script writes a synthetic
predictions file, runs both, checks that they agree, and prints the times and the ratio.

    /tmp/g3-goldens/bin/pip install -r tools/goldens/requirements.txt pandas==2.2.3
    cargo build --release
    /tmp/g3-goldens/bin/python benches/compare/eval.py --rows 1000000
"""

import argparse
import random
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
from geopy.distance import geodesic

THRESHOLDS_KM = [1, 25, 200, 750, 2500]
ROOT = Path(__file__).resolve().parents[2]


def write_predictions(path, rows, seed=1):
    rng = random.Random(seed)
    with path.open("w") as file:
        file.write("IMG_ID,LAT,LON,LAT_pred,LON_pred,scene\n")
        for index in range(rows):
            lat, lon = rng.uniform(-80, 80), rng.uniform(-180, 180)
            lat_pred = min(90.0, max(-90.0, lat + rng.uniform(-3, 3)))
            lon_pred = lon + rng.uniform(-3, 3)
            file.write(f"{index}.jpg,{lat:.6f},{lon:.6f},{lat_pred:.6f},{lon_pred:.6f},outdoor\n")


def reference(input_path, output_path):
    df = pd.read_csv(input_path)
    df["geodesic"] = df.apply(
        lambda x: geodesic((x["LAT"], x["LON"]), (x["LAT_pred"], x["LON_pred"])).km, axis=1
    )
    df.to_csv(output_path, index=False)
    return [100.0 * (df["geodesic"] < t).mean() for t in THRESHOLDS_KM]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--g3", default=str(ROOT / "target/release/g3"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        directory = Path(directory)
        predictions = directory / "predictions.csv"
        write_predictions(predictions, args.rows)

        start = time.perf_counter()
        ours = subprocess.run(
            [args.g3, "eval", "--json", "--predictions", str(predictions), "--output", str(directory / "ours.csv")],
            check=True, capture_output=True, text=True,
        )
        ours_seconds = time.perf_counter() - start

        start = time.perf_counter()
        reference_percent = reference(predictions, directory / "reference.csv")
        reference_seconds = time.perf_counter() - start

        import json
        ours_percent = [row["percent"] for row in json.loads(ours.stdout)["thresholds"]]
        for t, a, b in zip(THRESHOLDS_KM, ours_percent, reference_percent):
            assert abs(a - b) < 1e-9, f"accuracy at {t} km differs: g3 {a} vs reference {b}"
        ours_km = pd.read_csv(directory / "ours.csv")["geodesic"]
        reference_km = pd.read_csv(directory / "reference.csv")["geodesic"]
        worst = ((ours_km - reference_km).abs() / reference_km.clip(lower=1e-9)).max()

    print(f"rows: {args.rows}")
    print(f"g3 eval (whole process): {ours_seconds:.2f} s")
    print(f"pandas + geopy reference: {reference_seconds:.2f} s")
    print(f"speed-up: {reference_seconds / ours_seconds:.1f}x; accuracies identical; "
          f"worst relative distance difference {worst:.1e}")


if __name__ == "__main__":
    main()
