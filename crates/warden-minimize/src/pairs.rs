//! Key/value pairs: the regexes that find a key and its separator in a line ([`ASSIGN`],
//! [`ATTR`]), and the hand-written readers of what follows (the key's form, the value's extent,
//! a secret key's object of strings). Detection (`detect`) decides which keys matter; this
//! module only reads bytes, never looks back past a line (but for a bounded object), and so
//! stays linear.

use std::sync::LazyLock;

use regex::bytes::Regex;

/// The key/value shapes that `[[key]]` rules judge: JSON (also escaped inside a JSON string),
/// YAML, `key=value`, env dumps, `--flag=value`, `--flag value` and `<key>value</key>` (the
/// .NET / NuGet attribute pair is [`ATTR`]).
/// The regex finds only the key and its separator; the value is read by [`value_after`], and
/// only for keys a rule claims, so scanning stays linear however values nest.
pub(crate) static ASSIGN: LazyLock<Option<Regex>> = LazyLock::new(|| {
    crate::rules::compile(
        r#"(?x)
            (?P<qk>\\{0,3}"[A-Za-z0-9_.\-]{1,64}\\{0,3}"|'[A-Za-z0-9_.\-]{1,64}')[\ \t]*[:=][\ \t]*
          | (?P<bk>[A-Za-z_][A-Za-z0-9_.\-]{0,63})[\ \t]*(?:=>|:=|[:=])[\ \t]*
          | (?P<fk>--?[A-Za-z][A-Za-z0-9_\-]{0,63})(?:=|(?P<fs>[\ \t]+))
          | <(?P<xk>[A-Za-z_][A-Za-z0-9_.\-]{0,63})>
        "#,
    )
    .ok()
});

/// The .NET / NuGet attribute pair `<add key="name" value="...">`, run only on lines that hold
/// `value`. Its own regex: as a sixth alternative of [`ASSIGN`] it made that regex's search
/// four times slower on secret-dense text (docs/BENCHMARKS.md, "Redaction").
pub(crate) static ATTR: LazyLock<Option<Regex>> = LazyLock::new(|| {
    crate::rules::compile(
        r#"\b(?:key|name)[\ \t]*=[\ \t]*"(?P<ak>[A-Za-z0-9_.\-:]{1,64})"[\ \t]+value[\ \t]*=[\ \t]*"#,
    )
    .ok()
});

/// How the value after a key is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ValueForm {
    /// After a quoted (JSON) key: a bare value stops before `,`, `}` and `]`.
    Json,
    /// After a bare key or `--flag=`.
    Bare,
    /// After `--flag ` (space): the value may not start with `-`.
    FlagSpace,
    /// `<key>value</key>`.
    Xml,
}

/// The key (bytes `start..end` of `m`) and the value form of one [`ASSIGN`] match `m`, as its
/// capture groups would say. Each alternative starts with its own bytes (`qk` a quote or
/// backslash, `fk` a dash, `xk` a `<`, `bk` a letter or `_`), and no key holds a separator
/// byte, so the key is the match without its trailing separator.
pub(crate) fn assign_key(m: &[u8]) -> Option<((usize, usize), ValueForm)> {
    let blank = |b: &u8| matches!(b, b' ' | b'\t');
    let trim_blank = |mut e: usize| {
        while e > 0 && blank(&m[e - 1]) {
            e -= 1;
        }
        e
    };
    let end = m.len();
    match *m.first()? {
        b'<' => Some(((1, end.checked_sub(1)?), ValueForm::Xml)),
        b'-' if m.last() == Some(&b'=') => Some(((0, end - 1), ValueForm::Bare)),
        b'-' => Some(((0, trim_blank(end)), ValueForm::FlagSpace)),
        first => {
            // `[ \t]*` separator `[ \t]*`, where the separator is `=>`, `:=` or one of `:=`
            // (a quoted key's is only the last).
            let e = trim_blank(end);
            let sep = if first.is_ascii_alphabetic() || first == b'_' {
                if m[..e].ends_with(b"=>") || m[..e].ends_with(b":=") {
                    2
                } else {
                    1
                }
            } else {
                1
            };
            let key_end = trim_blank(e.checked_sub(sep)?);
            let form = if matches!(first, b'"' | b'\'' | b'\\') {
                ValueForm::Json
            } else {
                ValueForm::Bare
            };
            Some(((0, key_end), form))
        }
    }
}

