//! Renewing the hub identity while the hub runs: links and sessions stay up.
//!
//! A certificate from trustd is renewed two thirds into its life ([`HubIdentity::renew_at`]): a
//! fresh key and a new certificate, the same way as at start ([`hub_identity::obtain`]). The
//! daemon then puts the new identity into use everywhere at once: new link handshakes, both
//! accepted and dialed, present it; the hub's advertisement is re-originated with its chain and
//! signed with its key; transit receipts and end-to-end handshakes use it. Links and sessions
//! already established keep the TLS session they have: their certificate was checked when they
//! came up, and QUIC does not re-authenticate.
//!
//! When trustd cannot issue (stopped, sealed, site in lockdown), the hub keeps its current
//! certificate and asks again after [`RetryBackoff`] (5 s doubling to 5 min, ±25 %), with a
//! warning each time, also after the certificate has expired: peers then refuse new links and
//! its advertisements, which the status line and the metrics say; there is nothing better to do
//! than to keep asking.
//!
//! SIGHUP (`systemctl reload hubd`) asks for a new identity at once: from trustd, or, for
//! `[certificate] source = "pem"`, by reading the PEM files again (a site that replaced them).
//! A PEM identity is never renewed on a schedule and a failed read is not retried: the files
//! stay the operator's.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use appliance::dbus::Bus;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::CertificateSource;
use crate::hub_id::HubId;
use crate::hub_identity::{self, HubIdentity};

/// How long one attempt may take (trustd signs with a TPM-held key: seconds at most).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest the task sleeps before looking at the wall clock again (it may jump, e.g.
/// after a suspend or an NTP step).
const RECHECK: Duration = Duration::from_secs(60);

/// What the renewal task reports to the daemon.
#[derive(Debug)]
pub enum RenewalEvent {
    /// A new identity, to be put into use.
    Renewed(HubIdentity),
    /// An attempt failed; the current identity stays.
    Failed {
        /// Why, as a sentence.
        error: String,
        /// When the next attempt is (`None`: none until asked, for PEM files).
        retry_in: Option<Duration>,
    },
}

/// The pause before the next attempt while attempts keep failing: 5 s doubling to 5 min, each
/// ±25 % so that the hubs of a site whose trustd was down do not all ask at the same instant.
#[derive(Debug, Clone)]
pub struct RetryBackoff(Backoff);

impl RetryBackoff {
    /// The pause after the first failure.
    pub const FIRST: Duration = Duration::from_secs(5);
    /// The longest pause.
    pub const MOST: Duration = Duration::from_secs(300);

    /// A backoff whose jitter starts from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(Backoff::new(Self::FIRST, Self::MOST, seed))
    }

    /// An attempt succeeded: the next failure starts from [`FIRST`](Self::FIRST) again.
    pub fn reset(&mut self) {
        self.0.reset();
    }

    /// An attempt failed: the pause before the next one.
    pub fn next_pause(&mut self) -> Duration {
        self.0.next_pause()
    }
}

/// The running renewal of this hub's identity.
#[derive(Debug)]
pub struct Renewal {
    asked: Arc<Notify>,
    events: mpsc::Receiver<RenewalEvent>,
}

impl Renewal {
    /// Renews the identity from `source` (for hub `own`, over `bus`) from `renew_at` on (`None`:
    /// only when asked), until `cancel`. Must be called inside a tokio runtime.
    pub fn spawn(
        source: CertificateSource,
        own: HubId,
        bus: Bus,
        renew_at: Option<SystemTime>,
        cancel: CancellationToken,
    ) -> Self {
        let asked = Arc::new(Notify::new());
        let (sender, events) = mpsc::channel(4);
        let task = Task {
            source,
            own,
            bus,
            asked: Arc::clone(&asked),
            events: sender,
            cancel,
        };
        tokio::spawn(task.run(renew_at));
        Self { asked, events }
    }

