//! The credential catalogue: where widely used tools keep credentials, each in the encodings it
//! is written in (pretty and compact JSON, YAML, INI, TOML, XML, environment, command line,
//! base64-wrapped values), with a near miss from the same file that must stay untouched.
//!
//! Why: the rule pack must hold on formats the labelled corpus does not show, so coverage is
//! checked against a list of places credentials live, not against the corpus.

use super::*;

/// One place a credential lives: the tool, a text as the tool writes it, every secret value in
/// it (each must be covered in full), and a near miss from the same file that must not be
/// redacted at all.
struct Case {
    tool: &'static str,
    text: &'static str,
    secrets: &'static [&'static str],
    near_miss: &'static str,
}

const CASES: &[Case] = &[
    // --- container registries and runtimes ---
    Case {
        tool: "docker config.json (pretty)",
        text: "{\n  \"auths\": {\n    \"https://index.docker.io/v1/\": {\n      \"auth\": \"ZGVwbG95OlM0bXBsZVBhc3N3MHJk\"\n    }\n  }\n}",
        secrets: &["ZGVwbG95OlM0bXBsZVBhc3N3MHJk"],
        near_miss: "{\n  \"auths\": {\n    \"ghcr.io\": {}\n  },\n  \"credsStore\": \"desktop\"\n}",
    },
    Case {
        tool: "docker config.json (compact, identity token)",
        text: r#"{"auths":{"registry.example.com":{"auth":"cm9ib3Q6OXFXZXJ0eTEyMw==","identitytoken":"c2VjcmV0LWlkZW50aXR5LTg4MjE3NQ"}}}"#,
        secrets: &["cm9ib3Q6OXFXZXJ0eTEyMw==", "c2VjcmV0LWlkZW50aXR5LTg4MjE3NQ"],
        near_miss: r#"{"auths":{"registry.example.com":{}},"credHelpers":{"gcr.io":"gcloud"}}"#,
    },
    Case {
        tool: "docker config.json (yaml-ish dump)",
        text: "auths:\n  quay.io:\n    auth: cXVheXVzZXI6UXVheVBhc3MyMDI0IQ==\n",
        secrets: &["cXVheXVzZXI6UXVheVBhc3MyMDI0IQ=="],
        near_miss: "auths:\n  quay.io: {}\nauth: required\n",
    },
    Case {
        tool: "docker login (command line)",
        text: "docker login --username ci --password Dkr9PassW0rd registry.example.com",
        secrets: &["Dkr9PassW0rd"],
        near_miss: "echo $TOKEN | docker login --username ci --password-stdin registry.example.com",
    },
    // --- package managers ---
    Case {
        tool: ".npmrc (_authToken, _auth, _password)",
        text: "//registry.npmjs.org/:_authToken=3f2a9c1e-7b4d-4e8a-9c21-5d6e7f8a9b0c\n_auth=dXNlcjpOcG1QYXNzMTIz\n//npm.example.com/:_password=TnBtUGFzczEyMw==\n",
        secrets: &[
            "3f2a9c1e-7b4d-4e8a-9c21-5d6e7f8a9b0c",
            "dXNlcjpOcG1QYXNzMTIz",
            "TnBtUGFzczEyMw==",
        ],
        near_miss: "registry=https://registry.npmjs.org/\nalways-auth=true\n//registry.npmjs.org/:_authToken=${NPM_TOKEN}\n",
    },
    Case {
        tool: "pip.conf / pip command line",
        text: "[global]\nindex-url = https://pypi-user:Pyp1Secret@pypi.example.com/simple\n",
        secrets: &["Pyp1Secret"],
        near_miss: "[global]\nindex-url = https://pypi.org/simple\ntimeout = 60\n",
    },
    Case {
        tool: ".pypirc",
        text: "[pypi]\nusername = __token__\npassword = pypi-AgEIcHlwaS5vcmcCJGE0ZDFmNmYxLTRiYzItNDQ1Ny04ZTM1LTdmY2U2YjQwZmUxNgACKlszLCJlZjBm\n",
        secrets: &[
            "pypi-AgEIcHlwaS5vcmcCJGE0ZDFmNmYxLTRiYzItNDQ1Ny04ZTM1LTdmY2U2YjQwZmUxNgACKlszLCJlZjBm",
        ],
        near_miss: "[distutils]\nindex-servers =\n    pypi\n[pypi]\nusername = __token__\nrepository = https://upload.pypi.org/legacy/\n",
    },
    Case {
        tool: "PyPI token in free text",
        text: "uploading with pypi-AgEIcHlwaS5vcmcCJDk2ZjE0YjkxLWI1ZTEtNGI0Yi1hZDFhLTQ2ZjU3YjA0ZjE2MQACJXsicGVy",
        secrets: &[
            "pypi-AgEIcHlwaS5vcmcCJDk2ZjE0YjkxLWI1ZTEtNGI0Yi1hZDFhLTQ2ZjU3YjA0ZjE2MQACJXsicGVy",
        ],
        near_miss: "installing pypi-simple-index 1.2 from pypi-mirror",
    },
    Case {
        tool: "Maven settings.xml",
        text: "<servers>\n  <server>\n    <id>nexus</id>\n    <username>deployer</username>\n    <password>{COQLCE6DU6GtcS5P=}</password>\n    <passphrase>Mvn9Phrase</passphrase>\n  </server>\n</servers>",
        secrets: &["{COQLCE6DU6GtcS5P=}", "Mvn9Phrase"],
        near_miss: "<server>\n  <id>nexus</id>\n  <username>deployer</username>\n  <password>${env.NEXUS_PASSWORD}</password>\n  <privateKey>${user.home}/.ssh/id_rsa</privateKey>\n</server>",
    },
    Case {
        tool: "gradle.properties",
        text: "ossrhUsername=acme\nossrhPassword=Gr4dlePw!\nsigning.password=S1gnMe\nsystemProp.https.proxyPassword=Pr0xyPw\ngradle.publish.secret=Q7fKp2LmN9xRt4Vw\n",
        secrets: &["Gr4dlePw!", "S1gnMe", "Pr0xyPw", "Q7fKp2LmN9xRt4Vw"],
        near_miss: "org.gradle.jvmargs=-Xmx2g\nsigning.keyId=24875D73\nsigning.secretKeyRingFile=/home/ci/.gnupg/secring.gpg\n",
    },
    Case {
        tool: "NuGet.config",
        text: "<packageSourceCredentials>\n  <Contoso>\n    <add key=\"Username\" value=\"ci@contoso.com\" />\n    <add key=\"ClearTextPassword\" value=\"NuG3tPassw0rd\" />\n  </Contoso>\n</packageSourceCredentials>\n<apikeys><add key=\"https://www.nuget.org\" value=\"oy2k7xjqv3abcdq5nz2vrt4ml8p0wefgh1ijkl9mnop6qr\" /></apikeys>",
        secrets: &["NuG3tPassw0rd"],
        near_miss: "<packageSources>\n  <add key=\"nuget.org\" value=\"https://api.nuget.org/v3/index.json\" protocolVersion=\"3\" />\n  <add key=\"ValidAuthenticationTypes\" value=\"basic\" />\n</packageSources>",
    },
    Case {
        tool: "NuGet API key (command line)",
        text: "dotnet nuget push pkg.nupkg --api-key oy2k7xjqv3abcdq5nz2vrt4ml8p0wefgh1ijkl9mnop6q --source nuget.org",
        secrets: &["oy2k7xjqv3abcdq5nz2vrt4ml8p0wefgh1ijkl9mnop6q"],
        near_miss: "dotnet nuget push pkg.nupkg --source nuget.org --skip-duplicate",
    },
    Case {
        tool: "Cargo credentials.toml",
        text: "[registry]\ntoken = \"cioAbC1dEf2GhI3jKl4MnO5pQr6StU7vWx\"\n[registries.internal]\ntoken = \"Bearer 9f8e7d6c5b4a39281706\"\n",
        secrets: &["cioAbC1dEf2GhI3jKl4MnO5pQr6StU7vWx", "9f8e7d6c5b4a39281706"],
        near_miss: "[registry]\ndefault = \"crates-io\"\nglobal-credential-providers = [\"cargo:token\"]\n",
    },
    Case {
        tool: "RubyGems credentials",
        text: "---\n:rubygems_api_key: rubygems_4f1c2b9e8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a\n",
        secrets: &["rubygems_4f1c2b9e8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a"],
        near_miss: "---\n:backtrace: false\n:sources:\n- https://rubygems.org/\n",
    },
    Case {
        tool: "Composer auth.json (compact)",
        text: r#"{"http-basic":{"repo.example.org":{"username":"acme","password":"C0mposerPw"}},"github-oauth":{"github.com":"ghp_Rk7mZ2xQ9vL4pN8sT1wY6bC3dF5gH0jK2aE9"},"bearer":{"repo.example.org":"Qm9yZWFsVG9rZW4xMjM0NTY3"}}"#,
        secrets: &[
            "C0mposerPw",
            "ghp_Rk7mZ2xQ9vL4pN8sT1wY6bC3dF5gH0jK2aE9",
            "Qm9yZWFsVG9rZW4xMjM0NTY3",
        ],
        near_miss: r#"{"http-basic":{},"github-protocols":["https"],"bearer":{}}"#,
    },
    Case {
        tool: "Composer auth.json (pretty, host entries on their own lines)",
        text: "{\n    \"github-oauth\": {\n        \"github.example.com\": \"Gh0authT0kenV4lue9921\"\n    },\n    \"bearer\": {\n        \"repo.example.org\": \"Qm9yZWFsVG9rZW4xMjM0NTY3\",\n        \"packages.example.net\": \"Pk9BearerT0ken55\"\n    }\n}\n",
        secrets: &[
            "Gh0authT0kenV4lue9921",
            "Qm9yZWFsVG9rZW4xMjM0NTY3",
            "Pk9BearerT0ken55",
        ],
        near_miss: "{\n    \"github-oauth\": {\n    },\n    \"github-domains\": [\n        \"github.example.com\"\n    ],\n    \"bearer\": {}\n}\n",
    },
    // --- cloud CLIs ---
    Case {
        tool: "AWS credentials (INI)",
        text: "[default]\naws_access_key_id = AKIAZ7Q3NP4XKLMW2E5R\naws_secret_access_key = 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\naws_session_token = IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6\n",
        secrets: &[
            "AKIAZ7Q3NP4XKLMW2E5R",
            "q8Hk2LmPz4Rt7Vw9Xy1Ab3Cd5Ef6Gh8Ij0Kl2Mn4",
            "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6",
        ],
        near_miss: "[profile dev]\nregion = eu-west-1\noutput = json\nrole_arn = arn:aws:iam::123456789012:role/dev\ncredential_process = /usr/local/bin/aws-vault exec dev --json\n",
    },
    Case {
        tool: "gcloud authorized_user (application default credentials)",
        text: "{\n  \"client_id\": \"764086051850-6qr4p6gpi6hn506pt8ejuq83di341hur.apps.googleusercontent.com\",\n  \"client_secret\": \"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\",\n  \"refresh_token\": \"1//0gHq8Lk2Pm9Rt7VwCgYIARAAGBASNwF-L9IrX1y3Ab5Cd6Ef8Gh0Ij2\",\n  \"type\": \"authorized_user\"\n}",
        secrets: &[
            "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",
            "1//0gHq8Lk2Pm9Rt7VwCgYIARAAGBASNwF-L9IrX1y3Ab5Cd6Ef8Gh0Ij2",
        ],
        near_miss: "{\n  \"type\": \"service_account\",\n  \"project_id\": \"acme-prod\",\n  \"token_uri\": \"https://oauth2.googleapis.com/token\",\n  \"auth_provider_x509_cert_url\": \"https://www.googleapis.com/oauth2/v1/certs\"\n}",
    },
    Case {
        tool: "Azure Service Bus / Event Hubs connection string",
        text: "Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=q3Lk8Pm2Rt7Vw9Xy1Ab3Cd5Ef6Gh8Ij0Kl2Mn4Op6=",
        secrets: &["q3Lk8Pm2Rt7Vw9Xy1Ab3Cd5Ef6Gh8Ij0Kl2Mn4Op6="],
        near_miss: "Endpoint=sb://acme.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;EntityPath=orders",
    },
    Case {
        tool: "Azure Cosmos DB connection string in appsettings.json",
        text: r#"{"CosmosDb":{"ConnectionString":"AccountEndpoint=https://acme.documents.azure.com:443/;AccountKey=Zk9LmP2qR7tV4wX8yA1bC3dE5fG6hI8jK0lM2nO4pQ6rS8tU0vW2xY4zA6bC8dE0fG2hI4jK6lM8nO0pQ==;"}}"#,
        secrets: &[
            "Zk9LmP2qR7tV4wX8yA1bC3dE5fG6hI8jK0lM2nO4pQ6rS8tU0vW2xY4zA6bC8dE0fG2hI4jK6lM8nO0pQ==",
        ],
        near_miss: r#"{"CosmosDb":{"AccountEndpoint":"https://acme.documents.azure.com:443/","DatabaseName":"orders"}}"#,
    },
    Case {
        tool: "DigitalOcean doctl config.yaml and token",
        text: "access-token: dop_v1_4f1c2b9e8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e\ncontext: default\n",
        secrets: &["dop_v1_4f1c2b9e8d7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e"],
        near_miss: "context: default\noutput: text\napi-url: https://api.digitalocean.com\n",
    },
    Case {
        tool: "DigitalOcean token in free text",
        text: "using doo_v1_9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b for oauth",
        secrets: &["doo_v1_9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b"],
        near_miss: "droplet dop_v1 created in region nyc3",
    },
    // --- Kubernetes and Helm ---
    Case {
        tool: "kubeconfig users",
        text: "users:\n- name: admin\n  user:\n    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM4akNDQWRxZ0F3SUJBZ0lJ\n    client-key-data: LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlFb3dJQkFBS0NBUUVB\n- name: ci\n  user:\n    token: abcdef.0123456789abcdef\n- name: basic\n  user:\n    username: admin\n    password: Kub3Pass!\n",
        secrets: &[
            "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQpNSUlFb3dJQkFBS0NBUUVB",
            "abcdef.0123456789abcdef",
            "Kub3Pass!",
        ],
        near_miss: "clusters:\n- cluster:\n    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM4akNDQWRxZ0F3SUJBZ0lJ\n    server: https://10.0.0.1:6443\n  name: prod\n",
    },
    Case {
        tool: "kubeconfig auth-provider",
        text: "    auth-provider:\n      config:\n        access-token: ya29.a0AfH6SMBq8Lk2Pm9Rt7Vw1Xy3Ab5Cd6Ef8Gh0Ij2\n        refresh-token: 1//0gHq8Lk2Pm9Rt7VwCgYIARAAGBASNwF\n        client-secret: Zq8Lk2Pm9Rt7Vw1Xy3Ab5\n",
        secrets: &[
            "ya29.a0AfH6SMBq8Lk2Pm9Rt7Vw1Xy3Ab5Cd6Ef8Gh0Ij2",
            "1//0gHq8Lk2Pm9Rt7VwCgYIARAAGBASNwF",
            "Zq8Lk2Pm9Rt7Vw1Xy3Ab5",
        ],
        near_miss: "    auth-provider:\n      name: oidc\n      config:\n        idp-issuer-url: https://accounts.example.com\n        client-id: kubernetes\n",
    },
    Case {
        tool: "Helm repositories.yaml and command line",
        text: "repositories:\n- name: internal\n  url: https://charts.example.com\n  username: helm\n  password: H3lmRepoPw\nhelm repo add internal https://charts.example.com --username helm --password H3lmCl1Pw\n",
        secrets: &["H3lmRepoPw", "H3lmCl1Pw"],
        near_miss: "repositories:\n- name: bitnami\n  url: https://charts.bitnami.com/bitnami\n  pass_credentials_all: false\n",
    },
    // --- Terraform and Vault ---
    Case {
        tool: "Terraform .terraformrc (HCL)",
        text: "credentials \"app.terraform.io\" {\n  token = \"xq7Lk2Pm9Rt7Vw.atlasv1.4fZq8Lk2Pm9Rt7Vw1Xy3Ab5Cd6Ef8Gh0Ij2Kl4Mn6Op8Qr0St2Uv4Wx6Yz8Ab0Cd2Ef4Gh6\"\n}\n",
        secrets: &[
            "xq7Lk2Pm9Rt7Vw.atlasv1.4fZq8Lk2Pm9Rt7Vw1Xy3Ab5Cd6Ef8Gh0Ij2Kl4Mn6Op8Qr0St2Uv4Wx6Yz8Ab0Cd2Ef4Gh6",
        ],
        near_miss: "plugin_cache_dir = \"$HOME/.terraform.d/plugin-cache\"\ndisable_checkpoint = true\n",
    },
    Case {
        tool: "Terraform credentials.tfrc.json",
        text: r#"{"credentials":{"app.terraform.io":{"token":"Tf9Lk2Pm9Rt7Vw1Xy3Ab5Cd6Ef8Gh0Ij2"}}}"#,
        secrets: &["Tf9Lk2Pm9Rt7Vw1Xy3Ab5Cd6Ef8Gh0Ij2"],
        near_miss: r#"{"credentials":{"app.terraform.io":{}}}"#,
    },
    Case {
        tool: "Vault tokens",
        text: "VAULT_TOKEN=hvs.CAESIJ8Lk2Pm9Rt7Vw1Xy3Ab5Cd6Ef8Gh0Ij2Kl4Mn6Op8Qr0GiEKHGh2cy5ZbnRtQ2xRZk5vZUJMZVBRYzdIT0E\nvault login hvb.AAAAAQJ8Lk2Pm9Rt7Vw1Xy3Ab5Cd6Ef8Gh0Ij2Kl4Mn6Op8Qr0St\n",
        secrets: &[
            "hvs.CAESIJ8Lk2Pm9Rt7Vw1Xy3Ab5Cd6Ef8Gh0Ij2Kl4Mn6Op8Qr0GiEKHGh2cy5ZbnRtQ2xRZk5vZUJMZVBRYzdIT0E",
            "hvb.AAAAAQJ8Lk2Pm9Rt7Vw1Xy3Ab5Cd6Ef8Gh0Ij2Kl4Mn6Op8Qr0St",
        ],
        near_miss: "VAULT_ADDR=https://vault.example.com:8200\nvault status -format=json\n",
    },
    // --- database clients ---
    Case {
        tool: ".pgpass",
        text: "db.example.com:5432:orders:app:Pg9PassW0rd\n*:*:*:replicator:R3pl1cate\n",
        secrets: &["Pg9PassW0rd", "R3pl1cate"],
        near_miss: "2024-05-01 12:00:01 connected to db.example.com:5432 as app\n",
    },
    Case {
        tool: "my.cnf",
        text: "[client]\nuser = root\npassword = \"My5qlR00t\"\n[mysqldump]\npassword=DumpPw9\n",
        secrets: &["My5qlR00t", "DumpPw9"],
        near_miss: "[mysqld]\nvalidate_password.policy = MEDIUM\ndefault_authentication_plugin = caching_sha2_password\n",
    },
    Case {
        tool: "JDBC URLs",
        text: "jdbc:postgresql://db:5432/app?user=app&password=JdbcPg9&ssl=true\njdbc:sqlserver://sql:1433;databaseName=app;user=sa;password=Sq1Server!;encrypt=true\njdbc:oracle:thin:scott/T1ger0ra@//ora.example.com:1521/ORCL\n",
        secrets: &["JdbcPg9", "Sq1Server!", "T1ger0ra"],
        near_miss: "jdbc:postgresql://db:5432/app?ssl=true&sslmode=require\njdbc:oracle:thin:@//ora.example.com:1521/ORCL\n",
    },
    Case {
        tool: "ODBC and ADO.NET connection strings",
        text: "Driver={ODBC Driver 18 for SQL Server};Server=tcp:sql,1433;Uid=app;Pwd=0dbcPw9;\nServer=tcp:acme.database.windows.net,1433;Initial Catalog=app;User ID=sa;Password=Ad0NetPw!;Encrypt=True;",
        secrets: &["0dbcPw9", "Ad0NetPw!"],
        near_miss: "Server=tcp:acme.database.windows.net,1433;Initial Catalog=app;Integrated Security=true;Encrypt=True;",
    },
    Case {
        tool: "MongoDB, Redis, AMQP URIs",
        text: "mongodb+srv://app:M0ngoPw9@cluster0.example.net/app?retryWrites=true\nredis://:R3disPw9@cache:6379/0\namqps://guest:Amqp9Pw@mq.example.com:5671/vhost\n",
        secrets: &["M0ngoPw9", "R3disPw9", "Amqp9Pw"],
        near_miss: "mongodb://cluster0.example.net:27017/app?replicaSet=rs0\nredis://cache:6379/0\n",
    },
    Case {
        tool: "redis.conf",
        text: "bind 127.0.0.1\nrequirepass R3disConfPw9\nmasterauth R3disMaster9\n",
        secrets: &["R3disConfPw9", "R3disMaster9"],
        near_miss: "bind 127.0.0.1\nprotected-mode yes\nport 6379\n",
    },
    // --- VCS and credential helpers ---
    Case {
        tool: ".netrc (one line)",
        text: "machine api.heroku.com login me@example.com password 4f1c2b9e-8d7a-6f5e-4d3c-2b1a0f9e8d7c\n",
        secrets: &["4f1c2b9e-8d7a-6f5e-4d3c-2b1a0f9e8d7c"],
        near_miss: "machine api.heroku.com login me\n",
    },
    Case {
        tool: ".netrc (multi-line)",
        text: "machine git.example.com\n  login builder\n  password N3trcPass9\n",
        secrets: &["N3trcPass9"],
        near_miss: "machine git.example.com\n  login builder\n",
    },
    Case {
        tool: ".git-credentials",
        text: "https://builder:glpat-Xk9Lm2Pq7Rt4Vw8Yz1Ab@gitlab.example.com\n",
        secrets: &["glpat-Xk9Lm2Pq7Rt4Vw8Yz1Ab"],
        near_miss: "https://gitlab.example.com/group/project.git\n",
    },
    // --- CI systems ---
    Case {
        tool: "GitLab runner config.toml",
        text: "[[runners]]\n  name = \"r1\"\n  url = \"https://gitlab.example.com\"\n  token = \"glrt-t3_Xk9Lm2Pq7Rt4Vw8Yz1Ab\"\n",
        secrets: &["glrt-t3_Xk9Lm2Pq7Rt4Vw8Yz1Ab"],
        near_miss: "[[runners]]\n  name = \"r1\"\n  executor = \"docker\"\n",
    },
    Case {
        tool: "GitLab runner registration token",
        text: "gitlab-runner register --registration-token GR1348941Xk9Lm2Pq7Rt4Vw8Yz1Ab",
        secrets: &["GR1348941Xk9Lm2Pq7Rt4Vw8Yz1Ab"],
        near_miss: "gitlab-runner register --non-interactive --executor docker",
    },
    Case {
        tool: "CircleCI and Travis environment",
        text: "CIRCLE_TOKEN=CCIPAT_Xk9Lm2Pq7Rt4Vw8Yz1AbCd_3f2a9c1e7b4d4e8a9c215d6e7f8a9b0c\nTRAVIS_API_TOKEN: Xk9Lm2Pq7Rt4Vw8Yz1AbC\n",
        secrets: &[
            "CCIPAT_Xk9Lm2Pq7Rt4Vw8Yz1AbCd_3f2a9c1e7b4d4e8a9c215d6e7f8a9b0c",
            "Xk9Lm2Pq7Rt4Vw8Yz1AbC",
        ],
        near_miss: "CIRCLE_BRANCH=main\nTRAVIS_BUILD_NUMBER=4821\n",
    },
    // --- SMTP and LDAP ---
    Case {
        tool: "SMTP settings",
        text: "spring.mail.password=SmtpPw9x\nEMAIL_HOST_PASSWORD=Dj4ngoSmtp\nsmtp_pass: Sm7pPass\n",
        secrets: &["SmtpPw9x", "Dj4ngoSmtp", "Sm7pPass"],
        near_miss: "spring.mail.host=smtp.example.com\nspring.mail.port=587\nsmtp_auth: login\n",
    },
    Case {
        tool: "LDAP bind passwords",
        text: "binddn cn=nslcd,dc=example,dc=com\nbindpw Ld4pBindPw\nrootpw {SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\nldap_default_authtok = Sssd9Pw\nldapsearch -x -D cn=admin,dc=example,dc=com -w Ld4pCl1Pw -b dc=example,dc=com\n",
        secrets: &[
            "Ld4pBindPw",
            "{SSHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=",
            "Sssd9Pw",
            "Ld4pCl1Pw",
        ],
        near_miss: "binddn cn=nslcd,dc=example,dc=com\nldapsearch -x -H ldap://ldap -b dc=example,dc=com -W\n",
    },
    // --- Java and .NET configuration ---
    Case {
        tool: "Spring application.properties / application.yml",
        text: "spring.datasource.url=jdbc:postgresql://db/app\nspring.datasource.password=Spr1ngPw\nspring:\n  datasource:\n    password: Spr1ngYml\n",
        secrets: &["Spr1ngPw", "Spr1ngYml"],
        near_miss: "spring.datasource.password=${DB_PASSWORD}\nspring.datasource.username=app\n",
    },
    Case {
        tool: "web.config connectionStrings and appSettings",
        text: "<connectionStrings>\n  <add name=\"Default\" connectionString=\"Data Source=sql;Initial Catalog=app;User Id=app;Password=W3bConfPw;\" providerName=\"System.Data.SqlClient\" />\n</connectionStrings>\n<appSettings>\n  <add key=\"StripeSecretKey\" value=\"Xk9Lm2Pq7Rt4Vw8Yz1AbCd\" />\n</appSettings>",
        secrets: &["W3bConfPw", "Xk9Lm2Pq7Rt4Vw8Yz1AbCd"],
        near_miss: "<appSettings>\n  <add key=\"webpages:Version\" value=\"3.0.0.0\" />\n  <add key=\"ClientValidationEnabled\" value=\"true\" />\n</appSettings>",
    },
    Case {
        tool: "appsettings.json (pretty)",
        text: "{\n  \"ConnectionStrings\": {\n    \"Default\": \"Server=sql;Database=app;User Id=app;Password=Ap9SettingsPw;\"\n  },\n  \"Jwt\": {\n    \"SigningSecret\": \"Xk9Lm2Pq7Rt4Vw8Yz1AbCdEf\"\n  }\n}",
        secrets: &["Ap9SettingsPw", "Xk9Lm2Pq7Rt4Vw8Yz1AbCdEf"],
        near_miss: "{\n  \"Logging\": {\n    \"LogLevel\": { \"Default\": \"Information\" }\n  },\n  \"AllowedHosts\": \"*\"\n}",
    },
    // --- .env files and command lines ---
    Case {
        tool: ".env",
        text: "DATABASE_URL=postgres://app:Env9DbPw@db:5432/app\nexport SECRET_KEY_BASE=\"4f1c2b9e8d7a6f5e4d3c2b1a0f9e8d7c\"\nSENDGRID_API_KEY=SG.Xk9Lm2Pq7Rt4Vw8Yz1AbCd.Ef3Gh5Ij7Kl9Mn1Op3Qr5St7Uv9Wx1Yz3Ab5Cd7Ef9\nMAILGUN_PASSWORD='Ma1lgunPw'\n",
        secrets: &[
            "Env9DbPw",
            "4f1c2b9e8d7a6f5e4d3c2b1a0f9e8d7c",
            "SG.Xk9Lm2Pq7Rt4Vw8Yz1AbCd.Ef3Gh5Ij7Kl9Mn1Op3Qr5St7Uv9Wx1Yz3Ab5Cd7Ef9",
            "Ma1lgunPw",
        ],
        near_miss: "NODE_ENV=production\nPORT=3000\nLOG_LEVEL=info\nPASSWORD_MIN_LENGTH=12\n",
    },
    Case {
        tool: "command-line password flags",
        text: "app --db-password=Cl1Pass9 --api-token Xk9Lm2Pq7Rt4Vw8Yz1AbC\nPGPASSWORD=PgEnv9Pw psql -h db -U app\n",
        secrets: &["Cl1Pass9", "Xk9Lm2Pq7Rt4Vw8Yz1AbC", "PgEnv9Pw"],
        near_miss: "app --password-file /run/secrets/db --token-ttl 3600\npsql -h db -U app -W\n",
    },
    Case {
        tool: "HTTP basic and proxy authorization (base64)",
        text: "Proxy-Authorization: Basic cHJveHk6UHIweHlQYXNz\ncurl -H \"Authorization: Basic YWRtaW46QWRtMW5QYXNz\" https://api.example.com\n",
        secrets: &["cHJveHk6UHIweHlQYXNz", "YWRtaW46QWRtMW5QYXNz"],
        near_miss: "WWW-Authenticate: Basic realm=\"api\"\n",
    },
];

