//! The block-list API, for security administrators.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{caller, convert};
use crate::domain::block::{Block, BlockKind};
use crate::proto::v1 as pb;
use crate::proto::v1::abuse_service_server::AbuseService;
use crate::service::Services;
use crate::service::abuse::BlockRequest;

pub struct AbuseApi {
    services: Arc<Services>,
}

impl AbuseApi {
    pub fn new(services: Arc<Services>) -> AbuseApi {
        AbuseApi { services }
    }
}

fn kind_from_proto(kind: i32) -> Option<BlockKind> {
    match pb::BlockKind::try_from(kind).ok()? {
        pb::BlockKind::Unspecified => None,
        pb::BlockKind::Citizen => Some(BlockKind::Citizen),
        pb::BlockKind::Device => Some(BlockKind::Device),
        pb::BlockKind::Phone => Some(BlockKind::Phone),
    }
}

fn kind_to_proto(kind: BlockKind) -> pb::BlockKind {
    match kind {
        BlockKind::Citizen => pb::BlockKind::Citizen,
        BlockKind::Device => pb::BlockKind::Device,
        BlockKind::Phone => pb::BlockKind::Phone,
    }
}

fn block(block: &Block, now: chrono::DateTime<chrono::Utc>) -> pb::Block {
    let lifted = block.lifted.as_ref();
    pb::Block {
        id: block.id.to_string(),
        kind: kind_to_proto(block.kind).into(),
        subject: block.subject_label.clone(),
        reason: block.terms.reason.clone(),
        created_by_account_id: block.created_by.to_string(),
        created_at: Some(convert::timestamp(block.created_at)),
        expires_at: Some(convert::timestamp(block.terms.expires_at)),
        lifted_at: lifted.map(|l| convert::timestamp(l.lifted_at)),
        lifted_by_account_id: lifted.map(|l| l.lifted_by.to_string()).unwrap_or_default(),
        lift_reason: lifted.map(|l| l.reason.clone()).unwrap_or_default(),
        active: block.active_at(now),
    }
}

#[tonic::async_trait]
impl AbuseService for AbuseApi {
    async fn add_block(
        &self,
        request: Request<pb::AddBlockRequest>,
    ) -> Result<Response<pb::Block>, Status> {
        let admin = caller(&request)?;
        let request = request.into_inner();
        let expires_at = request
            .expires_at
            .map(|at| convert::time_from_proto("expires_at", Some(at)))
            .transpose()?;
        let added = self
            .services
            .add_block(
                &admin,
                BlockRequest {
                    request_id: request.request_id,
                    kind: kind_from_proto(request.kind),
                    subject: request.subject,
                    reason: request.reason,
                    expires_at,
                },
            )
            .await?;
        Ok(Response::new(block(&added, self.services.clock.now())))
    }

    async fn lift_block(
        &self,
        request: Request<pb::LiftBlockRequest>,
    ) -> Result<Response<pb::Block>, Status> {
        let admin = caller(&request)?;
        let request = request.into_inner();
        let lifted = self
            .services
            .lift_block(&admin, &request.block_id, &request.reason)
            .await?;
        Ok(Response::new(block(&lifted, self.services.clock.now())))
    }

    async fn list_blocks(
        &self,
        request: Request<pb::ListBlocksRequest>,
    ) -> Result<Response<pb::ListBlocksResponse>, Status> {
        let request = request.into_inner();
        let page = self
            .services
            .list_blocks(
                kind_from_proto(request.kind),
                request.active_only,
                request.page_size,
                &request.page_token,
            )
            .await?;
        let now = self.services.clock.now();
        Ok(Response::new(pb::ListBlocksResponse {
            blocks: page.blocks.iter().map(|b| block(b, now)).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }
}
