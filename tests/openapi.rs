//! The sandbox answers as Cloudflare's own OpenAPI description says: every
//! response body of every operation it serves is checked against the schema
//! the spec gives for that operation and status. The spec file is a verbatim
//! copy of `shared/cloudflare/openapi-client-certificates.json`.

use serde_json::Value;

use cfrevoke::sandbox::{Sandbox, SandboxConfig};

const SPEC: &str = include_str!("data/openapi-client-certificates.json");

/// A deliberately small validator for the keywords this spec uses: `$ref`,
/// `type`, `nullable`, `enum`, `required`, `properties`, `items`, `minimum`.
struct Spec(Value);

impl Spec {
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let path = reference.trim_start_matches("#/").split('/');
                let target = path.fold(&self.0, |node, key| &node[key]);
                assert!(!target.is_null(), "dangling {reference}");
                self.resolve(target)
            }
            None => schema,
        }
    }

    fn check(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if value.is_null() && schema["nullable"] == true {
            return;
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                errors.push(format!("{at}: {value} not in {allowed:?}"));
            }
        }
        let type_ok = match schema.get("type").and_then(Value::as_str) {
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            Some("string") => value.is_string(),
            Some("boolean") => value.is_boolean(),
            Some("integer") => value.is_i64() || value.is_u64(),
            Some("number") => value.is_number(),
            _ => true,
        };
        if !type_ok {
            errors.push(format!("{at}: {value} is not of type {}", schema["type"]));
            return;
        }
        if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_f64), value.as_f64()) {
            if n < min {
                errors.push(format!("{at}: {n} below minimum {min}"));
            }
        }
        for key in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            let key = key.as_str().unwrap();
            if value.get(key).is_none() {
                errors.push(format!("{at}: missing required {key}"));
            }
        }
        if let (Some(props), Some(object)) = (schema.get("properties").and_then(Value::as_object), value.as_object()) {
            for (key, sub) in object {
                if let Some(sub_schema) = props.get(key) {
                    self.check(sub_schema, sub, &format!("{at}.{key}"), errors);
                }
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (i, item) in array.iter().enumerate() {
                self.check(items, item, &format!("{at}[{i}]"), errors);
            }
        }
    }

    /// The schema for `method path` answering `status`: "200" or "4XX".
    fn response_schema(&self, path: &str, method: &str, status: u16) -> &Value {
        let class = if status == 200 { "200".to_string() } else { format!("{}XX", status / 100) };
        let response = &self.0["paths"][path][method]["responses"][class.as_str()];
        assert!(!response.is_null(), "the spec has no {class} answer for {method} {path}");
        &response["content"]["application/json"]["schema"]
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_answer_matches_the_official_schema() {
    let spec = Spec(serde_json::from_str(SPEC).unwrap());
    let sandbox = Sandbox::start(SandboxConfig { generate: 8, zones: 2, ..SandboxConfig::default() }).await.unwrap();
    let (zone, cert) = sandbox.certificates()[0];
    let client = reqwest::Client::new();
    let one = format!("/zones/{zone}/client_certificates/{cert}");
    let unknown = format!("/zones/{zone}/client_certificates/{:032x}", 7);
    let list = format!("/zones/{zone}/client_certificates");
    let collection = "/zones/{zone_id}/client_certificates";
    let single = "/zones/{zone_id}/client_certificates/{client_certificate_id}";
    let calls = [
        ("get", collection, format!("{list}?status=active&page=1&per_page=5"), None),
        ("get", collection, format!("{list}?status=all&page=9"), None),
        ("get", collection, format!("{list}?per_page=51"), None),
        ("get", single, one.clone(), None),
        ("get", single, unknown.clone(), None),
        ("delete", single, one.clone(), None),
        ("patch", single, one.clone(), Some(r#"{"reactivate": true}"#)),
        ("patch", single, one.clone(), Some("not json")),
        ("delete", single, unknown, None),
    ];
    let mut errors = vec![];
    let mut statuses = vec![];
    for (method, template, path, body) in calls {
        let mut request = client
            .request(method.to_uppercase().parse().unwrap(), format!("{}{path}", sandbox.base_url()))
            .bearer_auth(sandbox.token());
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        statuses.push(status);
        assert_eq!(response.headers()["content-type"], "application/json");
        let value: Value = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        spec.check(spec.response_schema(template, method, status), &value, &format!("{method} {path}"), &mut errors);
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert_eq!(statuses, [200, 200, 400, 200, 404, 200, 200, 400, 404]);

    // The spec's status enum and paging limits are what the sandbox accepts.
    let params = &spec.0["paths"][collection]["get"]["parameters"];
    let param = |name: &str| params.as_array().unwrap().iter().find(|p| p["name"] == name).unwrap()["schema"].clone();
    for status in param("status")["enum"].as_array().unwrap() {
        let url = format!("{}{list}?status={}", sandbox.base_url(), status.as_str().unwrap());
        let response = client.get(url).bearer_auth(sandbox.token()).send().await.unwrap();
        assert_eq!(response.status(), 200, "status={status}");
    }
    let per_page = param("per_page");
    for (n, ok) in
        [(per_page["minimum"].as_u64().unwrap(), true), (per_page["maximum"].as_u64().unwrap(), true), (4, false)]
    {
        let url = format!("{}{list}?per_page={n}", sandbox.base_url());
        let response = client.get(url).bearer_auth(sandbox.token()).send().await.unwrap();
        assert_eq!(response.status() == 200, ok, "per_page={n}");
    }
    sandbox.shutdown().await;
}

#[test]
fn the_validator_catches_off_spec_answers() {
    let spec = Spec(serde_json::from_str(SPEC).unwrap());
    let schema = spec.response_schema("/zones/{zone_id}/client_certificates/{client_certificate_id}", "delete", 200);
    let bad = serde_json::json!({
        "success": "yes", "errors": [{"code": 12, "message": "x"}],
        "result": {"id": "x", "status": "gone", "validity_days": "ten"}
    });
    let mut errors = vec![];
    spec.check(schema, &bad, "bad", &mut errors);
    for expected in [
        "bad.success",
        "missing required messages",
        "bad.errors[0].code",
        "bad.result.status",
        "bad.result.validity_days",
    ] {
        assert!(errors.iter().any(|e| e.contains(expected)), "{expected} not flagged in {errors:?}");
    }
}
