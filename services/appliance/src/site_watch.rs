//! Following the site's state: what `sited` publishes on `org.bunkeros.Site1`, as one value that
//! trustd, hubd, minerd and updated each act on.
//!
//! [`SiteWatch::start`] connects to the bus, reads `State`, `StateReason` and the budget
//! (`PowerBudgetWatts`, `ThermalHeadroomCelsius`), and keeps a
//! [`tokio::sync::watch`] channel current with an `Option<SiteReport>`: `None` while no sited is
//! on the bus (or the bus itself is gone), the latest report otherwise. What it follows:
//!
//! - **sited's answers.** The properties are read (one `GetAll`, so state and reason belong
//!   together) at the start and whenever `org.bunkeros.Site1` gets a new owner, so a restarted
//!   sited is read afresh; when the name loses its owner the report becomes `None`.
//! - **Every `StateChanged` signal from the current owner.** zbus's signal stream for a
//!   well-known name tracks the name's owner (`NameOwnerChanged`, in the order messages arrive)
//!   and passes only signals whose sender is that owner, so another connection that sends a
//!   signal with the same interface and member, broadcast or addressed to us, is not heard.
//! - **Order.** A signal that arrived before the latest read (or before sited left) says less
//!   than that read, so it is skipped: each message's receive position on this connection is
//!   compared with the read's reply.
//! - **Every `BudgetChanged` signal** likewise, replacing the budget and keeping the state.
//! - **Nonsense.** A state word that is not one of the four ([`SiteState`]), or a budget that is
//!   not a finite non-negative number of watts ([`SiteBudget::new`]), is logged and ignored: the
//!   published report stays what it was. It never reads as `normal` or as "no limit".
//! - **The bus going away.** The report becomes `None` and the watch reconnects, waiting
//!   [`RECONNECT_FIRST`] and then twice as long each time up to [`RECONNECT_MAX`].
//!
//! The watch runs until every receiver of its channel (including the [`SiteWatch`]) is dropped.
//! What a report means is each service's own decision; this module only reports.

use std::collections::HashMap;
use std::future::{pending, poll_fn};
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use zbus::Connection;
use zbus::export::futures_core::Stream;
use zbus::fdo::{DBusProxy, NameOwnerChanged, NameOwnerChangedStream};
use zbus::message::Sequence;
use zbus::proxy::CacheProperties;
use zbus::zvariant::OwnedValue;

use crate::dbus::contracts::{
    BudgetChanged, BudgetChangedStream, InvalidSiteBudget, SITE, Site1Proxy, SiteBudget, SiteState,
    StateChanged, StateChangedStream, UnknownSiteState,
};
use crate::dbus::{Bus, BusError, connect};

/// How long the first reconnection waits after the bus went away.
pub const RECONNECT_FIRST: Duration = Duration::from_millis(500);
/// The longest wait between reconnection attempts.
pub const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// How long sited may take to answer `GetAll`; a sited that owns the name but does not answer
/// (or whose bus policy does not let this service read it) is asked again after
/// [`REREAD_FIRST`], then twice as long each time up to [`REREAD_MAX`], while its signals keep
/// being applied.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The first wait before asking a sited that did not answer again.
pub const REREAD_FIRST: Duration = Duration::from_secs(2);
/// The longest wait between questions to a sited that does not answer.
pub const REREAD_MAX: Duration = Duration::from_secs(60);

/// Errors that mean "sited is not there" rather than "sited did not answer".
const NO_OWNER_ERRORS: [&str; 2] = [
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
];

/// The site's state as sited last reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteReport {
    /// `normal`, `warning`, `critical` or `lockdown`.
    pub state: SiteState,
    /// sited's sentence for the operator; empty when the site is normal.
    pub reason: String,
    /// What the site can afford; `None` from a sited that does not publish a budget.
    pub budget: Option<SiteBudget>,
}

impl std::fmt::Display for SiteReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{}", self.state)?;
        } else {
            write!(f, "{} ({})", self.state, self.reason)?;
        }
        match &self.budget {
            Some(budget) => write!(f, ", {budget}"),
            None => Ok(()),
        }
    }
}

