//! Runs the Anthropic, OpenAI and Bedrock mocks for independent clients (the official
//! Python SDKs in `fidelity/check.py`), so the mocks are checked by code we did not write.
//!
//! Writes the throwaway CA to `DIR/ca.pem` and one JSON line with the URLs to stdout, then
//! serves until stdin closes or 300 s pass, whichever is first.

use std::io::Write;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use warden_testkit::sigv4::AwsKey;
use warden_testkit::{MockServer, TestCa, anthropic, bedrock, openai};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: mockd DIR")?;
    let ca = TestCa::new()?;
    std::fs::write(format!("{dir}/ca.pem"), ca.ca_pem())?;
    let a = MockServer::start(
        &ca,
        anthropic::AnthropicMock {
            expected_key: Some("sk-ant-fidelity".into()),
            ..Default::default()
        },
    )
    .await?;
    let o = MockServer::start(
        &ca,
        openai::OpenAiMock {
            expected_key: Some("sk-openai-fidelity".into()),
        },
    )
    .await?;
    let b = bedrock::start(
        &ca,
        vec![AwsKey::new(
            "AKIDFIDELITY0000001",
            "fidelitySecret/abcdefghijklmnop",
            None,
        )],
    )
    .await?;
    let line = serde_json::json!({"anthropic": a.url(), "openai": o.url(), "bedrock": b.url(), "ca": format!("{dir}/ca.pem")});
    let mut out = std::io::stdout();
    writeln!(out, "{line}")?;
    out.flush()?;
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::io::stdin().read_to_end(&mut sink),
    )
    .await;
    writeln!(
        out,
        "{}",
        serde_json::json!({"anthropic_calls": a.calls(), "openai_calls": o.calls(), "bedrock_signers": b.signers()})
    )?;
    Ok(())
}
