//! Access tokens: compact, HMAC-SHA256 signed, short-lived. A token is
//! `v1.<claims>.<signature>`, both parts base64url; the claims are JSON.
//! Refresh tokens are opaque random strings, stored only as a hash.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::domain::account::{AccountId, Principal, Role};

const PREFIX: &str = "v1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token signature is invalid")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    /// Account id.
    sub: i64,
    role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unit: Option<String>,
    /// Session (refresh-token family) the token was issued for.
    sid: String,
    /// Expiry, seconds since the epoch.
    exp: i64,
}

pub struct TokenSigner {
    secret: Vec<u8>,
    pub access_ttl: Duration,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenSigner(ttl {} s)", self.access_ttl.num_seconds())
    }
}

impl TokenSigner {
    pub fn new(secret: Vec<u8>, access_ttl: Duration) -> TokenSigner {
        TokenSigner { secret, access_ttl }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length")
    }

    pub fn issue(&self, principal: &Principal, now: DateTime<Utc>) -> (String, DateTime<Utc>) {
        let expires_at = now + self.access_ttl;
        let claims = Claims {
            sub: principal.account_id.0,
            role: principal.role.as_str().to_owned(),
            unit: principal.unit_id.clone(),
            sid: principal.session_id.clone(),
            exp: expires_at.timestamp(),
        };
        let body = B64.encode(serde_json::to_vec(&claims).expect("claims serialize"));
        let signing_input = format!("{PREFIX}.{body}");

        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = B64.encode(mac.finalize().into_bytes());
        (format!("{signing_input}.{signature}"), expires_at)
    }

    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Principal, TokenError> {
        let mut parts = token.split('.');
        let (Some(PREFIX), Some(body), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };

        let signature = B64.decode(signature).map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(PREFIX.as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;

        let json = B64.decode(body).map_err(|_| TokenError::Malformed)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)?;
        if now.timestamp() >= claims.exp {
            return Err(TokenError::Expired);
        }
        let role = Role::parse(&claims.role).ok_or(TokenError::Malformed)?;
        Ok(Principal {
            account_id: AccountId(claims.sub),
            role,
            unit_id: claims.unit,
            session_id: claims.sid,
        })
    }
}

/// A new random refresh token (256 bits) and the hash that is stored.
pub fn new_refresh_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let token = B64.encode(bytes);
    let hash = hash_refresh_token(&token);
    (token, hash)
}

pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A random identifier for a session family.
pub fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    rand::fill(&mut bytes);
    B64.encode(bytes)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn principal() -> Principal {
        Principal {
            account_id: AccountId(12),
            role: Role::Handler,
            unit_id: Some("sd_pingshan".to_owned()),
            session_id: "s1".to_owned(),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 8, 0, 0).unwrap()
    }

    #[test]
    fn an_issued_token_verifies_until_it_expires() {
        let signer = TokenSigner::new(vec![1; 32], Duration::minutes(15));
        let (token, expires_at) = signer.issue(&principal(), now());
        assert_eq!(signer.verify(&token, now()), Ok(principal()));
        assert_eq!(signer.verify(&token, expires_at), Err(TokenError::Expired));
    }

    #[test]
    fn a_token_from_another_key_or_with_edited_claims_is_refused() {
        let signer = TokenSigner::new(vec![1; 32], Duration::minutes(15));
        let other = TokenSigner::new(vec![2; 32], Duration::minutes(15));
        let (token, _) = other.issue(&principal(), now());
        assert_eq!(signer.verify(&token, now()), Err(TokenError::BadSignature));

        let (token, _) = signer.issue(&principal(), now());
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = B64.encode(br#"{"sub":1,"role":"system_admin","sid":"s1","exp":9999999999}"#);
        parts[1] = &forged;
        assert_eq!(
            signer.verify(&parts.join("."), now()),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            signer.verify("not-a-token", now()),
            Err(TokenError::Malformed)
        );
    }
}
