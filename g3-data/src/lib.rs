//! Data: the datasets G3 trains and evaluates on, and the text it derives from locations.
//!
//! This crate will hold streaming readers for MP16-Pro, IM2GPS3K and YFCC4K metadata, image
//! sources (folders and tar shards), the "A street view photo taken in ..." description
//! builder and an offline reverse geocoder. The crate is empty until those land.
#![deny(missing_docs)]
