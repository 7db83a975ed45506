//! The console over plain HTTP, no browser: sign-in and its cookie, CSRF
//! refusals, escaping, and the tenant portal's isolation (the browser test
//! in `console_browser.rs` drives the same pages through Chromium).

use herald_test_support::{eventually, Behaviour, Receiver, TestServer, TEST_TOKEN};
use reqwest::header::{HeaderMap, COOKIE, LOCATION, ORIGIN, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::DEADLINE;

/// A browser-like client that follows no redirect, so each answer is seen.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client builds")
}

/// The `name=value` of a `Set-Cookie` header for `name`, and the whole header.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<(String, String)> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find(|value| value.starts_with(&format!("{name}=")))
        .map(|value| {
            let pair = value.split(';').next().unwrap_or_default().to_owned();
            (pair, value.to_owned())
        })
}

/// The CSRF token of the first form on a page.
fn csrf_of(html: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = html
        .find(marker)
        .expect("the page has a form with a CSRF token")
        + marker.len();
    html[start..]
        .split('"')
        .next()
        .expect("the token ends")
        .to_owned()
}

async fn get(
    server: &TestServer,
    path: &str,
    cookie: Option<&str>,
) -> (StatusCode, HeaderMap, String) {
    let mut request = client().get(format!("{}{path}", server.api.base));
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    let response = request.send().await.expect("herald answers");
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("a body"))
}

async fn post_form(
    server: &TestServer,
    path: &str,
    cookie: Option<&str>,
    form: &[(&str, &str)],
    origin: Option<&str>,
) -> (StatusCode, HeaderMap, String) {
    let mut request = client()
        .post(format!("{}{path}", server.api.base))
        .form(form);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    if let Some(origin) = origin {
        request = request.header(ORIGIN, origin);
    }
    let response = request.send().await.expect("herald answers");
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("a body"))
}

/// Signs in through the login form; answers the session cookie pair.
async fn sign_in(server: &TestServer) -> String {
    sign_in_with(server, TEST_TOKEN).await
}

