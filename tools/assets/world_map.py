#!/usr/bin/env python3
"""The world map `g3 serve` and `g3 report` draw: Natural Earth's 1:110m countries (public
domain) as the npm package `world-atlas` 2.0.2 (ISC) ships them, turned into one SVG path.

Fetches the package with `npm pack` (pinned version, sha256-checked), decodes its TopoJSON
(`countries-110m.json`: quantised, delta-encoded arcs shared between neighbours) and writes
src/web/world-110m.path: the path data of every country outline in an equirectangular
projection whose viewBox is `0 0 360 180` (x = longitude + 180, y = 90 - latitude), so that
a marker at (lat, lon) goes at (lon + 180, 90 - lat) with no projection code on either side.
Rings across the antimeridian are drawn twice, 360 degrees apart, and clipped by the viewBox.
The output is committed; this script is how it was made.

    python3 tools/assets/world_map.py
"""

import hashlib
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

PACKAGE, VERSION = "world-atlas", "2.0.2"
SHA256 = "032e7765f2ce00edaeafec23ff22bc3b77e42987c257da944cc585b452c05b97"
OUTPUT = Path(__file__).resolve().parents[2] / "src" / "web" / "world-110m.path"


def fetch(directory):
    subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent"], cwd=directory, check=True,
                   stdout=subprocess.DEVNULL)
    archive = Path(directory) / f"{PACKAGE}-{VERSION}.tgz"
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{archive}: sha256 {digest}, expected {SHA256}")
    with tarfile.open(archive) as tar:
        return json.load(tar.extractfile("package/countries-110m.json"))


def decode_arcs(topology):
    (sx, sy), (tx, ty) = topology["transform"]["scale"], topology["transform"]["translate"]
    arcs = []
    for arc in topology["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)
    return arcs


def ring(arcs, indices):
    points = []
    for index in indices:
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        points.extend(arc if not points else arc[1:])
    return points


def main():
    with tempfile.TemporaryDirectory() as directory:
        topology = fetch(directory)
    arcs = decode_arcs(topology)
    commands = []
    for geometry in topology["objects"]["countries"]["geometries"]:
        polygons = {"Polygon": [geometry.get("arcs", [])],
                    "MultiPolygon": geometry.get("arcs", [])}.get(geometry.get("type"), [])
        for polygon in polygons:
            for indices in polygon:
                points = ring(arcs, indices)
                if len(points) < 3:
                    continue
                # A ring across the antimeridian (Russia's east, Fiji) is unwrapped into one
                # continuous shape and drawn twice, 360 degrees apart; the viewBox clips both.
                unwrapped = [points[0][0]]
                for (previous, _), (lon, _) in zip(points, points[1:]):
                    step = (lon - previous + 180) % 360 - 180
                    unwrapped.append(unwrapped[-1] + step)
                crosses = max(unwrapped) > 180 or min(unwrapped) < -180
                shifts = [0, -360 if max(unwrapped) > 180 else 360] if crosses else [0]
                for shift in shifts:
                    text = " ".join(f"{lon + shift + 180:.2f},{90 - lat:.2f}"
                                    for lon, (_, lat) in zip(unwrapped, points))
                    commands.append(f"M{text}Z")
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text("".join(commands) + "\n")
    print(f"{len(commands)} rings, {OUTPUT.stat().st_size:,} bytes -> {OUTPUT}")


if __name__ == "__main__":
    main()
