//! Storage of block lists. Adding and lifting a block write their audit
//! record in the same transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::audit::AuditDraft;
use crate::domain::block::{Block, BlockKind, Lifting, NewBlock};

/// Filters of a block listing, newest first.
#[derive(Debug, Clone)]
pub struct BlockQuery {
    pub kind: Option<BlockKind>,
    /// Only blocks in force at this time.
    pub active_at: Option<DateTime<Utc>>,
    /// Only blocks with a smaller id (the page token).
    pub before: Option<i64>,
    pub limit: u32,
}

#[async_trait]
pub trait AbuseStore: Send + Sync + 'static {
    /// Adds the block, or returns the one an earlier attempt with the same
    /// creator and request id added (`true` when this call added it).
    async fn add_block(
        &self,
        block: &NewBlock,
        audit: &AuditDraft,
    ) -> anyhow::Result<(Block, bool)>;

    /// Lifts a block still in force at `lifting.lifted_at`. `None` when
    /// no block has the id; a block already lifted or expired is returned
    /// unchanged and nothing is written.
    async fn lift_block(
        &self,
        id: i64,
        lifting: &Lifting,
        audit: &AuditDraft,
    ) -> anyhow::Result<Option<Block>>;

    async fn blocks(&self, query: &BlockQuery) -> anyhow::Result<Vec<Block>>;

    /// The block in force at `now` on any of `subjects` that runs longest.
    async fn active_block(
        &self,
        subjects: &[(BlockKind, String)],
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Block>>;
}
