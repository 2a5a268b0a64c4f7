//! Compliance rules as data: Cedar policies evaluated by the `cedar-policy`
//! engine (SPEC §6).
//!
//! The node asks two questions, described by [`SCHEMA`]: may it `accept` a
//! run (principal `Node`, resource `Run` with `data_class` and `region`), and
//! may it `distribute` a valuation to a partner (principal `Partner` with
//! `home_region`). Policies are validated against the schema when loaded, so a
//! misspelt attribute is refused at load time instead of silently never
//! matching. Every policy carries an `@id` annotation naming the rule (in
//! errors, metrics and reports) and optionally `@framework`.
//!
//! The answers depend only on the data class and region names, so
//! [`PolicyEngine::load`] evaluates every combination of the configured
//! regions once and the data path reads a table. Evaluation errors deny
//! (fail closed).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityUid, PolicySet,
    Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use qunimbus_core::DataClass;
use serde::Serialize;
use thiserror::Error;

/// The built-in default policy (ITAR → Americas, GDPR → EU).
pub const DEFAULT_POLICY: &str = include_str!("../policy/default.cedar");

/// What the node tells the policies, in the Cedar schema language.
pub const SCHEMA: &str = r#"
entity Node;
entity Partner = { "home_region": String };
entity Run = { "data_class": String, "region": String };
action "accept" appliesTo { principal: Node, resource: Run };
action "distribute" appliesTo { principal: Partner, resource: Run };
"#;

/// Every data class, in table order.
const CLASSES: [DataClass; 3] = [DataClass::Public, DataClass::Personal, DataClass::Itar];

/// Why a policy file was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PolicyError {
    /// The text is not Cedar.
    #[error("the policy does not parse: {0}")]
    Parse(String),
    /// The policies do not fit the schema (unknown attribute, wrong type…).
    #[error("the policy does not validate against the QuNimbus schema: {0}")]
    Invalid(String),
    /// A policy has no `@id("…")` annotation.
    #[error("policy #{0} (counting from 1) has no @id(\"...\") annotation naming the rule")]
    MissingId(usize),
    /// Two policies share an `@id`.
    #[error("two policies have the same @id {0:?}")]
    DuplicateId(String),
    /// The text holds no policy at all: an empty file, or one caught while
    /// an editor was writing it. A policy that permits nothing says so
    /// with a rule.
    #[error("the policy holds no rules (an empty file, or one still being written); write a rule, e.g. a forbid, to permit nothing")]
    Empty,
    /// The engine could not be set up (a defect, not the file's fault).
    #[error("the policy engine could not be set up: {0}")]
    Internal(String),
}

/// One rule of the loaded policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rule {
    /// The `@id` annotation.
    pub id: String,
    /// The `@framework` annotation, if any.
    pub framework: Option<String>,
    /// `permit` or `forbid`.
    pub effect: &'static str,
    /// The actions it is scoped to (`accept`, `distribute`); empty: every action.
    pub actions: Vec<String>,
}

impl Rule {
    /// Whether the rule can decide `action`.
    pub fn scopes(&self, action: &str) -> bool {
        self.actions.is_empty() || self.actions.iter().any(|a| a == action)
    }
}

/// The answer to one question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Whether the action may happen.
    pub allowed: bool,
    /// The rules that decided: the matching `forbid` rules of a denial (or
    /// `no-permit` when no rule permits), the matching `permit` rules of an
    /// allowance.
    pub rules: Vec<String>,
    /// Frameworks of those rules.
    pub frameworks: Vec<String>,
    /// Evaluation errors (each one denies).
    pub errors: Vec<String>,
}

/// A loaded, validated policy with its decision tables.
#[derive(Debug)]
pub struct PolicyEngine {
    policies: PolicySet,
    schema: Schema,
    rules: Vec<Rule>,
    /// Cedar policy id → rule index.
    by_cedar_id: HashMap<String, usize>,
    regions: Vec<String>,
    /// `[class][region]`.
    accept: Vec<Decision>,
    /// `[class][record region][partner region]`.
    distribute: Vec<Decision>,
}

fn uid(text: &str) -> Result<EntityUid, PolicyError> {
    EntityUid::from_str(text).map_err(|e| PolicyError::Internal(e.to_string()))
}

fn quoted(kind: &str, id: &str) -> String {
    format!("{kind}::{}", serde_json::Value::String(id.to_string()))
}

