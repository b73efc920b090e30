//! The D-Bus contracts between BunkerOS services: where each service is found on the system bus.
//!
//! Services never depend on each other's crates; they meet here. Each service's interface
//! definitions (`#[zbus::proxy]` traits for its clients, the shared types they carry) are
//! added beside its address below as that service is built ([`Trust1Proxy`] for trustd,
//! [`Hub1Proxy`] for hubd, [`Mining1Proxy`] for minerd, [`Site1Proxy`] and [`SiteState`] for sited), so a change to a contract is one
//! reviewed change in one file. Names follow systemd's convention (`org.freedesktop.resolve1`):
//! a versioned name, and an object path spelled the same way.

/// Where a service lives on the system bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusService {
    /// The daemon that owns the name, e.g. `trustd`.
    pub daemon: &'static str,
    /// Its well-known bus name, e.g. `org.bunkeros.Trust1`.
    pub bus_name: &'static str,
    /// Its main object path, e.g. `/org/bunkeros/Trust1`.
    pub object_path: &'static str,
}

/// `trustd`: the site's certificate authority.
pub const TRUST: BusService = BusService {
    daemon: "trustd",
    bus_name: "org.bunkeros.Trust1",
    object_path: "/org/bunkeros/Trust1",
};

/// `hubd`: secure hub routing between sites.
pub const HUB: BusService = BusService {
    daemon: "hubd",
    bus_name: "org.bunkeros.Hub1",
    object_path: "/org/bunkeros/Hub1",
};

/// `minerd`: mining orchestration.
pub const MINING: BusService = BusService {
    daemon: "minerd",
    bus_name: "org.bunkeros.Mining1",
    object_path: "/org/bunkeros/Mining1",
};

/// `sited`: EMP-site monitoring.
pub const SITE: BusService = BusService {
    daemon: "sited",
    bus_name: "org.bunkeros.Site1",
    object_path: "/org/bunkeros/Site1",
};

/// `updated`: signed A/B image updates.
pub const UPDATE: BusService = BusService {
    daemon: "updated",
    bus_name: "org.bunkeros.Update1",
    object_path: "/org/bunkeros/Update1",
};

/// Every BunkerOS service on the bus, in the order of the design's service table.
pub const ALL: [BusService; 5] = [TRUST, HUB, MINING, SITE, UPDATE];

/// `org.bunkeros.Trust1`, trustd's interface at [`TRUST`], as its clients call it.
///
/// Documents are JSON strings so that `bunkerctl --json` and scripts see exactly what trustd
/// said; their fields are only ever added. Refusals are D-Bus errors named in [`trust_errors`],
/// whose message is a sentence for the operator. The bus policy
/// (`/usr/share/dbus-1/system.d/org.bunkeros.Trust1.conf`) lets only root and members of
/// `bunkeros-operators` call `Issue`, `Revoke`, `IntermediateRequest` and `InstallChain`, and
/// the services `SignAuditDigest`; everything else (`Quote` included) is open to anyone.
#[zbus::proxy(
    interface = "org.bunkeros.Trust1",
    default_service = "org.bunkeros.Trust1",
    default_path = "/org/bunkeros/Trust1"
)]
pub trait Trust1 {
    /// Issues a certificate for `csr_pem` under `profile` (`hub`, `service`, `operator`,
    /// `device`) for `lifetime` (`24h`, `7d`; empty for the profile's default). Returns the
    /// certificate (PEM), the chain a peer sends (leaf first, PEM), the serial (hex) and the
    /// certificate's index in the transparency log.
    fn issue(
        &self,
        csr_pem: &str,
        profile: &str,
        lifetime: &str,
    ) -> zbus::Result<(String, String, String, u64)>;

    /// Revokes the certificate with `serial` (hex) for `reason` (an RFC 5280 name such as
    /// `keyCompromise`, or its code; empty for `unspecified`), and publishes a new CRL.
    fn revoke(&self, serial: &str, reason: &str) -> zbus::Result<()>;

    /// The CA's status document: `state` (`initialised`, `ready`, `sealed`, `lockdown`),
    /// `reason`, `public_key` (the CA key, SEC1 hex), `policy`, `ca` (subject, root
    /// fingerprint), counts, log size, CRL.
    fn status(&self) -> zbus::Result<String>;

    /// Issued certificates as a JSON array, in log order. `filter` is empty or a JSON object
    /// with any of `status` (`valid`, `expired`, `revoked`), `profile`, `name` (substring),
    /// `after` (log index, for paging) and `limit`.
    fn list(&self, filter: &str) -> zbus::Result<String>;

    /// Signs a SHA-256 `digest` of a segment of `service`'s audit log (domain-separated; see
    /// trustd's `authority::audit`). Returns the DER ECDSA signature. A service may sign only
    /// under its own user name; root under any.
    fn sign_audit_digest(&self, service: &str, digest: &[u8]) -> zbus::Result<Vec<u8>>;

