//! What the sandbox costs at start: `spawn` until the worker's attestation has been received and
//! checked against `/proc`, against starting the same binary unconfined until its first frame
//! arrives. Both include killing and reaping the process, so they compare like with like. A
//! third variant starts it unconfined with an empty `pre_exec` hook, which makes std fork
//! instead of using `posix_spawn`: the part of the cost that comes from forking at all.

use std::path::Path;
use std::process::Stdio;

use criterion::{Criterion, criterion_group, criterion_main};
use tokio::process::Command;
use warden_sandbox::{Attestation, Policy, SandboxError, frame, spawn};

const PROBE: &str = env!("CARGO_BIN_EXE_warden-sandbox-probe");

fn policy() -> Policy {
    Policy {
        memory_bytes: 512 << 20,
        ..Policy::default()
    }
}

async fn confined_start() -> Result<(), SandboxError> {
    let worker = spawn(Path::new(PROBE), &[], &policy()).await?;
    worker
        .kill()
        .await
        .map_err(|e| SandboxError::Frame(e.to_string()))?;
    Ok(())
}

async fn unconfined_start() -> Result<(), SandboxError> {
    unconfined_from(Command::new(PROBE)).await
}

#[allow(unsafe_code)]
async fn unconfined_forked_start() -> Result<(), SandboxError> {
    let mut command = Command::new(PROBE);
    // SAFETY: the hook does nothing, so it is async-signal-safe.
    unsafe {
        command.pre_exec(|| Ok(()));
    }
    unconfined_from(command).await
}

async fn unconfined_from(mut command: Command) -> Result<(), SandboxError> {
    let mut child = command
        .arg("--unconfined")
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| SandboxError::Frame(e.to_string()))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| SandboxError::Frame("no stdout".into()))?;
    let first: Option<Attestation> = frame::read_frame(&mut stdout, 4096).await?;
    if first.is_none() {
        return Err(SandboxError::Frame("the probe sent nothing".into()));
    }
    child
        .kill()
        .await
        .map_err(|e| SandboxError::Frame(e.to_string()))?;
    child
        .wait()
        .await
        .map_err(|e| SandboxError::Frame(e.to_string()))?;
    Ok(())
}

fn start(c: &mut Criterion) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start a runtime: {e}");
            std::process::exit(1);
        }
    };
    // Both must work before they are timed, or the figures would time failures.
    for (name, result) in [
        ("confined", runtime.block_on(confined_start())),
        ("unconfined", runtime.block_on(unconfined_start())),
        ("forked", runtime.block_on(unconfined_forked_start())),
    ] {
        if let Err(e) = result {
            eprintln!("the {name} start fails, nothing to measure: {e}");
            std::process::exit(1);
        }
    }
    let mut group = c.benchmark_group("worker_start");
    group.sample_size(40);
    group.bench_function("confined_spawn_to_checked_attestation", |b| {
        b.iter(|| runtime.block_on(confined_start()).is_ok())
    });
    group.bench_function("unconfined_spawn_to_first_frame", |b| {
        b.iter(|| runtime.block_on(unconfined_start()).is_ok())
    });
    group.bench_function("unconfined_forked_spawn_to_first_frame", |b| {
        b.iter(|| runtime.block_on(unconfined_forked_start()).is_ok())
    });
    group.finish();
}

criterion_group!(benches, start);
criterion_main!(benches);
