//! GeoCLIP's pretrained GPS encoder on a few places: prints the cosine similarity of every
//! pair of embeddings beside their distance. The encoder was trained to match *image*
//! embeddings, not other locations, so location-to-location similarity follows distance only
//! loosely; G3's Geo-verification compares each candidate with the image instead.
//!
//! ```sh
//! scripts/fetch-assets.sh            # GeoCLIP's weights into ~/.cache/g3
//! cargo run --release --example gps_similarity
//! ```

use g3::align::{ComputeDevice, GpsEncoder, GpsEncoderConfig};
use g3::core::assets::Asset;
use g3::core::{GpsEmbedder, cosine_similarity};
use g3::{DistanceMetric, GeoPoint};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let places = [
        ("Paris", "48.8566, 2.3522"),
        ("Versailles", "48.8049, 2.1204"),
        ("London", "51.5074, -0.1278"),
        ("New York", "40.7128, -74.0060"),
        ("Sydney", "-33.8688, 151.2093"),
    ];
    let points = places
        .iter()
        .map(|(_, text)| text.parse::<GeoPoint>())
        .collect::<Result<Vec<_>, _>>()?;

    let weights = Asset::GEOCLIP_LOCATION_ENCODER.require()?;
    let device = ComputeDevice::Cpu.to_device()?;
    let encoder = GpsEncoder::load(&weights, GpsEncoderConfig::geoclip(), &device)?;
    let embeddings = encoder.embed_locations(&points)?;

    println!("cosine similarity of GeoCLIP GPS embeddings (distance in km):");
    print!("{:>12}", "");
    for (name, _) in &places {
        print!("{name:>18}");
    }
    println!();
    for (row, (name, _)) in places.iter().enumerate() {
        print!("{name:>12}");
        for column in 0..places.len() {
            let similarity = cosine_similarity(embeddings.row(row), embeddings.row(column))?;
            let km = DistanceMetric::Geodesic.distance_km(points[row], points[column]);
            print!("{:>18}", format!("{similarity:.3} ({km:.0})"));
        }
        println!();
    }
    Ok(())
}
