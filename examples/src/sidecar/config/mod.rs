#![doc = include_str!("../../../CONFIG.md")]

mod duration;
mod env;
mod error;
mod file;
mod identity;
mod inbound;
mod listeners;
mod locate;
mod outbound;
mod outbound_ports;
mod policy;
mod resolve;
mod retry;
mod server;
mod trace;
mod unique;

use std::path::Path;

use serde::Deserialize;
use serde::de::IgnoredAny;

pub use duration::{InvalidDuration, format_duration, parse_duration};
pub use env::{
    ADMIN_LISTEN_ENV, INBOUND_LISTEN_ENV, INGRESS_MODE_ENV, ListenAddress, ListenSource,
    OUTBOUND_LISTEN_ENV,
};
pub use error::{ConfigError, ConfigErrorKind};
pub use identity::{CredentialSource, IdentityConfig, InboundMode, OutboundTls, StoreConfig};
pub use inbound::{
    DEFAULT_INBOUND_LISTEN, DEFAULT_OPAQUE_PORTS, InboundConfig, InboundPort, InvalidProtocol,
    PortProtocol,
};
pub use mesh_retry::{BudgetConfig, RetryPolicy, Timeouts};
pub use outbound::{
    DEFAULT_OUTBOUND_LISTEN, InvalidServiceName, OutboundConfig, OutboundPort, ServiceConfig,
    ServiceName,
};
pub use policy::{
    DefaultPolicy, InlineOrigin, PolicyConfig, PolicyFiles, PolicySettings, Workload,
};
pub use server::{
    AdminConfig, DEFAULT_ADMIN_LISTEN, DashboardPeer, DashboardSettings, ServerTuning,
};
pub use trace::{DEFAULT_SERVICE_NAME, TracingConfig};

pub(crate) use listeners::reaches;

use env::ListenOverrides;
use error::Location;
use file::Document;
use resolve::Source;

/// The reference sidecar's configuration, validated and with every default
/// applied.
///
/// The default is what an empty file means: no inbound listeners, the
/// outbound listener on `127.0.0.1:4140` with no services, the admin server
/// on `0.0.0.0:4191`, and the default [`ServerTuning`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SidecarConfig {
    /// The `identity` section: the workload's certificate, from files or
    /// from a development CA. Without it the sidecar has no identity: its
    /// listeners serve plaintext, and no service can be reached over mTLS.
    pub identity: Option<IdentityConfig>,
    /// The `inbound` section: listeners for traffic to the local
    /// application.
    pub inbound: InboundConfig,
    /// The `outbound` section: the listener for the application's own
    /// requests, and the services they go to.
    pub outbound: OutboundConfig,
    /// The `admin` section: the admin server's address, and its dashboard.
    pub admin: AdminConfig,
    /// The `server` section: timeouts and limits.
    pub server: ServerTuning,
    /// The `policy` section: the workload, its default policy, and the
    /// policy resources that say who may call it.
    pub policy: PolicySettings,
    /// The `tracing` section: the collector the sidecar reports its spans
    /// to. Without it, requests' trace headers pass unchanged and no span
    /// is reported.
    pub tracing: Option<TracingConfig>,
}

