#!/usr/bin/env python3
"""Golden for g3's country table (g3::assets::country_table_csv): the same table built in
Python from the same pinned package files.

Writes country_code,country,continent (sorted by code) from pycountry 24.6.1's
iso3166-1.json (common name where one exists) and pycountry-convert 0.7.2's mappings, read
as literals with `ast` (never imported or executed). The committed output is
tests/fixtures/countries.csv; the Rust build of the same files must equal it byte for byte.

    g3 fetch geoclip        # the pinned packages into ~/.cache/g3 (or $G3_CACHE_DIR)
    c=${G3_CACHE_DIR:-$HOME/.cache/g3}
    python3 tools/goldens/countries.py "$c/pycountry-24.6.1/iso3166-1.json" \
        "$c/pycountry-convert-0.7.2" tests/fixtures/countries.csv

Needs only the Python standard library (3.8 or newer).
"""
import ast, csv, json, sys
from pathlib import Path
iso, convert, out = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
def literal(path, name):
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit(f"fetch-assets: {path} has no {name}")
continent_of = literal(convert / "convert_country_alpha2_to_continent_code.py", "COUNTRY_ALPHA2_TO_CONTINENT_CODE")
continent_name = literal(convert / "convert_continent_code_to_continent_name.py", "CONTINENT_CODE_TO_CONTINENT_NAME")
countries = json.loads(iso.read_text(encoding="utf-8"))["3166-1"]
with open(out, "w", newline="", encoding="utf-8") as handle:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(["country_code", "country", "continent"])
    for country in sorted(countries, key=lambda c: c["alpha_2"]):
        code = country["alpha_2"]
        name = country.get("common_name", country["name"])
        writer.writerow([code, name, continent_name.get(continent_of.get(code, ""), "")])
