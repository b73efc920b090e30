//! kill -9 at random instants of issuance: after each restart the log and the store agree,
//! every logged certificate verifies, and no serial number is ever used twice.
//!
//! The test re-executes its own test binary as a child ([`crash_child_issues_until_killed`],
//! selected with `--exact --ignored`, told what to do through the environment). The child
//! opens the authority on the test's swtpm and state directory and issues (and now and then
//! revokes) from two threads until the parent SIGKILLs it, by PID, at a random moment.
//!
//! swtpm has no resource manager: the objects and sessions a killed process had loaded stay in
//! it. On the appliance the kernel's resource manager (`/dev/tpmrm0`) flushes them when the
//! process dies; here the parent power-cycles the swtpm instead, which also resets the PCRs to
//! the values the key is bound to.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::*;
use crate::ca::Profile;

const CHILD_TEST: &str = "authority::tests::crash::crash_child_issues_until_killed";
const CHILD_TCTI: &str = "TRUSTD_CRASH_TEST_TCTI";
const CHILD_STATE: &str = "TRUSTD_CRASH_TEST_STATE";
/// How often the child is killed.
const ROUNDS: usize = 8;
/// The longest the child runs after its first issuance before the kill.
const MAX_RUN_MS: u64 = 250;
/// How long the child may take to open the authority and issue once.
const PATIENCE: Duration = Duration::from_secs(60);

#[test]
fn kill_9_at_any_instant_leaves_log_and_store_in_agreement_and_reuses_no_serial() {
    let mut site = Site::start();
    let authority = site.open_root();
    issue(&authority, "before-the-crashes");
    drop(authority);
    site.disconnect();
    let logs = TempDir::new().unwrap();
    let mut known = serial_states(&site);
    let mut found = Vec::new();

    for round in 0..ROUNDS {
        let log_len = std::fs::metadata(site.log_path()).unwrap().len();
        let child_log = logs.path().join(format!("child-{round}.log"));
        let mut child = spawn_child(&site, &child_log);
        wait_for_growth(&site, log_len, &mut child, &child_log);
        std::thread::sleep(Duration::from_millis(random_below(MAX_RUN_MS + 1)));
        kill_process(Pid::from_child(&child), Signal::KILL).expect("SIGKILL the child");
        child.wait().unwrap();
        // The kernel's resource manager would flush the dead process's TPM objects.
        site.tpm.restart().unwrap();

        let authority = site.open();
        let found_now = authority.reconciliation().clone();
        check_agreement(&site, &authority, &known);
        let fresh = issue(&authority, &format!("after-round-{round}"));
        assert!(
            !known.contains_key(fresh.certificate.serial.as_bytes().as_slice()),
            "a serial drawn after the restart was already known"
        );
        known = serial_states(&site);
        eprintln!(
            "round {round}: log {} entries, reconciliation {found_now:?}",
            authority.status().unwrap().log_size
        );
        found.push(found_now);
        drop(authority);
        site.disconnect();
    }
    let states: HashMap<&str, usize> = known.values().fold(HashMap::new(), |mut counts, s| {
        *counts.entry(s.as_str()).or_default() += 1;
        counts
    });
    eprintln!("serials after {ROUNDS} kills: {states:?}");
    assert!(states.get("issued").copied().unwrap_or(0) > ROUNDS + 1);
}

/// The child: issues until killed. Does nothing unless started by the test above.
#[test]
#[ignore = "the child process of the kill -9 test; does nothing on its own"]
fn crash_child_issues_until_killed() {
    let (Ok(tcti), Ok(state)) = (std::env::var(CHILD_TCTI), std::env::var(CHILD_STATE)) else {
        return;
    };
    let connection = Arc::new(TpmConnection::open_tcti(&tcti).unwrap());
    let state = StateDir::new(state).unwrap();
    let key = Arc::new(TpmCaKey::load(connection, &state).unwrap().unwrap());
    let authority = Authority::open(key, state, policy(), AuthorityConfig::default()).unwrap();
    // Bounded, so a child whose parent died stops on its own.
    let deadline = Instant::now() + PATIENCE;
    std::thread::scope(|scope| {
        for worker in 0..2 {
            let authority = &authority;
            scope.spawn(move || {
                for i in 0.. {
                    if Instant::now() > deadline {
                        return;
                    }
                    let name = format!("w{worker}-{i}-{}.{SITE}", random_below(1 << 40));
                    let issued = authority
                        .issue(&csr(&[&name]), Profile::Service, None, "crash-child")
                        .unwrap();
                    if i % 4 == 3 {
                        authority
                            .revoke(
                                &issued.certificate.serial,
                                RevocationReason::Superseded,
                                "crash-child",
                            )
                            .unwrap();
                    }
                }
            });
        }
    });
}

