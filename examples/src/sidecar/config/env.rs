//! What the environment may change in a loaded configuration: ingress
//! mode, which `sidecar inject` turns on per workload (see
//! [`INGRESS_MODE_ENV`]), and the addresses of the three listeners a pod
//! declares ports for (see [`INBOUND_LISTEN_ENV`], [`OUTBOUND_LISTEN_ENV`]
//! and [`ADMIN_LISTEN_ENV`]).
//!
//! Which of the file, the environment and the defaults gave each listen
//! address is kept as the configuration is read ([`ListenSource`]), so
//! that `sidecar check` can say it without reading the file again.
//!
//! Why the environment at all: the configuration file is a ConfigMap that
//! several pods may share, while these settings belong to one pod's
//! manifest (its `mesh.io/inject: ingress`, its Linkerd port
//! annotations), and `sidecar inject` writes the manifest, not the file.
//! Linkerd's injector hands the same settings to its proxy the same way,
//! as environment variables of the proxy container.

use std::ffi::OsString;
use std::net::SocketAddr;

use super::error::{ConfigError, ConfigErrorKind};
use super::file::{Addr, Document};
use super::locate::locate;
use super::resolve::Source;
use super::{DEFAULT_ADMIN_LISTEN, DEFAULT_INBOUND_LISTEN, DEFAULT_OUTBOUND_LISTEN, SidecarConfig};

/// The environment variable that sets `outbound.ingress_mode` whatever
/// the file says: `true` or `false` (empty is the same as unset).
///
/// `sidecar inject` sets it to `true` on the sidecar of a workload
/// annotated `mesh.io/inject: ingress`, as Linkerd's injector sets
/// `LINKERD2_PROXY_INGRESS_MODE` for `linkerd.io/inject: ingress`: the
/// annotation, not the configuration file, says that the workload is an
/// ingress. [`SidecarConfig::load`] reads it; [`SidecarConfig::from_yaml`]
/// reads only the text it is given.
pub const INGRESS_MODE_ENV: &str = "MESH_INGRESS_MODE";

/// The environment variable that sets `inbound.listen`, the address of
/// the section's own inbound listener, whatever the file says: `ip:port`
/// (empty is the same as unset). The file must give `inbound.app` for the
/// listener to forward to; `inbound.ports` entries keep their own
/// addresses.
///
/// `sidecar inject` sets it to `0.0.0.0:<port>` for Linkerd's
/// `config.linkerd.io/inbound-port`, as Linkerd's injector sets
/// `LINKERD2_PROXY_INBOUND_LISTEN_ADDR` (`charts/partials/templates/_proxy.tpl`
/// in `linkerd/linkerd2`). [`SidecarConfig::load`] reads it.
pub const INBOUND_LISTEN_ENV: &str = "MESH_INBOUND_LISTEN_ADDR";

/// The environment variable that sets `outbound.listen` whatever the file
/// says: `ip:port` (empty is the same as unset).
///
/// `sidecar inject` sets it to `127.0.0.1:<port>` for Linkerd's
/// `config.linkerd.io/outbound-port`, as Linkerd's injector sets
/// `LINKERD2_PROXY_OUTBOUND_LISTEN_ADDR`. [`SidecarConfig::load`] reads it.
pub const OUTBOUND_LISTEN_ENV: &str = "MESH_OUTBOUND_LISTEN_ADDR";

/// The environment variable that sets `admin.listen` whatever the file
/// says: `ip:port` (empty is the same as unset).
///
/// `sidecar inject` sets it to `0.0.0.0:<port>` for Linkerd's
/// `config.linkerd.io/admin-port`, the port its probes and its `postStart`
/// await then use, as Linkerd's injector sets
/// `LINKERD2_PROXY_ADMIN_LISTEN_ADDR`. [`SidecarConfig::load`] reads it.
pub const ADMIN_LISTEN_ENV: &str = "MESH_ADMIN_LISTEN_ADDR";

/// The origin errors about the environment name.
const ORIGIN: &str = "environment";

