//! Paying red envelopes: the citizen's claim, the reconciliation worker
//! and the provider's notifications.
//!
//! Each transfer attempt is a bill whose merchant number comes from the
//! envelope and the attempt, recorded before it is sent. A bill whose
//! outcome is unknown (a timeout, a crash) is asked about by that number
//! before anything else, and sent again under the same number if the
//! provider never saw it, so it can never become two transfers. A new
//! attempt is only made once the provider says the old bill is closed.
//! Whoever drives a bill (a claim or a worker pass, on any replica) holds
//! its lease in the store.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use super::Services;
use crate::domain::account::Principal;
use crate::domain::error::DomainError;
use crate::domain::red_envelope::{Bill, BillState, Envelope, EnvelopeState};
use crate::payout::{
    BillStatus, NotificationError, PayoutError, PayoutProvider, ProviderState, SignedHeaders,
    TransferRequest,
};
use crate::store::rewards::{BillUpdate, ClaimStart, Settlement};

/// A bill is reconciled by the worker once nobody touched it for this long.
const IDLE_BEFORE_RECONCILING: Duration = Duration::seconds(30);
const BILLS_PER_PASS: u32 = 100;

/// What the mini-program needs to confirm a transfer.
#[derive(Debug, Clone)]
pub struct Claim {
    pub envelope: Envelope,
    /// `None` when the envelope is already paid.
    pub package_info: Option<String>,
    pub mch_id: String,
    pub app_id: String,
}

/// Where driving a bill one step left it.
enum Step {
    /// Waiting for the citizen, with the package to confirm.
    Confirm(String),
    Paid,
    /// Closed unpaid: the envelope may be claimed with a new attempt.
    Closed,
    /// In flight or being cancelled: ask again shortly.
    Pending,
}

/// What one pass of the reconciliation worker did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Envelopes nobody claimed in time, their money back in the budget.
    pub expired: u64,
    pub paid: u64,
    pub closed: u64,
    /// Bills whose provider could not be asked this time.
    pub unreachable: u64,
}

/// Why a notification was refused; the endpoint answers 401 or 400.
#[derive(Debug, thiserror::Error)]
pub enum NotificationRejected {
    #[error(transparent)]
    Invalid(#[from] NotificationError),
    #[error("notifications are not accepted: no payout provider")]
    NoProvider,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Envelope ids are decimal; anything else names no envelope.
pub fn parse_envelope_id(text: &str) -> Result<i64, DomainError> {
    match text.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(DomainError::NotFound("red envelope")),
    }
}

fn payout_error(error: PayoutError) -> DomainError {
    match error {
        PayoutError::RateLimited { retry_after } => DomainError::RateLimited { retry_after },
        PayoutError::Unknown(error) => {
            tracing::warn!(error = %format!("{error:#}"), "transfer outcome unknown");
            DomainError::Unavailable(
                "WeChat Pay did not answer in time; claim again shortly".to_owned(),
            )
        }
        PayoutError::Refused { code, .. } => {
            tracing::warn!(payout.code = %code, "WeChat Pay refused a request");
            DomainError::Unavailable(format!("WeChat Pay refused the transfer ({code})"))
        }
        PayoutError::NotFound => DomainError::Unavailable("the transfer was not found".to_owned()),
    }
}

impl Services {
    fn payout(&self) -> Result<Arc<dyn PayoutProvider>, DomainError> {
        self.rewards.payout.clone().ok_or_else(|| {
            DomainError::Unavailable("red envelopes cannot be paid out on this server".to_owned())
        })
    }

    /// The openid an envelope of this citizen is paid to.
    async fn payee(
        &self,
        provider: &dyn PayoutProvider,
        citizen: crate::domain::account::AccountId,
    ) -> Result<String, DomainError> {
        if provider.name() == "simulated" {
            return Ok(format!("simulated-{citizen}"));
        }
        self.payout_openid(citizen).await?.ok_or_else(|| {
            DomainError::Refused(crate::domain::error::Refusal::new(
                "WECHAT_NOT_LINKED",
                "red envelopes are paid to WeChat: link WeChat or claim it in the mini-program",
            ))
        })
    }

