//! Signed tree heads and proofs of the transparency log, and the periodic checkpoint.
//!
//! A tree head is signed when someone needs one that covers the log as it is now (a proof
//! request, a checkpoint, a start after entries were recovered), never per certificate: one
//! head covers every entry before it, and a TPM signature per issuance would halve the issuance
//! rate. Every signed head is kept in the store; the newest is checked against the log at each
//! start ([`super::reconcile`]), which is how a truncated or swapped log is caught.

use time::OffsetDateTime;

use super::error::AuthorityError;
use super::issue::now_ms;
use super::{Authority, Operation};
use crate::translog::{ProofBundle, SignedTreeHead, TreeHead};

/// What a checkpoint did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// The size of a tree head signed now, if the log had grown past the last one.
    pub signed_tree_head: Option<u64>,
    /// The number of a CRL signed now, if one was due.
    pub crl_number: Option<u64>,
}

impl Authority {
    /// The newest signed tree head, without signing anything (it may not cover the newest
    /// entries; see [`Authority::signed_tree_head`]).
    pub fn latest_tree_head(&self) -> Result<Option<SignedTreeHead>, AuthorityError> {
        self.store.latest_tree_head()
    }

    /// The tree head of `size` entries the CA signed earlier, if any: what an HTTP client that
    /// kept only a size needs for a consistency proof from it.
    pub fn tree_head_of_size(&self, size: u64) -> Result<Option<SignedTreeHead>, AuthorityError> {
        self.store.tree_head_of_size(size)
    }

    /// A signed tree head that covers the whole log: the stored one if the log has not grown
    /// since, otherwise a new one (one TPM signature). Allowed in lockdown; refused when sealed.
    pub fn signed_tree_head(&self) -> Result<SignedTreeHead, AuthorityError> {
        if let Some(head) = self.store.latest_tree_head()?
            && head.head.size == self.lock_log().size()
        {
            return Ok(head);
        }
        self.sign_tree_head()
    }

    /// Signs the log's current head and keeps it, whatever the last one was.
    fn sign_tree_head(&self) -> Result<SignedTreeHead, AuthorityError> {
        self.ensure_may_sign(Operation::SignTreeHead)?;
        // Held while signing, so the head and the size it names are the log's at one instant,
        // and heads are stored in the order of their sizes.
        let log = self.lock_log();
        let head: TreeHead = log.tree_head(now_ms());
        let signed = head.sign(self.key.as_ref()).map_err(|e| match e {
            crate::translog::TreeHeadError::Sign(source) => self.note_sealed(
                AuthorityError::Sign {
                    what: "tree head",
                    source,
                },
                Operation::SignTreeHead,
            ),
            other => other.into(),
        })?;
        self.store.store_tree_head(&signed)?;
        drop(log);
        tracing::debug!(size = signed.head.size, "signed a tree head");
        Ok(signed)
    }

    /// The proof bundle `bunkerctl ca log verify` checks offline: a signed tree head covering
    /// the log, the inclusion of entry `log_index` (if given) and the consistency from
    /// `old_tree_head` (if given, a head the verifier kept).
    ///
    /// When no new head can be signed (sealed, or stopped after a write failure), the newest
    /// stored head is used if it covers what is asked, so proofs of older entries keep working.
    pub fn proof_bundle(
        &self,
        log_index: Option<u64>,
        old_tree_head: Option<&SignedTreeHead>,
    ) -> Result<ProofBundle, AuthorityError> {
        let head = match self.signed_tree_head() {
            Ok(head) => head,
            Err(error) => match self.store.latest_tree_head()? {
                Some(stored)
                    if log_index.is_none_or(|index| index < stored.head.size)
                        && old_tree_head.is_none_or(|old| old.head.size <= stored.head.size) =>
                {
                    stored
                }
                _ => return Err(error),
            },
        };
        Ok(self
            .lock_log()
            .proof_bundle(&head, log_index, old_tree_head)?)
    }

    /// Periodic upkeep, for trustd's main loop (every few minutes): signs a tree head if the
    /// log grew since the last one, and a new CRL if one is due. Each part is skipped (and
    /// reported) if it is refused, so one cannot starve the other.
    pub fn checkpoint(&self, now: OffsetDateTime) -> (Checkpoint, Vec<AuthorityError>) {
        let mut done = Checkpoint::default();
        let mut refused = Vec::new();
        let grew = match self.store.latest_tree_head() {
            Ok(head) => head.is_none_or(|head| head.head.size < self.lock_log().size()),
            Err(error) => {
                refused.push(error);
                false
            }
        };
        if grew {
            match self.sign_tree_head() {
                Ok(head) => done.signed_tree_head = Some(head.head.size),
                Err(error) => refused.push(error),
            }
        }
        if self.ca_certificate_der().is_some() {
            match self.refresh_crl(now) {
                Ok(number) => done.crl_number = number,
                Err(error) => refused.push(error),
            }
        }
        (done, refused)
    }
}
