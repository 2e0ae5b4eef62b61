//! Block lists: the security administrator bars a citizen, a device or a
//! phone number from filing until a set time; filing and sign-in codes
//! check them.

use chrono::{DateTime, Utc};

use super::Services;
use crate::domain::account::{AccountId, Principal};
use crate::domain::audit::{AuditAction, AuditDraft};
use crate::domain::block::{Block, BlockKind, BlockSubjects, BlockTerms, Lifting, NewBlock};
use crate::domain::client::DeviceId;
use crate::domain::error::{DomainError, Refusal};
use crate::domain::phone::PhoneNumber;
use crate::store::abuse::BlockQuery;

const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 200;

/// What the administrator asked to block.
#[derive(Debug, Clone)]
pub struct BlockRequest {
    pub request_id: String,
    pub kind: Option<BlockKind>,
    /// An account id, a device id or a phone number, by kind.
    pub subject: String,
    pub reason: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A page of blocks, newest first.
#[derive(Debug, Clone)]
pub struct BlockPage {
    pub blocks: Vec<Block>,
    pub next_page_token: Option<String>,
}

impl Services {
    /// Adds a block; a retry with the same request id returns the block the
    /// first attempt added.
    pub async fn add_block(
        &self,
        admin: &Principal,
        request: BlockRequest,
    ) -> Result<Block, DomainError> {
        let now = self.clock.now();
        let new = self.parse_block(admin, request, now).await?;
        let audit = AuditDraft::by(
            admin,
            AuditAction::BlockAdded,
            format!("{}:{}", new.kind.as_str(), new.subject_label),
            now,
        )
        .because(new.terms.reason.clone());

        let (block, added) = self.store.add_block(&new, &audit).await?;
        if added {
            tracing::info!(
                block.id = block.id,
                block.kind = block.kind.as_str(),
                "block added"
            );
        }
        Ok(block)
    }

    async fn parse_block(
        &self,
        admin: &Principal,
        request: BlockRequest,
        now: DateTime<Utc>,
    ) -> Result<NewBlock, DomainError> {
        let mut violations = Vec::new();
        if request.request_id.trim().is_empty() {
            violations.push(crate::domain::FieldViolation::new(
                "request_id",
                "must not be empty",
            ));
        }
        let subject = match request.kind {
            None => {
                violations.push(crate::domain::FieldViolation::new("kind", "must be set"));
                None
            }
            Some(kind) => match self.block_subject(kind, &request.subject).await {
                Ok(subject) => Some(subject),
                Err(reason) => {
                    violations.push(crate::domain::FieldViolation::new("subject", reason));
                    None
                }
            },
        };
        let terms = BlockTerms::parse(&request.reason, request.expires_at, now);
        let terms = match terms {
            Ok(terms) => Some(terms),
            Err(found) => {
                violations.extend(found);
                None
            }
        };

        match (violations.is_empty(), request.kind, subject, terms) {
            (true, Some(kind), Some((subject_key, subject_label)), Some(terms)) => Ok(NewBlock {
                kind,
                subject_key,
                subject_label,
                terms,
                created_by: admin.account_id,
                request_id: request.request_id.trim().to_owned(),
                created_at: now,
            }),
            _ => Err(DomainError::InvalidInput(violations)),
        }
    }

    /// The key checks look up and the label staff see, for one subject.
    async fn block_subject(
        &self,
        kind: BlockKind,
        subject: &str,
    ) -> Result<(String, String), String> {
        match kind {
            BlockKind::Citizen => {
                let id: i64 = subject
                    .trim()
                    .parse()
                    .map_err(|_| "must be a citizen's account id".to_owned())?;
                let citizen = self
                    .store
                    .citizen(AccountId(id))
                    .await
                    .map_err(|_| "could not be checked; try again".to_owned())?;
                match citizen {
                    Some(_) => Ok((id.to_string(), id.to_string())),
                    None => Err("no citizen has this account id".to_owned()),
                }
            }
            BlockKind::Device => {
                let device = DeviceId::parse("subject", subject.trim()).map_err(|v| v.reason)?;
                Ok((device.as_str().to_owned(), device.as_str().to_owned()))
            }
            BlockKind::Phone => {
                let phone = PhoneNumber::parse("subject", subject).map_err(|v| v.reason)?;
                Ok((self.cipher.blind_index(&phone), phone.masked()))
            }
        }
    }

    /// Lifts a block early, with the reason.
    pub async fn lift_block(
        &self,
        admin: &Principal,
        id: &str,
        reason: &str,
    ) -> Result<Block, DomainError> {
        let id: i64 = id
            .trim()
            .parse()
            .map_err(|_| DomainError::invalid("block_id", "must be a block id"))?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(DomainError::invalid("reason", "must not be empty"));
        }

        let now = self.clock.now();
        let lifting = Lifting {
            lifted_by: admin.account_id,
            lifted_at: now,
            reason: reason.to_owned(),
        };
        let audit = AuditDraft::by(admin, AuditAction::BlockLifted, format!("block:{id}"), now)
            .because(reason);
        self.store
            .lift_block(id, &lifting, &audit)
            .await?
            .ok_or(DomainError::NotFound("block"))
    }

    pub async fn list_blocks(
        &self,
        kind: Option<BlockKind>,
        active_only: bool,
        page_size: i32,
        page_token: &str,
    ) -> Result<BlockPage, DomainError> {
        let limit = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n < 0 => return Err(DomainError::invalid("page_size", "must not be negative")),
            n => (n as u32).min(MAX_PAGE_SIZE),
        };
        let before = match page_token {
            "" => None,
            token => Some(
                token
                    .parse::<i64>()
                    .map_err(|_| DomainError::invalid("page_token", "is not a page token"))?,
            ),
        };

        let mut blocks = self
            .store
            .blocks(&BlockQuery {
                kind,
                active_at: active_only.then(|| self.clock.now()),
                before,
                limit: limit + 1,
            })
            .await?;
        let next_page_token = if blocks.len() > limit as usize {
            blocks.truncate(limit as usize);
            blocks.last().map(|block| block.id.to_string())
        } else {
            None
        };
        Ok(BlockPage {
            blocks,
            next_page_token,
        })
    }

    /// Refuses with PERMISSION_DENIED while a block is in force on any of
    /// `subjects`. The citizen is told until when, not the internal reason.
    pub async fn ensure_not_blocked(&self, subjects: &BlockSubjects) -> Result<(), DomainError> {
        let now = self.clock.now();
        let Some(block) = self.store.active_block(&subjects.keys(), now).await? else {
            return Ok(());
        };
        tracing::info!(
            block.id = block.id,
            block.kind = block.kind.as_str(),
            "blocked request"
        );
        let until = block.terms.expires_at.to_rfc3339();
        Err(DomainError::Forbidden(
            Refusal::new(
                "BLOCKED",
                format!(
                    "this {} may not file complaints until {until}; \
                     call the 12345 hotline to appeal",
                    block.kind.as_str()
                ),
            )
            .with("kind", block.kind.as_str())
            .with("until", until),
        ))
    }

    /// Whether a citizen's own account is blocked now (for rewards and
    /// other checks that must not fail a request).
    pub async fn citizen_blocked(&self, citizen: AccountId) -> Result<bool, DomainError> {
        let subjects = BlockSubjects {
            citizen: Some(citizen),
            ..BlockSubjects::default()
        };
        let now = self.clock.now();
        Ok(self
            .store
            .active_block(&subjects.keys(), now)
            .await?
            .is_some())
    }
}
