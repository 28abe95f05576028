//! Customer-owned Bedrock accounts, resolved per request from the tenant's settings:
//! the role ARN and the external id storage generated for it (the only one ever sent
//! to STS), or static keys that storage keeps sealed and
//! hands to the gateway role only. Any failure refuses the call (`NotConfigured`); a
//! tenant on its own account is never silently served from the platform's account.

use secrecy::SecretString;
use tonic::transport::Channel;
use warden_policy::CustomerCredentials;
use warden_proto::storage::v1::GetCustomerCredentialsRequest;
use warden_proto::storage::v1::tenant_store_client::TenantStoreClient;
use warden_providers::{BedrockAccount, ProviderError, StaticKeys, TenantAccounts};

use crate::Tenants;

pub struct StorageTenantAccounts {
    pub(crate) tenants: Tenants,
    pub(crate) store: TenantStoreClient<Channel>,
}

fn refused(message: &str) -> ProviderError {
    ProviderError::NotConfigured {
        provider: "customer-bedrock".into(),
        message: message.to_owned(),
    }
}

#[async_trait::async_trait]
impl TenantAccounts for StorageTenantAccounts {
    async fn account(&self, tenant_id: &str) -> Result<BedrockAccount, ProviderError> {
        let settings = self
            .tenants
            .get(tenant_id)
            .await
            .map_err(|_| refused("tenant settings could not be confirmed"))?
            .ok_or_else(|| refused("tenant is unknown"))?;
        let cb = settings
            .customer_bedrock
            .clone()
            .ok_or_else(|| refused("tenant has no customer-owned Bedrock account configured"))?;
        let keys = match &cb.credentials {
            CustomerCredentials::StaticKeysRef { credential_id } => {
                let mut store = self.store.clone();
                let creds = store
                    .get_customer_credentials(GetCustomerCredentialsRequest {
                        tenant_id: tenant_id.to_owned(),
                        credentials_id: credential_id.clone(),
                    })
                    .await
                    .map_err(|_| refused("the tenant's stored AWS keys could not be read"))?
                    .into_inner();
                Some(StaticKeys {
                    access_key_id: creds.access_key_id,
                    secret_access_key: SecretString::from(creds.secret_access_key),
                    session_token: (!creds.session_token.is_empty())
                        .then(|| SecretString::from(creds.session_token)),
                })
            }
            CustomerCredentials::AssumeRole { external_id, .. } => {
                // Storage generates it with the role; without it STS would be asked to
                // trust nothing but the role ARN (the confused deputy). Never send one
                // that did not come from storage.
                if external_id.is_empty() {
                    return Err(refused(
                        "the tenant's role has no Warden-generated external id; set the role again through Admin.SetTenantSettings",
                    ));
                }
                None
            }
        };
        warden_config::bedrock_account(tenant_id, &cb, |_| keys)
            .ok_or_else(|| refused("the tenant's AWS credentials are incomplete"))
    }
}
