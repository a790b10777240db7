//! ZIP archives written front to back, for response bodies that are streamed.
//!
//! Written by hand because the `zip` crate's writer must seek back to fill in each entry's
//! sizes and checksum after its data, which a response body cannot. kald's archives need
//! little: stored entries (WAV hardly compresses), each one's size and CRC-32 known before it
//! is written (the caller makes a first pass), UTF-8 names. So every local header is complete
//! and any reader can read the archive, streaming readers too. No ZIP64: an entry or archive
//! of 4 GiB or more, or 65,535 entries or more (0xFFFF means ZIP64), is refused up front
//! ([`TooLarge`]).
//!
//! Format: APPNOTE.TXT 6.3.10, sections 4.3.7 (local file header), 4.3.12 (central directory
//! header) and 4.3.16 (end of central directory record).

use std::io::{self, Write};

/// Signature of a local file header.
const LOCAL: u32 = 0x0403_4b50;
/// Signature of a central directory header.
const CENTRAL: u32 = 0x0201_4b50;
/// Signature of the end of central directory record.
const END: u32 = 0x0605_4b50;
/// Version needed to extract a stored entry: 1.0.
const VERSION_NEEDED: u16 = 10;
/// Version made by: Unix (3), specification 2.0.
const VERSION_MADE_BY: u16 = (3 << 8) | 20;
/// General purpose flag bit 11: names are UTF-8.
const UTF8_NAMES: u16 = 1 << 11;
/// Fixed part of a local file header.
const LOCAL_LEN: u64 = 30;
/// Fixed part of a central directory header.
const CENTRAL_LEN: u64 = 46;
/// The end of central directory record (without a comment).
const END_LEN: u64 = 22;
/// Unix mode of every entry: a regular file, owner read/write only.
const MODE: u32 = 0o100_600;

/// One entry: its name in the archive, its size and CRC-32.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The path inside the archive (`/` separated).
    pub(crate) name: String,
    /// The data's length.
    pub(crate) size: u64,
    /// CRC-32 (ISO-HDLC, as `crc32fast`) of the data.
    pub(crate) crc: u32,
}

/// The archive would need ZIP64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the archive would be {bytes} bytes in {entries} entries; split it (at most 4 GiB)")]
pub(crate) struct TooLarge {
    /// Its size.
    pub(crate) bytes: u64,
    /// Its entries.
    pub(crate) entries: usize,
}

/// The archive's layout, known before a byte is written.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The entries, in order.
    entries: Vec<Entry>,
    /// Each entry's local header offset.
    offsets: Vec<u32>,
    /// Where the central directory starts.
    central_at: u32,
    /// Its length.
    central_len: u32,
    /// DOS time and date of every entry.
    dos: (u16, u16),
}

impl Plan {
    /// Lays out `entries`, each stamped with `modified` (local time).
    pub(crate) fn new(
        entries: Vec<Entry>,
        modified: jiff::civil::DateTime,
    ) -> Result<Self, TooLarge> {
        let mut at: u64 = 0;
        let mut offsets = Vec::with_capacity(entries.len());
        let mut central: u64 = 0;
        for e in &entries {
            offsets.push(at);
            at += LOCAL_LEN + e.name.len() as u64 + e.size;
            central += CENTRAL_LEN + e.name.len() as u64;
        }
        let total = at + central + END_LEN;
        let too_large = TooLarge {
            bytes: total,
            entries: entries.len(),
        };
        let fits = |n: u64| u32::try_from(n).ok().filter(|&n| n != u32::MAX);
        if entries.len() >= usize::from(u16::MAX)
            || entries
                .iter()
                .any(|e| fits(e.size).is_none() || u16::try_from(e.name.len()).is_err())
        {
            return Err(too_large);
        }
        let (Some(central_at), Some(central_len), Some(_)) = (fits(at), fits(central), fits(total))
        else {
            return Err(too_large);
        };
        let offsets = offsets
            .into_iter()
            .map(|o| fits(o).ok_or(too_large))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            entries,
            offsets,
            central_at,
            central_len,
            dos: dos_time(modified),
        })
    }

    /// The archive's length in bytes (for `Content-Length`).
    pub(crate) fn len(&self) -> u64 {
        u64::from(self.central_at) + u64::from(self.central_len) + END_LEN
    }

    /// Writes the archive to `out`; `data` writes entry `i`'s bytes (exactly its planned size,
    /// else the write fails with [`io::ErrorKind::InvalidData`]).
    pub(crate) fn write<W: Write>(
        &self,
        out: &mut W,
        mut data: impl FnMut(usize, &mut Counted<'_, W>) -> io::Result<()>,
    ) -> io::Result<()> {
        for (i, e) in self.entries.iter().enumerate() {
            let mut h = Vec::with_capacity(LOCAL_LEN as usize + e.name.len());
            put32(&mut h, LOCAL);
            put16(&mut h, VERSION_NEEDED);
            put16(&mut h, UTF8_NAMES);
            put16(&mut h, 0); // stored
            put16(&mut h, self.dos.0);
            put16(&mut h, self.dos.1);
            put32(&mut h, e.crc);
            put32(&mut h, small(e.size));
            put32(&mut h, small(e.size));
            put16(&mut h, name_len(e));
            put16(&mut h, 0); // no extra field
            h.extend_from_slice(e.name.as_bytes());
            out.write_all(&h)?;
            let mut counted = Counted { out, written: 0 };
            data(i, &mut counted)?;
            if counted.written != e.size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "entry {} has {} bytes, planned {}",
                        e.name, counted.written, e.size
                    ),
                ));
            }
        }
        let mut c = Vec::with_capacity(self.central_len as usize + END_LEN as usize);
        for (e, &offset) in self.entries.iter().zip(&self.offsets) {
            put32(&mut c, CENTRAL);
            put16(&mut c, VERSION_MADE_BY);
            put16(&mut c, VERSION_NEEDED);
            put16(&mut c, UTF8_NAMES);
            put16(&mut c, 0); // stored
            put16(&mut c, self.dos.0);
            put16(&mut c, self.dos.1);
            put32(&mut c, e.crc);
            put32(&mut c, small(e.size));
            put32(&mut c, small(e.size));
            put16(&mut c, name_len(e));
            put16(&mut c, 0); // extra
            put16(&mut c, 0); // comment
            put16(&mut c, 0); // disk
            put16(&mut c, 0); // internal attributes
            put32(&mut c, MODE << 16);
            put32(&mut c, offset);
            c.extend_from_slice(e.name.as_bytes());
        }
        let count = u16::try_from(self.entries.len()).unwrap_or(u16::MAX);
        put32(&mut c, END);
        put16(&mut c, 0); // this disk
        put16(&mut c, 0); // the central directory's disk
        put16(&mut c, count);
        put16(&mut c, count);
        put32(&mut c, self.central_len);
        put32(&mut c, self.central_at);
        put16(&mut c, 0); // comment
        out.write_all(&c)
    }
}