    /// Starts or resumes the transfer of a citizen's envelope and returns
    /// the package to confirm.
    pub async fn claim_red_envelope(
        &self,
        citizen: &Principal,
        id: i64,
    ) -> Result<Claim, DomainError> {
        let provider = self.payout()?;
        let own = self.store.envelope(id).await?;
        if own.is_none_or(|envelope| envelope.citizen_id != citizen.account_id) {
            return Err(DomainError::NotFound("red envelope"));
        }
        let openid = self.payee(provider.as_ref(), citizen.account_id).await?;

        // A closed attempt makes way for the next, at most twice per call.
        for _ in 0..3 {
            let now = self.clock.now();
            let start = self
                .store
                .open_claim(id, citizen.account_id, now)
                .await?
                .ok_or(DomainError::NotFound("red envelope"))?;
            let (envelope, bill) = match start {
                ClaimStart::Settled(envelope) => return self.settled_claim(&*provider, envelope),
                ClaimStart::Open { envelope, bill } => (envelope, bill),
            };
            let step = self
                .with_lease(&*provider, &bill, || {
                    self.drive(&*provider, &envelope, &bill, &openid, true)
                })
                .await??;
            match step {
                Step::Confirm(package) => {
                    let envelope = self.store.envelope(id).await?.unwrap_or(envelope);
                    return Ok(Claim {
                        envelope,
                        package_info: Some(package),
                        mch_id: provider.merchant_id().to_owned(),
                        app_id: provider.app_id().to_owned(),
                    });
                }
                Step::Paid => {
                    let envelope = self.store.envelope(id).await?.unwrap_or(envelope);
                    return self.settled_claim(&*provider, envelope);
                }
                Step::Closed => continue,
                Step::Pending => break,
            }
        }
        Err(DomainError::Unavailable(
            "the transfer is being processed; claim again in a moment".to_owned(),
        ))
    }

    fn settled_claim(
        &self,
        provider: &dyn PayoutProvider,
        envelope: Envelope,
    ) -> Result<Claim, DomainError> {
        if envelope.state != EnvelopeState::Paid {
            return Err(DomainError::FailedPrecondition(format!(
                "this red envelope cannot be claimed: it is {}",
                envelope.state.as_str()
            )));
        }
        Ok(Claim {
            envelope,
            package_info: None,
            mch_id: provider.merchant_id().to_owned(),
            app_id: provider.app_id().to_owned(),
        })
    }

    /// How long a claim or a worker holds a bill: longer than the two
    /// provider calls it makes at most. A holder that dies keeps others off
    /// the bill until then.
    fn lease_length(provider: &dyn PayoutProvider) -> Duration {
        let longest = Duration::from_std(provider.longest_call()).unwrap_or(Duration::MAX);
        longest * 2 + Duration::seconds(1)
    }

    /// Runs `work` while holding the bill's lease; a bill another claim or
    /// worker holds is refused rather than driven twice at once.
    async fn with_lease<T, F, Fut>(
        &self,
        provider: &dyn PayoutProvider,
        bill: &Bill,
        work: F,
    ) -> Result<T, DomainError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let owner = format!(
            "{}:{}",
            self.rewards.worker_id,
            crate::payout::lease_nonce()
        );
        let now = self.clock.now();
        let leased = self
            .store
            .lease_bill(
                &bill.out_bill_no,
                &owner,
                now,
                now + Self::lease_length(provider),
            )
            .await?;
        if !leased {
            return Err(DomainError::Unavailable(
                "the transfer is being processed; claim again in a moment".to_owned(),
            ));
        }
        let result = work().await;
        self.store.release_bill(&bill.out_bill_no, &owner).await?;
        Ok(result)
    }

