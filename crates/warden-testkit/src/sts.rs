//! STS `AssumeRole` mock: form-encoded query protocol in, XML out, SigV4 (service `sts`)
//! verified against the gateway's own key.
//!
//! It checks `RoleArn` and `ExternalId` against the customer's trust policy (a missing or
//! wrong external id is `AccessDenied`, as in a real customer account) and issues the
//! scripted temporary credentials with an `Expiration` `lifetime` from now. The trust
//! policy can be changed while the mock runs, as a customer pastes the external id Warden
//! generated into their role's trust policy.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::sigv4::{AwsKey, verify};
use crate::{MockApi, Recorded, Reply};

/// The mock. `caller`: who may call STS; `role_arn` + `external_id`: the trust policy;
/// `issued`: the credentials handed out (must carry a session token).
#[derive(Debug, Clone)]
pub struct StsMock {
    pub caller: AwsKey,
    pub role_arn: String,
    pub external_id: TrustPolicy,
    pub issued: AwsKey,
    pub lifetime: Duration,
}

/// The `sts:ExternalId` the role's trust policy requires; shared, so a test can set it
/// after the mock started (clones see the change).
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy(Arc<RwLock<String>>);

impl TrustPolicy {
    pub fn new(external_id: impl Into<String>) -> TrustPolicy {
        TrustPolicy(Arc::new(RwLock::new(external_id.into())))
    }

    /// Requires `external_id` from now on.
    pub fn set(&self, external_id: impl Into<String>) {
        if let Ok(mut g) = self.0.write() {
            *g = external_id.into();
        }
    }

    /// The external id required now.
    pub fn get(&self) -> String {
        self.0.read().map(|g| g.clone()).unwrap_or_default()
    }
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// RFC 3339 UTC timestamp without a date library (days-from-civil inverse).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn xml_error(status: u16, code: &str, message: &str) -> Reply {
    let body = format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>mock-sts-err</RequestId></ErrorResponse>"
    );
    Reply::Whole {
        status,
        headers: vec![("content-type".into(), "text/xml".into())],
        body: Bytes::from(body),
    }
}

impl MockApi for StsMock {
    fn handle(&self, req: &mut Recorded) -> Reply {
        match verify(
            &req.method,
            &req.path,
            &req.headers,
            &req.body,
            "sts",
            std::slice::from_ref(&self.caller),
        ) {
            Ok(akid) => req.signed_by = Some(akid),
            Err(e) => return xml_error(403, "SignatureDoesNotMatch", &e.to_string()),
        }
        let f = form(&req.body);
        let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if get("Action") != Some("AssumeRole") {
            return xml_error(400, "InvalidAction", "only AssumeRole is mocked");
        }
        let trusted = self.external_id.get();
        if get("RoleArn") != Some(self.role_arn.as_str())
            || trusted.is_empty()
            || get("ExternalId") != Some(trusted.as_str())
        {
            return xml_error(
                403,
                "AccessDenied",
                "not authorized to perform sts:AssumeRole",
            );
        }
        let session = get("RoleSessionName").unwrap_or("session");
        let expiration = rfc3339(SystemTime::now() + self.lifetime);
        let token = self.issued.session_token.clone().unwrap_or_default();
        let body = format!(
            "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n  <AssumeRoleResult>\n    <Credentials>\n      <AccessKeyId>{}</AccessKeyId>\n      <SecretAccessKey>{}</SecretAccessKey>\n      <SessionToken>{token}</SessionToken>\n      <Expiration>{expiration}</Expiration>\n    </Credentials>\n    <AssumedRoleUser>\n      <AssumedRoleId>AROAMOCKROLE:{session}</AssumedRoleId>\n      <Arn>{}/{session}</Arn>\n    </AssumedRoleUser>\n  </AssumeRoleResult>\n  <ResponseMetadata>\n    <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>\n  </ResponseMetadata>\n</AssumeRoleResponse>\n",
            self.issued.access_key_id,
            self.issued.secret_access_key,
            self.role_arn
                .replace(":role/", ":assumed-role/")
                .replace(":iam::", ":sts::"),
        );
        Reply::Whole {
            status: 200,
            headers: vec![("content-type".into(), "text/xml".into())],
            body: Bytes::from(body),
        }
    }

    fn error(&self, status: u16, _retry_after: Option<&str>) -> Reply {
        xml_error(
            status,
            if status == 400 {
                "Throttling"
            } else {
                "InternalFailure"
            },
            "mock error",
        )
    }

    fn malformed_event(&self) -> Bytes {
        Bytes::from_static(b"<AssumeRoleResponse><oops")
    }

    fn stream_error_event(&self) -> Bytes {
        Bytes::new()
    }
}

/// The form fields of a recorded STS call.
pub fn form_fields(r: &Recorded) -> Vec<(String, String)> {
    form(&r.body)
}

/// Starts the STS mock.
pub async fn start(
    ca: &crate::TestCa,
    mock: StsMock,
) -> Result<crate::MockServer, crate::KitError> {
    crate::MockServer::start(ca, mock).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_764_047_400)),
            "2025-11-25T05:10:00Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }
}
