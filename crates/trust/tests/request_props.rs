//! Property tests of the operator request parsers: any body is answered
//! (never a panic), and whatever is accepted respects every documented cap.

use proptest::prelude::*;
use qunimbus_trust::requests::{
    parse_command_reason, HealthEventRequest, RegionUpdate, RolloutRequest, REASON_MAX_CHARS,
    STATUSES, VERSION_MAX_CHARS,
};

const NOW: i64 = 1_700_000_000_000_000;
const WINDOW: i64 = 720 * 3_600_000_000;

fn body() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "status",
        "trust_score",
        "reason",
        "kind",
        "at",
        "version",
        "canary_region",
        "other",
    ]);
    let value = prop_oneof![
        Just("null".to_string()),
        prop::sample::select(vec![
            "\"active\"",
            "\"down\"",
            "\"failure\"",
            "\"v1\"",
            "\"2023-11-14T22:13:20Z\""
        ])
        .prop_map(str::to_string),
        any::<f64>().prop_map(|x| format!("{x:?}")),
        "[ -~]{0,1100}".prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    prop::collection::vec((key, value), 0..5).prop_map(|fields| {
        let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
        format!("{{{}}}", parts.join(","))
    })
}

proptest! {
    #[test]
    fn accepted_requests_respect_the_caps(text in body()) {
        if let Ok(update) = RegionUpdate::parse_json(&text) {
            prop_assert!(STATUSES.contains(&update.status.as_str()));
            prop_assert!(update.reason.iter().all(|r| r.chars().count() <= REASON_MAX_CHARS));
            if let Some(Some(_)) = update.trust {
                prop_assert!(update.reason.is_some());
            }
        }
        if let Ok(event) = HealthEventRequest::parse_json(&text, NOW, WINDOW) {
            prop_assert!(event.at_micros <= NOW && event.at_micros >= NOW - WINDOW);
        }
        if let Ok(rollout) = RolloutRequest::parse_json(&text) {
            prop_assert!(!rollout.version.is_empty());
            prop_assert!(rollout.version.chars().count() <= VERSION_MAX_CHARS);
        }
        if let Ok(reason) = parse_command_reason(&text) {
            prop_assert!(reason.chars().count() <= REASON_MAX_CHARS);
        }
    }
}