/// A writer that counts what passes through, for checking an entry's size.
pub(crate) struct Counted<'a, W> {
    /// Where the bytes go.
    out: &'a mut W,
    /// How many went.
    written: u64,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A size checked by [`Plan::new`] to fit 32 bits.
fn small(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A name length checked by [`Plan::new`] to fit 16 bits.
fn name_len(e: &Entry) -> u16 {
    u16::try_from(e.name.len()).unwrap_or(u16::MAX)
}

fn put16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// MS-DOS time and date (2-second resolution, years 1980–2107, clamped).
fn dos_time(t: jiff::civil::DateTime) -> (u16, u16) {
    let year = t.year().clamp(1980, 2107);
    let time = (u16::try_from(t.hour()).unwrap_or(0) << 11)
        | (u16::try_from(t.minute()).unwrap_or(0) << 5)
        | (u16::try_from(t.second()).unwrap_or(0) / 2);
    let date = (u16::try_from(year - 1980).unwrap_or(0) << 9)
        | (u16::try_from(t.month()).unwrap_or(1) << 5)
        | u16::try_from(t.day()).unwrap_or(1);
    (time, date)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Read;

    use super::*;

    fn entry(name: &str, data: &[u8]) -> Entry {
        Entry {
            name: name.into(),
            size: data.len() as u64,
            crc: crc32fast::hash(data),
        }
    }

    #[test]
    fn the_zip_crate_reads_it_back_with_checksums_and_times() {
        let parts: [(&str, Vec<u8>); 3] = [
            ("indeks.txt", "Aktindsigt\nø æ å\n".as_bytes().to_vec()),
            (
                "lyd/01-opkald-20270301-0915.wav",
                (0..100_000u32).map(|i| i as u8).collect(),
            ),
            ("tom.txt", Vec::new()),
        ];
        let when: jiff::civil::DateTime = "2027-03-23T09:15:42".parse().unwrap();
        let plan = Plan::new(parts.iter().map(|(n, d)| entry(n, d)).collect(), when).unwrap();
        let mut out = Vec::new();
        plan.write(&mut out, |i, w| w.write_all(&parts[i].1))
            .unwrap();
        assert_eq!(out.len() as u64, plan.len());

        let mut zip = zip::ZipArchive::new(io::Cursor::new(out)).unwrap();
        assert_eq!(zip.len(), 3);
        for (name, data) in &parts {
            let mut file = zip.by_name(name).unwrap();
            assert_eq!(file.compression(), zip::CompressionMethod::Stored);
            assert_eq!(file.unix_mode(), Some(MODE));
            let t = file.last_modified().unwrap();
            assert_eq!(
                (
                    t.year(),
                    t.month(),
                    t.day(),
                    t.hour(),
                    t.minute(),
                    t.second()
                ),
                (2027, 3, 23, 9, 15, 42)
            );
            let mut got = Vec::new();
            // Reading to the end checks the CRC-32.
            file.read_to_end(&mut got).unwrap();
            assert_eq!(&got, data);
        }
    }

    #[test]
    fn a_wrong_size_or_checksum_is_caught() {
        let data = b"hello";
        let plan = Plan::new(
            vec![entry("a", data)],
            jiff::civil::date(2027, 1, 1).at(0, 0, 0, 0),
        )
        .unwrap();
        let err = plan
            .write(&mut Vec::new(), |_, w| w.write_all(b"hell"))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        let mut bad = entry("a", data);
        bad.crc ^= 1;
        let plan = Plan::new(vec![bad], jiff::civil::date(2027, 1, 1).at(0, 0, 0, 0)).unwrap();
        let mut out = Vec::new();
        plan.write(&mut out, |_, w| w.write_all(data)).unwrap();
        let mut zip = zip::ZipArchive::new(io::Cursor::new(out)).unwrap();
        let mut got = Vec::new();
        assert!(zip.by_index(0).unwrap().read_to_end(&mut got).is_err());
    }

    #[test]
    fn archives_past_4_gib_are_refused() {
        let big = Entry {
            name: "big.wav".into(),
            size: 3 << 30,
            crc: 0,
        };
        let t = jiff::civil::date(2027, 1, 1).at(0, 0, 0, 0);
        assert!(Plan::new(vec![big.clone()], t).is_ok());
        let err = Plan::new(vec![big.clone(), big], t).unwrap_err();
        assert_eq!(err.entries, 2);
        assert!(err.bytes > 6 << 30);
    }
}
