//! Whose credentials sign a Bedrock request: the platform's for the platform account, the
//! tenant's assumed-role (or static) credentials for a customer-owned account, and never
//! the platform's for a tenant. The mocks verify every SigV4 signature independently.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions"
)]

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use secrecy::SecretString;
use warden_providers::{
    AccountCredentials, Bedrock, BedrockAccount, BedrockCredentials, ChatRequest, Identity,
    Provider, ProviderError, StaticKeys, StaticTenantAccounts,
};
use warden_testkit::sigv4::AwsKey;
use warden_testkit::sts::StsMock;
use warden_testkit::{MockServer, TestCa};

const GATEWAY_AKID: &str = "AKIDGATEWAYBASE00001";
const GATEWAY_SECRET: &str = "gatewaySECRET/0123456789abcdefghijklmn";
const TENANT_AKID: &str = "ASIATENANTACME000001";
const TENANT_SECRET: &str = "tenantSECRETassumed/abcdefghijklmnopqr";
const TENANT_TOKEN: &str = "FwoGZXIvYXdzEMOCKsessiontokenSECRET";
const ROLE: &str = "arn:aws:iam::111122223333:role/warden-tenant";
const EXTERNAL_ID: &str = "tenant-ext-id-42";

struct World {
    _ca: TestCa,
    sts: MockServer,
    bedrock: MockServer,
    platform: Bedrock,
    customer: Bedrock,
}

fn gateway() -> Identity {
    Identity::Static(StaticKeys {
        access_key_id: GATEWAY_AKID.into(),
        secret_access_key: SecretString::from(GATEWAY_SECRET),
        session_token: None,
    })
}

fn assume(external_id: &str) -> BedrockAccount {
    BedrockAccount {
        region: "eu-central-1".into(),
        credentials: AccountCredentials::AssumeRole {
            role_arn: ROLE.into(),
            external_id: SecretString::from(external_id),
            session_name: "warden-acme".into(),
        },
    }
}

async fn world(lifetime: Duration, accounts: HashMap<String, BedrockAccount>) -> World {
    let ca = TestCa::new().unwrap();
    let tenant_key = AwsKey::new(TENANT_AKID, TENANT_SECRET, Some(TENANT_TOKEN));
    let sts = warden_testkit::sts::start(
        &ca,
        StsMock {
            caller: AwsKey::new(GATEWAY_AKID, GATEWAY_SECRET, None),
            role_arn: ROLE.into(),
            external_id: warden_testkit::sts::TrustPolicy::new(EXTERNAL_ID),
            issued: tenant_key.clone(),
            lifetime,
        },
    )
    .await
    .unwrap();
    let bedrock = warden_testkit::bedrock::start(
        &ca,
        vec![
            AwsKey::new(PLATFORM_AKID, PLATFORM_SECRET, None),
            tenant_key,
            AwsKey::new("AKIDTENANTSTATIC0001", "tenantStaticSECRET/xyz", None),
        ],
    )
    .await
    .unwrap();
    let platform = Bedrock::new(bedrock_config(
        &ca,
        "bedrock",
        bedrock.url(),
        BedrockCredentials::Platform(Identity::Static(platform_keys())),
    ))
    .unwrap();
    let mut cfg = bedrock_config(
        &ca,
        "bedrock-customer",
        bedrock.url(),
        BedrockCredentials::PerTenant {
            accounts: Arc::new(StaticTenantAccounts(accounts)),
            gateway: gateway(),
        },
    );
    cfg.sts_endpoint_url = Some(sts.url());
    let customer = Bedrock::new(cfg).unwrap();
    World {
        _ca: ca,
        sts,
        bedrock,
        platform,
        customer,
    }
}

fn for_tenant(tenant: &str) -> ChatRequest {
    ChatRequest {
        tenant_id: Some(tenant.into()),
        ..hello()
    }
}

fn scope_region(r: &warden_testkit::Recorded) -> String {
    let auth = r.header("authorization").unwrap_or_default();
    auth.split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').nth(2))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn tenant_requests_are_signed_with_the_assumed_role_never_the_platform() {
    bounded(async {
        let w = world(
            Duration::from_secs(3600),
            HashMap::from([("acme".to_owned(), assume(EXTERNAL_ID))]),
        )
        .await;
        w.customer.complete(&for_tenant("acme")).await.unwrap();
        let mut s = w.customer.stream(&for_tenant("acme")).await.unwrap();
        while let Some(ev) = s.next().await {
            ev.unwrap();
        }
        w.platform.complete(&hello()).await.unwrap();

        // Customer calls: both signed by the assumed-role key, with its session token, in the tenant's region.
        let reqs = w.bedrock.requests();
        assert_eq!(
            w.bedrock.signers(),
            vec![TENANT_AKID, TENANT_AKID, PLATFORM_AKID]
        );
        for r in &reqs[..2] {
            assert_eq!(r.header("x-amz-security-token"), Some(TENANT_TOKEN));
            assert_eq!(scope_region(r), "eu-central-1");
            // The model id travels percent-encoded (`:` -> %3A); the verifier double-encodes it.
            assert!(r.path.contains("v1%3A0"), "{}", r.path);
        }
        assert_eq!(scope_region(&reqs[2]), "us-east-1");

        // One STS call, signed by the gateway, carrying the role and the external id; credentials were cached.
        let sts = w.sts.requests();
        assert_eq!(sts.len(), 1);
        assert_eq!(sts[0].signed_by.as_deref(), Some(GATEWAY_AKID));
        let form = warden_testkit::sts::form_fields(&sts[0]);
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("RoleArn"), Some(ROLE));
        assert_eq!(get("ExternalId"), Some(EXTERNAL_ID));
        assert_eq!(get("RoleSessionName"), Some("warden-acme"));
    })
    .await
}

