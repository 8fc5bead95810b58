//! Secrets at rest: the values Fulcrum must read back (LLM provider keys, GitHub and Coder
//! credentials, webhook signing secrets) are sealed with AES-256-GCM under a master key that
//! comes from the configuration or the environment, never from the database. Each ciphertext
//! names the key it was sealed under, so keys can rotate (`fulcrum-relay keys rotate`), and is
//! bound to the row it belongs to (owner and name, as associated data), so a ciphertext copied
//! to another row does not open.
//!
//! A key ring is written as lines (or comma-separated entries) of `ID:BASE64`, a 32-byte key
//! each; the first is the current key, which seals, and the others only open what they sealed
//! before a rotation. `fulcrum-relay keys generate` prints a new entry.

use aes_gcm::{
    Aes256Gcm, Nonce,
    aead::{Aead, KeyInit, Payload},
};
use base64::Engine;
use rand::RngCore;

/// Bytes of a master key.
const KEY_BYTES: usize = 32;
/// Bytes of a nonce (96 bits, fresh and random for every seal).
const NONCE_BYTES: usize = 12;
/// Longest key id.
const MAX_KEY_ID: usize = 32;
/// Most keys in a ring.
const MAX_KEYS: usize = 16;
/// Largest secret sealed (provider keys and credentials are far smaller).
pub const MAX_SECRET_BYTES: usize = 64 * 1024;

/// Why a secret could not be sealed or opened, or a key ring read.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The key ring's text is not a list of `ID:BASE64` entries of 32-byte keys.
    #[error("invalid master key list: {0}")]
    BadKeys(String),
    /// No master key is configured, and one is needed.
    #[error(
        "no master key is configured: set FULCRUM_MASTER_KEYS or [secrets] master_keys_file \
         (make one with `fulcrum-relay keys generate`)"
    )]
    NoKeys,
    /// A secret was sealed under a key the ring does not hold.
    #[error("a secret is sealed under master key {0:?}, which is not configured")]
    UnknownKey(String),
    /// The key of that id did not open the secret: a wrong key, or a changed ciphertext.
    #[error(
        "a secret sealed under master key {0:?} does not open with the configured key of that \
         id: the key is wrong, or the stored secret was changed"
    )]
    WontOpen(String),
    /// Too large to seal.
    #[error("a secret is at most {MAX_SECRET_BYTES} bytes")]
    TooLarge,
}

/// A secret's bytes in memory. Its `Debug` output never shows them, and they are overwritten
/// when it is dropped.
pub struct Plain(Vec<u8>);

impl Plain {
    /// Wraps secret bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// The bytes, for the one place that needs them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Plain {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
    }
}

impl std::fmt::Debug for Plain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Plain(<{} bytes redacted>)", self.0.len())
    }
}

/// A sealed secret: the id of the key that sealed it, and the nonce followed by the
/// ciphertext and its tag.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The master key's id.
    pub key_id: String,
    /// Nonce, ciphertext, tag.
    pub blob: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("bytes", &self.blob.len())
            .finish()
    }
}

