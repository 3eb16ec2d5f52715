//! Unit tests of the labels: layouts, dates, strict parsing.

use super::*;

// 2024-03-01 12:00:00 UTC: day 61 of a leap year.
const T: u64 = 1_709_294_400;

#[test]
fn dates() {
    assert_eq!(
        LabelDate::from_unix(0).unwrap(),
        LabelDate {
            year: 1970,
            day_of_year: 1
        }
    );
    assert_eq!(
        LabelDate::from_unix(T).unwrap(),
        LabelDate {
            year: 2024,
            day_of_year: 61
        }
    );
    assert_eq!(
        LabelDate::from_unix(1_735_603_200).unwrap(),
        LabelDate {
            year: 2024,
            day_of_year: 366
        }
    );
    assert_eq!(&LabelDate::encode(LabelDate::from_unix(T).ok()).unwrap(), b"024061");
    assert_eq!(&LabelDate::encode(LabelDate::from_unix(0).ok()).unwrap(), b" 70001");
    assert_eq!(&LabelDate::encode(None).unwrap(), b" 00000");
    assert!(LabelDate::from_unix(u64::MAX).is_err());
}

#[test]
fn vol1_fields_are_at_their_positions() {
    let rec = Vol1::new("DMC001", "OPERATOR").encode().unwrap();
    let s = std::str::from_utf8(&rec).unwrap();
    assert_eq!(s.len(), 80);
    assert_eq!(&s[0..4], "VOL1");
    assert_eq!(&s[4..10], "DMC001");
    assert_eq!(&s[10..24], " ".repeat(14));
    assert_eq!(&s[24..37], "DMCLUSTER    ");
    assert_eq!(&s[37..51], "OPERATOR      ");
    assert_eq!(&s[51..79], " ".repeat(28));
    assert_eq!(&s[79..80], "4");
    assert_eq!(Vol1::parse(&rec).unwrap(), Vol1::new("DMC001", "OPERATOR"));
}

#[test]
fn hdr_labels_are_at_their_positions() {
    let l = VolumeLabels::new("TAPE01", "OWNER", 0xABCD, 3, 65536, T).unwrap();
    let [v, h1, h2] = l.encode().unwrap();
    let h1s = std::str::from_utf8(&h1).unwrap();
    assert_eq!(
        h1s,
        [
            "HDR1",
            "M000000000000ABCD", // 5-21 file identifier: M + media set in hex
            "TAPE01",            // 22-27 file-set identifier
            "0003",              // 28-31 file section number = media-set sequence
            "0001",              // 32-35 file sequence number
            "0001",              // 36-39 generation number
            "00",                // 40-41 generation version number
            "024061",            // 42-47 creation date: 2024, day 61
            " 00000",            // 48-53 expiration date: none
            " ",                 // 54 accessibility
            "000000",            // 55-60 block count
            "DMCLUSTER    ",     // 61-73 implementation identifier
            "       ",           // 74-80 reserved
        ]
        .concat()
    );
    let h2s = std::str::from_utf8(&h2).unwrap();
    assert_eq!(&h2s[0..15], "HDR2U6553665536");
    assert_eq!(&h2s[15..25], "0000065536");
    assert_eq!(&h2s[50..52], "00");
    assert_eq!(h2s.len(), 80);
    let parsed = VolumeLabels::parse(&[v.to_vec(), h1.to_vec(), h2.to_vec()]).unwrap();
    assert_eq!(parsed, l);

    let eof1 = l.hdr1.end(false, 1_234_567);
    assert_eq!(eof1.block_count, 234_567);
    let e1 = eof1.encode().unwrap();
    assert_eq!(&e1[0..4], b"EOF1");
    assert_eq!(&e1[54..60], b"234567");
    let end = EndLabels {
        label1: l.hdr1.end(true, 5),
        label2: l.hdr2.end(true),
    };
    let [a, b] = end.encode().unwrap();
    assert_eq!(&a[0..4], b"EOV1");
    assert_eq!(&b[0..4], b"EOV2");
    let back = EndLabels::parse(&[a.to_vec(), b.to_vec()], 9).unwrap();
    assert!(back.continues());
    assert_eq!(back, end);
}

#[test]
fn large_block_size_goes_to_implementation_use() {
    let h = FileLabel2::new(1 << 20);
    let rec = h.encode().unwrap();
    assert_eq!(&rec[5..15], b"0000000000");
    assert_eq!(&rec[15..25], b"0001048576");
    assert_eq!(FileLabel2::parse(&rec).unwrap(), h);
}

#[test]
fn strict_parsing_names_the_field() {
    let rec = Vol1::new("DMC001", "").encode().unwrap();
    let mut bad = rec;
    bad[79] = b'3';
    let e = Vol1::parse(&bad).unwrap_err().to_string();
    assert!(
        e.contains("positions 80-80 (label standard version)") && e.contains("\"3\""),
        "{e}"
    );
    let mut bad = rec;
    bad[15] = b'X';
    let e = Vol1::parse(&bad).unwrap_err().to_string();
    assert!(e.contains("positions 12-24"), "{e}");
    let mut bad = rec;
    bad[5] = b'a';
    assert!(Vol1::parse(&bad).is_err(), "lower case is not an a-character");
    assert!(Vol1::parse(&rec[..79]).is_err());

    let h1 = FileLabel1::new("DMC001", 1, 1, T).unwrap().encode().unwrap();
    let mut bad = h1;
    bad[56] = b'x';
    let e = FileLabel1::parse(&bad).unwrap_err().to_string();
    assert!(
        e.contains("HDR1 label positions 55-60 (block count)") && e.contains("decimal digits"),
        "{e}"
    );
    let mut bad = h1;
    bad[44..47].copy_from_slice(b"999"); // creation date 024061 -> 024999

    assert!(FileLabel1::parse(&bad).is_err(), "day 999");
    let mut bad = h1;
    bad[0..4].copy_from_slice(b"HDR3");
    assert!(FileLabel1::parse(&bad).is_err());

    let h2 = FileLabel2::new(4096).encode().unwrap();
    let mut bad = h2;
    bad[9] = b'7';
    let e = FileLabel2::parse(&bad).unwrap_err().to_string();
    assert!(e.contains("block length"), "{e}");
}

#[test]
fn encoding_refuses_what_does_not_fit() {
    assert!(Vol1::new("TOOLONG1", "").encode().is_err());
    assert!(Vol1::new("abc", "").encode().is_err());
    assert!(Vol1::new("", "").encode().is_err());
    assert!(Vol1::new("A", "OWNER NAME TOO LONG").encode().is_err());
    assert!(FileLabel1::new("A", 0, 0, T).is_err());
    assert!(FileLabel1::new("A", 0, 10_000, T).is_err());
}
