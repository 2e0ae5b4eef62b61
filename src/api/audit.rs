//! The audit log API: one read-only listing, for audit administrators.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert;
use crate::domain::audit::AuditRecord;
use crate::proto::v1 as pb;
use crate::proto::v1::audit_service_server::AuditService;
use crate::service::Services;
use crate::service::audit::AuditFilter;

pub struct AuditApi {
    services: Arc<Services>,
}

impl AuditApi {
    pub fn new(services: Arc<Services>) -> AuditApi {
        AuditApi { services }
    }
}

fn record(record: &AuditRecord) -> pb::AuditRecord {
    let draft = &record.draft;
    pb::AuditRecord {
        id: record.id.to_string(),
        occurred_at: Some(convert::timestamp(draft.occurred_at)),
        actor_account_id: draft.actor_id.map(|id| id.to_string()).unwrap_or_default(),
        actor_role: draft.actor_role.clone(),
        actor_unit_id: draft.actor_unit_id.clone().unwrap_or_default(),
        action: draft.action.as_str().to_owned(),
        target: draft.target.clone(),
        reason: draft.reason.clone(),
        detail: draft.detail.clone(),
    }
}

#[tonic::async_trait]
impl AuditService for AuditApi {
    async fn list_audit_records(
        &self,
        request: Request<pb::ListAuditRecordsRequest>,
    ) -> Result<Response<pb::ListAuditRecordsResponse>, Status> {
        let request = request.into_inner();
        let filter = AuditFilter {
            actor_account_id: request.actor_account_id,
            action: request.action,
            target: request.target,
            since: request
                .since
                .map(|t| convert::time_from_proto("since", Some(t)))
                .transpose()?,
            until: request
                .until
                .map(|t| convert::time_from_proto("until", Some(t)))
                .transpose()?,
        };
        let (records, next) = self
            .services
            .list_audit_records(filter, request.page_size, &request.page_token)
            .await?;
        Ok(Response::new(pb::ListAuditRecordsResponse {
            records: records.iter().map(record).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }
}
