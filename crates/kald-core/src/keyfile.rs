//! Key files: small owner-only text files of 32-byte secret keys, read and written one way.
//!
//! kald keeps two key files, the CPR keys ([`crate::protect`]) and the recording keys
//! (`kald_recordings::keys`), each rotated and backed up on its own. Both follow the rules
//! implemented once here:
//!
//! - one item per line, `#` starts a comment; a key is 64 hex digits;
//! - encryption keys have ids (`enc <id> <hex>`, id 1..=255) and an optional `current <id>`
//!   (default: the highest id), held by a [`KeyRing`] that rotates;
//! - [`read`] refuses a file its group or others may read or write;
//! - [`create`] never replaces an existing file and never leaves a half-written one (a private
//!   temporary file, synced, then hard-linked into place); [`replace`] swaps a file atomically
//!   (temporary file, synced, renamed);
//! - neither `Debug` nor any error shows key material or a line's text; secrets are wiped
//!   from memory when dropped.
//!
//! Unlike most of this crate, this module reads the operating system's random source (new
//! keys) and the file system (the key files).

use core::fmt;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::SplitWhitespace;

use rand::rngs::OsRng;
use rand::TryRngCore;
use zeroize::{Zeroize, Zeroizing};

/// Length of every key in a key file.
pub const KEY_LEN: usize = 32;

/// A 32-byte secret key; its `Debug` shows nothing of it, and it is wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; KEY_LEN]);

impl Secret {
    /// A new key from the operating system's random source.
    pub fn random() -> Result<Self, KeyError> {
        let mut key = [0u8; KEY_LEN];
        OsRng
            .try_fill_bytes(&mut key)
            .map_err(|_| KeyError::Random)?;
        Ok(Self(key))
    }

    /// Parses 64 hex digits; an error names line `line` of the `kind` key text, never the
    /// digits.
    pub fn from_hex(kind: &'static str, hex_text: &str, line: usize) -> Result<Self, KeyError> {
        let mut key = Self([0u8; KEY_LEN]);
        hex::decode_to_slice(hex_text, &mut key.0).map_err(|_| KeyError::Malformed {
            kind,
            line,
            reason: "a key must be 64 hex digits (32 bytes)",
        })?;
        Ok(key)
    }

    /// The key's bytes, for a cipher or a MAC.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The key as 64 lower-case hex digits, for a key file; wiped when dropped.
    pub fn expose_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(self.0))
    }
}

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

/// Why a key file or key text could not be used; never contains key material or the text of
/// a line. `kind` names the file (`CPR`, `recording`) in every message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Reading, creating or writing the key file failed.
    #[error("cannot {action} {kind} key file {path}: {source}")]
    Io {
        /// Which key file.
        kind: &'static str,
        /// What was being done (open, create, …).
        action: &'static str,
        /// The key file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The key file may be read or written by its group or others.
    #[error(
        "{kind} key file {path} has mode {mode:03o}; it must be readable by its owner only \
         (chmod 600)"
    )]
    Permissions {
        /// Which key file.
        kind: &'static str,
        /// The key file.
        path: PathBuf,
        /// The file's permission bits.
        mode: u32,
    },
    /// A line of the key text is malformed; the line itself is not shown.
    #[error("{kind} key text, line {line}: {reason}")]
    Malformed {
        /// Which key file.
        kind: &'static str,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A line the key text must have is missing.
    #[error("{kind} key text has no {what}")]
    Missing {
        /// Which key file.
        kind: &'static str,
        /// What is missing, e.g. "encryption key (an `enc <id> <hex>` line)".
        what: &'static str,
    },
    /// `current` names a key id that has no `enc` line.
    #[error("{kind} key text makes key {id} current, but has no such key")]
    UnknownCurrent {
        /// Which key file.
        kind: &'static str,
        /// The id named by the `current` line.
        id: u8,
    },
    /// All 255 key ids are in use, so no new key can be added.
    #[error("all 255 {kind} key ids are used; retire old keys before rotating")]
    IdsExhausted {
        /// Which key file.
        kind: &'static str,
    },
    /// The operating system's random source failed.
    #[error("the operating system's random source failed")]
    Random,
}

