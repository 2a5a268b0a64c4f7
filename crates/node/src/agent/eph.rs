//! The `EPH-USD` market: each region's EPH price as the node's own feed
//! delivers it to the agent's partner connection, made into one bar per
//! agent step (open, high, low and close of the prices received since the
//! previous step; volume the EPH they priced). Every bar is written to a
//! Binance-kline CSV file per region before the engine sees it, so a
//! restart replays the session on the same bars (the feed does not repeat
//! itself), and the recording can be read by `qunimbus trade backtest`.

use super::AgentError;
use crate::config::{eph_symbol, EphPlan};
use crate::feed_client::{PartnerStats, PriceObserver};
use qunimbus_trading::candles::{MAX_PRICE, MIN_PRICE};
use qunimbus_trading::{Candle, CandleError, CandleReader};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One market minute in µs: a bar's close time is its open plus this, less 1.
const BAR_US: i64 = 60_000_000;

/// The prices of one region since the last bar.
#[derive(Debug, Clone, Copy, Default)]
struct Accum {
    open: f64,
    high: f64,
    low: f64,
    close: f64,
    eph: f64,
    quote: f64,
    count: u64,
}

impl Accum {
    fn add(&mut self, price: f64, eph: f64) {
        if self.count == 0 {
            self.open = price;
            self.high = price;
            self.low = price;
        }
        self.high = self.high.max(price);
        self.low = self.low.min(price);
        self.close = price;
        self.eph += eph;
        self.quote += eph * price;
        self.count += 1;
    }
}

/// Prices from the feed, per region, waiting for the next bar; shared by
/// the feed connection (which adds) and the agent (which takes).
pub struct EphInbox {
    regions: Vec<String>,
    pending: Mutex<Vec<Accum>>,
    /// Valuations priced into bars.
    pub accepted: AtomicU64,
    /// Valuations of a region not traded, or with a price no bar can hold.
    pub ignored: AtomicU64,
    /// The partner connection's counters.
    pub partner: Arc<PartnerStats>,
}

impl EphInbox {
    /// An empty inbox for `regions` (canonical spellings).
    pub fn new(regions: &[String]) -> Self {
        Self {
            regions: regions.to_vec(),
            pending: Mutex::new(vec![Accum::default(); regions.len()]),
            accepted: AtomicU64::new(0),
            ignored: AtomicU64::new(0),
            partner: Arc::new(PartnerStats::default()),
        }
    }

    fn take(&self, lane: usize) -> Accum {
        crate::lock(&self.pending)
            .get_mut(lane)
            .map(std::mem::take)
            .unwrap_or_default()
    }

    fn clear(&self) {
        crate::lock(&self.pending).fill(Accum::default());
    }
}

