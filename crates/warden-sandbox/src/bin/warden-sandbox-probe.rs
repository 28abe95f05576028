//! A worker that confines itself and then answers self-checks (`warden_sandbox::selfcheck`)
//! over its socket: the tests' subject, and a way for an operator to see on a new host what the
//! sandbox stops.
//!
//! Confined (the default, started by `warden_sandbox::spawn`): enters the sandbox first thing,
//! then starts a multi-threaded tokio runtime (so threads and the runtime are shown to work
//! inside the sandbox) and serves checks on descriptor 3.
//!
//! `--unconfined`: for comparison only. Enters nothing, writes an empty attestation as its first
//! frame on stdout and serves checks read from stdin.
//!
//! `--parent-of-worker`: spawns itself confined, tells the worker to sleep, prints the worker's
//! pid and exits at once without killing it: the worker must die with its parent.

use std::io::Write;
use std::process::ExitCode;

use warden_sandbox::selfcheck::Check;
use warden_sandbox::{Attestation, Policy, frame, selfcheck};

fn main() -> ExitCode {
    if std::env::args().skip(1).any(|arg| arg == "--unconfined") {
        return unconfined();
    }
    if std::env::args()
        .skip(1)
        .any(|arg| arg == "--parent-of-worker")
    {
        return parent_of_worker();
    }
    let confined = match warden_sandbox::enter_worker() {
        Ok(confined) => confined,
        Err(e) => {
            eprintln!("warden-sandbox-probe: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("warden-sandbox-probe: cannot start a runtime in the sandbox: {e}");
            return ExitCode::from(3);
        }
    };
    let served = runtime.block_on(async move {
        confined
            .socket
            .set_nonblocking(true)
            .map_err(|e| e.to_string())?;
        let socket =
            tokio::net::UnixStream::from_std(confined.socket).map_err(|e| e.to_string())?;
        let (reader, writer) = socket.into_split();
        selfcheck::serve(reader, writer)
            .await
            .map_err(|e| e.to_string())
    });
    finish(served)
}

fn unconfined() -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = frame::write_frame_blocking(&mut stdout, &Attestation::NONE) {
        eprintln!("warden-sandbox-probe: {e}");
        return ExitCode::from(2);
    }
    drop(stdout);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("warden-sandbox-probe: cannot start a runtime: {e}");
            return ExitCode::from(3);
        }
    };
    let served = runtime.block_on(async {
        selfcheck::serve(tokio::io::stdin(), tokio::io::stdout())
            .await
            .map_err(|e| e.to_string())
    });
    finish(served)
}

fn parent_of_worker() -> ExitCode {
    let started = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| {
            runtime.block_on(async {
                let program = std::env::current_exe().map_err(|e| e.to_string())?;
                let mut worker = warden_sandbox::spawn(&program, &[], &Policy::default())
                    .await
                    .map_err(|e| e.to_string())?;
                frame::write_frame(&mut worker.socket, &Check::Sleep { millis: 60_000 })
                    .await
                    .map_err(|e| e.to_string())?;
                let pid = worker.pid().ok_or("the worker has no pid")?;
                writeln!(std::io::stdout(), "{pid}").map_err(|e| e.to_string())?;
                // Exit without dropping the worker (no kill on drop, socket left open): only
                // the parent-death signal can stop it now.
                std::process::exit(0)
            })
        });
    match started {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden-sandbox-probe: {e}");
            ExitCode::FAILURE
        }
    }
}

fn finish(served: Result<(), String>) -> ExitCode {
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden-sandbox-probe: {e}");
            ExitCode::FAILURE
        }
    }
}
