//! How personal-class runs are named on the ledger and the public feed
//! (SPEC §4, §11): by a salted reference, never by the caller's run id.

use sha2::{Digest, Sha256};

/// The public reference of a personal-class run:
/// `hex(SHA-256(salt ‖ ":" ‖ run_id))`. Without the salt (kept off the
/// ledger, in the node's database) the reference cannot be linked back to
/// the run; dropping the salt erases the link.
pub fn run_reference(salt: &str, run_id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    hasher.update(b":");
    hasher.update(run_id.as_bytes());
    crate::hex::encode(&hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_is_sha256_of_salt_colon_id() {
        // printf 's:r1' | sha256sum
        assert_eq!(
            run_reference("s", "r1"),
            "b0af94a6b1ec68a3bd24dfc984d30971c10a35d75e88c8db325d71b55d0215be"
        );
    }
}
