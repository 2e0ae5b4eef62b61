//! The gRPC edge: thin handlers that parse requests, call a use case and
//! convert its result. Access control and request logging are tower layers
//! applied to every RPC in `startup`.

mod abuse;
pub mod access;
mod audit;
mod auth;
mod case;
mod citizen;
pub mod codec;
mod convert;
mod directory;
pub mod logging;
mod staff;
mod status;
pub mod web;

pub use abuse::AbuseApi;
pub use audit::AuditApi;
pub use auth::AuthApi;
pub use case::CaseApi;
pub use citizen::CitizenApi;
pub use directory::DirectoryApi;
pub use staff::StaffAccountApi;

use tonic::{Request, Status};

use crate::domain::DomainError;
use crate::domain::account::Principal;
use crate::domain::block::DeviceId;

/// The caller the access layer verified for this request.
fn caller<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("sign in first"))
}

/// The metadata key apps send their installation's device id in.
pub const DEVICE_ID_HEADER: &str = "x-huying-device-id";

/// The device id the app sent, if any; a malformed one is refused rather
/// than ignored, so that a block on a device cannot be dodged by garbling it.
fn client_device<T>(request: &Request<T>) -> Result<Option<DeviceId>, Status> {
    let Some(value) = request.metadata().get(DEVICE_ID_HEADER) else {
        return Ok(None);
    };
    let parsed = value
        .to_str()
        .map_err(|_| "must be plain text")
        .and_then(DeviceId::parse);
    parsed
        .map(Some)
        .map_err(|reason| DomainError::invalid(DEVICE_ID_HEADER, reason).into())
}