    /// A TPM2_Quote of PCR 11 (SHA-256 bank; systemd-stub measures the booted UKI there) with
    /// `nonce` (1 to 64 bytes, else `InvalidRequest`) as qualifying data, signed by the CA key:
    /// returns the marshalled `TPMS_ATTEST` and the DER ECDSA P-256 signature over its
    /// SHA-256. A verifier checks the signature with the CA public key (`Status().public_key`),
    /// the magic `TPM_GENERATED`, the type `TPM_ST_ATTEST_QUOTE`, `extraData` = its nonce, and
    /// the PCR digest = SHA-256 of the PCR 11 value it expects (the release's
    /// `pcr11.expected`). Anyone may call it; it works in lockdown and is refused (`Sealed`)
    /// when the TPM refuses the CA key. trustd signs nothing else that starts with
    /// `TPM_GENERATED`, so such a signed attestation is a quote.
    fn quote(&self, nonce: &[u8]) -> zbus::Result<(Vec<u8>, Vec<u8>)>;

    /// A signed tree head covering the whole transparency log (JSON).
    fn tree_head(&self) -> zbus::Result<String>;

    /// A proof bundle (JSON) for the log entry at `index`, against a signed tree head;
    /// `bunkerctl ca log verify` checks it offline.
    fn inclusion_proof(&self, index: u64) -> zbus::Result<String>;

    /// A proof bundle (JSON) showing that today's log extends `old_tree_head`, a signed tree
    /// head (JSON) the caller kept from an earlier `TreeHead`.
    fn consistency_proof(&self, old_tree_head: &str) -> zbus::Result<String>;

    /// The site's root certificate (PEM): the trust anchor relying parties pin.
    fn root_certificate(&self) -> zbus::Result<String>;

    /// For a CA under an offline root (`[site] ca = "intermediate"`): the request (PEM) the
    /// offline root signs. The outstanding one while the CA waits for its chain; a fresh one,
    /// with the same names, to renew an installed intermediate. Changes nothing.
    fn intermediate_request(&self) -> zbus::Result<String>;

    /// Installs the chain the offline root returned for that request (PEM: this CA's
    /// certificate first, then the offline root), once it verifies for the CA's TPM key.
    /// Replacing an installed intermediate is accepted only as a renewal: same subject, same
    /// trust anchor. Returns what was installed (JSON: `kind`, `renewal`, `subject`, `issuer`,
    /// `not_before`, `not_after`, `root_subject`, `root_fingerprint`).
    fn install_chain(&self, chain_pem: &str) -> zbus::Result<String>;
}

/// `org.bunkeros.Hub1`, hubd's interface at [`HUB`], as its clients call it.
///
/// Read-only today: every method answers from the hub's latest snapshot (what the control plane
/// looked like at its last change or tick) or its session table, never waiting on the control
/// plane itself. Documents
/// are JSON strings whose fields are only ever added; times are RFC 3339 (UTC), latencies are
/// milliseconds (one way, except `rtt_ms`). Refusals are D-Bus errors named in [`hub_errors`]
/// whose message is a sentence for the operator. The bus policy
/// (`/usr/share/dbus-1/system.d/org.bunkeros.Hub1.conf`) lets only the `hubd` user own the name,
/// everyone read the network, and root and `bunkeros-operators` read the sessions.
#[zbus::proxy(
    interface = "org.bunkeros.Hub1",
    default_service = "org.bunkeros.Hub1",
    default_path = "/org/bunkeros/Hub1"
)]
pub trait Hub1 {
    /// The hub's status document: `hub`, `jurisdiction`, `transit` (bool) and `transit_reason`,
    /// `links` {`up`, `configured`}, `hubs_trusted`, `certificate` {`source`, `not_after`,
    /// `renewal_error` (null while renewing it goes well)}, `advertisement` {`sequence`, `expires_at`}, `held_back`, `counters` {`accepted`,
    /// `duplicates`, `rejected` {reason: count}, `malformed` {label: count}, `held_back`,
    /// `originated`, `origination_failures`}, `taken_at`.
    fn status(&self) -> zbus::Result<String>;

    /// Every configured link as a JSON array, by peer and link number: `peer`, `jurisdiction`
    /// (the peer's, as agreed), `link` (number), `address` (from the peering file), `up`, and
    /// `rtt_ms` (null while down).
    fn links(&self) -> zbus::Result<String>;

    /// Every hub known (this one and every advertisement held) as a JSON array, by hub id: `id`,
    /// `jurisdiction`, `trust` (`self`, `pinned`, `vouched` or `untrusted`), `vouched_through`
    /// (for `vouched`: the chain of hubs from the pinned peer to the one that vouches directly;
    /// else empty), `transit` (its advertisement offers transit), `sequence`, `expires_at`,
    /// `links` [{`neighbour`, `link`, `latency_ms`}] as it advertises them, `prefixes` (the IP
    /// prefixes it announces, e.g. `10.77.2.0/24`).
    fn hubs(&self) -> zbus::Result<String>;

