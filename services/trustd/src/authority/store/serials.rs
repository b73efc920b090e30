//! Serial numbers in the store: durable before the TPM signs, reserved many at a time.
//!
//! A serial must be on disk before the TPM signs a certificate carrying it ([`SerialLedger`]),
//! so that a crash can waste a serial but never reuse one. Reserving each serial in a durable
//! transaction of its own cost one `fsync` per certificate, on top of the one the
//! transparency-log append needs. So the store reserves [`SERIAL_BLOCK`] random serials in one
//! durable transaction and hands them out one at a time from memory ([`SerialLedger::assign`]).
//! Until it is used, a serial of a block is `reserved` like any other. A clean stop abandons
//! the unused rest of the block; after a crash the next start does, since it abandons every
//! `reserved` serial ([`crate::authority::reconcile`]). Either way those serials are skipped and
//! never drawn again, like a serial whose issuance was cut short. No row is deleted.
//!
//! Who asked (profile and requester) is written on a serial when it is handed out, in a
//! transaction that is not flushed ([`CertStore::write_unflushed`]): it survives the process
//! being killed, so a row rebuilt from the log after a crash still names its requester. A
//! power cut before the next durable commit can lose the label; such a row is rebuilt without
//! one, as after restoring an old backup.
//!
//! The CA draws the serial inside its own `issue`; the authority learns which serial that was
//! through a [`ReservationScope`], to settle it if issuance fails: abandoned for good, or, if
//! the TPM refused to sign at all, handed back to be used by the next issuance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::thread::ThreadId;

use rusqlite::{OptionalExtension, params};

use super::{CertStore, lock};
use crate::authority::error::AuthorityError;
use crate::ca::serial::SERIAL_ATTEMPTS;
use crate::ca::{CertificateSerial, Profile, SerialError, SerialLedger};

/// Serials reserved by one durable transaction. A crash or restart abandons at most this many
/// unused ones; at 250 certificates a second it is one `fsync` every quarter second.
pub const SERIAL_BLOCK: usize = 64;

/// The state of a serial number in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SerialState {
    /// Drawn and durable; not (yet) known to be in a logged certificate.
    Reserved,
    /// In a certificate in the transparency log.
    Issued,
    /// Never in a logged certificate, and never to be used.
    Abandoned,
    /// The serial of the CA's own certificate.
    Ca,
}

impl SerialState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "reserved",
            Self::Issued => "issued",
            Self::Abandoned => "abandoned",
            Self::Ca => "ca",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Reserved, Self::Issued, Self::Abandoned, Self::Ca]
            .into_iter()
            .find(|state| state.as_str() == text)
    }
}

/// The serials reserved ahead, and those each running issuance was given.
#[derive(Debug, Default)]
pub(super) struct Reservations {
    /// Durably `reserved`, handed out to no one yet.
    unused: Mutex<Vec<CertificateSerial>>,
    /// By the thread running an issuance: who asked, and the serials it was given.
    pending: Mutex<HashMap<ThreadId, Pending>>,
}

/// Who asked for the serials the current thread is given, so a row rebuilt from the log after
/// a crash still knows its profile and requester.
#[derive(Debug, Default)]
struct Pending {
    profile: Option<Profile>,
    requester: Option<String>,
    serials: Vec<CertificateSerial>,
}

