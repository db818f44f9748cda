//! Asking a store's source to read its files now.

use tokio::sync::watch;

use super::CredentialStore;

/// Asks the source of a [`CredentialStore`] to read its files now, rather
/// than at the end of its `interval`
/// ([`CredentialStore::start_files`]): an
/// operator who has just replaced the certificate files, or the script
/// that rotated them, need not wait out the interval or guess when the new
/// certificate is in service. A sidecar asks on SIGHUP, as Prometheus
/// reloads its configuration and nginx its certificates on that signal.
///
/// What an ask reads is judged by the rules of a read at the interval
/// ([`CredentialStore::watch_files`]), with one difference: whoever asked
/// has written the files, so the files are read twice at once, and a set
/// refused (or files unreadable) at both reads is refused then, not an
/// interval later. A refusal is logged naming the file at fault and
/// counted in `identity_cert_rejected_updates_total`, and the credentials
/// in service stay. Asked again with files that stand refused, the source
/// judges them again, so that whoever asked sees the mistake in the log
/// once more (and the refusal is counted once more). Each ask ends with one
/// line logged that says what it came to: the files reloaded, unchanged,
/// refused, unreadable, or changing between the two reads (read again at
/// the next interval). The next read at the interval comes a whole
/// interval after the ask.
///
/// Why a handle taken from the store, rather than from the task
/// [`CredentialStore::start_files`] returns: the task is a future that is
/// spawned and owned by a runtime, while the store is what every part of
/// a program already holds; and the handle only asks, so the code that
/// handles a signal gets no way to put credentials in service. Each store
/// has its own channel of asks, and every source started on it reads each
/// ask; there is nothing process-wide. Asks that come while a read is under
/// way are one more read after it.
///
/// A [`CredentialSource::Ca`] reads the asks
/// too: the directory is read at once, and when it holds another CA than
/// the one that issued the certificate in service (an issuer replaced),
/// that CA issues a certificate, put in service, from which the renewals
/// go on. A directory unchanged issues nothing, since a new certificate
/// is a renewal every peer sees at its next handshake; one refused is logged and
/// counted as at a renewal (again for each ask), and the CA loaded before
/// goes on issuing.
///
#[cfg_attr(
    feature = "ca",
    doc = "[`CredentialSource::Ca`]: super::CredentialSource::Ca"
)]
#[cfg_attr(not(feature = "ca"), doc = "[`CredentialSource::Ca`]: crate#features")]
#[derive(Clone, Debug)]
pub struct ReloadHandle {
    asks: watch::Sender<()>,
}

impl ReloadHandle {
    /// Asks for a read now. Returns whether a source of the store reads
    /// asks: false when none is started (or its task has ended), and
    /// nothing is read.
    pub fn ask(&self) -> bool {
        self.asks.send_replace(());
        self.is_watched()
    }

    /// Whether a source of the store reads asks: whether
    /// [`ask`](Self::ask) reads anything.
    pub fn is_watched(&self) -> bool {
        self.asks.receiver_count() > 0
    }
}

impl CredentialStore {
    /// A handle that asks the store's source to read its files now. See
    /// [`ReloadHandle`].
    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle {
            asks: self.shared.asks.clone(),
        }
    }

    /// The asks of [`ReloadHandle`]s, for a source about to start: asks
    /// made from now on are seen.
    pub(super) fn asks(&self) -> watch::Receiver<()> {
        self.shared.asks.subscribe()
    }
}