#[tokio::test]
async fn concurrent_first_requests_share_one_assume_role() {
    bounded(async {
        let w = world(
            Duration::from_secs(3600),
            HashMap::from([("acme".to_owned(), assume(EXTERNAL_ID))]),
        )
        .await;
        let customer = Arc::new(w.customer.clone());
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let c = customer.clone();
                tokio::spawn(async move { c.complete(&for_tenant("acme")).await })
            })
            .collect();
        for c in calls {
            c.await.unwrap().unwrap();
        }
        assert_eq!(
            w.sts.calls(),
            1,
            "one client and one credential load per tenant"
        );
        assert_eq!(w.bedrock.signers(), vec![TENANT_AKID; 6]);
    })
    .await
}

#[tokio::test]
async fn credentials_near_expiry_are_refreshed() {
    bounded(async {
        // Lifetime (60 s) is inside the refresh window (300 s): every call re-assumes the role.
        let w = world(
            Duration::from_secs(60),
            HashMap::from([("acme".to_owned(), assume(EXTERNAL_ID))]),
        )
        .await;
        w.customer.complete(&for_tenant("acme")).await.unwrap();
        w.customer.complete(&for_tenant("acme")).await.unwrap();
        assert_eq!(w.sts.calls(), 2);
        assert_eq!(w.bedrock.signers(), vec![TENANT_AKID, TENANT_AKID]);
    })
    .await
}

#[tokio::test]
async fn a_refused_assume_role_never_falls_back_to_platform_credentials() {
    bounded(async {
        let w = world(
            Duration::from_secs(3600),
            HashMap::from([("acme".to_owned(), assume("wrong-external-id"))]),
        )
        .await;
        let err = w.customer.complete(&for_tenant("acme")).await.unwrap_err();
        assert_eq!(
            w.bedrock.calls(),
            0,
            "nothing may reach Bedrock without the tenant's credentials: {err}"
        );
        assert_eq!(w.sts.calls(), 1);
        assert!(!format!("{err} {err:?}").contains(GATEWAY_SECRET));
    })
    .await
}

#[tokio::test]
async fn a_customer_request_must_name_a_known_tenant() {
    bounded(async {
        let w = world(Duration::from_secs(3600), HashMap::new()).await;
        let err = w.customer.complete(&hello()).await.unwrap_err();
        assert!(matches!(err, ProviderError::NotConfigured { .. }), "{err:?}");
        let err = w.customer.complete(&for_tenant("globex")).await.unwrap_err();
        assert!(matches!(err, ProviderError::NotConfigured { .. }), "{err:?}");
        assert_eq!(err.to_string(), "provider bedrock-customer is not configured: tenant globex has no Bedrock account configured");
        assert_eq!(w.bedrock.calls() + w.sts.calls(), 0);
    })
    .await
}

#[tokio::test]
async fn tenant_static_keys_sign_directly() {
    bounded(async {
        let account = BedrockAccount {
            region: "us-west-2".into(),
            credentials: AccountCredentials::Static(StaticKeys {
                access_key_id: "AKIDTENANTSTATIC0001".into(),
                secret_access_key: SecretString::from("tenantStaticSECRET/xyz"),
                session_token: None,
            }),
        };
        let dbg = format!("{account:?}");
        assert!(!dbg.contains("tenantStaticSECRET"), "{dbg}");
        let w = world(
            Duration::from_secs(3600),
            HashMap::from([("initech".to_owned(), account)]),
        )
        .await;
        w.customer.complete(&for_tenant("initech")).await.unwrap();
        assert_eq!(w.bedrock.signers(), vec!["AKIDTENANTSTATIC0001"]);
        assert_eq!(scope_region(&w.bedrock.requests()[0]), "us-west-2");
        assert_eq!(w.sts.calls(), 0);
    })
    .await
}

#[tokio::test]
async fn wrong_platform_secret_is_refused_by_the_verifier_and_not_leaked() {
    bounded(async {
        let ca = TestCa::new().unwrap();
        let mock = warden_testkit::bedrock::start(
            &ca,
            vec![AwsKey::new(PLATFORM_AKID, PLATFORM_SECRET, None)],
        )
        .await
        .unwrap();
        let keys = StaticKeys {
            access_key_id: PLATFORM_AKID.into(),
            secret_access_key: SecretString::from("notTheRealSECRET/000"),
            session_token: Some(SecretString::from("someSESSIONtoken")),
        };
        let b = Bedrock::new(bedrock_config(
            &ca,
            "bedrock",
            mock.url(),
            BedrockCredentials::Platform(Identity::Static(keys)),
        ))
        .unwrap();
        let err = b.complete(&hello()).await.unwrap_err();
        assert!(
            matches!(err, ProviderError::Status { status: 403, .. }),
            "{err:?}"
        );
        let shown = format!("{err} {err:?} {b:?}");
        assert!(
            !shown.contains("notTheRealSECRET") && !shown.contains("someSESSIONtoken"),
            "{shown}"
        );
        assert_eq!(mock.signers(), Vec::<String>::new());
    })
    .await
}