impl SidecarConfig {
    /// Applies [`INGRESS_MODE_ENV`], as `env` reads it.
    pub(super) fn with_env(
        mut self,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self, ConfigError> {
        let Some(value) = env(INGRESS_MODE_ENV).filter(|value| !value.is_empty()) else {
            return Ok(self);
        };
        self.outbound.ingress_mode = match value.to_str() {
            Some("true") => true,
            Some("false") => false,
            _ => {
                return Err(ConfigError::new(
                    ConfigErrorKind::InvalidValue,
                    ORIGIN,
                    INGRESS_MODE_ENV,
                    format!("invalid value {value:?} (expected true or false)"),
                ));
            }
        };
        Ok(self)
    }

    /// Logs a warning when the environment decided otherwise than the
    /// file `source` writes, whose ingress mode is `file_mode`: an
    /// operator reading `ingress_mode: true` should not have to guess why
    /// the sidecar runs without it. A file that leaves the field out, as
    /// `sidecar inject` expects of an ingress, is not overridden.
    pub(super) fn note_overrides(&self, file_mode: bool, source: Source<'_>) {
        let mode = self.outbound.ingress_mode;
        if mode == file_mode {
            return;
        }
        let Some(at) = locate(source.text, "outbound.ingress_mode") else {
            return;
        };
        tracing::warn!(
            "{INGRESS_MODE_ENV}={mode} overrides outbound.ingress_mode: {file_mode} \
             at {} line {}: ingress mode is {}",
            source.origin,
            at.line,
            if mode { "on" } else { "off" },
        );
    }
}

/// Which listener a variable moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listener {
    Inbound,
    Outbound,
    Admin,
}

impl Listener {
    const ALL: [Listener; 3] = [Listener::Inbound, Listener::Outbound, Listener::Admin];

    fn variable(self) -> &'static str {
        match self {
            Listener::Inbound => INBOUND_LISTEN_ENV,
            Listener::Outbound => OUTBOUND_LISTEN_ENV,
            Listener::Admin => ADMIN_LISTEN_ENV,
        }
    }

    /// The field of the file it stands for.
    fn field(self) -> &'static str {
        match self {
            Listener::Inbound => "inbound.listen",
            Listener::Outbound => "outbound.listen",
            Listener::Admin => "admin.listen",
        }
    }

    fn default_addr(self) -> SocketAddr {
        match self {
            Listener::Inbound => DEFAULT_INBOUND_LISTEN,
            Listener::Outbound => DEFAULT_OUTBOUND_LISTEN,
            Listener::Admin => DEFAULT_ADMIN_LISTEN,
        }
    }
}

/// Where a listen address came from.
///
/// [`SidecarConfig::load_with_sources`] knows it for every listener, as
/// it reads the file and the environment. A configuration built in code
/// has neither, and [`SidecarConfig::listen_sources`] says of it only
/// what it can know: [`Default`](ListenSource::Default) for an address
/// that is its field's default, [`Configured`](ListenSource::Configured)
/// for any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenSource {
    /// The configuration file writes it.
    File,
    /// An environment variable ([`INBOUND_LISTEN_ENV`],
    /// [`OUTBOUND_LISTEN_ENV`] or [`ADMIN_LISTEN_ENV`]) sets it, whatever
    /// the file writes.
    Env {
        /// The variable.
        variable: &'static str,
        /// The address the file writes in that field, which the variable
        /// replaces (it may be the same one); `None` when the file leaves
        /// the field out.
        over: Option<SocketAddr>,
    },
    /// The field's default: nothing set it ([`SidecarConfig::listen_sources`]
    /// says only that it is the default).
    Default,
    /// Something other than the default, set by whatever built the
    /// configuration: [`SidecarConfig::listen_sources`] cannot tell a file
    /// or a variable from code, and says no more.
    Configured,
}

/// One address a configuration listens on, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddress {
    /// The field that holds it, as the file names it: `inbound.listen`,
    /// `inbound.ports[0].listen`, `outbound.listen`,
    /// `outbound.ports[0].listen` or `admin.listen`.
    pub field: String,
    /// The address.
    pub addr: SocketAddr,
    /// Where it came from.
    pub source: ListenSource,
}

/// Where the section listeners' addresses came from, found once the
/// environment is applied to the file as read: the resolved configuration
/// no longer tells a written address from a default one.
#[derive(Debug, Clone, Copy)]
pub(super) struct ListenProvenance {
    /// `None` when the inbound section has no listener of its own (no
    /// `inbound.app`): its listeners are then all `inbound.ports`.
    inbound: Option<ListenSource>,
    outbound: ListenSource,
    admin: ListenSource,
}

impl ListenProvenance {
    /// Every listen address of `config`, which was resolved from the file
    /// this was found for.
    pub(super) fn addresses(&self, config: &SidecarConfig) -> Vec<ListenAddress> {
        listen_addresses(
            config,
            self.inbound,
            self.outbound,
            self.admin,
            ListenSource::File,
        )
    }
}

