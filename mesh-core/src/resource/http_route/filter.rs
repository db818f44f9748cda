//! `filters` of an `HTTPRoute` rule.

use serde::Deserialize;

/// A `filters` entry.
///
/// The filter types Linkerd applies on its policy routes are typed. Any
/// other type (`RequestMirror`, `URLRewrite`, `ExtensionRef`, or one a
/// newer Gateway API adds) is kept as [`Unsupported`](Self::Unsupported)
/// with its type name, so that a reader can warn about it by name rather
/// than apply half of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawFilter")]
pub enum HttpRouteFilter {
    /// `RequestHeaderModifier`: headers set, added or removed on the
    /// request.
    RequestHeaderModifier(HeaderModifier),
    /// `ResponseHeaderModifier`: headers set, added or removed on the
    /// response.
    ResponseHeaderModifier(HeaderModifier),
    /// `RequestRedirect`: answer with a redirect instead of forwarding.
    RequestRedirect(RequestRedirect),
    /// A filter type that is not modelled.
    Unsupported {
        /// The filter's `type`, such as `RequestMirror`.
        type_name: String,
    },
}

impl HttpRouteFilter {
    /// The filter's `type`, as written.
    pub fn type_name(&self) -> &str {
        match self {
            Self::RequestHeaderModifier(_) => "RequestHeaderModifier",
            Self::ResponseHeaderModifier(_) => "ResponseHeaderModifier",
            Self::RequestRedirect(_) => "RequestRedirect",
            Self::Unsupported { type_name } => type_name,
        }
    }
}

/// `requestHeaderModifier` or `responseHeaderModifier`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct HeaderModifier {
    /// `set`: headers that replace any of the same name.
    #[serde(default)]
    pub set: Vec<HttpHeader>,
    /// `add`: headers appended to any of the same name.
    #[serde(default)]
    pub add: Vec<HttpHeader>,
    /// `remove`: names of headers to remove.
    #[serde(default)]
    pub remove: Vec<String>,
}

/// A header name and value.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct HttpHeader {
    /// `name`.
    pub name: String,
    /// `value`.
    pub value: String,
}

/// `requestRedirect`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRedirect {
    /// `scheme`: `http` or `https`; the request's when absent.
    #[serde(default)]
    pub scheme: Option<String>,
    /// `hostname`; the request's when absent.
    #[serde(default)]
    pub hostname: Option<String>,
    /// `path`: how the path is rewritten.
    #[serde(default)]
    pub path: Option<HttpPathModifier>,
    /// `port`.
    #[serde(default)]
    pub port: Option<u16>,
    /// `statusCode`: 301 or 302; 302 when absent.
    #[serde(default)]
    pub status_code: Option<u16>,
}

/// `path` of a redirect.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpPathModifier {
    /// `type`.
    #[serde(rename = "type")]
    pub kind: PathModifierType,
    /// `replaceFullPath`, for that type.
    #[serde(default)]
    pub replace_full_path: Option<String>,
    /// `replacePrefixMatch`, for that type.
    #[serde(default)]
    pub replace_prefix_match: Option<String>,
}

/// How a redirect rewrites the path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum PathModifierType {
    /// Replace the whole path.
    ReplaceFullPath,
    /// Replace the part the rule's `PathPrefix` matched.
    ReplacePrefixMatch,
}

/// A filter as written: a `type` and a field named after it. The config of
/// an unsupported type is read as an opaque value, so it is neither an
/// error nor reported again as an unknown field.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawFilter {
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default)]
    request_header_modifier: Option<HeaderModifier>,
    #[serde(default)]
    response_header_modifier: Option<HeaderModifier>,
    #[serde(default)]
    request_redirect: Option<RequestRedirect>,
    #[serde(default)]
    request_mirror: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    url_rewrite: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    extension_ref: Option<serde_yaml_ng::Value>,
}

impl TryFrom<RawFilter> for HttpRouteFilter {
    type Error = String;

    fn try_from(raw: RawFilter) -> Result<Self, String> {
        let missing = |field: &str| format!("a {} filter needs `{field}`", raw.type_name);
        Ok(match raw.type_name.as_str() {
            "RequestHeaderModifier" => Self::RequestHeaderModifier(
                raw.request_header_modifier
                    .ok_or_else(|| missing("requestHeaderModifier"))?,
            ),
            "ResponseHeaderModifier" => Self::ResponseHeaderModifier(
                raw.response_header_modifier
                    .ok_or_else(|| missing("responseHeaderModifier"))?,
            ),
            "RequestRedirect" => Self::RequestRedirect(
                raw.request_redirect
                    .ok_or_else(|| missing("requestRedirect"))?,
            ),
            _ => {
                let _ = (raw.request_mirror, raw.url_rewrite, raw.extension_ref);
                Self::Unsupported {
                    type_name: raw.type_name,
                }
            }
        })
    }
}
