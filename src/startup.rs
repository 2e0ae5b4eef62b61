//! Builds the application from its configuration and serves it: native
//! gRPC and gRPC-Web (HTTP/1.1 and HTTP/2) on one port, with health checks
//! and reflection beside the product's services.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http::{HeaderName, Method};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::api::access::AccessLayer;
use crate::api::client::{ClientLayer, DEVICE_ID_HEADER};
use crate::api::logging::RpcLogLayer;
use crate::api::{
    AbuseApi, AuditApi, AuthApi, CaseApi, CitizenApi, DirectoryApi, KnowledgeApi, PersonalDataApi,
    PublicStatsApi, RewardApi, StaffAccountApi, StatsApi,
};
use crate::bus::{EventBus, LocalBus, RedisBus};
use crate::clock::Clock;
use crate::config::Config;
use crate::domain::category::CategoryStandard;
use crate::evidence::LinkSigner;
use crate::limiter::{Limits, RedisLimiter};
use crate::proto::FILE_DESCRIPTOR_SET;
use crate::proto::v1::abuse_service_server::AbuseServiceServer;
use crate::proto::v1::audit_service_server::AuditServiceServer;
use crate::proto::v1::auth_service_server::AuthServiceServer;
use crate::proto::v1::case_service_server::CaseServiceServer;
use crate::proto::v1::citizen_service_server::CitizenServiceServer;
use crate::proto::v1::directory_service_server::DirectoryServiceServer;
use crate::proto::v1::knowledge_service_server::KnowledgeServiceServer;
use crate::proto::v1::notification_service_server::NotificationServiceServer;
use crate::proto::v1::personal_data_service_server::PersonalDataServiceServer;
use crate::proto::v1::public_stats_service_server::PublicStatsServiceServer;
use crate::proto::v1::reward_service_server::RewardServiceServer;
use crate::proto::v1::staff_account_service_server::StaffAccountServiceServer;
use crate::proto::v1::stats_service_server::StatsServiceServer;
use crate::security::{PhoneCipher, SecretCipher, TokenSigner};
use crate::service::Services;
use crate::service::evidence::Evidence;
use crate::service::identity::CitizenSignIn;
use crate::service::reference::Reference;
use crate::service::revocations::learn_revocations_forever;
use crate::service::staff_accounts::StaffSecurity;
use crate::store::{self, Store};

/// The services whose health is reported, besides the server as a whole ("").
const HEALTH_NAMES: &[&str] = &[
    "",
    "huying.v1.AuthService",
    "huying.v1.CitizenService",
    "huying.v1.CaseService",
    "huying.v1.DirectoryService",
    "huying.v1.StaffAccountService",
    "huying.v1.AuditService",
    "huying.v1.AbuseService",
    "huying.v1.PersonalDataService",
    "huying.v1.NotificationService",
    "huying.v1.RewardService",
    "huying.v1.StatsService",
    "huying.v1.PublicStatsService",
    "huying.v1.KnowledgeService",
];

/// A running server.
pub struct Application {
    address: SocketAddr,
    services: Arc<Services>,
    health: HealthReporter,
    shutdown: Option<oneshot::Sender<()>>,
    stopping: watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    prober: JoinHandle<()>,
    supervisor: Option<JoinHandle<()>>,
    revocation_reader: Option<JoinHandle<()>>,
    sender: Option<JoinHandle<()>>,
    payout_reconciler: Option<JoinHandle<()>>,
}

impl Application {
    /// Connects to the adapters, binds the port and starts serving.
    pub async fn start(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Application> {
        // Bound first: upload and download links name the address.
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("Failed to bind {}", config.listen))?;
        let address = listener.local_addr()?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}"));

        let (stopping, stopping_signal) = watch::channel(false);
        let services = Arc::new(build_services(&config, clock, stopping_signal, public_url).await?);
        // Sessions revoked before this replica started are refused too.
        services
            .learn_revocations(services.revocations_worth_knowing())
            .await
            .context("Failed to read recent revocations")?;

