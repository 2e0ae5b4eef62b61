//! Huying (呼应): the backend of a district citizen-appeal system.
//!
//! Layers, outside in: `api` (the gRPC edge) → `service` (use cases) →
//! `domain` (rules, no I/O) ← adapters: `store`, `bus`, `limiter`, `clock`,
//! `security`, and the outside services `wechat`, `sms` and `notify`.
//! `startup` wires them together.

pub mod api;
pub mod bootstrap;
pub mod bus;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod evidence;
pub mod limiter;
pub mod notify;
pub mod payout;
pub mod replay;
pub mod security;
pub mod service;
pub mod sms;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod wechat;

/// Code generated from `proto/huying/v1`.
pub mod proto {
    pub mod v1 {
        #![allow(clippy::all, missing_docs)]
        tonic::include_proto!("huying.v1");
    }

    /// The descriptor set served through gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("huying_descriptor");
}