    /// Moves one bill forward: finds out where it stands at the provider,
    /// sends it (again, under the same number) if the provider never saw
    /// it, and records what it learnt.
    async fn drive(
        &self,
        provider: &dyn PayoutProvider,
        envelope: &Envelope,
        bill: &Bill,
        openid: &str,
        claiming: bool,
    ) -> Result<Step, DomainError> {
        let request = TransferRequest {
            out_bill_no: bill.out_bill_no.clone(),
            openid: openid.to_owned(),
            amount_fen: envelope.amount_fen,
            remark: crate::payout::remark_for(envelope.complaint_id.0),
        };
        let status = match bill.state {
            BillState::Creating => match provider.query_transfer(&bill.out_bill_no).await {
                Err(PayoutError::NotFound) => provider.create_transfer(&request).await,
                other => other,
            },
            BillState::Waiting | BillState::Cancelling => {
                provider.query_transfer(&bill.out_bill_no).await
            }
            BillState::Success => return Ok(Step::Paid),
            BillState::Closed => return Ok(Step::Closed),
        };
        let status = match status {
            Err(PayoutError::Refused { code, message }) if bill.state == BillState::Creating => {
                // Refused outright: nothing was created under this number.
                tracing::warn!(payout.code = %code, payout.message = %message, "transfer refused");
                let reason = format!("refused: {code}");
                self.settle(&bill.out_bill_no, Settlement::Closed { reason })
                    .await?;
                return Ok(Step::Closed);
            }
            other => other.map_err(payout_error)?,
        };
        self.apply(provider, bill, status, claiming).await
    }

    async fn apply(
        &self,
        provider: &dyn PayoutProvider,
        bill: &Bill,
        status: BillStatus,
        claiming: bool,
    ) -> Result<Step, DomainError> {
        let now = self.clock.now();
        match status.state {
            ProviderState::Success => {
                self.settle(&bill.out_bill_no, Settlement::Paid).await?;
                Ok(Step::Paid)
            }
            ProviderState::Closed => {
                let reason = status.fail_reason.unwrap_or_else(|| "closed".to_owned());
                self.settle(&bill.out_bill_no, Settlement::Closed { reason })
                    .await?;
                Ok(Step::Closed)
            }
            ProviderState::Cancelling => {
                self.record(&bill.out_bill_no, BillState::Cancelling, &status, now)
                    .await?;
                Ok(Step::Pending)
            }
            ProviderState::InFlight => {
                self.record(&bill.out_bill_no, BillState::Waiting, &status, now)
                    .await?;
                Ok(Step::Pending)
            }
            ProviderState::WaitingForConfirmation => {
                self.record(&bill.out_bill_no, BillState::Waiting, &status, now)
                    .await?;
                let package = status.package_info.or_else(|| bill.package_info.clone());
                match package {
                    Some(package) => Ok(Step::Confirm(package)),
                    // The package was lost (the answer never arrived): the
                    // bill cannot be confirmed, so it is cancelled and,
                    // once closed, re-issued as the next attempt.
                    None if claiming => self.cancel(provider, bill).await,
                    None => Ok(Step::Pending),
                }
            }
        }
    }

    async fn cancel(
        &self,
        provider: &dyn PayoutProvider,
        bill: &Bill,
    ) -> Result<Step, DomainError> {
        tracing::info!(payout.out_bill_no = %bill.out_bill_no, "cancelling a bill to re-issue it");
        let status = provider
            .cancel_transfer(&bill.out_bill_no)
            .await
            .map_err(payout_error)?;
        let cancelling = Bill {
            state: BillState::Cancelling,
            ..bill.clone()
        };
        match status.state {
            // Never ask to cancel again from inside apply: a bill that is
            // still waiting after a cancel request is left pending.
            ProviderState::WaitingForConfirmation => {
                let now = self.clock.now();
                self.record(&bill.out_bill_no, BillState::Cancelling, &status, now)
                    .await?;
                Ok(Step::Pending)
            }
            _ => Box::pin(self.apply(provider, &cancelling, status, false)).await,
        }
    }

