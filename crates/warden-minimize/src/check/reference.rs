//! The checks as they were before they were tuned for instruction count (branch t-scan), kept
//! as the reference the tuned ones must agree with on every input: the tuned ones parse in one
//! pass instead of splitting, which could change an answer in a corner case. The issuer prefixes
//! and the IPv6 check were not changed and are used as they are.

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
        Check::Ipv6 => super::ipv6(m, before, after),
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
    if !super::issuer_prefix(digits) {
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
