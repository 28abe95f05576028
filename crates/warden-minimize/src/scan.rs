//! Fast candidate finders for the personal-data rules that have no keyword (IPv4, IPv6, card
//! numbers) or a one-byte one (email's `@`). Logs are full of digits, dots and colons, so a
//! general regex over the whole text is the slowest part of redaction; these scanners jump
//! between anchor bytes with SIMD `memchr` and look only at the few bytes around each anchor.
//! The card scanner has no anchor byte: it probes every 13th byte and walks only the runs of
//! digits and separators long enough to hold a card number.
//!
//! A scanner only proposes candidates; the rule's regex (anchored), `check` and `ignore` still
//! decide. Every scanner moves strictly forward, so time is linear in the input.

use serde::Deserialize;

#[cfg(test)]
mod agree;
#[cfg(test)]
mod reference;

/// Which built-in candidate finder a `[[pattern]]` rule uses instead of a whole-text regex.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Scanner {
    Ipv4,
    Ipv6,
    CreditCard,
    Email,
}

/// Calls `emit(start, end)` for every candidate of `scanner` in `text`, in order.
pub(crate) fn candidates(scanner: Scanner, text: &[u8], emit: &mut dyn FnMut(usize, usize)) {
    match scanner {
        Scanner::Ipv4 => ipv4(text, emit),
        Scanner::Ipv6 => ipv6(text, emit),
        Scanner::CreditCard => credit_card(text, emit),
        Scanner::Email => email(text, emit),
    }
}

fn ipv4(text: &[u8], emit: &mut dyn FnMut(usize, usize)) {
    // The dots of a candidate are not anchors again: the search resumes after it.
    let mut from = 0;
    while let Some(at) = text.get(from..).and_then(|rest| memchr::memchr(b'.', rest)) {
        let dot = from + at;
        from = dot + 1;
        if dot == 0 || !text[dot - 1].is_ascii_digit() {
            continue;
        }
        let mut s = dot;
        while s > 0 && dot - s < 3 && text[s - 1].is_ascii_digit() {
            s -= 1;
        }
        let mut i = s;
        let mut ok = true;
        for octet in 0..4 {
            let d0 = i;
            while i < text.len() && i - d0 < 3 && text[i].is_ascii_digit() {
                i += 1;
            }
            if i == d0 {
                ok = false;
                break;
            }
            if octet < 3 {
                if text.get(i) != Some(&b'.') {
                    ok = false;
                    break;
                }
                i += 1;
            }
        }
        if ok {
            emit(s, i);
            from = i;
        }
    }
}

/// Calls `found(a, b)` for every maximal run `text[a..b]` of bytes where `member` holds that is
/// at least `min` bytes long, in order. Probes every `min`-th byte (a long run must cover one)
/// and looks around a probe only when it is a member, so text with short runs is skipped
/// `min` bytes at a time; every byte is read at most twice.
fn for_runs(
    text: &[u8],
    min: usize,
    member: &dyn Fn(usize) -> bool,
    found: &mut dyn FnMut(usize, usize),
) {
    let n = text.len();
    // No long run starts before `lo`, and `text[lo - 1]` is not a member.
    let mut lo = 0;
    while lo + min <= n {
        let p = lo + min - 1;
        if !member(p) {
            lo = p + 1;
            continue;
        }
        let mut a = p;
        while a > lo && member(a - 1) {
            a -= 1;
        }
        let mut b = p + 1;
        while b < n && member(b) {
            b += 1;
        }
        if b - a >= min {
            found(a, b);
        }
        lo = b + 1;
    }
}

/// What a scanner asks of a byte, one bit each, read from [`CLASS`] with one load (the IPv6
/// walk over hex digits and colons runs over every colon of a log, and is the hot loop).
const HEX_OR_COLON: u8 = 1;

/// The class bits of each byte value.
static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_hexdigit() || c == b':' {
            table[b] |= HEX_OR_COLON;
        }
        b += 1;
    }
    table
}

