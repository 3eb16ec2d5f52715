//! Layer 2: tape files. A tape file is a byte stream cut into records of
//! `block_size` bytes (the last one may be shorter) and ended by a tape mark.
//! A tape file is never empty: an empty one would be two tape marks in a row,
//! which marks the logical end of the tape.

use super::block::{Block, BlockDevice};
use super::error::Location;
use super::{TapeError, MAX_BLOCK_SIZE};

/// What a tape file holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStats {
    /// Data records (not counting the tape mark).
    pub records: u64,
    /// Bytes of all records.
    pub bytes: u64,
    /// CRC32C of all bytes of the file, in order.
    pub crc32c: u32,
}

fn check_block_size(block_size: usize) -> Result<(), TapeError> {
    if block_size == 0 || block_size > MAX_BLOCK_SIZE {
        return Err(TapeError::invalid(
            "block size",
            format!("1 to {MAX_BLOCK_SIZE} bytes"),
            block_size.to_string(),
        ));
    }
    Ok(())
}

/// Writes one tape file at the device's current position.
pub struct FileWriter<'a, D: BlockDevice + ?Sized> {
    dev: &'a mut D,
    block_size: usize,
    buf: Vec<u8>,
    stats: FileStats,
    crc: bool,
}

impl<'a, D: BlockDevice + ?Sized> FileWriter<'a, D> {
    pub fn new(dev: &'a mut D, block_size: usize) -> Result<Self, TapeError> {
        check_block_size(block_size)?;
        Ok(FileWriter {
            dev,
            block_size,
            buf: Vec::new(),
            stats: FileStats::default(),
            crc: true,
        })
    }

    /// Do not checksum the file as it is written ([`FileStats::crc32c`]
    /// stays 0): for a caller that knows the checksum already, e.g. from a
    /// segment it verifies on the way.
    pub fn without_crc(mut self) -> Self {
        self.crc = false;
        self
    }

    fn emit(&mut self, record: &[u8]) -> Result<(), TapeError> {
        self.dev.write_record(record)?;
        self.stats.records += 1;
        self.stats.bytes += record.len() as u64;
        if self.crc {
            self.stats.crc32c = crc32c::crc32c_append(self.stats.crc32c, record);
        }
        Ok(())
    }

    /// Append bytes to the file; full records go to the device at once.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), TapeError> {
        while !data.is_empty() {
            if self.buf.is_empty() && data.len() >= self.block_size {
                let (rec, rest) = data.split_at(self.block_size);
                self.emit(rec)?;
                data = rest;
                continue;
            }
            let take = (self.block_size - self.buf.len()).min(data.len());
            let (part, rest) = data.split_at(take);
            self.buf.extend_from_slice(part);
            data = rest;
            if self.buf.len() == self.block_size {
                let rec = std::mem::take(&mut self.buf);
                self.emit(&rec)?;
                self.buf = rec;
                self.buf.clear();
            }
        }
        Ok(())
    }

    /// Bytes written so far (including any buffered partial record).
    pub fn bytes_written(&self) -> u64 {
        self.stats.bytes + self.buf.len() as u64
    }

    /// Write the last (short) record and the tape mark.
    pub fn finish(mut self) -> Result<FileStats, TapeError> {
        if !self.buf.is_empty() {
            let rec = std::mem::take(&mut self.buf);
            self.emit(&rec)?;
        }
        if self.stats.records == 0 {
            return Err(TapeError::invalid("tape file", "at least one byte", "an empty file"));
        }
        self.dev.write_filemark()?;
        Ok(self.stats)
    }
}

/// Write `bytes` as one tape file of `block_size` records.
pub fn write_file<D: BlockDevice + ?Sized>(
    dev: &mut D,
    block_size: usize,
    bytes: &[u8],
) -> Result<FileStats, TapeError> {
    if bytes.is_empty() {
        return Err(TapeError::invalid("tape file", "at least one byte", "an empty file"));
    }
    let mut w = FileWriter::new(dev, block_size)?;
    w.write(bytes)?;
    w.finish()
}

/// Reads one tape file from the device's current position, record by
/// record, up to its tape mark.
pub struct FileReader<'a, D: BlockDevice + ?Sized> {
    dev: &'a mut D,
    max_record: usize,
    limit: u64,
    file: u32,
    buf: Vec<u8>,
    stats: FileStats,
    done: bool,
    crc: bool,
}

impl<'a, D: BlockDevice + ?Sized> FileReader<'a, D> {
    /// Records longer than `max_record` and files longer than `limit` bytes
    /// are errors.
    pub fn new(dev: &'a mut D, max_record: usize, limit: u64) -> Self {
        let file = dev.position().file;
        FileReader {
            dev,
            max_record,
            limit,
            file,
            buf: Vec::new(),
            stats: FileStats::default(),
            done: false,
            crc: true,
        }
    }

