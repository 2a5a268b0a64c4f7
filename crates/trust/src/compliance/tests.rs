use super::*;
use crate::policy::DEFAULT_POLICY;
use qunimbus_core::DEFAULT_REGIONS;

fn policy() -> PolicyEngine {
    let regions: Vec<String> = DEFAULT_REGIONS.iter().map(|r| r.to_string()).collect();
    PolicyEngine::load(DEFAULT_POLICY, &regions).unwrap()
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
                count: 4,
            },
            StoredRuns {
                data_class: DataClass::Personal,
                region: "EU".into(),
                count: 2,
            },
        ],
        personal_in_clear: 0,
        policy_recorded: Ok(()),
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
    let r = evaluate(&policy(), &clean(), &frameworks());
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
        count: 3,
    });
    let r = evaluate(&policy(), &e, &frameworks());
    assert_eq!(r.frameworks["ITAR"].compliant, Some(false));
    assert!(r.frameworks["ITAR"].reasons.iter().any(|m| m
        == "3 itar runs are stored in EU, where the policy does not accept them (itar-accept-region)"));
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
    let r = evaluate(&policy(), &e, &frameworks());
    assert_eq!(r.frameworks["GDPR"].compliant, Some(false));
    assert_eq!(r.frameworks["ISO-27001"].compliant, Some(false));
    assert_eq!(r.global_findings, 2);
    assert_eq!(r.findings_for("Polar"), 2);
}

#[test]
fn change_control_needs_every_transition_on_the_ledger() {
    let mut e = clean();
    e.rollouts[0].blocks = 2;
    let r = evaluate(&policy(), &e, &frameworks());
    assert_eq!(r.frameworks["ISO-27001"].compliant, Some(false));
    let mut e = clean();
    e.ledger = None;
    let r = evaluate(&policy(), &e, &frameworks());
    assert_eq!(r.frameworks["ISO-27001"].compliant, None);
    let mut e = clean();
    e.policy_recorded = Err("the running policy is not on the ledger".into());
    let r = evaluate(&policy(), &e, &frameworks());
    assert_eq!(r.frameworks["ISO-27001"].compliant, Some(false));
}

#[test]
fn a_policy_without_itar_rules_is_not_itar_compliant() {
    let regions: Vec<String> = DEFAULT_REGIONS.iter().map(|r| r.to_string()).collect();
    let p = PolicyEngine::load(
        r#"@id("all") permit (principal, action, resource);"#,
        &regions,
    )
    .unwrap();
    let r = evaluate(&p, &clean(), &frameworks());
    assert_eq!(r.frameworks["ITAR"].compliant, Some(false));
    assert_eq!(r.frameworks["GDPR"].compliant, Some(false));
}
