//! Bounded concurrency over a list of miners without a task or a permit per miner: `limit`
//! worker tasks take the next index from a shared counter until the list runs out, so a scan
//! of a /16 or a poll of the whole fleet costs `limit` tasks, and one slow miner holds one
//! worker, never the others.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `work` on every item with at most `limit` in flight; results come back in item order.
pub async fn fan_out<T, R, F, Fut>(items: Arc<[T]>, limit: usize, work: F) -> Vec<R>
where
    T: Send + Sync + 'static,
    R: Send + 'static,
    F: Fn(Arc<[T]>, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send,
{
    let len = items.len();
    if len == 0 {
        return Vec::new();
    }
    let next = Arc::new(AtomicUsize::new(0));
    let work = Arc::new(work);
    let workers = limit.clamp(1, len);
    let mut handles = Vec::with_capacity(workers);
    for _ in 0..workers {
        let (items, next, work) = (Arc::clone(&items), Arc::clone(&next), Arc::clone(&work));
        handles.push(tokio::spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= items.len() {
                    return done;
                }
                done.push((i, work(Arc::clone(&items), i).await));
            }
        }));
    }
    let mut slots: Vec<Option<R>> = (0..len).map(|_| None).collect();
    for handle in handles {
        match handle.await {
            Ok(done) => {
                for (i, r) in done {
                    slots[i] = Some(r);
                }
            }
            // A panic in `work` is a bug; surface it rather than return a short list.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    slots
        .into_iter()
        .map(|r| r.expect("every index was taken by exactly one worker"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[tokio::test]
    async fn results_keep_order_and_concurrency_stays_bounded() {
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let items: Arc<[u64]> = (0..100).collect::<Vec<_>>().into();
        let (f, p) = (Arc::clone(&in_flight), Arc::clone(&peak));
        let out = fan_out(items, 7, move |items, i| {
            let (f, p) = (Arc::clone(&f), Arc::clone(&p));
            async move {
                let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(items[i] % 3)).await;
                f.fetch_sub(1, Ordering::SeqCst);
                items[i] * 2
            }
        })
        .await;
        assert_eq!(out, (0..100).map(|i| i * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 7);
        assert!(peak.load(Ordering::SeqCst) > 1);
    }

    #[tokio::test]
    async fn an_empty_list_is_an_empty_result() {
        let items: Arc<[u8]> = Vec::new().into();
        let out: Vec<u8> = fan_out(items, 4, |items, i| async move { items[i] }).await;
        assert!(out.is_empty());
    }
}