#[test]
fn every_catalogued_credential_is_redacted() {
    let mut failures = Vec::new();
    for case in CASES {
        let spans = ENGINE.find_spans(case.text);
        for secret in case.secrets {
            let Some(start) = case.text.find(secret) else {
                failures.push(format!(
                    "{}: example does not contain {secret:?}",
                    case.tool
                ));
                continue;
            };
            let end = start + secret.len();
            if !spans.iter().any(|s| s.start <= start && end <= s.end) {
                failures.push(format!("{}: {secret:?} not covered", case.tool));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn catalogue_near_misses_are_left_alone() {
    let mut failures = Vec::new();
    for case in CASES {
        let spans = ENGINE.find_spans(case.near_miss);
        let secrets: Vec<String> = spans
            .iter()
            .filter(|s| s.kind.is_secret())
            .map(|s| format!("{}={:?}", s.kind, &case.near_miss[s.start..s.end]))
            .collect();
        if !secrets.is_empty() {
            failures.push(format!("{}: {}", case.tool, secrets.join(", ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Examples for the rules added with the catalogue, in the format of `super::RULE_EXAMPLES`:
/// (rule id, text, value the rule alone must cover, near miss the rule alone must not flag).
pub(super) const RULE_EXAMPLES: &[(&str, &str, &str, &str)] = &[
    (
        "pypi-token",
        "password = pypi-AgEIcHlwaS5vcmcCJGE0ZDFmNmYxLTRiYzItNDQ1Ny04ZTM1LTdmY2U2YjQwZmUxNgAC",
        "pypi-AgEIcHlwaS5vcmcCJGE0ZDFmNmYxLTRiYzItNDQ1Ny04ZTM1LTdmY2U2YjQwZmUxNgAC",
        "pip install pypi-AgE-helper",
    ),
    (
        "vendor-token-prefix",
        "VAULT_TOKEN=hvs.CAESIJ8Lk2Pm9Rt7Vw1Xy3Ab5Cd6Ef8Gh0Ij2",
        "hvs.CAESIJ8Lk2Pm9Rt7Vw1Xy3Ab5Cd6Ef8Gh0Ij2",
        "hvs.example.com hf_model dapi-v2 SG.small",
    ),
    (
        "config-directive-password",
        "requirepass R3disConfPw9",
        "R3disConfPw9",
        "# requirepass is off",
    ),
    (
        "netrc-password",
        "machine h.example.com login me password N3trcPw",
        "N3trcPw",
        "password changed",
    ),
    (
        "pgpass-line",
        "db:5432:app:app:Pg9Pw",
        "Pg9Pw",
        "listening on db:5432",
    ),
    (
        "user-slash-password",
        "jdbc:oracle:thin:scott/T1ger@//ora:1521/ORCL",
        "T1ger",
        "jdbc:oracle:thin:@//ora:1521/ORCL",
    ),
    (
        "ldap-cli-password",
        "ldapsearch -x -D cn=admin -w Ld4pPw -b dc=x",
        "Ld4pPw",
        "ldapsearch -x -W -b dc=x",
    ),
    (
        "auth-key",
        r#"{"auths":{"r.io":{"auth":"ZGVwbG95OlM0bXBsZQ=="}}}"#,
        "ZGVwbG95OlM0bXBsZQ==",
        r#"{"auth":"basic","auths":{}}"#,
    ),
];
