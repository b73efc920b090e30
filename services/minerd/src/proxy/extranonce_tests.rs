use std::collections::HashSet;

use super::*;

#[test]
fn prefixes_are_distinct_and_reduce_extranonce2() {
    let mut p = ExtranoncePartition::new(8, 2, 1000).unwrap();
    assert_eq!(p.miner_extranonce2_size(), 6);
    let prefixes: HashSet<Vec<u8>> = (0..1000).map(|_| p.allocate().unwrap()).collect();
    assert_eq!(prefixes.len(), 1000);
    assert!(prefixes.iter().all(|x| x.len() == 2));
    assert!(p.is_full());
    assert_eq!(p.allocate(), None);
}

#[test]
fn capacity_is_bounded_by_the_prefix_space() {
    let mut p = ExtranoncePartition::new(4, 1, 10_000).unwrap();
    assert_eq!(p.miner_extranonce2_size(), 3);
    for _ in 0..256 {
        assert!(p.allocate().is_some());
    }
    assert_eq!(p.allocate(), None);
}

#[test]
fn released_prefixes_are_reused_and_foreign_ones_ignored() {
    let mut p = ExtranoncePartition::new(4, 1, 2).unwrap();
    let a = p.allocate().unwrap();
    let b = p.allocate().unwrap();
    assert_ne!(a, b);
    assert_eq!(p.allocate(), None);
    p.release(&a);
    p.release(&a); // twice: still one free prefix
    p.release(&[9, 9]); // wrong size
    p.release(&[200]); // never handed out
    assert_eq!(p.in_use(), 1);
    assert_eq!(p.allocate(), Some(a));
    assert_eq!(p.allocate(), None);
}

#[test]
fn an_upstream_extranonce2_too_small_to_split_is_refused() {
    assert_eq!(
        ExtranoncePartition::new(3, 2, 10).unwrap_err(),
        PartitionError::TooSmall {
            upstream: 3,
            prefix: 2
        }
    );
}
