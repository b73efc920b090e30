use super::*;
use crate::stratum::message::{ClientMessage, ClientRequest, ServerMessage};

const NOTIFY: &str = r#"{"params": ["bf","4d16b6f85af6e2198f44ae2a6de67f78487ae5611b77c6c0440b921e00000000","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff20020862062f503253482f04b8864e5008","072f736c7573682f000000000100f2052a010000001976a914d23fcdf86f7e756a64a7a9688ef9903327048ed988ac00000000",[], "00000002", "1c2ac4af", "504e86b9", false], "id": null, "method": "mining.notify"}"#;
const SUBMIT: &str = r#"{"params": ["slush.miner1","bf","00000001","504e86ed","b2957c02"], "id": 4, "method": "mining.submit"}"#;

/// The block the braiins vector hashes to, as bitcoin stores the digest. The notes give
/// `32abdc31…0f87762000000000`; the middle was computed by an independent Python hashlib run
/// over the same fields, and both ends are checked against the notes separately below.
const BLOCK_HASH: &str = "32abdc31d947623a2482144f92dbc092a84fd8ee6e2b5ae60f87762000000000";

fn braiins_job() -> Notify {
    match ServerMessage::parse(NOTIFY.as_bytes()).unwrap() {
        ServerMessage::Notify(n) => n,
        other => panic!("not a notify: {other:?}"),
    }
}

fn braiins_submit() -> Submit {
    match ClientMessage::parse(SUBMIT.as_bytes()).unwrap().request {
        ClientRequest::Submit(s) => s,
        other => panic!("not a submit: {other:?}"),
    }
}

/// A session as after the braiins handshake: extranonce1 08000002, 4-byte extranonce2,
/// slush.miner1 authorized, difficulty 2, job bf.
fn braiins_session() -> Session {
    let mut session = Session::new(NtimeWindow::default());
    session.subscribe(vec![0x08, 0x00, 0x00, 0x02], 4);
    session.authorize("slush.miner1");
    assert!(session.set_difficulty(2.0));
    session.add_job(Arc::new(Job::new(braiins_job()).unwrap()));
    session
}

#[test]
fn braiins_vector_hashes_to_the_known_block() {
    let mut session = braiins_session();
    let accepted = session.submit(&braiins_submit()).unwrap();
    let hash = hex::encode(accepted.hash);
    assert!(hash.starts_with("32abdc31"), "{hash}");
    assert!(hash.ends_with("0f87762000000000"), "{hash}");
    assert_eq!(hash, BLOCK_HASH);
    // It meets the network target of nbits 1c2ac4af: a block, found at difficulty ≈ 7.88.
    assert!(accepted.is_block);
    assert!(
        (accepted.achieved_difficulty - 7.88).abs() < 0.01,
        "{}",
        accepted.achieved_difficulty
    );
    let target = Target::from_nbits(0x1c2ac4af).unwrap();
    assert!(target.is_met_by(&hash_to_be(&accepted.hash)));
    // The header fields are where bitcoin puts them.
    assert_eq!(accepted.header[0..4], [2, 0, 0, 0]);
    assert_eq!(accepted.header[76..80], 0xb2957c02u32.to_le_bytes());
    assert_eq!(sha256d(&accepted.header), accepted.hash);
}

#[test]
fn one_changed_field_breaks_the_vector() {
    // Each input matters: a mistake in byte order anywhere would not be masked by the others.
    let job = Job::new(braiins_job()).unwrap();
    let e1 = [0x08, 0, 0, 0x02];
    let good = |e1: &[u8], e2: &[u8], version, ntime, nonce| {
        let root = job.merkle_root(&job.coinbase(e1, e2));
        hex::encode(sha256d(&job.header(&root, version, ntime, nonce)))
    };
    assert_eq!(
        good(&e1, &[0, 0, 0, 1], 2, 0x504e86ed, 0xb2957c02),
        BLOCK_HASH
    );
    assert_ne!(
        good(&e1, &[0, 0, 0, 2], 2, 0x504e86ed, 0xb2957c02),
        BLOCK_HASH
    );
    assert_ne!(
        good(
            &[0x08, 0, 0, 0x03],
            &[0, 0, 0, 1],
            2,
            0x504e86ed,
            0xb2957c02
        ),
        BLOCK_HASH
    );
    assert_ne!(
        good(&e1, &[0, 0, 0, 1], 3, 0x504e86ed, 0xb2957c02),
        BLOCK_HASH
    );
    assert_ne!(
        good(&e1, &[0, 0, 0, 1], 2, 0x504e86ee, 0xb2957c02),
        BLOCK_HASH
    );
    assert_ne!(
        good(&e1, &[0, 0, 0, 1], 2, 0x504e86ed, 0x027c95b2),
        BLOCK_HASH
    );
}

#[test]
fn the_braiins_share_is_low_difficulty_at_a_higher_target() {
    let mut session = braiins_session();
    assert!(session.set_difficulty(8.0));
    let reject = session.submit(&braiins_submit()).unwrap_err();
    assert!(
        matches!(reject, ShareReject::LowDifficulty { achieved } if achieved > 7.8 && achieved < 8.0)
    );
    assert_eq!(reject.code(), StratumErrorCode::LowDifficulty);
    // After a reject the same share is not a duplicate: it was never accepted.
    assert!(session.set_difficulty(7.0));
    assert!(session.submit(&braiins_submit()).is_ok());
}

