//! Checks on everything a caller (ultimately a model) passes in, before any request:
//! repository names, paths, refs and search queries, and the tenant's GitHub settings.
//!
//! Pure functions. A path or ref that could step outside what was asked (`..`, control
//! characters, option-like leading dashes) is refused; everything that reaches a URL is
//! percent-encoded segment by segment, so input can never add a path segment or a query.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use warden_proto::common::v1::GitHubSource;

use super::SourceError;

/// Everything but RFC 3986's unreserved characters is encoded, `/` included.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One URL path segment.
pub(super) fn encode(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

fn invalid(field: &'static str, problem: impl Into<String>) -> SourceError {
    SourceError::Invalid {
        field,
        problem: problem.into(),
    }
}

/// `owner/name` as GitHub allows them.
pub(super) fn parse_repository(s: &str) -> Result<(&str, &str), SourceError> {
    let bad = |p: &str| invalid("repository", format!("{p} (expected owner/name)"));
    let (owner, name) = s.split_once('/').ok_or_else(|| bad("no '/'"))?;
    let owner_ok = (1..=39).contains(&owner.len())
        && !owner.starts_with('-')
        && owner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !owner_ok {
        return Err(bad("the owner may hold only letters, digits, '-' and '_'"));
    }
    let name_ok = (1..=100).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !name_ok {
        return Err(bad(
            "the name may hold only letters, digits, '-', '_' and '.'",
        ));
    }
    Ok((owner, name))
}

/// A path inside the repository: segments without `..`, `.` or control characters;
/// leading and trailing `/` are dropped (empty: the repository's root).
pub(super) fn check_path(path: &str) -> Result<String, SourceError> {
    const MAX: usize = 4096;
    if path.len() > MAX {
        return Err(invalid("path", format!("longer than {MAX} bytes")));
    }
    if path.chars().any(char::is_control) {
        return Err(invalid("path", "contains control characters"));
    }
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    for seg in trimmed.split('/') {
        match seg {
            ".." => return Err(invalid("path", "'..' is not allowed")),
            "." => return Err(invalid("path", "'.' segments are not allowed")),
            "" => return Err(invalid("path", "empty segment ('//')")),
            _ => {}
        }
    }
    Ok(trimmed.to_owned())
}

/// A branch, tag or commit sha, by git's ref-name rules (the parts that matter here).
pub(super) fn check_ref(field: &'static str, r: &str) -> Result<(), SourceError> {
    const MAX: usize = 255;
    if r.is_empty() {
        return Err(invalid(field, "is empty"));
    }
    if r.len() > MAX {
        return Err(invalid(field, format!("longer than {MAX} bytes")));
    }
    if r.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(field, "contains whitespace or control characters"));
    }
    if r.contains("..") {
        return Err(invalid(field, "'..' is not allowed"));
    }
    if let Some(c) = r.chars().find(|c| "~^:?*[\\".contains(*c)) {
        return Err(invalid(field, format!("{c:?} is not allowed in a git ref")));
    }
    if r.starts_with('-') || r.starts_with('/') || r.ends_with('/') || r.ends_with('.') {
        return Err(invalid(
            field,
            "may not start with '-' or '/' or end with '/' or '.'",
        ));
    }
    if r.contains("//") || r.contains("@{") || r == "@" || r.ends_with(".lock") {
        return Err(invalid(field, "is not a valid git ref"));
    }
    Ok(())
}

/// Qualifiers that widen or move a search's scope; the client sets the scope itself.
const SCOPE_QUALIFIERS: &[&str] = &["repo", "org", "user", "owner", "enterprise"];
/// Boolean operators could join a term with a scope the client did not set.
const OPERATORS: &[&str] = &["OR", "AND", "NOT"];
/// GitHub's limit on a query's length.
const MAX_QUERY: usize = 256;

