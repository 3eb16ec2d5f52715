//! Extent list files: one extent per line, `VOLUME OFFSET LENGTH` (bytes,
//! decimal, or with a K/M/G/T suffix for KiB/MiB/GiB/TiB), in logical order.
//! Blank lines and lines starting with `#` are ignored.

use std::path::Path;

use anyhow::{bail, Context, Result};
use proto::abs::ObjectExtent;

/// Parse a size like `4096`, `64K`, `16M`.
pub fn parse_size(s: &str) -> Result<u64> {
    let (digits, mult) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 1 << 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 1 << 30),
        Some('T' | 't') => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    let n: u64 = digits.parse().with_context(|| format!("{s:?} is not a size"))?;
    n.checked_mul(mult).with_context(|| format!("{s:?} is too large"))
}

/// Parse the text of an extent list.
pub fn parse(text: &str, origin: &str) -> Result<Vec<ObjectExtent>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [volume, offset, length] = fields.as_slice() else {
            bail!("{origin}:{}: expected `VOLUME OFFSET LENGTH`, found {line:?}", i + 1);
        };
        out.push(ObjectExtent {
            volume: volume.to_string(),
            offset: parse_size(offset).with_context(|| format!("{origin}:{}", i + 1))?,
            length: parse_size(length).with_context(|| format!("{origin}:{}", i + 1))?,
        });
    }
    if out.is_empty() {
        bail!("{origin}: no extents");
    }
    Ok(out)
}

/// Read an extent list file.
pub fn read(path: &Path) -> Result<Vec<ObjectExtent>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Render extents in the file format.
pub fn render(extents: &[ObjectExtent]) -> String {
    let mut s = String::from("# volume offset length (bytes, logical order)\n");
    for e in extents {
        s.push_str(&format!("{} {} {}\n", e.volume, e.offset, e.length));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_comments_and_reports_bad_lines() {
        let ex = parse("# x\nvol0 64K 1M\n\nvol1 0 4096\n", "f").unwrap();
        assert_eq!(
            ex[0],
            ObjectExtent {
                volume: "vol0".into(),
                offset: 65536,
                length: 1 << 20
            }
        );
        assert_eq!(ex[1].length, 4096);
        let err = parse("vol0 12\n", "f").unwrap_err().to_string();
        assert!(err.contains("f:1"), "{err}");
        assert!(parse("vol0 x 1\n", "f").is_err());
        assert!(parse("# nothing\n", "f").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn render_round_trips() {
        let ex = vec![ObjectExtent {
            volume: "a".into(),
            offset: 8192,
            length: 4096,
        }];
        assert_eq!(parse(&render(&ex), "r").unwrap(), ex);
    }
}
