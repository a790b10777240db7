//! The keys recordings are encrypted with: a key file outside the data dir and the database.
//!
//! Recordings hold spoken CPR numbers and health data, so every recording file is sealed with
//! XChaCha20-Poly1305 (see [`crate::format`]) under a key from [`RecordingKeys`]. These keys
//! are separate from the CPR keys of `kald_core::protect` (a different file, e.g.
//! `keys/recordings.key` beside `keys/cpr.key`), so each can be rotated and backed up on its own.
//!
//! # The key file
//!
//! [`RecordingKeys::load_or_create`] reads a small text file, creating it owner-only (mode 0600)
//! with a key from the operating system's random source when it is missing, and refuses a file
//! its group or others may read or write. One item per line, `#` starts a comment:
//!
//! ```text
//! enc <id> <64 hex digits>     an XChaCha20-Poly1305 key, id 1..=255 (one or more)
//! current <id>                 optional: the key new recordings use (default: highest id)
//! ```
//!
//! **Losing this file loses every recording**: back it up away from the data.
//!
//! # Key rotation
//!
//! [`RecordingKeys::rotate`] adds a key with the next id and makes it current;
//! [`RecordingKeys::save`] writes the file back (atomically, still 0600). From then on:
//!
//! - new recordings are sealed with the current key;
//! - every recording file names its key id in its header, so old files still open as long as
//!   their key stays in the file;
//! - to **retire** a key, re-encrypt each file that names it with
//!   [`reencrypt`](crate::format::reencrypt) (which seals with the current key, into a new
//!   file that then replaces the old one), and only when none is left delete the key's line.
//!   [`ChunkReader::header`](crate::format::ChunkReader::header) tells a file's key id
//!   without decrypting anything.
//!
//! Neither `Debug` nor any error ever shows key material; keys are wiped from memory when
//! dropped.
//!
//! Unlike the rest of this crate, this module reads the operating system's random source (for
//! new keys) and the file system (the key file), as `kald_core::protect` does. Recording files
//! themselves are written through the `std::io` traits the caller passes, and their nonces
//! come from the caller.

use core::fmt;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rand::rngs::OsRng;
use rand::TryRngCore;
use zeroize::Zeroize;

/// Length of every key in the key file.
pub(crate) const KEY_LEN: usize = 32;

/// A 32-byte secret; its `Debug` shows nothing of the key, and it is wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(pub(crate) [u8; KEY_LEN]);

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The keys recording files are sealed with, by id; new files use the current one.
///
/// `Debug` shows the key ids only, never keys.
#[derive(Clone)]
pub struct RecordingKeys {
    /// Id of the key new recordings use; always a key of `enc`.
    current: u8,
    /// Every key, by id (1..=255).
    enc: BTreeMap<u8, Secret>,
}

/// Why recording keys could not be loaded, created or saved; never contains key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading, creating or writing the key file failed.
    #[error("cannot {action} recording key file {path}: {source}")]
    Io {
        /// What was being done (open, create, …).
        action: &'static str,
        /// The key file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The key file may be read or written by its group or others.
    #[error(
        "recording key file {path} has mode {mode:03o}; it must be readable by its owner only \
         (chmod 600)"
    )]
    Permissions {
        /// The key file.
        path: PathBuf,
        /// The file's permission bits.
        mode: u32,
    },
    /// A line of the key text is malformed; the line itself is not shown.
    #[error("recording key text, line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The key text has no `enc` line.
    #[error("recording key text has no key (an `enc <id> <hex>` line)")]
    NoKey,
    /// `current` names a key id that has no `enc` line.
    #[error("recording key text makes key {id} current, but has no such key")]
    UnknownCurrent {
        /// The id named by the `current` line.
        id: u8,
    },
    /// All 255 key ids are in use, so no new key can be added.
    #[error("all 255 recording key ids are used; retire old keys before rotating")]
    IdsExhausted,
    /// The operating system's random source failed.
    #[error("the operating system's random source failed")]
    Random,
}

