//! What went wrong with a configuration file, and where.

use std::error::Error as StdError;
use std::fmt;

/// A position in the configuration file. Lines and columns count from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) line: usize,
    pub(crate) column: usize,
    /// Offset from the start of the text, used only to order positions.
    pub(crate) index: usize,
}

impl From<serde_yaml_ng::Location> for Location {
    fn from(location: serde_yaml_ng::Location) -> Self {
        Location {
            line: location.line(),
            column: location.column(),
            index: location.index(),
        }
    }
}

/// What kind of mistake a [`ConfigError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The file could not be read. The I/O error is the `source()`.
    Io,
    /// The text is not well-formed YAML (bad indentation, an unclosed
    /// bracket, a tab used for indentation, more than one document...), or
    /// the file is not UTF-8.
    Syntax,
    /// The text is too large (over 16 MiB), or nests flow collections
    /// (`[...]`, `{...}`) deeper than 128 levels: limits checked before
    /// the YAML parser reads the text, whose time would otherwise grow
    /// with the square of the nesting (mesh-core's
    /// [`check_yaml_shape`](mesh_core::resource::check_yaml_shape), which
    /// policy files pass too); or its aliases (`*name`) stand for more
    /// values than it has bytes plus 100,000, which reading it would build
    /// ([`check_yaml_aliases`](mesh_core::resource::check_yaml_aliases)).
    LimitExceeded,
    /// A key that the configuration does not have, such as a misspelling.
    UnknownField,
    /// A required key is absent. The field path names the missing key, and
    /// the position is that of the mapping that lacks it.
    MissingField,
    /// The same key appears twice in one mapping: a section's field, or
    /// a key of a workload's `labels` or `ports` or of the trace
    /// `attributes`. The field path ends with the key, and the position
    /// is that of its second appearance (of the mapping, for a flow
    /// mapping such as `{app: web, app: api}`).
    DuplicateField,
    /// A value of the wrong shape: a list where a mapping belongs, a string
    /// where a number belongs.
    InvalidType,
    /// A value of the right shape that is not acceptable: a bad address,
    /// duration, protocol or service name, or an empty endpoint list.
    InvalidValue,
    /// Two listeners would bind the same port.
    DuplicateListener,
    /// Two outbound services have the same name.
    DuplicateService,
    /// A field that needs another field or section that is absent, or one
    /// that cannot be combined with another that is present: `tls: mtls`
    /// without the server `identity` to expect, a service over mTLS without
    /// an `identity` section, `identity.ca` together with `identity.dir`.
    Conflict,
    /// A policy resource is invalid. The message names the document, its
    /// kind and name, and the field; the resource error is the `source()`.
    Policy,
}

/// A configuration file that was rejected.
///
/// It displays as one line with the file, the field path, the problem and
/// the position:
///
/// ```text
/// sidecar.yaml: outbound.services[0].endpoints[1]: invalid socket address "127.0.0.1:99999" (expected ip:port with a port up to 65535, such as 127.0.0.1:8080) at line 12 column 9
/// ```
///
/// A value that could not be parsed says why in the message
/// (`invalid timeout "1.5s" (expected ... such as 10s, 1m30s or 500ms)`). When an
/// error from below explains the problem, such as the I/O error of a file
/// that cannot be read or a policy resource's error, it is the
/// [`source`](StdError::source): print the chain to see it.
#[derive(Debug)]
pub struct ConfigError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    kind: ConfigErrorKind,
    origin: String,
    field_path: String,
    message: String,
    location: Option<Location>,
    context: Option<String>,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl ConfigError {
    pub(crate) fn new(
        kind: ConfigErrorKind,
        origin: &str,
        field_path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError(Box::new(Inner {
            kind,
            origin: origin.to_owned(),
            field_path: field_path.into(),
            message: message.into(),
            location: None,
            context: None,
            source: None,
        }))
    }

    pub(crate) fn at(mut self, location: Option<Location>) -> Self {
        self.0.location = location;
        self
    }

    pub(crate) fn with_context(mut self, context: Option<String>) -> Self {
        self.0.context = context;
        self
    }

    pub(crate) fn with_source(
        mut self,
        source: Option<Box<dyn StdError + Send + Sync + 'static>>,
    ) -> Self {
        self.0.source = source;
        self
    }

    /// What kind of mistake this is.
    pub fn kind(&self) -> ConfigErrorKind {
        self.0.kind
    }

    /// The file (or other origin) the configuration came from.
    pub fn origin(&self) -> &str {
        &self.0.origin
    }

    /// The path of the offending field, such as
    /// `outbound.services[0].endpoints[1]`. Empty when the problem is not
    /// about one field (a syntax error, an unreadable file).
    pub fn field_path(&self) -> &str {
        &self.0.field_path
    }

    /// The line of the problem in the file, counted from 1, when it is
    /// known.
    pub fn line(&self) -> Option<usize> {
        self.0.location.map(|location| location.line)
    }

    /// The column of the problem in the file, counted from 1, when it is
    /// known.
    pub fn column(&self) -> Option<usize> {
        self.0.location.map(|location| location.column)
    }
    /// Where the problem is: its known location, or else where `find`
    /// finds its field.
    pub(crate) fn location_or(
        &self,
        find: impl FnOnce(&str) -> Option<Location>,
    ) -> Option<Location> {
        self.0.location.or_else(|| find(&self.0.field_path))
    }
}

