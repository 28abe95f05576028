//! Attempts a worker can make to show, from inside, what its sandbox stops: open a TCP
//! connection, resolve a name, read or create a file, start a program, make an `AF_INET` socket,
//! signal another process, set up io_uring; and what it must still allow: a Unix socket pair, a
//! thread, memory within the limit, talking over its socket.
//!
//! The `warden-sandbox-probe` binary serves these over its socket so tests (and an operator on a
//! new host) can ask a real confined worker and compare with an unconfined one.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::SandboxError;
use crate::frame;

/// One attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum Check {
    /// Open a TCP connection to `addr` (`ip:port`).
    TcpConnect { addr: String },
    /// Resolve `host` with the system resolver (getaddrinfo).
    Resolve { host: String },
    /// Read the file at `path`.
    ReadFile { path: PathBuf },
    /// Create (then remove) a new file in `dir`.
    CreateFile { dir: PathBuf },
    /// Start `program` and wait for it.
    Spawn { program: PathBuf },
    /// Create an `AF_INET` socket (a UDP socket bound to loopback).
    InetSocket,
    /// Create an `AF_UNIX` socket pair and pass a byte through it.
    UnixSocketPair,
    /// Send signal 0 (an existence check) to process `pid`.
    SignalProcess { pid: u32 },
    /// Set up an io_uring instance.
    IoUring,
    /// Start a thread and join it.
    SpawnThread,
    /// Allocate `bytes` and touch every page.
    Allocate { bytes: u64 },
    /// Send `text` back.
    Echo { text: String },
    /// Spin on the CPU until killed (for the CPU limit); no answer.
    BurnCpu,
    /// Sleep for `millis` milliseconds, then answer.
    Sleep { millis: u64 },
}

/// What an attempt did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The attempt succeeded.
    pub allowed: bool,
    /// The OS error number when it failed with one (1 `EPERM`: seccomp; 13 `EACCES`: Landlock).
    pub errno: Option<i32>,
    /// What came back (the echoed text, the bytes read) or the error in words.
    pub detail: String,
}

impl Outcome {
    fn allowed(detail: impl Into<String>) -> Outcome {
        Outcome {
            allowed: true,
            errno: None,
            detail: detail.into(),
        }
    }

    fn refused(error: &io::Error) -> Outcome {
        Outcome {
            allowed: false,
            errno: error.raw_os_error(),
            detail: error.to_string(),
        }
    }

    fn from_result(result: io::Result<String>) -> Outcome {
        match result {
            Ok(detail) => Outcome::allowed(detail),
            Err(error) => Outcome::refused(&error),
        }
    }
}

/// Makes one attempt.
pub fn run(check: &Check) -> Outcome {
    match check {
        Check::TcpConnect { addr } => Outcome::from_result(tcp_connect(addr)),
        Check::Resolve { host } => Outcome::from_result(
            (host.as_str(), 80)
                .to_socket_addrs()
                .map(|addrs| format!("{:?}", addrs.collect::<Vec<_>>())),
        ),
        Check::ReadFile { path } => Outcome::from_result(std::fs::read_to_string(path)),
        Check::CreateFile { dir } => Outcome::from_result(create_file(dir)),
        Check::Spawn { program } => Outcome::from_result(
            std::process::Command::new(program)
                .status()
                .map(|status| status.to_string()),
        ),
        Check::InetSocket => Outcome::from_result(
            std::net::UdpSocket::bind("127.0.0.1:0")
                .map(|socket| format!("{:?}", socket.local_addr())),
        ),
        Check::UnixSocketPair => Outcome::from_result(unix_pair()),
        Check::SignalProcess { pid } => Outcome::from_result(signal(*pid)),
        Check::IoUring => {
            Outcome::from_result(crate::sys::io_uring_setup().map(|()| String::new()))
        }
        Check::SpawnThread => Outcome::from_result(
            std::thread::Builder::new()
                .spawn(|| 6 * 7)
                .and_then(|handle| {
                    handle
                        .join()
                        .map_err(|_| io::Error::other("the thread panicked"))
                })
                .map(|answer| answer.to_string()),
        ),
        Check::Allocate { bytes } => allocate(*bytes),
        Check::Echo { text } => Outcome::allowed(text.clone()),
        Check::BurnCpu => burn_cpu(),
        Check::Sleep { millis } => {
            std::thread::sleep(Duration::from_millis(*millis));
            Outcome::allowed(String::new())
        }
    }
}

