//! A notifier: the small second service the quick start tells about each new task, through a
//! REST client it declares with `#[rest_client]`.
//!
//! `POST /notifications` takes a notification and keeps it; it is idempotent by the
//! notification's `key`, so a caller that repeats a request (a retry after a timeout, a
//! redelivered message) delivers it once. `GET /notifications` lists what arrived, oldest
//! first. Notifications are kept in memory.

use std::sync::{Arc, Mutex};

use jararaca::http::Json;
use jararaca::{Injectable, Microservice, controller};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use ts_rs::TS;

/// A notification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, TS)]
pub struct Notification {
    /// What makes it unique: a second notification with the same key is the same one.
    pub key: String,
    /// What it says.
    pub text: String,
}

/// The notifications received, in order of arrival.
#[derive(Debug, Default)]
pub struct Inbox {
    notifications: Mutex<Vec<Notification>>,
    changed: Notify,
}

impl Inbox {
    /// What arrived so far.
    pub fn notifications(&self) -> Vec<Notification> {
        self.notifications
            .lock()
            .map(|n| n.clone())
            .unwrap_or_default()
    }

    /// Waits until a notification with `key` has arrived, and returns it.
    pub async fn wait_for(&self, key: &str) -> Notification {
        loop {
            let changed = self.changed.notified();
            if let Some(found) = self.notifications().into_iter().find(|n| n.key == key) {
                return found;
            }
            changed.await;
        }
    }

    /// Keeps `notification` unless one with its key is already kept; returns the one kept.
    fn receive(&self, notification: Notification) -> Notification {
        let Ok(mut kept) = self.notifications.lock() else {
            return notification;
        };
        let kept_one = match kept.iter().find(|n| n.key == notification.key) {
            Some(earlier) => earlier.clone(),
            None => {
                kept.push(notification.clone());
                notification
            }
        };
        drop(kept);
        self.changed.notify_waiters();
        kept_one
    }
}

/// The notifications API.
#[derive(Debug, Injectable)]
pub struct NotificationsController {
    inbox: Arc<Inbox>,
}

#[controller("/notifications")]
impl NotificationsController {
    #[post("/", summary = "Deliver a notification (idempotent by its key)")]
    async fn notify(&self, Json(notification): Json<Notification>) -> Json<Notification> {
        Json(self.inbox.receive(notification))
    }

    #[get("/", summary = "The notifications received, oldest first")]
    async fn list(&self) -> Json<Vec<Notification>> {
        Json(self.inbox.notifications())
    }
}

/// The notifier service.
pub fn service() -> Microservice {
    Microservice::new("notifier")
        .description("A notifier: the service the Jararaca quick start calls")
        .providers(|c| {
            c.value(Inbox::default())
                .injectable::<NotificationsController>()
        })
        .controller(NotificationsController::controller())
}