impl RecordingKeys {
    /// One fresh random key (id 1) from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        Ok(Self {
            current: 1,
            enc: BTreeMap::from([(1, random_secret()?)]),
        })
    }

    /// One key (id 1) from 64 hex digits, e.g. for tests.
    pub fn from_hex(hex: &str) -> Result<Self, KeyError> {
        Ok(Self {
            current: 1,
            enc: BTreeMap::from([(1, parse_secret(hex, 1)?)]),
        })
    }

    /// Keys from the key-file text (see the [module docs](self)), e.g. from an environment
    /// variable or secret store instead of a file.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut enc = BTreeMap::new();
        let mut current = None;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw.split('#').next().unwrap_or_default();
            let mut words = content.split_whitespace();
            let Some(kind) = words.next() else { continue };
            let malformed = |reason| KeyError::Malformed { line, reason };
            match kind {
                "enc" => {
                    let id = parse_id(words.next(), line)?;
                    let hex = words
                        .next()
                        .ok_or(malformed("`enc` needs an id and a key"))?;
                    if enc.insert(id, parse_secret(hex, line)?).is_some() {
                        return Err(malformed("a second `enc` line with the same id"));
                    }
                }
                "current" => {
                    if current.replace(parse_id(words.next(), line)?).is_some() {
                        return Err(malformed("a second `current` line"));
                    }
                }
                "mac" => {
                    return Err(malformed(
                        "a `mac` line belongs to the CPR key file; recordings have their own \
                         key file",
                    ))
                }
                _ => return Err(malformed("expected `enc` or `current`")),
            }
            if words.next().is_some() {
                return Err(malformed("unexpected text after the key"));
            }
        }
        let highest = *enc.keys().next_back().ok_or(KeyError::NoKey)?;
        let current = current.unwrap_or(highest);
        if !enc.contains_key(&current) {
            return Err(KeyError::UnknownCurrent { id: current });
        }
        Ok(Self { current, enc })
    }

    /// Loads the key file at `path`, or creates it (mode 0600, one random key) when it is
    /// missing; the flag is `true` when the file was created. Refuses a file its group or
    /// others may read or write.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyError> {
        match Self::load(path) {
            Err(KeyError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            other => return other.map(|keys| (keys, false)),
        }
        let keys = Self::generate()?;
        match keys.write_new(path) {
            Ok(()) => Ok((keys, true)),
            // Another process created it between our read and our write: use theirs.
            Err(KeyError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
                Self::load(path).map(|keys| (keys, false))
            }
            Err(err) => Err(err),
        }
    }

    /// Loads an existing key file, refusing one that its group or others may access.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let io_err = |action| {
            move |source| KeyError::Io {
                action,
                path: path.into(),
                source,
            }
        };
        let file = fs::File::open(path).map_err(io_err("open"))?;
        let mode = file
            .metadata()
            .map_err(io_err("inspect"))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.into(),
                mode,
            });
        }
        let mut text = io::read_to_string(file).map_err(io_err("read"))?;
        let keys = Self::parse(&text);
        text.zeroize();
        keys
    }

    /// Writes the keys to `path` (mode 0600), replacing the file atomically; used after
    /// [`rotate`](Self::rotate).
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        let tmp = sibling(path, "tmp");
        let _ = fs::remove_file(&tmp);
        self.write_file(&tmp)?;
        fs::rename(&tmp, path).map_err(|source| KeyError::Io {
            action: "replace",
            path: path.into(),
            source,
        })
    }

    /// Adds a new random key with the next id and makes it current; returns its id. Older keys
    /// stay, so the files they sealed still open. Call [`save`](Self::save) afterwards.
    pub fn rotate(&mut self) -> Result<u8, KeyError> {
        let highest = self.enc.keys().next_back().copied().unwrap_or(0);
        let id = highest.checked_add(1).ok_or(KeyError::IdsExhausted)?;
        self.enc.insert(id, random_secret()?);
        self.current = id;
        Ok(id)
    }

    /// Removes key `id` (after every file it sealed was re-encrypted); the current key cannot
    /// be removed. Returns whether a key was removed. Call [`save`](Self::save) afterwards.
    pub fn retire(&mut self, id: u8) -> bool {
        id != self.current && self.enc.remove(&id).is_some()
    }

    /// The id of the key new recordings are sealed with.
    pub fn current_key_id(&self) -> u8 {
        self.current
    }

    /// The ids of every loaded key, ascending.
    pub fn key_ids(&self) -> Vec<u8> {
        self.enc.keys().copied().collect()
    }

    /// The key with this id, if loaded.
    pub(crate) fn key(&self, id: u8) -> Option<&Secret> {
        self.enc.get(&id)
    }

    /// The current key and its id.
    pub(crate) fn current_key(&self) -> (u8, &Secret) {
        // Invariant: `current` is always a key of `enc` (checked by every constructor).
        (self.current, &self.enc[&self.current])
    }

    /// The key-file text for these keys; it holds the secret keys, hence the name.
    pub fn expose_file_text(&self) -> String {
        let mut text = String::from(
            "# kald recording keys. Secret: keep this file mode 0600 and back it up away from\n\
             # the data; without it no recording can be played. New recordings use `current`;\n\
             # keep an old key until every file that names it has been re-encrypted.\n",
        );
        for (id, key) in &self.enc {
            text.push_str(&format!("enc {id} {}\n", hex_encode(&key.0)));
        }
        text.push_str(&format!("current {}\n", self.current));
        text
    }

    /// Creates `path` (which must not exist) owner-only and writes the keys to it.
    ///
    /// The text goes to a private temporary file first and is then hard-linked into place, so
    /// a crash never leaves a half-written key file and an existing file is never replaced.
    fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        let tmp = sibling(path, &format!("new-{}", std::process::id()));
        let _ = fs::remove_file(&tmp);
        self.write_file(&tmp)?;
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        linked.map_err(|source| KeyError::Io {
            action: "create",
            path: path.into(),
            source,
        })
    }

    /// Writes the key text to a new owner-only file at `path` and syncs it.
    fn write_file(&self, path: &Path) -> Result<(), KeyError> {
        let io_err = |action| {
            move |source| KeyError::Io {
                action,
                path: path.into(),
                source,
            }
        };
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io_err("create"))?;
        let mut text = self.expose_file_text();
        let written = file.write_all(text.as_bytes()).map_err(io_err("write"));
        text.zeroize();
        written?;
        file.sync_all().map_err(io_err("sync"))
    }
}

