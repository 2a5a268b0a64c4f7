use super::*;
use qunimbus_core::DEFAULT_REGIONS;

fn regions() -> Vec<String> {
    DEFAULT_REGIONS.iter().map(|r| r.to_string()).collect()
}

fn default_engine() -> PolicyEngine {
    PolicyEngine::load(DEFAULT_POLICY, &regions()).unwrap()
}

#[test]
fn default_policy_keeps_itar_in_americas_and_personal_data_in_the_eu() {
    let p = default_engine();
    for region in DEFAULT_REGIONS {
        assert!(p.accept(DataClass::Public, region).allowed);
        assert_eq!(
            p.accept(DataClass::Itar, region).allowed,
            region == "Americas"
        );
        assert_eq!(
            p.accept(DataClass::Personal, region).allowed,
            region == "EU"
        );
        for partner in DEFAULT_REGIONS {
            assert!(p.allows_distribution(DataClass::Public, region, partner));
            assert_eq!(
                p.allows_distribution(DataClass::Itar, region, partner),
                partner == "Americas"
            );
            assert_eq!(
                p.allows_distribution(DataClass::Personal, region, partner),
                partner == "EU"
            );
        }
    }
    let denied = p.accept(DataClass::Itar, "EU");
    assert_eq!(denied.rules, ["itar-accept-region"]);
    assert_eq!(denied.frameworks, ["ITAR"]);
    assert!(denied.errors.is_empty());
    let denied = p.distribution(DataClass::Personal, "EU", "APAC");
    assert_eq!(denied.rules, ["gdpr-distribute-region"]);
    assert_eq!(denied.frameworks, ["GDPR"]);
    let allowed = p.accept(DataClass::Public, "Orbit");
    assert_eq!(allowed.rules, ["baseline-permit"]);
    assert_eq!(
        p.frameworks().into_iter().collect::<Vec<_>>(),
        ["GDPR", "ITAR"]
    );
    assert_eq!(p.rules().len(), 5);
    assert_eq!(p.rules()[1].id, "itar-accept-region");
    assert_eq!(p.rules()[1].effect, "forbid");
}

#[test]
fn regions_outside_the_table_are_evaluated_directly() {
    let p = default_engine();
    assert!(!p.accept(DataClass::Itar, "Atlantis").allowed);
    assert!(p.accept(DataClass::Public, "Atlantis").allowed);
    assert!(p.allows_distribution(DataClass::Itar, "Atlantis", "Americas"));
    assert!(!p.allows_distribution(DataClass::Itar, "Atlantis", "EU"));
}

#[test]
fn an_edited_policy_changes_the_decision() {
    let edited = DEFAULT_POLICY.replace(
        r#"!(["Americas"].contains(resource.region))"#,
        r#"!(["Americas", "EU"].contains(resource.region))"#,
    );
    assert_ne!(edited, DEFAULT_POLICY);
    let p = PolicyEngine::load(&edited, &regions()).unwrap();
    assert!(p.accept(DataClass::Itar, "EU").allowed);
    assert!(!p.accept(DataClass::Itar, "APAC").allowed);
}

#[test]
fn without_a_permit_everything_is_denied() {
    let p = PolicyEngine::load(
        r#"@id("only-forbid") forbid (principal, action, resource) when { false };"#,
        &regions(),
    )
    .unwrap();
    let d = p.accept(DataClass::Public, "EU");
    assert!(!d.allowed);
    assert_eq!(d.rules, ["no-permit"]);
}

#[test]
fn bad_policies_are_refused_with_the_reason() {
    let regions = regions();
    for empty in ["", "\n  \n", "// only a comment\n"] {
        assert_eq!(
            PolicyEngine::load(empty, &regions).unwrap_err(),
            PolicyError::Empty
        );
    }
    assert!(matches!(
        PolicyEngine::load("permit (principal, action resource);", &regions),
        Err(PolicyError::Parse(_))
    ));
    assert_eq!(
        PolicyEngine::load(
            "@id(\"a\") permit (principal, action, resource);\npermit (principal, action, resource);",
            &regions
        )
        .unwrap_err(),
        PolicyError::MissingId(2)
    );
    assert_eq!(
        PolicyEngine::load(
            "@id(\"a\") permit (principal, action, resource);\n@id(\"a\") forbid (principal, action, resource);",
            &regions
        )
        .unwrap_err(),
        PolicyError::DuplicateId("a".into())
    );
    let misspelt = DEFAULT_POLICY.replacen("resource.region", "resource.regoin", 1);
    match PolicyEngine::load(&misspelt, &regions) {
        Err(PolicyError::Invalid(message)) => {
            assert!(message.contains("itar-accept-region"), "{message}");
            assert!(message.contains("regoin"), "{message}");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    // A partner attribute in an accept rule does not fit the schema either.
    let wrong_principal = r#"
        @id("p") permit (principal, action, resource);
        @id("x") forbid (principal, action == Action::"accept", resource)
        when { principal.home_region == "EU" };
    "#;
    assert!(matches!(
        PolicyEngine::load(wrong_principal, &regions),
        Err(PolicyError::Invalid(_))
    ));
}