    /// For every trusted hub other than this one, as a JSON array: `destination`,
    /// `jurisdiction`, and either `primary` and `backup` (a path, or null when no link-disjoint
    /// backup exists) with no policy constraints, or `refusal` (the sentence); the other keys
    /// are null. A path is {`hubs` [{`id`, `jurisdiction`}], `links` [{`a`, `b`, `link`}],
    /// `hops`, `latency_ms`}.
    fn routes(&self) -> zbus::Result<String>;

    /// The primary and backup paths to `destination` (a hub id) under the path policy named
    /// `policy` in `hubd.toml` (empty: no constraints): {`destination`, `policy`, `rules`,
    /// `primary`, `backup`}. No compliant path is the error
    /// [`hub_errors::NO_COMPLIANT_PATH`] with the refusal's sentence, never a non-compliant
    /// path; an unknown policy is [`hub_errors::UNKNOWN_POLICY`] (naming those that exist); a
    /// destination that is not a hub id is [`hub_errors::INVALID_ARGUMENT`].
    fn paths(&self, destination: &str, policy: &str) -> zbus::Result<String>;

    /// The sessions this hub carries as source or destination (live first, then the last ended),
    /// as a JSON array: `id` (32 hex digits), `service`, `role` (`source`, `destination`), `peer`,
    /// `state` (`live`, `closed`, or `failed: …`), `circuits` (more than 1: it failed over),
    /// `started`, `verified`, `path` (hub ids, source first), `jurisdictions` (crossed, in order).
    fn sessions(&self) -> zbus::Result<String>;

    /// One session as in `Sessions`, with `hops` [{`hub`, `jurisdiction`, `country`, `previous`,
    /// `next`, `since`}]: at the source each hop is proven by its signed transit receipt
    /// (`verified` true); at the destination it is the route as the source announced it. A text
    /// that is not a session id is [`hub_errors::INVALID_ARGUMENT`]; an unknown session is
    /// [`hub_errors::NOT_FOUND`].
    fn session_path(&self, session: &str) -> zbus::Result<String>;
}

/// `org.bunkeros.Mining1`, minerd's interface at [`MINING`], as its clients call it.
///
/// Documents are JSON strings whose fields are only ever added; times are RFC 3339 (UTC),
/// hashrates TH/s, power watts, efficiency J/TH, temperatures °C. Reads answer from what
/// minerd last polled, never waiting on a miner. Refusals are D-Bus errors named in
/// [`mining_errors`] whose message is a sentence for the operator.
///
/// A *selection* picks miners: `all`, or comma-separated terms that must all hold:
/// `ip=10.1.0.0/22` (or one address), `owner=NAME`, `location=NAME`, `model=TEXT` (substring),
/// `firmware=bmminer|bosminer|luxos|cgminer`, `state=active|sleeping|quarantined|missing`.
///
/// The bus policy (`/usr/share/dbus-1/system.d/org.bunkeros.Mining1.conf`) lets only the
/// `minerd` user own the name and only root and `bunkeros-operators` call it: the fleet's
/// owners are clients of the site, and actions change what their miners do. Every action is
/// recorded in minerd's audit log with the caller's user id.
#[zbus::proxy(
    interface = "org.bunkeros.Mining1",
    default_service = "org.bunkeros.Mining1",
    default_path = "/org/bunkeros/Mining1"
)]
pub trait Mining1 {
    /// The fleet's status document: `miners` {`total`, `up`, `down`, `sleeping`,
    /// `quarantined`, `missing`}, `hashrate_ths`, `power_w`, `efficiency_j_per_th`,
    /// `hottest_chip_c`, `owners` [{`owner`, `miners`, `up`, `hashrate_ths`, `power_w`,
    /// `shares` {`accepted`, `rejected`, `stale`, `accepted_difficulty`}}], `poll` {`last_at`,
    /// `duration_ms`, `failures` {kind: count}}, `discovery` {`last_at`, `scanned`, `found`},
    /// `proxy` {`listen`, `connected`, `upstreams` [{`owner`, `pool`, `state`, `miners`}]},
    /// `curtailment` {`source` (`sited` or `static`), `budget_w`, `headroom_c`,
    /// `effective_budget_w`, `draw_w`, `asleep`, `shortfall_w`}, `hijacks_open`, `audit`
    /// {`records`, `last_sealed_seq`}, `taken_at`.
    fn status(&self) -> zbus::Result<String>;

    /// The miners `selection` picks, as a JSON array by address: `ip`, `owner`, `location`,
    /// `model`, `firmware`, `state`, `up`, `hashrate_ths`, `power_w`, `efficiency_j_per_th`,
    /// `hottest_chip_c`, `pool` (what it mines on, as it reports), `last_poll_at`,
    /// `poll_failure` (null when the last poll worked).
    fn miners(&self, selection: &str) -> zbus::Result<String>;

    /// One miner as in `Miners`, with `boards`, `fans`, `pools` (as it reports them), `proxy`
    /// (connected, user, difficulty, last share, share counts), `hijacks` and `history` (the
    /// last hour, one point a minute). An unknown address is [`mining_errors::NOT_FOUND`].
    fn miner(&self, ip: &str) -> zbus::Result<String>;

