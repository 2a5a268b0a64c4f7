use super::*;

const H: i64 = 3_600_000_000;

fn failure(hour: i64) -> HealthEvent {
    HealthEvent {
        kind: HealthEventKind::Failure,
        at: hour * H,
    }
}

fn recovery(hour: i64) -> HealthEvent {
    HealthEvent {
        kind: HealthEventKind::Recovery,
        at: hour * H,
    }
}

/// F@10 R@12 F@50 R@51 R@60 (no-op) F@90, observed 0–100 h.
fn scripted() -> Vec<HealthEvent> {
    // Recorded out of order on purpose: back-dated events are allowed.
    vec![
        failure(50),
        failure(10),
        recovery(12),
        recovery(51),
        recovery(60),
        failure(90),
    ]
}

#[test]
fn scripted_history_gives_exact_mtbf_availability_and_trust() {
    let h = assess(&scripted(), 0, 1000 * H, 100 * H);
    assert_eq!(h.up_micros, 87 * H);
    assert_eq!(h.down_micros, 13 * H);
    assert_eq!(h.failures, 3);
    assert!(!h.up_now);
    assert_eq!(h.availability(), 0.87);
    assert_eq!(h.mtbf(), Mtbf::Hours(29.0));
    assert_eq!(h.uptime_hours(), 0.0);
    assert_eq!(trust_score(h.availability(), 0), 0.87);
    assert_eq!(trust_score(h.availability(), 1), 0.87 - 0.25);
    assert_eq!(trust_score(h.availability(), 4), 0.0);
}

#[test]
fn the_window_clips_old_history_but_keeps_the_state_it_left() {
    // Observation 60–100 h: up at 60 (after R@51), F@90 → up 30, down 10.
    let h = assess(&scripted(), 0, 40 * H, 100 * H);
    assert_eq!(h.observed_from, 60 * H);
    assert_eq!(
        (h.up_micros, h.down_micros, h.failures),
        (30 * H, 10 * H, 1)
    );
    assert_eq!(h.availability(), 0.75);
    assert_eq!(h.mtbf(), Mtbf::Hours(30.0));
    // A window starting while down counts the down time, not a failure.
    let h = assess(&[failure(10), recovery(20)], 0, 95 * H, 100 * H);
    assert_eq!(h.observed_from, 5 * H);
    assert_eq!(
        (h.up_micros, h.down_micros, h.failures),
        (85 * H, 10 * H, 1)
    );
    let h = assess(&[failure(10), recovery(20)], 0, 85 * H, 100 * H);
    assert_eq!((h.up_micros, h.down_micros, h.failures), (80 * H, 5 * H, 0));
    assert_eq!(
        h.mtbf(),
        Mtbf::NoFailures {
            at_least_hours: 80.0
        }
    );
}

#[test]
fn without_events_the_region_is_up_since_tracking_began() {
    let h = assess(&[], 95 * H, 720 * H, 100 * H);
    assert_eq!((h.up_micros, h.down_micros, h.failures), (5 * H, 0, 0));
    assert_eq!(h.availability(), 1.0);
    assert_eq!(
        h.mtbf(),
        Mtbf::NoFailures {
            at_least_hours: 5.0
        }
    );
    assert!(!h.mtbf().below(100.0));
    assert_eq!(h.uptime_hours(), 5.0);
    let fresh = assess(&[], 100 * H, 720 * H, 100 * H);
    assert_eq!(fresh.availability(), 1.0);
}

#[test]
fn back_dated_events_extend_the_observation_before_tracking() {
    let h = assess(&[failure(10), recovery(12)], 50 * H, 720 * H, 100 * H);
    assert_eq!(h.observed_from, 10 * H);
    assert_eq!((h.up_micros, h.down_micros, h.failures), (88 * H, 2 * H, 1));
    assert_eq!(h.uptime_hours(), 88.0);
    // A first event that is a recovery means the region was down before it.
    let h = assess(&[recovery(30)], 50 * H, 720 * H, 100 * H);
    assert_eq!(h.observed_from, 30 * H);
    assert_eq!((h.up_micros, h.down_micros, h.failures), (70 * H, 0, 0));
    assert_eq!(h.uptime_hours(), 70.0);
}

#[test]
fn future_events_are_ignored_and_duplicates_do_not_count() {
    let h = assess(
        &[failure(10), failure(11), recovery(20), failure(200)],
        0,
        1000 * H,
        100 * H,
    );
    assert_eq!(
        (h.up_micros, h.down_micros, h.failures),
        (90 * H, 10 * H, 1)
    );
    assert!(h.up_now);
}

#[test]
fn combined_mtbf_pools_up_time_and_failures() {
    let a = assess(&scripted(), 0, 1000 * H, 100 * H); // 87 h up, 3 failures
    let b = assess(&[], 0, 1000 * H, 100 * H); // 100 h up, none
    assert_eq!(combined_mtbf([&a, &b]), Mtbf::Hours(187.0 / 3.0));
    assert_eq!(
        combined_mtbf([&b]),
        Mtbf::NoFailures {
            at_least_hours: 100.0
        }
    );
    assert!(Mtbf::Hours(99.9).below(100.0));
    assert_eq!(Mtbf::Hours(99.9).meets(100.0), Some(false));
    assert_eq!(Mtbf::Hours(120.0).meets(120.0), Some(true));
    assert_eq!(
        Mtbf::NoFailures {
            at_least_hours: 5.0
        }
        .meets(120.0),
        None
    );
    assert_eq!(
        Mtbf::NoFailures {
            at_least_hours: 130.0
        }
        .meets(120.0),
        Some(true)
    );
}

proptest::proptest! {
    #[test]
    fn up_plus_down_is_the_observation(
        raw in proptest::collection::vec((proptest::bool::ANY, 0i64..200), 0..20),
        tracked in 0i64..200,
        window in 1i64..300,
    ) {
        let events: Vec<HealthEvent> = raw.iter().map(|&(f, h)| if f { failure(h) } else { recovery(h) }).collect();
        let now = 150 * H;
        let h = assess(&events, tracked * H, window * H, now);
        proptest::prop_assert_eq!(h.up_micros + h.down_micros, now - h.observed_from);
        let a = h.availability();
        proptest::prop_assert!((0.0..=1.0).contains(&a));
    }
}
