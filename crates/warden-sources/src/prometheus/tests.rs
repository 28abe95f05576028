use super::response::{self, Envelope};
use super::*;

fn source(url: &str) -> PrometheusSource {
    PrometheusSource {
        url: url.into(),
        ..Default::default()
    }
}

#[test]
fn urls_must_be_https_or_loopback_http_without_userinfo() {
    for ok in [
        "https://prometheus.example:9090",
        "https://mimir.example/prometheus",
        "http://127.0.0.1:9090",
        "http://127.3.4.5:9090/",
        "http://[::1]:9090",
        "https://10.0.0.7:9090",
        "",
    ] {
        assert_eq!(check_source(&source(ok)), Ok(()), "{ok}");
    }
    for (bad, why) in [
        ("http://prometheus.example:9090", "must be https://"),
        ("http://localhost:9090", "must be https://"),
        ("http://10.0.0.7:9090", "must be https://"),
        ("ftp://prometheus.example", "scheme \"ftp\""),
        ("prometheus.example:9090", "scheme"),
        ("not a url", "not a URL"),
        (
            "https://alice:hunter2@prometheus.example",
            "must not contain a user",
        ),
        (
            "https://alice@prometheus.example",
            "must not contain a user",
        ),
        ("https://prometheus.example/?x=1", "query"),
        ("https://prometheus.example/#x", "fragment"),
        ("https://169.254.169.254/", "link-local"),
        ("https://[fe80::1]/", "link-local"),
        ("https://0.0.0.0/", "unspecified"),
    ] {
        let err = check_source(&source(bad)).expect_err(bad);
        assert!(err.contains(why), "{bad}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}

#[test]
fn ca_and_credentials_id_are_checked() {
    let mut s = source("https://prometheus.example");
    s.ca_pem = "not pem".into();
    assert!(
        check_source(&s)
            .unwrap_err()
            .contains("holds no certificate")
    );
    s.ca_pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into();
    let err = check_source(&s).unwrap_err();
    assert!(err.starts_with("prometheus.ca_pem certificate 1"), "{err}");
    s.ca_pem.clear();
    s.credentials_id = "../../etc".into();
    assert!(check_source(&s).unwrap_err().contains("credentials_id"));
    let stray = PrometheusSource {
        credentials_id: "abc".into(),
        ..Default::default()
    };
    assert!(check_source(&stray).unwrap_err().contains("url is empty"));
}

#[test]
fn credentials_never_appear_in_errors() {
    use warden_proto::common::v1::GitHubApp;
    let key = "-----BEGIN PRIVATE KEY-----secret-key-----END PRIVATE KEY-----";
    let creds = SourceCredentials {
        credentials: Some(Credentials::GithubApp(GitHubApp {
            app_id: 1,
            installation_id: 2,
            private_key_pem: key.into(),
        })),
    };
    let err = PrometheusClient::new(
        &source("https://prometheus.example"),
        Some(&creds),
        Duration::from_secs(5),
    )
    .unwrap_err();
    assert!(matches!(err, SourceError::Config(_)));
    assert!(!err.to_string().contains("secret-key"), "{err}");
    let token = SourceCredentials {
        credentials: Some(Credentials::BearerToken("tok-s3cret".into())),
    };
    let client = PrometheusClient::new(
        &source("https://prometheus.example"),
        Some(&token),
        Duration::from_secs(5),
    )
    .unwrap();
    assert!(!format!("{client:?}").contains("tok-s3cret"));
    let named = PrometheusSource {
        credentials_id: "c1".into(),
        ..source("https://prometheus.example")
    };
    let err = PrometheusClient::new(&named, None, Duration::from_secs(5)).unwrap_err();
    assert!(
        err.to_string().contains("no credentials were given"),
        "{err}"
    );
}

#[test]
fn endpoints_keep_the_base_path() {
    let c = PrometheusClient::new(
        &source("https://mimir.example/prometheus/"),
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(
        c.endpoint("api/v1/query").as_str(),
        "https://mimir.example/prometheus/api/v1/query"
    );
    let c = PrometheusClient::new(
        &source("http://127.0.0.1:9090"),
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    assert_eq!(
        c.endpoint("api/v1/query").as_str(),
        "http://127.0.0.1:9090/api/v1/query"
    );
}

#[test]
fn the_step_bounds_the_points() {
    let points = |start: i64, end: i64, step: u64| (end - start) as u64 / step + 1;
    for (start, end, max) in [
        (0, 3_600_000, 60),
        (0, 3_600_000, 1),
        (0, 3_600_000, 2),
        (1_000, 1_000, 5),
        (0, 10_000, 1000),
        (0, 86_400_000 * 30, 100_000),
        (17, 60_017, 7),
    ] {
        let step = step_ms(start, end, max).unwrap();
        assert!(step >= 1000 && step.is_multiple_of(1000), "{step}");
        let n = points(start, end, step);
        assert!(
            n <= max as u64 && n <= MAX_POINTS_PER_SERIES as u64,
            "{start} {end} {max}: {n}"
        );
    }
    // Not coarser than needed: an hour at 61 points is one a minute.
    assert_eq!(step_ms(0, 3_600_000, 61).unwrap(), 60_000);
    assert_eq!(step_ms(0, 10_000, 1000).unwrap(), 1000);
    assert!(matches!(step_ms(5, 4, 10), Err(SourceError::Arguments(_))));
    assert!(matches!(step_ms(0, 4, 0), Err(SourceError::Arguments(_))));
}

#[test]
fn seconds_are_decimal() {
    assert_eq!(seconds(1_700_000_000_123), "1700000000.123");
    assert_eq!(seconds(5), "0.005");
    assert_eq!(seconds(-1500), "-1.500");
}

fn parse(body: &str, max_series: usize, max_points: usize) -> QueryResult {
    match response::envelope::<response::Data>(body.as_bytes()).unwrap() {
        Envelope::Success { data, .. } => {
            response::into_result(data, max_series, max_points).unwrap()
        }
        Envelope::Error { error, .. } => panic!("{error}"),
    }
}

#[test]
fn matrix_values_including_nan_and_infinities() {
    let r = parse(
        r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"__name__":"up","job":"a"},"values":[[1700000000.5,"1"],[1700000001,"NaN"]]},
            {"metric":{"job":"b"},"values":[[1700000000,"+Inf"],[1700000001,"-Inf"],[1700000002,"2.5e-3"]]}
        ]}}"#,
        10,
        10,
    );
    assert_eq!(r.kind, ResultKind::Matrix);
    assert_eq!(r.total_series, 2);
    assert!(!r.truncated);
    assert_eq!(r.series[0].labels["job"], "a");
    assert_eq!(r.series[0].points[0], (1_700_000_000_500, 1.0));
    assert!(r.series[0].points[1].1.is_nan());
    assert_eq!(r.series[1].points[0].1, f64::INFINITY);
    assert_eq!(r.series[1].points[1].1, f64::NEG_INFINITY);
    assert_eq!(r.series[1].points[2].1, 0.0025);
}