impl PriceObserver for EphInbox {
    fn valuation(&self, region: &str, eph_price: f64, eph: f64) {
        let lane = self.regions.iter().position(|r| r == region);
        let usable = (MIN_PRICE..=MAX_PRICE).contains(&eph_price) && eph.is_finite() && eph >= 0.0;
        match lane.filter(|_| usable) {
            Some(lane) => {
                crate::lock(&self.pending)[lane].add(eph_price, eph);
                self.accepted.fetch_add(1, Ordering::Relaxed);
            }
            None => {
                self.ignored.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One region's recorded bars still to replay.
struct Recorded {
    reader: CandleReader,
    next: Option<Candle>,
}

/// One region's lane: its recording and what remains to replay of it.
struct Lane {
    path: PathBuf,
    file: File,
    recorded: Option<Recorded>,
}

/// The EPH lanes of a session.
pub(super) struct EphMarket {
    first_lane: usize,
    lanes: Vec<Lane>,
    inbox: Arc<EphInbox>,
    /// Whether bars come from the feed (else only from the recording,
    /// while a restart replays the session).
    live: bool,
}

/// The directory of a session's recording, by its market start.
pub fn recording_dir(agent_dir: &Path, start_us: i64) -> PathBuf {
    agent_dir.join(format!("eph-{start_us}"))
}

/// Opens a recording for appending, cutting a line a crash left torn.
fn open_recording(path: &Path) -> std::io::Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(file);
    }
    let tail_len = len.min(4096);
    file.seek(SeekFrom::Start(len - tail_len))?;
    let mut tail = Vec::with_capacity(usize::try_from(tail_len).unwrap_or(4096));
    (&mut file).take(tail_len).read_to_end(&mut tail)?;
    if tail.last() != Some(&b'\n') {
        let keep = tail.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
        file.set_len(len - tail_len + keep as u64)?;
    }
    Ok(file)
}

fn recording_error(path: &Path, e: std::io::Error) -> AgentError {
    AgentError::Recording {
        path: path.to_path_buf(),
        source: e,
    }
}

impl EphMarket {
    /// The lanes of `plan`, recording into `dir`; a recording already
    /// there (a resumed session) is replayed first.
    pub(super) fn open(
        plan: &EphPlan,
        dir: &Path,
        inbox: Arc<EphInbox>,
        live: bool,
    ) -> Result<Self, AgentError> {
        std::fs::create_dir_all(dir).map_err(|e| recording_error(dir, e))?;
        let mut lanes = Vec::with_capacity(plan.regions.len());
        for region in &plan.regions {
            let path = dir.join(format!("{}.csv", eph_symbol(region)));
            let file = open_recording(&path).map_err(|e| recording_error(&path, e))?;
            let recorded = match file.metadata().map(|m| m.len()) {
                Ok(0) => None,
                _ => {
                    let mut reader = CandleReader::open(&path)?;
                    let next = reader.next().transpose()?;
                    Some(Recorded { reader, next })
                }
            };
            lanes.push(Lane {
                path,
                file,
                recorded,
            });
        }
        Ok(Self {
            first_lane: plan.first_lane,
            lanes,
            inbox,
            live,
        })
    }

    /// From now on bars come from the feed (the prices received while the
    /// session was replayed are dropped: they belong to no step).
    pub(super) fn go_live(&mut self) {
        self.live = true;
        self.inbox.clear();
    }

    /// Hands `f` each region's bar at `time`: the recorded one while a
    /// recording lasts, else (live) the prices received since the last step.
    pub(super) fn step(
        &mut self,
        time: i64,
        f: &mut impl FnMut(usize, Candle) -> Result<(), AgentError>,
    ) -> Result<(), AgentError> {
        // Every lane's bar in lane order, and whether it was just recorded.
        let mut bars = Vec::new();
        for (index, lane) in self.lanes.iter_mut().enumerate() {
            let at = self.first_lane + index;
            if let Some(recorded) = &mut lane.recorded {
                match recorded.next {
                    Some(bar) if bar.open_time_us == time => {
                        recorded.next = recorded.reader.next().transpose()?;
                        bars.push((at, bar, None));
                        continue;
                    }
                    Some(bar) if bar.open_time_us < time => {
                        return Err(AgentError::Candle(CandleError::at(
                            &lane.path.display().to_string(),
                            0,
                            "open_time",
                            format!(
                                "the recorded bar at {} µs is not a step of this session (now {time} µs)",
                                bar.open_time_us
                            ),
                        )));
                    }
                    Some(_) => continue,
                    // The recording is replayed: live bars follow it.
                    None => lane.recorded = None,
                }
            }
            if !self.live {
                continue;
            }
            let prices = self.inbox.take(index);
            if prices.count == 0 {
                continue;
            }
            let bar = Candle {
                open_time_us: time,
                open: prices.open,
                high: prices.high,
                low: prices.low,
                close: prices.close,
                volume: prices.eph,
            };
            let line = format!(
                "{time},{},{},{},{},{},{},{},{},0,0,0\n",
                bar.open,
                bar.high,
                bar.low,
                bar.close,
                bar.volume,
                time + BAR_US - 1,
                prices.quote,
                prices.count
            );
            lane.file
                .write_all(line.as_bytes())
                .map_err(|e| recording_error(&lane.path, e))?;
            bars.push((at, bar, Some(index)));
        }
        // On disk before the engine acts on them: a fill's block must never
        // outlive the bar that priced it.
        for lane in bars
            .iter()
            .filter_map(|(_, _, i)| *i)
            .map(|i| &self.lanes[i])
        {
            lane.file
                .sync_data()
                .map_err(|e| recording_error(&lane.path, e))?;
        }
        for (at, bar, _) in bars {
            f(at, bar)?;
        }
        Ok(())
    }
}
