//! The staff API: thin handlers over `service::cases`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{caller, convert, evidence};
use crate::domain::DomainError;
use crate::domain::case::DispatchPlan;
use crate::domain::complaint::ComplaintId;
use crate::domain::evidence::HandlingPhotos;
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

    /// Runs the action a request describes on the case it names.
    async fn act<T: ActionRequest>(
        &self,
        request: Request<T>,
        action: impl FnOnce(T) -> Result<StaffAction, Status>,
    ) -> CaseResult {
        let staff = caller(&request)?;
        let request = request.into_inner();
        let (request_id, complaint_id, expected_version) = request.target();
        let (request_id, id) = (request_id.to_owned(), ComplaintId::parse(complaint_id)?);
        let action = action(request)?;
        let case = self
            .services
            .act_on_case(&staff, &request_id, id, expected_version, action)
            .await?;
        Ok(Response::new(convert::case(&case)))
    }
}

/// The fields every staff action request carries.
trait ActionRequest {
    /// (request id, complaint id, expected version)
    fn target(&self) -> (&str, &str, u64);
}

macro_rules! action_requests {
    ($($request:ty),+ $(,)?) => {
        $(impl ActionRequest for $request {
            fn target(&self) -> (&str, &str, u64) {
                (&self.request_id, &self.complaint_id, self.expected_version)
            }
        })+
    };
}

action_requests!(
    pb::AcceptForFilingRequest,
    pb::RejectComplaintRequest,
    pb::AnswerConsultationRequest,
    pb::DispatchCaseRequest,
    pb::ReturnCaseRequest,
    pb::ReportPartRequest,
    pb::AddProgressNoteRequest,
    pb::RequestExtensionRequest,
    pb::DecideExtensionRequest,
    pb::ResolveCaseRequest,
    pb::MergeCaseRequest,
    pb::RecordFollowUpRequest,
    pb::HandOverCaseRequest,
);

type CaseResult = Result<Response<pb::Case>, Status>;

type QueueStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::WatchQueueResponse, Status>> + Send>,
>;

/// Turns queue items into responses, and the way the stream ended into
/// the status the client sees.
fn queue_stream(stream: crate::service::queue_watch::QueueStream) -> QueueStream {
    use crate::service::queue_watch::QueueItem;
    use pb::watch_queue_response::Item;
    use tokio_stream::StreamExt;

    let crate::service::queue_watch::QueueStream { items, end } = stream;
    let items = tokio_stream::wrappers::ReceiverStream::new(items).map(|item| {
        let item = match item {
            QueueItem::Upsert(case) => Item::Upsert(convert::case(&case)),
            QueueItem::Removed(id) => Item::RemovedComplaintId(id.to_string()),
            QueueItem::SnapshotComplete { cases } => {
                Item::SnapshotComplete(pb::SnapshotComplete { cases })
            }
            QueueItem::Heartbeat => Item::Heartbeat(pb::Heartbeat {
                sent_at: Some(convert::timestamp(chrono::Utc::now())),
                resume_after_sequence: 0,
                interval_seconds: 0,
            }),
        };
        Ok(pb::WatchQueueResponse { item: Some(item) })
    });
    let ending = futures_util::stream::once(async move {
        let reason = end.lock().unwrap_or_else(|p| p.into_inner()).take();
        super::citizen::end_status(reason).map(Err)
    })
    .filter_map(|ending| ending);
    Box::pin(items.chain(ending))
}

#[tonic::async_trait]
impl CaseService for CaseApi {
    type WatchQueueStream = QueueStream;

    async fn watch_queue(
        &self,
        request: Request<pb::WatchQueueRequest>,
    ) -> Result<Response<QueueStream>, Status> {
        let staff = caller(&request)?;
        self.services.limit_read(&staff).await?;
        let stream = self.services.watch_queue(&staff).await?;
        Ok(Response::new(queue_stream(stream)))
    }

    async fn get_case(&self, request: Request<pb::GetCaseRequest>) -> CaseResult {
        let staff = caller(&request)?;
        self.services.limit_read(&staff).await?;
        let id = ComplaintId::parse(&request.get_ref().complaint_id)?;
        let case = self.services.get_case(&staff, id).await?;
        Ok(Response::new(convert::case(&case)))
    }

    async fn list_queue(
        &self,
        request: Request<pb::ListQueueRequest>,
    ) -> Result<Response<pb::ListQueueResponse>, Status> {
        let staff = caller(&request)?;
        self.services.limit_read(&staff).await?;
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
        self.services.limit_read(&staff).await?;
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
        self.act(request, |_| Ok(StaffAction::Accept)).await
    }

    async fn reject_complaint(&self, request: Request<pb::RejectComplaintRequest>) -> CaseResult {
        self.act(request, |r| Ok(StaffAction::Reject { reason: r.reason }))
            .await
    }