impl fmt::Debug for RecordingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingKeys")
            .field("current", &self.current)
            .field("key_ids", &self.key_ids())
            .finish_non_exhaustive()
    }
}

/// A new 32-byte key from the operating system's random source.
fn random_secret() -> Result<Secret, KeyError> {
    let mut key = [0u8; KEY_LEN];
    OsRng
        .try_fill_bytes(&mut key)
        .map_err(|_| KeyError::Random)?;
    Ok(Secret(key))
}

/// Parses 64 hex digits as a key; errors name the line, never the text.
fn parse_secret(hex_text: &str, line: usize) -> Result<Secret, KeyError> {
    let malformed = KeyError::Malformed {
        line,
        reason: "a key must be 64 hex digits (32 bytes)",
    };
    let digits = hex_text.as_bytes();
    if digits.len() != 2 * KEY_LEN {
        return Err(malformed);
    }
    let mut key = Secret([0u8; KEY_LEN]);
    for (byte, pair) in key.0.iter_mut().zip(digits.chunks_exact(2)) {
        let (Some(hi), Some(lo)) = (hex_value(pair[0]), hex_value(pair[1])) else {
            return Err(malformed);
        };
        *byte = hi << 4 | lo;
    }
    Ok(key)
}

/// The value of one hex digit.
fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Parses a key id (1..=255).
fn parse_id(word: Option<&str>, line: usize) -> Result<u8, KeyError> {
    word.and_then(|w| w.parse::<u8>().ok())
        .filter(|&id| id != 0)
        .ok_or(KeyError::Malformed {
            line,
            reason: "a key id is a number from 1 to 255",
        })
}

