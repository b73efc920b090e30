use super::*;

fn settings() -> VardiffSettings {
    VardiffSettings {
        shares_per_minute: 60.0, // one a second
        retarget_ms: 10_000,
        initial_difficulty: 16.0,
        min_difficulty: 1.0,
        max_difficulty: 1024.0,
    }
}

#[test]
fn a_miner_on_target_keeps_its_difficulty() {
    let t0 = Instant::now();
    let mut v = Vardiff::new(&settings(), t0);
    for s in 1..=30 {
        assert_eq!(v.on_share(t0 + Duration::from_secs(s)), None);
    }
    assert_eq!(v.difficulty(), 16.0);
}

#[test]
fn a_flooding_miner_is_raised_early_by_at_most_four() {
    let t0 = Instant::now();
    let mut v = Vardiff::new(&settings(), t0);
    // 40 shares in 1 s where 10 are expected in a 10 s window: retarget before the window ends.
    let mut raised = None;
    for i in 1..=40 {
        if let Some(d) = v.on_share(t0 + Duration::from_millis(25 * i)) {
            raised = Some(d);
            break;
        }
    }
    assert_eq!(raised, Some(64.0));
}

#[test]
fn a_slow_miner_is_lowered_and_a_silent_one_on_tick() {
    let t0 = Instant::now();
    let mut v = Vardiff::new(&settings(), t0);
    // 2 shares in 10 s against 10 expected: ratio 0.2, clamped to 1/4.
    assert_eq!(v.on_share(t0 + Duration::from_secs(5)), None);
    assert_eq!(v.on_share(t0 + Duration::from_secs(10)), Some(4.0));
    // Nothing for a window: lowered again, then held at the minimum.
    assert_eq!(v.on_tick(t0 + Duration::from_secs(15)), None);
    assert_eq!(v.on_tick(t0 + Duration::from_secs(20)), Some(1.0));
    assert_eq!(v.on_tick(t0 + Duration::from_secs(30)), None);
    assert_eq!(v.difficulty(), 1.0);
}

#[test]
fn difficulty_stays_within_bounds() {
    let t0 = Instant::now();
    let mut s = settings();
    s.max_difficulty = 32.0;
    let mut v = Vardiff::new(&s, t0);
    let mut now = t0;
    for _ in 0..200 {
        now += Duration::from_millis(10);
        v.on_share(now);
    }
    assert_eq!(v.difficulty(), 32.0);
}

#[test]
fn shares_before_a_restart_do_not_count() {
    let t0 = Instant::now();
    let mut v = Vardiff::new(&settings(), t0);
    for i in 1..=30 {
        v.on_share(t0 + Duration::from_millis(10 * i));
    }
    // 30 shares in 0.3 s is a flood, but the window restarts (the miner got new work).
    v.restart(t0 + Duration::from_millis(300));
    for s in 1..=10 {
        assert_eq!(
            v.on_share(t0 + Duration::from_millis(300) + Duration::from_secs(s)),
            None
        );
    }
    assert_eq!(v.difficulty(), 16.0);
}
