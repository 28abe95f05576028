//! The checks as they were before they were tuned for instruction count (branch t-scan), kept
//! as the reference the tuned ones must agree with on every input: the tuned ones parse in one
//! pass instead of splitting, which could change an answer in a corner case.

use std::net::Ipv6Addr;
use std::str::FromStr;

use crate::rules::Check;

/// Does the match `text[start..end]` pass the rule's check? `text` is the whole part, so the
/// check can look at the bytes around the match.
pub(super) fn passes(check: Check, text: &[u8], start: usize, end: usize) -> bool {
    let Some(m) = text.get(start..end) else {
        return false;
    };
    let before = start.checked_sub(1).and_then(|i| text.get(i)).copied();
    let after = text.get(end).copied();
    let after2 = text.get(end + 1).copied();
    match check {
        Check::None => true,
        Check::Luhn => luhn_card(m, before, after),
        Check::Ipv4 => ipv4(m, before, after, after2),
        Check::PublicIpv4 => ipv4(m, before, after, after2) && !private_ipv4(m),
        Check::Ipv6 => ipv6(m, before, after),
    }
}

fn luhn_card(m: &[u8], before: Option<u8>, after: Option<u8>) -> bool {
    // Part of a longer number or identifier (`blk_-1234...`, `id=...9`) is not a card.
    if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        || after.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
    {
        return false;
    }
    // Digits (at most 19) and the separator kept on the stack: this runs on every long digit
    // run of a log.
    let mut buf = [0u8; 19];
    let mut n = 0;
    let mut sep = None;
    for &b in m {
        if b.is_ascii_digit() {
            let Some(slot) = buf.get_mut(n) else {
                return false;
            };
            *slot = b - b'0';
            n += 1;
        } else if sep.is_some_and(|s| s != b) {
            // Separators, if any, are all the same character ...
            return false;
        } else {
            sep = Some(b);
        }
    }
    if n < 13 {
        return false;
    }
    let digits = &buf[..n];
    // ... and split groups of 3 to 6 digits.
    if let Some(first) = sep
        && m.split(|&b| b == first)
            .any(|g| !(3..=6).contains(&g.len()))
    {
        return false;
    }
    if !issuer_prefix(digits) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Issuer identification numbers of the card networks in use (Visa, Mastercard, Amex, Discover,
/// JCB, Diners, UnionPay, Maestro). Long numbers with other prefixes are ids, not cards.
fn issuer_prefix(d: &[u8]) -> bool {
    let n = |k: usize| {
        d.iter()
            .take(k)
            .fold(0u32, |acc, &x| acc * 10 + u32::from(x))
    };
    let (p1, p2, p3, p4) = (n(1), n(2), n(3), n(4));
    p1 == 4
        || (51..=55).contains(&p2)
        || (2221..=2720).contains(&p4)
        || p2 == 34
        || p2 == 37
        || p4 == 6011
        || p2 == 65
        || (644..=649).contains(&p3)
        || (3528..=3589).contains(&p4)
        || (300..=305).contains(&p3)
        || p2 == 36
        || p2 == 38
        || p2 == 39
        || p2 == 62
        || p2 == 50
        || (56..=58).contains(&p2)
        || p2 == 67
}

fn ipv4(m: &[u8], before: Option<u8>, after: Option<u8>, after2: Option<u8>) -> bool {
    // `v1.2.3.4`, `1.2.3.4.5` and `x.1.2.3.4` are versions or OIDs, not addresses.
    if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return false;
    }
    if after.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        || (after == Some(b'.') && after2.is_some_and(|b| b.is_ascii_digit()))
    {
        return false;
    }
    let mut octets = 0;
    for part in m.split(|&b| b == b'.') {
        if part.is_empty() || part.len() > 3 || (part.len() > 1 && part[0] == b'0') {
            return false;
        }
        let v = part
            .iter()
            .fold(0u32, |acc, &b| acc * 10 + u32::from(b.wrapping_sub(b'0')));
        if v > 255 {
            return false;
        }
        octets += 1;
    }
    octets == 4 && m != b"0.0.0.0"
}

fn private_ipv4(m: &[u8]) -> bool {
    let mut o = [0u32; 4];
    for (slot, part) in o.iter_mut().zip(m.split(|&b| b == b'.')) {
        *slot = part
            .iter()
            .fold(0u32, |acc, &b| acc * 10 + u32::from(b.wrapping_sub(b'0')));
    }
    o[0] == 10
        || o[0] == 127
        || (o[0] == 172 && (16..=31).contains(&o[1]))
        || (o[0] == 192 && o[1] == 168)
}

fn ipv6(m: &[u8], before: Option<u8>, after: Option<u8>) -> bool {
    if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'.')
        || after.is_some_and(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'_')
    {
        return false;
    }
    let Ok(s) = std::str::from_utf8(m) else {
        return false;
    };
    let Ok(addr) = Ipv6Addr::from_str(s) else {
        return false;
    };
    if addr.is_loopback() || addr.is_unspecified() {
        return false;
    }
    // `Face::add` and `d::` parse as addresses; real ones have three groups, or two with digits.
    let groups = s.split(':').filter(|g| !g.is_empty()).count();
    let has_digit = m.iter().any(u8::is_ascii_digit);
    groups >= 3 || (groups == 2 && has_digit && s.contains("::"))
}
