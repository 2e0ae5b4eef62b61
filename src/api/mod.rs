//! The gRPC edge: thin handlers that parse requests, call a use case and
//! convert its result. Access control and request logging are tower layers
//! applied to every RPC in `startup`.

mod abuse;
pub mod access;
mod audit;
mod auth;
mod case;
mod citizen;
pub mod client;
pub mod codec;
mod convert;
mod directory;
mod evidence;
pub mod files;
pub mod logging;
mod notification;
pub mod payout_notify;
mod personal_data;
mod rewards;
mod staff;
mod stats;
mod status;
pub mod web;

pub use abuse::AbuseApi;
pub use audit::AuditApi;
pub use auth::AuthApi;
pub use case::CaseApi;
pub use citizen::CitizenApi;
pub use directory::DirectoryApi;
pub use notification::NotificationApi;
pub use personal_data::PersonalDataApi;
pub use rewards::RewardApi;
pub use staff::StaffAccountApi;
pub use stats::{KnowledgeApi, PublicStatsApi, StatsApi};

use tonic::{Request, Status};

use crate::domain::account::Principal;

/// The caller the access layer verified for this request.
fn caller<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("sign in first"))
}
