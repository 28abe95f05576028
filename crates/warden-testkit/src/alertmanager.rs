//! A real Prometheus Alertmanager for tests (the Debian `prometheus-alertmanager` binary
//! that `scripts/test-deps` installs), on a free loopback port with its own config and
//! storage directory, killed when dropped. It routes every alert to one webhook receiver
//! over HTTPS, so an integration test sees the notifications (grouping, repeats, resolved)
//! that a production Alertmanager would send — not a hand-written imitation of them.
//!
//! Timing (Debian's Alertmanager 0.25): it refuses a zero `group_interval` or
//! `repeat_interval`, accepts millisecond values and a `repeat_interval` below
//! `group_interval`, and looks at a group only on its `group_interval` ticks. A group is
//! first notified `group_wait` after its first alert; a changed group (a new or resolved
//! alert) on its next tick; an unchanged group again on a tick once `repeat_interval` has
//! passed since the previous notification: when one interval is a multiple of the other,
//! that tick is sometimes the one at `repeat_interval`, usually the next. [`Timing::fast`]
//! (1 s / 2 s / 4 s) measured over four runs: first notification 1.0 s after posting,
//! resolved 1.5 s after resolving, repeat 4.0 s or 6.0 s after the first notification.

// A test fixture: failing to set one up fails the test, with the reason.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::prometheus::free_port;

/// Where Alertmanager sends its webhook notifications.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// `https://127.0.0.1:PORT/webhooks/alertmanager`
    pub url: String,
    /// The CA (PEM file) Alertmanager must trust for the receiver's certificate.
    pub ca_pem_path: PathBuf,
    /// Sent as `Authorization: Bearer <token>` when set.
    pub bearer_token: Option<String>,
    /// Client certificate and key (PEM files) Alertmanager presents, for mTLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// The name the receiver's certificate must carry, when it is not the URL's host
    /// (`tls_config.server_name`).
    pub server_name: Option<String>,
}

/// The route's timers and the global `resolve_timeout` (how long an alert posted without
/// `endsAt` stays firing). `group_interval` and `repeat_interval` must be at least 1 ms.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    pub resolve_timeout: Duration,
}

impl Timing {
    /// `group_wait` 1 s, `group_interval` 2 s, `repeat_interval` 4 s: first notification
    /// after ~1 s, changes within 2 s, repeats every 4–6 s; alerts posted without `endsAt`
    /// stay firing for 5 minutes.
    pub fn fast() -> Timing {
        Timing {
            group_wait: Duration::from_secs(1),
            group_interval: Duration::from_secs(2),
            repeat_interval: Duration::from_secs(4),
            resolve_timeout: Duration::from_secs(300),
        }
    }
}

/// A running Alertmanager, killed (and its directory removed) when dropped, also when a
/// test panics.
pub struct Alertmanager {
    child: Child,
    dir: PathBuf,
    pub addr: SocketAddr,
    http: reqwest::Client,
    /// Alerts posted through [`Alertmanager::post_alerts`], for [`Alertmanager::resolve`].
    posted: Mutex<Vec<Value>>,
}

impl std::fmt::Debug for Alertmanager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alertmanager")
            .field("addr", &self.addr)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// `alertmanager.yml`: one route grouping by alertname and service into one webhook
/// receiver that also sends resolved notifications. File paths are quoted as YAML strings.
pub fn config_yaml(receiver: &Receiver, timing: Timing) -> String {
    let mut http_config = String::new();
    if let Some(token) = &receiver.bearer_token {
        http_config.push_str(&format!(
            "          authorization:\n            type: Bearer\n            credentials: {}\n",
            yaml_str(token)
        ));
    }
    http_config.push_str(&format!(
        "          tls_config:\n            ca_file: {}\n",
        yaml_str(&receiver.ca_pem_path.display().to_string())
    ));
    if let Some(name) = &receiver.server_name {
        http_config.push_str(&format!("            server_name: {}\n", yaml_str(name)));
    }
    if let Some((cert, key)) = &receiver.client_cert {
        http_config.push_str(&format!(
            "            cert_file: {}\n            key_file: {}\n",
            yaml_str(&cert.display().to_string()),
            yaml_str(&key.display().to_string())
        ));
    }
    format!(
        "global:\n  resolve_timeout: {resolve}\n\
         route:\n  receiver: warden\n  group_by: ['alertname', 'service']\n  \
         group_wait: {wait}\n  group_interval: {interval}\n  repeat_interval: {repeat}\n\
         receivers:\n  - name: warden\n    webhook_configs:\n      - url: {url}\n        \
         send_resolved: true\n        http_config:\n{http_config}",
        resolve = duration(timing.resolve_timeout),
        wait = duration(timing.group_wait),
        interval = duration(timing.group_interval),
        repeat = duration(timing.repeat_interval),
        url = yaml_str(&receiver.url),
    )
}