impl CertStore {
    /// Starts collecting the serials this thread is given, labelled with who asked; the
    /// returned scope hands them back.
    pub(in crate::authority) fn reservations(
        &self,
        profile: Option<Profile>,
        requester: Option<&str>,
    ) -> ReservationScope<'_> {
        let pending = Pending {
            profile,
            requester: requester.map(str::to_owned),
            serials: Vec::new(),
        };
        lock(&self.serials.pending).insert(std::thread::current().id(), pending);
        ReservationScope { store: self }
    }

    /// Marks reserved `serials` as never used by a logged certificate.
    pub(in crate::authority) fn abandon(
        &self,
        serials: &[CertificateSerial],
    ) -> Result<(), AuthorityError> {
        self.set_reserved_state(serials, SerialState::Abandoned)
    }

    /// Marks reserved `serials` as used by the CA's own certificate.
    pub(in crate::authority) fn mark_ca(
        &self,
        serials: &[CertificateSerial],
    ) -> Result<(), AuthorityError> {
        self.set_reserved_state(serials, SerialState::Ca)
    }

    /// Hands reserved `serials` back for the next issuance: only for serials the TPM refused
    /// to sign with, which no certificate can carry. They stay `reserved` on disk, so a crash
    /// before they are used again abandons them like the rest of their block.
    pub(in crate::authority) fn release(
        &self,
        serials: &[CertificateSerial],
    ) -> Result<(), AuthorityError> {
        lock(&self.serials.unused).extend_from_slice(serials);
        Ok(())
    }

    fn set_reserved_state(
        &self,
        serials: &[CertificateSerial],
        state: SerialState,
    ) -> Result<(), AuthorityError> {
        self.write("settle reserved serial numbers", |tx| {
            for serial in serials {
                tx.execute(
                    "UPDATE serials SET state = ?2 WHERE serial = ?1 AND state = 'reserved'",
                    params![serial.as_bytes(), state.as_str()],
                )?;
            }
            Ok(())
        })
    }

    /// The state of `serial`, if it was ever drawn.
    pub fn serial_state(
        &self,
        serial: &CertificateSerial,
    ) -> Result<Option<SerialState>, AuthorityError> {
        let state: Option<String> = self.read("look up a serial number", |db| {
            db.query_row(
                "SELECT state FROM serials WHERE serial = ?1",
                [serial.as_bytes()],
                |row| row.get(0),
            )
            .optional()
        })?;
        Ok(state.as_deref().and_then(SerialState::parse))
    }

    /// How many serials are in each state, for diagnostics and tests. The `reserved` ones
    /// include the [`CertStore::unused_serials`] of the current block.
    pub fn serial_counts(&self) -> Result<HashMap<SerialState, u64>, AuthorityError> {
        let rows: Vec<(String, i64)> = self.read("count serial numbers", |db| {
            let mut statement = db.prepare("SELECT state, count(*) FROM serials GROUP BY state")?;
            let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(state, count)| Some((SerialState::parse(&state)?, count as u64)))
            .collect())
    }

    /// How many serials are reserved ahead and not handed out yet.
    pub fn unused_serials(&self) -> usize {
        lock(&self.serials.unused).len()
    }

    /// Abandons the serials reserved ahead and never handed out: at a clean stop, so the next
    /// start has nothing to settle. If that fails, the next start abandons them.
    pub(super) fn abandon_unused(&self) {
        let unused = std::mem::take(&mut *lock(&self.serials.unused));
        if unused.is_empty() {
            return;
        }
        if let Err(error) = self.abandon(&unused) {
            tracing::warn!(%error, "the unused serial numbers are abandoned at the next start");
        }
    }

    /// A durably reserved serial no one was given yet; reserves a new block when none is left.
    fn take_unused(&self) -> Result<CertificateSerial, SerialError> {
        let mut unused = lock(&self.serials.unused);
        if unused.is_empty() {
            *unused = self.reserve_block(CertificateSerial::random)?;
        }
        unused.pop().ok_or(SerialError::Exhausted)
    }

    /// Draws [`SERIAL_BLOCK`] serials from `draw` and reserves them in one durable transaction.
    /// A serial that was already in the store is skipped; [`SERIAL_ATTEMPTS`] of them in one
    /// block mean the random source is broken, and issuance stops.
    fn reserve_block(
        &self,
        mut draw: impl FnMut() -> Result<CertificateSerial, SerialError>,
    ) -> Result<Vec<CertificateSerial>, SerialError> {
        let drawn = (0..SERIAL_BLOCK)
            .map(|_| draw())
            .collect::<Result<Vec<_>, _>>()?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let fresh = self
            .write("reserve a block of serial numbers", |tx| {
                let mut insert = tx.prepare(
                    "INSERT INTO serials (serial, state, reserved_at) VALUES (?1, 'reserved', ?2)
                     ON CONFLICT (serial) DO NOTHING",
                )?;
                let mut fresh = Vec::with_capacity(drawn.len());
                for serial in &drawn {
                    if insert.execute(params![serial.as_bytes(), now])? == 1 {
                        fresh.push(*serial);
                    } else {
                        tracing::error!(%serial, "a random serial number was already used; skipping it");
                    }
                }
                Ok(fresh)
            })
            .map_err(ledger_error)?;
        if drawn.len() - fresh.len() >= SERIAL_ATTEMPTS {
            // The fresh ones stay `reserved`, unused, and are abandoned at the next start.
            return Err(SerialError::Exhausted);
        }
        Ok(fresh)
    }
}

