use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::{caller, convert};
use crate::domain::complaint::ComplaintId;
use crate::proto::v1 as pb;
use crate::proto::v1::citizen_service_server::CitizenService;
use crate::service::Services;

pub struct CitizenApi {
    services: Arc<Services>,
}

impl CitizenApi {
    pub fn new(services: Arc<Services>) -> CitizenApi {
        CitizenApi { services }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::ComplaintEvent, Status>> + Send>>;

#[tonic::async_trait]
impl CitizenService for CitizenApi {
    async fn file_complaint(
        &self,
        request: Request<pb::FileComplaintRequest>,
    ) -> Result<Response<pb::FileComplaintResponse>, Status> {
        let citizen = caller(&request)?;
        let input = convert::filing_input(request.into_inner());
        let (complaint, replayed) = self.services.file_complaint(&citizen, input).await?;
        Ok(Response::new(pb::FileComplaintResponse {
            complaint: Some(convert::complaint(&complaint)),
            replayed,
        }))
    }

    async fn get_complaint(
        &self,
        request: Request<pb::GetComplaintRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let citizen = caller(&request)?;
        let id = ComplaintId::parse(&request.get_ref().complaint_id)?;
        let complaint = self.services.get_own_complaint(&citizen, id).await?;
        Ok(Response::new(convert::complaint(&complaint)))
    }

    async fn list_my_complaints(
        &self,
        request: Request<pb::ListMyComplaintsRequest>,
    ) -> Result<Response<pb::ListMyComplaintsResponse>, Status> {
        let citizen = caller(&request)?;
        let request = request.into_inner();
        let page = self
            .services
            .list_own_complaints(
                &citizen,
                request.page_size,
                &request.page_token,
                convert::status_from_proto(request.status),
            )
            .await?;
        Ok(Response::new(pb::ListMyComplaintsResponse {
            complaints: page.complaints.iter().map(convert::complaint).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn withdraw_complaint(
        &self,
        request: Request<pb::WithdrawComplaintRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let citizen = caller(&request)?;
        let request = request.into_inner();
        let id = ComplaintId::parse(&request.complaint_id)?;
        let complaint = self
            .services
            .withdraw_complaint(&citizen, id, &request.reason)
            .await?;
        Ok(Response::new(convert::complaint(&complaint)))
    }

    async fn rate_complaint(
        &self,
        request: Request<pb::RateComplaintRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let citizen = caller(&request)?;
        let request = request.into_inner();
        let id = ComplaintId::parse(&request.complaint_id)?;
        let satisfaction = convert::satisfaction_from_proto(request.satisfaction);
        let complaint = self
            .services
            .rate_complaint(&citizen, id, satisfaction, &request.comment)
            .await?;
        Ok(Response::new(convert::complaint(&complaint)))
    }

    async fn list_categories(
        &self,
        _request: Request<pb::ListCategoriesRequest>,
    ) -> Result<Response<pb::ListCategoriesResponse>, Status> {
        let standard = &self.services.standard;
        Ok(Response::new(pb::ListCategoriesResponse {
            categories: standard.roots().iter().map(convert::category).collect(),
            standard_version: standard.version().to_owned(),
        }))
    }

    type WatchComplaintStream = EventStream;

    async fn watch_complaint(
        &self,
        request: Request<pb::WatchComplaintRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let citizen = caller(&request)?;
        let request = request.into_inner();
        let id = ComplaintId::parse(&request.complaint_id)?;
        let events = self
            .services
            .watch_own_complaint(&citizen, id, request.after_sequence)
            .await?;

        let stream = ReceiverStream::new(events).map(|item| match item {
            Ok(event) => Ok(convert::event(&event)),
            Err(error) => Err(Status::from(error)),
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