impl PolicyEngine {
    /// Parses and validates `text`, then evaluates every question for the
    /// configured `regions`.
    pub fn load(text: &str, regions: &[String]) -> Result<Self, PolicyError> {
        let policies = PolicySet::from_str(text).map_err(|e| PolicyError::Parse(e.to_string()))?;
        if policies.is_empty() {
            return Err(PolicyError::Empty);
        }
        let (schema, _) = Schema::from_cedarschema_str(SCHEMA)
            .map_err(|e| PolicyError::Internal(e.to_string()))?;
        let validation = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        if !validation.validation_passed() {
            let errors: Vec<String> = validation
                .validation_errors()
                .map(|e| {
                    let id = policies
                        .annotation(e.policy_id(), "id")
                        .unwrap_or("(no @id)");
                    format!("rule {id:?}: {e}")
                })
                .collect();
            return Err(PolicyError::Invalid(errors.join("; ")));
        }
        let mut rules = Vec::new();
        let mut by_cedar_id = HashMap::new();
        let mut ids = HashSet::new();
        let mut ordered: Vec<_> = policies.policies().collect();
        // Cedar names parsed policies policy0, policy1, … in file order.
        ordered.sort_by_key(|p| {
            let id = p.id().to_string();
            id.trim_start_matches("policy")
                .parse::<usize>()
                .unwrap_or(usize::MAX)
        });
        for (position, policy) in ordered.into_iter().enumerate() {
            let id = policy
                .annotation("id")
                .filter(|id| !id.trim().is_empty())
                .ok_or(PolicyError::MissingId(position + 1))?
                .to_string();
            if !ids.insert(id.clone()) {
                return Err(PolicyError::DuplicateId(id));
            }
            by_cedar_id.insert(policy.id().to_string(), rules.len());
            rules.push(Rule {
                id,
                framework: policy.annotation("framework").map(str::to_string),
                effect: match policy.effect() {
                    cedar_policy::Effect::Permit => "permit",
                    cedar_policy::Effect::Forbid => "forbid",
                },
                actions: match policy.action_constraint() {
                    cedar_policy::ActionConstraint::Any => Vec::new(),
                    cedar_policy::ActionConstraint::Eq(uid) => {
                        vec![uid.id().unescaped().to_string()]
                    }
                    cedar_policy::ActionConstraint::In(uids) => uids
                        .iter()
                        .map(|u| u.id().unescaped().to_string())
                        .collect(),
                },
            });
        }
        let mut engine = Self {
            policies,
            schema,
            rules,
            by_cedar_id,
            regions: regions.to_vec(),
            accept: Vec::new(),
            distribute: Vec::new(),
        };
        for class in CLASSES {
            for region in regions {
                let d = engine.evaluate_accept(class, region)?;
                engine.accept.push(d);
            }
        }
        for class in CLASSES {
            for region in regions {
                for partner in regions {
                    let d = engine.evaluate_distribute(class, region, partner)?;
                    engine.distribute.push(d);
                }
            }
        }
        Ok(engine)
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The `forbid` rules of `framework` that decide acceptance: the rules a
    /// run passed when it is accepted as verified for that framework.
    pub fn accept_rules<'a>(&'a self, framework: &'a str) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules.iter().filter(move |r| {
            r.effect == "forbid"
                && r.scopes("accept")
                && r.framework
                    .as_deref()
                    .is_some_and(|f| f.eq_ignore_ascii_case(framework))
        })
    }

    /// Frameworks that at least one rule evidences.
    pub fn frameworks(&self) -> BTreeSet<&str> {
        self.rules
            .iter()
            .filter_map(|r| r.framework.as_deref())
            .collect()
    }

    fn region_index(&self, region: &str) -> Option<usize> {
        self.regions.iter().position(|r| r == region)
    }

    fn class_index(class: DataClass) -> usize {
        match class {
            DataClass::Public => 0,
            DataClass::Personal => 1,
            DataClass::Itar => 2,
        }
    }

    /// Whether a run of `class` in `region` may be accepted (the ingest
    /// fast path: no allocation for configured regions).
    pub fn accepts(&self, class: DataClass, region: &str) -> bool {
        match self.region_index(region) {
            Some(r) => self.accept[Self::class_index(class) * self.regions.len() + r].allowed,
            None => self.accept(class, region).allowed,
        }
    }

    /// May this node accept a run of `class` in `region`?
    pub fn accept(&self, class: DataClass, region: &str) -> Decision {
        match self.region_index(region) {
            Some(r) => self.accept[Self::class_index(class) * self.regions.len() + r].clone(),
            None => self
                .evaluate_accept(class, region)
                .unwrap_or_else(Self::deny_on),
        }
    }

    fn distribute_slot(&self, class: DataClass, region: &str, partner: &str) -> Option<usize> {
        let n = self.regions.len();
        let (r, p) = (self.region_index(region)?, self.region_index(partner)?);
        Some((Self::class_index(class) * n + r) * n + p)
    }

    /// May a valuation of `class` from `region` go to a partner homed in
    /// `partner_region`? (The market's per-message check: no allocation for
    /// configured regions.)
    pub fn allows_distribution(
        &self,
        class: DataClass,
        region: &str,
        partner_region: &str,
    ) -> bool {
        match self.distribute_slot(class, region, partner_region) {
            Some(i) => self.distribute[i].allowed,
            None => self.distribution(class, region, partner_region).allowed,
        }
    }

    /// The full distribution decision, with the rules that made it.
    pub fn distribution(&self, class: DataClass, region: &str, partner_region: &str) -> Decision {
        match self.distribute_slot(class, region, partner_region) {
            Some(i) => self.distribute[i].clone(),
            None => self
                .evaluate_distribute(class, region, partner_region)
                .unwrap_or_else(Self::deny_on),
        }
    }

    fn deny_on(error: PolicyError) -> Decision {
        Decision {
            allowed: false,
            rules: Vec::new(),
            frameworks: Vec::new(),
            errors: vec![error.to_string()],
        }
    }

    fn run_entity(class: DataClass, region: &str) -> Result<Entity, PolicyError> {
        Entity::new(
            uid(&quoted("Run", "run"))?,
            HashMap::from([
                (
                    "data_class".to_string(),
                    RestrictedExpression::new_string(class.as_str().to_string()),
                ),
                (
                    "region".to_string(),
                    RestrictedExpression::new_string(region.to_string()),
                ),
            ]),
            HashSet::new(),
        )
        .map_err(|e| PolicyError::Internal(e.to_string()))
    }

    fn evaluate_accept(&self, class: DataClass, region: &str) -> Result<Decision, PolicyError> {
        let node = Entity::new_no_attrs(uid(&quoted("Node", "local"))?, HashSet::new());
        self.evaluate(node, "accept", Self::run_entity(class, region)?)
    }

    fn evaluate_distribute(
        &self,
        class: DataClass,
        region: &str,
        partner_region: &str,
    ) -> Result<Decision, PolicyError> {
        let partner = Entity::new(
            uid(&quoted("Partner", "partner"))?,
            HashMap::from([(
                "home_region".to_string(),
                RestrictedExpression::new_string(partner_region.to_string()),
            )]),
            HashSet::new(),
        )
        .map_err(|e| PolicyError::Internal(e.to_string()))?;
        self.evaluate(partner, "distribute", Self::run_entity(class, region)?)
    }

    fn evaluate(
        &self,
        principal: Entity,
        action: &str,
        resource: Entity,
    ) -> Result<Decision, PolicyError> {
        let request = Request::new(
            principal.uid(),
            uid(&quoted("Action", action))?,
            resource.uid(),
            Context::empty(),
            Some(&self.schema),
        )
        .map_err(|e| PolicyError::Internal(e.to_string()))?;
        let entities = Entities::from_entities([principal, resource], Some(&self.schema))
            .map_err(|e| PolicyError::Internal(e.to_string()))?;
        let response = Authorizer::new().is_authorized(&request, &self.policies, &entities);
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        let mut rules: Vec<&Rule> = response
            .diagnostics()
            .reason()
            .filter_map(|id| self.by_cedar_id.get(&id.to_string()))
            .map(|&i| &self.rules[i])
            .collect();
        rules.sort_by(|a, b| a.id.cmp(&b.id));
        let allowed = response.decision() == CedarDecision::Allow && errors.is_empty();
        let mut names: Vec<String> = rules.iter().map(|r| r.id.clone()).collect();
        if !allowed && names.is_empty() && errors.is_empty() {
            names.push("no-permit".into());
        }
        let frameworks: BTreeSet<String> =
            rules.iter().filter_map(|r| r.framework.clone()).collect();
        Ok(Decision {
            allowed,
            rules: names,
            frameworks: frameworks.into_iter().collect(),
            errors,
        })
    }
}

#[cfg(test)]
mod tests;
