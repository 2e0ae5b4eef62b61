//! Block lists: a citizen account, a device or a phone number barred from
//! filing until a set time. Red envelopes make scripted and repeated
//! complaints worth money, so the security administrator needs a brake that
//! is quick to apply, always ends, and always says why.

use chrono::{DateTime, Duration, Utc};

use super::account::AccountId;
use super::client::DeviceId;
use super::error::FieldViolation;

/// The longest a block may run; longer needs a fresh decision.
pub const MAX_BLOCK_DAYS: i64 = 3 * 366;
const MAX_REASON_CHARS: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockKind {
    Citizen,
    Device,
    Phone,
}

impl BlockKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockKind::Citizen => "citizen",
            BlockKind::Device => "device",
            BlockKind::Phone => "phone",
        }
    }

    pub fn parse(text: &str) -> Option<BlockKind> {
        [BlockKind::Citizen, BlockKind::Device, BlockKind::Phone]
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

/// Why and until when, as the administrator asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockTerms {
    pub reason: String,
    pub expires_at: DateTime<Utc>,
}

impl BlockTerms {
    /// A reason is required (it is what the citizen's appeal is judged
    /// against), and the block must end within `MAX_BLOCK_DAYS`.
    pub fn parse(
        reason: &str,
        expires_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<BlockTerms, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        let reason = reason.trim();
        if reason.is_empty() {
            violations.push(FieldViolation::new("reason", "must not be empty"));
        } else if reason.chars().count() > MAX_REASON_CHARS {
            violations.push(FieldViolation::new(
                "reason",
                "must be at most 500 characters",
            ));
        }
        match expires_at {
            None => violations.push(FieldViolation::new("expires_at", "must be set")),
            Some(at) if at <= now => {
                violations.push(FieldViolation::new("expires_at", "must be in the future"));
            }
            Some(at) if at > now + Duration::days(MAX_BLOCK_DAYS) => {
                violations.push(FieldViolation::new(
                    "expires_at",
                    "must be within three years",
                ));
            }
            Some(_) => {}
        }
        match (violations.is_empty(), expires_at) {
            (true, Some(expires_at)) => Ok(BlockTerms {
                reason: reason.to_owned(),
                expires_at,
            }),
            _ => Err(violations),
        }
    }
}

/// A block about to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBlock {
    pub kind: BlockKind,
    /// What checks look up: an account id, a device id, or a phone's
    /// blind index.
    pub subject_key: String,
    /// What staff see: never a full phone number.
    pub subject_label: String,
    pub terms: BlockTerms,
    pub created_by: AccountId,
    pub request_id: String,
    pub created_at: DateTime<Utc>,
}

/// Who lifted a block early, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifting {
    pub lifted_by: AccountId,
    pub lifted_at: DateTime<Utc>,
    pub reason: String,
}

/// A stored block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub id: i64,
    pub kind: BlockKind,
    pub subject_label: String,
    pub terms: BlockTerms,
    pub created_by: AccountId,
    pub created_at: DateTime<Utc>,
    pub lifted: Option<Lifting>,
}

impl Block {
    pub fn active_at(&self, now: DateTime<Utc>) -> bool {
        self.lifted.is_none() && self.terms.expires_at > now
    }
}

/// What a filing or a code request is checked against.
#[derive(Debug, Clone, Default)]
pub struct BlockSubjects {
    pub citizen: Option<AccountId>,
    pub device: Option<DeviceId>,
    /// Blind indexes of the phone numbers involved.
    pub phone_indexes: Vec<String>,
}

impl BlockSubjects {
    /// The (kind, key) pairs to look up.
    pub fn keys(&self) -> Vec<(BlockKind, String)> {
        let citizen = self
            .citizen
            .map(|id| (BlockKind::Citizen, id.0.to_string()));
        let device = self
            .device
            .as_ref()
            .map(|device| (BlockKind::Device, device.as_str().to_owned()));
        let phones = self
            .phone_indexes
            .iter()
            .map(|index| (BlockKind::Phone, index.clone()));
        citizen.into_iter().chain(device).chain(phones).collect()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 8, 0, 0).unwrap()
    }

    #[test]
    fn terms_need_a_reason_and_a_future_end_within_three_years() {
        let ok = BlockTerms::parse(" 批量刷单 ", Some(now() + Duration::days(30)), now());
        let past = BlockTerms::parse("刷单", Some(now()), now()).unwrap_err();
        let endless = BlockTerms::parse("", None, now()).unwrap_err();
        let too_long = BlockTerms::parse("刷单", Some(now() + Duration::days(2000)), now());

        assert_eq!(ok.unwrap().reason, "批量刷单");
        assert_eq!(past[0].field, "expires_at");
        let fields: Vec<_> = endless.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["reason", "expires_at"]);
        assert!(too_long.is_err());
    }

    #[test]
    fn a_block_is_active_until_it_expires_or_is_lifted() {
        let mut block = Block {
            id: 1,
            kind: BlockKind::Citizen,
            subject_label: "42".to_owned(),
            terms: BlockTerms {
                reason: "刷单".to_owned(),
                expires_at: now() + Duration::days(1),
            },
            created_by: AccountId(7),
            created_at: now(),
            lifted: None,
        };

        assert!(block.active_at(now()));
        assert!(!block.active_at(now() + Duration::days(1)));
        block.lifted = Some(Lifting {
            lifted_by: AccountId(7),
            lifted_at: now(),
            reason: "误封".to_owned(),
        });
        assert!(!block.active_at(now()));
    }
}
