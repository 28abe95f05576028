//! Fixtures for the GitHub client tests: a mock GitHub over TLS on loopback holding a
//! small `acme/api` (files at `main` and `v1`, three commits tagged `v1`..`v2`), a
//! repository the tenant did not map (`evil/secrets`), and clients built as the agent
//! would build them.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures shared by several test binaries"
)]

use std::time::Duration;

use warden_proto::common::v1::source_credentials::Credentials;
use warden_proto::common::v1::{
    BasicAuth, GitHubApp, GitHubSource, ServiceRepository, SourceCredentials,
};
use warden_sources::github::GitHubClient;
use warden_testkit::github::{GitHubMock, MockChange, MockCommit, sha_for};
use warden_testkit::{MockServer, TestCa};

pub const TOKEN: &str = "ghp_TestToken0123456789abcdefghijklmnopq";
pub const APP_ID: u64 = 7;
pub const INSTALLATION: u64 = 42;
pub const MAIN_RS: &str =
    "fn main() {\n    let timeout = connect_timeout();\n    serve(timeout);\n}\n";

pub struct Env {
    pub ca: TestCa,
    pub mock: GitHubMock,
    pub server: MockServer,
}

/// `acme/api` and `evil/secrets`, with [`TOKEN`] accepted.
pub fn repos() -> GitHubMock {
    let c1 = MockCommit::new(
        1,
        None,
        "feat: serve",
        vec![MockChange::modified(
            "src/main.rs",
            "@@ -0,0 +1,3 @@\n+fn main() {\n+    serve();\n+}",
        )],
    );
    let c2 = MockCommit::new(
        2,
        Some(&sha_for(1)),
        "fix: connect timeout 5s -> 30s\n\nThe upstream is slow at peak.",
        vec![MockChange::modified(
            "src/net.rs",
            "@@ -1 +1 @@\n-const TIMEOUT: u64 = 5;\n+const TIMEOUT: u64 = 30;",
        )],
    );
    let c3 = MockCommit::new(
        3,
        Some(&sha_for(2)),
        "feat: retry",
        vec![
            MockChange::modified("src/net.rs", "@@ -5 +5,2 @@\n+retry(3);"),
            MockChange::modified(
                "src/main.rs",
                "@@ -2 +2 @@\n-    serve();\n+    serve(timeout);",
            ),
        ],
    );
    GitHubMock::new()
        .with_token(TOKEN)
        .with_file("acme/api", "main", "src/main.rs", MAIN_RS)
        .with_file(
            "acme/api",
            "main",
            "src/net.rs",
            "const TIMEOUT: u64 = 30;\nfn connect_timeout() {}\n",
        )
        .with_file("acme/api", "main", "README.md", "# api\n")
        .with_file(
            "acme/api",
            "main",
            "assets/logo.png",
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
        )
        .with_file(
            "acme/api",
            "main",
            "data/big.txt",
            "0123456789abcdef\n".repeat(20_000),
        )
        .with_file(
            "acme/api",
            "main",
            "data/huge.log",
            vec![b'x'; 1024 * 1024 + 1],
        )
        .with_file(
            "acme/api",
            "v1",
            "src/main.rs",
            "fn main() {\n    serve();\n}\n",
        )
        .with_file("acme/api", "prod", "src/main.rs", "// prod\n")
        .with_file("acme/api", "main", "docs/a b.md", "spaces\n")
        .with_commit("acme/api", c1)
        .with_commit("acme/api", c2)
        .with_commit("acme/api", c3)
        .with_ref("acme/api", "v1", &sha_for(1))
        .with_ref("acme/api", "v2", &sha_for(3))
        .with_file(
            "evil/secrets",
            "main",
            "config.txt",
            "password timeout = hunter2\n",
        )
}

pub async fn start(mock: GitHubMock) -> Env {
    let ca = TestCa::new().unwrap();
    let server = mock.start(&ca).await.unwrap();
    Env { ca, mock, server }
}

pub fn source(env: &Env) -> GitHubSource {
    GitHubSource {
        api_url: env.server.url(),
        credentials_id: "cred-github".into(),
        repositories: vec![ServiceRepository {
            service: "api".into(),
            repository: "acme/api".into(),
            default_ref: String::new(),
        }],
        ..Default::default()
    }
}

pub fn token(t: &str) -> SourceCredentials {
    SourceCredentials {
        credentials: Some(Credentials::BearerToken(t.into())),
    }
}

pub fn basic(user: &str, password: &str) -> SourceCredentials {
    SourceCredentials {
        credentials: Some(Credentials::Basic(BasicAuth {
            username: user.into(),
            password: password.into(),
        })),
    }
}

pub fn app(private_key_pem: &str) -> SourceCredentials {
    SourceCredentials {
        credentials: Some(Credentials::GithubApp(GitHubApp {
            app_id: APP_ID,
            installation_id: INSTALLATION,
            private_key_pem: private_key_pem.into(),
        })),
    }
}

pub fn client_with(env: &Env, source: &GitHubSource, creds: &SourceCredentials) -> GitHubClient {
    GitHubClient::with_root_ca(source, creds, Duration::from_secs(10), &env.ca.ca_pem()).unwrap()
}

pub fn client(env: &Env, creds: &SourceCredentials) -> GitHubClient {
    client_with(env, &source(env), creds)
}
