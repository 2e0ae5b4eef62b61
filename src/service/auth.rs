//! Sign-in, session refresh and sign-out.

use chrono::{DateTime, Utc};

use super::Services;
use crate::domain::account::{Account, ExternalIdentity, Principal, Role};
use crate::domain::error::{DomainError, Violations};
use crate::security::TokenError;
use crate::security::token::{hash_refresh_token, new_refresh_token, new_session_id};
use crate::store::{NewSession, RefreshToken, SessionRotation};

/// What the development identity provider is told.
#[derive(Debug, Clone)]
pub struct DevSignIn {
    pub subject: String,
    pub role: Option<Role>,
    pub unit_id: String,
    pub display_name: String,
}

/// A new session: tokens for the client and the account they belong to.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub account: Account,
    pub principal: Principal,
    pub access_token: String,
    pub access_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
}

impl Services {
    /// Signs in through the development provider, which trusts what it is
    /// told. It exists so that the embedded server and the tests can act as
    /// any role; production leaves it off.
    pub async fn sign_in_dev(&self, request: DevSignIn) -> Result<SignedIn, DomainError> {
        if !self.dev_sign_in {
            return Err(DomainError::FailedPrecondition(
                "development sign-in is disabled on this server".to_owned(),
            ));
        }
        let identity = parse_dev_identity(request)?;
        if let Some(unit) = &identity.unit_id
            && self.reference().directory.get(unit).is_none()
        {
            return Err(DomainError::invalid("dev.unit_id", "no unit has this id"));
        }

        let now = self.clock.now();
        let account = self.store.upsert_account(&identity, now).await?;
        tracing::info!(account.id = %account.id, account.role = account.role.as_str(), "signed in");
        self.open_session(account, now).await
    }

    /// Starts a session (a refresh-token family) for an account that
    /// proved who it is, and issues its first tokens.
    pub(super) async fn open_session(
        &self,
        account: Account,
        now: DateTime<Utc>,
    ) -> Result<SignedIn, DomainError> {
        let family_id = new_session_id();
        let (refresh_token, refresh_hash) = new_refresh_token();
        let session = NewSession {
            family_id: family_id.clone(),
            account_id: account.id,
            refresh_hash,
            created_at: now,
            expires_at: now + self.refresh_token_ttl,
        };
        self.store.create_session(&session).await?;
        Ok(self.signed_in(account, family_id, refresh_token, session.expires_at, now))
    }

    /// Trades a refresh token for a new pair; the presented one stops working.
    // TODO(identity): a refresh does not look at the privacy notice, so a
    // citizen signed in before a new version came into force keeps using the
    // app until the session ends (30 days); refusing the refresh with
    // PRIVACY_NOTICE_NOT_ACCEPTED would need an accept call that takes no
    // credential.
    pub async fn refresh_session(&self, refresh_token: &str) -> Result<SignedIn, DomainError> {
        let now = self.clock.now();
        let (next_token, next_hash) = new_refresh_token();
        let next = RefreshToken {
            hash: next_hash,
            expires_at: now + self.refresh_token_ttl,
        };

        let presented = hash_refresh_token(refresh_token);
        match self.store.rotate_session(&presented, &next, now).await? {
            SessionRotation::Rotated { account, family_id } => {
                Ok(self.signed_in(account, family_id, next_token, next.expires_at, now))
            }
            SessionRotation::Refused => Err(DomainError::Unauthenticated(
                "the refresh token is invalid, expired or revoked; sign in again".to_owned(),
            )),
        }
    }

    /// Revokes the session a refresh token belongs to. Succeeds even when the
    /// token is unknown, so that the answer reveals nothing.
    pub async fn sign_out(&self, refresh_token: &str) -> Result<(), DomainError> {
        let presented = hash_refresh_token(refresh_token);
        let revoked = self
            .store
            .revoke_session_family(&presented, self.clock.now())
            .await?;
        // Every replica refuses the session's access tokens as soon as it
        // hears this, and ends its streams; a replica that misses the
        // message finds the revocation in the store within seconds (see
        // `revocations.rs`).
        if let Some(family_id) = revoked {
            self.bus.publish_revocation(&family_id);
        }
        Ok(())
    }

    /// Checks a bearer token and returns who it speaks for, unless its
    /// session was revoked.
    pub fn authenticate(&self, access_token: &str) -> Result<Principal, DomainError> {
        let principal = self.verify_token(access_token)?;
        if self.bus.heard_revoked(&principal.session_id) {
            return Err(DomainError::Unauthenticated(
                "the session has ended; sign in again".to_owned(),
            ));
        }
        Ok(principal)
    }

    fn verify_token(&self, access_token: &str) -> Result<Principal, DomainError> {
        self.signer
            .verify(access_token, self.clock.now())
            .map_err(|error| {
                DomainError::Unauthenticated(
                    match error {
                        TokenError::Expired => "the access token has expired; refresh the session",
                        TokenError::Malformed | TokenError::BadSignature => {
                            "the access token is invalid"
                        }
                    }
                    .to_owned(),
                )
            })
    }

    pub(super) fn signed_in(
        &self,
        account: Account,
        family_id: String,
        refresh_token: String,
        refresh_expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> SignedIn {
        let principal = Principal {
            account_id: account.id,
            role: account.role,
            unit_id: account.unit_id.clone(),
            session_id: family_id,
        };
        let (access_token, access_expires_at) = self.signer.issue(&principal, now);
        SignedIn {
            account,
            principal,
            access_token,
            access_expires_at,
            refresh_token,
            refresh_expires_at,
        }
    }
}

fn parse_dev_identity(request: DevSignIn) -> Result<ExternalIdentity, DomainError> {
    let mut violations = Violations::default();
    let subject = request.subject.trim();
    if subject.is_empty() || subject.chars().count() > 64 {
        violations.push("dev.subject", "must be 1 to 64 characters");
    }
    if request.display_name.chars().count() > 64 {
        violations.push("dev.display_name", "must be at most 64 characters");
    }
    let unit_id = request.unit_id.trim();
    match request.role {
        None => violations.push("dev.role", "must be set"),
        Some(Role::Citizen) if !unit_id.is_empty() => {
            violations.push("dev.unit_id", "citizens belong to no unit")
        }
        Some(role) if role.is_staff() && unit_id.is_empty() => {
            violations.push("dev.unit_id", "staff must name their unit")
        }
        Some(_) => {}
    }
    violations.into_result()?;

    Ok(ExternalIdentity {
        provider: "dev",
        subject: subject.to_owned(),
        role: request.role.unwrap_or(Role::Citizen),
        unit_id: (!unit_id.is_empty()).then(|| unit_id.to_owned()),
        display_name: request.display_name.trim().to_owned(),
    })
}