/// A Prometheus duration (`1500ms`); Alertmanager parses milliseconds exactly.
fn duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// A double-quoted YAML scalar: JSON string syntax is valid YAML.
fn yaml_str(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// The current time as RFC 3339, the form the Alertmanager API takes.
fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

impl Alertmanager {
    /// Writes `alertmanager.yml` for `receiver` and `timing`, starts Alertmanager on a
    /// free loopback port without clustering and waits until `/-/ready` answers. Panics,
    /// naming `scripts/test-deps`, when the binary is missing, and with Alertmanager's log
    /// when it exits or is not ready within 30 s.
    pub fn start(receiver: &Receiver, timing: Timing) -> Alertmanager {
        assert!(
            timing.group_interval >= Duration::from_millis(1)
                && timing.repeat_interval >= Duration::from_millis(1),
            "Alertmanager refuses a zero group_interval or repeat_interval: {timing:?}"
        );
        let addr = free_port();
        let dir = std::env::temp_dir().join(format!(
            "warden-alertmanager-{}-{}",
            std::process::id(),
            addr.port()
        ));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let config = dir.join("alertmanager.yml");
        std::fs::write(&config, config_yaml(receiver, timing)).unwrap();
        let log = std::fs::File::create(dir.join("alertmanager.log")).unwrap();
        let spawned = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                panic!(
                    "cannot start `prometheus-alertmanager` ({e}); scripts/test-deps installs it \
                     (Debian package `prometheus-alertmanager`)"
                )
            }
        };
        let mut am = Alertmanager {
            child,
            dir,
            addr,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            posted: Mutex::new(Vec::new()),
        };
        am.wait_ready();
        am
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Its log (debug level), for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("alertmanager.log")).unwrap_or_default()
    }

    /// The directory holding `alertmanager.yml`, the log and the storage.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "prometheus-alertmanager exited ({status}) before it was ready:\n{}",
                    self.log()
                );
            }
            // Blocking on purpose: `start` is synchronous and may run outside a runtime.
            let last = match ready_once(self.addr) {
                Ok(true) => return,
                Ok(false) => "not ready yet".to_owned(),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                panic!(
                    "prometheus-alertmanager not ready within 30s (last: {last}); log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// POSTs `alerts` (postable alerts: labels, annotations, startsAt, endsAt,
    /// generatorURL) to `/api/v2/alerts`. Panics with the answer on a non-2xx status.
    pub async fn post_alerts(&self, alerts: &[Value]) {
        let resp = self
            .http
            .post(format!("{}/api/v2/alerts", self.url()))
            .json(&alerts)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /api/v2/alerts failed: {e}; log:\n{}", self.log()));
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        assert!(
            status.is_success(),
            "POST /api/v2/alerts answered {status}: {body}"
        );
        let mut posted = self.posted.lock().unwrap_or_else(|p| p.into_inner());
        for alert in alerts {
            posted.retain(|old| old.get("labels") != alert.get("labels"));
            posted.push(alert.clone());
        }
    }

    /// Resolves the alert with exactly these labels: re-posts it (as last posted here,
    /// keeping its startsAt and annotations) with `endsAt` = now. An alert this fixture
    /// did not post is re-posted with just its labels and startsAt = endsAt = now, which
    /// Alertmanager merges into the existing alert (the earlier startsAt is kept).
    pub async fn resolve(&self, labels: &[(&str, &str)]) {
        let wanted: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect();
        let wanted = Value::Object(wanted);
        let now = Value::String(now_rfc3339());
        let known = self
            .posted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|a| a.get("labels") == Some(&wanted))
            .cloned();
        let mut alert = known.unwrap_or_else(|| serde_json::json!({ "labels": wanted }));
        if alert.get("startsAt").is_none_or(Value::is_null) {
            alert["startsAt"] = now.clone();
        }
        alert["endsAt"] = now;
        self.post_alerts(&[alert]).await;
    }
}

/// One `GET /-/ready` over a plain TCP connection: Ok(true) on 200.
fn ready_once(addr: SocketAddr) -> std::io::Result<bool> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    write!(
        conn,
        "GET /-/ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    Ok(answer.starts_with("HTTP/1.1 200"))
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver(token: Option<&str>, client_cert: bool) -> Receiver {
        Receiver {
            server_name: None,
            url: "https://127.0.0.1:4443/webhooks/alertmanager".to_owned(),
            ca_pem_path: PathBuf::from("/tmp/a dir/ca.pem"),
            bearer_token: token.map(str::to_owned),
            client_cert: client_cert
                .then(|| (PathBuf::from("/tmp/c.pem"), PathBuf::from("/tmp/k.pem"))),
        }
    }

    #[test]
    fn config_carries_bearer_token_ca_and_client_cert_only_when_given() {
        let with = config_yaml(&receiver(Some("s3cr\"t"), true), Timing::fast());
        assert!(with.contains("type: Bearer\n            credentials: \"s3cr\\\"t\"\n"));
        assert!(with.contains("ca_file: \"/tmp/a dir/ca.pem\"\n"));
        assert!(with.contains("cert_file: \"/tmp/c.pem\"\n            key_file: \"/tmp/k.pem\"\n"));
        assert!(
            with.contains(
                "group_wait: 1000ms\n  group_interval: 2000ms\n  repeat_interval: 4000ms\n"
            )
        );
        assert!(with.contains("resolve_timeout: 300000ms\n"));
        let without = config_yaml(&receiver(None, false), Timing::fast());
        assert!(!without.contains("authorization"));
        assert!(!without.contains("cert_file"));
        assert!(without.contains("ca_file:"));
    }
}
