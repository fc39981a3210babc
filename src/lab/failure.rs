//! How the lab fails: every step that can go wrong says what it was doing, why it
//! failed and what to do, and the lab's last line and exit status name the stage.

use std::fmt;
use std::path::Path;

/// What the lab was doing when it failed; each has its own exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Root, a program or a file the lab needs is missing (checked before anything starts).
    Prerequisite,
    /// Namespaces, links, addresses: the kernel refused part of the network.
    Network,
    /// A node's ipipd did not come up, or its pod could not be made.
    Node,
    /// Routes did not reach every kernel in time.
    Converge,
    /// Pods could not reach each other along those routes.
    Reach,
    /// Deleting the pods failed.
    Teardown,
}

impl Stage {
    /// `ipipd lab`'s exit status when it fails at this stage.
    pub fn code(self) -> u8 {
        match self {
            Stage::Prerequisite => 2,
            Stage::Network => 3,
            Stage::Node => 4,
            Stage::Converge => 5,
            Stage::Reach => 6,
            Stage::Teardown => 7,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stage::Prerequisite => "missing prerequisite",
            Stage::Network => "setting up the network",
            Stage::Node => "starting a node",
            Stage::Converge => "routes did not converge",
            Stage::Reach => "pods could not reach each other",
            Stage::Teardown => "tearing down",
        }
    }
}

/// A failed step: the stage, then what was being done, why it failed and what to do.
#[derive(Debug)]
pub struct Failure {
    pub stage: Stage,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (exit {}): {}",
            self.stage.name(),
            self.stage.code(),
            self.message
        )
    }
}

impl std::error::Error for Failure {}

pub fn fail(stage: Stage, message: impl Into<String>) -> Failure {
    Failure {
        stage,
        message: message.into(),
    }
}

/// Turns any error of a step into a [`Failure`] that says what the step was, why it
/// failed and, where known, what to do.
pub trait Step<T> {
    fn step(self, stage: Stage, what: &str, todo: &str) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> Step<T> for Result<T, E> {
    fn step(self, stage: Stage, what: &str, todo: &str) -> Result<T, Failure> {
        self.map_err(|e| {
            let e: anyhow::Error = e.into();
            let mut message = format!("{what}: {e:#}");
            if !todo.is_empty() {
                message.push_str(&format!(". {todo}"));
            }
            fail(stage, message)
        })
    }
}

/// The directory on PATH holding `program`, if any.
pub fn on_path(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Fails with the Debian package to install when `program` is not on PATH.
pub fn require_program(program: &str, package: &str, why: &str) -> Result<(), Failure> {
    match on_path(program) {
        Some(_) => Ok(()),
        None => Err(fail(
            Stage::Prerequisite,
            format!("`{program}` is not on PATH ({why}): apt-get install {package}"),
        )),
    }
}

/// Fails naming the file and how to get it when `path` is not an executable file.
pub fn require_file(path: &Path, what: &str, todo: &str) -> Result<(), Failure> {
    if is_executable(path) {
        Ok(())
    } else {
        Err(fail(
            Stage::Prerequisite,
            format!("{what} {} is missing: {todo}", path.display()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_its_stage_and_exit_status() {
        let r: Result<(), std::io::Error> = Err(std::io::Error::other("File exists"));
        let e = r
            .step(
                Stage::Network,
                "creating namespace x",
                "remove it: ip netns del x",
            )
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("setting up the network (exit 3): creating namespace x: File exists. remove it: ip netns del x")
        );
    }

    #[test]
    fn a_missing_program_says_what_to_install() {
        let e = require_program(
            "surely-not-a-program-here",
            "iproute2",
            "every step uses it",
        )
        .err()
        .map(|e| (e.stage, e.to_string()));
        assert_eq!(
            e,
            Some((
                Stage::Prerequisite,
                "missing prerequisite (exit 2): `surely-not-a-program-here` is not on PATH \
                 (every step uses it): apt-get install iproute2"
                    .to_owned()
            ))
        );
    }
}
