//! The compliance policy in force: loaded from its file, reloaded when the
//! file changes, shared with the market hub for distribution decisions.

use super::*;
use qunimbus_ledger::hex::sha256_hex;

/// The compliance policy in force, shared with the market hub.
pub struct PolicyHolder {
    engine: RwLock<Arc<InForce>>,
    frameworks: Vec<String>,
    pub(super) status: Mutex<PolicyStatus>,
    pub(super) path: PathBuf,
    pub(super) regions: Vec<String>,
}

/// What is known about the policy in force.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PolicyStatus {
    /// The file.
    pub path: String,
    /// SHA-256 (hex) of the text in force.
    pub sha256: String,
    /// When it was loaded.
    pub loaded_at: String,
    /// Its rules.
    pub rules: Vec<Rule>,
    /// The `config` block recording its load, once written.
    pub block_index: Option<u64>,
    /// Why the last reload attempt failed (the previous policy stays in force).
    pub last_error: Option<String>,
    /// SHA-256 of the file as last read, loaded or refused: a change on
    /// disk is a different digest (a modification time can repeat when two
    /// writes fall in one clock tick).
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub(super) seen: Option<String>,
}

/// The policy in force as ingest uses it.
#[derive(Debug)]
pub struct InForce {
    /// The loaded policy.
    pub engine: Arc<PolicyEngine>,
    /// The ledger frameworks a rule of it evidences: an accepted run is
    /// `verified` for these.
    pub enforced: Arc<[String]>,
    /// SHA-256 of its text (recorded with every run it accepts).
    pub sha256: Arc<str>,
    /// The acceptance rules of those frameworks (named on each valuation
    /// block as what verified it).
    pub verified_by: Arc<[String]>,
    /// Its text (recorded once per digest).
    pub text: Arc<str>,
}

impl InForce {
    /// `engine`, parsed from `text`, for the ledger `frameworks`.
    pub fn new(engine: PolicyEngine, text: &str, frameworks: &[String]) -> Self {
        let declared = engine.frameworks();
        let enforced: Arc<[String]> = frameworks
            .iter()
            .filter(|f| declared.iter().any(|e| e.eq_ignore_ascii_case(f)))
            .cloned()
            .collect();
        let verified_by = enforced
            .iter()
            .flat_map(|f| engine.accept_rules(f).map(|r| r.id.clone()))
            .collect();
        Self {
            engine: Arc::new(engine),
            enforced,
            sha256: text_digest(text).into(),
            verified_by,
            text: text.into(),
        }
    }
}

/// SHA-256 of `text` (a policy file's bytes).
pub(super) fn text_digest(text: &str) -> String {
    sha256_hex(text.as_bytes())
}

/// SHA-256 of the file's bytes now, if it can be read.
fn file_digest(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|bytes| sha256_hex(&bytes))
}

impl PolicyHolder {
    /// Loads the policy file (writing the built-in default first when
    /// allowed and missing). A file that does not validate stops the node.
    pub fn load(
        settings: &TrustSettings,
        regions: &RegionSet,
        frameworks: &[String],
    ) -> Result<Self, TrustError> {
        let path = settings.policy_path.clone();
        if settings.create_default_policy && !path.exists() {
            std::fs::write(&path, DEFAULT_POLICY).map_err(|source| TrustError::PolicyFile {
                path: path.clone(),
                source,
            })?;
            tracing::info!(path = %path.display(), "wrote the default compliance policy");
        }
        let regions = regions.names().to_vec();
        let text = Self::read_text(&path)?;
        let (engine, status) = Self::parse(&path, &text, &regions)?;
        Ok(Self {
            engine: RwLock::new(Arc::new(InForce::new(engine, &text, frameworks))),
            frameworks: frameworks.to_vec(),
            status: Mutex::new(status),
            path,
            regions,
        })
    }

    /// `engine`, parsed from `text`, ready to be put in force.
    pub(super) fn prepare(&self, engine: PolicyEngine, text: &str) -> InForce {
        InForce::new(engine, text, &self.frameworks)
    }

    /// Puts a prepared policy in force.
    pub(super) fn install(&self, in_force: InForce) {
        *self
            .engine
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(in_force);
    }

    /// The policy file's text.
    pub(super) fn read_text(path: &Path) -> Result<String, TrustError> {
        std::fs::read_to_string(path).map_err(|source| TrustError::PolicyFile {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The policy in `text` (read from `path`), checked against `regions`.
    pub(super) fn parse(
        path: &Path,
        text: &str,
        regions: &[String],
    ) -> Result<(PolicyEngine, PolicyStatus), TrustError> {
        let engine = PolicyEngine::load(text, regions).map_err(|source| TrustError::Policy {
            path: path.to_path_buf(),
            source,
        })?;
        let status = PolicyStatus {
            path: path.display().to_string(),
            sha256: sha256_hex(text.as_bytes()),
            loaded_at: rfc3339_micros(now_micros()),
            rules: engine.rules().to_vec(),
            block_index: None,
            last_error: None,
            seen: Some(sha256_hex(text.as_bytes())),
        };
        Ok((engine, status))
    }

    /// The policy in force with what ingest records of it.
    pub fn in_force(&self) -> Arc<InForce> {
        self.engine
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// What is known about the policy in force.
    pub fn status(&self) -> PolicyStatus {
        lock(&self.status).clone()
    }

    /// Whether the file changed on disk since it was last read.
    pub(super) fn changed_on_disk(&self) -> bool {
        file_digest(&self.path) != lock(&self.status).seen
    }
}

impl qunimbus_market::DistributionPolicy for PolicyHolder {
    fn allows(&self, class: DataClass, region: &str, partner_region: &str) -> bool {
        self.engine
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .engine
            .allows_distribution(class, region, partner_region)
    }
}