/// `path` with `.suffix` appended to its file name, in the same directory.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const KEY2: &str = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";

    pub(crate) fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "kald-recordings-{name}-{}-{:x}",
            std::process::id(),
            OsRng.try_next_u64().unwrap()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn key_file_is_created_owner_only_and_reloaded() {
        let dir = temp_dir("create");
        let path = dir.join("recordings.key");
        let (created, was_created) = RecordingKeys::load_or_create(&path).unwrap();
        assert!(was_created);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let (loaded, was_created) = RecordingKeys::load_or_create(&path).unwrap();
        assert!(!was_created);
        assert_eq!(loaded.current_key_id(), 1);
        assert_eq!(loaded.key(1), created.key(1));
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temporary files");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn key_file_readable_by_others_is_refused() {
        let dir = temp_dir("perms");
        let path = dir.join("recordings.key");
        RecordingKeys::load_or_create(&path).unwrap();
        for mode in [0o640, 0o604, 0o660, 0o644, 0o602] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = RecordingKeys::load_or_create(&path).unwrap_err();
            assert!(
                matches!(err, KeyError::Permissions { mode: m, .. } if m == mode),
                "{err:?}"
            );
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rotation_saves_and_retires() {
        let dir = temp_dir("rotate");
        let path = dir.join("recordings.key");
        let mut keys = RecordingKeys::from_hex(KEY).unwrap();
        assert_eq!(keys.rotate().unwrap(), 2);
        assert_eq!(keys.current_key_id(), 2);
        keys.save(&path).unwrap();
        let reloaded = RecordingKeys::load(&path).unwrap();
        assert_eq!(reloaded.key_ids(), [1, 2]);
        assert_eq!(reloaded.current_key_id(), 2);
        assert_eq!(reloaded.key(1), keys.key(1));
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mut keys = reloaded;
        assert!(!keys.retire(2), "the current key stays");
        assert!(keys.retire(1));
        assert!(!keys.retire(1));
        assert_eq!(keys.key_ids(), [2]);
        fs::remove_dir_all(dir).unwrap();

        let mut full = RecordingKeys::parse(&format!("enc 255 {KEY}\n")).unwrap();
        assert!(matches!(full.rotate(), Err(KeyError::IdsExhausted)));
    }

    #[test]
    fn key_text_errors_show_no_key_material() {
        let cases = [
            (String::new(), "no key"),
            (format!("enc 0 {KEY}\n"), "line 1"),
            (format!("enc 1 {}\n", &KEY[..62]), "line 1"),
            (format!("enc 1 {}zz\n", &KEY[..62]), "line 1"),
            (format!("enc 1 {KEY}\nenc 1 {KEY2}\n"), "line 2"),
            (format!("enc 1 {KEY}\ncurrent 4\n"), "key 4"),
            (format!("enc 1 {KEY} {KEY2}\n"), "line 1"),
            (format!("mac {KEY}\nenc 1 {KEY}\n"), "CPR key file"),
            (format!("key {KEY}\n"), "line 1"),
        ];
        for (text, expected) in cases {
            let err = RecordingKeys::parse(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
            assert!(
                !err.contains(&KEY[..16]) && !err.contains(&KEY2[..16]),
                "{err}"
            );
        }
        let text = format!("# keys\n\nenc 1 {KEY}  # old\nenc 2 {KEY2}\ncurrent 1\n");
        let keys = RecordingKeys::parse(&text).unwrap();
        assert_eq!(keys.current_key_id(), 1);
        assert_eq!(keys.key_ids(), [1, 2]);
        assert_eq!(
            RecordingKeys::parse(&keys.expose_file_text())
                .unwrap()
                .key_ids(),
            [1, 2]
        );
        assert!(keys.expose_file_text().contains(KEY));
    }

    #[test]
    fn debug_shows_no_key_material() {
        let mut keys = RecordingKeys::from_hex(KEY).unwrap();
        keys.rotate().unwrap();
        let shown = format!("{keys:?} {keys:#?}");
        assert_eq!(
            format!("{keys:?}"),
            "RecordingKeys { current: 2, key_ids: [1, 2], .. }"
        );
        for key in keys.enc.values() {
            assert!(!shown.contains(&hex_encode(&key.0[..4])), "{shown}");
        }
        assert_eq!(format!("{:?}", keys.key(1).unwrap()), "Secret(..)");
    }
}
