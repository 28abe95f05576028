//! The seccomp filters a worker installs on itself.
//!
//! The main filter is a deny-list (a call not listed is allowed) built with `seccompiler`:
//! a worker is our own Rust program with a tokio runtime, and the calls glibc, std and tokio make
//! change between versions (clone3, rseq, futex_waitv, ...), so an allow-list would break it in
//! ways only seen at run time. What the list refuses is everything that reaches beyond the
//! process: the network (any socket but `AF_UNIX`, connect/bind/listen/accept, sending to an
//! address), new processes and exec, other processes (ptrace, signals, pidfds), namespaces and
//! mounts, the kernel's larger attack surfaces (bpf, perf, io_uring, userfaultfd, keys), identity
//! and limit changes, System V and POSIX IPC, and the file metadata calls Landlock does not
//! cover (chmod, chown, utimes, xattrs, truncate by path). Refused calls return `EPERM`.
//!
//! A second, hand-written guard program kills the process on a foreign architecture or an x32
//! system call number (which a deny-list keyed on x86-64 numbers would otherwise let through),
//! and answers `clone3` with `ENOSYS`: its flags sit in a struct seccomp cannot read, and glibc
//! falls back to `clone`, whose flags the main filter checks (threads only).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch, sock_filter,
};

use crate::error::SandboxError;

/// System calls newer than the `libc` crate's tables; the numbers are the same on x86-64 and
/// aarch64 (the unified table every architecture uses since Linux 5.1).
mod newer {
    pub const LSM_SET_SELF_ATTR: i64 = 460;
    pub const SETXATTRAT: i64 = 463;
    pub const REMOVEXATTRAT: i64 = 466;
    pub const OPEN_TREE_ATTR: i64 = 467;
    pub const FILE_SETATTR: i64 = 469;
}

/// One refused system call: refused always (`when` empty) or when any of `when` matches.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub syscall: i64,
    pub name: &'static str,
    pub when: Vec<SeccompRule>,
}

macro_rules! always {
    ($($name:ident),* $(,)?) => {
        [$((libc::$name as i64, stringify!($name))),*]
    };
}

