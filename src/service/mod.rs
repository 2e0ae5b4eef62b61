//! The application's use cases: each public function is one thing a caller
//! can do. They combine the domain rules with the adapters (store, bus,
//! limiter, clock) and know nothing of gRPC.

pub mod abuse;
pub mod amount;
pub mod audit;
pub mod auth;
pub mod cases;
pub mod claims;
pub mod complaints;
pub mod contact;
pub mod evidence;
pub mod identity;
pub mod knowledge;
pub mod limits;
pub mod notifications;
pub mod notify;
pub mod personal_data;
pub mod queue_watch;
pub mod red_envelopes;
pub mod reference;
pub mod revocations;
pub mod staff_accounts;
pub mod staff_sign_in;
pub mod stats;
pub mod streams;
pub mod supervision;

use std::sync::{Arc, RwLock};

use crate::bus::EventBus;
use crate::clock::Clock;
use crate::domain::category::CategoryStandard;
use crate::domain::geo::ServiceArea;
use crate::limiter::Limits;
use crate::security::{PhoneCipher, TokenSigner};
use crate::store::Store;

/// Everything the use cases depend on, built once at start-up.
pub struct Services {
    pub store: Arc<dyn Store>,
    pub bus: Arc<dyn EventBus>,
    /// The rate-limit policies; see `limits.rs`.
    pub limits: Limits,
    pub clock: Arc<dyn Clock>,
    pub standard: Arc<CategoryStandard>,
    pub service_area: ServiceArea,
    pub cipher: PhoneCipher,
    pub signer: TokenSigner,
    pub refresh_token_ttl: chrono::Duration,
    pub dev_sign_in: bool,
    /// The directory and calendar in force; see `reference.rs`.
    pub reference: RwLock<Arc<reference::Reference>>,
    pub supervision: supervision::SupervisionPolicy,
    /// When a new complaint is flagged as repeating an open one.
    pub duplicates: crate::domain::duplicate::DuplicatePolicy,
    /// How consultations are matched against the knowledge base.
    pub knowledge: crate::domain::knowledge::MatchPolicy,
    pub streams: streams::StreamPolicy,
    /// Staff lock-out, audit retention and second-factor secrets.
    pub staff_security: staff_accounts::StaffSecurity,
    pub citizen_sign_in: identity::CitizenSignIn,
    /// Key rotation batches and retention periods.
    pub personal_data: personal_data::PersonalDataPolicy,
    /// Where photos are stored, their limits and links.
    pub evidence: evidence::Evidence,
    /// Notification templates, channels and the sender's settings.
    pub notifier: notify::Notifier,
    pub rewards: red_envelopes::Rewards,
    /// Turns true when the server is stopping, so that long-lived streams
    /// end and graceful shutdown does not wait for clients to hang up.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}
