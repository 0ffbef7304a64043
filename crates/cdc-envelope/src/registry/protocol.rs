//! The Confluent Schema Registry REST protocol as pure functions: request
//! paths and bodies, response parsing, and the mapping of error answers to
//! typed [`Error`]s. No I/O here, so every case is unit-tested from bytes.

use serde_json::Value as Json;

use crate::error::{Error, Result};

/// `Content-Type` of request bodies.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
/// `Accept` of requests (as Confluent's Java client sends it).
pub const ACCEPT: &str = "application/vnd.schemaregistry.v1+json, \
                          application/vnd.schemaregistry+json; qs=0.9, application/json; qs=0.5";

/// Compatibility levels of a subject (`PUT /config/{subject}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compatibility {
    /// No checks.
    None,
    /// New schema can read data written with the last version.
    Backward,
    /// … with every earlier version.
    BackwardTransitive,
    /// The last version can read data written with the new schema.
    Forward,
    /// … every earlier version can.
    ForwardTransitive,
    /// Backward and forward with the last version.
    Full,
    /// Backward and forward with every version.
    FullTransitive,
}

impl Compatibility {
    /// The REST name, e.g. `BACKWARD_TRANSITIVE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }
}

/// What a request was for: decides how an error answer is typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// `POST /subjects/{subject}/versions`.
    Register(String),
    /// `POST /subjects/{subject}` (is this schema registered? which id?).
    Lookup(String),
    /// `GET /schemas/ids/{id}`.
    SchemaById(u32),
    /// `GET /subjects/{subject}/versions/latest`.
    Latest(String),
    /// `PUT /config/{subject}`.
    SetCompatibility(String),
}

impl Operation {
    /// HTTP method.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Register(_) | Self::Lookup(_) => "POST",
            Self::SchemaById(_) | Self::Latest(_) => "GET",
            Self::SetCompatibility(_) => "PUT",
        }
    }

    /// Path below the base URL (subject percent-encoded).
    pub fn path(&self) -> String {
        match self {
            Self::Register(s) => format!("/subjects/{}/versions", encode_segment(s)),
            Self::Lookup(s) => format!("/subjects/{}", encode_segment(s)),
            Self::SchemaById(id) => format!("/schemas/ids/{id}"),
            Self::Latest(s) => format!("/subjects/{}/versions/latest", encode_segment(s)),
            Self::SetCompatibility(s) => format!("/config/{}", encode_segment(s)),
        }
    }

    /// The subject or id concerned, for messages.
    pub fn target(&self) -> String {
        match self {
            Self::Register(s) | Self::Lookup(s) | Self::Latest(s) | Self::SetCompatibility(s) => {
                s.clone()
            }
            Self::SchemaById(id) => format!("schema id {id}"),
        }
    }
}

/// Percent-encodes a path segment (everything but RFC 3986 unreserved characters).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Body registering or looking up an Avro schema: `{"schema": "<schema text>"}`.
pub fn schema_body(schema: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "schema": schema })).unwrap_or_default()
}

/// Body setting a subject's compatibility: `{"compatibility": "BACKWARD"}`.
pub fn compatibility_body(level: Compatibility) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "compatibility": level.as_str() })).unwrap_or_default()
}

fn parse_json(body: &[u8], what: &str) -> Result<Json> {
    serde_json::from_slice(body).map_err(|e| Error::Registry {
        subject: what.to_owned(),
        status: Some(200),
        code: None,
        message: format!("the registry answered with invalid JSON ({e})"),
        retriable: false,
    })
}

fn unexpected(what: &str, reason: &str) -> Error {
    Error::Registry {
        subject: what.to_owned(),
        status: Some(200),
        code: None,
        message: format!("unexpected answer from the registry: {reason}"),
        retriable: false,
    }
}

/// The schema id of a successful register / lookup answer (`{"id": 7, …}`).
pub fn parse_id(op: &Operation, body: &[u8]) -> Result<u32> {
    let what = op.target();
    let json = parse_json(body, &what)?;
    json.get("id")
        .and_then(Json::as_i64)
        .and_then(|id| u32::try_from(id).ok())
        .filter(|id| i32::try_from(*id).is_ok())
        .ok_or_else(|| unexpected(&what, "no non-negative 32-bit \"id\""))
}