    /// Crypto-jacking findings, open first, as a JSON array: `ip`, `owner`, `kind`
    /// (`foreign_pool`, `changed_user`, `devfee_redirect`, `hashing_elsewhere`), `severity`,
    /// `seen` (the sentence), `first_at`, `last_at`, `quarantined`, `open`.
    fn hijacks(&self) -> zbus::Result<String>;

    /// Starts `action` (`set-pools`: restore the sanctioned pools; `reboot`; `sleep`; `wake`;
    /// `power-target` with the watts in `argument`) on the miners `selection` picks, and
    /// returns the job id at once; progress comes as `JobProgress` signals and from `Job`. A
    /// selection or action that means nothing is [`mining_errors::INVALID_ARGUMENT`]; a
    /// selection that picks no miner is [`mining_errors::NOT_FOUND`].
    fn start_action(&self, action: &str, selection: &str, argument: &str) -> zbus::Result<String>;

    /// A job's document: `id`, `action`, `argument`, `selection`, `started_at`, `finished_at`
    /// (null while running), `total`, `done`, `failed`, `results` [{`ip`, `ok`, `message`}].
    fn job(&self, id: &str) -> zbus::Result<String>;

    /// `JobProgress(id s, done u, failed u, total u)`: after every miner a job finishes.
    #[zbus(signal)]
    fn job_progress(&self, id: &str, done: u32, failed: u32, total: u32) -> zbus::Result<()>;

    /// Releases a quarantined miner (after the operator looked at it), with a note for the
    /// audit log. A miner that is not quarantined is [`mining_errors::INVALID_ARGUMENT`].
    fn release(&self, ip: &str, note: &str) -> zbus::Result<()>;

    /// Scans the configured ranges now and returns the report: `scanned`, `found`, `new`,
    /// `changed`, `missing`, `errors` {kind: count}, `duration_ms`.
    fn scan(&self) -> zbus::Result<String>;
}

/// `org.bunkeros.Site1`, sited's interface at [`SITE`], as its clients call it.
///
/// sited publishes the site's state so that every service can act on it by itself: trustd stops
/// issuing in `lockdown`, hubd withdraws from transit, minerd curtails, updated does not bless a
/// new slot while the site is `critical`. Clients follow it with
/// [`SiteWatch`](crate::site_watch::SiteWatch) rather than with this proxy alone, because
/// following it correctly means reading the properties again whenever sited restarts.
///
/// The fields are only ever added (alarms come with sited, issue 6), and a client that knows only
/// `State` keeps working; a sited that does not publish the budget yet leaves
/// [`SiteReport::budget`](crate::site_watch::SiteReport::budget) empty. A client parses
/// `State` with [`SiteState::from_str`](std::str::FromStr), which refuses a word it does not know
/// rather than reading it as `normal`.
#[zbus::proxy(
    interface = "org.bunkeros.Site1",
    default_service = "org.bunkeros.Site1",
    default_path = "/org/bunkeros/Site1"
)]
pub trait Site1 {
    /// `State` (`s`): `normal`, `warning`, `critical` or `lockdown` (see [`SiteState`]).
    ///
    /// Named `site_state` here only because zbus derives `receive_state_changed` from a property
    /// called `state`, and that name belongs to the `StateChanged` signal below.
    #[zbus(property, name = "State")]
    fn site_state(&self) -> zbus::Result<String>;

    /// `StateReason` (`s`): why the site is in its state, a sentence for the operator; empty
    /// when the state is `normal`.
    #[zbus(property)]
    fn state_reason(&self) -> zbus::Result<String>;

    /// `StateChanged(state s, reason s)`: emitted on every change of `State` or `StateReason`,
    /// carrying both, so a client never sees a state with the previous state's reason.
    #[zbus(signal)]
    fn state_changed(&self, state: &str, reason: &str) -> zbus::Result<()>;

    /// `PowerBudgetWatts` (`d`): the electrical power the site's loads may draw now, from the
    /// feeds, UPS and generator state and the configured limits (minerd curtails to it).
    #[zbus(property)]
    fn power_budget_watts(&self) -> zbus::Result<f64>;

    /// `ThermalHeadroomCelsius` (`d`): how far the hottest monitored zone is below its limit;
    /// negative when a zone is over it.
    #[zbus(property)]
    fn thermal_headroom_celsius(&self) -> zbus::Result<f64>;

    /// `BudgetChanged(power_budget_watts d, thermal_headroom_celsius d)`: emitted on every change
    /// of either, carrying both, so a client acts on a consistent pair within the signal's
    /// delivery time rather than a polling period.
    #[zbus(signal)]
    fn budget_changed(
        &self,
        power_budget_watts: f64,
        thermal_headroom_celsius: f64,
    ) -> zbus::Result<()>;

    /// `RaiseAlarm(source s, key s, severity s, summary s, detail s)`: another service reports
    /// a condition sited should alarm on (minerd: a hijacked miner). `source` is the calling
    /// service (sited checks it against the caller's user), `key` names the condition within
    /// the source (raising the same key again updates it), `severity` is `info`, `warning`,
    /// `critical`, `summary` a sentence, `detail` a JSON object.
    fn raise_alarm(
        &self,
        source: &str,
        key: &str,
        severity: &str,
        summary: &str,
        detail: &str,
    ) -> zbus::Result<()>;