    /// Asks for a new identity now (SIGHUP), whatever the schedule says.
    pub fn renew_now(&self) {
        self.asked.notify_one();
    }

    /// The next report; `None` once the task has stopped.
    pub async fn next(&mut self) -> Option<RenewalEvent> {
        self.events.recv().await
    }
}

struct Task {
    source: CertificateSource,
    own: HubId,
    bus: Bus,
    asked: Arc<Notify>,
    events: mpsc::Sender<RenewalEvent>,
    cancel: CancellationToken,
}

impl Task {
    async fn run(self, renew_at: Option<SystemTime>) {
        let mut due = renew_at;
        let mut seed = [0u8; 8];
        // Jitter only: a fixed seed would do, a random one spreads the hubs of a site better.
        let _ = getrandom::fill(&mut seed);
        let mut backoff = RetryBackoff::new(u64::from_le_bytes(seed));
        loop {
            let wait = due.map(|at| at.duration_since(SystemTime::now()).unwrap_or_default());
            if wait != Some(Duration::ZERO) {
                let sleep = wait.map_or(RECHECK, |wait| wait.min(RECHECK));
                tokio::select! {
                    () = self.cancel.cancelled() => return,
                    () = self.asked.notified() => {}
                    () = tokio::time::sleep(sleep) => continue,
                }
            }
            let attempt = tokio::time::timeout(
                ATTEMPT_TIMEOUT,
                hub_identity::obtain(&self.source, &self.own, &self.bus),
            );
            let result = tokio::select! {
                () = self.cancel.cancelled() => return,
                result = attempt => result,
            };
            let event = match result {
                Ok(Ok(identity)) => {
                    backoff.reset();
                    due = identity.renew_at;
                    RenewalEvent::Renewed(identity)
                }
                Ok(Err(error)) => self.failed(error.to_string(), &mut backoff, &mut due),
                Err(_) => self.failed(
                    format!("trustd did not answer within {ATTEMPT_TIMEOUT:?}"),
                    &mut backoff,
                    &mut due,
                ),
            };
            if self.events.send(event).await.is_err() {
                return;
            }
        }
    }

