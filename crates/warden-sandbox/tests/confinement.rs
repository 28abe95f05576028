//! A real confined worker (the `warden-sandbox-probe` binary) on this machine: what it cannot
//! do, what it still can, its limits, refusal below the minimum, its attestation against
//! `/proc`, and that no worker outlives its handle. Each refusal is compared with the same
//! attempt by the same binary unconfined, so a failure is the sandbox's doing.
//!
//! The suite runs as whoever runs `cargo test`. When that is root,
//! `unprivileged_user_gets_the_same_confinement` also runs the whole suite again as `nobody`
//! (a copy of this test binary under `setpriv`), where no network namespace can be made and
//! Landlock and seccomp alone must hold.

use std::error::Error;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::process::Command;
use warden_sandbox::selfcheck::{Check, Outcome};
use warden_sandbox::{
    Attestation, LANDLOCK_ABI_KNOWN, Policy, Required, SandboxError, SeccompMode, Worker, frame,
    probe, spawn,
};

type TestResult = Result<(), Box<dyn Error>>;

/// Set by the unprivileged re-run: the probe copied where `nobody` can execute it.
const PROBE_ENV: &str = "WARDEN_SANDBOX_TEST_PROBE";
const EPERM: i32 = 1;
const EACCES: i32 = 13;

fn probe_binary() -> PathBuf {
    std::env::var_os(PROBE_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_warden-sandbox-probe")))
}

/// What this host must give; the suite proves nothing on a host without Landlock and seccomp,
/// so it fails there rather than pass vacuously.
fn host() -> Attestation {
    let host = probe();
    assert!(
        host.landlock_abi >= 1 && host.seccomp == SeccompMode::Filter,
        "this host lacks Landlock or seccomp ({host:?}); the sandbox cannot be tested here"
    );
    host
}

fn policy() -> Policy {
    Policy {
        memory_bytes: 256 << 20,
        cpu_seconds: 20,
        max_open_files: 64,
        min: Required {
            landlock_abi: 1,
            seccomp: true,
            network_namespace: host().network_namespace,
        },
    }
}

async fn ask<S>(stream: &mut S, check: &Check) -> Result<Outcome, Box<dyn Error>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    frame::write_frame(stream, check).await?;
    let outcome: Option<Outcome> = frame::read_frame(stream, 1 << 20).await?;
    outcome
        .ok_or_else(|| format!("the probe closed its socket instead of answering {check:?}").into())
}

/// The unconfined probe's stdin and stdout as one stream.
struct Piped {
    child: tokio::process::Child,
    io: tokio::io::Join<tokio::process::ChildStdout, tokio::process::ChildStdin>,
}

async fn unconfined() -> Result<Piped, Box<dyn Error>> {
    let mut child = Command::new(probe_binary())
        .arg("--unconfined")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdout = child.stdout.take().ok_or("no stdout")?;
    let stdin = child.stdin.take().ok_or("no stdin")?;
    let first: Option<Attestation> = frame::read_frame(&mut stdout, 4096).await?;
    assert_eq!(first, Some(Attestation::NONE));
    Ok(Piped {
        child,
        io: tokio::io::join(stdout, stdin),
    })
}

/// What the checks touch: a listener, a readable file only the test made, a directory.
struct Targets {
    listener: std::net::TcpListener,
    secret: tempfile::NamedTempFile,
    secret_text: String,
}

fn targets() -> Result<Targets, Box<dyn Error>> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let mut secret = tempfile::NamedTempFile::new()?;
    let secret_text = format!("secret of test process {}", std::process::id());
    secret.write_all(secret_text.as_bytes())?;
    secret.flush()?;
    std::fs::set_permissions(secret.path(), std::fs::Permissions::from_mode(0o644))?;
    Ok(Targets {
        listener,
        secret,
        secret_text,
    })
}