/// Splits as GitHub does: on whitespace, with double quotes grouping.
fn tokens(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in q.chars() {
        if c == '"' {
            quoted = !quoted;
            cur.push(c);
        } else if c.is_whitespace() && !quoted {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The query GitHub gets: the caller's terms without scope qualifiers, boolean
/// operators or grouping, then `repo:owner/name`. Also returns what was removed.
pub(super) fn scoped_query(
    query: &str,
    repository: &str,
) -> Result<(String, Vec<String>), SourceError> {
    if query.chars().any(char::is_control) {
        return Err(invalid("query", "contains control characters"));
    }
    let mut kept = Vec::new();
    let mut removed = Vec::new();
    for t in tokens(query) {
        let bare = t.trim_start_matches(['-', '(']).trim_start_matches('"');
        let is_scope = bare.split_once(':').is_some_and(|(k, _)| {
            SCOPE_QUALIFIERS
                .iter()
                .any(|q| q.eq_ignore_ascii_case(k.trim()))
        });
        let stripped = t.trim_matches(['(', ')']);
        if is_scope || OPERATORS.contains(&stripped) || stripped.is_empty() {
            removed.push(t);
        } else {
            kept.push(stripped.to_owned());
        }
    }
    if kept.is_empty() {
        return Err(invalid(
            "query",
            "has no search terms once scope qualifiers and operators are removed",
        ));
    }
    let q = format!("{} repo:{repository}", kept.join(" "));
    if q.chars().count() > MAX_QUERY {
        return Err(invalid(
            "query",
            format!("longer than GitHub's {MAX_QUERY} characters"),
        ));
    }
    Ok((q, removed))
}

/// The API base URL: https, or http only to a loopback address; no credentials, query
/// or fragment. Empty means `https://api.github.com`.
pub fn check_api_url(url: &str) -> Result<String, String> {
    if url.is_empty() {
        return Ok(super::DEFAULT_API_URL.to_owned());
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| format!("api_url {url:?} is not a URL"))?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => {
            return Err(format!(
                "api_url {url:?} is plain http; use https:// (http only to a loopback address)"
            ));
        }
        _ => return Err(format!("api_url {url:?} must be an https:// URL")),
    }
    if host.is_empty() {
        return Err(format!("api_url {url:?} has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("api_url may not carry credentials; store them as source credentials".into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("api_url {url:?} may not have a query or fragment"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// The most service-to-repository mappings one tenant may have.
pub const MAX_REPOSITORIES: usize = 500;

/// Validates a tenant's GitHub settings, naming every problem (for `SetTenantSettings`).
pub fn check_source(source: &GitHubSource) -> Result<(), String> {
    let mut problems = Vec::new();
    if let Err(e) = check_api_url(&source.api_url) {
        problems.push(e);
    }
    if !source.repositories.is_empty() && source.credentials_id.is_empty() {
        problems.push(
            "credentials_id is empty; upload a token or GitHub App credentials first (Admin.PutSourceCredentials)"
                .to_owned(),
        );
    }
    if source.repositories.len() > MAX_REPOSITORIES {
        problems.push(format!(
            "{} repositories; at most {MAX_REPOSITORIES} can be mapped",
            source.repositories.len()
        ));
    }
    let mut services = std::collections::HashSet::new();
    for (i, r) in source.repositories.iter().enumerate() {
        let at = format!("repositories[{i}]");
        if r.service.is_empty() || r.service.len() > 256 || r.service.chars().any(char::is_control)
        {
            problems.push(format!(
                "{at}.service must be 1 to 256 bytes without control characters"
            ));
        } else if !services.insert(r.service.as_str()) {
            problems.push(format!(
                "{at}.service {:?} is mapped more than once",
                r.service
            ));
        }
        if let Err(e) = parse_repository(&r.repository) {
            problems.push(format!("{at}.repository {:?}: {e}", r.repository));
        }
        if !r.default_ref.is_empty()
            && let Err(e) = check_ref("default_ref", &r.default_ref)
        {
            problems.push(format!("{at}.{e}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("github: {}", problems.join("; ")))
    }
}

#[cfg(test)]
mod tests;
