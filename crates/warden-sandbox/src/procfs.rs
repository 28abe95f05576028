//! What the kernel shows about a process in `/proc`: parsers over the text (pure, tested on
//! samples) and thin readers. The parent uses them to check a worker's claims; the worker uses
//! them before it confines itself (afterwards Landlock hides `/proc` from it).

use std::path::{Path, PathBuf};

use crate::error::SandboxError;

/// `CAP_SYS_ADMIN`'s bit in the capability sets.
const CAP_SYS_ADMIN_BIT: u32 = 21;

/// The fields of `/proc/<pid>/status` the sandbox cares about; `None` when a line is absent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProcStatus {
    pub threads: Option<u32>,
    pub no_new_privs: Option<bool>,
    /// 0 disabled, 1 strict, 2 filter.
    pub seccomp: Option<u8>,
    pub cap_effective: Option<u64>,
    pub cap_permitted: Option<u64>,
}

impl ProcStatus {
    /// Whether the effective set holds `CAP_SYS_ADMIN` (needed to create a network namespace).
    pub fn has_sys_admin(&self) -> bool {
        self.cap_effective
            .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN_BIT) != 0)
    }
}

/// Parses the text of `/proc/<pid>/status`.
pub(crate) fn parse_status(text: &str) -> ProcStatus {
    let mut status = ProcStatus::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "Threads" => status.threads = value.parse().ok(),
            "NoNewPrivs" => status.no_new_privs = value.parse::<u8>().ok().map(|v| v == 1),
            "Seccomp" => status.seccomp = value.parse().ok(),
            "CapEff" => status.cap_effective = u64::from_str_radix(value, 16).ok(),
            "CapPrm" => status.cap_permitted = u64::from_str_radix(value, 16).ok(),
            _ => {}
        }
    }
    status
}

/// One resource limit: soft and hard, `None` meaning unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// Finds the limit called `name` (e.g. "Max address space") in the text of `/proc/<pid>/limits`.
pub(crate) fn parse_limit(text: &str, name: &str) -> Option<Limit> {
    let line = text.lines().find(|line| line.starts_with(name))?;
    let mut fields = line[name.len()..].split_whitespace();
    let value = |field: Option<&str>| -> Option<Option<u64>> {
        match field? {
            "unlimited" => Some(None),
            number => number.parse().ok().map(Some),
        }
    };
    Some(Limit {
        soft: value(fields.next())?,
        hard: value(fields.next())?,
    })
}

/// The interface names in the text of `/proc/<pid>/net/dev`.
pub(crate) fn parse_interfaces(text: &str) -> Vec<String> {
    text.lines()
        .skip(2)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, _)| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .collect()
}

/// The inode in a namespace link such as `net:[4026531833]`.
pub(crate) fn parse_namespace_inode(link: &str) -> Option<u64> {
    link.rsplit_once('[')?.1.strip_suffix(']')?.parse().ok()
}

/// A network namespace with nothing but loopback, and not the one compared against.
pub(crate) fn is_isolated_network(
    own_inode: Option<u64>,
    other_inode: Option<u64>,
    interfaces: &[String],
) -> bool {
    match (own_inode, other_inode) {
        (Some(own), Some(other)) => {
            own != other && !interfaces.is_empty() && interfaces.iter().all(|name| name == "lo")
        }
        _ => false,
    }
}

fn read(path: PathBuf) -> Result<String, SandboxError> {
    std::fs::read_to_string(&path).map_err(|source| SandboxError::Verify { path, source })
}

/// `/proc/<who>/...`, where `who` is a pid or `self`.
fn proc_path(who: &str, rest: &str) -> PathBuf {
    Path::new("/proc").join(who).join(rest)
}

pub(crate) fn read_status(who: &str) -> Result<ProcStatus, SandboxError> {
    read(proc_path(who, "status")).map(|text| parse_status(&text))
}

pub(crate) fn read_limits(who: &str) -> Result<String, SandboxError> {
    read(proc_path(who, "limits"))
}

pub(crate) fn read_interfaces(who: &str) -> Result<Vec<String>, SandboxError> {
    read(proc_path(who, "net/dev")).map(|text| parse_interfaces(&text))
}

pub(crate) fn read_network_namespace(who: &str) -> Result<u64, SandboxError> {
    let path = proc_path(who, "ns/net");
    let link = std::fs::read_link(&path).map_err(|source| SandboxError::Verify {
        path: path.clone(),
        source,
    })?;
    parse_namespace_inode(&link.to_string_lossy()).ok_or_else(|| SandboxError::Verify {
        path,
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unexpected link {}", link.display()),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tprobe\nThreads:\t3\nCapInh:\t0000000000000000\n\
        CapPrm:\t0000000000000000\nCapEff:\t000001fffeffffff\nNoNewPrivs:\t1\n\
        Seccomp:\t2\nSeccomp_filters:\t2\n";

    #[test]
    fn status_fields_are_read() {
        let status = parse_status(STATUS);
        assert_eq!(status.threads, Some(3));
        assert_eq!(status.no_new_privs, Some(true));
        assert_eq!(status.seccomp, Some(2));
        assert_eq!(status.cap_effective, Some(0x0000_01ff_feff_ffff));
        assert_eq!(status.cap_permitted, Some(0));
        assert!(status.has_sys_admin());
    }

    #[test]
    fn missing_status_lines_are_none_not_zero() {
        let status = parse_status("Name:\tx\n");
        assert_eq!(status, ProcStatus::default());
        assert!(!status.has_sys_admin());
    }

    const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units     \n\
        Max cpu time              2                    3                    seconds   \n\
        Max address space         268435456            268435456            bytes     \n\
        Max open files            unlimited            unlimited            files     \n";

    #[test]
    fn limits_are_read_with_unlimited_as_none() {
        assert_eq!(
            parse_limit(LIMITS, "Max cpu time"),
            Some(Limit {
                soft: Some(2),
                hard: Some(3)
            })
        );
        assert_eq!(
            parse_limit(LIMITS, "Max address space"),
            Some(Limit {
                soft: Some(268_435_456),
                hard: Some(268_435_456)
            })
        );
        assert_eq!(
            parse_limit(LIMITS, "Max open files"),
            Some(Limit {
                soft: None,
                hard: None
            })
        );
        assert_eq!(parse_limit(LIMITS, "Max core file size"), None);
    }

    const NET_DEV: &str = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes\n\
        \x20   lo: 1 2 3\n  eth0: 4 5 6\n";

    #[test]
    fn interfaces_are_listed() {
        assert_eq!(parse_interfaces(NET_DEV), vec!["lo", "eth0"]);
    }

    #[test]
    fn only_a_separate_loopback_only_namespace_is_isolated() {
        let lo = vec!["lo".to_owned()];
        let lo_eth = vec!["lo".to_owned(), "eth0".to_owned()];
        assert!(is_isolated_network(Some(1), Some(2), &lo));
        assert!(
            !is_isolated_network(Some(1), Some(1), &lo),
            "same namespace"
        );
        assert!(!is_isolated_network(Some(1), Some(2), &lo_eth), "has eth0");
        assert!(!is_isolated_network(None, Some(2), &lo), "unknown");
        assert!(!is_isolated_network(Some(1), Some(2), &[]), "nothing read");
    }

    #[test]
    fn namespace_links_give_their_inode() {
        assert_eq!(
            parse_namespace_inode("net:[4026531833]"),
            Some(4_026_531_833)
        );
        assert_eq!(parse_namespace_inode("net:4026531833"), None);
    }
}