/// The schema text of a successful `GET /schemas/ids/{id}` or
/// `GET /subjects/{s}/versions/latest` answer. Only Avro schemas are
/// accepted (`schemaType` absent or `AVRO`).
pub fn parse_schema(op: &Operation, body: &[u8]) -> Result<String> {
    let what = op.target();
    let json = parse_json(body, &what)?;
    match json.get("schemaType").and_then(Json::as_str) {
        None | Some("AVRO") => {}
        Some(other) => {
            return Err(Error::Registry {
                subject: what,
                status: Some(200),
                code: None,
                message: format!("the schema is of type {other}; only AVRO schemas can be decoded"),
                retriable: false,
            })
        }
    }
    json.get("schema")
        .and_then(Json::as_str)
        .map(str::to_owned)
        .ok_or_else(|| unexpected(&what, "no \"schema\" string"))
}

/// Longest registry message kept in an error.
const MAX_MESSAGE: usize = 500;

/// Types an error answer (`status` ≥ 300) of the registry at `url` (shown
/// without credentials) to `op`.
pub fn error_from_response(op: &Operation, url: &str, status: u16, body: &[u8]) -> Error {
    let json: Option<Json> = serde_json::from_slice(body).ok();
    let code = json
        .as_ref()
        .and_then(|j| j.get("error_code"))
        .and_then(Json::as_i64)
        .filter(|c| *c != 0);
    let mut message = json
        .as_ref()
        .and_then(|j| j.get("message"))
        .and_then(Json::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    if message.is_empty() {
        message = format!("HTTP {status} without a message");
    }
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    let target = op.target();
    match (status, code, op) {
        (401 | 403, _, _) => Error::RegistryUnauthorized {
            url: url.to_owned(),
            status,
        },
        // Confluent answers 409 / error_code 409; Apicurio 409 / error_code 0.
        (409, _, Operation::Register(subject)) => Error::RegistryIncompatibleSchema {
            subject: subject.clone(),
            message,
        },
        (404, Some(40403), Operation::SchemaById(id)) | (404, None, Operation::SchemaById(id)) => {
            Error::RegistrySchemaNotFound { id: *id, message }
        }
        (404, Some(40403), Operation::Lookup(subject)) => Error::RegistrySchemaNotRegistered {
            subject: subject.clone(),
            message,
        },
        (404, Some(40401 | 40402) | None, Operation::Lookup(s) | Operation::Latest(s)) => {
            Error::RegistrySubjectNotFound {
                subject: s.clone(),
                code,
                message,
            }
        }
        _ => Error::Registry {
            subject: target,
            status: Some(status),
            code,
            message,
            // Server-side failures and throttling may pass.
            retriable: status >= 500 || status == 429 || status == 408,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:58081/apis/ccompat/v7";

    #[test]
    fn requests() {
        let reg = Operation::Register("pgsource.public.employees-value".into());
        assert_eq!(reg.method(), "POST");
        assert_eq!(
            reg.path(),
            "/subjects/pgsource.public.employees-value/versions"
        );
        assert_eq!(
            Operation::Lookup("a b/c".into()).path(),
            "/subjects/a%20b%2Fc"
        );
        assert_eq!(Operation::SchemaById(42).path(), "/schemas/ids/42");
        assert_eq!(Operation::SchemaById(42).method(), "GET");
        assert_eq!(
            Operation::Latest("s".into()).path(),
            "/subjects/s/versions/latest"
        );
        assert_eq!(Operation::SetCompatibility("s".into()).path(), "/config/s");
        assert_eq!(Operation::SetCompatibility("s".into()).method(), "PUT");
        let body = schema_body(r#"{"type":"record","name":"V","fields":[]}"#);
        assert_eq!(
            body,
            br#"{"schema":"{\"type\":\"record\",\"name\":\"V\",\"fields\":[]}"}"#
        );
        assert_eq!(
            compatibility_body(Compatibility::BackwardTransitive),
            br#"{"compatibility":"BACKWARD_TRANSITIVE"}"#
        );
    }

    #[test]
    fn responses() {
        let reg = Operation::Register("s".into());
        assert_eq!(parse_id(&reg, br#"{"id":7}"#), Ok(7));
        assert_eq!(
            parse_id(
                &reg,
                br#"{"id":1,"subject":"s","version":1,"schema":"\"int\""}"#
            ),
            Ok(1)
        );
        for bad in [
            &b"{}"[..],
            b"[]",
            b"{\"id\":-1}",
            b"{\"id\":\"7\"}",
            b"{\"id\":4294967296}",
            b"not json",
            b"",
        ] {
            let e = parse_id(&reg, bad).expect_err("bad id answer");
            assert!(
                matches!(
                    e,
                    Error::Registry {
                        retriable: false,
                        ..
                    }
                ),
                "{e}"
            );
        }
        let by_id = Operation::SchemaById(3);
        assert_eq!(
            parse_schema(&by_id, br#"{"schema":"\"int\"","references":[]}"#).as_deref(),
            Ok("\"int\"")
        );
        assert_eq!(
            parse_schema(&by_id, br#"{"schema":"\"int\"","schemaType":"AVRO"}"#).as_deref(),
            Ok("\"int\"")
        );
        let e = parse_schema(
            &by_id,
            br#"{"schema":"syntax = \"proto3\";","schemaType":"PROTOBUF"}"#,
        )
        .expect_err("protobuf");
        assert!(e.to_string().contains("PROTOBUF"), "{e}");
        assert!(parse_schema(&by_id, br#"{"schema":7}"#).is_err());
    }

    #[test]
    fn errors_are_typed() {
        let reg = Operation::Register("t-value".into());
        // Confluent's and Apicurio's answers to an incompatible schema.
        for body in [
            &br#"{"error_code":409,"message":"Schema being registered is incompatible with an earlier schema"}"#[..],
            br#"{"message":"Incompatible artifact: t-value [AVRO]","error_code":0}"#,
        ] {
            let e = error_from_response(&reg, URL, 409, body);
            assert!(
                matches!(&e, Error::RegistryIncompatibleSchema { subject, .. } if subject == "t-value"),
                "{e}"
            );
            assert!(!e.is_retriable());
            assert!(e.to_string().contains("compatib"), "{e}");
        }
        let e = error_from_response(
            &Operation::SchemaById(999),
            URL,
            404,
            br#"{"message":"No content with id/hash 'contentId-999' was found.","error_code":40403}"#,
        );
        assert!(
            matches!(e, Error::RegistrySchemaNotFound { id: 999, .. }),
            "{e}"
        );
        let e = error_from_response(
            &Operation::Latest("nope".into()),
            URL,
            404,
            br#"{"error_code":40401,"message":"Subject 'nope' not found."}"#,
        );
        assert!(
            matches!(&e, Error::RegistrySubjectNotFound { subject, code: Some(40401), .. } if subject == "nope"),
            "{e}"
        );
        let e = error_from_response(
            &Operation::Lookup("s".into()),
            URL,
            404,
            br#"{"error_code":40403,"message":"Schema not found"}"#,
        );
        assert!(
            matches!(e, Error::RegistrySchemaNotRegistered { .. }),
            "{e}"
        );
        for status in [401u16, 403] {
            let e = error_from_response(&reg, URL, status, b"Unauthorized");
            assert!(
                matches!(e, Error::RegistryUnauthorized { status: s, .. } if s == status),
                "{e}"
            );
            assert!(e.to_string().contains("basic.auth.user.info"), "{e}");
            // 401 and 403 ask for different fixes.
            let (says, not) = if status == 401 {
                ("missing or wrong", "may not perform")
            } else {
                ("may not perform", "missing or wrong")
            };
            assert!(
                e.to_string().contains(says) && !e.to_string().contains(not),
                "{e}"
            );
        }
        let e = error_from_response(&reg, URL, 503, b"<html>upstream down</html>");
        assert!(e.is_retriable(), "{e}");
        assert!(e.to_string().contains("upstream down"), "{e}");
        let e = error_from_response(
            &reg,
            URL,
            422,
            br#"{"error_code":42201,"message":"Invalid schema"}"#,
        );
        assert!(
            matches!(
                e,
                Error::Registry {
                    status: Some(422),
                    code: Some(42201),
                    retriable: false,
                    ..
                }
            ),
            "{e}"
        );
        let long = vec![b'x'; 10_000];
        let e = error_from_response(&reg, URL, 500, &long);
        assert!(e.to_string().len() < 1_000, "messages are bounded");
        let e = error_from_response(&reg, URL, 500, b"");
        assert!(e.to_string().contains("HTTP 500"), "{e}");
    }
}