/// One master key. Its `Debug` output shows only its id.
struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The master keys: the current one seals, every one opens what it sealed.
pub struct KeyRing {
    keys: Vec<MasterKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("ids", &self.ids())
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Reads a key ring: entries `ID:BASE64` separated by newlines or commas, the current key
    /// first. Blank lines and lines starting with `#` are skipped.
    pub fn parse(text: &str) -> Result<Self, SecretsError> {
        let bad = |m: String| Err(SecretsError::BadKeys(m));
        let mut keys: Vec<MasterKey> = Vec::new();
        for entry in text
            .split(['\n', ','])
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.starts_with('#'))
        {
            let Some((id, encoded)) = entry.split_once(':') else {
                return bad("each entry is ID:BASE64".into());
            };
            let (id, encoded) = (id.trim(), encoded.trim());
            if id.is_empty()
                || id.len() > MAX_KEY_ID
                || !id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return bad(format!(
                    "a key id is 1 to {MAX_KEY_ID} letters, digits, '-' or '_'"
                ));
            }
            if keys.iter().any(|k| k.id == id) {
                return bad(format!("the key id {id:?} appears twice"));
            }
            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(encoded) else {
                return bad(format!("the key {id:?} is not base64"));
            };
            let cipher = match Aes256Gcm::new_from_slice(&bytes) {
                Ok(cipher) if bytes.len() == KEY_BYTES => cipher,
                _ => return bad(format!("the key {id:?} is not {KEY_BYTES} bytes")),
            };
            keys.push(MasterKey {
                id: id.to_owned(),
                cipher,
            });
            if keys.len() > MAX_KEYS {
                return bad(format!("at most {MAX_KEYS} keys"));
            }
        }
        if keys.is_empty() {
            return Err(SecretsError::NoKeys);
        }
        Ok(Self { keys })
    }

    /// A new entry `ID:BASE64` with a random key, for `fulcrum-relay keys generate`.
    pub fn generate_entry(id: &str) -> String {
        let mut key = [0u8; KEY_BYTES];
        rand::rng().fill_bytes(&mut key);
        let entry = format!(
            "{id}:{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        );
        key.iter_mut().for_each(|b| *b = 0);
        entry
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Every key's id, the current one first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// Whether the ring holds a key of this id.
    pub fn has(&self, id: &str) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }

    /// Seals `plain` under the current key, bound to `context` (what it belongs to).
    pub fn seal(&self, context: &str, plain: &[u8]) -> Result<Sealed, SecretsError> {
        if plain.len() > MAX_SECRET_BYTES {
            return Err(SecretsError::TooLarge);
        }
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_BYTES];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = key
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: context.as_bytes(),
                },
            )
            // Only a message past AES-GCM's limit (64 GiB) fails; the size check is far below.
            .map_err(|_| SecretsError::TooLarge)?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        Ok(Sealed {
            key_id: key.id.clone(),
            blob,
        })
    }

    /// Opens a secret sealed for `context`.
    pub fn open(&self, context: &str, sealed: &Sealed) -> Result<Plain, SecretsError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| SecretsError::UnknownKey(sealed.key_id.clone()))?;
        let wont = || SecretsError::WontOpen(sealed.key_id.clone());
        if sealed.blob.len() < NONCE_BYTES {
            return Err(wont());
        }
        let (nonce, ciphertext) = sealed.blob.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| wont())?;
        key.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map(Plain)
            .map_err(|_| wont())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(entries: &[&str]) -> KeyRing {
        KeyRing::parse(&entries.join("\n")).unwrap()
    }

    #[test]
    fn seals_and_opens_only_for_the_same_context_and_key() {
        let k1 = KeyRing::generate_entry("k1");
        let keys = ring(&[&k1]);
        let sealed = keys.seal("user/a/openai", b"sk-secret-value").unwrap();
        assert_eq!(sealed.key_id, "k1");
        assert!(
            !sealed.blob.windows(b"secret".len()).any(|w| w == b"secret"),
            "no plaintext in the blob"
        );
        let plain = keys.open("user/a/openai", &sealed).unwrap();
        assert_eq!(plain.expose(), b"sk-secret-value");
        // Another row's context, a changed byte, another key of the same id: refused.
        assert!(matches!(
            keys.open("user/b/openai", &sealed),
            Err(SecretsError::WontOpen(_))
        ));
        let mut changed = sealed.clone();
        *changed.blob.last_mut().unwrap() ^= 1;
        assert!(keys.open("user/a/openai", &changed).is_err());
        let other = ring(&[&KeyRing::generate_entry("k1")]);
        assert!(matches!(
            other.open("user/a/openai", &sealed),
            Err(SecretsError::WontOpen(_))
        ));
        let unknown = ring(&[&KeyRing::generate_entry("k2")]);
        assert!(matches!(
            unknown.open("user/a/openai", &sealed),
            Err(SecretsError::UnknownKey(id)) if id == "k1"
        ));
        // Two seals of the same value differ (fresh nonces).
        assert_ne!(keys.seal("c", b"v").unwrap(), keys.seal("c", b"v").unwrap());
    }

    #[test]
    fn the_first_key_seals_and_older_ones_still_open() {
        let (k1, k2) = (KeyRing::generate_entry("k1"), KeyRing::generate_entry("k2"));
        let old = ring(&[&k1]).seal("c", b"v").unwrap();
        let rotated = KeyRing::parse(&format!("{k2}, {k1}")).unwrap();
        assert_eq!(rotated.current_id(), "k2");
        assert_eq!(rotated.ids(), ["k2", "k1"]);
        assert_eq!(rotated.open("c", &old).unwrap().expose(), b"v");
        assert_eq!(rotated.seal("c", b"v").unwrap().key_id, "k2");
    }

    #[test]
    fn bad_key_lists_are_refused_with_a_reason() {
        for (text, says) in [
            ("", "no master key"),
            ("# only a comment", "no master key"),
            ("k1", "ID:BASE64"),
            ("k1:not base64!", "not base64"),
            ("k1:AAAA", "not 32 bytes"),
            ("bad id:AAAA", "key id"),
        ] {
            let e = KeyRing::parse(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text:?}: {e}");
        }
        let k = KeyRing::generate_entry("k1");
        let e = KeyRing::parse(&format!("{k}\n{k}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("twice"), "{e}");
        assert!(KeyRing::parse(&"x".repeat(10)).is_err());
        let big = vec![0u8; MAX_SECRET_BYTES + 1];
        assert!(matches!(
            ring(&[&k]).seal("c", &big),
            Err(SecretsError::TooLarge)
        ));
    }

    #[test]
    fn debug_never_shows_key_or_secret_bytes() {
        let entry = KeyRing::generate_entry("k1");
        let encoded = entry.split_once(':').unwrap().1.to_owned();
        let keys = ring(&[&entry]);
        let shown = format!("{keys:?}");
        assert!(shown.contains("k1") && !shown.contains(&encoded), "{shown}");
        let plain = Plain::new(b"hunter2".to_vec());
        assert!(!format!("{plain:?}").contains("hunter2"));
        let sealed = keys.seal("c", b"hunter2").unwrap();
        assert!(!format!("{sealed:?}").contains("hunter2"));
    }
}