fn tcp_connect(addr: &str) -> io::Result<String> {
    let addr = addr
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{addr}: {e}")))?;
    TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map(|stream| format!("connected from {:?}", stream.local_addr()))
}

fn create_file(dir: &std::path::Path) -> io::Result<String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let path = dir.join(format!(
        "warden-sandbox-probe-{}-{nanos}",
        std::process::id()
    ));
    std::fs::write(&path, b"written from the probe")?;
    std::fs::remove_file(&path)?;
    Ok(path.display().to_string())
}

fn unix_pair() -> io::Result<String> {
    use std::io::{Read, Write};
    let (mut one, mut two) = std::os::unix::net::UnixStream::pair()?;
    one.write_all(b"x")?;
    let mut byte = [0u8; 1];
    two.read_exact(&mut byte)?;
    Ok(String::from_utf8_lossy(&byte).into_owned())
}

fn signal(pid: u32) -> io::Result<String> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a process id"))?;
    rustix::process::test_kill_process(pid)?;
    Ok(String::new())
}

fn allocate(bytes: u64) -> Outcome {
    let Ok(len) = usize::try_from(bytes) else {
        return Outcome {
            allowed: false,
            errno: None,
            detail: format!("{bytes} bytes do not fit in memory"),
        };
    };
    let mut buffer: Vec<u8> = Vec::new();
    if let Err(e) = buffer.try_reserve_exact(len) {
        return Outcome {
            allowed: false,
            errno: None,
            detail: format!("allocating {bytes} bytes failed: {e}"),
        };
    }
    buffer.resize(len, 1);
    let touched = buffer
        .iter()
        .step_by(4096)
        .map(|&b| u64::from(b))
        .sum::<u64>();
    Outcome::allowed(format!("{touched} pages touched"))
}

fn burn_cpu() -> Outcome {
    let mut x: u64 = 1;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
}

/// The largest request the probe reads.
const REQUEST_MAX: u32 = 64 * 1024;

/// Answers checks read from `reader` on `writer` until the reader closes.
pub async fn serve<R, W>(mut reader: R, mut writer: W) -> Result<(), SandboxError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    while let Some(check) = frame::read_frame::<_, Check>(&mut reader, REQUEST_MAX).await? {
        let outcome = run(&check);
        frame::write_frame(&mut writer, &outcome).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unconfined_attempts_succeed_here() {
        // The same attempts a confined worker must fail; here (the test process, unconfined)
        // they work, so a failure in the sandbox is the sandbox's doing.
        assert!(run(&Check::UnixSocketPair).allowed);
        assert!(run(&Check::SpawnThread).allowed);
        assert!(run(&Check::InetSocket).allowed);
        assert!(
            run(&Check::ReadFile {
                path: "/proc/self/status".into()
            })
            .allowed
        );
        assert_eq!(
            run(&Check::Echo {
                text: "hello".into()
            })
            .detail,
            "hello"
        );
        assert!(
            run(&Check::SignalProcess {
                pid: std::process::id()
            })
            .allowed
        );
    }

    #[test]
    fn a_bad_address_is_an_error_not_a_panic() {
        let outcome = run(&Check::TcpConnect {
            addr: "not an address".into(),
        });
        assert!(!outcome.allowed);
        assert!(outcome.detail.contains("not an address"), "{outcome:?}");
    }

    #[test]
    fn checks_are_tagged_json() -> Result<(), serde_json::Error> {
        let text = serde_json::to_string(&Check::Allocate { bytes: 5 })?;
        assert_eq!(text, r#"{"check":"allocate","bytes":5}"#);
        Ok(())
    }
}
