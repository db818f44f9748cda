//! The integration tests of this crate, built as one test binary: each file
//! is a module here. One binary links the dependency tree once, where a
//! binary per file linked it once per file. A test that changes or counts
//! something of its whole process (its allocations, its file descriptors, its
//! name) or runs itself again under limits keeps a binary of its own,
//! declared beside this one in `Cargo.toml`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod reissued;
mod support;
mod validity;

mod alpn;
mod anchor_spiffe_id;
mod ca;
mod ca_anchor_expiry;
mod ca_renewal;
mod ca_untrusted_reason;
mod ca_validity;
mod cert_gauge;
mod connect_names_connect;
mod connect_names_credentials;
mod connect_timeout;
mod hs_connect_source;
mod hs_trust_domain;
mod https_plaintext_refused;
mod identity_info;
mod io_trust_domains;
mod kx_groups;
mod local_validity;
mod local_validity_client_retire;
mod local_validity_log;
mod local_validity_ready;
mod local_validity_reason;
mod modes;
mod mtls;
mod names_peer_log;
mod names_server_name;
mod parity_identity;
mod passthrough;
mod refusal_log;
mod reissued_issuer;
mod reload_ask;
mod resumption;
mod retire_clock;
mod retire_kept_on_update;
mod review_ca_inputs;
mod review_ca_reload;
mod review_carry_over;
mod review_credential_purpose;
mod review_cross_signed_root;
mod review_identity_ca_reads;
mod review_identity_keys;
mod review_identity_pem;
mod review_refresh_metrics;
mod review_store_bundle;
mod review_store_reload;
mod review_verify_handshakes;
mod review_verify_peers;
mod rotation;
mod server_retirement;
mod silent_opaque;
mod store;
mod store_ca_source;
mod svid;
mod targets;
mod td_ca_issuer;
mod td_public_error;
mod td_refusal_labels;
mod x509;