        let (health, health_service) = tonic_health::server::health_reporter();
        // Both reflection versions: many deployed tools (grpcurl before
        // 1.9, for one) still speak only v1alpha.
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("Failed to build the reflection service")?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .context("Failed to build the v1alpha reflection service")?;

        let mut routes = Routes::builder();
        routes
            .add_service(health_service)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            .add_service(AuthServiceServer::new(AuthApi::new(Arc::clone(&services))))
            .add_service(CitizenServiceServer::new(CitizenApi::new(Arc::clone(
                &services,
            ))))
            .add_service(CaseServiceServer::new(CaseApi::new(Arc::clone(&services))))
            .add_service(DirectoryServiceServer::new(DirectoryApi::new(Arc::clone(
                &services,
            ))))
            .add_service(StaffAccountServiceServer::new(StaffAccountApi::new(
                Arc::clone(&services),
            )))
            .add_service(AuditServiceServer::new(AuditApi::new(Arc::clone(
                &services,
            ))))
            .add_service(AbuseServiceServer::new(AbuseApi::new(Arc::clone(
                &services,
            ))))
            .add_service(PersonalDataServiceServer::new(PersonalDataApi::new(
                Arc::clone(&services),
            )))
            .add_service(NotificationServiceServer::new(
                crate::api::NotificationApi::new(Arc::clone(&services)),
            ))
            .add_service(RewardServiceServer::new(RewardApi::new(Arc::clone(
                &services,
            ))))
            .add_service(StatsServiceServer::new(StatsApi::new(Arc::clone(
                &services,
            ))))
            .add_service(PublicStatsServiceServer::new(PublicStatsApi::new(
                Arc::clone(&services),
            )))
            .add_service(KnowledgeServiceServer::new(KnowledgeApi::new(Arc::clone(
                &services,
            ))));
        // Plain HTTP beside gRPC on the same port: uploads from
        // wx.uploadFile and the apps, downloads by signed link.
        let router = crate::api::files::routes(
            routes.routes().into_axum_router(),
            Arc::clone(&services),
            config.uploads.max_bytes,
        );

        let (shutdown, shutdown_signal) = oneshot::channel::<()>();
        let serve = Server::builder()
            .accept_http1(true)
            // Pings keep NAT and carrier proxies from dropping idle streams,
            // and find dead peers.
            .http2_keepalive_interval(Some(Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            // WeChat Pay's notifications are plain HTTP: served before the
            // gRPC-Web translation and the bearer-token check (the body's
            // signature authenticates them).
            .layer(crate::api::payout_notify::NotifyLayer::new(Arc::clone(
                &services,
            )))
            .layer(cors(&config.cors_origins)?)
            .layer(crate::api::web::MarkGrpcWebLayer)
            .layer(crate::api::web::GrpcWebExceptPlainHttpLayer)
            .layer(RpcLogLayer)
            .layer(ClientLayer::new(config.trusted_proxies.clone()))
            .layer(AccessLayer::new(Arc::clone(&services)))
            .add_routes(Routes::from(router))
            .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
                let _ = shutdown_signal.await;
            });
        let server = tokio::spawn(serve);

        probe(&services.store, &health).await;
        let prober = tokio::spawn(probe_forever(
            Arc::clone(&services.store),
            health.clone(),
            config.health_probe_interval,
        ));
        let supervisor = config
            .supervision_interval
            .map(|every| tokio::spawn(supervise_forever(Arc::clone(&services), every)));
        let revocation_reader = config
            .revocation_sync_interval
            .map(|every| tokio::spawn(learn_revocations_forever(Arc::clone(&services), every)));
        let sender = config
            .notification_interval
            .map(|every| tokio::spawn(send_notifications_forever(Arc::clone(&services), every)));

        let payout_reconciler = config
            .payout_reconcile_interval
            .map(|every| tokio::spawn(reconcile_payouts_forever(Arc::clone(&services), every)));

