//! The miners table: what discovery saw, what the operator set, and each miner's state.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::str::FromStr;

use ipnet::Ipv4Net;
use rusqlite::{OptionalExtension, Row, params};

use super::{Inventory, InventoryError};
use crate::cgminer::FirmwareKind;

/// The inventory's own key for a miner; stable while its address changes hands in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MinerId(pub i64);

/// What a miner is doing as far as minerd is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MinerState {
    /// Found and allowed to mine.
    Active,
    /// Caught mining where it should not; its work is refused until an operator releases it.
    Quarantined,
    /// Put to sleep (curtailment or an operator); it answers the API but does not hash.
    Sleeping,
    /// Not found by the last scans; kept so that its history and owner survive a reboot.
    Missing,
}

impl MinerState {
    pub fn as_str(self) -> &'static str {
        match self {
            MinerState::Active => "active",
            MinerState::Quarantined => "quarantined",
            MinerState::Sleeping => "sleeping",
            MinerState::Missing => "missing",
        }
    }

    pub const ALL: [MinerState; 4] = [
        MinerState::Active,
        MinerState::Quarantined,
        MinerState::Sleeping,
        MinerState::Missing,
    ];
}

impl FromStr for MinerState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        MinerState::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| format!("unknown miner state '{s}'"))
    }
}

fn firmware_name(kind: FirmwareKind) -> &'static str {
    match kind {
        FirmwareKind::Cgminer => "cgminer",
        FirmwareKind::Bmminer => "bmminer",
        FirmwareKind::Bosminer => "bosminer",
        FirmwareKind::Luxos => "luxos",
        FirmwareKind::Unknown => "unknown",
    }
}

fn firmware_from_name(name: &str) -> FirmwareKind {
    match name {
        "cgminer" => FirmwareKind::Cgminer,
        "bmminer" => FirmwareKind::Bmminer,
        "bosminer" => FirmwareKind::Bosminer,
        "luxos" => FirmwareKind::Luxos,
        _ => FirmwareKind::Unknown,
    }
}

/// One miner as the inventory knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct MinerRecord {
    pub id: MinerId,
    pub addr: SocketAddrV4,
    pub mac: Option<String>,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub firmware: FirmwareKind,
    pub firmware_version: Option<String>,
    pub location: String,
    pub owner: String,
    pub power_target_w: Option<f64>,
    pub state: MinerState,
    /// Scans in a row that did not find it.
    pub missed_scans: u32,
    /// Unix seconds.
    pub first_seen: i64,
    pub last_seen: i64,
}

/// A miner a discovery scan identified, with the owner and location its range gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    pub addr: SocketAddrV4,
    pub model: Option<String>,
    pub firmware: FirmwareKind,
    pub firmware_version: Option<String>,
    pub mac: Option<String>,
    pub serial: Option<String>,
    pub owner: String,
    pub location: String,
}

/// What one scan changed in the inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanChanges {
    pub new: Vec<SocketAddrV4>,
    /// Known miners whose model or firmware differs from last time.
    pub changed: Vec<SocketAddrV4>,
    /// Known miners that this scan marked missing (missed `missing_after` scans in a row).
    pub missing: Vec<SocketAddrV4>,
}

/// Which miners [`Inventory::list`] returns; `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MinerFilter {
    pub owner: Option<String>,
    pub location: Option<String>,
    pub states: Option<Vec<MinerState>>,
}

impl MinerFilter {
    fn matches(&self, m: &MinerRecord) -> bool {
        self.owner.as_ref().is_none_or(|o| *o == m.owner)
            && self.location.as_ref().is_none_or(|l| *l == m.location)
            && self.states.as_ref().is_none_or(|s| s.contains(&m.state))
    }
}

const SELECT_MINERS: &str = "SELECT id, ip, port, mac, serial, model, firmware, firmware_version,
    location, owner, power_target_w, state, missed_scans, first_seen, last_seen FROM miners";

