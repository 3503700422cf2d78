//! Captures everything the services log during the test run, at debug level for Doorward's
//! own crates, so that tests can assert that no secret value was ever logged (SEC-SL-03)
//! and that audit events were emitted (SEC-SL-05).

use std::io::Write;
use std::sync::{Mutex, Once};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

static CAPTURED: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static INIT: Once = Once::new();

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match CAPTURED.lock() {
            Ok(mut captured) => captured.extend_from_slice(buf),
            Err(poisoned) => poisoned.into_inner().extend_from_slice(buf),
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        Capture
    }
}

/// Installs the capturing subscriber once per test binary.
pub fn init() {
    INIT.call_once(|| {
        let filter = EnvFilter::new(
            "info,token_service=trace,auth_web=trace,doorward_shared=trace,audit=trace,actix_web=debug,doorward_example_resource_server=trace",
        );
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(Capture)
            .try_init();
    });
}

/// Everything logged so far.
pub fn captured() -> String {
    match CAPTURED.lock() {
        Ok(captured) => String::from_utf8_lossy(&captured).into_owned(),
        Err(poisoned) => String::from_utf8_lossy(&poisoned.into_inner()).into_owned(),
    }
}
