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
//! new keys) and the file system (the key file), through `kald_core::keyfile`, which the CPR
//! keys of `kald_core::protect` share. Recording files
//! themselves are written through the `std::io` traits the caller passes, and their nonces
//! come from the caller.

use core::fmt;
use std::path::Path;

pub use kald_core::keyfile::KeyError;
pub(crate) use kald_core::keyfile::Secret;
use kald_core::keyfile::{self, KeyRing, KeyRingLines};
use zeroize::Zeroizing;

/// The key file's name in errors.
const KIND: &str = "recording";

/// The keys recording files are sealed with, by id; new files use the current one.
///
/// `Debug` shows the key ids only, never keys.
#[derive(Clone)]
pub struct RecordingKeys {
    /// Every key by id, and the one new recordings use.
    ring: KeyRing,
}

impl RecordingKeys {
    /// One fresh random key (id 1) from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        Ok(Self {
            ring: KeyRing::generate(KIND)?,
        })
    }

    /// One key (id 1) from 64 hex digits, e.g. for tests.
    pub fn from_hex(hex: &str) -> Result<Self, KeyError> {
        Ok(Self {
            ring: KeyRing::single(KIND, Secret::from_hex(KIND, hex, 1)?),
        })
    }

    /// Keys from the key-file text (see the [module docs](self)), e.g. from an environment
    /// variable or secret store instead of a file.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut ring = KeyRingLines::new(KIND);
        keyfile::for_each_line(KIND, text, |line, kind, words| {
            if ring.take(kind, words, line)? {
                return Ok(());
            }
            Err(KeyError::Malformed {
                kind: KIND,
                line,
                reason: if kind == "mac" {
                    "a `mac` line belongs to the CPR key file; recordings have their own key file"
                } else {
                    "expected `enc` or `current`"
                },
            })
        })?;
        Ok(Self {
            ring: ring.finish()?,
        })
    }

    /// Loads the key file at `path`, or creates it (mode 0600, one random key) when it is
    /// missing; the flag is `true` when the file was created. Refuses a file its group or
    /// others may read or write.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyError> {
        keyfile::load_or_create(KIND, path, Self::parse, Self::generate, |keys| {
            keys.expose_file_text()
        })
    }

    /// Loads an existing key file, refusing one that its group or others may access.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        Self::parse(&keyfile::read(KIND, path)?)
    }

    /// Writes the keys to `path` (mode 0600), replacing the file atomically; used after
    /// [`rotate`](Self::rotate).
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        keyfile::replace(KIND, path, &self.expose_file_text())
    }

    /// Adds a new random key with the next id and makes it current; returns its id. Older keys
    /// stay, so the files they sealed still open. Call [`save`](Self::save) afterwards.
    pub fn rotate(&mut self) -> Result<u8, KeyError> {
        self.ring.rotate()
    }

    /// Removes key `id` (after every file it sealed was re-encrypted); the current key cannot
    /// be removed. Returns whether a key was removed. Call [`save`](Self::save) afterwards.
    pub fn retire(&mut self, id: u8) -> bool {
        self.ring.retire(id)
    }

    /// The id of the key new recordings are sealed with.
    pub fn current_key_id(&self) -> u8 {
        self.ring.current_key_id()
    }

    /// The ids of every loaded key, ascending.
    pub fn key_ids(&self) -> Vec<u8> {
        self.ring.key_ids()
    }

    /// The key with this id, if loaded.
    pub(crate) fn key(&self, id: u8) -> Option<&Secret> {
        self.ring.key(id)
    }

    /// The current key and its id.
    pub(crate) fn current_key(&self) -> (u8, &Secret) {
        self.ring.current_key()
    }

    /// The key-file text for these keys; it holds the secret keys, hence the name (and it is
    /// wiped from memory when dropped).
    pub fn expose_file_text(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::from(
            "# kald recording keys. Secret: keep this file mode 0600 and back it up away from\n\
             # the data; without it no recording can be played. New recordings use `current`;\n\
             # keep an old key until every file that names it has been re-encrypted.\n",
        ));
        self.ring.write_lines(&mut text);
        text
    }
}

impl fmt::Debug for RecordingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingKeys")
            .field("current", &self.current_key_id())
            .field("key_ids", &self.key_ids())
            .finish_non_exhaustive()
    }
}

/// Lower-case hex of `bytes` (a digest, in `Debug` output).
pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use rand::rngs::OsRng;
    use rand::TryRngCore;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

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
        assert!(matches!(full.rotate(), Err(KeyError::IdsExhausted { .. })));
    }

    #[test]
    fn key_text_errors_show_no_key_material() {
        let cases = [
            (String::new(), "no encryption key"),
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
        for id in [1, 2] {
            let key = keys.key(id).unwrap();
            assert!(!shown.contains(&key.expose_hex()[..8]), "{shown}");
        }
        assert_eq!(format!("{:?}", keys.key(1).unwrap()), "Secret(..)");
    }
}