/// Translation of the YAML crate's errors.
impl ConfigError {
    /// A text refused before it is read: too large, nested too deep, or
    /// with aliases that stand for too much.
    pub(crate) fn shape(origin: &str, error: &mesh_core::resource::ResourceError) -> Self {
        let location = error.location().map(|at| Location {
            line: at.line,
            column: at.column,
            index: at.index,
        });
        ConfigError::new(ConfigErrorKind::LimitExceeded, origin, "", error.message()).at(location)
    }

    /// An error from reading `yaml` as YAML at all.
    pub(crate) fn syntax(origin: &str, yaml: &str, error: &serde_yaml_ng::Error) -> Self {
        let mut location = error.location().map(Location::from);
        let mut text = error.to_string();
        // The YAML reader's own refusals (a control character, such as a
        // NUL) have no position of their own, only the byte offset in the
        // message: without this, they would point at line 1 column 1.
        if location.is_none_or(|at| at.index == 0)
            && let Some((problem, offset)) = reader_offset(&text)
            && let Some(at) = offset_location(yaml, offset)
        {
            location = Some(at);
            text = problem;
        }
        // libyaml says "<problem> at line L column C[, <context> at ...]".
        // Keep the problem as the message and the context after the position.
        let (message, context) = match location {
            Some(at) => match text.split_once(&position_suffix(at)) {
                Some((problem, rest)) => (
                    problem.to_owned(),
                    rest.strip_prefix(", ").map(str::to_owned),
                ),
                None => (text.clone(), None),
            },
            None => (text.clone(), None),
        };
        // A tab where indentation goes is the commonest of these, and
        // libyaml's words for it do not say tab.
        let message = match location {
            Some(at) if !message.contains("tab") && char_at(yaml, at) == Some('\t') => {
                format!("a tab cannot indent YAML, indent with spaces ({message})")
            }
            _ => message,
        };
        ConfigError::new(ConfigErrorKind::Syntax, origin, "", message)
            .at(location)
            .with_context(context)
    }

    /// An error from deserializing well-formed YAML `yaml` into the
    /// configuration.
    pub(crate) fn deserialize(
        origin: &str,
        yaml: &str,
        error: serde_path_to_error::Error<serde_yaml_ng::Error>,
    ) -> Self {
        let mut path = error.path().to_string();
        if path == "." {
            path.clear();
        }
        let error = error.into_inner();
        let mut location = error.location().map(Location::from);
        let mut text = error.to_string();
        if let Some(at) = location
            && let Some(stripped) = text.strip_suffix(&position_suffix(at))
        {
            text = stripped.to_owned();
        }
        let message = strip_path_prefix(&text, &path);
        let message = serde_duplicate(message).unwrap_or_else(|| message.to_owned());
        let kind = classify(&message);
        // serde reports these at the enclosing mapping: name the field.
        if matches!(
            kind,
            ConfigErrorKind::MissingField | ConfigErrorKind::DuplicateField
        ) && let Some(field) = quoted_name(&message)
        {
            if kind == ConfigErrorKind::DuplicateField
                && let Some(mapping) = location
            {
                location = second_key(yaml, mapping, field).or(location);
            }
            path = if path.is_empty() {
                field.to_owned()
            } else {
                format!("{path}.{field}")
            };
        }
        ConfigError::new(kind, origin, path, message).at(location)
    }
}

