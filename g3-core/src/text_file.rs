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

/// [`line_number_at`] for a reader going forward through a file: each call scans only the
/// bytes since the previous one, so numbering every record of a large file stays linear.
#[derive(Debug)]
pub struct LineCounter {
    reader: BufReader<File>,
    offset: u64,
    line: u64,
}

impl LineCounter {
    /// A counter at the start of the file at `path` (opened separately from the parser).
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(LineCounter {
            reader: BufReader::with_capacity(1 << 16, File::open(path)?),
            offset: 0,
            line: 1,
        })
    }

    /// The 1-based number of the first non-blank line at or after `byte_offset`. Offsets
    /// must not decrease from call to call; a smaller one gets the previous answer.
    pub fn line_at(&mut self, byte_offset: u64) -> io::Result<u64> {
        while self.offset < byte_offset {
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                return Ok(self.line);
            }
            let take = chunk
                .len()
                .min(usize::try_from(byte_offset - self.offset).unwrap_or(usize::MAX));
            self.line += chunk[..take].iter().filter(|byte| **byte == b'\n').count() as u64;
            self.reader.consume(take);
            self.offset += take as u64;
        }
        // Skip the blank lines the parser skipped; the next offset lies beyond them.
        loop {
            match self.reader.fill_buf()?.first() {
                Some(b'\n') => self.line += 1,
                Some(b'\r') => {}
                _ => return Ok(self.line),
            }
            self.reader.consume(1);
            self.offset += 1;
        }
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
        let mut counter = LineCounter::open(&path).unwrap();
        let lines: Vec<u64> = [0, 5, 10, 1000]
            .iter()
            .map(|&offset| counter.line_at(offset).unwrap())
            .collect();
        assert_eq!(lines, [1, 2, 5, 6]);
        std::fs::remove_dir_all(&directory).unwrap();
    }
}
