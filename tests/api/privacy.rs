//! Personal data and secrets never reach the logs.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use huying::proto::v1 as pb;

use crate::helpers::{Engine, TestApp, filing};

/// Everything this test binary logs, captured from the moment the first
/// test that needs it runs.
pub(crate) fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&buffer);
        tracing_subscriber::fmt()
            // Our own code at every level; libraries at the production default.
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,huying=trace"))
            .with_writer(move || CaptureWriter(Arc::clone(&writer)))
            .with_ansi(false)
            .init();
        buffer
    })
    .clone()
}

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn phones_texts_and_tokens_stay_out_of_the_logs() {
    let logs = captured_logs();
    let app = TestApp::spawn(Engine::Sqlite).await;
    let session = app
        .sign_in("privacy-subject", pb::Role::Citizen, "")
        .await
        .session
        .unwrap();
    let mut citizen = app.citizen_with_token(&session.access_token).await;

    let mut request = filing("req-privacy-01");
    request.contact_phone = "13987654321".to_owned();
    request.text = "隐私测试：楼下的井盖丢失了，非常危险。".to_owned();
    citizen.file_complaint(request.clone()).await.unwrap();
    request.request_id = "req-privacy-02".to_owned();
    request.contact_phone = "1398765432x".to_owned();
    citizen.file_complaint(request).await.unwrap_err();

    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("complaint filed"),
        "the capture works: {logs}"
    );
    assert!(logs.contains("rpc.method"), "requests are logged: {logs}");
    for secret in [
        "13987654321",
        "87654321",
        "1398765432x",
        "井盖丢失",
        session.access_token.as_str(),
        session.refresh_token.as_str(),
    ] {
        assert!(!logs.contains(secret), "{secret} reached the logs");
    }
}