impl SerialLedger for CertStore {
    /// Inserts the serial as `reserved`, durably, labelled with the profile and requester of
    /// the issuance running on this thread (see `CertStore::reservations`).
    fn reserve(&self, serial: &CertificateSerial) -> Result<bool, SerialError> {
        let thread = std::thread::current().id();
        let (profile, requester) = self.labels(thread);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let inserted = self
            .write("reserve a serial number", |tx| {
                tx.execute(
                    "INSERT INTO serials (serial, state, profile, requester, reserved_at)
                     VALUES (?1, 'reserved', ?2, ?3, ?4) ON CONFLICT (serial) DO NOTHING",
                    params![serial.as_bytes(), profile, requester, now],
                )
            })
            .map_err(ledger_error)?;
        if inserted == 1 {
            self.note_given(thread, *serial);
        }
        Ok(inserted == 1)
    }

    /// Hands out a serial of the current block (reserving a new block when it is used up), and
    /// labels it with the profile and requester of the issuance running on this thread.
    fn assign(&self) -> Result<CertificateSerial, SerialError> {
        let serial = self.take_unused()?;
        let thread = std::thread::current().id();
        let (profile, requester) = self.labels(thread);
        // On failure the serial stays `reserved`, given to no one; the next start abandons it.
        self.write_unflushed("label a serial number with who asked for it", |tx| {
            tx.prepare_cached("UPDATE serials SET profile = ?2, requester = ?3 WHERE serial = ?1")?
                .execute(params![serial.as_bytes(), profile, requester])
        })
        .map_err(ledger_error)?;
        self.note_given(thread, serial);
        Ok(serial)
    }
}

impl CertStore {
    /// The profile name and requester of the issuance running on `thread`, if any.
    fn labels(&self, thread: ThreadId) -> (Option<&'static str>, Option<String>) {
        lock(&self.serials.pending)
            .get(&thread)
            .map(|p| (p.profile.map(|p| p.name()), p.requester.clone()))
            .unwrap_or_default()
    }

    /// Remembers that the issuance running on `thread` was given `serial`.
    fn note_given(&self, thread: ThreadId, serial: CertificateSerial) {
        if let Some(pending) = lock(&self.serials.pending).get_mut(&thread) {
            pending.serials.push(serial);
        }
    }
}

fn ledger_error(error: AuthorityError) -> SerialError {
    SerialError::Ledger(error.to_string())
}

/// The serials one thread was given during one operation; dropping it stops the collection.
pub(in crate::authority) struct ReservationScope<'a> {
    store: &'a CertStore,
}

impl ReservationScope<'_> {
    /// The serials given since the scope began.
    pub(in crate::authority) fn finish(self) -> Vec<CertificateSerial> {
        lock(&self.store.serials.pending)
            .remove(&std::thread::current().id())
            .map(|pending| pending.serials)
            .unwrap_or_default()
    }
}