/// Where `key` is written the second time in the block mapping that
/// starts at `mapping` (serde reports a duplicate at the mapping): the
/// line to fix. `None` for a flow mapping (`{a: 1, a: 2}`, on one line
/// anyway) or a key written in a form this does not recognise.
fn second_key(text: &str, mapping: Location, key: &str) -> Option<Location> {
    let indent = mapping.column.checked_sub(1)?;
    let written = [key.to_owned(), format!("{key:?}"), format!("'{key}'")];
    let mut seen = 0;
    let mut start = 0;
    for (number, line) in text.split_inclusive('\n').enumerate() {
        let line_start = start;
        start += line.len();
        let depth = if number + 1 == mapping.line {
            // The mapping may start after `- ` on its first line.
            indent
        } else if number + 1 > mapping.line {
            line.len() - line.trim_start_matches(' ').len()
        } else {
            continue;
        };
        let content = line.get(depth..).unwrap_or_default();
        if content.trim().is_empty() || content.starts_with('#') {
            continue;
        }
        if depth < indent {
            return None;
        }
        let is_key = depth == indent
            && written.iter().any(|form| {
                content
                    .strip_prefix(form.as_str())
                    .is_some_and(|rest| rest.trim_start_matches(' ').starts_with(':'))
            });
        if is_key {
            seen += 1;
            if seen == 2 {
                return Some(Location {
                    line: number + 1,
                    column: depth + 1,
                    index: line_start + depth,
                });
            }
        }
    }
    None
}

/// The character of `text` at `at`'s line and column.
fn char_at(text: &str, at: Location) -> Option<char> {
    let line = text.split('\n').nth(at.line.checked_sub(1)?)?;
    line.chars().nth(at.column.checked_sub(1)?)
}

/// libyaml's reader words a refusal `<problem> at position <offset>[,
/// <context>]`, the offset in bytes: the problem and context, and the
/// offset.
fn reader_offset(text: &str) -> Option<(String, usize)> {
    let (problem, rest) = text.split_once(" at position ")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let offset = rest.get(..digits)?.parse().ok()?;
    let rest = rest.get(digits..).unwrap_or_default();
    Some((format!("{problem}{rest}"), offset))
}

/// The line and column of byte `offset` of `text`; one past its end is
/// its end.
fn offset_location(text: &str, offset: usize) -> Option<Location> {
    let offset = offset.min(text.len());
    let before = text.get(..offset).or_else(|| {
        // Within a character: the position of the character.
        let start = (0..offset).rev().find(|&i| text.is_char_boundary(i))?;
        text.get(..start)
    })?;
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let column = before.get(line_start..).unwrap_or_default().chars().count();
    Some(Location {
        line: 1 + before.matches('\n').count(),
        column: 1 + column,
        index: before.len(),
    })
}

fn position_suffix(at: Location) -> String {
    format!(" at line {} column {}", at.line, at.column)
}

/// serde_yaml_ng writes the path of the value it was reading before the
/// message. The path it knows is the field path or one of its ancestors.
fn strip_path_prefix<'t>(text: &'t str, path: &str) -> &'t str {
    let mut candidate = path;
    while !candidate.is_empty() {
        if let Some(rest) = text
            .strip_prefix(candidate)
            .and_then(|rest| rest.strip_prefix(": "))
        {
            return rest;
        }
        candidate = match candidate.rfind(['.', '[']) {
            Some(end) => &candidate[..end],
            None => "",
        };
    }
    text
}

/// serde's own messages for the mistakes it detects (see
/// `serde::de::Error`'s provided methods). Everything else is a value our
/// own types refused.
fn classify(message: &str) -> ConfigErrorKind {
    if message.starts_with("unknown field") {
        ConfigErrorKind::UnknownField
    } else if message.starts_with("missing field") {
        ConfigErrorKind::MissingField
    } else if message.starts_with("duplicate field") {
        ConfigErrorKind::DuplicateField
    } else if message.starts_with("invalid type") {
        ConfigErrorKind::InvalidType
    } else {
        ConfigErrorKind::InvalidValue
    }
}

/// serde's words for a key written twice (`duplicate field `app``), for
/// serde_yaml_ng's own (`duplicate entry with key "app"`), which it uses
/// when the file is read into a tree (see [`SidecarConfig::from_yaml`]).
///
/// [`SidecarConfig::from_yaml`]: super::SidecarConfig::from_yaml
fn serde_duplicate(message: &str) -> Option<String> {
    let rest = message.strip_prefix("duplicate entry with key \"")?;
    let (key, _) = rest.split_once('"')?;
    Some(format!("duplicate field `{key}`"))
}

/// The name between the first pair of backticks: serde's way of quoting
/// field names.
fn quoted_name(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once('`')?;
    let (name, _) = rest.split_once('`')?;
    Some(name)
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.0.origin)?;
        if !self.0.field_path.is_empty() {
            write!(f, "{}: ", self.0.field_path)?;
        }
        f.write_str(&self.0.message)?;
        if let Some(location) = self.0.location {
            write!(f, " at line {} column {}", location.line, location.column)?;
        }
        if let Some(context) = &self.0.context {
            write!(f, ", {context}")?;
        }
        Ok(())
    }
}

impl StdError for ConfigError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|source| source as &(dyn StdError + 'static))
    }
}