fn condition(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, SandboxError> {
    SeccompCondition::new(arg, len, op, value)
        .map_err(|e| SandboxError::Seccomp(format!("bad condition: {e}")))
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, SandboxError> {
    SeccompRule::new(conditions).map_err(|e| SandboxError::Seccomp(format!("bad rule: {e}")))
}

/// Refused when 32-bit argument `arg` differs from `value`.
fn unless_dword(arg: u8, value: u64) -> Result<Vec<SeccompRule>, SandboxError> {
    Ok(vec![rule(vec![condition(
        arg,
        SeccompCmpArgLen::Dword,
        SeccompCmpOp::Ne,
        value,
    )?])?])
}

/// Refused when 64-bit argument `arg` is not zero (a pointer is given).
fn unless_null(arg: u8) -> Result<Vec<SeccompRule>, SandboxError> {
    Ok(vec![rule(vec![condition(
        arg,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::Ne,
        0,
    )?])?])
}

/// `clone` is refused unless it creates a thread (`CLONE_THREAD`) in the same namespaces.
fn clone_rules() -> Result<Vec<SeccompRule>, SandboxError> {
    let thread = libc::CLONE_THREAD as u64;
    let mut rules = vec![rule(vec![condition(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(thread),
        0,
    )?])?];
    for namespace in [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWCGROUP,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
    ] {
        let flag = namespace as u64;
        rules.push(rule(vec![condition(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(flag),
            flag,
        )?])?);
    }
    Ok(rules)
}

/// Terminal injection and console control on an inherited terminal.
// The ioctl request type is `c_ulong` with glibc and `c_int` with musl.
#[allow(clippy::unnecessary_cast)]
fn ioctl_rules() -> Result<Vec<SeccompRule>, SandboxError> {
    [libc::TIOCSTI as u64, libc::TIOCLINUX as u64]
        .into_iter()
        .map(|request| {
            rule(vec![condition(
                1,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                request,
            )?])
        })
        .collect()
}

/// Every refused call. `own_pid` is the worker's process id: signals may go to it alone.
pub(crate) fn refusals(own_pid: u32) -> Result<Vec<Refusal>, SandboxError> {
    let pid = u64::from(own_pid);
    let mut list: Vec<Refusal> = Vec::new();
    let mut push_always = |pairs: &[(i64, &'static str)]| {
        for &(syscall, name) in pairs {
            list.push(Refusal {
                syscall,
                name,
                when: Vec::new(),
            });
        }
    };
    // The network: sockets are made only by the conditional rules below; these would give
    // them an address or a peer. sendmsg/sendmmsg carry the address inside a struct seccomp
    // cannot read, so they are refused outright (passing descriptors is not needed).
    push_always(&always![
        SYS_connect,
        SYS_bind,
        SYS_listen,
        SYS_accept,
        SYS_accept4,
        SYS_sendmsg,
        SYS_sendmmsg,
    ]);
    // io_uring performs operations without going through the filtered calls.
    push_always(&always![
        SYS_io_uring_setup,
        SYS_io_uring_enter,
        SYS_io_uring_register
    ]);
    // New programs and other processes.
    push_always(&always![
        SYS_execve,
        SYS_execveat,
        SYS_ptrace,
        SYS_process_vm_readv,
        SYS_process_vm_writev,
        SYS_process_madvise,
        SYS_kcmp,
        SYS_pidfd_open,
        SYS_pidfd_getfd,
        SYS_pidfd_send_signal,
        SYS_tkill,
    ]);
    #[cfg(target_arch = "x86_64")]
    push_always(&always![SYS_fork, SYS_vfork]);
    // Namespaces and mounts.
    push_always(&always![
        SYS_unshare,
        SYS_setns,
        SYS_mount,
        SYS_umount2,
        SYS_pivot_root,
        SYS_chroot,
        SYS_open_tree,
        SYS_move_mount,
        SYS_fsopen,
        SYS_fsconfig,
        SYS_fsmount,
        SYS_fspick,
        SYS_mount_setattr,
    ]);
    // The kernel's larger attack surfaces and host-wide controls.
    push_always(&always![
        SYS_bpf,
        SYS_perf_event_open,
        SYS_userfaultfd,
        SYS_keyctl,
        SYS_add_key,
        SYS_request_key,
        SYS_fanotify_init,
        SYS_fanotify_mark,
        SYS_inotify_add_watch,
        SYS_name_to_handle_at,
        SYS_open_by_handle_at,
        SYS_quotactl,
        SYS_quotactl_fd,
        SYS_acct,
        SYS_swapon,
        SYS_swapoff,
        SYS_reboot,
        SYS_kexec_load,
        SYS_kexec_file_load,
        SYS_init_module,
        SYS_finit_module,
        SYS_delete_module,
        SYS_syslog,
        SYS_sethostname,
        SYS_setdomainname,
        SYS_settimeofday,
        SYS_clock_settime,
        SYS_clock_adjtime,
        SYS_adjtimex,
        SYS_vhangup,
        SYS_migrate_pages,
        SYS_move_pages,
    ]);
    #[cfg(target_arch = "x86_64")]
    push_always(&always![
        SYS_ioperm,
        SYS_iopl,
        SYS_modify_ldt,
        SYS_uselib,
        SYS_lookup_dcookie
    ]);
    // File metadata, which Landlock does not restrict.
    push_always(&always![
        SYS_fchmod,
        SYS_fchmodat,
        SYS_fchmodat2,
        SYS_fchown,
        SYS_fchownat,
        SYS_utimensat,
        SYS_setxattr,
        SYS_lsetxattr,
        SYS_fsetxattr,
        SYS_removexattr,
        SYS_lremovexattr,
        SYS_fremovexattr,
        SYS_truncate,
        SYS_mknodat,
    ]);
    #[cfg(target_arch = "x86_64")]
    push_always(&always![
        SYS_chmod,
        SYS_chown,
        SYS_lchown,
        SYS_utime,
        SYS_utimes,
        SYS_futimesat,
        SYS_mknod
    ]);
    push_always(&[
        (newer::SETXATTRAT, "SYS_setxattrat"),
        (newer::REMOVEXATTRAT, "SYS_removexattrat"),
        (newer::FILE_SETATTR, "SYS_file_setattr"),
        (newer::OPEN_TREE_ATTR, "SYS_open_tree_attr"),
        (newer::LSM_SET_SELF_ATTR, "SYS_lsm_set_self_attr"),
    ]);
    // Identity, priorities and limits (a worker running as root could raise its own).
    push_always(&always![
        SYS_setuid,
        SYS_setgid,
        SYS_setreuid,
        SYS_setregid,
        SYS_setresuid,
        SYS_setresgid,
        SYS_setfsuid,
        SYS_setfsgid,
        SYS_setgroups,
        SYS_capset,
        SYS_setrlimit,
        SYS_setpriority,
        SYS_ioprio_set,
        SYS_sched_setscheduler,
        SYS_sched_setparam,
        SYS_sched_setattr,
        SYS_sched_setaffinity,
    ]);
    // System V and POSIX IPC live in the host's IPC namespace: a channel to other processes.
    push_always(&always![
        SYS_shmget,
        SYS_shmat,
        SYS_shmctl,
        SYS_msgget,
        SYS_msgsnd,
        SYS_msgrcv,
        SYS_msgctl,
        SYS_semget,
        SYS_semop,
        SYS_semtimedop,
        SYS_semctl,
        SYS_mq_open,
        SYS_mq_unlink,
        SYS_mq_timedsend,
        SYS_mq_timedreceive,
        SYS_mq_notify,
        SYS_mq_getsetattr,
    ]);

    let af_unix = libc::AF_UNIX as u64;
    let conditional: [(i64, &'static str, Vec<SeccompRule>); 10] = [
        (libc::SYS_socket, "SYS_socket", unless_dword(0, af_unix)?),
        (
            libc::SYS_socketpair,
            "SYS_socketpair",
            unless_dword(0, af_unix)?,
        ),
        // `send` is sendto without an address; an address means an unconnected datagram.
        (libc::SYS_sendto, "SYS_sendto", unless_null(4)?),
        (libc::SYS_clone, "SYS_clone", clone_rules()?),
        // Signals to itself only (Rust's abort raises SIGABRT with tgkill on its own pid).
        (libc::SYS_kill, "SYS_kill", unless_dword(0, pid)?),
        (libc::SYS_tgkill, "SYS_tgkill", unless_dword(0, pid)?),
        (
            libc::SYS_rt_sigqueueinfo,
            "SYS_rt_sigqueueinfo",
            unless_dword(0, pid)?,
        ),
        (
            libc::SYS_rt_tgsigqueueinfo,
            "SYS_rt_tgsigqueueinfo",
            unless_dword(0, pid)?,
        ),
        // Reading limits is allowed; setting them is not.
        (libc::SYS_prlimit64, "SYS_prlimit64", unless_null(2)?),
        (libc::SYS_ioctl, "SYS_ioctl", ioctl_rules()?),
    ];
    for (syscall, name, when) in conditional {
        list.push(Refusal {
            syscall,
            name,
            when,
        });
    }
    // personality(0xffffffff) only reads the persona; any change (e.g. READ_IMPLIES_EXEC) is
    // refused.
    list.push(Refusal {
        syscall: libc::SYS_personality,
        name: "SYS_personality",
        when: unless_dword(0, 0xffff_ffff)?,
    });
    Ok(list)
}

fn target_arch() -> Result<TargetArch, SandboxError> {
    if cfg!(target_arch = "x86_64") {
        Ok(TargetArch::x86_64)
    } else if cfg!(target_arch = "aarch64") {
        Ok(TargetArch::aarch64)
    } else {
        Err(SandboxError::Seccomp(format!(
            "no seccomp filter for the {} architecture (x86_64 and aarch64 only)",
            std::env::consts::ARCH
        )))
    }
}

/// The main deny-list filter, compiled.
pub(crate) fn deny_filter(own_pid: u32) -> Result<BpfProgram, SandboxError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for refusal in refusals(own_pid)? {
        if rules.insert(refusal.syscall, refusal.when).is_some() {
            return Err(SandboxError::Seccomp(format!(
                "{} is listed twice",
                refusal.name
            )));
        }
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        target_arch()?,
    )
    .map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string()))
}

// Classic BPF, as in <linux/filter.h> and <linux/seccomp.h>.
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const RET_K: u16 = 0x06;
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// The guard: kill on a foreign architecture or an x32 call, `ENOSYS` for clone3, allow the
/// rest (to the main filter).
pub(crate) fn guard_program() -> Result<BpfProgram, SandboxError> {
    let audit_arch: u32 = match target_arch()? {
        TargetArch::x86_64 => 0xC000_003E,
        _ => 0xC000_00B7,
    };
    let clone3 = u32::try_from(libc::SYS_clone3)
        .map_err(|_| SandboxError::Seccomp("clone3's number does not fit".to_owned()))?;
    let mut program = vec![
        stmt(LD_W_ABS, OFFSET_ARCH),
        jump(JEQ_K, audit_arch, 1, 0),
        stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS),
        stmt(LD_W_ABS, OFFSET_NR),
    ];
    if cfg!(target_arch = "x86_64") {
        program.push(jump(JGE_K, X32_SYSCALL_BIT, 0, 1));
        program.push(stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS));
    }
    program.extend([
        jump(JEQ_K, clone3, 0, 1),
        stmt(RET_K, libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32),
        stmt(RET_K, libc::SECCOMP_RET_ALLOW),
    ]);
    Ok(program)
}