impl KeyError {
    /// Whether this is the file system's "no such file".
    fn is_not_found(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    /// Whether this is the file system's "already exists".
    fn is_already_exists(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == io::ErrorKind::AlreadyExists)
    }
}

/// Encryption keys by id and the one new data is sealed with: the `enc` and `current` lines.
///
/// `Debug` shows the ids only, never keys.
#[derive(Clone)]
pub struct KeyRing {
    /// Which key file, for errors.
    kind: &'static str,
    /// Id of the key new data uses; always a key of `keys`.
    current: u8,
    /// Every key, by id (1..=255).
    keys: BTreeMap<u8, Secret>,
}

impl KeyRing {
    /// One key, id 1, current.
    pub fn single(kind: &'static str, key: Secret) -> Self {
        Self {
            kind,
            current: 1,
            keys: BTreeMap::from([(1, key)]),
        }
    }

    /// One fresh random key (id 1) from the operating system's random source.
    pub fn generate(kind: &'static str) -> Result<Self, KeyError> {
        Ok(Self::single(kind, Secret::random()?))
    }

    /// Adds a new random key with the next id and makes it current; returns its id. Older
    /// keys stay, so what they sealed still opens.
    pub fn rotate(&mut self) -> Result<u8, KeyError> {
        let highest = self.keys.keys().next_back().copied().unwrap_or(0);
        let id = highest
            .checked_add(1)
            .ok_or(KeyError::IdsExhausted { kind: self.kind })?;
        self.keys.insert(id, Secret::random()?);
        self.current = id;
        Ok(id)
    }

    /// Removes key `id` (once nothing sealed with it is left); the current key cannot be
    /// removed. Returns whether a key was removed.
    pub fn retire(&mut self, id: u8) -> bool {
        id != self.current && self.keys.remove(&id).is_some()
    }

    /// The id of the key new data is sealed with.
    pub fn current_key_id(&self) -> u8 {
        self.current
    }

    /// The ids of every key, ascending.
    pub fn key_ids(&self) -> Vec<u8> {
        self.keys.keys().copied().collect()
    }

    /// The key with this id, if present.
    pub fn key(&self, id: u8) -> Option<&Secret> {
        self.keys.get(&id)
    }

    /// The current key and its id.
    pub fn current_key(&self) -> (u8, &Secret) {
        // Invariant: `current` is always a key of `keys` (checked by every constructor).
        (self.current, &self.keys[&self.current])
    }

    /// Appends the `enc` lines and the `current` line to a key file's text.
    pub fn write_lines(&self, text: &mut String) {
        for (id, key) in &self.keys {
            text.push_str(&format!("enc {id} {}\n", *key.expose_hex()));
        }
        text.push_str(&format!("current {}\n", self.current));
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current)
            .field("key_ids", &self.key_ids())
            .finish_non_exhaustive()
    }
}

/// Collects the `enc` and `current` lines of a key text into a [`KeyRing`].
#[derive(Debug)]
pub struct KeyRingLines {
    /// Which key file, for errors.
    kind: &'static str,
    /// The keys seen so far.
    keys: BTreeMap<u8, Secret>,
    /// The `current` line, if seen.
    current: Option<u8>,
}

impl KeyRingLines {
    /// No lines yet.
    pub fn new(kind: &'static str) -> Self {
        Self {
            kind,
            keys: BTreeMap::new(),
            current: None,
        }
    }

