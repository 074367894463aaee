//! Any text read as a `pyproject.toml`. Properties: no panic; what is accepted keeps its
//! promises (backend-path entries stay inside the project, requirements are not URLs).

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use wasm_build_packaging::pyproject::BuildSystem;

fuzz_target!(|text: &str| {
    let Ok(build_system) = BuildSystem::parse(text, Path::new("pyproject.toml")) else {
        return;
    };
    assert_eq!(build_system.requires.len(), build_system.requirements.len());
    for entry in &build_system.backend_path {
        assert!(!entry.starts_with('/'), "{entry}");
        assert!(entry.split('/').all(|part| part != ".." && part != "."), "{entry}");
    }
    for requirement in &build_system.requirements {
        assert!(
            !matches!(requirement.version_or_url, Some(pep508_rs::VersionOrUrl::Url(_))),
            "{requirement}"
        );
    }
});
