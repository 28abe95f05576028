//! Validators for matches a regex alone over-matches: card numbers (Luhn and issuer prefix),
//! IP addresses (octet ranges, no version strings), and the entropy heuristic for unknown tokens.
//!
//! Every function here is total: it takes any bytes and answers yes or no without panicking.

use std::net::Ipv6Addr;
use std::str::FromStr;

use crate::rules::Check;

#[cfg(test)]
mod agree;
#[cfg(test)]
mod reference;

/// Does the match `text[start..end]` pass the rule's check? `text` is the whole part, so the
/// check can look at the bytes around the match.
pub(crate) fn passes(check: Check, text: &[u8], start: usize, end: usize) -> bool {
    let Some(m) = text.get(start..end) else {
        return false;
    };
    let before = start.checked_sub(1).and_then(|i| text.get(i)).copied();
    let after = text.get(end).copied();
    let after2 = text.get(end + 1).copied();
    match check {
        Check::None => true,
        Check::Luhn => luhn_card(m, before, after),
        Check::Ipv4 => ipv4(m, before, after, after2).is_some(),
        Check::PublicIpv4 => ipv4(m, before, after, after2).is_some_and(|o| !private_ipv4(o)),
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
    // Digits (at most 19) and the separator kept on the stack, and the groups between
    // separators measured on the same pass: this runs on every long digit run of a log.
    let mut buf = [0u8; 19];
    let mut n = 0;
    let mut sep = None;
    let (mut group, mut groups_ok) = (0, true);
    for &b in m {
        if b.is_ascii_digit() {
            let Some(slot) = buf.get_mut(n) else {
                return false;
            };
            *slot = b - b'0';
            n += 1;
            group += 1;
        } else if sep.is_some_and(|s| s != b) {
            // Separators, if any, are all the same character ...
            return false;
        } else {
            sep = Some(b);
            groups_ok &= (3..=6).contains(&group);
            group = 0;
        }
    }
    if n < 13 {
        return false;
    }
    let digits = &buf[..n];
    // ... and split groups of 3 to 6 digits.
    if sep.is_some() && !(groups_ok && (3..=6).contains(&group)) {
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

fn ipv4(m: &[u8], before: Option<u8>, after: Option<u8>, after2: Option<u8>) -> Option<[u32; 4]> {
    // `v1.2.3.4`, `1.2.3.4.5` and `x.1.2.3.4` are versions or OIDs, not addresses.
    if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-') {
        return None;
    }
    if after.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        || (after == Some(b'.') && after2.is_some_and(|b| b.is_ascii_digit()))
    {
        return None;
    }
    // Four dot-separated parts of one to three digits, no leading zero, each at most 255, read
    // in one pass (this runs on every dotted quad of a log).
    let mut octets = [0u32; 4];
    let mut k = 0;
    let mut i = 0;
    loop {
        let start = i;
        let mut v = 0u32;
        while let Some(&b) = m.get(i).filter(|&&b| b != b'.') {
            if i - start == 3 {
                return None;
            }
            v = v * 10 + u32::from(b.wrapping_sub(b'0'));
            i += 1;
        }
        if i == start || (i - start > 1 && m[start] == b'0') || v > 255 {
            return None;
        }
        *octets.get_mut(k)? = v;
        k += 1;
        if i == m.len() {
            break;
        }
        i += 1;
    }
    (k == 4 && m != b"0.0.0.0").then_some(octets)
}

/// Private (RFC 1918) and loopback addresses, from [`ipv4`]'s octets.
fn private_ipv4(o: [u32; 4]) -> bool {
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

/// Shannon entropy in bits per byte.
pub(crate) fn entropy(v: &[u8]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in v {
        counts[usize::from(b)] += 1;
    }
    let n = v.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| f64::from(c) / n)
        .map(|p| -p * p.log2())
        .sum()
}

/// The "looks generated" half of the high-entropy heuristic: a digit, or both cases over 16 bytes.
pub(crate) fn looks_generated(v: &[u8]) -> bool {
    let digit = v.iter().any(u8::is_ascii_digit);
    let upper = v.iter().any(u8::is_ascii_uppercase);
    let lower = v.iter().any(u8::is_ascii_lowercase);
    digit || (upper && lower && v.len() >= 16)
}