    /// `ClearAlarm(source s, key s)`: the condition `RaiseAlarm` reported is over.
    fn clear_alarm(&self, source: &str, key: &str) -> zbus::Result<()>;

    /// `AlarmChanged(alarm s, change s, severity s, summary s)`: emitted on every alarm
    /// transition, after it is in the event log: `alarm` is the rule's name or
    /// `SOURCE/KEY` for another service's alarm, `change` is `raised`, `updated`, `cleared`,
    /// `acknowledged`, `released` (its inhibitor cleared) or `escalated`.
    #[zbus(signal)]
    fn alarm_changed(
        &self,
        alarm: &str,
        change: &str,
        severity: &str,
        summary: &str,
    ) -> zbus::Result<()>;

    /// The site's status document (JSON): `state`, `reason`, `power_budget_w`,
    /// `thermal_headroom_c`, `power` {`source` (`grid`, `generator`, `battery` or `unknown`),
    /// `why`}, `sensors` {`total`, `ok`, `lost`}, `alarms` {`active`, `unacknowledged`,
    /// `critical`}, `silences`, `relays` [{`name`, `bus`, `on`, `wanted`, `error`}],
    /// `uplink` {`configured`, `queued`, `delivered`, `last_delivery_at`, `last_error`},
    /// `log` {`records`, `last_sealed_seq`}, `taken_at`. Times are RFC 3339 (UTC).
    fn status(&self) -> zbus::Result<String>;

    /// Every sensor of the site as a JSON array by name: `sensor`, `bus`, `value` (a number,
    /// `true`/`false` for a contact, null when lost or not read yet), `unit`, `state` (`ok`,
    /// `lost` or `waiting`), `reason` (why lost), `at` (the last sample or loss).
    fn sensors(&self) -> zbus::Result<String>;

    /// Active alarms and cleared ones waiting for acknowledgement, as a JSON array in raise
    /// order: `alarm`, `severity`, `summary`, `active`, `raised_at`, `cleared_at`,
    /// `acknowledged` {`by`, `at`, `note`} or null, `escalation_step`, `site_state`,
    /// `inhibited_by`, `silenced_by` (silence id or null), `sensors`, `detail`.
    fn alarms(&self) -> zbus::Result<String>;

    /// The silences in force as a JSON array: `id`, `match` (`alarm` or `sensor`), `pattern`,
    /// `author`, `comment`, `created_at`, `until`.
    fn silences(&self) -> zbus::Result<String>;

    /// An operator acknowledges `alarm` with a note; a cleared alarm then leaves the list.
    /// Unknown alarm: [`site_errors::NOT_FOUND`]; already acknowledged:
    /// [`site_errors::INVALID_ARGUMENT`].
    fn acknowledge(&self, alarm: &str, note: &str) -> zbus::Result<()>;

    /// An operator holds back notifications for `seconds` (1 s to 30 days) of the alarms
    /// whose name (`what` = `alarm`) or one of whose sensors (`what` = `sensor`) matches
    /// `pattern` (`*` matches any run of characters). The alarms and the site state do not
    /// change. Returns the silence's id.
    fn silence(&self, what: &str, pattern: &str, seconds: u64, comment: &str) -> zbus::Result<u64>;

    /// An operator ends silence `id` early; unknown: [`site_errors::NOT_FOUND`].
    fn unsilence(&self, id: u64) -> zbus::Result<()>;
}

/// The D-Bus error names sited answers with; the message of each is a sentence.
pub mod site_errors {
    /// An argument is not what the method takes (a pattern, a duration, a note), or the
    /// action does not apply (an alarm already acknowledged).
    pub const INVALID_ARGUMENT: &str = "org.bunkeros.Site1.Error.InvalidArgument";
    /// No such alarm or silence.
    pub const NOT_FOUND: &str = "org.bunkeros.Site1.Error.NotFound";
    /// The caller may not do this (`RaiseAlarm` for a source that is not the caller).
    pub const ACCESS_DENIED: &str = "org.bunkeros.Site1.Error.AccessDenied";
    /// The action cannot run now (e.g. the event log cannot record it).
    pub const UNAVAILABLE: &str = "org.bunkeros.Site1.Error.Unavailable";

    /// Every name, for tests and clients that match on them.
    pub const ALL: [&str; 4] = [INVALID_ARGUMENT, NOT_FOUND, ACCESS_DENIED, UNAVAILABLE];
}

/// What the site can afford now, as sited publishes it in `PowerBudgetWatts` and
/// `ThermalHeadroomCelsius`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SiteBudget {
    /// Watts the site's loads may draw; finite and not negative.
    pub power_watts: f64,
    /// Degrees below the hottest zone's limit; finite, negative when over it.
    pub thermal_headroom_c: f64,
}

