//! Fuzzes the policy parser: any input must give groups or errors with a
//! valid position, never a panic; and every accepted group name must stay
//! inside the root.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match cgmgr::policy::parse::parse_file(Path::new("fuzz.toml"), text) {
        Ok(groups) => {
            for g in groups {
                let name = g.name.as_str();
                assert!(!name.starts_with('/') && !name.split('/').any(|s| s == ".." || s == "." || s.is_empty()));
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            let lines = text.lines().count().max(1) + 1;
            for e in errors {
                assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}: {e}", e.line);
            }
        }
    }
});
