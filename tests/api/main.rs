//! Integration tests: each starts the real server on 127.0.0.1:0 and talks
//! to it through generated tonic clients, on SQLite and on PostgreSQL (with
//! Redis). All modules compile into this one test binary.

mod citizen_world;
mod fake_wechat_pay;
mod fakes;
mod helpers;
mod notify_world;
mod s3_server;

mod access;
mod audit;
mod blocks;
mod cases;
mod categories;
mod evidence;
mod filing;
mod grpc_web;
mod health;
mod isolation;
mod knowledge;
mod linking;
mod listing;
mod notifications;
mod personal_data;
mod privacy;
mod rate_limits;
mod rating;
mod red_envelopes;
mod reflection;
mod replay;
mod replicas;
mod revocation;
mod scopes;
mod sessions;
mod signin_phone;
mod signin_wechat;
mod staff_accounts;
mod stats;
mod supervision;
mod validation;
mod watch;
mod wechat_pay;
