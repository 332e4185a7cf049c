//! The manager's kept signals: one bounded [`Series`] per monitored container (what
//! `GET /containers/{address}/{id}/series` answers) and the host's own sample for heartbeats.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::state::HostState;
use crate::actors::protocol::CommandError;
use crate::analysis::series::{Series, SeriesQuery, SeriesRecord};
use crate::analysis::signals::{self, HostSignals, Signals};
use crate::resources::procfs::HostSample;
use crate::resources::sensors::Sensors;

pub struct SeriesStore {
    period: Duration,
    series: HashMap<String, Series>,
    sensors: Arc<dyn Sensors>,
    last_host: Option<HostSample>,
}

impl SeriesStore {
    pub fn new(period: Duration, sensors: Arc<dyn Sensors>) -> Self {
        Self { period, series: HashMap::new(), sensors, last_host: None }
    }

    /// Appends one period of container `id` (full id), whose window started at `at`.
    pub fn record(&mut self, id: &str, at: OffsetDateTime, s: &Signals, packet_loss: f64) {
        let series = self.series.entry(id.to_owned()).or_insert_with(|| Series::new(self.period, at));
        series.push(at, s, Some(packet_loss));
    }

    /// Drops the series of a container that is gone, and what its readings kept open.
    pub fn forget(&mut self, id: &str) {
        self.series.remove(id);
        self.sensors.forget(id);
    }

    /// The answer to a series command: the container's kept points (none yet: an empty list).
    pub fn answer(
        &self,
        host: &HostState,
        query: &str,
        since: Option<&str>,
        last: Option<u32>,
    ) -> Result<SeriesRecord, CommandError> {
        let since = since
            .map(|t| {
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| CommandError::Invalid(format!("since must be an RFC 3339 time, got {t:?}")))
            })
            .transpose()?;
        let id = host.resolve(query)?;
        let name = &host.containers[&id].obs.name;
        let q = SeriesQuery { since, last };
        let empty = || Series::new(self.period, OffsetDateTime::now_utc());
        let series = self.series.get(&id).cloned().unwrap_or_else(empty);
        Ok(series.record(&host.name, &id, name, q))
    }

    /// The host's signals now, against the previous call's sample.
    pub fn host_signals(&mut self) -> HostSignals {
        let now = self.sensors.host();
        let out = signals::host_signals(self.last_host.as_ref(), now.as_ref());
        if now.is_some() {
            self.last_host = now;
        }
        out
    }
}