impl SiteBudget {
    /// The pair from the bus, or why it cannot be acted on (a NaN or negative budget would
    /// otherwise read as "shed everything" or "no limit").
    pub fn new(power_watts: f64, thermal_headroom_c: f64) -> Result<Self, InvalidSiteBudget> {
        if !power_watts.is_finite() || power_watts < 0.0 {
            return Err(InvalidSiteBudget::Power(power_watts));
        }
        if !thermal_headroom_c.is_finite() {
            return Err(InvalidSiteBudget::Headroom(thermal_headroom_c));
        }
        Ok(Self {
            power_watts,
            thermal_headroom_c,
        })
    }
}

impl std::fmt::Display for SiteBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "power budget {:.0} W, thermal headroom {:.1} °C",
            self.power_watts, self.thermal_headroom_c
        )
    }
}

/// A budget from the bus that is not a number a service can act on.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum InvalidSiteBudget {
    #[error("power budget {0} W is not a finite, non-negative number")]
    Power(f64),
    #[error("thermal headroom {0} °C is not a finite number")]
    Headroom(f64),
}

/// The state of the site, as sited publishes it in `org.bunkeros.Site1.State`.
///
/// Each service decides for itself what a state means for it (trustd: only `Lockdown` stops
/// issuance); this type only says which state the site is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SiteState {
    /// Everything within limits.
    Normal,
    /// Something needs the operator's attention; services keep working.
    Warning,
    /// The site is at risk (power, cooling, shielding); services shed what they can.
    Critical,
    /// The site is sealed off (intrusion, shielding breach, operator's order): services that
    /// change trust or routing stop until the site leaves lockdown.
    Lockdown,
}

impl SiteState {
    /// Every state, from the mildest to lockdown.
    pub const ALL: [SiteState; 4] = [Self::Normal, Self::Warning, Self::Critical, Self::Lockdown];

    /// The word on the bus: `normal`, `warning`, `critical`, `lockdown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Warning => "warning",
            Self::Critical => "critical",
            Self::Lockdown => "lockdown",
        }
    }
}

impl std::fmt::Display for SiteState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SiteState {
    type Err = UnknownSiteState;

    /// Exactly the words of [`SiteState::as_str`]; anything else is an error, never `Normal`:
    /// a client that cannot read the state must not believe the site is fine.
    fn from_str(word: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == word)
            .ok_or_else(|| UnknownSiteState(word.chars().take(64).collect()))
    }
}

/// A `State` that is not one of the four words (a newer or broken sited).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a site state (normal, warning, critical or lockdown)")]
pub struct UnknownSiteState(
    /// The word received, cut to 64 characters.
    pub String,
);

/// The D-Bus error names trustd answers with; the message of each is a sentence.
pub mod trust_errors {
    /// The CA key is sealed: the boot measurements do not satisfy its TPM policy.
    pub const SEALED: &str = "org.bunkeros.Trust1.Error.Sealed";
    /// The site is in lockdown: issuance and revocation stop until it leaves.
    pub const LOCKDOWN: &str = "org.bunkeros.Trust1.Error.Lockdown";
    /// The request itself is refused (CSR, profile, names, lifetime, serial syntax, ...).
    pub const INVALID_REQUEST: &str = "org.bunkeros.Trust1.Error.InvalidRequest";
    /// No such certificate or log entry.
    pub const NOT_FOUND: &str = "org.bunkeros.Trust1.Error.NotFound";
    /// The certificate was revoked before; the first revocation stands.
    pub const ALREADY_REVOKED: &str = "org.bunkeros.Trust1.Error.AlreadyRevoked";
    /// The CA cannot issue yet (no CA certificate, waiting for the offline root, expired).
    pub const NOT_READY: &str = "org.bunkeros.Trust1.Error.NotReady";
    /// The caller may not do this: a service asked to sign audit digests under another name.
    pub const ACCESS_DENIED: &str = "org.bunkeros.Trust1.Error.AccessDenied";
    /// trustd failed (TPM fault, store write); the journal has the details.
    pub const FAILED: &str = "org.bunkeros.Trust1.Error.Failed";

    /// Every name, for tests and clients that match on them.
    pub const ALL: [&str; 8] = [
        SEALED,
        LOCKDOWN,
        INVALID_REQUEST,
        NOT_FOUND,
        ALREADY_REVOKED,
        NOT_READY,
        ACCESS_DENIED,
        FAILED,
    ];
}

/// The D-Bus error names hubd answers with; the message of each is a sentence.
pub mod hub_errors {
    /// No path to the destination follows the policy (the message is the refusal's sentence);
    /// hubd never offers a non-compliant path instead.
    pub const NO_COMPLIANT_PATH: &str = "org.bunkeros.Hub1.Error.NoCompliantPath";
    /// `hubd.toml` names no path policy so; the message names those it does.
    pub const UNKNOWN_POLICY: &str = "org.bunkeros.Hub1.Error.UnknownPolicy";
    /// An argument is not what the method takes (a destination that is not a hub id, or this
    /// hub itself).
    pub const INVALID_ARGUMENT: &str = "org.bunkeros.Hub1.Error.InvalidArgument";
    /// No such session on this hub.
    pub const NOT_FOUND: &str = "org.bunkeros.Hub1.Error.NotFound";

