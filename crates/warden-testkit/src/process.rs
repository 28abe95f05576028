//! Whether a child process still runs, for tests that kill or confine processes.

/// Whether process `pid` runs. A zombie does not: it runs nothing and waits only to be
/// reaped.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_is_alive_and_an_unused_pid_is_not() {
        assert!(super::alive(std::process::id()));
        // Above the kernel's pid_max (at most 2^22).
        assert!(!super::alive(u32::MAX - 1));
    }
}
