//! One miner's connection to the proxy. Every line is parsed and answered in order; every
//! share is validated by `stratum::Session` before anything else happens to it; a valid share
//! that also meets the pool's target is forwarded, and the miner's "accepted" is sent only once
//! the share's accounting row is committed. Protocol faults (malformed lines, unknown methods,
//! requests out of order) get Stratum's error reply and are counted; the session goes on. A
//! line longer than `MAX_LINE_LEN` ends the connection: nothing a real miner sends is that long.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;

use super::accounting::{Accounting, Outcome, ShareRecord};
use super::directory::Admission;
use super::owner_pools::OwnerPools;
use super::settings::ProxySettings;
use super::upstream::{Forward, Upstream, UpstreamFeed, pool_job_id};
use super::vardiff::Vardiff;
use super::view::LiveMiners;
use crate::stratum::target::hash_to_be;
use crate::stratum::{
    ClientMessage, ClientRequest, ConfigureResult, Job, LineBuffer, MAX_LINE_LEN, NtimeWindow,
    RequestId, ServerMessage, Session, ShareReject, StratumErrorCode, Submit, SubscribeResult,
};

/// Vardiff re-evaluation and placement retries run on a tick of a quarter of the retarget
/// window within these bounds: thousands of idle sessions must not wake many times a second.
const MIN_TICK: Duration = Duration::from_millis(250);
const MAX_TICK: Duration = Duration::from_secs(5);

/// After a difficulty rise, miners apply the new difficulty to the next job only: shares are
/// held to the old difficulty until that job reached the miner and this long after, for the
/// shares on older work still in flight.
const DIFFICULTY_GRACE: Duration = Duration::from_secs(2);

/// How long a write to a miner may wait for the miner to read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a session needs from the proxy around it.
pub struct SessionContext {
    pub ip: IpAddr,
    pub admission: Admission,
    pub settings: Arc<ProxySettings>,
    pub pools: Arc<OwnerPools>,
    pub accounting: Arc<Accounting>,
    pub live: Arc<LiveMiners>,
}

/// Why a session ends.
enum End {
    /// The miner closed, or the connection broke.
    Closed,
    /// The miner was told to reconnect (it cannot take a new extranonce in place).
    Reconnect,
    /// A line past `MAX_LINE_LEN`.
    Oversized,
}

struct Placement {
    upstream: Arc<Upstream>,
    prefix: Vec<u8>,
    feed: watch::Receiver<UpstreamFeed>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tighten {
    No,
    AfterNextJob,
    At(Instant),
}

struct MinerSession {
    ctx: SessionContext,
    writer: OwnedWriteHalf,
    session: Session,
    placement: Option<Placement>,
    subscribed: bool,
    extranonce_subscribed: bool,
    requested_mask: Option<u32>,
    vardiff: Vardiff,
    /// The difficulty shares are held to now (lower than the vardiff's during a grace).
    enforced_difficulty: f64,
    /// A rise waits for the next job (`Waiting`), then for the grace (`At`).
    tighten: Tighten,
    /// A difficulty change was sent and the miner has not had a job since: it still works at
    /// the old difficulty, so vardiff does not measure it.
    vardiff_settling: bool,
    last_job: Option<Arc<Job>>,
}

/// Serves one admitted miner until it leaves, is told to reconnect, or the proxy stops.
pub async fn serve(stream: TcpStream, ctx: SessionContext, stop: watch::Receiver<bool>) {
    stream.set_nodelay(true).ok();
    let (reader, writer) = stream.into_split();
    let mut miner = MinerSession::new(ctx, writer);
    let end = miner.run(reader, stop).await;
    miner.finish(end).await;
}

/// Resolves when the placement's feed changes: `true` with a usable feed, `false` when the
/// upstream became unusable. Never resolves without a placement.
async fn feed_changed(placement: &mut Option<Placement>) -> bool {
    let Some(p) = placement else {
        return std::future::pending().await;
    };
    if p.feed.changed().await.is_err() {
        return false;
    }
    p.feed.borrow().usable
}

impl MinerSession {
    fn new(ctx: SessionContext, writer: OwnedWriteHalf) -> MinerSession {
        let vardiff = Vardiff::new(&ctx.settings.vardiff, Instant::now());
        let (miner_id, owner) = (ctx.admission.miner_id.clone(), ctx.admission.owner.clone());
        ctx.live.update(ctx.ip, |m| {
            m.miner_id = miner_id;
            m.owner = owner;
            m.quarantined = ctx.admission.quarantined;
            m.authorized_user = None;
            m.difficulty = vardiff.difficulty();
        });
        let mut session = Session::new(NtimeWindow::default());
        session.set_difficulty(vardiff.difficulty());
        MinerSession {
            enforced_difficulty: vardiff.difficulty(),
            ctx,
            writer,
            session,
            placement: None,
            subscribed: false,
            extranonce_subscribed: false,
            requested_mask: None,
            vardiff,
            tighten: Tighten::No,
            vardiff_settling: false,
            last_job: None,
        }
    }

