//! The compliance policy in force: loaded from its file, reloaded when the
//! file changes, shared with the market hub for distribution decisions.

use super::*;

/// The compliance policy in force, shared with the market hub.
pub struct PolicyHolder {
    engine: RwLock<(Arc<PolicyEngine>, Arc<[String]>)>,
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

fn sha256_hex(bytes: &[u8]) -> String {
    qunimbus_ledger::hex::encode(&qunimbus_ledger::merkle::sha256(bytes))
}

/// The ledger frameworks (of `frameworks`) that a rule of `engine` evidences.
fn enforced_frameworks(engine: &PolicyEngine, frameworks: &[String]) -> Arc<[String]> {
    let enforced = engine.frameworks();
    frameworks
        .iter()
        .filter(|f| enforced.iter().any(|e| e.eq_ignore_ascii_case(f)))
        .cloned()
        .collect()
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
        let (engine, status) = Self::read(&path, &regions)?;
        let enforced = enforced_frameworks(&engine, frameworks);
        Ok(Self {
            engine: RwLock::new((Arc::new(engine), enforced)),
            frameworks: frameworks.to_vec(),
            status: Mutex::new(status),
            path,
            regions,
        })
    }

    /// Puts `engine` in force.
    pub(super) fn install(&self, engine: PolicyEngine) {
        let enforced = enforced_frameworks(&engine, &self.frameworks);
        *self
            .engine
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (Arc::new(engine), enforced);
    }

    fn read(path: &Path, regions: &[String]) -> Result<(PolicyEngine, PolicyStatus), TrustError> {
        Self::parse(path, &Self::read_text(path)?, regions)
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

    /// The policy in force.
    pub fn engine(&self) -> Arc<PolicyEngine> {
        self.engine_and_frameworks().0
    }

    /// The policy in force and the ledger frameworks it evidences.
    pub fn engine_and_frameworks(&self) -> (Arc<PolicyEngine>, Arc<[String]>) {
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
            .0
            .allows_distribution(class, region, partner_region)
    }
}
