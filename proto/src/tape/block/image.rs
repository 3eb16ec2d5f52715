//! What a SIMH image is stored in.

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, Write};

/// What a SIMH image is stored in: anything seekable that can also be cut
/// short (writing in the middle of a tape discards the rest) and synced.
pub trait TapeImage: Read + Write + Seek {
    /// Cut the image to `len` bytes.
    fn truncate_to(&mut self, len: u64) -> io::Result<()>;
    /// Make the image durable (fsync for a file).
    fn sync_image(&mut self) -> io::Result<()>;
}

impl TapeImage for File {
    fn truncate_to(&mut self, len: u64) -> io::Result<()> {
        File::set_len(self, len)
    }
    fn sync_image(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }
}

/// An image in memory: a `Vec<u8>`, owned or borrowed.
impl<V> TapeImage for Cursor<V>
where
    V: AsMut<Vec<u8>>,
    Cursor<V>: Read + Write + Seek,
{
    fn truncate_to(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length too large"))?;
        self.get_mut().as_mut().truncate(len);
        Ok(())
    }
    fn sync_image(&mut self) -> io::Result<()> {
        Ok(())
    }
}