/// The value that starts at `i` (just after a key and its separator), without its quotes.
pub(crate) fn value_after(hay: &[u8], i: usize, form: ValueForm) -> Option<(usize, usize)> {
    let rest = hay.get(i..)?;
    let first = *rest.first()?;
    if form == ValueForm::Xml {
        let len = memchr::memchr2(b'<', b'\n', rest).unwrap_or(rest.len());
        let (s, e) = trim(rest, 0, len);
        return (s < e).then_some((i + s, i + e));
    }
    // Escaped quotes: a JSON document inside a JSON string (`\"password\":\"...\"`).
    let slashes = rest.iter().take_while(|&&b| b == b'\\').count();
    if slashes > 0 && rest.get(slashes) == Some(&b'"') {
        let body = &rest[slashes + 1..];
        let mut len = memchr::memchr2(b'"', b'\n', body).unwrap_or(body.len());
        while len > 0 && body[len - 1] == b'\\' {
            len -= 1;
        }
        let s = i + slashes + 1;
        return (len > 0).then_some((s, s + len));
    }
    match first {
        b'"' => {
            let body = &rest[1..];
            let mut j = 0;
            while j < body.len() && body[j] != b'"' && body[j] != b'\n' {
                j += if body[j] == b'\\' { 2 } else { 1 };
            }
            let len = j.min(body.len());
            (len > 0).then_some((i + 1, i + 1 + len))
        }
        b'\'' => {
            let body = &rest[1..];
            let len = memchr::memchr2(b'\'', b'\n', body).unwrap_or(body.len());
            (len > 0).then_some((i + 1, i + 1 + len))
        }
        b'{' | b'[' => None,
        b'-' if form == ValueForm::FlagSpace => None,
        _ => {
            let mut len = rest
                .iter()
                .take_while(|&&b| !b.is_ascii_whitespace() && b != b'"')
                .count();
            if form == ValueForm::Json {
                while len > 0 && matches!(rest[len - 1], b',' | b'}' | b']') {
                    len -= 1;
                }
            }
            len = cut_at_next_pair(&rest[..len]);
            // `Password=x;` ends a connection-string pair; the `;` is not part of the value.
            while len > 0 && rest[len - 1] == b';' {
                len -= 1;
            }
            (len > 0).then_some((i, i + len))
        }
    }
}

/// Longest stretch after a `{` that a secret key's object of strings is followed over.
pub(crate) const MAX_OBJECT: usize = 4096;

/// Reports the string members of the flat JSON object that opens at `hay[i]` (`{"k":"v",...}`)
/// and returns where the scan stopped; stops at the first nested object or anything else.
pub(crate) fn object_strings(
    hay: &[u8],
    i: usize,
    found: &mut dyn FnMut((usize, usize), (usize, usize)),
) -> usize {
    let skip_ws = |mut j: usize| {
        while hay
            .get(j)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        {
            j += 1;
        }
        j
    };
    let string_end = |j: usize| -> Option<usize> {
        // `j` is just after an opening quote; returns the index of the closing one.
        let mut k = j;
        while let Some(&b) = hay.get(k) {
            match b {
                b'"' => return Some(k),
                b'\n' => return None,
                b'\\' => k += 2,
                _ => k += 1,
            }
        }
        None
    };
    let mut j = i + 1;
    loop {
        j = skip_ws(j);
        if hay.get(j) != Some(&b'"') {
            return j;
        }
        let key_start = j + 1;
        let Some(key_end) = string_end(key_start) else {
            return j;
        };
        j = skip_ws(key_end + 1);
        if hay.get(j) != Some(&b':') {
            return j;
        }
        j = skip_ws(j + 1);
        if hay.get(j) != Some(&b'"') {
            return j;
        }
        let Some(value_end) = string_end(j + 1) else {
            return j;
        };
        if value_end > j + 1 {
            found((key_start, key_end), (j + 1, value_end));
        }
        j = skip_ws(value_end + 1);
        if hay.get(j) != Some(&b',') {
            return j;
        }
        j += 1;
    }
}

