use super::*;
use minerd::stratum::{Notify, NtimeWindow, Session};

fn job() -> Arc<Job> {
    Arc::new(
        Job::new(Notify {
            job_id: "7".into(),
            prevhash: [0x11; 32],
            coinb1: vec![1, 2, 3],
            coinb2: vec![4, 5, 6],
            merkle_branch: vec![[0x22; 32]],
            version: 0x2000_0000,
            nbits: 0x1703_4219,
            ntime: 0x6500_0000,
            clean_jobs: true,
        })
        .unwrap(),
    )
}

fn session(mask: u32, difficulty: f64) -> Session {
    let mut session = Session::new(NtimeWindow::default());
    session.subscribe(vec![0xaa, 0xbb, 0xcc, 0xdd], 4);
    session.authorize("w");
    session.set_version_mask(mask);
    assert!(session.set_difficulty(difficulty));
    session.add_job(job());
    session
}

#[test]
fn spreading_fills_the_mask_from_its_lowest_bit() {
    assert_eq!(spread_into_mask(0b1, 0x1fff_e000), 0x0000_2000);
    assert_eq!(spread_into_mask(0b11, 0x1800_0000), 0x1800_0000);
    assert_eq!(spread_into_mask(0b10, 0x1800_0000), 0x1000_0000);
    assert_eq!(spread_into_mask(0xffff_ffff, 0x1fff_e000), 0x1fff_e000);
}

#[test]
fn found_shares_pass_the_pools_validation() {
    let difficulty = 1.0 / 65_536.0 / 64.0; // one share per 1024 hashes on average
    let mut session = session(0, difficulty);
    let mut work = Work::new(job(), vec![0xaa, 0xbb, 0xcc, 0xdd], 4, difficulty, None).unwrap();
    let shares = work.search("w", 20_000);
    assert!(!shares.is_empty(), "20000 hashes at 1/1024 found nothing");
    for share in &shares {
        assert_eq!(share.version_bits, None);
        session.submit(share).unwrap();
    }
}

#[test]
fn rolled_versions_pass_and_stay_inside_the_mask() {
    let difficulty = 1.0 / 65_536.0 / 64.0;
    let mask = 0x1fff_e000;
    let mut session = session(mask, difficulty);
    let mut work = Work::new(
        job(),
        vec![0xaa, 0xbb, 0xcc, 0xdd],
        4,
        difficulty,
        Some(mask),
    )
    .unwrap();
    let mut shares = Vec::new();
    for _ in 0..4 {
        shares.extend(work.search("w", 5_000));
        work.next_header();
    }
    assert!(shares.len() > 2, "{} shares", shares.len());
    let mut versions = std::collections::HashSet::new();
    for share in &shares {
        let bits = share.version_bits.unwrap();
        assert!(bits != 0 && bits & !mask == 0, "{bits:08x}");
        versions.insert(bits);
        session.submit(share).unwrap();
    }
    assert!(versions.len() > 1, "the version bits never changed");
}

#[test]
fn a_share_with_another_extranonce1_is_low_difficulty() {
    let difficulty = 1.0 / 65_536.0 / 64.0;
    let mut session = session(0, difficulty);
    let mut work = Work::new(job(), vec![1, 2, 3, 4], 4, difficulty, None).unwrap();
    let shares = work.search("w", 20_000);
    // Each was hashed over a different coinbase than the pool's: at most a lucky one passes.
    let refused = shares.iter().filter(|s| session.submit(s).is_err()).count();
    assert!(refused * 2 > shares.len(), "{refused} of {}", shares.len());
}
