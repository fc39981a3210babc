//! The configuration file: any text either validates or yields errors that render with a
//! position; nothing panics. A valid configuration must be usable: its neighbors resolve
//! and comparing it with itself (a reload with no change) finds nothing to do.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::parse_str(text) {
        Ok(cfg) => {
            let _ = cfg.neighbors();
            assert!(
                cfg.neighbor_changes(&cfg).is_empty(),
                "a config differs from itself"
            );
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "an error result without errors");
            for e in errors.iter() {
                let line = e.to_string();
                assert!(
                    line.starts_with("<input>"),
                    "error without its origin: {line}"
                );
            }
        }
    }
});
