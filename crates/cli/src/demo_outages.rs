//! The demo's own log of the simulator's outages, compared at the end with
//! what the node detected from the telemetry it stopped receiving (the
//! demo never tells the node about an outage).

use std::collections::BTreeMap;

use serde_json::Value;

/// How long after a simulated outage ended a detection still counts as
/// detecting it (the controller's tick and in-flight runs).
const MATCH_GRACE_US: i64 = 2_000_000;

/// How long after runs resumed a detected recovery counts as that outage's.
const RECOVERY_WINDOW_US: i64 = 10_000_000;

/// One simulated outage (Unix µs).
#[derive(Debug, Clone, Copy)]
struct Outage {
    down_us: i64,
    up_us: Option<i64>,
}

/// A detected event from the node: when it recorded it (for a failure, the
/// detection).
#[derive(Debug, Clone, Copy)]
struct Detected {
    recorded_us: i64,
}

/// The simulator's outages, per region.
#[derive(Default)]
pub(crate) struct OutageLog {
    outages: BTreeMap<String, Vec<Outage>>,
}

fn now_us() -> i64 {
    qunimbus_core::time::now_micros().timestamp_micros()
}

fn parse_us(text: Option<&str>) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text?)
        .ok()
        .map(|t| t.timestamp_micros())
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

impl OutageLog {
    /// The simulator took `region` down now.
    pub(crate) fn down(&mut self, region: &str) {
        self.outages
            .entry(region.to_string())
            .or_default()
            .push(Outage {
                down_us: now_us(),
                up_us: None,
            });
    }

    /// The simulator brought `region` back now.
    pub(crate) fn up(&mut self, region: &str) {
        if let Some(last) = self
            .outages
            .get_mut(region)
            .and_then(|o| o.last_mut())
            .filter(|o| o.up_us.is_none())
        {
            last.up_us = Some(now_us());
        }
    }

    /// Compares the log with the node's detected events (read from
    /// `GET /v1/regions/{region}/events`): how many outages the node
    /// detected, how long after they began, and detections no outage explains.
    pub(crate) async fn report(
        &self,
        client: &reqwest::Client,
        url: &str,
        regions: &[String],
    ) -> String {
        let end = now_us();
        let (mut simulated, mut detected, mut spurious, mut recovered) = (0, 0, 0, 0);
        let mut delays = Vec::new();
        let mut recovery_delays = Vec::new();
        let mut missed = Vec::new();
        let mut per_region = Vec::new();
        for region in regions {
            let outages = self.outages.get(region).map_or(&[][..], Vec::as_slice);
            let (failures, recoveries) = detected_events(client, url, region).await;
            let mut used = vec![false; failures.len()];
            let mut recovery_used = vec![false; recoveries.len()];
            let mut found = 0;
            for outage in outages {
                simulated += 1;
                let until = outage.up_us.unwrap_or(end) + MATCH_GRACE_US;
                let hit = failures.iter().enumerate().find(|(i, f)| {
                    !used[*i] && f.recorded_us >= outage.down_us && f.recorded_us <= until
                });
                match hit {
                    Some((i, f)) => {
                        used[i] = true;
                        found += 1;
                        delays.push((f.recorded_us - outage.down_us) as f64 / 1e6);
                        if let Some(up) = outage.up_us {
                            let window = up..=up + RECOVERY_WINDOW_US;
                            let hit = recoveries.iter().enumerate().find(|(i, r)| {
                                !recovery_used[*i] && window.contains(&r.recorded_us)
                            });
                            if let Some((i, r)) = hit {
                                recovery_used[i] = true;
                                recovered += 1;
                                recovery_delays.push((r.recorded_us - up) as f64 / 1e6);
                            }
                        }
                    }
                    None => {
                        missed.push((outage.up_us.unwrap_or(end) - outage.down_us) as f64 / 1e6)
                    }
                }
            }
            detected += found;
            spurious += used.iter().filter(|u| !**u).count();
            if !outages.is_empty() {
                per_region.push(format!("{region} {found}/{}", outages.len()));
            }
        }
        let delay = match median(&mut delays) {
            Some(m) => format!(
                "; detection {m:.1} s after the outage began (median; max {:.1} s)",
                delays.last().copied().unwrap_or(m)
            ),
            None => String::new(),
        };
        let recovery = match median(&mut recovery_delays) {
            Some(m) => {
                format!("; {recovered} recoveries detected, {m:.1} s after runs resumed (median)")
            }
            None => String::new(),
        };
        let missed_text = match median(&mut missed) {
            Some(m) => format!("; {} undetected (median length {m:.1} s)", missed.len()),
            None => String::new(),
        };
        format!(
            "  outages:       simulator {simulated}, detected by the node {detected} ({}){delay}{recovery}{missed_text}; detections with no simulated outage: {spurious}",
            per_region.join(", ")
        )
    }
}

/// The region's detected failures and recoveries, by when they were recorded.
async fn detected_events(
    client: &reqwest::Client,
    url: &str,
    region: &str,
) -> (Vec<Detected>, Vec<Detected>) {
    let answer = match client
        .get(format!("{url}/v1/regions/{region}/events"))
        .send()
        .await
    {
        Ok(r) => r.json::<Value>().await.unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    let (mut failures, mut recoveries) = (Vec::new(), Vec::new());
    for e in answer["events"].as_array().into_iter().flatten() {
        if e["source"] != "detected" {
            continue;
        }
        let Some(recorded_us) = parse_us(e["recorded_at"].as_str()) else {
            continue;
        };
        let event = Detected { recorded_us };
        match e["kind"].as_str() {
            Some("failure") => failures.push(event),
            Some("recovery") => recoveries.push(event),
            _ => {}
        }
    }
    (failures, recoveries)
}
