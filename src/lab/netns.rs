//! Network namespaces and processes the lab creates, removed again on drop
//! (also when the lab fails half-way).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context};

/// Runs `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (is iproute2 installed?)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs a command inside a namespace.
pub fn exec(ns: &str, args: &[&str]) -> anyhow::Result<std::process::Output> {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .output()
        .with_context(|| format!("running {} in {ns}", args.join(" ")))
}

pub fn sysctl(ns: &str, key: &str, value: &str) -> anyhow::Result<()> {
    let out = exec(ns, &["sysctl", "-qw", &format!("{key}={value}")])?;
    if !out.status.success() {
        // sysctl may be missing; write /proc directly.
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        let out = exec(ns, &["sh", "-c", &format!("echo {value} > {path}")])?;
        if !out.status.success() {
            bail!(
                "setting {key} in {ns}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(())
}

/// Everything the lab made: namespaces, processes, files.
#[derive(Default)]
pub struct Guard {
    pub namespaces: Vec<String>,
    pub children: Vec<Child>,
    pub dir: Option<PathBuf>,
}

impl Guard {
    pub fn add_ns(&mut self, name: &str) -> anyhow::Result<()> {
        ip(&["netns", "add", name])?;
        self.namespaces.push(name.to_string());
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(())
    }

    pub fn spawn(&mut self, ns: &str, args: &[&str], log: &std::path::Path) -> anyhow::Result<u32> {
        let file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("starting {} in {ns}", args.join(" ")))?;
        let pid = child.id();
        self.children.push(child);
        Ok(pid)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for c in &mut self.children {
            // SIGTERM first (a clean stop), then make sure.
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        }
        for c in &mut self.children {
            for _ in 0..30 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
