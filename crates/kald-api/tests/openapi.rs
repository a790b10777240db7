//! The OpenAPI document describes exactly the router's routes.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use common::{fake, matrix};

/// Every (method, path template) of the document.
fn documented() -> BTreeSet<(String, String)> {
    let doc = kald_api::openapi();
    let mut ops = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        let methods = [
            ("GET", item.get.is_some()),
            ("POST", item.post.is_some()),
            ("PUT", item.put.is_some()),
            ("PATCH", item.patch.is_some()),
            ("DELETE", item.delete.is_some()),
            ("HEAD", item.head.is_some()),
            ("OPTIONS", item.options.is_some()),
            ("TRACE", item.trace.is_some()),
        ];
        for (method, present) in methods {
            if present {
                ops.insert((method.to_owned(), path.clone()));
            }
        }
    }
    ops
}

/// A concrete path for a template.
fn concrete(template: &str) -> String {
    template
        .replace("{login}", "bo")
        .replace("{file}", "kald.css")
}

#[tokio::test]
async fn the_document_lists_every_route_and_nothing_else() {
    // The role matrix exercises every route of the router (each answers as its row expects,
    // never with the fallback); the document must hold exactly those.
    let tested: BTreeSet<(String, String)> = matrix()
        .iter()
        .map(|row| (row.method.to_string(), row.template.to_owned()))
        .collect();
    let documented = documented();
    assert_eq!(
        documented.difference(&tested).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "documented but not in the role matrix"
    );
    assert_eq!(
        tested.difference(&documented).collect::<Vec<_>>(),
        Vec::<&(String, String)>::new(),
        "routed but not documented"
    );

    // No undocumented method on a documented path, and undocumented paths do not exist.
    let fake = fake().await;
    let adam = fake.login("adam").await;
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    for path in paths {
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            if documented.contains(&(method.to_string(), path.clone())) {
                continue;
            }
            let answer = fake
                .call(method.clone(), &concrete(path), Some(&adam), None)
                .await;
            assert_eq!(
                answer.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
        }
    }
    for path in [
        "/api",
        "/api/",
        "/api/agents/bo",
        "/api/me/calls",
        "/api/stats.csv",
        "/admin",
        "/metrics/x",
    ] {
        let answer = fake.call(Method::GET, path, Some(&adam), None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn every_operation_documents_its_responses_and_the_served_document_is_the_same() {
    let doc = kald_api::openapi();
    assert!(
        doc.openapi == utoipa::openapi::OpenApiVersion::Version31
            || doc.to_json().unwrap().contains("\"openapi\":\"3.")
    );
    let json: serde_json::Value = serde_json::from_str(&doc.to_json().unwrap()).unwrap();
    for (path, item) in json["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path}");
            let public = op
                .get("security")
                .is_some_and(|s| s == &serde_json::json!([{}]));
            if !public && !["/agent", "/wallboard", "/records"].contains(&path.as_str()) {
                assert!(
                    responses.contains_key("401"),
                    "{method} {path} documents 401"
                );
            }
            assert!(
                op["description"].is_string() || op["summary"].is_string(),
                "{method} {path}"
            );
        }
    }
    for schema in [
        "Snapshot",
        "LiveView",
        "MyCall",
        "QueueSummary",
        "AgentStatus",
        "LiveCall",
        "Role",
        "ErrorBody",
    ] {
        assert!(
            json["components"]["schemas"].get(schema).is_some(),
            "schema {schema}"
        );
    }
    assert!(json["components"]["schemas"]["LiveCall"]["properties"]
        .get("cpr")
        .is_none());

    let fake = fake().await;
    let anna = fake.login("anna").await;
    let served = fake
        .call(Method::GET, "/api/openapi.json", Some(&anna), None)
        .await;
    assert_eq!(served.status, StatusCode::OK);
    assert_eq!(served.json(), json);
}