    /// Reads and answers lines, follows the upstream's feed and the clocks, until the end.
    async fn run(&mut self, mut reader: OwnedReadHalf, mut stop: watch::Receiver<bool>) -> End {
        let mut lines = LineBuffer::new(MAX_LINE_LEN);
        let mut buf = vec![0u8; 2048];
        let tick_every = (Duration::from_millis(self.ctx.settings.vardiff.retarget_ms) / 4)
            .clamp(MIN_TICK, MAX_TICK);
        let mut tick = tokio::time::interval(tick_every);
        loop {
            while let Some(line) = lines.next_line() {
                let result = match line {
                    Ok(line) => self.handle_line(&line).await,
                    Err(_) => Err(End::Oversized),
                };
                if let Err(end) = result {
                    return end;
                }
            }
            let result = tokio::select! {
                read = reader.read(&mut buf) => match read {
                    Ok(0) | Err(_) => Err(End::Closed),
                    Ok(n) => {
                        lines.extend(&buf[..n]);
                        Ok(())
                    }
                },
                changed = feed_changed(&mut self.placement) => match changed {
                    true => self.on_feed().await,
                    false => self.move_upstream().await,
                },
                // A miner whose work is withheld is let go at the next tick (see
                // `Proxy::withhold_work`).
                _ = tick.tick() => match self.ctx.live.is_withheld(self.ctx.ip) {
                    true => Err(End::Closed),
                    false => self.on_tick().await,
                },
                _ = stop.changed() => Err(End::Closed),
            };
            if let Err(end) = result {
                return end;
            }
        }
    }

    async fn finish(mut self, end: End) {
        match end {
            End::Oversized => {
                tracing::warn!(miner = %self.ctx.ip, "line too long; disconnected");
                self.protocol_error();
            }
            End::Reconnect => tracing::info!(miner = %self.ctx.ip, "told to reconnect"),
            End::Closed => {}
        }
        if let Some(p) = self.placement.take() {
            p.upstream.detach(&p.prefix);
        }
        self.writer.shutdown().await.ok();
        self.ctx.live.close_session(self.ctx.ip);
    }

