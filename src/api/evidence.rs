//! Conversions of the evidence messages, shared by the citizen and staff
//! handlers.

use tonic::Status;

use super::convert::timestamp;
use crate::domain::DomainError;
use crate::domain::evidence::{Stage, UploadRequest};
use crate::proto::v1 as pb;
use crate::service::evidence::{FILE_FIELD, PhotoView, UploadGrant};

pub fn upload_request(request: &pb::CreateUploadRequest) -> UploadRequest {
    UploadRequest {
        content_type: request.content_type.clone(),
        size_bytes: request.size_bytes,
    }
}

pub fn grant(grant: &UploadGrant) -> pb::UploadGrant {
    pb::UploadGrant {
        upload_id: grant.upload_id.clone(),
        upload_url: grant.upload_url.clone(),
        file_field: FILE_FIELD.to_owned(),
        expires_at: Some(timestamp(grant.expires_at)),
        max_bytes: grant.max_bytes,
        content_type: grant.content_type.mime().to_owned(),
    }
}

pub fn stage_from_proto(value: i32) -> Result<Stage, Status> {
    match pb::PhotoStage::try_from(value) {
        Ok(pb::PhotoStage::Report) => Ok(Stage::Report),
        Ok(pb::PhotoStage::Before) => Ok(Stage::Before),
        Ok(pb::PhotoStage::After) => Ok(Stage::After),
        Ok(pb::PhotoStage::Progress) => Ok(Stage::Progress),
        Ok(pb::PhotoStage::Unspecified) | Err(_) => {
            Err(DomainError::invalid("stage", "must be BEFORE, AFTER or PROGRESS").into())
        }
    }
}

fn stage(stage: Stage) -> pb::PhotoStage {
    match stage {
        Stage::Report => pb::PhotoStage::Report,
        Stage::Before => pb::PhotoStage::Before,
        Stage::After => pb::PhotoStage::After,
        Stage::Progress => pb::PhotoStage::Progress,
    }
}

pub fn photos(views: &[PhotoView]) -> pb::ListPhotosResponse {
    pb::ListPhotosResponse {
        photos: views.iter().map(photo).collect(),
    }
}

fn photo(view: &PhotoView) -> pb::Photo {
    let upload = &view.upload;
    let file = upload.file.as_ref();
    let attachment = upload.attachment.as_ref();
    pb::Photo {
        upload_id: upload.id.clone(),
        stage: attachment
            .map_or(pb::PhotoStage::Unspecified, |a| stage(a.stage))
            .into(),
        content_type: upload.content_type.mime().to_owned(),
        size_bytes: file.map_or(0, |f| f.size_bytes),
        width: file.map_or(0, |f| f.width),
        height: file.map_or(0, |f| f.height),
        visible_to_citizen: attachment.is_some_and(|a| a.visible_to_citizen),
        unit_id: attachment
            .and_then(|a| a.unit_id.clone())
            .unwrap_or_default(),
        attached_at: attachment.map(|a| timestamp(a.attached_at)),
        download_url: view.download_url.clone(),
        download_expires_at: Some(timestamp(view.download_expires_at)),
    }
}
