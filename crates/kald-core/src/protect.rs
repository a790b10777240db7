//! CPR numbers at rest: authenticated encryption for storage and a keyed hash for look-ups.
//!
//! A CPR number must be protected at rest (databeskyttelsesloven § 11; sickness-benefit calls
//! also carry health data). [`CprKeys`] holds the keys and does two things:
//!
//! - [`CprKeys::seal`] encrypts the ten digits with XChaCha20-Poly1305 under the *current*
//!   encryption key and a fresh random 24-byte nonce. The sealed bytes are
//!   `key id (1 byte) ‖ nonce (24 bytes) ‖ ciphertext + tag (10 + 16 bytes)`, 51 bytes in all;
//!   the associated data is a fixed context string plus the key id, so sealed bytes cannot be
//!   passed off as some other kind of ciphertext. [`CprKeys::open`] reverses it.
//! - [`CprKeys::lookup_hash`] is HMAC-SHA256 of the ten digits under a separate hash key: a
//!   stable, keyed value a database can index, so "every call of this citizen" (an access
//!   request) is a plain equality look-up without storing the number in clear. Without the key
//!   the hash cannot be brute-forced over the small CPR space.
//!
//! # Key rotation
//!
//! Encryption keys rotate: [`CprKeys::rotate`] adds a new key with the next id and makes it
//! current. New data is sealed with the current key; older sealed values name their key id in
//! their first byte and still open as long as that key stays in the key file. To retire an old
//! key, re-seal the rows that name it (open, then seal) and only then delete its line.
//!
//! The hash key does **not** rotate casually: every stored look-up hash was computed with it, so
//! changing it means re-hashing every stored CPR (open each sealed value and hash it again with
//! the new key) in one migration; until then look-ups miss.
//!
//! # The key file
//!
//! [`CprKeys::load_or_create`] reads a small text file, creating it owner-only (mode 0600) with
//! keys from the operating system's random source when it is missing, and refuses a file that
//! its group or others may read. The format, one item per line (`#` starts a comment):
//!
//! ```text
//! mac <64 hex digits>          the HMAC-SHA256 look-up hash key (exactly one)
//! enc <id> <64 hex digits>     an XChaCha20-Poly1305 key, id 1..=255 (one or more)
//! current <id>                 optional: the key new data is sealed with (default: highest id)
//! ```
//!
//! Neither the keys' `Debug` nor any error ever shows key material or CPR digits.
//!
//! Unlike the rest of this crate, this module reads the operating system's random source (for
//! nonces and new keys) and, in [`CprKeys::load_or_create`] and [`CprKeys::save`], the file
//! system (through [`crate::keyfile`], shared with the recording keys): nonces from a seeded
//! RNG would repeat and break the encryption.

use core::fmt;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::TryRngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

pub use crate::keyfile::KeyError;
use crate::keyfile::{self, KeyRing, KeyRingLines, Secret};
use crate::Cpr;

/// The key file's name in errors.
const KIND: &str = "CPR";

/// Associated data bound into every sealed CPR number (followed by the key id byte).
const AAD_CONTEXT: &[u8] = b"kald/cpr/v1";
/// Length of an XChaCha20-Poly1305 nonce.
const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag appended to the ciphertext.
const TAG_LEN: usize = 16;
/// Length of a sealed CPR number: key id, nonce, ten encrypted digits and the tag.
pub const SEALED_LEN: usize = 1 + NONCE_LEN + 10 + TAG_LEN;

/// HMAC-SHA256, the keyed look-up hash.
type HmacSha256 = Hmac<Sha256>;

/// The keys that protect CPR numbers at rest: encryption keys by id and the look-up hash key.
///
/// New data is sealed with the current encryption key; older keys stay for opening what they
/// sealed (see the [module docs](self) on rotation). `Debug` shows key ids only, never keys.
#[derive(Clone)]
pub struct CprKeys {
    /// The encryption keys by id, and the one [`seal`](Self::seal) uses.
    enc: KeyRing,
    /// The HMAC-SHA256 key for [`lookup_hash`](Self::lookup_hash).
    mac: Secret,
}