/// Why the watch could not start.
#[derive(Debug, thiserror::Error)]
pub enum SiteWatchError {
    /// No connection to the bus.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// Connected, but the bus refused the subscriptions or the connection broke at once.
    #[error("cannot follow org.bunkeros.Site1 on the bus")]
    Follow(#[source] zbus::Error),
}

/// A running watch of the site's state; see the module documentation.
#[derive(Debug, Clone)]
pub struct SiteWatch {
    reports: watch::Receiver<Option<SiteReport>>,
}

impl SiteWatch {
    /// Connects to `bus`, reads sited's state once (so [`latest`](Self::latest) is current when
    /// this returns), and follows it from then on in a task of its own.
    pub async fn start(bus: Bus) -> Result<Self, SiteWatchError> {
        let (sender, reports) = watch::channel(None);
        let session = Session::open(&bus).await?;
        let mut session = session;
        if let Err(lost) = session.read(&sender).await {
            return Err(SiteWatchError::Follow(lost.0));
        }
        tokio::spawn(follow(bus, session, sender));
        Ok(Self { reports })
    }

    /// A receiver of every report from now on (`None`: no sited on the bus).
    pub fn reports(&self) -> watch::Receiver<Option<SiteReport>> {
        self.reports.clone()
    }

    /// The report now.
    pub fn latest(&self) -> Option<SiteReport> {
        self.reports.borrow().clone()
    }
}

/// The bus connection is gone (or broke mid-call).
#[derive(Debug)]
struct Lost(zbus::Error);

/// Follows sited until nobody listens, reconnecting whenever the bus goes away.
async fn follow(bus: Bus, mut session: Session, sender: watch::Sender<Option<SiteReport>>) {
    loop {
        let Some(lost) = session.follow(&sender).await else {
            return;
        };
        tracing::warn!(error = %lost.0, "lost the bus while following sited; the site's state is unknown until it is back");
        publish(&sender, None);
        let mut wait = RECONNECT_FIRST;
        session = loop {
            tokio::select! {
                () = sender.closed() => return,
                () = tokio::time::sleep(wait) => {}
            }
            match Session::open(&bus).await {
                Ok(mut session) => match session.read(&sender).await {
                    Ok(()) => {
                        tracing::info!("following sited on the bus again");
                        break session;
                    }
                    Err(lost) => tracing::debug!(error = %lost.0, "the bus broke again at once"),
                },
                Err(error) => tracing::debug!(%error, "the bus is not back yet"),
            }
            wait = (wait * 2).min(RECONNECT_MAX);
        };
    }
}

/// One connection's view of sited.
struct Session {
    connection: Connection,
    changes: StateChangedStream,
    budgets: BudgetChangedStream,
    owners: NameOwnerChangedStream,
    /// Receive position of the latest message that settled the report (a `GetAll` reply, or
    /// sited leaving): signals received before it are older news and are skipped.
    settled_at: Option<Sequence>,
    /// When to ask a sited that did not answer again.
    reread_at: Option<Instant>,
    /// How many reads in a row sited left unanswered (only the first is a warning).
    unanswered: u32,
    /// The budget sited last published, kept apart from the report: a budget heard while the
    /// state is unreadable still belongs to the next report.
    budget: Option<SiteBudget>,
}

impl Session {
    /// Connects and subscribes; subscriptions come first so that nothing between the read and
    /// the first signal is missed.
    async fn open(bus: &Bus) -> Result<Self, SiteWatchError> {
        let connection = connect(bus).await?;
        let site = Site1Proxy::builder(&connection)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(SiteWatchError::Follow)?;
        let changes = site
            .receive_state_changed()
            .await
            .map_err(SiteWatchError::Follow)?;
        let budgets = site
            .receive_budget_changed()
            .await
            .map_err(SiteWatchError::Follow)?;
        let owners = DBusProxy::builder(&connection)
            .cache_properties(CacheProperties::No)
            .build()
            .await
            .map_err(SiteWatchError::Follow)?
            .receive_name_owner_changed_with_args(&[(0, SITE.bus_name)])
            .await
            .map_err(SiteWatchError::Follow)?;
        Ok(Self {
            connection,
            changes,
            budgets,
            owners,
            settled_at: None,
            reread_at: None,
            unanswered: 0,
            budget: None,
        })
    }

