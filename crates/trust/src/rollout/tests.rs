use super::*;

const S: i64 = 1_000_000;

fn rollout() -> Rollout {
    let (phases, canary) = plan_for_canary(&default_phases(), "americas").unwrap();
    Rollout::start("r1".into(), "1.4.0".into(), canary, phases, 30 * S, 0)
}

fn healthy() -> GateInputs {
    let mut inputs = GateInputs::default();
    for r in ["Americas", "EU", "APAC", "MENA", "Polar", "Orbit"] {
        inputs.trust.insert(r.into(), 0.99);
        inputs.mtbf.insert(
            r.into(),
            Mtbf::NoFailures {
                at_least_hours: 1.0,
            },
        );
    }
    inputs
}

fn run(r: &mut Rollout, now: i64, inputs: &GateInputs) -> Option<Step> {
    let step = r.tick(now, inputs, &GateThresholds::default())?;
    r.apply(&step, now, format!("t{now}"));
    Some(step)
}

#[test]
fn healthy_rollout_walks_every_phase_after_each_soak() {
    let mut r = rollout();
    assert_eq!(r.deployed_regions(), ["Americas"]);
    assert_eq!(run(&mut r, 29 * S, &healthy()), None);
    assert_eq!(run(&mut r, 30 * S, &healthy()).unwrap().phase, 1);
    assert_eq!(r.deployed_regions(), ["Americas", "EU"]);
    assert_eq!(run(&mut r, 59 * S, &healthy()), None);
    run(&mut r, 60 * S, &healthy());
    assert_eq!(r.deployed_regions(), ["Americas", "EU", "APAC", "MENA"]);
    run(&mut r, 90 * S, &healthy());
    assert_eq!((r.state, r.phase), (RolloutState::Running, 3));
    run(&mut r, 120 * S, &healthy());
    assert_eq!(r.state, RolloutState::Completed);
    assert_eq!(r.deployed_regions().len(), 6);
    assert_eq!(run(&mut r, 999 * S, &healthy()), None);
    let labels: Vec<_> = r
        .history
        .iter()
        .map(|t| (t.from.as_str(), t.to.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("running@0", "running@1"),
            ("running@1", "running@2"),
            ("running@2", "running@3"),
            ("running@3", "completed@3")
        ]
    );
}

#[test]
fn trust_below_threshold_in_a_deployed_region_rolls_back() {
    let mut r = rollout();
    run(&mut r, 30 * S, &healthy()); // EU deployed
    let mut inputs = healthy();
    inputs.trust.insert("APAC".into(), 0.1); // not deployed: ignored
    assert_eq!(run(&mut r, 31 * S, &inputs), None);
    inputs.trust.insert("EU".into(), 0.69);
    let step = run(&mut r, 32 * S, &inputs).unwrap();
    assert_eq!(step.state, RolloutState::RolledBack);
    assert!(step.reason.contains("EU 0.690"), "{}", step.reason);
    assert!(r.deployed_regions().is_empty());
    assert_eq!(r.history.last().unwrap().to, "rolled_back@1");
    // Exactly 0.7 is not below the threshold.
    let mut r = rollout();
    let mut inputs = healthy();
    inputs.trust.insert("Americas".into(), 0.7);
    assert_eq!(r.tick(S, &inputs, &GateThresholds::default()), None);
    r.state = RolloutState::Paused;
    inputs.trust.insert("Americas".into(), 0.5);
    assert_eq!(
        r.tick(S, &inputs, &GateThresholds::default())
            .unwrap()
            .state,
        RolloutState::RolledBack,
        "a paused rollout still rolls back"
    );
}

#[test]
fn failed_compliance_rolls_back() {
    let mut r = rollout();
    let mut inputs = healthy();
    inputs
        .compliance_failures
        .push("ITAR: 3 itar runs stored in EU".into());
    let step = run(&mut r, S, &inputs).unwrap();
    assert_eq!(step.state, RolloutState::RolledBack);
    assert!(step.reason.contains("ITAR"));
}

#[test]
fn mtbf_below_100_hours_pauses_and_only_an_operator_resumes() {
    let mut r = rollout();
    let mut inputs = healthy();
    inputs.mtbf.insert("Americas".into(), Mtbf::Hours(99.5));
    let step = run(&mut r, 31 * S, &inputs).unwrap();
    assert_eq!((step.state, step.phase), (RolloutState::Paused, 0));
    assert!(step.reason.contains("Americas 99.50 h"), "{}", step.reason);
    assert_eq!(run(&mut r, 500 * S, &healthy()), None, "stays paused");
    let resume = r.command(Command::Resume, "root cause fixed").unwrap();
    r.apply(&resume, 600 * S, "t".into());
    assert_eq!(
        r.phase_started_at,
        600 * S,
        "a resume soaks the phase again"
    );
    assert_eq!(run(&mut r, 629 * S, &healthy()), None);
    assert_eq!(run(&mut r, 630 * S, &healthy()).unwrap().phase, 1);
}

#[test]
fn operator_commands() {
    let mut r = rollout();
    let advance = r.command(Command::Advance, "").unwrap();
    assert_eq!((advance.phase, advance.actor), (1, "operator"));
    r.apply(&advance, 5 * S, "t".into());
    assert_eq!(r.phase_started_at, 5 * S);
    assert!(r.command(Command::Resume, "").is_err());
    let pause = r.command(Command::Pause, "investigating").unwrap();
    assert_eq!(pause.reason, "manual pause: investigating");
    r.apply(&pause, 6 * S, "t".into());
    assert_eq!(r.reason.as_deref(), Some("manual pause: investigating"));
    let back = r.command(Command::Rollback, "").unwrap();
    r.apply(&back, 7 * S, "t".into());
    assert_eq!(
        r.command(Command::Advance, ""),
        Err(RolloutError::InvalidCommand {
            command: "advance",
            state: RolloutState::RolledBack
        })
    );
}

#[test]
fn the_canary_swaps_places_with_the_default_canary() {
    let (phases, canary) = plan_for_canary(&default_phases(), "apac").unwrap();
    assert_eq!(canary, "APAC");
    assert_eq!(phases[0].regions, ["APAC"]);
    assert_eq!(phases[2].regions, ["Americas", "MENA"]);
    assert_eq!(
        plan_for_canary(&default_phases(), "Atlantis"),
        Err(RolloutError::UnknownCanary("Atlantis".into()))
    );
    let mut bad = default_phases();
    bad[1].percent = 4;
    assert!(matches!(
        validate_plan(&bad),
        Err(RolloutError::InvalidPlan(_))
    ));
    bad = default_phases();
    bad[3].percent = 90;
    assert!(validate_plan(&bad).is_err());
    bad = default_phases();
    bad[2].regions.push("eu".into());
    assert!(validate_plan(&bad).is_err());
}

#[test]
fn a_rollout_survives_serialization() {
    let mut r = rollout();
    r.record_creation("t0".into());
    run(&mut r, 30 * S, &healthy());
    let json = serde_json::to_string(&r).unwrap();
    let back: Rollout = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
    assert_eq!(back.history[0].from, "created");
}
