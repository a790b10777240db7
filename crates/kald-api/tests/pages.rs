//! The pages: served with the right types, self-contained (no CDN), and every element the
//! scripts address exists.
#![allow(clippy::unwrap_used)]

mod common;

use axum::http::{header, Method, StatusCode};
use common::fake;

/// The `data-testid`s a script addresses literally (`kald.text("x"` or `[data-testid="x"]`).
fn addressed(script: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for marker in ["kald.text(\"", "[data-testid=\""] {
        for (i, _) in script.match_indices(marker) {
            let rest = &script[i + marker.len()..];
            let id = &rest[..rest.find('"').unwrap()];
            if !id.contains("${") {
                ids.push(id.to_owned());
            }
        }
    }
    ids
}

#[tokio::test]
async fn pages_and_their_assets_are_served_and_consistent() {
    let fake = fake().await;
    let token = fake.login("anna").await;
    for (path, script) in [
        ("/", "login.js"),
        ("/agent", "agent.js"),
        ("/wallboard", "wallboard.js"),
    ] {
        let page = fake.call(Method::GET, path, Some(&token), None).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert_eq!(
            page.headers[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");
        assert!(page.body.contains("<html lang=\"da\">"));
        assert!(
            !page.body.contains("http://") && !page.body.contains("https://"),
            "{path}: no CDN"
        );
        for asset in page.body.split("\"/assets/").skip(1) {
            let name = &asset[..asset.find('"').unwrap()];
            let answer = fake
                .call(Method::GET, &format!("/assets/{name}"), None, None)
                .await;
            assert_eq!(answer.status, StatusCode::OK, "{name}");
            assert!(
                !answer.body.contains("http://") && !answer.body.contains("https://"),
                "{name}"
            );
        }
        let script = fake
            .call(Method::GET, &format!("/assets/{script}"), None, None)
            .await;
        assert_eq!(
            script.headers[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        let ids = addressed(&script.body);
        assert!(!ids.is_empty());
        for id in ids {
            assert!(
                page.body.contains(&format!("data-testid=\"{id}\"")),
                "{path} lacks {id}"
            );
        }
    }
    let css = fake.call(Method::GET, "/assets/kald.css", None, None).await;
    assert_eq!(css.headers[header::CONTENT_TYPE], "text/css; charset=utf-8");
}

#[tokio::test]
async fn the_agent_page_and_wallboard_send_strangers_to_the_log_in_page() {
    let fake = fake().await;
    for path in ["/agent", "/wallboard"] {
        let answer = fake.call(Method::GET, path, None, None).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER);
        assert_eq!(answer.headers[header::LOCATION], "/");
    }
}

#[tokio::test]
async fn the_agent_page_has_the_buttons_and_reasons_of_the_domain() {
    let fake = fake().await;
    let token = fake.login("anna").await;
    let page = fake
        .call(Method::GET, "/agent", Some(&token), None)
        .await
        .body;
    for text in [
        "Klar",
        "Pause",
        "Frokost",
        "Møde",
        "Efteruddannelse",
        "Afslut efterbehandling",
        "Log ud af køer",
        "CPR-nummer",
    ] {
        assert!(page.contains(text), "{text}");
    }
    let wall = fake
        .call(Method::GET, "/assets/wallboard.js", None, None)
        .await
        .body;
    for text in [
        "Tilbudt",
        "Besvaret",
        "Svarprocent",
        "Serviceniveau",
        "Gns. ventetid",
        "Straksafklaring",
    ] {
        assert!(wall.contains(text), "{text}");
    }
}
