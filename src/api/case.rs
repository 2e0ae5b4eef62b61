//! The staff API: thin handlers over `service::cases`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{caller, convert};
use crate::domain::case::DispatchPlan;
use crate::domain::complaint::ComplaintId;
use crate::proto::v1 as pb;
use crate::proto::v1::case_service_server::CaseService;
use crate::service::Services;
use crate::service::cases::{QueueFilter, StaffAction};

pub struct CaseApi {
    services: Arc<Services>,
}

impl CaseApi {
    pub fn new(services: Arc<Services>) -> CaseApi {
        CaseApi { services }
    }

    /// Runs one action named by a request's common fields.
    async fn act<T>(
        &self,
        request: &Request<T>,
        request_id: &str,
        complaint_id: &str,
        expected_version: u64,
        action: StaffAction,
    ) -> Result<Response<pb::Case>, Status> {
        let staff = caller(request)?;
        let id = ComplaintId::parse(complaint_id)?;
        let case = self
            .services
            .act_on_case(&staff, request_id, id, expected_version, action)
            .await?;
        Ok(Response::new(convert::case(&case)))
    }
}

type CaseResult = Result<Response<pb::Case>, Status>;

#[tonic::async_trait]
impl CaseService for CaseApi {
    async fn get_case(&self, request: Request<pb::GetCaseRequest>) -> CaseResult {
        let staff = caller(&request)?;
        let id = ComplaintId::parse(&request.get_ref().complaint_id)?;
        let case = self.services.get_case(&staff, id).await?;
        Ok(Response::new(convert::case(&case)))
    }

