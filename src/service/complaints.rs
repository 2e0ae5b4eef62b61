//! The citizen's side of a complaint: filing, reading, withdrawing, rating
//! and watching its progress.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use super::Services;
use super::limits::{address_check, device_check};
use crate::domain::account::Principal;
use crate::domain::block::BlockSubjects;
use crate::domain::client::ClientContext;
use crate::domain::complaint::{
    Complaint, ComplaintChange, ComplaintId, ComplaintStatus, FilingInput, NewComplaint, Rework,
    Satisfaction, parse_optional_note,
};
use crate::domain::error::DomainError;
use crate::limiter::{Check, Policy, Subject};
use crate::store::{CitizenQuery, Filing};

pub const DEFAULT_PAGE_SIZE: u32 = 20;
pub const MAX_PAGE_SIZE: u32 = 100;
/// Attempts at a change whose version moved underneath it.
const CHANGE_ATTEMPTS: usize = 3;

/// A page of a citizen's complaints.
#[derive(Debug, Clone)]
pub struct ComplaintPage {
    pub complaints: Vec<Complaint>,
    pub next_page_token: Option<String>,
}

impl Services {
    /// Files a complaint from the client (its address and the device the app
    /// names). Returns it and whether this call was a retry of an earlier
    /// one with the same request id.
    pub async fn file_complaint(
        &self,
        citizen: &Principal,
        client: &ClientContext,
        input: FilingInput,
    ) -> Result<(Complaint, bool), DomainError> {
        let filing = input.parse(&self.standard, &self.service_area)?;
        let fingerprint = filing.fingerprint();
        let now = self.clock.now();

        let subjects = BlockSubjects {
            citizen: Some(citizen.account_id),
            device: client.device.clone(),
            phone_indexes: filing
                .contact_phone
                .iter()
                .map(|phone| self.cipher.blind_index(phone))
                .collect(),
        };
        let checked = match self.ensure_not_blocked(&subjects).await {
            Ok(()) => self.enforce(&filing_checks(citizen, client)).await,
            Err(blocked) => Err(blocked),
        };
        if let Err(refused) = checked {
            // A retry of something already filed is an answer, not a new filing.
            return match self
                .store
                .find_filing(citizen.account_id, &filing.request_id)
                .await?
            {
                Some(existing) => replayed(existing, &fingerprint),
                None => Err(refused),
            };
        }

        // A retry names photos its first attempt already attached; the
        // store answers it with the complaint it filed.
        if !filing.photo_ids.is_empty()
            && self
                .store
                .find_filing(citizen.account_id, &filing.request_id)
                .await?
                .is_none()
        {
            self.check_photos(citizen.account_id, &filing.photo_ids, "photo_ids")
                .await?;
        }
        let contact_phone_cipher = filing
            .contact_phone
            .as_ref()
            .map(|phone| self.cipher.encrypt(phone))
            .transpose()?;
        let duplicate_hint = self
            .probable_duplicate(&filing, citizen.account_id, now)
            .await?;
        let new = NewComplaint {
            citizen_id: citizen.account_id,
            fingerprint: fingerprint.clone(),
            kind: filing.kind,
            channel: filing.channel,
            text: filing.text,
            category_code: filing.category_code,
            location: filing.location,
            contact_phone_cipher,
            contact_phone_masked: filing.contact_phone.as_ref().map(|p| p.masked()),
            photo_ids: filing.photo_ids,
            photos_uploaded_by: citizen.account_id,
            created_at: now,
            owner_unit_id: None,
            duplicate_hint,
            first_event: NewComplaint::received_event(citizen.account_id, now),
            request_id: filing.request_id,
        };

        match self.store.file_complaint(&new).await? {
            Filing::Created { complaint, event } => {
                tracing::info!(
                    complaint.id = %complaint.id,
                    complaint.kind = complaint.kind.as_str(),
                    complaint.category = %complaint.category_code,
                    "complaint filed"
                );
                self.bus.publish(&event);
                Ok((complaint, false))
            }
            existing @ Filing::Existing { .. } => replayed(existing, &fingerprint),
            Filing::PhotosUnavailable => Err(super::evidence::photos_moved()),
        }
    }

    /// A citizen's own complaint; anyone else's is reported as not found.
    pub async fn get_own_complaint(
        &self,
        citizen: &Principal,
        id: ComplaintId,
    ) -> Result<Complaint, DomainError> {
        match self.store.complaint(id).await? {
            Some(complaint) if complaint.citizen_id == citizen.account_id => Ok(complaint),
            _ => Err(DomainError::NotFound("complaint")),
        }
    }