fn spawn_child(site: &Site, log: &Path) -> Child {
    Command::new(std::env::current_exe().expect("the test binary"))
        .args([CHILD_TEST, "--exact", "--ignored", "--test-threads=1"])
        .env(CHILD_TCTI, site.tpm.tcti())
        .env(CHILD_STATE, site.state.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(log).unwrap())
        .spawn()
        .expect("spawn the child")
}

/// Waits until the child has logged at least one certificate.
fn wait_for_growth(site: &Site, len: u64, child: &mut Child, child_log: &Path) {
    let deadline = Instant::now() + PATIENCE;
    while std::fs::metadata(site.log_path()).unwrap().len() <= len {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the child exited ({status}) before issuing:\n{}",
                std::fs::read_to_string(child_log).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            let _ = kill_process(Pid::from_child(child), Signal::KILL);
            panic!("the child issued nothing within {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Every serial the store knows, with its state.
fn serial_states(site: &Site) -> HashMap<Vec<u8>, String> {
    let db = site.raw_store();
    let mut statement = db.prepare("SELECT serial, state FROM serials").unwrap();
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The invariants a restart must restore, whatever instant the kill hit.
fn check_agreement(site: &Site, authority: &Authority, known: &HashMap<Vec<u8>, String>) {
    // One store row per log entry, at the same index, for the same certificate.
    let size = authority.lock_log().size();
    let rows = authority.store().logged_rows().unwrap();
    assert_eq!(
        rows.iter().map(|(i, ..)| *i).collect::<Vec<_>>(),
        (0..size).collect::<Vec<_>>()
    );
    let ca_der = authority.ca_certificate_der().unwrap();
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    let mut logged = HashSet::new();
    let dir = TempDir::new().unwrap();
    std::fs::write(dir.path().join("root.pem"), authority.root_pem().unwrap()).unwrap();
    let mut files = Vec::new();
    for (index, _, serial) in &rows {
        let entry = authority.lock_log().entry(*index).unwrap();
        let der = entry.certificate_der();
        assert_eq!(
            authority
                .store()
                .certificate_der(serial)
                .unwrap()
                .as_deref(),
            Some(der)
        );
        let facts = CertificateFacts::from_der(der).unwrap();
        assert_eq!(facts.serial, *serial);
        assert!(logged.insert(*serial), "serial {serial} is logged twice");
        let (_, certificate) = X509Certificate::from_der(der).unwrap();
        certificate.verify_signature(Some(ca.public_key())).unwrap();
        let name = format!("c{index}.pem");
        std::fs::write(
            dir.path().join(&name),
            crate::ca::hierarchy::certificate_pem(der),
        )
        .unwrap();
        files.push(name);
    }
    let mut args = vec!["verify", "-CAfile", "root.pem"];
    args.extend(files.iter().map(String::as_str));
    let (ok, output) = openssl(dir.path(), &args);
    assert!(ok, "{output}");

    // No serial is left reserved, every logged one is issued, and none known before vanished
    // or came back to life.
    let now = serial_states(site);
    assert!(!now.values().any(|state| state == "reserved"), "{now:?}");
    for serial in &logged {
        assert_eq!(now[serial.as_bytes().as_slice()], "issued");
    }
    let issued = now.values().filter(|state| *state == "issued").count() as u64;
    assert_eq!(issued, size, "every issued serial is in the log");
    for (serial, before) in known.iter() {
        let after = now
            .get(serial)
            .unwrap_or_else(|| panic!("a serial disappeared"));
        let allowed = before == after || before == "reserved";
        assert!(allowed, "serial went from {before} to {after}");
    }

    // The CRL lists exactly the recorded revocations, and verifies.
    let revoked: HashSet<Vec<u8>> = authority
        .list(&ListFilter {
            status: Some(CertificateStatus::Revoked),
            limit: ListFilter::MAX_LIMIT,
            ..ListFilter::default()
        })
        .unwrap()
        .iter()
        .map(|record| record.facts.serial.to_integer_bytes())
        .collect();
    let crl_der = authority.crl_der().unwrap();
    let (_, crl) = CertificateRevocationList::from_der(&crl_der).unwrap();
    let listed: HashSet<Vec<u8>> = crl
        .iter_revoked_certificates()
        .map(|r| {
            r.raw_serial()
                .iter()
                .copied()
                .skip_while(|b| *b == 0)
                .collect()
        })
        .collect();
    assert_eq!(listed, revoked);
    std::fs::write(dir.path().join("crl.pem"), authority.crl_pem().unwrap()).unwrap();
    let (ok, output) = openssl(
        dir.path(),
        &["crl", "-in", "crl.pem", "-CAfile", "root.pem", "-noout"],
    );
    assert!(ok, "{output}");

    // The start signed a head over everything, and it is consistent with the log.
    let head = authority.latest_tree_head().unwrap().unwrap();
    assert_eq!(head.head.size, size);
    authority.lock_log().confirm_tree_head(&head.head).unwrap();
}

/// A random number below `bound`, from the operating system.
fn random_below(bound: u64) -> u64 {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).unwrap();
    u64::from_le_bytes(bytes) % bound
}
