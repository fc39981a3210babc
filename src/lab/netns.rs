//! What the lab made — network namespaces (from the shared `netns` crate), processes,
//! files — removed again on drop, also when the lab fails half-way.

use std::path::PathBuf;
use std::process::{Child, Stdio};

use anyhow::Context;
use netns::Netns;

pub use netns::ip;

pub fn sysctl(ns: &str, key: &str, value: &str) -> anyhow::Result<()> {
    Ok(Netns::existing(ns).sysctl(key, value)?)
}

/// Everything the lab made: namespaces, processes, files.
#[derive(Default)]
pub struct Guard {
    pub namespaces: Vec<Netns>,
    pub children: Vec<Child>,
    pub dir: Option<PathBuf>,
}

impl Guard {
    pub fn add_ns(&mut self, name: &str) -> anyhow::Result<()> {
        self.namespaces.push(Netns::create(name)?);
        Ok(())
    }

    pub fn spawn(&mut self, ns: &str, args: &[&str], log: &std::path::Path) -> anyhow::Result<u32> {
        self.spawn_env(ns, args, &[], log)
    }

    /// As [`Guard::spawn`], with these environment variables set.
    pub fn spawn_env(
        &mut self,
        ns: &str,
        args: &[&str],
        env: &[(&str, String)],
        log: &std::path::Path,
    ) -> anyhow::Result<u32> {
        let file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let (program, rest) = args.split_first().context("an empty command")?;
        let child = Netns::existing(ns)
            .command(program)
            .args(rest)
            .envs(env.iter().map(|(k, v)| (k, v)))
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
            // SIGTERM first (a clean stop), then make sure; one that exited already
            // cannot be signalled, which is fine.
            let _ = ::netns::signal(c.id(), false);
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
        // Pods before nodes before the underlay: the reverse of creation.
        while let Some(ns) = self.namespaces.pop() {
            drop(ns);
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