    /// Every name, for tests and clients that match on them.
    pub const ALL: [&str; 4] = [
        NO_COMPLIANT_PATH,
        UNKNOWN_POLICY,
        INVALID_ARGUMENT,
        NOT_FOUND,
    ];
}

/// `org.bunkeros.Update1`, updated's interface at [`UPDATE`], as its clients call it.
///
/// Documents are JSON strings whose fields are only ever added; times are RFC 3339 (UTC), sizes
/// bytes. A `source` names where a release comes from: `usb` (the removable medium labelled
/// `BUNKERUPD`), an absolute directory path (or `dir:PATH`), or an `https://` mirror; empty means
/// the source configured in `updated.toml`. Refusals are D-Bus errors named in
/// [`update_errors`] whose message is a sentence for the operator. The bus policy
/// (`/usr/share/dbus-1/system.d/org.bunkeros.Update1.conf`) lets everyone read the status and
/// only root and `bunkeros-operators` check or install.
#[zbus::proxy(
    interface = "org.bunkeros.Update1",
    default_service = "org.bunkeros.Update1",
    default_path = "/org/bunkeros/Update1"
)]
pub trait Update1 {
    /// `BootedSlot` (`s`): `a` or `b`, the slot this boot came from.
    #[zbus(property)]
    fn booted_slot(&self) -> zbus::Result<String>;

    /// `BootedVersion` (`s`): the running image's version.
    #[zbus(property)]
    fn booted_version(&self) -> zbus::Result<String>;

    /// `NextSlot` (`s`): the slot the next boot starts (the newest entry with tries left).
    #[zbus(property)]
    fn next_slot(&self) -> zbus::Result<String>;

    /// `NextVersion` (`s`): the image version in the next boot's slot.
    #[zbus(property)]
    fn next_version(&self) -> zbus::Result<String>;

    /// `Activity` (`s`): `idle`, `checking`, `installing`, `gating` (the health gate of a
    /// new slot runs).
    #[zbus(property)]
    fn activity(&self) -> zbus::Result<String>;

    /// `LastResult` (`s`): the last recorded result (JSON: `kind` installed, refused, failed,
    /// blessed, fell-back; `version`, `slot`, `reason`, `at`), `{}` before the first.
    #[zbus(property)]
    fn last_result(&self) -> zbus::Result<String>;

    /// `Progress(phase s, done t, total t)`: while installing; `phase` is `verify-metadata`,
    /// `write-root`, `write-verity`, `verify`, `boot-entry`.
    #[zbus(signal)]
    fn progress(&self, phase: &str, done: u64, total: u64) -> zbus::Result<()>;

    /// `InstallFinished(installed b, result s)`: an install ended; `result` as `LastResult`.
    #[zbus(signal)]
    fn install_finished(&self, installed: bool, result: &str) -> zbus::Result<()>;

    /// The status document: `booted` {`slot`, `version`, `roothash`}, `next`, `slots` (each
    /// slot's version and boot entry: `blessed`, `trying` with tries left, `bad`, `none`),
    /// `activity`, `progress`, `pending`, `last_result`, `history`.
    fn status(&self) -> zbus::Result<String>;

    /// Verifies the release at `source` against this image's TUF root without installing:
    /// what it offers and whether it would be installed or why not (JSON).
    fn check(&self, source: &str) -> zbus::Result<String>;

    /// Starts installing the release at `source` into the inactive slot; returns at once with
    /// the release's facts (JSON); progress comes as `Progress`, the end as `InstallFinished`.
    /// With `reboot`, the appliance reboots into the new slot once it is installed.
    fn install(&self, source: &str, reboot: bool) -> zbus::Result<String>;

    /// Starts the rollout of `plan_toml` (a rollout plan: waves of hubs, the release and its
    /// expected PCR 11) from this hub; returns `RolloutStatus`. `InvalidArgument` names what is
    /// wrong with the plan; `Busy` while another rollout is neither completed nor aborted.
    fn rollout_start(&self, plan_toml: &str) -> zbus::Result<String>;

    /// The rollout document: `plan`, `state` (`none`, `running`, `paused`, `halted`, `aborted`,
    /// `completed`) with `reason` and `since`, `current_wave`, `wave_deadline`, `next_wave_at`,
    /// `waves` (each `name`, `state` done/current/waiting, `hubs` with `id`, `state` waiting,
    /// instructed, reported-healthy, failed, `reason`, `attempt`, `since`), `events`,
    /// `exchange_problems`. Times are Unix seconds.
    fn rollout_status(&self) -> zbus::Result<String>;

    /// Stops new instructions (an empty reason says "paused by the operator"); `Refused` unless
    /// running. Returns `RolloutStatus`.
    fn rollout_pause(&self, reason: &str) -> zbus::Result<String>;

    /// Continues a paused rollout, or a halted one when `reason` (the override) is given: its
    /// failed hubs are instructed again. Returns `RolloutStatus`.
    fn rollout_resume(&self, reason: &str) -> zbus::Result<String>;