    /// After a failed attempt: from trustd, try again after the backoff; PEM files, not until
    /// asked again.
    fn failed(
        &self,
        error: String,
        backoff: &mut RetryBackoff,
        due: &mut Option<SystemTime>,
    ) -> RenewalEvent {
        let retry_in = match self.source {
            CertificateSource::Trustd => Some(backoff.next_pause()),
            CertificateSource::Pem { .. } => None,
        };
        *due = retry_in.map(|pause| SystemTime::now() + pause);
        RenewalEvent::Failed { error, retry_in }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_from_5_s_to_5_min_with_jitter_and_resets() {
        let mut backoff = RetryBackoff::new(0x1234_5678);
        let pauses: Vec<Duration> = (0..12).map(|_| backoff.next_pause()).collect();
        let within = |pause: Duration, base: u64| {
            let base = Duration::from_secs(base);
            (base * 3 / 4..=base * 5 / 4).contains(&pause)
        };
        for (pause, base) in pauses.iter().zip([5, 10, 20, 40, 80, 160, 300, 300]) {
            assert!(within(*pause, base), "{pauses:?}");
        }
        assert!(pauses[6..].iter().all(|pause| within(*pause, 300)));
        assert!(
            pauses[6..].windows(2).any(|pair| pair[0] != pair[1]),
            "jittered: {pauses:?}"
        );
        backoff.reset();
        assert!(within(backoff.next_pause(), 5));
        let mut other = RetryBackoff::new(0x8765_4321);
        assert_ne!(
            (0..6).map(|_| other.next_pause()).collect::<Vec<_>>(),
            pauses[..6],
            "another hub's pauses differ"
        );
    }

    #[tokio::test]
    async fn from_trustd_it_asks_when_due_and_again_after_the_backoff_when_it_cannot() {
        let cancel = CancellationToken::new();
        let nowhere = Bus::Address("unix:path=/nonexistent/hubd-renewal-test".into());
        let own = crate::testing::hub("lisbon-1");
        // Not due for an hour: nothing happens.
        let mut later = Renewal::spawn(
            CertificateSource::Trustd,
            own.clone(),
            nowhere.clone(),
            Some(SystemTime::now() + Duration::from_secs(3600)),
            cancel.clone(),
        );
        let quiet = tokio::time::timeout(Duration::from_millis(300), later.next()).await;
        assert!(quiet.is_err(), "not before its time");
        // Due now: it asks at once, fails (no bus there), and will ask again after 5 s ± 25 %.
        let mut due = Renewal::spawn(
            CertificateSource::Trustd,
            own,
            nowhere,
            Some(SystemTime::now()),
            cancel.clone(),
        );
        let event = tokio::time::timeout(Duration::from_secs(5), due.next()).await;
        let Ok(Some(RenewalEvent::Failed { error, retry_in })) = event else {
            panic!("a failed attempt is reported: {event:?}");
        };
        assert!(error.contains("trustd"), "{error}");
        let retry_in = retry_in.expect("from trustd, retried");
        assert!(
            (Duration::from_millis(3750)..=Duration::from_millis(6250)).contains(&retry_in),
            "{retry_in:?}"
        );
        // Asked meanwhile (SIGHUP): at once, and the backoff goes on growing.
        due.renew_now();
        let event = tokio::time::timeout(Duration::from_secs(2), due.next()).await;
        let Ok(Some(RenewalEvent::Failed { retry_in, .. })) = event else {
            panic!("a failed attempt is reported: {event:?}");
        };
        assert!(
            (Duration::from_millis(7500)..=Duration::from_millis(12500))
                .contains(&retry_in.unwrap()),
            "{retry_in:?}"
        );
        cancel.cancel();
    }

    #[tokio::test]
    async fn a_pem_identity_is_read_again_when_asked_and_a_bad_read_is_not_retried() {
        let site = crate::testing::Site::new("lisbon");
        let dir = tempfile::TempDir::new().unwrap();
        let (chain, key) = (dir.path().join("chain.pem"), dir.path().join("key.pem"));
        let write = |hub: &crate::testing::HubCert| {
            std::fs::write(&chain, hub.chain_pem()).unwrap();
            std::fs::write(&key, hub.key_pem()).unwrap();
        };
        let first = site.hub("lisbon-1");
        write(&first);
        let cancel = CancellationToken::new();
        let source = CertificateSource::Pem {
            chain: chain.clone(),
            key: key.clone(),
        };
        let own = crate::testing::hub("lisbon-1");
        let mut renewal = Renewal::spawn(source, own, Bus::System, None, cancel.clone());
        // Nothing happens until asked.
        let quiet = tokio::time::timeout(Duration::from_millis(300), renewal.next()).await;
        assert!(
            quiet.is_err(),
            "a PEM identity is not renewed on a schedule"
        );

        let second = site.hub("lisbon-1");
        write(&second);
        renewal.renew_now();
        let Some(RenewalEvent::Renewed(identity)) = renewal.next().await else {
            panic!("the PEM files are read again");
        };
        assert_eq!(identity.identity.leaf(), second.leaf());
        assert_eq!(identity.renew_at, None);

        std::fs::write(&key, "not a key").unwrap();
        renewal.renew_now();
        let Some(RenewalEvent::Failed { error, retry_in }) = renewal.next().await else {
            panic!("a bad key fails");
        };
        assert_eq!(retry_in, None, "{error}");
        let quiet = tokio::time::timeout(Duration::from_millis(300), renewal.next()).await;
        assert!(quiet.is_err(), "not retried");
        cancel.cancel();
        assert!(
            renewal.next().await.is_none(),
            "the task stops when cancelled"
        );
    }
}