fn is_hex_or_colon(b: u8) -> bool {
    CLASS[usize::from(b)] & HEX_OR_COLON != 0
}

fn ipv6(text: &[u8], emit: &mut dyn FnMut(usize, usize)) {
    let n = text.len();
    // Colons inside a run already read are not anchors again: the search resumes past the run.
    let mut from = 0;
    while let Some(at) = text.get(from..).and_then(|rest| memchr::memchr(b':', rest)) {
        let colon = from + at;
        let mut s = colon;
        let lowest = colon.saturating_sub(40);
        while s > lowest && is_hex_or_colon(text[s - 1]) {
            s -= 1;
        }
        // The colons of the run and whether two are adjacent (`::`), counted on the way. The
        // bytes before this colon hold none: the search found no colon between `from` and here,
        // and when the walk back crossed `from` (into a run that stopped at its length bound),
        // this run is 40 bytes or longer and no candidate, whatever its colons.
        let (mut colons, mut pair, mut last_colon) = (1, false, true);
        let mut e = colon + 1;
        let end = n.min(s + 41);
        while e < end && is_hex_or_colon(text[e]) {
            let is_colon = text[e] == b':';
            colons += usize::from(is_colon);
            pair |= last_colon & is_colon;
            last_colon = is_colon;
            e += 1;
        }
        from = e;
        // A single trailing colon belongs to the prose (`from fe80::1: ...`), not the address.
        if e - s >= 2 && text[e - 1] == b':' && text[e - 2] != b':' {
            e -= 1;
            colons -= 1;
        }
        // Eight groups, or fewer with `::`; `hh:mm:ss` timestamps are neither.
        if (3..=39).contains(&(e - s)) && (colons == 7 || (colons >= 2 && pair)) {
            emit(s, e);
        }
    }
}

/// Fewest digits in a card number.
const CARD_MIN: usize = 13;

fn credit_card(text: &[u8], emit: &mut dyn FnMut(usize, usize)) {
    // Every byte of a card is a digit or a single separator between two digits, and a card has
    // 13+ digits: only runs of 13+ such bytes are walked (logs are full of short numbers).
    let digit = |i: usize| text.get(i).is_some_and(u8::is_ascii_digit);
    let member = |i: usize| {
        digit(i) || (matches!(text[i], b' ' | b'-') && i > 0 && digit(i - 1) && digit(i + 1))
    };
    for_runs(text, CARD_MIN, &member, &mut |a, b| {
        credit_card_in(text, a, b, emit)
    });
}

/// Card candidates in `text[from..to]`, a maximal run of digits and separators between digits.
fn credit_card_in(text: &[u8], from: usize, to: usize, emit: &mut dyn FnMut(usize, usize)) {
    let n = to;
    let mut i = from;
    while i < n {
        // Jump to the next digit eight bytes at a time.
        if let Some(chunk) = text.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            let mask = digit_mask(u64::from_le_bytes(w));
            if mask == 0 {
                i += 8;
                continue;
            }
            i += (mask.trailing_zeros() / 8) as usize;
        } else if !text[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = 0;
        let mut end = i;
        let mut last_group = 0;
        while i < n {
            // Whole groups of digits, up to eight at a time.
            let group = digit_run(text, i);
            if group > 0 {
                last_group = group;
                digits += group;
                i += group;
                end = i;
                // A card has at most 19 digits and groups of at least 3 between separators:
                // stop walking a timestamp or a long id early.
                if digits > 19 {
                    break;
                }
                continue;
            }
            let b = text[i];
            if (b == b' ' || b == b'-')
                && text.get(i + 1).is_some_and(u8::is_ascii_digit)
                && last_group >= 3
            {
                i += 1;
            } else {
                break;
            }
        }
        if (13..=19).contains(&digits) {
            emit(start, end);
        }
        i = i.max(start + 1);
    }
}