    /// Follows until every receiver is gone (`None`) or the bus is lost.
    async fn follow(&mut self, sender: &watch::Sender<Option<SiteReport>>) -> Option<Lost> {
        loop {
            let reread_at = self.reread_at;
            let reread = async move {
                match reread_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => pending().await,
                }
            };
            let result = tokio::select! {
                () = sender.closed() => return None,
                owner = next(&mut self.owners) => match owner {
                    Some(signal) => self.owner_changed(&signal, sender).await,
                    None => Err(Lost(closed("NameOwnerChanged"))),
                },
                change = next(&mut self.changes) => match change {
                    Some(signal) => {
                        self.state_changed(&signal, sender);
                        Ok(())
                    }
                    None => Err(Lost(closed("StateChanged"))),
                },
                budget = next(&mut self.budgets) => match budget {
                    Some(signal) => {
                        self.budget_changed(&signal, sender);
                        Ok(())
                    }
                    None => Err(Lost(closed("BudgetChanged"))),
                },
                () = reread => self.read(sender).await,
            };
            if let Err(lost) = result {
                return Some(lost);
            }
        }
    }

    async fn owner_changed(
        &mut self,
        signal: &NameOwnerChanged,
        sender: &watch::Sender<Option<SiteReport>>,
    ) -> Result<(), Lost> {
        let new_owner = match signal.args() {
            Ok(args) => args.new_owner().as_ref().map(ToString::to_string),
            Err(error) => {
                tracing::warn!(%error, "ignoring a malformed NameOwnerChanged from the bus");
                return Ok(());
            }
        };
        match new_owner {
            Some(owner) => {
                tracing::info!(%owner, "sited is on the bus; reading the site's state");
                self.read(sender).await
            }
            None => {
                tracing::warn!("sited left the bus; the site's state is unknown until it is back");
                self.settled_at = Some(signal.message().recv_position());
                self.reread_at = None;
                self.unanswered = 0;
                self.budget = None;
                publish(sender, None);
                Ok(())
            }
        }
    }

    fn state_changed(&mut self, signal: &StateChanged, sender: &watch::Sender<Option<SiteReport>>) {
        let position = signal.message().recv_position();
        if self.settled_at.is_some_and(|settled| position < settled) {
            tracing::debug!("skipping a StateChanged older than the last read of sited's state");
            return;
        }
        let args = match signal.args() {
            Ok(args) => args,
            Err(error) => {
                tracing::warn!(%error, "ignoring a StateChanged signal with malformed arguments");
                return;
            }
        };
        match report(args.state(), args.reason(), self.budget) {
            Ok(report) => publish(sender, Some(report)),
            Err(error) => tracing::warn!(
                %error,
                "ignoring a StateChanged signal from sited; the site's state stays as it was"
            ),
        }
    }

    fn budget_changed(
        &mut self,
        signal: &BudgetChanged,
        sender: &watch::Sender<Option<SiteReport>>,
    ) {
        let position = signal.message().recv_position();
        if self.settled_at.is_some_and(|settled| position < settled) {
            tracing::debug!("skipping a BudgetChanged older than the last read of sited's state");
            return;
        }
        let budget = match signal.args() {
            Ok(args) => {
                SiteBudget::new(*args.power_budget_watts(), *args.thermal_headroom_celsius())
            }
            Err(error) => {
                tracing::warn!(%error, "ignoring a BudgetChanged signal with malformed arguments");
                return;
            }
        };
        let budget = match budget {
            Ok(budget) => budget,
            Err(error) => {
                tracing::warn!(%error, "ignoring a BudgetChanged signal from sited; the budget stays as it was");
                return;
            }
        };
        self.budget = Some(budget);
        let current = sender.borrow().clone();
        if let Some(report) = current {
            let budget = self.budget;
            publish(sender, Some(SiteReport { budget, ..report }));
        }
    }

