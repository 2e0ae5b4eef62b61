//! Key material. Production passes keys in configuration, shared by every
//! replica; the embedded default derives them from a random master key kept
//! in its data folder, so that a newcomer's server survives a restart
//! without any set-up.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::field::Algorithm;

pub const KEY_LEN: usize = 32;

#[derive(Clone)]
pub struct Keys {
    /// Signs access tokens.
    pub token_secret: Vec<u8>,
    /// Versioned keys for personal data; the highest version encrypts.
    pub data_keys: Vec<(u32, [u8; KEY_LEN])>,
    /// The algorithm new personal data is encrypted with.
    pub data_cipher: Algorithm,
    /// Keys the blind indexes that find citizens by phone. Never rotated
    /// with the data keys: a change would orphan every stored index. By
    /// default it is the lowest-versioned data key, as it always was.
    pub blind_index_key: [u8; KEY_LEN],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(<redacted>)")
    }
}

impl Keys {
    /// Loads the master key from `dir/master.key`, creating it (readable by
    /// the owner only) on first start.
    pub fn from_master_key_file(dir: &Path) -> anyhow::Result<Keys> {
        let path = dir.join("master.key");
        let master = if path.exists() {
            let text = fs::read_to_string(&path)
                .with_context(|| format!("Failed to read {}", path.display()))?;
            decode_key(text.trim()).with_context(|| format!("Bad key in {}", path.display()))?
        } else {
            fs::create_dir_all(dir)
                .with_context(|| format!("Failed to create {}", dir.display()))?;
            let mut key = [0u8; KEY_LEN];
            rand::fill(&mut key);
            write_private(&path, &hex_encode(&key))?;
            key
        };
        Ok(Keys::derived_from(&master))
    }

    /// Derives independent keys from one master key, one label each.
    pub fn derived_from(master: &[u8]) -> Keys {
        let derive = |label: &[u8]| {
            let mut mac =
                Hmac::<Sha256>::new_from_slice(master).expect("HMAC takes any key length");
            mac.update(label);
            let out: [u8; KEY_LEN] = mac.finalize().into_bytes().into();
            out
        };
        let data_key = derive(b"huying/personal-data/v1");
        Keys {
            token_secret: derive(b"huying/token-signing/v1").to_vec(),
            data_keys: vec![(1, data_key)],
            data_cipher: Algorithm::default(),
            blind_index_key: data_key,
        }
    }
}

/// Parses a key written as 64 hex digits.
pub fn decode_key(text: &str) -> anyhow::Result<[u8; KEY_LEN]> {
    if text.len() != KEY_LEN * 2 {
        bail!("a key must be {} hex digits", KEY_LEN * 2);
    }
    let mut key = [0u8; KEY_LEN];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).context("a key must be hex")?;
    }
    Ok(key)
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("Failed to create {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("Failed to write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_master_key_file_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = Keys::from_master_key_file(dir.path()).unwrap();
        let second = Keys::from_master_key_file(dir.path()).unwrap();
        assert_eq!(first.token_secret, second.token_secret);
        assert_ne!(first.token_secret, first.data_keys[0].1.to_vec());
    }

    #[test]
    fn keys_must_be_64_hex_digits() {
        assert!(decode_key("abcd").is_err());
        assert!(decode_key(&"zz".repeat(32)).is_err());
        assert_eq!(decode_key(&"0f".repeat(32)).unwrap(), [0x0f; 32]);
    }
}
