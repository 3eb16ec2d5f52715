//! Who may use the console: the holder of an operator certificate of this
//! cluster, not revoked. Checked on every request before any handler runs
//! (a route cannot forget it). A browser without a certificate gets a page
//! saying how to get one (401); another role, or a revoked certificate,
//! gets 403. Every action (any method but GET and HEAD) must also carry
//! the header `X-DMC-Console: 1`, which the console's own page sends and a
//! page of another site cannot (no CORS is allowed): a browser holding an
//! operator's certificate cannot be made to act by someone else's page.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use transport::Role;

use super::listener::Client;
use super::ConsoleState;

/// The header every console action carries.
pub const ACTION_HEADER: &str = "x-dmc-console";

/// The operator a request comes from (its certificate name).
#[derive(Debug, Clone)]
pub struct Operator(pub String);

/// Why a request is refused, before it reaches a handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoCertificate(String),
    Revoked(String),
    NotOperator { name: String, role: Role },
    ActionWithoutHeader,
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::NoCertificate(_) => StatusCode::UNAUTHORIZED,
            _ => StatusCode::FORBIDDEN,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::NoCertificate(why) => format!(
                "the console needs an operator certificate of this cluster ({why}): make one with \
                 `control-station pki issue NAME:operator --ca DIR/ca --out DIR/NAME --p12` and import \
                 DIR/NAME/NAME.p12 into the browser, or run `smapp --name NAME console` and open the address it prints"
            ),
            Refusal::Revoked(name) => format!("the certificate of {name} is revoked"),
            Refusal::NotOperator { name, role } => {
                format!("{name} holds a {role} certificate; the console is for operators only")
            }
            Refusal::ActionWithoutHeader => {
                format!("a console action must come from the console's page (header {ACTION_HEADER}: 1)")
            }
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Refusal::NoCertificate(_) => "no_certificate",
            Refusal::Revoked(_) => "revoked",
            Refusal::NotOperator { .. } => "not_operator",
            Refusal::ActionWithoutHeader => "no_action_header",
        }
    }
}

/// Decide whether `client` may make a request with `method` and (for an
/// action) `action_header`. Pure: the middleware below applies it.
pub fn check(
    client: &Client,
    revoked: &std::collections::HashSet<Vec<u8>>,
    method: &Method,
    action_header: Option<&str>,
) -> Result<Operator, Refusal> {
    let holder = client
        .cert
        .as_ref()
        .map_err(|why| Refusal::NoCertificate(why.clone()))?;
    if revoked.contains(&holder.serial) {
        return Err(Refusal::Revoked(holder.name.clone()));
    }
    if holder.role != Role::Operator {
        return Err(Refusal::NotOperator {
            name: holder.name.clone(),
            role: holder.role,
        });
    }
    let reads = *method == Method::GET || *method == Method::HEAD;
    if !reads && action_header != Some("1") {
        return Err(Refusal::ActionWithoutHeader);
    }
    Ok(Operator(holder.name.clone()))
}

pub async fn require_operator(
    State(state): State<ConsoleState>,
    ConnectInfo(client): ConnectInfo<Client>,
    mut req: Request,
    next: Next,
) -> Response {
    let header = req.headers().get(ACTION_HEADER).and_then(|v| v.to_str().ok());
    let decided = {
        let revoked = state.revoked.borrow();
        check(&client, &revoked, req.method(), header)
    };
    match decided {
        Ok(operator) => {
            req.extensions_mut().insert(operator);
            next.run(req).await
        }
        Err(refusal) => {
            tracing::warn!(remote = %client.addr, path = %req.uri().path(), reason = %refusal.message(),
                "web console request refused");
            metrics::counter!("dmc_console_requests_refused_total", "why" => refusal.label()).increment(1);
            let status = refusal.status();
            if req.uri().path().starts_with("/api/") {
                let body = serde_json::json!({ "code": "refused", "message": refusal.message() });
                (status, Json(body)).into_response()
            } else {
                (status, Html(refused_page(&refusal.message()))).into_response()
            }
        }
    }
}

fn refused_page(message: &str) -> String {
    format!(
        "<!doctype html><meta charset=utf-8><title>Data mover cluster: not authorized</title>\
         <body style=\"font-family:sans-serif;max-width:46em;margin:3em auto\"><h1>Not authorized</h1><p>{}</p>",
        super::api::escape_html(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use transport::https::CertHolder;

    fn client(role: Role) -> Client {
        Client {
            addr: "127.0.0.1:1".parse().expect("addr"),
            cert: Ok(CertHolder {
                name: "alice".into(),
                role,
                serial: vec![7],
            }),
        }
    }

    #[test]
    fn only_unrevoked_operators_pass_and_actions_need_the_header() {
        let none = HashSet::new();
        let op = client(Role::Operator);
        assert_eq!(
            check(&op, &none, &Method::GET, None).map(|o| o.0),
            Ok("alice".to_string())
        );
        assert_eq!(
            check(&op, &none, &Method::POST, None).map(|o| o.0),
            Err(Refusal::ActionWithoutHeader)
        );
        assert!(check(&op, &none, &Method::POST, Some("1")).is_ok());
        assert!(check(&op, &none, &Method::DELETE, Some("yes")).is_err());
        let revoked: HashSet<Vec<u8>> = [vec![7u8]].into_iter().collect();
        assert_eq!(
            check(&op, &revoked, &Method::GET, None).map(|o| o.0),
            Err(Refusal::Revoked("alice".into()))
        );
        for role in [Role::Client, Role::Mover, Role::PrimaryNode, Role::Station] {
            let refusal = check(&client(role), &none, &Method::GET, None).expect_err("not an operator");
            assert_eq!(refusal.status(), StatusCode::FORBIDDEN);
        }
        let anonymous = Client {
            addr: "127.0.0.1:1".parse().expect("addr"),
            cert: Err("no client certificate".into()),
        };
        let refusal = check(&anonymous, &none, &Method::GET, None).expect_err("anonymous");
        assert_eq!(refusal.status(), StatusCode::UNAUTHORIZED);
        assert!(refusal.message().contains("--p12"));
    }
}