        tracing::info!(%address, engine = ?services.store.engine(), "serving gRPC and gRPC-Web");
        Ok(Application {
            address,
            services,
            health,
            shutdown: Some(shutdown),
            stopping,
            server,
            prober,
            supervisor,
            revocation_reader,
            sender,
            payout_reconciler,
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.services.store)
    }

    /// Runs one supervision tick at `now` (the loop's step, for tests and
    /// tools that drive time themselves).
    pub async fn supervise(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<crate::service::supervision::TickReport> {
        self.services.supervise(now).await
    }

    /// Runs one pass of the notification sender at `now` (the loop's
    /// step, for tests and tools that drive time themselves).
    pub async fn send_notifications(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<crate::service::notify::SendReport> {
        self.services.send_notifications(now).await
    }

    /// Reads the SMS provider's delivery reports now (the sender loop's
    /// other step); returns how many matched a sent text.
    pub async fn record_sms_deliveries(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> anyhow::Result<u32> {
        self.services.record_sms_deliveries(now).await
    }

    /// Runs one pass of the red envelope reconciliation worker now (for
    /// tests and tools that drive time themselves).
    pub async fn reconcile_payouts(
        &self,
    ) -> Result<crate::service::claims::ReconcileReport, crate::domain::DomainError> {
        self.services
            .reconcile_payouts(self.services.clock.now())
            .await
    }

    /// Purges audit records past retention now (the loop's daily step).
    pub async fn purge_audit_log(&self) -> Result<u64, crate::domain::DomainError> {
        self.services.purge_audit_log().await
    }

    /// Removes personal data past its retention now (the loop's daily step).
    pub async fn purge_personal_data(
        &self,
    ) -> Result<crate::domain::personal_data::PurgeReport, crate::domain::DomainError> {
        self.services.purge_personal_data().await
    }

    /// Purges unattached uploads past their time and retired ones now (the
    /// loop's step after each supervision tick); returns how many.
    pub async fn purge_uploads(&self) -> Result<u64, crate::domain::DomainError> {
        self.services.purge_uploads().await
    }

    /// Runs the background re-encryption once (the loop's step after each
    /// supervision tick); returns how many values changed.
    pub async fn reencrypt_stale_values(&self) -> Result<u64, crate::domain::DomainError> {
        self.services.reencrypt_stale_values().await
    }

    /// Reads the sessions revoked while their access tokens may still be
    /// valid, as the background reader does every few seconds (for tests
    /// that drive it themselves); returns how many.
    pub async fn learn_revocations(&self) -> anyhow::Result<usize> {
        let since = self.services.revocations_worth_knowing();
        self.services.learn_revocations(since).await
    }

    /// Checks the database now and updates the health service; returns
    /// whether it is reachable.
    pub async fn probe_health(&self) -> bool {
        probe(&self.services.store, &self.health).await
    }

    /// Resolves when the server task ends: after `stop`, or on a failure.
    /// Call it at most once to completion.
    pub async fn finished(&mut self) -> anyhow::Result<()> {
        let result = (&mut self.server).await;
        self.prober.abort();
        if let Some(supervisor) = &self.supervisor {
            supervisor.abort();
        }
        if let Some(reader) = &self.revocation_reader {
            reader.abort();
        }
        if let Some(sender) = &self.sender {
            sender.abort();
        }
        if let Some(reconciler) = &self.payout_reconciler {
            reconciler.abort();
        }
        result
            .context("The server task panicked")?
            .context("The server failed")
    }

    /// Stops accepting connections, ends open streams, lets unary calls
    /// finish, and returns.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stopping.send(true);
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.finished().await
    }
}

async fn build_services(
    config: &Config,
    clock: Arc<dyn Clock>,
    stopping: watch::Receiver<bool>,
    public_url: String,
) -> anyhow::Result<Services> {
    let store = store::connect(&config.database_url, config.database_max_connections).await?;
    let evidence = Evidence {
        files: crate::evidence::connect(&config.storage).await?,
        policy: config.uploads,
        public_url,
        links: LinkSigner::new(&config.keys.token_secret),
    };
    tracing::info!(storage = evidence.files.kind(), "evidence storage");
    // With Redis, limits and event fan-out are shared by every replica;
    // without it (the embedded default) they stay in this process.
    let (limits, bus): (Limits, Arc<dyn EventBus>) = match &config.redis_url {
        Some(url) => {
            let redis = RedisLimiter::connect(url, &config.redis_prefix).await?;
            (
                Limits::shared(config.rate_limits.clone(), redis, Arc::clone(&clock)),
                Arc::new(RedisBus::connect(url, &config.redis_prefix).await?),
            )
        }
        None => (
            Limits::in_process(config.rate_limits.clone(), Arc::clone(&clock)),
            Arc::new(LocalBus::new()),
        ),
    };
    tracing::info!(rate_limits = %config.rate_limits, "rate limits");
    let standard = match &config.categories_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("Failed to read {}", path.display()))?;
            CategoryStandard::from_json(&text)?
        }
        None => CategoryStandard::bundled(),
    };

    let clock_for_tokens = Arc::clone(&clock);
    let payout = payout_provider(&config.payout, Arc::clone(&clock))?;
    let services = Services {
        store,
        bus,
        limits,
        clock,
        standard: Arc::new(standard),
        service_area: config.service_area,
        cipher: PhoneCipher::new(&config.keys)?,
        signer: TokenSigner::new(config.keys.token_secret.clone(), config.access_token_ttl),
        refresh_token_ttl: config.refresh_token_ttl,
        dev_sign_in: config.dev_sign_in,
        stopping,
        reference: std::sync::RwLock::new(Arc::new(Reference::bundled())),
        supervision: config.supervision.clone(),
        duplicates: config.duplicates,
        knowledge: config.knowledge,
        streams: config.streams,
        staff_security: StaffSecurity {
            lockout: config.lockout,
            audit_retention: config.audit_retention,
            secrets: SecretCipher::new(&config.keys)?,
        },
        citizen_sign_in: CitizenSignIn::new(&config.citizen_sign_in, &config.keys.token_secret)?,
        personal_data: config.personal_data,
        evidence,
        notifier: notifier(config, clock_for_tokens).await?,
        rewards: crate::service::red_envelopes::Rewards {
            drawer: Arc::new(crate::service::amount::SecureDrawer),
            payout,
            worker_id: format!("replica-{}", crate::payout::lease_nonce()),
        },
    };
    services.load_reference().await?;
    Ok(services)
}