fn checks(targets: &Targets) -> Result<Vec<(&'static str, Check)>, Box<dyn Error>> {
    Ok(vec![
        (
            "tcp",
            Check::TcpConnect {
                addr: targets.listener.local_addr()?.to_string(),
            },
        ),
        (
            "resolve",
            Check::Resolve {
                host: "localhost".into(),
            },
        ),
        (
            "read",
            Check::ReadFile {
                path: targets.secret.path().to_path_buf(),
            },
        ),
        (
            "read /etc/passwd",
            Check::ReadFile {
                path: "/etc/passwd".into(),
            },
        ),
        (
            "create",
            Check::CreateFile {
                dir: std::env::temp_dir(),
            },
        ),
        (
            "spawn",
            Check::Spawn {
                program: "/bin/true".into(),
            },
        ),
        ("inet", Check::InetSocket),
        (
            "signal",
            Check::SignalProcess {
                pid: std::process::id(),
            },
        ),
        ("io_uring", Check::IoUring),
        ("unix pair", Check::UnixSocketPair),
        ("thread", Check::SpawnThread),
        (
            "echo",
            Check::Echo {
                text: "over the inherited socket".into(),
            },
        ),
    ])
}

fn io_uring_enabled() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|text| text.trim() == "0")
        .unwrap_or(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confined_worker_can_only_talk_over_its_socket() -> TestResult {
    let targets = targets()?;
    let checks = checks(&targets)?;

    // The same binary, unconfined, can do every one of them.
    let mut control = unconfined().await?;
    for (label, check) in &checks {
        let outcome = ask(&mut control.io, check).await?;
        if *label == "io_uring" && !io_uring_enabled() {
            continue;
        }
        assert!(
            outcome.allowed,
            "unconfined {label} should work: {outcome:?}"
        );
        if *label == "read" {
            assert_eq!(outcome.detail, targets.secret_text);
        }
    }
    control.child.kill().await?;

    let mut worker = spawn(&probe_binary(), &[], &policy()).await?;
    assert_eq!(worker.attestation, host());
    let mut refused = Vec::new();
    for (label, check) in &checks {
        let outcome = ask(&mut worker.socket, check).await?;
        println!("confined {label}: {outcome:?}");
        let expected_errno = match *label {
            "unix pair" | "thread" | "echo" => {
                assert!(outcome.allowed, "confined {label} must work: {outcome:?}");
                continue;
            }
            // Landlock refuses files; seccomp refuses the rest.
            "read" | "read /etc/passwd" | "create" => Some(EACCES),
            // getaddrinfo reports its own error, not an errno.
            "resolve" => None,
            _ => Some(EPERM),
        };
        assert!(!outcome.allowed, "confined {label} must fail: {outcome:?}");
        if expected_errno.is_some() {
            assert_eq!(
                outcome.errno, expected_errno,
                "confined {label}: {outcome:?}"
            );
        }
        refused.push(*label);
    }
    assert_eq!(refused.len(), 9, "{refused:?}");
    let echoed = ask(
        &mut worker.socket,
        &Check::Echo {
            text: "still there".into(),
        },
    )
    .await?;
    assert_eq!(echoed.detail, "still there");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_beyond_the_limit_is_refused_and_within_it_works() -> TestResult {
    let policy = policy();
    let mut worker = spawn(&probe_binary(), &[], &policy).await?;
    let within = ask(
        &mut worker.socket,
        &Check::Allocate {
            bytes: policy.memory_bytes / 4,
        },
    )
    .await?;
    assert!(
        within.allowed,
        "a quarter of the limit must fit: {within:?}"
    );
    let beyond = ask(
        &mut worker.socket,
        &Check::Allocate {
            bytes: policy.memory_bytes + (1 << 20),
        },
    )
    .await?;
    assert!(!beyond.allowed, "beyond the limit must fail: {beyond:?}");
    // The unconfined binary allocates the same amount, so the limit is what refused it.
    let mut control = unconfined().await?;
    let unlimited = ask(
        &mut control.io,
        &Check::Allocate {
            bytes: policy.memory_bytes + (1 << 20),
        },
    )
    .await?;
    assert!(unlimited.allowed, "{unlimited:?}");
    control.child.kill().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_worker_is_stopped_by_its_cpu_limit() -> TestResult {
    let policy = Policy {
        cpu_seconds: 1,
        ..policy()
    };
    let mut worker = spawn(&probe_binary(), &[], &policy).await?;
    frame::write_frame(&mut worker.socket, &Check::BurnCpu).await?;
    let started = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(15), worker.child.wait()).await??;
    let signal = status.signal();
    assert!(
        signal == Some(libc_signal::SIGXCPU) || signal == Some(libc_signal::SIGKILL),
        "stopped by {status:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    Ok(())
}

mod libc_signal {
    pub const SIGKILL: i32 = 9;
    pub const SIGXCPU: i32 = 24;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minimum_the_host_cannot_give_is_refused() -> TestResult {
    let host = host();
    let mut impossible = policy();
    impossible.min.landlock_abi = LANDLOCK_ABI_KNOWN + 1;
    let result = spawn(&probe_binary(), &[], &impossible).await;
    match result {
        Err(SandboxError::BelowMinimum { got, required }) => {
            assert_eq!(got, host);
            assert_eq!(required, impossible.min);
        }
        other => panic!("expected BelowMinimum, got {other:?}"),
    }

    if !host.network_namespace {
        // Unprivileged: a network namespace cannot be had, so requiring one refuses the run.
        let mut needs_namespace = policy();
        needs_namespace.min.network_namespace = true;
        let result = spawn(&probe_binary(), &[], &needs_namespace).await;
        assert!(
            matches!(&result, Err(SandboxError::BelowMinimum { got, .. }) if !got.network_namespace),
            "{result:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_that_does_not_report_its_sandbox_is_refused() -> TestResult {
    // /bin/true never enters a sandbox: it exits without a report and is not a worker.
    let result = spawn(Path::new("/bin/true"), &[], &policy()).await;
    assert!(
        matches!(&result, Err(SandboxError::Handshake { reason, .. }) if reason.contains("exit status 0")),
        "{result:?}"
    );
    Ok(())
}

fn proc_field(pid: u32, file: &str, key: &str) -> Result<String, Box<dyn Error>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}"))?;
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .map(|rest| rest.trim_start_matches(':').trim().to_owned())
        .ok_or_else(|| format!("no {key} in /proc/{pid}/{file}").into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attestation_matches_what_the_kernel_shows() -> TestResult {
    let policy = policy();
    let worker = spawn(&probe_binary(), &[], &policy).await?;
    let pid = worker.pid().ok_or("no pid")?;
    let got = worker.attestation;
    assert!(got.landlock_abi >= 1 && got.landlock_abi == host().landlock_abi);
    assert_eq!(got.seccomp, SeccompMode::Filter);
    assert_eq!(proc_field(pid, "status", "Seccomp")?, "2");
    // Two filters: the deny-list and the guard.
    assert_eq!(proc_field(pid, "status", "Seccomp_filters")?, "2");
    assert!(got.no_new_privs);
    assert_eq!(proc_field(pid, "status", "NoNewPrivs")?, "1");
    assert!(got.capabilities_dropped);
    assert_eq!(proc_field(pid, "status", "CapEff")?, "0000000000000000");
    assert_eq!(proc_field(pid, "status", "CapPrm")?, "0000000000000000");
    let own_ns = std::fs::read_link("/proc/self/ns/net")?;
    let worker_ns = std::fs::read_link(format!("/proc/{pid}/ns/net"))?;
    assert_eq!(got.network_namespace, own_ns != worker_ns);
    assert_eq!(got.network_namespace, host().network_namespace);
    let address_space = proc_field(pid, "limits", "Max address space")?;
    assert!(
        address_space.starts_with(&policy.memory_bytes.to_string()),
        "{address_space}"
    );
    assert!(proc_field(pid, "limits", "Max core file size")?.starts_with('0'));

    // It inherited nothing of ours but the socket: no file or directory is open.
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let target = std::fs::read_link(entry?.path())?;
        let target = target.to_string_lossy();
        assert!(
            target == "/dev/null"
                || target.starts_with("socket:")
                || target.starts_with("pipe:")
                || target.starts_with("anon_inode:"),
            "the worker holds {target}"
        );
    }
    Ok(())
}

/// The process state letter in `/proc/<pid>/stat`, `None` once the process is gone.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

async fn wait_until_not_running(pid: u32) -> Option<char> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = process_state(pid);
        if matches!(state, None | Some('Z') | Some('X')) || Instant::now() > deadline {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_worker_outlives_its_handle() -> TestResult {
    let mut dropped: Worker = spawn(&probe_binary(), &[], &policy()).await?;
    let pid = dropped.pid().ok_or("no pid")?;
    assert!(
        matches!(process_state(pid), Some('R' | 'S')),
        "the worker must be running first"
    );
    // Busy for a minute, so closing its socket alone would not end it.
    frame::write_frame(&mut dropped.socket, &Check::Sleep { millis: 60_000 }).await?;
    drop(dropped);
    let state = wait_until_not_running(pid).await;
    assert!(
        matches!(state, None | Some('Z') | Some('X')),
        "a dropped worker still runs: state {state:?}"
    );

    let killed = spawn(&probe_binary(), &[], &policy()).await?;
    let pid = killed.pid().ok_or("no pid")?;
    killed.kill().await?;
    assert_eq!(process_state(pid), None, "kill reaps the worker");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_dies_with_its_parent() -> TestResult {
    // The probe spawns a confined worker, tells it to sleep a minute, prints its pid and exits
    // without killing it or closing its socket.
    let output = Command::new(probe_binary())
        .arg("--parent-of-worker")
        .output()
        .await?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let pid: u32 = String::from_utf8_lossy(&output.stdout).trim().parse()?;
    let state = wait_until_not_running(pid).await;
    assert!(
        matches!(state, None | Some('Z') | Some('X')),
        "the worker of a dead parent still runs: state {state:?}"
    );
    Ok(())
}

#[test]
fn unprivileged_user_gets_the_same_confinement() -> TestResult {
    let effective_uid = proc_field(std::process::id(), "status", "Uid")?
        .split_whitespace()
        .nth(1)
        .map(str::to_owned);
    if effective_uid.as_deref() != Some("0") {
        // Not root: the rest of this suite is the unprivileged run, provided this process
        // cannot make a network namespace either.
        assert!(
            !probe().network_namespace,
            "run the suite as root (it then re-runs itself as nobody) or as a user without \
             CAP_SYS_ADMIN"
        );
        return Ok(());
    }
    let setpriv = Path::new("/usr/bin/setpriv");
    assert!(
        setpriv.exists(),
        "setpriv (util-linux) is needed to run the suite as nobody"
    );
    // Copies `nobody` can execute; the build directory may not be reachable for it.
    let dir = tempfile::tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    let suite = dir.path().join("confinement-suite");
    let probe = dir.path().join("warden-sandbox-probe");
    std::fs::copy(std::env::current_exe()?, &suite)?;
    std::fs::copy(probe_binary(), &probe)?;
    for file in [&suite, &probe] {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755))?;
    }
    // How many tests the re-run must pass: all of this file's but this one.
    let listed = std::process::Command::new(&suite)
        .args([
            "--list",
            "--skip",
            "unprivileged_user_gets_the_same_confinement",
        ])
        .output()?;
    let expected = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .filter(|line| line.ends_with(": test"))
        .count();
    assert!(expected >= 6, "only {expected} tests listed");
    let output = std::process::Command::new(setpriv)
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ])
        .arg(&suite)
        .args([
            "--skip",
            "unprivileged_user_gets_the_same_confinement",
            "--test-threads=2",
        ])
        .env(PROBE_ENV, &probe)
        .current_dir(dir.path())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the suite failed as nobody:\n{stdout}\n{stderr}"
    );
    // Every other test of this file ran and passed (a filter matching nothing passes too).
    assert!(
        stdout.contains(&format!("test result: ok. {expected} passed; 0 failed")),
        "unexpected run as nobody:\n{stdout}"
    );
    Ok(())
}