/// Why a sealed CPR number could not be opened; never contains digits or key material.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtectError {
    /// The sealed value does not have the length of a sealed CPR number.
    #[error("sealed CPR value has {len} bytes, expected {SEALED_LEN}")]
    BadLength {
        /// Length of the sealed value given.
        len: usize,
    },
    /// The sealed value names an encryption key that is not in the key file.
    #[error("sealed CPR value names key {id}, which is not among the loaded keys")]
    UnknownKey {
        /// The key id in the sealed value's first byte.
        id: u8,
    },
    /// Authentication failed: the value was altered, or sealed under a different key.
    #[error("sealed CPR value failed authentication (altered, or sealed with another key)")]
    Authentication,
    /// Decryption succeeded but the plaintext is not a valid CPR number.
    #[error("sealed CPR value does not hold a valid CPR number")]
    NotCpr,
}

impl CprKeys {
    /// Fresh random keys (key id 1) from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        Ok(Self {
            enc: KeyRing::generate(KIND)?,
            mac: Secret::random()?,
        })
    }

    /// Keys from hex: one encryption key (id 1) and the look-up hash key, 64 hex digits each.
    pub fn from_hex(enc_hex: &str, mac_hex: &str) -> Result<Self, KeyError> {
        Ok(Self {
            enc: KeyRing::single(KIND, Secret::from_hex(KIND, enc_hex, 1)?),
            mac: Secret::from_hex(KIND, mac_hex, 2)?,
        })
    }

    /// Keys from the key-file text (see the [module docs](self)), e.g. from an environment
    /// variable or secret store instead of a file.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut enc = KeyRingLines::new(KIND);
        let mut mac = None;
        keyfile::for_each_line(KIND, text, |line, kind, words| {
            let malformed = |reason| KeyError::Malformed {
                kind: KIND,
                line,
                reason,
            };
            if kind == "mac" {
                let hex = words.next().ok_or(malformed("`mac` needs a key"))?;
                if mac.replace(Secret::from_hex(KIND, hex, line)?).is_some() {
                    return Err(malformed("a second `mac` line"));
                }
            } else if !enc.take(kind, words, line)? {
                return Err(malformed("expected `mac`, `enc` or `current`"));
            }
            Ok(())
        })?;
        let mac = mac.ok_or(KeyError::Missing {
            kind: KIND,
            what: "look-up hash key (a `mac <hex>` line)",
        })?;
        Ok(Self {
            enc: enc.finish()?,
            mac,
        })
    }

    /// Loads the key file at `path`, or creates it (mode 0600, random keys) when it is missing;
    /// the flag is `true` when the file was created. Refuses a file its group or others may
    /// read or write.
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

    /// Adds a new random encryption key with the next id and makes it current; returns its id.
    /// Older keys stay, so what they sealed still opens. Call [`save`](Self::save) afterwards.
    pub fn rotate(&mut self) -> Result<u8, KeyError> {
        self.enc.rotate()
    }

    /// The id of the encryption key new data is sealed with.
    pub fn current_key_id(&self) -> u8 {
        self.enc.current_key_id()
    }

    /// The ids of every loaded encryption key, ascending.
    pub fn key_ids(&self) -> Vec<u8> {
        self.enc.key_ids()
    }

    /// Encrypts the CPR number under the current key with a fresh random nonce.
    ///
    /// Returns `key id ‖ nonce ‖ ciphertext + tag` ([`SEALED_LEN`] bytes). Sealing the same
    /// number twice gives different bytes; use [`lookup_hash`](Self::lookup_hash) to find it.
    pub fn seal(&self, cpr: &Cpr) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        // Invariant: the OS random source does not fail on supported systems (Linux getrandom
        // blocks until seeded); sealing with a predictable nonce would be worse than stopping.
        OsRng
            .try_fill_bytes(&mut nonce)
            .expect("the operating system's random source failed");
        self.seal_with_nonce(cpr, nonce)
    }

    /// Seals with the given nonce; callers other than `seal` and tests must never reuse one.
    fn seal_with_nonce(&self, cpr: &Cpr, nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let (id, key) = self.enc.current_key();
        let cipher = XChaCha20Poly1305::new(key.expose().into());
        let aad = aad(id);
        let payload = Payload {
            msg: cpr.expose_digits().as_bytes(),
            aad: &aad,
        };
        // Invariant: encryption fails only for messages longer than 256 GiB.
        let ciphertext = cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .expect("XChaCha20-Poly1305 encrypts 10 bytes");
        let mut sealed = Vec::with_capacity(SEALED_LEN);
        sealed.push(id);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Decrypts a value made by [`seal`](Self::seal) with this or an older key.
    pub fn open(&self, sealed: &[u8]) -> Result<Cpr, ProtectError> {
        if sealed.len() != SEALED_LEN {
            return Err(ProtectError::BadLength { len: sealed.len() });
        }
        let id = sealed[0];
        let key = self.enc.key(id).ok_or(ProtectError::UnknownKey { id })?;
        let cipher = XChaCha20Poly1305::new(key.expose().into());
        let nonce = XNonce::from_slice(&sealed[1..=NONCE_LEN]);
        let aad = aad(id);
        let payload = Payload {
            msg: &sealed[1 + NONCE_LEN..],
            aad: &aad,
        };
        let plain = cipher
            .decrypt(nonce, payload)
            .map_err(|_| ProtectError::Authentication)?;
        let digits = core::str::from_utf8(&plain).map_err(|_| ProtectError::NotCpr)?;
        Cpr::parse(digits).map_err(|_| ProtectError::NotCpr)
    }

    /// HMAC-SHA256 of the ten digits under the look-up hash key: stable across runs and
    /// encryption-key rotations, useless without the key.
    pub fn lookup_hash(&self, cpr: &Cpr) -> [u8; 32] {
        // Invariant: HMAC accepts keys of any length.
        let mut mac = <HmacSha256 as Mac>::new_from_slice(self.mac.expose())
            .expect("HMAC takes any key length");
        mac.update(cpr.expose_digits().as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The key-file text for these keys; it holds the secret keys, hence the name (and it is
    /// wiped from memory when dropped).
    pub fn expose_file_text(&self) -> Zeroizing<String> {
        let mut text = Zeroizing::new(String::from(
            "# kald CPR keys. Secret: keep this file mode 0600 and back it up; without it the\n\
             # stored CPR numbers cannot be read. `enc` keys rotate (new data uses `current`);\n\
             # changing `mac` means re-hashing every stored CPR number.\n",
        ));
        text.push_str(&format!("mac {}\n", *self.mac.expose_hex()));
        self.enc.write_lines(&mut text);
        text
    }
}

impl fmt::Debug for CprKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CprKeys")
            .field("current", &self.current_key_id())
            .field("key_ids", &self.key_ids())
            .finish_non_exhaustive()
    }
}

/// The associated data for key `id`: the context string and the id.
fn aad(id: u8) -> Vec<u8> {
    let mut aad = AAD_CONTEXT.to_vec();
    aad.push(id);
    aad
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    const ENC: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const MAC: &str = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f";

    fn cpr() -> Cpr {
        Cpr::parse("070761-4285").unwrap()
    }

    fn keys() -> CprKeys {
        CprKeys::from_hex(ENC, MAC).unwrap()
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "kald-protect-{name}-{}-{:x}",
            std::process::id(),
            OsRng.try_next_u64().unwrap()
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn seal_open_roundtrip() {
        let keys = keys();
        let sealed = keys.seal(&cpr());
        assert_eq!(sealed.len(), SEALED_LEN);
        assert_eq!(sealed[0], 1);
        assert_eq!(keys.open(&sealed).unwrap(), cpr());
        // A fresh nonce each time: the same number never seals to the same bytes.
        assert_ne!(keys.seal(&cpr()), sealed);
        // And the digits are nowhere in the sealed bytes.
        assert!(!sealed.windows(10).any(|w| w == b"0707614285"));
    }

    #[test]
    fn tampering_is_detected() {
        let keys = keys();
        let sealed = keys.seal(&cpr());
        for i in 1..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(
                keys.open(&bad),
                Err(ProtectError::Authentication),
                "byte {i}"
            );
        }
        let mut other_id = sealed.clone();
        other_id[0] = 7;
        assert_eq!(
            keys.open(&other_id),
            Err(ProtectError::UnknownKey { id: 7 })
        );
        assert_eq!(
            keys.open(&sealed[..SEALED_LEN - 1]),
            Err(ProtectError::BadLength {
                len: SEALED_LEN - 1
            })
        );
        assert_eq!(keys.open(&[]), Err(ProtectError::BadLength { len: 0 }));
    }

    #[test]
    fn another_key_cannot_open() {
        let sealed = keys().seal(&cpr());
        let other = CprKeys::generate().unwrap();
        assert_eq!(other.current_key_id(), 1);
        assert_eq!(other.open(&sealed), Err(ProtectError::Authentication));
    }

    #[test]
    fn sealed_non_cpr_is_refused() {
        let keys = keys();
        let cipher = XChaCha20Poly1305::new(keys.enc.key(1).unwrap().expose().into());
        let nonce = [9u8; NONCE_LEN];
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: b"3204907777",
                    aad: &aad(1),
                },
            )
            .unwrap();
        let mut sealed = vec![1];
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ct);
        assert_eq!(keys.open(&sealed), Err(ProtectError::NotCpr));
    }

    #[test]
    fn lookup_hash_is_stable_and_keyed() {
        let a = keys();
        let b = CprKeys::from_hex(ENC, MAC).unwrap();
        assert_eq!(a.lookup_hash(&cpr()), b.lookup_hash(&cpr()));
        // Not a plain hash of the digits, and another key gives another hash.
        let plain: [u8; 32] = <Sha256 as sha2::Digest>::digest(b"0707614285").into();
        assert_ne!(a.lookup_hash(&cpr()), plain);
        let other_mac = CprKeys::from_hex(ENC, ENC).unwrap();
        assert_ne!(a.lookup_hash(&cpr()), other_mac.lookup_hash(&cpr()));
        // Another number, another hash.
        let other_cpr = Cpr::parse("0101901234").unwrap();
        assert_ne!(a.lookup_hash(&cpr()), a.lookup_hash(&other_cpr));
        // Known answer, so an accidental change of the construction is caught.
        assert_eq!(
            hex::encode(a.lookup_hash(&cpr())),
            hex::encode(
                <HmacSha256 as Mac>::new_from_slice(&hex::decode(MAC).unwrap())
                    .unwrap()
                    .chain_update(b"0707614285")
                    .finalize()
                    .into_bytes()
            )
        );
    }

    #[test]
    fn rotation_keeps_old_ciphertexts_readable() {
        let mut keys = keys();
        let hash_before = keys.lookup_hash(&cpr());
        let old = keys.seal(&cpr());
        assert_eq!(keys.rotate().unwrap(), 2);
        assert_eq!(keys.current_key_id(), 2);
        assert_eq!(keys.key_ids(), [1, 2]);
        let new = keys.seal(&cpr());
        assert_eq!(new[0], 2);
        assert_eq!(keys.open(&old).unwrap(), cpr());
        assert_eq!(keys.open(&new).unwrap(), cpr());
        assert_eq!(
            keys.lookup_hash(&cpr()),
            hash_before,
            "the hash key does not rotate"
        );

        // Saved and reloaded, the rotation survives.
        let dir = temp_dir("rotate");
        let path = dir.join("cpr.keys");
        keys.save(&path).unwrap();
        let reloaded = CprKeys::load(&path).unwrap();
        assert_eq!(reloaded.current_key_id(), 2);
        assert_eq!(reloaded.open(&old).unwrap(), cpr());
        assert_eq!(reloaded.open(&new).unwrap(), cpr());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        // A key file without the old key cannot open old data.
        let only_new = CprKeys::parse(
            &reloaded
                .expose_file_text()
                .lines()
                .filter(|l| !l.starts_with("enc 1 "))
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .unwrap();
        assert_eq!(only_new.open(&old), Err(ProtectError::UnknownKey { id: 1 }));
        assert_eq!(only_new.open(&new).unwrap(), cpr());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn key_file_is_created_owner_only_and_reloaded() {
        let dir = temp_dir("create");
        let path = dir.join("cpr.keys");
        let (created, was_created) = CprKeys::load_or_create(&path).unwrap();
        assert!(was_created);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (loaded, was_created) = CprKeys::load_or_create(&path).unwrap();
        assert!(!was_created);
        assert_eq!(loaded.open(&created.seal(&cpr())).unwrap(), cpr());
        assert_eq!(loaded.lookup_hash(&cpr()), created.lookup_hash(&cpr()));
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn key_file_readable_by_others_is_refused() {
        let dir = temp_dir("perms");
        let path = dir.join("cpr.keys");
        CprKeys::load_or_create(&path).unwrap();
        for mode in [0o640, 0o604, 0o660, 0o644] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = CprKeys::load_or_create(&path).unwrap_err();
            assert!(
                matches!(err, KeyError::Permissions { mode: m, .. } if m == mode),
                "{err:?}"
            );
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn key_text_errors_show_no_key_material() {
        let cases = [
            (format!("enc 1 {ENC}\n"), "look-up hash key"),
            (format!("mac {MAC}\n"), "no encryption key"),
            (format!("mac {MAC}\nenc 0 {ENC}\n"), "line 2"),
            (format!("mac {MAC}\nenc 1 {}\n", &ENC[..62]), "line 2"),
            (format!("mac {MAC}\nenc 1 {ENC}\nenc 1 {MAC}\n"), "line 3"),
            (format!("mac {MAC}\nenc 1 {ENC}\ncurrent 4\n"), "key 4"),
            (format!("mac {MAC} {ENC}\nenc 1 {ENC}\n"), "line 1"),
            (format!("key {MAC}\n"), "line 1"),
        ];
        for (text, expected) in cases {
            let err = CprKeys::parse(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
            assert!(
                !err.contains(&ENC[..16]) && !err.contains(&MAC[..16]),
                "{err}"
            );
        }
        // Comments, blank lines and an explicit `current` are fine.
        let text = format!("# keys\n\nmac {MAC}  # hash\nenc 1 {ENC}\nenc 2 {MAC}\ncurrent 1\n");
        let keys = CprKeys::parse(&text).unwrap();
        assert_eq!(keys.current_key_id(), 1);
        assert_eq!(keys.key_ids(), [1, 2]);
    }

    #[test]
    fn debug_shows_no_key_material() {
        let mut keys = keys();
        keys.rotate().unwrap();
        let shown = format!("{keys:?} {keys:#?}");
        assert_eq!(
            format!("{keys:?}"),
            "CprKeys { current: 2, key_ids: [1, 2], .. }"
        );
        for key in [ENC, MAC] {
            assert!(!shown.contains(&key[..8]), "{shown}");
        }
        let text = keys.expose_file_text();
        let ring = [
            keys.enc.key(1).unwrap(),
            keys.enc.key(2).unwrap(),
            &keys.mac,
        ];
        for key in ring {
            assert!(!shown.contains(&key.expose_hex()[..8]), "{shown}");
            assert!(text.contains(key.expose_hex().as_str()));
        }
    }

    #[test]
    fn errors_never_contain_digits_of_the_number() {
        let keys = keys();
        let sealed = keys.seal(&cpr());
        let mut bad = sealed.clone();
        bad[30] ^= 0xff;
        for err in [
            keys.open(&bad).unwrap_err(),
            keys.open(&sealed[..3]).unwrap_err(),
            ProtectError::NotCpr,
        ] {
            for s in [err.to_string(), format!("{err:?}")] {
                assert!(!s.contains("0707") && !s.contains("4285"), "{s}");
            }
        }
    }
}