/// Number of consecutive ASCII digits at `text[i..]`.
fn digit_run(text: &[u8], mut i: usize) -> usize {
    let start = i;
    while let Some(chunk) = text.get(i..i + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        let not_digit = !digit_mask(u64::from_le_bytes(w)) & 0x8080_8080_8080_8080;
        if not_digit != 0 {
            return i - start + (not_digit.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < text.len() && text[i].is_ascii_digit() {
        i += 1;
    }
    i - start
}

/// `scheme://user:password@host`: the part before `@` is a credential (another rule's), and
/// the host is not an email domain.
fn in_url_userinfo(text: &[u8], s: usize) -> bool {
    let lo = s.saturating_sub(256);
    let token_start = text[lo..s]
        .iter()
        .rposition(|b| b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b'<' | b'>'))
        .map_or(lo, |i| lo + i + 1);
    text[token_start..s].windows(3).any(|w| w == b"://")
}

/// Bit 7 of each byte of the result is set where that byte of the word is an ASCII digit
/// (SWAR: no carry crosses bytes because the high bit is masked off first, and bytes with the
/// high bit set are excluded).
fn digit_mask(x: u64) -> u64 {
    const LO7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HI: u64 = 0x8080_8080_8080_8080;
    let y = x & LO7;
    let ge_0 = y.wrapping_add(0x5050_5050_5050_5050); // bit 7 set where byte >= 0x30
    let gt_9 = y.wrapping_add(0x4646_4646_4646_4646); // bit 7 set where byte >= 0x3a
    ge_0 & !gt_9 & !x & HI
}

fn email(text: &[u8], emit: &mut dyn FnMut(usize, usize)) {
    let local = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-');
    let domain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-');
    let mut next = 0;
    for at in memchr::memchr_iter(b'@', text) {
        if at < next || at == 0 {
            continue;
        }
        let mut s = at;
        while s > 0 && at - s < 64 && local(text[s - 1]) {
            s -= 1;
        }
        while s < at && !text[s].is_ascii_alphanumeric() {
            s += 1;
        }
        let mut e = at + 1;
        while e < text.len() && e - at <= 253 && domain(text[e]) {
            e += 1;
        }
        while e > at + 1 && matches!(text[e - 1], b'.' | b'-') {
            e -= 1;
        }
        // The rule's regex needs a dot in the domain; without one no address can match, so
        // the costlier URL test and the regex are skipped (`Class@123` in Java logs).
        if s < at
            && e > at + 3
            && memchr::memchr(b'.', &text[at + 1..e]).is_some()
            && !in_url_userinfo(text, s)
        {
            emit(s, e);
            next = e;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digit_run_counts_consecutive_digits() {
        assert_eq!(digit_run(b"1234567890123x", 0), 13);
        assert_eq!(digit_run(b"12-34", 0), 2);
        assert_eq!(digit_run(b"x1", 0), 0);
        assert_eq!(digit_run(b"123", 0), 3);
        let mut cards = Vec::new();
        credit_card(
            b"card 4111 1111 1111 1111, id 2015-10-18 12345678901234567890123",
            &mut |s, e| cards.push((s, e)),
        );
        assert_eq!(cards, [(5, 24)]);
    }

    /// Walking only the long runs finds exactly what the walk over every digit finds.
    #[test]
    fn card_runs_find_what_the_full_walk_finds() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for round in 0..3000 {
            let len = (round % 200) + 1;
            let text: Vec<u8> = (0..len)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    b"0123456789012345678901234567  --x"[(rng % 33) as usize]
                })
                .collect();
            let (mut fast, mut full) = (Vec::new(), Vec::new());
            credit_card(&text, &mut |s, e| fast.push((s, e)));
            credit_card_in(&text, 0, text.len(), &mut |s, e| full.push((s, e)));
            assert_eq!(fast, full, "{:?}", String::from_utf8_lossy(&text));
        }
    }

    #[test]
    fn digit_mask_marks_exactly_the_digits() {
        for b in 0..=255u8 {
            let word = u64::from_le_bytes([b'x', b, b'x', b'x', b'x', b'x', b'x', 0xff]);
            assert_eq!(digit_mask(word) != 0, b.is_ascii_digit(), "byte {b:#x}");
        }
    }
}