/// Every listen address of `config`, in the order the sidecar binds them:
/// the inbound listeners (the section's own first, with `own_inbound` its
/// source, when there is one), the outbound listener and its `ports`, and
/// the admin server. Entries of `ports` have `ports_source`.
fn listen_addresses(
    config: &SidecarConfig,
    own_inbound: Option<ListenSource>,
    outbound: ListenSource,
    admin: ListenSource,
    ports_source: ListenSource,
) -> Vec<ListenAddress> {
    let entry = |field: String, addr: SocketAddr, source: ListenSource| ListenAddress {
        field,
        addr,
        source,
    };
    let mut addresses = Vec::new();
    let mut inbound = config.inbound.ports.iter();
    if let Some(source) = own_inbound
        && let Some(port) = inbound.next()
    {
        addresses.push(entry("inbound.listen".to_owned(), port.listen, source));
    }
    for (index, port) in inbound.enumerate() {
        addresses.push(entry(
            format!("inbound.ports[{index}].listen"),
            port.listen,
            ports_source,
        ));
    }
    addresses.push(entry(
        "outbound.listen".to_owned(),
        config.outbound.listen,
        outbound,
    ));
    for (index, port) in config.outbound.ports.iter().enumerate() {
        addresses.push(entry(
            format!("outbound.ports[{index}].listen"),
            port.listen,
            ports_source,
        ));
    }
    addresses.push(entry("admin.listen".to_owned(), config.admin.listen, admin));
    addresses
}

impl SidecarConfig {
    /// Every address this configuration listens on, as far as the
    /// configuration itself can say where it came from: it does not
    /// remember a file or the environment. An `outbound.listen` or
    /// `admin.listen` equal to its default is
    /// [`Default`](ListenSource::Default), and every other address
    /// [`Configured`](ListenSource::Configured); the inbound listeners are
    /// all `inbound.ports[i]`, as a configuration built in code has no
    /// `inbound.listen` of its own. For one read from a file,
    /// [`SidecarConfig::load_with_sources`] says which of the file, the
    /// environment and the defaults gave each address.
    pub fn listen_sources(&self) -> Vec<ListenAddress> {
        let judge = |addr: SocketAddr, default: SocketAddr| {
            if addr == default {
                ListenSource::Default
            } else {
                ListenSource::Configured
            }
        };
        listen_addresses(
            self,
            None,
            judge(self.outbound.listen, DEFAULT_OUTBOUND_LISTEN),
            judge(self.admin.listen, DEFAULT_ADMIN_LISTEN),
            ListenSource::Configured,
        )
    }
}

/// A listen address the environment sets, and what the file wrote there.
#[derive(Debug)]
struct ListenOverride {
    listener: Listener,
    addr: SocketAddr,
    /// The address the file writes, when it writes one.
    written: Option<SocketAddr>,
}

impl ListenOverride {
    /// `NAME=ip:port`.
    fn assignment(&self) -> String {
        format!("{}={}", self.listener.variable(), self.addr)
    }
}

/// The listen addresses the environment sets ([`INBOUND_LISTEN_ENV`],
/// [`OUTBOUND_LISTEN_ENV`], [`ADMIN_LISTEN_ENV`]). They are written into
/// the file as read, before its defaults and its checks across fields:
/// two listeners on one port, an application address that is a
/// listener, a dashboard peer that is this sidecar are found whether the
/// file or the environment put them there.
#[derive(Debug, Default)]
pub(super) struct ListenOverrides(Vec<ListenOverride>);

impl ListenOverrides {
    /// The variables `env` sets, each read as an `ip:port`.
    ///
    /// A value that is not one is an error of kind
    /// [`InvalidValue`](ConfigErrorKind::InvalidValue), from the origin
    /// `environment`, whose field path is the variable and whose message
    /// quotes the value.
    pub(super) fn read(env: &impl Fn(&str) -> Option<OsString>) -> Result<Self, ConfigError> {
        let mut overrides = Vec::new();
        for listener in Listener::ALL {
            let variable = listener.variable();
            let Some(value) = env(variable).filter(|value| !value.is_empty()) else {
                continue;
            };
            let Some(addr) = value.to_str().and_then(|text| text.parse().ok()) else {
                return Err(ConfigError::new(
                    ConfigErrorKind::InvalidValue,
                    ORIGIN,
                    variable,
                    format!(
                        "invalid socket address {value:?} (expected ip:port with a port up to \
                         65535, such as {}): it would set {}",
                        listener.default_addr(),
                        listener.field(),
                    ),
                ));
            };
            overrides.push(ListenOverride {
                listener,
                addr,
                written: None,
            });
        }
        Ok(Self(overrides))
    }