/// Signs in with `token`; answers the session cookie pair.
async fn sign_in_with(server: &TestServer, token: &str) -> String {
    let (_, headers, page) = get(server, "/console/login", None).await;
    let (login_cookie, _) = set_cookie(&headers, "herald_login").expect("the form sets its cookie");
    let (status, headers, _) = post_form(
        server,
        "/console/login",
        Some(&login_cookie),
        &[("csrf", &csrf_of(&page)), ("token", token)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    set_cookie(&headers, "herald_console")
        .expect("a session cookie")
        .0
}

struct Tenant {
    app: String,
    endpoint: String,
    msg: String,
}

async fn tenant(server: &TestServer, name: &str, receiver: &Receiver) -> Tenant {
    let app = server.api.create_app(name).await;
    let (endpoint, _) = server
        .api
        .create_endpoint(&app, json!({ "url": receiver.url(name) }))
        .await;
    let msg = server
        .api
        .send(&app, "invoice.paid", json!({ "tenant": name }))
        .await;
    Tenant { app, endpoint, msg }
}

async fn portal_link(server: &TestServer, app: &str, body: Value) -> (String, String) {
    let link = server
        .api
        .post(&format!("/api/v1/auth/app-portal-access/{app}"), body, 200)
        .await;
    (
        link["url"].as_str().expect("url").to_owned(),
        link["token"].as_str().expect("token").to_owned(),
    )
}

#[tokio::test]
async fn the_console_signs_in_with_an_admin_token_into_a_strict_http_only_session() {
    let server = TestServer::start().await;
    server.api.create_app("Acme Corp").await;

    let (status, headers, _) = get(&server, "/console/apps", None).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "signed out, pages lead to sign-in"
    );
    assert_eq!(headers[LOCATION], "/console/login");

    let (_, headers, page) = get(&server, "/console/login", None).await;
    let (login_cookie, _) = set_cookie(&headers, "herald_login").expect("login cookie");
    let csrf = csrf_of(&page);
    let (status, _, page) = post_form(
        &server,
        "/console/login",
        Some(&login_cookie),
        &[("csrf", &csrf), ("token", "not-a-token")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("not accepted"), "{page}");
    let (status, _, _) = post_form(
        &server,
        "/console/login",
        Some(&login_cookie),
        &[("token", TEST_TOKEN)],
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a sign-in without the form's token is refused"
    );

    let (status, headers, _) = post_form(
        &server,
        "/console/login",
        Some(&login_cookie),
        &[("csrf", &csrf), ("token", TEST_TOKEN)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (session, attributes) = set_cookie(&headers, "herald_console").expect("session cookie");
    assert!(attributes.contains("HttpOnly"), "{attributes}");
    assert!(attributes.contains("SameSite=Strict"), "{attributes}");
    assert!(
        !attributes.contains(TEST_TOKEN),
        "the cookie does not carry the token"
    );

    let (status, headers, page) = get(&server, "/console/apps", Some(&session)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Acme Corp"), "{page}");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers["content-security-policy"]
        .to_str()
        .expect("ascii")
        .contains("default-src 'none'"));

    let (status, _, _) = get(
        &server,
        "/console/apps",
        Some("herald_console=forged.value.sig"),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "a forged session is no session"
    );
}

#[tokio::test]
async fn console_actions_are_refused_without_the_csrf_token_or_from_another_origin() {
    let server = TestServer::start().await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let acme = tenant(&server, "Acme", &receiver).await;
    let session = sign_in(&server).await;
    let secret_path = format!("/api/v1/app/{}/endpoint/{}/secret", acme.app, acme.endpoint);
    let original = server.api.get(&secret_path).await["key"].clone();
    let page_path = format!("/console/app/{}/endpoint/{}", acme.app, acme.endpoint);
    let (_, _, page) = get(&server, &page_path, Some(&session)).await;
    let csrf = csrf_of(&page);
    let rotate = format!("{page_path}/rotate");
    let same_origin = server.api.base.clone();

    for (form, origin, why) in [
        (vec![], None, "no token"),
        (vec![("csrf", "forged")], None, "a wrong token"),
        (
            vec![("csrf", csrf.as_str())],
            Some("http://evil.example"),
            "another origin",
        ),
    ] {
        let (status, _, _) = post_form(&server, &rotate, Some(&session), &form, origin).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "a rotation with {why} is refused"
        );
        assert_eq!(
            server.api.get(&secret_path).await["key"],
            original,
            "{why}: nothing changed"
        );
    }
    let (status, _, _) = post_form(&server, &rotate, None, &[("csrf", &csrf)], None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        server.api.get(&secret_path).await["key"],
        original,
        "without the session cookie, nothing changes"
    );

    let (status, headers, _) = post_form(
        &server,
        &rotate,
        Some(&session),
        &[("csrf", &csrf)],
        Some(&same_origin),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers[LOCATION]
        .to_str()
        .expect("ascii")
        .ends_with("?done=rotated"));
    assert_ne!(
        server.api.get(&secret_path).await["key"],
        original,
        "the genuine form rotates"
    );
}

#[tokio::test]
async fn the_console_escapes_payloads_and_names() {
    let server = TestServer::start().await;
    let app = server.api.create_app("<b>Bold</b> & Co").await;
    let msg = server
        .api
        .send(
            &app,
            "invoice.paid",
            json!({ "note": "<script>alert(1)</script>" }),
        )
        .await;
    let session = sign_in(&server).await;
    let (status, _, page) = get(
        &server,
        &format!("/console/app/{app}/msg/{msg}"),
        Some(&session),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !page.contains("<script>alert(1)</script>"),
        "a payload is never markup"
    );
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    assert!(!page.contains("<b>Bold</b>"));
    assert!(page.contains("&lt;b&gt;Bold&lt;/b&gt; &amp; Co"));
}

#[tokio::test]
async fn a_portal_link_shows_its_app_and_nothing_of_another_even_with_edited_ids() {
    let server = TestServer::start().await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let acme = tenant(&server, "Acme", &receiver).await;
    let globex = tenant(&server, "Globex", &receiver).await;
    eventually("both messages are delivered", DEADLINE, || async {
        (receiver.count_by_message().len() == 2).then_some(())
    })
    .await;

    let (url, token) = portal_link(&server, &acme.app, json!({})).await;
    assert_eq!(url, format!("{}/console/portal/{token}", server.api.base));
    let portal = url.trim_start_matches(&server.api.base).to_owned();
    let (status, headers, page) = get(&server, &portal, None).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the link works without any other credential"
    );
    assert!(
        page.contains(&acme.endpoint) && page.contains(&acme.msg),
        "{page}"
    );
    assert!(
        !page.contains("Globex") && !page.contains(&globex.endpoint) && !page.contains(&globex.msg)
    );
    assert!(
        !page.contains("Sign out"),
        "the portal shows no operator navigation"
    );
    assert!(set_cookie(&headers, "herald_console").is_none());

    for path in [
        format!("{portal}/endpoint/{}", globex.endpoint),
        format!("{portal}/endpoint/{}/edit", globex.endpoint),
        format!("{portal}/msg/{}", globex.msg),
    ] {
        let (status, _, page) = get(&server, &path, None).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{path} belongs to another app"
        );
        assert!(!page.contains("Globex"));
    }
    let (status, _, _) = get(&server, &format!("/console/app/{}", globex.app), None).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "operator pages need an operator session"
    );
    let forged = portal.replace(&acme.app, &globex.app);
    assert_ne!(forged, portal);
    let (status, _, page) = get(&server, &forged, None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a token edited to name another app is refused"
    );
    assert!(!page.contains("Globex"));

    // Actions are scoped too: resending Acme's message to Globex's endpoint
    // finds no such endpoint, and nothing is queued there.
    let (_, _, page) = get(&server, &format!("{portal}/msg/{}", acme.msg), None).await;
    let csrf = csrf_of(&page);
    let (status, _, _) = post_form(
        &server,
        &format!("{portal}/msg/{}/resend/{}", acme.msg, globex.endpoint),
        None,
        &[("csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let destinations = server.api.destinations_of(&acme.app, &acme.msg).await;
    assert_eq!(destinations.len(), 1, "{destinations:?}");
    let (status, _, _) = post_form(
        &server,
        &format!("{portal}/msg/{}/resend/{}", acme.msg, acme.endpoint),
        None,
        &[],
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a portal action without its CSRF token is refused"
    );
    let (status, headers, _) = post_form(
        &server,
        &format!("{portal}/msg/{}/resend/{}", acme.msg, acme.endpoint),
        None,
        &[("csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the tenant retries its own delivery"
    );
    assert!(headers[LOCATION]
        .to_str()
        .expect("ascii")
        .starts_with(&portal));
    eventually("the retry arrives", DEADLINE, || async {
        (receiver.count_by_message().get(&acme.msg) == Some(&2)).then_some(())
    })
    .await;

    // The other app's link's CSRF token does not work here.
    let (globex_url, _) = portal_link(&server, &globex.app, json!({})).await;
    let globex_portal = globex_url.trim_start_matches(&server.api.base).to_owned();
    let (_, _, globex_page) = get(
        &server,
        &format!("{globex_portal}/msg/{}", globex.msg),
        None,
    )
    .await;
    let (status, _, _) = post_form(
        &server,
        &format!("{portal}/endpoint/{}/rotate", acme.endpoint),
        None,
        &[("csrf", &csrf_of(&globex_page))],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_read_only_portal_link_changes_nothing_and_expiry_is_bounded() {
    let server = TestServer::start().await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let acme = tenant(&server, "Acme", &receiver).await;
    let (url, _) = portal_link(
        &server,
        &acme.app,
        json!({ "readOnly": true, "expiry": 3600 }),
    )
    .await;
    let portal = url.trim_start_matches(&server.api.base).to_owned();
    let (status, _, page) = get(
        &server,
        &format!("{portal}/endpoint/{}", acme.endpoint),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        !page.contains("Rotate secret"),
        "a read-only link shows no actions"
    );
    let (status, _, _) = post_form(
        &server,
        &format!("{portal}/endpoint/{}/rotate", acme.endpoint),
        None,
        &[("csrf", "anything")],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    for expiry in [0, 31 * 24 * 3600] {
        let (status, answer) = server
            .api
            .request(
                Method::POST,
                &format!("/api/v1/auth/app-portal-access/{}", acme.app),
                Some(json!({ "expiry": expiry })),
                &[],
            )
            .await;
        assert_eq!(status, 422, "{answer}");
    }
    let (status, _) = server
        .api
        .request(
            Method::POST,
            "/api/v1/auth/app-portal-access/app_unknown",
            None,
            &[],
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn revealing_an_ed25519_endpoint_key_shows_only_its_public_key() {
    let server = TestServer::start().await;
    let app = server.api.create_app("asymmetric").await;
    let secret = herald_core::SigningKey::generate_ed25519();
    let (endpoint, public_key) = server
        .api
        .create_endpoint(
            &app,
            json!({ "url": "https://example.com/hook", "secret": secret.expose() }),
        )
        .await;
    assert_eq!(public_key, secret.receiver_key());
    let session = sign_in(&server).await;
    let (status, _, page) = get(
        &server,
        &format!("/console/app/{app}/endpoint/{endpoint}?reveal=secret"),
        Some(&session),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(&public_key), "the whpk_ key is shown");
    assert!(
        !page.contains(&secret.expose()["whsk_".len()..]),
        "the whsk_ secret key never is"
    );
}

herald_test_support::test_on_both_backends! {
    async fn revoking_the_token_a_console_session_began_with_ends_the_session() {
        let server = TestServer::start().await;
        let now = herald_core::Timestamp(0);
        let (token, record) = herald_server::auth::new_api_token(Some("console".into()), now);
        server.store.add_api_token(&record).await.expect("token stored");
        let session = sign_in_with(&server, &token).await;
        let (status, _, _) = get(&server, "/console/apps", Some(&session)).await;
        assert_eq!(status, StatusCode::OK);

        server
            .store
            .remove_api_token(&record.hash)
            .await
            .expect("token removed");
        eventually("the session ends with its token", DEADLINE, || async {
            let (status, headers, _) = get(&server, "/console/apps", Some(&session)).await;
            (status == StatusCode::SEE_OTHER && headers[LOCATION] == "/console/login")
                .then_some(())
        })
        .await;
    }
}