    /// Takes line `line` if its first word is `enc` or `current` (returns `false` for any
    /// other kind, for the caller to handle), reading the rest of its words.
    pub fn take(
        &mut self,
        kind: &str,
        words: &mut SplitWhitespace<'_>,
        line: usize,
    ) -> Result<bool, KeyError> {
        let malformed = |reason| KeyError::Malformed {
            kind: self.kind,
            line,
            reason,
        };
        match kind {
            "enc" => {
                let id = parse_id(self.kind, words.next(), line)?;
                let hex = words
                    .next()
                    .ok_or(malformed("`enc` needs an id and a key"))?;
                let key = Secret::from_hex(self.kind, hex, line)?;
                if self.keys.insert(id, key).is_some() {
                    return Err(malformed("a second `enc` line with the same id"));
                }
            }
            "current" => {
                let id = parse_id(self.kind, words.next(), line)?;
                if self.current.replace(id).is_some() {
                    return Err(malformed("a second `current` line"));
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The ring: at least one key, and `current` (default: the highest id) among them.
    pub fn finish(self) -> Result<KeyRing, KeyError> {
        let kind = self.kind;
        let highest = *self.keys.keys().next_back().ok_or(KeyError::Missing {
            kind,
            what: "encryption key (an `enc <id> <hex>` line)",
        })?;
        let current = self.current.unwrap_or(highest);
        if !self.keys.contains_key(&current) {
            return Err(KeyError::UnknownCurrent { kind, id: current });
        }
        Ok(KeyRing {
            kind,
            current,
            keys: self.keys,
        })
    }
}

/// Calls `item` with each line of a key text that is not blank or a comment: its 1-based
/// number, its first word and the words after it. A line with words left over after `item`
/// is refused (without showing it).
pub fn for_each_line(
    kind: &'static str,
    text: &str,
    mut item: impl FnMut(usize, &str, &mut SplitWhitespace<'_>) -> Result<(), KeyError>,
) -> Result<(), KeyError> {
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split('#').next().unwrap_or_default();
        let mut words = content.split_whitespace();
        let Some(first) = words.next() else { continue };
        item(line, first, &mut words)?;
        if words.next().is_some() {
            return Err(KeyError::Malformed {
                kind,
                line,
                reason: "unexpected text after the key",
            });
        }
    }
    Ok(())
}

/// Parses a key id (1..=255).
fn parse_id(kind: &'static str, word: Option<&str>, line: usize) -> Result<u8, KeyError> {
    word.and_then(|w| w.parse::<u8>().ok())
        .filter(|&id| id != 0)
        .ok_or(KeyError::Malformed {
            kind,
            line,
            reason: "a key id is a number from 1 to 255",
        })
}

/// Reads an existing key file, refusing one its group or others may access; the text is
/// wiped from memory when dropped.
pub fn read(kind: &'static str, path: &Path) -> Result<Zeroizing<String>, KeyError> {
    let io_err = |action| io_error(kind, action, path);
    let file = fs::File::open(path).map_err(io_err("open"))?;
    let mode = file
        .metadata()
        .map_err(io_err("inspect"))?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::Permissions {
            kind,
            path: path.into(),
            mode,
        });
    }
    io::read_to_string(file)
        .map(Zeroizing::new)
        .map_err(io_err("read"))
}

/// Loads the key file at `path` with `parse`, or when it is missing creates it (mode 0600)
/// from `generate` and `text`; the flag is `true` when the file was created. When another
/// process creates it between the read and the write, theirs is loaded.
pub fn load_or_create<K>(
    kind: &'static str,
    path: &Path,
    parse: impl Fn(&str) -> Result<K, KeyError>,
    generate: impl FnOnce() -> Result<K, KeyError>,
    text: impl FnOnce(&K) -> Zeroizing<String>,
) -> Result<(K, bool), KeyError> {
    match read(kind, path) {
        Ok(existing) => return parse(&existing).map(|keys| (keys, false)),
        Err(err) if err.is_not_found() => {}
        Err(err) => return Err(err),
    }
    let keys = generate()?;
    match create(kind, path, &text(&keys)) {
        Ok(()) => Ok((keys, true)),
        Err(err) if err.is_already_exists() => {
            let existing = read(kind, path)?;
            parse(&existing).map(|keys| (keys, false))
        }
        Err(err) => Err(err),
    }
}

/// Creates `path` (which must not exist) owner-only holding `text`.
///
/// The text goes to a private temporary file first and is then hard-linked into place, so a
/// crash never leaves a half-written key file and an existing file is never replaced.
pub fn create(kind: &'static str, path: &Path, text: &str) -> Result<(), KeyError> {
    let tmp = sibling(path, &format!("new-{}", std::process::id()));
    let _ = fs::remove_file(&tmp);
    write_private(kind, &tmp, text)?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    linked.map_err(|source| KeyError::Io {
        kind,
        action: "create",
        path: path.into(),
        source,
    })
}

/// Replaces `path` with an owner-only file holding `text`, atomically (after a rotation).
pub fn replace(kind: &'static str, path: &Path, text: &str) -> Result<(), KeyError> {
    let tmp = sibling(path, "tmp");
    let _ = fs::remove_file(&tmp);
    write_private(kind, &tmp, text)?;
    fs::rename(&tmp, path).map_err(|source| KeyError::Io {
        kind,
        action: "replace",
        path: path.into(),
        source,
    })
}

/// Writes `text` to a new owner-only file at `path` and syncs it.
fn write_private(kind: &'static str, path: &Path, text: &str) -> Result<(), KeyError> {
    let io_err = |action| io_error(kind, action, path);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err("create"))?;
    file.write_all(text.as_bytes()).map_err(io_err("write"))?;
    file.sync_all().map_err(io_err("sync"))
}

/// Makes a file-system error of `action` on `path` a [`KeyError::Io`].
fn io_error<'a>(
    kind: &'static str,
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> KeyError + 'a {
    move |source| KeyError::Io {
        kind,
        action,
        path: path.into(),
        source,
    }
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

