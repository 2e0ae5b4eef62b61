//! The personal-data operations API: the progress of re-encryption under
//! the current key, for security and system administrators.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::proto::v1 as pb;
use crate::proto::v1::personal_data_service_server::PersonalDataService;
use crate::service::Services;

pub struct PersonalDataApi {
    services: Arc<Services>,
}

impl PersonalDataApi {
    pub fn new(services: Arc<Services>) -> PersonalDataApi {
        PersonalDataApi { services }
    }
}

#[tonic::async_trait]
impl PersonalDataService for PersonalDataApi {
    async fn get_reencryption_progress(
        &self,
        _request: Request<pb::GetReencryptionProgressRequest>,
    ) -> Result<Response<pb::GetReencryptionProgressResponse>, Status> {
        let progress = self.services.reencryption_progress().await?;
        Ok(Response::new(pb::GetReencryptionProgressResponse {
            algorithm: progress.current.algorithm.as_str().to_owned(),
            key_version: progress.current.version,
            complete: progress.complete(),
            columns: progress
                .columns
                .iter()
                .map(|(column, census)| pb::ColumnProgress {
                    column: column.name().to_owned(),
                    total: census.total,
                    current: census.current,
                })
                .collect(),
        }))
    }
}