    /// Ends the rollout and withdraws instructions not acted on. Returns `RolloutStatus`.
    fn rollout_abort(&self, reason: &str) -> zbus::Result<String>;
}

/// The D-Bus error names updated answers with; the message of each is a sentence.
pub mod update_errors {
    /// A `source` that is not one updated can read (`usb`, an absolute path, `https://`).
    pub const INVALID_ARGUMENT: &str = "org.bunkeros.Update1.Error.InvalidArgument";
    /// An install or check is already running (or, for `RolloutStart`, another rollout).
    pub const BUSY: &str = "org.bunkeros.Update1.Error.Busy";
    /// The release was refused (not genuine, expired, a downgrade, another profile, ...), or a
    /// rollout command does not apply to the rollout's state.
    pub const REFUSED: &str = "org.bunkeros.Update1.Error.Refused";
    /// The release could not be read (medium missing, mirror unreachable).
    pub const UNAVAILABLE: &str = "org.bunkeros.Update1.Error.Unavailable";

    /// Every name, for tests and clients that match on them.
    pub const ALL: [&str; 4] = [INVALID_ARGUMENT, BUSY, REFUSED, UNAVAILABLE];
}

/// The D-Bus error names minerd answers with; the message of each is a sentence.
pub mod mining_errors {
    /// An argument is not what the method takes (a selection, action, address or note).
    pub const INVALID_ARGUMENT: &str = "org.bunkeros.Mining1.Error.InvalidArgument";
    /// No such miner or job, or a selection that picks no miner.
    pub const NOT_FOUND: &str = "org.bunkeros.Mining1.Error.NotFound";
    /// The action cannot run now (e.g. the audit log cannot record it).
    pub const UNAVAILABLE: &str = "org.bunkeros.Mining1.Error.Unavailable";

    /// Every name, for tests and clients that match on them.
    pub const ALL: [&str; 3] = [INVALID_ARGUMENT, NOT_FOUND, UNAVAILABLE];
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::names::WellKnownName;
    use zbus::zvariant::ObjectPath;

    #[test]
    fn every_name_and_path_is_valid_on_the_bus() {
        for service in ALL {
            WellKnownName::try_from(service.bus_name).expect(service.bus_name);
            ObjectPath::try_from(service.object_path).expect(service.object_path);
        }
    }

    #[test]
    fn each_path_spells_its_name() {
        for service in ALL {
            let spelled = format!("/{}", service.bus_name.replace('.', "/"));
            assert_eq!(service.object_path, spelled, "{}", service.daemon);
        }
    }

    fn assert_errors_under(names: &[&str], interface: &str) {
        for name in names {
            zbus::names::ErrorName::try_from(*name).expect(name);
            assert!(name.starts_with(&format!("{interface}.Error.")), "{name}");
        }
    }

    #[test]
    fn error_names_are_valid_and_under_their_interface() {
        assert_errors_under(&trust_errors::ALL, TRUST.bus_name);
        assert_errors_under(&hub_errors::ALL, HUB.bus_name);
        assert_errors_under(&mining_errors::ALL, MINING.bus_name);
        assert_errors_under(&site_errors::ALL, SITE.bus_name);
        assert_errors_under(&update_errors::ALL, UPDATE.bus_name);
    }

    #[test]
    fn site_states_read_back_their_own_words_and_nothing_else() {
        for state in SiteState::ALL {
            assert_eq!(state.as_str().parse::<SiteState>(), Ok(state));
            assert_eq!(state.to_string(), state.as_str());
        }
        for word in ["", "Normal", "LOCKDOWN", " normal", "normal\n", "emergency"] {
            let err = word.parse::<SiteState>().expect_err(word);
            assert_eq!(err.0, word);
        }
        let long = "x".repeat(1000);
        assert_eq!(long.parse::<SiteState>().unwrap_err().0.len(), 64);
        assert_eq!(
            "meltdown".parse::<SiteState>().unwrap_err().to_string(),
            "\"meltdown\" is not a site state (normal, warning, critical or lockdown)"
        );
    }

    fn assert_proxy_finds<P: zbus::proxy::Defaults>(service: BusService) {
        let destination = P::DESTINATION.as_ref().expect("a default service");
        assert_eq!(destination.as_str(), service.bus_name);
        let path = P::PATH.as_ref().expect("a default path");
        assert_eq!(path.as_str(), service.object_path);
        let interface = P::INTERFACE.as_ref().expect("an interface");
        assert_eq!(interface.as_str(), service.bus_name);
    }

    #[test]
    fn each_proxy_finds_its_service_where_the_contract_says() {
        assert_proxy_finds::<Trust1Proxy>(TRUST);
        assert_proxy_finds::<Hub1Proxy>(HUB);
        assert_proxy_finds::<Mining1Proxy>(MINING);
        assert_proxy_finds::<Site1Proxy>(SITE);
    }

    #[test]
    fn names_and_daemons_are_unique() {
        for (i, a) in ALL.iter().enumerate() {
            for b in &ALL[i + 1..] {
                assert_ne!(a.bus_name, b.bus_name);
                assert_ne!(a.daemon, b.daemon);
            }
        }
    }
}