#[test]
fn series_and_points_over_the_caps_are_cut_and_flagged() {
    let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
        {"metric":{"i":"1"},"values":[[1,"1"],[2,"2"],[3,"3"]]},
        {"metric":{"i":"2"},"values":[[1,"1"]]},
        {"metric":{"i":"3"},"values":[[1,"1"]]}]}}"#;
    let r = parse(body, 2, 10);
    assert_eq!((r.series.len(), r.total_series, r.truncated), (2, 3, true));
    let r = parse(body, 10, 2);
    assert_eq!(r.series[0].points.len(), 2);
    assert!(r.truncated);
    assert!(!parse(body, 3, 3).truncated);
}

#[test]
fn vector_scalar_and_empty() {
    let r = parse(
        r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"b"},"value":[10,"3"]}]}}"#,
        5,
        1,
    );
    assert_eq!(r.kind, ResultKind::Vector);
    assert_eq!(r.series[0].points, vec![(10_000, 3.0)]);
    let r = parse(
        r#"{"status":"success","data":{"resultType":"scalar","result":[10,"NaN"]}}"#,
        5,
        1,
    );
    assert_eq!(r.kind, ResultKind::Scalar);
    assert!(r.series[0].labels.is_empty());
    assert!(r.series[0].points[0].1.is_nan());
    let r = parse(
        r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
        5,
        1,
    );
    assert!(r.series.is_empty() && !r.truncated);
}

#[test]
fn malformed_answers_are_named() {
    let data = |body: &str| match response::envelope::<response::Data>(body.as_bytes()) {
        Ok(Envelope::Success { data, .. }) => response::into_result(data, 5, 5).map(|_| ()),
        Ok(Envelope::Error { .. }) => Ok(()),
        Err(e) => Err(e),
    };
    assert!(data("<html>").is_err());
    assert!(
        data(r#"{"status":"success"}"#)
            .unwrap_err()
            .contains("no data")
    );
    assert!(
        data(r#"{"status":"maybe","data":null}"#)
            .unwrap_err()
            .contains("unknown status")
    );
    let e = data(r#"{"status":"success","data":{"resultType":"scalar","result":[1,"x"]}}"#)
        .unwrap_err();
    assert!(e.contains("not a number"), "{e}");
    let e = data(r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#)
        .unwrap_err();
    assert!(e.contains("string"), "{e}");
}

#[test]
fn api_errors_become_clear_errors() {
    let body = r#"{"status":"error","errorType":"bad_data","error":"1:6: parse error: unclosed left parenthesis"}"#;
    let Envelope::Error { error_type, error } =
        response::envelope::<response::Data>(body.as_bytes()).unwrap()
    else {
        panic!("an error envelope")
    };
    let err = response::api_error(&error_type, error);
    assert_eq!(
        err.to_string(),
        "the query is invalid: 1:6: parse error: unclosed left parenthesis"
    );
    let err = response::api_error("timeout", "query timed out in expression evaluation".into());
    assert_eq!(
        err.to_string(),
        "Prometheus could not run the query (timeout): query timed out in expression evaluation"
    );
}
