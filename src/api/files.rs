//! Plain HTTP beside gRPC: the upload endpoint (a multipart POST, as the
//! mini-program's `wx.uploadFile` sends) and the download endpoint behind
//! the links this server signs for files in a local folder. Answers are
//! JSON for programs; errors carry a stable code.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::routing::{get, post};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;

use crate::domain::evidence::{Upload, UploadRefusal};
use crate::service::Services;
use crate::service::evidence::{FILE_FIELD, TransferError};

/// Room for the multipart framing and small form fields around the file.
const FORM_OVERHEAD: usize = 64 * 1024;

type Response = http::Response<Body>;

/// Adds the upload and download routes to the gRPC router.
pub fn routes(grpc: Router, services: Arc<Services>, max_bytes: u64) -> Router {
    let limit = usize::try_from(max_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(FORM_OVERHEAD);
    let http = Router::new()
        .route("/uploads/{upload_id}", post(upload))
        .route("/files/{upload_id}", get(download))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(services);
    grpc.merge(http)
}

async fn upload(
    State(services): State<Arc<Services>>,
    Path(upload_id): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let grant = match services.open_upload(&upload_id, authorization).await {
        Ok(grant) => grant,
        Err(error) => return failure(error),
    };
    let multipart = match multipart {
        Ok(multipart) => multipart,
        Err(rejection) => {
            return failure(
                UploadRefusal::BadForm(format!("send multipart/form-data: {rejection}")).into(),
            );
        }
    };
    let bytes = match read_file(multipart, grant.max_bytes).await {
        Ok(bytes) => bytes,
        Err(refusal) => return failure(refusal.into()),
    };
    match services.receive_upload(&grant, bytes).await {
        Ok(upload) => json(StatusCode::CREATED, &stored_json(&upload)),
        Err(error) => failure(error),
    }
}

/// The bytes of the form's file field, refused once past `max_bytes`.
async fn read_file(mut multipart: Multipart, max_bytes: u64) -> Result<Vec<u8>, UploadRefusal> {
    let too_large = UploadRefusal::TooLarge { max_bytes };
    let bad_form = |error: axum::extract::multipart::MultipartError| {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large.clone()
        } else {
            UploadRefusal::BadForm(format!("the multipart body is malformed: {error}"))
        }
    };
    let mut file = None;
    while let Some(mut field) = multipart.next_field().await.map_err(bad_form)? {
        if field.name() != Some(FILE_FIELD) {
            continue;
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
            if (bytes.len() + chunk.len()) as u64 > max_bytes {
                return Err(too_large);
            }
            bytes.extend_from_slice(&chunk);
        }
        file = Some(bytes);
    }
    file.ok_or_else(|| UploadRefusal::BadForm(format!("the form has no `{FILE_FIELD}` field")))
}

#[derive(Deserialize)]
struct LinkQuery {
    expires: i64,
    signature: String,
}

async fn download(
    State(services): State<Arc<Services>>,
    Path(upload_id): Path<String>,
    query: Result<Query<LinkQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(link)) = query else {
        return failure(UploadRefusal::NotFound.into());
    };
    match services
        .download(&upload_id, link.expires, &link.signature)
        .await
    {
        Ok(file) => {
            let mut response = Response::new(Body::from(file.bytes));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(file.content_type.mime()),
            );
            // The link is personal and short-lived: no shared caches.
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            );
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            response
        }
        Err(error) => failure(error),
    }
}

fn stored_json(upload: &Upload) -> serde_json::Value {
    let file = upload.file.as_ref();
    serde_json::json!({
        "upload_id": upload.id,
        "content_type": upload.content_type.mime(),
        "size_bytes": file.map_or(0, |f| f.size_bytes),
        "width": file.map_or(0, |f| f.width),
        "height": file.map_or(0, |f| f.height),
    })
}

fn failure(error: TransferError) -> Response {
    match error {
        TransferError::Refused(refusal) => {
            tracing::info!(code = refusal.code(), "file transfer refused");
            let status =
                StatusCode::from_u16(refusal.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
            json(
                status,
                &serde_json::json!({
                    "error": {"code": refusal.code(), "message": refusal.message()}
                }),
            )
        }
        TransferError::Failed(error) => {
            tracing::error!(error = %format!("{error:#}"), "file transfer failed");
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                &serde_json::json!({
                    "error": {"code": "INTERNAL", "message": "the server failed; try again"}
                }),
            )
        }
    }
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
