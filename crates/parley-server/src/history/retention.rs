//! Retention: pruning stored messages older than `max_age_days` and beyond
//! `max_rows_per_target` per conversation (`[history]` in the config); run now and then from
//! `lib.rs`, on the blocking pool against the reading store.

use super::{blocking, History};
use crate::clock::now_ms;
use crate::store::StoreError;

impl History {
    /// Apply the retention limits once.
    pub async fn prune(&self) -> Result<usize, StoreError> {
        let reader = self.reader.clone();
        let cutoff = (self.config.max_age_days > 0).then(|| {
            let days = i64::try_from(self.config.max_age_days).unwrap_or(i64::MAX / 86_400_000);
            now_ms().saturating_sub(days.saturating_mul(86_400_000))
        });
        let max_rows =
            (self.config.max_rows_per_target > 0).then_some(self.config.max_rows_per_target);
        if cutoff.is_none() && max_rows.is_none() {
            return Ok(0);
        }
        blocking(move || reader.prune(cutoff, max_rows)).await
    }
}
