//! A failed `accept` does not end the keeper: its peers would read the end of its
//! sessions as this node's death. Here the process runs out of file descriptors
//! while a daemon's connection waits (EMFILE); once one is free, the keeper takes
//! the connection. A test binary of its own: the limit is the whole process's.
#![allow(unsafe_code)] // getrlimit/setrlimit

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bfd::keeper::Options;
use socket2::{Domain, SockAddr, Socket, Type};

mod common;
use common::keeper::serve_keeper;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn nofile() -> std::io::Result<libc::rlimit> {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid pointer to an rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(l)
}

fn set_nofile(l: &libc::rlimit) -> std::io::Result<()> {
    // SAFETY: a valid pointer to an rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, l) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_accept_does_not_end_the_keeper() -> Result<()> {
    let (socket, keeper) = serve_keeper(
        "ipipd-keeper-accept",
        Options {
            grace: Duration::from_secs(60),
            port: 43789,
            resident: false,
        },
    )?;
    let deadline = Instant::now() + Duration::from_secs(3);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        if Instant::now() > deadline {
            return Err("the keeper does not listen".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The socket exists before the limit; connecting needs no new descriptor.
    let daemon = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    daemon.set_read_timeout(Some(Duration::from_secs(5)))?;
    let saved = nofile()?;
    // The lowest free descriptor: with the limit there, none is left.
    let lowest_free = std::fs::File::open("/dev/null")?.as_raw_fd();
    let exhausted = libc::rlimit {
        rlim_cur: libc::rlim_t::try_from(lowest_free)?,
        rlim_max: saved.rlim_max,
    };
    set_nofile(&exhausted)?;
    let queued = daemon.connect(&SockAddr::unix(&socket)?);
    // The keeper's accept fails with EMFILE meanwhile, and again on each retry.
    tokio::time::sleep(Duration::from_millis(300)).await;
    set_nofile(&saved)?;
    queued?;
    assert!(
        !keeper.is_finished(),
        "the keeper ended on a failed accept: {:?}",
        keeper.await
    );

    // Accepted once a descriptor is free: the sessions come first.
    let mut line = String::new();
    let stream = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(daemon));
    tokio::task::block_in_place(|| BufReader::new(stream).read_line(&mut line))?;
    assert!(line.contains(r#""op":"sessions""#), "{line:?}");
    keeper.abort();
    if let Some(dir) = socket.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}
