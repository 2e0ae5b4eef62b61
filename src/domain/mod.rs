//! The rules of the appeal system. Nothing in here knows about SQL or gRPC:
//! values are parsed at the edge into the types below, and the life-cycle
//! rules are plain functions over them.

pub mod account;
pub mod audit;
pub mod block;
pub mod calendar;
pub mod case;
pub mod category;
pub mod citizen;
pub mod client;
pub mod complaint;
pub mod directory;
pub mod duplicate;
pub mod error;
pub mod evidence;
pub mod geo;
pub mod knowledge;
pub mod notification;
pub mod notification_templates;
pub mod personal_data;
pub mod phone;
pub mod red_envelope;
pub mod staff;
pub mod stats;
pub mod time;

pub use error::{DomainError, FieldViolation};
