//! Sign-in of staff accounts with a username, a password and, where a
//! second factor is active or the role requires one, a TOTP code.

use chrono::{DateTime, Utc};

use super::Services;
use super::auth::SignedIn;
use super::staff_accounts::blocking;
use crate::domain::account::Account;
use crate::domain::error::{DomainError, Violations};
use crate::domain::staff::{FactorCheck, Password, StaffCredential};
use crate::security::password;
use crate::security::token::{new_refresh_token, new_session_id};
use crate::security::totp;
use crate::store::NewSession;

/// What a staff member types at sign-in.
#[derive(Debug, Clone)]
pub struct StaffSignIn {
    pub username: String,
    pub password: Password,
    pub totp_code: String,
}

/// The outcome of checking what was typed against the credential.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Refused,
    /// With the time step of the code used, if one was needed.
    Accepted {
        factor_step: Option<u64>,
    },
}

/// One answer for every failure, so that it tells an attacker nothing
/// about which part was wrong or whether the account exists.
fn refused() -> DomainError {
    DomainError::Unauthenticated(
        "sign-in failed: the username, password or code is wrong, \
         or the account is locked or disabled"
            .to_owned(),
    )
}

impl Services {
    pub async fn sign_in_staff(&self, request: StaffSignIn) -> Result<SignedIn, DomainError> {
        let mut violations = Violations::default();
        if request.username.trim().is_empty() {
            violations.push("staff.username", "must be set");
        }
        if request.password.expose().is_empty() {
            violations.push("staff.password", "must be set");
        }
        violations.into_result()?;

        let now = self.clock.now();
        // Usernames are lowercase; phones like to capitalise the first letter.
        let username = request.username.trim().to_lowercase();
        let credential = self.store.staff_credential(&username).await?;
        let Some(credential) = credential.filter(|c| c.admits_attempt(now)) else {
            // As slow as a real check, so timing does not tell either.
            let password = request.password;
            blocking(move || password::verify_nothing(&password)).await?;
            return Err(refused());
        };

        let verdict = self.check_staff_sign_in(&credential, request, now).await?;
        let accepted = match verdict {
            Verdict::Accepted { factor_step } => {
                let id = credential.account.id;
                self.store
                    .record_sign_in_success(id, factor_step, now)
                    .await?
            }
            Verdict::Refused => false,
        };
        if !accepted {
            self.count_sign_in_failure(&credential, now).await?;
            return Err(refused());
        }

        // TODO(identity): a member still on the initial password an
        // administrator saw is let in like anyone else; the session should
        // be limited to ChangePassword until they set their own.
        tracing::info!(
            account.id = %credential.account.id,
            account.role = credential.account.role.as_str(),
            "staff signed in"
        );
        self.start_staff_session(credential.account, now).await
    }

    async fn check_staff_sign_in(
        &self,
        credential: &StaffCredential,
        request: StaffSignIn,
        now: DateTime<Utc>,
    ) -> Result<Verdict, DomainError> {
        let stored = credential.password_hash.clone();
        let password = request.password;
        if !blocking(move || password::verify(&password, &stored)).await? {
            return Ok(Verdict::Refused);
        }

        Ok(match credential.factor_check() {
            FactorCheck::NotEnrolled => Verdict::Accepted { factor_step: None },
            FactorCheck::Missing => Verdict::Refused,
            FactorCheck::Code {
                secret_cipher,
                last_step,
            } => {
                let secret = self.staff_security.secrets.open_totp(secret_cipher)?;
                match totp::matching_step(&secret, &request.totp_code, now, last_step) {
                    Some(step) => Verdict::Accepted {
                        factor_step: Some(step),
                    },
                    None => Verdict::Refused,
                }
            }
        })
    }

    async fn start_staff_session(
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
}
