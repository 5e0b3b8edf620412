//! A fallible job over every item of a slice from a few scoped threads: the
//! mail-file scans stat or read thousands of files, and on a cold cache
//! several requests in flight finish far sooner than one after another.

use super::error::{Result, StorageError};

/// `job` on every item, keeping the `Some` results in the items' order. At
/// most `max_threads` threads, one per `per_thread` items: a small slice
/// runs in the caller's thread.
pub fn filter_map<T: Sync, R: Send>(
    items: &[T],
    max_threads: usize,
    per_thread: usize,
    job: impl Fn(&T) -> Result<Option<R>> + Sync,
) -> Result<Vec<R>> {
    let threads = max_threads.min(items.len().div_ceil(per_thread.max(1))).max(1);
    if threads == 1 {
        return items.iter().filter_map(|item| job(item).transpose()).collect();
    }
    let chunk = items.len().div_ceil(threads);
    let job = &job;
    let parts: Vec<Result<Vec<R>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().filter_map(|item| job(item).transpose()).collect()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(StorageError::NotPossible("storage scan thread panicked".into())))
            })
            .collect()
    });
    let mut out = Vec::with_capacity(items.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_drops_none_and_stops_at_errors() {
        let items: Vec<u32> = (0..2000).collect();
        let even = filter_map(&items, 8, 256, |n| Ok((n % 2 == 0).then_some(*n))).unwrap();
        assert_eq!(even, (0..2000).step_by(2).collect::<Vec<_>>());
        let failed = filter_map(&items, 8, 256, |n| {
            if *n == 1500 {
                Err(StorageError::NotPossible("x".into()))
            } else {
                Ok(Some(*n))
            }
        });
        assert!(failed.is_err());
        assert_eq!(filter_map(&items[..3], 8, 256, |n| Ok(Some(n + 1))).unwrap(), [1, 2, 3]);
    }
}
