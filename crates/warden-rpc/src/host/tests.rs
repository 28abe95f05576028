#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

//! Health that follows a gate, asked over a real listener.

use std::time::Duration;

use tokio::sync::watch;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use super::{HealthGate, ServiceHost, bind, connect};
use crate::{Limits, Security};

const GATED: &str = "test.v1.Gated";
const OTHER: &str = "test.v1.Other";

/// A host with the services `GATED` (behind `healthy`) and `OTHER`, and a health client.
async fn serve(healthy: watch::Receiver<bool>) -> HealthClient<tonic::transport::Channel> {
    let (listener, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let host = ServiceHost {
        component: "test",
        security: Security::InsecureDev,
        limits: Limits::default(),
    };
    let gate = HealthGate {
        services: vec![GATED],
        healthy,
    };
    tokio::spawn(host.serve_gated(
        listener,
        tonic::service::RoutesBuilder::default(),
        &[GATED, OTHER],
        Some(gate),
        std::future::pending(),
    ));
    let channel = connect(
        &addr.to_string(),
        &Security::InsecureDev,
        warden_tls::Role::Storage,
        Duration::from_secs(5),
    )
    .unwrap();
    HealthClient::new(channel)
}

async fn status(health: &mut HealthClient<tonic::transport::Channel>, service: &str) -> i32 {
    for _ in 0..500 {
        match health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
        {
            Ok(r) => return r.into_inner().status,
            // The listener may not accept yet.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    panic!("the health service never answered");
}

/// The next status `Watch` streams for `service`, within five seconds.
async fn next(stream: &mut tonic::Streaming<HealthCheckResponse>) -> i32 {
    tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("no status change within five seconds")
        .unwrap()
        .unwrap()
        .status
}

#[tokio::test]
async fn a_gate_turning_unhealthy_turns_its_services_and_the_whole_not_serving_for_good() {
    let (healthy, rx) = watch::channel(true);
    let mut health = serve(rx).await;
    assert_eq!(status(&mut health, "").await, ServingStatus::Serving as i32);
    assert_eq!(
        status(&mut health, GATED).await,
        ServingStatus::Serving as i32
    );
    let mut watched = health
        .watch(HealthCheckRequest {
            service: GATED.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut watched).await, ServingStatus::Serving as i32);

    healthy.send_replace(false);
    assert_eq!(next(&mut watched).await, ServingStatus::NotServing as i32);
    assert_eq!(
        status(&mut health, "").await,
        ServingStatus::NotServing as i32
    );
    // What the gate does not guard still serves.
    assert_eq!(
        status(&mut health, OTHER).await,
        ServingStatus::Serving as i32
    );

    // It does not come back by itself: the replica must be restarted.
    healthy.send_replace(true);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        status(&mut health, GATED).await,
        ServingStatus::NotServing as i32
    );
}

#[tokio::test]
async fn a_gate_whose_sender_is_gone_is_unhealthy() {
    let (healthy, rx) = watch::channel(true);
    let mut health = serve(rx).await;
    let mut watched = health
        .watch(HealthCheckRequest {
            service: GATED.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next(&mut watched).await, ServingStatus::Serving as i32);
    drop(healthy);
    assert_eq!(next(&mut watched).await, ServingStatus::NotServing as i32);
    assert_eq!(
        status(&mut health, "").await,
        ServingStatus::NotServing as i32
    );
}

#[tokio::test]
async fn a_gate_unhealthy_from_the_start_is_not_serving_from_the_first_check() {
    let (_healthy, rx) = watch::channel(false);
    let mut health = serve(rx).await;
    assert_eq!(
        status(&mut health, GATED).await,
        ServingStatus::NotServing as i32
    );
    assert_eq!(
        status(&mut health, "").await,
        ServingStatus::NotServing as i32
    );
    assert_eq!(
        status(&mut health, OTHER).await,
        ServingStatus::Serving as i32
    );
}
