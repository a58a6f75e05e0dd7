//! Retrieval results as CSV (`g3 index search`) and how far retrieved images are from the
//! query (`g3 retrieval-stats`).

use std::path::Path;

use g3_core::atomic::AtomicFile;
use g3_core::{DistanceMetric, Error as CoreError, GeoPoint, RetrievedNeighbor};

use crate::error::{IndexError, Result};

/// The header of [`write_neighbors_csv`]'s output.
pub const NEIGHBOR_COLUMNS: [&str; 6] = ["query", "rank", "key", "score", "LAT", "LON"];

/// Writes one row per retrieved neighbour — `query, rank, key, score, LAT, LON`, queries in
/// input order (0-based), ranks from 0 = best in the search direction — atomically: the
/// file appears complete or not at all.
pub fn write_neighbors_csv(path: &Path, results: &[Vec<RetrievedNeighbor>]) -> Result<()> {
    let file = AtomicFile::create(path)?;
    let csv_error = |source| CoreError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let handle = file.file().try_clone().map_err(IndexError::io(path))?;
    let mut writer = csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 20, handle));
    writer.write_record(NEIGHBOR_COLUMNS).map_err(csv_error)?;
    for (query, neighbors) in results.iter().enumerate() {
        for neighbor in neighbors {
            writer
                .write_record([
                    query.to_string(),
                    neighbor.rank.to_string(),
                    neighbor.key.to_string(),
                    neighbor.similarity.to_string(),
                    neighbor.location.lat_deg().to_string(),
                    neighbor.location.lon_deg().to_string(),
                ])
                .map_err(csv_error)?;
        }
    }
    writer.flush().map_err(IndexError::io(path))?;
    drop(writer);
    Ok(file.commit()?)
}

/// How far a query's retrieved images are from where the query was taken, for one `k`: the
/// paper's Table 3, which compares embeddings (CLIP alone, GeoCLIP-style, G3's Mercator
/// alignment) by how close their neighbours are on the ground.
///
/// For each query, the mean geodesic distance (WGS84) from its true location to its `k`
/// most similar database images; then the average, median, maximum and minimum of that mean
/// over the queries.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RetrievalDistances {
    /// Neighbours per query.
    pub k: usize,
    /// Queries counted.
    pub queries: usize,
    /// Average over queries of the mean distance to the top `k`, in km.
    pub average_km: f64,
    /// Median over queries, in km.
    pub median_km: f64,
    /// Largest per-query mean, in km.
    pub max_km: f64,
    /// Smallest per-query mean, in km.
    pub min_km: f64,
}

/// [`RetrievalDistances`] for each of `ks`, from each query's true location and its
/// neighbours ranked best first (at least `max(ks)` of them per query).
pub fn retrieval_distances(
    truth: &[GeoPoint],
    neighbors: &[Vec<RetrievedNeighbor>],
    ks: &[usize],
) -> Result<Vec<RetrievalDistances>> {
    if truth.len() != neighbors.len() {
        return Err(IndexError::InvalidConfig(format!(
            "{} query locations but {} neighbour lists",
            truth.len(),
            neighbors.len()
        )));
    }
    if truth.is_empty() {
        return Err(IndexError::InvalidConfig("no queries".into()));
    }
    ks.iter()
        .map(|&k| {
            if k == 0 {
                return Err(IndexError::InvalidConfig("k must be at least 1".into()));
            }
            let mut means = Vec::with_capacity(truth.len());
            for (query, (location, found)) in truth.iter().zip(neighbors).enumerate() {
                if found.len() < k {
                    return Err(IndexError::InvalidConfig(format!(
                        "query {query} has {} neighbours, fewer than k = {k} (is the database that small?)",
                        found.len()
                    )));
                }
                let total: f64 = found[..k]
                    .iter()
                    .map(|neighbor| {
                        DistanceMetric::Geodesic.distance_km(*location, neighbor.location)
                    })
                    .sum();
                means.push(total / k as f64);
            }
            means.sort_by(f64::total_cmp);
            let count = means.len();
            let median = if count % 2 == 1 {
                means[count / 2]
            } else {
                (means[count / 2 - 1] + means[count / 2]) / 2.0
            };
            Ok(RetrievalDistances {
                k,
                queries: count,
                average_km: means.iter().sum::<f64>() / count as f64,
                median_km: median,
                max_km: means[count - 1],
                min_km: means[0],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neighbor(rank: usize, lat: f64, lon: f64) -> RetrievedNeighbor {
        RetrievedNeighbor {
            key: rank as u64,
            rank,
            similarity: 1.0,
            location: GeoPoint::new(lat, lon).unwrap(),
        }
    }

    #[test]
    fn distances_are_averaged_per_query_then_summarised() {
        let equator = |lon: f64| GeoPoint::new(0.0, lon).unwrap();
        let truth = [equator(0.0), equator(10.0), equator(20.0)];
        // One degree of longitude on the equator is 111.32 km on WGS84.
        let neighbors = vec![
            vec![neighbor(0, 0.0, 0.0), neighbor(1, 0.0, 2.0)],
            vec![neighbor(0, 0.0, 11.0), neighbor(1, 0.0, 13.0)],
            vec![neighbor(0, 0.0, 24.0), neighbor(1, 0.0, 24.0)],
        ];
        let stats = retrieval_distances(&truth, &neighbors, &[1, 2]).unwrap();
        let degree = 111.319_49;
        let close = |a: f64, b: f64| (a - b).abs() < 0.01;
        assert_eq!(stats[0].k, 1);
        assert!(close(stats[0].average_km, degree * 5.0 / 3.0), "{stats:?}");
        assert!(close(stats[0].median_km, degree));
        assert!(close(stats[0].min_km, 0.0));
        assert!(close(stats[0].max_km, 4.0 * degree));
        // Per-query means with k = 2: 1, 2 and 4 degrees.
        assert!(close(stats[1].median_km, 2.0 * degree));
        assert!(close(stats[1].average_km, 7.0 / 3.0 * degree));
        assert_eq!(stats[1].queries, 3);
        let short = retrieval_distances(&truth, &neighbors, &[3]).unwrap_err();
        assert!(short.to_string().contains("fewer than k = 3"), "{short}");
    }
}
