//! Test data: volumes full of pseudo-random bytes, a logical object
//! scattered over them in tracks shared with other data, a destination
//! allocation with a different layout, and byte-for-byte verification.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use proto::abs::ObjectExtent;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Write `size` pseudo-random bytes (xorshift, seeded) to `path`.
pub fn make_volume(path: &Path, size: u64, seed: u64) -> Result<()> {
    let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, f);
    let mut x = seed | 1;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for chunk in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        let n = proto::num::at_most(left, buf.len());
        w.write_all(&buf[..n])?;
        left -= n as u64;
    }
    w.flush()?;
    Ok(())
}

/// Make a zero-filled volume (sparse).
pub fn make_empty_volume(path: &Path, size: u64) -> Result<()> {
    let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.set_len(size)?;
    Ok(())
}

/// Scatter an object of `object_size` bytes over `volumes` (name, size):
/// extents of 1–`max_blocks` blocks at block-aligned offsets, never
/// track-aligned as a rule, separated by gaps of other data, in a shuffled
/// logical order. Deterministic for a seed.
pub fn scatter(
    volumes: &[(String, u64)],
    block: u64,
    object_size: u64,
    max_blocks: u64,
    seed: u64,
) -> Result<Vec<ObjectExtent>> {
    if !object_size.is_multiple_of(block) {
        bail!("object size {object_size} is not a multiple of the block size {block}");
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut extents = Vec::new();
    let mut need = object_size;
    // Walk each volume, alternating pieces of the object and gaps.
    let per_volume = object_size / volumes.len() as u64;
    for (i, (name, size)) in volumes.iter().enumerate() {
        let mut want = if i + 1 == volumes.len() {
            need
        } else {
            per_volume.min(need)
        };
        let mut off = rng.random_range(0..8) * block;
        while want > 0 {
            let len = (rng.random_range(1..=max_blocks) * block).min(want);
            if off + len > *size {
                bail!("volume {name} ({size} bytes) is too small for its share of the object");
            }
            extents.push(ObjectExtent {
                volume: name.clone(),
                offset: off,
                length: len,
            });
            want -= len;
            need -= len;
            off += len + rng.random_range(1..=4) * block;
        }
    }
    // Logical order differs from physical order: shuffle.
    for i in (1..extents.len()).rev() {
        let j = rng.random_range(0..=i);
        extents.swap(i, j);
    }
    Ok(extents)
}

/// An allocation of `object_size` bytes on destination volumes, in larger
/// pieces than the source, so the remap really changes the layout.
pub fn allocation(volumes: &[(String, u64)], block: u64, object_size: u64, seed: u64) -> Result<Vec<ObjectExtent>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut need = object_size;
    let mut vi = 0;
    let mut offs: Vec<u64> = volumes.iter().map(|_| block * 3).collect();
    while need > 0 {
        let (name, size) = &volumes[vi % volumes.len()];
        let off = offs[vi % volumes.len()];
        let len = (rng.random_range(64..=512) * block).min(need);
        if off + len > *size {
            bail!("destination volume {name} is too small");
        }
        out.push(ObjectExtent {
            volume: name.clone(),
            offset: off,
            length: len,
        });
        offs[vi % volumes.len()] = off + len + block;
        need -= len;
        vi += 1;
    }
    Ok(out)
}

/// Read an object's bytes in logical order, chunk by chunk.
pub struct ObjectReader {
    pieces: Vec<(PathBuf, u64, u64)>,
    idx: usize,
    pos: u64,
    file: Option<File>,
}

impl ObjectReader {
    pub fn new(dir_of: impl Fn(&str) -> PathBuf, extents: &[ObjectExtent]) -> ObjectReader {
        let pieces = extents
            .iter()
            .map(|e| (dir_of(&e.volume), e.offset, e.length))
            .collect();
        ObjectReader {
            pieces,
            idx: 0,
            pos: 0,
            file: None,
        }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let Some((path, off, len)) = self.pieces.get(self.idx) else {
                return Ok(0);
            };
            if self.pos >= *len {
                self.idx += 1;
                self.pos = 0;
                self.file = None;
                continue;
            }
            if self.file.is_none() {
                self.file = Some(File::open(path)?);
            }
            let f = self.file.as_mut().ok_or_else(|| std::io::Error::other("no file"))?;
            f.seek(SeekFrom::Start(off + self.pos))?;
            let n = proto::num::at_most(len - self.pos, buf.len());
            f.read_exact(&mut buf[..n])?;
            self.pos += n as u64;
            return Ok(n);
        }
    }
}

/// Compare two byte streams; the error names the first differing offset.
pub fn compare(mut a: impl Read, mut b: impl Read, what: &str) -> Result<u64> {
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let na = read_full(&mut a, &mut ba)?;
        let nb = read_full(&mut b, &mut bb)?;
        if ba[..na.min(nb)] != bb[..na.min(nb)] {
            let i = ba.iter().zip(bb.iter()).position(|(x, y)| x != y).unwrap_or(0);
            bail!("{what}: first difference at byte {}", total + i as u64);
        }
        if na != nb {
            bail!(
                "{what}: lengths differ ({} vs {} bytes)",
                total + na as u64,
                total + nb as u64
            );
        }
        if na == 0 {
            return Ok(total);
        }
        total += na as u64;
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let k = r.read(&mut buf[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}

/// Byte offset in a SIMH image of the middle of record `record` (from 0) of
/// tape file `file` (from 0).
pub fn simh_record_offset(image: &Path, file: u32, record: u32) -> Result<u64> {
    let (start, len) = simh_record_data(image, file, record)?;
    Ok(start + len / 2)
}

/// Where the data of record `record` (from 0) of tape file `file` (from
/// 0) lies in a SIMH image: (byte offset, length).
pub fn simh_record_data(image: &Path, file: u32, record: u32) -> Result<(u64, u64)> {
    let mut f = File::open(image)?;
    let len = f.metadata()?.len();
    let (mut pos, mut cur_file, mut cur_rec) = (0u64, 0u32, 0u32);
    let mut word = [0u8; 4];
    while pos + 4 <= len {
        f.seek(SeekFrom::Start(pos))?;
        f.read_exact(&mut word)?;
        let n = u32::from_le_bytes(word);
        if n == 0 {
            cur_file += 1;
            cur_rec = 0;
            pos += 4;
            continue;
        }
        if n == 0xFFFF_FFFF {
            break;
        }
        let n = u64::from(n & 0x00FF_FFFF);
        if cur_file == file && cur_rec == record {
            return Ok((pos + 4, n));
        }
        pos += 8 + n + (n & 1);
        cur_rec += 1;
    }
    bail!("{} has no record {record} in tape file {file}", image.display())
}

/// Flip one byte of a file.
pub fn flip_byte(path: &Path, offset: u64) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(&mut b)?;
    b[0] ^= 0x5a;
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(&b)?;
    f.sync_all()?;
    Ok(())
}
