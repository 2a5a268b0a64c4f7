//! Supervision of the node's background tasks (SPEC §11): a task that dies
//! (panics, or returns while the node runs) is restarted with exponential
//! backoff, counted in `qunimbus_task_restarts_total{task}` and shown as down
//! by `/readyz` until it runs again.

use crate::lock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// First wait before a restart; doubled per consecutive failure.
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait before a restart.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A task that ran this long before dying starts its backoff afresh.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// Label set `{task="checkpointer"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TaskLabel {
    /// The task's name.
    pub task: String,
}

/// What `/readyz` shows of one task.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskStatus {
    /// Whether it is running now.
    pub running: bool,
    /// Times it was restarted since the node started.
    pub restarts: u64,
    /// Why it last died, if it ever did.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub last_failure: Option<String>,
}

/// The supervised tasks and their health.
pub struct Supervisor {
    tasks: Mutex<BTreeMap<&'static str, TaskStatus>>,
    restarts: Family<TaskLabel, Counter>,
    up: Family<TaskLabel, Gauge>,
}

impl Supervisor {
    /// A supervisor whose metrics are registered in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let restarts = Family::<TaskLabel, Counter>::default();
        registry.register(
            "qunimbus_task_restarts",
            "Background tasks restarted after they died",
            restarts.clone(),
        );
        let up = Family::<TaskLabel, Gauge>::default();
        registry.register(
            "qunimbus_task_up",
            "1 while a background task runs, 0 while it waits to be restarted",
            up.clone(),
        );
        Self {
            tasks: Mutex::new(BTreeMap::new()),
            restarts,
            up,
        }
    }

    /// Every supervised task's status, by name.
    pub fn statuses(&self) -> BTreeMap<&'static str, TaskStatus> {
        lock(&self.tasks).clone()
    }

    /// The tasks that are down now, with why.
    pub fn down(&self) -> Vec<String> {
        lock(&self.tasks)
            .iter()
            .filter(|(_, s)| !s.running)
            .map(|(name, s)| match &s.last_failure {
                Some(why) => format!("{name} ({why})"),
                None => name.to_string(),
            })
            .collect()
    }

    fn set(&self, name: &'static str, update: impl FnOnce(&mut TaskStatus)) {
        let mut tasks = lock(&self.tasks);
        let status = tasks.entry(name).or_insert(TaskStatus {
            running: false,
            restarts: 0,
            last_failure: None,
        });
        update(status);
        let label = TaskLabel {
            task: name.to_string(),
        };
        self.up.get_or_create(&label).set(i64::from(status.running));
    }

    /// Runs `make()` as task `name` until `stop` turns true, starting it
    /// again (after a backoff) whenever it panics or returns early.
    pub fn spawn<F, Fut>(
        self: &Arc<Self>,
        name: &'static str,
        mut stop: watch::Receiver<bool>,
        make: F,
    ) -> JoinHandle<()>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let supervisor = self.clone();
        tokio::spawn(async move {
            let mut backoff = INITIAL_BACKOFF;
            loop {
                supervisor.set(name, |s| s.running = true);
                let started = Instant::now();
                let outcome = tokio::spawn(make()).await;
                if *stop.borrow() {
                    supervisor.set(name, |s| s.running = false);
                    return;
                }
                let why = match outcome {
                    Ok(()) => "returned while the node runs".to_string(),
                    Err(e) if e.is_panic() => format!("panicked: {}", panic_message(e)),
                    Err(e) => e.to_string(),
                };
                tracing::error!(task = name, %why, ?backoff, "background task died; restarting");
                supervisor.set(name, |s| {
                    s.running = false;
                    s.last_failure = Some(why);
                });
                if started.elapsed() >= STABLE_AFTER {
                    backoff = INITIAL_BACKOFF;
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                supervisor.set(name, |s| s.restarts += 1);
                supervisor
                    .restarts
                    .get_or_create(&TaskLabel {
                        task: name.to_string(),
                    })
                    .inc();
            }
        })
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    let payload = e.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_panicking_task_is_reported_down_then_restarted() {
        let mut registry = Registry::default();
        let supervisor = Arc::new(Supervisor::new(&mut registry));
        let (stop, stop_rx) = watch::channel(false);
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let task = supervisor.spawn("flaky", stop_rx, move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    panic!("first run fails");
                }
                std::future::pending::<()>().await
            }
        });
        // The first run panics at once: the task is down, naming why.
        let deadline = Instant::now() + Duration::from_secs(5);
        while supervisor.down().is_empty() {
            assert!(Instant::now() < deadline, "never reported down");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(supervisor.down(), vec!["flaky (panicked: first run fails)"]);
        while runs.load(Ordering::SeqCst) < 2 {
            assert!(Instant::now() < deadline, "never restarted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(supervisor.down().is_empty());
        assert_eq!(supervisor.statuses()["flaky"].restarts, 1);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("qunimbus_task_restarts_total{task=\"flaky\"} 1"),
            "{text}"
        );
        stop.send_replace(true);
        task.abort();
    }
}
