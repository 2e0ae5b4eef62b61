//! Time-based one-time passwords (RFC 6238 over RFC 4226): HMAC-SHA1,
//! 30-second steps, 6 digits, what every authenticator app speaks.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};

/// Seconds per time step.
pub const STEP_SECONDS: i64 = 30;
pub const DIGITS: u32 = 6;
/// A code of one step before or after now is accepted too, for phones
/// whose clock is a little off and codes typed as the step turns.
pub const TOLERANCE_STEPS: u64 = 1;
/// 160 bits, the size RFC 4226 recommends for HMAC-SHA1.
pub const SECRET_LEN: usize = 20;
/// The name authenticator apps show above the code.
pub const ISSUER: &str = "Huying";

/// A shared TOTP secret. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

impl TotpSecret {
    pub fn generate() -> TotpSecret {
        let mut bytes = vec![0u8; SECRET_LEN];
        rand::fill(&mut bytes[..]);
        TotpSecret(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> TotpSecret {
        TotpSecret(bytes)
    }

    /// Reads the base32 form authenticator apps are given.
    pub fn from_base32(text: &str) -> Option<TotpSecret> {
        base32_decode(text).map(TotpSecret)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32 without padding, as otpauth URIs carry it.
    pub fn to_base32(&self) -> String {
        base32_encode(&self.0)
    }

    /// The `otpauth://` URI an authenticator app scans from a QR code.
    /// Usernames are plain ASCII names, so nothing needs escaping.
    pub fn otpauth_uri(&self, username: &str) -> String {
        format!(
            "otpauth://totp/{ISSUER}:{username}?secret={}&issuer={ISSUER}\
             &algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            self.to_base32()
        )
    }
}

/// The time step a moment falls in.
pub fn step_at(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp().div_euclid(STEP_SECONDS)).unwrap_or(0)
}

/// The code of one time step (HOTP with the step as counter).
pub fn code_for_step(secret: &TotpSecret, step: u64) -> String {
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();

    // Dynamic truncation: the low nibble of the last byte picks 4 bytes.
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let word = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!(
        "{:0width$}",
        word % 10u32.pow(DIGITS),
        width = DIGITS as usize
    )
}

/// The code an authenticator shows at `at`.
pub fn code_at(secret: &TotpSecret, at: DateTime<Utc>) -> String {
    code_for_step(secret, step_at(at))
}

/// The step whose code `code` is, within the tolerance around `now`, and
/// later than `after` (a step already used is never accepted again).
pub fn matching_step(
    secret: &TotpSecret,
    code: &str,
    now: DateTime<Utc>,
    after: Option<u64>,
) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = step_at(now);
    let first = current.saturating_sub(TOLERANCE_STEPS);
    let mut found = None;
    // Every candidate is computed and compared in full, so the time taken
    // does not tell which step (if any) matched.
    for step in first..=current + TOLERANCE_STEPS {
        let fresh = after.is_none_or(|used| step > used);
        if constant_time_eq(code_for_step(secret, step).as_bytes(), code.as_bytes()) && fresh {
            found = found.or(Some(step));
        }
    }
    found
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let value = BASE32.iter().position(|&b| b == c.to_ascii_uppercase())?;
        buffer = (buffer << 5) | value as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec())
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    #[test]
    fn codes_match_the_rfc_6238_sha1_vectors() {
        // The RFC's 8-digit values, of which 6-digit codes are the tail.
        for (seconds, expected) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(code_at(&rfc_secret(), at(seconds)), expected[2..]);
        }
    }

    #[test]
    fn one_step_either_side_is_accepted_and_no_further() {
        let secret = TotpSecret::generate();
        let now = at(1_800_000_015);
        let step = step_at(now);
        for offset in [-1i64, 0, 1] {
            let code = code_for_step(&secret, step.wrapping_add_signed(offset));
            assert_eq!(
                matching_step(&secret, &code, now, None),
                Some(step.wrapping_add_signed(offset))
            );
        }
        let far = code_for_step(&secret, step + 2);
        assert_eq!(matching_step(&secret, &far, now, None), None);
        assert_eq!(matching_step(&secret, "12345", now, None), None);
        assert_eq!(matching_step(&secret, "abcdef", now, None), None);
    }

    #[test]
    fn a_used_step_is_not_accepted_again() {
        let secret = TotpSecret::generate();
        let now = at(1_800_000_015);
        let code = code_at(&secret, now);
        let step = matching_step(&secret, &code, now, None).unwrap();
        assert_eq!(matching_step(&secret, &code, now, Some(step)), None);
        let next = code_for_step(&secret, step + 1);
        assert_eq!(
            matching_step(&secret, &next, now, Some(step)),
            Some(step + 1)
        );
    }

    #[test]
    fn base32_round_trips_and_uris_carry_it() {
        let secret = TotpSecret::generate();
        let text = secret.to_base32();
        assert_eq!(text.len(), 32);
        assert_eq!(TotpSecret::from_base32(&text), Some(secret.clone()));
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32_decode("MZXW6YTBOI======").unwrap(), b"foobar");
        assert!(
            secret
                .otpauth_uri("zhang.wei")
                .starts_with("otpauth://totp/Huying:zhang.wei?secret=")
        );
        assert!(!format!("{secret:?}").contains(&text));
    }
}