    pub async fn list_own_complaints(
        &self,
        citizen: &Principal,
        page_size: i32,
        page_token: &str,
        status: Option<ComplaintStatus>,
    ) -> Result<ComplaintPage, DomainError> {
        let limit = page_limit(page_size)?;
        let before = decode_page_token(page_token)?;

        // One extra row tells whether another page exists.
        let mut complaints = self
            .store
            .citizen_complaints(&CitizenQuery {
                citizen_id: citizen.account_id,
                status,
                before,
                limit: limit + 1,
            })
            .await?;
        let next_page_token = if complaints.len() > limit as usize {
            complaints.truncate(limit as usize);
            complaints.last().map(|last| encode_page_token(last.id))
        } else {
            None
        };
        Ok(ComplaintPage {
            complaints,
            next_page_token,
        })
    }

    pub async fn withdraw_complaint(
        &self,
        citizen: &Principal,
        id: ComplaintId,
        reason: &str,
    ) -> Result<Complaint, DomainError> {
        let reason = parse_optional_note("reason", reason)
            .map_err(|v| DomainError::InvalidInput(vec![v]))?;
        self.change_own_complaint(citizen, id, |complaint, now| {
            complaint.withdraw(reason.clone(), citizen.account_id, now)
        })
        .await
    }

    pub async fn rate_complaint(
        &self,
        citizen: &Principal,
        id: ComplaintId,
        satisfaction: Option<Satisfaction>,
        comment: &str,
    ) -> Result<Complaint, DomainError> {
        let Some(satisfaction) = satisfaction else {
            return Err(DomainError::invalid("satisfaction", "must be set"));
        };
        let comment = parse_optional_note("comment", comment)
            .map_err(|v| DomainError::InvalidInput(vec![v]))?;
        self.change_own_complaint(citizen, id, |complaint, now| {
            let rework = Rework {
                max_rounds: self.supervision.max_rework_rounds,
                deadline: self.deadline_for(&complaint.category_code, now),
            };
            complaint.rate(
                satisfaction,
                comment.clone(),
                citizen.account_id,
                &rework,
                now,
            )
        })
        .await
    }

    /// Reads the complaint, asks the domain for the change, and writes it if
    /// nobody else changed the complaint in between (else tries again).
    pub(super) async fn change_own_complaint<F>(
        &self,
        citizen: &Principal,
        id: ComplaintId,
        decide: F,
    ) -> Result<Complaint, DomainError>
    where
        F: Fn(
            &Complaint,
            chrono::DateTime<chrono::Utc>,
        ) -> Result<Option<ComplaintChange>, DomainError>,
    {
        for _ in 0..CHANGE_ATTEMPTS {
            let complaint = self.get_own_complaint(citizen, id).await?;
            let Some(change) = decide(&complaint, self.clock.now())? else {
                return Ok(complaint);
            };
            if let Some((changed, events)) = self.store.apply_change(&change).await? {
                for event in &events {
                    self.bus.publish(event);
                }
                return Ok(changed);
            }
        }
        Err(DomainError::Conflict(
            "the complaint is changing too fast; try again".to_owned(),
        ))
    }
}

/// Filing is counted per citizen, then per device, then per address: the
/// narrowest first, so one citizen's excess never spends the budget a
/// device or an address shares with others.
fn filing_checks(citizen: &Principal, client: &ClientContext) -> Vec<Check> {
    let citizen = Subject::new("citizen", &citizen.account_id.to_string());
    let mut checks = vec![Check::new(Policy::FileCitizen, citizen)];
    checks.extend(device_check(Policy::FileDevice, client));
    checks.extend(address_check(Policy::FileIp, client));
    checks
}

/// A requested page size: 0 means the default; above the maximum is capped.
pub fn page_limit(page_size: i32) -> Result<u32, DomainError> {
    match page_size {
        0 => Ok(DEFAULT_PAGE_SIZE),
        n if n < 0 => Err(DomainError::invalid("page_size", "must not be negative")),
        n => Ok((n as u32).min(MAX_PAGE_SIZE)),
    }
}

fn replayed(existing: Filing, fingerprint: &[u8]) -> Result<(Complaint, bool), DomainError> {
    let Filing::Existing {
        complaint,
        fingerprint: stored,
    } = existing
    else {
        return Err(anyhow::anyhow!("expected an existing filing").into());
    };
    if stored != fingerprint {
        return Err(DomainError::invalid(
            "request_id",
            "already used for a different complaint; use a new request id per complaint",
        ));
    }
    Ok((complaint, true))
}

fn encode_page_token(last: ComplaintId) -> String {
    B64.encode(format!("before:{}", last.0))
}

fn decode_page_token(token: &str) -> Result<Option<ComplaintId>, DomainError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid = || DomainError::invalid("page_token", "is not a token this server issued");
    let bytes = B64.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let id = text
        .strip_prefix("before:")
        .and_then(|id| id.parse::<i64>().ok())
        .ok_or_else(invalid)?;
    Ok(Some(ComplaintId(id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_garbage_is_refused() {
        let token = encode_page_token(ComplaintId(42));
        assert_eq!(decode_page_token(&token).unwrap(), Some(ComplaintId(42)));
        assert_eq!(decode_page_token("").unwrap(), None);
        assert!(decode_page_token("!!!").is_err());
        assert!(decode_page_token(&B64.encode("after:1")).is_err());
    }
}