    /// The fields the variables set, such as `admin.listen`.
    pub(super) fn fields(&self) -> Vec<&'static str> {
        self.0.iter().map(|entry| entry.listener.field()).collect()
    }

    /// Whether no variable is set.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Where the section listeners of `document` got their addresses:
    /// these variables, once [applied](ListenOverrides::apply) to it, or
    /// else the file when it writes the field (a field written `~` is one
    /// left out, as serde reads it), or else the default.
    pub(super) fn provenance(&self, document: &Document) -> ListenProvenance {
        let source = |listener: Listener, written: Option<Addr>| match self
            .0
            .iter()
            .find(|entry| entry.listener == listener)
        {
            Some(entry) => ListenSource::Env {
                variable: listener.variable(),
                over: entry.written,
            },
            None if written.is_some() => ListenSource::File,
            None => ListenSource::Default,
        };
        let inbound = document.inbound.as_ref();
        ListenProvenance {
            // The section's own listener is there when it has an
            // application to forward to (the variable needs one too).
            inbound: inbound
                .filter(|section| section.app.is_some())
                .map(|section| source(Listener::Inbound, section.listen)),
            outbound: source(
                Listener::Outbound,
                document
                    .outbound
                    .as_ref()
                    .and_then(|section| section.listen),
            ),
            admin: source(
                Listener::Admin,
                document.admin.as_ref().and_then(|section| section.listen),
            ),
        }
    }

    /// Writes the addresses into `document`, the file `origin` as read,
    /// and remembers what it wrote there.
    ///
    /// [`INBOUND_LISTEN_ENV`] for a file without `inbound.app` is an
    /// error of kind [`MissingField`](ConfigErrorKind::MissingField), as
    /// `inbound.listen` written without it is: the listener would have
    /// nothing to forward to, and no listener would be there at all.
    pub(super) fn apply(
        &mut self,
        document: &mut Document,
        origin: &str,
    ) -> Result<(), ConfigError> {
        for entry in &mut self.0 {
            let slot = match entry.listener {
                Listener::Inbound => {
                    let inbound = document.inbound.get_or_insert_with(Default::default);
                    if inbound.app.is_none() {
                        return Err(ConfigError::new(
                            ConfigErrorKind::MissingField,
                            ORIGIN,
                            INBOUND_LISTEN_ENV,
                            format!(
                                "{} sets inbound.listen, and {origin} has no inbound.app for \
                                 that listener to forward to (inbound.ports entries keep \
                                 their own listen): add inbound.app, or unset \
                                 {INBOUND_LISTEN_ENV}",
                                entry.assignment(),
                            ),
                        ));
                    }
                    &mut inbound.listen
                }
                Listener::Outbound => {
                    &mut document
                        .outbound
                        .get_or_insert_with(Default::default)
                        .listen
                }
                Listener::Admin => &mut document.admin.get_or_insert_with(Default::default).listen,
            };
            entry.written = slot.map(|addr| addr.0);
            *slot = Some(Addr(entry.addr));
        }
        Ok(())
    }

    /// `error`, which the configuration with these addresses applied
    /// was refused with, said as the environment's when it is: when the
    /// file alone, which `file_alone` reads again, is not refused the
    /// same way. The variables named are those whose field the error
    /// names, or all of them when it names none.
    pub(super) fn blame(
        &self,
        error: ConfigError,
        file_alone: impl FnOnce() -> Option<ConfigError>,
    ) -> ConfigError {
        let text = error.to_string();
        if file_alone().is_some_and(|alone| alone.to_string() == text) {
            return error;
        }
        let mut named: Vec<&ListenOverride> = self
            .0
            .iter()
            .filter(|entry| text.contains(entry.listener.field()))
            .collect();
        if named.is_empty() {
            named = self.0.iter().collect();
        }
        let variables: Vec<&str> = named
            .iter()
            .map(|entry| entry.listener.variable())
            .collect();
        let assignments: Vec<String> = named.iter().map(|entry| entry.assignment()).collect();
        ConfigError::new(
            error.kind(),
            ORIGIN,
            variables.join(", "),
            format!(
                "{} does not fit the configuration file: {text}",
                assignments.join(" and ")
            ),
        )
    }

    /// Logs where each address set by the environment came from: a
    /// warning when the file `source` writes another one, which the
    /// sidecar does not follow, and an info line otherwise. The sidecar's
    /// start line says where it listens; these say why.
    pub(super) fn note(&self, source: Source<'_>) {
        for entry in &self.0 {
            let field = entry.listener.field();
            let variable = entry.listener.variable();
            match entry.written {
                Some(written) if written != entry.addr => {
                    let line = locate(source.text, field)
                        .map_or_else(String::new, |at| format!(" line {}", at.line));
                    tracing::warn!(
                        "{} overrides {field}: {written} at {}{line}: the sidecar listens on {}",
                        entry.assignment(),
                        source.origin,
                        entry.addr,
                    );
                }
                Some(_) => tracing::info!(
                    "{field} is {}, from {variable}, as {} writes it",
                    entry.addr,
                    source.origin,
                ),
                None => tracing::info!(
                    "{field} is {}, from {variable} ({} leaves it to the default {})",
                    entry.addr,
                    source.origin,
                    entry.listener.default_addr(),
                ),
            }
        }
    }
}

