//! A real Prometheus server for tests (the Debian `prometheus` binary that
//! `scripts/test-deps` installs), on a free loopback port with its own data directory,
//! killed when dropped; and a scrape target that serves the text exposition format.

// A test fixture: failing to set one up fails the test, with the reason.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Prometheus, killed when dropped (also when a test panics).
pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    pub addr: SocketAddr,
}

impl Prometheus {
    /// Starts Prometheus with `config` (prometheus.yml) and, when given, `web_config`
    /// (TLS and basic auth). Panics, naming `scripts/test-deps`, when the binary is missing.
    pub fn start(config: &str, web_config: Option<&str>) -> Prometheus {
        let dir = std::env::temp_dir().join(format!(
            "warden-prometheus-{}-{}",
            std::process::id(),
            free_port().port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let addr = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
        if let Some(web) = web_config {
            std::fs::write(dir.join("web.yml"), web).unwrap();
            cmd.arg(format!(
                "--web.config.file={}",
                dir.join("web.yml").display()
            ));
        }
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot start `prometheus` ({e}); scripts/test-deps installs it (Debian package `prometheus`)"
            ),
        };
        Prometheus { child, dir, addr }
    }

    /// A scrape config for `target`, every second.
    pub fn scraping(target: SocketAddr) -> Prometheus {
        Prometheus::start(
            &format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: shop\n    static_configs:\n      - targets: ['{target}']\n"
            ),
            None,
        )
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// Polls `probe` until it gives a value, failing with Prometheus' log after 90 s or
    /// when the process exits.
    pub async fn wait_for<T, E: std::fmt::Display>(
        &mut self,
        what: &str,
        mut probe: impl AsyncFnMut() -> Result<Option<T>, E>,
    ) -> T {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "prometheus exited ({status}) before {what}:\n{}",
                    self.log()
                );
            }
            let last = match probe().await {
                Ok(Some(v)) => return v,
                Ok(None) => "no data yet".to_owned(),
                Err(e) => e.to_string(),
            };
            if Instant::now() > deadline {
                panic!("no {what} within 90s (last: {last}); log:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Serves the text exposition format: per scrape, the GET counter grows by 10 and one
/// request of 0.2 s lands in the latency histogram; the POST counter stays at 3.
pub fn serve_target() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut n: u64 = 0;
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            if read_head(&mut conn).is_none() {
                continue;
            }
            n += 1;
            let body = format!(
                "# HELP warden_test_requests_total Requests served.\n\
                 # TYPE warden_test_requests_total counter\n\
                 warden_test_requests_total{{method=\"GET\",code=\"200\"}} {get}\n\
                 warden_test_requests_total{{method=\"POST\",code=\"500\"}} 3\n\
                 # HELP warden_test_temperature_celsius A gauge.\n\
                 # TYPE warden_test_temperature_celsius gauge\n\
                 warden_test_temperature_celsius 21.5\n\
                 # HELP warden_test_latency_seconds Request latency.\n\
                 # TYPE warden_test_latency_seconds histogram\n\
                 warden_test_latency_seconds_bucket{{le=\"0.1\"}} 0\n\
                 warden_test_latency_seconds_bucket{{le=\"0.25\"}} {n}\n\
                 warden_test_latency_seconds_bucket{{le=\"0.5\"}} {n}\n\
                 warden_test_latency_seconds_bucket{{le=\"1\"}} {n}\n\
                 warden_test_latency_seconds_bucket{{le=\"+Inf\"}} {n}\n\
                 warden_test_latency_seconds_sum {sum}\n\
                 warden_test_latency_seconds_count {n}\n",
                get = 10 * n,
                sum = 0.2 * n as f64,
            );
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// The request head (up to the blank line), or None when the peer sent none.
pub fn read_head(conn: &mut TcpStream) -> Option<String> {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 || conn.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}