    /// Do not checksum the records as they are read ([`FileStats::crc32c`]
    /// stays 0): for a caller that checks what it reads another way.
    pub fn without_crc(mut self) -> Self {
        self.crc = false;
        self
    }

    /// The tape file being read.
    pub fn file(&self) -> u32 {
        self.file
    }

    /// The next record, or None at the tape mark that ends the file. The
    /// tape ending before that tape mark is a [`TapeError::Truncated`].
    pub fn next_record(&mut self) -> Result<Option<&[u8]>, TapeError> {
        if self.done {
            return Ok(None);
        }
        let at = self.dev.position();
        match self.dev.read_block(&mut self.buf, self.max_record)? {
            Block::Record(n) => {
                let total = self.stats.bytes + n as u64;
                if total > self.limit {
                    return Err(TapeError::too_large(
                        Location::record(at.file, at.record),
                        format!("tape file {}", self.file),
                        self.limit,
                        total,
                    ));
                }
                self.stats.records += 1;
                self.stats.bytes = total;
                if self.crc {
                    self.stats.crc32c = crc32c::crc32c_append(self.stats.crc32c, &self.buf);
                }
                Ok(Some(&self.buf))
            }
            Block::FileMark => {
                self.done = true;
                Ok(None)
            }
            Block::EndOfData => Err(TapeError::truncated(
                Location::record(at.file, at.record),
                format!("the tape mark ending tape file {}", self.file),
                "the end of data",
            )),
        }
    }

    /// What was read so far.
    pub fn stats(&self) -> FileStats {
        self.stats
    }

    /// Read the rest of the file into memory.
    pub fn read_to_end(mut self) -> Result<(Vec<u8>, FileStats), TapeError> {
        let mut out = Vec::new();
        while let Some(rec) = self.next_record()? {
            out.extend_from_slice(rec);
        }
        Ok((out, self.stats))
    }
}

/// Read one whole tape file from the current position.
pub fn read_file<D: BlockDevice + ?Sized>(
    dev: &mut D,
    max_record: usize,
    limit: u64,
) -> Result<(Vec<u8>, FileStats), TapeError> {
    FileReader::new(dev, max_record, limit).read_to_end()
}

#[cfg(test)]
mod tests {
    use super::super::block::MemTape;
    use super::*;

    #[test]
    fn cuts_into_block_size_records_and_reads_back() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let mut t = MemTape::memory();
        let mut w = FileWriter::new(&mut t, 300).unwrap();
        w.write(&data[..10]).unwrap();
        w.write(&data[10..700]).unwrap();
        w.write(&data[700..]).unwrap();
        let st = w.finish().unwrap();
        assert_eq!(
            st,
            FileStats {
                records: 4,
                bytes: 1000,
                crc32c: crc32c::crc32c(&data)
            }
        );
        write_file(&mut t, 1000, &data).unwrap();
        t.rewind().unwrap();
        let mut r = FileReader::new(&mut t, 300, 10_000);
        let mut sizes = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            sizes.push(rec.len());
        }
        assert_eq!(sizes, [300, 300, 300, 100]);
        let (again, st2) = read_file(&mut t, 1000, 10_000).unwrap();
        assert_eq!(again, data);
        assert_eq!(st2.records, 1);
        assert_eq!(t.position().file, 2);
    }

    #[test]
    fn exact_multiple_has_no_short_record() {
        let mut t = MemTape::memory();
        let st = write_file(&mut t, 100, &[1; 300]).unwrap();
        assert_eq!(st.records, 3);
    }

    #[test]
    fn limit_missing_mark_and_empty_file_are_errors() {
        let mut t = MemTape::memory();
        assert!(write_file(&mut t, 100, &[]).is_err());
        assert!(FileWriter::new(&mut t, 0).is_err());
        write_file(&mut t, 100, &[7; 250]).unwrap();
        t.rewind().unwrap();
        let e = read_file(&mut t, 100, 200).unwrap_err();
        assert!(matches!(e, TapeError::TooLarge { .. }), "{e}");
        t.rewind().unwrap();
        assert!(read_file(&mut t, 99, 1000).is_err(), "record above max_record");
        // A file without its tape mark.
        let mut t = MemTape::memory();
        t.write_record(&[1; 10]).unwrap();
        t.rewind().unwrap();
        let e = read_file(&mut t, 100, 1000).unwrap_err();
        assert!(e.is_truncated(), "{e}");
        assert!(e.to_string().contains("tape mark ending tape file 0"), "{e}");
    }
}