    async fn answer_consultation(
        &self,
        request: Request<pb::AnswerConsultationRequest>,
    ) -> CaseResult {
        self.act(request, |r| Ok(StaffAction::Answer { answer: r.answer }))
            .await
    }

    async fn dispatch_case(&self, request: Request<pb::DispatchCaseRequest>) -> CaseResult {
        self.act(request, |r| {
            Ok(StaffAction::Dispatch(DispatchPlan {
                lead: r.lead_unit_id,
                co_units: r.co_unit_ids,
            }))
        })
        .await
    }

    async fn return_case(&self, request: Request<pb::ReturnCaseRequest>) -> CaseResult {
        self.act(request, |r| Ok(StaffAction::Return { reason: r.reason }))
            .await
    }

    async fn report_part(&self, request: Request<pb::ReportPartRequest>) -> CaseResult {
        self.act(request, |r| {
            Ok(StaffAction::ReportPart { summary: r.summary })
        })
        .await
    }

    async fn add_progress_note(&self, request: Request<pb::AddProgressNoteRequest>) -> CaseResult {
        self.act(request, |r| {
            Ok(StaffAction::Note {
                note: r.note,
                visible_to_citizen: r.visible_to_citizen,
            })
        })
        .await
    }

    async fn request_extension(&self, request: Request<pb::RequestExtensionRequest>) -> CaseResult {
        self.act(request, |r| {
            Ok(StaffAction::RequestExtension {
                until: convert::time_from_proto("until", r.until)?,
                reason: r.reason,
            })
        })
        .await
    }

    async fn decide_extension(&self, request: Request<pb::DecideExtensionRequest>) -> CaseResult {
        self.act(request, |r| {
            Ok(StaffAction::DecideExtension { approve: r.approve })
        })
        .await
    }

    async fn resolve_case(&self, request: Request<pb::ResolveCaseRequest>) -> CaseResult {
        self.act(request, |r| Ok(StaffAction::Resolve { summary: r.summary }))
            .await
    }

    async fn merge_case(&self, request: Request<pb::MergeCaseRequest>) -> CaseResult {
        self.act(request, |r| {
            let into = ComplaintId::parse(&r.into_complaint_id)
                .map_err(|_| DomainError::invalid("into_complaint_id", "no case has this id"))?;
            Ok(StaffAction::Merge { into })
        })
        .await
    }

    async fn record_follow_up(&self, request: Request<pb::RecordFollowUpRequest>) -> CaseResult {
        self.act(request, |r| {
            Ok(StaffAction::FollowUp { outcome: r.outcome })
        })
        .await
    }

    async fn reveal_reporter_contact(
        &self,
        request: Request<pb::RevealReporterContactRequest>,
    ) -> Result<Response<pb::RevealReporterContactResponse>, Status> {
        let staff = caller(&request)?;
        let request = request.into_inner();
        let id = ComplaintId::parse(&request.complaint_id)?;
        let phone = self
            .services
            .reveal_reporter_contact(&staff, id, &request.reason)
            .await?;
        Ok(Response::new(pb::RevealReporterContactResponse {
            contact_phone: phone.expose().to_owned(),
        }))
    }

    async fn create_upload(
        &self,
        request: Request<pb::CreateUploadRequest>,
    ) -> Result<Response<pb::UploadGrant>, Status> {
        let staff = caller(&request)?;
        let upload = evidence::upload_request(request.get_ref());
        let grant = self.services.create_upload(&staff, &upload).await?;
        Ok(Response::new(evidence::grant(&grant)))
    }

    async fn attach_handling_photos(
        &self,
        request: Request<pb::AttachHandlingPhotosRequest>,
    ) -> Result<Response<pb::ListPhotosResponse>, Status> {
        let staff = caller(&request)?;
        let request = request.into_inner();
        let photos = HandlingPhotos {
            complaint_id: ComplaintId::parse(&request.complaint_id)?,
            stage: evidence::stage_from_proto(request.stage)?,
            upload_ids: request.upload_ids,
            visible_to_citizen: request.visible_to_citizen,
        };
        let views = self.services.attach_handling_photos(&staff, photos).await?;
        Ok(Response::new(evidence::photos(&views)))
    }

    async fn list_case_photos(
        &self,
        request: Request<pb::ListComplaintPhotosRequest>,
    ) -> Result<Response<pb::ListPhotosResponse>, Status> {
        let staff = caller(&request)?;
        self.services.limit_read(&staff).await?;
        let id = ComplaintId::parse(&request.get_ref().complaint_id)?;
        let views = self.services.case_photos(&staff, id).await?;
        Ok(Response::new(evidence::photos(&views)))
    }

    async fn hand_over_case(&self, request: Request<pb::HandOverCaseRequest>) -> CaseResult {
        self.act(request, |r| {
            Ok(StaffAction::HandOver {
                to_unit: r.to_unit_id,
                reason: r.reason,
            })
        })
        .await
    }
}