fn read_record(row: &Row<'_>) -> rusqlite::Result<Result<MinerRecord, String>> {
    let ip: String = row.get(1)?;
    let port: i64 = row.get(2)?;
    let state: String = row.get(11)?;
    let firmware: String = row.get(6)?;
    let addr = match (Ipv4Addr::from_str(&ip), u16::try_from(port)) {
        (Ok(ip), Ok(port)) => SocketAddrV4::new(ip, port),
        _ => return Ok(Err(format!("miner address {ip}:{port}"))),
    };
    let state = match MinerState::from_str(&state) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(MinerRecord {
        id: MinerId(row.get(0)?),
        addr,
        mac: row.get(3)?,
        serial: row.get(4)?,
        model: row.get(5)?,
        firmware: firmware_from_name(&firmware),
        firmware_version: row.get(7)?,
        location: row.get(8)?,
        owner: row.get(9)?,
        power_target_w: row.get(10)?,
        state,
        missed_scans: row.get::<_, i64>(12)?.clamp(0, u32::MAX as i64) as u32,
        first_seen: row.get(13)?,
        last_seen: row.get(14)?,
    }))
}

impl Inventory {
    /// Every miner matching `filter`, in id order.
    pub fn list(&self, filter: &MinerFilter) -> Result<Vec<MinerRecord>, InventoryError> {
        let db = self.connection();
        let all = query_records(&db, &format!("{SELECT_MINERS} ORDER BY id"), [])
            .map_err(self.sqlite("list miners"))?;
        let mut out = Vec::with_capacity(all.len());
        for record in all {
            let record = record.map_err(|r| self.corrupt(r))?;
            if filter.matches(&record) {
                out.push(record);
            }
        }
        Ok(out)
    }

    pub fn get(&self, id: MinerId) -> Result<Option<MinerRecord>, InventoryError> {
        let db = self.connection();
        let found = db
            .query_row(
                &format!("{SELECT_MINERS} WHERE id = ?1"),
                [id.0],
                read_record,
            )
            .optional()
            .map_err(self.sqlite("read a miner"))?;
        found.transpose().map_err(|r| self.corrupt(r))
    }

    pub fn find(&self, addr: SocketAddrV4) -> Result<Option<MinerRecord>, InventoryError> {
        let db = self.connection();
        let found = db
            .query_row(
                &format!("{SELECT_MINERS} WHERE ip = ?1 AND port = ?2"),
                params![addr.ip().to_string(), addr.port()],
                read_record,
            )
            .optional()
            .map_err(self.sqlite("find a miner"))?;
        found.transpose().map_err(|r| self.corrupt(r))
    }

    pub fn set_owner(&self, id: MinerId, owner: &str) -> Result<(), InventoryError> {
        self.update_one(id, "UPDATE miners SET owner = ?2 WHERE id = ?1", owner)
    }

    pub fn set_location(&self, id: MinerId, location: &str) -> Result<(), InventoryError> {
        self.update_one(
            id,
            "UPDATE miners SET location = ?2 WHERE id = ?1",
            location,
        )
    }

    pub fn set_state(&self, id: MinerId, state: MinerState) -> Result<(), InventoryError> {
        self.update_one(
            id,
            "UPDATE miners SET state = ?2 WHERE id = ?1",
            state.as_str(),
        )
    }

    pub fn set_power_target(&self, id: MinerId, watts: Option<f64>) -> Result<(), InventoryError> {
        self.update_one(
            id,
            "UPDATE miners SET power_target_w = ?2 WHERE id = ?1",
            watts,
        )
    }

    fn update_one(
        &self,
        id: MinerId,
        sql: &str,
        value: impl rusqlite::ToSql,
    ) -> Result<(), InventoryError> {
        let db = self.connection();
        let changed = db
            .execute(sql, params![id.0, value])
            .map_err(self.sqlite("update a miner"))?;
        if changed == 0 {
            return Err(InventoryError::UnknownMiner(id.0));
        }
        Ok(())
    }