#[test]
fn merkle_branch_is_hashed_with_the_coinbase_on_the_left() {
    let mut notify = braiins_job();
    let sibling = [0x11u8; 32];
    notify.merkle_branch = vec![sibling, [0x22; 32]];
    let job = Job::new(notify).unwrap();
    let coinbase = job.coinbase(&[1, 2], &[3]);
    let mut expected = sha256d(&coinbase);
    for s in [[0x11u8; 32], [0x22; 32]] {
        let mut pair = expected.to_vec();
        pair.extend_from_slice(&s);
        expected = sha256d(&pair);
    }
    assert_eq!(job.merkle_root(&coinbase), expected);
}

/// A job and session at a tiny difficulty, where about one nonce in two passes.
fn tiny_session(mask: u32) -> (Session, Submit) {
    let mut notify = braiins_job();
    notify.job_id = "t1".into();
    notify.merkle_branch = vec![[0xab; 32]];
    let mut session = Session::new(NtimeWindow {
        before: 10,
        after: 600,
    });
    session.subscribe(vec![0xde, 0xad, 0xbe, 0xef], 2);
    session.authorize("client7.s9-0042");
    session.set_version_mask(mask);
    assert!(session.set_difficulty(1.0 / 2f64.powi(32)));
    session.add_job(Arc::new(Job::new(notify).unwrap()));
    let share = Submit {
        worker: "client7.s9-0042".into(),
        job_id: "t1".into(),
        extranonce2: vec![0, 7],
        ntime: 0x504e86b9 + 5,
        nonce: 0,
        version_bits: None,
    };
    (session, share)
}

/// Finds nonces whose hash does and does not meet a target, by hashing as a miner would.
fn nonces_around(session_difficulty: f64, share: &Submit, mask_bits: Option<u32>) -> (u32, u32) {
    let mut notify = braiins_job();
    notify.merkle_branch = vec![[0xab; 32]];
    let job = Job::new(notify).unwrap();
    let target = Target::from_difficulty(session_difficulty).unwrap();
    let root = job.merkle_root(&job.coinbase(&[0xde, 0xad, 0xbe, 0xef], &share.extranonce2));
    let version = mask_bits.map_or(2, |bits| 2 | bits);
    let (mut pass, mut fail) = (None, None);
    for nonce in 0u32.. {
        let hash = hash_to_be(&sha256d(&job.header(&root, version, share.ntime, nonce)));
        if target.is_met_by(&hash) {
            pass.get_or_insert(nonce)
        } else {
            fail.get_or_insert(nonce)
        };
        if let (Some(p), Some(f)) = (pass, fail) {
            return (p, f);
        }
    }
    unreachable!("the nonce space holds both")
}

#[test]
fn tiny_difficulty_shares_pass_and_fail_by_their_hash() {
    let (mut session, mut share) = tiny_session(0);
    let (pass, fail) = nonces_around(1.0 / 2f64.powi(32), &share, None);
    share.nonce = fail;
    assert!(matches!(
        session.submit(&share),
        Err(ShareReject::LowDifficulty { .. })
    ));
    share.nonce = pass;
    let accepted = session.submit(&share).unwrap();
    assert!(accepted.achieved_difficulty >= 1.0 / 2f64.powi(32));
    assert!(!accepted.is_block);
    assert_eq!(session.submit(&share), Err(ShareReject::Duplicate));
    assert_eq!(
        ShareReject::Duplicate.code(),
        StratumErrorCode::DuplicateShare
    );
    // A different extranonce2 or ntime is a different share (it may still miss the target).
    share.extranonce2 = vec![0, 8];
    assert_ne!(session.submit(&share), Err(ShareReject::Duplicate));
}

#[test]
fn version_rolling_within_the_mask_is_accepted() {
    let mask = 0x1fffe000;
    let (mut session, mut share) = tiny_session(mask);
    let bits = 0x00006000;
    let (pass, _) = nonces_around(1.0 / 2f64.powi(32), &share, Some(bits));
    share.nonce = pass;
    share.version_bits = Some(bits);
    let accepted = session.submit(&share).unwrap();
    assert_eq!(
        u32::from_le_bytes(accepted.header[0..4].try_into().unwrap()),
        2 | bits
    );
    // Same nonce without the bits is another header, so not a duplicate.
    share.version_bits = None;
    assert_ne!(session.submit(&share), Err(ShareReject::Duplicate));

    share.version_bits = Some(0x8000_0000 | bits);
    let reject = session.submit(&share).unwrap_err();
    assert_eq!(
        reject,
        ShareReject::VersionBitsOutsideMask {
            bits: 0x8000_6000,
            mask
        }
    );
    assert_eq!(reject.code(), StratumErrorCode::Other);
}