/// Every variable the sidecar reads, of those named `MESH_...`.
const KNOWN: [&str; 4] = [
    INGRESS_MODE_ENV,
    INBOUND_LISTEN_ENV,
    OUTBOUND_LISTEN_ENV,
    ADMIN_LISTEN_ENV,
];

/// The prefix of the sidecar's own variables: a variable named so that
/// the sidecar does not read is most likely a misspelt one of them.
const PREFIX: &str = "MESH_";

/// The most edits (a letter added, removed, changed, or two swapped) a
/// name may be from a known variable for it to be named as the one
/// meant. Three catch a dropped, doubled or swapped letter or two. The
/// inbound and outbound listeners' variables are three apart themselves,
/// so a name may be as close to both: it then suggests neither.
const MAX_EDITS: usize = 3;

impl SidecarConfig {
    /// The variables among `names` that start with `MESH_` and that the
    /// sidecar does not read, sorted, each with the variable it reads that
    /// the name is closest to, when one is a few edits away, is not set
    /// itself, and no other is as close (`MESH_INBOUND_LISTEN_ADR`,
    /// `Some("MESH_INBOUND_LISTEN_ADDR")`). A name whose prefix is
    /// `MESH_` in another case (`mesh_admin_listen_addr`) is named too
    /// when it is a few edits from a variable the sidecar reads.
    ///
    /// Why: a misspelt variable leaves the file's value, or the default,
    /// in force, and nothing else says so. The sidecar still starts, as
    /// Linkerd's proxy does with a `LINKERD2_PROXY_` variable it does not
    /// know (it reads its variables by name and never lists the
    /// environment): a variable set for another version of the sidecar,
    /// during an upgrade, must not stop this one. `sidecar run` logs a
    /// warning for each, and `sidecar check` warns of each.
    pub fn unknown_env_variables(
        names: impl IntoIterator<Item = OsString>,
    ) -> Vec<(String, Option<&'static str>)> {
        let names: Vec<String> = names
            .into_iter()
            .map(|name| name.to_string_lossy().into_owned())
            .collect();
        // A known variable that is set is in force: a misspelt name
        // beside it is a leftover, not a slip for it, and "did you mean"
        // would send the reader to a variable already set.
        let unset: Vec<&'static str> = KNOWN
            .into_iter()
            .filter(|known| !names.iter().any(|name| name == known))
            .collect();
        let mut unknown: Vec<(String, Option<&'static str>)> = names
            .into_iter()
            .filter(|name| !KNOWN.contains(&name.as_str()))
            .filter(|name| {
                // Environment names are case-sensitive: `mesh_...` is
                // not read either. Named only when close to a variable
                // the sidecar reads: far from all, it is another
                // program's.
                name.starts_with(PREFIX)
                    || name
                        .get(..PREFIX.len())
                        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(PREFIX))
                        && closest(name, &KNOWN).is_some()
            })
            .map(|name| {
                let meant = closest(&name, &unset);
                (name, meant)
            })
            .collect();
        unknown.sort();
        unknown.dedup();
        unknown
    }
}

/// The variable of `known` that `name` is fewest edits from, compared
/// without case, when that is at most [`MAX_EDITS`] and no other is as
/// close: a name as close to two is a slip for either, and naming one
/// would be a guess.
fn closest(name: &str, known: &[&'static str]) -> Option<&'static str> {
    let name = name.to_ascii_uppercase();
    let mut best: Option<(usize, &'static str)> = None;
    let mut tied = false;
    for &candidate in known {
        let distance = edits(&name, candidate);
        if distance > MAX_EDITS {
            continue;
        }
        match best {
            Some((least, _)) if distance > least => {}
            Some((least, _)) if distance == least => tied = true,
            _ => {
                best = Some((distance, candidate));
                tied = false;
            }
        }
    }
    best.filter(|_| !tied).map(|(_, known)| known)
}

/// How many single-character edits turn `a` into `b`: insertions,
/// deletions, substitutions and swaps of two neighbours (the optimal
/// string alignment distance), on characters.
pub(super) fn edits(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows of the table: the one before the previous, the previous,
    // and the one being filled.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}
