//! Desktop notifications for mentions and private messages. The real one talks to the desktop's
//! notification service over D-Bus (`notify-rust`, pure Rust, no system library) on a short-lived
//! thread, so a missing or slow service never stalls a frame; tests record instead.

use std::sync::Arc;

use parking_lot::Mutex;

pub trait Notifier {
    fn notify(&self, title: &str, body: &str);
}

/// Notifications through the desktop's notification service; failures are logged at debug
/// (a desktop without one is common and not an error worth showing).
pub struct Desktop;

impl Notifier for Desktop {
    fn notify(&self, title: &str, body: &str) {
        let title = title.to_string();
        let body = body.to_string();
        let spawned = std::thread::Builder::new()
            .name("notification".into())
            .spawn(move || {
                if let Err(error) = notify_rust::Notification::new()
                    .appname("Parley")
                    .summary(&title)
                    .body(&body)
                    .show()
                {
                    tracing::debug!(%error, "desktop notification not shown");
                }
            });
        if let Err(error) = spawned {
            tracing::debug!(%error, "cannot start the notification thread");
        }
    }
}

/// Keeps every notification, for tests.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Vec<(String, String)>>>);

impl Notifier for Recorder {
    fn notify(&self, title: &str, body: &str) {
        self.0.lock().push((title.to_string(), body.to_string()));
    }
}