fn trim(v: &[u8], mut s: usize, mut e: usize) -> (usize, usize) {
    while s < e && v[s].is_ascii_whitespace() {
        s += 1;
    }
    while e > s && v[e - 1].is_ascii_whitespace() {
        e -= 1;
    }
    (s, e)
}

/// Length of a bare value up to the next `;key=`, `&key=` or `,key=` (connection strings, URL
/// queries), so one pair's value does not swallow the next pair.
fn cut_at_next_pair(v: &[u8]) -> usize {
    for (i, &b) in v.iter().enumerate() {
        if matches!(b, b';' | b'&' | b',') {
            let rest = &v[i + 1..];
            let name = rest
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-' | b' '))
                .count();
            if name > 0 && rest.get(name) == Some(&b'=') && rest[0].is_ascii_alphabetic() {
                return i;
            }
        }
    }
    v.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `assign_key` reads from a match what the capture groups of [`ASSIGN`] say.
    #[test]
    fn assign_key_agrees_with_the_capture_groups() {
        #![allow(clippy::unwrap_used)]
        let re = ASSIGN.as_ref().unwrap();
        let pieces: [&[u8]; 30] = [
            b"password",
            b"a.b-c_d",
            b"\"",
            b"\\\"",
            b"'",
            b"--",
            b"-",
            b"<",
            b">",
            b"=",
            b":",
            b"=>",
            b":=",
            b" ",
            b"\t",
            b"x9",
            b"_k",
            b"\\",
            b"</",
            b",",
            b"{",
            b"v",
            b"AKIA",
            b"\n",
            b"\"token\"",
            b"\\\"api_key\\\"",
            b"'pw'",
            b"<secret>",
            b"--pass",
            b"-p",
        ];
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut seen, mut matches) = (Vec::new(), 0);
        for _ in 0..20_000 {
            let mut hay = Vec::new();
            for _ in 0..next() % 14 {
                hay.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
            }
            let mut locs = re.capture_locations();
            let mut pos = 0;
            while let Some(m) = re.captures_read_at(&mut locs, &hay, pos) {
                let want = [
                    (1, ValueForm::Json),
                    (2, ValueForm::Bare),
                    (5, ValueForm::Xml),
                ]
                .into_iter()
                .chain([(
                    3,
                    if locs.get(4).is_some() {
                        ValueForm::FlagSpace
                    } else {
                        ValueForm::Bare
                    },
                )])
                .find_map(|(g, form)| locs.get(g).map(|k| (k, form)));
                let found = re.find_at(&hay, pos).unwrap();
                assert_eq!((found.start(), found.end()), (m.start(), m.end()));
                let got = assign_key(m.as_bytes())
                    .map(|((s, e), form)| ((m.start() + s, m.start() + e), form));
                assert_eq!(got, want, "{:?} at {pos}", String::from_utf8_lossy(&hay));
                matches += 1;
                if let Some((_, form)) = want
                    && !seen.contains(&form)
                {
                    seen.push(form);
                }
                pos = m.end().max(pos + 1);
                if pos > hay.len() {
                    break;
                }
            }
        }
        // Every alternative was met.
        assert_eq!(seen.len(), 4, "{seen:?}");
        assert!(matches > 10_000, "{matches}");
    }
}
