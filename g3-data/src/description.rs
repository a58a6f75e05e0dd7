//! The text G3 aligns images with: "A street view photo taken in {city}, {state}, {country}".

use serde::{Deserialize, Serialize};

use crate::geocoder::PlaceMatch;

/// An administrative level of MP16-Pro's metadata (Nominatim's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LocationLevel {
    /// `neighbourhood`.
    Neighbourhood,
    /// `city`.
    City,
    /// `county`.
    County,
    /// `state`.
    State,
    /// `region`.
    Region,
    /// `country`.
    Country,
    /// `country_code`.
    CountryCode,
    /// `continent`.
    Continent,
}

impl LocationLevel {
    /// Every level, finest first, as MP16-Pro's columns are named.
    pub const ALL: [LocationLevel; 8] = [
        LocationLevel::Neighbourhood,
        LocationLevel::City,
        LocationLevel::County,
        LocationLevel::State,
        LocationLevel::Region,
        LocationLevel::Country,
        LocationLevel::CountryCode,
        LocationLevel::Continent,
    ];

    /// The MP16-Pro column name.
    pub fn column(self) -> &'static str {
        match self {
            LocationLevel::Neighbourhood => "neighbourhood",
            LocationLevel::City => "city",
            LocationLevel::County => "county",
            LocationLevel::State => "state",
            LocationLevel::Region => "region",
            LocationLevel::Country => "country",
            LocationLevel::CountryCode => "country_code",
            LocationLevel::Continent => "continent",
        }
    }
}

/// The names of a location at each level; empty where unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LocationNames {
    /// Neighbourhood.
    pub neighbourhood: String,
    /// City (a GeoNames place name from the offline geocoder).
    pub city: String,
    /// County (GeoNames admin2).
    pub county: String,
    /// State (GeoNames admin1).
    pub state: String,
    /// Region.
    pub region: String,
    /// Country name.
    pub country: String,
    /// ISO 3166-1 alpha-2 code.
    pub country_code: String,
    /// Continent.
    pub continent: String,
}

impl LocationNames {
    /// The name at `level`.
    pub fn get(&self, level: LocationLevel) -> &str {
        match level {
            LocationLevel::Neighbourhood => &self.neighbourhood,
            LocationLevel::City => &self.city,
            LocationLevel::County => &self.county,
            LocationLevel::State => &self.state,
            LocationLevel::Region => &self.region,
            LocationLevel::Country => &self.country,
            LocationLevel::CountryCode => &self.country_code,
            LocationLevel::Continent => &self.continent,
        }
    }
}

impl From<&PlaceMatch<'_>> for LocationNames {
    /// MP16-Pro's names for a geocoded place (see [`PlaceMatch::name`]).
    fn from(matched: &PlaceMatch<'_>) -> Self {
        let name = |level| matched.name(level).to_string();
        LocationNames {
            city: name(LocationLevel::City),
            county: name(LocationLevel::County),
            state: name(LocationLevel::State),
            country: name(LocationLevel::Country),
            country_code: name(LocationLevel::CountryCode),
            continent: name(LocationLevel::Continent),
            ..LocationNames::default()
        }
    }
}

/// How a location becomes a sentence. The default is G3's:
/// `"A street view photo taken in " + ", ".join(non-empty [city, state, country])`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DescriptionTemplate {
    /// Text before the names.
    pub prefix: String,
    /// Levels named, in order; empty names are skipped.
    pub levels: Vec<LocationLevel>,
    /// Between two names.
    pub separator: String,
}

impl Default for DescriptionTemplate {
    fn default() -> Self {
        DescriptionTemplate {
            prefix: "A street view photo taken in ".into(),
            levels: vec![
                LocationLevel::City,
                LocationLevel::State,
                LocationLevel::Country,
            ],
            separator: ", ".into(),
        }
    }
}

impl DescriptionTemplate {
    /// The sentence for `names`. Names that are empty or only whitespace are skipped, as
    /// G3 skips missing values.
    pub fn describe(&self, names: &LocationNames) -> String {
        let mut sentence = String::new();
        self.write_description(|level| names.get(level), &mut sentence);
        sentence
    }

    /// [`DescriptionTemplate::describe`] over any source of names, into a reused buffer:
    /// `out` is cleared first. Writing millions of rows this way copies no name.
    pub fn write_description<'a>(
        &self,
        name_at: impl Fn(LocationLevel) -> &'a str,
        out: &mut String,
    ) {
        out.clear();
        out.push_str(&self.prefix);
        let mut first = true;
        for &level in &self.levels {
            let name = name_at(level).trim();
            if name.is_empty() {
                continue;
            }
            if !first {
                out.push_str(&self.separator);
            }
            out.push_str(name);
            first = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g3_template_skips_missing_levels() {
        let template = DescriptionTemplate::default();
        let mut names = LocationNames {
            city: "Rome".into(),
            state: "Lazio".into(),
            country: "Italy".into(),
            continent: "Europe".into(),
            ..LocationNames::default()
        };
        assert_eq!(
            template.describe(&names),
            "A street view photo taken in Rome, Lazio, Italy"
        );
        names.state = "  ".into();
        assert_eq!(
            template.describe(&names),
            "A street view photo taken in Rome, Italy"
        );
    }

    #[test]
    fn a_reused_buffer_holds_only_the_latest_sentence() {
        let template = DescriptionTemplate::default();
        let mut sentence = String::from("stale text");
        let rome = |level| match level {
            LocationLevel::City => "Rome",
            LocationLevel::Country => " Italy ",
            _ => "",
        };
        template.write_description(rome, &mut sentence);
        assert_eq!(sentence, "A street view photo taken in Rome, Italy");
        template.write_description(|_| "  ", &mut sentence);
        assert_eq!(sentence, "A street view photo taken in ");
    }

    #[test]
    fn levels_and_wording_are_configurable() {
        let template = DescriptionTemplate {
            prefix: "Taken in ".into(),
            levels: vec![LocationLevel::Country, LocationLevel::Continent],
            separator: " / ".into(),
        };
        let names = LocationNames {
            country: "Japan".into(),
            continent: "Asia".into(),
            ..LocationNames::default()
        };
        assert_eq!(template.describe(&names), "Taken in Japan / Asia");
        let json = serde_json::to_string(&template).unwrap();
        assert!(
            json.contains(r#""levels":["country","continent"]"#),
            "{json}"
        );
    }
}
