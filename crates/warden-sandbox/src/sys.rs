//! The only code allowed `unsafe`: what must run between fork and exec in the child (new
//! session, parent-death signal, network namespace, resource limits, the socket moved to
//! descriptor 3, every other descriptor closed on exec, no_new_privs), adopting descriptor 3 in
//! the worker, and asking the kernel for its Landlock ABI.
//!
//! Between fork and exec only async-signal-safe work is allowed: the hook below makes system
//! calls on values prepared before the fork and allocates nothing.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::process::{Resource, Rlimit};

use crate::error::SandboxError;

/// The descriptor the worker's end of the socket has in the worker.
pub const WORKER_SOCKET_FD: RawFd = 3;

/// One resource limit to set: soft and hard.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LimitSetting {
    pub resource: Resource,
    pub soft: u64,
    pub hard: u64,
}

/// Everything the child does before exec, prepared in the parent.
#[derive(Clone, Debug)]
pub(crate) struct ChildSetup {
    /// The worker's end of the socket pair, as numbered in the parent (close-on-exec there).
    pub socket_fd: RawFd,
    /// The parent's process id, to notice a parent that died before the death signal was set.
    pub parent_pid: u32,
    /// Create a fresh network namespace (only when the parent holds CAP_SYS_ADMIN).
    pub new_network_namespace: bool,
    pub limits: Vec<LimitSetting>,
}

impl ChildSetup {
    /// Runs in the forked child, before exec.
    fn apply(&self) -> io::Result<()> {
        // Its own session: no controlling terminal, its own process group.
        rustix::process::setsid()?;
        // Die with the parent; if the parent is already gone, give up now.
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
        let parent_alive = rustix::process::getppid()
            .is_some_and(|ppid| ppid.as_raw_pid() as u32 == self.parent_pid);
        if !parent_alive {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        if self.new_network_namespace {
            // SAFETY: unshare takes flags only; the forked child has a single thread. A failure
            // is not fatal here: the parent checks the namespace the worker ended up in.
            let _ = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        }
        for limit in &self.limits {
            rustix::process::setrlimit(
                limit.resource,
                Rlimit {
                    current: Some(limit.soft),
                    maximum: Some(limit.hard),
                },
            )?;
        }
        // SAFETY: dup2 on two descriptor numbers; `socket_fd` is open (the parent keeps its
        // copy until the child has been spawned). Descriptor 3 may have held a descriptor of
        // the parent's that is close-on-exec; dup2 closes it first, which is what is wanted.
        if unsafe { libc::dup2(self.socket_fd, WORKER_SOCKET_FD) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // dup2 clears close-on-exec on the new number, except when both numbers are equal.
        // SAFETY: fcntl on a descriptor number with an integer argument.
        if unsafe { libc::fcntl(WORKER_SOCKET_FD, libc::F_SETFD, 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        close_others_on_exec()?;
        rustix::thread::set_no_new_privs(true)?;
        Ok(())
    }
}

/// Marks every descriptor above 3 close-on-exec, so the worker inherits 0-3 only. Marking
/// instead of closing keeps the parent's exec-error pipe working.
fn close_others_on_exec() -> io::Result<()> {
    let first = (WORKER_SOCKET_FD + 1) as libc::c_uint;
    // SAFETY: close_range with integer arguments; CLOSE_RANGE_CLOEXEC only changes flags.
    let done = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if done == 0 {
        return Ok(());
    }
    // Kernels before 5.11: walk the descriptor table up to its current limit.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let highest = limit.rlim_cur.min(1 << 20) as RawFd;
    for fd in (WORKER_SOCKET_FD + 1)..highest {
        // SAFETY: fcntl on a descriptor number; EBADF for numbers not open is ignored.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// Makes the child run `setup` between fork and exec.
pub(crate) fn install_pre_exec(command: &mut tokio::process::Command, setup: ChildSetup) {
    // SAFETY: the closure runs in the forked child, where only async-signal-safe work is
    // allowed: `apply` only makes system calls on values prepared before the fork, allocates
    // nothing and takes no lock.
    unsafe {
        command.pre_exec(move || setup.apply());
    }
}

/// Descriptor 3 may be adopted once per process.
static SOCKET_TAKEN: AtomicBool = AtomicBool::new(false);

/// Takes ownership of the socket the parent left at descriptor 3.
pub(crate) fn adopt_worker_socket() -> Result<UnixStream, SandboxError> {
    if SOCKET_TAKEN.swap(true, Ordering::SeqCst) {
        return Err(SandboxError::NotAWorker {
            reason: "descriptor 3 was already taken".to_owned(),
        });
    }
    // SAFETY: fcntl(F_GETFD) on a descriptor number only queries its flags.
    if unsafe { libc::fcntl(WORKER_SOCKET_FD, libc::F_GETFD) } < 0 {
        return Err(SandboxError::NotAWorker {
            reason: format!("descriptor 3 is not open ({})", io::Error::last_os_error()),
        });
    }
    // SAFETY: descriptor 3 is open (checked above), was placed there for this process by the
    // parent, and nothing else in the process owns it: SOCKET_TAKEN makes this the only
    // adoption.
    let owned = unsafe { OwnedFd::from_raw_fd(WORKER_SOCKET_FD) };
    let socket = UnixStream::from(owned);
    // A Unix socket has a Unix address (unnamed for a socket pair); anything else fails here.
    socket.local_addr().map_err(|e| SandboxError::NotAWorker {
        reason: format!("descriptor 3 is not a Unix socket ({e})"),
    })?;
    Ok(socket)
}

/// The Landlock ABI version the kernel supports, `None` without Landlock.
pub(crate) fn landlock_kernel_abi() -> Option<u8> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: landlock_create_ruleset with a null attribute pointer, size 0 and the VERSION
    // flag only returns the ABI version; it reads and writes no memory.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u8::try_from(version).ok().filter(|&v| v > 0)
}

/// Tries to set up an io_uring instance (closing it again); for the self-check.
pub(crate) fn io_uring_setup() -> io::Result<()> {
    // struct io_uring_params is 120 bytes; the kernel reads and writes it.
    let mut params = [0u8; 120];
    // SAFETY: io_uring_setup(entries, params) with a pointer to a zeroed buffer of the size of
    // struct io_uring_params that lives across the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_io_uring_setup,
            1 as libc::c_uint,
            params.as_mut_ptr(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = RawFd::try_from(fd).map_err(|_| io::Error::other("descriptor out of range"))?;
    // SAFETY: the kernel just returned this descriptor to us; nothing else owns it.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
    Ok(())
}