#[test]
fn version_bits_without_negotiation_are_refused() {
    let (mut session, mut share) = tiny_session(0);
    share.version_bits = Some(0x2000);
    assert_eq!(
        session.submit(&share),
        Err(ShareReject::VersionBitsOutsideMask {
            bits: 0x2000,
            mask: 0
        })
    );
    // Zero bits change nothing and are allowed.
    share.version_bits = Some(0);
    assert!(!matches!(
        session.submit(&share),
        Err(ShareReject::VersionBitsOutsideMask { .. })
    ));
}

#[test]
fn each_reject_reason_has_its_code() {
    let (_, share) = tiny_session(0);

    let mut unsubscribed = Session::new(NtimeWindow::default());
    unsubscribed.authorize(&share.worker);
    let r = unsubscribed.submit(&share).unwrap_err();
    assert_eq!(
        (r.clone(), r.code()),
        (ShareReject::NotSubscribed, StratumErrorCode::NotSubscribed)
    );

    let (mut session, _) = tiny_session(0);
    let mut stranger = share.clone();
    stranger.worker = "foreign.worker".into();
    let r = session.submit(&stranger).unwrap_err();
    assert_eq!(r.code(), StratumErrorCode::UnauthorizedWorker);
    assert_eq!(r, ShareReject::Unauthorized("foreign.worker".into()));

    let mut unknown = share.clone();
    unknown.job_id = "nope".into();
    let r = session.submit(&unknown).unwrap_err();
    assert_eq!(
        (r.clone(), r.code()),
        (
            ShareReject::JobNotFound("nope".into()),
            StratumErrorCode::JobNotFound
        )
    );

    let mut short = share.clone();
    short.extranonce2 = vec![7];
    let r = session.submit(&short).unwrap_err();
    assert_eq!(
        (r.clone(), r.code()),
        (
            ShareReject::Extranonce2Size {
                expected: 2,
                got: 1
            },
            StratumErrorCode::Other
        )
    );

    for (ntime, ok) in [
        (0x504e86b9 - 10, true),
        (0x504e86b9 - 11, false),
        (0x504e86b9 + 600, true),
        (0x504e86b9 + 601, false),
    ] {
        let mut s = share.clone();
        s.ntime = ntime;
        let result = session.submit(&s);
        assert_eq!(
            !matches!(result, Err(ShareReject::NtimeOutOfRange { .. })),
            ok,
            "{ntime:x}"
        );
    }
    let mut late = share.clone();
    late.ntime = u32::MAX;
    assert_eq!(
        session.submit(&late).unwrap_err().code(),
        StratumErrorCode::Other
    );
}

#[test]
fn a_clean_job_makes_earlier_jobs_stale() {
    let (mut session, share) = tiny_session(0);
    let mut next = braiins_job();
    next.job_id = "t2".into();
    next.clean_jobs = true;
    session.add_job(Arc::new(Job::new(next).unwrap()));
    let r = session.submit(&share).unwrap_err();
    assert_eq!(
        (r.clone(), r.code()),
        (
            ShareReject::StaleJob("t1".into()),
            StratumErrorCode::JobNotFound
        )
    );
    let mut on_new = share.clone();
    on_new.job_id = "t2".into();
    assert!(!matches!(
        session.submit(&on_new),
        Err(ShareReject::StaleJob(_) | ShareReject::JobNotFound(_))
    ));
}

#[test]
fn old_jobs_age_out_without_clean() {
    let (mut session, share) = tiny_session(0);
    for i in 0..MAX_JOBS {
        let mut n = braiins_job();
        n.job_id = format!("j{i}");
        session.add_job(Arc::new(Job::new(n).unwrap()));
    }
    assert_eq!(session.jobs.len(), MAX_JOBS);
    assert_eq!(
        session.submit(&share).unwrap_err(),
        ShareReject::StaleJob("t1".into())
    );
}

#[test]
fn invalid_difficulty_and_nbits_are_refused() {
    let (mut session, _) = tiny_session(0);
    assert!(!session.set_difficulty(0.0));
    assert!(!session.set_difficulty(f64::NAN));
    let mut n = braiins_job();
    n.nbits = 0x04923456;
    assert_eq!(Job::new(n), Err(JobError::BadNbits(0x04923456)));
}

#[test]
fn random_shares_never_panic() {
    let mut state = 0x0123_4567_89ab_cdefu64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut session, base) = tiny_session(0x1fffe000);
    for _ in 0..20_000 {
        let r = next();
        let mut share = base.clone();
        share.extranonce2 = (0..(r % 4) as usize).map(|_| next() as u8).collect();
        share.ntime = if r & 0x10 == 0 {
            base.ntime.wrapping_add((next() % 1200) as u32)
        } else {
            next() as u32
        };
        share.nonce = next() as u32;
        share.version_bits = match r % 3 {
            0 => None,
            1 => Some(next() as u32 & 0x1fffe000),
            _ => Some(next() as u32),
        };
        if r & 0x20 != 0 {
            share.job_id = format!("{}", next() % 3);
        }
        match session.submit(&share) {
            Ok(accepted) => assert_eq!(sha256d(&accepted.header), accepted.hash),
            Err(reject) => assert!((20..=25).contains(&reject.code().code())),
        }
    }
}