    async fn list_queue(
        &self,
        request: Request<pb::ListQueueRequest>,
    ) -> Result<Response<pb::ListQueueResponse>, Status> {
        let staff = caller(&request)?;
        let request = request.into_inner();
        let filter = QueueFilter {
            statuses: request
                .statuses
                .iter()
                .filter_map(|s| convert::status_from_proto(*s))
                .collect(),
            overdue_only: request.overdue_only,
            due_within_hours: (request.due_within_hours > 0).then_some(request.due_within_hours),
            category_code: (!request.category_code.is_empty()).then_some(request.category_code),
        };
        let (cases, next) = self
            .services
            .list_queue(&staff, filter, request.page_size, &request.page_token)
            .await?;
        Ok(Response::new(pb::ListQueueResponse {
            cases: cases.iter().map(convert::case).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn list_case_events(
        &self,
        request: Request<pb::ListCaseEventsRequest>,
    ) -> Result<Response<pb::ListCaseEventsResponse>, Status> {
        let staff = caller(&request)?;
        let id = ComplaintId::parse(&request.get_ref().complaint_id)?;
        let events = self
            .services
            .case_events(&staff, id, request.get_ref().after_sequence)
            .await?;
        Ok(Response::new(pb::ListCaseEventsResponse {
            events: events.iter().map(convert::case_event).collect(),
        }))
    }

    async fn register_case(&self, request: Request<pb::RegisterCaseRequest>) -> CaseResult {
        let staff = caller(&request)?;
        let request = request.into_inner();
        let input = convert::filing_input(request.complaint.unwrap_or_default());
        let case = self
            .services
            .register_case(&staff, &request.request_id, input)
            .await?;
        Ok(Response::new(convert::case(&case)))
    }

    async fn accept_for_filing(&self, request: Request<pb::AcceptForFilingRequest>) -> CaseResult {
        let r = request.get_ref().clone();
        self.act(
            &request,
            &r.request_id,
            &r.complaint_id,
            r.expected_version,
            StaffAction::Accept,
        )
        .await
    }

    async fn reject_complaint(&self, request: Request<pb::RejectComplaintRequest>) -> CaseResult {
        let r = request.get_ref().clone();
        let action = StaffAction::Reject { reason: r.reason };
        self.act(
            &request,
            &r.request_id,
            &r.complaint_id,
            r.expected_version,
            action,
        )
        .await
    }

    async fn answer_consultation(
        &self,
        request: Request<pb::AnswerConsultationRequest>,
    ) -> CaseResult {
        let r = request.get_ref().clone();
        let action = StaffAction::Answer { answer: r.answer };
        self.act(
            &request,
            &r.request_id,
            &r.complaint_id,
            r.expected_version,
            action,
        )
        .await
    }

    async fn dispatch_case(&self, request: Request<pb::DispatchCaseRequest>) -> CaseResult {
        let r = request.get_ref().clone();
        let action = StaffAction::Dispatch(DispatchPlan {
            lead: r.lead_unit_id,
            co_units: r.co_unit_ids,
        });
        self.act(
            &request,
            &r.request_id,
            &r.complaint_id,
            r.expected_version,
            action,
        )
        .await
    }

    async fn return_case(&self, request: Request<pb::ReturnCaseRequest>) -> CaseResult {
        let r = request.get_ref().clone();
        let action = StaffAction::Return { reason: r.reason };
        self.act(
            &request,
            &r.request_id,
            &r.complaint_id,
            r.expected_version,
            action,
        )
        .await
    }

    async fn report_part(&self, request: Request<pb::ReportPartRequest>) -> CaseResult {
        let r = request.get_ref().clone();
        let action = StaffAction::ReportPart { summary: r.summary };
        self.act(
            &request,
            &r.request_id,
            &r.complaint_id,
            r.expected_version,
            action,
        )
        .await
    }

    async fn add_progress_note(&self, request: Request<pb::AddProgressNoteRequest>) -> CaseResult {
        let r = request.get_ref().clone();
        let action = StaffAction::Note {
            note: r.note,
            visible_to_citizen: r.visible_to_citizen,
        };
        self.act(
            &request,
            &r.request_id,
            &r.complaint_id,
            r.expected_version,
            action,
        )
        .await
    }

    async fn request_extension(&self, request: Request<pb::RequestExtensionRequest>) -> CaseResult {
        let r = request.get_ref().clone();
        let action = StaffAction::RequestExtension {
            until: convert::time_from_proto("until", r.until)?,
            reason: r.reason,
        };
        self.act(
            &request,
            &r.request_id,
            &r.complaint_id,
            r.expected_version,
            action,
        )
        .await
    }

    async fn decide_extension(&self, request: Request<pb::DecideExtensionRequest>) -> CaseResult {
        let r = request.get_ref().clone();
        let action = StaffAction::DecideExtension { approve: r.approve };
        self.act(
            &request,
            &r.request_id,
            &r.complaint_id,
            r.expected_version,
            action,
        )
        .await
    }

    async fn resolve_case(&self, request: Request<pb::ResolveCaseRequest>) -> CaseResult {
        let r = request.get_ref().clone();
        let action = StaffAction::Resolve { summary: r.summary };
        self.act(
            &request,
            &r.request_id,
            &r.complaint_id,
            r.expected_version,
            action,
        )
        .await
    }

    async fn merge_case(&self, request: Request<pb::MergeCaseRequest>) -> CaseResult {
        let r = request.get_ref().clone();
        let into = ComplaintId::parse(&r.into_complaint_id).map_err(|_| {
            crate::domain::DomainError::invalid("into_complaint_id", "no case has this id")
        })?;
        let action = StaffAction::Merge { into };
        self.act(
            &request,
            &r.request_id,
            &r.complaint_id,
            r.expected_version,
            action,
        )
        .await
    }

    async fn hand_over_case(&self, request: Request<pb::HandOverCaseRequest>) -> CaseResult {
        let r = request.get_ref().clone();
        let action = StaffAction::HandOver {
            to_unit: r.to_unit_id,
            reason: r.reason,
        };
        self.act(
            &request,
            &r.request_id,
            &r.complaint_id,
            r.expected_version,
            action,
        )
        .await
    }

    async fn record_follow_up(&self, request: Request<pb::RecordFollowUpRequest>) -> CaseResult {
        let r = request.get_ref().clone();
        let action = StaffAction::FollowUp { outcome: r.outcome };
        self.act(
            &request,
            &r.request_id,
            &r.complaint_id,
            r.expected_version,
            action,
        )
        .await
    }
}
