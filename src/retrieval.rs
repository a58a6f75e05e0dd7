//! Retrieval results as CSV (`g3 index search`).

use std::path::Path;

use g3_core::RetrievedNeighbor;

use crate::atomic_file::AtomicFile;
use crate::error::{Error, Result};

/// The header of [`write_neighbors_csv`]'s output.
pub const NEIGHBOR_COLUMNS: [&str; 6] = ["query", "rank", "key", "score", "LAT", "LON"];

/// Writes one row per retrieved neighbour — `query, rank, key, score, LAT, LON`, queries in
/// input order (0-based), ranks from 0 = best in the search direction — atomically: the
/// file appears complete or not at all.
pub fn write_neighbors_csv(path: &Path, results: &[Vec<RetrievedNeighbor>]) -> Result<()> {
    let file = AtomicFile::create(path)?;
    let csv_error = |source| Error::Csv {
        path: path.to_path_buf(),
        source,
    };
    let handle = file.file().try_clone().map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
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
    writer.flush().map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    drop(writer);
    file.commit()
}