/// Installs both filters on every thread of the process (TSYNC). Requires no_new_privs, which
/// `seccompiler` sets.
pub(crate) fn install(own_pid: u32) -> Result<(), SandboxError> {
    let deny = deny_filter(own_pid)?;
    let guard = guard_program()?;
    seccompiler::apply_filter_all_threads(&deny)
        .map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    seccompiler::apply_filter_all_threads(&guard).map_err(|e| SandboxError::Seccomp(e.to_string()))
}

/// Whether this kernel can install seccomp filters at all.
pub(crate) fn available() -> bool {
    std::path::Path::new("/proc/sys/kernel/seccomp/actions_avail").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(list: &[Refusal], name: &str) -> Option<usize> {
        list.iter()
            .find(|refusal| refusal.name == name)
            .map(|refusal| refusal.when.len())
    }

    #[test]
    fn network_process_and_escape_calls_are_refused_always() -> Result<(), SandboxError> {
        let list = refusals(1234)?;
        for name in [
            "SYS_connect",
            "SYS_bind",
            "SYS_listen",
            "SYS_accept4",
            "SYS_sendmsg",
            "SYS_io_uring_setup",
            "SYS_io_uring_enter",
            "SYS_io_uring_register",
            "SYS_ptrace",
            "SYS_process_vm_readv",
            "SYS_process_vm_writev",
            "SYS_execve",
            "SYS_execveat",
            "SYS_unshare",
            "SYS_bpf",
            "SYS_setrlimit",
            "SYS_fchmodat",
            "SYS_truncate",
        ] {
            assert_eq!(find(&list, name), Some(0), "{name} must be refused always");
        }
        Ok(())
    }

    #[test]
    fn sockets_clone_and_signals_are_refused_conditionally() -> Result<(), SandboxError> {
        let list = refusals(1234)?;
        assert_eq!(find(&list, "SYS_socket"), Some(1));
        assert_eq!(find(&list, "SYS_socketpair"), Some(1));
        assert_eq!(find(&list, "SYS_sendto"), Some(1));
        // One rule for "no CLONE_THREAD", one per namespace flag.
        assert_eq!(find(&list, "SYS_clone"), Some(8));
        assert_eq!(find(&list, "SYS_kill"), Some(1));
        assert_eq!(find(&list, "SYS_tgkill"), Some(1));
        assert_eq!(find(&list, "SYS_prlimit64"), Some(1));
        Ok(())
    }

    #[test]
    fn what_a_tokio_runtime_needs_is_not_refused() -> Result<(), SandboxError> {
        let list = refusals(1234)?;
        for syscall in [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_recvfrom,
            libc::SYS_futex,
            libc::SYS_mmap,
            libc::SYS_munmap,
            libc::SYS_mprotect,
            libc::SYS_epoll_ctl,
            libc::SYS_epoll_pwait,
            libc::SYS_eventfd2,
            libc::SYS_rt_sigprocmask,
            libc::SYS_sched_yield,
            libc::SYS_exit,
            libc::SYS_exit_group,
            libc::SYS_clone3,
        ] {
            assert!(
                list.iter().all(|refusal| refusal.syscall != syscall),
                "syscall {syscall} must stay allowed in the main filter"
            );
        }
        Ok(())
    }

    #[test]
    fn the_deny_filter_compiles_for_this_architecture() -> Result<(), SandboxError> {
        let program = deny_filter(std::process::id())?;
        // A real program: the architecture check plus one comparison per refused call.
        assert!(program.len() > refusals(1)?.len(), "{}", program.len());
        assert!(program.len() < 4096);
        Ok(())
    }

    #[test]
    fn the_guard_answers_clone3_with_enosys_and_allows_the_rest() -> Result<(), SandboxError> {
        let program = guard_program()?;
        let enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
        let clone3_check = program
            .iter()
            .position(|insn| insn.code == JEQ_K && i64::from(insn.k) == libc::SYS_clone3);
        let Some(at) = clone3_check else {
            return Err(SandboxError::Seccomp("no clone3 check".to_owned()));
        };
        assert_eq!(program[at + 1], stmt(RET_K, enosys));
        assert_eq!(program.last(), Some(&stmt(RET_K, libc::SECCOMP_RET_ALLOW)));
        assert_eq!(program[2], stmt(RET_K, libc::SECCOMP_RET_KILL_PROCESS));
        if cfg!(target_arch = "x86_64") {
            assert!(
                program
                    .iter()
                    .any(|insn| insn.code == JGE_K && insn.k == X32_SYSCALL_BIT)
            );
        }
        Ok(())
    }
}