    async fn handle_line(&mut self, line: &[u8]) -> Result<(), End> {
        let message = match ClientMessage::parse(line) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(miner = %self.ctx.ip, error = %e, "bad line from miner");
                self.protocol_error();
                let reply = ServerMessage::error(request_id(line), StratumErrorCode::Other);
                return self.send(&reply.encode()).await;
            }
        };
        let id = message.id;
        match message.request {
            ClientRequest::Configure {
                version_rolling, ..
            } => self.configure(id, version_rolling.map(|v| v.mask)).await,
            ClientRequest::Subscribe { .. } => self.subscribe(id).await,
            ClientRequest::ExtranonceSubscribe => {
                self.extranonce_subscribed = true;
                self.send(&ServerMessage::result(id, json!(true)).encode())
                    .await
            }
            ClientRequest::Authorize { worker, .. } => self.authorize(id, worker).await,
            ClientRequest::Submit(share) => self.submit(id, share).await,
            // A hint only: the proxy's vardiff decides.
            ClientRequest::SuggestDifficulty(_) => {
                self.send(&ServerMessage::result(id, json!(true)).encode())
                    .await
            }
        }
    }

    async fn configure(&mut self, id: RequestId, mask: Option<u32>) -> Result<(), End> {
        let granted = match mask {
            Some(requested) => {
                self.requested_mask = Some(requested);
                self.ensure_placement().await;
                let upstream_mask = self
                    .placement
                    .as_ref()
                    .map_or(0, |p| p.upstream.version_mask());
                Some(requested & upstream_mask)
            }
            None => None,
        };
        self.session.set_version_mask(granted.unwrap_or(0));
        let result = ConfigureResult {
            version_rolling_mask: granted,
        };
        self.send(&ServerMessage::result(id, result.to_json()).encode())
            .await
    }

    async fn subscribe(&mut self, id: RequestId) -> Result<(), End> {
        self.ensure_placement().await;
        let Some(p) = &self.placement else {
            // No pool of the owner is up: the miner retries, as it would with a dead pool.
            self.protocol_error();
            return self
                .send(&ServerMessage::error(Some(id), StratumErrorCode::Other).encode())
                .await;
        };
        let extranonce1 = p.upstream.miner_extranonce1(&p.prefix);
        let extranonce2_size = p.upstream.miner_extranonce2_size();
        self.session
            .subscribe(extranonce1.clone(), extranonce2_size);
        self.subscribed = true;
        let tag = format!("{:x}", p.upstream.id);
        let result = SubscribeResult {
            subscriptions: vec![
                ("mining.set_difficulty".into(), tag.clone()),
                ("mining.notify".into(), tag),
            ],
            extranonce1,
            extranonce2_size,
        };
        self.send(&ServerMessage::result(id, result.to_json()).encode())
            .await?;
        self.send_work(true).await
    }

    async fn authorize(&mut self, id: RequestId, worker: String) -> Result<(), End> {
        if !self.may_mine_as(&worker) {
            tracing::warn!(miner = %self.ctx.ip, miner_id = %self.ctx.admission.miner_id, user = %worker, "unsanctioned user refused");
            self.ctx.live.refuse_user(self.ctx.ip, &worker);
            let reply = ServerMessage::error(Some(id), StratumErrorCode::UnauthorizedWorker);
            return self.send(&reply.encode()).await;
        }
        self.session.authorize(&worker);
        self.ctx
            .live
            .update(self.ctx.ip, |m| m.authorized_user = Some(worker));
        self.send(&ServerMessage::result(id, json!(true)).encode())
            .await
    }

    /// A miner's own sanctioned identities; any identity when it has none, unless it is
    /// quarantined.
    fn may_mine_as(&self, worker: &str) -> bool {
        let sanctioned = &self.ctx.admission.sanctioned_users;
        if sanctioned.is_empty() {
            return !self.quarantined();
        }
        sanctioned.iter().any(|u| u == worker)
    }

    fn quarantined(&self) -> bool {
        self.ctx.admission.quarantined || self.ctx.live.is_quarantined(self.ctx.ip)
    }

    async fn submit(&mut self, id: RequestId, share: Submit) -> Result<(), End> {
        let validated = if self.may_mine_as(&share.worker) {
            self.session.submit(&share)
        } else {
            Err(ShareReject::Unauthorized(share.worker.clone()))
        };
        let accepted = match validated {
            Ok(accepted) => accepted,
            Err(reject) => {
                let outcome = match &reject {
                    ShareReject::StaleJob(_) => Outcome::Stale,
                    other => Outcome::Rejected(reject_reason(other)),
                };
                self.ctx.accounting.record_detached(self.record(outcome));
                let reply = ServerMessage::error(Some(id), reject.code());
                return self.send(&reply.encode()).await;
            }
        };
        if let Some(p) = &self.placement {
            let hash = hash_to_be(&accepted.hash);
            let on_this_upstream = share
                .job_id
                .split_once('.')
                .is_some_and(|(up, _)| up == format!("{:x}", p.upstream.id));
            if on_this_upstream && (accepted.is_block || p.upstream.target().is_met_by(&hash)) {
                forward(p, &self.ctx.admission, &share);
            }
        }
        let change = if self.vardiff_settling {
            None
        } else {
            self.vardiff.on_share(Instant::now())
        };
        let committed = self
            .ctx
            .accounting
            .record(self.record(Outcome::Accepted))
            .await;
        let reply = if committed {
            ServerMessage::result(id, json!(true))
        } else {
            ServerMessage::error(Some(id), StratumErrorCode::Other)
        };
        self.send(&reply.encode()).await?;
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.ctx
            .live
            .update(self.ctx.ip, |m| m.last_share_unix = Some(now_unix));
        match change {
            Some(difficulty) => self.change_difficulty(difficulty).await,
            None => Ok(()),
        }
    }

    fn record(&self, outcome: Outcome) -> ShareRecord {
        ShareRecord {
            miner_id: self.ctx.admission.miner_id.clone(),
            owner: self.ctx.admission.owner.clone(),
            outcome,
            difficulty: self.enforced_difficulty,
        }
    }

    /// Vardiff: `mining.set_difficulty` goes to the miner now and, as miners do, applies with
    /// the notify that follows it (the pool's next job); a rise is enforced once that job has
    /// replaced the old work (`tighten`), a fall at once.
    async fn change_difficulty(&mut self, difficulty: f64) -> Result<(), End> {
        if difficulty < self.enforced_difficulty {
            self.enforce(difficulty);
            self.tighten = Tighten::No;
        } else {
            self.tighten = Tighten::AfterNextJob;
        }
        self.vardiff_settling = true;
        self.ctx
            .live
            .update(self.ctx.ip, |m| m.difficulty = difficulty);
        if self.subscribed {
            self.send(&ServerMessage::SetDifficulty(difficulty).encode())
                .await?;
        }
        Ok(())
    }

    fn enforce(&mut self, difficulty: f64) {
        if self.session.set_difficulty(difficulty) {
            self.enforced_difficulty = difficulty;
        }
    }

    async fn on_tick(&mut self) -> Result<(), End> {
        let now = Instant::now();
        if let Tighten::At(at) = self.tighten
            && now >= at
        {
            self.tighten = Tighten::No;
            self.enforce(self.vardiff.difficulty());
        }
        if self.placement.is_none() && self.subscribed {
            return self.move_upstream().await;
        }
        if !self.subscribed || self.vardiff_settling {
            return Ok(());
        }
        match self.vardiff.on_tick(now) {
            Some(difficulty) => self.change_difficulty(difficulty).await,
            None => Ok(()),
        }
    }

    /// A new job on the miner's upstream.
    async fn on_feed(&mut self) -> Result<(), End> {
        if !self.subscribed {
            return Ok(());
        }
        self.send_work(false).await
    }

    /// Sends the upstream's latest job if the miner does not have it; `fresh`: as a clean job
    /// with the difficulty before it (after subscribe or a move).
    async fn send_work(&mut self, fresh: bool) -> Result<(), End> {
        let Some(p) = &mut self.placement else {
            return Ok(());
        };
        let Some(job) = p.feed.borrow_and_update().job.clone() else {
            return Ok(());
        };
        if !fresh && self.last_job.as_ref().is_some_and(|j| Arc::ptr_eq(j, &job)) {
            return Ok(());
        }
        let job = if fresh && !job.notify.clean_jobs {
            let mut clean = (*job).clone();
            clean.notify.clean_jobs = true;
            Arc::new(clean)
        } else {
            job
        };
        match self.tighten {
            // The old work is stale now: the new difficulty holds at once.
            Tighten::AfterNextJob | Tighten::At(_) if job.notify.clean_jobs => {
                self.tighten = Tighten::No;
                self.enforce(self.vardiff.difficulty());
            }
            Tighten::AfterNextJob => {
                self.tighten = Tighten::At(Instant::now() + DIFFICULTY_GRACE);
            }
            _ => {}
        }
        if std::mem::take(&mut self.vardiff_settling) {
            self.vardiff.restart(Instant::now());
        }
        self.session.add_job(job.clone());
        self.last_job = Some(job.clone());
        let mut out = String::new();
        if fresh {
            out.push_str(&ServerMessage::SetDifficulty(self.vardiff.difficulty()).encode());
        }
        out.push_str(&ServerMessage::Notify(job.notify.clone()).encode());
        self.send(&out).await
    }

    /// A place on an upstream, if the miner has none yet.
    async fn ensure_placement(&mut self) {
        if self.placement.is_some() {
            return;
        }
        let deadline = Instant::now() + self.ctx.settings.failover.connect_timeout();
        if let Some((upstream, prefix)) = self.ctx.pools.assign(deadline).await {
            self.place(upstream, prefix);
        }
    }

    fn place(&mut self, upstream: Arc<Upstream>, prefix: Vec<u8>) {
        let url = upstream.pool.url.clone();
        self.ctx
            .live
            .update(self.ctx.ip, |m| m.upstream_pool = Some(url));
        self.placement = Some(Placement {
            feed: upstream.feed(),
            upstream,
            prefix,
        });
    }

    /// The upstream died or was retired: move to the owner's active pool. A miner that
    /// subscribed to extranonce changes gets the new extranonce in place; any other is told to
    /// reconnect and gets it with a fresh subscription.
    async fn move_upstream(&mut self) -> Result<(), End> {
        if let Some(old) = self.placement.take() {
            old.upstream.detach(&old.prefix);
            self.ctx
                .live
                .update(self.ctx.ip, |m| m.upstream_pool = None);
        }
        if !self.subscribed {
            return Ok(()); // placed again at subscribe
        }
        if !self.extranonce_subscribed {
            let reconnect = json!({"id": null, "method": "client.reconnect", "params": []});
            self.send(&format!("{reconnect}\n")).await?;
            return Err(End::Reconnect);
        }
        self.ensure_placement().await;
        let Some(p) = &self.placement else {
            return Ok(()); // retried on the next tick
        };
        let extranonce1 = p.upstream.miner_extranonce1(&p.prefix);
        let extranonce2_size = p.upstream.miner_extranonce2_size();
        let mask = self.requested_mask.map(|m| m & p.upstream.version_mask());
        self.session
            .subscribe(extranonce1.clone(), extranonce2_size);
        let mut out = ServerMessage::SetExtranonce {
            extranonce1,
            extranonce2_size,
        }
        .encode();
        if let Some(mask) = mask {
            self.session.set_version_mask(mask);
            out.push_str(&ServerMessage::SetVersionMask(mask).encode());
        }
        self.send(&out).await?;
        self.send_work(true).await
    }

    fn protocol_error(&self) {
        self.ctx
            .live
            .update(self.ctx.ip, |m| m.protocol_errors += 1);
    }

    /// Writes to the miner; a miner that stops reading for `WRITE_TIMEOUT` is let go rather
    /// than holding its session (and its extranonce prefix) forever.
    async fn send(&mut self, text: &str) -> Result<(), End> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.writer.write_all(text.as_bytes())).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(End::Closed),
        }
    }
}