impl Drop for ReservationScope<'_> {
    fn drop(&mut self) {
        lock(&self.store.serials.pending).remove(&std::thread::current().id());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, CertStore) {
        let dir = tempfile::TempDir::new().unwrap();
        let store = CertStore::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn a_block_is_reserved_at_once_and_handed_out_one_serial_at_a_time() {
        let (_dir, store) = store();
        let scope = store.reservations(Some(Profile::Device), Some("test:block"));
        let first = store.assign().unwrap();
        assert_eq!(store.unused_serials(), SERIAL_BLOCK - 1);
        let counts = store.serial_counts().unwrap();
        assert_eq!(counts[&SerialState::Reserved], SERIAL_BLOCK as u64);
        let mut given = std::collections::HashSet::from([first]);
        for _ in 0..SERIAL_BLOCK {
            assert!(
                given.insert(store.assign().unwrap()),
                "a serial handed out twice"
            );
        }
        // The block ran out and a second one was reserved.
        assert_eq!(store.unused_serials(), SERIAL_BLOCK - 1);
        assert_eq!(scope.finish().len(), SERIAL_BLOCK + 1);
        let labelled: (Option<String>, Option<String>) = store
            .read("read a label", |db| {
                db.query_row(
                    "SELECT profile, requester FROM serials WHERE serial = ?1",
                    [first.as_bytes()],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
            })
            .unwrap();
        assert_eq!(
            labelled,
            (Some("device".to_owned()), Some("test:block".to_owned()))
        );
    }

    #[test]
    fn the_unused_rest_of_a_block_is_abandoned_at_a_stop_or_the_next_start() {
        let (dir, store) = store();
        let used = store.assign().unwrap();
        let unused: Vec<_> = lock(&store.serials.unused).clone();
        drop(store); // a clean stop: only what an issuance was given stays for the start
        for serial in &unused {
            assert_eq!(store_state(&dir, serial), Some(SerialState::Abandoned));
        }
        assert_eq!(store_state(&dir, &used), Some(SerialState::Reserved));

        let store = CertStore::open(dir.path()).unwrap();
        assert_eq!(store.abandon_unlogged().unwrap(), 1);
        let used = store.assign().unwrap();
        let unused: Vec<_> = lock(&store.serials.unused).clone();
        std::mem::forget(store); // killed: nothing runs at the end

        let store = CertStore::open(dir.path()).unwrap();
        assert_eq!(store.abandon_unlogged().unwrap(), SERIAL_BLOCK);
        for serial in unused.iter().chain([&used]) {
            assert_eq!(
                store.serial_state(serial).unwrap(),
                Some(SerialState::Abandoned)
            );
        }
        let fresh = store.assign().unwrap();
        assert!(!unused.contains(&fresh) && fresh != used);
    }

    fn store_state(dir: &tempfile::TempDir, serial: &CertificateSerial) -> Option<SerialState> {
        CertStore::open(dir.path())
            .unwrap()
            .serial_state(serial)
            .unwrap()
    }

    #[test]
    fn a_serial_the_tpm_refused_to_sign_with_is_handed_out_again() {
        let (_dir, store) = store();
        let refused = store.assign().unwrap();
        store.release(&[refused]).unwrap();
        assert_eq!(store.assign().unwrap(), refused);
        assert_eq!(
            store.serial_state(&refused).unwrap(),
            Some(SerialState::Reserved)
        );
    }

    #[test]
    fn a_random_source_that_repeats_itself_stops_issuance() {
        let (_dir, store) = store();
        let stuck = CertificateSerial::from_random_bytes([0x42; 16]);
        let error = store.reserve_block(|| Ok(stuck)).unwrap_err();
        assert!(matches!(error, SerialError::Exhausted), "{error}");
        // The one serial that was new stays reserved, never handed out.
        assert_eq!(store.unused_serials(), 0);
        assert_eq!(
            store.serial_state(&stuck).unwrap(),
            Some(SerialState::Reserved)
        );
        assert!(matches!(
            store.reserve_block(|| Ok(stuck)),
            Err(SerialError::Exhausted)
        ));
    }
}