    /// Reads `State`, `StateReason` and the budget with one `GetAll`, and publishes them. Only a broken
    /// connection is an error; sited's absence, silence or nonsense is logged and published
    /// (absence) or ignored (the rest).
    async fn read(&mut self, sender: &watch::Sender<Option<SiteReport>>) -> Result<(), Lost> {
        self.reread_at = None;
        let call = self.connection.call_method(
            Some(SITE.bus_name),
            SITE.object_path,
            Some("org.freedesktop.DBus.Properties"),
            "GetAll",
            &(SITE.bus_name,),
        );
        let reply = match tokio::time::timeout(READ_TIMEOUT, call).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(zbus::Error::MethodError(name, _, _)))
                if NO_OWNER_ERRORS.contains(&name.as_str()) =>
            {
                tracing::info!("sited is not on the bus; the site's state is unknown until it is");
                self.unanswered = 0;
                publish(sender, None);
                return Ok(());
            }
            Ok(Err(error @ (zbus::Error::MethodError(..) | zbus::Error::FDO(_)))) => {
                self.ask_again(&error.to_string());
                return Ok(());
            }
            Ok(Err(error)) => return Err(Lost(error)),
            Err(_) => {
                self.ask_again(&format!("no answer within {READ_TIMEOUT:?}"));
                return Ok(());
            }
        };
        self.unanswered = 0;
        self.settled_at = Some(reply.recv_position());
        match answer(&reply, &mut self.budget) {
            Ok(report) => publish(sender, Some(report)),
            Err(error) => tracing::warn!(
                %error,
                "ignoring sited's answer for the site's state; the site's state stays as it was"
            ),
        }
        Ok(())
    }

    /// Schedules another read of a sited that owns the name but did not answer.
    fn ask_again(&mut self, why: &str) {
        let wait = REREAD_FIRST
            .saturating_mul(1 << self.unanswered.min(5))
            .min(REREAD_MAX);
        if self.unanswered == 0 {
            tracing::warn!(
                error = why,
                "sited did not answer for the site's state; asking again, its signals still count"
            );
        } else {
            tracing::debug!(
                error = why,
                "sited still does not answer for the site's state"
            );
        }
        self.unanswered = self.unanswered.saturating_add(1);
        self.reread_at = Some(Instant::now() + wait);
    }
}

/// What was wrong with sited's words; the report stays as it was.
#[derive(Debug, thiserror::Error)]
enum Unreadable {
    #[error("the answer to GetAll is not a property map")]
    Body(#[source] zbus::Error),
    #[error("sited's answer has no {0}")]
    Missing(&'static str),
    #[error("sited's {0} is not a string")]
    NotText(&'static str),
    #[error(transparent)]
    State(#[from] UnknownSiteState),
    #[error("sited's {0} is not a number")]
    NotNumber(&'static str),
    #[error(transparent)]
    Budget(#[from] InvalidSiteBudget),
}

/// A report from the words on the bus; an unknown state is an error.
fn report(state: &str, reason: &str, budget: Option<SiteBudget>) -> Result<SiteReport, Unreadable> {
    Ok(SiteReport {
        state: SiteState::from_str(state)?,
        reason: reason.to_owned(),
        budget,
    })
}

/// The report in sited's answer to `GetAll`; `budget` takes the budget in it even when the state
/// is unreadable.
fn answer(
    reply: &zbus::Message,
    budget: &mut Option<SiteBudget>,
) -> Result<SiteReport, Unreadable> {
    let properties: HashMap<String, OwnedValue> =
        reply.body().deserialize().map_err(Unreadable::Body)?;
    let text = |name: &'static str| -> Result<&str, Unreadable> {
        properties
            .get(name)
            .ok_or(Unreadable::Missing(name))?
            .downcast_ref::<&str>()
            .map_err(|_| Unreadable::NotText(name))
    };
    let number = |name: &'static str| -> Result<Option<f64>, Unreadable> {
        properties
            .get(name)
            .map(|value| {
                value
                    .downcast_ref::<f64>()
                    .map_err(|_| Unreadable::NotNumber(name))
            })
            .transpose()
    };
    // A sited that publishes no budget yet leaves it unknown; half a budget is nonsense.
    *budget = match (
        number("PowerBudgetWatts")?,
        number("ThermalHeadroomCelsius")?,
    ) {
        (Some(power), Some(headroom)) => Some(SiteBudget::new(power, headroom)?),
        (None, None) => None,
        (None, Some(_)) => return Err(Unreadable::Missing("PowerBudgetWatts")),
        (Some(_), None) => return Err(Unreadable::Missing("ThermalHeadroomCelsius")),
    };
    report(text("State")?, text("StateReason")?, *budget)
}

/// Replaces the report, waking receivers only when it changed.
fn publish(sender: &watch::Sender<Option<SiteReport>>, report: Option<SiteReport>) {
    sender.send_if_modified(|current| {
        if *current == report {
            return false;
        }
        match &report {
            Some(report) => tracing::info!("sited reports the site {report}"),
            None => tracing::debug!("no report from sited"),
        }
        *current = report;
        true
    });
}

fn closed(stream: &str) -> zbus::Error {
    zbus::Error::InputOutput(
        std::io::Error::new(
            std::io::ErrorKind::BrokenPipe,
            format!("the bus connection closed (the {stream} stream ended)"),
        )
        .into(),
    )
}

/// The next item of a stream (zbus exports the `Stream` trait but no combinators).
async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

#[cfg(test)]
mod tests;