    /// Records one discovery scan over `scanned` in one transaction: sightings are inserted or
    /// refreshed (a missing miner found again is active again); addresses in `answered` (a
    /// listener that did not identify itself, e.g. hung) count as present; every other known
    /// miner inside the scanned ranges misses a scan and becomes missing after
    /// `missing_after` misses in a row. Owner and location come from the sighting only for a
    /// new miner: an operator's later change is kept.
    pub fn apply_scan(
        &self,
        sightings: &[Sighting],
        answered: &[SocketAddrV4],
        scanned: &[Ipv4Net],
        missing_after: u32,
        now: i64,
    ) -> Result<ScanChanges, InventoryError> {
        let mut db = self.connection();
        let tx = db.transaction().map_err(self.sqlite("begin a scan"))?;
        let mut known = HashMap::new();
        for record in query_records(&tx, SELECT_MINERS, []).map_err(self.sqlite("read miners"))? {
            let record = record.map_err(|r| self.corrupt(r))?;
            known.insert(record.addr, record);
        }
        let mut changes = ScanChanges::default();
        let sighted: HashSet<SocketAddrV4> = sightings.iter().map(|s| s.addr).collect();
        let answered: HashSet<SocketAddrV4> = answered.iter().copied().collect();
        for s in sightings {
            match known.get(&s.addr) {
                None => {
                    insert_sighting(&tx, s, now).map_err(self.sqlite("add a miner"))?;
                    changes.new.push(s.addr);
                }
                Some(old) => {
                    if old.model != s.model
                        || old.firmware != s.firmware
                        || old.firmware_version != s.firmware_version
                    {
                        changes.changed.push(s.addr);
                    }
                    refresh_sighting(&tx, old.id, s, now)
                        .map_err(self.sqlite("refresh a miner"))?;
                }
            }
        }
        for old in known.values() {
            let in_scan = scanned.iter().any(|n| n.contains(old.addr.ip()));
            if !in_scan || sighted.contains(&old.addr) {
                continue;
            }
            if answered.contains(&old.addr) {
                tx.execute(
                    "UPDATE miners SET missed_scans = 0, last_seen = ?2 WHERE id = ?1",
                    params![old.id.0, now],
                )
                .map_err(self.sqlite("refresh a miner"))?;
                continue;
            }
            let missed = old.missed_scans.saturating_add(1);
            let goes_missing = missed >= missing_after && old.state != MinerState::Missing;
            let state = if goes_missing {
                changes.missing.push(old.addr);
                MinerState::Missing
            } else {
                old.state
            };
            tx.execute(
                "UPDATE miners SET missed_scans = ?2, state = ?3 WHERE id = ?1",
                params![old.id.0, missed, state.as_str()],
            )
            .map_err(self.sqlite("count a missed scan"))?;
        }
        tx.commit().map_err(self.sqlite("commit a scan"))?;
        Ok(changes)
    }
}

fn query_records<P: rusqlite::Params>(
    db: &rusqlite::Connection,
    sql: &str,
    params: P,
) -> rusqlite::Result<Vec<Result<MinerRecord, String>>> {
    let mut statement = db.prepare_cached(sql)?;
    let rows = statement.query_map(params, read_record)?;
    rows.collect()
}

fn insert_sighting(tx: &rusqlite::Transaction<'_>, s: &Sighting, now: i64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO miners (ip, port, mac, serial, model, firmware, firmware_version, location,
            owner, state, missed_scans, first_seen, last_seen)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'active', 0, ?10, ?10)",
        params![
            s.addr.ip().to_string(),
            s.addr.port(),
            s.mac,
            s.serial,
            s.model,
            firmware_name(s.firmware),
            s.firmware_version,
            s.location,
            s.owner,
            now
        ],
    )?;
    Ok(())
}

fn refresh_sighting(
    tx: &rusqlite::Transaction<'_>,
    id: MinerId,
    s: &Sighting,
    now: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE miners SET model = ?2, firmware = ?3, firmware_version = ?4,
            mac = COALESCE(?5, mac), serial = COALESCE(?6, serial), missed_scans = 0,
            last_seen = ?7, state = CASE state WHEN 'missing' THEN 'active' ELSE state END
         WHERE id = ?1",
        params![
            id.0,
            s.model,
            firmware_name(s.firmware),
            s.firmware_version,
            s.mac,
            s.serial,
            now
        ],
    )?;
    Ok(())
}