    async fn record(
        &self,
        out_bill_no: &str,
        state: BillState,
        status: &BillStatus,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        let update = BillUpdate {
            state,
            transfer_bill_no: status.transfer_bill_no.clone(),
            package_info: status.package_info.clone(),
        };
        self.store.update_bill(out_bill_no, &update, now).await?;
        Ok(())
    }

    async fn settle(&self, out_bill_no: &str, settlement: Settlement) -> Result<(), DomainError> {
        let now = self.clock.now();
        let envelope = self
            .store
            .settle_bill(out_bill_no, &settlement, now)
            .await?;
        if let Some(envelope) = envelope {
            tracing::info!(
                payout.out_bill_no = %out_bill_no,
                reward.envelope_id = envelope.id,
                reward.state = envelope.state.as_str(),
                "bill settled"
            );
        }
        Ok(())
    }

    /// One pass of the reconciliation worker: expires unclaimed envelopes
    /// and asks the provider about every open bill nobody is driving.
    pub async fn reconcile_payouts(
        &self,
        now: DateTime<Utc>,
    ) -> Result<ReconcileReport, DomainError> {
        let mut report = ReconcileReport {
            expired: self.expire_unclaimed_envelopes(now).await?,
            ..ReconcileReport::default()
        };
        let Some(provider) = self.rewards.payout.clone() else {
            return Ok(report);
        };
        let owner = format!(
            "{}:{}",
            self.rewards.worker_id,
            crate::payout::lease_nonce()
        );
        let bills = self
            .store
            .lease_open_bills(
                &owner,
                now,
                now + Self::lease_length(&*provider),
                now - IDLE_BEFORE_RECONCILING,
                BILLS_PER_PASS,
            )
            .await?;
        for bill in bills {
            let step = self.reconcile_bill(&*provider, &bill).await;
            self.store.release_bill(&bill.out_bill_no, &owner).await?;
            match step {
                Ok(Step::Paid) => report.paid += 1,
                Ok(Step::Closed) => report.closed += 1,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(payout.out_bill_no = %bill.out_bill_no, error = %error, "reconciliation failed");
                    report.unreachable += 1;
                }
            }
        }
        Ok(report)
    }

    async fn reconcile_bill(
        &self,
        provider: &dyn PayoutProvider,
        bill: &Bill,
    ) -> Result<Step, DomainError> {
        let envelope = self
            .store
            .envelope(bill.envelope_id)
            .await?
            .ok_or(DomainError::NotFound("red envelope"))?;
        let openid = self.payee(provider, envelope.citizen_id).await?;
        let step = self
            .drive(provider, &envelope, bill, &openid, false)
            .await?;
        // A bill still waiting when the claim window has closed is
        // cancelled, so that the money can go back to the budget.
        if matches!(step, Step::Pending | Step::Confirm(_))
            && envelope.claim_until <= self.clock.now()
            && let Some(bill) = self.store.bill(&bill.out_bill_no).await?
            && bill.state == BillState::Waiting
        {
            return self.cancel(provider, &bill).await;
        }
        Ok(step)
    }

    /// Applies a notification the provider posted, once verified; a
    /// notification seen before changes nothing.
    pub async fn accept_payout_notification(
        &self,
        headers: &SignedHeaders,
        body: &[u8],
    ) -> Result<(), NotificationRejected> {
        let provider = self
            .rewards
            .payout
            .clone()
            .ok_or(NotificationRejected::NoProvider)?;
        let now = self.clock.now();
        let notification = provider.open_notification(headers, body, now)?;
        let Some(bill) = self.store.bill(&notification.bill.out_bill_no).await? else {
            tracing::warn!(payout.out_bill_no = %notification.bill.out_bill_no, "notification for an unknown bill");
            return Ok(());
        };
        if !bill.state.is_open() {
            return Ok(());
        }
        self.apply(&*provider, &bill, notification.bill, false)
            .await
            .map_err(|error| anyhow::anyhow!("Failed to apply a notification: {error}"))?;
        self.store
            .record_notification(&notification.id, now)
            .await?;
        Ok(())
    }
}
