//! Who may ask, and for what: the token (query parameter once, then a cookie), paths with `..`
//! refused before any route sees them, and error pages that say what is wrong.

use crate::{App, ViewError};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use percent_encoding::percent_decode_str;
use std::sync::Arc;

/// The cookie that carries the token after the first visit (`_PORT` follows).
pub const COOKIE: &str = "flywheel_view_token";

/// A fresh random token (128 bits, hex).
pub fn new_token() -> Result<String, ViewError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| ViewError::Internal(format!("no randomness: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Equal without returning early at the first differing byte.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The token a request carries: `?token=` first, then the cookie.
fn offered(req: &Request, cookie_name: &str) -> (Option<String>, Option<String>) {
    let from_query = req.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == "token")
            .map(|(_, v)| percent_decode_str(v).decode_utf8_lossy().into_owned())
    });
    let from_cookie = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == cookie_name)
        .map(|(_, v)| v.to_string());
    (from_query, from_cookie)
}

/// Lets through requests with the right token; a right `?token=` also sets the cookie.
pub async fn token(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let (query, cookie) = offered(&req, &app.cookie);
    let by_query = query.as_deref().is_some_and(|t| same(t, &app.token));
    let by_cookie = cookie.as_deref().is_some_and(|t| same(t, &app.token));
    if !by_query && !by_cookie {
        let why = if query.is_some() || cookie.is_some() {
            "the token is wrong"
        } else {
            "this viewer needs its token"
        };
        return page(
            StatusCode::UNAUTHORIZED,
            &format!("{why}: open the URL that flywheel view printed (http://HOST:PORT/?token=…)"),
        );
    }
    let mut response = next.run(req).await;
    if by_query && !by_cookie {
        let cookie = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict",
            app.cookie, app.token
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

/// Refuses a request whose path or query holds a `..` step, raw or percent-encoded (once or
/// twice), and a path holding a NUL or a backslash.
pub async fn no_traversal(req: Request, next: Next) -> Response {
    let uri = req.uri();
    let texts = [uri.path(), uri.query().unwrap_or("")];
    if texts.iter().any(|t| escapes(t)) {
        return page(
            StatusCode::BAD_REQUEST,
            "a path with '..' (or an encoded one) is refused: the viewer serves only its tables",
        );
    }
    next.run(req).await
}

fn escapes(text: &str) -> bool {
    let once = percent_decode_str(text).decode_utf8_lossy().into_owned();
    let twice = percent_decode_str(&once).decode_utf8_lossy().into_owned();
    [text, &once, &twice].iter().any(|t| {
        t.contains('\0')
            || t.split(['/', '\\', '&', '=', '?'])
                .any(|step| step.trim() == "..")
    })
}

/// An error page: the status and a clear message, never a trace.
pub fn page(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>flywheel view: {code}</title>\
         <link rel=stylesheet href=/assets/app.css><main class=error><h1>{code}</h1>\
         <p id=message>error: {msg}</p><p><a href=/>served tables</a></p></main>",
        code = status.as_u16(),
        msg = escape_html(message)
    );
    (status, Html(body)).into_response()
}

/// Text made safe inside HTML.
pub fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_is_seen_raw_and_encoded() {
        for bad in [
            "/../etc/passwd",
            "/a/..",
            "/%2e%2e/x",
            "/%252e%252e%252fx",
            "t=..%2F..%2Fetc",
            "/a\\..\\b",
            "/x%00",
        ] {
            assert!(escapes(bad), "{bad}");
        }
        for good in [
            "/",
            "/t/a@1",
            "/api/rows",
            "t=dir/t%401&offset=0",
            "/x..y",
            "sql=SELECT%20'..'%20AS%20a",
        ] {
            assert!(!escapes(good), "{good}");
        }
    }

    #[test]
    fn tokens_are_fresh_and_compared_whole() {
        let (a, b) = (new_token().expect("a token"), new_token().expect("a token"));
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(same(&a, &a.clone()));
        assert!(!same(&a, &b) && !same(&a, &a[..31]));
    }
}
