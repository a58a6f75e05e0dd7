//! Line numbers for error messages about text files (CSV readers in every crate use it).

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

/// The 1-based number of the first non-blank line at or after `byte_offset` in the file.
///
/// CSV parsers know a record's exact byte offset, but line counters fall behind after blank
/// lines (the csv crate's does). For the few rows that get reported, scanning the file again
/// up to the offset gives the line a user sees in an editor.
pub fn line_number_at(path: &Path, byte_offset: u64) -> io::Result<u64> {
    let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut line = 1;
    let mut remaining = byte_offset;
    while remaining > 0 {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            return Ok(line);
        }
        let take = chunk
            .len()
            .min(usize::try_from(remaining).unwrap_or(usize::MAX));
        line += chunk[..take].iter().filter(|byte| **byte == b'\n').count() as u64;
        reader.consume(take);
        remaining -= take as u64;
    }
    // The offset is where the parser resumed, before any blank lines it skipped.
    loop {
        match reader.fill_buf()?.first() {
            Some(b'\n') => line += 1,
            Some(b'\r') => {}
            _ => return Ok(line),
        }
        reader.consume(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_lines_and_crlf_are_counted() {
        let directory = std::env::temp_dir().join(format!("g3-core-lines-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        let path = directory.join("table.csv");
        std::fs::write(&path, "a,b\r\n1,2\r\n\r\n\n3,4\n").unwrap();
        assert_eq!(line_number_at(&path, 0).unwrap(), 1);
        assert_eq!(line_number_at(&path, 5).unwrap(), 2);
        // Offset 10 is just after "1,2\r\n": the blank lines are skipped to line 5.
        assert_eq!(line_number_at(&path, 10).unwrap(), 5);
        assert_eq!(line_number_at(&path, 1000).unwrap(), 6);
        std::fs::remove_dir_all(&directory).unwrap();
    }
}