    fn ring(text: &str) -> Result<KeyRing, KeyError> {
        let mut lines = KeyRingLines::new("test");
        for_each_line("test", text, |line, kind, words| {
            if lines.take(kind, words, line)? {
                Ok(())
            } else {
                Err(KeyError::Malformed {
                    kind: "test",
                    line,
                    reason: "expected `enc` or `current`",
                })
            }
        })?;
        lines.finish()
    }

    #[test]
    fn ring_lines_roundtrip_through_the_text() {
        let mut ring1 = ring(&format!("enc 3 {KEY} # old\n\ncurrent 3\n")).unwrap();
        assert_eq!(ring1.rotate().unwrap(), 4);
        let mut text = String::new();
        ring1.write_lines(&mut text);
        let ring2 = ring(&text).unwrap();
        assert_eq!(ring2.key_ids(), [3, 4]);
        assert_eq!(ring2.current_key_id(), 4);
        assert_eq!(ring2.key(3).unwrap().expose_hex().as_str(), KEY);
        assert_eq!(ring2.key(4), ring1.key(4));
        assert_eq!(
            format!("{ring2:?}"),
            "KeyRing { current: 4, key_ids: [3, 4], .. }"
        );
    }

    #[test]
    fn create_never_replaces_and_replace_is_owner_only() {
        let dir = tempfile_dir();
        let path = dir.join("k");
        create("test", &path, "one\n").unwrap();
        let err = create("test", &path, "two\n").unwrap_err();
        assert!(err.is_already_exists(), "{err}");
        assert_eq!(read("test", &path).unwrap().as_str(), "one\n");
        replace("test", &path, "three\n").unwrap();
        assert_eq!(read("test", &path).unwrap().as_str(), "three\n");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no temporary files");
        let missing = read("test", &dir.join("nope")).unwrap_err();
        assert!(missing.is_not_found());
        assert!(
            missing.to_string().starts_with("cannot open test key file"),
            "{missing}"
        );
        fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "kald-keyfile-{}-{:x}",
            std::process::id(),
            OsRng.try_next_u64().unwrap()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}