impl SidecarConfig {
    /// Reads a configuration from YAML text. `origin` names where the text
    /// came from (usually the file name) in error messages.
    ///
    /// An empty text, or one with only comments, is the default
    /// configuration. A byte-order mark before the text is skipped.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for the first problem found: malformed YAML, a
    /// second YAML document (at the line it starts), an
    /// unknown or missing field, a value of the wrong type or an invalid
    /// one, two listeners on one port, a service named twice, or a text
    /// over 16 MiB, nesting flow collections past 128 levels, or whose
    /// aliases stand for more values than it has bytes plus
    /// [`ALIAS_ALLOWANCE`](mesh_core::resource::ALIAS_ALLOWANCE). Its
    /// [`kind`](ConfigError::kind) says which.
    pub fn from_yaml(text: &str, origin: &str) -> Result<SidecarConfig, ConfigError> {
        // A byte-order mark, which some editors write before every file,
        // starts a YAML stream but is not part of its text (YAML 1.2
        // §5.2): the parser would otherwise see a second document, and
        // columns on the first line would count it.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        SidecarConfig::read_document(text, origin)?.resolve(Source {
            origin,
            text,
            moved: &[],
        })
    }

    /// The file as read, before its defaults and its checks across
    /// fields: every check of [`SidecarConfig::from_yaml`] up to there.
    /// `text` has no byte-order mark.
    fn read_document(text: &str, origin: &str) -> Result<Document, ConfigError> {
        // Size and flow nesting before the parser, whose time grows with
        // the square of the nesting: 100,000 `[` would take it minutes.
        mesh_core::resource::check_yaml_shape(origin, text)
            .map_err(|error| ConfigError::shape(origin, &error))?;
        // Then what its aliases stand for, before a merge key has the text
        // read into a tree: an anchored list referred to over and over is
        // a few kilobytes of text and gigabytes once read.
        mesh_core::resource::check_yaml_aliases(origin, text)
            .map_err(|error| ConfigError::shape(origin, &error))?;
        // Syntax first: the typed pass below stops at its first mistake and
        // could report a consequence of bad indentation as a wrong type.
        // Document by document, so that a mistake in a later one is
        // reported where it is, and a second one where it starts: read
        // whole, the parser says only that there is more than one.
        let mut documents = 0;
        for document in serde_yaml_ng::Deserializer::from_str(text) {
            if let Err(error) = IgnoredAny::deserialize(document) {
                return Err(ConfigError::syntax(origin, text, &error));
            }
            documents += 1;
        }
        if documents > 1 {
            return Err(ConfigError::new(
                ConfigErrorKind::Syntax,
                origin,
                "",
                "the file holds a second YAML document, and a configuration is one \
                 document: remove the `---` before the second, or keep one of the two",
            )
            .at(locate::document_start(text, 2)));
        }

        let document: Option<Document> = if text.contains("<<") {
            // YAML merge keys (`<<: *defaults`), which serde alone would
            // read as a field named `<<`: the file is read into a tree,
            // the merges applied, and the tree read as the configuration.
            // The tree has no lines, so an error is located by its path.
            let mut tree: serde_yaml_ng::Value =
                serde_path_to_error::deserialize(serde_yaml_ng::Deserializer::from_str(text))
                    .map_err(|error| ConfigError::deserialize(origin, text, error))?;
            mesh_core::resource::apply_merge_keys(&mut tree).map_err(|error| {
                ConfigError::new(
                    ConfigErrorKind::InvalidValue,
                    origin,
                    error.mapping(),
                    error.to_string(),
                )
                .at(locate::locate_nearest(text, &error.key_path()))
            })?;
            serde_path_to_error::deserialize(tree).map_err(|error| {
                let error = ConfigError::deserialize(origin, text, error);
                // A value merged in is not written at its path: the
                // mapping nearest to it that is, the one its `<<` is in,
                // is where to look.
                let at = error.location_or(|path| locate::locate_nearest(text, path));
                error.at(at)
            })?
        } else {
            let typed = serde_yaml_ng::Deserializer::from_str(text);
            serde_path_to_error::deserialize(typed)
                .map_err(|error| ConfigError::deserialize(origin, text, error))?
        };
        Ok(document.unwrap_or_default())
    }

    /// Reads a configuration from a YAML file. Messages name the file as
    /// `path` shows it.
    ///
    /// Four environment variables, when set and not empty, decide over the
    /// file (as `sidecar inject` sets them from a pod's annotations):
    /// [`INGRESS_MODE_ENV`] decides `outbound.ingress_mode`, and
    /// [`INBOUND_LISTEN_ENV`], [`OUTBOUND_LISTEN_ENV`] and
    /// [`ADMIN_LISTEN_ENV`] set `inbound.listen`, `outbound.listen` and
    /// `admin.listen`. Nothing else in the environment is read. The
    /// addresses are applied before the checks across fields, which see
    /// them as if the file wrote them. Each address set is logged at
    /// `info` with the variable it came from; a variable that decides
    /// against what the file writes is logged as a warning.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] of kind [`Io`](ConfigErrorKind::Io), with the I/O
    /// error as its source, when the file cannot be read; of kind
    /// [`Syntax`](ConfigErrorKind::Syntax) when it is not UTF-8; otherwise
    /// as [`SidecarConfig::from_yaml`]. An error the environment is the
    /// cause of has the origin `environment` and the variable as its field
    /// path, and quotes the value: of kind
    /// [`InvalidValue`](ConfigErrorKind::InvalidValue) for an
    /// [`INGRESS_MODE_ENV`] other than `true` or `false` or an address
    /// that is not `ip:port`; of kind
    /// [`MissingField`](ConfigErrorKind::MissingField) for an
    /// [`INBOUND_LISTEN_ENV`] with no `inbound.app` in the file; and of
    /// the kind of the check it fails for an address that does not fit
    /// the file (a port another listener has), whose message is then the
    /// check's.
    pub fn load(path: &Path) -> Result<SidecarConfig, ConfigError> {
        SidecarConfig::load_with_env(path, |name| std::env::var_os(name))
    }

    /// [`SidecarConfig::load`], with the environment read by `env`: a
    /// process that runs sidecars of its own (the demo, a test) passes
    /// `|_| None`, so that a variable left in its shell does not move
    /// every sidecar it starts to the same address.
    ///
    /// # Errors
    ///
    /// As [`SidecarConfig::load`].
    pub fn load_with_env(
        path: &Path,
        env: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<SidecarConfig, ConfigError> {
        SidecarConfig::load_with_sources(path, env).map(|(config, _)| config)
    }

    /// [`SidecarConfig::load_with_env`], and where each listen address came
    /// from: the file, the variable that set it (with what the file writes
    /// there), or the default.
    ///
    /// Why here: only the reader knows which fields the file wrote before
    /// its defaults filled the others in, after its merge keys and with
    /// `~` read as left out, and which variables it took. `sidecar check`
    /// says it under its config check, for an operator who finds the
    /// sidecar on another port than the file says.
    ///
    /// The addresses are in the order the sidecar binds them: the section's
    /// own inbound listener (`inbound.listen`, when there is an
    /// `inbound.app`), each `inbound.ports` entry, `outbound.listen`, each
    /// `outbound.ports` entry and `admin.listen`.
    ///
    /// # Errors
    ///
    /// As [`SidecarConfig::load`].
    pub fn load_with_sources(
        path: &Path,
        env: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<(SidecarConfig, Vec<ListenAddress>), ConfigError> {
        let origin = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|error| {
            ConfigError::new(
                ConfigErrorKind::Io,
                &origin,
                "",
                "cannot read the configuration file",
            )
            .with_source(Some(Box::new(error)))
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|error| {
            ConfigError::new(
                ConfigErrorKind::Syntax,
                &origin,
                "",
                if bytes.starts_with(&[0xff, 0xfe]) || bytes.starts_with(&[0xfe, 0xff]) {
                    // The byte-order mark of UTF-16, which some Windows
                    // editors save text as.
                    "the file is not utf-8: it is utf-16, save it as utf-8"
                } else {
                    "the file is not utf-8"
                },
            )
            .at(Some(end_of_valid_utf8(&bytes, &error)))
            .with_source(Some(Box::new(error)))
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut document = SidecarConfig::read_document(text, &origin)?;
        let mut listen = ListenOverrides::read(&env)?;
        let moved = listen.fields();
        let source = Source {
            origin: &origin,
            text,
            moved: &moved,
        };
        let (config, provenance) = if listen.is_empty() {
            let provenance = listen.provenance(&document);
            (document.resolve(source)?, provenance)
        } else {
            listen.apply(&mut document, &origin)?;
            let provenance = listen.provenance(&document);
            let config = document.resolve(source).map_err(|error| {
                listen.blame(error, || SidecarConfig::from_yaml(text, &origin).err())
            })?;
            (config, provenance)
        };
        let file_mode = config.outbound.ingress_mode;
        let config = config.with_env(env)?;
        config.note_overrides(file_mode, source);
        listen.note(source);
        let addresses = provenance.addresses(&config);
        Ok((config, addresses))
    }
}

/// Where the first byte that is not UTF-8 is.
fn end_of_valid_utf8(bytes: &[u8], error: &std::str::Utf8Error) -> Location {
    let valid = bytes.get(..error.valid_up_to()).unwrap_or_default();
    let line_start = valid
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |newline| newline + 1);
    let last_line = valid.get(line_start..).unwrap_or_default();
    let column =
        std::str::from_utf8(last_line).map_or(last_line.len(), |line| line.chars().count());
    Location {
        line: 1 + valid.iter().filter(|&&byte| byte == b'\n').count(),
        column: 1 + column,
        index: valid.len(),
    }
}

#[cfg(test)]
mod env_tests;
#[cfg(test)]
mod tests;
