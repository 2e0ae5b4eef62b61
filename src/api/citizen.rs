use std::pin::Pin;
use std::sync::Arc;

use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::client::client;
use super::web::GrpcWebCall;
use super::{caller, convert, evidence};
use crate::domain::complaint::ComplaintId;
use crate::proto::v1 as pb;
use crate::proto::v1::citizen_service_server::CitizenService;
use crate::service::Services;
use crate::service::streams::{EventStream, StreamEnd, StreamItem};

pub struct CitizenApi {
    services: Arc<Services>,
}

impl CitizenApi {
    pub fn new(services: Arc<Services>) -> CitizenApi {
        CitizenApi { services }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchComplaintResponse, Status>> + Send>>;

#[tonic::async_trait]
impl CitizenService for CitizenApi {
    async fn export_my_data(
        &self,
        request: Request<pb::ExportMyDataRequest>,
    ) -> Result<Response<pb::ExportMyDataResponse>, Status> {
        let citizen = caller(&request)?;
        let export = self.services.export_my_data(&citizen).await?;
        Ok(Response::new(convert::citizen_export(&export)))
    }

    async fn delete_my_account(
        &self,
        request: Request<pb::DeleteMyAccountRequest>,
    ) -> Result<Response<pb::DeleteMyAccountResponse>, Status> {
        let citizen = caller(&request)?;
        let confirmation = &request.get_ref().confirmation;
        let deletion = self
            .services
            .delete_my_account(&citizen, confirmation)
            .await?;
        Ok(Response::new(pb::DeleteMyAccountResponse {
            complaints_kept: deletion.complaints_kept,
        }))
    }

    async fn create_upload(
        &self,
        request: Request<pb::CreateUploadRequest>,
    ) -> Result<Response<pb::UploadGrant>, Status> {
        let citizen = caller(&request)?;
        let upload = evidence::upload_request(request.get_ref());
        let grant = self.services.create_upload(&citizen, &upload).await?;
        Ok(Response::new(evidence::grant(&grant)))
    }

    async fn list_complaint_photos(
        &self,
        request: Request<pb::ListComplaintPhotosRequest>,
    ) -> Result<Response<pb::ListPhotosResponse>, Status> {
        let citizen = caller(&request)?;
        self.services.limit_read(&citizen).await?;
        let id = ComplaintId::parse(&request.get_ref().complaint_id)?;
        let photos = self.services.citizen_photos(&citizen, id).await?;
        Ok(Response::new(evidence::photos(&photos)))
    }

    async fn file_complaint(
        &self,
        request: Request<pb::FileComplaintRequest>,
    ) -> Result<Response<pb::FileComplaintResponse>, Status> {
        let citizen = caller(&request)?;
        let client = client(&request);
        let input = convert::filing_input(request.into_inner());
        let (complaint, replayed) = self
            .services
            .file_complaint(&citizen, &client, input)
            .await?;
        let answers = self.services.instant_answers(&complaint).await?;
        Ok(Response::new(pb::FileComplaintResponse {
            complaint: Some(convert::complaint(&complaint)),
            replayed,
            instant_answers: answers
                .iter()
                .map(|offer| pb::InstantAnswer {
                    answer_id: offer.entry.id.to_string(),
                    question: offer.entry.question.clone(),
                    answer: offer.entry.answer.clone(),
                    score: offer.score,
                })
                .collect(),
        }))
    }

    async fn accept_instant_answer(
        &self,
        request: Request<pb::AcceptInstantAnswerRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let citizen = caller(&request)?;
        let request = request.into_inner();
        let id = ComplaintId::parse(&request.complaint_id)?;
        let complaint = self
            .services
            .accept_instant_answer(&citizen, id, &request.answer_id)
            .await?;
        Ok(Response::new(convert::complaint(&complaint)))
    }

    async fn get_complaint(
        &self,
        request: Request<pb::GetComplaintRequest>,
    ) -> Result<Response<pb::Complaint>, Status> {
        let citizen = caller(&request)?;
        self.services.limit_read(&citizen).await?;
        let id = ComplaintId::parse(&request.get_ref().complaint_id)?;
        let complaint = self.services.get_own_complaint(&citizen, id).await?;
        Ok(Response::new(convert::complaint(&complaint)))
    }

    async fn list_my_complaints(
        &self,
        request: Request<pb::ListMyComplaintsRequest>,
    ) -> Result<Response<pb::ListMyComplaintsResponse>, Status> {
        let citizen = caller(&request)?;
        self.services.limit_read(&citizen).await?;
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

    async fn list_notifications(
        &self,
        request: Request<pb::ListNotificationsRequest>,
    ) -> Result<Response<pb::ListNotificationsResponse>, Status> {
        super::notification::list_notifications(&self.services, request).await
    }

    async fn mark_notifications_read(
        &self,
        request: Request<pb::MarkNotificationsReadRequest>,
    ) -> Result<Response<pb::MarkNotificationsReadResponse>, Status> {
        super::notification::mark_notifications_read(&self.services, request).await
    }

    async fn report_subscription_grant(
        &self,
        request: Request<pb::ReportSubscriptionGrantRequest>,
    ) -> Result<Response<pb::NotificationSettings>, Status> {
        super::notification::report_subscription_grant(&self.services, request).await
    }

    async fn get_notification_settings(
        &self,
        request: Request<pb::GetNotificationSettingsRequest>,
    ) -> Result<Response<pb::NotificationSettings>, Status> {
        super::notification::get_notification_settings(&self.services, request).await
    }

    async fn update_notification_settings(
        &self,
        request: Request<pb::UpdateNotificationSettingsRequest>,
    ) -> Result<Response<pb::NotificationSettings>, Status> {
        super::notification::update_notification_settings(&self.services, request).await
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

    type WatchComplaintStream = WatchStream;
    type WatchMyComplaintsStream = WatchStream;

    async fn watch_my_complaints(
        &self,
        request: Request<pb::WatchMyComplaintsRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let citizen = caller(&request)?;
        self.services.limit_read(&citizen).await?;
        let web = request.extensions().get::<GrpcWebCall>().is_some();
        let stream = self
            .services
            .watch_my_complaints(&citizen, request.get_ref().after_cursor, web)
            .await?;
        Ok(Response::new(watch_stream(
            stream,
            self.services.streams.heartbeat,
        )))
    }

    async fn watch_complaint(
        &self,
        request: Request<pb::WatchComplaintRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let citizen = caller(&request)?;
        self.services.limit_read(&citizen).await?;
        let web = request.extensions().get::<GrpcWebCall>().is_some();
        let request = request.into_inner();
        let id = ComplaintId::parse(&request.complaint_id)?;
        let stream = self
            .services
            .watch_own_complaint(&citizen, id, request.after_sequence, web)
            .await?;
        let heartbeat = self.services.streams.heartbeat;
        Ok(Response::new(watch_stream(stream, heartbeat)))
    }

    async fn list_my_red_envelopes(
        &self,
        request: Request<pb::ListMyRedEnvelopesRequest>,
    ) -> Result<Response<pb::ListMyRedEnvelopesResponse>, Status> {
        let citizen = caller(&request)?;
        let request = request.into_inner();
        let (envelopes, next) = self
            .services
            .list_my_red_envelopes(&citizen, request.page_size, &request.page_token)
            .await?;
        Ok(Response::new(pb::ListMyRedEnvelopesResponse {
            envelopes: envelopes
                .iter()
                .map(super::rewards::citizen_envelope)
                .collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn claim_red_envelope(
        &self,
        request: Request<pb::ClaimRedEnvelopeRequest>,
    ) -> Result<Response<pb::ClaimRedEnvelopeResponse>, Status> {
        let citizen = caller(&request)?;
        let id = crate::service::claims::parse_envelope_id(&request.get_ref().envelope_id)?;
        let claim = self.services.claim_red_envelope(&citizen, id).await?;
        Ok(Response::new(pb::ClaimRedEnvelopeResponse {
            envelope: Some(super::rewards::citizen_envelope(&claim.envelope)),
            package_info: claim.package_info.unwrap_or_default(),
            mch_id: claim.mch_id,
            app_id: claim.app_id,
        }))
    }
}

/// The status a stream ends with, if the server ended it: UNAVAILABLE
/// where the client should resume, nothing for a clean end.
pub(super) fn end_status(reason: Option<StreamEnd>) -> Option<Status> {
    match reason {
        None | Some(StreamEnd::TimeLimit) => None,
        Some(StreamEnd::ShuttingDown) => Some(Status::unavailable(
            "the server is restarting; resume with the last position you received",
        )),
        Some(StreamEnd::FellBehind) => Some(Status::unavailable(
            "the stream fell behind; resume with the last position you received",
        )),
        Some(StreamEnd::Revoked) => Some(Status::unauthenticated(
            "the session was signed out; sign in again",
        )),
        Some(StreamEnd::Failed(error)) => Some(Status::from(error)),
    }
}

/// Turns a stream's items into responses, and the reason it ended into the
/// status the client sees: UNAVAILABLE where it should resume.
fn watch_stream(stream: EventStream, heartbeat: std::time::Duration) -> WatchStream {
    let EventStream { items, end } = stream;
    let items = ReceiverStream::new(items).map(move |item| {
        Ok(pb::WatchComplaintResponse {
            item: Some(match item {
                StreamItem::Event(event) => {
                    pb::watch_complaint_response::Item::Event(convert::event(&event))
                }
                StreamItem::Heartbeat { resume_after } => {
                    pb::watch_complaint_response::Item::Heartbeat(pb::Heartbeat {
                        sent_at: Some(convert::timestamp(chrono::Utc::now())),
                        resume_after_sequence: resume_after,
                        interval_seconds: heartbeat.as_secs() as u32,
                    })
                }
            }),
        })
    });
    let ending = futures_util::stream::once(async move {
        let reason = end.lock().unwrap_or_else(|p| p.into_inner()).take();
        end_status(reason).map(Err)
    })
    .filter_map(|ending| ending);
    Box::pin(items.chain(ending))
}
