//! The simulated provider of the embedded server: it pays nobody. Each
//! transfer is recorded in memory and logged, and counts as confirmed as
//! soon as it is created, so that the whole claim can be tried locally.
//! Configuration refuses it beside PostgreSQL.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    BillStatus, Notification, NotificationError, PayoutError, PayoutProvider, ProviderState,
    SignedHeaders, TransferRequest,
};

#[derive(Debug, Default)]
pub struct SimulatedPayouts {
    bills: Mutex<HashMap<String, BillStatus>>,
}

impl SimulatedPayouts {
    pub fn new() -> SimulatedPayouts {
        SimulatedPayouts::default()
    }
}

#[async_trait]
impl PayoutProvider for SimulatedPayouts {
    fn name(&self) -> &'static str {
        "simulated"
    }

    fn longest_call(&self) -> std::time::Duration {
        std::time::Duration::from_millis(100)
    }

    fn merchant_id(&self) -> &str {
        "simulated"
    }

    fn app_id(&self) -> &str {
        "simulated"
    }

    async fn create_transfer(&self, request: &TransferRequest) -> Result<BillStatus, PayoutError> {
        let mut bills = self.bills.lock().unwrap_or_else(|p| p.into_inner());
        let bill = bills.entry(request.out_bill_no.clone()).or_insert_with(|| {
            tracing::info!(
                payout.out_bill_no = %request.out_bill_no,
                payout.amount_fen = request.amount_fen,
                "simulated transfer recorded; no money moves"
            );
            BillStatus {
                out_bill_no: request.out_bill_no.clone(),
                state: ProviderState::Success,
                transfer_bill_no: Some(format!("SIM{}", request.out_bill_no)),
                package_info: Some(format!("simulated:{}", request.out_bill_no)),
                fail_reason: None,
            }
        });
        Ok(bill.clone())
    }

    async fn query_transfer(&self, out_bill_no: &str) -> Result<BillStatus, PayoutError> {
        let bills = self.bills.lock().unwrap_or_else(|p| p.into_inner());
        let bill = bills.get(out_bill_no).ok_or(PayoutError::NotFound)?;
        Ok(BillStatus {
            package_info: None,
            ..bill.clone()
        })
    }

    async fn cancel_transfer(&self, out_bill_no: &str) -> Result<BillStatus, PayoutError> {
        // Simulated bills are confirmed at once: there is nothing to cancel.
        self.query_transfer(out_bill_no).await
    }

    fn open_notification(
        &self,
        _headers: &SignedHeaders,
        _body: &[u8],
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Notification, NotificationError> {
        Err(NotificationError::Malformed(
            "the simulated provider sends no notifications".to_owned(),
        ))
    }
}