fn forward(p: &Placement, admission: &Admission, share: &Submit) {
    let Some(pool_job) = pool_job_id(&share.job_id) else {
        return;
    };
    let mut extranonce2 = p.prefix.clone();
    extranonce2.extend_from_slice(&share.extranonce2);
    p.upstream.forward(Forward {
        submit: Submit {
            worker: p.upstream.pool.user.clone(),
            job_id: pool_job.to_string(),
            extranonce2,
            ntime: share.ntime,
            nonce: share.nonce,
            version_bits: share.version_bits,
        },
        miner_id: admission.miner_id.clone(),
        owner: admission.owner.clone(),
        difficulty: p.upstream.difficulty(),
    });
}

/// The id of a line that did not parse as a request, so the error can still be matched.
fn request_id(line: &[u8]) -> Option<RequestId> {
    match serde_json::from_slice::<Value>(line).ok()?.get("id")? {
        Value::Number(n) => n.as_u64().map(RequestId::Number),
        Value::String(s) => Some(RequestId::Text(s.chars().take(64).collect())),
        _ => None,
    }
}

fn reject_reason(reject: &ShareReject) -> &'static str {
    match reject {
        ShareReject::NotSubscribed => "not_subscribed",
        ShareReject::Unauthorized(_) => "unauthorized",
        ShareReject::JobNotFound(_) => "job_not_found",
        ShareReject::StaleJob(_) => "stale",
        ShareReject::Extranonce2Size { .. } => "extranonce2_size",
        ShareReject::NtimeOutOfRange { .. } => "ntime_out_of_range",
        ShareReject::VersionBitsOutsideMask { .. } => "version_bits",
        ShareReject::Duplicate => "duplicate",
        ShareReject::LowDifficulty { .. } => "low_difficulty",
    }
}
