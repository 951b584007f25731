//! Bearer tokens for agent sessions: 256 random bits, shown once, stored only as SHA-256.

use sha2::{Digest, Sha256};

/// Prefix that makes a leaked token recognisable (secret scanners, logs).
const PREFIX: &str = "orch_";

/// A fresh token and the hash to store.
pub fn mint() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    let mut token = String::with_capacity(PREFIX.len() + 64);
    token.push_str(PREFIX);
    for b in bytes {
        token.push_str(&format!("{b:02x}"));
    }
    let h = hash(&token);
    (token, h)
}

pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_long_random_and_hashed() {
        let (a, ha) = super::mint();
        let (b, _) = super::mint();
        assert_ne!(a, b);
        assert_eq!(a.len(), 5 + 64);
        assert_eq!(super::hash(&a), ha);
        assert_eq!(ha.len(), 32);
    }
}
