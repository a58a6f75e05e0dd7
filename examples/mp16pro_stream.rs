//! Streams an MP16-Pro metadata CSV with the reference's filters and reports rows per second
//! and peak memory: the reader holds one row at a time, so a 4.7M-row file needs no more
//! memory than a small one.
//!
//! ```sh
//! # writes a synthetic 4,700,000-row MP16-Pro-shaped file first when PATH does not exist
//! cargo run --release --example mp16pro_stream -- /tmp/mp16pro-synthetic.csv 4700000
//! ```

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use g3::data::{DatasetKind, MetadataOptions, MetadataReader};

fn write_synthetic(path: &Path, rows: u64) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(
        out,
        "IMG_ID,author,LAT,LON,neighbourhood,city,county,state,region,country,country_code,continent"
    )?;
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for row in 0..rows {
        let a = next();
        let lat = (a % 170_000) as f64 / 1000.0 - 85.0;
        let lon = ((a >> 20) % 360_000) as f64 / 1000.0 - 180.0;
        // About 1 row in 50 has no country, as in the real file's dropped rows.
        let country = if a % 50 == 0 { "" } else { "Italy" };
        writeln!(
            out,
            "{:02x}/{:02x}/{row}.jpg,\"user {}, photographer\",{lat},{lon},Monti,Rome,,Lazio,,{country},it,Europe",
            a & 0xff,
            (a >> 8) & 0xff,
            a % 1000
        )?;
    }
    out.flush()
}

/// Peak resident memory of this process in MiB (Linux), for the report.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut arguments = std::env::args().skip(1);
    let path = arguments
        .next()
        .ok_or("usage: mp16pro_stream PATH [ROWS]")?;
    let path = Path::new(&path);
    if !path.exists() {
        let rows: u64 = arguments.next().as_deref().unwrap_or("4700000").parse()?;
        eprintln!("writing {rows} synthetic rows to {}", path.display());
        write_synthetic(path, rows)?;
    }
    let started = Instant::now();
    let mut reader =
        MetadataReader::open(path, MetadataOptions::for_dataset(DatasetKind::Mp16Pro))?;
    let (mut rows, mut errors, mut checksum) = (0u64, 0u64, 0.0f64);
    for record in reader.by_ref() {
        match record {
            Ok(record) => {
                rows += 1;
                checksum += record.location.lat_deg();
            }
            Err(error) => {
                errors += 1;
                if errors <= 5 {
                    eprintln!("{error}");
                }
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{rows} rows kept, {} dropped (no country), {errors} errors in {seconds:.2} s: {:.0} rows/s; peak RSS {:.1} MiB (checksum {checksum:.1})",
        reader.dropped_rows(),
        (rows + reader.dropped_rows()) as f64 / seconds,
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    Ok(())
}