/// The notification sender's channels: WeChat subscribe messages with the
/// mini-program's credentials, its access token shared through Redis when
/// there is one; the staff webhooks.
async fn notifier(
    config: &Config,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<crate::service::notify::Notifier> {
    use crate::notify::token_cache::{MemoryTokenCache, RedisTokenCache, TokenCache};
    use crate::notify::wechat::SubscribeMessenger;

    let notifications = &config.notifications;
    let wechat = match &config.citizen_sign_in.wechat {
        Some(wechat) => {
            let tokens: Arc<dyn TokenCache> = match &config.redis_url {
                Some(url) => Arc::new(RedisTokenCache::connect(url, &config.redis_prefix).await?),
                None => Arc::new(MemoryTokenCache::new(clock)),
            };
            Some(SubscribeMessenger::new(
                wechat.clone(),
                tokens,
                notifications.miniprogram_state.clone(),
            )?)
        }
        None => None,
    };
    crate::service::notify::Notifier::new(notifications, wechat)
}

fn payout_provider(
    config: &crate::config::PayoutConfig,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Option<Arc<dyn crate::payout::PayoutProvider>>> {
    use crate::config::PayoutConfig;
    Ok(match config {
        PayoutConfig::None => None,
        PayoutConfig::Simulated => {
            tracing::warn!("red envelopes are paid by the simulated provider: no money moves");
            Some(Arc::new(crate::payout::simulated::SimulatedPayouts::new()))
        }
        PayoutConfig::WeChatPay(wechat_pay) => Some(Arc::new(
            crate::payout::wechat_pay::WeChatPay::new((**wechat_pay).clone(), clock)?,
        )),
    })
}

/// Browsers may call over gRPC-Web only from the configured origins.
/// Mini-programs are not browsers and need no CORS at all.
fn cors(origins: &[String]) -> anyhow::Result<CorsLayer> {
    let origins = origins
        .iter()
        .map(|origin| {
            origin
                .parse()
                .with_context(|| format!("Bad CORS origin {origin:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let header = HeaderName::from_static;
    Ok(CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            header("content-type"),
            header("authorization"),
            header("x-grpc-web"),
            header("x-user-agent"),
            header("grpc-timeout"),
            header(DEVICE_ID_HEADER),
        ])
        .expose_headers([
            header("grpc-status"),
            header("grpc-message"),
            header("grpc-status-details-bin"),
        ])
        .max_age(Duration::from_secs(86_400)))
}

async fn probe(store: &Arc<dyn Store>, health: &HealthReporter) -> bool {
    let reachable = match store.ping().await {
        Ok(()) => true,
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), "database unreachable");
            false
        }
    };
    let status = if reachable {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    for name in HEALTH_NAMES {
        health.set_service_status(*name, status).await;
    }
    reachable
}

/// Every replica runs this; marks in the store make each firing happen once.
async fn supervise_forever(services: Arc<Services>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    let mut warned_on = None;
    loop {
        ticks.tick().await;
        // Once a day is enough to remind operators of the calendar's end and
        // to purge audit records past their retention.
        let today = crate::domain::time::local_date(services.clock.now());
        if warned_on != Some(today) {
            services.warn_if_calendar_runs_out();
            if let Err(error) = services.purge_audit_log().await {
                tracing::error!(error = %format!("{error:#}"), "audit log purge failed");
            }
            if let Err(error) = services.purge_personal_data().await {
                tracing::error!(error = %format!("{error:#}"), "personal data purge failed");
            }
            warned_on = Some(today);
        }
        let refreshed = services.load_reference().await;
        let result = match refreshed {
            Ok(()) => services.supervise(services.clock.now()).await.map(|_| ()),
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            tracing::error!(error = %format!("{error:#}"), "supervision tick failed");
        }
        if let Err(error) = services.purge_uploads().await {
            tracing::error!(error = %format!("{error:#}"), "upload purge failed");
        }
        // Does nothing once every stored value is under the current key.
        if let Err(error) = services.reencrypt_stale_values().await {
            tracing::error!(error = %format!("{error:#}"), "re-encryption failed");
        }
    }
}

/// Every replica runs this; leases in the store give each notification to
/// one sender at a time.
async fn send_notifications_forever(services: Arc<Services>, every: Duration) {
    // Delivery reports trickle in; asking for them once a minute is enough.
    let report_every = (Duration::from_secs(60).as_secs() / every.as_secs().max(1)).max(1);
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for tick in 0u64.. {
        ticks.tick().await;
        let now = services.clock.now();
        if let Err(error) = services.send_notifications(now).await {
            tracing::error!(error = %format!("{error:#}"), "notification pass failed");
        }
        if tick % report_every == 0
            && let Err(error) = services.record_sms_deliveries(now).await
        {
            tracing::warn!(error = %format!("{error:#}"), "SMS delivery reports unavailable");
        }
    }
}

/// Every replica runs this; leases in the store give each open bill to one.
async fn reconcile_payouts_forever(services: Arc<Services>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    loop {
        ticks.tick().await;
        if let Err(error) = services.reconcile_payouts(services.clock.now()).await {
            tracing::error!(error = %error, "payout reconciliation failed");
        }
    }
}

async fn probe_forever(store: Arc<dyn Store>, health: HealthReporter, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        probe(&store, &health).await;
    }
}
