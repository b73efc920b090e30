use super::*;

const HOLD: Duration = Duration::from_secs(30);
const RETRY: Duration = Duration::from_secs(5);

fn secs(t0: Instant, s: u64) -> Instant {
    t0 + Duration::from_secs(s)
}

#[test]
fn starts_on_the_primary() {
    let t0 = Instant::now();
    let mut f = PoolFailover::new(3, HOLD, RETRY);
    assert_eq!(f.select(t0), None);
    assert_eq!(f.pools_to_try(t0), vec![0]);
    f.mark_up(0, t0);
    assert_eq!(f.select(t0), Some(0));
    assert!(f.pools_to_try(t0).is_empty());
}

#[test]
fn fails_over_at_once_and_back_after_the_hold() {
    let t0 = Instant::now();
    let mut f = PoolFailover::new(2, HOLD, RETRY);
    f.mark_up(0, t0);
    f.select(t0);
    // The primary dies: no active pool; the secondary is the one to try, not the primary.
    f.mark_down(0, secs(t0, 10));
    assert_eq!(f.select(secs(t0, 10)), None);
    assert_eq!(f.pools_to_try(secs(t0, 10)), vec![1]);
    f.mark_up(1, secs(t0, 10));
    assert_eq!(f.select(secs(t0, 10)), Some(1));
    // The primary is retried only after the retry interval.
    assert!(f.pools_to_try(secs(t0, 12)).is_empty());
    assert_eq!(f.pools_to_try(secs(t0, 15)), vec![0]);
    // It is back, but miners stay on the secondary until it has been up for the hold time.
    f.mark_up(0, secs(t0, 16));
    assert_eq!(f.select(secs(t0, 30)), Some(1));
    assert_eq!(f.select(secs(t0, 46)), Some(0));
}

#[test]
fn a_flapping_primary_restarts_its_hold() {
    let t0 = Instant::now();
    let mut f = PoolFailover::new(2, HOLD, RETRY);
    f.mark_up(1, t0);
    assert_eq!(f.select(t0), Some(1));
    f.mark_up(0, secs(t0, 1));
    f.mark_down(0, secs(t0, 20));
    f.mark_up(0, secs(t0, 25));
    assert_eq!(f.select(secs(t0, 40)), Some(1));
    assert_eq!(f.select(secs(t0, 55)), Some(0));
}

#[test]
fn with_every_pool_down_each_is_retried_in_order() {
    let t0 = Instant::now();
    let mut f = PoolFailover::new(2, HOLD, RETRY);
    f.mark_down(0, t0);
    assert_eq!(f.pools_to_try(t0), vec![1]);
    f.mark_down(1, secs(t0, 1));
    assert!(f.pools_to_try(secs(t0, 2)).is_empty());
    assert_eq!(f.pools_to_try(secs(t0, 5)), vec![0]);
    assert_eq!(f.select(secs(t0, 5)), None);
}

#[test]
fn mark_up_on_an_up_pool_keeps_its_start() {
    let t0 = Instant::now();
    let mut f = PoolFailover::new(2, HOLD, RETRY);
    f.mark_up(1, t0);
    f.select(t0);
    f.mark_up(0, secs(t0, 1));
    f.mark_up(0, secs(t0, 20));
    assert_eq!(f.select(secs(t0, 31)), Some(0));
    assert_eq!(f.health(5), None);
}
