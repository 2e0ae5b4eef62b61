//! The staff API. Its RPCs are declared and access-checked now; each answers
//! UNIMPLEMENTED to an allowed caller.
//!
//! TODO(case-handling): implement filing decisions, dispatch, returns,
//! progress notes and resolution on top of `Store::apply_change`.

use tonic::{Request, Response, Status};

use crate::proto::v1 as pb;
use crate::proto::v1::case_service_server::CaseService;

#[derive(Debug, Default)]
pub struct CaseApi;

fn not_yet<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented(
        "case handling is not available on this server yet",
    ))
}

#[tonic::async_trait]
impl CaseService for CaseApi {
    async fn get_case(
        &self,
        _: Request<pb::GetCaseRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        not_yet()
    }

    async fn list_queue(
        &self,
        _: Request<pb::ListQueueRequest>,
    ) -> Result<Response<pb::ListQueueResponse>, Status> {
        not_yet()
    }

    async fn register_case(
        &self,
        _: Request<pb::RegisterCaseRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        not_yet()
    }

    async fn accept_for_filing(
        &self,
        _: Request<pb::AcceptForFilingRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        not_yet()
    }

    async fn reject_complaint(
        &self,
        _: Request<pb::RejectComplaintRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        not_yet()
    }

    async fn dispatch_case(
        &self,
        _: Request<pb::DispatchCaseRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        not_yet()
    }

    async fn return_case(
        &self,
        _: Request<pb::ReturnCaseRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        not_yet()
    }

    async fn add_progress_note(
        &self,
        _: Request<pb::AddProgressNoteRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        not_yet()
    }

    async fn resolve_case(
        &self,
        _: Request<pb::ResolveCaseRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        not_yet()
    }
}
