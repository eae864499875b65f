//! The code identity of built-in stage kinds, fixed when the binary was built (see build.rs).

use crate::kinds::StageKind;

include!(concat!(env!("OUT_DIR"), "/code_identity.rs"));

/// The digest of the sources that define how stages of `kind` behave.
pub fn builtin_code_identity(kind: StageKind) -> &'static str {
    KIND_IDENTITY
        .iter()
        .find(|(k, _)| *k == kind.name())
        .map(|(_, id)| *id)
        .expect("build.rs lists every stage kind")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_kind_has_a_code_identity() {
        for kind in StageKind::ALL {
            assert!(
                KIND_IDENTITY.iter().any(|(k, _)| *k == kind.name()),
                "build.rs has no code identity for `{}`",
                kind.name()
            );
        }
    }
}
