use super::*;
use crate::policy::DEFAULT_POLICY;
use qunimbus_core::DEFAULT_REGIONS;

fn load(text: &str) -> PolicyEngine {
    let regions: Vec<String> = DEFAULT_REGIONS.iter().map(|r| r.to_string()).collect();
    PolicyEngine::load(text, &regions).unwrap()
}

fn policy() -> PolicyEngine {
    load(DEFAULT_POLICY)
}

/// Judges `e` with `p` as the only policy there has been.
fn only(p: &PolicyEngine, e: &Evidence) -> ComplianceReport {
    evaluate(
        &[PolicyInForce {
            sha256: "default",
            since_us: 0,
            engine: p,
        }],
        e,
        &frameworks(),
    )
}

/// The default policy with ITAR also accepted in `region`.
fn itar_also_in(region: &str) -> String {
    DEFAULT_POLICY.replace(
        r#"["Americas"].contains(resource.region)"#,
        &format!(r#"["Americas", "{region}"].contains(resource.region)"#),
    )
}

fn frameworks() -> Vec<String> {
    ["DO-178C", "ITAR", "GDPR", "ISO-27001"]
        .iter()
        .map(|f| f.to_string())
        .collect()
}

fn clean() -> Evidence {
    Evidence {
        ledger: Some(Ok(())),
        stored_runs: vec![
            StoredRuns {
                data_class: DataClass::Itar,
                region: "Americas".into(),
                policy_sha256: Some("default".into()),
                first_accepted_us: 10,
                count: 4,
            },
            StoredRuns {
                data_class: DataClass::Personal,
                region: "EU".into(),
                policy_sha256: None,
                first_accepted_us: 10,
                count: 2,
            },
        ],
        personal_in_clear: 0,
        policy_recorded: Ok(()),
        config_recorded: Ok(()),
        rollouts: vec![RolloutEvidence {
            id: "r1".into(),
            transitions: 3,
            blocks: 3,
            started_at_canary: true,
        }],
        violations: BTreeMap::from([("itar-accept-region".into(), 7)]),
    }
}

#[test]
fn clean_evidence_is_compliant_and_unknown_frameworks_stay_pending() {
    let r = only(&policy(), &clean());
    assert_eq!(r.frameworks["ITAR"].compliant, Some(true));
    assert!(r.frameworks["ITAR"]
        .reasons
        .iter()
        .any(|m| m == "7 violating requests rejected since the node started"));
    assert_eq!(r.frameworks["GDPR"].compliant, Some(true));
    assert_eq!(r.frameworks["ISO-27001"].compliant, Some(true));
    assert_eq!(r.frameworks["DO-178C"].compliant, None);
    assert!(r.failures().is_empty());
    assert_eq!(r.findings_for("EU"), 0);
}

#[test]
fn runs_stored_where_the_policy_forbids_them_are_findings_for_that_region() {
    let mut e = clean();
    e.stored_runs.push(StoredRuns {
        data_class: DataClass::Itar,
        region: "EU".into(),
        policy_sha256: Some("default".into()),
        first_accepted_us: 10,
        count: 3,
    });
    let r = only(&policy(), &e);
    assert_eq!(r.frameworks["ITAR"].compliant, Some(false));
    assert!(r.frameworks["ITAR"].reasons.iter().any(|m| m
        == "3 itar runs are stored in EU, although the policy that accepted them (default) forbids it (itar-accept-region)"));
    assert_eq!(r.findings_for("EU"), 1);
    assert_eq!(r.findings_for("Americas"), 0);
    assert_eq!(r.failures().len(), 1);
    assert!(r.failures()[0].starts_with("ITAR non-compliant"));
}

#[test]
fn personal_data_in_clear_or_a_broken_ledger_fail_everywhere() {
    let mut e = clean();
    e.personal_in_clear = 2;
    e.ledger = Some(Err("block 5: hash mismatch".into()));
    let r = only(&policy(), &e);
    assert_eq!(r.frameworks["GDPR"].compliant, Some(false));
    assert_eq!(r.frameworks["ISO-27001"].compliant, Some(false));
    assert_eq!(r.global_findings, 2);
    assert_eq!(r.findings_for("Polar"), 2);
}

#[test]
fn change_control_needs_every_transition_on_the_ledger() {
    let mut e = clean();
    e.rollouts[0].blocks = 2;
    let r = only(&policy(), &e);
    assert_eq!(r.frameworks["ISO-27001"].compliant, Some(false));
    let mut e = clean();
    e.ledger = None;
    let r = only(&policy(), &e);
    assert_eq!(r.frameworks["ISO-27001"].compliant, None);
    let mut e = clean();
    e.policy_recorded = Err("the running policy is not on the ledger".into());
    let r = only(&policy(), &e);
    assert_eq!(r.frameworks["ISO-27001"].compliant, Some(false));
    let mut e = clean();
    e.config_recorded = Err("valuation.eta_baseline changed without a block".into());
    let r = only(&policy(), &e);
    assert_eq!(r.frameworks["ISO-27001"].compliant, Some(false));
    assert!(r.frameworks["ISO-27001"]
        .reasons
        .iter()
        .any(|m| m == "valuation.eta_baseline changed without a block"));
}

#[test]
fn a_policy_without_itar_rules_is_not_itar_compliant() {
    let regions: Vec<String> = DEFAULT_REGIONS.iter().map(|r| r.to_string()).collect();
    let p = PolicyEngine::load(
        r#"@id("all") permit (principal, action, resource);"#,
        &regions,
    )
    .unwrap();
    let r = only(&p, &clean());
    assert_eq!(r.frameworks["ITAR"].compliant, Some(false));
    assert_eq!(r.frameworks["GDPR"].compliant, Some(false));
}

#[test]
fn a_run_is_judged_by_the_policy_that_accepted_it_and_widening_later_clears_nothing() {
    let (narrow, wide) = (policy(), load(&itar_also_in("EU")));
    // Two ITAR runs in EU, the first accepted at t = 150 by `accepted_by`.
    let misplaced = |accepted_by: &str| {
        let mut e = clean();
        e.stored_runs.push(StoredRuns {
            data_class: DataClass::Itar,
            region: "EU".into(),
            policy_sha256: Some(accepted_by.into()),
            first_accepted_us: 150,
            count: 2,
        });
        e
    };
    let p = |sha256, since_us, engine| PolicyInForce {
        sha256,
        since_us,
        engine,
    };
    let reasons = |r: &ComplianceReport| r.frameworks["ITAR"].reasons.clone();
    // Accepted by the wide policy, narrowed at 200, widened again at 300:
    // today's policy accepts it, but the run is still a finding.
    let periods = [
        p("wide", 100, &wide),
        p("narrow", 200, &narrow),
        p("wide", 300, &wide),
    ];
    let r = evaluate(&periods, &misplaced("wide"), &frameworks());
    assert_eq!(r.frameworks["ITAR"].compliant, Some(false));
    assert!(reasons(&r).iter().any(|m| m
        == "2 itar runs accepted in EU under policy wide are forbidden there by policy narrow, put in force later (itar-accept-region)"));
    assert_eq!(r.findings_for("EU"), 1);
    // The same runs accepted after the second widening: compliant.
    let mut e = misplaced("wide");
    e.stored_runs.last_mut().unwrap().first_accepted_us = 350;
    let r = evaluate(&periods, &e, &frameworks());
    assert_eq!(r.frameworks["ITAR"].compliant, Some(true));
    // Stored although the policy that accepted them forbids it.
    let r = evaluate(
        &[p("narrow", 100, &narrow), p("wide", 200, &wide)],
        &misplaced("narrow"),
        &frameworks(),
    );
    assert!(reasons(&r).iter().any(|m| m
        == "2 itar runs are stored in EU, although the policy that accepted them (narrow) forbids it (itar-accept-region)"));
    // Accepted by a policy nobody recorded: judged by every recorded one.
    let r = evaluate(
        &[p("narrow", 100, &narrow), p("wide", 200, &wide)],
        &misplaced("lost"),
        &frameworks(),
    );
    assert_eq!(r.frameworks["ITAR"].compliant, Some(false));
}

#[test]
fn accept_rules_name_what_verified_a_run() {
    let p = policy();
    let itar: Vec<&str> = p.accept_rules("itar").map(|r| r.id.as_str()).collect();
    assert_eq!(itar, ["itar-accept-region"]);
    let gdpr: Vec<&str> = p.accept_rules("GDPR").map(|r| r.id.as_str()).collect();
    assert_eq!(gdpr, ["gdpr-accept-region"]);
}
