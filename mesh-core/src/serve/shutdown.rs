//! Shutting down on a signal shared by every server, across runtimes.

use std::sync::Arc;

use tokio::sync::watch;

/// The sending half of a shutdown: trigger it once, and every [`Shutdown`]
/// cloned from it resolves. Clones fire the same shutdown.
#[derive(Clone, Debug)]
pub struct ShutdownTrigger {
    tx: Arc<watch::Sender<bool>>,
}

/// Resolves when its [`ShutdownTrigger`] fires or every clone of it is
/// dropped. Cheap to clone;
/// works across runtimes.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// A new trigger and the signal it fires.
///
/// Dropping every clone of the trigger fires the signal too, so that an
/// owner that goes away cannot leave a server serving for the rest of the
/// process: keep the trigger for as long as the server is to serve.
/// `let (_, shutdown) = channel()` drops it at once, and a server given
/// that signal stops as soon as it starts; it logs a warning saying so.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger { tx: Arc::new(tx) }, Shutdown { rx })
}

impl ShutdownTrigger {
    /// Fires the shutdown. Later calls do nothing.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Whether the shutdown has fired: a reader that answers for the
    /// process (the admin server's `/ready`) asks it on each request,
    /// without waiting on a signal of its own.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Another signal fired by this trigger.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }
}

impl Shutdown {
    /// Waits until the shutdown fires.
    pub async fn wait(mut self) {
        // An error means the trigger is gone, which also means shut down.
        let _ = self.rx.wait_for(|fired| *fired).await;
    }

    /// Whether the shutdown has fired: its trigger fired, or every clone
    /// of the trigger is gone, as for [`wait`](Self::wait).
    pub fn is_triggered(&self) -> bool {
        // `has_changed` fails once the sender is gone.
        *self.rx.borrow() || self.rx.has_changed().is_err()
    }

    /// Whether every clone of the trigger is gone without one having
    /// fired: usually a trigger its owner forgot to keep, which a server
    /// names when it stops for it.
    pub(crate) fn was_abandoned(&self) -> bool {
        !*self.rx.borrow() && self.rx.has_changed().is_err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_shutdown_whose_triggers_are_all_gone_has_fired() {
        let (trigger, shutdown) = channel();
        let other = trigger.clone();
        drop(trigger);
        assert!(!shutdown.is_triggered(), "a clone still holds it");
        drop(other);
        // `wait` resolves now, and what it says, `is_triggered` says too.
        assert!(shutdown.is_triggered());
        assert!(shutdown.was_abandoned());
        shutdown.wait().await;
    }

    #[test]
    fn a_shutdown_fired_before_its_triggers_went_is_not_abandoned() {
        let (trigger, shutdown) = channel();
        assert!(!shutdown.was_abandoned());
        trigger.trigger();
        drop(trigger);
        assert!(shutdown.is_triggered());
        assert!(!shutdown.was_abandoned());
    }

    #[tokio::test]
    async fn a_trigger_fires_every_signal() {
        let (trigger, shutdown) = channel();
        let subscribed = trigger.subscribe();
        assert!(!shutdown.is_triggered() && !subscribed.is_triggered());
        assert!(!trigger.is_triggered());
        trigger.clone().trigger();
        assert!(shutdown.is_triggered() && subscribed.is_triggered());
        assert!(trigger.is_triggered(), "a clone fired it");
        shutdown.wait().await;
        subscribed.wait().await;
    }
}
